"""DICOM SEG of a result, made by highdicom: one Segmentation per grid block, on the source's own frames.

Each grid block of a series (volumes.grid_blocks: slices sharing one pixel grid; a series of blocks
angled to the discs has several) becomes one SEG whose frames lie pixel for pixel on the block's
source images, each frame referencing its source instance. The four segments are the label scheme's
values (segment number = label value), in SNOMED CT terms: erector spinae muscle with its laterality
for the muscle tissue, adipose tissue with the erector spinae and its laterality as anatomic region
for the fat. The patient and study modules are copied from the source by highdicom.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from .. import __version__
from ..read.dicom_files import DicomSource, SourceReader
from .dicomcodes import (
    ADIPOSE_TISSUE,
    ANATOMICAL_STRUCTURE,
    ARTIFICIAL_INTELLIGENCE,
    ERECTOR_SPINAE,
    IMAGE_PROCESSING,
    LATERALITY,
    TISSUE,
)
from ..errors import InputError
from ..labels import SEGMENTS, SIDES
from ..pipeline import Provenance
from ..slices import DicomOrigin, SliceSeries
from ..read.volumes import grid_blocks, is_volume_file

log = logging.getLogger(__name__)

SOFTWARE = "ParaspinalSeg"
REQUIRED_ATTRIBUTES = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Modality",
)
DEVICE_SERIAL_NUMBER = "1"  # Type 1 in the SEG's equipment module; a program has no serial number
CONTENT_LABEL = "PARASPINAL"


@dataclass(frozen=True)
class SourceImages:
    """The headers of the files a series was read from (pixels not read), by file."""

    datasets: dict[DicomSource, Dataset]

    def of(self, origin: DicomOrigin) -> Dataset:
        return self.datasets[origin.file]


@dataclass(frozen=True)
class SegBlock:
    """The slices (series indices) of one SEG in the order of its source frames, and its source images."""

    members: tuple[int, ...]
    sources: tuple[Dataset, ...]


@dataclass(frozen=True)
class SegmentationObject:
    """One SEG and the slices (series indices) whose source images it covers."""

    dataset: Dataset
    members: tuple[int, ...]


def _not_dicom(where: object) -> InputError:
    return InputError(
        f"{where}: is not a DICOM series (a NIfTI or NRRD volume, or a volume without its DICOM files); DICOM "
        "SEG and SR must reference the source DICOM images: give the study's DICOM folder, or leave out --dicom"
    )


def _zipped(path: Path) -> InputError:
    return InputError(
        f"{path}: the study is read from a zip archive; the DICOM export references the source files one by "
        "one and needs them as files: unpack the zip and give its folder, or leave out --dicom"
    )


def check_dicom_input(path: Path) -> None:
    """Before reading: InputError for an input that cannot be exported (a volume file, a zip)."""
    path = Path(path)
    if is_volume_file(path):
        raise _not_dicom(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        raise _zipped(path)


def dicom_origins(series: SliceSeries) -> list[DicomOrigin]:
    """Each slice's DICOM file and frame; InputError when the series was not read from DICOM files."""
    if any(s.origin is None for s in series.slices):
        raise _not_dicom(series.info.source or series.info.description)
    zipped = [s.origin.file for s in series.slices if s.origin.file.member]
    if zipped:
        raise _zipped(zipped[0].path)
    return [s.origin for s in series.slices]


def _check_attributes(dataset: Dataset, source: DicomSource) -> None:
    missing = [keyword for keyword in REQUIRED_ATTRIBUTES if not str(dataset.get(keyword, "") or "").strip()]
    if missing:
        raise InputError(
            f"{source}: has no {', '.join(missing)}, which a DICOM SEG and SR must take from their source "
            "images; export the series again from the scanner or PACS with its complete header"
        )


def read_source_images(series: SliceSeries) -> SourceImages:
    """The source headers of every slice, checked for what the export copies and references."""
    datasets: dict[DicomSource, Dataset] = {}
    with SourceReader() as reader:
        for origin in dicom_origins(series):
            if origin.file not in datasets:
                dataset, _ = reader.dataset(origin.file, headers_only=True)
                _check_attributes(dataset, origin.file)
                datasets[origin.file] = dataset
    return SourceImages(datasets)


def seg_blocks(series: SliceSeries, images: SourceImages) -> list[SegBlock]:
    """One SegBlock per grid block: single-frame files in the block's order, or the one multi-frame
    file whose frames make up the block; InputError for a multi-frame file spread over several blocks."""
    blocks = []
    for block in grid_blocks(series):
        origins = [series.slices[i].origin for i in block.members]
        if all(o.frames == 1 for o in origins):
            blocks.append(SegBlock(block.members, tuple(images.of(o) for o in origins)))
            continue
        files = {o.file for o in origins}
        if len(files) == 1 and sorted(o.frame for o in origins) == list(range(origins[0].frames)):
            members = tuple(sorted(block.members, key=lambda i: series.slices[i].origin.frame))
            blocks.append(SegBlock(members, (images.of(origins[0]),)))
            continue
        raise InputError(
            f"{origins[0].file}: a multi-frame file whose frames lie on more than one pixel grid (angled "
            "blocks) or share a grid with other files; a DICOM SEG covers one source grid: export the series "
            "as single-frame files, or one multi-frame file per block"
        )
    return blocks


def algorithm_identification(provenance: Provenance) -> hd.AlgorithmIdentificationSequence:
    """Name, version and family of the algorithm, with the model id and method as parameters."""
    parameters = {"method": provenance.method}
    if provenance.model:
        parameters["model"] = provenance.model
    return hd.AlgorithmIdentificationSequence(
        name=SOFTWARE,
        family=ARTIFICIAL_INTELLIGENCE if provenance.model else IMAGE_PROCESSING,
        version=__version__,
        parameters=parameters,
    )


def segment_descriptions(provenance: Provenance, corrected: Collection[int] = ()) -> list[hd.seg.SegmentDescription]:
    """The four segments (number = scheme label); a segment made by a model alone is AUTOMATIC, one
    corrected by a reader (its label in `corrected`) or from a given segmentation SEMIAUTOMATIC."""
    algorithm = algorithm_identification(provenance)
    descriptions = []
    for style in SEGMENTS:
        side = next(s for s in SIDES if style.label in s.labels)
        fat = style.label == side.fat
        automatic = provenance.model is not None and style.label not in corrected
        description = hd.seg.SegmentDescription(
            segment_number=style.label,
            segment_label=style.name,
            segmented_property_category=TISSUE if fat else ANATOMICAL_STRUCTURE,
            segmented_property_type=ADIPOSE_TISSUE if fat else ERECTOR_SPINAE,
            algorithm_type="AUTOMATIC" if automatic else "SEMIAUTOMATIC",
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=style.name,
            anatomic_regions=[ERECTOR_SPINAE] if fat else None,
            display_color=hd.color.CIELabColor.from_rgb(*style.color),
        )
        laterality = hd.sr.CodedConcept.from_code(LATERALITY[side.name])
        if fat:  # adipose tissue within the erector spinae of that side
            description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [laterality]
        else:
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [laterality]
        descriptions.append(description)
    return descriptions


def build_segmentations(
    series: SliceSeries,
    labels: list[np.ndarray],
    images: SourceImages,
    provenance: Provenance,
    *,
    corrected: Collection[int] = (),
    series_number: int,
) -> list[SegmentationObject]:
    """One SEG per grid block of `series`, with the scheme `labels` (series order), in one new series."""
    series_uid = generate_uid()
    description = "ParaspinalSeg segmentation" + (", corrected" if corrected else "")
    segments = segment_descriptions(provenance, corrected)
    made = []
    for number, block in enumerate(seg_blocks(series, images), start=1):
        seg = hd.seg.Segmentation(
            source_images=list(block.sources),
            pixel_array=np.stack([labels[i] for i in block.members]).astype(np.uint8),
            segmentation_type="BINARY",
            segment_descriptions=segments,
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=number,
            manufacturer=SOFTWARE,
            manufacturer_model_name=provenance.model or SOFTWARE,
            software_versions=__version__,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            content_label=CONTENT_LABEL,
            content_description="Lumbar paraspinal compartments: muscle tissue and fat per side",
            series_description=description,
            omit_empty_frames=False,
        )
        made.append(SegmentationObject(seg, block.members))
    log.info("DICOM SEG: %d block(s), %d slices", len(made), len(series))
    return made
