"""Run directories: atomic writes, JSON-lines that survive torn lines, the lock, find_run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bayesnas import rundir
from bayesnas.errors import UserError


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
