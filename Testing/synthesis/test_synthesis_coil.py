"""The spine coil's brightness behind the back: its exact profile, its settings, and the domain that holds it out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.labels import LEFT_MUSCLE, RIGHT_MUSCLE
from ParaspinalSegTrainingLib.synthesis import SynthesisSettings, synth_slice
from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings, training_settings
from ParaspinalSegTrainingLib.synthesis.intensities import CoilProfile, bias_field


def test_the_coil_brightens_the_back_by_its_gain_and_falls_off_over_its_depth():
    body = np.zeros((60, 40), dtype=bool)
    body[10:50] = True  # the back of the body at row 49
    coil = CoilProfile(probability=1.0, gain=(2.0, 2.0), falloff_mm=(40.0, 40.0))
    field = bias_field(body.shape, body, 1.5, 0.0, np.random.default_rng(3), coil)
    depth_mm = np.clip(49 - np.arange(60), 0, None) * 1.5
    expected = 1.0 + 2.0 * np.exp(-depth_mm / 40.0)
    np.testing.assert_allclose(field, np.repeat(expected[:, None], 40, axis=1), rtol=1e-12)
    assert field[49, 0] == pytest.approx(3.0) and field[49 - 40, 0] == pytest.approx(1.0 + 2.0 * np.exp(-1.5))


def test_a_slice_without_the_coil_has_no_profile():
    body = np.ones((30, 30), dtype=bool)
    field = bias_field(body.shape, body, 1.0, 0.0, np.random.default_rng(3), CoilProfile(probability=0.0))
    np.testing.assert_array_equal(field, np.ones((30, 30)))


def muscle_brightness_back_to_front(settings: SynthesisSettings, seed: int) -> float:
    """Mean raw brightness of the compartments' muscle in its back third over its front third."""
    slice_ = synth_slice("L3", np.random.default_rng(seed), settings)
    muscle = np.isin(slice_.labels, (RIGHT_MUSCLE, LEFT_MUSCLE))
    rows = np.nonzero(muscle)[0]
    front, back = np.percentile(rows, (33, 67))
    by_row = np.arange(muscle.shape[0])[:, None]
    return float(slice_.image[muscle & (by_row >= back)].mean() / slice_.image[muscle & (by_row <= front)].mean())


def test_the_strong_coil_domain_brightens_the_back_of_the_compartments_more_than_trainings_steepest_coil():
    quiet = {"normalise": False, "snr": (1000.0, 1000.0), "bias_strength": 0.0, "ghost_probability": 0.0,
             "wrap_probability": 0.0, "partial_volume_probability": 0.0, "fat_fraction_pct": (0.0, 0.0),
             "contrast_probabilities": (("t2", 1.0),), "contrast_per_slice": False}
    strong = SynthesisSettings.from_dict({**held_out_settings("strong_coil").to_dict(), **quiet})
    trained = training_settings(1)
    assert strong.coil_gain[0] > trained.coil_gain[1] and strong.coil_falloff_mm[1] <= trained.coil_falloff_mm[0]
    # the same anatomy under training's steepest coil (its highest gain at its shortest fall-off)
    steepest_trained = replace(strong, coil_gain=(trained.coil_gain[1],) * 2,
                               coil_falloff_mm=(trained.coil_falloff_mm[0],) * 2)
    for seed in range(4):
        excess = muscle_brightness_back_to_front(strong, seed) - 1.0
        assert excess > 1.5 * (muscle_brightness_back_to_front(steepest_trained, seed) - 1.0)


@pytest.mark.parametrize("change", [{"coil_probability": 1.5}, {"coil_gain": (2.0, 1.0)}, {"coil_falloff_mm": (0.0, 50.0)}])
def test_impossible_coil_settings_are_refused_by_name(change):
    name = next(iter(change))
    with pytest.raises(InputError, match=name):
        SynthesisSettings(**change)
