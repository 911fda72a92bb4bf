"""Quality warnings on a segmentation result: the slices, and the study, where it cannot be trusted.

Per slice and side, from the measurements (areas from each slice's own pixel spacing; right and
left are the patient's) and, for a model's result, the network's confidence per slice:

- a side missing where the other side is present;
- a compartment area outside a plausible adult range, or far from the series' own median;
- strong left/right asymmetry of the compartment areas;
- low confidence of the network in its compartments, on a slice or over the study as a whole;
- for a model's result, pixels coarser than any series the models were measured on.

Each finding is a `SliceFlag`; `study_warnings` sums them up in sentences for the user ("left
compartment missing on 10 of 29 slices: ..."). Any flag makes a study warning, so a grade from a
failed segmentation never comes without one (`grade_caution`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum

from .grading import BOUNDARY_NOTE_START
from .measurement import SliceMeasurement

SIDES = ("right", "left")


@dataclass(frozen=True)
class Thresholds:
    """Where a slice is flagged.

    area_range_mm2: the compartment (erector spinae + multifidus inside the fascia) of one side. The
    level is not known at inference, so the band has to hold every lumbar level of every adult.
    Published per-side figures lie well inside it: e.g. Sions et al., J Orthop Sports Phys Ther 2017
    (older adults, traced inside the fascia, L2-L5) report an erector spinae muscle CSA of about
    860-930 mm² per side on average, without the multifidus and the fat; the combined compartment of
    young, muscular adults at L2-L4 reaches about 3000-4000 mm² (general knowledge of the literature,
    not checked against one source here); the shipped synthetic sample (L1-S1) spans 1490-3450 mm². 400 mm² is a quarter of a small compartment, 5000 mm² well above a large one:
    the band catches failed segmentations (a fragment, a compartment spilling into the psoas or the
    subcutaneous fat), not atrophy. A choice made by judgement from those figures, not a fitted one.

    median_factor: a slice is flagged when one side's area is below the series' median for that side
    divided by the factor, or above it times the factor (the median over the slices where the side is
    present, at least `min_slices_for_median` of them). Between L1 and S1 the compartment's area
    changes by less than 2.5x (the sample: 0.65x-1.5x its median), so 2.5x is a failed slice.

    asymmetry_ratio: larger / smaller compartment area on one slice. Side-to-side differences of
    healthy adults are mostly below 10-15 %, and unilateral atrophy after radiculopathy rarely
    reaches a third of the muscle (general knowledge again); 1.5 (the smaller side under two thirds
    of the larger) is beyond both. The sample's largest ratio with the shipped model is 1.32 (its truth: 1.04);
    the 411 expert-traced L4/L5 compartments of ../shared reach 1.31 at most (median 1.05), and their 822 sides
    lie at 1373-3812 mm², inside `area_range_mm2` (`bench/warning_calibration.py`).

    min_confidence: the network's mean top-class probability over its compartment pixels (classes
    merged into background, right and left compartment; see inference.compartment_confidence).
    Calibrated on synthetic images only: 0.98-0.99 on every slice of the sample, 0.96-0.98 on the
    sample with its contrast inverted (segmented well), 0.66-0.95 on the sample under heavy noise
    (segmented badly). It says nothing about a model confidently wrong; the other checks do.

    min_study_confidence: the same confidence averaged over the study's slices. Unlike the others, chosen
    by a rule written before its figures, on synthetic data only (model 2.9.0): the highest of 0.90-0.98
    that warns at most 5 % of the good studies (compartment Dice >= 0.9) of the ten held-out domains'
    selection draws that no other check warns (0.98: 2 of 66; 0.97 and below: none), adopted because it
    also warned the one failed study (Dice 0.72, mean 0.965) of 32 coarse, noisy calibration studies
    that the other checks let pass. Good studies there start at 0.978; the shipped sample is at 0.986.
    The same rule gives 0.98 again for model 2.19.0 on the thirteen domains that stay held out (4 of 94
    good studies warned by it alone; the 4 failed studies the other checks miss lie at 0.961-0.968):
    `bench/warning_calibration.py` reproduces it.
    When a study falls below it, the slices below it that `min_confidence` leaves are flagged.

    max_pixel_mm: for a model's result, a slice whose pixels are coarser (the square root of the pixel
    area) is flagged. 3.6 mm is the coarsest pixel of the held-out domains that every model is measured
    on (`very_coarse_pixels`, 3.1-3.6 mm, where 2.19.0 reaches a compartment Dice of 0.896 on the
    selection draws against 0.95 at training's pixels); beyond it, no figure says how a model draws the
    borders (the input check takes pixels up to 5 mm). No held-out draw is coarser than 3.6 mm, so the
    check warns none of their good cases.
    """

    area_range_mm2: tuple[float, float] = (400.0, 5000.0)
    median_factor: float = 2.5
    min_slices_for_median: int = 3
    asymmetry_ratio: float = 1.5
    min_confidence: float = 0.90
    min_study_confidence: float = 0.98
    max_pixel_mm: float = 3.6


class Check(str, Enum):
    """What a flag says about a slice."""

    SIDE_MISSING = "side missing"
    AREA_RANGE = "area out of range"
    AREA_MEDIAN = "area far from the median"
    ASYMMETRY = "asymmetry"
    LOW_CONFIDENCE = "low confidence"
    LOW_STUDY_CONFIDENCE = "low study confidence"
    COARSE_PIXELS = "pixels coarser than measured"


SHORT_NAMES = {  # the tags on the QC picture's tiles
    Check.SIDE_MISSING: "missing",
    Check.AREA_RANGE: "area",
    Check.AREA_MEDIAN: "area vs median",
    Check.ASYMMETRY: "asymmetry",
    Check.LOW_CONFIDENCE: "low confidence",
    Check.LOW_STUDY_CONFIDENCE: "study confidence",
    Check.COARSE_PIXELS: "coarse pixels",
}


@dataclass(frozen=True)
class SliceFlag:
    """One finding on one slice: the check, the side it concerns ("right", "left" or "both") and
    what was found, in words."""

    slice_index: int
    check: Check
    side: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self) | {"check": self.check.value}

    @property
    def tag(self) -> str:
        """A few characters for a QC tile: "L missing", "R area", "asymmetry"."""
        prefix = {"right": "R ", "left": "L "}.get(self.side, "")
        return prefix + SHORT_NAMES[self.check]


@dataclass(frozen=True)
class QualityReport:
    """Every flag of a result (slice order) and the study's warnings in sentences."""

    flags: tuple[SliceFlag, ...]
    warnings: tuple[str, ...]


def missing_sides(slices: Sequence[SliceMeasurement]) -> list[SliceFlag]:
    """A flag for each slice where one side has no compartment and the other has one."""
    flags = []
    for m in slices:
        for side, other in (("right", "left"), ("left", "right")):
            if not m.side(side).present and m.side(other).present:
                flags.append(SliceFlag(m.slice_index, Check.SIDE_MISSING, side,
                                       f"{side} compartment missing ({other} {m.side(other).total_csa_mm2:.0f} mm²)"))
    return flags


def areas_out_of_range(slices: Sequence[SliceMeasurement], area_range_mm2: tuple[float, float]) -> list[SliceFlag]:
    """A flag for each present side whose compartment area lies outside the range."""
    low, high = area_range_mm2
    flags = []
    for m in slices:
        for side in SIDES:
            area = m.side(side).total_csa_mm2
            if m.side(side).present and not low <= area <= high:
                flags.append(SliceFlag(m.slice_index, Check.AREA_RANGE, side,
                                       f"{side} compartment {area:.0f} mm², outside {low:.0f}-{high:.0f} mm²"))
    return flags


def areas_far_from_median(slices: Sequence[SliceMeasurement], factor: float, min_slices: int) -> list[SliceFlag]:
    """A flag for each present side whose area is below median / factor or above median * factor,
    the median of that side over the series' slices where it is present."""
    flags = []
    for side in SIDES:
        areas = {m.slice_index: m.side(side).total_csa_mm2 for m in slices if m.side(side).present}
        if len(areas) < min_slices:
            continue
        median = statistics.median(areas.values())
        for index, area in areas.items():
            if not median / factor <= area <= median * factor:
                flags.append(SliceFlag(index, Check.AREA_MEDIAN, side,
                                       f"{side} compartment {area:.0f} mm², {area / median:.2f} times the "
                                       f"series' median of {median:.0f} mm²"))
    return flags


def asymmetric_slices(slices: Sequence[SliceMeasurement], ratio: float) -> list[SliceFlag]:
    """A flag for each slice with both sides present where the larger area exceeds ratio x the smaller."""
    flags = []
    for m in slices:
        right, left = m.right.total_csa_mm2, m.left.total_csa_mm2
        if m.right.present and m.left.present and max(right, left) > ratio * min(right, left):
            flags.append(SliceFlag(m.slice_index, Check.ASYMMETRY, "both",
                                   f"right {right:.0f} mm², left {left:.0f} mm² (ratio {max(right, left) / min(right, left):.2f})"))
    return flags


def low_confidence_slices(confidence: Sequence[float], minimum: float) -> list[SliceFlag]:
    """A flag for each slice whose confidence is below the minimum (NaN: no compartment, no flag)."""
    return [
        SliceFlag(index, Check.LOW_CONFIDENCE, "both", f"mean probability {value:.2f} in the compartments")
        for index, value in enumerate(confidence)
        if not math.isnan(value) and value < minimum
    ]


def low_confidence_study(confidence: Sequence[float], minimum_slice: float, minimum_study: float) -> list[SliceFlag]:
    """When the mean confidence over the study's slices (NaN: no compartment, left out) is below
    `minimum_study`, a flag for each slice below it that `low_confidence_slices` leaves (at or above
    `minimum_slice`); such a study always has a flagged slice, from one check or the other."""
    values = [(index, value) for index, value in enumerate(confidence) if not math.isnan(value)]
    mean = sum(value for _, value in values) / len(values) if values else math.nan
    if not mean < minimum_study:
        return []
    return [SliceFlag(index, Check.LOW_STUDY_CONFIDENCE, "both",
                      f"mean probability {value:.2f} in the compartments, in a study whose mean is {mean:.3f}")
            for index, value in values if minimum_slice <= value < minimum_study]


def coarse_pixel_slices(slices: Sequence[SliceMeasurement], max_pixel_mm: float) -> list[SliceFlag]:
    """A flag for each slice whose pixels (the square root of their area) are coarser than `max_pixel_mm`."""
    return [SliceFlag(m.slice_index, Check.COARSE_PIXELS, "both",
                      f"pixels of {math.sqrt(m.pixel_area_mm2):.1f} mm, coarser than {max_pixel_mm:g} mm")
            for m in slices if math.sqrt(m.pixel_area_mm2) > max_pixel_mm]


def _slice_list(indices: Sequence[int]) -> str:
    return ", ".join(str(i) for i in sorted(set(indices)))


def study_warnings(flags: Sequence[SliceFlag], slices: int, thresholds: Thresholds) -> tuple[str, ...]:
    """One sentence per kind of finding (and side), with how many slices and which."""
    low, high = thresholds.area_range_mm2
    templates = [
        (Check.SIDE_MISSING, "right", "right compartment missing on {n} of {total} slices ({which}) where the left is found"),
        (Check.SIDE_MISSING, "left", "left compartment missing on {n} of {total} slices ({which}) where the right is found"),
        (Check.AREA_RANGE, "right", f"right compartment area outside {low:.0f}-{high:.0f} mm² on {{n}} of {{total}} slices ({{which}})"),
        (Check.AREA_RANGE, "left", f"left compartment area outside {low:.0f}-{high:.0f} mm² on {{n}} of {{total}} slices ({{which}})"),
        (Check.AREA_MEDIAN, "right", f"right compartment area more than {thresholds.median_factor:g} times off the "
                                     "series' median on {n} of {total} slices ({which})"),
        (Check.AREA_MEDIAN, "left", f"left compartment area more than {thresholds.median_factor:g} times off the "
                                    "series' median on {n} of {total} slices ({which})"),
        (Check.ASYMMETRY, "both", f"left/right area ratio above {thresholds.asymmetry_ratio:g} on {{n}} of {{total}} "
                                  "slices ({which})"),
        (Check.LOW_CONFIDENCE, "both", f"low model confidence (below {thresholds.min_confidence:.2f}) on {{n}} of "
                                       "{total} slices ({which})"),
        (Check.LOW_STUDY_CONFIDENCE, "both", f"low model confidence over the study (mean below "
                                             f"{thresholds.min_study_confidence:.2f}); below it also on {{n}} of "
                                             "{total} slices ({which})"),
        (Check.COARSE_PIXELS, "both", f"pixels coarser than {thresholds.max_pixel_mm:g} mm, beyond any series the "
                                      "model was measured on, on {n} of {total} slices ({which})"),
    ]
    sentences = []
    for check, side, template in templates:
        which = [f.slice_index for f in flags if f.check is check and f.side == side]
        if which:
            sentences.append(template.format(n=len(set(which)), total=slices, which=_slice_list(which)))
    return tuple(sentences)


def assess_quality(
    slices: Sequence[SliceMeasurement],
    confidence: Sequence[float] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> QualityReport:
    """Every check on a measured series; `confidence` per slice (series order) when a model segmented it
    (then also the pixels' coarseness: a segmentation drawn by hand is not the model's to doubt)."""
    flags = (
        missing_sides(slices)
        + areas_out_of_range(slices, thresholds.area_range_mm2)
        + areas_far_from_median(slices, thresholds.median_factor, thresholds.min_slices_for_median)
        + asymmetric_slices(slices, thresholds.asymmetry_ratio)
        + low_confidence_slices(confidence or (), thresholds.min_confidence)
        + low_confidence_study(confidence or (), thresholds.min_confidence, thresholds.min_study_confidence)
        + (coarse_pixel_slices(slices, thresholds.max_pixel_mm) if confidence is not None else [])
    )
    flags.sort(key=lambda f: f.slice_index)
    return QualityReport(tuple(flags), study_warnings(flags, len(slices), thresholds))


def grade_caution(warnings: Sequence[str]) -> str:
    """What goes next to the grade: nothing, that the warnings say it may rest on a failed segmentation,
    or, when the only warning is grading.boundary_note's, that the grade lies near a boundary."""
    if not warnings:
        return ""
    if all(w.startswith(BOUNDARY_NOTE_START) for w in warnings):
        return f"check the {len(warnings)} warning(s): the grade lies near a boundary"
    return f"check the {len(warnings)} warning(s): the segmentation may have failed"
