"""Writing a measurement result: slices.csv, patient.json, the .seg.nrrd segmentation, a QC picture."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

from ..measure.measurement import SIDE_NAMES
from .outputs import output_folder, write_text_atomic
from ..pipeline import MeasurementResult
from ..measure.quality import Thresholds
from ..slices import SliceSeries
from ..read.volumes import block_image, grid_blocks

SLICE_COLUMNS = ["slice_index", "source_index", "position_mm", "pixel_area_mm2"] + [
    f"{side}_{quantity}"
    for side in SIDE_NAMES
    for quantity in ("total_csa_mm2", "muscle_csa_mm2", "fat_csa_mm2", "fat_fraction_pct")
]


def slices_csv_text(result: MeasurementResult) -> str:
    """One row per slice; empty cells where a side has no compartment on that slice."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SLICE_COLUMNS)
    for m in result.slices:
        row = [m.slice_index, m.source_index, f"{m.position_mm:.3f}", f"{m.pixel_area_mm2:.6f}"]
        for side in SIDE_NAMES:
            a = m.side(side)
            row += [f"{a.total_csa_mm2:.3f}", f"{a.muscle_csa_mm2:.3f}", f"{a.fat_csa_mm2:.3f}"]
            row.append("" if math.isnan(a.fat_fraction_pct) else f"{a.fat_fraction_pct:.4f}")
        writer.writerow(row)
    return buffer.getvalue()


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def patient_document(result: MeasurementResult, series: SliceSeries, segmentation_files: list[str]) -> dict:
    """patient.json: grade, means, method, versions and an input description without identifiers
    (no patient name, ID or UID, not even hashed: the output folder is the user's link to the patient)."""
    s = result.summary
    info = series.info
    return {
        "grade": s.grade,
        "grading": "simplified Goutallier: I <= 10 %, II 10-50 % (50 % included), III > 50 %",
        "mean_fat_fraction_pct": {
            "overall": _finite_or_none(s.mean_fat_fraction_pct),
            "right": _finite_or_none(s.mean_fat_fraction_right_pct),
            "left": _finite_or_none(s.mean_fat_fraction_left_pct),
        },
        "slices_with_compartment": {"overall": s.slices, "right": s.slices_right, "left": s.slices_left},
        "input": {
            "series_number": info.number,
            "series_description": info.description,
            "sequence": info.sequence,
            "slices": len(series),
        },
        "segmentation_files": [Path(f).name for f in segmentation_files],
        "outputs": segmentation_file_names(series),
        "provenance": asdict(result.provenance),
        "warnings": list(result.warnings),
        "model_note": result.model_note or None,
        "quality": quality_document(result),
    }


def quality_document(result: MeasurementResult) -> dict:
    """The quality checks' thresholds, their per-slice flags, the model's confidence per slice and the
    slices segmented again mirrored because the model was unsure of them (0-based, as the confidences;
    only with a card's `mirror_below_confidence`)."""
    return {
        "thresholds": asdict(Thresholds()),
        "slice_flags": [flag.as_dict() for flag in result.flags],
        "slice_confidence": [_finite_or_none(value) for value in result.confidence],
        "slices_mirrored_unsure": list(result.mirrored),
    }


def segmentation_file_names(series: SliceSeries) -> list[str]:
    """segmentation.seg.nrrd for one grid block; one numbered file per block otherwise."""
    blocks = grid_blocks(series)
    if len(blocks) == 1:
        return ["segmentation.seg.nrrd"]
    return [f"segmentation_block{i + 1:02d}.seg.nrrd" for i in range(len(blocks))]


def write_segmentations(folder: Path, result: MeasurementResult, series: SliceSeries) -> list[Path]:
    """The scheme labels as .seg.nrrd files on the image's own grid (one per grid block)."""
    import SimpleITK as sitk

    from .segnrrd import write_seg_nrrd

    provenance = {f"ParaspinalSeg_{k}": str(v) for k, v in asdict(result.provenance).items()}
    written = []
    for block, name in zip(grid_blocks(series), segmentation_file_names(series)):
        image = block_image(block, [result.labels[i] for i in block.members], sitk.sitkUInt8)
        write_seg_nrrd(folder / name, image, extra_metadata=provenance)
        written.append(folder / name)
    return written


def write_result(
    out: Path,
    result: MeasurementResult,
    series: SliceSeries,
    segmentation_files: list[str] = (),
    overwrite: bool = False,
    dicom: bool = False,
) -> Path:
    """Write every output into `out` at once (temporary folder, then rename); with `dicom`, also the
    DICOM SEG and SR in `out/dicom/` (dicomexport)."""
    from .qc import write_qc_montage

    with output_folder(out, overwrite) as staging:
        write_text_atomic(staging / "slices.csv", slices_csv_text(result))
        document = patient_document(result, series, list(segmentation_files))
        if dicom:
            from .dicomexport import FOLDER, write_dicom_export

            written = write_dicom_export(staging / FOLDER, result, series)
            document["outputs"] += [f"{FOLDER}/{p.name}" for p in (*written.segmentations, written.report)]
        write_text_atomic(staging / "patient.json", json.dumps(document, indent=2) + "\n")
        write_segmentations(staging, result, series)
        write_qc_montage(staging / "qc.png", series, result)
    return Path(out)
