"""Choosing the series to process: an axial MR series, preferably T2-weighted turbo spin echo.

Every slice of the chosen series must be axial (its normal within DEFAULT_AXIAL_TOLERANCE_DEG of
the body axis) and the modality MR. Among those, a score prefers spin echo with an echo train
(TSE/FSE), T2 timing (TE about 60-150 ms, TR over 1500 ms) and descriptions that say T2/TSE, and
passes over T1, Dixon water/fat/in/opposed phase, fat-suppressed, diffusion, localizer and
sagittal/coronal series. The user may name a SeriesInstanceUID instead.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .dicom import SeriesSummary
from ..errors import InputError, NoSuitableSeriesError
from ..geometry import DEFAULT_AXIAL_TOLERANCE_DEG
from .inputcheck import sequence_warning

log = logging.getLogger(__name__)

T2_ECHO_TIME_MS = (60.0, 150.0)
T2_REPETITION_TIME_MS = 1500.0
T1_ECHO_TIME_MS = 30.0
T1_REPETITION_TIME_MS = 1000.0

# Description words (lower case) and what they add to a series' score; a word not listed
# exactly is looked up by its beginning ('t2w' counts as 't2', 'sagittal' as 'sag').
WORD_SCORES = {
    "t2": 3.0, "tse": 1.0, "fse": 1.0, "frfse": 1.0, "turbo": 1.0, "haste": 0.5, "ssfse": 0.5,
    "t1": -4.0, "pd": -2.0, "flair": -2.0,
    "dixon": -4.0, "mdixon": -4.0, "water": -4.0, "fat": -4.0, "opp": -4.0, "op": -4.0, "ip": -4.0,
    "inphase": -4.0, "opposed": -4.0, "outphase": -4.0,
    "stir": -3.0, "fs": -3.0, "fatsat": -3.0, "spair": -3.0, "spir": -3.0,
    "dwi": -6.0, "diff": -6.0, "adc": -6.0,
    "loc": -8.0, "scout": -8.0, "survey": -8.0,
    "sag": -3.0, "cor": -3.0,
}
PREFIX_SCORES = {"t2": 3.0, "t1": -4.0, "dixon": -4.0, "localiz": -8.0, "localis": -8.0, "sag": -3.0, "cor": -3.0}
FAT_SUPPRESSION_OPTIONS = {"FS", "SFS", "FSA", "FSS", "FSI", "FSP"}


@dataclass(frozen=True)
class SeriesChoice:
    """The series to process, why, and its score (higher is a better T2 TSE axial series)."""

    summary: SeriesSummary
    reason: str
    score: float
    overridden: bool = False


@dataclass(frozen=True)
class Assessment:
    """How one series fits: whether it can be processed at all, and how much it is preferred."""

    suitable: bool
    score: float
    why_not: str = ""


def description_words(description: str) -> list[str]:
    """Lower-case words of a series description ('T2_TSE_TRA-fs' -> t2, tse, tra, fs)."""
    return [w for w in re.split(r"[^a-z0-9]+", description.lower()) if w]


def word_score(word: str) -> float:
    """What one description word adds to the score: exact match first, then by its beginning."""
    if word in WORD_SCORES:
        return WORD_SCORES[word]
    return next((score for prefix, score in PREFIX_SCORES.items() if word.startswith(prefix)), 0.0)


def description_score(description: str) -> float:
    """Preference from the description's words; each known word counts once."""
    return sum(word_score(word) for word in set(description_words(description)))


def sequence_parts(summary: SeriesSummary) -> set[str]:
    return {part for part in summary.info.sequence.upper().split("/") if part}


def is_spin_echo(summary: SeriesSummary) -> bool:
    return "SE" in sequence_parts(summary)


def is_turbo(summary: SeriesSummary) -> bool:
    """Spin echo with an echo train longer than one (TSE, FSE, RARE, HASTE)."""
    return is_spin_echo(summary) and (summary.info.echo_train_length or 0) > 1


def weighting(summary: SeriesSummary) -> str:
    """'T2', 'T1', 'PD' or '' from a spin echo's TE and TR, else from Enhanced MR's AcquisitionContrast.

    Gradient echo contrast depends on the flip angle too, so TE and TR alone do not tell it.
    """
    te, tr = summary.info.echo_time_ms, summary.info.repetition_time_ms
    if te is None or tr is None or not is_spin_echo(summary):
        return {"T2": "T2", "T1": "T1", "PROTON_DENSITY": "PD"}.get(summary.acquisition_contrast, "")
    if te >= T2_ECHO_TIME_MS[0] and tr > T2_REPETITION_TIME_MS:
        return "T2"
    if te < T1_ECHO_TIME_MS and tr < T1_REPETITION_TIME_MS:
        return "T1"
    if te < T1_ECHO_TIME_MS and tr > T2_REPETITION_TIME_MS:
        return "PD"
    return ""


def technique(summary: SeriesSummary) -> str:
    """'TSE', 'SE', 'GRE', 'EPI' or the raw ScanningSequence."""
    parts = sequence_parts(summary)
    if is_turbo(summary):
        return "TSE"
    if "SE" in parts:
        return "SE"
    if "EP" in parts:
        return "EPI"
    if "GR" in parts:
        return "GRE"
    return summary.info.sequence


def sequence_label(summary: SeriesSummary) -> str:
    """e.g. 'T2 TSE', 'T1 SE', 'GRE' (weighting from timing, technique from the sequence)."""
    return " ".join(part for part in (weighting(summary), technique(summary)) if part) or "unknown sequence"


def series_sequence_warning(summary: SeriesSummary) -> str:
    """The result's warning when the headers do not show a T2 TSE without fat suppression, else ''."""
    fat_suppressed = bool(FAT_SUPPRESSION_OPTIONS & set(summary.scan_options))
    return sequence_warning(sequence_label(summary), fat_suppressed, timing_text(summary))


def timing_text(summary: SeriesSummary) -> str:
    """e.g. 'TE 98 ms, TR 4000 ms, ETL 17', leaving out what the headers do not say."""
    info = summary.info
    parts = []
    if info.echo_time_ms is not None:
        parts.append(f"TE {info.echo_time_ms:g} ms")
    if info.repetition_time_ms is not None:
        parts.append(f"TR {info.repetition_time_ms:g} ms")
    if info.echo_train_length is not None:
        parts.append(f"ETL {info.echo_train_length}")
    return ", ".join(parts)


def _timing_score(summary: SeriesSummary) -> float:
    te, tr = summary.info.echo_time_ms, summary.info.repetition_time_ms
    score = 0.0
    if te is not None:
        low, high = T2_ECHO_TIME_MS
        score += 3.0 if low <= te <= high else 1.0 if low / 2 <= te <= high * 1.7 else -2.0
    if tr is not None:
        score += 2.0 if tr > T2_REPETITION_TIME_MS else -2.0 if tr < T1_REPETITION_TIME_MS else 0.0
    return score


def _sequence_score(summary: SeriesSummary) -> float:
    parts = sequence_parts(summary)
    score = 3.0 if "SE" in parts else -2.0 if parts & {"GR", "EP"} else 0.0
    if "IR" in parts:
        score -= 2.0
    etl = summary.info.echo_train_length
    if etl is not None:
        score += 2.0 if etl > 1 else -1.0
    return score


def _other_score(summary: SeriesSummary) -> float:
    score = 0.0
    if "LOCALIZER" in summary.image_type:
        score -= 8.0
    if {"DERIVED", "SECONDARY"} & set(summary.image_type):
        score -= 1.0
    if FAT_SUPPRESSION_OPTIONS & set(summary.scan_options):
        score -= 3.0
    if summary.acquisition_contrast == "T2":
        score += 2.0
    return score


def why_unsuitable(summary: SeriesSummary, tolerance_deg: float = DEFAULT_AXIAL_TOLERANCE_DEG) -> str:
    """Why a series cannot be processed at all, or '' when it can."""
    if summary.geometry_problem:
        return "its slices have no usable geometry"
    if summary.orientation == "mixed":
        return f"its slices have mixed orientations (up to {summary.max_angle_deg:.0f} degrees from axial)"
    if not math.isfinite(summary.max_angle_deg) or summary.max_angle_deg > tolerance_deg:
        return (
            f"not axial (slice normal {summary.max_angle_deg:.0f} degrees from the body axis, "
            f"at most {tolerance_deg:.0f} allowed)"
        )
    if summary.info.modality.upper() != "MR":
        return f"modality {summary.info.modality or 'unknown'}, not MR"
    return ""


def assess_series(summary: SeriesSummary, tolerance_deg: float = DEFAULT_AXIAL_TOLERANCE_DEG) -> Assessment:
    """Whether a series can be processed and how strongly it is preferred."""
    problem = why_unsuitable(summary, tolerance_deg)
    score = (
        _sequence_score(summary)
        + _timing_score(summary)
        + description_score(summary.info.description)
        + _other_score(summary)
    )
    return Assessment(suitable=not problem, score=score, why_not=problem)


def series_name(summary: SeriesSummary) -> str:
    """e.g. "series 5 't2_tse_tra'"."""
    number = "?" if summary.info.number is None else summary.info.number
    return f"series {number} '{summary.info.description}'"


def _blocks_text(summary: SeriesSummary) -> str:
    return f" in {summary.orientation_count} angled blocks" if summary.orientation_count > 1 else ""


def choice_reason(summary: SeriesSummary, overridden: bool = False) -> str:
    """A readable sentence saying what the series is and why it was taken."""
    timing = timing_text(summary)
    text = f"{series_name(summary)}: {summary.orientation}, {sequence_label(summary)}"
    text += f" ({timing})" if timing else ""
    text += f", {summary.slice_count} slices{_blocks_text(summary)}"
    if overridden:
        return text + ", chosen by its SeriesInstanceUID"
    if weighting(summary) != "T2" or not is_turbo(summary):
        return text + ", the best axial MR series in the study although not a T2 TSE"
    return text


def study_lines(summaries: Sequence[SeriesSummary], with_problems: bool = False) -> list[str]:
    """One line per series: number, description, orientation, slice count, UID (and what is wrong)."""
    lines = []
    for s in summaries:
        line = f"  {series_name(s)}: {s.orientation}, {sequence_label(s)}, {s.slice_count} slices, UID {s.info.uid}"
        problem = why_unsuitable(s) if with_problems else ""
        lines.append(line + (f" - {problem}" if problem else ""))
    return lines


def _override(summaries: Sequence[SeriesSummary], series_uid: str) -> SeriesChoice:
    matches = [s for s in summaries if s.info.uid == series_uid.strip()]
    if not matches:
        raise InputError(
            f"series UID {series_uid} is not in the study; it holds:\n" + "\n".join(study_lines(summaries))
            + "\npass one of these UIDs"
        )
    summary = matches[0]
    problem = why_unsuitable(summary)
    if problem:
        detail = f" ({summary.geometry_problem})" if summary.geometry_problem else ""
        raise NoSuitableSeriesError(
            f"{series_name(summary)} (UID {series_uid}) cannot be processed: {problem}{detail}; "
            "choose an axial MR series"
        )
    return SeriesChoice(summary, choice_reason(summary, overridden=True), assess_series(summary).score, True)


def _preference(summary: SeriesSummary, score: float) -> tuple[float, int, int, str]:
    """Higher score first, then more slices, then the later (repeated) series, then the UID (so that the
    choice never depends on the order of the listing, whose patient and study hashes differ per process)."""
    return (score, summary.slice_count, summary.info.number or 0, summary.info.uid)


def choose_series(summaries: Sequence[SeriesSummary], series_uid: str | None = None) -> SeriesChoice:
    """The series to process: the named UID, else the best-scoring axial MR series.

    Raises InputError for an unknown UID or when axial MR series of several patients compete,
    and NoSuitableSeriesError, listing the study's series, when none is axial MR.
    """
    if series_uid:
        return _override(summaries, series_uid)
    assessed = [(s, assess_series(s)) for s in summaries]
    for summary, assessment in assessed:
        log.debug("%s: score %.1f %s", series_name(summary), assessment.score, assessment.why_not)
    candidates = [(s, a.score) for s, a in assessed if a.suitable]
    source = summaries[0].info.source if summaries else "the study"
    if not candidates:
        raise NoSuitableSeriesError(
            f"{source}: no axial MR series to process; the study holds:\n"
            + "\n".join(study_lines(summaries, with_problems=True))
            + "\nchoose a series with --series UID (Slicer: the series selector), or add the axial T2 series"
        )
    patients = {s.info.patient for s, _ in candidates}
    if len(patients) > 1:
        raise InputError(
            f"{source}: holds axial MR series of {len(patients)} patients:\n"
            + "\n".join(study_lines([s for s, _ in candidates]))
            + "\nchoose one with --series UID, or give a folder holding one patient's study"
        )
    summary, score = max(candidates, key=lambda c: _preference(*c))
    choice = SeriesChoice(summary, choice_reason(summary), score)
    log.info("chosen %s", choice.reason)
    return choice


def _spacing_text(summary: SeriesSummary) -> str:
    return ", ".join(f"{row:.4g}x{column:.4g}" for row, column in summary.pixel_spacings) or "-"


def format_series_table(summaries: Sequence[SeriesSummary], choice: SeriesChoice | None) -> list[str]:
    """Text lines listing every series, the chosen one marked with '*' (for `paraspinal series`)."""
    header = ("", "patient", "study", "series", "description", "sequence", "orientation", "slices", "spacing mm", "UID")
    rows = [header]
    chosen_uid = choice.summary.info.uid if choice is not None else None
    for s in summaries:
        timing = timing_text(s)
        rows.append((
            "*" if s.info.uid == chosen_uid else "",
            s.info.patient or "-",
            s.info.study or "-",
            "-" if s.info.number is None else str(s.info.number),
            s.info.description or "-",
            sequence_label(s) + (f" ({timing})" if timing else ""),
            s.orientation + (f" ({s.orientation_count} blocks)" if s.orientation_count > 1 else ""),
            str(s.slice_count),
            _spacing_text(s),
            s.info.uid,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
