"""The fat-pixel report (bench/fat_pixels.py): each kind of disagreement counted on label maps of known layout."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from ParaspinalSegLib.labels import LEFT, RIGHT

spec = importlib.util.spec_from_file_location("fat_pixels", Path(__file__).parents[2] / "bench" / "fat_pixels.py")
fat_pixels = sys.modules["fat_pixels"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fat_pixels)


def test_each_disagreement_is_counted_where_it_was_drawn():
    truth = np.zeros((10, 10), np.uint8)
    truth[0:4, 0:5] = RIGHT.muscle      # 20 muscle
    truth[4:6, 0:5] = RIGHT.fat         # 10 fat
    truth[0:2, 5:10] = LEFT.fat         # 10 fat
    prediction = truth.copy()
    prediction[4, 0:3] = RIGHT.muscle   # 3 fat called muscle
    prediction[5, 0:2] = 0              # 2 fat called background
    prediction[0, 0:4] = RIGHT.fat      # 4 muscle called fat
    prediction[9, 0:6] = LEFT.fat       # 6 background called fat
    counts = fat_pixels.slice_counts(truth, prediction)
    assert (counts.true_fat, counts.true_muscle) == (20, 20)
    wrong = (counts.fat_as_muscle, counts.fat_as_background, counts.muscle_as_fat, counts.background_as_fat)
    assert wrong == (3, 2, 4, 6)
    assert (counts.predicted_fat, counts.predicted_muscle) == (20 - 5 + 4 + 6, 20 - 4 + 3)
    assert counts.true_fat_pct == 50.0


def test_a_band_sums_its_patients_and_reports_shares_of_its_true_fat():
    band = fat_pixels.Band(10, 20)
    for errors in ((10, 1), (30, 3)):
        band.counts.add(fat_pixels.PixelCounts(true_fat=100, true_muscle=400, predicted_fat=110, predicted_muscle=390,
                                               fat_as_background=errors[0], background_as_fat=errors[1]))
    band.errors += [1.0, -4.0]
    cells = [c.strip() for c in band.row().split("|")[1:-1]]
    assert cells[:4] == ["10-20 %", "2", "-1.50", "1"]
    assert cells[5] == "20.0 / 2.0" and cells[6] == "+0.0" and cells[7] == "+10.0"


def test_the_per_slice_tables_give_each_band_and_the_lean_slices_of_each_domain():
    true = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 20.0, 40.0])
    measured = true + np.array([1.0, 1.0, 1.0, 1.0, -2.0, -2.0, 0.0, 4.0])
    domains = np.array(["a", "a", "b", "b", "a", "b", "a", "b"])
    lines = fat_pixels.slice_agreement(domains, true, measured).splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines
            if line.startswith("| ") and "slices" not in line}
    assert rows["0-5 %"] == ["4", "1.00", "+1.00", "1.00"]     # a constant offset: r 1
    assert rows["5-10 %"] == ["2", "2.00", "-2.00", "nan"]      # too few slices for r
    assert rows["10-30 %"][:3] == ["1", "0.00", "+0.00"] and rows["30-100 %"][:3] == ["1", "4.00", "+4.00"]
    assert rows["a"] == ["3", "1.33", "+0.00", "0.94"]          # 1, 2, 6 read 2, 3, 4: r = 5 / sqrt(14 x 2)
    assert rows["b"][:3] == ["3", "1.33", "+0.00"]


def test_a_slice_without_a_measured_fat_fraction_is_left_out_of_the_per_slice_tables():
    true, domains = np.array([1.0, 2.0, 3.0, 4.0]), np.array(["a", "a", "a", "a"])
    lines = fat_pixels.slice_agreement(domains, true, np.array([2.0, 3.0, np.nan, 5.0])).splitlines()
    assert "| 0-5 % | 3 | 1.00 | +1.00 | 1.00 |" in lines and "| a | 3 | 1.00 | +1.00 | 1.00 |" in lines
