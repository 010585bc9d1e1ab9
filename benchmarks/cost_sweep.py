"""Accuracy against cost of the modes found by searches that differ only in --cost-weight.

    python benchmarks/cost_sweep.py RUN [RUN ...] --out docs/figures/cost_sweep.png

Each RUN is a finished nb201 search (e.g. `bayesnas search --preset quick --cost flops
--cost-weight LAMBDA --out RUN`). Prints one row per run (LAMBDA, MFLOPs and M params of the
mode's exact network, the search's validation accuracy of the mode) and plots accuracy against
MFLOPs, each point labelled with its LAMBDA.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure

from bayesnas.selection.posterior import load_posterior
from bayesnas.selection.rank import flops_per_image


def mode_cost(run: Path) -> dict[str, float]:
    """LAMBDA, MFLOPs, M params and validation accuracy of the run's posterior mode."""
    posterior = load_posterior(run, torch.device("cpu"))
    net, mode = posterior.program.net.eval(), posterior.program.mode()
    data = posterior.payload["dataset"]
    example = torch.zeros(1, data["channels"], data["image_size"], data["image_size"])
    return {
        "lambda": float(posterior.config.cost_weight or 0.0),
        "mflops": flops_per_image(net, mode, example) / 1e6,
        "params_m": net.count_parameters(mode) / 1e6,
        "val_acc": float(posterior.payload["mode_val_acc"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = sorted((mode_cost(run) for run in args.runs), key=lambda r: r["lambda"])
    print("| LAMBDA | MFLOPs | M params | val acc of the mode |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['lambda']:g} | {r['mflops']:.2f} | {r['params_m']:.4f} | {r['val_acc']:.2%} |")
    fig = Figure(figsize=(5, 3.6), layout="constrained", dpi=110)
    ax = fig.subplots()
    ax.plot([r["mflops"] for r in rows], [100 * r["val_acc"] for r in rows], "o")
    ax.margins(x=0.15, y=0.2)
    for r in rows:
        ax.annotate(f"λ={r['lambda']:g}", (r["mflops"], 100 * r["val_acc"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.set(
        xlabel="MFLOPs per image of the mode's exact network",
        ylabel="validation accuracy (%), zoomed",
        title="Cost-aware prior: what each λ finds (one seed each)",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
