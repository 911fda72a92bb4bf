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
from .paths import check_separate, display_name, is_regular_file, unique_folder_names
from .pipeline import FAT_FROM_MODEL, MeasurementResult, segment_series
from .reading import read_study
from .slices import SliceSeries
from .progress import ProgressCallback

log = logging.getLogger(__name__)

NOT_RUN = "not run"
SUMMARY_COLUMNS = ["study", "status", "grade", "mean_fat_fraction_pct", "mean_fat_fraction_right_pct",
                   "mean_fat_fraction_left_pct", "slices", "warnings", "model", "fat_method", "output", "error"]


@dataclass
class StudyOutcome:
    study: Path
    output: Path | None
    result: MeasurementResult | None
    error: str = ""
    series: SliceSeries | None = None
    status: str = "ok"


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch, raised once summary.csv is written: `outcomes` says which
    studies were finished (and their folders kept), which failed and which were not run."""

    def __init__(self, outcomes: list[StudyOutcome], summary: Path) -> None:
        super().__init__(f"interrupted; {summary} lists the studies not run")
        self.outcomes = outcomes
        self.summary = summary


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
    mirror: bool = False,
    dicom: bool = False,
) -> StudyOutcome:
    """Read, segment, measure and write one study's outputs into `out` (mirror: mirrored test-time
    augmentation; dicom: also the DICOM SEG and SR, the source checked before the network runs)."""
    check_separate(out, [study])
    loaded = read_study(study, series_uid=series_uid, progress=progress)
    log.info("%s: %s", study.name, loaded.reason)
    if dicom:
        from .dicomexport import check_dicom_export

        check_dicom_export(loaded.series)
    result = segment_series(loaded.series, model, fat_method=fat_method, device=device, batch_size=batch_size,
                            progress=progress, mirror=mirror)
    write_result(out, result, loaded.series, overwrite=overwrite, dicom=dicom)
    return StudyOutcome(study, out, result, series=loaded.series)


def studies_in(folder: Path) -> list[Path]:
    """Each entry of a folder of studies: a sub-folder, a zip, or a NIfTI/NRRD volume."""
    from .volumes import is_volume_file

    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".")
                  and (p.is_dir() or (is_regular_file(p) and (p.suffix.lower() == ".zip" or is_volume_file(p)))))


def _percent(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def summary_csv(outcomes: list[StudyOutcome], model_id: str, fat_method: str) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for o in outcomes:
        row = {"study": display_name(o.study.name), "status": o.status, "model": model_id,
               "fat_method": fat_method, "output": o.output.name if o.output else "", "error": display_name(o.error)}
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
    mirror: bool = False,
) -> list[StudyOutcome]:
    """Every study of `folder` into `out/<study name>/` (made safe and unique by `unique_folder_names`),
    and `out/summary.csv`; a failing study, whatever the failure, is reported in the summary and
    skipped, the others go on. After Ctrl-C or a cancel the summary is written all the same (the
    studies not reached marked "not run"), then BatchInterrupted (Ctrl-C) or OperationCancelled is raised."""
    check_separate(out, [folder])
    if (out / "summary.csv").exists() and not overwrite:
        raise OutputExistsError(f"{out}: holds the results of an earlier batch; choose another folder or pass --overwrite")
    studies = studies_in(folder)
    if not studies:
        raise ParaspinalError(f"{folder}: holds no studies (sub-folders, zips or volumes)")
    out.mkdir(parents=True, exist_ok=True)
    names = unique_folder_names([study.name for study in studies])
    outcomes: list[StudyOutcome] = []
    try:
        for n, (study, name) in enumerate(zip(studies, names)):
            outcomes.append(_one_study(study, out / name, model, fat_method=fat_method, device=device,
                                       batch_size=batch_size, overwrite=overwrite, mirror=mirror))
            if progress:
                progress((n + 1) / len(studies), f"studies, {n + 1}/{len(studies)}")
    except (KeyboardInterrupt, OperationCancelled) as stop:
        outcomes += [StudyOutcome(s, None, None, "interrupted before it finished", status=NOT_RUN)
                     for s in studies[len(outcomes):]]
        _write_summary(out, outcomes, model.card.model_id, fat_method, overwrite)
        if isinstance(stop, OperationCancelled):
            raise
        raise BatchInterrupted(outcomes, out / "summary.csv") from stop
    _write_summary(out, outcomes, model.card.model_id, fat_method, overwrite)
    return outcomes


def _one_study(study: Path, target: Path, model, **options) -> StudyOutcome:
    """segment_study, with any failure but an interrupt turned into a failed outcome."""
    try:
        return segment_study(study, target, model, **options)
    except OperationCancelled:
        raise
    except ParaspinalError as error:
        message = str(error)
    except Exception as error:  # an unforeseen failure of one study must not end the batch
        message = f"unexpected {type(error).__name__} ({error}); please report it"
    log.warning("%s: skipped (%s)", display_name(study.name), display_name(message))
    return StudyOutcome(study, None, None, message, status="failed")


def _write_summary(out: Path, outcomes: list[StudyOutcome], model_id: str, fat_method: str, overwrite: bool) -> None:
    write_text_atomic(out / "summary.csv", summary_csv(outcomes, model_id, fat_method), replace=overwrite)
