"""Simplified Goutallier classification (SGC) of a patient's mean compartment fat fraction.

Grade I below 10 %, grade II 10-50 %, grade III above 50 % (Baur et al. 2021). A value exactly at a
boundary goes to the lower grade: 10 % is grade I, 50 % is grade II. Fractions are compared after
rounding to 1e-6 percentage points, so that 10 % computed as 0.1 * 100 is still exactly 10 %.
A fraction within BOUNDARY_MARGIN_POINTS of a boundary gets a note: the grade may be the neighbouring one.
"""

from __future__ import annotations

import math

GRADE_BOUNDARIES_PCT = ((10.0, "I"), (50.0, "II"))
HIGHEST_GRADE = "III"
COMPARISON_DECIMALS = 6
# The patient's mean fat fraction is measured to about this many points: the goal the models are held to on
# the held-out synthetic domains (README, "The shipped model", has how far each model meets it). Nearer a
# boundary than this, the measurement cannot tell the grades apart.
BOUNDARY_MARGIN_POINTS = 3.0
BOUNDARY_NOTE_START = "grade near a boundary"


def sgc_grade(mean_fat_fraction_pct: float) -> str:
    """'I', 'II' or 'III' for a mean fat fraction in percent; '' when there is none (NaN)."""
    if math.isnan(mean_fat_fraction_pct):
        return ""
    if not 0.0 <= mean_fat_fraction_pct <= 100.0 + 1e-9:
        raise ValueError(f"fat fraction {mean_fat_fraction_pct} % lies outside 0-100 %")
    value = round(mean_fat_fraction_pct, COMPARISON_DECIMALS)
    for upper, grade in GRADE_BOUNDARIES_PCT:
        if value <= upper:
            return grade
    return HIGHEST_GRADE


def boundary_note(mean_fat_fraction_pct: float, margin_points: float = BOUNDARY_MARGIN_POINTS) -> str:
    """A warning sentence when the mean fat fraction lies within `margin_points` of a grade boundary
    (the grade may then be the neighbouring one); "" otherwise and when there is none (NaN)."""
    if math.isnan(mean_fat_fraction_pct):
        return ""
    grades = [grade for _, grade in GRADE_BOUNDARIES_PCT] + [HIGHEST_GRADE]
    for n, (boundary, _) in enumerate(GRADE_BOUNDARIES_PCT):
        if abs(mean_fat_fraction_pct - boundary) <= margin_points:
            other = grades[n + 1] if sgc_grade(mean_fat_fraction_pct) == grades[n] else grades[n]
            return (f"{BOUNDARY_NOTE_START}: the mean fat fraction, {mean_fat_fraction_pct:.1f} %, lies within "
                    f"{margin_points:g} points of the grade {grades[n]}/{grades[n + 1]} boundary at {boundary:g} %, "
                    f"about the error of its measurement; the grade may be {other}")
    return ""
