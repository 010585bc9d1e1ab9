"""Pyro models: the joint distribution over architecture, weights and labels."""

from bayesnas.models.supernet import ARCH_SITE, SuperNetModel

__all__ = ["ARCH_SITE", "SuperNetModel"]
