"""Vertebral levels L1 to S1 (and the discs between them) as positions along the lumbar spine.

A slice's level is a vertebra and a flag for the disc below it ("L4/L5" is L4 with the disc flag).
Its position is a number from 0 (L1) to 5 (S1), disc levels half-way between, so that anatomy
measures given per vertebra can be interpolated anywhere in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.errors import InputError

VERTEBRAE = ("L1", "L2", "L3", "L4", "L5", "S1")


@dataclass(frozen=True)
class Level:
    """A vertebra, or the disc below it when `disc` is set (S1 has none: the sacrum has no disc)."""

    vertebra: str
    disc: bool = False

    def __post_init__(self) -> None:
        if self.vertebra not in VERTEBRAE:
            raise InputError(f"vertebral level {self.vertebra!r} is unknown; choose one of {', '.join(VERTEBRAE)}")
        if self.disc and self.vertebra == "S1":
            raise InputError("level 'S1/S2' is not made: the synthesiser's lowest disc is L5/S1")

    @property
    def index(self) -> int:
        return VERTEBRAE.index(self.vertebra)

    @property
    def position(self) -> float:
        """0 for L1 ... 5 for S1; +0.5 for the disc below."""
        return self.index + (0.5 if self.disc else 0.0)

    @property
    def name(self) -> str:
        return f"{self.vertebra}/{VERTEBRAE[self.index + 1]}" if self.disc else self.vertebra

    def __str__(self) -> str:
        return self.name


def parse_level(level: Level | str) -> Level:
    """A Level from 'L4', 'l4', 'L4/L5' or 'L4-L5' (the disc below L4)."""
    if isinstance(level, Level):
        return level
    text = str(level).strip().upper().replace("-", "/")
    upper, _, lower = text.partition("/")
    if not lower:
        return Level(upper)
    if upper in VERTEBRAE[:-1] and lower == VERTEBRAE[VERTEBRAE.index(upper) + 1]:
        return Level(upper, disc=True)
    raise InputError(f"level {level!r} is not a vertebra (L1..S1) nor a disc between neighbours such as 'L4/L5'")


def along_spine(values: tuple[float, float, float, float, float, float], position: float) -> float:
    """A measure given at L1..S1, linearly interpolated at `position` (held constant beyond the ends)."""
    return float(np.interp(position, np.arange(len(VERTEBRAE)), values))
