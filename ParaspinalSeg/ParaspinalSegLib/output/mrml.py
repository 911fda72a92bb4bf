"""Slicer's volumes and tables in library terms: no Slicer import, numpy only.

A Slicer volume is a voxel array in [K, J, I] = [slice, row, column] order and a 4x4 IJK-to-RAS
matrix. Here it becomes the library's SliceSeries (LPS geometry per slice: x and y change sign),
per-slice label planes go back to a [K, J, I] label array on the volume's grid, and a measurement
result becomes the typed, unit-labelled table columns, plot definitions and node attributes that
the Slicer module copies into MRML nodes without computing anything itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import GeometryMismatchError, InputError, NoSuitableSeriesError
from .export import SLICE_COLUMNS
from ..geometry import DEFAULT_AXIAL_TOLERANCE_DEG, SliceGeometry
from ..labels import BACKGROUND, SEGMENTS, SegmentStyle
from ..measure.measurement import SliceMeasurement
from ..pipeline import MeasurementResult
from ..slices import ImageSlice, SeriesInfo, SliceSeries
from ..read.volumes import grid_blocks

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])  # its own inverse
ORTHOGONALITY_TOLERANCE = 1e-3  # |cos| between the row and column axes
SAME_GRID_MM = 0.05  # a volume slice and a DICOM slice coincide (Slicer rounds positions it computes)


# ---------------------------------------------------------------------------------------------
# Volume <-> slices


def _checked_matrix(ijk_to_ras: np.ndarray) -> np.ndarray:
    matrix = np.asarray(ijk_to_ras, dtype=float)
    if matrix.shape != (4, 4):
        raise InputError(f"an IJK-to-RAS matrix is 4x4, not {matrix.shape}")
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise InputError("the volume's IJK-to-RAS matrix is singular (a zero spacing or two equal axes)")
    return matrix


def slice_geometry(ijk_to_ras: np.ndarray, k: int, shape: tuple[int, int]) -> SliceGeometry:
    """LPS geometry of slice k of a volume: pixel [row j, column i] is voxel (i, j, k).

    shape: (rows, columns) = (J, I). Raises InputError when the row and column axes are not
    perpendicular (a sheared grid, whose pixel area is not the product of its spacings).
    """
    matrix = _checked_matrix(ijk_to_ras)
    along_i, along_j, along_k = (RAS_TO_LPS @ matrix[:3, axis] for axis in range(3))
    spacing_i, spacing_j = float(np.linalg.norm(along_i)), float(np.linalg.norm(along_j))
    row_direction, column_direction = along_i / spacing_i, along_j / spacing_j
    if abs(float(row_direction @ column_direction)) > ORTHOGONALITY_TOLERANCE:
        raise InputError("the volume's in-plane axes are not perpendicular (sheared grid); resample it first")
    origin = RAS_TO_LPS @ matrix[:3, 3] + k * along_k
    return SliceGeometry(
        origin=tuple(float(v) for v in origin),
        row_direction=tuple(float(v) for v in row_direction),
        column_direction=tuple(float(v) for v in column_direction),
        spacing=(spacing_j, spacing_i),
        shape=(int(shape[0]), int(shape[1])),
        thickness=float(np.linalg.norm(along_k)),
    )


def axial_problem(ijk_to_ras: np.ndarray, name: str, tolerance_deg: float = DEFAULT_AXIAL_TOLERANCE_DEG) -> str | None:
    """Why a volume cannot be segmented as axial slices (its K axis is not near the body axis),
    as a message for the user; None when it is axial."""
    angle = slice_geometry(ijk_to_ras, 0, (1, 1)).angle_to_body_axis_deg()
    if angle <= tolerance_deg:
        return None
    return (
        f"'{name}' is not an axial series: its slices' normal lies {angle:.0f} degrees from the patient's "
        f"superior-inferior axis (at most {tolerance_deg:.0f} allowed). Choose the axial T2 series of the "
        "study, or reformat this volume to axial slices first."
    )


def require_axial(ijk_to_ras: np.ndarray, name: str) -> None:
    """Raise NoSuitableSeriesError with axial_problem's message when the volume is not axial."""
    problem = axial_problem(ijk_to_ras, name)
    if problem:
        raise NoSuitableSeriesError(problem)


def series_from_volume(array: np.ndarray, ijk_to_ras: np.ndarray, name: str = "volume") -> SliceSeries:
    """The K slices of a [K, J, I] voxel array as a series, ordered from inferior to superior.

    Each slice keeps k as its source_index, so that label planes go back to the same voxels.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(f"'{name}': a scalar 3D volume is needed, this one has {array.ndim} dimensions")
    shape = array.shape[1:]
    slices = [
        ImageSlice(array[k].astype(np.float32), slice_geometry(ijk_to_ras, k, shape), source_index=k)
        for k in range(array.shape[0])
    ]
    slices.sort(key=lambda s: (s.geometry.centre[2], s.source_index))
    return SliceSeries(slices, SeriesInfo(uid=f"slicer-volume:{name}", description=name, source="3D Slicer volume"))


@dataclass(frozen=True)
class VolumeArrays:
    """What a Slicer volume node holds: a [K, J, I] array and its 4x4 IJK-to-RAS matrix."""

    array: np.ndarray
    ijk_to_ras: np.ndarray


def volume_from_series(series: SliceSeries, planes: list[np.ndarray] | None = None) -> VolumeArrays:
    """A series on one regular grid as a Slicer volume: its pixels, or `planes` (one per slice of
    the series, e.g. label maps) stacked in the grid's k order."""
    blocks = grid_blocks(series)
    if len(blocks) != 1:
        raise InputError(
            f"series {series.info.description or series.info.uid}: its slices lie on {len(blocks)} "
            "different grids (angled blocks); one Slicer volume holds one grid"
        )
    block = blocks[0]
    planes = planes if planes is not None else [s.pixels for s in series.slices]
    direction = np.asarray(block.direction, dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = RAS_TO_LPS @ direction @ np.diag(block.spacing)
    matrix[:3, 3] = RAS_TO_LPS @ np.asarray(block.origin, dtype=float)
    return VolumeArrays(np.stack([planes[i] for i in block.members]), matrix)


def label_planes(series: SliceSeries, labels: np.ndarray) -> list[np.ndarray]:
    """Per-slice label maps (series order) from a [K, J, I] label array on the series' volume."""
    rows, columns = series.slices[0].geometry.shape
    if labels.ndim != 3 or labels.shape[1:] != (rows, columns) or labels.shape[0] < len(series):
        raise InputError(
            f"a label array of shape {labels.shape} does not lie on the volume's grid "
            f"({len(series)} slices of {rows} x {columns})"
        )
    return [np.asarray(labels[s.source_index], dtype=np.uint8) for s in series.slices]


def label_volume(series: SliceSeries, planes: list[np.ndarray], shape: tuple[int, int, int]) -> np.ndarray:
    """A [K, J, I] uint8 label array of the volume `series` came from, holding `planes` (series order)."""
    out = np.zeros(shape, dtype=np.uint8)
    for image_slice, plane in zip(series.slices, planes, strict=True):
        out[image_slice.source_index] = plane
    return out


def planes_on_dicom_series(volume: SliceSeries, planes: list[np.ndarray], dicom: SliceSeries) -> list[np.ndarray]:
    """The label plane of each slice of `dicom` (the files a volume was loaded from), taken from the
    volume slice (`planes`: the volume series' order) on the same pixel grid; GeometryMismatchError
    when a DICOM slice lies on none (Slicer resampled the series when it loaded it)."""
    out = []
    for position, target in enumerate(dicom.slices):
        plane = next((p for s, p in zip(volume.slices, planes, strict=True)
                      if s.geometry.same_grid(target.geometry, SAME_GRID_MM)), None)
        if plane is None:
            raise GeometryMismatchError(
                f"slice {position} of the source DICOM series ({target.origin.file if target.origin else '?'}) "
                "lies on no slice of the volume: Slicer resampled the series when loading it (angled blocks or "
                "uneven slice spacing); export with the command line instead (paraspinal measure STUDY "
                "SEGMENTATION --dicom)"
            )
        out.append(plane)
    return out


def segment_id(style: SegmentStyle) -> str:
    """The segment ID of a scheme label, as in the .seg.nrrd files the command line writes."""
    return f"Segment_{style.label}"


def segment_masks(labels: np.ndarray) -> dict[int, np.ndarray]:
    """One 0/1 uint8 mask per segment of the scheme, keyed by its label value."""
    return {style.label: (labels == style.label).astype(np.uint8) for style in SEGMENTS}


def labels_from_segment_masks(masks: Mapping[int, np.ndarray]) -> np.ndarray:
    """A scheme label array from one mask per label value.

    Where segments overlap (possible only when the Segment Editor's masking allowed it), the
    segment later in the scheme's order wins, fat over muscle tissue of the same side.
    """
    shapes = {np.shape(mask) for mask in masks.values()}
    if len(shapes) != 1:
        raise InputError(f"the segments lie on different grids: shapes {sorted(shapes)}")
    out = np.full(shapes.pop(), BACKGROUND, dtype=np.uint8)
    for style in SEGMENTS:
        if style.label in masks:
            out[np.asarray(masks[style.label]) > 0] = style.label
    return out


# ---------------------------------------------------------------------------------------------
# Table, plots and attributes


@dataclass(frozen=True)
class TableColumn:
    """One column of the per-slice table: name (as in slices.csv), typed values, unit, description."""

    name: str
    values: np.ndarray
    unit: str
    description: str


_INDEX_COLUMNS = {
    "slice_index": "slice number from the most inferior (0) upwards",
    "source_index": "slice index k in the input volume",
}
_SLICE_COLUMNS = {
    "position_mm": "slice centre along the patient's superior axis (DICOM z)",
    "pixel_area_mm2": "area of one pixel of the slice",
}
_SIDE_QUANTITIES = {
    "total_csa_mm2": "cross-sectional area of the erector spinae + multifidus compartment (inside the fascia)",
    "muscle_csa_mm2": "cross-sectional area of the muscle tissue in the compartment",
    "fat_csa_mm2": "cross-sectional area of the fat in the compartment",
    "fat_fraction_pct": "fat area / compartment area (empty where the compartment is absent)",
}
_UNIT_SUFFIXES = (("_mm2", "mm2"), ("_pct", "%"), ("_mm", "mm"))


def _unit(name: str) -> str:
    return next((unit for suffix, unit in _UNIT_SUFFIXES if name.endswith(suffix)), "")


def _column(name: str, slices: list[SliceMeasurement]) -> TableColumn:
    if name in _INDEX_COLUMNS:
        values = np.array([getattr(m, name) for m in slices], dtype=np.int32)
        return TableColumn(name, values, "", _INDEX_COLUMNS[name])
    if name in _SLICE_COLUMNS:
        values = np.array([getattr(m, name) for m in slices], dtype=np.float64)
        return TableColumn(name, values, _unit(name), _SLICE_COLUMNS[name])
    side, quantity = name.split("_", 1)
    values = np.array([getattr(m.side(side), quantity) for m in slices], dtype=np.float64)
    whose = "both sides" if side == "both" else f"the patient's {side} side"
    return TableColumn(name, values, _unit(name), f"{_SIDE_QUANTITIES[quantity]}, {whose}")


def measurement_columns(slices: list[SliceMeasurement]) -> list[TableColumn]:
    """The per-slice table, one column per slices.csv column (series order, inferior first)."""
    return [_column(name, slices) for name in SLICE_COLUMNS]


@dataclass(frozen=True)
class ChartSpec:
    """A plot along the slices: which table columns, titles, and the attribute that links it."""

    key: str
    title: str
    y_title: str
    series: tuple[tuple[str, str], ...]  # (table column, legend)

    @property
    def attribute(self) -> str:
        return f"{ATTRIBUTE_PREFIX}{self.key}ChartNodeID"


CHART_X_COLUMN = "position_mm"
CHART_X_TITLE = "slice position along the body axis (mm, superior +)"
CHARTS = (
    ChartSpec("FatFraction", "Fat fraction along the slices", "fat fraction (%)",
              (("right_fat_fraction_pct", "Right fat fraction"), ("left_fat_fraction_pct", "Left fat fraction"))),
    ChartSpec("CSA", "Compartment CSA along the slices", "CSA (mm2)",
              (("right_total_csa_mm2", "Right compartment CSA"), ("left_total_csa_mm2", "Left compartment CSA"))),
)

ATTRIBUTE_PREFIX = "ParaspinalSeg."
GRADE_ATTRIBUTE = ATTRIBUTE_PREFIX + "Grade"
MODEL_ATTRIBUTE = ATTRIBUTE_PREFIX + "Model"
METHOD_ATTRIBUTE = ATTRIBUTE_PREFIX + "Method"
TABLE_ATTRIBUTE = ATTRIBUTE_PREFIX + "TableNodeID"
WARNINGS_ATTRIBUTE = ATTRIBUTE_PREFIX + "Warnings"


def _percent_text(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def result_attributes(result: MeasurementResult) -> dict[str, str]:
    """Node attributes of a result: the grade, its warnings (a JSON list), mean fat fractions (%), and
    provenance."""
    summary, provenance = result.summary, result.provenance
    return {
        GRADE_ATTRIBUTE: summary.grade,
        WARNINGS_ATTRIBUTE: json.dumps(list(result.warnings)),
        ATTRIBUTE_PREFIX + "MeanFatFractionPct": _percent_text(summary.mean_fat_fraction_pct),
        ATTRIBUTE_PREFIX + "MeanFatFractionRightPct": _percent_text(summary.mean_fat_fraction_right_pct),
        ATTRIBUTE_PREFIX + "MeanFatFractionLeftPct": _percent_text(summary.mean_fat_fraction_left_pct),
        METHOD_ATTRIBUTE: provenance.method,
        MODEL_ATTRIBUTE: provenance.model or "",
        ATTRIBUTE_PREFIX + "FatSettings": json.dumps(provenance.fat_settings) if provenance.fat_settings else "",
        ATTRIBUTE_PREFIX + "Software": provenance.software,
        ATTRIBUTE_PREFIX + "Created": provenance.created,
    }
