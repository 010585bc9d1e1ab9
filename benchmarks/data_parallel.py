"""Images/s of the search step in one process and in a torchrun data-parallel job.

    python benchmarks/data_parallel.py --device cpu                      # 1 process
    torchrun --standalone --nproc-per-node 2 benchmarks/data_parallel.py --device cpu

Every rank runs ``Searcher._step`` (the search's own step: Eq. 15 on its shard, backward, the
all-reduce of gradients and step statistics, SGD) on its shard of the same global batches; a
step ends when the slowest rank's all-reduce ends, so the global batch over the median step
time is the job's throughput. Two phases are timed: the warm-up (exact draws, q frozen) and
the first step in which q learns (relaxed draws). Random CIFAR-sized images stand in for data
(the step's cost does not depend on pixel values); batches are served before timing.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from throughput import random_search_data

import bayesnas.search.searcher
from bayesnas.config import build_config
from bayesnas.search import Searcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per phase")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--sync-bn", action="store_true")
    args = parser.parse_args()
    config = build_config(
        "bench",
        space_options={"channels": args.channels, "cells": args.cells},
        batch_size=args.batch_size,
        device=args.device,
        sync_bn=args.sync_bn,
    )
    with (
        tempfile.TemporaryDirectory() as scratch,
        mock.patch.object(bayesnas.search.searcher, "search_data", random_search_data),
    ):
        searcher = Searcher(config, Path(scratch), progress=False)
    dist, cuda = searcher.dist, searcher.device.type == "cuda"
    shard = (dist.rank, dist.world)
    batches = searcher.train_data.train_batches(args.batch_size, 0, config.seed, 0, shard)
    rounds = args.warmup + args.steps
    train = list(itertools.islice(batches, rounds))
    rates = {}
    for phase, step in (("warm-up", 0), ("q learns", searcher.warmup_steps)):
        times = []
        for i in range(rounds):
            searcher._schedule(step)
            if cuda:
                torch.cuda.synchronize(searcher.device)
            started = time.perf_counter()
            searcher._step(*train[i], step)
            if cuda:
                torch.cuda.synchronize(searcher.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - started)
        slowest = max(dist.all_gather(statistics.median(times)))
        rates[phase] = (args.batch_size / slowest, slowest)
    if dist.main:
        print(
            f"nb201 C={args.channels} N={args.cells}, global batch {args.batch_size}, "
            f"{dist.world} process(es), device {searcher.device}, torch threads "
            f"{torch.get_num_threads()}, sync-bn {args.sync_bn}; median of {args.steps} steps"
        )
        print("| phase | processes | images/s | ms/step |")
        print("|---|---:|---:|---:|")
        for phase, (rate, seconds) in rates.items():
            print(f"| {phase} | {dist.world} | {rate:.1f} | {seconds * 1e3:.0f} |")


if __name__ == "__main__":
    main()
