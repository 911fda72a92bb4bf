"""A segmentation file (or one per grid block) read onto the slices of its image, in the label scheme.

Accepted: a label map in the project's scheme (used as given), a compartment-only map (1 right,
3 left; fat is quantified afterwards), a binary map (both compartments 1; split at the midline),
MuscleMap's 8 labels or TotalSegmentator's autochthon labels (merged into compartments), and a
Slicer `.seg.nrrd`. Each image slice must coincide with a plane of a segmentation file: same
in-plane directions and spacing, same pixel positions; anything else is a GeometryMismatchError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GeometryMismatchError, InputError
from ..geometry import SliceGeometry
from .inputcheck import check_label_values
from ..labels import (
    COMPARTMENT_SOURCES,
    LEFT_MUSCLE,
    RIGHT_MUSCLE,
    LabelKind,
    compartments_to_scheme,
    detect_label_kind,
)
from ..slices import SliceSeries
from .volumes import grid_blocks, read_volume_image

POSITION_TOLERANCE_MM = 0.05
DIRECTION_TOLERANCE = 1e-3


@dataclass
class SliceLabels:
    """Scheme label maps, one per slice of the series (series order), and how they were made."""

    labels: list[np.ndarray]
    kind: LabelKind
    needs_fat: bool
    sources: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def is_seg_nrrd(path: Path) -> bool:
    return path.name.lower().endswith(".seg.nrrd")


def _read_scheme_or_raw(path: Path, series: SliceSeries) -> tuple[object, bool | None]:
    """The label image of one file; for .seg.nrrd already in the scheme, with whether it has fat."""
    if not path.exists():
        raise InputError(f"{path}: segmentation file not found")
    if not is_seg_nrrd(path):
        import SimpleITK as sitk

        image = read_volume_image(path)
        check_label_values(path, sitk.GetArrayViewFromImage(image))
        return image, None
    from ..output.segnrrd import pad_to_reference, read_seg_nrrd, to_scheme_labels

    seg = read_seg_nrrd(path)
    image = to_scheme_labels(seg)
    has_fat = any("fat" in s.name.lower() or "adipose" in s.name.lower() for s in seg.segments)
    for block in grid_blocks(series):
        try:
            return pad_to_reference(image, block.reference_image(), source=str(path)), has_fat
        except GeometryMismatchError:
            continue
    return image, has_fat


def _plane_index(image, geometry: SliceGeometry) -> int | None:
    """k of the image plane that holds exactly the pixels of this slice, or None."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    columns, rows, depth = image.GetSize()
    if (rows, columns) != geometry.shape:
        return None
    if not (
        np.allclose(direction[:, 0], geometry.row_direction, atol=DIRECTION_TOLERANCE)
        and np.allclose(direction[:, 1], geometry.column_direction, atol=DIRECTION_TOLERANCE)
        and np.allclose(spacing[:2], geometry.spacing[::-1], rtol=1e-4)
    ):
        return None
    offset_mm = np.linalg.solve(direction, np.asarray(geometry.origin) - np.asarray(image.GetOrigin()))
    k = int(round(offset_mm[2] / spacing[2]))
    if np.abs(offset_mm[:2]).max() > POSITION_TOLERANCE_MM:
        return None
    if abs(offset_mm[2] - k * spacing[2]) > POSITION_TOLERANCE_MM or not 0 <= k < depth:
        return None
    return k


def _describe_grid(image) -> str:
    size = "x".join(str(v) for v in image.GetSize())
    spacing = "x".join(f"{v:.4g}" for v in image.GetSpacing())
    origin = ", ".join(f"{v:.1f}" for v in image.GetOrigin())
    return f"{size} voxels of {spacing} mm at ({origin})"


def _describe_series_grid(series: SliceSeries) -> str:
    g = series.slices[0].geometry
    return (
        f"{len(series)} slices of {g.shape[1]}x{g.shape[0]} pixels, "
        f"{g.spacing[1]:.4g}x{g.spacing[0]:.4g} mm, first at "
        f"({', '.join(f'{v:.1f}' for v in g.origin)})"
    )


def planes_on_series(images: list[tuple[Path, object]], series: SliceSeries) -> list[np.ndarray]:
    """The 2D label plane of each slice, taken from whichever file holds that slice's plane."""
    import SimpleITK as sitk

    arrays = [(path, image, sitk.GetArrayViewFromImage(image)) for path, image in images]
    planes: list[np.ndarray] = []
    for position, image_slice in enumerate(series.slices):
        for _path, image, array in arrays:
            k = _plane_index(image, image_slice.geometry)
            if k is not None:
                planes.append(np.array(array[k], dtype=np.int32))
                break
        else:
            names = ", ".join(str(p) for p, _ in images)
            grids = "; ".join(f"{p.name}: {_describe_grid(i)}" for p, i in images)
            raise GeometryMismatchError(
                f"{names}: the segmentation does not lie on the image's pixel grid "
                f"(slice {position} has no matching plane). Image: {_describe_series_grid(series)}. "
                f"Segmentation: {grids}. Resample it onto the image first, e.g. in Slicer."
            )
    return planes


def split_binary_at_midline(mask: np.ndarray, geometry: SliceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Right and left compartment of a binary mask, split at the mask's mean LPS x (patient midline)."""
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        return mask.copy(), mask.copy()
    along_columns = np.asarray(geometry.row_direction) * geometry.spacing[1]
    along_rows = np.asarray(geometry.column_direction) * geometry.spacing[0]
    x = geometry.origin[0] + columns * along_columns[0] + rows * along_rows[0]
    right = np.zeros(mask.shape, dtype=bool)
    right[rows, columns] = x < x.mean()
    return right, mask & ~right


def _compartments(plane: np.ndarray, kind: LabelKind, geometry: SliceGeometry) -> np.ndarray:
    if kind is LabelKind.BINARY:
        right, left = split_binary_at_midline(plane > 0, geometry)
    else:
        right_values, left_values = COMPARTMENT_SOURCES[kind]
        right, left = np.isin(plane, right_values), np.isin(plane, left_values)
    return compartments_to_scheme(right, left)


def side_warnings(labels: list[np.ndarray], series: SliceSeries) -> tuple[str, ...]:
    """A warning when the 'right' compartment lies on the patient's left (sides swapped)."""
    x = {RIGHT_MUSCLE: [], LEFT_MUSCLE: []}
    for plane, image_slice in zip(labels, series.slices):
        g = image_slice.geometry
        for muscle in (RIGHT_MUSCLE, LEFT_MUSCLE):
            rows, columns = np.nonzero((plane == muscle) | (plane == muscle + 1))
            if rows.size:
                x[muscle].append(g.index_to_lps(rows.mean(), columns.mean())[0])
    if x[RIGHT_MUSCLE] and x[LEFT_MUSCLE] and np.mean(x[RIGHT_MUSCLE]) > np.mean(x[LEFT_MUSCLE]):
        return (
            "the compartment labelled right lies on the patient's left (LPS x larger than the "
            "left one's): check the label map's side convention",
        )
    return ()


def load_segmentation(
    paths: list[Path], series: SliceSeries, kind: LabelKind = LabelKind.AUTO
) -> SliceLabels:
    """Read segmentation file(s) onto the series and bring them into the label scheme."""
    paths = [Path(p) for p in paths]
    images: list[tuple[Path, object]] = []
    seg_nrrd_has_fat: list[bool] = []
    for path in paths:
        image, has_fat = _read_scheme_or_raw(path, series)
        images.append((path, image))
        if has_fat is not None:
            seg_nrrd_has_fat.append(has_fat)
    planes = planes_on_series(images, series)
    values = set(np.unique(np.concatenate([np.unique(p) for p in planes])).tolist())
    if seg_nrrd_has_fat and kind is LabelKind.AUTO:
        kind = LabelKind.SCHEME if all(seg_nrrd_has_fat) else LabelKind.COMPARTMENT
    elif kind is LabelKind.AUTO:
        try:
            kind = detect_label_kind(values)
        except ValueError as error:
            raise InputError(f"{', '.join(map(str, paths))}: {error}") from None
    if kind is LabelKind.SCHEME:
        unexpected = sorted(v for v in values if v not in range(5))
        if unexpected:
            raise InputError(
                f"{', '.join(map(str, paths))}: values {unexpected} are not in the label scheme "
                "(0 background, 1 right muscle, 2 right fat, 3 left muscle, 4 left fat)"
            )
        labels = [p.astype(np.uint8) for p in planes]
    else:
        labels = [_compartments(p, kind, s.geometry) for p, s in zip(planes, series.slices)]
    return SliceLabels(
        labels=labels,
        kind=kind,
        needs_fat=kind is not LabelKind.SCHEME,
        sources=tuple(str(p) for p in paths),
        warnings=side_warnings(labels, series),
    )
