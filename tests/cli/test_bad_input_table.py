"""Issue 24: one table of bad inputs per command, run by one parametrised test.

Every numeric option of every command at 0, -1, nan, inf, a huge value and a non-number, and
every path option as missing, a directory, a symlink loop, a non-UTF-8 name and empty: each is
exit 2 and one ``bayesnas: error:`` line (a numeric one naming its option), never a traceback.
The cases are generated from the commands themselves, so a new option is covered the day it is
added; ``ACCEPTED`` lists the values that are not bad for an option, and why. Commands that read
a run get a copy of the real tiny run (``tests/realrun.py``), so that only the option is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from helpers import run_cli

from bayesnas.cli import cli as root

pytestmark = pytest.mark.usefixtures("one_thread_module")
pytest_plugins = ["realrun"]  # run_copy

HUGE_INT, HUGE_FLOAT = str(10**20), "1e30"
RUN_COMMANDS = ("sample", "ensemble", "export", "train", "plot", "summary", "lookup")

# (command, option) -> values that are valid for it (never run here: they are not bad inputs)
ACCEPTED: dict[tuple[str, str], set[str]] = {
    ("search", "--epochs"): {"0"},  # no SVI: q is the prior
    ("search", "--gate-lr"): {"0"},  # q stays at its start
    ("search", "--warmup"): {"0"},
    ("search", "--aux-skip"): {"0"},  # 0 = off, as for the next four
    ("search", "--skip-dropout"): {"0"},
    ("search", "--prune-below"): {"0"},
    ("search", "--cost-weight"): {"0"},
    ("search", "--prior-strength"): {"0"},
    ("search", "--crop-pad"): {"0"},
    ("search", "--cutout"): {"0"},
    ("search", "--workers"): {"0"},  # load in the main process
    ("search", "--seed"): {"0"},
    ("search", "--checkpoint-minutes"): {"0", "inf", HUGE_FLOAT},  # every step / never mid-epoch
    ("search", "--train-size"): {HUGE_INT},  # "at most": all of the split
    ("search", "--val-size"): {HUGE_INT},
    ("search", "--eval-size"): {HUGE_INT},
    ("sample", "--top-k"): {"0"},  # keep the earlier export
    ("sample", "--fine-tune-steps"): {"0"},  # score the inherited weights (the paper's)
    ("sample", "--seed"): {"0"},
    ("sample", "--val-size"): {HUGE_INT},  # "the first this-many": all
    ("sample", "--max-params"): {"inf", HUGE_FLOAT},  # no limit in effect
    ("sample", "--max-flops"): {"inf", HUGE_FLOAT},
    ("ensemble", "--seed"): {"0"},
    ("ensemble", "--val-size"): {HUGE_INT},
    ("train", "--seed"): {"0"},
    ("train", "--weight-decay"): {"0"},
    ("train", "--cutout"): {"0"},
    ("train", "--drop-path"): {"0"},
    ("train", "--auxiliary-weight"): {"0"},
    ("train", "--grad-clip"): {HUGE_FLOAT},  # no clipping in effect
    ("train", "--train-size"): {HUGE_INT},
}
# (command, option) -> path kinds that are valid for it (a new output folder, say)
ACCEPTED_PATHS: dict[tuple[str, str], set[str]] = {
    ("search", "--out"): {"missing", "non-utf8"},  # a new run directory
    ("export", "--out"): {"missing", "non-utf8", "symlink-loop"},  # a new file, or replaced
    ("plot", "--out"): {"missing", "directory", "non-utf8"},  # a new or empty folder
    ("train", "--out"): {"missing", "directory", "non-utf8"},  # a new or empty folder
}


def _numeric(option: click.Option) -> bool:
    return isinstance(option.type, (click.types.IntParamType, click.types.FloatParamType))


def _is_int(option: click.Option) -> bool:
    return isinstance(option.type, click.types.IntParamType)


def _cases() -> list[tuple[str, str, str, str]]:
    """(command, option, kind, value) of every bad input."""
    cases = []
    for name in ("search", *RUN_COMMANDS):
        for option in root.commands[name].params:
            if not isinstance(option, click.Option) or option.is_flag:
                continue
            flag = option.opts[0]
            if _numeric(option):
                huge = HUGE_INT if _is_int(option) else HUGE_FLOAT
                for value in ("0", "-1", "nan", "inf", huge, "abc"):
                    if value not in ACCEPTED.get((name, flag), set()):
                        cases.append((name, flag, "number", value))
            elif isinstance(option.type, click.Path):
                for kind in ("missing", "directory", "symlink-loop", "non-utf8", "empty"):
                    if kind not in ACCEPTED_PATHS.get((name, flag), set()):
                        cases.append((name, flag, "path", kind))
    return cases


CASES = _cases()


def _path(kind: str, tmp: Path) -> str:
    """A path of ``kind`` under ``tmp``."""
    if kind == "missing":
        return str(tmp / "no-such-thing")
    if kind == "directory":
        folder = tmp / "a-folder"
        folder.mkdir(exist_ok=True)
        return str(folder)
    if kind == "symlink-loop":
        loop = tmp / "loop"
        if not loop.is_symlink():
            loop.symlink_to(loop)
        return str(loop)
    if kind == "non-utf8":
        return os.fsdecode(bytes(tmp / "bad") + b"\xff\xfe")
    return ""


@pytest.mark.parametrize(
    ("command", "option", "kind", "value"), CASES, ids=[" ".join(c) for c in CASES]
)
def test_a_bad_input_is_one_line_and_exit_2(
    command: str, option: str, kind: str, value: str, request, tmp_path: Path
) -> None:
    base: list[str | Path] = [command]
    if command == "search":
        empty = tmp_path / "no-data"
        empty.mkdir()
        base += ["--dataset", "cifar10", "--data-root", empty, "--out", tmp_path / "r"]
    elif option != "--run":
        base += ["--run", request.getfixturevalue("run_copy")]
    if command == "lookup" and option != "--benchmark":
        base += ["--benchmark", tmp_path / "NAS-Bench-201-v1_0-e61699.pth"]  # absent: 1 line
    given = value if kind == "number" else _path(value, tmp_path)
    result = run_cli(*base, option, given, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr or result.stdout}"
    errors = [line for line in lines if line.startswith("bayesnas: error: ")]
    assert len(errors) == 1, result.stderr
    if kind == "number":
        names = (option, option.lstrip("-").replace("-", "_"))
        assert any(name in errors[0] for name in names), errors[0]
