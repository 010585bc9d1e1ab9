"""DARTS genotypes: the ``Genotype(normal=[...], ...)`` notation, printed and parsed (never eval'd).

A genotype names, for the normal and the reduction cell, two ``(op, input)`` pairs per
intermediate node, in node order; input 0 and 1 are the cell's inputs (the two previous cells'
outputs), input k >= 2 is intermediate node k. The cell's output concatenates ``*_concat``.
The parser reads exactly this notation (DARTS's ``genotypes.py`` and its printed namedtuples:
lists or ``range(a, b)`` for the concatenations) with a tokenizer of its own, so a genotype a
user hands over is data; every defect is a ValueError that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)  # DARTS's PRIMITIVES, in its order: the gate tensor's last dimension
NODES = 4  # intermediate nodes per cell
CELL_KINDS = ("normal", "reduce")
Pairs = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Genotype:
    """One DARTS architecture: per cell kind, ``(op, input)`` pairs, two per node in order."""

    normal: Pairs
    normal_concat: tuple[int, ...]
    reduce: Pairs
    reduce_concat: tuple[int, ...]

    def __str__(self) -> str:
        def pairs(cell: Pairs) -> str:
            return "[" + ", ".join(f"('{op}', {src})" for op, src in cell) + "]"

        def ints(values: tuple[int, ...]) -> str:
            return "[" + ", ".join(str(v) for v in values) + "]"

        return (
            f"Genotype(normal={pairs(self.normal)}, normal_concat={ints(self.normal_concat)}, "
            f"reduce={pairs(self.reduce)}, reduce_concat={ints(self.reduce_concat)})"
        )

    def cell(self, kind: str) -> Pairs:
        """The pairs of cell ``kind`` ("normal" or "reduce")."""
        return self.normal if kind == "normal" else self.reduce

    def concat(self, kind: str) -> tuple[int, ...]:
        """The nodes cell ``kind`` concatenates into its output."""
        return self.normal_concat if kind == "normal" else self.reduce_concat


_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_]\w*)|(?P<int>-?\d+)|(?P<str>'[^']*'|\"[^\"]*\")|"
                    r"(?P<punct>[()\[\],=]))")  # fmt: skip
MAX_LENGTH = 4000  # a genotype is a few hundred characters


class _Parser:
    """Recursive descent over the tokens of ``Genotype(key=value, ...)``."""

    def __init__(self, text: str):
        self.tokens: list[tuple[str, Any]] = []
        position, text = 0, text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ValueError(f"unexpected character {text[position : position + 10]!r}")
            kind = match.lastgroup or ""
            value: Any = match.group(kind)
            self.tokens.append((kind, int(value) if kind == "int" else value))
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.index = 0

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", None)

    def take(self, punct: str) -> None:
        kind, value = self.peek()
        if (kind, value) != ("punct", punct):
            found = "the end" if kind == "end" else repr(value)
            raise ValueError(f"expected {punct!r}, found {found}")
        self.index += 1

    def value(self) -> Any:
        kind, value = self.peek()
        if kind in ("int", "str"):
            self.index += 1
            return value[1:-1] if kind == "str" else value
        if (kind, value) == ("name", "range"):
            self.index += 1
            self.take("(")
            start = self.value()
            self.take(",")
            stop = self.value()
            self.take(")")
            if not (isinstance(start, int) and isinstance(stop, int)):
                raise ValueError("range() takes two whole numbers")
            return list(range(start, stop))
        if (kind, value) in (("punct", "["), ("punct", "(")):
            close = "]" if value == "[" else ")"
            self.index += 1
            items = []
            while self.peek() != ("punct", close):
                items.append(self.value())
                if self.peek() != ("punct", close):
                    self.take(",")
            self.take(close)
            return items if close == "]" else tuple(items)
        found = "the end" if kind == "end" else repr(value)
        raise ValueError(f"expected a list, a tuple, a string or a number, found {found}")

    def genotype(self) -> dict[str, Any]:
        if self.peek() != ("name", "Genotype"):
            raise ValueError("a genotype starts with 'Genotype('")
        self.index += 1
        self.take("(")
        fields: dict[str, Any] = {}
        while self.peek() != ("punct", ")"):
            kind, key = self.peek()
            if kind != "name":
                raise ValueError(f"expected a field name such as normal=, found {key!r}")
            self.index += 1
            self.take("=")
            if key in fields:
                raise ValueError(f"field {key!r} is given twice")
            fields[key] = self.value()
            if self.peek() != ("punct", ")"):
                self.take(",")
        self.take(")")
        if self.peek()[0] != "end":
            raise ValueError(f"unexpected {self.peek()[1]!r} after the closing parenthesis")
        return fields


def parse_genotype(text: str) -> Genotype:
    """The genotype written in DARTS's notation; ValueError names the first defect."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise ValueError(f"a genotype is a string of at most {MAX_LENGTH} characters")
    if not text.strip().startswith("Genotype("):
        raise ValueError("a genotype starts with 'Genotype(' (DARTS's notation)")
    fields = _Parser(text).genotype()
    wanted = ("normal", "normal_concat", "reduce", "reduce_concat")
    unknown = sorted(set(fields) - set(wanted))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; a genotype has {', '.join(wanted)}")
    missing = [k for k in wanted if k not in fields]
    if missing:
        raise ValueError(f"the genotype lacks {missing[0]}=")
    cells = {kind: _cell(kind, fields[kind]) for kind in CELL_KINDS}
    concat = {kind: _concat(kind, fields[f"{kind}_concat"]) for kind in CELL_KINDS}
    return Genotype(cells["normal"], concat["normal"], cells["reduce"], concat["reduce"])


def _cell(kind: str, entries: Any) -> Pairs:
    """The validated ``(op, input)`` pairs of one cell: two per node, inputs in range."""
    if not isinstance(entries, list):
        raise ValueError(f"{kind}= must be a list of (op, input) pairs")
    pairs = []
    for position, entry in enumerate(entries):
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise ValueError(f"{kind} entry {position + 1} is not an (op, input) pair: {entry!r}")
        op, src = entry
        if not isinstance(op, str) or not isinstance(src, int):
            raise ValueError(f"{kind} entry {position + 1} must be ('op', input), got {entry!r}")
        if op not in OPS:
            raise ValueError(f"unknown op {op!r} in {kind}; ops: {', '.join(OPS[1:])}")
        if op == "none":
            raise ValueError(f"op 'none' in {kind}: a kept input needs a real op")
        pairs.append((op, src))
    if len(pairs) != 2 * NODES:
        node, inputs = divmod(len(pairs), 2)
        detail = f"node {node + 2} has {inputs} input" if inputs else f"it has {node} nodes"
        raise ValueError(
            f"{kind} has {len(pairs)} (op, input) pairs ({detail}): each of the {NODES} "
            "nodes needs exactly 2"
        )
    for node in range(NODES):
        sources = [src for _, src in pairs[2 * node : 2 * node + 2]]
        for src in sources:
            if not 0 <= src < node + 2:
                raise ValueError(
                    f"{kind} node {node + 2} reads input {src}, out of range: "
                    f"it may read 0..{node + 1}"
                )
        if sources[0] == sources[1]:
            raise ValueError(f"{kind} node {node + 2} reads input {sources[0]} twice")
    return tuple(pairs)


def _concat(kind: str, values: Any) -> tuple[int, ...]:
    """The nodes a cell concatenates: DARTS's cells concatenate every intermediate node."""
    full = list(range(2, 2 + NODES))
    if not isinstance(values, list | tuple) or list(values) != full:
        raise ValueError(f"{kind}_concat must be {full} (every intermediate node), got {values!r}")
    return tuple(values)
