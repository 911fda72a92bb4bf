"""Report: where a model misses the real labelled compartments of ../shared, and how those compartments are shaped.

    python bench/real_misses.py [MODEL] [--shared ../shared]    # MODEL: id or folder; default the active model

For each real case (`paraspinal validate-real`'s, through the same path: segment, clean) and both sides
together: the labelled compartment pixels the model calls background, and what share of them is bright (above
1.3 times the median of the labelled pixels it finds), lies in front of the labelled compartment's centroid,
lies farther from the midline than the centroid, and lies more than 2 mm inside the labelled border; then the
labelled compartments' width from the midline and depth (mm, range over slices). Directions are the
patient's, from each slice's own geometry. It names hypotheses for held-out synthetic domains; it chooses
nothing (the real cases are a report: README, "How models are chosen").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

from ParaspinalSegLib.labels import SIDES
from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.network.registry import ModelRegistry, resolve_model
from ParaspinalSegLib.slices import ImageSlice
from ParaspinalSegTrainingLib.real_validation import REAL_CASES, present_cases, segmented_case

BRIGHT = 1.3  # times the median of the labelled pixels found
DEEP_MM = 2.0


@dataclass
class Misses:
    """Counts over a case's slices; the shares are of the missed pixels."""

    labelled: int = 0
    missed: int = 0
    bright: int = 0
    anterior: int = 0
    lateral: int = 0
    deep: int = 0

    def line(self) -> str:
        share = (lambda n: n / self.missed) if self.missed else (lambda n: float("nan"))
        return (f"missed {self.missed} of {self.labelled} labelled pixels; of them bright {share(self.bright):.2f}, "
                f"in front of the centroid {share(self.anterior):.2f}, lateral of it {share(self.lateral):.2f}, "
                f"more than {DEEP_MM:g} mm inside the border {share(self.deep):.2f}")


def patient_xy(image: ImageSlice) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's patient x (toward the left) and y (toward the back), mm (LPS)."""
    rows, columns = np.indices(image.geometry.shape)
    position = image.geometry.index_to_lps(rows[..., None], columns[..., None])
    return position[..., 0], position[..., 1]


def count_misses(image: ImageSlice, truth: np.ndarray, prediction: np.ndarray, into: Misses) -> list[tuple[float, float]]:
    """Add one slice's misses (both sides) to `into`; returns each side's (width from the midline, depth), mm."""
    sides = [np.isin(truth, side.labels) for side in SIDES]
    if not all(side.any() for side in sides):
        return []
    x, y = patient_xy(image)
    midline = float(np.mean([x[side].mean() for side in sides]))
    pixels = image.pixels.astype(float)
    shapes = []
    for side, labelled in zip(SIDES, sides):
        found = np.isin(prediction, side.labels) & labelled
        missed = labelled & ~found
        shapes.append((float(np.abs(x[labelled] - midline).max()), float(np.ptp(y[labelled]))))
        into.labelled += int(labelled.sum())
        into.missed += int(missed.sum())
        if not missed.any():
            continue
        centre_x, centre_y = x[labelled].mean(), y[labelled].mean()
        if found.any():
            into.bright += int((pixels[missed] > BRIGHT * np.median(pixels[found])).sum())
        into.anterior += int((y[missed] < centre_y).sum())
        into.lateral += int((np.abs(x[missed] - midline) > abs(centre_x - midline)).sum())
        depth = distance_transform_edt(labelled) * min(image.geometry.spacing)
        into.deep += int((depth[missed] > DEEP_MM).sum())
    return shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="registered model id or model folder (default: the active model)")
    parser.add_argument("--shared", default="../shared")
    args = parser.parse_args(argv)
    registry = ModelRegistry()
    model = load_model(resolve_model(args.model or registry.active().model_id, registry))
    present = present_cases(Path(args.shared))
    for name in sorted(set(REAL_CASES) - {folder.name for folder, _ in present}):
        print(f"{name}: not found under {Path(args.shared) / 'data' / 'real'}, left out")
    for folder, (image_file, labels_file, levels) in present:
        study, truth, prediction = segmented_case(model, folder, image_file, labels_file)
        misses, shapes = Misses(), []
        for image, labelled, predicted in zip(study.series.slices, truth, prediction):
            shapes += count_misses(image, labelled, predicted, misses)
        widths, depths = np.array(shapes).T
        print(f"{folder.name} ({levels}): {misses.line()}")
        print(f"  labelled compartments: width from the midline {widths.min():.0f}-{widths.max():.0f} mm, "
              f"depth {depths.min():.0f}-{depths.max():.0f} mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
