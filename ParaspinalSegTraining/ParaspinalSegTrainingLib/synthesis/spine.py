"""The bony spine of one axial slice: where its parts lie (landmarks) and how they are painted.

Vertebral body or disc with cortex, spinal canal with epidural fat, thecal sac and roots,
pedicles, laminae, transverse processes, spinous process; articular processes and ligamentum
flavum at disc levels; the sacrum (S1 body, alae, sacral canal and foramina, median crest) at
S1; and the iliac wings from the L4/L5 disc down. Sizes in mm follow the level (T12..S1; T12's
narrower canal and body and short transverse processes by judgement from anatomy texts) and the
patient's size, with random variation. The anatomy frame's origin is the canal's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .levels import along_spine
from .raster import Canvas, band, capsule, ellipse, mirror, shrink, smooth_closed, smooth_open
from .tissues import Tissue

SIDES = (-1.0, 1.0)  # -1: the patient's right (image left), +1: the patient's left
SACRUM_FROM = 4.75  # positions from here down are sacrum, not L5
ILIUM_FROM = 3.85  # the iliac crests appear just below the L4/L5 disc


@dataclass(frozen=True)
class Spine:
    """Landmarks (mm) of one slice's spine; x to the patient's left, y posterior, canal centre at 0."""

    position: float
    disc: bool
    canal_half_width: float
    canal_depth: float
    body_width: float
    body_depth: float
    spinous_half_width: float
    spinous_tip: float
    transverse_tip: float
    transverse_radius: float
    cortex: float
    ala_half_width: float
    spinous_present: bool

    @property
    def sacral(self) -> bool:
        return self.position >= SACRUM_FROM

    @property
    def body_centre_y(self) -> float:
        return -(self.canal_depth / 2 + self.body_depth / 2)

    @property
    def body_front_y(self) -> float:
        return -(self.canal_depth / 2 + self.body_depth)

    @property
    def lamina_y(self) -> float:
        """Posterior surface of the laminae (or the sacrum's back) near the midline: where the multifidus lies."""
        return 17.0 if self.sacral else self.canal_depth / 2 + 5.0

    @property
    def ilium(self) -> float:
        """How much of the iliac wing the slice cuts: 0 none, 1 the whole wing (S1)."""
        return float(np.clip((self.position - ILIUM_FROM) / (5.0 - ILIUM_FROM), 0.0, 1.0))


def draw_spine(position: float, disc: bool, size: float, rng: np.random.Generator) -> Spine:
    """Random landmarks around the level's typical values, scaled by the patient's size."""
    def vary(values, spread=0.07):
        return size * along_spine(values, position) * rng.uniform(1 - spread, 1 + spread)

    return Spine(
        position=position,
        disc=disc,
        canal_half_width=vary((9.5, 10.5, 10.5, 11.0, 11.5, 12.5, 10.0)),
        canal_depth=vary((15.5, 16.0, 15.5, 15.0, 15.0, 14.5, 10.0)),
        body_width=vary((40.0, 42.0, 44.0, 47.0, 49.0, 51.0, 48.0)) + (3.0 if disc else 0.0),
        body_depth=vary((28.0, 29.0, 31.0, 33.0, 34.0, 33.0, 30.0)) + (2.0 if disc else 0.0),
        spinous_half_width=vary((3.4, 3.6, 3.8, 4.0, 4.0, 3.8, 3.0), 0.2),
        spinous_tip=vary((45.0, 48.0, 50.0, 50.0, 47.0, 40.0, 26.0), 0.1),
        transverse_tip=vary((27.0, 36.0, 44.0, 52.0, 47.0, 42.0, 42.0), 0.1),
        transverse_radius=vary((3.0, 3.5, 3.8, 4.0, 4.5, 7.0, 7.0), 0.15),
        cortex=float(rng.uniform(1.3, 2.4)),
        ala_half_width=56.0 * size * float(rng.uniform(0.93, 1.07)),
        spinous_present=bool(not disc or rng.random() < 0.6),
    )


def paint_spine(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    """Paint vertebra or sacrum, iliac wings and posterior elements, then the canal's contents."""
    if spine.ilium > 0:
        paint_ilia(canvas, spine, rng)
    if spine.sacral:
        paint_sacrum(canvas, spine, rng)
    elif spine.disc:
        paint_disc(canvas, spine, rng)
        paint_facets(canvas, spine)
    else:
        paint_vertebral_body(canvas, spine, rng)
        paint_arch(canvas, spine)
    paint_spinous(canvas, spine)
    paint_canal(canvas, spine, rng)


def body_outline(spine: Spine, rng: np.random.Generator, n: int = 64) -> np.ndarray:
    """Kidney-bean outline of a vertebral body or disc: round in front, flattened or concave behind."""
    a, b = spine.body_width / 2, spine.body_depth / 2
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    exponent = rng.uniform(2.2, 3.0)
    x = a * np.sign(c) * np.abs(c) ** (2 / exponent)
    y = b * np.sign(s) * np.abs(s) ** (2 / exponent)
    y -= np.where(s > 0, rng.uniform(0.05, 0.18) * b * s**2, 0.0)
    return np.column_stack([x, y + spine.body_centre_y])


def paint_vertebral_body(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    outline = body_outline(spine, rng)
    canvas.paint_bone(outline, shrink(outline, spine.cortex), Tissue.VERTEBRAL_BODY, Tissue.CORTICAL_BONE)


def paint_disc(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    outline = body_outline(spine, rng)
    canvas.paint(outline, Tissue.DISC_ANNULUS)
    nucleus = ellipse(
        (rng.normal(0, 1.5), spine.body_centre_y + rng.uniform(0, 0.15) * spine.body_depth),
        spine.body_width * rng.uniform(0.2, 0.32), spine.body_depth * rng.uniform(0.2, 0.32), rng.normal(0, 5),
    )
    canvas.paint(nucleus, Tissue.DISC_NUCLEUS)


def paint_rod(canvas: Canvas, p0, p1, r0: float, r1: float, cortex: float) -> None:
    """A bony rod (pedicle, lamina, process): cortex around marrow where it is thick enough."""
    canvas.paint(capsule(p0, p1, r0, r1), Tissue.CORTICAL_BONE)
    if min(r0, r1) > cortex + 0.8:
        canvas.paint(capsule(p0, p1, r0 - cortex, r1 - cortex), Tissue.POSTERIOR_ARCH)


def paint_arch(canvas: Canvas, spine: Spine) -> None:
    """Pedicles, laminae and transverse processes of a vertebral-body slice."""
    cw, cd, t = spine.canal_half_width, spine.canal_depth, spine.cortex * 0.8
    for side in SIDES:
        paint_rod(canvas, (side * (cw + 2.5), -cd / 2 - 2), (side * (cw + 3.5), cd * 0.1), 4.2, 4.2, t)
        paint_rod(canvas, (side * (cw + 3.5), cd * 0.15), (side * 1.5, cd / 2 + 3.0), 3.4, 3.0, t)
        tip = (side * spine.transverse_tip, 2.0 + (spine.transverse_radius - 4))
        paint_rod(canvas, (side * (cw + 3), -1.0), tip, 4.2, spine.transverse_radius, t)


def paint_facets(canvas: Canvas, spine: Spine) -> None:
    """Articular processes, laminae and ligamentum flavum at a disc level."""
    cw, cd, t = spine.canal_half_width, spine.canal_depth, spine.cortex * 0.8
    coronal = np.clip((spine.position - 2.0) / 3.0, 0.0, 1.0)  # facet joints turn coronal caudally
    for side in SIDES:
        paint_rod(canvas, (side * (cw + 3.5), -3.0), (side * (cw + 8 + 3 * coronal), 8.0 - 2 * coronal), 4.0, 3.6, t)
        paint_rod(canvas, (side * (cw + 1.0), 6.0), (side * (cw + 5.5 + 2 * coronal), 14.0 - coronal), 3.6, 3.2, t)
        paint_rod(canvas, (side * (cw + 3.0), 11.0), (side * 1.5, cd / 2 + 4.0), 3.0, 2.8, t)
        canvas.paint(capsule((side * (cw - 1.0), 1.0), (side * 1.0, cd / 2 + 0.5), 1.8, 1.8), Tissue.FASCIA)


def paint_spinous(canvas: Canvas, spine: Spine) -> None:
    """Spinous process (or median sacral crest); at a disc level it may be only the interspinous ligament."""
    base = spine.lamina_y - 3.0
    half = spine.spinous_half_width
    if spine.spinous_present:
        paint_rod(canvas, (0.0, base), (0.0, spine.spinous_tip - half), half * 0.85, half, spine.cortex * 0.8)
    else:
        canvas.paint(capsule((0.0, base), (0.0, spine.spinous_tip * 0.9), 1.5, 1.5), Tissue.FASCIA)


def sacrum_outline(spine: Spine) -> np.ndarray:
    """S1 body with its alae out to the sacro-iliac joints, the sacral canal's roof and the dorsal surface."""
    half, y0, depth = spine.body_width / 2, spine.body_centre_y, spine.body_depth
    ala = spine.ala_half_width
    left = np.array([
        (half * 0.6, y0 - depth / 2),
        (half, y0 - depth / 2 + 6),
        (half + 8, y0 - depth / 2 + 14),
        (ala - 8, y0 + 2),
        (ala, y0 + 8),
        (ala - 1, 12.0),
        (ala - 8, 20.0),
        (spine.canal_half_width + 10, 16.0),
        (6.0, 14.0),
    ])
    right = mirror(left)[::-1]
    points = np.vstack([[(0.0, y0 - depth / 2 - 1)], left, [(0.0, 15.0)], right])
    return smooth_closed(points, 3)


def paint_sacrum(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    outline = sacrum_outline(spine)
    canvas.paint(outline, Tissue.CORTICAL_BONE)
    inner = shrink(outline, spine.cortex)
    canvas.paint(inner, Tissue.SACRUM)
    for side in SIDES:
        centre = (side * (spine.canal_half_width + rng.uniform(9, 14)), spine.body_centre_y + spine.body_depth * 0.25)
        radius = rng.uniform(4.0, 6.0)
        canvas.paint(ellipse(centre, radius + spine.cortex, radius + spine.cortex), Tissue.CORTICAL_BONE)
        canvas.paint(ellipse(centre, radius, radius), Tissue.EPIDURAL_FAT)
        canvas.paint(ellipse(centre, radius * 0.5, radius * 0.5), Tissue.NERVE)


def paint_ilia(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    """Iliac wings (crest only at L5, the whole wing with the sacro-iliac joint at S1)."""
    t = spine.ilium
    joint_x = spine.ala_half_width + 2.0
    for side in SIDES:
        path = iliac_path(spine, side)
        widths = np.interp(np.linspace(0, 1, len(path)), (0.0, 0.3, 0.6, 1.0), (3.5 + 5 * t, 3.5 + 5 * t, 2.5, 3.5))
        widths = widths * rng.uniform(0.85, 1.15)
        outline = band(path, widths)
        canvas.paint(outline, Tissue.CORTICAL_BONE)
        canvas.paint(band(path, np.maximum(widths - spine.cortex, 0.3)), Tissue.ILIUM)
        if t > 0.7:
            canvas.paint(capsule((side * joint_x, -6.0), (side * (joint_x + 1.0), 20.0), 1.0, 1.0), Tissue.FASCIA)


def iliac_path(spine: Spine, side: float) -> np.ndarray:
    """Centre line of one iliac wing from its posterior end forwards: the crest's top at L5, at S1 from
    the posterior superior iliac spine past the sacro-iliac joint to the front of the wing."""
    t = spine.ilium
    ala = spine.ala_half_width
    crest = np.array([(85.0, 25.0), (95.0, 10.0), (103.0, -8.0), (108.0, -25.0)])
    wing = np.array([(ala + 2.0, 38.0), (ala + 9.0, 14.0), (ala + 26.0, -24.0), (ala + 58.0, -62.0)])
    path = smooth_open((1 - t) * crest + t * wing, 3) * (side, 1.0)
    keep = max(3, int(len(path) * (0.4 + 0.6 * t)))
    return path[:keep]


def paint_canal(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    """Epidural fat, thecal sac (CSF), conus or roots of the cauda equina; a small sacral canal at S1."""
    cw, cd = spine.canal_half_width, spine.canal_depth
    if spine.sacral:
        canal = smooth_closed(np.array([(-cw * 0.9, 1.0), (cw * 0.9, 1.0), (cw * 0.4, 9.0), (-cw * 0.4, 9.0)]), 2)
        canvas.paint(canal, Tissue.EPIDURAL_FAT)
        if rng.random() < 0.7:
            canvas.paint(ellipse((0.0, 4.0), cw * 0.4, 2.8), Tissue.CSF)
        for x, y in ((-4.0, 3.0), (4.0, 3.0), (-2.5, 6.5), (2.5, 6.5)):
            canvas.paint(ellipse((x, y), 1.3, 1.3), Tissue.NERVE)
        return
    left = np.array([(cw * 0.5, -cd / 2), (cw, -cd / 2 + 1.5), (cw * 0.95, cd * 0.1), (cw * 0.55, cd * 0.35), (0.0, cd / 2)])
    canvas.paint(smooth_closed(np.vstack([[(0.0, -cd / 2)], left, mirror(left)[::-1]]), 2), Tissue.EPIDURAL_FAT)
    sac = ellipse((0.0, -cd * 0.05), cw * rng.uniform(0.62, 0.8), cd * rng.uniform(0.3, 0.4))
    canvas.paint(sac, Tissue.CSF)
    if spine.position < 0.5:
        canvas.paint(ellipse((0.0, -1.0), 4.5, 4.0), Tissue.NERVE)
    n_roots = int(rng.integers(4, 11))
    angles = rng.uniform(0.15 * np.pi, 0.85 * np.pi, n_roots)
    radii = rng.uniform(0.3, 0.75, n_roots)
    for angle, radius in zip(angles, radii):
        centre = (radius * cw * 0.6 * np.cos(angle), -cd * 0.05 + radius * cd * 0.3 * np.sin(angle))
        canvas.paint(ellipse(centre, 1.1, 1.1, n=12), Tissue.NERVE, over=(Tissue.CSF,))
    if spine.position > 3.6:
        for side in SIDES:
            canvas.paint(ellipse((side * cw * 0.75, -cd * 0.25), 2.2, 2.2, n=16), Tissue.NERVE, over=(Tissue.EPIDURAL_FAT,))
