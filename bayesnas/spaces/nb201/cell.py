"""The NAS-Bench-201 cell as notation: its ops, its edges, the graph facts of one cell, and
the benchmark's string form (``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...``)."""

from __future__ import annotations

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP, CONV1, CONV3, POOL = range(len(OPS))
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node), string order


def live_nodes(ops: tuple[int, ...]) -> list[bool]:
    """Which nodes feed the cell output through edges that are not 'none'."""
    live = [False, False, False, True]
    for edge in reversed(range(len(EDGES))):
        to, src = EDGES[edge]
        if ops[edge] != NONE and live[to]:
            live[src] = True
    return live


def zero_nodes(ops: tuple[int, ...]) -> list[bool]:
    """Which nodes are identically zero (fed only by 'none', or by skip/pool of zero nodes)."""
    zero = [False, True, True, True]
    for edge, (to, src) in enumerate(EDGES):
        if ops[edge] != NONE and not (zero[src] and ops[edge] in (SKIP, POOL)):
            zero[to] = False
    return zero


def canonical_ops(ops: tuple[int, ...]) -> tuple[int, ...]:
    """The same cell with every edge that cannot change the output set to 'none'
    (edges into nodes that do not reach the output, skip/pool of zero nodes)."""
    while True:
        live, zero = live_nodes(ops), zero_nodes(ops)
        new = tuple(
            NONE if not live[to] or (zero[src] and op in (SKIP, POOL)) else op
            for op, (to, src) in zip(ops, EDGES, strict=True)
        )
        if new == ops:
            return ops
        ops = new


def to_string(ops: tuple[int, ...]) -> str:
    """NAS-Bench-201 notation, e.g. ``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...``."""
    nodes = []
    for node in (1, 2, 3):
        parts = [f"{OPS[ops[e]]}~{src}" for e, (to, src) in enumerate(EDGES) if to == node]
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


def from_string(text: str) -> tuple[int, ...]:
    """Op indices per edge from a NAS-Bench-201 string; ValueError names what is malformed."""
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise ValueError(f"expected 3 nodes separated by '+', got {len(nodes)} in {text!r}")
    ops = []
    for node, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|")):
            raise ValueError(f"node {node} must be written |op~i|...|, got {part!r}")
        entries = part[1:-1].split("|")
        if len(entries) != node:
            raise ValueError(f"node {node} needs {node} inputs, got {len(entries)} in {part!r}")
        for src, entry in enumerate(entries):
            name, _, index = entry.partition("~")
            if name not in OPS or index != str(src):
                raise ValueError(f"bad edge {entry!r} into node {node}: want op~{src}, op in {OPS}")
            ops.append(OPS.index(name))
    return tuple(ops)


def edges_of(text: str) -> list[tuple[int, int, str]]:
    """(from node, to node, op name) of every edge of a NAS-Bench-201 string (the report's
    "cell" figure); ValueError if ``text`` is not one."""
    return [(src, to, OPS[op]) for (to, src), op in zip(EDGES, from_string(text), strict=True)]


def read_cell(text: str) -> tuple[str, dict[str, list[str]]]:
    """The canonical string of a cell and its op per edge (``train --arch``); ValueError if
    ``text`` is not a cell."""
    ops = from_string(text)
    return to_string(ops), {"ops": [OPS[i] for i in ops]}
