"""Comparing fat methods against labelled truth: the scores' arithmetic and a run on phantom cases."""

import pytest
from helpers import write_phantom_dataset

from ParaspinalSegLib.modelfile import load_model
from ParaspinalSegLib.registry import resolve_model
from ParaspinalSegTrainingLib.datasets import find_cases
from ParaspinalSegTrainingLib.fatcomparison import compare_fat_methods, comparison_markdown, score_method


def test_score_method_gives_error_bias_and_grade_agreement():
    score = score_method([5.0, 30.0, 60.0, 48.0], [7.0, 28.0, 61.0, 52.0], "gmm", "truth")
    assert score.patients == 4
    assert score.mean_absolute_error_pp == pytest.approx((2 + 2 + 1 + 4) / 4)
    assert score.bias_pp == pytest.approx((2 - 2 + 1 + 4) / 4)
    assert score.grade_agreement_pct == pytest.approx(75.0)  # 48 % is grade II, 52 % grade III


def test_fat_methods_on_phantom_cases_of_known_fat(tmp_path):
    cases = find_cases(write_phantom_dataset(tmp_path / "set", cases=2, slices=2, size=128, spacing=2.0))
    scores = {(s.method, s.compartments): s for s in compare_fat_methods(load_model(resolve_model(None)), cases)}
    assert set(scores) == {("cnn", "model"), ("gmm", "model"), ("otsu", "model"), ("gmm", "truth"), ("otsu", "truth")}
    assert all(s.patients == 2 for s in scores.values())
    assert scores[("gmm", "truth")].mean_absolute_error_pp < 5.0  # partial volume at 10-18 % fat: a few points over
    assert "| gmm | truth | 2 |" in comparison_markdown(list(scores.values()))
