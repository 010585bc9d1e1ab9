"""A run's artefacts, loaded tolerantly: its figures, summary table and index.html.

Works on a finished run and on one still running (config.json and metrics.jsonl only): what is
missing becomes a note, never an exception; only unreadable inputs raise UserError.
"""

from __future__ import annotations

import html
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from matplotlib.figure import Figure as MplFigure

from bayesnas import plots, rundir
from bayesnas.decision import describe as describe_decision
from bayesnas.decision import when_q_decided
from bayesnas.errors import UserError
from bayesnas.rundir import SAMPLES, find_run
from bayesnas.selection.posterior import SAMPLERS

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
    steps: list[Row] = field(default_factory=list)  # steps.jsonl: schedules and loss per step

    @property
    def epochs_done(self) -> int:
        return self.config["epochs"] if self.posterior else len(self.metrics)

    @property
    def has_mode(self) -> bool:
        """Whether q has a mode: not while its gate logits are tied (a warm-up, a uniform run)."""
        if self.posterior is not None:
            from bayesnas.search import has_mode

            return has_mode(self.posterior["gate_logits"])
        return self.gates is not None and self.gates.get("mode") is not None

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
        except rundir.UnsafeFile:
            raise  # never drawn around: the user must know that this file is not to be trusted
        except UserError as exc:
            notes.append(f"{exc}; figures from metrics.jsonl only")
    config = _config(run_dir, posterior, notes)
    samples = _valid_samples(rundir.read_jsonl(run_dir / SAMPLES, notes.append), config, notes)
    steps = rundir.read_jsonl(run_dir / rundir.STEPS, notes.append)
    run = RunData(run_dir, config, metrics, posterior, samples, notes, steps)
    if posterior is None:
        notes.append(
            f"run not finished: no posterior.pt, figures from metrics so far "
            f"({run.epochs_done} of {config['epochs']} epochs)"
        )
    return run


_SAMPLE_FIELDS = {
    "sampler": str,
    "rank": int,
    "n": int,
    "draws": int,
    "first_draw": int,
    "val_acc": (int, float),
    "val_nll": (int, float),
    "params_m": (int, float),
    "mflops": (int, float),
    "architecture": str,
}


def _sample_defect(row: Any, space: str) -> str | None:
    """What is wrong with a samples.jsonl row (None: nothing) that the figures would trip on."""
    if not isinstance(row, dict):
        return "not a JSON object"
    for key, kind in _SAMPLE_FIELDS.items():
        value = row.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{key} is {value!r}"
    if not 0 <= row["first_draw"] < row["n"] or row["rank"] < 1:
        return "first_draw or rank out of range"
    if space == "nb201":
        from bayesnas.spaces.nb201 import from_string

        try:
            from_string(row["architecture"])
        except ValueError as exc:
            return f"architecture {row['architecture']!r} is not a NAS-Bench-201 cell ({exc})"
    elif space == "resnet":
        try:
            bytes.fromhex(row.get("encoding"))
        except (TypeError, ValueError):
            return f"encoding {row.get('encoding')!r} is not the hex of a gate vector"
    return None


def _valid_samples(rows: list[Any], config: dict[str, Any], notes: list[str]) -> list[Row]:
    """The rows of samples.jsonl that the figures can use; one note per row skipped."""
    kept = []
    for number, row in enumerate(rows, start=1):
        defect = _sample_defect(row, config.get("space", ""))
        if defect is None:
            kept.append(row)
        else:
            notes.append(f"skipping row {number} of {SAMPLES}: {defect}")
    return kept


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
    if best is None and (gates is None or not run.has_mode):
        return None  # no candidate, and q has no mode (yet) to draw
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
                "-ELBO and its terms (NLL, KL/N, weight prior) in nats per image on a log "
                "scale, the learning rates and tau"
                + (" per step" if run.steps else " per epoch")
                + ", and the accuracies per epoch",
                plots.training_figure(metrics, run.steps),
            )
        )
    if gates is not None and plots.is_cell_space(gates):
        figure = plots.cell_posterior_figure(metrics, gates, run.when)
        mode = gates["mode"] if run.has_mode else "none yet (tied gate logits)"
        caption = f"q(op | edge) {run.when} (rows sum to 1) and over epochs; mode {mode}"
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
        caption = (
            f"validation accuracy of the candidates, weighted by how often each was drawn, "
            f"and best-of-k ({names})"
        )
        made.append(("04-samples", "Sampled candidates", caption, plots.samples_figure(calls)))
        tops = ", ".join(f"top {plots.top_k(rows)} ({s})" for s, rows in calls.items())
        caption = f"validation accuracy vs cost; filled: the exported {tops}; star: top-1"
        made.append(("05-cost", "Accuracy vs cost", caption, plots.cost_figure(calls)))
    best = top_candidate(calls)
    arch = architecture_figure(run, best)
    if arch is not None:
        title = "Top-1 architecture" if best else "Posterior-mode architecture"
        made.append(("06-architecture", title, arch[1], arch[0]))
    return made


def _render(run_dir: Path, fmt: str) -> tuple[list[tuple[str, str, str, bytes]], list[str]]:
    """Every figure the run's data allow, rendered in memory: (file name, title, caption,
    bytes); and notes on what is missing."""
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
    if not run.has_mode and not calls and run.gates is not None:
        notes.append("q has no mode yet (its gate logits are tied): no figure 6 until it has one")
    rendered = []
    for stem, title, caption, figure in _figures(run, calls):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt)
        rendered.append((f"{stem}.{fmt}", title, caption, buffer.getvalue()))
    return rendered, notes


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
    rendered, notes = _render(run_dir, fmt)
    out_dir = Path(out_dir)
    _install(out_dir, {name: data for name, _, _, data in rendered})
    return [Figure(out_dir / name, title, caption) for name, title, caption, _ in rendered], notes


def summary(run_dir: Path) -> dict[str, Any]:
    """The run's key facts as plain data (for `bayesnas summary` and index.html)."""
    run = load_run(Path(run_dir))
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
    page = index_page(run_dir, out_dir, [f for f in figures if f.path.is_file()], notes)
    path = out_dir / INDEX
    rundir.atomic_write_bytes(path, lambda f: f.write(page.encode()))
    return path


def index_page(run_dir: Path, out_dir: Path, figures: list[Figure], notes: list[str]) -> str:
    """The index.html text: the summary table, the notes and ``figures``."""
    esc = html.escape
    table = "".join(
        f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>"
        for label, value in summary_rows(summary(run_dir))
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
    rendered, notes = _render(run_dir, fmt)
    figures = [Figure(out_dir / name, title, caption) for name, title, caption, _ in rendered]
    page = index_page(run_dir, out_dir, figures, notes)
    _install(out_dir, {name: data for name, _, _, data in rendered} | {INDEX: page.encode()})
    return out_dir / INDEX, notes
