"""Simplified Goutallier grade at and around each boundary."""

import math

import pytest

from ParaspinalSegLib.measure.grading import sgc_grade


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
