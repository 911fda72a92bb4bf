"""Procedural paraspinal compartments (multifidus + erector spinae per side) and how they are painted.

The compartment's shape follows the level: at T12 (made only when asked for) a wide, flat erector
spinae (longissimus and iliocostalis thoracis lying on the ribs) with a small multifidus, a flat,
wide strip at L1-L2 (lying on the transverse processes, behind the kidneys and the quadratus
lumborum), rounder and larger at L3-L4, and a multifidus-dominant medial shape on the sacrum at
L5-S1. Each side is the level's outline (in units of its width and depth) bent by smooth random
offsets, scaled to a random size in mm and smoothed; the multifidus is its medial part, split off by a curved septum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_closing, binary_dilation, distance_transform_edt, label

from .levels import along_spine, thoracic_weight
from .raster import Canvas, smooth_closed
from .spine import SIDES, Spine
from .tissues import Tissue

POSTERIOR_BONE = (Tissue.CORTICAL_BONE, Tissue.POSTERIOR_ARCH, Tissue.SACRUM)

# Outlines of one compartment as (lateral distance / width, depth behind the multifidus' front /
# depth), round from the lateral tip. LUMBAR is the mean of the 411 traced L4/L5 masks (the erector
# spinae reaches further forward than the multifidus, onto the transverse process); SACRAL is the
# multifidus-dominant shape on the sacrum, between the median crest and the posterior iliac spine.
LUMBAR = np.array([
    (0.97, 0.32), (0.9, 0.47), (0.82, 0.57), (0.74, 0.65), (0.66, 0.69), (0.58, 0.74), (0.5, 0.78), (0.41, 0.8),
    (0.29, 0.82), (0.18, 0.76), (0.08, 0.65), (0.07, 0.48), (0.07, 0.32), (0.09, 0.17), (0.19, 0.07), (0.29, 0.02),
    (0.38, 0.02), (0.43, -0.08), (0.5, -0.16), (0.6, -0.18), (0.69, -0.14), (0.79, -0.09), (0.91, -0.01), (1.0, 0.13),
])
SACRAL = np.array([
    (1.0, 0.3), (0.98, 0.5), (0.92, 0.64), (0.84, 0.74), (0.74, 0.82), (0.62, 0.88), (0.5, 0.92), (0.38, 0.94),
    (0.26, 0.92), (0.16, 0.86), (0.09, 0.74), (0.07, 0.58), (0.07, 0.4), (0.07, 0.22), (0.09, 0.08), (0.16, 0.01),
    (0.26, -0.02), (0.38, -0.03), (0.5, -0.02), (0.62, 0.0), (0.72, 0.03), (0.82, 0.07), (0.9, 0.12), (0.97, 0.2),
])

# THORACIC is the T12 compartment, drawn by judgement from anatomy atlases (not fitted): thickest beside
# the spinous process (multifidus and longissimus on the laminae and the short transverse processes),
# tapering laterally where the iliocostalis lies on the posterior surface of the 11th and 12th ribs;
# its front runs straight out over the ribs, its back is the flat thoracic back.
THORACIC = np.array([
    (1.0, 0.12), (0.93, 0.28), (0.84, 0.4), (0.74, 0.5), (0.63, 0.59), (0.52, 0.67), (0.41, 0.74), (0.3, 0.8),
    (0.2, 0.84), (0.12, 0.8), (0.08, 0.68), (0.07, 0.5), (0.07, 0.32), (0.08, 0.16), (0.14, 0.05), (0.22, 0.0),
    (0.32, -0.03), (0.42, -0.05), (0.52, -0.06), (0.62, -0.07), (0.72, -0.07), (0.82, -0.05), (0.91, -0.02),
    (0.97, 0.04),
])

MEDIAL_EDGE = 0.07  # the templates' medial border, moved onto the spinous process
MULTIFIDUS_CODES = (Tissue.RIGHT_MULTIFIDUS, Tissue.LEFT_MULTIFIDUS)
ERECTOR_CODES = (Tissue.RIGHT_ERECTOR_SPINAE, Tissue.LEFT_ERECTOR_SPINAE)


@dataclass(frozen=True)
class ShapeScale:
    """Ranges of the factors on a procedural compartment's width (from the midline) and depth, drawn per slice."""

    width: tuple[float, float] = (1.0, 1.0)
    depth: tuple[float, float] = (1.0, 1.0)

    def draw(self, rng: np.random.Generator) -> tuple[float, float]:
        """(width factor, depth factor); nothing is drawn at the default, so other data sets keep their draws."""
        if self == ShapeScale():
            return 1.0, 1.0
        return float(rng.uniform(*self.width)), float(rng.uniform(*self.depth))


@dataclass
class Compartments:
    """Multifidus and erector spinae masks of each side on a canvas grid; index 0 right, 1 left."""

    multifidus: tuple[np.ndarray, np.ndarray]
    erector: tuple[np.ndarray, np.ndarray]
    source: str

    def side(self, index: int) -> np.ndarray:
        return self.multifidus[index] | self.erector[index]

    def extent(self, canvas: Canvas) -> tuple[float, float]:
        """(largest distance from the midline, most posterior y) of both compartments, mm."""
        x, y = canvas.grid.coordinates()
        both = self.side(0) | self.side(1)
        if not both.any():
            return 0.0, 0.0
        return float(np.abs(x[both]).max()), float(y[both].max())


def outline_template(position: float) -> np.ndarray:
    """The outline for a level: the thoracic shape at T12, turning into the lumbar one by the highest L1
    slices, lumbar down to L4, turning into the sacral one from L4/L5 to S1."""
    thoracic = thoracic_weight(position)
    sacral = float(np.clip((position - 3.5) / 1.5, 0.0, 1.0))
    return (1.0 - sacral) * ((1.0 - thoracic) * LUMBAR + thoracic * THORACIC) + sacral * SACRAL


WIDTH_MM = (60.0, 66.0, 70.0, 68.0, 60.0, 50.0)  # typical width from the midline at L1..S1 (synthesis 1.0)
# T12, by judgement: the erector spinae reaches the rib angles, a little further out than at L1, and is
# flatter; the thoracic multifidus is a thin medial strip.
T12_WIDTH_MM, T12_DEPTH_MM, T12_MULTIFIDUS_SHARE = 64.0, 27.0, 0.17


def compartment_size(position: float, size: float, muscle: float,
                     widths_mm: tuple[float, ...] = WIDTH_MM) -> tuple[float, float, float]:
    """Typical (width from the midline, depth, multifidus share of the width), mm, for a level.

    widths_mm: L1..S1 (the setting); T12's is T12_WIDTH_MM."""
    width = along_spine((T12_WIDTH_MM,) + tuple(widths_mm), position) * size * muscle**0.3
    depth = along_spine((T12_DEPTH_MM, 27.0, 36.0, 46.0, 51.0, 48.0, 34.0), position) * size * muscle**0.7
    share = along_spine((T12_MULTIFIDUS_SHARE, 0.22, 0.26, 0.34, 0.43, 0.6, 0.85), position)
    return width, depth, share


def procedural_compartments(
    canvas: Canvas, spine: Spine, size: float, muscle: float, asymmetry: float, rng: np.random.Generator,
    widths_mm: tuple[float, ...] = WIDTH_MM, shape_scale: ShapeScale = ShapeScale(),
) -> Compartments:
    """Both compartments drawn from the level's template with random size, shape and asymmetry."""
    template = outline_template(spine.position)
    width, depth, share = compartment_size(spine.position, size, muscle, widths_mm)
    width *= rng.uniform(0.9, 1.1)
    depth *= rng.uniform(0.85, 1.15)
    width_factor, depth_factor = shape_scale.draw(rng)
    width, depth = width * width_factor, depth * depth_factor
    medial = spine.spinous_half_width + rng.uniform(0.8, 2.0)
    multifidus, erector = [], []
    for index, side in enumerate(SIDES):
        factor = 1.0 + (asymmetry if index == 0 else -asymmetry) / 2 + rng.normal(0, 0.03)
        w, d = width * factor, depth * factor
        points = template + smooth_noise(len(template), 0.04, rng)
        lateral = np.clip(points[:, 0], MEDIAL_EDGE, None)
        u = medial + (lateral - MEDIAL_EDGE) / (1.0 - MEDIAL_EDGE) * (w - medial)
        y = spine.lamina_y + points[:, 1] * d
        outline = smooth_closed(np.column_stack([side * u, y]), 2)
        whole = full_mask(canvas, outline)
        split = share * rng.uniform(0.85, 1.15)
        septum = np.array([
            (-5.0, -0.4), (split * rng.uniform(0.9, 1.0), -0.4), (split * rng.uniform(0.95, 1.1), 0.5),
            (split * rng.uniform(0.95, 1.2), 1.4), (-5.0, 1.4),
        ])
        medial_part = np.column_stack([side * (medial + septum[:, 0] * (w - medial)), spine.lamina_y + septum[:, 1] * d])
        mf = whole & full_mask(canvas, smooth_closed(medial_part, 2))
        multifidus.append(mf)
        erector.append(whole & ~mf)
    return Compartments((multifidus[0], multifidus[1]), (erector[0], erector[1]), "procedural")


def smooth_noise(n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) random offsets that vary smoothly round a closed outline (a few low harmonics)."""
    angle = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
    out = np.zeros((n, 2))
    for k in (1, 2, 3):
        out += rng.normal(0, spread / k, 2) * np.cos(k * angle + rng.uniform(0, 2 * np.pi, 2))
    return out


def full_mask(canvas: Canvas, polygon: np.ndarray) -> np.ndarray:
    """A polygon's pixels as a mask over the whole canvas."""
    out = np.zeros(canvas.grid.shape, dtype=bool)
    found = canvas.polygon_mask(polygon)
    if found is not None:
        box, mask = found
        out[box] = mask
    return out


def paint_compartments(canvas: Canvas, compartments: Compartments, fascia_mm: float) -> None:
    """Fascia around each compartment, then the multifidus and erector spinae inside it."""
    radius = max(1, int(round(fascia_mm / canvas.grid.spacing)))
    for index in range(2):
        whole = compartments.side(index)
        canvas.paint_mask(binary_dilation(whole, iterations=radius) & ~whole, Tissue.FASCIA)
    for index in range(2):
        canvas.paint_mask(compartments.erector[index], ERECTOR_CODES[index])
        canvas.paint_mask(compartments.multifidus[index], MULTIFIDUS_CODES[index])


def disk(radius: int) -> np.ndarray:
    """A round structuring element of the given radius in pixels."""
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius**2


def closing(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological closing with a disk, the mask padded so that nothing at its border is lost."""
    closed = binary_closing(np.pad(mask, radius), disk(radius))
    return closed[radius:-radius, radius:-radius]


def close_gaps_to_bone(canvas: Canvas, gap_mm: float) -> None:
    """Fill the gaps of up to about `gap_mm` between each compartment and the bone it lies on with its muscle.

    The multifidus lies on the laminae and the spinous process, the erector spinae on the transverse
    processes, with no fat between; the drawn outlines leave such gaps. The bone is the spine's (ribs and
    iliac wings do not count). A gap is what a morphological closing of compartment and bone adds beyond
    the closing of the bone alone, touching the compartment; each gap pixel takes the muscle code of the
    nearest compartment pixel.
    """
    radius = int(round(gap_mm / 2 / canvas.grid.spacing))
    if radius < 1:
        return
    codes = canvas.codes
    other_bones = np.isin(codes, (Tissue.RIB, Tissue.ILIUM))  # their cortex is no bed for the compartments
    cortex_reach = max(1, int(np.ceil(3.0 / canvas.grid.spacing)))
    bone = np.isin(codes, POSTERIOR_BONE) & ~binary_dilation(other_bones, iterations=cortex_reach)
    if not bone.any():
        return
    bone_closed = closing(bone, radius)
    compartments = np.isin(codes, MULTIFIDUS_CODES + ERECTOR_CODES)
    for muscles in zip(MULTIFIDUS_CODES, ERECTOR_CODES):
        own = np.isin(codes, muscles)
        if not own.any():
            continue
        gap = closing(own | bone, radius) & ~bone_closed & ~bone & ~compartments
        regions, _ = label(gap)
        touching = np.unique(regions[binary_dilation(own) & gap])
        gap = np.isin(regions, touching[touching > 0])
        if not gap.any():
            continue
        _, (rows, columns) = distance_transform_edt(~own, return_indices=True)
        codes[gap] = codes[rows[gap], columns[gap]]
        compartments |= gap
