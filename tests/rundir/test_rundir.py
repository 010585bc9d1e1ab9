"""Run directories: atomic writes, JSON-lines that survive torn lines, the lock, find_run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import cli

from bayesnas import rundir
from bayesnas.errors import UserError

pytest_plugins = ["realrun"]  # real_run, run_copy


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    rundir.write_json(path, {"a": 1})

    def half_then_fail(stream) -> None:
        stream.write(b'{"a": ')
        raise OSError("simulated crash")

    with pytest.raises(OSError, match="simulated"):
        rundir.atomic_write_bytes(path, half_then_fail)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left behind


def test_jsonl_appends_and_a_torn_tail_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rundir.append_jsonl(path, [{"i": 0}, {"i": 1}])
    with open(path, "ab") as stream:
        stream.write(b'{"i": 2, "tor')  # a crash mid-line
    warnings: list[str] = []
    assert rundir.read_jsonl(path, warnings.append) == [{"i": 0}, {"i": 1}]
    rundir.append_jsonl(path, [{"i": 3}], warn=warnings.append)
    assert rundir.read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 3}]
    assert warnings


def test_a_second_lock_on_a_run_is_refused(tmp_path: Path) -> None:
    with (
        rundir.locked(tmp_path),
        pytest.raises(UserError, match="another search"),
        rundir.locked(tmp_path),
    ):
        pass
    with rundir.locked(tmp_path):  # released: free again
        pass


def test_find_run_takes_the_newest_search_and_skips_train_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="no run found"):
        rundir.find_run(None)
    for name, command in (("a", None), ("b", None), ("t", "train")):
        (tmp_path / "runs" / name).mkdir(parents=True)
        record = {"command": command} if command else {"config": {}}
        (tmp_path / "runs" / name / rundir.CONFIG).write_text(json.dumps(record))
    assert rundir.find_run(None).name in {"a", "b"}
    with pytest.raises(UserError, match="not a bayesnas run"):
        rundir.find_run(tmp_path)


# -- `--force` on a real run: it removes what bayesnas wrote and nothing else (issue 24) -------

FOREIGN = ["export/rank-1/mine/x.txt", "plots/notes.txt", "export/rank-2/weights.bak", "notes.txt"]


@pytest.mark.parametrize("foreign", FOREIGN)
def test_force_refuses_a_file_bayesnas_did_not_write_at_any_depth(
    run_copy: Path,
    search_args: Callable[..., tuple[str, ...]],
    capsys: pytest.CaptureFixture,
    foreign: str,
) -> None:
    (run_copy / foreign).parent.mkdir(parents=True, exist_ok=True)
    (run_copy / foreign).write_text("mine\n")
    before = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*"))
    code, _, err = cli(capsys, *search_args(run_copy, "--force"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and foreign in lines[0] and "--force" in lines[0], err
    assert sorted(p.relative_to(run_copy) for p in run_copy.rglob("*")) == before


def test_force_removes_everything_bayesnas_wrote(run_copy: Path) -> None:
    rank = run_copy / "export" / "rank-1"
    assert (rank / "model.onnx").is_file() and (run_copy / "plots" / "index.html").is_file()
    (rank / "model.pt").write_bytes(b"")  # `export --format torchscript`
    (rank / ".model.onnx.k2x_9a.tmp").write_bytes(b"")  # a write cut short
    (run_copy / "plots" / ".plots-a1b2").mkdir()  # a `plot` cut short
    (run_copy / "plots" / ".plots-a1b2" / "01-training.svg").write_bytes(b"")
    rundir.check_fresh(run_copy, force=True)
    assert sorted(p.name for p in run_copy.iterdir()) == [".lock"]


def test_force_never_follows_a_symbolic_link(run_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("mine\n")
    (run_copy / "plots" / "shared").symlink_to(outside)
    with pytest.raises(UserError, match="plots/shared"):
        rundir.check_fresh(run_copy, force=True)
    assert (outside / "index.html").is_file()
