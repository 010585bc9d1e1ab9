"""Calibration of predicted class probabilities: accuracy, NLL, Brier score, ECE, reliability.

All take probabilities ``[n, classes]`` (not logits: an ensemble averages probabilities) and
labels ``[n]``. ECE uses ``BINS`` equal-width confidence bins on [0, 1], bin b holding the
confidences in (b / BINS, (b + 1) / BINS] (the first also holds 0), as in Guo et al. 2017 and
google/uncertainty-baselines.
"""

from __future__ import annotations

import math
from typing import Any

import torch

BINS = 15
_FLOOR = 1e-12  # NLL of a probability that underflowed to 0 is -log of this, not infinity


def confidence_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> list[dict]:
    """Per equal-width bin: its edges, the examples in it, mean confidence and accuracy."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    index = (confidence.double() * bins).ceil().long().sub(1).clamp(0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "confidence": float(confidence[inside].double().mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return rows


def expected_calibration_error(bins: list[dict]) -> float:
    """sum over bins of (share of examples) x |accuracy - mean confidence|."""
    total = sum(b["count"] for b in bins)
    if total == 0:
        return math.nan
    return sum(
        b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]
    )


def calibration_metrics(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS
) -> dict[str, Any]:
    """Accuracy, mean NLL, mean multi-class Brier score and ECE of ``probs`` on ``labels``."""
    probs, labels = probs.double(), labels.long()
    if len(labels) == 0:
        return {"accuracy": math.nan, "nll": math.nan, "brier": math.nan, "ece": math.nan}
    picked = probs.gather(1, labels[:, None]).squeeze(1)
    one_hot = torch.nn.functional.one_hot(labels, probs.shape[1]).double()
    return {
        "accuracy": float((probs.argmax(1) == labels).double().mean()),
        "nll": float(-picked.clamp_min(_FLOOR).log().mean()),
        "brier": float((probs - one_hot).square().sum(1).mean()),
        "ece": expected_calibration_error(confidence_bins(probs, labels, bins)),
        "images": len(labels),
    }
