"""Two models compared patient by patient on the same held-out draws (`heldout --patients-csv`, `heldout-pair`)."""

from __future__ import annotations

import math

import pytest
from helpers import run_cli
from ParaspinalSegLib.errors import InputError
from ParaspinalSegTrainingLib.heldout import DomainFigures, patient_table_csv
from ParaspinalSegTrainingLib.pairing import paired_fat, read_patient_table


def figures_with_errors(errors: list[float], inside_error: float) -> list[DomainFigures]:
    """Ten held-out patients at a true 20 % with the given errors, and one patient of a domain inside
    training (never pooled) with its own error."""
    held = DomainFigures("gre_in_phase", "contrast")
    held.fat = {f"p{k}": (20.0, {"cnn": 20.0 + e}) for k, e in enumerate(errors)}
    inside = DomainFigures("coarse_noisy", "resolution", inside_training="2.4.0")
    inside.fat = {"p0": (20.0, {"cnn": 20.0 + inside_error})}
    return [held, inside]


def write_table(path, figures) -> str:
    path.write_text(patient_table_csv(figures))
    return str(path)


def test_the_pair_counts_only_the_patients_that_differ_and_tests_them_exactly(tmp_path):
    # a: every patient 0.5 points off; b: six of them 4 points off (lost), four still 0.5 off
    a = write_table(tmp_path / "a.csv", figures_with_errors([0.5] * 10, inside_error=9.0))
    b = write_table(tmp_path / "b.csv", figures_with_errors([4.0] * 6 + [-0.5] * 4, inside_error=0.0))
    result = paired_fat(read_patient_table(a, "cnn"), read_patient_table(b, "cnn"))
    assert (result.patients, result.domains) == (10, 1)  # the patient inside training is not pooled
    assert (result.within_a, result.within_b, result.gained, result.lost) == (10, 4, 0, 6)
    assert result.sign_test_p == pytest.approx(2 * 0.5 ** 6)  # six of six discordant pairs one way
    assert result.noise_bound == pytest.approx(1.96 * 6 ** 0.5) and result.loses_beyond_noise  # 6 > 4.80
    assert result.mean_abs_error_a == pytest.approx(0.5) and result.mean_abs_error_b == pytest.approx(2.6)
    assert result.error_change == pytest.approx(2.1)
    # paired differences: six of 3.5, four of 0; sd 1.8074, t(0.975, 9) 2.2622: half-width 1.2930
    low, high = result.error_change_ci95
    assert low == pytest.approx(2.1 - 1.2930, abs=1e-3) and high == pytest.approx(2.1 + 1.2930, abs=1e-3)


def test_a_pair_without_discordant_patients_has_p_one(tmp_path):
    a = write_table(tmp_path / "a.csv", figures_with_errors([1.0] * 10, 0.0))
    b = write_table(tmp_path / "b.csv", figures_with_errors([-2.0] * 10, 0.0))
    result = paired_fat(read_patient_table(a, "cnn"), read_patient_table(b, "cnn"))
    assert (result.gained, result.lost, result.sign_test_p) == (0, 0, 1.0)
    assert result.noise_bound == 0 and not result.loses_beyond_noise
    assert result.error_change == pytest.approx(1.0) and not math.isnan(result.error_change_ci95[0])


def test_tables_of_other_draws_or_files_of_another_kind_are_refused(tmp_path):
    a = read_patient_table(write_table(tmp_path / "a.csv", figures_with_errors([0.0] * 10, 0.0)), "cnn")
    other = figures_with_errors([0.0] * 10, 0.0)
    other[0].fat["p3"] = (25.0, {"cnn": 25.0})  # another truth: another draw
    with pytest.raises(InputError, match="truth differs for 1 patients"):
        paired_fat(a, read_patient_table(write_table(tmp_path / "b.csv", other), "cnn"))
    with pytest.raises(InputError, match="share no held-out patient"):
        paired_fat(a, {})
    (tmp_path / "bad.csv").write_text("domain,patient\nx,y\n")
    with pytest.raises(InputError, match=r"bad.csv: not a per-patient table .*missing column pooled"):
        read_patient_table(tmp_path / "bad.csv", "cnn")
    with pytest.raises(InputError, match=r"a.csv: not a per-patient table .*missing column gmm_fat_pct"):
        read_patient_table(tmp_path / "a.csv", "gmm")


def test_heldout_pair_prints_the_paired_figures_and_refuses_bad_input_without_a_traceback(tmp_path, capsys):
    a = write_table(tmp_path / "a.csv", figures_with_errors([0.5] * 10, 0.0))
    b = write_table(tmp_path / "b.csv", figures_with_errors([4.0] * 6 + [-0.5] * 4, 0.0))
    code, out, err = run_cli(capsys, "heldout-pair", a, b)
    assert code == 0, err
    assert "10 held-out patients in 1 domains" in out and "within for b only: 0; for a only: 6" in out
    assert "p = 0.0312" in out and "b - a: +2.100 points" in out
    assert "lost minus gained: 6 (beyond noise above 4.8, 1.96 x the square root of 6): b loses fat beyond noise" in out
    (tmp_path / "broken.csv").write_text("domain,patient,pooled,true_fat_pct,cnn_fat_pct\nd,p,1,twenty,3\n")
    code, _, err = run_cli(capsys, "heldout-pair", a, tmp_path / "broken.csv")
    assert code != 0 and "broken.csv: a fat fraction is not a number" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "heldout-pair", a, b, "--points", "0")
    assert code != 0 and "--points 0" in err
