"""The PGNAS paper's three claims, measured on one `resnet` (SupNet-M-style) search.

    python benchmarks/paper_claims.py --run runs/resnet-quick --out runs/claims \
        [--l2-run runs/l2-5 --l2-run runs/l2-50 --l2-run runs/l2-500]

1. Posterior sampling against fixed-rate dropout at the posterior's mean drop rate and against
   uniform keep probabilities (0.5): best-of-k and mean validation accuracy, k = 1..n, all pairs
   on the same shared weights (`bayesnas sample --sampler ...`).
2. The top candidates of each sampler before and after a short `bayesnas train --fine-tune`,
   both on the test split: how much each sampler's candidates gain (the paper: posterior
   candidates need little or no fine-tuning, fixed-rate ones do).
3. Parameter counts of posterior draws for searches that differ only in l2 (`--l2-run`).

Everything but the inherited test accuracy runs through the CLI as a user would. Writes
OUT/claims.json, OUT/claims.md (the tables of docs/paper.md) and OUT/claims.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SAMPLERS = ("posterior", "fixed-dropout", "uniform")


def bayesnas(args: list[str], log: Path) -> None:
    """Run one CLI command with its output in ``log``; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write("bayesnas " + " ".join(args) + "\n")
        out.flush()
        code = subprocess.run(
            [sys.executable, "-m", "bayesnas", *args], stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if code:
        tail = "\n".join(log.read_text().splitlines()[-5:])
        raise RuntimeError(f"bayesnas {' '.join(args)} exited {code}:\n{tail}")


def latest_rows(run: Path, sampler: str) -> list[dict[str, Any]]:
    """The ranked rows of the newest `sample` call of ``sampler`` in ``run``."""
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["sampler"] == sampler]
    newest = max(r["time"] for r in rows)
    return sorted((r for r in rows if r["time"] == newest), key=lambda r: r["rank"])


def draw_statistics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean validation accuracy over the draws (each candidate weighted by its draw count),
    the best-of-k curve, distinct candidates and mean parameters per draw."""
    from bayesnas.selection.rank import best_of_k

    n = int(rows[0]["n"])
    draws = sum(r["draws"] for r in rows)
    return {
        "n": n,
        "distinct": len(rows),
        "mean_val_acc": sum(r["val_acc"] * r["draws"] for r in rows) / draws,
        "mean_params_m": sum(r["params_m"] * r["draws"] for r in rows) / draws,
        "best_of_k": best_of_k(((r["first_draw"], r["val_acc"]) for r in rows), n),
    }


@torch.no_grad()
def test_accuracy(export: Path, dataset: str, data_root: str | None) -> float:
    """Accuracy of an exported (architecture, inherited weights) pair on the test split."""
    from bayesnas import load_exported
    from bayesnas.data import load_arrays, resolve_data_root

    model = load_exported(export)
    images, labels = load_arrays(dataset, resolve_data_root(dataset, data_root), train=False)
    correct = 0
    for start in range(0, len(labels), 500):
        logits = model(images[start : start + 500])
        correct += int((logits.argmax(1) == labels[start : start + 500]).sum())
    return correct / len(labels)


def fine_tune_gains(
    run: Path, sampler: str, top: int, epochs: int, size: int, out: Path
) -> list[dict[str, Any]]:
    """Test accuracy of the top candidates before and after `train --fine-tune`."""
    config = json.loads((run / "config.json").read_text())["config"]
    rows = latest_rows(run, sampler)
    results = []
    for rank in range(1, min(top, len(rows)) + 1):
        before = test_accuracy(
            run / "export" / f"rank-{rank}", config["dataset"], config["data_root"]
        )
        target = out / f"finetune-{sampler}-{rank}"
        bayesnas(
            ["train", "--run", str(run), "--rank", str(rank), "--fine-tune",
             "--epochs", str(epochs), "--train-size", str(size),
             "--out", str(target), "--force", "--no-progress"],
            out / "logs" / f"finetune-{sampler}-{rank}.log",
        )  # fmt: skip
        after = json.loads((target / "result.json").read_text())["test_accuracy"]
        results.append(
            {"rank": rank, "val_acc": rows[rank - 1]["val_acc"], "before": before, "after": after}
        )
    return results


def l2_sizes(runs: list[Path], n: int) -> list[dict[str, Any]]:
    """Parameters of ``n`` posterior draws (and of the full network) for each l2 run."""
    from bayesnas.selection.posterior import draw_architectures, load_posterior

    table = []
    for run in runs:
        posterior = load_posterior(run, torch.device("cpu"))
        net = posterior.program.net
        archs, _ = draw_architectures(posterior, n, seed=0)
        params = [net.count_parameters(a) / 1e6 for a in archs]
        keep = torch.sigmoid(posterior.program.guide.gate_logits.detach())
        table.append(
            {
                "run": str(run),
                "prior_l2": posterior.config.prior_l2,
                "full_params_m": net.count_parameters(torch.ones(net.layout.shape)) / 1e6,
                "mean_params_m": float(np.mean(params)),
                "min_params_m": float(np.min(params)),
                "max_params_m": float(np.max(params)),
                "drop_min_median_max": [
                    float(x) for x in (1 - keep).quantile(torch.tensor([0.0, 0.5, 1.0]))
                ],
            }
        )
    return table


def drop_spread(run: Path) -> list[float]:
    """Min, median and max of the learned drop probabilities p of the run's gate groups."""
    from bayesnas.rundir import load_torch

    logits = load_torch(run / "posterior.pt", "posterior")["gate_logits"].float()
    return [float(x) for x in torch.sigmoid(-logits).quantile(torch.tensor([0.0, 0.5, 1.0]))]


def report(results: dict[str, Any]) -> str:
    """The tables of docs/paper.md as markdown."""
    lines = [
        f"Run `{results['run']}`; learned drop rates p: min {results['drop'][0]:.3f}, median "
        f"{results['drop'][1]:.3f}, max {results['drop'][2]:.3f}.",
        "",
        "| sampler | distinct of n | mean val acc | best-of-1 | best-of-5 | best-of-20 | "
        "best-of-n | mean params M |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results["samplers"].items():
        curve = s["best_of_k"]
        picks = [curve[min(k, len(curve)) - 1] for k in (1, 5, 20, len(curve))]
        lines.append(
            f"| {name} | {s['distinct']} of {s['n']} | {s['mean_val_acc']:.2%} | "
            + " | ".join(f"{v:.2%}" for v in picks)
            + f" | {s['mean_params_m']:.3f} |"
        )
    if results["fine_tune"]:
        lines += ["", "| sampler | rank | val acc (inherited) | test acc before | after fine-tune "
                  "| gain |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, rows in results["fine_tune"].items():
            for r in rows:
                lines.append(
                    f"| {name} | {r['rank']} | {r['val_acc']:.2%} | {r['before']:.2%} | "
                    f"{r['after']:.2%} | {r['after'] - r['before']:+.2%} |"
                )
    if results["l2"]:
        lines += ["", "| l2 | full params M | posterior draws: mean (min-max) params M | "
                  "drop p min / median / max |", "|---|---|---|---|"]  # fmt: skip
        for r in results["l2"]:
            p = r["drop_min_median_max"]
            lines.append(
                f"| {r['prior_l2']:g} | {r['full_params_m']:.3f} | {r['mean_params_m']:.3f} "
                f"({r['min_params_m']:.3f}-{r['max_params_m']:.3f}) | "
                f"{p[0]:.3f} / {p[1]:.3f} / {p[2]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def figure(results: dict[str, Any], path: Path) -> None:
    """Best-of-k per sampler, fine-tune gains per sampler, and draw sizes against l2."""
    from matplotlib.figure import Figure

    panels = 1 + bool(results["fine_tune"]) + bool(results["l2"])
    fig = Figure(figsize=(4.2 * panels, 3.4), layout="constrained", dpi=110)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for name, s in results["samplers"].items():
        k = np.arange(1, s["n"] + 1)
        axes[0].plot(
            k, 100 * np.asarray(s["best_of_k"]), label=f"{name} (mean {s['mean_val_acc']:.1%})"
        )
    axes[0].set(xscale="log", xlabel="candidates drawn k", ylabel="best validation accuracy (%)",
                title="Claim 1: best of k draws")  # fmt: skip
    axes[0].legend(fontsize=8)
    column = 1
    if results["fine_tune"]:
        ax = axes[column]
        names = list(results["fine_tune"])
        gains = [[100 * (r["after"] - r["before"]) for r in results["fine_tune"][n]] for n in names]
        for i, values in enumerate(gains):
            ax.scatter([i] * len(values), values, color=f"C{i}")
            ax.hlines(np.mean(values), i - 0.3, i + 0.3, color=f"C{i}")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set(xticks=range(len(names)), xticklabels=names, ylabel="test accuracy gain (points)",
               title="Claim 2: gain from fine-tuning")  # fmt: skip
        column += 1
    if results["l2"]:
        ax = axes[column]
        l2 = [r["prior_l2"] for r in results["l2"]]
        mean = [r["mean_params_m"] for r in results["l2"]]
        low = [r["mean_params_m"] - r["min_params_m"] for r in results["l2"]]
        high = [r["max_params_m"] - r["mean_params_m"] for r in results["l2"]]
        ax.errorbar(l2, mean, yerr=[low, high], marker="o", capsize=3)
        ax.axhline(
            results["l2"][0]["full_params_m"], color="0.5", ls="--", lw=0.8, label="full network"
        )
        ax.set(xscale="log", xlabel="l2 (prior precision)", ylabel="parameters per draw (M)",
               ylim=(0, None), title="Claim 3: size against l2")  # fmt: skip
        ax.legend(fontsize=8)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a finished resnet search")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100, help="draws per sampler")
    parser.add_argument("--val-size", type=int, default=2000, help="validation images scored")
    parser.add_argument(
        "--fine-tune-top", type=int, default=3, help="candidates fine-tuned per sampler"
    )
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--fine-tune-size", type=int, default=6400, help="training images used")
    parser.add_argument(
        "--l2-run", type=Path, action="append", default=[], help="runs differing in l2"
    )
    parser.add_argument(
        "--l2-only", action="store_true", help="keep OUT/claims.json's claims 1-2; redo claim 3"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "run": str(args.run), "drop": drop_spread(args.run), "samplers": {}, "fine_tune": {},
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}), "
                   f"torch {torch.__version__}, {torch.get_num_threads()} threads",
    }  # fmt: skip
    if args.l2_only:  # claims 1 and 2 as measured before; claim 3 over the given runs
        results = json.loads((args.out / "claims.json").read_text())
    for sampler in () if args.l2_only else SAMPLERS:
        top = args.fine_tune_top
        bayesnas(
            ["sample", "--run", str(args.run), "--n", str(args.n), "--sampler", sampler,
             "--top-k", str(top), "--val-size", str(args.val_size), "--device", "cpu",
             "--no-progress"],
            args.out / "logs" / f"sample-{sampler}.log",
        )  # fmt: skip
        results["samplers"][sampler] = draw_statistics(latest_rows(args.run, sampler))
        if top:
            results["fine_tune"][sampler] = fine_tune_gains(
                args.run, sampler, top, args.fine_tune_epochs, args.fine_tune_size, args.out
            )
        print(f"{sampler}: done after {time.perf_counter() - started:.0f} s", flush=True)
    results["l2"] = l2_sizes(args.l2_run, args.n) if args.l2_run else []
    results["seconds"] = results.get("seconds", 0.0) + time.perf_counter() - started
    (args.out / "claims.json").write_text(json.dumps(results, indent=2))
    (args.out / "claims.md").write_text(report(results))
    figure(results, args.out / "claims.png")
    print(report(results))


if __name__ == "__main__":
    main()
