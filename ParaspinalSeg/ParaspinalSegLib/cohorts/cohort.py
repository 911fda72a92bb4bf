"""`paraspinal summary`: the results folders of a batch's shards merged into one cohort.

A study is `ok` where a results folder holds its complete outputs (studyrecords.complete_outputs),
`failed` where only a failure record says so, `missing` where it was expected (a list of studies,
a batch folder, or a shard's summary that marked it "not run") and nothing was found. Two tidy
tables come out: one row per study, and one row per study, slice and side.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..measure.measurement import SIDE_NAMES
from ..paths import display_name, unique_folder_names
from .studyrecords import FAILURES, StudyFigures, complete_outputs, figures_of_document, leftover_staging, read_failures

OK, FAILED, MISSING = "ok", "failed", "missing"
STUDY_COLUMNS = ["study", "output", "status", "grade", "mean_fat_fraction_pct", "mean_fat_fraction_right_pct",
                 "mean_fat_fraction_left_pct", "slices", "warnings_count", "warnings", "model", "method", "software",
                 "created", "error", "results"]
SLICE_VALUES = ("total_csa_mm2", "muscle_csa_mm2", "fat_csa_mm2", "fat_fraction_pct")
SLICE_COLUMNS = ["study", "output", "slice_index", "source_index", "position_mm", "side", *SLICE_VALUES]


@dataclass
class CohortStudy:
    """One study of the cohort: `output` is its folder's name (unique in the batch), `study` its own
    name where a summary or failure record gives it; `folder` holds its outputs when ok."""

    output: str
    study: str
    status: str
    folder: Path | None = None
    document: dict | None = None
    error: str = ""

    @property
    def figures(self) -> StudyFigures | None:
        return figures_of_document(self.document) if self.document is not None else None


@dataclass
class Cohort:
    studies: list[CohortStudy]
    duplicates: list[str] = field(default_factory=list)  # complete in more than one results folder: the newest kept
    unexpected: list[str] = field(default_factory=list)  # found, but not in the expected list
    leftovers: list[Path] = field(default_factory=list)  # half-written folders of killed runs

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.studies)


def _summary_rows(results: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(results.glob("summary*.csv")):
        with open(path, newline="", encoding="utf-8") as stream:
            rows += list(csv.DictReader(stream))
    return rows


def _created(study: CohortStudy) -> str:
    return str((study.document or {}).get("provenance", {}).get("created", ""))


def _found_in(results: Path) -> tuple[list[CohortStudy], list[CohortStudy], set[str]]:
    """The complete studies, the failure records and the outputs marked "not run" of one results folder."""
    if not results.is_dir():
        raise InputError(f"{results}: is not a folder of batch results")
    rows = _summary_rows(results)
    names = {row.get("output") or "": row.get("study") or "" for row in rows}
    complete = []
    for folder in sorted(p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != FAILURES):
        document = complete_outputs(folder)
        if document is not None:
            complete.append(CohortStudy(folder.name, names.get(folder.name) or folder.name, OK, folder, document))
    failures = [CohortStudy(r.output, r.study, FAILED, error=r.error) for r in read_failures(results)]
    not_run = {display_name(row["study"]) for row in rows if row.get("status") == "not run"}
    return complete, failures, not_run


def merge_results(results: Iterable[Path], expected: list[str] | None = None) -> Cohort:
    """One cohort from the results folders (a study done in several: the newest outputs); `expected`:
    the names of every study of the batch (as in its folder), to find the missing ones."""
    merged: dict[str, CohortStudy] = {}
    duplicates, not_run, leftovers = [], set(), []
    for folder in results:
        complete, failures, marked = _found_in(Path(folder))
        not_run |= marked
        leftovers += leftover_staging(Path(folder))
        for study in complete:
            earlier = merged.get(study.output)
            if earlier is not None and earlier.status == OK:
                duplicates.append(study.output)
                if _created(earlier) >= _created(study):
                    continue
            merged[study.output] = study
        for study in failures:
            merged.setdefault(study.output, study)
    unexpected = []
    if expected is not None:
        wanted = dict(zip(unique_folder_names(expected), expected))
        unexpected = sorted(set(merged) - set(wanted))
        for output, name in wanted.items():
            merged.setdefault(output, CohortStudy(output, display_name(name), MISSING))
    else:
        for name in not_run:
            if not any(s.study == name for s in merged.values()):
                merged[name] = CohortStudy(name, name, MISSING)
    return Cohort(sorted(merged.values(), key=lambda s: s.output), sorted(set(duplicates)), unexpected, leftovers)


def read_expected(path: Path) -> list[str]:
    """A list of studies: one name per line (blank lines ignored)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot be read as a list of studies ({error})") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise InputError(f"{path}: lists no studies (one name per line)")
    return names


def _number(value: float) -> str:
    return "" if value != value else f"{value:.4f}"


def study_row(study: CohortStudy) -> dict[str, str]:
    row = {"study": study.study, "output": study.output, "status": study.status, "error": study.error,
           "results": str(study.folder.parent) if study.folder else ""}
    figures = study.figures
    if figures:
        provenance = study.document.get("provenance", {})
        row.update(grade=figures.grade, mean_fat_fraction_pct=_number(figures.mean_fat_fraction_pct),
                   mean_fat_fraction_right_pct=_number(figures.mean_fat_fraction_right_pct),
                   mean_fat_fraction_left_pct=_number(figures.mean_fat_fraction_left_pct), slices=str(figures.slices),
                   warnings_count=str(len(figures.warnings)), warnings="; ".join(figures.warnings),
                   model=figures.model, method=str(provenance.get("method", "")),
                   software=str(provenance.get("software", "")), created=str(provenance.get("created", "")))
    return row


def studies_csv(cohort: Cohort) -> str:
    """One row per study."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STUDY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(study_row(s) for s in cohort.studies)
    return buffer.getvalue()


def slice_rows(study: CohortStudy) -> list[dict[str, str]]:
    """The study's slices.csv, one row per slice and side, values as written there."""
    path = study.folder / "slices.csv"
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    try:
        return [{"study": study.study, "output": study.output, "slice_index": r["slice_index"],
                 "source_index": r["source_index"], "position_mm": r["position_mm"], "side": side,
                 **{value: r[f"{side}_{value}"] for value in SLICE_VALUES}}
                for r in rows for side in SIDE_NAMES]
    except KeyError as missing:
        raise InputError(f"{path}: has no column {missing}; was it written by this tool?") from None


def slices_csv(cohort: Cohort) -> str:
    """One row per study, slice and side (right, left, both) of every ok study."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SLICE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for study in cohort.studies:
        if study.status == OK:
            writer.writerows(slice_rows(study))
    return buffer.getvalue()
