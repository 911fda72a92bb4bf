"""The project's one label scheme, and the mappings from other label maps onto it.

    0 background
    1 right muscle tissue      (right compartment = 1 | 2)
    2 right fat
    3 left muscle tissue       (left compartment = 3 | 4)
    4 left fat

"Right" and "left" are the patient's. The compartment is erector spinae + multifidus inside the
fascia (Baur et al. 2021; TotalSegmentator calls it "autochthon").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

BACKGROUND = 0
RIGHT_MUSCLE = 1
RIGHT_FAT = 2
LEFT_MUSCLE = 3
LEFT_FAT = 4


@dataclass(frozen=True)
class Side:
    """One side's labels in the scheme."""

    name: str
    muscle: int
    fat: int

    @property
    def labels(self) -> tuple[int, int]:
        return (self.muscle, self.fat)


RIGHT = Side("right", RIGHT_MUSCLE, RIGHT_FAT)
LEFT = Side("left", LEFT_MUSCLE, LEFT_FAT)
SIDES = (RIGHT, LEFT)


@dataclass(frozen=True)
class SegmentStyle:
    """How a label appears as a Slicer segment."""

    label: int
    name: str
    color: tuple[float, float, float]


SEGMENTS = (
    SegmentStyle(RIGHT_MUSCLE, "Right muscle tissue", (0.85, 0.25, 0.25)),
    SegmentStyle(RIGHT_FAT, "Right fat", (1.0, 0.85, 0.35)),
    SegmentStyle(LEFT_MUSCLE, "Left muscle tissue", (0.25, 0.45, 0.9)),
    SegmentStyle(LEFT_FAT, "Left fat", (0.55, 0.95, 0.55)),
)


class LabelKind(str, Enum):
    """What the values of a segmentation mean (see README, "Label maps")."""

    SCHEME = "scheme"  # the project's 4-label map, used as given
    COMPARTMENT = "compartment"  # 1 right, 3 left compartment (2, 4 merged in); fat to be quantified
    BINARY = "binary"  # 1 = both compartments; split at the midline, fat to be quantified
    MUSCLEMAP = "musclemap"  # MuscleMap 8 labels: 1/3 right multifidus/erector, 2/4 left
    TOTALSEG = "totalseg"  # TotalSegmentator total_mr: 47 autochthon right, 46 left
    AUTO = "auto"


# Source label values that make up the right / left compartment, per kind.
COMPARTMENT_SOURCES: dict[LabelKind, tuple[tuple[int, ...], tuple[int, ...]]] = {
    LabelKind.COMPARTMENT: ((RIGHT_MUSCLE, RIGHT_FAT), (LEFT_MUSCLE, LEFT_FAT)),
    LabelKind.MUSCLEMAP: ((1, 3), (2, 4)),
    LabelKind.TOTALSEG: ((47,), (46,)),
}


def detect_label_kind(values: set[int]) -> LabelKind:
    """Guess what a label map holds from the set of values present in it.

    A map holding 2 or 4 next to 1/3 is the scheme; 46/47 is TotalSegmentator; values up to 8 with
    any above 4 is MuscleMap; {1, 3} alone is a compartment map; {1} alone is a binary map.
    """
    values = {v for v in values if v != BACKGROUND}
    if not values:
        return LabelKind.SCHEME
    if values & {46, 47}:
        return LabelKind.TOTALSEG
    if values <= {1, 2, 3, 4} and values & {2, 4}:
        return LabelKind.SCHEME
    if values <= set(range(1, 9)) and max(values) > 4:
        return LabelKind.MUSCLEMAP
    if values <= {1, 3} and 3 in values:
        return LabelKind.COMPARTMENT
    if values == {1}:
        return LabelKind.BINARY
    raise ValueError(
        f"label values {sorted(values)} match no known label scheme; "
        "pass the kind explicitly (scheme, compartment, binary, musclemap, totalseg)"
    )


def compartment_masks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right and left compartment masks of a scheme label map."""
    return np.isin(labels, RIGHT.labels), np.isin(labels, LEFT.labels)


def compartments_to_scheme(right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """A scheme label map with every compartment pixel as muscle tissue (no fat yet)."""
    out = np.zeros(right.shape, dtype=np.uint8)
    out[right] = RIGHT_MUSCLE
    out[left & ~right] = LEFT_MUSCLE
    return out
