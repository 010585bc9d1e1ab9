"""The figures a run's data allow, written all or none, and its index.html page."""

from __future__ import annotations

import html
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from bayesnas import rundir
from bayesnas.errors import UserError
from bayesnas.report import figures
from bayesnas.report.architecture import architecture_figure
from bayesnas.report.ensemble import ensemble_figures
from bayesnas.report.run import Row, RunData, latest_calls, load_run, top_candidate
from bayesnas.report.summary import summary, summary_rows
from bayesnas.rundir import SAMPLES, find_run

FORMATS = rundir.PLOT_FORMATS

INDEX = "index.html"


@dataclass(frozen=True)
class Figure:
    """A figure written to disk, with the title and one-line caption index.html shows."""

    path: Path
    title: str
    caption: str


def _figures(run: RunData, calls: dict[str, list[Row]]) -> list[tuple[str, str, str, Any]]:
    """(file stem, title, caption, matplotlib figure) of every figure the run's data allow."""
    made = []
    gates, metrics = run.gates, run.metrics
    if metrics:
        made.append(
            (
                "01-training",
                "Training",
                "-ELBO and its terms (NLL, KL/N, weight prior) in nats per image on a log "
                "scale, the learning rates and tau"
                + (" per step" if run.steps else " per epoch")
                + ", and the accuracies per epoch",
                figures.training_figure(metrics, run.steps),
            )
        )
    if gates is not None and figures.is_cell_space(gates):
        figure = figures.cell_posterior_figure(metrics, gates, run.when)
        mode = gates["mode"] if run.has_mode else "none yet (tied gate logits)"
        caption = f"q(op | edge) {run.when} (rows sum to 1) and over epochs; mode {mode}"
        made.append(("02-posterior", "Architecture posterior", caption, figure))
        logits = run.prior_posterior_logits
        if logits is not None:
            made.append(_prior_posterior(run, gates, *logits))
    elif gates is not None:
        figure = figures.group_posterior_figure(gates, run.when)
        caption = f"keep probability per gate group {run.when}, its histogram, and what is dropped"
        made.append(("02-posterior", "Architecture posterior", caption, figure))
    if metrics:
        caption = "entropy of q per edge or gate group: falling entropy means a confident choice"
        made.append(("03-entropy", "Posterior entropy", caption, figures.entropy_figure(metrics)))
    if calls:
        names = ", ".join(calls)
        caption = (
            f"validation accuracy of the candidates, weighted by how often each was drawn, "
            f"and best-of-k ({names})"
        )
        made.append(("04-samples", "Sampled candidates", caption, figures.samples_figure(calls)))
        tops = ", ".join(f"top {figures.top_k(rows)} ({s})" for s, rows in calls.items())
        caption = (
            f"validation accuracy vs cost (dashed: Pareto front); filled: the exported {tops}; "
            "star: top-1"
        )
        made.append(("05-cost", "Accuracy vs cost", caption, figures.cost_figure(calls)))
    best = top_candidate(calls)
    arch = architecture_figure(run, best)
    if arch is not None:
        title = "Top-1 architecture" if best else "Posterior-mode architecture"
        made.append(("06-architecture", title, arch[1], arch[0]))
    made.extend(ensemble_figures(run.run_dir))
    return made


def _prior_posterior(
    run: RunData, gates: dict[str, Any], prior_logits: np.ndarray, gate_logits: np.ndarray
) -> tuple[str, str, str, Any]:
    """Figure 2b of a run with a non-flat architecture prior: (stem, title, caption, figure)."""
    c, epochs = run.config, run.epochs_done
    prior = f"{c['arch_prior']} ({c['prior_proxy']}, strength {c['prior_strength']:g})"
    when = f"after {epochs} epoch{'' if epochs == 1 else 's'} of SVI"
    figure = figures.prior_posterior_figure(gates, prior_logits, gate_logits, prior, when)
    caption = (
        f"p(op | edge): the {prior} prior from training-free evidence, computed before SVI; "
        f"q(op | edge): the posterior {when}; one colour scale, framed: each edge's top op; "
        "bars: KL(q || p) per edge in nats"
    )
    if c.get("cost") is not None and c.get("cost_weight"):
        caption += f" (p leaves out the search prior's --cost {c['cost']} term)"
    return "02-prior-posterior", "Architecture prior vs posterior", caption, figure


def _render(
    run_dir: Path, fmt: str
) -> tuple[list[tuple[str, str, str, bytes]], list[str], RunData]:
    """Every figure the run's data allow, rendered in memory: (file name, title, caption,
    bytes); notes on what is missing; and the run as loaded."""
    if fmt not in FORMATS:
        raise UserError(f"unknown figure format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    run = load_run(Path(run_dir))
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
    prior = run.config.get("arch_prior", "uniform") != "uniform" and run.config["prior_strength"]
    if run.posterior is None and prior:
        notes.append("the prior vs posterior figure comes with posterior.pt, when the run ends")
    if not run.has_mode and not calls and run.gates is not None:
        notes.append("q has no mode yet (its gate logits are tied): no figure 6 until it has one")
    rendered = []
    for stem, title, caption, figure in _figures(run, calls):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt)
        rendered.append((f"{stem}.{fmt}", title, caption, buffer.getvalue()))
    return rendered, notes, run


def _install(out_dir: Path, files: dict[str, bytes]) -> None:
    """Put ``files`` into ``out_dir`` whole or not at all: written into a hidden folder inside
    it, then renamed into place. A full disk is one line, and leaves ``out_dir`` as it was."""
    created = not out_dir.exists()
    rundir.create(out_dir)
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".plots-"))
        for name, data in files.items():
            rundir.write_new(staging / name, data)
        for name in files:
            os.replace(staging / name, out_dir / name)
    except (rundir.DiskFull, OSError) as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            staging = None
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        if isinstance(exc, rundir.DiskFull) or rundir.is_disk_full(exc):
            raise rundir.disk_full(
                out_dir,
                sum(len(d) for d in files.values()),
                then="free some space and plot again (nothing was written)",
            ) from None
        raise UserError(f"cannot write {out_dir}: {exc.strerror}; choose another --out") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def make_figures(run_dir: Path, out_dir: Path, fmt: str = "png") -> tuple[list[Figure], list[str]]:
    """Write every figure the run's data allow as ``out_dir/NN-name.fmt`` (all or none: a full
    disk leaves no partial figure); returns them and notes on what is missing."""
    rendered, notes, _ = _render(run_dir, fmt)
    out_dir = Path(out_dir)
    _install(out_dir, {name: data for name, _, _, data in rendered})
    return [Figure(out_dir / name, title, caption) for name, title, caption, _ in rendered], notes


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
    page = index_page(run_dir, out_dir, [f for f in figures if f.path.is_file()], notes)
    path = out_dir / INDEX
    rundir.atomic_write_bytes(path, lambda f: f.write(page.encode()))
    return path


def index_page(
    run_dir: Path,
    out_dir: Path,
    figures: list[Figure],
    notes: list[str],
    run: RunData | None = None,
) -> str:
    """The index.html text: the summary table, the notes and ``figures``."""
    esc = html.escape
    table = "".join(
        f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>"
        for label, value in summary_rows(summary(run_dir, run))
    )
    items = "".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>none</li>"
    parts = []
    for figure in figures:
        src = esc(quote(Path(os.path.relpath(figure.path, out_dir)).as_posix()))
        fmt = figure.path.suffix.lstrip(".")
        parts.append(
            f"<figure><h3>{esc(figure.title)}</h3>{_embed(src, fmt, esc(figure.title))}"
            f"<figcaption>{esc(figure.caption)}</figcaption></figure>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>bayesnas: {esc(str(run_dir))}</title><style>{STYLE}</style></head><body>"
        f"<h1>bayesnas run {esc(str(run_dir))}</h1><h2>Summary</h2><table>{table}</table>"
        f"<h2>Notes</h2><ul>{items}</ul><h2>Figures</h2>{''.join(parts)}</body></html>\n"
    )


def plot_run(run: Path | None, out: Path | None, fmt: str) -> tuple[Path, list[str]]:
    """`bayesnas plot`: figures and index.html of ``run`` (default: the newest) in ``out``
    (default RUN/plots); returns the index path and the notes."""
    run_dir = find_run(run)
    out_dir = Path(out if out is not None else run_dir / "plots")
    rendered, notes, loaded = _render(run_dir, fmt)  # the run is read once per `plot`
    figures = [Figure(out_dir / name, title, caption) for name, title, caption, _ in rendered]
    page = index_page(run_dir, out_dir, figures, notes, loaded)
    _install(out_dir, {name: data for name, _, _, data in rendered} | {INDEX: page.encode()})
    return out_dir / INDEX, notes
