"""The models shipped under Resources/Models, every one of them: each loads, its hash matches its card,
and today's code gives the figures its card states, neither better nor worse beyond a tolerance, on the
shipped sample and (with ../shared present) on the real cases; the newest is the default."""

import json

import numpy as np
import pytest

from ParaspinalSegLib.cli import sample_folder
from ParaspinalSegLib.network.modelfile import load_model, sha256_of
from ParaspinalSegLib.network.registry import SHIPPED_MODELS, ModelRegistry

SHIPPED = sorted(p.parent for p in SHIPPED_MODELS.glob("*/model.json"))
RECIPES = SHIPPED_MODELS.parent / "Recipes"
REAL_TOLERANCE = 0.005  # real-case Dice: inference is deterministic on the CPU, up to float rounding
SAMPLE_TOLERANCE = 0.005  # the sample and its figure are fixed; the superseded 1.x models live in git history only


@pytest.fixture(scope="module", params=SHIPPED, ids=lambda folder: folder.name)
def shipped(request):
    return request.param, load_model(request.param)


def test_models_are_shipped_and_the_newest_is_the_default():
    assert [folder.name for folder in SHIPPED] == ["paraspinalseg-unet-r18-2.19.0"]
    assert ModelRegistry(user_dir=SHIPPED_MODELS / "none").active().model_id == SHIPPED[-1].name


def test_shipped_model_loads_and_its_hash_matches_its_card(shipped):
    folder, model = shipped
    assert model.card.model_id == folder.name
    assert sha256_of(folder / "model.safetensors") == model.card.weights_sha256
    assert (folder / "model.safetensors").stat().st_size < 50e6


def trained_members(settings: dict, data: dict) -> list[tuple[dict, dict]]:
    """A weight average's members that were trained, each with its own settings and data; a member that is
    itself a weight average (2.12.0 inside 2.19.0) gives its own members."""
    assert len(settings.get("soup_members", [])) == len(data.get("soup_members", [])) != 1
    out = []
    for member_settings, member_data in zip(settings.get("soup_members", []), data.get("soup_members", [])):
        assert member_settings["model"] == member_data["model"]
        nested = "soup_members" in member_settings
        out += trained_members(member_settings, member_data) if nested else [(member_settings, member_data)]
    return out


def test_a_shipped_weight_average_lists_each_member_with_the_recipe_it_was_trained_by(shipped):
    folder, model = shipped
    settings, data = model.card.training_settings, model.card.training_data
    is_soup = "model soup" in model.card.description
    assert is_soup == ("soup_members" in settings) == ("soup_members" in data)
    for member_settings, member_data in trained_members(settings, data):
        recipe = json.loads((RECIPES / member_settings["model"] / "train.json").read_text())
        assert member_settings["model"] == member_data["model"] == f"{recipe['name']}-{recipe['version']}"
        assert member_settings["seed"] == recipe["seed"] and member_settings["epochs"] == recipe["epochs"]
        assert member_data["patients"] == 120 and len(member_data["sha256"]) == 64


def test_shipped_model_gives_its_stated_dice_on_real_cases(shipped, shared_dir):
    from ParaspinalSegTrainingLib.real_validation import validate_real

    _, model = shipped
    stated = {c["case"]: c for c in model.card.validation["real_cases"]}
    reported = []
    found = validate_real(model, shared_dir, progress=lambda fraction, message: reported.append(fraction))
    assert reported == sorted(reported) and 0 <= reported[0] and reported[-1] <= 1
    assert sorted(f.case for f in found) == sorted(stated)
    for figures in found:
        assert figures.dice == pytest.approx(stated[figures.case]["dice"], abs=REAL_TOLERANCE), figures.case
        for level, dice in stated[figures.case].get("dice_per_level", {}).items():  # cards since 1.2.0
            assert figures.dice_per_level[level] == pytest.approx(dice, abs=REAL_TOLERANCE), (figures.case, level)


def test_shipped_model_gives_its_stated_dice_and_the_true_grade_on_the_sample(shipped):
    from ParaspinalSegLib.measure.measurement import mean_compartment_dice
    from ParaspinalSegLib.pipeline import segment_series
    from ParaspinalSegLib.read.reading import read_study
    from ParaspinalSegLib.read.segmentation import load_segmentation

    _, model = shipped
    series = read_study(sample_folder() / "study").series
    truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
    result = segment_series(series, model)
    dice = mean_compartment_dice(truth, result.labels)
    assert dice == pytest.approx(model.card.validation["sample_compartment_dice"], abs=SAMPLE_TOLERANCE)
    stated = json.loads((sample_folder() / "truth.json").read_text())
    assert result.summary.grade == stated["grade"]
    worst = min(case["dice"] for case in model.card.validation["real_cases"])
    assert result.model_note.startswith(f"model {model.card.model_id} reached a compartment Dice of {worst:.2f}-")


def test_shipped_model_gives_its_stated_held_out_figures_on_the_gradient_echo_domain(shipped, tmp_path, shared_dir):
    """One held-out domain (the contrast family of the hidden real test set), remade from its seed: the
    card's Dice per side and the model's fat error per patient, to the written precision. (Its L3-L5 slices
    take traced shapes from ../shared where present, as at release: without it the draws differ.)"""
    from ParaspinalSegTrainingLib.heldout import evaluate_held_out

    _, model = shipped
    stated = {d["domain"]: d for d in model.card.validation["held_out_domains"]}["gre_in_phase"]
    [figures] = evaluate_held_out(model, tmp_path, stated["patients"], report=True, names=("gre_in_phase",))
    assert len(figures.dice_right) == stated["slices"]
    assert np.nanmean(figures.dice_right) == pytest.approx(stated["dice_right"], abs=1e-3)
    assert np.nanmean(figures.dice_left) == pytest.approx(stated["dice_left"], abs=1e-3)
    errors = abs(figures.fat_errors("cnn"))
    assert errors.mean() == pytest.approx(stated["fat_fraction_vs_truth"]["cnn"]["mean_abs_error_points"], abs=0.01)
    if "quality_warnings" in stated:
        assert figures.warned() == {k: v for k, v in stated["quality_warnings"].items() if not k.endswith("_dice")}
