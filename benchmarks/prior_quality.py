"""How good is the zero-cost prior alone? Its mode per seed against the NAS-Bench-201 table.

    python benchmarks/prior_quality.py --seeds 0 1 2 3 4 5 --batch 128 --repeats 8

Builds the prior exactly as ``bayesnas search --arch-prior zero-cost`` does (the search's
training split of CIFAR-10, a fresh super-network per repeat) and reports the prior's mode and
its share of draws in the table's top 5 %. Measurement only: the package never reads the table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import torch

from bayesnas.config import build_config
from bayesnas.data import search_data
from bayesnas.priors import zero_cost_evidence
from bayesnas.spaces.nb201.cell import OPS, to_string

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_table(path: pathlib.Path) -> dict[str, float]:
    rows = (line.split("\t") for line in path.read_text().splitlines()[1:])
    return {arch: float(acc) for arch, acc in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--table", default=str(ROOT.parent / "shared/nb201/cifar10-valid.tsv"))
    parser.add_argument("--results", default=None, help="append one JSON line per seed here")
    args = parser.parse_args()
    table = load_table(pathlib.Path(args.table))
    ordered = sorted(table.values(), reverse=True)
    top5 = ordered[len(ordered) // 20 - 1]
    found = []
    for seed in args.seeds:
        config = build_config(
            "cpu",
            seed=seed,
            data_root=args.data_root,
            space_options={"channels": args.channels, "cells": args.cells},
            arch_prior="zero-cost",
            prior_batch=args.batch,
            prior_repeats=args.repeats,
            prior_strength=args.strength,
        )
        started = time.monotonic()
        train, _, info, _ = search_data(config, torch.device("cpu"))
        evidence = zero_cost_evidence(config, train, info, torch.device("cpu"), False)
        seconds = time.monotonic() - started
        logits = config.prior_strength * evidence
        mode = to_string(tuple(logits.argmax(-1).tolist()))
        draws = torch.distributions.Categorical(logits=logits).sample((10_000,))
        accs = [table[to_string(tuple(d.tolist()))] for d in draws]
        share = sum(a >= top5 for a in accs) / len(accs)
        row = {
            "seed": seed,
            "batch": args.batch,
            "repeats": args.repeats,
            "net": f"C={args.channels} N={args.cells}",
            "strength": args.strength,
            "seconds": round(seconds, 1),
            "mode": mode,
            "mode_acc": table[mode],
            "expected_acc": round(statistics.mean(accs), 2),
            "top5_share": round(share, 3),
            "evidence": [[round(v, 3) for v in edge] for edge in evidence.tolist()],
        }
        found.append(table[mode])
        print(
            f"seed {seed}: {mode} {table[mode]:.2f}  E[acc] {row['expected_acc']:.2f} "
            f"top5 {share:.1%}  {seconds:.0f} s",
            flush=True,
        )
        if args.results:
            with open(args.results, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    print(f"ops {OPS}; mode mean {statistics.mean(found):.2f} worst {min(found):.2f}")


if __name__ == "__main__":
    main()
