"""The synthesiser's opt-in T12 level and habitus spread, and that their defaults leave the data unchanged."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_fill_holes

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.labels import BACKGROUND, LEFT, RIGHT
from ParaspinalSegTrainingLib.synthesis import Level, SynthesisSettings, Tissue, parse_level, synth_case, synth_slice
from ParaspinalSegTrainingLib.synthesis.anatomy import Habitus, draw_habitus
from ParaspinalSegTrainingLib.synthesis.levels import along_spine, thoracic_weight
from ParaspinalSegTrainingLib.synthesis.tissues import scheme_labels
from ParaspinalSegTrainingLib.synthesis.viscera import kidney_scale

# As test_synthesis.WIDE: 2 mm pixels, every organ of the level in the image, procedural compartments.
WIDE = SynthesisSettings(image_size=192, pixel_spacing_mm=(2.0, 2.0), shape_source="procedural", levels=("T12", "L1"))
SEEDS = (0, 1, 2, 3, 4, 5)
RECIPE = Path(__file__).parents[2] / "Resources" / "Recipes" / "paraspinalseg-unet-r18-2.1.0" / "synth.json"


def wide_slice(level: str, seed: int):
    return synth_slice(level, np.random.default_rng(seed), WIDE)


def present(tissues: np.ndarray, *codes: Tissue) -> bool:
    return bool(np.isin(tissues, codes).any())


def side_areas_mm2(made) -> tuple[float, float]:
    pixel = made.pixel_spacing_mm**2
    return float(np.isin(made.labels, RIGHT.labels).sum() * pixel), float(np.isin(made.labels, LEFT.labels).sum() * pixel)


@pytest.mark.parametrize("level", ["T12", "T12/L1"])
@pytest.mark.parametrize("seed", (0, 1))
def test_t12_compartments_lie_on_their_sides_inside_the_body_with_valid_labels(level, seed):
    made = wide_slice(level, seed)
    labels, tissues = made.labels, made.tissues
    assert set(np.unique(labels)) <= {BACKGROUND, *RIGHT.labels, *LEFT.labels}
    assert np.array_equal(labels, scheme_labels(tissues))
    right, left = np.isin(labels, RIGHT.labels), np.isin(labels, LEFT.labels)
    assert right.sum() >= 80 and left.sum() >= 80  # at least 320 mm² each (2 mm pixels)
    columns = np.indices(labels.shape)[1]
    assert columns[right].mean() < columns[left].mean()  # the patient's right on the image's left
    body = binary_fill_holes(tissues != Tissue.BACKGROUND)
    assert not (binary_dilation(right | left, iterations=2) & ~body).any()
    rows = np.indices(labels.shape)[0]
    bone = np.isin(tissues, (Tissue.VERTEBRAL_BODY, Tissue.DISC_ANNULUS))
    assert rows[right | left].min() > rows[bone].mean()  # behind the vertebral body


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_ribs_lie_under_the_erector_spinae_at_t12_and_are_absent_at_l4(seed):
    t12 = wide_slice("T12", seed).tissues
    assert present(t12, Tissue.RIB)
    compartments = np.isin(t12, (Tissue.RIGHT_ERECTOR_SPINAE, Tissue.LEFT_ERECTOR_SPINAE,
                                 Tissue.RIGHT_INTRAMUSCULAR_FAT, Tissue.LEFT_INTRAMUSCULAR_FAT))
    assert (binary_dilation(compartments, iterations=3) & (t12 == Tissue.RIB)).any()  # within 6 mm: on the 12th rib
    assert not present(wide_slice("L4", seed).tissues, Tissue.RIB)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_t12_has_liver_spleen_and_crura_but_no_iliac_crest_nor_quadratus_lumborum(seed):
    tissues = wide_slice("T12", seed).tissues
    assert present(tissues, Tissue.LIVER) and present(tissues, Tissue.SPLEEN) and present(tissues, Tissue.DIAPHRAGM_CRUS)
    assert not present(tissues, Tissue.ILIUM, Tissue.SACRUM, Tissue.GLUTEAL_MUSCLE, Tissue.QUADRATUS_LUMBORUM)


def test_the_liver_is_larger_at_t12_than_at_l1():
    liver = {level: np.mean([(wide_slice(level, s).tissues == Tissue.LIVER).sum() for s in SEEDS[:3]])
             for level in ("T12", "L1")}
    assert liver["T12"] > 1.2 * liver["L1"]


def test_kidney_upper_poles_reach_t12_while_l1_to_s1_keep_their_kidneys():
    assert kidney_scale(-1.0, 1.0, 0.0) == pytest.approx(np.sqrt(1 - (1.5 / 1.7) ** 2))  # the left upper pole
    assert kidney_scale(-1.0, -1.0, 0.0) == 0.0 and kidney_scale(-1.0, -1.0, -0.35) > 0.3  # the right one if high
    assert kidney_scale(-0.2, 1.0, 0.0) == pytest.approx(np.sqrt(1 - (1.2 / 1.7) ** 2))  # as before T12 was made


def test_t12_compartments_are_flatter_than_at_l1_and_of_a_plausible_area():
    """Per side, the erector spinae at T12 is about 1000-1800 mm² in adults (CT studies of the
    thoracolumbar erector spinae, judged from the literature, not one source); the synthesiser's L1
    compartment averages about 1050 mm² (40 seeds: 5-95 % 620-1530), and T12 was drawn to match it (about
    990 mm², 590-1440), at the low end of the adult range as L1 is. The band for single slices, 350-2500 mm²,
    holds small atrophic and large muscular patients."""
    areas, aspect = {}, {}
    for level in ("T12", "L1"):
        slices = [wide_slice(level, seed) for seed in SEEDS]
        areas[level] = [area for made in slices for area in side_areas_mm2(made)]
        aspect[level] = np.mean([width_over_depth(np.isin(made.labels, RIGHT.labels)) for made in slices])
    assert 700 <= np.mean(areas["T12"]) <= 1600
    assert all(350 <= area <= 2500 for area in areas["T12"])
    assert aspect["T12"] > 1.1 * aspect["L1"]


def width_over_depth(mask: np.ndarray) -> float:
    rows, columns = np.nonzero(mask)
    return (np.ptp(columns) + 1) / (np.ptp(rows) + 1)


def test_t12_levels_parse_and_sit_above_l1():
    assert Level("T12").position == -1.0 and parse_level("t12-l1") == Level("T12", disc=True)
    assert parse_level("T12/L1").name == "T12/L1" and parse_level("T12/L1").position == -0.5
    with pytest.raises(InputError, match="T12..S1"):
        parse_level("T12/L2")
    with pytest.raises(InputError, match="unknown; choose one of T12, L1"):
        parse_level("T11")
    case = synth_case(0, replace(WIDE, image_size=96, levels=("L1", "T12"), slices_per_level=1))
    assert [s.level.vertebra for s in case.slices] == ["L1", "T12"]  # inferior first


def test_t12_is_refused_for_traced_shapes_and_a_bad_habitus_spread_is_named():
    with pytest.raises(InputError, match="real_shape_levels: 'T12'.*not put on thoracic levels"):
        SynthesisSettings(real_shape_levels=("T12", "L4"))
    with pytest.raises(InputError, match="did you mean 'T12'"):
        SynthesisSettings(levels=("T13",))
    for spread in (0.0, 2.5):
        with pytest.raises(InputError, match="habitus_spread"):
            SynthesisSettings(habitus_spread=spread)


def test_along_spine_keeps_the_l1_to_s1_values_and_reaches_t12_above_the_l1_slices():
    values = (100.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
    for position in (-0.2, -0.1, 0.0, 0.3, 2.5, 5.0, 6.0):
        assert along_spine(values, position) == np.interp(position, np.arange(6), values[1:])
    assert along_spine(values, -1.0) == 100.0 and along_spine(values, -0.6) == 55.0 and along_spine(values, -3) == 100.0
    assert thoracic_weight(-0.2) == 0.0 and thoracic_weight(-0.6) == pytest.approx(0.5) and thoracic_weight(-1.2) == 1.0
    with pytest.raises(ValueError, match="7 values"):
        along_spine(values[1:], 0.0)


def habitus_before_the_spread(rng: np.random.Generator) -> Habitus:
    """draw_habitus as it was before habitus_spread (synthesis 2.1), kept to prove that 1 draws the same."""
    subcutaneous = float(np.clip(rng.lognormal(np.log(14.0), 0.55), 3.0, 55.0))
    obesity = float(np.clip((subcutaneous - 12.0) / 30.0, -0.3, 1.3))
    return Habitus(
        size=float(rng.uniform(0.88, 1.12)),
        muscle=float(rng.uniform(0.7, 1.25)),
        width_mm=float(rng.uniform(270.0, 330.0) + 70.0 * obesity),
        depth_mm=float(rng.uniform(180.0, 230.0) + 80.0 * obesity),
        subcutaneous_mm=subcutaneous,
        wall_mm=float(rng.uniform(6.0, 14.0)),
        visceral=float(rng.uniform(0.0, 1.0)),
        asymmetry=float(np.clip(rng.normal(0.0, 0.06), -0.2, 0.2)),
        kidney_shift=float(rng.normal(0.0, 0.3)),
    )


def test_habitus_spread_1_draws_the_old_builds_and_2_widens_them():
    old_rng, new_rng = np.random.default_rng(11), np.random.default_rng(11)
    old = [habitus_before_the_spread(old_rng) for _ in range(200)]
    assert [draw_habitus(new_rng) for _ in range(200)] == old  # exact equality, field by field
    assert old_rng.random() == new_rng.random()  # and the same random numbers used up
    wide_rng = np.random.default_rng(11)
    wide = [draw_habitus(wide_rng, 2.0) for _ in range(200)]
    for name in ("subcutaneous_mm", "width_mm", "muscle", "size"):
        before, after = [getattr(h, name) for h in old], [getattr(h, name) for h in wide]
        assert np.std(after) > 1.5 * np.std(before), name
        assert min(after) < min(before) and max(after) > max(before), name
    assert max(h.subcutaneous_mm for h in wide) > 60.0 and min(h.subcutaneous_mm for h in wide) < 3.0
    assert min(h.wall_mm for h in wide) > 0 and min(h.muscle for h in wide) > 0.4


def test_a_wider_habitus_spread_makes_images_of_thinner_and_fatter_bodies():
    settings = replace(WIDE, image_size=96, levels=("L3",), slices_per_level=1)
    fat = {}
    for spread in (1.0, 2.0):
        cases = [synth_case(index, replace(settings, habitus_spread=spread)) for index in range(12)]
        fat[spread] = [(case.slices[0].tissues == Tissue.SUBCUTANEOUS_FAT).mean() for case in cases]
    assert np.std(fat[2.0]) > np.std(fat[1.0])


def recipe_settings(**changes) -> SynthesisSettings:
    return SynthesisSettings.from_dict({**json.loads(RECIPE.read_text()), "image_size": 96, **changes})


def test_new_settings_at_their_defaults_make_the_same_arrays():
    without_new = {key: value for key, value in recipe_settings().to_dict().items() if key != "habitus_spread"}
    with_new = {**without_new, "habitus_spread": 1.0}
    for index in range(2):
        first = synth_case(index, SynthesisSettings.from_dict(without_new))
        again = synth_case(index, SynthesisSettings.from_dict(with_new))
        assert np.array_equal(first.image_volume(), again.image_volume())
        assert np.array_equal(first.label_volume(), again.label_volume())
    plain = synth_case(0, replace(SynthesisSettings.from_dict(without_new), levels=("L1", "L2")))
    thoracic = synth_case(0, replace(SynthesisSettings.from_dict(without_new), levels=("T12", "L1", "L2")))
    assert not np.array_equal(plain.label_volume(), thoracic.label_volume()[: len(plain.slices)])  # T12 is drawn


def test_the_2_1_0_recipe_still_makes_its_training_labels(shared_dir):
    """Model 2.1.0 is trained on data of synthesis 2.1; T12 and the habitus spread must not change them. The
    labels of the recipe's first two cases (96 px, with the traced shapes of ../shared) are pinned by their
    SHA-256 as made before either existed."""
    digest = hashlib.sha256()
    for index in range(2):
        digest.update(np.ascontiguousarray(synth_case(index, recipe_settings()).label_volume()).tobytes())
    assert digest.hexdigest() == "d6d56c5638f6398d83100e25029710fda20f2d59ff359924c16a39ef35823c9b"


def test_a_vertebra_named_twice_in_levels_gets_twice_the_slices():
    from ParaspinalSegTrainingLib.synthesis.generator import case_levels

    settings = SynthesisSettings(levels=("T12", "T12", "L1", "S1"), slices_per_level=2, disc_probability=0.5)
    for seed in range(5):
        levels = case_levels(settings, np.random.default_rng(seed))
        assert [level.vertebra for level in levels].count("T12") == 4 and len(levels) == 8
        assert [level.vertebra for level in levels].count("L1") == 2
        assert [level.position for level in levels] == sorted((level.position for level in levels), reverse=True)


def test_a_body_whose_cavity_ends_close_to_the_spine_still_gets_drawn():
    """Case 14 of the training domain at seed 2038 draws a build whose abdominal cavity ends less than 18 mm in
    front of the vertebral body, where the bowel loops are placed; that used to stop the whole data set."""
    from ParaspinalSegTrainingLib.synthesis.domains import training_settings

    case = synth_case(14, training_settings(2038, image_size=96))
    assert len(case.slices) == 14
    for made in case.slices:
        assert min(side_areas_mm2(made)) > 0
