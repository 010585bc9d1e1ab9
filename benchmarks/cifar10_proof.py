"""Does the CIFAR-10 search earn its cost? Search, sample, retrain, and compare with baselines.

    python benchmarks/cifar10_proof.py --out runs/proof                 # 2-core CPU: hours
    python benchmarks/cifar10_proof.py --out runs/proof --device cuda --jobs 8

For each seed: ``bayesnas search --preset cpu`` on CIFAR-10; ``sample --n 100`` (distinct
draws, best-of-k, best candidate against the mode); the found cell = top-1 of ``sample --n 20``;
``sample --sampler uniform`` for uniformly drawn cells on the same weights. Then every cell is
trained from scratch with ``bayesnas train --preset short`` and tested on the test split: the
found cell, the all-conv3x3 cell and the uniform cells. For the first seed, the inherited
validation accuracies (``--bn stats`` and ``--bn recalibrate``) of at least ``--kendall``
distinct candidates are set against their accuracies after training (Kendall tau-b).
Everything runs through the CLI as a user would; ``--jobs`` runs that many commands at once.
Writes OUT/results.json and OUT/report.md (the tables of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bayesnas.report.decision import describe, when_q_decided

SHARED_TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar-10-python.tar.gz"
ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)


def bayesnas(args: list[str], log: Path) -> float:
    """Run one CLI command (its output to ``log``); returns its wall time; raises on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        out.write("bayesnas " + " ".join(args) + "\n")
        out.flush()
        code = subprocess.run(
            [sys.executable, "-m", "bayesnas", *args], stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if code:
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(f"bayesnas {' '.join(args)} exited {code}:\n" + "\n".join(tail))
    return time.perf_counter() - started


def sample_rows(run: Path, sampler: str, seed: int, n: int, bn: str) -> list[dict[str, Any]]:
    """The ranked rows of the latest `sample` call with these settings."""
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    rows = [r for r in rows if (r["sampler"], r["seed"], r["n"], r["bn"]) == (sampler, seed, n, bn)]
    latest = max(r["time"] for r in rows)
    return sorted((r for r in rows if r["time"] == latest), key=lambda r: r["rank"])


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties in either ranking counted as in scipy.stats.kendalltau)."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else float("nan")


class Proof:
    """One proof run in ``out``: its commands, and what they found."""

    def __init__(self, args: argparse.Namespace, data_root: Path):
        self.args, self.data_root, self.out = args, data_root, Path(args.out)
        self.pool = ThreadPoolExecutor(max_workers=args.jobs)
        self.seconds: dict[str, float] = {}

    def run_all(self, jobs: dict[str, tuple[list[str], Path]]) -> None:
        futures = {name: self.pool.submit(bayesnas, cmd, log) for name, (cmd, log) in jobs.items()}
        for name, future in futures.items():
            self.seconds[name] = future.result()
            print(f"  done {name} ({self.seconds[name]:.0f} s)", flush=True)

    def common(self) -> list[str]:
        return ["--device", self.args.device, "--no-progress"]

    def search_dir(self, seed: int) -> Path:
        return self.out / f"search-seed{seed}"

    def search(self) -> None:
        jobs = {}
        for seed in self.args.seeds:
            cmd = ["search", "--preset", self.args.search_preset, "--dataset", "cifar10"]
            cmd += ["--data-root", str(self.data_root), "--seed", str(seed)]
            cmd += ["--out", str(self.search_dir(seed)), "--force", *self.common()]
            cmd += self.args.search_arg
            jobs[f"search seed {seed}"] = (cmd, self.out / "logs" / f"search-{seed}.log")
        self.run_all(jobs)

    def sample(self) -> None:
        """Each seed's sample calls in order (they share samples.jsonl and export/)."""
        futures = [self.pool.submit(self.sample_seed, seed) for seed in self.args.seeds]
        for future in futures:
            future.result()

    def sample_seed(self, seed: int) -> None:
        run, logs = str(self.search_dir(seed)), self.out / "logs"
        bns = ("stats", "recalibrate") if seed == self.args.seeds[0] else ("stats",)
        calls = [(["--n", "100", "--top-k", "0", "--bn", bn], f"n100-{bn}") for bn in bns]
        calls += [
            (
                ["--sampler", "uniform", "--n", str(self.args.uniform), "--top-k", "0"]
                + ["--bn", bn, "--seed", str(1000 + seed)],
                f"uniform-{bn}",
            )
            for bn in bns
        ]
        calls.append(
            (["--n", "20", "--top-k", "1", "--seed", str(seed), *self.args.sample_arg], "n20")
        )
        for extra, name in calls:
            cmd = ["sample", "--run", run, *self.common(), *extra]
            if "--seed" not in extra:
                cmd += ["--seed", str(seed)]
            self.seconds[f"sample seed {seed} {name}"] = bayesnas(
                cmd, logs / f"sample-{seed}-{name}.log"
            )
        bayesnas(["summary", "--run", run], logs / f"summary-{seed}.log")
        print(f"  sampled seed {seed}", flush=True)

    def train_dir(self, seed: int, arch: str) -> Path:
        return self.out / "train" / f"seed{seed}-{hashlib.sha1(arch.encode()).hexdigest()[:10]}"

    def train(self, cells: dict[tuple[int, str], dict[str, int]]) -> dict[tuple[int, str], dict]:
        jobs = {}
        for (seed, arch), size in cells.items():
            out = self.train_dir(seed, arch)
            if (out / "result.json").is_file() and not self.args.retrain:
                continue
            cmd = ["train", "--arch", arch, "--dataset", "cifar10", "--data-root"]
            cmd += [str(self.data_root), "--channels", str(size["channels"]), "--cells"]
            cmd += [str(size["cells"]), "--preset", self.args.train_preset, "--seed", str(seed)]
            cmd += ["--out", str(out), "--force", *self.common(), *self.args.train_arg]
            jobs[f"train seed {seed} {arch}"] = (cmd, self.out / "logs" / f"{out.name}.log")
        self.run_all(jobs)
        return {
            key: json.loads((self.train_dir(*key) / "result.json").read_text()) for key in cells
        }


def seed_facts(proof: Proof, seed: int) -> dict[str, Any]:
    """What one seed's search and sampling found (no training yet)."""
    run = proof.search_dir(seed)
    config = json.loads((run / "config.json").read_text())["config"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    draws = sample_rows(run, "posterior", seed, 100, "stats")
    curve = [max(r["val_acc"] for r in draws if r["first_draw"] < k) for k in range(1, 101)]
    found = sample_rows(run, "posterior", seed, 20, "stats")[0]
    uniform = sample_rows(run, "uniform", 1000 + seed, proof.args.uniform, "stats")
    return {
        "seed": seed,
        "space_options": config["space_options"],
        "search_seconds": metrics and sum(r["seconds"] for r in metrics),
        "mode": metrics[-1]["gates"]["mode"],
        "mode_val_acc": metrics[-1]["val_acc"],
        "decision": describe(when_q_decided(metrics), len(metrics)),
        "distinct_of_100": len(draws),
        "best_of_k": {k: curve[k - 1] for k in (1, 5, 10, 20, 50, 100)},
        "best_sampled_val_acc": draws[0]["val_acc"],
        "best_sampled": draws[0]["architecture"],
        "found": found["architecture"],
        "found_val_acc": found["val_acc"],
        "distinct_of_20": len(sample_rows(run, "posterior", seed, 20, "stats")),
        "uniform": [r["architecture"] for r in uniform],
        "posterior_candidates": [r["architecture"] for r in draws],
    }


def kendall(proof: Proof, facts: dict[str, Any], tested: dict) -> dict[str, Any]:
    """Inherited validation accuracy against accuracy after training, first seed's candidates."""
    seed, run = facts["seed"], proof.search_dir(facts["seed"])
    inherited: dict[str, dict[str, float]] = {}
    for bn in ("stats", "recalibrate"):
        rows = sample_rows(run, "posterior", seed, 100, bn)
        rows += sample_rows(run, "uniform", 1000 + seed, proof.args.uniform, bn)
        for r in rows:
            inherited.setdefault(r["architecture"], {})[bn] = r["val_acc"]
    archs = [a for a in inherited if (seed, a) in tested and len(inherited[a]) == 2]
    test = [tested[(seed, a)]["test_accuracy"] for a in archs]
    return {
        "candidates": len(archs),
        "rows": [
            {"architecture": a, **inherited[a], "test_accuracy": t}
            for a, t in zip(archs, test, strict=True)
        ],
        "tau_stats": kendall_tau_b([inherited[a]["stats"] for a in archs], test),
        "tau_recalibrate": kendall_tau_b([inherited[a]["recalibrate"] for a in archs], test),
    }


def cell(arch: str) -> str:
    """An architecture string inside a markdown table cell (its bars escaped)."""
    return arch.replace("|", "\\|")


def report(results: dict[str, Any]) -> str:
    """The markdown tables of docs/benchmarks.md."""
    pct = "{:.2%}".format
    lines = [
        f"Machine: {results['machine']}; command: `{results['command']}`",
        "",
        "| seed | found cell (top-1 of `sample --n 20`) | distinct of 20 / 100 | found | "
        f"all-conv3x3 | uniform best of {results['uniform']} | uniform mean | mode val | "
        "best sampled val |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results["seeds"]:
        lines.append(
            f"| {s['seed']} | `{cell(s['found'])}` | "
            f"{s['distinct_of_20']} / {s['distinct_of_100']} | "
            f"{pct(s['found_test'])} | {pct(s['conv3_test'])} | {pct(s['uniform_best_test'])} | "
            f"{pct(s['uniform_mean_test'])} | {pct(s['mode_val_acc'])} | "
            f"{pct(s['best_sampled_val_acc'])} |"
        )
    m = results["means"]
    lines += [
        f"| mean | | | **{pct(m['found'])}** | **{pct(m['conv3'])}** | {pct(m['uniform_best'])} | "
        f"{pct(m['uniform_mean'])} | | |",
        "",
        "Test accuracy after `bayesnas train --preset short` (from scratch, CIFAR-10 test split); "
        "val columns: inherited weights on the search's held-out split.",
        "",
        "| seed | when q decided | best-of-k (k = 1, 5, 10, 20, 50, 100) |",
        "|---|---|---|",
    ]
    for s in results["seeds"]:
        curve = ", ".join(pct(v) for v in s["best_of_k"].values())
        lines.append(f"| {s['seed']} | {s['decision']} | {curve} |")
    k = results["kendall"]
    lines += [
        "",
        f"Ranking ({k['candidates']} distinct candidates of seed {results['seeds'][0]['seed']}): "
        f"Kendall tau-b of inherited validation accuracy against test accuracy after training: "
        f"`--bn stats` {k['tau_stats']:.3f}, `--bn recalibrate` {k['tau_recalibrate']:.3f}.",
    ]
    return "\n".join(lines) + "\n"


def machine(device: str) -> str:
    text = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        import torch

        text += f", {torch.cuda.get_device_name(0)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/proof")
    parser.add_argument("--data-root", help="CIFAR-10 root [the shared tarball]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jobs", type=int, default=1, help="commands run at once")
    parser.add_argument("--search-preset", default="cpu")
    parser.add_argument("--train-preset", default="short")
    parser.add_argument("--uniform", type=int, default=5, help="uniformly drawn cells per seed")
    parser.add_argument("--kendall", type=int, default=10, help="candidates in the ranking test")
    parser.add_argument("--search-arg", action="append", default=[], help="extra search flag")
    parser.add_argument("--train-arg", action="append", default=[], help="extra train flag")
    parser.add_argument(
        "--sample-arg", action="append", default=[], help="extra flag of the found cell's sample"
    )
    parser.add_argument("--retrain", action="store_true", help="train again what is trained")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = Path(args.data_root) if args.data_root else out / "data"
    if not args.data_root:
        data_root.mkdir(exist_ok=True)
        link = data_root / SHARED_TARBALL.name
        if not link.exists():
            link.symlink_to(SHARED_TARBALL)
    from bayesnas.data import load_arrays

    for train in (True, False):  # extracted once here, not by parallel commands at once
        load_arrays("cifar10", data_root, train=train, download=False)
    proof = Proof(args, data_root)
    started = time.perf_counter()
    print("searching", flush=True)
    proof.search()
    print("sampling", flush=True)
    proof.sample()
    facts = [seed_facts(proof, seed) for seed in args.seeds]
    first = facts[0]
    extra = [a for a in first["posterior_candidates"] if a != first["found"]]
    extra = extra[: max(0, args.kendall - 1 - len(first["uniform"]))]
    cells: dict[tuple[int, str], dict[str, int]] = {}
    for f in facts:
        for arch in [f["found"], ALL_CONV3, *f["uniform"]] + (extra if f is first else []):
            cells[(f["seed"], arch)] = f["space_options"]
    print(f"training {len(cells)} cells", flush=True)
    tested = proof.train(cells)
    for f in facts:
        uniform = [tested[(f["seed"], a)]["test_accuracy"] for a in f["uniform"]]
        f["found_test"] = tested[(f["seed"], f["found"])]["test_accuracy"]
        f["conv3_test"] = tested[(f["seed"], ALL_CONV3)]["test_accuracy"]
        f["uniform_best_test"], f["uniform_mean_test"] = max(uniform), sum(uniform) / len(uniform)
        f["uniform_tests"] = uniform
    mean = lambda key: sum(f[key] for f in facts) / len(facts)  # noqa: E731
    results = {
        "machine": machine(args.device),
        "command": "python benchmarks/cifar10_proof.py " + " ".join(sys.argv[1:]),
        "seconds": time.perf_counter() - started,
        "uniform": args.uniform,
        "command_seconds": proof.seconds,
        "seeds": facts,
        "means": {
            "found": mean("found_test"),
            "conv3": mean("conv3_test"),
            "uniform_best": mean("uniform_best_test"),
            "uniform_mean": mean("uniform_mean_test"),
        },
        "kendall": kendall(proof, first, tested),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
