"""Which fat method to trust: each method's patient fat fraction against labelled truth.

For every case the model segments once (cleaned as `segment` cleans it); then each fat method
gives the patient's mean fat fraction twice: inside the true compartments (the method alone) and
inside the model's compartments (what `segment` reports). "cnn" is the model's own fat class, so
it has no truth-compartment row. Compared per patient with the truth's mean fat fraction:
mean absolute error and bias in percentage points, and how often the simplified Goutallier grade
agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.measure.fat import FatMethod, FatSettings
from ParaspinalSegLib.measure.grading import sgc_grade
from ParaspinalSegLib.network.inference import predict_series
from ParaspinalSegLib.measure.measurement import summarise
from ParaspinalSegLib.network.modelfile import LoadedModel
from ParaspinalSegLib.pipeline import FAT_FROM_MODEL, add_fat, measure_labels
from ParaspinalSegLib.network.postprocess import clean_labels
from ParaspinalSegLib.progress import ProgressCallback
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.read.segmentation import load_segmentation
from ParaspinalSegLib.slices import SliceSeries

from .datasets import CaseFiles

METHODS = (FAT_FROM_MODEL,) + tuple(m.value for m in FatMethod)


@dataclass(frozen=True)
class FatMethodScore:
    method: str
    compartments: str  # "truth" or "model"
    patients: int
    mean_absolute_error_pp: float
    bias_pp: float
    grade_agreement_pct: float


def mean_fat_fraction(series: SliceSeries, labels: list[np.ndarray]) -> float:
    return summarise(measure_labels(series, labels)).mean_fat_fraction_pct


def with_method(series: SliceSeries, labels: list[np.ndarray], method: str) -> list[np.ndarray]:
    """The labels with their fat found by `method` ("cnn": the labels as they are)."""
    return labels if method == FAT_FROM_MODEL else add_fat(series, labels, FatSettings(method=FatMethod(method)))


def case_fat_fractions(model: LoadedModel, case: CaseFiles, device: str = "cpu") -> dict[tuple[str, str], float]:
    """(method, compartments) -> mean fat fraction % of one case, plus ("truth", "truth")."""
    study = read_study(case.image)
    segmentation = load_segmentation([case.labels], study.series)
    if segmentation.needs_fat:
        raise InputError(f"{case.labels}: compartment-only labels have no fat truth to compare with")
    truth = segmentation.labels
    predicted = [clean_labels(p) for p in predict_series(model, study.series, device=device)]
    fractions = {("truth", "truth"): mean_fat_fraction(study.series, truth)}
    for method in METHODS:
        fractions[(method, "model")] = mean_fat_fraction(study.series, with_method(study.series, predicted, method))
        if method != FAT_FROM_MODEL:
            fractions[(method, "truth")] = mean_fat_fraction(study.series, with_method(study.series, truth, method))
    return fractions


def score_method(truth: list[float], estimate: list[float], method: str, compartments: str) -> FatMethodScore:
    errors = np.asarray(estimate) - np.asarray(truth)
    agree = [sgc_grade(t) == sgc_grade(e) for t, e in zip(truth, estimate)]
    return FatMethodScore(method, compartments, len(truth), float(np.mean(np.abs(errors))), float(np.mean(errors)),
                          100.0 * float(np.mean(agree)))


def compare_fat_methods(
    model: LoadedModel, cases: list[CaseFiles], device: str = "cpu", progress: ProgressCallback | None = None
) -> list[FatMethodScore]:
    """One score per (method, compartments) over the cases' patients (cases of a patient averaged)."""
    per_patient: dict[str, list[dict]] = {}
    for n, case in enumerate(cases):
        per_patient.setdefault(case.patient_id, []).append(case_fat_fractions(model, case, device))
        if progress:
            progress((n + 1) / len(cases), f"fat methods, case {n + 1}/{len(cases)}")
    patients = {p: {k: float(np.mean([c[k] for c in runs])) for k in runs[0]} for p, runs in per_patient.items()}
    truth = [values[("truth", "truth")] for values in patients.values()]
    keys = [k for k in next(iter(patients.values())) if k != ("truth", "truth")]
    return [score_method(truth, [values[k] for values in patients.values()], *k) for k in keys]


def comparison_markdown(scores: list[FatMethodScore]) -> str:
    lines = ["| fat method | compartments | patients | mean abs. error (pp) | bias (pp) | grade agrees |",
             "|---|---|---:|---:|---:|---:|"]
    for s in sorted(scores, key=lambda s: (s.compartments, s.mean_absolute_error_pp)):
        lines.append(f"| {s.method} | {s.compartments} | {s.patients} | {s.mean_absolute_error_pp:.1f} | "
                     f"{s.bias_pp:+.1f} | {s.grade_agreement_pct:.0f} % |")
    return "\n".join(lines) + "\n"
