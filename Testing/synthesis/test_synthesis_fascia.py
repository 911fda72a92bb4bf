"""The fascia's contrast: its share of the tendon-to-muscle difference, on a tissue map of known layout, and the
held-out domain that draws it faint."""

from __future__ import annotations

import numpy as np
import pytest

from ParaspinalSegLib.errors import InputError
from ParaspinalSegTrainingLib.synthesis import SynthesisSettings
from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings, training_settings
from ParaspinalSegTrainingLib.synthesis.intensities import CoilProfile, draw_contrast, fade_fascia, render_image
from ParaspinalSegTrainingLib.synthesis.tissues import COMPARTMENT_MUSCLE as MUSCLE, Tissue


def test_fading_keeps_the_share_of_the_fascias_difference_from_the_compartments_muscle():
    means, textures = np.zeros(256), np.zeros(256)
    means[list(MUSCLE)] = (0.2, 0.3, 0.2, 0.3)  # their mean 0.25
    textures[list(MUSCLE)] = 0.04
    means[Tissue.FASCIA], textures[Tissue.FASCIA] = 0.05, 0.02
    for share, mean, texture in ((1.0, 0.05, 0.02), (0.25, 0.2, 0.035), (0.0, 0.25, 0.04)):
        m, t = means.copy(), textures.copy()
        fade_fascia(m, t, share)
        assert m[Tissue.FASCIA] == pytest.approx(mean) and t[Tissue.FASCIA] == pytest.approx(texture)
        np.testing.assert_array_equal(np.delete(m, Tissue.FASCIA), np.delete(means, Tissue.FASCIA))


def band_over_muscle(fascia_contrast: tuple[float, float], seed: int) -> float:
    """Mean brightness of the middle of a 24-pixel band of fascia between the compartments' four muscles (128
    rows each) and wall muscle, over those muscles', in a quiet T2 image (no noise to speak of, no bias, no
    coil; the regions large enough that the texture, a few pixels across, averages out to about 1 %)."""
    tissues = np.repeat(np.array(MUSCLE, dtype=np.uint8), 128)[:, None].repeat(128, axis=1)
    tissues[:, 80:] = Tissue.WALL_MUSCLE
    tissues[:, 56:80] = Tissue.FASCIA
    rng = np.random.default_rng(seed)
    image = render_image(tissues, draw_contrast("t2", rng), 1.0, rng, snr=(1e4, 1e4), resolution_factor=(1.0, 1.0),
                         bias_strength=0.0, normalise=False, ghost_probability=0.0,
                         coil=CoilProfile(probability=0.0), fascia_contrast=fascia_contrast)
    return float(image[:, 60:76].mean() / image[:, 8:40].mean())


@pytest.mark.parametrize("seed", range(4))
def test_a_faded_fascia_is_as_grey_as_the_muscle_and_a_tendinous_one_darker(seed):
    assert band_over_muscle((0.0, 0.0), seed) == pytest.approx(1.0, abs=0.04)
    assert band_over_muscle((1.0, 1.0), seed) < 0.85  # T2: tendon 0.02-0.1, muscle 0.12-0.28


def test_the_faint_fascia_domain_lies_below_trainings_fascia_and_bad_shares_are_refused():
    faint, trained = held_out_settings("faint_fascia"), training_settings(1)
    assert trained.fascia_contrast == (1.0, 1.0) and faint.fascia_contrast == (0.0, 0.25)
    for bad in ((0.5, 1.5), (-0.1, 0.5), (0.8, 0.2)):
        with pytest.raises(InputError, match="fascia_contrast"):
            SynthesisSettings(fascia_contrast=bad)
