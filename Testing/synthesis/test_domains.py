"""Synthesis 2.0 domain randomisation, the held-out domains of the selection protocol, antialiased resampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SHIPPED_MODEL

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.labels import LEFT, LEFT_FAT, LEFT_MUSCLE, RIGHT, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.network.model import Preprocessing
from ParaspinalSegLib.network.preprocess import prepare_slice, resample, resample_antialiased
from ParaspinalSegTrainingLib.heldout import DomainFigures, held_out_markdown, side_dice
from ParaspinalSegTrainingLib.sample import axial_geometry
from ParaspinalSegTrainingLib.synthesis import SynthesisSettings, synth_slice
from ParaspinalSegTrainingLib.synthesis.domains import (
    HELD_OUT,
    HELD_OUT_BASE,
    TRAINING,
    TRAINING_2_1,
    TRAINING_2_2,
    TRAINING_2_4,
    TRAINING_2_19,
    TRAINING_CONTRASTS,
    domain_settings,
    held_out_settings,
    training_settings,
)
from ParaspinalSegTrainingLib.synthesis.levels import VERTEBRAE
from ParaspinalSegTrainingLib.synthesis.generator import crop_field_of_view, neighbouring_anatomy, split_shapes
from ParaspinalSegTrainingLib.synthesis.intensities import draw_contrast, tissue_table, wrap_around
from ParaspinalSegTrainingLib.synthesis.settings import CONTRASTS
from ParaspinalSegTrainingLib.synthesis.tissues import COMPARTMENT_TISSUES, Tissue

CLEAN = dict(image_size=160, pixel_spacing_mm=(1.2, 1.2), fat_fraction_pct=(30.0, 40.0), snr=(40.0, 40.0),
             resolution_factor=(1.0, 1.0), bias_strength=0.0, shape_source="procedural")


def clean_slice(mode: str, seed: int):
    return synth_slice("L4", np.random.default_rng(seed), SynthesisSettings(**CLEAN, contrast_probabilities=((mode, 1.0),)))


def mean_of(made, *codes) -> float:
    return float(made.image[np.isin(made.tissues, codes)].mean())


@pytest.mark.parametrize("mode", CONTRASTS)
def test_every_contrast_mode_makes_a_finite_normalised_image(mode):
    made = synth_slice("L4", np.random.default_rng(3), SynthesisSettings(
        image_size=128, pixel_spacing_mm=(1.8, 1.8), contrast_probabilities=((mode, 1.0),)))
    assert made.image.dtype == np.float32 and np.isfinite(made.image).all()
    assert np.percentile(made.image, 99) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_echo_in_phase_has_bright_fat_mid_grey_muscle_and_dark_csf(seed):
    made = clean_slice("gre_in_phase", seed)
    fat = mean_of(made, Tissue.SUBCUTANEOUS_FAT)
    muscle = mean_of(made, Tissue.RIGHT_ERECTOR_SPINAE, Tissue.LEFT_ERECTOR_SPINAE)
    assert fat > 1.4 * muscle and muscle > mean_of(made, Tissue.CSF)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inverted_contrast_has_muscle_brighter_than_fat(seed):
    made = clean_slice("inverted", seed)
    assert mean_of(made, Tissue.RIGHT_ERECTOR_SPINAE) > mean_of(made, Tissue.SUBCUTANEOUS_FAT) + 0.1


def test_random_tissue_redraws_the_surroundings_but_keeps_the_compartments_contrast():
    contrast = draw_contrast("random_tissue", np.random.default_rng(0))
    first, _ = tissue_table(contrast, np.random.default_rng(1))
    second, _ = tissue_table(contrast, np.random.default_rng(2))
    compartment = [int(t) for t in COMPARTMENT_TISSUES]
    fat = [int(Tissue.RIGHT_INTRAMUSCULAR_FAT), int(Tissue.LEFT_INTRAMUSCULAR_FAT)]
    np.testing.assert_allclose(first[fat], second[fat])  # fat keeps the case's mean; muscle codes only jitter
    assert abs(first[fat[0]] - first[int(Tissue.RIGHT_ERECTOR_SPINAE)]) > 0.1
    others = [int(t) for t in Tissue if int(t) not in compartment and t is not Tissue.BACKGROUND]
    assert np.mean(np.abs(first[others] - second[others]) > 0.05) > 0.6  # surroundings drawn anew
    # and independently of their material: subcutaneous and renal sinus fat no longer alike
    assert len({round(first[int(Tissue.SUBCUTANEOUS_FAT)], 3), round(first[int(Tissue.RENAL_SINUS_FAT)], 3)}) == 2


def test_wrap_around_folds_what_lies_beyond_the_field_onto_the_other_edge():
    body = np.zeros((40, 50), dtype=bool)
    body[5:35, 5:45] = True
    image = body * 1.0
    image[:, 5] = 7.0  # a bright column at the body's left edge
    rng = np.random.default_rng(4)
    folded = wrap_around(image, body, rng)
    outside = folded - image
    assert outside.sum() > 0 and np.isclose(folded.sum() - image.sum(), outside.sum())
    assert np.allclose(folded[:, :6], image[:, :6]) or np.allclose(folded[:6], image[:6])  # what folds stays too


def test_the_field_of_view_crop_never_cuts_the_compartments():
    made = clean_slice("t2", 5)
    for seed in range(20):
        cropped = crop_field_of_view(made.image, made.labels, 1.2, np.random.default_rng(seed))
        rows, columns = np.nonzero(made.labels)
        margin = int(np.ceil(5.0 / 1.2))
        box = (slice(rows.min() - margin, rows.max() + margin + 1), slice(columns.min() - margin, columns.max() + margin + 1))
        np.testing.assert_array_equal(cropped[box], made.image[box])
        assert set(np.unique(cropped[cropped != made.image])) <= {made.image.min()}


def test_thick_slices_blend_a_neighbouring_anatomy_without_changing_the_labels():
    base = dict(CLEAN, contrast_probabilities=(("t2", 1.0),))
    thin = synth_slice("L3", np.random.default_rng(8), SynthesisSettings(**base))
    thick = synth_slice("L3", np.random.default_rng(8), SynthesisSettings(**base, partial_volume_probability=1.0))
    np.testing.assert_array_equal(thin.labels, thick.labels)
    assert not np.allclose(thin.image, thick.image)
    partner = neighbouring_anatomy(thin.tissues, thin.labels, 1.2, np.random.default_rng(1))
    changed = float(np.mean(partner != thin.tissues))
    assert 0.0 < changed < 0.25


def test_the_traced_shape_splits_are_disjoint_and_cover_all():
    shapes = tuple(f"mask{i:03d}" for i in range(23))
    train, held = split_shapes(shapes, "train"), split_shapes(shapes, "heldout")
    assert not set(train) & set(held) and set(train) | set(held) == set(shapes)
    assert len(held) == 5 and split_shapes(shapes, "all") == shapes


def outside(settings: SynthesisSettings, trained: SynthesisSettings) -> bool:
    """Whether a domain's draws lie outside a training domain: a contrast family, pixels or shapes it lacks."""
    contrasts = {mode for mode, weight in settings.contrast_probabilities if weight > 0}
    new_contrast = not contrasts & set(TRAINING_CONTRASTS)
    finer = settings.pixel_spacing_mm[1] < trained.pixel_spacing_mm[0]
    coarser = settings.pixel_spacing_mm[0] > trained.pixel_spacing_mm[1]
    unseen_shapes = settings.shape_source == "real" and settings.real_shape_split == "heldout"
    finer_fat = settings.fat_streak_width_mm[1] < trained.fat_streak_width_mm[0]
    unseen_bands = settings.aponeurosis_probability > 0 and trained.aponeurosis_probability == 0
    stronger_coil = settings.coil_gain[0] > trained.coil_gain[1]
    fainter_fascia = settings.fascia_contrast[1] < trained.fascia_contrast[0]
    deeper_fat = settings.deep_fat[0] > trained.deep_fat[1]
    flatter = (settings.compartment_depth_scale[1] < trained.compartment_depth_scale[0]
               or settings.compartment_width_scale[0] > trained.compartment_width_scale[1])
    return (new_contrast or finer or coarser or unseen_shapes or finer_fat or unseen_bands or stronger_coil
            or fainter_fascia or deeper_fat or flatter)


def test_held_out_domains_lie_outside_the_training_domain_and_those_taken_in_do_not():
    trained = training_settings(1)
    for domain in HELD_OUT:
        settings = held_out_settings(domain)
        assert outside(settings, trained) != bool(domain.inside_training), domain.name
        assert settings.seed != trained.seed
    assert trained.real_shape_split == "train"
    coarse_noisy, before = held_out_settings("coarse_noisy"), domain_settings(TRAINING_2_2, 1)
    assert outside(coarse_noisy, before)  # held out up to model 2.3.0
    assert trained.pixel_spacing_mm[1] >= coarse_noisy.pixel_spacing_mm[1]  # taken in since 2.4.0
    assert trained.resolution_factor[1] >= coarse_noisy.resolution_factor[1] and trained.snr[0] <= coarse_noisy.snr[0]


def test_held_out_draws_stay_on_synthesis_2_0_while_training_moves_on():
    # synthesis 2.1 trains down to SNR 3; the held-out domains keep 2.0's base, so old and new models
    # are measured on the same draws
    assert TRAINING_2_1["snr"] == TRAINING["snr"] == (3.0, 50.0) and HELD_OUT_BASE["snr"] == (5.0, 50.0)
    assert {k: v for k, v in TRAINING_2_1.items() if k != "snr"} == {k: v for k, v in HELD_OUT_BASE.items() if k != "snr"}
    assert held_out_settings("gre_in_phase").snr == (5.0, 50.0)
    assert held_out_settings("coarse_noisy").snr == (3.0, 5.0)
    assert held_out_settings("gre_in_phase").levels == VERTEBRAE and held_out_settings("gre_in_phase").habitus_spread == 1
    trained = training_settings(1)
    assert trained.snr == (3.0, 50.0) and trained.levels == ("T12",) + VERTEBRAE and trained.habitus_spread == 1.5
    resolution = ("pixel_spacing_mm", "resolution_factor")
    assert {k: v for k, v in TRAINING_2_4.items() if k not in resolution} == {k: v for k, v in TRAINING_2_2.items() if k not in resolution}
    assert {k: v for k, v in TRAINING.items() if k != "fat_fraction_beta"} == TRAINING_2_4
    shape = ("compartment_width_scale", "compartment_depth_scale")
    assert {k: v for k, v in TRAINING_2_19.items() if k not in shape} == TRAINING
    assert trained.fat_fraction_beta == (1.0, 1.0) and held_out_settings("gre_in_phase").fat_fraction_beta == (1.2, 2.0)


def drawn_case_fat(beta: tuple[float, float], patients: int = 4000) -> np.ndarray:
    from ParaspinalSegTrainingLib.synthesis.generator import draw_patient

    settings, rng = SynthesisSettings(fat_fraction_beta=beta), np.random.default_rng(7)
    return np.array([draw_patient(rng, settings).fat_fraction_pct for _ in range(patients)])


def test_training_draws_case_fat_uniformly_where_the_held_out_domains_keep_mostly_lean_cases():
    # over 0-70 %: uniform puts 2/7 of the cases above 50 % and 1/7 below 10 %; Beta(1.2, 2) has mean
    # 70 x 1.2 / 3.2 = 26.25 % and far fewer cases at either end
    uniform, lean = drawn_case_fat((1.0, 1.0)), drawn_case_fat((1.2, 2.0))
    assert uniform.min() >= 0 and uniform.max() <= 70
    assert np.mean(uniform > 50) == pytest.approx(2 / 7, abs=0.02) and np.mean(uniform < 10) == pytest.approx(1 / 7, abs=0.02)
    assert lean.mean() == pytest.approx(26.25, abs=0.7) and np.mean(lean > 50) < 0.15
    for bad in ([0.0, 1.0], [1.0, 1.0, 1.0]):
        with pytest.raises(InputError, match="fat_fraction_beta"):
            SynthesisSettings.from_dict({"fat_fraction_beta": bad})


def test_side_dice_sees_sides():
    truth = np.zeros((20, 20), dtype=np.uint8)
    truth[5:15, 2:8], truth[5:15, 12:18] = RIGHT_MUSCLE, LEFT_MUSCLE
    truth[6:8, 3:5] = RIGHT_FAT
    swapped = np.where(truth == RIGHT_MUSCLE, LEFT_MUSCLE, np.where(truth == LEFT_MUSCLE, RIGHT_MUSCLE, truth))
    swapped[truth == RIGHT_FAT] = LEFT_FAT
    assert side_dice(truth, truth, RIGHT) == 1.0 and side_dice(truth, truth, LEFT) == 1.0
    assert side_dice(truth, swapped, RIGHT) == 0.0 and side_dice(truth, swapped, LEFT) == 0.0
    half = truth.copy()
    half[5:15, 5:8] = 0  # half of the right compartment (60 px, 30 left): Dice 2*30/(60+30)
    assert side_dice(truth, half, RIGHT) == pytest.approx(60 / 90)
    assert np.isnan(side_dice(np.zeros_like(truth), np.zeros_like(truth), LEFT))


def test_held_out_table_pools_the_domains():
    a = DomainFigures("a", "", [1.0, 0.5], [1.0, 0.5], {"p1": (10.0, {"cnn": 12.0})},
                      {"cnn": [(10.0, 12.0), (20.0, 22.0)]}, cases=[(0.75, True)], area_errors=[0.1, -0.1, 0.2, float("nan")])
    b = DomainFigures("b", "", [0.0], [1.0], {"p1": (20.0, {"cnn": 30.0})}, {"cnn": [(30.0, 26.0), (0.0, float("nan"))]},
                      cases=[(0.5, False), (0.95, True), (0.92, False), (0.85, True)], area_errors=[0.5])
    taken_in = DomainFigures("c", "", [0.0], [0.0], {"p1": (10.0, {"cnn": 50.0})}, {"cnn": [(10.0, 50.0)]},
                             cases=[(0.0, False)], inside_training="model 9.0.0", area_errors=[1.0])
    table = held_out_markdown([a, taken_in, b])
    assert "| a | 2 | 0 | 0.750 | 0.750 | 0.750 | +6.7 | 2.0 | +2.0 | 100 % | 2.0 | 1.00 | 1 of 1 | 0 of 0 |" in table
    assert "| b | 1 | 0 | 0.000 | 1.000 | 0.500 | +50.0 | 10.0 | +10.0 | 0 % | nan | nan | 0 of 1 | 1 of 2 |" in table
    pooled = "| all held-out domains | 3 | 0 | 0.500 | 0.833 | 0.667 | +17.5 | 6.0 | +6.0 | 50 % | 2.7 | 0.97 | 1 of 2 | 1 of 2 |"
    measured = "| c (inside training) | 1 | 0 | 0.000 | 0.000 | 0.000 | +100.0 | 40.0 | +40.0 | 0 % | nan | nan | 0 of 1 | 0 of 0 |"
    assert pooled in table and measured in table and table.index(pooled) < table.index(measured)
    assert b.warned() == {"failed_cases": 1, "failed_warned": 0, "good_cases": 2, "good_warned": 1}
    assert b.slice_agreement("cnn")[0] != b.slice_agreement("cnn")[0]  # one slice left after the NaN: undefined


def test_antialiased_downsampling_of_a_fine_noisy_slice_is_far_less_noisy_than_linear():
    noise = np.random.default_rng(0).normal(0.0, 20.0, (1024, 1024)).astype(np.float32)
    shape = (286, 286)  # 0.39 mm pixels to 1.4 mm
    linear, antialiased = resample(noise, shape, order=1), resample_antialiased(noise, shape)
    assert antialiased.std() < 0.45 * linear.std()
    flat = np.full((300, 200), 5.0, dtype=np.float32)
    np.testing.assert_allclose(resample_antialiased(flat, (100, 70)), 5.0, rtol=1e-5)


def test_cards_without_a_resampling_field_keep_linear_resampling_and_new_ones_antialias():
    old = Preprocessing.from_dict({"pixel_spacing_mm": 1.4, "input_size": 224, "normalisation": "percentile",
                                   "percentiles": [1.0, 99.0]})
    assert old.resampling == "linear" and Preprocessing().resampling == "antialiased"
    assert Preprocessing.from_dict(Preprocessing().to_dict()).resampling == "antialiased"
    with pytest.raises(ValueError, match="resampling"):
        Preprocessing(resampling="cubic")
    rows, columns = np.indices((512, 512))
    body = (rows - 256) ** 2 + (columns - 256) ** 2 < 200**2  # 80 mm radius at 0.4 mm
    fine = (np.where(body, 300.0, 10.0) + np.random.default_rng(1).normal(0.0, 30.0, (512, 512))).astype(np.float32)
    geometry = axial_geometry(0, 0.4, 4.0, (512, 512))
    windows = [prepare_slice(fine, geometry, Preprocessing(pixel_spacing_mm=1.6, input_size=96, resampling=r))[0]
               for r in ("linear", "antialiased")]
    centre = (slice(38, 58), slice(38, 58))  # inside the body, away from its edge
    assert windows[1][centre].std() < 0.5 * windows[0][centre].std()


def test_mirrored_test_time_augmentation_is_exactly_left_right_equivariant():
    """With the mirror, a mirrored slice gives the mirrored prediction with the sides swapped, whatever the
    network; without it, a network that reads the side from position does not."""
    from helpers import side_reading_runner

    from ParaspinalSegLib.network.inference import MIRRORED_CLASSES, network_scores

    batch = np.random.default_rng(0).random((2, 1, 16, 20)).astype(np.float32)
    biased = side_reading_runner(width=20)
    flipped = batch[..., ::-1]

    def swapped(scores):
        return scores[..., ::-1][:, MIRRORED_CLASSES]

    plain = network_scores(biased, batch)
    assert not np.allclose(network_scores(biased, flipped), swapped(plain), atol=1e-3)
    both = network_scores(biased, batch, mirror=True)
    np.testing.assert_allclose(network_scores(biased, flipped, mirror=True), swapped(both), rtol=1e-5, atol=1e-6)


def test_release_puts_the_held_out_domain_figures_and_the_protocol_in_the_card(tmp_path):
    import json

    from ParaspinalSegTrainingLib.heldout import FAT_METHODS, domain_folders
    from ParaspinalSegTrainingLib.release import release_model

    card = release_model(SHIPPED_MODEL, tmp_path / "released", None, heldout=tmp_path / "heldout", patients=1)
    domains = {d["domain"]: d for d in card.validation["held_out_domains"]}
    assert set(domains) <= {d.name for d in HELD_OUT} and {"gre_in_phase", "inverted", "fine_matrix"} <= set(domains)
    for figures in domains.values():
        settings = held_out_settings(figures["domain"], report=True)
        assert settings.seed != held_out_settings(figures["domain"]).seed
        assert figures["slices"] == len(settings.levels) * settings.slices_per_level
        assert figures["patients"] == 1 and set(figures["fat_fraction_vs_truth"]) == set(FAT_METHODS)
    assert domains["fine_matrix"]["dice_right"] > 0.8 and domains["fine_matrix"]["dice_left"] > 0.8  # T2 it knows
    assert "held-out synthesis domains" in card.validation["selection_protocol"]
    assert "mean over slices" not in card.validation["dice_definitions"]["validation_dice"]
    assert "averaged over the slices" in card.validation["dice_definitions"]["held_out_domains"]
    assert json.loads((tmp_path / "released" / "model.json").read_text())["validation"]["held_out_domains"]
    with pytest.raises(InputError, match="other settings"):
        domain_folders(tmp_path / "heldout", 1)  # the report draws: never mixed with the sets that choose
    with pytest.raises(InputError, match="other settings"):
        domain_folders(tmp_path / "heldout", 2, report=True)  # made for 1 patient: never mixed with another set
    with pytest.raises(InputError, match="'nope' is unknown; choose from gre_in_phase"):
        domain_folders(tmp_path / "heldout", 1, report=True, names=("nope",))
    assert "2.4.0" in domains["coarse_noisy"]["inside_training"] and "inside_training" not in domains["coarse_pixels"]


def test_segment_with_the_mirror_says_so_in_its_provenance(tmp_path, capsys):
    import json

    from helpers import run_cli

    from ParaspinalSegLib.cli import sample_folder

    code, out, err = run_cli(capsys, "segment", sample_folder() / "study", "-o", tmp_path / "out", "--mirror")
    assert code == 0, err
    method = json.loads((tmp_path / "out" / "patient.json").read_text())["provenance"]["method"]
    assert "mirrored test-time augmentation" in method


@pytest.mark.parametrize("version, domain", [("2.1.0", TRAINING_2_1), ("2.2.0", TRAINING_2_2), ("2.3.0", TRAINING_2_2), ("2.4.0", TRAINING_2_4), ("2.5.0", TRAINING_2_4),
                                             ("2.6.0", TRAINING), ("2.7.0", TRAINING), ("2.8.0", TRAINING),
                                             ("2.9.0", TRAINING), ("2.10.0", TRAINING), ("2.11.0", TRAINING),
                                             ("2.17.0", TRAINING_2_19), ("2.18.0", TRAINING_2_19)])
def test_the_recipes_draw_from_their_training_domains(version, domain):
    recipe = json.loads((Path(__file__).parents[2] / "Resources" / "Recipes" / f"paraspinalseg-unet-r18-{version}"
                         / "synth.json").read_text())
    settings = SynthesisSettings.from_dict({**SynthesisSettings().to_dict(), **recipe})
    assert settings == domain_settings(domain, recipe["seed"])


def test_held_out_cases_count_a_failed_segmentation_with_its_quality_warning(tmp_path, monkeypatch):
    """evaluate_case through the product's measuring: a 'segmentation' that is the truth is a good case
    without warning; one that loses the left compartment on every slice is a failed case, warned."""
    import ParaspinalSegTrainingLib.heldout as heldout
    from ParaspinalSegLib.pipeline import measure_series
    from ParaspinalSegTrainingLib.datasets import case_labels, find_cases
    from ParaspinalSegTrainingLib.synthesis import write_dataset

    write_dataset(tmp_path / "data", 1, training_settings(5, image_size=160, levels=("L3", "L4"),
                                                          contrast_probabilities={"t2": 1.0}))
    [case] = find_cases(tmp_path / "data")
    figures = DomainFigures("d", "")
    for lose_left in (False, True):
        def fake_segment(series, model, device, mirror, lose_left=lose_left):
            truth, _ = case_labels(case, series)
            labels = [np.where(np.isin(t, (LEFT_MUSCLE, LEFT_FAT)), 0, t) if lose_left else t for t in truth]
            return measure_series(series, labels, needs_fat=False)
        monkeypatch.setattr(heldout, "segment_series", fake_segment)
        heldout.evaluate_case(None, case, figures, ("cnn",), "cpu")
    assert [round(dice, 6) for dice, _ in figures.cases] == [1.0, 0.5]
    assert figures.warned() == {"failed_cases": 1, "failed_warned": 1, "good_cases": 1, "good_warned": 0}


def test_held_out_dice_is_kept_per_level_with_a_disc_under_the_vertebra_below(tmp_path, monkeypatch):
    """A 'segmentation' that loses the left compartment on the L4 slices and the L3/L4 disc only: L4 scores
    0.5 (right 1, left 0), L3 1; the table shows both with their counts of slices and sides."""
    import ParaspinalSegTrainingLib.heldout as heldout
    from ParaspinalSegLib.pipeline import measure_series
    from ParaspinalSegTrainingLib.datasets import case_labels, find_cases
    from ParaspinalSegTrainingLib.synthesis import write_dataset

    assert [heldout.level_group(v) for v in ("L4/L5", "T12/L1", "S1", "T12", "l5-s1")] == ["L5", "L1", "S1", "T12", "S1"]
    write_dataset(tmp_path / "data", 2, training_settings(7, image_size=160, levels=("L3", "L4"), disc_probability=0.5,
                                                          contrast_probabilities={"t2": 1.0}))
    cases = find_cases(tmp_path / "data")
    levels = [s for case in cases for s in case.meta["slices"]]
    at_l4 = [(s["vertebra"], s["disc"]) in (("L4", False), ("L3", True)) for s in levels]
    assert any(s["disc"] for s in levels) and 0 < sum(at_l4) < len(at_l4)
    figures = DomainFigures("d", "")
    for case in cases:
        def fake_segment(series, model, device, mirror, case=case):
            truth, _ = case_labels(case, series)
            lose = [(s["vertebra"], s["disc"]) in (("L4", False), ("L3", True)) for s in case.meta["slices"]]
            return measure_series(series, [np.where(np.isin(t, (LEFT_MUSCLE, LEFT_FAT)), 0, t) if lost else t
                                           for t, lost in zip(truth, lose)], needs_fat=False)
        monkeypatch.setattr(heldout, "segment_series", fake_segment)
        heldout.evaluate_case(None, case, figures, ("cnn",), "cpu")
    l5 = sum(s["vertebra"] == "L4" and s["disc"] for s in levels)  # the L4/L5 disc counts under L5
    assert sorted(figures.level_dice) == ["L3", "L4"] + (["L5"] if l5 else [])
    assert np.mean(figures.level_dice["L4"]) == pytest.approx(0.5) and len(figures.level_dice["L4"]) == 2 * sum(at_l4)
    assert np.mean(figures.level_dice["L3"] + figures.level_dice.get("L5", [])) == pytest.approx(1.0)
    assert figures.csa_bias_pct == pytest.approx(-100 * sum(at_l4) / (2 * len(levels)))  # each lost left side: -100 %
    table = held_out_markdown([figures])
    assert "| domain | Dice at L3 | Dice at L4 |" in table
    l3 = len(levels) - sum(at_l4) - l5
    assert f"| d | 1.000 ({2 * l3}) | 0.500 ({2 * sum(at_l4)}) |" in table


def test_a_held_out_set_written_before_a_new_synthesis_setting_is_still_the_same_set():
    from ParaspinalSegTrainingLib.heldout import same_settings

    settings = held_out_settings("gre_in_phase")
    written = json.loads(json.dumps(settings.to_dict()))
    older = {k: v for k, v in written.items() if k != "habitus_spread"}  # before the setting existed
    assert same_settings(written, settings) and same_settings(older, settings)
    assert not same_settings({**written, "habitus_spread": 1.5}, settings)
    assert not same_settings({**written, "snr": [3.0, 50.0]}, settings)
    assert not same_settings({**written, "a_setting_from_the_future": 1}, settings)


def test_heldout_prints_the_pooled_dice_that_chooses_and_the_offsets_it_ran_with(tmp_path, capsys):
    import csv
    import re

    from helpers import run_cli

    code, out, err = run_cli(capsys, "heldout", SHIPPED_MODEL, "--data", tmp_path / "h", "--patients", "1",
                             "--domains", "coarse_pixels", "--background-score-offset", "0.5",
                             "--patients-csv", tmp_path / "patients.csv")
    assert code == 0, err
    assert "background offset 0.5" in out
    row = next(line for line in out.splitlines() if line.startswith("| all held-out domains | 6 |"))
    table_dice = float(row.split("|")[6])
    pooled = float(re.search(r"the figure that chooses: (\d\.\d{4}) \(6 slices\)", out).group(1))
    assert 0.8 < pooled <= 1.0 and abs(pooled - table_dice) <= 0.0006  # both rounded
    within, patients = map(int, re.search(r"within 3 points of the truth: (\d+) of (\d+)", out).groups())
    assert patients == 1 and within == round(float(row.split("|")[10].strip().rstrip(" %")) / 100)
    # the per-patient table holds the patient behind those figures: its error is the table's MAE and bias
    (patient,) = csv.DictReader((tmp_path / "patients.csv").open())
    assert (patient["domain"], patient["pooled"]) == ("coarse_pixels", "1")
    error = float(patient["cnn_fat_pct"]) - float(patient["true_fat_pct"])
    assert f"{abs(error):.1f}" == row.split("|")[8].strip() and f"{error:+.1f}" == row.split("|")[9].strip()
    assert within == (abs(error) <= 3.0)


def test_the_fat_methods_comparison_fits_gmm_from_the_starts_asked(tmp_path, monkeypatch):
    """`heldout --fat-methods --fat-starts N`: gmm measured with its mixture from N starts (the default 1)."""
    import ParaspinalSegTrainingLib.heldout as heldout
    from ParaspinalSegLib.pipeline import measure_series
    from ParaspinalSegTrainingLib.datasets import case_labels, find_cases
    from ParaspinalSegTrainingLib.synthesis import write_dataset

    write_dataset(tmp_path / "data", 1, training_settings(5, image_size=160, levels=("L3",),
                                                          contrast_probabilities={"t2": 1.0}))
    [case] = find_cases(tmp_path / "data")
    asked = []

    def measure(series, labels, needs_fat=False, fat_settings=None):
        asked.append((fat_settings.method.value, fat_settings.starts) if fat_settings else None)
        return measure_series(series, labels, needs_fat=needs_fat, fat_settings=fat_settings)

    monkeypatch.setattr(heldout, "segment_series",
                        lambda series, model, device, mirror: measure_series(series, case_labels(case, series)[0],
                                                                                 needs_fat=False))
    monkeypatch.setattr(heldout, "measure_series", measure)
    for starts in (1, 10):
        asked.clear()
        heldout.evaluate_case(None, case, DomainFigures("d", ""), ("cnn", "gmm", "otsu"), "cpu", fat_starts=starts)
        assert ("gmm", starts) in asked
