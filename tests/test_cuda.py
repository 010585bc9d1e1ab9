"""CUDA paths: bf16 autocast and channels_last training, host syncs, sampling and export on GPU.

CI has no GPU, so these are skipped there; they run on a GPU machine (docs/benchmarks.md names
the runs). Fashion-MNIST is taken from the usual lookup ($BAYESNAS_DATA or Debian's path).
"""

import warnings
from pathlib import Path

import pyro
import pytest
import torch

import bayesnas
from bayesnas.config import SearchConfig, build_config
from bayesnas.data import search_data
from bayesnas.program import build_program
from bayesnas.search import run_search
from bayesnas.selection.sample import SampleConfig, sample

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _svi_step(program, optimizer, images, labels) -> None:
    with torch.autocast("cuda", torch.bfloat16):
        loss = program.loss(images, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize(
    "space, options, expected_syncs",
    [("resnet", {"width": 8, "blocks": 1}, 0), ("nb201", {"channels": 8, "cells": 1}, 1)],
)
def test_svi_step_reads_back_from_the_gpu_only_where_designed(space, options, expected_syncs):
    """resnet: none; nb201: one read of which examples compute which op (dropped ops are free)."""
    program = build_program(SearchConfig(space=space, space_options=options), 10, 3, 1000)
    program.elbo.to("cuda")
    program.net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(program.elbo.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.randn(16, 3, 32, 32, device="cuda")
    labels = torch.randint(0, 10, (16,), device="cuda")
    _svi_step(program, optimizer, images, labels)  # lazy initialisation may sync once
    torch.cuda.synchronize()
    if expected_syncs == 0:  # any sync raises
        torch.cuda.set_sync_debug_mode("error")
        try:
            _svi_step(program, optimizer, images, labels)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _svi_step(program, optimizer, images, labels)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # torch may attribute a sync of its backward threads to whatever Python line runs next (seen:
    # its own set_sync_debug_mode), so count the syncs in the code this step runs: ours and Pyro's
    roots = (Path(bayesnas.__file__).parent, Path(pyro.__file__).parent)
    syncs = [
        f"{w.filename}:{w.lineno}"
        for w in caught
        if "synchroniz" in str(w.message)
        and any(Path(w.filename).is_relative_to(root) for root in roots)
    ]
    assert len(syncs) == expected_syncs, syncs


TINY = [("nb201", {"channels": 4, "cells": 1}), ("resnet", {"width": 4, "blocks": 1})]


@pytest.mark.parametrize("space, options", TINY)
def test_search_sample_and_export_on_cuda(tmp_path, space, options):
    config = build_config(
        None,
        dataset="fashion-mnist",
        space=space,
        space_options=options,
        epochs=1,
        batch_size=64,
        train_size=1024,
        val_size=512,
        eval_size=512,
        gate_lr=1.0,
        device="cuda",
    )
    summary = run_search(config, tmp_path / "run", progress=False)
    assert 0.0 <= summary["mode_val_acc"] <= 1.0
    run_dir, rows = sample(SampleConfig(run=tmp_path / "run", n=8, top_k=1, progress=False))
    model = bayesnas.load_exported(run_dir / "export" / "rank-1").cuda()
    _, val, _, _ = search_data(config, torch.device("cuda"))
    correct = total = 0
    with torch.no_grad():
        # the exported model takes images as users have them (uint8) and normalises inside
        for images, labels in zip(val.images.split(256), val.labels.split(256), strict=True):
            correct += int((model(images).argmax(1) == labels).sum())
            total += labels.numel()
    assert total == 512
    assert abs(correct / total - rows[0]["val_acc"]) <= 1 / total  # same figure on the GPU
