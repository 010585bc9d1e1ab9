"""How well does each scoring of a candidate predict its accuracy after training?

    python benchmarks/ranking_scores.py --run RUN --trained results.json [--steps 50 100]

Scores the cells that ``cifar10_proof.py`` trained for one seed (its results.json, or the
result.json files of ``bayesnas train`` runs under a folder) on RUN's super-network and
held-out split: inherited weights with the super-network's BatchNorm statistics (``sample
--bn stats``), with re-estimated ones (``--bn recalibrate``), and after a few fine-tuning steps
(``sample --fine-tune-steps S``), and prints Kendall tau-b of each against test accuracy after
training. Training from scratch does not read the super-network, so the trained accuracies of
one run's cells can be set against the scores of another run of the same recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cifar10_proof import kendall_tau_b  # noqa: E402

from bayesnas.data import first_images, search_data  # noqa: E402
from bayesnas.device import resolve_device  # noqa: E402
from bayesnas.selection.finetune import FineTune  # noqa: E402
from bayesnas.selection.posterior import load_posterior  # noqa: E402
from bayesnas.selection.rank import Candidate, evaluate_candidates  # noqa: E402


def trained_cells(path: Path, seed: int) -> dict[str, float]:
    """Test accuracy after training per architecture string."""
    if path.is_dir():
        results = [json.loads(p.read_text()) for p in sorted(path.glob("*/result.json"))]
        return {r["architecture"]: r["test_accuracy"] for r in results if r["seed"] == seed}
    kendall = json.loads(path.read_text())["kendall"]
    return {r["architecture"]: r["test_accuracy"] for r in kendall["rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished search's run folder")
    parser.add_argument("--trained", type=Path, required=True, help="results.json or a folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trained cells")
    parser.add_argument("--steps", type=int, nargs="*", default=[50, 100])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    posterior = load_posterior(args.run, device)
    net = posterior.program.net
    train, val, _, _ = search_data(posterior.config, device)
    tested = trained_cells(args.trained, args.seed)
    archs = list(tested)

    def val_batches():
        return first_images(val.eval_batches(args.batch_size), None)

    def train_batches():
        return train.train_batches(args.batch_size, 0, args.seed)

    scorings = {"inherited, --bn stats": {}, "inherited, --bn recalibrate": {"bn": "recalibrate"}}
    for steps in args.steps:
        scorings[f"--fine-tune-steps {steps}"] = {"fine_tune": FineTune(steps, args.lr)}
    rows = []
    for name, options in scorings.items():
        candidates = [Candidate(net.decode(a), 0.0) for a in archs]
        started = time.perf_counter()
        evaluate_candidates(net, candidates, val_batches, train_batches=train_batches, **options)
        seconds = (time.perf_counter() - started) / len(candidates)
        scores = [c.metrics["val_acc"] for c in candidates]
        tau = kendall_tau_b(scores, [tested[a] for a in archs])
        best = archs[max(range(len(archs)), key=scores.__getitem__)]
        rows.append((name, tau, seconds, tested[best], scores))
        print(f"{name}: tau {tau:.3f}, {seconds:.1f} s per candidate", flush=True)
    print(f"\n{len(archs)} cells, run {args.run}, device {device}\n")
    print("| scoring | Kendall tau-b | s per candidate | test acc of its top-1 |")
    print("|---|---:|---:|---:|")
    for name, tau, seconds, top, _ in rows:
        print(f"| {name} | {tau:.3f} | {seconds:.1f} | {top:.2%} |")
    print("\n| architecture | test acc | " + " | ".join(r[0] for r in rows) + " |")
    print("|---|---:|" + "---:|" * len(rows))
    for a in sorted(archs, key=tested.__getitem__, reverse=True):
        j = archs.index(a)
        cells = " | ".join(f"{r[4][j]:.2%}" for r in rows)
        print(f"| `{a.replace('|', chr(92) + '|')}` | {tested[a]:.2%} | {cells} |")


if __name__ == "__main__":
    main()
