"""Per-slice geometry: where each pixel of a 2D slice lies in patient space, and the display flip.

Patient coordinates are DICOM's LPS (x to the patient's left, y posterior, z superior), in mm.
Arrays are [row, column] within a slice and [slice, row, column] for stacks. Every slice carries
its own origin, direction cosines and pixel spacing; nothing assumes a series shares one grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BODY_AXIS = np.array([0.0, 0.0, 1.0])
DEFAULT_AXIAL_TOLERANCE_DEG = 40.0


@dataclass(frozen=True)
class SliceGeometry:
    """Geometry of one 2D slice, as DICOM describes it.

    origin: LPS position (mm) of the centre of pixel [0, 0] (ImagePositionPatient).
    row_direction: unit LPS vector along a row, i.e. of increasing column index (IOP[0:3]).
    column_direction: unit LPS vector along a column, of increasing row index (IOP[3:6]).
    spacing: (between rows, between columns) in mm, the DICOM PixelSpacing order.
    shape: (rows, columns).
    thickness: slice thickness in mm (0 if unknown).
    """

    origin: tuple[float, float, float]
    row_direction: tuple[float, float, float]
    column_direction: tuple[float, float, float]
    spacing: tuple[float, float]
    shape: tuple[int, int]
    thickness: float = 0.0

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.row_direction, self.column_direction)
        return n / np.linalg.norm(n)

    @property
    def pixel_area_mm2(self) -> float:
        return float(self.spacing[0] * self.spacing[1])

    @property
    def centre(self) -> np.ndarray:
        """LPS position of the slice's centre (mm)."""
        rows, cols = self.shape
        return self.index_to_lps((rows - 1) / 2.0, (cols - 1) / 2.0)

    def index_to_lps(self, row: float, column: float) -> np.ndarray:
        return (
            np.asarray(self.origin, dtype=float)
            + column * self.spacing[1] * np.asarray(self.row_direction, dtype=float)
            + row * self.spacing[0] * np.asarray(self.column_direction, dtype=float)
        )

    def angle_to_body_axis_deg(self) -> float:
        """Angle between the slice normal and the body (superior-inferior) axis, 0..90 degrees."""
        return float(np.degrees(np.arccos(min(1.0, abs(float(self.normal @ BODY_AXIS))))))

    def is_axial(self, tolerance_deg: float = DEFAULT_AXIAL_TOLERANCE_DEG) -> bool:
        return self.angle_to_body_axis_deg() <= tolerance_deg

    def same_grid(self, other: SliceGeometry, tolerance_mm: float = 1e-3) -> bool:
        """True when both slices put every pixel at the same place (within tolerance_mm)."""
        if self.shape != other.shape:
            return False
        rows, cols = self.shape
        corners = [(0, 0), (rows - 1, 0), (0, cols - 1), (rows - 1, cols - 1)]
        return all(
            np.linalg.norm(self.index_to_lps(r, c) - other.index_to_lps(r, c)) <= tolerance_mm
            for r, c in corners
        )


def orientation_label(normal: np.ndarray) -> str:
    """'axial', 'coronal' or 'sagittal': the patient axis the slice normal is closest to."""
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


@dataclass(frozen=True)
class DisplayTransform:
    """The flips (and transpose) that bring a slice into display orientation and back, exactly.

    Display orientation: the patient's right on the image's left (columns run towards the
    patient's left, +x), anterior up (rows run towards posterior, +y). Only axis swaps and flips
    are used, so the mapping back to the original pixel grid is exact.
    """

    transpose: bool
    flip_rows: bool
    flip_columns: bool

    @classmethod
    def for_geometry(cls, geometry: SliceGeometry) -> DisplayTransform:
        along_columns = np.asarray(geometry.row_direction, dtype=float)  # column index grows
        along_rows = np.asarray(geometry.column_direction, dtype=float)  # row index grows
        transpose = bool(
            abs(along_columns[1]) + abs(along_rows[0]) > abs(along_columns[0]) + abs(along_rows[1])
        )
        if transpose:
            along_columns, along_rows = along_rows, along_columns
        return cls(transpose, flip_rows=bool(along_rows[1] < 0), flip_columns=bool(along_columns[0] < 0))

    def to_display(self, array: np.ndarray) -> np.ndarray:
        """Original [row, column] (or [..., row, column]) array to display orientation."""
        out = np.swapaxes(array, -1, -2) if self.transpose else array
        if self.flip_rows:
            out = np.flip(out, axis=-2)
        if self.flip_columns:
            out = np.flip(out, axis=-1)
        return np.ascontiguousarray(out)

    def from_display(self, array: np.ndarray) -> np.ndarray:
        """Display-orientation array back to the original pixel grid."""
        out = array
        if self.flip_columns:
            out = np.flip(out, axis=-1)
        if self.flip_rows:
            out = np.flip(out, axis=-2)
        if self.transpose:
            out = np.swapaxes(out, -1, -2)
        return np.ascontiguousarray(out)

    def display_spacing(self, geometry: SliceGeometry) -> tuple[float, float]:
        """(row, column) spacing of the slice in display orientation."""
        return geometry.spacing[::-1] if self.transpose else geometry.spacing
