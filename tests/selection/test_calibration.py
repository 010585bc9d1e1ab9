"""Accuracy, NLL, Brier and ECE against values computed by hand on a fixed prediction set."""

import math

import pytest
import torch

from bayesnas.selection.calibration import calibration_metrics, confidence_bins

# four examples, three classes; confidences 0.7, 0.5, 0.9, 0.4 (bins 10, 7, 13, 5 of 15)
PROBS = torch.tensor(
    [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.05, 0.05, 0.9], [0.3, 0.4, 0.3]], dtype=torch.float64
)
LABELS = torch.tensor([0, 1, 2, 0])  # right, wrong, right, wrong


def test_metrics_by_hand():
    m = calibration_metrics(PROBS, LABELS)
    assert m["accuracy"] == 0.5
    nll = -(math.log(0.7) + math.log(0.3) + math.log(0.9) + math.log(0.3)) / 4
    assert m["nll"] == pytest.approx(nll, rel=1e-12)
    brier = (
        (0.3**2 + 0.2**2 + 0.1**2)
        + (0.5**2 + 0.7**2 + 0.2**2)
        + (0.05**2 + 0.05**2 + 0.1**2)
        + (0.7**2 + 0.4**2 + 0.3**2)
    ) / 4
    assert m["brier"] == pytest.approx(brier, rel=1e-12)
    # each example alone in its bin: ECE = mean |correct - confidence|
    ece = (abs(1 - 0.7) + abs(0 - 0.5) + abs(1 - 0.9) + abs(0 - 0.4)) / 4
    assert m["ece"] == pytest.approx(ece, rel=1e-12)


def test_fifteen_equal_width_bins_and_shared_bins_average():
    bins = confidence_bins(PROBS, LABELS)
    assert len(bins) == 15 and bins[0]["lower"] == 0 and bins[-1]["upper"] == 1
    assert [b["count"] for b in bins].count(1) == 4
    assert bins[10]["confidence"] == pytest.approx(0.7) and bins[10]["accuracy"] == 1.0
    # two examples in one bin: (0.61, right) and (0.65, wrong): |0.5 - 0.63| counts twice
    probs = torch.tensor([[0.61, 0.39], [0.65, 0.35]], dtype=torch.float64)
    m = calibration_metrics(probs, torch.tensor([0, 1]))
    assert m["ece"] == pytest.approx(abs(0.5 - 0.63))


def test_a_probability_of_zero_has_a_finite_nll():
    m = calibration_metrics(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    assert math.isfinite(m["nll"]) and m["nll"] > 20
