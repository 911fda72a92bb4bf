"""The paper's evaluation (Baur et al. 2021, Table 2): per-slice overlap and area figures, per-patient grades.

For overall muscle (the compartment, labels 1-4), muscle tissue (1, 3) and fat (2, 4): CSA of truth
and prediction (mm²), Dice, CSA error in % of the truth, precision and recall, per slice. Sides
count apart: the Dice is the mean of the right and the left side's Dice, and a pixel is a true
positive only on its own side (so a prediction with the sides swapped scores 0). Summarised
as mean ± SD with the 95 % confidence interval of the mean over all slices. Per patient: the SGC
grade from truth and prediction, their confusion matrix and accuracy. Written as CSV and Markdown.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.measure.grading import sgc_grade
from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.measure.measurement import SideValues, overlap_counts, sided_dice

STRUCTURES: dict[str, SideValues] = {  # label values of each structure: (right side, left side)
    "overall muscle": ((RIGHT_MUSCLE, RIGHT_FAT), (LEFT_MUSCLE, LEFT_FAT)),
    "muscle tissue": ((RIGHT_MUSCLE,), (LEFT_MUSCLE,)),
    "fat": ((RIGHT_FAT,), (LEFT_FAT,)),
}
METRICS = ("csa_truth_mm2", "csa_prediction_mm2", "dice", "csa_error_pct", "precision", "recall")
GRADES = ("I", "II", "III")


@dataclass(frozen=True)
class SliceScore:
    """One structure on one slice. NaN where a figure is undefined (e.g. Dice of two empty masks)."""

    case_id: str
    slice_index: int
    structure: str
    csa_truth_mm2: float
    csa_prediction_mm2: float
    dice: float
    csa_error_pct: float
    precision: float
    recall: float


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN where the denominator is 0 (a figure undefined on empty masks)."""
    return numerator / denominator if denominator else math.nan


def score_slice(
    truth: np.ndarray, prediction: np.ndarray, pixel_area_mm2: float, case_id: str, slice_index: int
) -> list[SliceScore]:
    """Scores of each structure on one slice (scheme label maps on the same grid)."""
    scores = []
    for structure, values in STRUCTURES.items():
        n_t, n_p, n_tp = (sum(counts) for counts in zip(*(overlap_counts(truth, prediction, v) for v in values)))
        scores.append(
            SliceScore(
                case_id=case_id,
                slice_index=slice_index,
                structure=structure,
                csa_truth_mm2=n_t * pixel_area_mm2,
                csa_prediction_mm2=n_p * pixel_area_mm2,
                dice=sided_dice(truth, prediction, values),
                csa_error_pct=ratio(100.0 * abs(n_p - n_t), n_t),
                precision=ratio(n_tp, n_p),
                recall=ratio(n_tp, n_t),
            )
        )
    return scores


@dataclass(frozen=True)
class Summary:
    """Mean ± SD and the 95 % confidence interval of the mean, over the slices where defined."""

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    n: int

    def text(self, decimals: int = 2) -> str:
        if self.n == 0:
            return "n/a"
        f = f"{{:.{decimals}f}}"
        return f"{f.format(self.mean)} ± {f.format(self.sd)} [{f.format(self.ci_low)}, {f.format(self.ci_high)}]"


def summarise_values(values: list[float]) -> Summary:
    """t-distribution 95 % confidence interval of the mean (normal for large n)."""
    from scipy import stats

    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if x.size == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
    half = float(stats.t.ppf(0.975, x.size - 1) * sd / math.sqrt(x.size)) if x.size > 1 else 0.0
    return Summary(mean, sd, mean - half, mean + half, int(x.size))


def table2(scores: list[SliceScore]) -> dict[str, dict[str, Summary]]:
    """structure -> metric -> Summary, over all slices."""
    return {
        structure: {
            metric: summarise_values([getattr(s, metric) for s in scores if s.structure == structure])
            for metric in METRICS
        }
        for structure in STRUCTURES
    }


def table2_by_patient(scores: list[SliceScore], patient_of_case: dict[str, str]) -> dict[str, dict[str, Summary]]:
    """structure -> metric -> Summary over patients, each patient counted once with the mean of its slices."""
    table = {}
    for structure in STRUCTURES:
        table[structure] = {}
        for metric in METRICS:
            per_patient: dict[str, list[float]] = {}
            for s in scores:
                value = getattr(s, metric)
                if s.structure == structure and not math.isnan(value):
                    per_patient.setdefault(patient_of_case.get(s.case_id, s.case_id), []).append(value)
            table[structure][metric] = summarise_values([float(np.mean(v)) for v in per_patient.values()])
    return table


def table2_markdown(table: dict[str, dict[str, Summary]]) -> str:
    header = "| | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    rows = [f"| {structure} | " + " | ".join(table[structure][m].text() for m in METRICS) + " |" for structure in table]
    return header + "\n".join(rows) + "\n"


def table2_csv(table: dict[str, dict[str, Summary]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["structure", "metric", "mean", "sd", "ci95_low", "ci95_high", "n"])
    for structure, metrics in table.items():
        for metric, s in metrics.items():
            writer.writerow([structure, metric, s.mean, s.sd, s.ci_low, s.ci_high, s.n])
    return buffer.getvalue()


@dataclass(frozen=True)
class GradeAgreement:
    """Per-patient SGC from truth vs prediction: confusion[truth][prediction] counts and accuracy."""

    confusion: dict[str, dict[str, int]]
    accuracy: float
    patients: int

    def markdown(self) -> str:
        lines = ["| truth \\ prediction | " + " | ".join(GRADES) + " |", "|---|" + "---|" * len(GRADES)]
        lines += [f"| {t} | " + " | ".join(str(self.confusion[t][p]) for p in GRADES) + " |" for t in GRADES]
        return "\n".join(lines) + f"\n\naccuracy {100 * self.accuracy:.1f} % over {self.patients} patients\n"


def grade_agreement(mean_fat_fractions: dict[str, tuple[float, float]]) -> GradeAgreement:
    """From patient -> (truth mean fat fraction %, predicted mean fat fraction %)."""
    confusion = {t: {p: 0 for p in GRADES} for t in GRADES}
    right = 0
    graded = 0
    for truth_ff, predicted_ff in mean_fat_fractions.values():
        truth, predicted = sgc_grade(truth_ff), sgc_grade(predicted_ff)
        if not truth or not predicted:
            continue
        confusion[truth][predicted] += 1
        right += truth == predicted
        graded += 1
    return GradeAgreement(confusion, ratio(right, graded), graded)
