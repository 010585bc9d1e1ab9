"""Each ranking scorer's Kendall tau-b against the NAS-Bench-201 table, on one run's candidates.

    python benchmarks/scorer_tau.py --run RUN --n 60 --sampler uniform --results FILE

Draws n architectures from the run (``--sampler posterior`` or ``uniform``), evaluates the
distinct ones once with their inherited weights (once more with BatchNorm recalibrated, and once
after ``--fine-tune-steps`` SGD steps each), applies every scorer of ``sample --score`` to the
same candidates and prints, per scorer, tau-b
of its score against the table's CIFAR-10 validation accuracy, and the table accuracy of the
cell it ranks first. Measurement only: the package never reads the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from bayesnas.selection.finetune import FineTune
from bayesnas.selection.posterior import draw_architectures, load_posterior
from bayesnas.selection.rank import distinct, evaluate_candidates
from bayesnas.selection.sample import SampleConfig, _data
from bayesnas.selection.scorers import SCORERS, ScoringContext, ranking_key

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import DEFAULT_TABLE, kendall_tau_b, load_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--sampler", default="uniform", choices=["posterior", "uniform"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--results", type=Path, help="append one JSON line here")
    parser.add_argument("--fine-tune-steps", type=int, default=20, help="0: no fine-tuned row")
    args = parser.parse_args()
    table = load_table(args.table)
    device = torch.device("cpu")
    posterior = load_posterior(args.run, device)
    config = SampleConfig(run=args.run, n=args.n, seed=args.seed)
    val_batches, train_batches, train_split = _data(posterior, device, config)
    archs, log_q = draw_architectures(posterior, args.n, args.sampler, args.seed)
    net = posterior.program.net
    candidates = distinct(net, archs, log_q)
    truth = [table.accuracy[net.describe(c.arch)] for c in candidates]
    context = ScoringContext(posterior, val_batches, train_split, device, args.seed)
    row: dict = {"run": str(args.run), "sampler": args.sampler, "distinct": len(candidates)}
    tuned = f"fine-tuned {args.fine_tune_steps} steps"
    for weights in ("stats", "recalibrate", tuned)[: 3 if args.fine_tune_steps else 2]:
        bn = "recalibrate" if weights == "recalibrate" else "stats"
        tune = FineTune(args.fine_tune_steps) if weights == tuned else None
        evaluate_candidates(
            net, candidates, val_batches, bn=bn, train_batches=train_batches, fine_tune=tune
        )
        for name, scorer in SCORERS.items():
            if weights != "stats" and name not in ("inherited", "combined"):
                continue
            scorer().score(context, candidates)
            label = {"stats": name, "recalibrate": f"{name} (BN recalibrated)"}.get(
                weights, f"{name} ({tuned})"
            )
            tau = kendall_tau_b([c.metrics["score"] for c in candidates], truth)
            best = min(range(len(candidates)), key=lambda i: ranking_key(candidates[i]))
            row[label] = {"tau_b": tau, "top1_acc": truth[best]}
            shown = "n/a" if tau is None else f"{tau:+.3f}"
            print(f"{label:>32}: tau-b {shown}, ranks first a cell of {truth[best]:.2f}")
    print(f"{len(candidates)} distinct cells; best among them {max(truth):.2f}")
    if args.results:
        with open(args.results, "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
