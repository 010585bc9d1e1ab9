"""Figures 7-8 from ensemble.json: the reliability diagram and metrics against ensemble size.

Drawn from the test split when `bayesnas ensemble --test` scored it, else from validation (where
the members were also chosen, so its numbers flatter them); the caption says which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bayesnas.report.style import new_figure

ENSEMBLE = "ensemble.json"  # written by `bayesnas ensemble` (selection/ensemble.py)


def _load(run_dir: Path) -> dict[str, Any] | None:
    try:
        report = json.loads((run_dir / ENSEMBLE).read_text())
        readable = isinstance(report["splits"]["val"]["sizes"], list)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if readable else None


def _reliability(report: dict[str, Any], split: str) -> Figure:
    data = report["splits"][split]
    fig = new_figure(11, 4.6)
    axes = fig.subplots(1, 2, sharey=True)
    names = {"ensemble": f"ensemble of {report['members']}", "best_member": "best single member"}
    for ax, (key, name) in zip(axes, names.items(), strict=True):
        bins = data["reliability"][key]
        width = bins[0]["upper"] - bins[0]["lower"]
        filled = [b for b in bins if b["count"]]
        ax.bar(
            [b["lower"] for b in filled],
            [b["accuracy"] for b in filled],
            width=width,
            align="edge",
            color="C0" if key == "ensemble" else "C1",
            edgecolor="black",
            label="accuracy in bin",
        )
        ax.plot(
            [b["confidence"] for b in filled],
            [b["confidence"] for b in filled],
            "k.",
            label="mean confidence in bin",
        )
        ax.plot([0, 1], [0, 1], ls="--", color="0.5", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (max class probability)")
        m = data[key]
        ax.set_title(f"{name}: ECE {m['ece']:.4f}, NLL {m['nll']:.4f}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"accuracy ({split} split)")
    axes[0].legend(fontsize=8, loc="upper left")
    return fig


def _sizes(report: dict[str, Any], split: str) -> Figure:
    data = report["splits"][split]
    fig = new_figure(13, 4.2)
    axes = fig.subplots(1, 3)
    ks = [s["k"] for s in data["sizes"]]
    for ax, (key, label) in zip(
        axes, (("accuracy", "accuracy (%)"), ("nll", "NLL (nats)"), ("ece", "ECE")), strict=True
    ):
        scale = 100 if key == "accuracy" else 1
        ax.plot(ks, [scale * s[key] for s in data["sizes"]], "o-", label="ensemble of first k")
        ax.axhline(scale * data["best_member"][key], color="C1", ls="--", label="best member")
        ax.axhline(scale * data["mode"][key], color="C2", ls=":", label="posterior mode")
        ax.set_xlabel("ensemble size k")
        ax.set_ylabel(f"{label}, {split} split")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def ensemble_figures(run_dir: Path) -> list[tuple[str, str, str, Figure]]:
    """Figures 7-8 when the run holds a readable ensemble.json; none otherwise."""
    report = _load(Path(run_dir))
    if report is None:
        return []
    split = "test" if "test" in report["splits"] else "val"
    about = (
        f"{report['members']} members from {report['source']}, {report['weights']} weights, "
        f"BN {report['bn']}; {split} split"
        + ("" if split == "test" else " (where members were chosen: optimistic)")
    )
    return [
        (
            "07-reliability",
            "Reliability",
            f"accuracy against confidence in 15 equal-width bins, ensemble beside its best "
            f"member ({about})",
            _reliability(report, split),
        ),
        (
            "08-ensemble-size",
            "Ensemble size",
            f"accuracy, NLL and ECE of the ensemble of the first k members, against the best "
            f"member and the posterior mode ({about})",
            _sizes(report, split),
        ),
    ]
