"""An exported candidate: one architecture as a standalone sub-network, loadable without the search.

An export folder holds ``architecture.json`` (space, architecture, sub-network spec, input
normalisation), ``weights.safetensors`` (only the kept weights) and ``metrics.json``;
``export_deployable`` turns it into ONNX or TorchScript for serving without bayesnas.

Every exported model takes images as users have them, ``[N, C, H, W]``, and normalises them
inside with the training data's mean and std (``export/inputs.py``): ``load_exported`` and
TorchScript take uint8 (0..255) or float in [0, 1] and refuse other floats; ONNX takes float32
in [0, 1], rescales a float image with values above 1 as 0..255, and says so in its
``metadata_props``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import safe_open
from torch import nn

from bayesnas import rundir
from bayesnas.data import DATASETS, dataset_info
from bayesnas.errors import UserError
from bayesnas.export.inputs import ExportedModel
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.subnet import build_subnet, subnet_from_spec, subnet_spec
from bayesnas.version import __version__

FORMAT = 1
INPUT = (
    "images [N, C, H, W]: uint8 in 0..255 or float in [0, 1] (ONNX: float32 in [0, 1], that is "
    "uint8 / 255); the model normalises them inside with the training data's mean and std"
)
ARCHITECTURE, WEIGHTS, METRICS = "architecture.json", "weights.safetensors", "metrics.json"
NORMALISATION_BOUND = 1e6  # |mean| and std of images in [0, 1] are at most 1; NaN fails too


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


def load_exported(path: str | Path) -> nn.Module:
    """The exported model at ``path`` (its folder or architecture.json; an ensemble's averaging
    EnsembleModel), in eval mode. It takes images ``[N, C, H, W]`` as uint8 or float in [0, 1]."""
    from bayesnas.export import ensemble as export_ensemble  # it imports this module

    if export_ensemble.is_ensemble(Path(path)):
        return export_ensemble.load_ensemble(Path(path))
    return preprocessed(*load_description(Path(path)))


def preprocessed(description: dict[str, Any], subnet: nn.Module) -> ExportedModel:
    """``subnet`` behind the normalisation recorded in the export (none if it records none)."""
    return ExportedModel(subnet, *normalisation(description, "the export")).eval()


def normalisation(description: dict[str, Any], where: str) -> tuple[list[float], list[float]]:
    """The export's input mean and std (0 and 1 where it records none); UserError unless each
    lists one finite number per input channel and every std is above 0, as a 0 or NaN std
    would turn every image into inf or NaN."""
    data = description.get("dataset")
    data = data if isinstance(data, dict) else {}
    channels = description["subnet"].get("in_channels", 3)
    found = {}
    for name, default in (("mean", 0.0), ("std", 1.0)):
        values = data.get(name)
        values = [default] * channels if values is None else values
        if not (
            isinstance(values, list)
            and len(values) == channels
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)
            and all(abs(x) <= NORMALISATION_BOUND and (name == "mean" or x > 0) for x in values)
        ):
            above = "" if name == "mean" else " above 0"
            raise UserError(
                f"{where} records dataset {name} {values!r}: it must list one finite number"
                f"{above} per input channel ({channels}); export again"
            )
        found[name] = [float(x) for x in values]
    return found["mean"], found["std"]


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
    """The export's description and its sub-network with weights; UserError on any defect.

    The sizes in architecture.json are checked against the tensor shapes in the safetensors
    header (read without its data) before any network is built, so that a crafted size is one
    line, not a request for terabytes."""
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
    spec = description.get("subnet")
    if not isinstance(spec, dict):
        raise UserError(f"{file} has a malformed sub-network description: not an object")
    if not weights.is_file():
        raise UserError(f"{weights} does not exist; export the candidate again")
    shapes = _header_shapes(weights)
    _check_sizes(file, spec, shapes)
    try:
        with torch.device("meta"):  # shapes only: no memory, whatever the JSON says
            shaped = subnet_from_spec(spec)
    except (AttributeError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{file} has a malformed sub-network description: {exc}") from None
    _check_fit(file, weights, spec, shaped, shapes)
    normalisation(description, str(file))
    subnet = subnet_from_spec(spec)
    try:
        state = safetensors.torch.load_file(weights)
    except Exception as exc:  # safetensors signals a corrupt file with several exception types
        raise UserError(
            f"{weights} is not a readable safetensors file ({type(exc).__name__})"
        ) from None
    subnet.load_state_dict(state)
    return description, subnet.eval()


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in ``weights``, read from its header alone (no tensor data)."""
    try:
        with safe_open(weights, framework="pt") as handle:
            names = handle.keys()
            return {name: tuple(handle.get_slice(name).get_shape()) for name in names}
    except Exception as exc:  # safetensors signals a corrupt file with several exception types
        raise UserError(
            f"{weights} is not a readable safetensors file ({type(exc).__name__})"
        ) from None


def _check_sizes(file: Path, spec: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse a size or count in the spec (channels, cells, num_classes, in_channels ...) that
    is not a whole number from 1 to the largest dimension or tensor count of the weights: no
    such network could have written them, and building it could take all memory or hours."""
    limit = max([len(shapes), *(size for shape in shapes.values() for size in shape)])
    for field, value in spec.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)  # auxiliary
        if number and not (isinstance(value, int) and 1 <= value <= limit):
            raise UserError(
                f"{file} gives subnet {field} {value!r}, which does not fit {WEIGHTS}: it "
                f"must be a whole number from 1 to {limit} (its largest dimension or tensor "
                "count); export again"
            )


def _check_fit(
    file: Path,
    weights: Path,
    spec: dict[str, Any],
    shaped: nn.Module,
    shapes: dict[str, tuple[int, ...]],
) -> None:
    """Refuse weights whose tensors are not exactly those of the network the spec describes
    (``shaped``, on the meta device), naming the spec's field where it can tell which."""
    expected = {k: tuple(v.shape) for k, v in shaped.state_dict().items()}
    misfits = sorted(k for k in expected.keys() | shapes.keys() if expected.get(k) != shapes.get(k))
    if not misfits:
        return
    convs = [f"{n}.weight" for n, m in shaped.named_modules() if isinstance(m, nn.Conv2d)]
    heads = [f"{n}.weight" for n, m in shaped.named_modules() if isinstance(m, nn.Linear)]
    named = [("in_channels", key, 1) for key in convs[:1]]  # the stem reads the image
    named += [("num_classes", key, 0) for key in heads[-1:]]  # the last layer gives the logits
    for field, key, dim in named:
        got = shapes.get(key)
        if got is not None and len(got) > dim and got[dim] != spec.get(field):
            raise UserError(
                f"{file} gives subnet {field} {spec.get(field)!r}, but {WEIGHTS} holds "
                f"{got[dim]} ({key} is {list(got)}); export again"
            )
    fields = ", ".join(k for k in spec if k != "space")
    first = misfits[0]
    raise UserError(
        f"{weights} does not fit the sub-network in {file} (its {fields}): {len(misfits)} "
        f"tensors missing, unexpected or misshapen (first: {first}, "
        f"{_shape(shapes.get(first))} there, {_shape(expected.get(first))} by the JSON)"
    )


def _shape(shape: tuple[int, ...] | None) -> str:
    """A tensor shape as the error message shows it, ``absent`` for a tensor not there."""
    return "absent" if shape is None else str(list(shape))


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
