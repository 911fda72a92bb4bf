"""Comparing fat methods against labelled truth: the scores' arithmetic and a run on phantom cases."""

import pytest
from helpers import write_phantom_dataset

from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.network.registry import resolve_model
from ParaspinalSegTrainingLib.datasets import find_cases
from ParaspinalSegTrainingLib.fatcomparison import (
    case_fat_fractions, compare_fat_methods, comparison_markdown, score_method)


def test_score_method_gives_error_bias_and_grade_agreement():
    score = score_method([5.0, 30.0, 60.0, 48.0], [7.0, 28.0, 61.0, 52.0], "gmm", "truth")
    assert score.patients == 4
    assert score.mean_absolute_error_pp == pytest.approx((2 + 2 + 1 + 4) / 4)
    assert score.bias_pp == pytest.approx((2 - 2 + 1 + 4) / 4)
    assert score.grade_agreement_pct == pytest.approx(75.0)  # 48 % is grade II, 52 % grade III


def test_fat_methods_on_phantom_cases_of_known_fat(tmp_path):
    cases = find_cases(write_phantom_dataset(tmp_path / "set", cases=2, slices=2, size=128, spacing=2.0))
    model = load_model(resolve_model(None))
    scores = {(s.method, s.compartments): s for s in compare_fat_methods(model, cases)}
    assert set(scores) == {("cnn", "model"), ("gmm", "model"), ("otsu", "model"), ("gmm", "truth"), ("otsu", "truth")}
    per_case = [case_fat_fractions(model, case) for case in cases]
    truth = [fractions[("truth", "truth")] for fractions in per_case]
    for (method, compartments), score in scores.items():  # every row: the cases' own fractions, scored
        expected = score_method(truth, [f[(method, compartments)] for f in per_case], method, compartments)
        assert score == pytest.approx(expected), (method, compartments)
    # The phantoms' fat streaks have blurred edges: inside the true compartments, image analysis counts some of
    # them as fat on every case. (Inside the model's compartments the outcome also depends on where the model puts
    # the border, so that sign is not a property of the methods: 2.3.0's otsu is below the truth on one case.)
    for method in ("gmm", "otsu"):
        score = scores[(method, "truth")]
        assert score.bias_pp == pytest.approx(score.mean_absolute_error_pp) and score.bias_pp > 0, method
    # Image analysis inside the true compartments does not depend on the shipped model: within 5 points here.
    # (The model's own fat is measured against known truth on the held-out domains: test_shipped_model.)
    assert all(scores[(method, "truth")].bias_pp < 5.0 for method in ("gmm", "otsu"))
    assert "| gmm | truth | 2 |" in comparison_markdown(list(scores.values()))
