"""The cohort QC report (Markdown): how many studies are done, failed or missing, the distribution
of grades and fat fractions, and the studies with warnings, each linked to its QC picture."""

from __future__ import annotations

import datetime
import math
import os
import statistics
from collections import Counter
from pathlib import Path

from .. import __version__
from .cohort import FAILED, MISSING, OK, Cohort, CohortStudy

GRADES = ("I", "II", "III")
BIN_PCT = 10
BAR_WIDTH = 40


def _link(target: Path, report_folder: Path) -> str:
    return f"[qc.png](<{Path(os.path.relpath(target, report_folder)).as_posix()}>)"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fat(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def _bar(count: int, largest: int) -> str:
    return "█" * max(1 if count else 0, round(BAR_WIDTH * count / largest)) if largest else ""


def grade_lines(studies: list[CohortStudy]) -> list[str]:
    counts = Counter(s.figures.grade or "n/a" for s in studies)
    lines = ["| grade | studies | share |", "|---|---:|---:|"]
    for grade in [*GRADES, *sorted(set(counts) - set(GRADES))]:
        lines.append(f"| {grade} | {counts[grade]} | {100 * counts[grade] / len(studies):.1f} % |")
    return lines


def distribution(values: list[float]) -> str:
    """'median 21.3 % (quartiles 15.0-30.2), range 4.1-66.0, n = 250'."""
    if not values:
        return "no values"
    if len(values) == 1:
        return f"{values[0]:.1f} % (one study)"
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (f"median {median:.1f} % (quartiles {q1:.1f}-{q3:.1f}), range {min(values):.1f}-{max(values):.1f}, "
            f"mean {statistics.fmean(values):.1f}, n = {len(values)}")


def fat_lines(studies: list[CohortStudy]) -> list[str]:
    figures = [s.figures for s in studies]
    both = [f.mean_fat_fraction_pct for f in figures if not math.isnan(f.mean_fat_fraction_pct)]
    lines = [f"- both sides: {distribution(both)}",
             f"- right: {distribution([f.mean_fat_fraction_right_pct for f in figures if not math.isnan(f.mean_fat_fraction_right_pct)])}",
             f"- left: {distribution([f.mean_fat_fraction_left_pct for f in figures if not math.isnan(f.mean_fat_fraction_left_pct)])}",
             "", "| mean fat fraction (both sides) | studies | |", "|---|---:|---|"]
    bins = Counter(min(int(v // BIN_PCT), 100 // BIN_PCT - 1) for v in both)
    largest = max(bins.values(), default=0)
    for k in range(100 // BIN_PCT):
        lines.append(f"| {k * BIN_PCT}-{(k + 1) * BIN_PCT} % | {bins[k]} | {_bar(bins[k], largest)} |")
    return lines


def warned_lines(studies: list[CohortStudy], report_folder: Path) -> list[str]:
    warned = [s for s in studies if s.figures.warnings]
    if not warned:
        return ["None."]
    lines = ["| study | grade | fat % | warnings | QC picture |", "|---|---|---:|---|---|"]
    for s in warned:
        f = s.figures
        lines.append(f"| {_cell(s.study)} | {f.grade or 'n/a'} | {_fat(f.mean_fat_fraction_pct)} | "
                     f"{_cell('; '.join(f.warnings))} | {_link(s.folder / 'qc.png', report_folder)} |")
    return lines


def cohort_report(cohort: Cohort, report_folder: Path) -> str:
    """The report's Markdown; links are relative to `report_folder`, where it is written."""
    done = [s for s in cohort.studies if s.status == OK]
    failed = [s for s in cohort.studies if s.status == FAILED]
    missing = [s for s in cohort.studies if s.status == MISSING]
    methods = Counter(str(s.document.get("provenance", {}).get("method", "")) for s in done)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = ["# Cohort report", "",
             f"{len(cohort.studies)} studies: {len(done)} done, {len(failed)} failed, {len(missing)} missing. "
             f"Made by ParaspinalSeg {__version__} on {created}.", ""]
    lines += [f"- method: {method} ({n} studies)" for method, n in methods.most_common()]
    if len(methods) > 1:
        lines.append("- **the studies were not all made with the same method**: compare them with care")
    if cohort.duplicates:
        lines.append(f"- {len(cohort.duplicates)} studies were done in more than one results folder; the newest "
                     "outputs are used")
    if cohort.unexpected:
        lines.append(f"- {len(cohort.unexpected)} studies found are not in the expected list (kept in the tables)")
    if cohort.leftovers:
        lines.append(f"- {len(cohort.leftovers)} half-written study folders (.*.partial) left by killed runs; "
                     "delete them when no run is going on")
    if done:
        lines += ["", "## Grades (simplified Goutallier)", "", *grade_lines(done),
                  "", "## Fat fraction per study", "", *fat_lines(done),
                  "", f"## Studies with warnings ({sum(bool(s.figures.warnings) for s in done)})", "",
                  *warned_lines(done, report_folder)]
    if failed:
        lines += ["", f"## Failed studies ({len(failed)})", "", "| study | error |", "|---|---|",
                  *[f"| {_cell(s.study)} | {_cell(s.error)} |" for s in failed]]
    if missing:
        lines += ["", f"## Missing studies ({len(missing)})", "", *[f"- {s.study}" for s in missing]]
    return "\n".join(lines) + "\n"
