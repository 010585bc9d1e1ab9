"""Pyro guides: the variational posterior over architectures."""

from bayesnas.guides.dropout import VariationalDropoutGuide

__all__ = ["VariationalDropoutGuide"]
