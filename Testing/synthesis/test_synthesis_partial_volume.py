"""In-plane partial volume (in_plane_supersampling): a slice drawn on a K-times finer grid, its image averaged
over each K x K block and its labels taken at each block's centre, with the fat truth of those labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.labels import LEFT, RIGHT
from ParaspinalSegTrainingLib.synthesis import SynthesisSettings
from ParaspinalSegTrainingLib.synthesis.generator import draw_patient, point_sampled_slice, synth_slice
from ParaspinalSegTrainingLib.synthesis.levels import parse_level

COARSE = SynthesisSettings(image_size=64, pixel_spacing_mm=(3.2, 3.2), contrast_probabilities=(("t2", 1.0),),
                           snr=(20.0, 30.0), resolution_factor=(1.0, 1.2), shape_source="procedural", seed=5)


def test_the_image_is_each_blocks_mean_and_the_labels_its_centre_of_the_same_draw_k_times_finer():
    k = 3
    settings = dataclasses.replace(COARSE, in_plane_supersampling=k)
    patient = draw_patient(np.random.default_rng(1), settings)
    made = synth_slice("L3", np.random.default_rng(2), settings, patient)
    fine = point_sampled_slice(
        parse_level("L3"), np.random.default_rng(2),
        dataclasses.replace(COARSE, image_size=64 * k, resolution_factor=(k, 1.2 * k)),
        dataclasses.replace(patient, pixel_spacing_mm=3.2 / k))
    assert made.image.shape == made.labels.shape == made.tissues.shape == (64, 64)
    assert made.pixel_spacing_mm == pytest.approx(3.2) and made.image.dtype == np.float32
    np.testing.assert_allclose(made.image, fine.image.reshape(64, k, 64, k).mean(axis=(1, 3)), rtol=1e-6)
    np.testing.assert_array_equal(made.labels, fine.labels[1::k, 1::k])
    np.testing.assert_array_equal(made.tissues, fine.tissues[1::k, 1::k])
    assert (made.labels > 0).sum() > 100  # both compartments are there


def test_the_fat_truth_is_the_coarse_labels_own():
    settings = dataclasses.replace(COARSE, in_plane_supersampling=4, fat_fraction_pct=(30.0, 40.0))
    made = synth_slice("L4", np.random.default_rng(3), settings)
    for side, fraction in ((RIGHT, made.fat_fraction_right_pct), (LEFT, made.fat_fraction_left_pct)):
        inside = np.isin(made.labels, side.labels)
        assert fraction == pytest.approx(100.0 * (made.labels[inside] == side.fat).mean())
    assert made.fat_fraction_pct == pytest.approx(100.0 * np.isin(made.labels, (RIGHT.fat, LEFT.fat)).sum()
                                                  / (made.labels > 0).sum())
    assert 10.0 < made.fat_fraction_pct < 60.0


def test_a_sub_pixel_count_out_of_range_is_refused():
    for bad in (0, 9):
        with pytest.raises(InputError, match=f"in_plane_supersampling={bad}: needs 1 to 8"):
            SynthesisSettings(in_plane_supersampling=bad)
