"""SVI step time against a plain PyTorch step computing the same loss (Eq. 15) on the same network.

    python benchmarks/svi_overhead.py --space nb201 --channels 16 --cells 5 --batch-size 64
    python benchmarks/svi_overhead.py --space resnet --width 16 --batch-size 64

Prints images/s of both and their ratio (target: SVI / plain <= 1.05). Steps alternate between
the two so that drifts of the machine's speed hit both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.distributions import kl_divergence

from bayesnas.config import SearchConfig
from bayesnas.program import Program, build_program


def plain_loss(program: Program, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 15 written directly in PyTorch: the reference the Pyro program is timed against."""
    net, guide = program.net, program.guide
    q = guide.posterior(images.shape[0])
    gates = q.rsample()
    nll = F.cross_entropy(net(images, gates).float(), labels)
    prior = (
        0.5
        * program.model.prior_l2
        * ((gates.flatten(1) @ net.gated_sq_norms().flatten()).mean() + net.ungated_sq_norm())
    )
    kl = kl_divergence(guide.posterior(1), net.layout.prior(1, images.device, torch.float32)).sum()
    return nll + (prior + kl) / program.model.num_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--channels", type=int)
    parser.add_argument("--cells", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--blocks", type=int)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    options = {k: getattr(args, k) for k in ("channels", "cells", "width", "blocks")}
    config = SearchConfig(space=args.space, space_options={k: v for k, v in options.items() if v})
    program = build_program(config, num_classes=10, in_channels=3, num_data=250_000)
    program.elbo.to(device)
    cuda = device.type == "cuda"
    if cuda:
        program.net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(program.elbo.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)

    def step(loss_fn) -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
            loss = loss_fn(images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def svi(x, y):
        return program.loss(x, y)

    def plain(x, y):
        return plain_loss(program, x, y)

    for _ in range(3):
        step(svi), step(plain)
    times: dict[str, list[float]] = {"svi": [], "plain": []}
    for _ in range(args.steps):
        times["svi"].append(step(svi))
        times["plain"].append(step(plain))
    med = {k: statistics.median(v) for k, v in times.items()}
    params = sum(p.numel() for p in program.net.parameters()) / 1e6
    threads = torch.get_num_threads()
    print(
        f"space {args.space} {config.space_options} ({params:.2f} M params), batch "
        f"{args.batch_size}, {args.image_size}px, device {device}, threads {threads}"
    )
    for name in ("svi", "plain"):
        rate = args.batch_size / med[name]
        print(f"{name:5s}: {med[name] * 1e3:8.1f} ms/step  {rate:8.1f} images/s")
    print(f"SVI / plain step time: {med['svi'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
