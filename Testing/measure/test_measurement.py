"""Areas on shapes of known size, on anisotropic and oblique grids; fat fractions; the patient mean."""

import math

import numpy as np
import pytest

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.measure.measurement import measure_slice, summarise
from ParaspinalSegLib.geometry import SliceGeometry


def oblique_geometry(spacing, shape, tilt_deg=0.0, yaw_deg=0.0):
    t, y = math.radians(tilt_deg), math.radians(yaw_deg)
    row_dir = (math.cos(y), math.sin(y), 0.0)
    col_dir = (-math.sin(y) * math.cos(t), math.cos(y) * math.cos(t), -math.sin(t))
    return SliceGeometry((-50.0, -30.0, 12.0), row_dir, col_dir, spacing, shape)


@pytest.mark.parametrize("tilt,yaw", [(0, 0), (22, 0), (-15, 10)])
def test_rectangle_of_known_size_on_anisotropic_grid(tilt, yaw):
    """A 30 mm x 20 mm rectangle drawn with 0.75 mm rows and 1.25 mm columns is 600 mm², however tilted."""
    geometry = oblique_geometry((0.75, 1.25), (80, 60), tilt, yaw)
    labels = np.zeros(geometry.shape, dtype=np.uint8)
    labels[10:50, 5:21] = RIGHT_MUSCLE  # 40 rows x 0.75 = 30 mm, 16 columns x 1.25 = 20 mm
    m = measure_slice(labels, geometry, slice_index=0)
    assert m.right.total_csa_mm2 == pytest.approx(600.0, abs=1e-9)
    assert m.right.muscle_csa_mm2 == pytest.approx(600.0, abs=1e-9)
    assert m.left.total_csa_mm2 == 0 and math.isnan(m.left.fat_fraction_pct)


def test_disc_area_matches_pixel_count_and_pi_r_squared():
    """A disc of radius 25 mm on a 0.5 x 0.8 mm grid: CSA = pixel count x pixel area, close to pi r²."""
    spacing = (0.5, 0.8)
    geometry = oblique_geometry(spacing, (160, 100), tilt_deg=18)
    rows, columns = np.mgrid[0:160, 0:100]
    disc = ((rows - 80) * spacing[0]) ** 2 + ((columns - 50) * spacing[1]) ** 2 <= 25.0**2
    labels = np.where(disc, LEFT_MUSCLE, 0).astype(np.uint8)
    m = measure_slice(labels, geometry, slice_index=3)
    assert m.left.total_csa_mm2 == pytest.approx(disc.sum() * 0.4, rel=1e-12)
    assert m.left.total_csa_mm2 == pytest.approx(math.pi * 25.0**2, rel=0.01)


def test_fat_fraction_per_side_and_both():
    geometry = oblique_geometry((1.0, 1.0), (20, 20))
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[0:10, 0:10] = RIGHT_MUSCLE  # 100 pixels, 10 of them fat below
    labels[0, 0:10] = RIGHT_FAT
    labels[10:20, 10:20] = LEFT_MUSCLE  # 100 pixels, 50 fat
    labels[10:15, 10:20] = LEFT_FAT
    m = measure_slice(labels, geometry, slice_index=0)
    assert m.right.fat_fraction_pct == 10.0
    assert m.left.fat_fraction_pct == 50.0
    assert m.both.fat_fraction_pct == 30.0
    assert (m.right.fat_csa_mm2, m.right.muscle_csa_mm2, m.both.total_csa_mm2) == (10.0, 90.0, 200.0)


def test_patient_mean_skips_slices_without_compartment_and_grades():
    geometry = oblique_geometry((1.0, 1.0), (10, 10))
    slices = []
    for index, fat_rows in enumerate([1, 3, None]):
        labels = np.zeros((10, 10), dtype=np.uint8)
        if fat_rows is not None:
            labels[:, :5] = RIGHT_MUSCLE
            labels[:fat_rows, :5] = RIGHT_FAT
        slices.append(measure_slice(labels, geometry, slice_index=index))
    summary = summarise(slices)
    assert summary.mean_fat_fraction_right_pct == pytest.approx(20.0)  # (10 % + 30 %) / 2
    assert summary.slices_right == 2 and summary.slices_left == 0
    assert math.isnan(summary.mean_fat_fraction_left_pct)
    assert summary.mean_fat_fraction_pct == pytest.approx(20.0)
    assert summary.grade == "II"


def test_compartment_dice_is_the_mean_of_the_sides_and_skips_slices_empty_in_both():
    from ParaspinalSegLib.measure.measurement import mean_compartment_dice

    truth = np.zeros((4, 8), dtype=np.uint8)
    truth[:2, :4] = 1  # right compartment, 8 pixels
    truth[:1, 4:] = 3  # left compartment, 4 pixels
    prediction = np.zeros_like(truth)
    prediction[:1, :4] = 2  # right: 4 of its 8 pixels (fat counts as compartment): Dice 8/12
    prediction[:1, 4:] = 4  # left: exact, Dice 1
    empty = np.zeros_like(truth)
    assert mean_compartment_dice([truth, empty, truth], [prediction, empty, truth]) == pytest.approx(
        ((8 / 12 + 1) / 2 + 1) / 2)


def test_compartment_dice_of_a_prediction_with_the_sides_swapped_is_zero():
    from ParaspinalSegLib.measure.measurement import mean_compartment_dice

    truth = np.zeros((4, 8), dtype=np.uint8)
    truth[:, :4] = 1
    truth[:, 4:] = 3
    swapped = np.where(truth == 1, 3, 1).astype(np.uint8)  # same pixels, each on the other side
    assert mean_compartment_dice([truth], [truth]) == 1.0
    assert mean_compartment_dice([truth], [swapped]) == 0.0


def test_compartment_dice_with_one_side_missing_in_the_prediction():
    from ParaspinalSegLib.measure.measurement import sided_dice

    truth = np.zeros((4, 8), dtype=np.uint8)
    truth[:, :4] = 1
    truth[:, 4:] = 3
    right_only = np.where(truth == 1, 1, 0).astype(np.uint8)
    assert sided_dice(truth, right_only) == 0.5  # right 1, left 0
    assert math.isnan(sided_dice(np.zeros_like(truth), np.zeros_like(truth)))
