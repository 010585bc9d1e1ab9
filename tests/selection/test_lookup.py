"""`bayesnas lookup` on small benchmark files generated in the official APIs' exact formats."""

import bz2
import json
import pickle
import traceback
from pathlib import Path

import pytest
import torch

from bayesnas.cli import main
from bayesnas.selection.lookup import LOOKUP, lookup

pytest.importorskip("nas_201_api")
pytest.importorskip("nats_bench")
pytest_plugins = ["realrun"]  # real_run, run_copy

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]
SETS = {  # the evaluation sets each data set is scored on in NAS-Bench-201
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}


def _accuracy(index: int, dataset: str, setname: str, epochs: int, seed: int) -> float:
    """A distinct, recognisable number per (architecture, data set, set, schedule, seed)."""
    base = {"cifar10-valid": 80, "cifar10": 90, "cifar100": 60, "ImageNet16-120": 30}[dataset]
    return base + index + (0.5 if setname == "x-test" else 0) + epochs / 1000 + seed / 1e4


def _results(index: int, arch: str, dataset: str, epochs: int, seed: int) -> dict:
    """ResultsCount.state_dict() of one trial, as the API stores it."""
    last = epochs - 1
    names = SETS[dataset]
    return {
        "name": dataset, "net_state_dict": None,
        "train_acc1es": {e: 50.0 for e in range(epochs)}, "train_acc5es": None,
        "train_losses": {e: 1.0 for e in range(epochs)}, "train_times": None,
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10},
        "params": 0.5, "flop": 70.0, "seed": seed, "epochs": epochs, "latency": None,
        "eval_names": list(names),
        "eval_acc1es": {
            f"{n}@{e}": _accuracy(index, dataset, n, epochs, seed) if e == last else 10.0
            for n in names for e in range(epochs)
        },
        "eval_times": {},
        "eval_losses": {f"{n}@{e}": 1.0 for n in names for e in range(epochs)},
    }  # fmt: skip


def _arch_results(index: int, arch: str, epochs: int) -> dict:
    """ArchResults.state_dict(): two seeds on every data set."""
    seeds = (777, 888)
    return {
        "arch_index": index,
        "arch_str": arch,
        "all_results": {(d, s): _results(index, arch, d, epochs, s) for d in SETS for s in seeds},
        "dataset_seed": {d: list(seeds) for d in SETS},
        "clear_net_done": True,
    }


def write_nb201(path: Path, archs: list[str] = ARCHS) -> Path:
    """A NAS-Bench-201 .pth: meta_archs, arch2infos {index: {less, full}}, evaluated_indexes."""
    data = {
        "meta_archs": archs,
        "arch2infos": {
            i: {"less": _arch_results(i, a, 12), "full": _arch_results(i, a, 200)}
            for i, a in enumerate(archs)
        },
        "evaluated_indexes": list(range(len(archs))),
        "total_archs": len(archs),
    }
    torch.save(data, path)
    return path


def write_nats(path: Path, payload=None) -> Path:
    """A NATS-Bench topology .pickle.pbz2: arch2infos {index: {'12': ..., '200': ...}}."""
    data = payload or {
        "meta_archs": ARCHS,
        "arch2infos": {
            i: {"12": _arch_results(i, a, 12), "200": _arch_results(i, a, 200)}
            for i, a in enumerate(ARCHS)
        },
        "evaluated_indexes": list(range(len(ARCHS))),
    }
    with bz2.open(path, "wb") as stream:
        pickle.dump(data, stream)
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    crash = ""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        code, crash = -1, traceback.format_exc()
    out, err = capsys.readouterr()
    return code, out, err + crash


def one_line(code, err, needle):
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.parametrize(
    "name,writer",
    [
        ("NAS-Bench-201-v1_1-096897.pth", write_nb201),
        ("NATS-tss-v1_0-3ffb9.pickle.pbz2", write_nats),
    ],
)
@pytest.mark.parametrize("hp", ["12", "200"])
def test_lookup_reads_the_official_format(tmp_path, name, writer, hp):
    bench = writer(tmp_path / name)
    result = lookup(None, ARCHS[1], bench, hp)
    (row,) = result["rows"]
    epochs = int(hp)
    mean = lambda d, s: (_accuracy(1, d, s, epochs, 777) + _accuracy(1, d, s, epochs, 888)) / 2  # noqa: E731
    assert row["index"] == 1 and row["hp"] == hp and row["file"] == name
    assert row["version"] == ("v1_1" if name.endswith(".pth") else "v1_0")
    assert row["cifar10_valid"] == pytest.approx(mean("cifar10-valid", "x-valid"))
    assert row["cifar10_test"] == pytest.approx(mean("cifar10", "ori-test"))
    assert row["cifar100_test"] == pytest.approx(mean("cifar100", "x-test"))
    assert row["imagenet16_valid"] == pytest.approx(mean("ImageNet16-120", "x-valid"))


def _run_archs(run: Path) -> list[str]:
    """The architectures a real run exported, rank 1 first, and then those only sampled."""
    exported = [
        json.loads((run / "export" / f"rank-{k}" / "architecture.json").read_text())["architecture"]
        for k in range(1, 6)
    ]
    lines = (run / "samples.jsonl").read_text().splitlines()
    sampled = [json.loads(line)["architecture"] for line in lines]
    return list(dict.fromkeys(exported + sampled))


def test_lookup_of_a_real_run_writes_lookup_json(run_copy, tmp_path, capsys):
    archs = _run_archs(run_copy)
    bench = write_nb201(tmp_path / "NAS-Bench-201-v1_0-e61699.pth", archs)
    code, out, err = cli(capsys, "lookup", "--run", run_copy, "--benchmark", bench)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("rank-1 "))
    c10 = sum(_accuracy(0, "cifar10-valid", "x-valid", 200, seed) for seed in (777, 888)) / 2
    assert f"{c10:.2f}" in row and "NAS-Bench-201-v1_0-e61699.pth (v1_0, hp 200)" in row
    ours = json.loads((run_copy / "export" / "rank-1" / "metrics.json").read_text())["val_acc"]
    assert row.split()[1] == f"{100 * ours:.2f}"  # our validation accuracy beside the benchmark's
    saved = json.loads((run_copy / LOOKUP).read_text())
    assert [r["architecture"] for r in saved["rows"]] == archs
    assert [r["source"] for r in saved["rows"]][:5] == [f"rank-{k}" for k in range(1, 6)]


def test_lookup_reads_a_flat_config_of_bayesnas_0_1(run_copy, tmp_path, capsys):
    config = run_copy / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text())["config"]))  # the old layout
    bench = write_nb201(tmp_path / "NAS-Bench-201-v1_1-096897.pth", _run_archs(run_copy))
    code, _, err = cli(capsys, "lookup", "--run", run_copy, "--benchmark", bench)
    assert code == 0, err


def test_a_missing_benchmark_of_a_real_run_is_one_line(run_copy, tmp_path, capsys):
    missing = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    code, _, err = cli(capsys, "lookup", "--run", run_copy, "--benchmark", missing)
    one_line(code, err, f"benchmark file {missing} does not exist: download")
    config = run_copy / "config.json"  # not hidden by another error in the run
    config.write_text(config.read_text().replace('"nb201"', '"resnet"'))
    code, _, err = cli(capsys, "lookup", "--run", run_copy, "--benchmark", missing)
    one_line(code, err, f"benchmark file {missing} does not exist: download")


def test_bad_input_is_one_line(tmp_path, capsys):
    bench = write_nb201(tmp_path / "NAS-Bench-201-v1_1-096897.pth")
    missing = "|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
    code, _, err = cli(capsys, "lookup", "--arch", missing, "--benchmark", bench)
    one_line(code, err, "is not in NAS-Bench-201-v1_1-096897.pth")
    code, _, err = cli(capsys, "lookup", "--arch", ARCHS[0], "--benchmark", tmp_path / "nope.pth")
    one_line(code, err, "does not exist")
    code, _, err = cli(capsys, "lookup", "--arch", "|conv~0|", "--benchmark", bench)
    one_line(code, err, "not a NAS-Bench-201 cell")


def test_a_pickle_that_asks_for_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    bench = write_nats(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", {"meta_archs": Payload()})
    code, _, err = cli(capsys, "lookup", "--arch", ARCHS[0], "--benchmark", bench)
    one_line(code, err, "not a readable benchmark file")
    assert not marker.exists()


def test_a_pth_that_asks_for_code_is_one_line_and_never_advises_unsafe_loading(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    bench = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save({"meta_archs": Payload()}, bench)  # torch.load(weights_only=True) refuses it
    code, _, err = cli(capsys, "lookup", "--arch", ARCHS[0], "--benchmark", bench)
    one_line(code, err, "it asks for builtins.exec), so it was not loaded")
    assert "weights_only" not in err and not marker.exists()
    bench.write_bytes(pickle.dumps({"meta_archs": ARCHS}))  # a plain pickle: not torch's format
    code, _, err = cli(capsys, "lookup", "--arch", ARCHS[0], "--benchmark", bench)
    one_line(code, err, "is not a readable benchmark file (UnpicklingError")
    assert "weights_only" not in err


def test_the_summary_names_the_lookup(tmp_path):
    from bayesnas.report.summary import _lookup_line

    (tmp_path / LOOKUP).write_text(
        json.dumps(
            {"rows": [{"source": "rank-1", "architecture": ARCHS[0], "cifar10_test": 93.5,
                       "cifar100_test": None, "imagenet16_test": 45.25,
                       "file": "NAS-Bench-201-v1_1-096897.pth", "version": "v1_1", "hp": "200"}]}
        )
    )  # fmt: skip
    line = _lookup_line(tmp_path)
    assert "CIFAR-10 test 93.50%" in line and "ImageNet16-120 test 45.25%" in line
    assert "CIFAR-100" not in line and "v1_1, hp 200" in line
