"""Releasing a trained model: the weights are copied unchanged, the card gains the figures measured at release
(the sample's Dice; per level on the real cases where ../shared is present), and nothing is ever replaced."""

import json

import pytest
from helpers import SHIPPED_MODEL as SHIPPED, run_cli

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.modelfile import load_model, sha256_of
from ParaspinalSegTrainingLib.real_validation import LEVEL_GROUPS
from ParaspinalSegTrainingLib.release import release_model



def test_release_copies_the_weights_and_measures_the_sample(tmp_path):
    card = release_model(SHIPPED, tmp_path / "released", None, notes="release test")
    released = tmp_path / "released"
    assert sha256_of(released / "model.safetensors") == sha256_of(SHIPPED / "model.safetensors") == card.weights_sha256
    stated = json.loads((SHIPPED / "model.json").read_text())["validation"]["sample_compartment_dice"]
    assert card.validation["sample_compartment_dice"] == pytest.approx(stated, abs=0.005)
    assert card.validation["real_cases"] == [] and "synthetic images only" in card.validation["limits"]
    assert card.description == "release test" and "Sudirman" in card.training_data["credits"]
    assert load_model(released).card.to_dict() == card.to_dict()
    assert card.graph["sha256"] == sha256_of(released / "model.onnx") == load_model(SHIPPED).card.graph["sha256"]
    assert load_model(released, backend="onnxruntime").backend == "onnxruntime"
    assert not list(tmp_path.glob(".*partial"))


def test_release_never_replaces_a_model_folder(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="already exists"):
        release_model(SHIPPED, tmp_path / "taken", None)
    code, out, err = run_cli(capsys, "release", SHIPPED, "--out", tmp_path / "taken", "--shared", tmp_path)
    assert code != 0 and str(tmp_path / "taken") in err and "Traceback" not in out + err
    assert list((tmp_path / "taken").iterdir()) == []


def test_release_puts_the_real_figures_per_level_in_the_card(tmp_path, shared_dir):
    card = release_model(SHIPPED, tmp_path / "released", shared_dir)
    stated = {c["case"]: c for c in json.loads((SHIPPED / "model.json").read_text())["validation"]["real_cases"]}
    for case in card.validation["real_cases"]:
        assert set(case["per_level"]) == set(LEVEL_GROUPS[case["case"]])
        for level, dice in stated[case["case"]]["dice_per_level"].items():
            assert case["dice_per_level"][level] == pytest.approx(dice, abs=0.005)
            assert case["per_level"][level]["dice"] == case["dice_per_level"][level]
    json.loads((tmp_path / "released" / "model.json").read_text())  # the card stays plain JSON
