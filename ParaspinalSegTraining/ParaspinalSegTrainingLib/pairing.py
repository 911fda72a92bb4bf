"""Two models on the same held-out patients, compared patient by patient.

How many patients' fat fraction lies within 3 points of the truth moves between two models by a few
patients out of hundreds, about its binomial spread, so a count set against a count decides on noise
as often as on fat. Paired on the same draws, only the patients that one model brings within 3 points
and the other does not carry information: an exact sign test on them, and the mean paired change of
the absolute error with its 95 % interval. Reads the per-patient tables that `paraspinal heldout
--patients-csv` writes (`heldout.patient_table_csv`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ParaspinalSegLib.errors import InputError

from .evaluation import summarise_values
from .heldout import GOAL_FAT_POINTS, PATIENT_TABLE_COLUMNS

PatientKey = tuple[str, str]  # (domain, patient)
NOISE_Z = 1.96  # the sign test at two-sided 5 %, normal approximation: what the selection rules since 2.19.0 use


@dataclass(frozen=True)
class PairedFat:
    """Two models' patient fat against the truth on the same patients (a: the reference, b: the candidate)."""

    patients: int
    domains: int
    within_a: int
    within_b: int
    gained: int  # within the points for b only
    lost: int  # within the points for a only
    sign_test_p: float  # exact two-sided binomial test of gained against lost
    mean_abs_error_a: float
    mean_abs_error_b: float
    error_change: float  # mean over patients of |b - truth| - |a - truth|, points
    error_change_ci95: tuple[float, float]  # Student's t interval (evaluation.summarise_values)

    @property
    def noise_bound(self) -> float:
        """How many more patients b may lose than gain before the sign test tells the loss from noise."""
        return NOISE_Z * float(np.sqrt(self.gained + self.lost))

    @property
    def loses_beyond_noise(self) -> bool:
        return self.lost - self.gained > self.noise_bound


def read_patient_table(path: Path, method: str) -> dict[PatientKey, tuple[float, float]]:
    """The pooled (held-out) patients of a `--patients-csv` table: (domain, patient) -> (truth, method's) %."""
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            columns = reader.fieldnames or []
            missing = [c for c in (*PATIENT_TABLE_COLUMNS, f"{method}_fat_pct") if c not in columns]
            if missing:
                raise InputError(f"{path}: not a per-patient table of `paraspinal heldout --patients-csv` "
                                 f"(missing column {', '.join(missing)})")
            rows = {(row["domain"], row["patient"]): (float(row["true_fat_pct"]), float(row[f"{method}_fat_pct"]))
                    for row in reader if row["pooled"] == "1"}
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: cannot read the per-patient table ({error})") from None
    except ValueError as error:
        raise InputError(f"{path}: a fat fraction is not a number ({error})") from None
    return rows


def paired_fat(a: dict[PatientKey, tuple[float, float]], b: dict[PatientKey, tuple[float, float]],
               points: float = GOAL_FAT_POINTS) -> PairedFat:
    """The two tables on the patients they share, whose truth must agree (the same draws)."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise InputError("the two tables share no held-out patient: measure both models on the same draws")
    differing = [key for key in shared if abs(a[key][0] - b[key][0]) > 1e-6]
    if differing:
        raise InputError(f"the truth differs for {len(differing)} patients (first: {'/'.join(differing[0])}): "
                         "the tables come from different draws")
    truth = np.array([a[key][0] for key in shared])
    error_a = np.abs(np.array([a[key][1] for key in shared]) - truth)
    error_b = np.abs(np.array([b[key][1] for key in shared]) - truth)
    in_a, in_b = error_a <= points, error_b <= points
    gained, lost = int(np.sum(in_b & ~in_a)), int(np.sum(in_a & ~in_b))
    change = summarise_values(list(error_b - error_a))
    return PairedFat(patients=len(shared), domains=len({domain for domain, _ in shared}),
                     within_a=int(in_a.sum()), within_b=int(in_b.sum()), gained=gained, lost=lost,
                     sign_test_p=sign_test(gained, lost), mean_abs_error_a=float(error_a.mean()),
                     mean_abs_error_b=float(error_b.mean()), error_change=change.mean,
                     error_change_ci95=(change.ci_low, change.ci_high))


def sign_test(gained: int, lost: int) -> float:
    """Exact two-sided binomial test of gained against lost at even odds (1 where nothing differs)."""
    return float(stats.binomtest(gained, gained + lost, 0.5).pvalue) if gained + lost else 1.0


def paired_fat_text(result: PairedFat, name_a: str, name_b: str, points: float = GOAL_FAT_POINTS) -> str:
    """The comparison as a reader takes it in: both counts, the patients that differ, and the error's change."""
    low, high = result.error_change_ci95
    return "\n".join([
        f"{result.patients} held-out patients in {result.domains} domains, fat fraction within {points:g} points "
        "of the truth:",
        f"- a, {name_a}: {result.within_a} (mean absolute error {result.mean_abs_error_a:.2f} points)",
        f"- b, {name_b}: {result.within_b} (mean absolute error {result.mean_abs_error_b:.2f} points)",
        f"- within for b only: {result.gained}; for a only: {result.lost}; exact sign test p = "
        f"{result.sign_test_p:.3g}",
        f"- lost minus gained: {result.lost - result.gained} (beyond noise above {result.noise_bound:.1f}, "
        f"{NOISE_Z:g} x the square root of {result.gained + result.lost}): "
        + ("b loses fat beyond noise" if result.loses_beyond_noise else "no loss beyond noise"),
        f"- change of the absolute error, b - a: {result.error_change:+.3f} points "
        f"(95 % interval {low:+.3f} to {high:+.3f})",
    ])
