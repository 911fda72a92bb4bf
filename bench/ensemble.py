"""Benchmark: does an ensemble of models pay on this CPU? Each member alone, then their average.

    python bench/ensemble.py MODEL MODEL [MODEL ...] --data heldout [--patients 8] [--mirror] [--ensemble-only]

On the held-out domains' selection draws (`paraspinal heldout --data`), through the product's own
path (segment, clean, measure): the table of `paraspinal heldout` for every member alone and for
the ensemble, whose class scores are the mean of the members' scores (each member run by the
product's backend). The table's `ms per slice` is the cost side by side: the ensemble runs every
member on every slice (on ONNX Runtime, or torch for a model without a graph, such as a training run's). With --mirror every row also uses mirrored test-time augmentation. The
ensemble takes the first member's card (preprocessing, labels); members must share preprocessing.
--ensemble-only skips the members alone (`paraspinal heldout MODEL` gives their rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class MeanRunner:
    """A NetworkRunner whose class scores are the mean of its members' scores."""

    members: list
    backend: str = "ensemble"

    def scores(self, batch: np.ndarray) -> np.ndarray:
        return np.mean([member.scores(batch) for member in self.members], axis=0)


def ensemble_of(models: list):
    """A LoadedModel that runs every member on every window and averages their scores."""
    first = models[0].card.preprocessing
    for model in models[1:]:
        if model.card.preprocessing != first:
            sys.exit(f"{model.folder}: its preprocessing differs from {models[0].folder}'s; an ensemble needs one")
    from ParaspinalSegLib.network.inference import runner_for

    runners = [runner_for(m, "cpu", mixed_precision=False) for m in models]
    return dataclasses.replace(models[0], network=None, runner=MeanRunner(runners))


def main() -> None:
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegTrainingLib.heldout import evaluate_held_out, held_out_markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the held-out domains' data sets (made if missing)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--mirror", action="store_true")
    parser.add_argument("--ensemble-only", action="store_true")
    args = parser.parse_args()
    models = [load_model(folder, "cpu", backend="onnxruntime" if (folder / "model.onnx").exists() else "torch",
                         keep_loaded=True) for folder in args.models]  # a training run's model has no graph yet
    rows = [] if args.ensemble_only else [(m.card.model_id, m) for m in models]
    rows.append((" + ".join(m.card.version for m in models), ensemble_of(models)))
    for name, model in rows:
        figures = evaluate_held_out(model, args.data, args.patients, mirror=args.mirror)
        print(f"\n### {name}{' with mirrored TTA' if args.mirror else ''}\n\n{held_out_markdown(figures)}", flush=True)


if __name__ == "__main__":
    main()
