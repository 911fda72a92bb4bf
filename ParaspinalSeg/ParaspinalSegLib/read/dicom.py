"""Reading DICOM studies: summarise each series from headers, load one series.

A study may be a folder (searched recursively; any file names), a zip of DICOM files, or one
file, holding several patients, studies and series (found by dicom_files; each file's frames are
read by dicom_frames). Discovery reads headers only. Loading reads every slice with its own
geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing), classic one-file-per-slice
and Enhanced MR multi-frame alike, so a series of axial blocks angled to each disc is read as it
is, never resampled onto one grid. Patient identifiers never leave
this module: a series carries short keyed hashes of PatientID and StudyInstanceUID instead (the key
is drawn anew in every process, so a listing tells patients apart but cannot be traced back to an ID).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from .dicom_files import DicomSource, SourceReader, as_source, find_dicom_files
from .dicom_frames import frame_count, frame_geometry, frame_value, is_lossy, number_of, read_image, text_of, values_of
from ..errors import InputError
from ..geometry import SliceGeometry, orientation_label
from ..progress import ProgressCallback
from ..slices import DicomOrigin, ImageSlice, SeriesInfo, SliceSeries

log = logging.getLogger(__name__)

HASH_LENGTH = 8
_HASH_KEY = secrets.token_bytes(32)  # per process: no table of known IDs can undo a short hash
DUPLICATE_POSITION_MM = 1e-3
ORDER_DECIMALS = 3  # slice centres closer than 1e-3 mm in z count as tied
SAME_ORIENTATION = 1e-3  # largest IOP component difference within one block
ECHO_PULSE_SEQUENCES = {"SPIN": "SE", "GRADIENT": "GR", "BOTH": "SE/GR"}


@dataclass(frozen=True)
class SeriesSummary:
    """One series as its headers describe it, without reading pixels.

    orientation: 'axial', 'coronal', 'sagittal', 'mixed' (several), or 'unknown' (no geometry).
    max_angle_deg: largest angle between a slice normal and the body axis (nan when unknown).
    slice_count: number of 2D images (frames of multi-frame files count one each).
    pixel_spacings: the distinct (row, column) spacings in mm.
    orientation_count: distinct slice orientations, e.g. 3 for blocks angled to three discs.
    files: the files holding the series, in instance order (duplicate copies left out).
    geometry_problem: why the slices cannot be placed in patient space ('' when they can).
    """

    info: SeriesInfo
    orientation: str
    max_angle_deg: float
    slice_count: int
    pixel_spacings: tuple[tuple[float, float], ...]
    orientation_count: int
    files: tuple[DicomSource, ...]
    image_type: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    acquisition_contrast: str = ""
    geometry_problem: str = ""
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Header:
    """What discovery keeps from one file's header."""

    source: DicomSource
    sop_uid: str
    instance_number: int | None
    lossy: bool
    info: SeriesInfo
    geometries: tuple[SliceGeometry, ...]
    geometry_problem: str
    frames: int
    image_type: tuple[str, ...]
    scan_options: tuple[str, ...]
    acquisition_contrast: str


def short_hash(value: str) -> str:
    """A short reference to an identifier, keyed per process (HMAC-SHA-256; '' for an empty one)."""
    return hmac.new(_HASH_KEY, value.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_LENGTH] if value else ""


def _sequence(dataset: Dataset) -> str:
    """ScanningSequence as 'SE', 'GR', 'SE/IR'...; Enhanced MR's EchoPulseSequence mapped onto it."""
    scanning = values_of(dataset, "ScanningSequence")
    if scanning:
        return "/".join(scanning)
    return ECHO_PULSE_SEQUENCES.get(text_of(dataset, "EchoPulseSequence").upper(), "")


def _echo_train_length(dataset: Dataset) -> int | None:
    value = number_of(frame_value(dataset, 0, "MRTimingAndRelatedParametersSequence", "EchoTrainLength"))
    if value is None:
        value = number_of(dataset.get("RFEchoTrainLength"))
    return None if value is None else int(value)


def series_info_of(dataset: Dataset, source: str) -> SeriesInfo:
    """What a series is, from one of its headers; patient and study only as short hashes."""
    number = number_of(dataset.get("SeriesNumber"))
    echo_time = number_of(dataset.get("EchoTime"))
    if echo_time is None:
        echo_time = number_of(frame_value(dataset, 0, "MREchoSequence", "EffectiveEchoTime"))
    return SeriesInfo(
        uid=text_of(dataset, "SeriesInstanceUID"),
        patient=short_hash(text_of(dataset, "PatientID")),
        study=short_hash(text_of(dataset, "StudyInstanceUID")),
        number=None if number is None else int(number),
        description=text_of(dataset, "SeriesDescription") or text_of(dataset, "ProtocolName"),
        modality=text_of(dataset, "Modality"),
        sequence=_sequence(dataset),
        echo_time_ms=echo_time,
        repetition_time_ms=number_of(
            frame_value(dataset, 0, "MRTimingAndRelatedParametersSequence", "RepetitionTime")
        ),
        echo_train_length=_echo_train_length(dataset),
        source=source,
    )


def _header_of(dataset: Dataset, source: DicomSource, input_path: str) -> _Header:
    frames = frame_count(dataset)
    try:
        geometries = tuple(frame_geometry(dataset, frame, str(source)) for frame in range(frames))
        problem = ""
    except InputError as error:
        geometries, problem = (), str(error)
    number = number_of(dataset.get("InstanceNumber"))
    return _Header(
        source=source,
        sop_uid=text_of(dataset, "SOPInstanceUID"),
        instance_number=None if number is None else int(number),
        lossy=is_lossy(dataset),
        info=series_info_of(dataset, input_path),
        geometries=geometries,
        geometry_problem=problem,
        frames=frames,
        image_type=tuple(v.upper() for v in values_of(dataset, "ImageType")),
        scan_options=tuple(v.upper() for v in values_of(dataset, "ScanOptions")),
        acquisition_contrast=text_of(dataset, "AcquisitionContrast").upper(),
    )


def _is_image(dataset: Dataset) -> bool:
    return "Rows" in dataset and "Columns" in dataset and bool(text_of(dataset, "SeriesInstanceUID"))


def _image_class_name(dataset: Dataset) -> str:
    """The SOP class name when the file says it holds an image ('MR Image Storage'), else ''."""
    meta = getattr(dataset, "file_meta", Dataset())
    sop_class = text_of(dataset, "SOPClassUID") or text_of(meta, "MediaStorageSOPClassUID")
    name = pydicom.uid.UID(sop_class).name if sop_class else ""
    return name if "Image Storage" in name else ""


def _instance_order(header: _Header) -> tuple[float, str]:
    number = header.instance_number
    return (float("inf") if number is None else float(number), str(header.source))


def _without_duplicates(headers: list[_Header]) -> list[_Header]:
    """One file per SOPInstanceUID: a lossless copy before a lossy one, then the first path."""
    best: dict[str, _Header] = {}
    for header in sorted(headers, key=lambda h: (h.lossy, str(h.source))):
        best.setdefault(header.sop_uid or str(header.source), header)
    if len(best) < len(headers):
        log.info("%d duplicate copies of the same images left out", len(headers) - len(best))
    return sorted(best.values(), key=_instance_order)


def _distinct_orientations(geometries: Iterable[SliceGeometry]) -> int:
    seen: list[np.ndarray] = []
    for geometry in geometries:
        iop = np.array(geometry.row_direction + geometry.column_direction)
        if not any(np.max(np.abs(iop - other)) <= SAME_ORIENTATION for other in seen):
            seen.append(iop)
    return len(seen)


def _summary_of(headers: list[_Header]) -> SeriesSummary:
    headers = _without_duplicates(headers)
    first = headers[0]
    problems = [h.geometry_problem for h in headers if h.geometry_problem]
    geometries = [g for h in headers for g in h.geometries]
    if problems:
        orientation, max_angle, blocks = "unknown", float("nan"), 0
    else:
        labels = {orientation_label(g.normal) for g in geometries}
        orientation = labels.pop() if len(labels) == 1 else "mixed"
        max_angle = max(g.angle_to_body_axis_deg() for g in geometries)
        blocks = _distinct_orientations(geometries)
    return SeriesSummary(
        info=first.info,
        orientation=orientation,
        max_angle_deg=max_angle,
        slice_count=sum(h.frames for h in headers),
        pixel_spacings=tuple(sorted({g.spacing for g in geometries})),
        orientation_count=blocks,
        files=tuple(h.source for h in headers),
        image_type=first.image_type,
        scan_options=first.scan_options,
        acquisition_contrast=first.acquisition_contrast,
        geometry_problem=problems[0] if problems else "",
    )


def _report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def _summaries(
    sources: Sequence[DicomSource], input_path: str, progress: ProgressCallback | None
) -> tuple[list[SeriesSummary], list[str]]:
    """Summaries of the image series among `sources`, and the problems of unreadable files."""
    by_series: dict[str, list[_Header]] = {}
    unreadable: list[str] = []
    with SourceReader() as reader:
        for index, source in enumerate(sources):
            _report(progress, index / len(sources), f"reading DICOM headers, {index + 1} of {len(sources)}")
            try:
                dataset, _ = reader.dataset(source, headers_only=True)
            except InputError as error:
                unreadable.append(str(error))
                continue
            if not _is_image(dataset):
                if _image_class_name(dataset):
                    unreadable.append(
                        f"{source}: an {_image_class_name(dataset)} file whose header stops before Rows, "
                        "Columns or SeriesInstanceUID; the file is truncated, copy or export it again"
                    )
                else:
                    log.debug("%s: not an image (no Rows/Columns or SeriesInstanceUID), skipped", source)
                continue
            header = _header_of(dataset, source, input_path)
            by_series.setdefault(header.info.uid, []).append(header)
    _report(progress, 1.0, "reading DICOM headers, done")
    summaries = [_summary_of(headers) for headers in by_series.values()]
    summaries.sort(key=lambda s: (s.info.patient, s.info.study, s.info.number or 0, s.info.uid))
    return summaries, unreadable


def list_series(path: Path, progress: ProgressCallback | None = None) -> list[SeriesSummary]:
    """Every image series in a DICOM folder, zip or file, summarised from headers only.

    Unreadable files are logged, left out and named in each summary's `unreadable` (they may have
    belonged to any series); InputError when no series can be read at all.
    `progress(fraction, message)` is called as headers are read and may raise to cancel.
    """
    path = Path(path)
    sources = find_dicom_files(path)
    summaries, unreadable = _summaries(sources, str(path), progress)
    for problem in unreadable:
        log.warning("%s", problem)
    if not summaries:
        if len(sources) == 1 and unreadable:
            raise InputError(unreadable[0])
        detail = f"; {len(unreadable)} could not be read, e.g. {unreadable[0]}" if unreadable else ""
        raise InputError(
            f"{path}: none of its {len(sources)} DICOM files is an image{detail}; "
            "point to the folder, zip or file holding the study's MR images"
        )
    log.info("%d series in %s", len(summaries), path)
    return [replace(summary, unreadable=tuple(unreadable)) for summary in summaries]


def _slice_order(item: ImageSlice) -> tuple[float, float, int]:
    """Inferior to superior by the z of the slice centre; ties by position along the normal."""
    centre = item.geometry.centre
    return (
        round(float(centre[2]), ORDER_DECIMALS),
        round(float(centre @ item.geometry.normal), ORDER_DECIMALS),
        item.source_index,
    )


def _check_no_duplicates(slices: list[ImageSlice], summary: SeriesSummary) -> None:
    for before, after in zip(slices, slices[1:]):
        same_place = np.linalg.norm(before.geometry.centre - after.geometry.centre) <= DUPLICATE_POSITION_MM
        if same_place and np.allclose(before.geometry.normal, after.geometry.normal, atol=SAME_ORIENTATION):
            raise InputError(
                f"{summary.info.source}: series {summary.info.number} '{summary.info.description}' has "
                f"more than one slice at the same place ({before.geometry.centre.round(2).tolist()} mm), "
                "e.g. several echoes or a repeated acquisition in one series; export the images of one "
                "echo or acquisition as their own series"
            )


def _summary_for(sources: Sequence[DicomSource | Path | str]) -> SeriesSummary:
    items = [as_source(s) for s in sources]
    if not items:
        raise InputError("no DICOM files given to load; pass a series summary or its files")
    summaries, unreadable = _summaries(items, str(items[0]), None)
    if unreadable:
        raise InputError(unreadable[0])
    if len(summaries) != 1:
        found = ", ".join(f"{s.info.number} '{s.info.description}'" for s in summaries) or "none"
        raise InputError(
            f"{items[0]}: the {len(items)} files given hold {len(summaries)} image series ({found}); "
            "pass the files of one series"
        )
    return summaries[0]


def load_series(
    series: SeriesSummary | Sequence[DicomSource | Path | str],
    progress: ProgressCallback | None = None,
) -> SliceSeries:
    """Read every slice of one series, each with its own geometry, ordered inferior to superior.

    `series` is a summary from list_series or the files of one series. Multi-frame files give
    one slice per frame. Raises InputError naming the file when one cannot be read or decoded,
    or has no geometry. `progress(fraction, message)` is called per file and may raise to cancel.
    """
    summary = series if isinstance(series, SeriesSummary) else _summary_for(series)
    if summary.geometry_problem:
        raise InputError(summary.geometry_problem)
    slices: list[ImageSlice] = []
    with SourceReader() as reader:
        for index, source in enumerate(summary.files):
            _report(progress, index / len(summary.files), f"reading DICOM images, {index + 1} of {len(summary.files)}")
            dataset, frames = read_image(reader, source)
            for frame, pixels in enumerate(frames):
                geometry = frame_geometry(dataset, frame, str(source))
                origin = DicomOrigin(source, frame, len(frames), text_of(dataset, "SOPInstanceUID"))
                slices.append(ImageSlice(pixels, geometry, source_index=len(slices), origin=origin))
    _report(progress, 1.0, "reading DICOM images, done")
    slices.sort(key=_slice_order)
    _check_no_duplicates(slices, summary)
    log.info(
        "read series %s '%s': %d slices", summary.info.number, summary.info.description, len(slices)
    )
    left_out = [f"a file of the study was left out: {problem}" for problem in summary.unreadable]
    return SliceSeries(slices, summary.info, warnings=left_out)
