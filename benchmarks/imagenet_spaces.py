"""Search-step images/s and parameter counts of the ImageNet priors (densenet121, resnet50).

    OMP_NUM_THREADS=1 python benchmarks/imagenet_spaces.py --space densenet121 --image-size 64
    python benchmarks/imagenet_spaces.py --space resnet50 --base-width 16 --device cuda

One search step as ``Searcher._step`` takes it after the warm-up: Eq. 15 on a batch with one
relaxed (Concrete) gate draw per example, backward, SGD with Nesterov momentum on the weights
and the gate logits. Random images of ``--image-size`` pixels and 1000 classes; data serving is
not counted. Prints the super-network's parameters, those of the sub-network that keeps every
gate, and the median images/s over the timed steps after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bayesnas.config import SearchConfig
from bayesnas.program import build_program

OPTIONS = ("growth", "dense_layers", "base_width", "bottlenecks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=["densenet121", "resnet50"], required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    for name in OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int)
    args = parser.parse_args()
    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    config = SearchConfig(space=args.space, space_options=options, tau=1.0).validated()
    program = build_program(config, num_classes=1000, in_channels=3, num_data=1_281_167)
    device = torch.device(args.device)
    program.net.to(device)
    program.guide.to(device)
    params = [*program.net.parameters(), program.guide.gate_logits]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    cuda = device.type == "cuda"
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 1000, (args.batch_size,), device=device)
    times = []
    for step in range(args.warmup + args.steps):
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
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    net = program.net
    total = sum(p.numel() for p in net.parameters())
    every = net.count_parameters(torch.ones(net.layout.shape))
    print(
        f"{args.space} {options or 'defaults'}: {total / 1e6:.3f} M parameters "
        f"(all gates on: {every / 1e6:.3f} M), {net.layout.shape[0]} gates; "
        f"{args.image_size}px batch {args.batch_size} on {args.device} "
        f"(torch threads {torch.get_num_threads()}): "
        f"{args.batch_size / statistics.median(times):.1f} images/s "
        f"(median of {len(times)} steps, {min(times):.2f}-{max(times):.2f} s/step)"
    )


if __name__ == "__main__":
    main()
