"""A procedural axial anatomy map (tissue codes) of one level (T12..S1), painted in the anatomy frame.

Outside in: skin, subcutaneous fat (with fascial septa), abdominal wall muscles, the cavity's
visceral fat with bowel and organs, psoas, quadratus lumborum, diaphragm crura, iliacus and
gluteal muscles, great vessels, the 12th rib at T12, the paraspinal compartments in their fascia,
ribs, and the spine.
The body is built around the compartments (its back lies one subcutaneous fat layer behind
them), so that every compartment lies inside the body, behind the vertebral body.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .compartments import (WIDTH_MM, Compartments, ShapeScale, close_gaps_to_bone, paint_compartments,
                           procedural_compartments)
from .levels import along_spine, thoracic_weight
from .raster import Canvas, band, blob, capsule, ellipse, random_wobble, shrink, smooth_open
from .shapes import RealShape, real_compartments
from .spine import SIDES, Spine, draw_spine, iliac_path, paint_spine
from .tissues import Tissue
from .viscera import CAVITY, ORGANS, paint_bowel, paint_kidneys, paint_upper_organs, paint_vessels, psoas_size

INTERIOR = ORGANS + (Tissue.WALL_MUSCLE,)


@dataclass(frozen=True)
class Habitus:
    """One synthetic patient's build, drawn once per case.

    size: skeleton and muscle scale; muscle: muscle bulk; width_mm, depth_mm: body width and
    depth at L3; subcutaneous_mm: typical subcutaneous fat thickness; wall_mm: abdominal wall
    muscle thickness; visceral: 0..1 share of visceral fat (fewer bowel loops); asymmetry:
    relative size difference right minus left of the compartments; kidney_shift: kidneys' level
    offset (in vertebrae).
    """

    size: float
    muscle: float
    width_mm: float
    depth_mm: float
    subcutaneous_mm: float
    wall_mm: float
    visceral: float
    asymmetry: float
    kidney_shift: float


def widened(low: float, high: float, spread: float) -> tuple[float, float]:
    """The range (low, high) widened about its centre by the factor `spread` (exactly itself at 1)."""
    if spread == 1.0:
        return low, high
    centre, half = (low + high) / 2, (high - low) / 2 * spread
    return centre - half, centre + half


def draw_habitus(rng: np.random.Generator, spread: float = 1.0) -> Habitus:
    """A patient's build. `spread` widens the build's draws about their middles: the log-normal spread of
    the subcutaneous fat (and its limits, 3 / spread to 55 x spread mm, so that 2 reaches very thin and
    morbidly obese backs of 1.5-110 mm), the obesity that widens and deepens the body with it, and the
    ranges of skeletal size, muscle bulk (atrophy to bulk), body width and depth and wall thickness.
    Visceral share, asymmetry and kidney level keep their draws. At 1 the draws are the default ones,
    the same random numbers in the same order, so data sets are made again to the byte."""
    subcutaneous = float(np.clip(rng.lognormal(np.log(14.0), 0.55 * spread), 3.0 / spread, 55.0 * spread))
    obesity = float(np.clip((subcutaneous - 12.0) / 30.0, -0.3 * spread, 1.3 * spread))
    return Habitus(
        size=float(rng.uniform(*widened(0.88, 1.12, spread))),
        muscle=float(rng.uniform(*widened(0.7, 1.25, spread))),
        width_mm=float(rng.uniform(*widened(270.0, 330.0, spread)) + 70.0 * obesity),
        depth_mm=float(rng.uniform(*widened(180.0, 230.0, spread)) + 80.0 * obesity),
        subcutaneous_mm=subcutaneous,
        wall_mm=float(rng.uniform(*widened(6.0, 14.0, spread))),
        visceral=float(rng.uniform(0.0, 1.0)),
        asymmetry=float(np.clip(rng.normal(0.0, 0.06), -0.2, 0.2)),
        kidney_shift=float(rng.normal(0.0, 0.3)),
    )


@dataclass(frozen=True)
class Body:
    """Outlines of one slice's body (mm polygons) and the measures other structures depend on."""

    skin: np.ndarray
    fat_inner: np.ndarray
    cavity: np.ndarray
    inner_half_width: float
    back_y: float
    subcutaneous_mm: float


def superellipse(half_width: float, half_depth: float, centre_y: float, front: float, back: float,
                 n: int = 180) -> np.ndarray:
    """A rounded box: exponent `front` for the anterior half, `back` (flatter) for the posterior half."""
    theta = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    exponent = np.where(s > 0, back, front)
    x = half_width * np.sign(c) * np.abs(c) ** (2 / exponent)
    y = centre_y + half_depth * np.sign(s) * np.abs(s) ** (2 / exponent)
    return np.column_stack([x, y])


def inset(polygon: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Move each vertex of a closed polygon inwards along its normal by distances[i] mm."""
    tangent = np.roll(polygon, -1, axis=0) - np.roll(polygon, 1, axis=0)
    normal = np.column_stack([tangent[:, 1], -tangent[:, 0]])
    normal /= np.maximum(np.hypot(normal[:, 0], normal[:, 1]), 1e-9)[:, None]
    if np.mean(np.sum(normal * (polygon - polygon.mean(axis=0)), axis=1)) < 0:
        normal = -normal
    return polygon - distances[:, None] * normal


def reach_needed(spine: Spine, compartment_reach: float, psoas_half_width: float) -> float:
    """Half-width (mm) the inside of the body wall must have to hold the slice's structures."""
    reach = max(compartment_reach + 20.0, spine.transverse_tip + 35.0, spine.body_width / 2 + 2 * psoas_half_width + 30.0)
    if spine.position < 3.0:
        reach = max(reach, spine.body_width / 2 + 2 * psoas_half_width + 60.0)
    if spine.ilium > 0:
        reach = max(reach, float(np.abs(iliac_path(spine, 1.0)[:, 0]).max()) + 10.0 + 25.0 * spine.ilium)
    return reach


def draw_body(spine: Spine, habitus: Habitus, compartment_reach: float, compartment_back: float,
              psoas_half_width: float, rng: np.random.Generator) -> Body:
    """Skin, inner fat and cavity outlines wrapped around the spine and compartments."""
    s = spine.position
    subcutaneous = habitus.subcutaneous_mm * rng.uniform(0.85, 1.15)
    wall = habitus.wall_mm * rng.uniform(0.9, 1.1)
    back_fat = subcutaneous * rng.uniform(0.55, 1.1)
    back_y = max(compartment_back + 2.0, spine.spinous_tip + 3.0) + back_fat
    needed = reach_needed(spine, compartment_reach, psoas_half_width) + wall + subcutaneous
    width_factor = along_spine((1.08, 1.04, 1.0, 1.0, 1.02, 1.07, 1.14), s) * rng.uniform(0.96, 1.04)
    half_width = max(habitus.width_mm / 2 * width_factor, needed)
    deepest = back_y - (spine.body_front_y - 60.0 - wall - subcutaneous)
    depth = max(habitus.depth_mm * along_spine((1.04, 1.0, 1.0, 1.0, 0.98, 0.95, 0.92), s) * rng.uniform(0.95, 1.05), deepest)
    base = superellipse(half_width, depth / 2, back_y - depth / 2, rng.uniform(2.0, 2.8), rng.uniform(3.0, 5.0))
    theta = np.linspace(0.0, 2.0 * np.pi, len(base), endpoint=False)
    sine = np.sin(theta)
    belly = rng.uniform(0, 0.4) * np.clip(-sine, 0, 1)
    thickness = subcutaneous * (1 + belly + 0.15 * np.cos(2 * theta + rng.uniform(0, 6.3)))
    thickness = np.where(sine > 0, thickness + (back_fat - subcutaneous) * sine**2, thickness)
    fat_inner = inset(base, np.maximum(thickness, 2.0))
    wall_profile = wall * (0.6 + 0.4 * np.clip(-sine, 0, 1) + 0.5 * np.exp(-((theta - 1.5 * np.pi) / 0.3) ** 2))
    behind = np.clip(np.abs(base[:, 0]) / half_width * 1.8 - 0.8, 0.1, 1.0)  # thin over the back muscles
    wall_profile = np.where(sine > 0, wall_profile * behind, wall_profile)
    cavity = inset(fat_inner, wall_profile)
    groove = rng.uniform(0.0, 8.0) * np.exp(-(base[:, 0] / rng.uniform(12.0, 25.0)) ** 2) * (sine > 0)
    skin = base - np.column_stack([np.zeros(len(base)), groove])
    return Body(skin, fat_inner, cavity, float(np.abs(cavity[:, 0]).max()), back_y, subcutaneous)


def paint_body(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Skin, subcutaneous fat with a few fascial septa, wall muscles with the linea alba, cavity fat."""
    canvas.paint(body.skin, Tissue.SKIN)
    canvas.paint(shrink(body.skin, rng.uniform(1.2, 2.5)), Tissue.SUBCUTANEOUS_FAT)
    for _ in range(int(rng.integers(0, 6))):
        start = int(rng.integers(len(body.skin)))
        span = np.arange(start, start + int(rng.integers(10, 70))) % len(body.skin)
        share = rng.uniform(0.3, 0.7)
        path = smooth_open(share * body.skin[span] + (1 - share) * body.fat_inner[span], 1)
        canvas.paint(band(path, rng.uniform(0.3, 0.7)), Tissue.FASCIA, over=(Tissue.SUBCUTANEOUS_FAT,))
    canvas.paint(body.fat_inner, Tissue.WALL_MUSCLE)
    canvas.paint(body.cavity, Tissue.VISCERAL_FAT)
    front = body.fat_inner[np.argmin(body.fat_inner[:, 1])]
    canvas.paint(capsule((0.0, front[1] - 2), (0.0, front[1] + 30), 1.0, 1.0), Tissue.FASCIA, over=(Tissue.WALL_MUSCLE,))


def paint_muscles(canvas: Canvas, spine: Spine, body: Body, habitus: Habitus, rng: np.random.Generator) -> None:
    """Psoas, quadratus lumborum, diaphragm crura, iliacus and gluteal muscles for the level. At T12 the
    psoas is only its origin, the quadratus lumborum (below the 12th rib) is absent and the crura are
    thicker, reach further forward, round the aortic hiatus, and lie between the spine and the liver."""
    s = spine.position
    thoracic = thoracic_weight(s)
    psoas_w, psoas_d = psoas_size(s, habitus.size, habitus.muscle)
    for side in SIDES:
        if spine.sacral:
            centre = (side * (spine.ala_half_width + 2.0), spine.body_front_y - psoas_d * 0.3)
        else:
            centre = (side * (spine.body_width / 2 + psoas_w * 0.85), spine.body_centre_y - psoas_d * 0.12 * min(s, 3))
        a, b = psoas_w * rng.uniform(0.9, 1.1), psoas_d * rng.uniform(0.9, 1.1)
        canvas.paint(blob(centre, a, b, side * rng.uniform(0, 25), random_wobble(rng, 0.1)), Tissue.PSOAS, over=INTERIOR)
        ql = along_spine((0.0, 13.0, 17.0, 21.0, 17.0, 0.0, 0.0), s) * habitus.size * habitus.muscle**0.5
        if ql > 5:
            thickness = ql * rng.uniform(0.35, 0.5)
            ql_centre = (side * (spine.transverse_tip + ql * 0.35), 1.0 - thickness)
            canvas.paint(blob(ql_centre, ql, thickness, -side * rng.uniform(15, 35), random_wobble(rng, 0.1)),
                         Tissue.QUADRATUS_LUMBORUM, over=INTERIOR)
        if s < (1.7 if side < 0 else 1.2):
            front = spine.body_front_y
            crus = smooth_open(np.array([(side * 3, front - 4 - 10 * thoracic),
                                         (side * spine.body_width * 0.4, front - 1),
                                         (side * (spine.body_width / 2 + 3), spine.body_centre_y)]), 2)
            canvas.paint(band(crus, rng.uniform(2.0, 3.5) * (1 + 0.6 * thoracic)), Tissue.DIAPHRAGM_CRUS,
                         over=ORGANS if thoracic > 0 else CAVITY)  # at T12 between the spine and liver or kidney
        if spine.ilium > 0:
            paint_pelvic_muscles(canvas, spine, body, side, rng)


def paint_pelvic_muscles(canvas: Canvas, spine: Spine, body: Body, side: float, rng: np.random.Generator) -> None:
    """Iliacus inside the iliac wing, gluteus medius outside it, gluteus maximus behind at S1."""
    path = iliac_path(spine, side)
    tangent = np.gradient(path, axis=0)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    normal /= np.maximum(np.hypot(normal[:, 0], normal[:, 1]), 1e-9)[:, None]
    if np.mean(normal[:, 0] * side) > 0:
        normal = -normal  # now pointing inwards (towards the midline)
    t = spine.ilium
    iliacus = rng.uniform(8.0, 16.0) * (0.4 + 0.6 * t)
    canvas.paint(band(path + normal * (iliacus / 2 + 4), iliacus / 2), Tissue.ILIACUS, over=INTERIOR)
    medius = rng.uniform(12.0, 24.0) * (0.5 + 0.5 * t)
    canvas.paint(band(path - normal * (medius / 2 + 4), medius / 2), Tissue.GLUTEAL_MUSCLE, over=INTERIOR)
    if t > 0.5:
        centre = (side * (spine.ala_half_width + 30.0), body.back_y - body.subcutaneous_mm - 22.0)
        canvas.paint(blob(centre, rng.uniform(28, 40) * t, rng.uniform(16, 24), side * rng.uniform(-30, 0),
                          random_wobble(rng, 0.1)), Tissue.GLUTEAL_MUSCLE, over=INTERIOR + (Tissue.VISCERAL_FAT,))


def paint_ribs(canvas: Canvas, spine: Spine, body: Body, rng: np.random.Generator) -> None:
    """The 11th and 12th ribs in the posterolateral body wall at L1; at T12 one more, and reaching round to
    the lateral wall (the 9th to 11th ribs' shafts, cut obliquely as they run down and forwards)."""
    if spine.position > 0.8:
        return
    thoracic = thoracic_weight(spine.position)
    for side in SIDES:
        count = int(rng.integers(1, 3)) + (1 if thoracic > 0.5 else 0)
        for angle in rng.uniform(20 - 45 * thoracic, 60, count):
            direction = np.array([side * np.cos(np.radians(angle)), np.sin(np.radians(angle))])
            vertex = body.fat_inner[np.argmax(body.fat_inner @ direction)]
            centre = vertex - direction * rng.uniform(4, 10)
            outline = ellipse(tuple(centre), rng.uniform(6, 10), rng.uniform(4, 6), rng.uniform(0, 180))
            canvas.paint_bone(outline, shrink(outline, 1.5), Tissue.RIB, Tissue.CORTICAL_BONE)


def paint_twelfth_rib(canvas: Canvas, spine: Spine, body: Body, rng: np.random.Generator) -> None:
    """The 12th rib at T12: its head against the side of the vertebral body, the neck and shaft running
    out and back in front of the short transverse process and under the erector spinae. Only its
    head and neck lie in the plane at T12's centre; lower slices (the T12/L1 disc) cut only the shaft,
    further out (the rib runs down as it runs out). Painted before the compartments, which lie on it."""
    thoracic = thoracic_weight(spine.position)
    if thoracic <= 0:
        return
    for side in SIDES:
        head = (side * (spine.body_width / 2 + 1.0), -spine.canal_depth / 2 - 3.0)
        path = smooth_open(np.array([
            head,
            (side * (spine.transverse_tip + 4.0), spine.transverse_radius + 1.0),
            (side * (spine.transverse_tip + 30.0), 7.0),
            (side * min(spine.transverse_tip + 60.0, body.inner_half_width - 15.0), 4.0),
        ]), 3)
        start = int(len(path) * (1.0 - thoracic) * 0.6)
        end = start + max(4, int(len(path) * rng.uniform(0.45, 0.8) * (0.4 + 0.6 * thoracic)))
        piece = path[start:end]
        radius = rng.uniform(3.5, 5.0) * spine.body_width / 40.0
        canvas.paint_bone(band(piece, radius), band(piece, max(radius - spine.cortex, 0.5)), Tissue.RIB,
                          Tissue.CORTICAL_BONE)


def paint_anatomy(
    canvas: Canvas, position: float, disc: bool, habitus: Habitus, rng: np.random.Generator,
    real_shapes: tuple[RealShape, ...] | None = None, widths_mm: tuple[float, ...] = WIDTH_MM,
    bone_gap_mm: float = 0.0, shape_scale: ShapeScale = ShapeScale(),
) -> Compartments:
    """Paint a whole slice onto the canvas; returns the compartments as drawn (before anything covered them).

    widths_mm: the procedural compartments' typical width from the midline at L1..S1; bone_gap_mm:
    gaps up to this size between a compartment and the posterior elements become its muscle (0: none);
    shape_scale: the ranges of factors on a procedural compartment's width and depth."""
    spine = draw_spine(position, disc, habitus.size, rng)
    if real_shapes:
        compartments = real_compartments(canvas, spine, real_shapes, habitus.size, habitus.asymmetry, rng)
    else:
        compartments = procedural_compartments(canvas, spine, habitus.size, habitus.muscle, habitus.asymmetry, rng,
                                               widths_mm, shape_scale)
    reach, back = compartments.extent(canvas)
    tip = max(spine.lamina_y + 8.0, min(spine.spinous_tip, back - rng.uniform(0.0, 6.0)))  # ends within the muscles
    spine = replace(spine, spinous_tip=tip)
    psoas_w, _ = psoas_size(position, habitus.size, habitus.muscle)
    body = draw_body(spine, habitus, reach, back, psoas_w, rng)
    paint_body(canvas, body, rng)
    paint_bowel(canvas, spine, body.inner_half_width, float(body.cavity[:, 1].min()), habitus.visceral, rng)
    paint_upper_organs(canvas, spine, body.inner_half_width, rng)
    paint_kidneys(canvas, spine, psoas_w, habitus.size, habitus.kidney_shift, rng)
    paint_muscles(canvas, spine, body, habitus, rng)
    paint_vessels(canvas, spine, habitus.size, rng)
    paint_twelfth_rib(canvas, spine, body, rng)
    paint_compartments(canvas, compartments, rng.uniform(1.0, 2.0))
    paint_ribs(canvas, spine, body, rng)
    paint_spine(canvas, spine, rng)
    close_gaps_to_bone(canvas, bone_gap_mm)
    return compartments
