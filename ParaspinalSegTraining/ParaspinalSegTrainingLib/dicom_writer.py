"""Writing synthetic MR DICOM series with pydicom, for the tests and the product's sample study.

One classic MR Image Storage file per slice, or one Enhanced MR multi-frame file (functional
groups: shared where every frame agrees, per frame otherwise), uncompressed or compressed (RLE
Lossless with pydicom's own encoder, JPEG 2000 Lossless with pylibjpeg-openjpeg). Each slice
keeps its own geometry. UIDs derive from the seed, patient and series, so the same call writes
the same files. Every file is written under a temporary name and then renamed into place.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.slices import ImageSlice, SeriesInfo, SliceSeries

# Transfer syntaxes the writer can produce, with the pydicom encoding plugin for each.
ENCODING_PLUGINS = {ExplicitVRLittleEndian: "", RLELossless: "pydicom", JPEG2000Lossless: "pylibjpeg"}
FILE_NAMINGS = ("instance", "uid", "random")
ECHO_PULSE_SEQUENCES = {"SE": "SPIN", "GR": "GRADIENT", "SE/GR": "BOTH"}
STORED_MAX = 65535
SLOPE_DIGITS = 6
JPEG2000_MIN_SIZE = 32  # pylibjpeg-openjpeg encodes 6 resolution levels: 2**5 pixels at least
UID_SALT = "ParaspinalSeg synthetic"


@dataclass(frozen=True)
class SyntheticPatient:
    """The made-up patient a synthetic study belongs to."""

    id: str = "SYNTHETIC-0001"
    name: str = "Synthetic^Phantom"


@dataclass(frozen=True)
class _Uids:
    study: str
    series: str
    frame_of_reference: str

    def instance(self, key: str) -> str:
        return generate_uid(entropy_srcs=[UID_SALT, self.series, key])


def series_from_arrays(
    pixels: Sequence[np.ndarray], geometries: Sequence[SliceGeometry], info: SeriesInfo
) -> SliceSeries:
    """A SliceSeries from 2D arrays and their geometries (source order as given)."""
    if len(pixels) != len(geometries):
        raise ValueError(f"{len(pixels)} arrays but {len(geometries)} geometries; give one geometry per array")
    slices = [
        ImageSlice(np.asarray(p, dtype=np.float32), g, source_index=k)
        for k, (p, g) in enumerate(zip(pixels, geometries))
    ]
    return SliceSeries(slices, info)


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _ds_list(values: Sequence[float]) -> list[str]:
    return [_ds(v) for v in values]


def automatic_rescale(series: SliceSeries) -> tuple[float, float]:
    """(slope, intercept) storing the pixels as uint16.

    (1, 0) for whole numbers within 0..65535; otherwise the range from min(0, lowest) to the
    highest value spread over all 65536 levels, the slope rounded up to 6 significant digits.
    """
    low = min(float(s.pixels.min()) for s in series.slices)
    high = max(float(s.pixels.max()) for s in series.slices)
    whole = all(np.array_equal(s.pixels, np.round(s.pixels)) for s in series.slices)
    if whole and low >= 0 and high <= STORED_MAX:
        return 1.0, 0.0
    intercept = float(math.floor(min(low, 0.0)))
    if high <= intercept:
        return 1.0, intercept
    raw = (high - intercept) / STORED_MAX
    scale = 10.0 ** (SLOPE_DIGITS - 1 - math.floor(math.log10(raw)))
    return math.ceil(raw * scale) / scale, intercept


def stored_values(pixels: np.ndarray, rescale: tuple[float, float]) -> np.ndarray:
    """uint16 stored values whose rescaled value is nearest to the real pixel values."""
    slope, intercept = rescale
    stored = np.rint((np.asarray(pixels, dtype=np.float64) - intercept) / slope)
    if stored.min() < 0 or stored.max() > STORED_MAX:
        raise ValueError(
            f"pixel values {pixels.min():g}..{pixels.max():g} do not fit uint16 with slope {slope:g} and "
            f"intercept {intercept:g}; choose another rescale or leave it automatic"
        )
    return stored.astype(np.uint16)


def _uids(series: SliceSeries, seed: int, patient: SyntheticPatient, study_uid: str | None) -> _Uids:
    study = study_uid or generate_uid(entropy_srcs=[UID_SALT, "study", patient.id])
    info = series.info
    series_uid = info.uid or generate_uid(
        entropy_srcs=[UID_SALT, study, str(seed), str(info.number), info.description]
    )
    for uid in (study, series_uid):
        if not UID(uid).is_valid:
            raise ValueError(f"'{uid}' is not a valid DICOM UID; use digits and dots, at most 64 characters")
    return _Uids(study, series_uid, generate_uid(entropy_srcs=[UID_SALT, study, "frame of reference"]))


def _common_dataset(
    series: SliceSeries, uids: _Uids, patient: SyntheticPatient, sop_class: str, shape: tuple[int, int]
) -> Dataset:
    """The patient, study, series, equipment and image pixel attributes every file shares."""
    info = series.info
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = info.modality or "MR"
    ds.Manufacturer = "ParaspinalSeg synthetic"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = info.description
    ds.PatientName = patient.name
    ds.PatientID = patient.id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "LSPINE"
    ds.MRAcquisitionType = "2D"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.StudyID = "1"
    ds.SeriesNumber = info.number if info.number is not None else 1
    ds.FrameOfReferenceUID = uids.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds


def _classic_dataset(
    base: Dataset, item: ImageSlice, instance: int, info: SeriesInfo, rescale: tuple[float, float],
    sequence_variant: str,
) -> Dataset:
    """One MR Image Storage file's dataset (pixels not yet attached)."""
    geometry = item.geometry
    ds = Dataset()
    ds.update(base)
    ds.InstanceNumber = instance
    ds.ScanningSequence = (info.sequence or "SE").split("/")
    ds.SequenceVariant = sequence_variant.split("\\")
    ds.ScanOptions = ""
    if info.echo_time_ms is not None:
        ds.EchoTime = _ds(info.echo_time_ms)
    if info.repetition_time_ms is not None:
        ds.RepetitionTime = _ds(info.repetition_time_ms)
    if info.echo_train_length is not None:
        ds.EchoTrainLength = info.echo_train_length
    ds.SliceThickness = _ds(geometry.thickness)
    ds.ImagePositionPatient = _ds_list(geometry.origin)
    ds.ImageOrientationPatient = _ds_list(geometry.row_direction + geometry.column_direction)
    ds.SliceLocation = _ds(float(np.asarray(geometry.origin) @ geometry.normal))
    ds.PixelSpacing = _ds_list(geometry.spacing)
    ds.RescaleIntercept = _ds(rescale[1])
    ds.RescaleSlope = _ds(rescale[0])
    ds.RescaleType = "US"
    return ds


def _item(**attributes: object) -> DicomSequence:
    """A one-item sequence holding the given attributes."""
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return DicomSequence([item])


def _frame_macros(item: ImageSlice, k: int, info: SeriesInfo) -> dict[str, DicomSequence]:
    """The functional group macros that describe one frame."""
    geometry = item.geometry
    macros = {
        "FrameContentSequence": _item(StackID="1", InStackPositionNumber=k + 1),
        "PlanePositionSequence": _item(ImagePositionPatient=_ds_list(geometry.origin)),
        "PlaneOrientationSequence": _item(
            ImageOrientationPatient=_ds_list(geometry.row_direction + geometry.column_direction)
        ),
        "PixelMeasuresSequence": _item(
            PixelSpacing=_ds_list(geometry.spacing), SliceThickness=_ds(geometry.thickness)
        ),
    }
    if info.echo_time_ms is not None:
        macros["MREchoSequence"] = _item(EffectiveEchoTime=float(info.echo_time_ms))
    return macros


def _shared_macros(info: SeriesInfo, rescale: tuple[float, float]) -> dict[str, DicomSequence]:
    """The functional group macros every frame shares by construction."""
    timing = {}
    if info.repetition_time_ms is not None:
        timing["RepetitionTime"] = float(info.repetition_time_ms)
    if info.echo_train_length is not None:
        timing["EchoTrainLength"] = info.echo_train_length
    return {
        "PixelValueTransformationSequence": _item(
            RescaleIntercept=_ds(rescale[1]), RescaleSlope=_ds(rescale[0]), RescaleType="US"
        ),
        "MRTimingAndRelatedParametersSequence": _item(**timing),
    }


def _enhanced_dataset(
    base: Dataset, series: SliceSeries, order: list[int], rescale: tuple[float, float]
) -> Dataset:
    """One Enhanced MR Image Storage dataset; a macro equal on every frame goes in the shared group."""
    info = series.info
    ds = Dataset()
    ds.update(base)
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = "20000101120000"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "UNKNOWN"
    ds.ContentQualification = "PRODUCT"
    ds.EchoPulseSequence = ECHO_PULSE_SEQUENCES.get(info.sequence or "SE", "SPIN")
    ds.NumberOfFrames = len(order)
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    frames = [_frame_macros(series.slices[i], k, info) for k, i in enumerate(order)]
    shared = Dataset()
    for keyword, sequence in _shared_macros(info, rescale).items():
        setattr(shared, keyword, sequence)
    per_frame = [Dataset() for _ in frames]
    for keyword in frames[0]:
        values = [frame[keyword] for frame in frames]
        if keyword != "FrameContentSequence" and all(v == values[0] for v in values):
            setattr(shared, keyword, values[0])
        else:
            for target, value in zip(per_frame, values):
                setattr(target, keyword, value)
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return ds


def _attach_pixels(ds: Dataset, stored: np.ndarray, transfer_syntax: str) -> None:
    """Pixel data, uncompressed or encoded, and the file meta information."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if transfer_syntax == ExplicitVRLittleEndian:
        ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
        return
    ds.compress(
        transfer_syntax, stored, encoding_plugin=ENCODING_PLUGINS[transfer_syntax], generate_instance_uid=False
    )


def _save_atomically(ds: Dataset, path: Path) -> None:
    """Write under a hidden temporary name, then rename; the file gets the usual umask permissions."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    try:
        ds.save_as(temporary, enforce_file_format=True)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _file_names(count: int, uids: list[str], naming: str, seed: int) -> list[str]:
    if naming == "instance":
        return [f"IM{k + 1:04d}" for k in range(count)]
    if naming == "uid":
        return list(uids)
    rng = np.random.default_rng(seed)
    names: list[str] = []
    while len(names) < count:
        name = f"{int(rng.integers(1 << 48)):012x}"
        if name not in names:
            names.append(name)
    return names


def _check_options(series: SliceSeries, transfer_syntax: str, file_names: str, enhanced: bool) -> None:
    if transfer_syntax not in ENCODING_PLUGINS:
        names = ", ".join(f"{UID(uid).name} ({uid})" for uid in ENCODING_PLUGINS)
        raise ValueError(f"cannot write transfer syntax {transfer_syntax}; choose one of {names}")
    if file_names not in FILE_NAMINGS:
        raise ValueError(f"file_names '{file_names}' is not one of {', '.join(FILE_NAMINGS)}")
    if not series.slices:
        raise ValueError("the series has no slices; give at least one")
    for item in series.slices:
        if item.pixels.shape != item.geometry.shape:
            raise ValueError(f"pixels of shape {item.pixels.shape} on a geometry of shape {item.geometry.shape}")
    smallest = min(min(s.pixels.shape) for s in series.slices)
    if transfer_syntax == JPEG2000Lossless and smallest < JPEG2000_MIN_SIZE:
        raise ValueError(
            f"JPEG 2000 encoding needs images of at least {JPEG2000_MIN_SIZE} rows and columns, not {smallest}; "
            "use RLE Lossless for smaller images"
        )
    if enhanced and len({s.pixels.shape for s in series.slices}) > 1:
        raise ValueError("an Enhanced MR file needs every frame of one shape; write classic files instead")


def write_dicom_series(
    series: SliceSeries,
    folder: Path,
    *,
    seed: int = 0,
    patient: SyntheticPatient = SyntheticPatient(),
    study_uid: str | None = None,
    sequence_variant: str = "SK\\SP",
    rescale: tuple[float, float] | None = None,
    enhanced: bool = False,
    transfer_syntax: str = ExplicitVRLittleEndian,
    file_names: str = "instance",
) -> list[Path]:
    """Write a series as synthetic MR DICOM files in `folder` (created); returns the file paths.

    Parameters
    ----------
    series: slices with their geometry; info gives SeriesInstanceUID (made up when empty), number,
        description, modality, ScanningSequence ('SE', 'GR', 'SE/IR'), TE, TR and echo train length.
    seed: makes the UIDs and random file names; the same arguments write the same files.
    patient: the made-up patient; the study UID derives from its ID unless `study_uid` is given.
    sequence_variant: SequenceVariant of classic files (Enhanced MR files describe the sequence
        by EchoPulseSequence instead).
    rescale: (slope, intercept) from stored uint16 to real values; automatic when None.
    enhanced: one Enhanced MR multi-frame file instead of one MR Image file per slice.
    transfer_syntax: Explicit VR Little Endian, RLE Lossless or JPEG 2000 Lossless.
    file_names: 'instance' (IM0001...), 'uid' (SOPInstanceUID) or 'random' (hex, no extension).
    """
    _check_options(series, transfer_syntax, file_names, enhanced)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uids = _uids(series, seed, patient, study_uid)
    rescale = rescale or automatic_rescale(series)
    order = sorted(range(len(series)), key=lambda i: series.slices[i].source_index)
    if enhanced:
        base = _common_dataset(series, uids, patient, EnhancedMRImageStorage, series.slices[order[0]].pixels.shape)
        datasets = [_enhanced_dataset(base, series, order, rescale)]
        datasets[0].SOPInstanceUID = uids.instance("enhanced")
        pixels = [np.stack([stored_values(series.slices[i].pixels, rescale) for i in order])]
    else:
        datasets, pixels = [], []
        for k, i in enumerate(order):
            item = series.slices[i]
            base = _common_dataset(series, uids, patient, MRImageStorage, item.pixels.shape)
            ds = _classic_dataset(base, item, k + 1, series.info, rescale, sequence_variant)
            ds.SOPInstanceUID = uids.instance(f"slice {k + 1}")
            datasets.append(ds)
            pixels.append(stored_values(item.pixels, rescale))
    names = _file_names(len(datasets), [ds.SOPInstanceUID for ds in datasets], file_names, seed)
    paths = []
    for ds, stored, name in zip(datasets, pixels, names):
        _attach_pixels(ds, stored, transfer_syntax)
        _save_atomically(ds, folder / name)
        paths.append(folder / name)
    return paths
