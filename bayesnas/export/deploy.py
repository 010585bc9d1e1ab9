"""Deployable files of an export: ONNX (with its input contract in ``metadata_props``) and
TorchScript, for serving without bayesnas."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from bayesnas import rundir
from bayesnas.errors import UserError
from bayesnas.export.candidate import (
    export_folder,
    load_description,
    preprocessed,
    recorded_image_size,
)
from bayesnas.export.inputs import ExportedModel, for_onnx
from bayesnas.version import __version__

DEPLOY_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
ONNX_OPSET = 17


def export_deployable(
    export_dir: Path, fmt: str, out: Path | None = None, image_size: int | None = None
) -> Path:
    """Write an export as ONNX or TorchScript (dynamic batch) for serving without bayesnas."""
    if fmt not in DEPLOY_FILES:
        raise UserError(f"unknown format {fmt!r}; choose one of: {', '.join(DEPLOY_FILES)}")
    description, subnet = load_description(Path(export_dir))
    size = image_size or recorded_image_size(description)
    example = torch.rand(2, description["subnet"]["in_channels"], size, size)  # in [0, 1]
    out = Path(out) if out is not None else export_folder(Path(export_dir)) / DEPLOY_FILES[fmt]
    model = preprocessed(description, subnet)
    data = serialise(for_onnx(model) if fmt == "onnx" else model, example, fmt)
    if fmt == "onnx":
        data = with_metadata(data, _metadata(description, size))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_bytes(out, lambda f: f.write(data))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}; choose another --out") from None
    return out


def serialise(model: ExportedModel | nn.Module, example: torch.Tensor, fmt: str) -> bytes:
    """The ONNX or TorchScript file of ``model``, traced on ``example`` with a dynamic batch
    (TorchScript: the sub-network traced, its input normalisation scripted, so that it takes
    uint8 and float images alike; ONNX: float32 images in [0, 1])."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        if fmt == "onnx":  # the TorchScript-based exporter: fast, and enough for these graphs
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)  # strided slices
            torch.onnx.export(
                model,
                (example,),
                cast(Any, buffer),  # a file-like object, which the exporter accepts
                input_names=["images"],
                output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        else:
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still asked
            assert isinstance(model, ExportedModel)  # TorchScript exports single candidates
            mean, std = model.mean.flatten().tolist(), model.std.flatten().tolist()
            net = cast(nn.Module, model.net)
            traced = torch.jit.trace(net, (example - model.mean) / model.std)
            torch.jit.save(torch.jit.script(ExportedModel(traced, mean, std)), buffer)
    return buffer.getvalue()


def _metadata(description: dict[str, Any], size: int) -> dict[str, str]:
    """What a user of the ONNX file needs to know, as its metadata_props."""
    data = description.get("dataset") or {}
    channels = description["subnet"].get("in_channels", 3)
    return {
        "input": "images [N, C, H, W] as float32 in [0, 1] (uint8 images divided by 255; a "
        "float image with any value above 1 is taken as 0..255 and divided by 255 inside); "
        "the model normalises them inside with the training data's mean and std",
        "input_dtype": "float32",
        "input_range": "[0, 1]",
        "input_layout": f"NCHW, C = {channels}, H = W = {size}",
        "normalisation": "(x - mean) / std per channel, applied inside the model",
        "mean": json.dumps(data.get("mean") or [0.0] * channels),
        "std": json.dumps(data.get("std") or [1.0] * channels),
        "dataset": str(data.get("name", "unknown")),
        "architecture": str(description.get("architecture", "")),
        "space": str(description.get("space", "")),
        "bayesnas_version": __version__,
    }


def with_metadata(data: bytes, props: dict[str, str]) -> bytes:
    """The ONNX model ``data`` with ``props`` in its metadata_props and doc string."""
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package: python3 -m pip install onnx") from None
    proto = onnx.load_from_string(data)
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"bayesnas export. Input: {props['input']}."
    return proto.SerializeToString()
