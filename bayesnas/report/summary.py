"""A run's key facts: as plain data, as (label, value) rows, and as `bayesnas summary` text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bayesnas import rundir
from bayesnas.report.decision import describe as describe_decision
from bayesnas.report.decision import when_q_decided
from bayesnas.report.run import RunData, latest_calls, load_run, top_candidate


def summary(run_dir: Path, run: RunData | None = None) -> dict[str, Any]:
    """The run's key facts as plain data (for `bayesnas summary` and index.html)."""
    run = run if run is not None else load_run(Path(run_dir))  # `plot` has loaded it already
    calls, _ = latest_calls(run.samples)
    best = top_candidate(calls)
    last = run.metrics[-1] if run.metrics else {}
    post = run.posterior or {}
    dataset = post.get("dataset", {"name": run.config["dataset"]})
    mode = (post.get("mode") or (run.gates or {}).get("mode")) if run.has_mode else None
    return {
        "run": str(run_dir),
        "dataset": dataset,
        "space": run.config["space"],
        "space_options": run.config["space_options"],
        "finished": run.posterior is not None,
        "posterior_damaged": run.posterior_damaged,
        "epochs_done": run.epochs_done,
        "epochs_planned": run.config["epochs"],
        "final_elbo": last.get("elbo"),
        "decision": when_q_decided(run.metrics) if run.config.get("sampler") != "uniform" else None,
        "elbo_epoch": last.get("epoch"),  # the ELBO is that epoch's: a torn last row is skipped
        "mode": mode,
        "no_mode": run.gates is not None and not run.has_mode,
        "mode_val_acc": post.get("mode_val_acc", last.get("val_acc")) if mode else None,
        "mode_val_images": dataset.get("val_images") if post else last.get("val_images"),
        "best": None
        if best is None
        else {k: best[k] for k in ("sampler", "architecture", "val_acc", "val_images", "params_m")}
        | {"mflops": best.get("mflops")},
        "samplers": {
            s: {
                "distinct": len(rows),
                "draws": rows[0]["n"],
                "best_val_acc": max(r["val_acc"] for r in rows),
            }
            for s, rows in calls.items()
        },
        "notes": run.notes,
        "lookup": _lookup_line(Path(run_dir)),
    }


def _lookup_line(run_dir: Path) -> str | None:
    """The first row of lookup.json (`bayesnas lookup`), with its file, version and schedule."""
    try:
        first = json.loads((run_dir / "lookup.json").read_text())["rows"][0]
        values = [
            f"{name} {first[key]:.2f}%"
            for key, name in (
                ("cifar10_test", "CIFAR-10 test"),
                ("cifar100_test", "CIFAR-100 test"),
                ("imagenet16_test", "ImageNet16-120 test"),
            )
            if isinstance(first.get(key), (int, float))
        ]
        where = f"{first['file']}, {first['version']}, hp {first['hp']}"
        return f"{first['source']} {first['architecture']}: {', '.join(values)} ({where})"
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def summary_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (label, value) lines, shared by the text and the HTML table."""
    data = info["dataset"]
    sizes = (
        f" ({data['train_images']} train / {data['val_images']} validation images)"
        if "val_images" in data
        else ""
    )
    options = ", ".join(f"{k}={v}" for k, v in info["space_options"].items())
    status = "finished" if info["finished"] else "not finished"
    if info.get("posterior_damaged"):  # written, so finished once, but unreadable: a note says
        status = f"{rundir.POSTERIOR} unreadable"
    rows = [
        ("run", info["run"]),
        ("data set", data["name"] + sizes),
        ("space", f"{info['space']} ({options})" if options else info["space"]),
        ("epochs", f"{info['epochs_done']} / {info['epochs_planned']} ({status})"),
    ]
    if info["final_elbo"] is not None:
        epoch = info.get("elbo_epoch")
        if epoch is None or epoch == info["epochs_done"]:
            rows.append(("final ELBO", f"{info['final_elbo']:.4f} nats per image"))
        else:  # the last epoch's row is missing (torn): say whose ELBO this is
            rows.append(
                (
                    f"ELBO of epoch {epoch}",
                    f"{info['final_elbo']:.4f} nats per image (the row of epoch "
                    f"{info['epochs_done']} is missing from {rundir.METRICS})",
                )
            )
    if info["mode"] is not None:
        rows.append(("posterior mode", info["mode"]))
    elif info.get("no_mode"):
        flat = "q is flat (its gate logits are tied): rank its draws with `bayesnas sample`"
        rows.append(("posterior mode", f"no mode: {flat}" if info["finished"] else "no mode yet"))
    if info.get("decision") and info["decision"]["mode_fixed_from"] is not None:
        rows.append(("q decided", describe_decision(info["decision"], info["epochs_done"])))
    if info["mode_val_acc"] is not None:
        where = "" if info["finished"] else f", after epoch {info['epochs_done']}"
        rows.append(
            (
                "mode val accuracy",
                f"{info['mode_val_acc']:.2%} ({info['mode_val_images']} images{where})",
            )
        )
    best = info["best"]
    if best is not None:
        rows += [
            ("best candidate", f"{best['architecture']} ({best['sampler']} sampler)"),
            ("best val accuracy", f"{best['val_acc']:.2%} ({best['val_images']} images)"),
            ("best params", f"{best['params_m']:.4f} M ({best['mflops']:.2f} M FLOPs per image)"),
        ]
    for sampler, s in info["samplers"].items():
        rows.append(
            (
                f"samples: {sampler}",
                f"{s['distinct']} distinct of {s['draws']} draws, best {s['best_val_acc']:.2%}",
            )
        )
    if info.get("lookup"):
        rows.append(("benchmark lookup", info["lookup"]))
    return rows


def summary_text(run_dir: Path) -> str:
    """The summary as aligned text lines, notes last."""
    info = summary(run_dir)
    rows = summary_rows(info)
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines + [f"note: {n}" for n in info["notes"]])
