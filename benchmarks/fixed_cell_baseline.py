"""Baseline: one fixed NAS-Bench-201 cell trained alone on the search-train split.

    python benchmarks/fixed_cell_baseline.py --steps 600 --channels 8   # the quick preset's budget

A search is only worth its cost if its best candidate beats this naive cell (all edges
nor_conv_3x3) trained for the same number of steps on the same data, scored on the same
held-out validation split. Prints the validation accuracy and the wall time.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from bayesnas.data import build_search_data
from bayesnas.spaces import create_space
from bayesnas.spaces.scoring import evaluate_architecture

ALL_CONV = "+".join("|" + "|".join(f"nor_conv_3x3~{i}" for i in range(n)) + "|" for n in (1, 2, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--cell", default=ALL_CONV, help="NAS-Bench-201 string of the cell")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=1)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--train-size", type=int, default=25600)
    parser.add_argument("--val-size", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train, val, info, _ = build_search_data(
        args.dataset,
        None,
        device=torch.device("cpu"),
        train_size=args.train_size,
        val_size=args.val_size,
        split_seed=args.seed,
        augmentation={"pad": 0, "flip": False, "cutout": 0},
    )
    net = create_space(
        "nb201",
        channels=args.channels,
        cells=args.cells,
        in_channels=info.channels,
        num_classes=info.num_classes,
    )
    arch = net.architecture(args.cell)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
    )
    start, step, epoch = time.time(), 0, 0
    while step < args.steps:
        for images, labels in train.train_batches(args.batch_size, epoch, args.seed):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * step / args.steps))
            loss = F.cross_entropy(net.forward_architecture(images, arch), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == args.steps:
                break
        epoch += 1
    scores = evaluate_architecture(net, arch, val.eval_batches(256))
    print(
        f"{args.cell} C={args.channels} N={args.cells}, {args.steps} steps of "
        f"{args.batch_size}: validation accuracy {scores['accuracy']:.2%} on "
        f"{scores['images']} images, {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
