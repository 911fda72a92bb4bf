"""Simplified Goutallier grade at and around each boundary, and the note on a grade near one."""

import math

import pytest

from ParaspinalSegLib.measure.grading import BOUNDARY_MARGIN_POINTS, boundary_note, sgc_grade
from ParaspinalSegLib.measure.quality import grade_caution


@pytest.mark.parametrize(
    "fraction,grade",
    [
        (0.0, "I"),
        (9.99, "I"),
        (10.0, "I"),  # exactly at the boundary: the lower grade
        (0.1 * 100, "I"),  # 10.000000000000002 in floating point is still 10 %
        (10.00001, "II"),
        (30.0, "II"),
        (50.0, "II"),
        (50.00001, "III"),
        (100.0, "III"),
    ],
)
def test_grade_boundaries(fraction, grade):
    assert sgc_grade(fraction) == grade


def test_no_compartment_has_no_grade():
    assert sgc_grade(math.nan) == ""


def test_fraction_outside_percent_range_is_refused():
    with pytest.raises(ValueError, match="outside 0-100"):
        sgc_grade(120.0)


@pytest.mark.parametrize(
    "fraction,boundary,other",
    [
        (7.0, "I/II boundary at 10 %", "may be II"),  # 3 points below: still inside the margin
        (10.0, "I/II boundary at 10 %", "may be II"),
        (12.5, "I/II boundary at 10 %", "may be I"),
        (47.2, "II/III boundary at 50 %", "may be III"),
        (50.0, "II/III boundary at 50 %", "may be III"),  # exactly 50 % is grade II
        (53.0, "II/III boundary at 50 %", "may be II"),
    ],
)
def test_a_grade_near_a_boundary_gets_a_note_naming_the_neighbouring_grade(fraction, boundary, other):
    note = boundary_note(fraction)
    assert note.startswith("grade near a boundary") and boundary in note and note.endswith(other)
    assert f"{fraction:.1f} %" in note


@pytest.mark.parametrize("fraction", [0.0, 6.9, 13.1, 30.0, 46.9, 53.1, 90.0, math.nan])
def test_a_grade_clear_of_the_boundaries_gets_no_note(fraction):
    assert BOUNDARY_MARGIN_POINTS == 3.0
    assert boundary_note(fraction) == ""


def test_the_grade_caution_tells_a_boundary_from_a_failed_segmentation():
    near = boundary_note(48.0)
    assert grade_caution([near]) == "check the 1 warning(s): the grade lies near a boundary"
    assert grade_caution([near, "left compartment missing on 2 of 12 slices (3, 4) where the right is found"]) == (
        "check the 2 warning(s): the segmentation may have failed")


@pytest.mark.parametrize("fat_fraction,note", [(0.48, "may be III"), (0.30, ""), (0.115, "may be I")])
def test_measuring_a_phantom_of_known_fat_warns_only_near_a_boundary(fat_fraction, note):
    """Phantom slices whose compartments hold exactly this share of fat (to a pixel): the measured
    mean fraction, the grade's note among the warnings, and no quality flag (the segmentation is fine)."""
    from helpers import phantom_series

    from ParaspinalSegLib.pipeline import measure_series

    series, labels = phantom_series(slices=3, fat_fraction=fat_fraction)
    result = measure_series(series, labels, needs_fat=False)
    assert result.summary.mean_fat_fraction_pct == pytest.approx(100 * fat_fraction, abs=0.5)
    assert result.flags == ()
    notes = [w for w in result.warnings if w.startswith("grade near a boundary")]
    assert [n.endswith(note) for n in notes] == ([True] if note else [])
