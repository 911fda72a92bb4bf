"""Abdominal and pelvic contents of a slice: bowel loops, liver, spleen, pancreas, kidneys, great vessels.

Organs appear at the levels where they lie: liver (the patient's right), spleen (left) and pancreas
at L1-L2, largest at T12 (made only when asked for), kidneys from L1 to L3 (the right one lower, their
upper poles at T12), aorta and inferior vena cava down to their
division at L4-L5, iliac vessels below. Bowel loops fill the front of the abdominal cavity. Each
is painted only over the cavity (and what is already in it), so the body wall stays whole.
"""

from __future__ import annotations

import numpy as np

from .levels import along_spine, thoracic_weight
from .raster import Canvas, blob, ellipse, random_wobble
from .spine import SIDES, Spine
from .tissues import Tissue

CAVITY = (Tissue.VISCERAL_FAT, Tissue.BOWEL_WALL, Tissue.BOWEL_FLUID, Tissue.BOWEL_GAS, Tissue.BOWEL_CONTENT)
ORGANS = CAVITY + (Tissue.LIVER, Tissue.GALLBLADDER, Tissue.SPLEEN, Tissue.PANCREAS, Tissue.KIDNEY, Tissue.RENAL_SINUS_FAT)
BOWEL_CONTENTS = (Tissue.BOWEL_FLUID, Tissue.BOWEL_GAS, Tissue.BOWEL_CONTENT)


def psoas_size(position: float, size: float, muscle: float) -> tuple[float, float]:
    """Psoas half-width and half-depth (mm): small at L1, largest at L4-L5."""
    half_width = along_spine((3.0, 7.0, 11.0, 15.0, 19.0, 21.0, 17.0), position)
    half_depth = along_spine((3.5, 8.0, 13.0, 18.0, 22.0, 24.0, 20.0), position)
    return half_width * size * muscle**0.5, half_depth * size * muscle**0.5


# How far (in vertebrae) the kidneys reach higher at T12 than the L1..S1 model puts them: their centres lie
# at L2 (left) and below it (right), lower than anatomy texts put the upper poles (left at T11-T12, right
# at T12-L1); above the highest L1 slices the poles are drawn that much higher, so that the left upper pole
# shows in most T12 slices and the right one in high-lying kidneys. A judgement, not a fitted figure.
KIDNEY_T12_RISE = 0.5


def kidney_scale(position: float, side: float, shift: float) -> float:
    """Cross-section scale of a kidney at a level (0 when the slice misses it); the right one lies lower."""
    centre = ((1.35 if side < 0 else 1.0) + float(np.clip(shift, -0.35, 0.35))
              - KIDNEY_T12_RISE * thoracic_weight(position))
    distance = (position - centre) / 1.7
    return float(np.sqrt(max(0.0, 1.0 - distance**2))) if abs(distance) < 0.95 else 0.0


def paint_bowel(canvas: Canvas, spine: Spine, inner_half_width: float, front_y: float, visceral: float,
                rng: np.random.Generator) -> None:
    """Small-bowel loops in front of the spine (few at T12, above the mesocolon), colon in the flanks,
    stomach at T12-L1, mesenteric vessels."""
    limit = max(spine.body_front_y - 18.0, front_y)  # a shallow cavity (a thin build) leaves no room: loops at its front
    loops = int(rng.integers(12, 40) * (1.0 - 0.6 * visceral) * (1.0 - 0.7 * thoracic_weight(spine.position)))
    for _ in range(loops):
        centre = (rng.uniform(-inner_half_width, inner_half_width) * 0.85, rng.uniform(front_y, limit))
        paint_loop(canvas, centre, rng.uniform(8.0, 24.0), rng)
    for side in SIDES:
        if spine.position > (1.0 if side < 0 else 0.3) and rng.random() < 0.85:
            radius = rng.uniform(14.0, 24.0)
            centre = (side * (inner_half_width - radius - rng.uniform(0, 15)), spine.body_centre_y - rng.uniform(5, 35))
            paint_loop(canvas, centre, radius, rng, colon=True)
    if spine.position < 0.7:
        paint_loop(canvas, (inner_half_width * 0.3, front_y + rng.uniform(30, 60)), rng.uniform(28, 42), rng)
    for _ in range(int(rng.integers(10, 60))):
        centre = (rng.uniform(-inner_half_width, inner_half_width), rng.uniform(front_y, limit))
        radius = rng.uniform(0.8, 2.5)
        code = Tissue.ARTERY if rng.random() < 0.4 else Tissue.VEIN
        canvas.paint(ellipse(centre, radius, radius * rng.uniform(0.6, 1.0), rng.uniform(0, 180), n=12), code,
                     over=(Tissue.VISCERAL_FAT,))


def paint_loop(canvas: Canvas, centre, radius: float, rng: np.random.Generator, colon: bool = False) -> None:
    """One bowel loop (wall and content) where its centre lies in the cavity's fat."""
    column, row = np.rint(canvas.grid.to_pixels(np.array([centre]))[0]).astype(int)
    rows, columns = canvas.grid.shape
    if not (0 <= row < rows and 0 <= column < columns) or canvas.codes[row, column] != Tissue.VISCERAL_FAT:
        return
    wobble = random_wobble(rng, 0.25)
    angle = rng.uniform(0, 180)
    aspect = rng.uniform(0.6, 1.0)
    canvas.paint(blob(centre, radius, radius * aspect, angle, wobble), Tissue.BOWEL_WALL, over=(Tissue.VISCERAL_FAT,))
    wall = rng.uniform(1.2, 3.0)
    weights = (0.2, 0.4, 0.4) if colon else (0.5, 0.15, 0.35)
    content = BOWEL_CONTENTS[int(rng.choice(3, p=weights))]
    inner = blob(centre, max(radius - wall, 1.0), max(radius * aspect - wall, 1.0), angle, wobble)
    canvas.paint(inner, content, over=(Tissue.BOWEL_WALL,))


def paint_upper_organs(canvas: Canvas, spine: Spine, inner_half_width: float, rng: np.random.Generator) -> None:
    """Liver (patient's right) with gallbladder, spleen (left) and pancreas, shrinking below L1. At T12
    the liver is larger, crossing the midline in front and reaching back beside the spine (its bare
    area), and the spleen is larger (judgement from atlases: both lie mostly above L1)."""
    s, y0 = spine.position, spine.body_centre_y
    thoracic = thoracic_weight(s)
    liver = float(np.clip((1.9 - s) / 1.9, 0.0, 1.0))
    if liver > 0.05:
        centre = (-inner_half_width * (0.42 + 0.25 * (1 - liver)), y0 - 20 - 40 * liver + 20 * thoracic)
        a = inner_half_width * (0.1 + 0.45 * liver) * (1 + 0.3 * thoracic)
        b = (15 + 60 * liver) * (1 + 0.15 * thoracic)
        canvas.paint(blob(centre, a, b, rng.uniform(-20, 20), random_wobble(rng, 0.2)), Tissue.LIVER, over=CAVITY)
        if liver > 0.5 and rng.random() < 0.35:
            gallbladder = (centre[0] + a * 0.5, centre[1] - b * 0.4)
            canvas.paint(ellipse(gallbladder, rng.uniform(10, 16), rng.uniform(14, 24), rng.uniform(-40, 40)),
                         Tissue.GALLBLADDER, over=CAVITY + (Tissue.LIVER,))
    spleen = float(np.clip((0.9 - s) / 0.9, 0.0, 1.0))
    if spleen > 0.1:
        centre = (inner_half_width - 22 * (0.6 + 0.4 * spleen), y0 + rng.uniform(-5, 20))
        grow = (0.5 + 0.5 * spleen) * (1 + 0.25 * thoracic)
        canvas.paint(blob(centre, 18 * grow, 40 * grow, rng.uniform(10, 40),
                          random_wobble(rng, 0.2)), Tissue.SPLEEN, over=CAVITY)
    if s < 1.3:
        centre = (rng.uniform(5, 25), spine.body_front_y - rng.uniform(30, 45))
        canvas.paint(blob(centre, rng.uniform(30, 45), rng.uniform(7, 12), rng.uniform(-25, 5), random_wobble(rng, 0.2)),
                     Tissue.PANCREAS, over=CAVITY)


def paint_kidneys(canvas: Canvas, spine: Spine, psoas_half_width: float, size: float, shift: float,
                  rng: np.random.Generator) -> None:
    """Kidneys beside the psoas, long axis pointing forwards and outwards, sinus fat towards the hilum."""
    for side in SIDES:
        scale = kidney_scale(spine.position, side, shift)
        if scale < 0.3:
            continue
        a, b = 30 * size * scale * rng.uniform(0.85, 1.1), 22 * size * np.sqrt(scale) * rng.uniform(0.85, 1.1)
        centre = (side * (spine.body_width / 2 + 2 * psoas_half_width + b + rng.uniform(2, 10)),
                  spine.body_centre_y + rng.uniform(4, 14))
        angle = -side * rng.uniform(30, 55)
        canvas.paint(blob(centre, a, b, angle, random_wobble(rng, 0.08)), Tissue.KIDNEY, over=ORGANS)
        if scale > 0.55:
            hilum = np.array([-side * 0.55 * b, -0.35 * b])
            canvas.paint(ellipse(tuple(np.asarray(centre) + hilum), a * 0.35, b * 0.3, angle),
                         Tissue.RENAL_SINUS_FAT, over=(Tissue.KIDNEY,))


def paint_vessels(canvas: Canvas, spine: Spine, size: float, rng: np.random.Generator) -> None:
    """Aorta and inferior vena cava in front of the spine; the common iliac vessels after they divide. At
    T12 the aorta passes through the aortic hiatus, between the diaphragm crura, which it pushes aside."""
    s, front = spine.position, spine.body_front_y
    if s < 3.3:
        radius = rng.uniform(8.0, 12.0) * size
        hiatus = ORGANS + (Tissue.DIAPHRAGM_CRUS,) if thoracic_weight(s) > 0 else ORGANS
        canvas.paint(ellipse((rng.uniform(4, 14), front - radius - 1), radius, radius), Tissue.ARTERY, over=hiatus)
    else:
        offset = 8.0 + (s - 3.3) * 20.0
        for side in SIDES:
            canvas.paint(ellipse((side * offset, front - 6.5), 5.5, 5.5), Tissue.ARTERY, over=ORGANS)
    if s < 4.0:
        canvas.paint(ellipse((-(spine.body_width * 0.35 + rng.uniform(0, 8)), front - 7), rng.uniform(9, 14),
                             rng.uniform(5, 9), rng.uniform(-20, 20)), Tissue.VEIN, over=ORGANS)
    else:
        offset = 14.0 + (s - 4.0) * 24.0
        for side in SIDES:
            canvas.paint(ellipse((side * offset, front - 3.0), 7.0, 5.0), Tissue.VEIN, over=ORGANS)
