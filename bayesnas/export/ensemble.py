"""An exported ensemble: its members' physically smaller networks and one module averaging them.

The folder holds ``members.json`` (format, members' sub-folders, weights, provenance) and one
ordinary export folder per member (``member-1/`` ...). ``load_exported`` on the folder returns an
``EnsembleModel``: it takes images as a single export does and returns the *log* of the
weighted mean of the members' class probabilities, so ``softmax`` of its output is the
ensemble's prediction and ``argmax`` its class. ONNX works for it too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bayesnas import rundir
from bayesnas.errors import UserError
from bayesnas.export.candidate import load_exported, read_export
from bayesnas.export.deploy import serialise, with_metadata
from bayesnas.export.inputs import for_onnx
from bayesnas.version import __version__

MEMBERS = "members.json"
FORMAT = 1


class EnsembleModel(nn.Module):
    """Weighted average of the members' probabilities; outputs its log (log-probabilities)."""

    def __init__(self, members: list[nn.Module], weights: list[float]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.weights: torch.Tensor
        self.register_buffer(
            "weights", torch.tensor(weights, dtype=torch.float32), persistent=False
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=images.device)
        for index, member in enumerate(self.members):  # unrolled when traced: a fixed set
            term = self.weights[index] * torch.softmax(member(images).float(), 1)
            total = total + term
        return torch.log(total.clamp_min(1e-12))


def write_members_file(
    out_dir: Path, folders: list[str], weights: list[float], about: dict
) -> None:
    """Write members.json last, so that a folder holding it is a complete ensemble export."""
    rundir.write_json(
        out_dir / MEMBERS,
        {
            "format": FORMAT,
            "kind": "ensemble",
            "members": folders,
            "weights": weights,
            "output": "log of the weighted mean of the members' class probabilities",
            **about,
            "bayesnas_version": __version__,
        },
    )


def is_ensemble(path: Path) -> bool:
    folder = path.parent if path.is_file() else path
    return (folder / MEMBERS).is_file()


def _description(folder: Path) -> dict[str, Any]:
    try:
        description = json.loads((folder / MEMBERS).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder / MEMBERS} is not readable JSON ({type(exc).__name__})") from None
    members, weights = description.get("members"), description.get("weights")
    if (
        description.get("format") != FORMAT
        or not isinstance(members, list)
        or not isinstance(weights, list)
        or len(members) != len(weights)
        or not members
        or not all(
            isinstance(m, str) and "/" not in m and m not in ("", ".", "..") for m in members
        )
        or not all(isinstance(w, (int, float)) and w >= 0 for w in weights)
    ):
        raise UserError(f"{folder / MEMBERS} is not a bayesnas ensemble export of format {FORMAT}")
    return description


def load_ensemble(path: Path) -> EnsembleModel:
    """The ensemble exported at ``path`` (its folder or members.json), in eval mode."""
    folder = path.parent if path.is_file() else path
    description = _description(folder)
    members = [load_exported(folder / name) for name in description["members"]]
    return EnsembleModel(members, [float(w) for w in description["weights"]]).eval()


def ensemble_onnx(folder: Path, out: Path | None = None) -> Path:
    """Write the ensemble as one ONNX file (float32 images in [0, 1], dynamic batch)."""
    folder = Path(folder)
    model = load_ensemble(folder)
    first, _ = read_export(folder / _description(folder)["members"][0])
    size = (first.get("dataset") or {}).get("image_size")
    if not isinstance(size, int) or size < 1:
        raise UserError("the export does not record its input image size")
    example = torch.rand(2, first["subnet"]["in_channels"], size, size)
    model.members = nn.ModuleList(for_onnx(member) for member in model.members)
    data = with_metadata(
        serialise(model, example, "onnx"),
        {
            "input": "images [N, C, H, W] as float32 in [0, 1] (a float image with any value "
            "above 1 is taken as 0..255 and divided by 255); each member normalises inside",
            "output": "log of the weighted mean of the members' class probabilities",
            "members": str(len(model.members)),
            "bayesnas_version": __version__,
        },
    )
    out = Path(out) if out is not None else folder / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_bytes(out, lambda f: f.write(data))
    return out
