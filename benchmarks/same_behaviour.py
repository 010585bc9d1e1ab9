"""Does a refactor change what bayesnas computes? Run the same small jobs with an earlier commit
and with this tree, and compare what they write, bit for bit.

    python benchmarks/same_behaviour.py REV [--data-root /usr/share/datasets]

REV is checked out into a temporary git worktree. Three jobs run on Fashion-MNIST (one thread
each, a few minutes on a CPU): a 2-epoch nb201 search; the same search started by REV,
stopped by SIGTERM after its first epoch and resumed by this tree (checkpoint.pt across the
change); and `train --arch` of a NAS-Bench-201 cell and of DARTS-V2 with DARTS's extras.
Prints one line per comparison and exits 1 if any differs. Times and versions are ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parents[1]
IGNORED = {"versions", "elapsed", "seconds", "data_root"}
CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def bayesnas(tree: Path, args: list[str], log: Path) -> subprocess.Popen:
    """``python -m bayesnas ARGS`` importing the package of ``tree``, one thread."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bayesnas", *args], cwd=tree, env=env, stdout=out, stderr=out
        )


def run(tree: Path, args: list[str], log: Path) -> None:
    if bayesnas(tree, args, log).wait() != 0:
        sys.exit(f"failed: bayesnas {' '.join(args)} in {tree}; see {log}")


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two loaded files differ (tensors exactly), ignoring times and versions."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b), key=str):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                found.append(f"{path}/{key}: in one only")
            else:
                found += differences(a[key], b[key], f"{path}/{key}")
        return found
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
        return [] if same else [f"{path}: tensors differ"]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {str(a)[:60]} != {str(b)[:60]}"]


def posterior(run_dir: Path) -> Any:
    return torch.load(run_dir / "posterior.pt", map_location="cpu", weights_only=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the earlier commit, e.g. a tag or main~5")
    parser.add_argument("--data-root", default="/usr/share/datasets")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="same-behaviour-"))
    old = work / "old"
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", old, args.rev], cwd=HERE, check=True
    )
    search = ["search", "--dataset", "fashion-mnist", "--data-root", args.data_root, "--preset"]
    search += ["quick", "--epochs", "2", "--train-size", "1024", "--val-size", "256"]
    search += ["--eval-size", "256", "--no-progress", "--seed", "3"]
    train = ["train", "--dataset", "fashion-mnist", "--data-root", args.data_root, "--epochs"]
    train += ["2", "--train-size", "256", "--batch-size", "32", "--no-progress"]
    results = []
    try:
        for name, tree in (("old", old), ("new", HERE)):
            run(tree, [*search, "--out", str(work / f"search-{name}")], work / f"search-{name}.log")
            for arch, extra in ((CELL, []), (DARTS_V2, ["--preset", "darts"])):
                kind = "cell" if arch == CELL else "darts"
                out = work / f"train-{kind}-{name}"
                sized = ["--channels", "4", "--cells", "1" if kind == "cell" else "2"]
                run(
                    tree,
                    [*train, "--arch", arch, *sized, *extra, "--out", str(out)],
                    Path(f"{out}.log"),
                )
        mixed = work / "search-mixed"
        proc = bayesnas(old, [*search, "--out", str(mixed)], work / "mixed-old.log")
        while proc.poll() is None and not (mixed / "metrics.jsonl").is_file():
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        run(HERE, ["search", "--resume", str(mixed), "--no-progress"], work / "mixed-new.log")
        old_post = posterior(work / "search-old")
        results.append(
            ("search: posterior.pt", differences(old_post, posterior(work / "search-new")))
        )
        results.append(
            ("search stopped by REV, resumed here", differences(old_post, posterior(mixed)))
        )
        for kind in ("cell", "darts"):
            same = digest(work / f"train-{kind}-old" / "weights.safetensors") == digest(
                work / f"train-{kind}-new" / "weights.safetensors"
            )
            results.append((f"train --arch ({kind}): weights", [] if same else ["weights differ"]))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", old], cwd=HERE, check=False)
    for what, found in results:
        print(f"{what}: {'identical' if not found else '; '.join(found[:5])}")
    print(f"runs and logs: {work}")
    return 1 if any(found for _, found in results) else 0


if __name__ == "__main__":
    sys.exit(main())
