"""The real-case figures: outline offset on shapes of known offset, per-level precision, recall and CSA bias on
masks of known overlap, the Markdown table, and `paraspinal validate-real` without the real cases."""

import math

import numpy as np
import pytest
from helpers import SHIPPED_MODEL, run_cli

from ParaspinalSegLib.labels import LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegTrainingLib.real_validation import (
    LevelFigures,
    RealCaseFigures,
    figures_markdown,
    level_figures,
    outline,
    outline_offset_mm,
    score_sides,
)


def band(rows: range, shape=(40, 60)) -> np.ndarray:
    """Rows `rows` over the full width: the only outline is top and bottom (the field's edge is none)."""
    mask = np.zeros(shape, bool)
    mask[rows.start:rows.stop] = True
    return mask


def test_the_edge_of_the_field_of_view_is_no_outline():
    edge = outline(band(range(10, 30)))
    assert set(np.nonzero(edge)[0]) == {10, 29}
    assert edge.sum() == 2 * 60


@pytest.mark.parametrize("rows, expected_pixels", [(range(10, 30), 0), (range(8, 32), 2), (range(11, 29), -1),
                                                   (range(13, 27), -3)])
def test_outline_offset_is_the_growth_in_pixels_times_the_spacing(rows, expected_pixels):
    truth = band(range(10, 30))
    assert outline_offset_mm(truth, band(rows), (0.8, 0.8)) == pytest.approx(expected_pixels * 0.8)


def test_outline_offset_uses_the_spacing_between_rows_for_an_outline_across_rows():
    assert outline_offset_mm(band(range(10, 30)), band(range(7, 33)), (0.5, 2.0)) == pytest.approx(1.5)


def test_outline_offset_of_a_disc_grown_by_two_pixels_is_about_two_pixels():
    rows, columns = np.mgrid[:101, :101]
    radius = np.hypot(rows - 50, columns - 50)
    offset = outline_offset_mm(radius <= 20, radius <= 22, (1.0, 1.0))
    assert offset == pytest.approx(2.0, abs=0.3)


def test_outline_offset_is_undefined_without_truth_or_prediction():
    empty = np.zeros((10, 10), bool)
    assert math.isnan(outline_offset_mm(empty, band(range(2, 5), (10, 10)), (1.0, 1.0)))
    assert math.isnan(outline_offset_mm(band(range(2, 5), (10, 10)), empty, (1.0, 1.0)))


def side_slices():
    """Slice 0: right truth 10x10 (muscle + fat), prediction its left half; left identical 10x10.
    Slice 1: right truth 10x10, no prediction."""
    truth = [np.zeros((30, 40), np.uint8) for _ in range(2)]
    prediction = [np.zeros((30, 40), np.uint8) for _ in range(2)]
    truth[0][5:15, 2:7], truth[0][5:15, 7:12] = RIGHT_MUSCLE, RIGHT_FAT
    prediction[0][5:15, 2:7] = RIGHT_MUSCLE
    truth[0][5:15, 25:35] = prediction[0][5:15, 25:35] = LEFT_MUSCLE
    truth[1][5:15, 2:12] = RIGHT_MUSCLE
    return truth, prediction


def test_side_scores_on_masks_of_known_overlap():
    truth, prediction = side_slices()
    scores = score_sides(truth, prediction, [(1.0, 1.0)] * 2)
    right, left = scores["right"], scores["left"]
    assert [s.slice_index for s in right] == [0, 1] and [s.slice_index for s in left] == [0]
    assert right[0].dice == pytest.approx(2 * 50 / 150)
    assert (right[0].precision, right[0].recall, right[0].csa_error_pct) == (1.0, 0.5, -50.0)
    assert (left[0].dice, left[0].outline_offset_mm) == (1.0, 0.0)
    assert right[1].dice == 0.0 and math.isnan(right[1].precision) and right[1].csa_error_pct == -100.0
    assert math.isnan(right[1].outline_offset_mm)


def test_level_figures_average_the_sides_and_slices_of_each_group():
    truth, prediction = side_slices()
    levels = level_figures(score_sides(truth, prediction, [(1.0, 1.0)] * 2),
                           {"lower": range(0, 1), "upper": range(1, 2), "absent": range(5, 9)})
    assert set(levels) == {"lower", "upper"}
    lower, upper = levels["lower"], levels["upper"]
    assert lower.slices == 1
    assert lower.dice == pytest.approx(round((2 * 50 / 150 + 1.0) / 2, 4))
    assert lower.dice_ci95 == (lower.dice, lower.dice)  # one slice: no spread
    assert (lower.precision, lower.recall, lower.csa_bias_pct) == (1.0, 0.75, -25.0)
    assert (upper.dice, upper.recall, upper.csa_bias_pct) == (0.0, 0.0, -100.0)
    assert math.isnan(upper.precision)


def test_the_markdown_table_has_a_row_per_level_and_a_line_per_case():
    figures = RealCaseFigures(
        case="case_a", levels="L3-S1", slices=2, dice_right=0.8, dice_left=0.9, dice_per_slice=[0.8, 0.9],
        per_level={"S1": LevelFigures(1, 0.8, (0.7, 0.9), 0.9, 0.7, -12.5, -1.25),
                   "L4": LevelFigures(1, 0.9, (0.85, 0.95), 0.95, 0.85, -5.0, -0.5)},
        csa_error_pct_mean=8.75, fat_fraction_pct={"cnn": 12.0, "gmm": 20.5},
    )
    table = figures_markdown([figures])
    assert "| case_a | S1 | 1 | 0.800 [0.700, 0.900] | 0.900 | 0.700 | -12.5 | -1.25 |" in table
    assert "| case_a | L4 | 1 | 0.900 [0.850, 0.950] | 0.950 | 0.850 | -5.0 | -0.50 |" in table
    assert "Dice right 0.800, left 0.900; CSA error per slice 8.8 %; fat fraction cnn 12.0 %, gmm 20.5 %" in table
    assert "  Dice per slice, inferior to superior: 0.800 0.900" in table
    assert figures.to_dict()["dice_per_level"] == {"S1": 0.8, "L4": 0.9}


def test_validate_real_without_the_real_cases_says_where_it_looked(capsys, tmp_path):
    code, out, err = run_cli(capsys, "validate-real", SHIPPED_MODEL, "--shared", tmp_path)
    assert code != 0
    assert str(tmp_path / "data" / "real") in err and "musclemap_sub0001" in err
    assert "Traceback" not in err + out
