"""The arrays behind the figures, from the plain JSON rows of metrics.jsonl and samples.jsonl."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayesnas.selection import rank

TOP_K = 5  # `sample`'s default top-k: assumed for rows written before top_k was recorded

Row = dict[str, Any]


def series(metrics: list[Row], key: str) -> np.ndarray:
    """One metric over epochs as floats (NaN where a row lacks it)."""
    return np.array([float(r[key]) if r.get(key) is not None else math.nan for r in metrics])


def is_cell_space(gates: dict[str, Any]) -> bool:
    """Whether ``gates`` are per-edge op probabilities (nb201), not per-group keep rates."""
    return "edges" in gates


def op_matrix(gates: dict[str, Any]) -> tuple[list[str], list[str], np.ndarray]:
    """Edge names, op names and q(op | edge) as an ``[edge, op]`` array (rows sum to 1)."""
    edges = [e["edge"] for e in gates["edges"]]
    ops = list(gates["edges"][0]["probs"])
    probs = np.array([[e["probs"][op] for op in ops] for e in gates["edges"]])
    return edges, ops, probs


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, shifted by the row's maximum so that it never overflows."""
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def prior_posterior(
    prior_logits: np.ndarray, gate_logits: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p(op | edge) and q(op | edge) as ``[edge, op]`` arrays (softmax of the prior's and of q's
    logits) and KL(q || p) per edge in nats: how far SVI moved each edge from the prior."""
    log_p = _log_softmax(np.asarray(prior_logits, dtype=float))
    log_q = _log_softmax(np.asarray(gate_logits, dtype=float))
    q = np.exp(log_q)
    return np.exp(log_p), q, (q * (log_q - log_p)).sum(-1)


def op_history(metrics: list[Row]) -> np.ndarray:
    """q(op | edge) after every epoch, ``[epoch, edge, op]``."""
    return np.stack([op_matrix(r["gates"])[2] for r in metrics])


def unit_names(gates: dict[str, Any]) -> list[str]:
    """The edges (nb201) or gate groups (resnet) the posterior is factorised over."""
    units = gates["edges"] if is_cell_space(gates) else gates["groups"]
    return [u.get("edge") or u.get("group") for u in units]


def entropy_history(metrics: list[Row]) -> np.ndarray:
    """Entropy (nats) of q per edge or group after every epoch, ``[epoch, unit]``."""
    rows = []
    for r in metrics:
        gates = r["gates"]
        units = gates["edges"] if is_cell_space(gates) else gates["groups"]
        rows.append([u["entropy"] for u in units])
    return np.array(rows)


def keep_probabilities(gates: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Group names, keep probabilities 1-p and channel counts of a resnet posterior."""
    groups = gates["groups"]
    keep = np.array([g["keep"] for g in groups])
    return [g["group"] for g in groups], keep, np.array([g["channels"] for g in groups])


def drop_fractions(gates: dict[str, Any]) -> dict[str, float]:
    """Fractions of gated channels and of units (branches, connections) dropped, in expectation
    and under the mode.

    A unit is removed when every gate of one of its groups is off; a group's ``gates`` are its
    independent gates (default: one per channel) and its ``unit`` names the unit (default:
    resnet's, conv1 and conv2 of one branch as consecutive groups). The mode keeps a group
    whole when its keep probability exceeds 1/2 (the space's ``mode``).
    """
    _, keep, channels = keep_probabilities(gates)
    draws = np.array([g.get("gates", g["channels"]) for g in gates["groups"]])
    units: dict[Any, list[int]] = {}
    for i, group in enumerate(gates["groups"]):
        units.setdefault(group.get("unit", i // 2), []).append(i)
    kept_mode = keep > 0.5
    all_off = (1 - keep) ** draws
    return {
        "channels_expected": float(((1 - keep) * channels).sum() / channels.sum()),
        "channels_mode": float((~kept_mode * channels).sum() / channels.sum()),
        "branches_expected": float(np.mean([1 - np.prod(1 - all_off[i]) for i in units.values()])),
        "branches_mode": float(np.mean([not kept_mode[i].all() for i in units.values()])),
    }


def best_of_k(rows: list[Row]) -> np.ndarray:
    """The best-of-k curve of one sample call from its samples.jsonl rows (the curve of its
    best_of_k-<sampler>.json: the same function computes both)."""
    firsts = ((int(r["first_draw"]), float(r["val_acc"])) for r in rows)
    return np.asarray(rank.best_of_k(firsts, int(rows[0]["n"])))


# -- figures ------------------------------------------------------------------------------------


def top_k(rows: list[Row]) -> int:
    """How many candidates of one sample call were exported (its --top-k)."""
    k = rows[0].get("top_k")
    return int(k) if isinstance(k, int) else min(TOP_K, len(rows))
