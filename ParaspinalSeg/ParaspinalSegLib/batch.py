"""Segment & grade one study, or a folder of studies with one summary CSV (failures reported, skipped)."""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import OperationCancelled, OutputExistsError, ParaspinalError
from .export import write_result
from .outputs import write_text_atomic
from .pipeline import FAT_FROM_MODEL, MeasurementResult, segment_series
from .reading import read_study
from .slices import SliceSeries
from .progress import ProgressCallback

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["study", "status", "grade", "mean_fat_fraction_pct", "mean_fat_fraction_right_pct",
                   "mean_fat_fraction_left_pct", "slices", "warnings", "model", "fat_method", "output", "error"]


@dataclass
class StudyOutcome:
    study: Path
    output: Path | None
    result: MeasurementResult | None
    error: str = ""
    series: SliceSeries | None = None


def segment_study(
    study: Path,
    out: Path,
    model,
    *,
    fat_method: str = FAT_FROM_MODEL,
    device: str = "cpu",
    batch_size: int = 8,
    series_uid: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> StudyOutcome:
    """Read, segment, measure and write one study's outputs into `out`."""
    loaded = read_study(study, series_uid=series_uid, progress=progress)
    log.info("%s: %s", study.name, loaded.reason)
    result = segment_series(loaded.series, model, fat_method=fat_method, device=device, batch_size=batch_size,
                            progress=progress)
    write_result(out, result, loaded.series, overwrite=overwrite)
    return StudyOutcome(study, out, result, series=loaded.series)


def studies_in(folder: Path) -> list[Path]:
    """Each entry of a folder of studies: a sub-folder, a zip, or a NIfTI/NRRD volume."""
    from .volumes import is_volume_file

    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() == ".zip" or is_volume_file(p)))


def _percent(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def summary_csv(outcomes: list[StudyOutcome], model_id: str, fat_method: str) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for o in outcomes:
        row = {"study": o.study.name, "status": "failed" if o.error else "ok", "model": model_id,
               "fat_method": fat_method, "output": o.output.name if o.output else "", "error": o.error}
        if o.result:
            s = o.result.summary
            row.update(grade=s.grade, mean_fat_fraction_pct=_percent(s.mean_fat_fraction_pct),
                       mean_fat_fraction_right_pct=_percent(s.mean_fat_fraction_right_pct),
                       mean_fat_fraction_left_pct=_percent(s.mean_fat_fraction_left_pct), slices=s.slices,
                       warnings="; ".join(o.result.warnings))
        writer.writerow(row)
    return buffer.getvalue()


def segment_folder(
    folder: Path,
    out: Path,
    model,
    *,
    fat_method: str = FAT_FROM_MODEL,
    device: str = "cpu",
    batch_size: int = 8,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> list[StudyOutcome]:
    """Every study of `folder` into `out/<study name>/`, and `out/summary.csv`; a failing study is
    reported in the summary and skipped, the others go on."""
    if (out / "summary.csv").exists() and not overwrite:
        raise OutputExistsError(f"{out}: holds the results of an earlier batch; choose another folder or pass --overwrite")
    studies = studies_in(folder)
    if not studies:
        raise ParaspinalError(f"{folder}: holds no studies (sub-folders, zips or volumes)")
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for n, study in enumerate(studies):
        target = out / study.name.split(".")[0]
        try:
            outcomes.append(segment_study(study, target, model, fat_method=fat_method, device=device,
                                          batch_size=batch_size, overwrite=overwrite))
        except OperationCancelled:
            raise
        except ParaspinalError as error:
            log.warning("%s: skipped (%s)", study, error)
            outcomes.append(StudyOutcome(study, None, None, str(error)))
        if progress:
            progress((n + 1) / len(studies), f"studies, {n + 1}/{len(studies)}")
    write_text_atomic(out / "summary.csv", summary_csv(outcomes, model.card.model_id, fat_method))
    return outcomes
