"""Exported candidates: lossless round trip, ONNX and TorchScript parity, clear load errors.

Exported models take images as users have them (uint8, or float in [0, 1]) and normalise them
inside, so these tests feed such images and compare with the bare sub-network on normalised ones.
"""

import json
import resource
import shutil
import time

import numpy as np
import onnxruntime as ort
import pytest
import safetensors.torch
import torch
from genotypes import DARTS_V2
from helpers import cli, resnet_arch, supernet

import bayesnas
from bayesnas.data import normalize
from bayesnas.errors import UserError
from bayesnas.export import export_candidate, export_deployable, load_exported
from bayesnas.spaces.darts.genotype import parse_genotype
from bayesnas.spaces.subnet import build_subnet

pytestmark = pytest.mark.usefixtures("one_thread_module")
pytest_plugins = ["realrun"]  # real_run, run_copy

CIFAR = {
    "name": "cifar10",
    "num_classes": 10,
    "channels": 3,
    "mean": [0.4914, 0.4822, 0.4465],
    "std": [0.2470, 0.2435, 0.2616],
}
MEAN, STD = (
    torch.tensor(CIFAR["mean"]).view(1, 3, 1, 1),
    torch.tensor(CIFAR["std"]).view(1, 3, 1, 1),
)


def user_images(batch: int, size: int = 32) -> torch.Tensor:
    """Images as a user has them: floats in [0, 1]."""
    return torch.rand(batch, 3, size, size)


NB201 = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module", params=["nb201", "resnet", "darts"])
def exported(request, tmp_path_factory):
    """(export folder, the sub-network it came from, the architecture's description)."""
    if request.param == "nb201":
        net = supernet("nb201", channels=4, cells=1)
        arch = net.architecture(NB201)
    elif request.param == "darts":
        net = supernet("darts", channels=4, cells=3)
        arch = net.decode(DARTS_V2)
    else:
        net = supernet("resnet", width=4, blocks=1)
        arch = resnet_arch(net, 0.6, seed=0)
    folder = tmp_path_factory.mktemp(request.param) / "rank-1"
    export_candidate(folder, net, arch, metrics={"val_acc": 0.5}, dataset=CIFAR)
    return folder, build_subnet(net, arch), net.describe(arch)


def test_round_trip_gives_identical_logits(exported):
    folder, subnet, _ = exported
    raw = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = subnet(normalize(raw, CIFAR["mean"], CIFAR["std"]))  # as the search feeds it
        for path in (folder, folder / "architecture.json", str(folder)):
            loaded = load_exported(path)
            assert not loaded.training
            assert torch.equal(loaded(raw), expected)  # uint8: bit-identical to the search
            assert torch.equal(loaded.net(normalize(raw, CIFAR["mean"], CIFAR["std"])), expected)
            floats = loaded(raw.float() / 255)  # float in [0, 1]: the same up to rounding
            assert (floats - expected).abs().max() < 1e-4
    assert bayesnas.load_exported is load_exported


def test_export_files(exported):
    folder, subnet, description = exported
    weights = safetensors.torch.load_file(folder / "weights.safetensors")
    assert weights.keys() == subnet.state_dict().keys()
    info = json.loads((folder / "architecture.json").read_text())
    assert info["format"] == 1 and info["architecture"] == description
    assert info["dataset"] == {**CIFAR, "image_size": 32}  # completed from the data set's facts
    assert info["bayesnas_version"] == bayesnas.__version__
    assert "uint8" in info["input"] and "[0, 1]" in info["input"]
    assert info["parameters"] == sum(p.numel() for p in subnet.parameters())
    assert json.loads((folder / "metrics.json").read_text()) == {"val_acc": 0.5}
    if info["space"] == "nb201":
        assert info["architecture"] == NB201
    if info["space"] == "darts":  # DARTS's notation, inputs in ascending order per node
        assert parse_genotype(info["architecture"]) == parse_genotype(info["subnet"]["genotype"])
        assert info["architecture"].startswith("Genotype(normal=[('sep_conv_3x3', 0), ")
    assert not list(folder.glob(".*"))  # no temp files left behind


def test_onnx_matches_pytorch_with_any_batch(exported):
    folder, subnet, _ = exported
    path = export_deployable(folder, "onnx")
    assert path == folder / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 32, 32]
    for batch in (1, 5):
        images = user_images(batch)
        (logits,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            expected = subnet((images - MEAN) / STD).numpy()
        assert np.abs(logits - expected).max() < 1e-4
    meta = session.get_modelmeta().custom_metadata_map  # the preprocessing travels with the file
    assert meta["input_range"] == "[0, 1]" and meta["input_dtype"] == "float32"
    assert "inside" in meta["normalisation"] and json.loads(meta["mean"]) == CIFAR["mean"]
    assert json.loads(meta["std"]) == CIFAR["std"] and meta["dataset"] == "cifar10"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_pytorch_with_any_batch(exported):
    folder, subnet, _ = exported
    path = export_deployable(folder, "torchscript")
    assert path == folder / "model.pt"
    scripted = torch.jit.load(str(path))
    for batch in (1, 5):
        raw = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
        with torch.no_grad():
            expected = subnet(normalize(raw, CIFAR["mean"], CIFAR["std"]))
            assert (scripted(raw) - expected).abs().max() < 1e-4  # uint8 ...
            assert (scripted(raw.float() / 255) - expected).abs().max() < 1e-4  # ... or [0, 1]


def test_image_size_and_output_can_be_chosen(exported, tmp_path):
    folder, _, _ = exported
    path = export_deployable(folder, "onnx", out=tmp_path / "deploy" / "m.onnx", image_size=16)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 16, 16]
    with pytest.raises(UserError, match="unknown format"):
        export_deployable(folder, "tflite")
    with pytest.raises(UserError, match="cannot write"):  # a file stands where a folder should
        export_deployable(folder, "torchscript", out=folder / "metrics.json" / "model.pt")


def test_unknown_image_size_must_be_given(tmp_path):
    net = supernet("nb201", channels=4, cells=1)
    arch = net.architecture(NB201)
    folder = export_candidate(
        tmp_path, net, arch, metrics={}, dataset={"name": "own", "channels": 3}
    )
    with pytest.raises(UserError, match="pass an image size"):
        export_deployable(folder, "torchscript")
    assert export_deployable(folder, "torchscript", image_size=8).is_file()


def test_missing_export_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a bayesnas export"):
        load_exported(tmp_path / "missing")


def _misshapen(state: dict) -> bytes:
    return safetensors.torch.save({**state, "stem.0.weight": state["stem.0.weight"][:1].clone()})


DEFECTS = {  # name: (file to change, its new bytes from the exported weights or None, message)
    "not json": ("architecture.json", lambda _: b"{not json", "not readable JSON"),
    "wrong format": ("architecture.json", lambda _: b'{"format": 99}', "format 1"),
    "malformed subnet": ("architecture.json", lambda _: b'{"format": 1, "subnet": 3}', "malformed"),
    "no weights": ("weights.safetensors", lambda _: None, "does not exist"),
    "garbage weights": ("weights.safetensors", lambda _: b"garbage", "not a readable safetensors"),
    "foreign weights": (
        "weights.safetensors",
        lambda _: safetensors.torch.save({"x": torch.ones(2)}),
        "does not fit",
    ),
    "misshapen weights": ("weights.safetensors", _misshapen, "does not fit"),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defective_export_raises_one_line_user_error(exported, tmp_path, defect):
    name, make, message = DEFECTS[defect]
    copy = shutil.copytree(exported[0], tmp_path / "copy")
    data = make(safetensors.torch.load_file(copy / "weights.safetensors"))
    if data is None:
        (copy / name).unlink()
    else:
        (copy / name).write_bytes(data)
    with pytest.raises(UserError, match=message) as error:
        load_exported(copy)
    assert "\n" not in str(error.value)


# -- sizes in a real export's architecture.json are checked against its weights (issue 24) ----

CRAFTED = {  # architecture.json section, field, value: each would build a huge or broken net
    "channels 1000000": ("subnet", "channels", 1000000),  # 36 TB asked for before
    "num_classes 1e10": ("subnet", "num_classes", 1e10),  # 640 GB
    "cells 1000000000": ("subnet", "cells", 1000000000),  # 55 s and 3.4 GB
    "in_channels -3": ("subnet", "in_channels", -3),  # torch's RuntimeError
    "channels 8": ("subnet", "channels", 8),  # plausible, but not what the weights hold
    "cells 2": ("subnet", "cells", 2),
    "in_channels 3": ("subnet", "in_channels", 3),
    "num_classes 7": ("subnet", "num_classes", 7),
    "std [0]": ("dataset", "std", [0]),  # every image inf
    "std [NaN]": ("dataset", "std", [float("nan")]),  # written as the JSON token NaN
    "std [1, 1]": ("dataset", "std", [1, 1]),  # one channel
    "mean [Infinity]": ("dataset", "mean", [float("inf")]),
}


@pytest.mark.parametrize("crafted", list(CRAFTED))
def test_crafted_sizes_in_a_real_export_are_one_line_and_cheap(run_copy, capsys, crafted):
    section, field, value = CRAFTED[crafted]
    folder = run_copy / "export" / "rank-1"
    description = json.loads((folder / "architecture.json").read_text())
    description[section][field] = value
    text = json.dumps(description)
    if "NaN" in crafted:
        assert '"std": [NaN]' in text  # the JSON token, as Python's json writes and reads it
    (folder / "architecture.json").write_text(text)
    peak, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
    with pytest.raises(UserError) as error:
        load_exported(folder)
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024  # KiB
    message = str(error.value)
    assert "\n" not in message and "architecture.json" in message and field in message, message
    code, _, err = cli(capsys, "export", "--run", run_copy, "--rank", "1")  # the user's view
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and field in lines[0], err


def test_the_real_export_loads_and_its_sizes_pass(real_run):
    model = load_exported(real_run / "export" / "rank-1")
    with torch.no_grad():
        logits = model(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_float_images_in_0_255_are_refused_or_rescaled_never_misread(exported):
    """Issue 24, defect 11: 0..255 floats used to give a quarter of the accuracy silently."""
    folder, subnet, _ = exported
    raw = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = subnet(normalize(raw, CIFAR["mean"], CIFAR["std"]))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            load_exported(folder)(raw.float())
        scripted = torch.jit.load(str(export_deployable(folder, "torchscript")))
        with pytest.raises(Exception, match=r"\[0, 1\]"):  # TorchScript re-raises its own type
            scripted(raw.float())
        assert (scripted(raw.float() / 255) - expected).abs().max() < 1e-4
    session = ort.InferenceSession(
        str(export_deployable(folder, "onnx")), providers=["CPUExecutionProvider"]
    )
    mixed = torch.stack((raw[0].float(), raw[1].float() / 255, raw[2].float()))  # per image
    (logits,) = session.run(None, {"images": mixed.numpy()})
    assert np.abs(logits - expected.numpy()).max() < 1e-3
    meta = session.get_modelmeta().custom_metadata_map
    assert "0..255" in meta["input"]
