"""What one DICOM file says frame by frame: its geometry in patient space, its rescale, its pixels.

Classic files have one frame; Enhanced MR multi-frame files keep per-frame values in functional
groups (per-frame first, then shared, then the top level). Geometry comes from each frame's own
ImagePositionPatient, ImageOrientationPatient and PixelSpacing, checked; pixels are decoded and
rescaled to float32 real values, with an InputError naming the file when they cannot be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

from .dicom_files import DicomSource, SourceReader, as_source
from ..errors import InputError
from ..geometry import SliceGeometry

DIRECTION_TOLERANCE = 1e-2  # how far IOP may be from two perpendicular unit vectors
LOSSY_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000, JPEG2000MC, HTJ2K}


def text_of(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()


def number_of(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def values_of(dataset: Dataset, keyword: str) -> tuple[str, ...]:
    value = dataset.get(keyword)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _functional_item(dataset: Dataset, frame: int, sequence_keyword: str) -> Dataset | None:
    """The first item of a functional group macro for one frame: per-frame first, then shared."""
    for groups, index in (
        (dataset.get("PerFrameFunctionalGroupsSequence"), frame),
        (dataset.get("SharedFunctionalGroupsSequence"), 0),
    ):
        if groups and len(groups) > index and sequence_keyword in groups[index]:
            sequence = groups[index][sequence_keyword].value
            if sequence:
                return sequence[0]
    return None


def frame_value(dataset: Dataset, frame: int, sequence_keyword: str, keyword: str) -> object:
    """An attribute from a frame's functional group, else from the top level; None if absent."""
    item = _functional_item(dataset, frame, sequence_keyword)
    if item is not None and item.get(keyword) not in (None, ""):
        return item.get(keyword)
    value = dataset.get(keyword)
    return None if value == "" else value


def frame_count(dataset: Dataset) -> int:
    return max(1, int(number_of(dataset.get("NumberOfFrames")) or 1))


def _has_length(value: object, length: int) -> bool:
    """Whether a multi-valued attribute holds `length` values (a single value has no length)."""
    try:
        return value is not None and not isinstance(value, str) and len(value) == length  # type: ignore[arg-type]
    except TypeError:
        return False


def frame_geometry(dataset: Dataset, frame: int, source: str) -> SliceGeometry:
    """Where one frame (0 for a classic file) lies in patient space; InputError if it cannot be told."""
    position = frame_value(dataset, frame, "PlanePositionSequence", "ImagePositionPatient")
    orientation = frame_value(dataset, frame, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = frame_value(dataset, frame, "PixelMeasuresSequence", "PixelSpacing")
    thickness = number_of(frame_value(dataset, frame, "PixelMeasuresSequence", "SliceThickness"))
    missing = [
        name
        for name, value, length in (
            ("ImagePositionPatient", position, 3),
            ("ImageOrientationPatient", orientation, 6),
            ("PixelSpacing", spacing, 2),
        )
        if not _has_length(value, length)
    ]
    where = f"{source}" + (f" frame {frame + 1}" if frame_count(dataset) > 1 else "")
    if missing:
        raise InputError(
            f"{where}: has no {', '.join(missing)}, so its pixels cannot be placed in patient space; "
            "export the series from the scanner or PACS with its geometry"
        )
    row = tuple(float(v) for v in orientation[:3])  # type: ignore[index]
    column = tuple(float(v) for v in orientation[3:6])  # type: ignore[index]
    if (
        abs(np.linalg.norm(row) - 1) > DIRECTION_TOLERANCE
        or abs(np.linalg.norm(column) - 1) > DIRECTION_TOLERANCE
        or abs(float(np.dot(row, column))) > DIRECTION_TOLERANCE
    ):
        raise InputError(
            f"{where}: ImageOrientationPatient {list(row + column)} is not two perpendicular unit "
            "vectors; the file's geometry is damaged, export it again"
        )
    pixel_spacing = (float(spacing[0]), float(spacing[1]))  # type: ignore[index]
    if min(pixel_spacing) <= 0:
        raise InputError(f"{where}: PixelSpacing {list(pixel_spacing)} is not positive; export it again")
    return SliceGeometry(
        origin=tuple(float(v) for v in position),  # type: ignore[arg-type]
        row_direction=row,  # type: ignore[arg-type]
        column_direction=column,  # type: ignore[arg-type]
        spacing=pixel_spacing,
        shape=(int(dataset.Rows), int(dataset.Columns)),
        thickness=thickness or 0.0,
    )


def frame_rescale(dataset: Dataset, frame: int) -> tuple[float, float]:
    """(slope, intercept) that turn one frame's stored values into real values."""
    slope = number_of(frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = number_of(frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleIntercept"))
    return (slope if slope else 1.0, intercept or 0.0)


def transfer_syntax(dataset: Dataset) -> str | None:
    return getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)


def is_lossy(dataset: Dataset) -> bool:
    return text_of(dataset, "LossyImageCompression") == "01" or transfer_syntax(dataset) in LOSSY_SYNTAXES


def _decoded_frames(dataset: Dataset, source: DicomSource, warned: list[str]) -> np.ndarray:
    """Stored pixel values as [frame, row, column]; InputError when they cannot be had."""
    if "PixelData" not in dataset:
        ending = f" ({warned[-1]})" if warned else ""
        raise InputError(
            f"{source}: has no complete pixel data{ending}; the file is truncated or not an image, "
            "copy or export it again"
        )
    samples = int(number_of(dataset.get("SamplesPerPixel")) or 1)
    if samples != 1:
        raise InputError(f"{source}: is a colour image ({samples} samples per pixel); choose an MR series")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # decoders raise many types for damaged or unsupported data
        name = getattr(transfer_syntax(dataset), "name", "unknown transfer syntax")
        raise InputError(
            f"{source}: its pixel data ({name}) cannot be decoded ({type(error).__name__}: {error}); "
            "the file is damaged or truncated, or needs a decoder (pip install pylibjpeg "
            "pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle)"
        ) from error
    return pixels.reshape(frame_count(dataset), int(dataset.Rows), int(dataset.Columns))


def read_image(reader: SourceReader, source: DicomSource) -> tuple[Dataset, np.ndarray]:
    """The dataset and its frames as float32 real values (rescale applied)."""
    dataset, warned = reader.dataset(source, headers_only=False)
    stored = _decoded_frames(dataset, source, warned)
    frames = np.empty(stored.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf, which the input check refuses
        for frame in range(stored.shape[0]):
            slope, intercept = frame_rescale(dataset, frame)
            frames[frame] = stored[frame].astype(np.float64) * slope + intercept
    return dataset, frames


def read_frames(source: DicomSource | Path | str) -> np.ndarray:
    """One file's pixels as float32 [frame, row, column], rescale slope/intercept applied."""
    with SourceReader() as reader:
        return read_image(reader, as_source(source))[1]
