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


def relative_noise(k: int) -> float:
    """Mean over 8 slices like very_coarse_pixels' (3.1-3.6 mm, procedural shapes) of the noise's standard deviation
    over the body's mean: the same draw at SNR 15 less the draw with no noise to speak of (the same random numbers)."""
    from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings

    quiet = dataclasses.replace(held_out_settings("very_coarse_pixels"), bias_strength=0.0, ghost_probability=0.0,
                                wrap_probability=0.0, crop_probability=0.0, partial_volume_probability=0.0,
                                normalise=False, in_plane_supersampling=k, shape_source="procedural")
    ratios = []
    for seed in range(8):
        noisy, clean = (synth_slice("L3", np.random.default_rng(seed), dataclasses.replace(quiet, snr=(snr, snr)))
                        for snr in (15.0, 1e6))
        body = clean.tissues > 0
        ratios.append(np.std((noisy.image - clean.image)[body]) / np.mean(clean.image[body]))
    return float(np.mean(ratios))


def test_the_noise_keeps_the_pixels_snr_when_the_pixel_is_averaged():
    centre, area = relative_noise(1), relative_noise(5)
    assert 0.04 < centre < 0.09  # about 1 / 15, less the matrix reduction's share of the noise
    # the block mean is a low-pass of its own, so a little less: not K times the noise (the SNR divided by K)
    # nor K times less (white noise averaged)
    assert 0.7 < area / centre < 1.0
