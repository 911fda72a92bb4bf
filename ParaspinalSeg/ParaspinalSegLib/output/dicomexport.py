"""Writing a result as DICOM: the SEG of each grid block (dicomseg) and the SR report (dicomsr).

`check_dicom_export` reads and checks the source headers before anything is computed, so that a
series that cannot be exported fails at once; `write_dicom_export` writes `seg.dcm` (one grid block)
or `seg_blockNN.dcm` (several) and `sr.dcm`, each under a temporary name renamed into place, with new
UIDs every time. Nothing about the patient is logged.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from .dicomseg import SourceImages, build_segmentations, check_dicom_input, read_source_images, seg_blocks
from .dicomsr import build_report
from .outputs import move_into_place
from ..pipeline import MeasurementResult
from ..slices import SliceSeries

log = logging.getLogger(__name__)

__all__ = ["DicomExport", "check_dicom_export", "check_dicom_input", "write_dicom_export"]

SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
REPORT_NAME = "sr.dcm"
FOLDER = "dicom"  # the export's sub-folder of a result folder


@dataclass(frozen=True)
class DicomExport:
    """The files written: one SEG per grid block, and the SR."""

    segmentations: tuple[Path, ...]
    report: Path


def seg_file_names(blocks: int) -> list[str]:
    """seg.dcm for one grid block; seg_blockNN.dcm for each of several."""
    return ["seg.dcm"] if blocks == 1 else [f"seg_block{i + 1:02d}.dcm" for i in range(blocks)]


def check_dicom_export(series: SliceSeries) -> SourceImages:
    """The source headers, when the series can be exported; InputError naming the file otherwise."""
    images = read_source_images(series)
    seg_blocks(series, images)
    return images


def _save(dataset: Dataset, path: Path) -> None:
    """Write a DICOM file under a temporary name, then rename it into place (never replacing a file)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with open(handle, "wb") as stream:
            dataset.save_as(stream, enforce_file_format=True)
        move_into_place(temporary, path, replace=False)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_dicom_export(
    folder: Path,
    result: MeasurementResult,
    series: SliceSeries,
    corrected: Collection[int] = (),
) -> DicomExport:
    """SEG and SR of `result` into `folder` (created); `corrected`: labels a reader corrected."""
    folder = Path(folder)
    images = check_dicom_export(series)
    labels = [np.asarray(plane, dtype=np.uint8) for plane in result.labels]
    segmentations = build_segmentations(series, labels, images, result.provenance, corrected=corrected,
                                        series_number=SEG_SERIES_NUMBER)
    report = build_report(result, series, images, segmentations, corrected=bool(corrected),
                          series_number=SR_SERIES_NUMBER)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in seg_file_names(len(segmentations))]
    for seg, path in zip(segmentations, paths):
        _save(seg.dataset, path)
    _save(report, folder / REPORT_NAME)
    log.info("DICOM export: %d SEG file(s) and the SR written to %s", len(paths), folder)
    return DicomExport(tuple(paths), folder / REPORT_NAME)
