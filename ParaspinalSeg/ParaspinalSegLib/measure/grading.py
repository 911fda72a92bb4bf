"""Simplified Goutallier classification (SGC) of a patient's mean compartment fat fraction.

Grade I below 10 %, grade II 10-50 %, grade III above 50 % (Baur et al. 2021). A value exactly at a
boundary goes to the lower grade: 10 % is grade I, 50 % is grade II. Fractions are compared after
rounding to 1e-6 percentage points, so that 10 % computed as 0.1 * 100 is still exactly 10 %.
"""

from __future__ import annotations

import math

GRADE_BOUNDARIES_PCT = ((10.0, "I"), (50.0, "II"))
HIGHEST_GRADE = "III"
COMPARISON_DECIMALS = 6


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
