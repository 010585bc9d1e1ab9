"""A run's artefacts, loaded tolerantly: its figures, summary table and index.html.

Works on a finished run and on one still running (config.json and metrics.jsonl only): what is
missing becomes a note, never an exception; only unreadable inputs raise UserError.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from matplotlib.figure import Figure as MplFigure

from bayesnas import plots, rundir
from bayesnas.decision import describe as describe_decision
from bayesnas.decision import when_q_decided
from bayesnas.errors import UserError
from bayesnas.posterior import SAMPLERS, find_run
from bayesnas.sample import SAMPLES

FORMATS = ("png", "svg", "pdf")
INDEX = "index.html"
Row = dict[str, Any]


@dataclass(frozen=True)
class Figure:
    """A figure written to disk, with the title and one-line caption index.html shows."""

    path: Path
    title: str
    caption: str


@dataclass
class RunData:
    """Everything a run directory holds so far; absent parts are None or empty."""

    run_dir: Path
    config: dict[str, Any]  # the SearchConfig as JSON
    metrics: list[Row]
    posterior: dict[str, Any] | None
    samples: list[Row]
    notes: list[str]

    @property
    def epochs_done(self) -> int:
        return self.config["epochs"] if self.posterior else len(self.metrics)

    @property
    def gates(self) -> dict[str, Any] | None:
        """The latest gate statistics: the posterior's, else the last epoch's."""
        if self.posterior is not None:
            return self.posterior["gates"]
        return self.metrics[-1]["gates"] if self.metrics else None

    @property
    def when(self) -> str:
        """When ``gates`` were taken, for titles."""
        return "at the end" if self.posterior else f"after epoch {self.epochs_done} (running)"


def _config(run_dir: Path, posterior: dict[str, Any] | None, notes: list[str]) -> dict[str, Any]:
    """The search configuration from config.json, else from posterior.pt."""
    try:
        return json.loads((run_dir / rundir.CONFIG).read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        if posterior is None:
            raise UserError(
                f"{run_dir} is not a readable bayesnas run ({rundir.CONFIG} missing or corrupt)"
            ) from None
        notes.append(f"{rundir.CONFIG} missing or corrupt: configuration taken from posterior.pt")
        return posterior["config"]


def load_run(run_dir: Path) -> RunData:
    """Read whatever ``run_dir`` holds; every problem that is not fatal becomes a note."""
    notes: list[str] = []
    metrics = rundir.read_metrics(run_dir, warn=notes.append)
    posterior = None
    if (run_dir / rundir.POSTERIOR).is_file():
        try:
            posterior = rundir.load_torch(run_dir / rundir.POSTERIOR, "posterior")
        except UserError as exc:
            notes.append(f"{exc}; figures from metrics.jsonl only")
    config = _config(run_dir, posterior, notes)
    samples = rundir.read_jsonl(run_dir / SAMPLES, notes.append)
    run = RunData(run_dir, config, metrics, posterior, samples, notes)
    if posterior is None:
        notes.append(
            f"run not finished: no posterior.pt, figures from metrics so far "
            f"({run.epochs_done} of {config['epochs']} epochs)"
        )
    return run


def latest_calls(samples: list[Row]) -> tuple[dict[str, list[Row]], int]:
    """The rows of the latest ``bayesnas sample`` call of each sampler (a call's rows are ranked
    from 1), and how many earlier calls that leaves out."""
    calls: list[list[Row]] = []
    for row in samples:
        if row.get("rank") == 1 or not calls:
            calls.append([])
        calls[-1].append(row)
    latest = {call[0]["sampler"]: call for call in calls}
    order = sorted(latest, key=lambda s: SAMPLERS.index(s) if s in SAMPLERS else len(SAMPLERS))
    return {s: latest[s] for s in order}, len(calls) - len(latest)


def top_candidate(calls: dict[str, list[Row]]) -> Row | None:
    """The best candidate of all samplers' latest calls (validation accuracy, then NLL)."""
    rows = [r for call in calls.values() for r in call]
    return min(rows, key=lambda r: (-r["val_acc"], r["val_nll"])) if rows else None


def _describe_candidate(best: Row) -> str:
    return (
        f"{best['sampler']} sampler, val acc {best['val_acc']:.1%}, {best['params_m']:.3f} M params"
    )


def architecture_figure(run: RunData, best: Row | None) -> tuple[MplFigure, str] | None:
    """Figure 6 and its caption: the top-1 candidate, else the posterior mode (None: no data)."""
    from bayesnas.plot_arch import cell_figure, resnet_widths, widths_figure
    from bayesnas.spaces import create_space

    gates = run.gates
    if best is None and gates is None:
        return None
    source = "top-1 candidate" if best else f"posterior mode {run.when}"
    detail = f"\n({_describe_candidate(best)})" if best else ""
    if run.config["space"] == "nb201":
        arch = best["architecture"] if best else gates["mode"]
        probs = {e["edge"]: e["probs"] for e in gates["edges"]} if gates else None
        figure = cell_figure(arch, f"NAS-Bench-201 cell of the {source}{detail}", probs)
        caption = f"{source}: {arch}; q = posterior probability of the op on that edge"
        return figure, caption
    net = create_space(run.config["space"], **run.config["space_options"])
    if best is not None:
        arch = net.decode(best["encoding"])
    elif run.posterior is not None:
        arch = net.mode(run.posterior["gate_logits"])
    else:
        arch = net.mode(torch.logit(torch.tensor([g["keep"] for g in gates["groups"]])))
    text = net.describe(arch)
    figure = widths_figure(resnet_widths(net, arch), f"Channels kept by the {source}{detail}")
    return figure, f"{source}: channels kept per block and branch ({text})"


def _figures(run: RunData, calls: dict[str, list[Row]]) -> list[tuple[str, str, str, Any]]:
    """(file stem, title, caption, matplotlib figure) of every figure the run's data allow."""
    made = []
    gates, metrics = run.gates, run.metrics
    if metrics:
        made.append(
            (
                "01-training",
                "Training",
                "-ELBO, NLL and KL/N (right axis) per image, learning rate and tau, accuracies",
                plots.training_figure(metrics),
            )
        )
    if gates is not None and plots.is_cell_space(gates):
        figure = plots.cell_posterior_figure(metrics, gates, run.when)
        caption = f"q(op | edge) {run.when} (rows sum to 1) and over epochs; mode {gates['mode']}"
        made.append(("02-posterior", "Architecture posterior", caption, figure))
    elif gates is not None:
        figure = plots.group_posterior_figure(gates, run.when)
        caption = f"keep probability per gate group {run.when}, its histogram, and what is dropped"
        made.append(("02-posterior", "Architecture posterior", caption, figure))
    if metrics:
        caption = "entropy of q per edge or gate group: falling entropy means a confident choice"
        made.append(("03-entropy", "Posterior entropy", caption, plots.entropy_figure(metrics)))
    if calls:
        names = ", ".join(calls)
        caption = f"validation accuracy of the distinct candidates and best-of-k ({names})"
        made.append(("04-samples", "Sampled candidates", caption, plots.samples_figure(calls)))
        caption = f"validation accuracy vs cost; filled: top {plots.TOP_K} per sampler, star: top-1"
        made.append(("05-cost", "Accuracy vs cost", caption, plots.cost_figure(calls)))
    best = top_candidate(calls)
    arch = architecture_figure(run, best)
    if arch is not None:
        title = "Top-1 architecture" if best else "Posterior-mode architecture"
        made.append(("06-architecture", title, arch[1], arch[0]))
    return made


def make_figures(run_dir: Path, out_dir: Path, fmt: str = "png") -> tuple[list[Figure], list[str]]:
    """Write every figure the run's data allow as ``out_dir/NN-name.fmt``; returns them and
    notes on what is missing."""
    if fmt not in FORMATS:
        raise UserError(f"unknown figure format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    run = load_run(Path(run_dir))
    out_dir = Path(out_dir)
    rundir.create(out_dir)
    calls, earlier = latest_calls(run.samples)
    notes = list(run.notes)
    if not run.metrics:
        notes.append("no epoch finished yet (metrics.jsonl empty or absent): no figures 1 and 3")
    if not calls:
        notes.append(
            f"no {SAMPLES}: run `bayesnas sample --run {run_dir}` (and --sampler uniform) "
            "for figures 4-5"
        )
    elif list(calls) == ["posterior"]:
        notes.append(
            f"only posterior samples: `bayesnas sample --run {run_dir} --sampler "
            "uniform` adds the baseline to figures 4-5"
        )
    if earlier:
        notes.append(
            f"{SAMPLES} holds {earlier} earlier sample call(s); figures 4-5 use the "
            "latest call of each sampler"
        )
    figures = []
    for stem, title, caption, figure in _figures(run, calls):
        path = out_dir / f"{stem}.{fmt}"
        figure.savefig(path, format=fmt)
        figures.append(Figure(path, title, caption))
    return figures, notes


def summary(run_dir: Path) -> dict[str, Any]:
    """The run's key facts as plain data (for `bayesnas summary` and index.html)."""
    run = load_run(Path(run_dir))
    calls, _ = latest_calls(run.samples)
    best = top_candidate(calls)
    last = run.metrics[-1] if run.metrics else {}
    post = run.posterior or {}
    dataset = post.get("dataset", {"name": run.config["dataset"]})
    return {
        "run": str(run_dir),
        "dataset": dataset,
        "space": run.config["space"],
        "space_options": run.config["space_options"],
        "finished": run.posterior is not None,
        "epochs_done": run.epochs_done,
        "epochs_planned": run.config["epochs"],
        "final_elbo": last.get("elbo"),
        "decision": when_q_decided(run.metrics) if run.config.get("sampler") != "uniform" else None,
        "mode": post.get("mode") or (run.gates or {}).get("mode"),
        "mode_val_acc": post.get("mode_val_acc", last.get("val_acc")),
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
    }


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
    rows = [
        ("run", info["run"]),
        ("data set", data["name"] + sizes),
        ("space", f"{info['space']} ({options})" if options else info["space"]),
        ("epochs", f"{info['epochs_done']} / {info['epochs_planned']} ({status})"),
    ]
    if info["final_elbo"] is not None:
        rows.append(("final ELBO", f"{info['final_elbo']:.4f} nats per image"))
    if info["mode"] is not None:
        rows.append(("posterior mode", info["mode"]))
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
    return rows


def summary_text(run_dir: Path) -> str:
    """The summary as aligned text lines, notes last."""
    info = summary(run_dir)
    rows = summary_rows(info)
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines + [f"note: {n}" for n in info["notes"]])


def _embed(src: str, fmt: str, alt: str) -> str:
    if fmt == "pdf":
        return (
            f'<object data="{src}" type="application/pdf" width="100%" height="600">'
            f'<a href="{src}">{alt}</a></object>'
        )
    return f'<a href="{src}"><img src="{src}" alt="{alt}"></a>'


STYLE = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}td{font-family:monospace}img{max-width:100%;border:1px solid #eee}
figure{margin:2em 0}figcaption{color:#444;margin-top:.4em}li{margin:.3em 0}"""


def write_index(run_dir: Path, out_dir: Path, figures: list[Figure], notes: list[str]) -> Path:
    """Write ``out_dir/index.html``: the summary table, the notes and every figure on disk."""
    out_dir = Path(out_dir)
    esc = html.escape
    table = "".join(
        f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>"
        for label, value in summary_rows(summary(run_dir))
    )
    items = "".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>none</li>"
    parts = []
    for figure in (f for f in figures if f.path.is_file()):
        src = esc(quote(Path(os.path.relpath(figure.path, out_dir)).as_posix()))
        fmt = figure.path.suffix.lstrip(".")
        parts.append(
            f"<figure><h3>{esc(figure.title)}</h3>{_embed(src, fmt, esc(figure.title))}"
            f"<figcaption>{esc(figure.caption)}</figcaption></figure>"
        )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>bayesnas: {esc(str(run_dir))}</title><style>{STYLE}</style></head><body>"
        f"<h1>bayesnas run {esc(str(run_dir))}</h1><h2>Summary</h2><table>{table}</table>"
        f"<h2>Notes</h2><ul>{items}</ul><h2>Figures</h2>{''.join(parts)}</body></html>\n"
    )
    path = out_dir / INDEX
    rundir.atomic_write_bytes(path, lambda f: f.write(page.encode()))
    return path


def plot_run(run: Path | None, out: Path | None, fmt: str) -> tuple[Path, list[str]]:
    """`bayesnas plot`: figures and index.html of ``run`` (default: the newest) in ``out``
    (default RUN/plots); returns the index path and the notes."""
    run_dir = find_run(run)
    out_dir = out if out is not None else run_dir / "plots"
    figures, notes = make_figures(run_dir, out_dir, fmt)
    return write_index(run_dir, out_dir, figures, notes), notes
