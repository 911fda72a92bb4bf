"""Intramuscular fat inside the compartments, at an exact fraction, in streaks and patches.

A random field is built over each compartment from elongated noise (streaks along the muscle
fascicles), blotchy noise (patches), nearness to the compartment's border (fat creeps in from the
fascia), nearness to the multifidus-erector septum, nearness to bone (the deep fibres on the
laminae, the transverse processes and the sacrum, where fat often gathers first), and a
preference for the multifidus. The pixels with the highest field values become fat, exactly
round(fraction x compartment pixels) of them, so the label map's fat fraction is the drawn one.
The pattern's weights are per case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, distance_transform_edt, gaussian_filter, rotate

from .tissues import BONE_TISSUES, Tissue

SIDE_TISSUES = (
    (Tissue.RIGHT_MULTIFIDUS, Tissue.RIGHT_ERECTOR_SPINAE, Tissue.RIGHT_INTRAMUSCULAR_FAT),
    (Tissue.LEFT_MULTIFIDUS, Tissue.LEFT_ERECTOR_SPINAE, Tissue.LEFT_INTRAMUSCULAR_FAT),
)
SHARED_NEIGHBOURS = (Tissue.FASCIA,) + BONE_TISSUES  # what a compartment may touch besides itself


@dataclass(frozen=True)
class FatPattern:
    """Weights of the field's parts and the fascicles' size (streaks run between them), drawn once per case."""

    streaks: float
    patches: float
    border: float
    septum: float
    multifidus: float
    streak_length_mm: float
    streak_width_mm: float
    patch_mm: float
    deep: float = 0.0


STREAK_LENGTH_MM, STREAK_WIDTH_MM, PATCH_MM = (3.0, 8.0), (1.2, 3.5), (2.5, 7.0)  # the grain drawn by default


def draw_fat_pattern(rng: np.random.Generator, deep: tuple[float, float] = (0.0, 0.0),
                     streak_length_mm: tuple[float, float] = STREAK_LENGTH_MM,
                     streak_width_mm: tuple[float, float] = STREAK_WIDTH_MM,
                     patch_mm: tuple[float, float] = PATCH_MM) -> FatPattern:
    """A case's pattern; the deep (next-to-bone) weight is drawn from `deep` only where its range is not 0, so
    that data sets made without it draw the same numbers as before. The grain ranges (streak length and width,
    patch size) take one draw each whatever their bounds, so other ranges change no other draw."""
    return FatPattern(
        streaks=float(rng.uniform(0.3, 1.0)),
        patches=float(rng.uniform(0.0, 0.8)),
        border=float(rng.uniform(0.0, 0.8)),
        septum=float(rng.uniform(0.0, 0.8)),
        multifidus=float(rng.uniform(0.0, 0.6)),
        streak_length_mm=float(rng.uniform(*streak_length_mm)),
        streak_width_mm=float(rng.uniform(*streak_width_mm)),
        patch_mm=float(rng.uniform(*patch_mm)),
        deep=float(rng.uniform(*deep)) if deep[1] > 0 else 0.0,
    )


def standardised(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    spread = float(values[inside].std())
    return (values - float(values[inside].mean())) / (spread if spread > 0 else 1.0)


def fascicle_lines(shape: tuple[int, int], length: float, width: float, angle_deg: float,
                   rng: np.random.Generator) -> np.ndarray:
    """A network of thin lines between elongated fascicles: minus the magnitude of smooth anisotropic noise."""
    noise = gaussian_filter(rng.standard_normal(shape), (length, width))
    noise = rotate(noise, angle_deg, reshape=False, order=1, mode="reflect")
    return -np.abs(noise) / max(float(noise.std()), 1e-9)


def fat_field(multifidus: np.ndarray, erector: np.ndarray, pattern: FatPattern, spacing: float,
              rng: np.random.Generator, bone: np.ndarray | None = None) -> np.ndarray:
    """The random field over one compartment's bounding box (higher = fat first); `bone` marks bone pixels there."""
    inside = multifidus | erector
    length, width = pattern.streak_length_mm / spacing, max(pattern.streak_width_mm / spacing, 0.5)
    field = np.zeros(inside.shape)
    for region, angle in ((multifidus, rng.normal(0, 15)), (erector, rng.normal(0, 35))):
        if region.any():
            field += region * standardised(fascicle_lines(inside.shape, length, width, angle, rng), inside)
    field *= pattern.streaks
    patches = gaussian_filter(rng.standard_normal(inside.shape), pattern.patch_mm / spacing)
    field += pattern.patches * standardised(patches, inside)
    border = distance_transform_edt(inside) * spacing
    field += pattern.border * 2.0 * np.exp(-border / 3.0)
    if multifidus.any() and erector.any():
        septum = distance_transform_edt(~(binary_dilation(multifidus) & erector)) * spacing
        field += pattern.septum * 2.0 * np.exp(-septum / 2.0)
    if pattern.deep and bone is not None and bone.any():
        field += pattern.deep * 2.0 * np.exp(-distance_transform_edt(~bone) * spacing / 4.0)
    field += pattern.multifidus * multifidus
    return field + 0.05 * rng.standard_normal(inside.shape)


def add_fat(tissues: np.ndarray, fractions_pct: tuple[float, float], pattern: FatPattern, spacing: float,
            rng: np.random.Generator) -> np.ndarray:
    """The tissue map with round(fraction x pixels) of each compartment (right, left) turned to fat."""
    out = tissues.copy()
    for (mf_code, es_code, fat_code), fraction in zip(SIDE_TISSUES, fractions_pct):
        inside = (tissues == mf_code) | (tissues == es_code)
        rows, columns = np.nonzero(inside)
        if rows.size == 0:
            continue
        n_fat = int(round(fraction / 100.0 * rows.size))
        if n_fat == 0:
            continue
        box = (slice(max(rows.min() - 2, 0), rows.max() + 3), slice(max(columns.min() - 2, 0), columns.max() + 3))
        field = fat_field(tissues[box] == mf_code, tissues[box] == es_code, pattern, spacing, rng,
                          bone=np.isin(tissues[box], BONE_TISSUES))
        local = inside[box]
        values = field[local]
        chosen = np.zeros(values.size, dtype=bool)
        chosen[np.argpartition(values, values.size - n_fat)[values.size - n_fat:]] = True
        region = out[box]
        flat = region[local]
        flat[chosen] = fat_code
        region[local] = flat
    return out


def seal_compartments(tissues: np.ndarray) -> np.ndarray:
    """Fascia wherever a compartment would touch anything but itself, its fascia or bone (after resampling).

    The other side's compartment counts as "anything": the two never touch.
    """
    out = tissues.copy()
    for own in SIDE_TISSUES:
        compartment = np.isin(out, own)
        allowed = np.isin(out, own + SHARED_NEIGHBOURS)
        out[binary_dilation(compartment) & ~allowed] = Tissue.FASCIA
    return out
