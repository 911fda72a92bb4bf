"""Evaluating a model on a data set's cases, on each slice's own pixel grid (the paper's Table 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ParaspinalSegLib.network.inference import predict_series
from ParaspinalSegLib.network.modelfile import LoadedModel
from ParaspinalSegLib.output.outputs import write_text_atomic
from ParaspinalSegLib.pipeline import measure_labels
from ParaspinalSegLib.progress import ProgressCallback
from ParaspinalSegLib.measure.measurement import summarise
from ParaspinalSegLib.read.reading import read_study

from .datasets import CaseFiles, case_labels
from .evaluation import (
    GradeAgreement,
    SliceScore,
    grade_agreement,
    score_slice,
    table2,
    table2_by_patient,
    table2_csv,
    table2_markdown,
)


@dataclass
class EvaluationReport:
    scores: list[SliceScore]
    fat_fractions: dict[str, tuple[float, float]]  # patient -> (truth, prediction) mean fat fraction %
    patient_of_case: dict[str, str]

    @property
    def grades(self) -> GradeAgreement:
        return grade_agreement(self.fat_fractions)

    @property
    def table(self):
        return table2(self.scores)

    @property
    def patient_table(self):
        return table2_by_patient(self.scores, self.patient_of_case)

    def markdown(self) -> str:
        return (
            "Per slice (mean ± SD [95 % CI] over all slices):\n\n" + table2_markdown(self.table)
            + "\nPer patient (mean of each patient's slices; mean ± SD [95 % CI] over patients):\n\n"
            + table2_markdown(self.patient_table) + "\nSimplified Goutallier grade per patient:\n\n"
            + self.grades.markdown()
        )

    def write(self, folder: Path, prefix: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / f"{prefix}table2.csv", table2_csv(self.table))
        write_text_atomic(folder / f"{prefix}table2_by_patient.csv", table2_csv(self.patient_table))
        write_text_atomic(folder / f"{prefix}table2.md", self.markdown())


def evaluate_cases(
    model: LoadedModel,
    cases: list[CaseFiles],
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> EvaluationReport:
    """Predict every case and compare with its labels, slice by slice and patient by patient."""
    scores: list[SliceScore] = []
    per_patient: dict[str, list] = {}
    for n, case in enumerate(cases):
        study = read_study(case.image)
        truth, _ = case_labels(case, study.series)
        prediction = predict_series(model, study.series, device=device)
        for index, (image_slice, t, p) in enumerate(zip(study.series.slices, truth, prediction)):
            scores += score_slice(t, p, image_slice.geometry.pixel_area_mm2, case.case_id, index)
        truth_summary = summarise(measure_labels(study.series, truth))
        predicted_summary = summarise(measure_labels(study.series, prediction))
        per_patient.setdefault(case.patient_id, []).append(
            (truth_summary.mean_fat_fraction_pct, predicted_summary.mean_fat_fraction_pct)
        )
        if progress:
            progress((n + 1) / len(cases), f"evaluating, case {n + 1}/{len(cases)}")
    fat_fractions = {
        patient: (sum(t for t, _ in pairs) / len(pairs), sum(p for _, p in pairs) / len(pairs))
        for patient, pairs in per_patient.items()
    }
    return EvaluationReport(scores, fat_fractions, {c.case_id: c.patient_id for c in cases})
