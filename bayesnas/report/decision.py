"""When q decided: read from metrics.jsonl, for the summary and the entropy figure.

A posterior that decides while the weights are untrained picks what is easy to fit, not what
is good; a run should show when its mode stopped changing and whether that was after the
weight warm-up (docs/architecture.md, "What decides q").
"""

from __future__ import annotations

from typing import Any

SHARP = 0.9  # every edge's most probable op at least this: q has decided for the figure


def _sharp(gates: dict[str, Any]) -> bool:
    edges = gates.get("edges") or []
    return bool(edges) and all(max(e["probs"].values()) >= SHARP for e in edges)


def when_q_decided(metrics: list[dict[str, Any]]) -> dict[str, int | None]:
    """Epochs (1-based) at which the warm-up ended, the mode last changed, and q became sharp.

    ``warmup_end`` is the last epoch in which q stayed frozen (None without a warm-up or for
    older runs that did not record it); ``mode_fixed_from`` the first epoch from which the mode
    never changed again; ``sharp_from`` the first epoch from which every edge kept a top op of
    probability >= SHARP (cell spaces only, else None).
    """
    if not metrics:
        return {"warmup_end": None, "mode_fixed_from": None, "sharp_from": None}
    frozen = [r["epoch"] for r in metrics if r.get("q_learns") is False]
    modes = [r["gates"].get("mode") for r in metrics]
    fixed = len(modes)
    while fixed > 1 and modes[fixed - 2] == modes[-1]:
        fixed -= 1
    sharp = len(metrics) + 1
    while sharp > 1 and _sharp(metrics[sharp - 2]["gates"]):
        sharp -= 1
    return {
        "warmup_end": max(frozen) if frozen else None,
        "mode_fixed_from": metrics[fixed - 1]["epoch"],
        "sharp_from": metrics[sharp - 1]["epoch"] if sharp <= len(metrics) else None,
    }


def describe(decision: dict[str, int | None], epochs_done: int) -> str:
    """One summary line, e.g. 'mode fixed from epoch 7 of 10, after the warm-up (1-5); ...'."""
    text = f"mode unchanged from epoch {decision['mode_fixed_from']} of {epochs_done}"
    if decision["warmup_end"] is not None:
        text += f" (q frozen for warm-up epochs 1-{decision['warmup_end']})"
    if decision["sharp_from"] is not None:
        text += f"; every edge's top op >= {SHARP:.0%} from epoch {decision['sharp_from']}"
    return text
