"""`export --ensemble`: the members of the run's ensemble.json as one ensemble export folder.

Each member with a weight above 0 is written as its physically smaller network (with the
BatchNorm statistics the ensemble was scored with) under RUN/export-ensemble/member-N/, then
members.json with the weights; the folder is replaced as a whole, as export/ is by `sample`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bayesnas import rundir
from bayesnas.device import resolve_device
from bayesnas.errors import UserError
from bayesnas.export import export_candidate
from bayesnas.export.ensemble import write_members_file
from bayesnas.selection.ensemble import ENSEMBLE
from bayesnas.selection.posterior import load_posterior
from bayesnas.selection.rank import batchnorm_for
from bayesnas.selection.sample import SampleConfig, _data

FOLDER = "export-ensemble"


def export_ensemble(run: Path | None, device: str = "auto") -> Path:
    """Write RUN/export-ensemble/ from RUN/ensemble.json; returns the folder."""
    run_dir = rundir.find_run(run)
    path = run_dir / ENSEMBLE
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no {ENSEMBLE}: run `bayesnas ensemble --run {run_dir}` first"
        )
    try:
        report = json.loads(path.read_text())
        members = [(m["encoding"], float(m["weight"])) for m in report["member_list"]]
        bn = report["bn"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{path} is not a readable ensemble record ({exc}); run ensemble again"
        ) from None
    posterior = load_posterior(run_dir, resolve_device(device))
    net = posterior.program.net
    _, train_batches, _ = _data(
        posterior, posterior.program.guide.gate_logits.device, SampleConfig()
    )
    target, staging = run_dir / FOLDER, run_dir / f".{FOLDER}-staging"
    shutil.rmtree(staging, ignore_errors=True)
    folders, weights = [], []
    try:
        for index, (encoding, weight) in enumerate(members, start=1):
            if weight <= 0:
                continue
            arch = net.decode(encoding).to(posterior.program.guide.gate_logits.device)
            name = f"member-{index}"
            with batchnorm_for(net, arch, bn, train_batches, 20):
                metrics = {"member": index, "weight": weight, "architecture": net.describe(arch)}
                export_candidate(
                    staging / name, net, arch, metrics=metrics, dataset=posterior.payload["dataset"]
                )
            folders.append(name)
            weights.append(weight)
        about = {"run": str(run_dir), "source": report.get("source"), "bn": bn}
        write_members_file(staging, folders, weights, about)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
