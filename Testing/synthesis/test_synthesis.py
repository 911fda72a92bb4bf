"""The training-data synthesiser: anatomy per level, sides, fat truth, determinism, images, data sets."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_dilation, binary_fill_holes

from ParaspinalSegLib.errors import InputError, OutputExistsError
from ParaspinalSegLib.labels import LEFT, RIGHT
from ParaspinalSegTrainingLib.datasets import find_cases
from ParaspinalSegTrainingLib.synthesis import (
    Level, SynthesisSettings, Tissue, parse_level, synth_case, synth_slice, write_dataset,
)
from ParaspinalSegTrainingLib.synthesis.compartments import ShapeScale, close_gaps_to_bone, procedural_compartments
from ParaspinalSegTrainingLib.synthesis.fat import add_fat, draw_fat_pattern
from ParaspinalSegTrainingLib.synthesis.raster import Canvas, Grid
from ParaspinalSegTrainingLib.synthesis.shapes import load_shapes, shapes_zip_path
from ParaspinalSegTrainingLib.synthesis.spine import draw_spine
from ParaspinalSegTrainingLib.synthesis.tissues import BONE_TISSUES, COMPARTMENT_TISSUES, LEFT_COMPARTMENT, RIGHT_COMPARTMENT

# A wide field of view (384 mm at the smallest zoom) so that every organ of the level is in the image.
WIDE = SynthesisSettings(image_size=192, pixel_spacing_mm=(2.0, 2.0), shape_source="procedural")
SMALL = SynthesisSettings(image_size=128, pixel_spacing_mm=(1.8, 1.8), levels=("L3", "S1"), slices_per_level=1)
SEEDS = (0, 1, 2)


def wide_slice(level: str, seed: int):
    return synth_slice(level, np.random.default_rng(seed), WIDE)


def present(tissues: np.ndarray, *codes: Tissue) -> bool:
    return bool(np.isin(tissues, codes).any())


@pytest.mark.parametrize("seed", SEEDS)
def test_l1_has_kidney_liver_and_crura_but_no_pelvis(seed):
    tissues = wide_slice("L1", seed).tissues
    assert present(tissues, Tissue.KIDNEY) and present(tissues, Tissue.LIVER)
    assert present(tissues, Tissue.DIAPHRAGM_CRUS) and present(tissues, Tissue.QUADRATUS_LUMBORUM)
    assert not present(tissues, Tissue.ILIUM, Tissue.SACRUM, Tissue.GLUTEAL_MUSCLE)


@pytest.mark.parametrize("seed", SEEDS)
def test_s1_has_sacrum_iliac_wings_and_gluteal_muscles_but_no_kidney(seed):
    tissues = wide_slice("S1", seed).tissues
    assert present(tissues, Tissue.SACRUM) and present(tissues, Tissue.ILIUM) and present(tissues, Tissue.GLUTEAL_MUSCLE)
    assert not present(tissues, Tissue.KIDNEY, Tissue.LIVER, Tissue.SPLEEN, Tissue.VERTEBRAL_BODY)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_liver_lies_on_the_patients_right_and_the_spleen_on_the_left(seed):
    tissues = wide_slice("L1", seed).tissues
    columns = np.indices(tissues.shape)[1]
    canal = columns[tissues == Tissue.CSF].mean()
    assert columns[tissues == Tissue.LIVER].mean() < canal  # the patient's right is the image's left
    if present(tissues, Tissue.SPLEEN):
        assert columns[tissues == Tissue.SPLEEN].mean() > canal


def test_psoas_grows_from_l1_to_l4():
    areas = {level: np.mean([(wide_slice(level, s).tissues == Tissue.PSOAS).sum() for s in SEEDS]) for level in ("L1", "L4")}
    assert areas["L4"] > 3 * areas["L1"]


def test_a_disc_level_shows_a_disc_instead_of_a_vertebral_body():
    tissues = wide_slice("L4/L5", 0).tissues
    assert present(tissues, Tissue.DISC_ANNULUS) and not present(tissues, Tissue.VERTEBRAL_BODY)


@pytest.mark.parametrize("level", ["L1", "L2/L3", "L3", "L4", "L5", "S1"])
def test_compartments_are_on_the_right_sides_inside_the_body_behind_the_spine(level):
    made = wide_slice(level, 5)
    labels, tissues = made.labels, made.tissues
    rows, columns = np.indices(labels.shape)
    right, left = np.isin(labels, RIGHT.labels), np.isin(labels, LEFT.labels)
    assert right.sum() > 200 and left.sum() > 200
    assert columns[right].mean() < columns[left].mean()  # the patient's right on the image's left
    body = binary_fill_holes(tissues != Tissue.BACKGROUND)
    assert not (binary_dilation(right | left, iterations=2) & ~body).any()
    bone = np.isin(tissues, (Tissue.VERTEBRAL_BODY, Tissue.DISC_ANNULUS, Tissue.SACRUM))
    assert rows[right | left].min() > rows[bone].mean()  # every pixel behind the vertebral body's centre
    assert rows[right | left].mean() > rows[bone].mean() + 10  # and most of them well behind (2 mm pixels)


@pytest.mark.parametrize("level", ["L1", "L4/L5", "S1"])
def test_compartments_touch_only_their_fascia_and_bone(level):
    tissues = wide_slice(level, 6).tissues
    for own in (RIGHT_COMPARTMENT, LEFT_COMPARTMENT):
        rim = binary_dilation(np.isin(tissues, own)) & ~np.isin(tissues, own)
        assert set(np.unique(tissues[rim])) <= {int(Tissue.FASCIA)} | {int(t) for t in BONE_TISSUES}


def test_scheme_labels_are_exactly_the_compartment_tissues():
    made = wide_slice("L3", 7)
    assert np.array_equal(made.labels > 0, np.isin(made.tissues, COMPARTMENT_TISSUES))
    assert np.array_equal(made.labels == RIGHT.fat, made.tissues == Tissue.RIGHT_INTRAMUSCULAR_FAT)
    assert made.labels.dtype == np.uint8


@pytest.mark.parametrize("level", ["L2", "L4/L5", "S1"])
def test_label_fat_fraction_equals_the_drawn_fraction(level):
    made = wide_slice(level, 8)
    drawn_right, drawn_left = made.fat_fraction_drawn_pct
    assert made.fat_fraction_right_pct == pytest.approx(drawn_right, abs=1.0)
    assert made.fat_fraction_left_pct == pytest.approx(drawn_left, abs=1.0)


def test_add_fat_turns_exactly_the_asked_share_of_pixels_to_fat():
    tissues = np.zeros((80, 80), dtype=np.uint8)
    yy, xx = np.indices(tissues.shape)
    tissues[(yy - 40) ** 2 + (xx - 20) ** 2 < 15**2] = Tissue.RIGHT_ERECTOR_SPINAE
    tissues[(yy - 40) ** 2 + (xx - 58) ** 2 < 15**2] = Tissue.LEFT_MULTIFIDUS
    rng = np.random.default_rng(0)
    out = add_fat(tissues, (37.3, 5.0), draw_fat_pattern(rng), 1.0, rng)
    right_n = (tissues == Tissue.RIGHT_ERECTOR_SPINAE).sum()
    assert (out == Tissue.RIGHT_INTRAMUSCULAR_FAT).sum() == round(0.373 * right_n)
    assert (out == Tissue.LEFT_INTRAMUSCULAR_FAT).sum() == round(0.05 * (tissues == Tissue.LEFT_MULTIFIDUS).sum())


def test_fat_fraction_rises_caudally_within_the_settings_range():
    settings = SynthesisSettings(image_size=128, pixel_spacing_mm=(1.8, 1.8), fat_fraction_pct=(10.0, 40.0),
                                 levels=("L1", "S1"), slices_per_level=1)
    case = synth_case(3, settings)
    for made in case.slices:
        assert 9.0 <= made.fat_fraction_right_pct <= 41.0 and 9.0 <= made.fat_fraction_left_pct <= 41.0


def test_same_seed_same_arrays_other_seed_other_arrays():
    first, again = synth_case(0, SMALL), synth_case(0, SMALL)
    assert np.array_equal(first.image_volume(), again.image_volume())
    assert np.array_equal(first.label_volume(), again.label_volume())
    other = synth_case(0, replace(SMALL, seed=1))
    assert not np.array_equal(first.image_volume(), other.image_volume())
    assert not np.array_equal(synth_case(1, SMALL).label_volume(), first.label_volume())


def test_case_slices_run_from_inferior_to_superior_with_one_grid():
    case = synth_case(2, SMALL)
    assert [s.level.vertebra for s in case.slices] == ["S1", "L3"]
    assert case.image_volume().shape == case.label_volume().shape == (2, 128, 128)
    assert case.case_id == case.patient_id == "synth-0002"


@pytest.mark.parametrize("mode", ["t2", "t1", "fat_suppressed", "random"])
def test_images_are_finite_float32_on_the_label_grid(mode):
    settings = SynthesisSettings(image_size=128, pixel_spacing_mm=(1.8, 1.8), contrast_probabilities=((mode, 1.0),))
    made = synth_slice("L4", np.random.default_rng(9), settings)
    assert made.image.dtype == np.float32 and made.image.shape == made.labels.shape
    assert np.isfinite(made.image).all()
    low, high = np.percentile(made.image, (1, 99))
    assert low == pytest.approx(0.0, abs=1e-5) and high == pytest.approx(1.0, abs=1e-5)


def test_fat_is_brighter_than_muscle_in_t2_images():
    settings = SynthesisSettings(image_size=160, pixel_spacing_mm=(1.2, 1.2), contrast_probabilities=(("t2", 1.0),),
                                 fat_fraction_pct=(30.0, 40.0), snr=(30.0, 30.0), resolution_factor=(1.0, 1.0))
    for seed in (0, 1):
        made = synth_slice("L4", np.random.default_rng(seed), settings)
        fat = np.isin(made.labels, (RIGHT.fat, LEFT.fat))
        muscle = np.isin(made.labels, (RIGHT.muscle, LEFT.muscle))
        assert made.image[fat].mean() > 1.5 * made.image[muscle].mean()


def test_write_dataset_writes_cases_that_read_back_on_matching_grids(tmp_path):
    calls = []
    out = write_dataset(tmp_path / "synthetic", 2, SMALL, progress=lambda f, m: calls.append(f))
    assert calls == [0.5, 1.0]
    document = json.loads((out / "dataset.json").read_text())
    assert document["cases"] == 2 and document["slices"] == 4 and document["seed"] == SMALL.seed
    assert SynthesisSettings.from_dict(document["settings"]) == SMALL
    for case in find_cases(out):
        image, labels = sitk.ReadImage(str(case.image)), sitk.ReadImage(str(case.labels))
        assert image.GetSize() == labels.GetSize() == (128, 128, 2)
        assert image.GetSpacing() == pytest.approx(labels.GetSpacing())
        assert image.GetOrigin() == pytest.approx(labels.GetOrigin())
        assert image.GetDirection() == labels.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        assert labels.GetPixelID() == sitk.sitkUInt8 and image.GetPixelID() == sitk.sitkFloat32
        meta = case.meta
        assert meta["patient_id"] == meta["case_id"] == case.case_id
        assert [s["level"] for s in meta["slices"]][0] == "S1"
        array = sitk.GetArrayFromImage(labels)
        for k, slice_meta in enumerate(meta["slices"]):
            right = np.isin(array[k], RIGHT.labels)
            expected = 100.0 * (array[k][right] == RIGHT.fat).mean()
            assert slice_meta["fat_fraction_pct"]["right"] == pytest.approx(expected, abs=1e-3)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_dataset(out, 1, SMALL)


def test_write_dataset_in_two_processes_writes_the_same_files(tmp_path):
    serial = write_dataset(tmp_path / "serial", 3, SMALL)
    calls = []
    parallel = write_dataset(tmp_path / "parallel", 3, SMALL, progress=lambda f, m: calls.append(f), workers=2)
    assert calls == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert (serial / "dataset.json").read_text() == (parallel / "dataset.json").read_text()
    for one, two in zip(find_cases(serial), find_cases(parallel), strict=True):
        assert one.case_id == two.case_id and one.meta == two.meta
        for name in ("image", "labels"):
            assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(getattr(one, name)))),
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(getattr(two, name)))))


def test_procedural_mode_needs_no_shared_folder(tmp_path):
    missing = str(tmp_path / "absent.zip")
    settings = SynthesisSettings(image_size=128, pixel_spacing_mm=(1.8, 1.8), shapes_zip=missing)
    made = synth_slice("L4", np.random.default_rng(0), settings)  # "auto" falls back to procedural shapes
    assert made.shape_source == "procedural" and made.shape_name == "procedural"
    with pytest.raises(InputError, match="absent.zip: not found"):
        synth_slice("L4", np.random.default_rng(0), SynthesisSettings(shape_source="real", shapes_zip=missing))


def test_real_shapes_replace_the_procedural_compartments(shared_dir):
    zip_path = shared_dir / "data" / "shapes" / "sudirman_l4l5_t2_compartment_masks.zip"
    assert len(load_shapes(shapes_zip_path(str(zip_path)))) >= 400
    settings = SynthesisSettings(image_size=160, pixel_spacing_mm=(1.5, 1.5), shape_source="real", shapes_zip=str(zip_path))
    made = synth_slice("L4", np.random.default_rng(1), settings)
    assert made.shape_source == "real" and made.shape_name.startswith("real:")
    rows, columns = np.indices(made.labels.shape)
    right, left = np.isin(made.labels, RIGHT.labels), np.isin(made.labels, LEFT.labels)
    assert right.sum() > 300 and columns[right].mean() < columns[left].mean()
    assert synth_slice("L1", np.random.default_rng(1), settings).shape_source == "procedural"  # L4/L5 shapes: L3-L5 only


def test_levels_and_settings_are_checked_with_helpful_messages():
    assert parse_level("l4-l5") == Level("L4", disc=True) and parse_level("S1").position == 5.0
    with pytest.raises(InputError, match="not a vertebra"):
        parse_level("L5/L4")
    with pytest.raises(InputError, match="did you mean 'procedural'"):
        SynthesisSettings(shape_source="procedureal")
    with pytest.raises(InputError, match="did you mean 'L4'"):
        SynthesisSettings(levels=("L44",))


def test_gaps_up_to_the_set_size_between_compartment_and_spine_become_its_muscle():
    canvas = Canvas(Grid(x0=0.0, y0=0.0, spacing=1.0, shape=(40, 60)))
    codes = canvas.codes
    codes[10:14, 5:55] = Tissue.POSTERIOR_ARCH  # a lamina, 4 mm thick
    codes[18:30, 10:25] = Tissue.RIGHT_MULTIFIDUS  # 4 mm of fat (0) between lamina and muscle
    codes[18:30, 30:45] = Tissue.LEFT_ERECTOR_SPINAE
    codes[22:30, 50:54] = Tissue.CORTICAL_BONE  # rib cortex round its marrow, 5 mm beside the left side
    codes[24:28, 51:53] = Tissue.RIB
    before = codes.copy()
    close_gaps_to_bone(canvas, gap_mm=10.0)
    changed = codes != before
    assert (codes[14:18, 10:25] == Tissue.RIGHT_MULTIFIDUS).all()  # the whole 4 x 15 mm gap
    rows, columns = np.nonzero(changed[:, :28])
    assert rows.min() == 14 and rows.max() <= 18 and columns.min() >= 7 and columns.max() <= 27  # and its corners only
    assert (codes[changed][:, None] == [Tissue.RIGHT_MULTIFIDUS, Tissue.LEFT_ERECTOR_SPINAE]).any(axis=1).all()
    assert (codes[14:18, 30:45] == Tissue.LEFT_ERECTOR_SPINAE).all()
    assert not changed[20:30, 45:50].any()  # the gap to the rib stays fat
    closed_narrow = Canvas(Grid(0.0, 0.0, 1.0, (40, 60)))
    closed_narrow.codes[:] = before
    close_gaps_to_bone(closed_narrow, gap_mm=2.0)  # gaps larger than the setting stay
    assert np.array_equal(closed_narrow.codes, before)


def test_deep_fat_gathers_next_to_bone_at_the_exact_fraction():
    tissues = np.zeros((60, 60), dtype=np.uint8)
    tissues[5:9, :] = Tissue.POSTERIOR_ARCH
    tissues[9:50, 5:55] = Tissue.RIGHT_MULTIFIDUS
    n = int((tissues == Tissue.RIGHT_MULTIFIDUS).sum())
    rows = np.indices(tissues.shape)[0]
    depth = {}
    for weight in (0.0, 3.0):
        pattern = replace(draw_fat_pattern(np.random.default_rng(4)), deep=weight)
        out = add_fat(tissues, (20.0, 0.0), pattern, 1.0, np.random.default_rng(5))
        fat = out == Tissue.RIGHT_INTRAMUSCULAR_FAT
        assert fat.sum() == round(0.2 * n)
        depth[weight] = rows[fat].mean() - 9
    assert depth[3.0] < 0.6 * depth[0.0]


def test_synthesis_anatomy_settings_change_the_data_only_where_asked():
    plain = synth_slice("L1", np.random.default_rng(3), WIDE)
    assert draw_fat_pattern(np.random.default_rng(1)).deep == 0.0
    again = synth_slice("L1", np.random.default_rng(3), replace(WIDE, compartment_width_mm=(60.0, 66.0, 70.0, 68.0, 60.0, 50.0)))
    assert np.array_equal(plain.labels, again.labels)
    wider = synth_slice("L1", np.random.default_rng(3), replace(WIDE, compartment_width_mm=(90.0, 66.0, 70.0, 68.0, 60.0, 50.0)))
    columns = np.nonzero((wider.labels > 0).any(axis=0))[0]
    plain_columns = np.nonzero((plain.labels > 0).any(axis=0))[0]
    assert columns.size > 1.2 * plain_columns.size
    with pytest.raises(InputError, match="compartment_width_mm"):
        SynthesisSettings(compartment_width_mm=(60.0, 66.0))
    with pytest.raises(InputError, match="bone_gap_mm"):
        SynthesisSettings(bone_gap_mm=-1.0)
    with pytest.raises(InputError, match="deep_fat"):
        SynthesisSettings(deep_fat=(2.0, 1.0))


def test_default_settings_still_make_the_synthesis_1_0_data():
    """Data sets made before synthesis 1.1 are made again to the byte: the labels of the sample patient of
    model 1.0.0/1.1.0 (seed 2021, case 11), pinned by their SHA-256 when synthesis 1.0 made them."""
    import hashlib

    case = synth_case(11, SynthesisSettings(seed=2021, shape_source="procedural", contrast_probabilities=(("t2", 1.0),)))
    digest = hashlib.sha256(np.ascontiguousarray(case.label_volume()).tobytes()).hexdigest()
    assert digest == "ed986dbc29163d961dee85f3d59cdae55d55bdbb00cc18a1979c0744304ffd4a"


def test_the_shipped_models_recipes_are_valid_settings():
    from pathlib import Path

    from ParaspinalSegTrainingLib.config import TrainingConfig

    recipes = sorted((Path(__file__).parents[2] / "Resources" / "Recipes").glob("*/"))
    assert recipes
    for folder in recipes:
        SynthesisSettings.from_dict(json.loads((folder / "synth.json").read_text()))  # refuses unknown or bad settings
        train = TrainingConfig.from_file(folder / "train.json")
        assert f"{train.name}-{train.version}" == folder.name


def compartment_extent(scale: ShapeScale, seed: int) -> tuple[float, float]:
    """(largest distance from the midline, depth) in mm of the right procedural compartment at L1."""
    canvas = Canvas(Grid(-150.0, -150.0, 0.5, (600, 600)))
    spine = draw_spine(1.0, False, 1.0, np.random.default_rng(seed))
    compartments = procedural_compartments(canvas, spine, 1.0, 1.0, 0.0, np.random.default_rng(seed), shape_scale=scale)
    x, y = canvas.grid.coordinates()
    right = compartments.side(0)
    return float(np.abs(x[right]).max()), float(y[right].max() - y[right].min())


def test_the_shape_scale_makes_compartments_wider_and_flatter_by_its_factors():
    plain = np.array([compartment_extent(ShapeScale(), seed) for seed in range(12)])
    scaled = np.array([compartment_extent(ShapeScale(width=(1.3, 1.3), depth=(0.7, 0.7)), seed) for seed in range(12)])
    width_ratio, depth_ratio = scaled.mean(axis=0) / plain.mean(axis=0)  # each outline's own noise averages out
    assert 1.22 < width_ratio < 1.38 and 0.62 < depth_ratio < 0.78


def test_the_default_shape_scale_draws_nothing_and_bad_ranges_are_refused():
    rng = np.random.default_rng(3)
    assert ShapeScale().draw(rng) == (1.0, 1.0) and rng.random() == np.random.default_rng(3).random()
    assert ShapeScale((1.2, 1.4), (0.6, 0.75)).draw(np.random.default_rng(3)) != (1.0, 1.0)
    for bad in ((0.0, 1.0), (1.2, 1.1)):
        with pytest.raises(InputError, match="compartment_depth_scale"):
            SynthesisSettings(compartment_depth_scale=bad)
