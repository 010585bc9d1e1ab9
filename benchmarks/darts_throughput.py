"""Search-step images/s of the darts space (DARTS's search network with pair gates).

    OMP_NUM_THREADS=1 python benchmarks/darts_throughput.py --device cpu --steps 3
    python benchmarks/darts_throughput.py --device cuda --steps 20

One SVI step (Eq. 15 forward, backward, SGD with Nesterov momentum on weights and gate logits)
of the search network (``--cells`` 8, ``--channels`` 16: DARTS's search setting) on a random
CIFAR-sized batch (``--batch`` 64), for each draw the search makes:

1. ``warmup-batch``: exact draws, one genotype for the whole batch (``--warmup-draws batch``);
2. ``warmup-example``: exact draws, one genotype per example (``--warmup-draws example``);
3. ``relaxed``: q learning, the relaxed per-example mixture at tau 1 (every op computed).

The median over the timed steps after one untimed step is reported (CUDA synchronised around
each step; bf16 autocast on CUDA, fp32 on CPU, as the search runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bayesnas.config import SearchConfig
from bayesnas.program import build_program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    options = {"channels": args.channels, "cells": args.cells}
    program = build_program(SearchConfig(space="darts", space_options=options), 10, 3, 500_000)
    program.elbo.to(device)
    params = [p for p in program.model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        [*params, program.guide.gate_logits], lr=0.01, momentum=0.9, nesterov=True
    )
    images = torch.randn(args.batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    cuda = device.type == "cuda"
    print(f"darts C={args.channels} cells={args.cells} batch {args.batch} on {device}")
    for name, relaxed, shared in (
        ("warmup-batch", False, True),
        ("warmup-example", False, False),
        ("relaxed", True, False),
    ):
        program.guide.relaxed, program.guide.shared_exact = relaxed, shared
        times = []
        for step in range(args.steps + 1):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
                loss = program.loss(images, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cuda:
                torch.cuda.synchronize()
            if step:
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        print(f"{name:15s} {seconds:8.3f} s/step {args.batch / seconds:9.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
