"""Cross-sectional areas and fat fractions per slice and side, and the patient's summary.

Pure functions of (scheme label map, slice geometry). Areas come from each slice's own pixel
spacing. Fat fraction = fat area / compartment area (Baur et al. 2021), in percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry import SliceGeometry
from .grading import sgc_grade
from ..labels import LEFT, RIGHT, Side

SIDE_NAMES = ("right", "left", "both")


@dataclass(frozen=True)
class AreaMeasurement:
    """One side (or both) of one slice: areas in mm², fat fraction in % (NaN if no compartment)."""

    total_csa_mm2: float
    muscle_csa_mm2: float
    fat_csa_mm2: float
    fat_fraction_pct: float

    @property
    def present(self) -> bool:
        return self.total_csa_mm2 > 0


def area_measurement(muscle_pixels: int, fat_pixels: int, pixel_area_mm2: float) -> AreaMeasurement:
    total = muscle_pixels + fat_pixels
    fraction = 100.0 * fat_pixels / total if total else math.nan
    return AreaMeasurement(
        total_csa_mm2=total * pixel_area_mm2,
        muscle_csa_mm2=muscle_pixels * pixel_area_mm2,
        fat_csa_mm2=fat_pixels * pixel_area_mm2,
        fat_fraction_pct=fraction,
    )


@dataclass(frozen=True)
class SliceMeasurement:
    """Right, left and both sides of one slice."""

    slice_index: int
    source_index: int
    position_mm: float
    pixel_area_mm2: float
    right: AreaMeasurement
    left: AreaMeasurement
    both: AreaMeasurement

    def side(self, name: str) -> AreaMeasurement:
        return getattr(self, name)


def _pixel_counts(labels: np.ndarray, side: Side) -> tuple[int, int]:
    return int(np.count_nonzero(labels == side.muscle)), int(np.count_nonzero(labels == side.fat))


def measure_slice(
    labels: np.ndarray, geometry: SliceGeometry, slice_index: int, source_index: int = 0
) -> SliceMeasurement:
    """Areas and fat fractions of one scheme label map [row, column] on its slice's grid."""
    area = geometry.pixel_area_mm2
    right = _pixel_counts(labels, RIGHT)
    left = _pixel_counts(labels, LEFT)
    return SliceMeasurement(
        slice_index=slice_index,
        source_index=source_index,
        position_mm=float(geometry.centre[2]),
        pixel_area_mm2=area,
        right=area_measurement(*right, area),
        left=area_measurement(*left, area),
        both=area_measurement(right[0] + left[0], right[1] + left[1], area),
    )


@dataclass(frozen=True)
class PatientSummary:
    """Mean fat fraction over the slices where the compartment is present, and the SGC grade."""

    mean_fat_fraction_right_pct: float
    mean_fat_fraction_left_pct: float
    mean_fat_fraction_pct: float
    slices_right: int
    slices_left: int
    slices: int
    grade: str


def mean_fat_fraction(measurements: list[SliceMeasurement], side: str) -> tuple[float, int]:
    """Mean of the per-slice fat fractions of one side over the slices where it is present."""
    values = [m.side(side).fat_fraction_pct for m in measurements if m.side(side).present]
    return (math.fsum(values) / len(values) if values else math.nan), len(values)


def summarise(measurements: list[SliceMeasurement]) -> PatientSummary:
    right, n_right = mean_fat_fraction(measurements, "right")
    left, n_left = mean_fat_fraction(measurements, "left")
    both, n_both = mean_fat_fraction(measurements, "both")
    return PatientSummary(right, left, both, n_right, n_left, n_both, sgc_grade(both))


SideValues = tuple[tuple[int, ...], tuple[int, ...]]  # label values of a structure: (right, left)
COMPARTMENT_VALUES: SideValues = (RIGHT.labels, LEFT.labels)


def overlap_counts(truth: np.ndarray, prediction: np.ndarray, values: tuple[int, ...]) -> tuple[int, int, int]:
    """(truth pixels, predicted pixels, pixels in both) of the labels `values`."""
    t, p = np.isin(truth, values), np.isin(prediction, values)
    return int(t.sum()), int(p.sum()), int((t & p).sum())


def sided_dice(truth: np.ndarray, prediction: np.ndarray, values: SideValues = COMPARTMENT_VALUES) -> float:
    """Mean of the right side's and the left side's Dice, over the sides present in truth or
    prediction (NaN when neither is). Sides count apart: a prediction with right and left swapped
    scores 0. The arrays may be one slice or a stack (then the Dice is pooled over its pixels)."""
    per_side = []
    for side_values in values:
        n_t, n_p, n_tp = overlap_counts(truth, prediction, side_values)
        if n_t + n_p:
            per_side.append(2 * n_tp / (n_t + n_p))
    return float(np.mean(per_side)) if per_side else math.nan


def mean_compartment_dice(truth: list[np.ndarray], prediction: list[np.ndarray]) -> float:
    """Mean over slices of the compartments' Dice, per side (`sided_dice`); slices empty in both skipped."""
    values = [d for d in (sided_dice(t, p) for t, p in zip(truth, prediction)) if not math.isnan(d)]
    return float(np.mean(values)) if values else math.nan
