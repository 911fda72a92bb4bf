"""Benchmark: what holds a model's Dice at coarse pixels: noise and artefacts, or how the synthesis samples a pixel.

    python bench/coarse_partial_volume.py MODEL --data coarse-pv [--patients 24] [--domains very_coarse_pixels ...]

A report that chose nothing. Each coarse held-out domain (its selection draws' settings) is drawn again in five
variants, 24 patients each, and the model measured on each through the product's path (`paraspinal heldout`'s
figures: compartment Dice per side and slice, area bias, Dice at T12 and S1): as drawn; clean (no noise, bias,
ghosts, wrap, crop, thick-slice blend or matrix reduction); clean at 1.0-1.4 mm pixels (the same kind of
anatomy drawn fine: 320 pixels, a field of view of 320-448 mm); clean with in-plane partial volume
(`in_plane_supersampling` 5: each pixel its area's mean instead of its centre's tissue); and as drawn with
partial volume. The variants draw other patients than the domain's own (another image size or sampling takes
other random numbers), so compare them at about 0.005.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

CLEAN = {"snr": (1e4, 1e4), "bias_strength": 0.0, "ghost_probability": 0.0, "wrap_probability": 0.0,
         "crop_probability": 0.0, "partial_volume_probability": 0.0, "resolution_factor": (1.0, 1.0)}
SUPERSAMPLING = 5
VARIANTS = {
    "as drawn": {},
    "clean": CLEAN,
    "clean, 1.0-1.4 mm pixels": {**CLEAN, "pixel_spacing_mm": (1.0, 1.4), "image_size": 320},
    "clean, partial volume": {**CLEAN, "in_plane_supersampling": SUPERSAMPLING},
    "as drawn, partial volume": {"in_plane_supersampling": SUPERSAMPLING},
}
DOMAINS = ("very_coarse_pixels", "thoracolumbar_coarse")


def variant_settings(domain: str, variant: str):
    """A coarse domain's selection-draw settings with one variant's changes."""
    from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings

    return dataclasses.replace(held_out_settings(domain), **VARIANTS[variant])


def folder_name(domain: str, variant: str) -> str:
    return f"{domain}-{variant.replace(', ', '-').replace(' ', '_').replace('.', '')}"


def table_row(domain: str, variant: str, figures) -> str:
    """One Markdown row: Dice, area bias and the Dice at T12 and S1 (– where the domain has none)."""
    level = {name: f"{np.mean(dice):.3f}" for name, dice in figures.level_dice.items()}
    return (f"| {domain} | {variant} | {figures.dice:.3f} | {figures.csa_bias_pct:+.1f} | "
            f"{level.get('T12', '–')} | {level.get('S1', '–')} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", required=True, help="folder for the variants' data sets (made if missing)")
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--domains", nargs="+", default=DOMAINS, choices=DOMAINS)
    args = parser.parse_args(argv)
    from ParaspinalSegLib.errors import InputError
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegLib.network.registry import resolve_model
    from ParaspinalSegLib.pipeline import FAT_FROM_MODEL
    from ParaspinalSegTrainingLib.datasets import find_cases
    from ParaspinalSegTrainingLib.heldout import DomainFigures, dataset_of, evaluate_case
    from ParaspinalSegTrainingLib.synthesis.domains import held_out_domain

    model = load_model(resolve_model(args.model))
    print("| domain | variant | Dice | area bias (%) | Dice at T12 | Dice at S1 |\n|---|---|---:|---:|---:|---:|")
    for domain in args.domains:
        for variant in VARIANTS:
            try:
                target = dataset_of(Path(args.data) / folder_name(domain, variant), args.patients,
                                    variant_settings(domain, variant))
            except InputError as error:  # a folder made with other settings or patients
                print(f"coarse_partial_volume: {error}", file=sys.stderr)
                return 2
            figures = DomainFigures(domain, held_out_domain(domain).holds_out)
            for case in find_cases(target):
                evaluate_case(model, case, figures, (FAT_FROM_MODEL,), "cpu")
            print(table_row(domain, variant, figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
