"""Volumes (NIfTI, NRRD, SimpleITK images) to slice series and back, and the grid blocks of a series.

A block is a run of slices that share one pixel grid: same shape, spacing and in-plane directions,
equally spaced along their normal. An ordinary series is one block; a series of axial blocks
angled to each disc is several. Each block becomes one SimpleITK image for writing results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import SliceGeometry
from .inputcheck import check_nifti_file
from ..paths import check_input_kind, check_utf8
from ..slices import ImageSlice, SeriesInfo, SliceSeries

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
DIRECTION_TOLERANCE = 1e-4
POSITION_TOLERANCE_MM = 0.01


def is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(VOLUME_SUFFIXES)


def read_volume_image(path: Path):
    """A SimpleITK image from a NIfTI/NRRD/MetaImage file, with a clear error if unreadable."""
    import SimpleITK as sitk

    check_utf8(path)  # SimpleITK aborts the process on other names
    check_input_kind(path)  # a named pipe would block the reader
    check_nifti_file(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise InputError(f"{path}: cannot be read as an image volume ({first_line})") from None
    if image.GetDimension() != 3:
        raise InputError(
            f"{path}: is a {image.GetDimension()}D image; a 3D volume of axial slices is needed"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: has {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or "
                         "vector); a single-valued MR image or label map is needed")
    return image


def slice_geometry_of(image, k: int) -> SliceGeometry:
    """Geometry of slice k of a 3D SimpleITK image (whose k axis is the slice axis)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = image.GetSpacing()
    columns, rows, _ = image.GetSize()
    return SliceGeometry(
        origin=tuple(float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, int(k)))),
        row_direction=tuple(float(v) for v in direction[:, 0]),
        column_direction=tuple(float(v) for v in direction[:, 1]),
        spacing=(float(spacing[1]), float(spacing[0])),
        shape=(int(rows), int(columns)),
        thickness=float(spacing[2]),
    )


def series_from_image(image, source: str, uid: str = "") -> SliceSeries:
    """Slices of a 3D image along its k axis, ordered from inferior to superior."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image).astype(np.float32)
    slices = [
        ImageSlice(array[k], slice_geometry_of(image, k), source_index=k)
        for k in range(array.shape[0])
    ]
    slices.sort(key=lambda s: (s.geometry.centre[2], s.source_index))
    info = SeriesInfo(uid=uid or f"volume:{Path(source).name}", description=Path(source).name, source=source)
    return SliceSeries(slices, info)


def read_volume_series(path: Path) -> SliceSeries:
    """A NIfTI/NRRD volume as a series of slices."""
    return series_from_image(read_volume_image(path), source=str(path))


@dataclass(frozen=True)
class GridBlock:
    """Slices (indices into a series) that share one 3D pixel grid, in source order."""

    members: tuple[int, ...]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 3x3 row-major, columns = i, j, k directions
    spacing: tuple[float, float, float]  # i, j, k
    size: tuple[int, int, int]  # i, j, k

    def reference_image(self):
        """An empty SimpleITK image on this block's grid."""
        import SimpleITK as sitk

        image = sitk.Image([int(v) for v in self.size], sitk.sitkUInt8)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        image.SetSpacing(self.spacing)
        return image


def _same_plane_grid(a: SliceGeometry, b: SliceGeometry) -> bool:
    return (
        a.shape == b.shape
        and np.allclose(a.spacing, b.spacing, rtol=1e-5, atol=0)
        and np.allclose(a.row_direction, b.row_direction, atol=DIRECTION_TOLERANCE)
        and np.allclose(a.column_direction, b.column_direction, atol=DIRECTION_TOLERANCE)
    )


def _fits_block(block: list[int], candidate: int, geometries: list[SliceGeometry]) -> bool:
    first = geometries[block[0]]
    new = geometries[candidate]
    if not _same_plane_grid(first, new):
        return False
    offset = np.asarray(new.origin) - np.asarray(geometries[block[-1]].origin)
    if np.linalg.norm(offset) < POSITION_TOLERANCE_MM:
        return False
    if np.linalg.norm(np.cross(offset / np.linalg.norm(offset), first.normal)) > DIRECTION_TOLERANCE * 10:
        return False
    if len(block) == 1:
        return True
    step = np.asarray(geometries[block[1]].origin) - np.asarray(first.origin)
    return bool(np.linalg.norm(offset - step) <= POSITION_TOLERANCE_MM)


def grid_blocks(series: SliceSeries) -> list[GridBlock]:
    """Split a series into blocks of slices sharing one regular 3D grid (in source order)."""
    order = sorted(range(len(series)), key=lambda i: series.slices[i].source_index)
    geometries = series.geometries
    groups: list[list[int]] = []
    for index in order:
        if groups and _fits_block(groups[-1], index, geometries):
            groups[-1].append(index)
        else:
            groups.append([index])
    return [_block_of(group, geometries) for group in groups]


def _block_of(group: list[int], geometries: list[SliceGeometry]) -> GridBlock:
    first = geometries[group[0]]
    if len(group) > 1:
        step = np.asarray(geometries[group[1]].origin) - np.asarray(first.origin)
        k_spacing = float(np.linalg.norm(step))
        k_direction = step / k_spacing
    else:
        k_spacing = first.thickness if first.thickness > 0 else 1.0  # 0, negative: nothing to go by
        k_direction = first.normal
    direction = np.column_stack([first.row_direction, first.column_direction, k_direction])
    rows, columns = first.shape
    return GridBlock(
        members=tuple(group),
        origin=tuple(float(v) for v in first.origin),
        direction=tuple(float(v) for v in direction.ravel()),
        spacing=(float(first.spacing[1]), float(first.spacing[0]), k_spacing),
        size=(int(columns), int(rows), len(group)),
    )


def block_image(block: GridBlock, planes: list[np.ndarray], pixel_type=None):
    """A SimpleITK image on the block's grid from the block members' 2D arrays (source order)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.stack(planes))
    if pixel_type is not None:
        image = sitk.Cast(image, pixel_type)
    image.CopyInformation(block.reference_image())
    return image
