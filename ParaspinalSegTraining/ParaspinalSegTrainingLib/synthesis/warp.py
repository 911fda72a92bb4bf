"""Where each output pixel looks into the anatomy frame: field of view, rotation, scale, elastic warp.

The output grid is image_size x image_size pixels at the case's pixel spacing, in display
orientation (columns towards the patient's left, rows towards posterior). A random view puts its
centre near the spine, rotates it (small angles), scales it and bends it with a smooth random
displacement; the anatomy is painted on a grid covering what the view sees and then read at
the output pixels by nearest neighbour, so labels stay crisp and whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from .fields import smooth_random_field
from .raster import Grid

# The compartments reach about 80 mm to each side and 70 mm behind the canal; keep them in view.
COMPARTMENT_REACH_MM = (85.0, 75.0)


@dataclass(frozen=True)
class View:
    """The output image's centre (mm, anatomy frame), rotation, scale and elastic amplitude."""

    centre: tuple[float, float]
    angle_deg: float
    scale: float
    elastic_mm: float


def draw_view(rng: np.random.Generator, size: int, spacing: float, rotation_deg: float,
              scale: tuple[float, float], elastic_mm: float) -> View:
    """A random view that keeps both compartments inside the image."""
    zoom_factor = float(rng.uniform(*scale))
    half = size * spacing / 2 / zoom_factor
    reach_x, reach_y = COMPARTMENT_REACH_MM
    x_room = max(half * 0.92 - reach_x, 0.0)
    low_y = min(max(-80.0, reach_y - half * 0.92), -10.0)
    centre = (float(np.clip(rng.normal(0.0, 10.0), -x_room, x_room)), float(rng.uniform(low_y, -10.0)))
    return View(centre, float(rng.uniform(-rotation_deg, rotation_deg)), zoom_factor, float(rng.uniform(0.0, elastic_mm)))


def view_coordinates(view: View, size: int, spacing: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy-frame x and y (mm) seen by every output pixel."""
    offsets = (np.arange(size) - (size - 1) / 2) * spacing / view.scale
    u, v = np.meshgrid(offsets, offsets)
    t = np.radians(view.angle_deg)
    x = view.centre[0] + np.cos(t) * u - np.sin(t) * v
    y = view.centre[1] + np.sin(t) * u + np.cos(t) * v
    if view.elastic_mm > 0:
        fields = [smooth_random_field((size, size), 6, rng) for _ in range(2)]
        peak = max(float(np.abs(f).max()) for f in fields)
        x = x + fields[0] * view.elastic_mm / peak
        y = y + fields[1] * view.elastic_mm / peak
    return x, y


def covering_grid(x: np.ndarray, y: np.ndarray, spacing: float, margin_mm: float = 4.0) -> Grid:
    """A grid in the anatomy frame covering every point seen, at `spacing`."""
    x0, y0 = float(x.min()) - margin_mm, float(y.min()) - margin_mm
    columns = int(np.ceil((float(x.max()) + margin_mm - x0) / spacing)) + 1
    rows = int(np.ceil((float(y.max()) + margin_mm - y0) / spacing)) + 1
    return Grid(x0, y0, spacing, (rows, columns))


def read_nearest(codes: np.ndarray, grid: Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The codes at the points (x, y), nearest neighbour; 0 outside the grid."""
    rows = (y - grid.y0) / grid.spacing
    columns = (x - grid.x0) / grid.spacing
    return map_coordinates(codes, [rows, columns], order=0, mode="constant", cval=0).astype(np.uint8)
