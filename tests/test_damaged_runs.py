"""Damaged run files, generated (issue 24): truncated, bytes flipped, values of the wrong type,
another space's names. Whatever the damage, every command that reads the file either works or
says what is wrong in one line with exit 2; ``load_exported`` loads or raises UserError. Never a
traceback, and the damaged file itself is left as it was (nothing a user has is lost)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from benchfiles import write_nb201
from helpers import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesnas.errors import UserError
from bayesnas.export import load_exported

pytestmark = pytest.mark.usefixtures("one_thread_module")
pytest_plugins = ["realrun"]  # real_run

WRONG_VALUES = (None, "x", -1, 0, 1e308, [], {}, True, "\u00ff" * 3)
OTHER_SPACES = ("darts", "resnet", "densenet121", "no-such-space")
EXAMPLES = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,  # the same examples in every CI run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (dict keys and list indices)."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    found = []
    for key, inner in items:
        found.append((*prefix, key))
        found.extend(_paths(inner, (*prefix, key)))
    return found


@st.composite
def damaged(draw: st.DrawFn, original: bytes, jsonl: bool = False) -> bytes:
    """``original`` (a JSON, or with ``jsonl`` a JSON-lines file) damaged one of the ways a disk
    or a user does."""
    how = draw(st.sampled_from(["truncate", "flip", "wrong-type", "other-space"]))
    if how == "truncate":
        return original[: draw(st.integers(0, max(0, len(original) - 1)))]
    if how == "flip":
        data = bytearray(original)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "other-space":
        return original.replace(b"nb201", draw(st.sampled_from(OTHER_SPACES)).encode())
    lines = original.decode().splitlines()
    index = draw(st.integers(0, len(lines) - 1)) if jsonl else None
    document = json.loads(original) if index is None else json.loads(lines[index])
    paths = _paths(document)
    if not paths:
        return b"[]"
    *parents, last = draw(st.sampled_from(paths))
    target = document
    for key in parents:
        target = target[key]
    target[last] = draw(st.sampled_from(WRONG_VALUES))
    if index is None:
        return json.dumps(document).encode()
    lines[index] = json.dumps(document)
    return ("\n".join(lines) + "\n").encode()


READERS = {  # the file, and the commands that read it (lookup: with a generated benchmark)
    "config.json": [("summary",), ("plot",), ("sample", "--n", "2", "--top-k", "0"), ("lookup",)],
    "metrics.jsonl": [("summary",), ("plot",)],
    "samples.jsonl": [("summary",), ("plot",), ("lookup",)],
}


@pytest.fixture(scope="module")
def nb201_file(real_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NAS-Bench-201 file that holds the real run's cells, so that lookup gets to read it."""
    rows = [json.loads(line) for line in (real_run / "samples.jsonl").read_text().splitlines()]
    archs = list(dict.fromkeys(row["architecture"] for row in rows))
    return write_nb201(tmp_path_factory.mktemp("bench") / "NAS-Bench-201-v1_0-e61699.pth", archs)


CASES = [(name, command) for name, commands in READERS.items() for command in commands]


def _fresh(real_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "RUN"
    if run.exists():
        shutil.rmtree(run)
    return Path(shutil.copytree(real_run, run, symlinks=True))


@pytest.mark.parametrize(("name", "command"), CASES, ids=[f"{n}-{c[0]}" for n, c in CASES])
@EXAMPLES
@given(data=st.data())
def test_a_damaged_run_file_is_read_or_named_in_one_line(
    real_run: Path, nb201_file: Path, tmp_path: Path, capsys, name: str, command: tuple, data
) -> None:
    run = _fresh(real_run, tmp_path)
    bad = data.draw(damaged((run / name).read_bytes(), name.endswith(".jsonl")), label=name)
    (run / name).write_bytes(bad)
    more = ("--benchmark", nb201_file) if command[0] == "lookup" else _quiet(command)
    code, _, err = cli(capsys, *command, "--run", run, *more)
    assert "Traceback" not in err, err
    assert code in (0, 2), err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("bayesnas: error: ")]
        assert len(errors) == 1, err
    if command[0] != "sample":  # sample appends its rows; nothing else may change the file
        assert (run / name).read_bytes() == bad


def _quiet(command: tuple) -> tuple[str, ...]:
    return ("--no-progress",) if command[0] == "sample" else ()


@EXAMPLES
@given(data=st.data())
def test_a_damaged_architecture_json_loads_or_is_a_user_error(
    real_run: Path, tmp_path: Path, data
) -> None:
    run = _fresh(real_run, tmp_path)
    path = run / "export" / "rank-1" / "architecture.json"
    path.write_bytes(data.draw(damaged(path.read_bytes()), label="architecture.json"))
    try:
        load_exported(path.parent)
    except UserError as exc:
        assert "\n" not in str(exc)


def test_a_gate_entry_of_the_wrong_type_in_metrics_is_skipped_not_a_traceback(
    real_run: Path, tmp_path: Path, capsys
) -> None:
    """The case CI's hypothesis run found: an edge of ``gates`` replaced by null in the only
    row of metrics.jsonl made `plot` raise a TypeError."""
    run = _fresh(real_run, tmp_path)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    row["gates"]["edges"][2] = None
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    code, out, err = cli(capsys, "plot", "--run", run)
    assert code == 0 and "Traceback" not in err, err
    assert "skipping row 1 of metrics.jsonl" in out + err
