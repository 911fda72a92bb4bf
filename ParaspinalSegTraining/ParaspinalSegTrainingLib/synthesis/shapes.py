"""Real compartment shapes: the 411 expert-traced L4/L5 masks of ../shared, placed on a slice's spine.

The masks (PNG, 320x320, about 0.6875 mm pixels; Sudirman et al. images, traced for 3Shot-LPM-Seg)
hold 50 / 100 = erector spinae / multifidus on the image's left (the patient's right) and 150 / 200 =
multifidus / erector spinae on the image's right. They are read from ../shared where it is (never
copied into the project) and put on the synthetic spine: midline between the two multifidi on
the canal's midline, the multifidi's front on the laminae, rescaled for the level, rotated a
little, and mirrored half of the time (the sides swap with the mirror, so labels stay true).
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError

from .compartments import Compartments
from .levels import along_spine
from .raster import Canvas
from .spine import Spine

log = logging.getLogger(__name__)

SHAPES_NAME = "sudirman_l4l5_t2_compartment_masks.zip"
MASK_PIXEL_MM = 0.6875
# Mask values: (right multifidus, right erector, left multifidus, left erector), as traced and mirrored.
VALUES = (100, 50, 150, 200)
VALUES_MIRRORED = (150, 200, 100, 50)
# (width, depth) scale of the L4/L5 shapes at T12, L1..S1; used at L3-L5 only (T12 repeats L1: the settings
# never put traced shapes there).
LEVEL_SCALE = ((0.9, 0.7), (0.9, 0.7), (0.95, 0.8), (1.0, 0.92), (1.0, 1.0), (0.93, 0.97), (0.8, 0.75))


@dataclass(frozen=True)
class RealShape:
    """One traced mask cropped to its compartments; the midline column and front row locate it."""

    name: str
    values: np.ndarray
    midline_column: float
    front_row: float


def default_shapes_zip() -> Path:
    """../shared/data/shapes/<masks zip> beside the repository."""
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "shapes" / SHAPES_NAME


def shapes_zip_path(configured: str) -> Path:
    return Path(configured) if configured else default_shapes_zip()


@lru_cache(maxsize=2)
def load_shapes(path: Path) -> tuple[RealShape, ...]:
    """Every usable mask of the zip, cropped; an InputError naming the file if it cannot be read."""
    from PIL import Image

    shapes = []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in sorted(n for n in archive.namelist() if n.lower().endswith(".png")):
                values = np.asarray(Image.open(io.BytesIO(archive.read(name))))
                shape = crop_shape(name, values[..., 0] if values.ndim == 3 else values)
                if shape is not None:
                    shapes.append(shape)
    except (OSError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot read the real compartment masks ({error})") from None
    if not shapes:
        raise InputError(f"{path}: holds no usable compartment mask (PNG with values 50, 100, 150, 200)")
    log.info("read %d real compartment shapes from %s", len(shapes), path)
    return tuple(shapes)


def crop_shape(name: str, values: np.ndarray) -> RealShape | None:
    """A mask cropped to its labels, or None when one of the four muscles is missing."""
    present = [np.nonzero(values == v) for v in (50, 100, 150, 200)]
    if any(rows.size == 0 for rows, _ in present):
        return None
    rows, columns = np.nonzero(np.isin(values, (50, 100, 150, 200)))
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    right_mf, left_mf = present[1], present[2]
    midline = (right_mf[1].max() + left_mf[1].min()) / 2.0 - c0
    front = min(right_mf[0].min(), left_mf[0].min()) - r0
    return RealShape(name, values[r0:r1, c0:c1].copy(), float(midline), float(front))


def real_shapes_available(configured: str) -> bool:
    return shapes_zip_path(configured).is_file()


def real_compartments(
    canvas: Canvas, spine: Spine, shapes: tuple[RealShape, ...], size: float, asymmetry: float, rng: np.random.Generator
) -> Compartments:
    """Compartments from one random traced mask, fitted to the slice's spine."""
    index = int(rng.integers(len(shapes)))
    shape = shapes[index]
    mirrored = bool(rng.random() < 0.5)
    width_scale = along_spine(tuple(s[0] for s in LEVEL_SCALE), spine.position)
    depth_scale = along_spine(tuple(s[1] for s in LEVEL_SCALE), spine.position)
    common = size * rng.uniform(0.88, 1.12)
    scale_x = common * width_scale * rng.uniform(0.93, 1.07)
    scale_y = common * depth_scale * rng.uniform(0.93, 1.07)
    angle = np.radians(rng.normal(0, 3))
    x, y = canvas.grid.coordinates()
    dx, dy = x, y - (spine.lamina_y - 1.0)
    # Inverse placement: anatomy mm -> mask pixels (rotation, per-axis scale, wider right side if asymmetry > 0).
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / scale_x
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / scale_y
    u = u / np.where(u < 0, 1.0 + asymmetry / 2, 1.0 - asymmetry / 2)
    columns = np.rint(shape.midline_column + (-u if mirrored else u) / MASK_PIXEL_MM).astype(int)
    rows = np.rint(shape.front_row + v / MASK_PIXEL_MM).astype(int)
    inside = (rows >= 0) & (rows < shape.values.shape[0]) & (columns >= 0) & (columns < shape.values.shape[1])
    sampled = np.zeros(canvas.grid.shape, dtype=np.uint8)
    sampled[inside] = shape.values[rows[inside], columns[inside]]
    right_mf, right_es, left_mf, left_es = VALUES_MIRRORED if mirrored else VALUES
    return Compartments(
        (sampled == right_mf, sampled == left_mf),
        (sampled == right_es, sampled == left_es),
        f"real:{Path(shape.name).stem}{'-mirrored' if mirrored else ''}",
    )
