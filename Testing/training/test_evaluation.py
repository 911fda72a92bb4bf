"""Evaluation metrics on hand-made masks with known Dice, CSA error, precision and recall."""

import math

import numpy as np
import pytest

from ParaspinalSegTrainingLib.evaluation import grade_agreement, score_slice, summarise_values, table2, table2_markdown


def test_known_overlap_gives_exact_figures():
    truth = np.zeros((10, 10), dtype=np.uint8)
    prediction = np.zeros((10, 10), dtype=np.uint8)
    truth[0:4, 0:5] = 1  # 20 pixels right muscle
    truth[0:1, 0:5] = 2  # 5 of them fat
    prediction[0:4, 0:5] = 1
    prediction[3:5, 0:5] = 1  # 25 pixels predicted compartment, 20 correct
    prediction[0:2, 0:5] = 2  # 10 predicted fat, 5 correct
    scores = {s.structure: s for s in score_slice(truth, prediction, 0.5, "case", 0)}
    overall = scores["overall muscle"]
    assert overall.dice == pytest.approx(2 * 20 / 45)
    assert overall.csa_error_pct == pytest.approx(25.0)
    assert (overall.precision, overall.recall) == (pytest.approx(0.8), 1.0)
    assert (overall.csa_truth_mm2, overall.csa_prediction_mm2) == (10.0, 12.5)
    fat = scores["fat"]
    assert fat.dice == pytest.approx(2 * 5 / 15) and fat.csa_error_pct == pytest.approx(100.0)
    muscle = scores["muscle tissue"]  # truth 15 (rows 1-3), prediction 15 (rows 2-4): 10 shared
    assert muscle.dice == pytest.approx(2 * 10 / 30) and muscle.csa_error_pct == 0.0


def test_sides_count_apart_so_a_swapped_prediction_scores_zero():
    truth = np.zeros((10, 10), dtype=np.uint8)
    truth[:, :5] = 1
    truth[:2, :5] = 2
    truth[:, 5:] = 3
    truth[:2, 5:] = 4
    swapped = np.select([truth == 1, truth == 2, truth == 3, truth == 4], [3, 4, 1, 2], 0).astype(np.uint8)
    for score in score_slice(truth, swapped, 1.0, "case", 0):
        assert (score.dice, score.precision, score.recall, score.csa_error_pct) == (0.0, 0.0, 0.0, 0.0), score.structure


def test_dice_is_the_mean_of_the_right_and_left_dice():
    truth = np.zeros((10, 10), dtype=np.uint8)
    truth[:4, :5] = 1  # right 20 pixels
    truth[:2, 5:] = 3  # left 10 pixels
    prediction = truth.copy()
    prediction[:2, :5] = 0  # right: 10 of 20 predicted, Dice 2*10/30; left exact
    overall = score_slice(truth, prediction, 1.0, "case", 0)[0]
    assert overall.dice == pytest.approx((2 * 10 / 30 + 1) / 2)
    assert (overall.precision, overall.recall) == (1.0, pytest.approx(20 / 30))


def test_empty_masks_leave_figures_undefined_not_perfect():
    empty = np.zeros((5, 5), dtype=np.uint8)
    score = score_slice(empty, empty, 1.0, "c", 0)[0]
    assert math.isnan(score.dice) and math.isnan(score.csa_error_pct)
    table = table2([score])
    assert table["overall muscle"]["dice"].n == 0 and "n/a" in table2_markdown(table)


def test_confidence_interval_of_the_mean():
    s = summarise_values([1.0, 2.0, 3.0, 4.0, math.nan])
    assert (s.mean, s.n) == (2.5, 4)
    assert s.sd == pytest.approx(1.2909944)
    assert s.ci_high - s.mean == pytest.approx(3.182446 * 1.2909944 / 2, rel=1e-5)


def test_grade_confusion_matrix_and_accuracy():
    agreement = grade_agreement({"a": (5.0, 8.0), "b": (30.0, 9.0), "c": (60.0, 55.0), "d": (10.0, 10.0)})
    assert agreement.confusion["I"]["I"] == 2 and agreement.confusion["II"]["I"] == 1
    assert agreement.confusion["III"]["III"] == 1 and agreement.accuracy == 0.75


def test_patient_table_counts_each_patient_once():
    from ParaspinalSegTrainingLib.evaluation import table2_by_patient

    truth = np.zeros((4, 4), dtype=np.uint8)
    truth[:2] = 1
    perfect = score_slice(truth, truth, 1.0, "a1", 0) + score_slice(truth, truth, 1.0, "a2", 0)
    half = np.zeros((4, 4), dtype=np.uint8)
    half[:1] = 1  # Dice 2*4/(8+4) = 2/3
    scores = perfect + score_slice(truth, half, 1.0, "b", 0)
    by_patient = table2_by_patient(scores, {"a1": "A", "a2": "A", "b": "B"})["overall muscle"]["dice"]
    assert by_patient.n == 2 and by_patient.mean == pytest.approx((1 + 2 / 3) / 2)
    by_slice = table2(scores)["overall muscle"]["dice"]
    assert by_slice.n == 3 and by_slice.mean == pytest.approx((2 + 2 / 3) / 3)


def test_validation_dice_of_training_sees_sides():
    from ParaspinalSegTrainingLib.training import dice_of_counts, structure_counts

    def structure_dice(prediction, truth):
        return dice_of_counts(structure_counts(prediction, truth))

    truth = np.zeros((2, 6, 6), dtype=np.uint8)
    truth[:, :, :3] = 1
    truth[:, :, 3:] = 3
    swapped = np.where(truth == 1, 3, 1).astype(np.uint8)
    assert structure_dice(truth, truth)["overall muscle"] == 1.0
    assert structure_dice(swapped, truth)["overall muscle"] == 0.0
    assert math.isnan(structure_dice(swapped, truth)["fat"])  # no fat in either
