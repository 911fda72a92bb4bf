"""Shapes in millimetres (closed polygons) and a canvas that paints them as tissue codes.

The anatomy frame: x in mm towards the patient's left, y in mm towards posterior, origin at the
centre of the spinal canal. A canvas is a pixel grid over part of that frame; painting is done in
order, later structures covering earlier ones, optionally only over chosen tissue codes. Polygons
are filled by Pillow inside each shape's bounding box, so a slice takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Grid:
    """A square-pixel grid in the anatomy frame: mm position of pixel [0, 0]'s centre, spacing, shape."""

    x0: float
    y0: float
    spacing: float
    shape: tuple[int, int]

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """(n, 2) mm points (x, y) to (n, 2) pixel positions (column, row)."""
        return (np.asarray(points, dtype=float) - (self.x0, self.y0)) / self.spacing

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y (mm) of every pixel centre."""
        rows, columns = self.shape
        x = self.x0 + self.spacing * np.arange(columns)
        y = self.y0 + self.spacing * np.arange(rows)
        return np.broadcast_to(x[None, :], self.shape), np.broadcast_to(y[:, None], self.shape)


class Canvas:
    """A tissue-code map on a grid, painted polygon by polygon."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.codes = np.zeros(grid.shape, dtype=np.uint8)

    def polygon_mask(self, polygon: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """The pixels inside a mm polygon, as (bounding-box slices, boolean mask); None if off the grid."""
        pixels = self.grid.to_pixels(polygon)
        rows, columns = self.grid.shape
        c0, r0 = np.floor(pixels.min(axis=0)).astype(int)
        c1, r1 = np.ceil(pixels.max(axis=0)).astype(int) + 1
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, columns), min(r1, rows)
        if c0 >= c1 or r0 >= r1:
            return None
        image = Image.new("1", (c1 - c0, r1 - r0), 0)
        ImageDraw.Draw(image).polygon((pixels - (c0, r0)).ravel().tolist(), fill=1)
        return (slice(r0, r1), slice(c0, c1)), np.asarray(image, dtype=bool)

    def paint(self, polygon: np.ndarray, code: int, over: Iterable[int] | None = None) -> None:
        """Fill a polygon with `code`, only over pixels whose code is in `over` when given."""
        found = self.polygon_mask(polygon)
        if found is None:
            return
        box, mask = found
        self.paint_mask(mask, code, over, box)

    def paint_mask(
        self, mask: np.ndarray, code: int, over: Iterable[int] | None = None, box: tuple[slice, slice] | None = None
    ) -> None:
        """Set `code` where `mask` is true (mask covers `box`, or the whole grid)."""
        region = self.codes[box] if box is not None else self.codes
        if over is not None:
            mask = mask & np.isin(region, tuple(int(c) for c in over))
        region[mask] = code

    def paint_bone(self, outer: np.ndarray, inner: np.ndarray, marrow: int, cortex: int) -> None:
        """A bone: the outer polygon as cortex, the inner polygon as marrow."""
        self.paint(outer, cortex)
        self.paint(inner, marrow)


def ellipse(centre: tuple[float, float], a: float, b: float, angle_deg: float = 0.0, n: int = 48) -> np.ndarray:
    """An ellipse with half-axes a (along x before rotation) and b, rotated by angle_deg."""
    return blob(centre, a, b, angle_deg, np.zeros(0), n)


def blob(
    centre: tuple[float, float], a: float, b: float, angle_deg: float, wobble: np.ndarray, n: int = 48
) -> np.ndarray:
    """An ellipse whose radius is modulated by harmonics: wobble[k] = (amplitude, phase) of harmonic k + 2."""
    theta = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    radius = np.ones(n)
    for k, (amplitude, phase) in enumerate(np.reshape(wobble, (-1, 2))):
        radius += amplitude * np.cos((k + 2) * theta + phase)
    points = np.column_stack([a * radius * np.cos(theta), b * radius * np.sin(theta)])
    return rotate(points, angle_deg) + centre


def random_wobble(rng: np.random.Generator, roughness: float, harmonics: int = 3) -> np.ndarray:
    """Harmonic amplitudes (falling with order) and phases for `blob`."""
    amplitudes = roughness * rng.uniform(0.0, 1.0, harmonics) / np.arange(1, harmonics + 1)
    return np.column_stack([amplitudes, rng.uniform(0.0, 2.0 * np.pi, harmonics)])


def rotate(points: np.ndarray, angle_deg: float, about: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    t = np.radians(angle_deg)
    matrix = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (np.asarray(points, dtype=float) - about) @ matrix.T + about


def capsule(p0: tuple[float, float], p1: tuple[float, float], r0: float, r1: float, n: int = 12) -> np.ndarray:
    """A rod from p0 to p1 with round ends of radius r0 and r1 (tapering in between)."""
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    direction = p1 - p0
    length = max(float(np.hypot(*direction)), 1e-6)
    along = direction / length
    normal = np.array([-along[1], along[0]])
    half = np.linspace(-np.pi / 2, np.pi / 2, n)
    end1 = p1 + r1 * (np.cos(half)[:, None] * along + np.sin(half)[:, None] * normal)
    end0 = p0 + r0 * (-np.cos(half)[:, None] * along - np.sin(half)[:, None] * normal)
    return np.vstack([end1, end0])


def band(path: np.ndarray, half_widths: np.ndarray | float) -> np.ndarray:
    """A closed polygon around an open polyline, `half_widths` (one per vertex, or one) to each side."""
    path = np.asarray(path, dtype=float)
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    widths = np.broadcast_to(np.asarray(half_widths, dtype=float), (len(path),))[:, None]
    return np.vstack([path + widths * normal, (path - widths * normal)[::-1]])


def smooth_closed(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of a closed control polygon: a smooth outline near the points."""
    points = np.asarray(points, dtype=float)
    for _ in range(iterations):
        following = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * following, 0.25 * points + 0.75 * following], axis=1).reshape(-1, 2)
    return points


def smooth_open(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of an open polyline, keeping its two ends."""
    points = np.asarray(points, dtype=float)
    for _ in range(iterations):
        cut = np.stack([0.75 * points[:-1] + 0.25 * points[1:], 0.25 * points[:-1] + 0.75 * points[1:]], axis=1)
        points = np.vstack([points[:1], cut.reshape(-1, 2), points[-1:]])
    return points


def shrink(polygon: np.ndarray, by_mm: float) -> np.ndarray:
    """A polygon pulled towards its centroid so that its mean radius falls by `by_mm` (for cortex)."""
    centre = polygon.mean(axis=0)
    offsets = polygon - centre
    mean_radius = float(np.mean(np.hypot(offsets[:, 0], offsets[:, 1])))
    return centre + offsets * max(mean_radius - by_mm, 0.1 * mean_radius) / mean_radius


def mirror(points: np.ndarray) -> np.ndarray:
    """The same shape on the other side of the midline (x -> -x)."""
    return np.asarray(points, dtype=float) * (-1.0, 1.0)
