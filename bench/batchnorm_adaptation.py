"""Report: a model on the held-out domains with its batch-norm statistics adapted to each study (AdaBN).

    python bench/batchnorm_adaptation.py [MODEL] --data heldout-wide --patients 24 --share 0.25 [--patients-csv c.csv]

The network normalises every slice with the running statistics of its training draws. Adapted to the study
(Li et al. 2016, AdaBN; blended with the training statistics as in Schneider et al. 2020), each BatchNorm
layer normalises with (1 - share) x its training statistics + share x those of the study's own windows,
layer after layer: the study's windows go once through the network, and a hook sets each layer's statistics
from its input before the layer runs, so that every layer sees the layers before it adapted. Then the study
goes through the product's path (segment, clean, measure: `heldout.evaluate_case`), and the training
statistics come back before the next study. Prints `paraspinal heldout`'s table and pooled figures (compare
with the model's own table, and its fat patient by patient with `paraspinal heldout-pair`). It chooses
nothing by itself; tested after 2.19.0's release and dropped (Resources/Recipes/README.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.network.preprocess import prepare_slice
from ParaspinalSegLib.network.registry import ModelRegistry, resolve_model
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegTrainingLib.datasets import find_cases
from ParaspinalSegTrainingLib.heldout import (FAT_FROM_MODEL, DomainFigures, domain_folders, evaluate_case,
                                              held_out_markdown, patient_table_csv, pooled_figures)


@contextmanager
def study_statistics(network: torch.nn.Module, windows: np.ndarray, share: float) -> Iterator[None]:
    """Inside: every BatchNorm2d of `network` (in eval mode) normalises with (1 - share) x its training
    statistics + share x those of its input on `windows` (batch, 1, size, size); restored on leaving."""
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    training = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]

    def adapt(module: torch.nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...], index: int) -> None:
        mean, var = inputs[0].mean(dim=(0, 2, 3)), inputs[0].var(dim=(0, 2, 3), unbiased=False)
        module.running_mean.copy_((1 - share) * training[index][0] + share * mean)
        module.running_var.copy_((1 - share) * training[index][1] + share * var)

    hooks = [m.register_forward_pre_hook(lambda module, inputs, i=i: adapt(module, inputs, i))
             for i, m in enumerate(norms)]
    try:
        with torch.no_grad():
            network.eval()(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
    finally:
        for hook in hooks:
            hook.remove()
    try:
        yield
    finally:
        for m, (mean, var) in zip(norms, training):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model id or folder (default: the active model)")
    parser.add_argument("--data", required=True, type=Path, help="the held-out draws' folder (`paraspinal heldout --data`)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--share", type=float, required=True, help="the study's share of the statistics, 0-1")
    parser.add_argument("--patients-csv", type=Path, help="the patients' fat, for `paraspinal heldout-pair`")
    args = parser.parse_args()
    registry = ModelRegistry()
    model = load_model(resolve_model(args.model or registry.active().model_id, registry), "cpu", backend="torch")
    figures = []
    for domain, folder in domain_folders(args.data, args.patients):
        found = DomainFigures(domain.name, domain.holds_out, inside_training=domain.inside_training)
        for case in find_cases(folder):
            series = read_study(case.image).series
            windows = np.stack([prepare_slice(s.pixels, s.geometry, model.card.preprocessing)[0] for s in series.slices])
            with study_statistics(model.network, windows[:, None], args.share):
                evaluate_case(model, case, found, (FAT_FROM_MODEL,), "cpu")
        figures.append(found)
        print(f"{domain.name}: {len(found.cases)} studies", flush=True)
    print(f"\nModel {model.card.model_id}, batch-norm statistics {args.share:g} the study's:\n")
    print(held_out_markdown(figures))
    pooled = pooled_figures(figures)
    within, patients = pooled.fat_within_count(FAT_FROM_MODEL)
    print(f"pooled compartment Dice of the held-out domains: {pooled.dice:.4f} ({len(pooled.dice_right)} slices); "
          f"fat within 3 points: {within} of {patients}")
    if args.patients_csv:
        args.patients_csv.write_text(patient_table_csv(figures))


if __name__ == "__main__":
    main()
