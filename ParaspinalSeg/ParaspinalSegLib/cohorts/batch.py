"""Segment & grade one study, or a folder of studies (or one shard of it) with one summary CSV.

A failing study is recorded and skipped, the others go on; a study whose outputs are complete is
kept (resume, see batchplan); the studies run here one after the other, or on an engine (engine.py).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .batchplan import Decision, SegmentSettings, StudyJob, plan_batch
from ..errors import OperationCancelled, ParaspinalError
from .eta import BatchClock, log_study
from ..output.export import patient_document, write_result
from ..output.outputs import write_text_atomic
from ..paths import check_separate, display_name, is_regular_file
from ..pipeline import FAT_FROM_MODEL, MeasurementResult, segment_series
from ..progress import ProgressCallback
from ..read.reading import read_study
from .sharding import Shard
from ..slices import SliceSeries
from .studyrecords import StudyFigures, clear_failure, figures_of_document, record_failure

log = logging.getLogger(__name__)

OK, KEPT, FAILED, NOT_RUN = "ok", "kept", "failed", "not run"  # kept: complete outputs of an earlier run
SUMMARY_COLUMNS = ["study", "status", "grade", "mean_fat_fraction_pct", "mean_fat_fraction_right_pct",
                   "mean_fat_fraction_left_pct", "slices", "warnings", "model", "fat_method", "output", "error",
                   "number"]


@dataclass
class StudyOutcome:
    """One study of a run: its result (in this process), or its patient.json (`document`: kept, or
    made by an engine's worker), or its error; its number in the batch and the seconds it took."""

    study: Path
    output: Path | None
    result: MeasurementResult | None
    error: str = ""
    series: SliceSeries | None = None
    status: str = OK
    document: dict | None = None
    number: int = 0
    seconds: float = 0.0

    @property
    def figures(self) -> StudyFigures | None:
        if self.result is not None:
            return figures_of_result(self.result)
        return figures_of_document(self.document) if self.document is not None else None

    def portable(self) -> StudyOutcome:
        """The same outcome without images and label maps (patient.json instead): what a worker
        sends back."""
        document = self.document
        if self.result is not None and self.series is not None:
            document = patient_document(self.result, self.series, [])
        return StudyOutcome(self.study, self.output, None, self.error, None, self.status, document, self.number,
                            self.seconds)


def figures_of_result(result: MeasurementResult) -> StudyFigures:
    s = result.summary
    return StudyFigures(s.grade, s.mean_fat_fraction_pct, s.mean_fat_fraction_right_pct, s.mean_fat_fraction_left_pct,
                        s.slices, tuple(result.warnings), result.provenance.model or "")


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
    log.info("series: %s", loaded.reason)
    if dicom:
        from ..output.dicomexport import check_dicom_export

        check_dicom_export(loaded.series)
    result = segment_series(loaded.series, model, fat_method=fat_method, device=device, batch_size=batch_size,
                            progress=progress, mirror=mirror)
    write_result(out, result, loaded.series, overwrite=overwrite, dicom=dicom)
    return StudyOutcome(study, out, result, series=loaded.series)


def studies_in(folder: Path) -> list[Path]:
    """Each entry of a folder of studies: a sub-folder, a zip, or a NIfTI/NRRD volume."""
    from ..read.volumes import is_volume_file

    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".")
                  and (p.is_dir() or (is_regular_file(p) and (p.suffix.lower() == ".zip" or is_volume_file(p)))))


def _percent(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def summary_csv(outcomes: list[StudyOutcome], model_id: str, fat_method: str) -> str:
    """summary.csv: one row per study (the model of a kept study is the one that made it)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for o in outcomes:
        row = {"study": display_name(o.study.name), "status": o.status, "model": model_id,
               "fat_method": fat_method, "output": o.output.name if o.output else "", "error": display_name(o.error),
               "number": o.number or ""}
        figures = o.figures
        if figures:
            row.update(grade=figures.grade, mean_fat_fraction_pct=_percent(figures.mean_fat_fraction_pct),
                       mean_fat_fraction_right_pct=_percent(figures.mean_fat_fraction_right_pct),
                       mean_fat_fraction_left_pct=_percent(figures.mean_fat_fraction_left_pct), slices=figures.slices,
                       warnings="; ".join(figures.warnings), model=figures.model or model_id)
        writer.writerow(row)
    return buffer.getvalue()


def run_job(job: StudyJob, model, settings: SegmentSettings) -> StudyOutcome:
    """segment_study on one job, timed; any failure but a cancel becomes a failed outcome."""
    started = time.monotonic()
    try:
        outcome = segment_study(job.study, job.target, model, fat_method=settings.fat_method, device=settings.device,
                                batch_size=settings.batch_size, overwrite=job.replace, mirror=settings.mirror,
                                dicom=settings.dicom)
    except OperationCancelled:
        raise
    except ParaspinalError as error:
        outcome = failed(job, str(error))
    except Exception as error:  # an unforeseen failure of one study must not end the batch
        outcome = failed(job, f"unexpected {type(error).__name__} ({error}); please report it")
    outcome.number, outcome.seconds = job.number, time.monotonic() - started
    return outcome


def failed(job: StudyJob, error: str) -> StudyOutcome:
    return StudyOutcome(job.study, None, None, error, status=FAILED, number=job.number)


Finished = Callable[[StudyJob, StudyOutcome], None]


def run_serially(jobs: list[StudyJob], model, settings: SegmentSettings, finished: Finished) -> None:
    """Every job in this process, in order, with the model loaded here."""
    for job in jobs:
        finished(job, run_job(job, model, settings))


def without_identifiers(text: str, job: StudyJob) -> str:
    """An error message with the study's and output's paths (and the study's name) replaced."""
    text = display_name(text).replace(display_name(job.study), "<study>").replace(display_name(job.target), "<output>")
    name = display_name(job.study.name)
    return text.replace(name, "<study>") if len(name) >= 4 else text


class BatchRecorder:
    """Takes each finished study: writes or clears its failure record, logs its line (no identifiers)
    and reports progress with the time left."""

    def __init__(self, out: Path, jobs: list[StudyJob], progress: ProgressCallback | None) -> None:
        self.out, self.progress = out, progress
        self.clock = BatchClock(len(jobs))
        self.outcomes: dict[int, StudyOutcome] = {}

    def __call__(self, job: StudyJob, outcome: StudyOutcome) -> None:
        self.outcomes[job.number] = outcome
        self.clock.finish_one()
        if outcome.status == FAILED:
            record_failure(self.out, job.study.name, job.target.name, outcome.error)
            detail = without_identifiers(outcome.error, job)
        else:
            clear_failure(self.out, job.target.name)
            detail = figures_line(outcome.figures)
        log_study(self.clock, job.number, outcome.status, detail, outcome.seconds)
        if self.progress:
            self.progress(self.clock.done / max(self.clock.total, 1), self.clock.status())


def figures_line(figures: StudyFigures) -> str:
    """'grade II, fat 23.4 %, 12 slices, 1 warning(s)'."""
    fat = "n/a" if math.isnan(figures.mean_fat_fraction_pct) else f"{figures.mean_fat_fraction_pct:.1f} %"
    warned = f", {len(figures.warnings)} warning(s)" if figures.warnings else ""
    return f"grade {figures.grade or 'n/a'}, fat {fat}, {figures.slices} slices{warned}"


def known_outcome(decision: Decision) -> StudyOutcome:
    """The outcome of a study this run does not run: kept (complete outputs) or refused."""
    job = decision.job
    if decision.document is not None:
        return StudyOutcome(job.study, job.target, None, status=KEPT, document=decision.document, number=job.number)
    return failed(job, decision.error)


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
    shard: Shard = Shard(),
    engine=None,
    dicom: bool = False,
) -> list[StudyOutcome]:
    """Every study of `folder` (of `shard`) into `out/<study name>/` (made safe and unique over the
    whole folder by `unique_folder_names`), and the shard's summary CSV (`summary.csv` for a whole
    batch). Studies with complete outputs are kept unless `overwrite`. A failing study, whatever the
    failure, is recorded (`failures/`, the summary) and skipped, the others go on. `engine` (see
    engine.py) runs the studies elsewhere; `model` then needs only its card and folder. After Ctrl-C or
    a cancel the summary is written all the same (the studies not reached marked "not run"), then
    BatchInterrupted (Ctrl-C) or OperationCancelled is raised."""
    check_separate(out, [folder])
    studies = studies_in(folder)
    if not studies:
        raise ParaspinalError(f"{folder}: holds no studies (sub-folders, zips or volumes)")
    out.mkdir(parents=True, exist_ok=True)
    settings = SegmentSettings(fat_method=fat_method, device=device, batch_size=batch_size, mirror=mirror, dicom=dicom)
    method = settings.method(model.card.model_id, model.card.postprocessing.mirror_below_confidence)
    decisions = plan_batch(studies, out, shard, method, overwrite, dicom)
    known = [known_outcome(d) for d in decisions if not d.run]
    jobs = [d.job for d in decisions if d.run]
    recorder = BatchRecorder(out, jobs, progress)
    summary = out / shard.summary_name()
    try:
        if engine is None:
            run_serially(jobs, model, settings, recorder)
        else:
            engine.run(jobs, model.folder, settings, recorder)
    except (KeyboardInterrupt, OperationCancelled) as stop:
        outcomes = _in_batch_order(known, jobs, recorder.outcomes, "interrupted before it finished")
        _write_summary(summary, outcomes, model.card.model_id, fat_method)
        if isinstance(stop, OperationCancelled):
            raise
        raise BatchInterrupted(outcomes, summary) from stop
    outcomes = _in_batch_order(known, jobs, recorder.outcomes, "")
    _write_summary(summary, outcomes, model.card.model_id, fat_method)
    return outcomes


def _in_batch_order(known: list[StudyOutcome], jobs: list[StudyJob], done: dict[int, StudyOutcome],
                    why_not_run: str) -> list[StudyOutcome]:
    """Every study of the run in batch order; jobs with no outcome are "not run"."""
    ran = [done.get(job.number) or StudyOutcome(job.study, None, None, why_not_run, status=NOT_RUN, number=job.number)
           for job in jobs]
    return sorted(known + ran, key=lambda o: o.number)


def _write_summary(path: Path, outcomes: list[StudyOutcome], model_id: str, fat_method: str) -> None:
    write_text_atomic(path, summary_csv(outcomes, model_id, fat_method))
