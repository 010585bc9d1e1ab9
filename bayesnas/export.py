"""Exported candidates: one architecture as a standalone sub-network, loadable without the search.

An export folder holds ``architecture.json`` (space, architecture, sub-network spec, input
normalisation), ``weights.safetensors`` (only the kept weights) and ``metrics.json``;
``export_deployable`` turns it into ONNX or TorchScript for serving without bayesnas.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from bayesnas import __version__, rundir
from bayesnas.datasets import DATASETS, dataset_info
from bayesnas.errors import UserError
from bayesnas.spaces.base import SuperNet
from bayesnas.subnets import build_subnet, subnet_from_spec, subnet_spec

FORMAT = 1
ARCHITECTURE, WEIGHTS, METRICS = "architecture.json", "weights.safetensors", "metrics.json"
DEPLOY_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
ONNX_OPSET = 17


def export_candidate(
    out_dir: Path,
    net: SuperNet,
    arch: torch.Tensor,
    *,
    metrics: dict[str, Any],
    dataset: dict[str, Any],
) -> Path:
    """Write sub-network ``arch`` of ``net`` to ``out_dir`` so it loads without the super-net."""
    out_dir = Path(out_dir)
    rundir.create(out_dir)
    subnet = build_subnet(net, arch)
    state = {k: v.detach().cpu().contiguous() for k, v in subnet.state_dict().items()}
    rundir.atomic_write_bytes(out_dir / WEIGHTS, lambda f: f.write(safetensors.torch.save(state)))
    rundir.write_json(out_dir / METRICS, metrics)
    rundir.write_json(  # last, so a folder with an architecture.json is complete
        out_dir / ARCHITECTURE,
        {
            "format": FORMAT,
            "space": net.space_name,
            "space_config": net.config,
            "architecture": net.describe(arch),
            "parameters": sum(p.numel() for p in subnet.parameters()),
            "subnet": subnet_spec(net, arch),
            "dataset": _with_input_facts(dataset),
            "bayesnas_version": __version__,
        },
    )
    return out_dir


def load_exported(path: str | Path) -> nn.Module:
    """The exported sub-network at ``path`` (its folder or architecture.json), in eval mode."""
    return _load(Path(path))[1]


def read_export(path: str | Path) -> tuple[dict[str, Any], nn.Module]:
    """The export's description (its architecture.json) and its sub-network, in eval mode."""
    return _load(Path(path))


def write_trained(
    out_dir: Path,
    model: nn.Module,
    *,
    space: str,
    space_config: dict[str, Any],
    architecture: str,
    subnet: dict[str, Any],
    dataset: dict[str, Any],
) -> Path:
    """Write a trained sub-network (built from spec ``subnet``) to ``out_dir`` in the export
    format, so that ``load_exported(out_dir)`` loads it."""
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    rundir.atomic_write_bytes(out_dir / WEIGHTS, lambda f: f.write(safetensors.torch.save(state)))
    rundir.write_json(  # last, so a folder with an architecture.json is complete
        out_dir / ARCHITECTURE,
        {
            "format": FORMAT,
            "space": space,
            "space_config": space_config,
            "architecture": architecture,
            "parameters": sum(p.numel() for p in model.parameters()),
            "subnet": subnet,
            "dataset": _with_input_facts(dataset),
            "bayesnas_version": __version__,
        },
    )
    return out_dir


def export_deployable(
    export_dir: Path, fmt: str, out: Path | None = None, image_size: int | None = None
) -> Path:
    """Write an export as ONNX or TorchScript (dynamic batch) for serving without bayesnas."""
    if fmt not in DEPLOY_FILES:
        raise UserError(f"unknown format {fmt!r}; choose one of: {', '.join(DEPLOY_FILES)}")
    description, subnet = _load(Path(export_dir))
    size = image_size or _image_size(description)
    example = torch.randn(2, description["subnet"]["in_channels"], size, size)
    out = Path(out) if out is not None else _folder(Path(export_dir)) / DEPLOY_FILES[fmt]
    data = _serialise(subnet, example, fmt)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_bytes(out, lambda f: f.write(data))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}; choose another --out") from None
    return out


def _serialise(subnet: nn.Module, example: torch.Tensor, fmt: str) -> bytes:
    """The ONNX or TorchScript file of ``subnet``, traced on ``example`` with a dynamic batch."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        if fmt == "onnx":  # the TorchScript-based exporter: fast, and enough for these graphs
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # strided slices
            torch.onnx.export(
                subnet,
                (example,),
                buffer,
                input_names=["images"],
                output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        else:
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still asked
            torch.jit.save(torch.jit.trace(subnet, example), buffer)
    return buffer.getvalue()


def _folder(path: Path) -> Path:
    """The export folder of a path to it or to one of its files."""
    return path.parent if path.is_file() else path


def _load(path: Path) -> tuple[dict[str, Any], nn.Module]:
    """The export's description and its sub-network with weights; UserError on any defect."""
    folder = _folder(path)
    file, weights = folder / ARCHITECTURE, folder / WEIGHTS
    if not file.is_file():
        raise UserError(f"{path} is not a bayesnas export: {file} does not exist")
    try:
        description = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{file} is not readable JSON ({type(exc).__name__}); export again"
        ) from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise UserError(f"{file} is not a bayesnas export of format {FORMAT}")
    try:
        subnet = subnet_from_spec(description["subnet"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{file} has a malformed sub-network description: {exc}") from None
    if not weights.is_file():
        raise UserError(f"{weights} does not exist; export the candidate again")
    try:
        state = safetensors.torch.load_file(weights)
    except Exception as exc:  # safetensors signals a corrupt file with several exception types
        raise UserError(
            f"{weights} is not a readable safetensors file ({type(exc).__name__})"
        ) from None
    expected = {k: tuple(v.shape) for k, v in subnet.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    misfits = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    if misfits:
        raise UserError(
            f"{weights} does not fit the architecture in {file}: {len(misfits)} tensors missing, "
            f"unexpected or misshapen (first: {misfits[0]})"
        )
    subnet.load_state_dict(state)
    return description, subnet.eval()


def _with_input_facts(dataset: dict[str, Any]) -> dict[str, Any]:
    """``dataset`` completed with a known data set's mean, std and image size where absent."""
    if dataset.get("name") not in DATASETS:
        return dict(dataset)
    info = dataset_info(dataset["name"])
    standard = {"mean": list(info.mean), "std": list(info.std), "image_size": info.image_size}
    return {**standard, **dataset}


def _image_size(description: dict[str, Any]) -> int:
    """The input image size recorded with the export."""
    size = (description.get("dataset") or {}).get("image_size")
    if not isinstance(size, int) or size < 1:
        raise UserError("the export does not record its input image size; pass an image size")
    return size
