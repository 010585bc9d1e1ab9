"""Training images/s of bayesnas's search step against xautodl's NAS-Bench-201 supernets.

    python benchmarks/throughput.py --device cuda
    python benchmarks/throughput.py --device cpu --steps 10

Seven configurations train the NAS-Bench-201 super-network (C=16, N=5 unless told otherwise) at
batch 64 on real CIFAR-10 (search-train split, augmented as the ``bench`` preset searches) and
are timed per training step (forward, backward, optimiser step), the CUDA queue synchronised
around every step; the table reports the median over the timed steps after warm-up:

1. ``bayesnas-warmup``: ``Searcher._step`` itself at the first step of a search: q uniform and
   frozen, the weights trained on exact draws from it (one op per edge and example);
   ``bayesnas-warmup-batch``: the same with ``--warmup-draws batch`` (one path per batch).
2. ``bayesnas-start``: the first step in which q learns: uniform q, relaxed draws, tau 1.0.
3. ``bayesnas-end``: the last step: a sharp q (the mode cell's op has ``--sharp-prob`` on every
   edge) and tau ``--final-tau``.
4. ``bayesnas-pruned``: the last step of a search whose progressive pruning left one op per edge
   (the other ops' probability exactly 0).
5. ``exact-subnet``: a plain step (cross-entropy, SGD) of ``build_subnet`` of q's mode, the
   physically smaller network of that one cell: the floor a sharp posterior can approach.
6. ``xautodl-GDAS``: xautodl's GDAS supernet and its search step: one Gumbel-hard path for the
   weights on the training batch, then the architecture step (a second forward/backward on a
   validation batch, Adam on the arch logits). Its images/s counts the training batch only.
7. ``xautodl-RSPS``: xautodl's RANDOM supernet (random search with parameter sharing): one
   uniform path per step, weights only.
8. ``... +capture``: rows 1-4 again on a second Searcher built with ``--capture`` (``--capture
   auto``: ``cuda-graphs`` on CUDA, ``compile`` on CPU; bayesnas/search/capture.py): the
   network's calls compiled, nb201 computing every op q can draw on the whole batch. The untimed
   warm-up rounds include the compilations; a second table puts each phase's images/s with and
   without capture side by side.

Every configuration runs with bayesnas's precision settings (bf16 autocast and channels_last on
CUDA, fp32 on CPU), so that the ratios compare the algorithms, not the number formats. Steps
of the five alternate round by round so that drifts of a shared machine's speed hit all alike.
Batches are drawn and augmented before timing, so data serving is not counted.

xautodl is a benchmark-only dependency (the ``bench`` extra). Its wheel pins numpy<=1.19.5,
which has no wheel for Python >= 3.10, so pip cannot resolve it there; install it with
``pip install --no-deps xautodl`` (its supernets need only torch, numpy and pyyaml).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

import bayesnas
import bayesnas.search.searcher
from bayesnas.config import build_config
from bayesnas.data import TensorData, dataset_info, search_split
from bayesnas.search import PRUNED_LOGIT, Searcher
from bayesnas.spaces.nb201.cell import OPS
from bayesnas.spaces.subnet import build_subnet

SHARED_TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar-10-python.tar.gz"
MODE_CELL = (  # a realistic end-of-search mode: convs and skips, no pooling
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
ROWS = (
    "bayesnas-warmup",
    "bayesnas-warmup-batch",
    "bayesnas-start",
    "bayesnas-end",
    "bayesnas-pruned",
    "exact-subnet",
    "xautodl-GDAS",
    "xautodl-RSPS",
)
CAPTURED = ROWS[:5]  # the phases a captured Searcher runs too, as "<row>+capture"

Batch = tuple[torch.Tensor, torch.Tensor]


def random_search_data(config, device):
    """Stand-in for ``bayesnas.search.search_data`` when CIFAR-10 is absent: random uint8 images
    of CIFAR-10's shape, split 25k/25k like the real training set (so N of Eq. 15 is the same)."""
    info = dataset_info("cifar10")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (50_000,), generator=generator)
    train, val = search_split(len(labels), config.val_fraction, config.seed)
    augmentation = {"pad": 0, "flip": False, "cutout": 0, **(config.augmentation or {})}
    return (
        TensorData(images[train], labels[train], info, device, augmentation),
        TensorData(images[val], labels[val], info, device, None),
        info,
    )


def sharp_logits(net, arch: str, prob: float) -> torch.Tensor:
    """Gate logits whose softmax puts ``prob`` on ``arch``'s op of every edge, the rest evenly."""
    mode = net.architecture(arch)
    rest = math.log((1 - prob) / (len(OPS) - 1))
    return torch.where(mode.bool(), math.log(prob), rest)


def xautodl_supernet(name: str, channels: int, cells: int):
    """xautodl's NAS-Bench-201 supernet ``name`` as its search scripts build it (affine BN off;
    running statistics off, as NAS-Bench-201's GDAS/RSPS runs: ``GDAS.sh cifar10 0 -1``)."""
    from xautodl.models import get_cell_based_tiny_net, get_search_spaces

    space = get_search_spaces("cell", "nas-bench-201")
    assert list(space) == list(OPS), space
    config = {
        "name": name,
        "C": channels,
        "N": cells,
        "max_nodes": 4,
        "num_classes": 10,
        "space": space,
        "affine": False,
        "track_running_stats": False,
    }
    return get_cell_based_tiny_net(config)


def xautodl_steps(
    args, device: torch.device, train: list[Batch], val: list[Batch]
) -> dict[str, Callable[[int], None]]:
    """The per-step functions of xautodl's GDAS and RSPS (exps/NAS-Bench-201-algos/GDAS.py and
    exps/algos/RANDOM-NAS.py): SGD lr 0.025, Nesterov momentum 0.9, weight decay 5e-4 and a
    gradient-norm clip of 5 on the weights; GDAS's arch step is Adam(3e-4, (0.5, 0.999), 1e-3)."""
    cuda = device.type == "cuda"

    def sgd(params):
        return torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)

    def forward_loss(net, images, labels):
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
            _, logits = net(images)
        return F.cross_entropy(logits.float(), labels)

    def prepare(net):
        net.to(device).train()
        if cuda:
            net.to(memory_format=torch.channels_last)
        return net

    gdas = prepare(xautodl_supernet("GDAS", args.channels, args.cells))
    gdas.set_tau(10.0)  # tau_max of GDAS.sh; the cost is one path whatever tau is
    w_gdas = sgd(gdas.get_weights())
    a_gdas = torch.optim.Adam(gdas.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

    def gdas_step(i: int) -> None:
        (images, labels), (arch_images, arch_labels) = train[i], val[i]
        w_gdas.zero_grad()
        forward_loss(gdas, images, labels).backward()
        torch.nn.utils.clip_grad_norm_(gdas.parameters(), 5)
        w_gdas.step()
        a_gdas.zero_grad()
        forward_loss(gdas, arch_images, arch_labels).backward()
        a_gdas.step()

    rsps = prepare(xautodl_supernet("RANDOM", args.channels, args.cells))
    w_rsps = sgd(rsps.parameters())

    def rsps_step(i: int) -> None:
        images, labels = train[i]
        rsps.random_genotype(True)  # one uniform op per edge, shared by every cell
        w_rsps.zero_grad()
        forward_loss(rsps, images, labels).backward()
        torch.nn.utils.clip_grad_norm_(rsps.parameters(), 5)
        w_rsps.step()

    return {"xautodl-GDAS": gdas_step, "xautodl-RSPS": rsps_step}


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(bayesnas.__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return (
        f"CPU {cpu} ({os.cpu_count()} logical cores), torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, device {device} ({name}), bayesnas {commit} "
        f"({Path(bayesnas.__file__).parent})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, help="untimed steps first (CUDA 3, CPU 1)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--data-root", help="CIFAR-10 root (default: the shared tarball)")
    parser.add_argument("--no-xautodl", action="store_true", help="skip xautodl's supernets")
    parser.add_argument("--final-tau", type=float, default=0.1, help="tau at the search's end")
    parser.add_argument("--sharp-prob", type=float, default=0.99, help="q of the mode op")
    parser.add_argument("--mode-arch", default=MODE_CELL, help="q's mode cell at the end")
    parser.add_argument(
        "--capture",
        choices=("auto", "none", "compile", "cuda-graphs"),
        default="auto",
        help="rows with step capture (auto: cuda-graphs on CUDA, compile on CPU; none: no rows)",
    )
    args = parser.parse_args()
    if not 1 / len(OPS) < args.sharp_prob < 1:
        parser.error(f"--sharp-prob must lie in (1/{len(OPS)}, 1)")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.warmup is None:
        args.warmup = 3 if cuda else 1
    if args.capture == "auto":
        args.capture = "cuda-graphs" if cuda else "compile"
    rounds = args.warmup + args.steps

    with tempfile.TemporaryDirectory(prefix="bayesnas-throughput-") as scratch:
        data_root, fake = args.data_root, False
        if data_root is None and SHARED_TARBALL.is_file():
            data_root = os.path.join(scratch, "data")  # extracted here, removed at the end
            os.makedirs(data_root)
            os.symlink(SHARED_TARBALL, os.path.join(data_root, SHARED_TARBALL.name))
        elif data_root is None:
            fake = True
            print(f"WARNING: {SHARED_TARBALL} absent and no --data-root: random images stand in")
        # the bench preset: the NAS-Bench-201 search settings (lr, augmentation, 25k/25k split)
        config = build_config(
            "bench",
            space_options={"channels": args.channels, "cells": args.cells},
            batch_size=args.batch_size,
            tau=1.0,
            tau_final=args.final_tau,
            device=args.device,
            data_root=data_root,
        )
        patch = mock.patch.object(bayesnas.search.searcher, "search_data", random_search_data)
        with patch if fake else contextlib.nullcontext():
            # The real Searcher: its program, optimiser (SGD over weights and gate logits),
            # schedule and _step are the search's own; run_dir is only written by run().
            searcher = Searcher(config, Path(scratch), progress=False)
            captured = None
            if args.capture != "none":  # the same program (same seed), its steps captured
                capture_config = config.with_updates(capture=args.capture)
                captured = Searcher(capture_config, Path(scratch), progress=False)
        batches = searcher.train_data.train_batches(args.batch_size, 0, config.seed)
        train = list(itertools.islice(batches, rounds))
        val = list(itertools.islice(searcher.val_data.eval_batches(args.batch_size), rounds))
    program = searcher.program
    guide = program.guide
    uniform = torch.zeros_like(guide.gate_logits)
    sharp = sharp_logits(program.net, args.mode_arch, args.sharp_prob).to(guide.gate_logits)
    pruned = torch.where(sharp == sharp.max(-1, keepdim=True).values, 0.0, PRUNED_LOGIT)
    first, last = searcher.warmup_steps, searcher.total_steps - 1

    def bayesnas_step(step: int, on: Searcher = searcher) -> Callable[[int], None]:
        def run(i: int) -> None:
            on._step(*train[i], step)

        return run

    def setup(
        logits: torch.Tensor, step: int, shared: bool = False, on: Searcher = searcher
    ) -> Callable[[], None]:
        def run() -> None:  # untimed: lr and tau of that step, and q (and the plan it fixes)
            on._schedule(step)
            on.program.guide.shared_exact = shared  # --warmup-draws batch: one path per batch
            with torch.no_grad():
                on.program.guide.gate_logits.copy_(logits)
            on.capture.refresh()

        return run

    arch = program.net.architecture(args.mode_arch)
    assert torch.equal(program.net.mode(sharp.cpu()), arch)
    subnet = build_subnet(program.net, arch.to(device)).train()
    if cuda:
        subnet.to(memory_format=torch.channels_last)
    sub_opt = torch.optim.SGD(subnet.parameters(), lr=config.lr, momentum=0.9, nesterov=True)

    def subnet_step(i: int) -> None:
        images, labels = train[i]
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
            logits = subnet(images)
        loss = F.cross_entropy(logits.float(), labels)
        sub_opt.zero_grad(set_to_none=True)
        loss.backward()
        sub_opt.step()

    phase = {
        "bayesnas-warmup": 0,
        "bayesnas-warmup-batch": 0,
        "bayesnas-start": first,
        "bayesnas-end": last,
        "bayesnas-pruned": last,
    }
    setups_args = {
        "bayesnas-warmup": (uniform, 0, False),
        "bayesnas-warmup-batch": (uniform, 0, True),
        "bayesnas-start": (uniform, first, False),
        "bayesnas-end": (sharp, last, False),
        "bayesnas-pruned": (pruned, last, False),
    }
    steps: dict[str, Callable[[int], None]] = {
        name: bayesnas_step(step) for name, step in phase.items()
    }
    steps["exact-subnet"] = subnet_step
    setups = {name: setup(*values) for name, values in setups_args.items()}
    if captured is not None:
        for name in CAPTURED:
            steps[f"{name}+capture"] = bayesnas_step(phase[name], captured)
            logits, step, shared = setups_args[name]
            setups[f"{name}+capture"] = setup(logits, step, shared, captured)
    note = None
    if args.no_xautodl:
        note = "xautodl skipped (--no-xautodl)"
    else:
        try:
            steps.update(xautodl_steps(args, device, train, val))
        except ImportError as exc:
            note = f"xautodl not installed ({exc}): pip install --no-deps xautodl"
    random.seed(config.seed)

    times: dict[str, list[float]] = {name: [] for name in steps}
    started = time.perf_counter()
    for i in range(rounds):
        for name, step in steps.items():
            if name in setups:
                setups[name]()
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step(i)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    wall = time.perf_counter() - started

    med = {name: statistics.median(t) for name, t in times.items()}
    rate = {name: args.batch_size / m for name, m in med.items()}
    print(machine(device))
    source = "random images (no CIFAR-10)" if fake else "CIFAR-10 search-train (augmented)"
    print(
        f"nb201 C={args.channels} N={args.cells}, batch {args.batch_size}, {source}; median of "
        f"{args.steps} timed steps after {args.warmup} warm-up; end: q(mode)={args.sharp_prob} "
        f"tau={args.final_tau}, mode {args.mode_arch}; {wall:.0f} s of steps"
    )
    if note:
        print(note)
    print()
    print("| configuration | images/s | ms/step | vs xautodl-GDAS | vs exact-subnet |")
    print("|---|---:|---:|---:|---:|")
    for name in (*ROWS, *(f"{name}+capture" for name in CAPTURED)):
        if name not in med and name.endswith("+capture"):
            continue
        if name not in med:
            print(f"| {name} | - | - | - | - |")
            continue
        gdas = f"{rate[name] / rate['xautodl-GDAS']:.2f}" if "xautodl-GDAS" in rate else "-"
        print(
            f"| {name} | {rate[name]:.1f} | {med[name] * 1e3:.1f} | {gdas} | "
            f"{rate[name] / rate['exact-subnet']:.2f} |"
        )
    print()
    print(
        "xautodl-GDAS's step also runs its architecture step on a validation batch; its "
        "images/s counts the training batch only. Ratios are of images/s (higher is faster)."
    )
    if "xautodl-GDAS" in rate:
        for name in ("bayesnas-warmup", "bayesnas-warmup-batch", "bayesnas-start"):
            print(f"{name} / GDAS: {rate[name] / rate['xautodl-GDAS']:.3f}")
    for name in ("bayesnas-end", "bayesnas-pruned"):
        print(f"{name} / exact-subnet-plain: {rate[name] / rate['exact-subnet']:.3f}")
    if captured is not None:
        print()
        print(f"Step capture (--capture {args.capture}), images/s:")
        print()
        print("| phase | eager | with capture | capture / eager | captured / exact-subnet |")
        print("|---|---:|---:|---:|---:|")
        for name in CAPTURED:
            with_capture = rate[f"{name}+capture"]
            print(
                f"| {name} | {rate[name]:.1f} | {with_capture:.1f} | "
                f"{with_capture / rate[name]:.2f} | {with_capture / rate['exact-subnet']:.2f} |"
            )


if __name__ == "__main__":
    main()
