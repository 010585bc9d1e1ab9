"""An exported candidate: one architecture as a standalone sub-network, loadable without the search.

An export folder holds ``architecture.json`` (space, architecture, sub-network spec, input
normalisation), ``weights.safetensors`` (only the kept weights) and ``metrics.json``;
``export_deployable`` turns it into ONNX or TorchScript for serving without bayesnas.

Every exported model takes images as users have them, ``[N, C, H, W]``, and normalises them
inside with the training data's mean and std (``ExportedModel``): ``load_exported`` and
TorchScript take uint8 (0..255) or float in [0, 1]; ONNX takes float32 in [0, 1] and says so in
its ``metadata_props``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from bayesnas import __version__, rundir
from bayesnas.data import DATASETS, dataset_info
from bayesnas.errors import UserError
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.subnet import build_subnet, subnet_from_spec, subnet_spec

FORMAT = 1
INPUT = (
    "images [N, C, H, W]: uint8 in 0..255 or float in [0, 1] (ONNX: float32 in [0, 1], that is "
    "uint8 / 255); the model normalises them inside with the training data's mean and std"
)
ARCHITECTURE, WEIGHTS, METRICS = "architecture.json", "weights.safetensors", "metrics.json"


def export_candidate(
    out_dir: Path,
    net: SuperNet,
    arch: torch.Tensor,
    *,
    metrics: dict[str, Any],
    dataset: dict[str, Any],
    subnet: nn.Module | None = None,
) -> Path:
    """Write sub-network ``arch`` of ``net`` to ``out_dir`` so it loads without the super-net:
    with its inherited weights, or with those of ``subnet`` (the same sub-network, fine-tuned)."""
    out_dir = Path(out_dir)
    rundir.create(out_dir)
    subnet = build_subnet(net, arch) if subnet is None else subnet
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
            "input": INPUT,
            "bayesnas_version": __version__,
        },
    )
    return out_dir


class ExportedModel(nn.Module):
    """An exported sub-network that takes images as users have them: ``[N, C, H, W]``, uint8
    in 0..255 or float in [0, 1]. It normalises them with the training data's per-channel mean
    and std (uint8 exactly as the search did) and returns logits. ``.net`` is the bare
    sub-network, which takes normalised images."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.mean: torch.Tensor
        self.std: torch.Tensor
        for name, values in (("mean", mean), ("std", std)):  # not in the state dict
            tensor = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:  # as bayesnas.data.normalize: bit-identical logits
            x = (images.float() - self.mean * 255.0) / (self.std * 255.0)
        else:
            x = (images - self.mean) / self.std
        return self.net(x)


def load_exported(path: str | Path) -> nn.Module:
    """The exported model at ``path`` (its folder or architecture.json; an ensemble's averaging
    EnsembleModel), in eval mode. It takes images ``[N, C, H, W]`` as uint8 or float in [0, 1]."""
    from bayesnas.export import ensemble as export_ensemble  # it imports this module

    if export_ensemble.is_ensemble(Path(path)):
        return export_ensemble.load_ensemble(Path(path))
    return preprocessed(*load_description(Path(path)))


def preprocessed(description: dict[str, Any], subnet: nn.Module) -> ExportedModel:
    """``subnet`` behind the normalisation recorded in the export (none if it records none)."""
    data = description.get("dataset")
    data = data if isinstance(data, dict) else {}
    channels = description["subnet"].get("in_channels", 3)
    mean = data.get("mean") or [0.0] * channels
    std = data.get("std") or [1.0] * channels

    def valid(values: Any) -> bool:
        return (
            isinstance(values, list)
            and len(values) == channels
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)
        )

    if not (valid(mean) and valid(std)):
        raise UserError(f"the export records no valid mean and std for its {channels} channels")
    return ExportedModel(subnet, list(mean), list(std)).eval()


def read_export(path: str | Path) -> tuple[dict[str, Any], nn.Module]:
    """The export's description (its architecture.json) and its sub-network, in eval mode."""
    return load_description(Path(path))


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


def export_folder(path: Path) -> Path:
    """The export folder of a path to it or to one of its files."""
    return path.parent if path.is_file() else path


def load_description(path: Path) -> tuple[dict[str, Any], nn.Module]:
    """The export's description and its sub-network with weights; UserError on any defect."""
    folder = export_folder(path)
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


def recorded_image_size(description: dict[str, Any]) -> int:
    """The input image size recorded with the export."""
    size = (description.get("dataset") or {}).get("image_size")
    if not isinstance(size, int) or size < 1:
        raise UserError("the export does not record its input image size; pass an image size")
    return size
