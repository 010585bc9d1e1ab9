"""Judge a search in seconds: score what it found against the NAS-Bench-201 table.

    python benchmarks/search_quality.py --preset cpu --seeds 0 1 2 -- --data-root ../shared/data

For each seed, one at a time: ``bayesnas search <flags> --seed S --out OUT/seed-S``, then
``bayesnas sample --run OUT/seed-S --n N --seed S <sample args>``, each timed; then the run is
scored against the table of CIFAR-10 validation accuracies (200 epochs) of all 15,625 NB201
cells (``../shared/nb201/cifar10-valid.tsv``, its README beside it) instead of retraining what
it found. Per seed it prints and appends one JSON line to the results file (OUT/results.jsonl)
as soon as the seed is measured, so an interrupted sweep keeps every finished seed:

- the mode of q (most probable op per edge of the final posterior) and the found cell (rank 1
  of this call's samples.jsonl rows, which ``sample`` ranks by its ``--score``: by default
  val_acc on the search's validation split, then val_nll): NB201 string, table accuracy and
  rank (1 = best; tied cells share the better rank, as lookup.py counts);
- distinct cells among the n draws of ``sample`` (after its canonicalisation) and among 100
  categorical draws from q's gate logits (canonicalised the same way; raw strings too);
- q's expected table accuracy and its share of draws in the table's top 1 % and top 5 %, from
  10,000 seeded categorical draws (and exactly, summed over the table, when it is complete);
- Kendall tau-b of the sample's ranking score (``score``, or val_acc) against the table over
  the distinct cells (null under 3 cells).

At the end: one row per seed, their mean and worst, and the table's reference points. The
table is read here only: the package never reads it (tests/test_table_isolation.py).

Everything after ``--`` (and any flag this script does not know) goes to ``bayesnas search``
verbatim; ``--preset P`` is forwarded too. Pass extra ``sample`` flags one token or one quoted
group per ``--sample-arg``: ``--sample-arg=--top-k --sample-arg=0`` or
``--sample-arg='--bn recalibrate'``. ``--reuse`` keeps a seed's finished search (resumes an
unfinished one) and only samples and scores it again. The command output of each step goes to
OUT/logs/seed-S-{search,sample}.log (``--verbose``: to stderr instead).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bayesnas.spaces.nb201 import cell as nb201_cell

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = REPO / ".." / "shared" / "nb201" / "cifar10-valid.tsv"
DEFAULT_RESULTS_ROOT = REPO / "benchmarks" / "results" / "search_quality"
Q_DRAWS = 10_000  # categorical draws from q for its expected accuracy and top-p shares
Q_DISTINCT_DRAWS = 100  # draws from q whose distinct cells are counted
TOP_PERCENTS = (1, 5)
NUM_EDGES, NUM_OPS = len(nb201_cell.EDGES), len(nb201_cell.OPS)
# flags of `bayesnas search` that this script sets per seed
OWN_SEARCH_FLAGS = ("--seed", "--out", "--resume", "--force")
# search flags that do not change what is searched: left out of a derived label
LABEL_SKIPS = ("--data-root", "--device", "--progress", "--no-progress", "--workers")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Table:
    """The NB201 table: accuracy per cell string, and the order of accuracies (best first)."""

    path: Path
    accuracy: dict[str, float]
    ops: np.ndarray  # [cells, 6] op index per edge, in the order of ``accuracies``
    accuracies: np.ndarray  # [cells], the table's order
    best_first: np.ndarray  # [cells], sorted descending

    def __len__(self) -> int:
        return len(self.accuracy)

    def lookup(self, arch: str) -> float:
        """Table accuracy of an NB201 string; ValueError when the table lacks it."""
        try:
            return self.accuracy[arch]
        except KeyError:
            raise ValueError(f"{arch!r} is not in the table {self.path}") from None

    def rank(self, accuracy: float) -> int:
        """1 + the number of cells strictly better (tied cells share the better rank)."""
        return int(np.count_nonzero(self.best_first > accuracy)) + 1

    def top_rank(self, percent: float) -> int:
        """The last rank inside the table's top ``percent`` %."""
        return max(1, math.ceil(percent / 100 * len(self)))

    def threshold(self, percent: float) -> float:
        """The accuracy from which a cell is in the top ``percent`` %."""
        return float(self.best_first[self.top_rank(percent) - 1])

    def median(self) -> float:
        return float(np.median(self.accuracies))

    def complete(self) -> bool:
        """Whether the table holds every one of the 5^6 cells."""
        return len(self) == NUM_OPS**NUM_EDGES


def load_table(path: Path) -> Table:
    """Read a table of ``arch<TAB>accuracy`` lines under a header; every arch must be an NB201
    string, each once."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"no NB201 table at {path}: pass --table")
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("arch\t"):
        raise SystemExit(f"{path}: expected a header line 'arch<TAB>...'")
    accuracy: dict[str, float] = {}
    ops = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            arch, value = line.split("\t")
            ops.append(nb201_cell.from_string(arch))
            acc = float(value)
        except ValueError as exc:
            raise SystemExit(f"{path}:{number}: not 'arch<TAB>accuracy' ({exc})") from None
        if arch in accuracy:
            raise SystemExit(f"{path}:{number}: {arch} appears twice")
        accuracy[arch] = acc
    if not accuracy:
        raise SystemExit(f"{path} holds no cells")
    values = np.array(list(accuracy.values()), dtype=np.float64)
    return Table(
        path=path,
        accuracy=accuracy,
        ops=np.array(ops, dtype=np.int64),
        accuracies=values,
        best_first=np.sort(values)[::-1],
    )


def describe(table: Table, arch: str) -> dict[str, Any]:
    """The table's accuracy and rank of ``arch``."""
    acc = table.lookup(arch)
    return {"arch": arch, "acc": acc, "rank": table.rank(acc)}


# --------------------------------------------------------------------------- q statistics


def q_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax per edge of ``[6, 5]`` gate logits, in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape != (NUM_EDGES, NUM_OPS):
        raise ValueError(f"expected nb201 gate logits of shape (6, 5), got {logits.shape}")
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def mode_string(logits: np.ndarray) -> str:
    """The most probable op per edge (the first on ties, as torch's argmax) as an NB201 string."""
    ops = np.asarray(logits).argmax(axis=-1)
    return nb201_cell.to_string(tuple(int(op) for op in ops))


def draw_cells(logits: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` cells ``[n, 6]`` (op index per edge) drawn from q's per-edge categoricals."""
    probs = q_probabilities(logits)
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(NUM_OPS, size=n, p=probs[e]) for e in range(NUM_EDGES)], axis=1)


def cell_strings(cells: np.ndarray, canonical: bool = False) -> list[str]:
    """NB201 strings of ``[n, 6]`` op indices (optionally canonicalised as ``sample`` does)."""
    strings: dict[tuple[int, ...], str] = {}
    out = []
    for row in cells:
        ops = tuple(int(op) for op in row)
        if ops not in strings:
            key = nb201_cell.canonical_ops(ops) if canonical else ops
            strings[ops] = nb201_cell.to_string(key)
        out.append(strings[ops])
    return out


def distinct_draws(logits: np.ndarray, n: int, seed: int) -> dict[str, int]:
    """Distinct cells among ``n`` draws from q: canonical (as ``sample`` groups) and raw."""
    cells = draw_cells(logits, n, seed)
    return {
        "canonical": len(set(cell_strings(cells, canonical=True))),
        "raw": len(set(cell_strings(cells))),
    }


def q_statistics(logits: np.ndarray, table: Table, draws: int, seed: int) -> dict[str, Any]:
    """q's expected table accuracy and share in the top 1 % / 5 %, from ``draws`` seeded draws
    (and exactly, summed over the table, when it holds all 15,625 cells)."""
    cells = draw_cells(logits, draws, seed)
    counts: dict[str, int] = {}
    for arch in cell_strings(cells):
        counts[arch] = counts.get(arch, 0) + 1
    stats: dict[str, Any] = {"q_draws": draws, "q_draws_distinct": len(counts)}
    expected = 0.0
    top = {p: 0 for p in TOP_PERCENTS}
    for arch, count in counts.items():
        acc = table.lookup(arch)
        expected += count / draws * acc
        rank = table.rank(acc)
        for p in TOP_PERCENTS:
            top[p] += count if rank <= table.top_rank(p) else 0
    stats["q_expected_acc"] = expected
    for p in TOP_PERCENTS:
        stats[f"q_top{p}_share"] = top[p] / draws
    exact: dict[str, float | None] = {"q_expected_acc_exact": None}
    exact |= {f"q_top{p}_mass_exact": None for p in TOP_PERCENTS}
    if table.complete():
        probs = q_probabilities(logits)
        mass = np.prod(probs[np.arange(NUM_EDGES), table.ops], axis=1)  # q of every table cell
        exact["q_expected_acc_exact"] = float(np.sum(mass * table.accuracies) / mass.sum())
        for p in TOP_PERCENTS:
            inside = table.accuracies >= table.threshold(p)
            exact[f"q_top{p}_mass_exact"] = float(mass[inside].sum() / mass.sum())
    return stats | exact


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two rankings, ties in either corrected for (scipy's definition):
    (C - D) / sqrt((n0 - n1)(n0 - n2)), n0 the pairs, n1 / n2 those tied in x / in y. None
    when fewer than 2 values or one side is all tied."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equally long 1-d sequences, got {a.shape} and {b.shape}")
    i, j = np.triu_indices(len(a), k=1)
    # comparisons, not differences: -inf scores (a proxy of a network without signal) tie
    dx = (a[i] > a[j]).astype(np.int8) - (a[i] < a[j]).astype(np.int8)
    dy = (b[i] > b[j]).astype(np.int8) - (b[i] < b[j]).astype(np.int8)
    pairs = len(i)
    untied_x, untied_y = pairs - np.count_nonzero(dx == 0), pairs - np.count_nonzero(dy == 0)
    if untied_x == 0 or untied_y == 0:
        return None
    return float(np.sum(dx * dy) / math.sqrt(untied_x * untied_y))


# --------------------------------------------------------------------------- a finished run


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete JSON rows of a JSON-lines file ([] if absent); torn lines are skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def call_rows(samples: Path, before: int, seed: int, n: int) -> list[dict[str, Any]]:
    """The rows one ``sample`` call appended to samples.jsonl after its first ``before`` rows:
    ranked 1, 2, ... by ``sample`` (val_acc, then val_nll), one per distinct cell."""
    rows = read_jsonl(samples)[before:]
    if not rows:
        raise RuntimeError(f"{samples}: the sample call appended no rows")
    if [r.get("rank") for r in rows] != list(range(1, len(rows) + 1)):
        raise RuntimeError(f"{samples}: the new rows are not ranked 1..{len(rows)}")
    if any(r.get("seed") != seed or r.get("n") != n for r in rows):
        raise RuntimeError(f"{samples}: the new rows are not of seed {seed} and n {n}")
    return rows


def load_gate_logits(run_dir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """q's gate logits ``[6, 5]`` from posterior.pt, read as data only by the package's loader,
    and the payload's plain facts (config, mode, its supernet score, search seconds)."""
    from bayesnas import rundir  # torch: imported only for a run

    payload = rundir.load_torch(run_dir / rundir.POSTERIOR, "posterior")
    if payload.get("space") != "nb201":
        raise SystemExit(f"{run_dir} searched space {payload.get('space')!r}; the table is nb201")
    logits = payload["gate_logits"].detach().double().numpy()
    facts = {k: payload.get(k) for k in ("config", "mode", "mode_val_acc", "seconds")}
    return logits, facts


def seed_record(
    logits: np.ndarray, rows: list[dict[str, Any]], table: Table, seed: int
) -> dict[str, Any]:
    """Everything the table says about one seed's posterior and its ranked samples."""
    mode = describe(table, mode_string(logits))
    probs = q_probabilities(logits)
    found_row = rows[0]
    found = describe(table, found_row["architecture"])
    key = "score" if "score" in found_row else "val_acc"  # what `sample --score` ranked by
    scored = [r for r in rows if isinstance(r.get(key), (int, float))]
    tau = None
    if len(scored) >= 3:
        tau = kendall_tau_b(
            [r[key] for r in scored], [table.lookup(r["architecture"]) for r in scored]
        )
    q100 = distinct_draws(logits, Q_DISTINCT_DRAWS, seed)
    return {
        "mode_arch": mode["arch"],
        "mode_acc": mode["acc"],
        "mode_rank": mode["rank"],
        "mode_q_prob": float(np.prod(probs.max(axis=-1))),  # near 5^-6 when q is still flat
        "found_arch": found["arch"],
        "found_acc": found["acc"],
        "found_rank": found["rank"],
        "found_val_acc": found_row.get("val_acc"),
        "found_draws": found_row.get("draws"),
        "sample_draws": sum(int(r.get("draws", 1)) for r in rows),
        "sample_distinct": len(rows),
        "q100_distinct": q100["canonical"],
        "q100_distinct_raw": q100["raw"],
        **q_statistics(logits, table, Q_DRAWS, seed),
        "tau_b": tau,
        "tau_cells": len(scored),
        "tau_score": found_row.get("score_by", "inherited") if key == "score" else "val_acc",
    }


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` in one write, flushed and fsynced; a torn last line
    left by a killed writer is ended first, so that this line stays whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- printing


def reference_lines(table: Table) -> list[str]:
    """The table's reference points, computed from it."""
    conv3 = nb201_cell.to_string((nb201_cell.CONV3,) * NUM_EDGES)
    best = max(table.accuracy, key=table.accuracy.__getitem__)
    lines = [f"table {table.path.resolve()}: {len(table)} cells"]
    lines.append(f"  best            {table.accuracy[best]:6.2f}  {best}")
    for p in TOP_PERCENTS:
        lines.append(
            f"  top {p} % from    {table.threshold(p):6.2f}  (rank <= {table.top_rank(p)})"
        )
    lines.append(f"  median          {table.median():6.2f}")
    if conv3 in table.accuracy:
        c = describe(table, conv3)
        lines.append(f"  all-conv3x3     {c['acc']:6.2f}  rank {c['rank']}  {conv3}")
    return lines


def seed_lines(record: dict[str, Any]) -> list[str]:
    """What one seed's record says, in a few lines."""
    search = record["search_seconds"]
    took = "reused" if search is None else f"{search:.1f} s"
    tau = "n/a (< 3 cells)" if record["tau_b"] is None else f"{record['tau_b']:+.3f}"
    exact = record["q_expected_acc_exact"]
    exact_text = "" if exact is None else f" (exact {exact:.2f})"
    return [
        f"seed {record['seed']}: search {took}, sample {record['sample_seconds']:.1f} s, "
        f"run {record['run_dir']}",
        f"  mode of q    {record['mode_acc']:6.2f}  rank {record['mode_rank']:>5}  "
        f"{record['mode_arch']}  (q {record['mode_q_prob']:.2g})",
        f"  found top-1  {record['found_acc']:6.2f}  rank {record['found_rank']:>5}  "
        f"{record['found_arch']}  (sample val_acc {record['found_val_acc']})",
        f"  distinct     {record['sample_distinct']} of {record['sample_draws']} sampled draws; "
        f"{record['q100_distinct']} of {Q_DISTINCT_DRAWS} draws from q "
        f"({record['q100_distinct_raw']} raw)",
        f"  q            E[acc] {record['q_expected_acc']:.2f}{exact_text}, "
        f"top 1 % {100 * record['q_top1_share']:.1f} %, "
        f"top 5 % {100 * record['q_top5_share']:.1f} % of {record['q_draws']} draws",
        f"  Kendall tau-b ({record['tau_score']} vs table, {record['tau_cells']} cells): {tau}",
    ]


# (column, header, format, worst: min | max | None)
COLUMNS = (
    ("search_seconds", "search_s", "{:.1f}", None),
    ("sample_seconds", "sample_s", "{:.1f}", None),
    ("mode_acc", "mode_acc", "{:.2f}", "min"),
    ("mode_rank", "mode_rank", "{:.0f}", "max"),
    ("found_acc", "found_acc", "{:.2f}", "min"),
    ("found_rank", "found_rank", "{:.0f}", "max"),
    ("sample_distinct", "distinct", "{:.1f}", None),
    ("q100_distinct", "q100_dist", "{:.1f}", None),
    ("q_expected_acc", "Eq_acc", "{:.2f}", "min"),
    ("q_top1_share", "q_top1", "{:.3f}", "min"),
    ("q_top5_share", "q_top5", "{:.3f}", "min"),
    ("tau_b", "tau_b", "{:+.3f}", "min"),
)


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """One row per seed, then the mean and the worst over seeds (min accuracy, max rank)."""
    header = ["seed", *(c[1] for c in COLUMNS)]
    table = [header]
    for r in records:
        cells = [str(r["seed"])]
        for key, _, fmt, _ in COLUMNS:
            cells.append("-" if r.get(key) is None else fmt.format(r[key]))
        table.append(cells)
    for label in ("mean", "worst"):
        cells = [label]
        for key, _, fmt, worst in COLUMNS:
            values = [r[key] for r in records if r.get(key) is not None]
            if not values or (label == "worst" and worst is None):
                cells.append("-")
                continue
            if label == "mean":
                value = float(np.mean(values))
            else:
                value = min(values) if worst == "min" else max(values)
            cells.append(fmt.format(value))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in table]


# --------------------------------------------------------------------------- running


def derive_label(search_args: Sequence[str]) -> str:
    """A folder name from the search flags (data root, device, progress left out)."""
    items: list[str] = []
    skip_value = False
    for token in search_args:
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            skip_value = name in LABEL_SKIPS and not eq
            if name in LABEL_SKIPS:
                continue
            items.append(name[2:] + (f"-{value}" if eq else ""))
        elif skip_value:
            skip_value = False
        elif items:
            items[-1] += f"-{token}"
        else:
            items.append(token)
    label = "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", item).strip("-") for item in items)
    if not label:
        return "default"
    if len(label) > 60:
        digest = hashlib.sha1(" ".join(search_args).encode()).hexdigest()[:8]
        label = f"{label[:51].rstrip('-_.')}-{digest}"
    return label


def run_command(command: list[str], log: Path | None) -> float:
    """Run ``command`` (inheriting the environment), its output to ``log`` (None: stderr);
    return its wall time in seconds; RuntimeError when it fails."""
    started = time.perf_counter()
    if log is None:
        code = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr).returncode
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        tail = "" if log is None else "\n" + "\n".join(log.read_text().splitlines()[-15:])
        where = "" if log is None else f" (log {log})"
        raise RuntimeError(f"`{shlex.join(command)}` exited with {code}{where}{tail}")
    return seconds


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's options, and the flags for ``bayesnas search`` (after ``--``, unknown
    flags, and ``--preset``)."""
    argv = list(argv)
    verbatim: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, verbatim = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        usage="%(prog)s [options] [-- bayesnas search flags]",
        allow_abbrev=False,  # else search's --seed would be taken for --seeds
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="search seeds [0]")
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="NB201 table (.tsv)")
    parser.add_argument("--label", help="name of the output folder [derived from search flags]")
    parser.add_argument("--out", type=Path, help=f"output folder [{DEFAULT_RESULTS_ROOT}/LABEL]")
    parser.add_argument("--results", type=Path, help="JSON-lines file [OUT/results.jsonl]")
    parser.add_argument("--n", type=int, default=20, help="architectures `sample` draws [20]")
    parser.add_argument(
        "--sample-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `bayesnas sample` flag(s), shell-split; repeatable: --sample-arg=--top-k "
        "--sample-arg=0",
    )
    parser.add_argument("--preset", help="forwarded to `bayesnas search --preset`")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a seed's finished search (resume an unfinished one); sample and score again",
    )
    parser.add_argument("--verbose", action="store_true", help="command output to stderr")
    args, unknown = parser.parse_known_args(argv)
    search_args = unknown + verbatim
    if args.preset is not None:
        if any(a == "--preset" or a.startswith("--preset=") for a in search_args):
            parser.error("--preset given twice")
        search_args = ["--preset", args.preset, *search_args]
    own = [a for a in search_args if a.partition("=")[0] in OWN_SEARCH_FLAGS]
    if own:
        parser.error(f"{', '.join(own)}: set per seed by this script; use --seeds and --out")
    if args.n < 1:
        parser.error("--n must be at least 1")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds holds a seed twice")
    args.sample_args = [token for group in args.sample_arg for token in shlex.split(group)]
    args.label = args.label or derive_label(search_args)
    args.out = args.out or DEFAULT_RESULTS_ROOT / args.label
    args.results = args.results or args.out / "results.jsonl"
    return args, search_args


def progress(message: str) -> None:
    print(f"[search_quality] {message}", file=sys.stderr, flush=True)


def device_flag(search_args: Sequence[str]) -> list[str]:
    """The --device of the search flags, for a resumed search."""
    for index, token in enumerate(search_args):
        if token.startswith("--device="):
            return [token]
        if token == "--device" and index + 1 < len(search_args):
            return ["--device", search_args[index + 1]]
    return []


def measure_seed(
    args: argparse.Namespace, search_args: list[str], table: Table, seed: int, of: str
) -> dict[str, Any]:
    """Search (unless reused), sample and score one seed; returns its results record."""
    from bayesnas import rundir

    run_dir: Path = args.out / f"seed-{seed}"
    logs = None if args.verbose else args.out / "logs"
    bayesnas = [sys.executable, "-m", "bayesnas"]
    finished = (run_dir / rundir.POSTERIOR).is_file()
    started = args.reuse and (run_dir / rundir.CONFIG).is_file()
    search_seconds = None
    if args.reuse and finished:
        progress(f"seed {seed} ({of}): reusing the finished search in {run_dir}")
    else:
        if started:
            command = [*bayesnas, "search", "--resume", str(run_dir), *device_flag(search_args)]
        else:
            command = [*bayesnas, "search", *search_args, "--seed", str(seed)]
            command += ["--out", str(run_dir)]
        verb = "resuming" if started else "searching"
        progress(f"seed {seed} ({of}): {verb} -> {run_dir}")
        search_seconds = run_command(command, logs and logs / f"seed-{seed}-search.log")
    samples = run_dir / rundir.SAMPLES
    before = len(read_jsonl(samples))
    command = [*bayesnas, "sample", "--run", str(run_dir), "--n", str(args.n)]
    command += ["--seed", str(seed), *args.sample_args]
    took = "" if search_seconds is None else f" (search {search_seconds:.1f} s)"
    progress(f"seed {seed} ({of}): sampling {args.n}{took}")
    sample_seconds = run_command(command, logs and logs / f"seed-{seed}-sample.log")
    rows = call_rows(samples, before, seed, args.n)
    logits, facts = load_gate_logits(run_dir)
    record: dict[str, Any] = {
        "label": args.label,
        "seed": seed,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "reused": search_seconds is None,
        "resumed": bool(started and not finished),
        "search_seconds": search_seconds,
        "sample_seconds": sample_seconds,
        "search_seconds_in_run": facts["seconds"],
        "n": args.n,
        "search_args": search_args,
        "sample_args": args.sample_args,
        "table": str(table.path.resolve()),
        "mode_supernet_val_acc": facts["mode_val_acc"],
        **seed_record(logits, rows, table, seed),
        "gate_logits": logits.tolist(),
        "search_config": facts["config"],
    }
    if facts["mode"] is not None and facts["mode"] != record["mode_arch"]:
        progress(f"seed {seed}: note: posterior.pt names mode {facts['mode']}")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args, search_args = parse_args(sys.argv[1:] if argv is None else argv)
    table = load_table(args.table)
    if not args.reuse:
        held = [
            f"seed-{s}"
            for s in args.seeds
            if (args.out / f"seed-{s}").is_dir() and any((args.out / f"seed-{s}").iterdir())
        ]
        if held:
            raise SystemExit(
                f"{args.out} already holds {', '.join(held)}: pass --reuse to keep those "
                "searches, or choose another --out / --label"
            )
    progress(f"bayesnas search {shlex.join(search_args)}; results -> {args.results}")
    records = []
    for index, seed in enumerate(args.seeds, start=1):
        try:
            record = measure_seed(args, search_args, table, seed, f"{index}/{len(args.seeds)}")
        except RuntimeError as exc:
            progress(f"seed {seed}: failed: {exc}")
            break
        append_result(args.results, record)
        records.append(record)
        print("\n".join(seed_lines(record)), flush=True)
        progress(
            f"seed {seed} ({index}/{len(args.seeds)}): done; found {record['found_acc']:.2f} "
            f"(rank {record['found_rank']}), mode {record['mode_acc']:.2f}"
        )
    if records:
        print()
        print("\n".join(summary_lines(records)))
    print()
    print("\n".join(reference_lines(table)))
    print(f"results: {args.results}")
    return 0 if len(records) == len(args.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
