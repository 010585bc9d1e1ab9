"""benchmarks/search_quality.py: its pure functions on small generated tables, and its sweep
with the two bayesnas commands faked (no search is run)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from bayesnas.spaces.nb201.cell import CONV3, to_string

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_quality.py"
CONV3_CELL = to_string((CONV3,) * 6)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("search_quality", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


sq = _load()


def write_table(path: Path, cells: dict[str, float]) -> Path:
    lines = ["arch\tcifar10_valid_acc"] + [f"{a}\t{acc:.4f}" for a, acc in cells.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def small_cells() -> dict[str, float]:
    """200 cells: the all-conv3x3 cell best (95), two tied at 90, the rest 40..79.8."""
    ops = [o for o in itertools.product(range(5), repeat=6) if o != (CONV3,) * 6][:199]
    cells = {CONV3_CELL: 95.0}
    for index, o in enumerate(ops):
        cells[to_string(o)] = 90.0 if index < 2 else 40.0 + 0.2 * index
    return cells


@pytest.fixture
def table(tmp_path: Path) -> Any:
    return sq.load_table(write_table(tmp_path / "table.tsv", small_cells()))


def one_hot_logits(arch: str) -> np.ndarray:
    """Gate logits that put all of q on ``arch`` (the others pinned as pruning pins them)."""
    from bayesnas.spaces.nb201.cell import from_string

    logits = np.full((6, 5), -1e4)
    logits[np.arange(6), from_string(arch)] = 0.0
    return logits


def brute_tau_b(x: list[float], y: list[float]) -> float:
    """Tau-b pair by pair, as ../shared/nb201/lookup.py counts it."""
    c = d = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx * dy > 0:
                c += 1
            else:
                d += 1
    return (c - d) / math.sqrt((c + d + tx) * (c + d + ty))


# --------------------------------------------------------------------------- tau-b


def test_tau_b_of_a_hand_computed_example_with_ties() -> None:
    # pairs of x = 1 2 2 3, y = 1 3 2 2: (0,1) (0,2) (0,3) concordant, (1,3) discordant,
    # (1,2) tied in x only, (2,3) tied in y only: (3 - 1) / sqrt((6 - 1) * (6 - 1)) = 0.4
    assert sq.kendall_tau_b([1, 2, 2, 3], [1, 3, 2, 2]) == pytest.approx(0.4)
    # a pair tied in both counts in both corrections: 2 / sqrt((3 - 1) * (3 - 1)) = 1
    assert sq.kendall_tau_b([1, 1, 2], [1, 1, 3]) == pytest.approx(1.0)
    assert sq.kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_tau_b_counts_minus_infinity_as_the_lowest_score() -> None:
    inf = float("-inf")  # NASWOT of a cell that passes no signal
    assert sq.kendall_tau_b([inf, 1, 2], [1, 2, 3]) == pytest.approx(1.0)
    assert sq.kendall_tau_b([inf, inf, 2], [1, 1, 3]) == pytest.approx(1.0)  # a tie, not NaN


def test_tau_b_is_none_when_a_side_is_all_tied() -> None:
    assert sq.kendall_tau_b([1, 1, 1], [1, 2, 3]) is None
    assert sq.kendall_tau_b([1], [2]) is None


def test_tau_b_matches_the_pairwise_count() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 4, 12).tolist(), rng.integers(0, 4, 12).tolist()
        assert sq.kendall_tau_b(x, y) == pytest.approx(brute_tau_b(x, y))


# --------------------------------------------------------------------------- the table


def test_table_ranks_share_the_better_rank_on_ties(table: Any) -> None:
    assert len(table) == 200
    assert sq.describe(table, CONV3_CELL) == {"arch": CONV3_CELL, "acc": 95.0, "rank": 1}
    tied = [a for a, acc in table.accuracy.items() if acc == 90.0]
    assert [sq.describe(table, a)["rank"] for a in tied] == [2, 2]
    assert table.rank(79.8) == 4  # three cells above it
    assert table.top_rank(1) == 2 and table.threshold(1) == 90.0
    assert table.top_rank(5) == 10
    with pytest.raises(ValueError, match="not in the table"):
        table.lookup("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|x")


def test_the_reference_lines_are_computed_from_the_table(table: Any) -> None:
    text = "\n".join(sq.reference_lines(table))
    assert "200 cells" in text and "all-conv3x3      95.00  rank 1" in text
    assert "top 1 % from     90.00  (rank <= 2)" in text
    assert f"median          {table.median():6.2f}" in text


def test_a_table_of_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("arch\tacc\nnot-a-cell\t1.0\n")
    with pytest.raises(SystemExit, match="bad.tsv:2"):
        sq.load_table(path)


def test_the_default_table_is_beside_the_repository() -> None:
    beside = SCRIPT.parents[2].joinpath("shared", "nb201", "cifar10-valid.tsv")
    assert beside.resolve() == sq.DEFAULT_TABLE.resolve()  # ../shared may be a symbolic link


# --------------------------------------------------------------------------- q statistics


def test_a_one_hot_q_gives_its_cells_accuracy_and_all_or_nothing_shares(table: Any) -> None:
    best = sq.q_statistics(one_hot_logits(CONV3_CELL), table, draws=1000, seed=3)
    assert best["q_expected_acc"] == 95.0
    assert best["q_top1_share"] == 1.0 and best["q_top5_share"] == 1.0
    assert best["q_draws_distinct"] == 1
    assert best["q_expected_acc_exact"] is None  # the table is not complete
    low = next(a for a, acc in table.accuracy.items() if acc == 60.0)
    worse = sq.q_statistics(one_hot_logits(low), table, draws=1000, seed=3)
    assert worse["q_expected_acc"] == 60.0
    assert worse["q_top1_share"] == 0.0 and worse["q_top5_share"] == 0.0
    assert sq.mode_string(one_hot_logits(low)) == low
    assert sq.distinct_draws(one_hot_logits(low), 100, 0) == {"canonical": 1, "raw": 1}


def test_q_statistics_are_exact_on_a_complete_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cells = {
        to_string(o): float(v)
        for o, v in zip(
            itertools.product(range(5), repeat=6), rng.uniform(10, 90, 5**6), strict=True
        )
    }
    cells[CONV3_CELL] = 95.0
    table = sq.load_table(write_table(tmp_path / "full.tsv", cells))
    assert table.complete()
    one = sq.q_statistics(one_hot_logits(CONV3_CELL), table, draws=100, seed=0)
    assert one["q_expected_acc_exact"] == 95.0
    assert one["q_top1_mass_exact"] == 1.0 and one["q_top5_mass_exact"] == 1.0
    flat = sq.q_statistics(np.zeros((6, 5)), table, draws=10_000, seed=0)
    assert flat["q_expected_acc_exact"] == pytest.approx(table.accuracies.mean())
    assert flat["q_expected_acc"] == pytest.approx(flat["q_expected_acc_exact"], abs=1.0)
    assert flat["q_top1_mass_exact"] == pytest.approx(157 / 5**6)
    assert flat["q_top1_share"] == pytest.approx(0.01, abs=0.005)


def test_draws_from_q_are_seeded_and_follow_its_probabilities() -> None:
    logits = np.log(np.tile([0.1, 0.2, 0.3, 0.4, 1e-300], (6, 1)))
    a, b = sq.draw_cells(logits, 4000, 7), sq.draw_cells(logits, 4000, 7)
    assert (a == b).all() and a.shape == (4000, 6)
    assert 4 not in a
    assert np.bincount(a[:, 0], minlength=5)[:4] / 4000 == pytest.approx(
        [0.1, 0.2, 0.3, 0.4], abs=0.03
    )


def test_a_seed_record_reads_rank_1_and_correlates_the_scores(table: Any) -> None:
    cells = list(table.accuracy)[:4]  # accuracies 95, 90, 90, 40.4
    rows = [
        {"rank": r, "architecture": a, "val_acc": v, "draws": 1}
        for r, (a, v) in enumerate(zip(cells, [0.9, 0.8, 0.7, 0.6], strict=True), start=1)
    ]
    record = sq.seed_record(one_hot_logits(cells[3]), rows, table, seed=0)
    assert record["found_arch"] == cells[0] and record["found_acc"] == 95.0
    assert record["found_rank"] == 1 and record["found_val_acc"] == 0.9
    assert record["mode_arch"] == cells[3] and record["mode_acc"] == table.accuracy[cells[3]]
    assert record["mode_q_prob"] == 1.0
    assert record["sample_distinct"] == 4 and record["sample_draws"] == 4
    assert record["tau_b"] == pytest.approx(brute_tau_b([0.9, 0.8, 0.7, 0.6], [95, 90, 90, 40.4]))
    assert sq.seed_record(one_hot_logits(cells[3]), rows[:2], table, 0)["tau_b"] is None


# --------------------------------------------------------------------------- results file


def test_append_result_adds_one_whole_line_per_call(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "results.jsonl"
    sq.append_result(path, {"seed": 0, "tau_b": None})
    sq.append_result(path, {"seed": 1, "tau_b": 0.5})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"seed": 0, "tau_b": None},
        {"seed": 1, "tau_b": 0.5},
    ]
    path.write_text(path.read_text() + '{"seed": 2, "ta')  # a writer killed mid-line
    sq.append_result(path, {"seed": 3})
    assert [r["seed"] for r in sq.read_jsonl(path)] == [0, 1, 3]
    with pytest.raises(ValueError):
        sq.append_result(path, {"tau_b": float("nan")})


def test_call_rows_are_the_rows_this_call_appended(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    earlier = [{"rank": 1, "seed": 0, "n": 9}]
    new = [{"rank": 1, "seed": 2, "n": 5}, {"rank": 2, "seed": 2, "n": 5}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in earlier + new))
    assert sq.call_rows(samples, 1, seed=2, n=5) == new
    with pytest.raises(RuntimeError, match="appended no rows"):
        sq.call_rows(samples, 3, seed=2, n=5)


# --------------------------------------------------------------------------- flags


def test_flags_split_between_the_script_and_search() -> None:
    args, search = sq.parse_args(
        ["--seeds", "0", "1", "--preset", "cpu", "--epochs", "2", "--sample-arg=--top-k 0"]
        + ["--", "--data-root", "../shared/data", "--n", "3"]
    )
    assert args.seeds == [0, 1] and args.n == 20
    forwarded = ["--preset", "cpu", "--epochs", "2", "--data-root", "../shared/data", "--n", "3"]
    assert search == forwarded
    assert args.sample_args == ["--top-k", "0"]
    assert args.label == "preset-cpu_epochs-2_n-3"  # the data root is left out of the label
    assert args.out == sq.DEFAULT_RESULTS_ROOT / args.label
    assert args.results == args.out / "results.jsonl"


@pytest.mark.parametrize("flag", ["--seed", "--out", "--force", "--seed=3"])
def test_flags_the_script_sets_per_seed_are_refused(flag: str) -> None:
    with pytest.raises(SystemExit):
        sq.parse_args(["--seeds", "0", "--", flag, "1"])


def test_a_long_label_is_shortened_with_a_digest() -> None:
    label = sq.derive_label(["--dataset", "fashion-mnist", "--space", "nb201"] + ["--cells", "1"])
    assert label == "dataset-fashion-mnist_space-nb201_cells-1"
    long = sq.derive_label([f"--flag-{i}" for i in range(20)])
    assert len(long) <= 60 and not long[:-9].endswith(("-", "_"))


# --------------------------------------------------------------------------- the sweep


class FakeBayesnas:
    """``run_command`` in place of the two commands: search writes posterior.pt putting all of q
    on ``mode``; sample appends two ranked rows, ``found`` first."""

    def __init__(self, mode: str, found: str, other: str, fail_seed: int | None = None):
        self.mode, self.found, self.other, self.fail_seed = mode, found, other, fail_seed
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], log: Path | None) -> float:
        import torch

        from bayesnas import rundir

        self.calls.append(command)
        verb = command[3]
        if verb == "search":
            seed = int(command[command.index("--seed") + 1])
            if seed == self.fail_seed:
                raise RuntimeError("search failed")
            run = Path(command[command.index("--out") + 1])
            run.mkdir(parents=True)
            (run / rundir.CONFIG).write_text("{}")
            payload = {
                "format": rundir.FORMAT_VERSION,
                "space": "nb201",
                "config": {"seed": seed},
                "gate_logits": torch.tensor(one_hot_logits(self.mode), dtype=torch.float32),
                "mode": self.mode,
                "mode_val_acc": 0.5,
                "seconds": 1.0,
            }
            rundir.save_torch(run / rundir.POSTERIOR, payload)
            return 2.0
        run = Path(command[command.index("--run") + 1])
        seed, n = int(command[command.index("--seed") + 1]), int(command[command.index("--n") + 1])
        rows = [
            {"rank": 1, "seed": seed, "n": n, "architecture": self.found, "val_acc": 0.8},
            {"rank": 2, "seed": seed, "n": n, "architecture": self.other, "val_acc": 0.7},
        ]
        with open(run / rundir.SAMPLES, "a") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
        return 1.0


def test_the_sweep_appends_one_line_per_seed_and_reuses_finished_searches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = small_cells()
    table = write_table(tmp_path / "table.tsv", cells)
    low, found = list(cells)[5], list(cells)[1]
    fake = FakeBayesnas(mode=low, found=found, other=low)
    monkeypatch.setattr(sq, "run_command", fake)
    out, results = tmp_path / "out", tmp_path / "out" / "results.jsonl"
    flags = ["--seeds", "0", "1", "--n", "4", "--table", str(table), "--out", str(out)]
    assert sq.main([*flags, "--", "--epochs", "1"]) == 0
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["seed"] for r in lines] == [0, 1]
    first = lines[0]
    assert first["found_arch"] == found and first["found_acc"] == cells[found]
    assert first["mode_arch"] == low and first["q_expected_acc"] == cells[low]
    assert first["search_seconds"] == 2.0 and first["sample_seconds"] == 1.0
    assert first["search_args"] == ["--epochs", "1"] and not first["reused"]
    assert first["tau_b"] is None  # two cells only
    printed = capsys.readouterr().out
    assert "worst" in printed and "all-conv3x3" in printed

    with pytest.raises(SystemExit, match="--reuse"):  # the runs are there: keep or move them
        sq.main(flags)
    fake.calls.clear()
    assert sq.main([*flags, "--reuse"]) == 0
    assert [c[3] for c in fake.calls] == ["sample", "sample"]
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["seed"], r["reused"]) for r in lines[2:]] == [(0, True), (1, True)]
    assert lines[2]["search_seconds"] is None and lines[2]["found_arch"] == found


def test_a_failed_seed_keeps_the_lines_of_the_seeds_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = small_cells()
    table = write_table(tmp_path / "table.tsv", cells)
    fake = FakeBayesnas(list(cells)[5], list(cells)[1], list(cells)[5], fail_seed=1)
    monkeypatch.setattr(sq, "run_command", fake)
    out = tmp_path / "out"
    argv = ["--seeds", "0", "1", "2", "--n", "2", "--table", str(table), "--out", str(out)]
    assert sq.main(argv) == 1
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines] == [0]
