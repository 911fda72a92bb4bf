"""Reading DICOM studies: find the files, summarise each series from headers, load one series.

A study may be a folder (searched recursively; any file names), a zip of DICOM files, or one
file, holding several patients, studies and series. Discovery reads headers only. Loading reads
every slice with its own geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing),
classic one-file-per-slice and Enhanced MR multi-frame alike, so a series of axial blocks angled
to each disc is read as it is, never resampled onto one grid. Patient identifiers never leave
this module: a series carries short keyed hashes of PatientID and StudyInstanceUID instead (the key
is drawn anew in every process, so a listing tells patients apart but cannot be traced back to an ID).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import os
import secrets
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

from .errors import InputError
from .geometry import SliceGeometry, orientation_label
from .slices import ImageSlice, SeriesInfo, SliceSeries
from .progress import ProgressCallback

log = logging.getLogger(__name__)

PREAMBLE_BYTES = 132
HASH_LENGTH = 8
_HASH_KEY = secrets.token_bytes(32)  # per process: no table of known IDs can undo a short hash
DIRECTION_TOLERANCE = 1e-2  # how far IOP may be from two perpendicular unit vectors
DUPLICATE_POSITION_MM = 1e-3
ORDER_DECIMALS = 3  # slice centres closer than 1e-3 mm in z count as tied
SAME_ORIENTATION = 1e-3  # largest IOP component difference within one block
LOSSY_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000, JPEG2000MC, HTJ2K}
ECHO_PULSE_SEQUENCES = {"SPIN": "SE", "GRADIENT": "GR", "BOTH": "SE/GR"}


@dataclass(frozen=True)
class DicomSource:
    """One DICOM file: a path on disk, or a member of a zip archive at `path`."""

    path: Path
    member: str = ""

    def __str__(self) -> str:
        return f"{self.path}/{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name if self.member else self.path.name


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


class _SourceReader:
    """Reads DicomSources, keeping each zip archive open while a batch is read."""

    def __init__(self) -> None:
        self._archives: dict[Path, zipfile.ZipFile] = {}

    def __enter__(self) -> _SourceReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()

    def _archive(self, path: Path) -> zipfile.ZipFile:
        if path not in self._archives:
            self._archives[path] = zipfile.ZipFile(path)
        return self._archives[path]

    def head(self, source: DicomSource) -> bytes:
        """The first bytes of a file, enough for the DICM preamble or the first tag (b'' if unreadable)."""
        try:
            if source.member:
                with self._archive(source.path).open(source.member) as stream:
                    return stream.read(PREAMBLE_BYTES)
            with open(source.path, "rb") as stream:
                return stream.read(PREAMBLE_BYTES)
        except (OSError, zipfile.BadZipFile, zlib.error) as error:
            log.warning("%s: cannot be read (%s), skipped", source, error)
            return b""

    def dataset(self, source: DicomSource, headers_only: bool) -> tuple[Dataset, list[str]]:
        """The parsed file and pydicom's warnings about it; InputError when it cannot be parsed."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if source.member:
                    data = io.BytesIO(self._archive(source.path).read(source.member))
                    dataset = pydicom.dcmread(data, stop_before_pixels=headers_only, force=True)
                else:
                    dataset = pydicom.dcmread(source.path, stop_before_pixels=headers_only, force=True)
            except Exception as error:  # pydicom raises many types for damaged files
                raise InputError(
                    f"{source}: cannot be read as DICOM ({type(error).__name__}: {error}); the file is "
                    "damaged or truncated, copy or export it again"
                ) from error
        return dataset, [str(w.message) for w in caught]


def short_hash(value: str) -> str:
    """A short reference to an identifier, keyed per process (HMAC-SHA-256; '' for an empty one)."""
    return hmac.new(_HASH_KEY, value.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_LENGTH] if value else ""


def looks_like_dicom(head: bytes) -> bool:
    """True for the DICM preamble, or for a preamble-less dataset starting at group 0002 or 0008."""
    if len(head) >= PREAMBLE_BYTES and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group, _ = struct.unpack("<HH", head[:4])
    return group in (0x0002, 0x0008)


def _walk_files(folder: Path) -> Iterator[Path]:
    for root, directories, names in os.walk(folder):
        directories.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file():
                yield path


def _zip_members(path: Path) -> list[DicomSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{path}: cannot be opened as a zip archive ({error}); check the download") from error
    return [DicomSource(path, name) for name in sorted(names) if not name.startswith("__MACOSX/")]


def _candidates(path: Path) -> list[DicomSource]:
    if path.is_dir():
        sources: list[DicomSource] = []
        for file in _walk_files(path):
            sources.extend(_zip_members(file) if file.suffix.lower() == ".zip" else [DicomSource(file)])
        return sources
    if path.suffix.lower() == ".zip":
        return _zip_members(path)
    return [DicomSource(path)]


def find_dicom_files(path: Path) -> list[DicomSource]:
    """The DICOM files in a folder (recursively, *.zip inside included), a *.zip, or one file.

    Files without the DICM preamble are kept only when they start like a DICOM dataset; other
    files are skipped quietly. Raises InputError when the path does not exist or holds no DICOM.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    candidates = _candidates(path)
    with _SourceReader() as reader:
        found = [source for source in candidates if looks_like_dicom(reader.head(source))]
    log.info("%d DICOM files among %d files in %s", len(found), len(candidates), path)
    if not found:
        if path.is_file() and path.suffix.lower() != ".zip":
            what = "is not a DICOM file (no DICM preamble, and it does not start like a DICOM dataset)"
        elif not candidates:
            what = "is empty"
        else:
            what = f"holds no DICOM files among its {len(candidates)} files"
        raise InputError(
            f"{path}: {what}; point to the folder, zip or file holding the study's DICOM images"
        )
    return found


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()


def _number(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _values(dataset: Dataset, keyword: str) -> tuple[str, ...]:
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


def _frame_value(dataset: Dataset, frame: int, sequence_keyword: str, keyword: str) -> object:
    """An attribute from a frame's functional group, else from the top level; None if absent."""
    item = _functional_item(dataset, frame, sequence_keyword)
    if item is not None and item.get(keyword) not in (None, ""):
        return item.get(keyword)
    value = dataset.get(keyword)
    return None if value == "" else value


def frame_count(dataset: Dataset) -> int:
    return max(1, int(_number(dataset.get("NumberOfFrames")) or 1))


def frame_geometry(dataset: Dataset, frame: int, source: str) -> SliceGeometry:
    """Where one frame (0 for a classic file) lies in patient space; InputError if it cannot be told."""
    position = _frame_value(dataset, frame, "PlanePositionSequence", "ImagePositionPatient")
    orientation = _frame_value(dataset, frame, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = _frame_value(dataset, frame, "PixelMeasuresSequence", "PixelSpacing")
    thickness = _number(_frame_value(dataset, frame, "PixelMeasuresSequence", "SliceThickness"))
    missing = [
        name
        for name, value, length in (
            ("ImagePositionPatient", position, 3),
            ("ImageOrientationPatient", orientation, 6),
            ("PixelSpacing", spacing, 2),
        )
        if value is None or len(value) != length  # type: ignore[arg-type]
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
    slope = _number(_frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _number(_frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleIntercept"))
    return (slope if slope else 1.0, intercept or 0.0)


def _sequence(dataset: Dataset) -> str:
    """ScanningSequence as 'SE', 'GR', 'SE/IR'...; Enhanced MR's EchoPulseSequence mapped onto it."""
    scanning = _values(dataset, "ScanningSequence")
    if scanning:
        return "/".join(scanning)
    return ECHO_PULSE_SEQUENCES.get(_text(dataset, "EchoPulseSequence").upper(), "")


def _echo_train_length(dataset: Dataset) -> int | None:
    value = _number(_frame_value(dataset, 0, "MRTimingAndRelatedParametersSequence", "EchoTrainLength"))
    if value is None:
        value = _number(dataset.get("RFEchoTrainLength"))
    return None if value is None else int(value)


def series_info_of(dataset: Dataset, source: str) -> SeriesInfo:
    """What a series is, from one of its headers; patient and study only as short hashes."""
    number = _number(dataset.get("SeriesNumber"))
    echo_time = _number(dataset.get("EchoTime"))
    if echo_time is None:
        echo_time = _number(_frame_value(dataset, 0, "MREchoSequence", "EffectiveEchoTime"))
    return SeriesInfo(
        uid=_text(dataset, "SeriesInstanceUID"),
        patient=short_hash(_text(dataset, "PatientID")),
        study=short_hash(_text(dataset, "StudyInstanceUID")),
        number=None if number is None else int(number),
        description=_text(dataset, "SeriesDescription") or _text(dataset, "ProtocolName"),
        modality=_text(dataset, "Modality"),
        sequence=_sequence(dataset),
        echo_time_ms=echo_time,
        repetition_time_ms=_number(
            _frame_value(dataset, 0, "MRTimingAndRelatedParametersSequence", "RepetitionTime")
        ),
        echo_train_length=_echo_train_length(dataset),
        source=source,
    )


def _transfer_syntax(dataset: Dataset) -> str | None:
    return getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)


def _is_lossy(dataset: Dataset) -> bool:
    return _text(dataset, "LossyImageCompression") == "01" or _transfer_syntax(dataset) in LOSSY_SYNTAXES


def _header_of(dataset: Dataset, source: DicomSource, input_path: str) -> _Header:
    frames = frame_count(dataset)
    try:
        geometries = tuple(frame_geometry(dataset, frame, str(source)) for frame in range(frames))
        problem = ""
    except InputError as error:
        geometries, problem = (), str(error)
    number = _number(dataset.get("InstanceNumber"))
    return _Header(
        source=source,
        sop_uid=_text(dataset, "SOPInstanceUID"),
        instance_number=None if number is None else int(number),
        lossy=_is_lossy(dataset),
        info=series_info_of(dataset, input_path),
        geometries=geometries,
        geometry_problem=problem,
        frames=frames,
        image_type=tuple(v.upper() for v in _values(dataset, "ImageType")),
        scan_options=tuple(v.upper() for v in _values(dataset, "ScanOptions")),
        acquisition_contrast=_text(dataset, "AcquisitionContrast").upper(),
    )


def _is_image(dataset: Dataset) -> bool:
    return "Rows" in dataset and "Columns" in dataset and bool(_text(dataset, "SeriesInstanceUID"))


def _image_class_name(dataset: Dataset) -> str:
    """The SOP class name when the file says it holds an image ('MR Image Storage'), else ''."""
    meta = getattr(dataset, "file_meta", Dataset())
    sop_class = _text(dataset, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
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
    with _SourceReader() as reader:
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

    Unreadable files are logged and left out; InputError when no series can be read at all.
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
    return summaries


def _decoded_frames(dataset: Dataset, source: DicomSource, warned: list[str]) -> np.ndarray:
    """Stored pixel values as [frame, row, column]; InputError when they cannot be had."""
    if "PixelData" not in dataset:
        ending = f" ({warned[-1]})" if warned else ""
        raise InputError(
            f"{source}: has no complete pixel data{ending}; the file is truncated or not an image, "
            "copy or export it again"
        )
    samples = int(_number(dataset.get("SamplesPerPixel")) or 1)
    if samples != 1:
        raise InputError(f"{source}: is a colour image ({samples} samples per pixel); choose an MR series")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # decoders raise many types for damaged or unsupported data
        name = getattr(_transfer_syntax(dataset), "name", "unknown transfer syntax")
        raise InputError(
            f"{source}: its pixel data ({name}) cannot be decoded ({type(error).__name__}: {error}); "
            "the file is damaged or truncated, or needs a decoder (pip install pylibjpeg "
            "pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle)"
        ) from error
    return pixels.reshape(frame_count(dataset), int(dataset.Rows), int(dataset.Columns))


def _read_image(reader: _SourceReader, source: DicomSource) -> tuple[Dataset, np.ndarray]:
    """The dataset and its frames as float32 real values (rescale applied)."""
    dataset, warned = reader.dataset(source, headers_only=False)
    stored = _decoded_frames(dataset, source, warned)
    frames = np.empty(stored.shape, dtype=np.float32)
    for frame in range(stored.shape[0]):
        slope, intercept = frame_rescale(dataset, frame)
        frames[frame] = stored[frame].astype(np.float64) * slope + intercept
    return dataset, frames


def read_frames(source: DicomSource | Path | str) -> np.ndarray:
    """One file's pixels as float32 [frame, row, column], rescale slope/intercept applied."""
    with _SourceReader() as reader:
        return _read_image(reader, _as_source(source))[1]


def _as_source(item: DicomSource | Path | str) -> DicomSource:
    return item if isinstance(item, DicomSource) else DicomSource(Path(item))


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
    items = [_as_source(s) for s in sources]
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
    with _SourceReader() as reader:
        for index, source in enumerate(summary.files):
            _report(progress, index / len(summary.files), f"reading DICOM images, {index + 1} of {len(summary.files)}")
            dataset, frames = _read_image(reader, source)
            for frame, pixels in enumerate(frames):
                geometry = frame_geometry(dataset, frame, str(source))
                slices.append(ImageSlice(pixels, geometry, source_index=len(slices)))
    _report(progress, 1.0, "reading DICOM images, done")
    slices.sort(key=_slice_order)
    _check_no_duplicates(slices, summary)
    log.info(
        "read series %s '%s': %d slices", summary.info.number, summary.info.description, len(slices)
    )
    return SliceSeries(slices, summary.info)
