"""`bayesnas lookup` on small benchmark files generated in the official APIs' exact formats."""

import json
import pickle
import traceback
from pathlib import Path

import pytest
import torch
from benchfiles import ARCHS, _accuracy, write_nats, write_nb201

from bayesnas.cli import main
from bayesnas.selection.lookup import LOOKUP, lookup

pytest.importorskip("nas_201_api")
pytest.importorskip("nats_bench")
pytest_plugins = ["realrun"]  # real_run, run_copy


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
