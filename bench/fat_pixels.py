"""Benchmark: where a model's fat pixels go on the held-out draws, and how closely its per-slice fat follows.

    python bench/fat_pixels.py MODEL --data heldout-wide [--patients 24] [--domains NAME ...] [--fat-methods]

A report that chooses nothing. Each held-out patient (the domains that stay held out, or `--domains`) is
segmented through the product's path (segment, clean, labels on the slices' own pixels, the card's offsets)
and its pixels are counted against the truth: true fat called muscle or background, fat called where the
truth has muscle or background, and the compartments' and their fat's area against the truth. Pixels are
summed over the patients of each band of the true patient fat (the compartments' fat over their area, all
slices), so a band's shares are of its true fat. Then the per-slice fat fraction against the truth's, by band
of the slice's true fat (slices with a compartment): mean absolute error, bias and Pearson's r within the band,
and for the lean slices (true fat below 10 %) domain by domain, the case of the hidden real studies of
healthy volunteers, where the issue found the per-slice fat not following Dixon; with --fat-methods the same
tables for `gmm` and `otsu` too, measured on the model's compartments (`paraspinal heldout --fat-methods` gives
their agreement over all slices). `paraspinal heldout --data DIR` makes the draws.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

BANDS = ((0, 10), (10, 20), (20, 30), (30, 45), (45, 100))
SLICE_BANDS = ((0, 5), (5, 10), (10, 30), (30, 100))
LEAN_PCT = 10.0


@dataclass
class PixelCounts:
    """Pixel counts, truth against prediction (compartment = muscle + fat, both sides): a slice's, or summed."""

    true_fat: int = 0
    true_muscle: int = 0
    predicted_fat: int = 0
    predicted_muscle: int = 0
    fat_as_muscle: int = 0
    fat_as_background: int = 0
    muscle_as_fat: int = 0
    background_as_fat: int = 0

    def add(self, other: PixelCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def true_fat_pct(self) -> float:
        return 100.0 * self.true_fat / max(self.true_fat + self.true_muscle, 1)

    @property
    def predicted_fat_pct(self) -> float:
        return 100.0 * self.predicted_fat / max(self.predicted_fat + self.predicted_muscle, 1)


def slice_counts(truth: np.ndarray, prediction: np.ndarray) -> PixelCounts:
    """The counts of one slice's label maps (the project's scheme, both sides pooled)."""
    from ParaspinalSegLib.labels import LEFT, RIGHT

    fat, muscle = (RIGHT.fat, LEFT.fat), (RIGHT.muscle, LEFT.muscle)
    true_fat, true_muscle = np.isin(truth, fat), np.isin(truth, muscle)
    called_fat, called_muscle = np.isin(prediction, fat), np.isin(prediction, muscle)
    return PixelCounts(int(true_fat.sum()), int(true_muscle.sum()), int(called_fat.sum()), int(called_muscle.sum()),
                       int((true_fat & called_muscle).sum()), int((true_fat & (prediction == 0)).sum()),
                       int((true_muscle & called_fat).sum()), int(((truth == 0) & called_fat).sum()))


@dataclass
class Band:
    """The patients of one band of true fat, their counts summed and their patient fat errors."""

    low: float
    high: float
    counts: PixelCounts = field(default_factory=PixelCounts)
    errors: list[float] = field(default_factory=list)

    def row(self) -> str:
        c, share = self.counts, lambda n: 100.0 * n / max(self.counts.true_fat, 1)
        compartment = (c.predicted_fat + c.predicted_muscle) / max(c.true_fat + c.true_muscle, 1) - 1
        errors = np.asarray(self.errors)
        return (f"| {self.low:g}-{self.high:g} % | {errors.size} | {errors.mean():+.2f} | {(abs(errors) <= 3).sum()} | "
                f"{share(c.fat_as_muscle):.1f} / {share(c.muscle_as_fat):.1f} | "
                f"{share(c.fat_as_background):.1f} / {share(c.background_as_fat):.1f} | "
                f"{100 * compartment:+.1f} | {100 * (c.predicted_fat / max(c.true_fat, 1) - 1):+.1f} |")


HEADER = ("| true patient fat | patients | fat bias, points | within 3 points | true fat called muscle / muscle "
          "called fat, % of true fat | true fat called background / background called fat | compartment area, % | "
          "fat area, % |\n|---|---:|---:|---:|---:|---:|---:|---:|")


def agreement_row(name: str, true_pct: np.ndarray, measured_pct: np.ndarray) -> str:
    """A row of per-slice agreement: slices, mean absolute error, bias (points) and Pearson's r."""
    error = measured_pct - true_pct
    r = np.corrcoef(true_pct, measured_pct)[0, 1] if true_pct.size > 2 and np.ptp(true_pct) > 0 else float("nan")
    return f"| {name} | {true_pct.size} | {np.abs(error).mean():.2f} | {error.mean():+.2f} | {r:.2f} |"


AGREEMENT_HEADER = "| {} | slices | mean absolute error, points | bias | r |\n|---|---:|---:|---:|---:|"


def slice_agreement(domains: np.ndarray, true_pct: np.ndarray, measured_pct: np.ndarray) -> str:
    """The per-slice tables: by band of the slice's true fat, then the lean slices domain by domain (a slice
    without a measured fat fraction, where the method found no compartment, left out)."""
    measured = np.isfinite(measured_pct)
    domains, true_pct, measured_pct = domains[measured], true_pct[measured], measured_pct[measured]
    by_band = [agreement_row(f"{low:g}-{high:g} %", true_pct[inside], measured_pct[inside])
               for low, high in SLICE_BANDS if (inside := (true_pct >= low) & (true_pct < high)).any()]
    lean = true_pct < LEAN_PCT
    by_domain = [agreement_row(name, true_pct[inside], measured_pct[inside])
                 for name in dict.fromkeys(domains) if (inside := lean & (domains == name)).any()]
    return "\n".join([AGREEMENT_HEADER.format("true slice fat"), *by_band, "",
                      AGREEMENT_HEADER.format(f"slices below {LEAN_PCT:g} % true fat, by domain"), *by_domain])


def measured_per_slice(model, case, fat_methods: tuple[str, ...]) -> tuple[list[PixelCounts], dict[str, list[float]]]:
    """One held-out patient segmented through the product's path: its pixels counted against its truth slice
    by slice, and each fat method's fat fraction per slice (%), the model's own (`cnn`) from the counts, the
    others measured on the model's compartments by `paraspinal heldout --fat-methods`'s own `intensity_fat`."""
    from ParaspinalSegLib.pipeline import FAT_FROM_MODEL, segment_series
    from ParaspinalSegLib.read.reading import read_study
    from ParaspinalSegTrainingLib.datasets import case_labels
    from ParaspinalSegTrainingLib.heldout import intensity_fat

    study = read_study(case.image)
    truth, _ = case_labels(case, study.series)
    labels = segment_series(study.series, model).labels
    counts = [slice_counts(true_labels, predicted) for true_labels, predicted in zip(truth, labels)]
    measured = {method: [one.both.fat_fraction_pct for one in found.slices]
                for method, found in intensity_fat(study.series, labels, fat_methods).items()}
    return counts, {FAT_FROM_MODEL: [one.predicted_fat_pct for one in counts], **measured}


def main(argv: list[str] | None = None) -> int:
    from ParaspinalSegLib import __version__
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegLib.network.registry import resolve_model
    from ParaspinalSegTrainingLib.datasets import find_cases
    from ParaspinalSegTrainingLib.heldout import FAT_METHODS
    from ParaspinalSegTrainingLib.synthesis.domains import HELD_OUT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", type=Path, required=True, help="the held-out draws (`paraspinal heldout --data`)")
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--domains", nargs="+", default=[d.name for d in HELD_OUT if not d.inside_training])
    parser.add_argument("--fat-methods", action="store_true", help="the per-slice tables for gmm and otsu too")
    args = parser.parse_args(argv)
    methods = FAT_METHODS if args.fat_methods else FAT_METHODS[:1]
    missing = [name for name in args.domains if not (args.data / name).is_dir()]
    if missing:
        print(f"fat_pixels: no draws for {', '.join(missing)} in {args.data}", file=sys.stderr)
        return 2
    model = load_model(resolve_model(args.model))
    bands = [Band(low, high) for low, high in BANDS]
    slices: list[tuple[str, float, tuple[float, ...]]] = []  # domain, true fat %, each method's fat %
    for name in args.domains:
        for case in find_cases(args.data / name)[:args.patients]:
            counts = PixelCounts()
            per_slice, measured = measured_per_slice(model, case, methods)
            for k, one in enumerate(per_slice):
                counts.add(one)
                if one.true_fat + one.true_muscle:
                    slices.append((name, one.true_fat_pct, tuple(measured[method][k] for method in methods)))
            band = next(b for b in bands if b.low <= counts.true_fat_pct < b.high)
            band.counts.add(counts)
            band.errors.append(counts.predicted_fat_pct - counts.true_fat_pct)
        print(f"{name} done", file=sys.stderr, flush=True)
    print(f"{model.card.model_id} at its card's offsets on {args.data} ({len(args.domains)} domains, up to "
          f"{args.patients} patients each; paraspinalseg {__version__}, {date.today().isoformat()})\n")
    print(HEADER)
    print("\n".join(band.row() for band in bands if band.errors))
    names, true_pct, measured_pct = zip(*slices)
    for method, measured in zip(methods, np.array(measured_pct).T):
        print(f"\n{method}, per slice:\n" + slice_agreement(np.array(names), np.array(true_pct), measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
