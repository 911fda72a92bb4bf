"""Report: the `gmm` fat method's mixture fitted from one start and from several, on mixtures of known composition.

    python bench/fat_mixture_starts.py [--mixtures 40] [--seed 0] [--starts 1 10]

Each mixture is a compartment's intensities drawn from three classes (muscle, partial volume, fat) with random
shares, means (the middle 1.2-2.5 times muscle's, fat 2-4 times) and widths (5-20 % of the mean), 500-4000
pixels. Its fat share by the method's own rule with the true classes (the fat class's pixels and the middle
class's pixels above the muscle/fat midpoint) is what a perfect fit would give; the report prints, for each
number of starts, the mean absolute error of `measure.fat.fat_mask_gmm` against it (points), how many mixtures
lie more than 2 points off, and the time per mixture.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ParaspinalSegLib.measure.fat import FatSettings, fat_mask_gmm


def mixture(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One compartment's intensities and its fat share by the rule with the true classes."""
    pixels = int(rng.integers(500, 4000))
    shares = rng.dirichlet([1, 1, 1])
    muscle = rng.uniform(50, 150)
    means = np.array([muscle, muscle * rng.uniform(1.2, 2.5), muscle * rng.uniform(2.0, 4.0)])
    widths = rng.uniform(0.05, 0.2, 3) * means
    classes = rng.choice(3, pixels, p=shares)
    values = rng.normal(means[classes], widths[classes])
    rank = np.argsort(np.argsort(means))[classes]  # 0 darkest, 2 brightest, whatever order they were drawn in
    midpoint = (means.min() + means.max()) / 2
    return values, float(((rank == 2) | ((rank == 1) & (values > midpoint))).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixtures", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starts", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    mixtures = [mixture(rng) for _ in range(args.mixtures)]
    print(f"{args.mixtures} three-class mixtures of known composition (seed {args.seed}):\n")
    print("| starts | mean absolute error of the fat share (points) | mixtures more than 2 points off "
          "| ms per mixture |")
    print("|---:|---:|---:|---:|")
    for starts in args.starts:
        settings, errors, started = FatSettings(starts=starts), [], time.perf_counter()
        for values, truth in mixtures:
            errors.append(100 * abs(float(fat_mask_gmm(values, settings).mean()) - truth))
        milliseconds = 1000 * (time.perf_counter() - started) / len(mixtures)
        off = sum(e > 2 for e in errors)
        print(f"| {starts} | {np.mean(errors):.2f} | {off} of {len(errors)} | {milliseconds:.0f} |")


if __name__ == "__main__":
    main()
