"""Vertebral levels T12 to S1 (and the discs between them) as positions along the spine.

A slice's level is a vertebra and a flag for the disc below it ("L4/L5" is L4 with the disc flag).
Its position is a number from 0 (L1) to 5 (S1), disc levels half-way between, so that anatomy
measures given per vertebra can be interpolated anywhere in between. T12 (position -1) is made only
when asked for: the default levels, and every data set made before it, are L1..S1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.errors import InputError

VERTEBRAE = ("L1", "L2", "L3", "L4", "L5", "S1")  # the levels made by default
ALL_VERTEBRAE = ("T12",) + VERTEBRAE  # every level the synthesiser can make, cranial first
T12_POSITION = -1.0
# L1's measures hold from L1's centre up to its highest slices (position -0.2, see generator.slice_position),
# as they did before T12 was made, so that L1..S1 slices stay what they were; T12's take over above that.
L1_HELD_TO = -0.2
KNOTS = (T12_POSITION, L1_HELD_TO, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class Level:
    """A vertebra, or the disc below it when `disc` is set (S1 has none: the sacrum has no disc)."""

    vertebra: str
    disc: bool = False

    def __post_init__(self) -> None:
        if self.vertebra not in ALL_VERTEBRAE:
            raise InputError(f"vertebral level {self.vertebra!r} is unknown; choose one of "
                             f"{', '.join(ALL_VERTEBRAE)}")
        if self.disc and self.vertebra == "S1":
            raise InputError("level 'S1/S2' is not made: the synthesiser's lowest disc is L5/S1")

    @property
    def position(self) -> float:
        """-1 for T12, 0 for L1 ... 5 for S1; +0.5 for the disc below."""
        return ALL_VERTEBRAE.index(self.vertebra) + T12_POSITION + (0.5 if self.disc else 0.0)

    @property
    def name(self) -> str:
        return f"{self.vertebra}/{below(self.vertebra)}" if self.disc else self.vertebra

    def __str__(self) -> str:
        return self.name


def below(vertebra: str) -> str:
    """The next vertebra caudally ('L1' below 'T12')."""
    return ALL_VERTEBRAE[ALL_VERTEBRAE.index(vertebra) + 1]


def parse_level(level: Level | str) -> Level:
    """A Level from 'L4', 'l4', 'L4/L5' or 'L4-L5' (the disc below L4); 'T12' and 'T12/L1' too."""
    if isinstance(level, Level):
        return level
    text = str(level).strip().upper().replace("-", "/")
    upper, _, lower = text.partition("/")
    if not lower:
        return Level(upper)
    if upper in ALL_VERTEBRAE[:-1] and lower == below(upper):
        return Level(upper, disc=True)
    raise InputError(f"level {level!r} is not a vertebra (T12..S1) nor a disc between neighbours such as 'L4/L5'")


def along_spine(values: tuple[float, ...], position: float) -> float:
    """A measure given at T12, L1..S1 (seven values), linearly interpolated at `position`.

    Held constant beyond the ends, and at L1's value from L1's centre up to L1_HELD_TO (see there)."""
    if len(values) != len(ALL_VERTEBRAE):
        raise ValueError(f"along_spine needs {len(ALL_VERTEBRAE)} values ({', '.join(ALL_VERTEBRAE)}), "
                         f"got {len(values)}")
    t12, l1 = values[0], values[1]
    return float(np.interp(position, KNOTS, (t12, l1, *values[1:])))  # L1's value at L1_HELD_TO and at L1


def thoracic_weight(position: float) -> float:
    """How far a position lies into T12: 0 from the highest L1 slices down, 1 at T12's centre and above."""
    return float(np.clip((L1_HELD_TO - position) / (L1_HELD_TO - T12_POSITION), 0.0, 1.0))
