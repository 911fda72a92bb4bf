"""What real compartments hold besides muscle and fat blocks: tendinous bands and fat finer than a pixel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.labels import LEFT_MUSCLE, RIGHT_MUSCLE
from ParaspinalSegTrainingLib.synthesis import SynthesisSettings, synth_slice
from ParaspinalSegTrainingLib.synthesis.aponeuroses import Aponeuroses, add_aponeuroses, draw_aponeuroses
from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings, training_settings
from ParaspinalSegTrainingLib.synthesis.fat import PATCH_MM, STREAK_LENGTH_MM, STREAK_WIDTH_MM, add_fat, draw_fat_pattern
from ParaspinalSegTrainingLib.synthesis.tissues import APONEUROSES, Tissue, scheme_labels

NONE = Aponeuroses(posterior_mm=0.0, posterior_inset_mm=0.0, posterior_reach=1.0, intermuscular_mm=0.0,
                   intermuscular_at=0.5, intermuscular_depth=0.5, intermuscular_lean=0.0, septum_mm=0.0)


def two_blocks() -> np.ndarray:
    """Right compartment in columns 10-29 (multifidus 22-29 next to the midline), left in 40-59 (multifidus
    40-47), both rows 10-39 (the back at row 39), at 1 mm pixels."""
    tissues = np.zeros((50, 70), dtype=np.uint8)
    tissues[10:40, 10:22], tissues[10:40, 22:30] = Tissue.RIGHT_ERECTOR_SPINAE, Tissue.RIGHT_MULTIFIDUS
    tissues[10:40, 48:60], tissues[10:40, 40:48] = Tissue.LEFT_ERECTOR_SPINAE, Tissue.LEFT_MULTIFIDUS
    return tissues


def bands_of(out: np.ndarray, side: int) -> np.ndarray:
    return out == APONEUROSES[side]


def test_the_posterior_band_lies_at_its_depth_under_the_back_over_its_share_of_the_width():
    tissues = two_blocks()
    out = add_aponeuroses(tissues, replace(NONE, posterior_mm=2.0, posterior_inset_mm=1.0), 1.0)
    for side in (0, 1):
        rows, _ = np.nonzero(bands_of(out, side))
        assert rows.size == 2 * 20 and set(rows) == {37, 38}  # 1 mm under the back (row 39), 2 mm thick
    half = add_aponeuroses(tissues, replace(NONE, posterior_mm=2.0, posterior_inset_mm=1.0, posterior_reach=0.5), 1.0)
    assert set(np.nonzero(bands_of(half, 0))[1]) == set(range(20, 30))  # the medial half, from the midline out
    assert set(np.nonzero(bands_of(half, 1))[1]) == set(range(40, 50))


def test_the_septum_band_is_the_erector_spinae_next_to_the_multifidus():
    out = add_aponeuroses(two_blocks(), replace(NONE, septum_mm=2.0), 1.0)
    assert set(np.nonzero(bands_of(out, 0))[1]) == {20, 21} and bands_of(out, 0).sum() == 2 * 30
    assert set(np.nonzero(bands_of(out, 1))[1]) == {48, 49} and bands_of(out, 1).sum() == 2 * 30


def test_the_intermuscular_band_runs_forward_from_the_back_inside_the_erector_spinae():
    out = add_aponeuroses(two_blocks(), replace(NONE, intermuscular_mm=1.0, intermuscular_at=0.5,
                                                intermuscular_depth=0.5), 1.0)
    rows, columns = np.nonzero(bands_of(out, 0))
    assert set(columns) == {20} and set(rows) == set(range(24, 40))  # half of the 30-mm depth forward of the back
    leaning = add_aponeuroses(two_blocks(), replace(NONE, intermuscular_mm=1.0, intermuscular_depth=0.9,
                                                    intermuscular_lean=0.5), 1.0)
    rows, columns = np.nonzero(bands_of(leaning, 0))
    assert columns[rows.argmin()] < columns[rows.argmax()]  # further out (the right side: smaller columns) forward


def test_bands_stay_inside_their_compartment_as_its_muscle():
    tissues = two_blocks()
    bands = Aponeuroses(posterior_mm=2.5, posterior_inset_mm=0.5, posterior_reach=0.8, intermuscular_mm=1.5,
                        intermuscular_at=0.6, intermuscular_depth=0.8, intermuscular_lean=0.3, septum_mm=1.0)
    out = add_aponeuroses(tissues, bands, 1.0)
    before, after = scheme_labels(tissues), scheme_labels(out)
    assert np.array_equal(before, after)  # the compartments and their labels do not change
    assert bands_of(out, 0).any() and bands_of(out, 1).any()
    assert (after[bands_of(out, 0)] == RIGHT_MUSCLE).all() and (after[bands_of(out, 1)] == LEFT_MUSCLE).all()


def test_a_slice_with_bands_shows_them_darker_than_muscle_on_t2_and_keeps_its_compartments():
    settings = SynthesisSettings(image_size=192, pixel_spacing_mm=(1.0, 1.0), snr=(40.0, 40.0), resolution_factor=(1.0, 1.0),
                                 shape_source="procedural", contrast_probabilities=(("t2", 1.0),),
                                 fat_fraction_pct=(0.0, 0.0))  # lean, so that no fat blurs into the thin bands
    banded = synth_slice("L5", np.random.default_rng(11), replace(settings, aponeurosis_probability=1.0))
    plain = synth_slice("L5", np.random.default_rng(11), settings)
    assert np.array_equal(banded.labels > 0, plain.labels > 0)  # the same anatomy, the same compartments
    band = np.isin(banded.tissues, APONEUROSES)
    muscle = np.isin(banded.tissues, (Tissue.RIGHT_ERECTOR_SPINAE, Tissue.RIGHT_MULTIFIDUS, Tissue.LEFT_ERECTOR_SPINAE,
                                      Tissue.LEFT_MULTIFIDUS))
    assert band.sum() > 20 and not np.isin(plain.tissues, APONEUROSES).any()
    assert banded.image[band].mean() < banded.image[muscle].mean()


def test_bands_are_drawn_on_most_slices_and_thicker_at_the_sacrum():
    rng = np.random.default_rng(3)
    lumbar = [draw_aponeuroses(2.0, rng) for _ in range(400)]
    sacral = [draw_aponeuroses(5.0, rng) for _ in range(400)]
    assert 0.8 < np.mean([b.posterior_mm > 0 for b in lumbar]) < 0.9
    thickness = [np.mean([b.posterior_mm for b in bands if b.posterior_mm > 0]) for bands in (lumbar, sacral)]
    assert thickness[1] > 1.8 * thickness[0]


def test_the_fat_grain_ranges_move_only_the_grain():
    default = draw_fat_pattern(np.random.default_rng(5))
    fine = draw_fat_pattern(np.random.default_rng(5), streak_length_mm=(1.5, 4.0), streak_width_mm=(0.3, 0.9),
                            patch_mm=(0.8, 2.0))
    assert (default.streaks, default.patches, default.border) == (fine.streaks, fine.patches, fine.border)
    assert STREAK_WIDTH_MM[0] <= default.streak_width_mm <= STREAK_WIDTH_MM[1] and 0.3 <= fine.streak_width_mm <= 0.9
    assert STREAK_LENGTH_MM[0] <= default.streak_length_mm and PATCH_MM[0] <= default.patch_mm and fine.patch_mm <= 2.0
    with pytest.raises(InputError, match="fat_streak_width_mm"):
        SynthesisSettings(fat_streak_width_mm=(0.9, 0.3))


def edge_share(fat: np.ndarray) -> float:
    """The share of fat pixels with a non-fat 4-neighbour: near 1 for fat in single pixels, small for blocks."""
    padded = np.pad(fat, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return float((fat & ~inner).sum() / fat.sum())


def test_fine_grain_fat_is_scattered_at_the_same_exact_fraction():
    tissues = np.zeros((80, 80), dtype=np.uint8)
    tissues[10:70, 10:70] = Tissue.RIGHT_ERECTOR_SPINAE
    coarse_pattern = replace(draw_fat_pattern(np.random.default_rng(2)), streak_width_mm=3.0, streak_length_mm=6.0,
                             patch_mm=5.0)
    fine_pattern = replace(coarse_pattern, streak_width_mm=0.3, streak_length_mm=1.5, patch_mm=0.8)
    shares = []
    for pattern in (coarse_pattern, fine_pattern):
        out = add_fat(tissues, (30.0, 0.0), pattern, 1.0, np.random.default_rng(9))
        fat = out == Tissue.RIGHT_INTRAMUSCULAR_FAT
        assert fat.sum() == round(0.3 * 3600)
        shares.append(edge_share(fat))
    assert shares[1] > 1.3 * shares[0]


def test_the_new_held_out_domains_hold_out_what_training_lacks():
    trained, fine, banded = training_settings(1), held_out_settings("fine_fat"), held_out_settings("aponeuroses")
    assert fine.fat_streak_width_mm[1] < trained.fat_streak_width_mm[0] and fine.fat_patch_mm[1] < trained.fat_patch_mm[0]
    assert banded.aponeurosis_probability == 1.0 and trained.aponeurosis_probability == 0.0
    for settings in (fine, banded):
        assert {mode for mode, weight in settings.contrast_probabilities if weight > 0} == {"t2", "t1"}  # trained contrasts
