"""The model shipped under Resources/Models: it loads, its hash matches its card, it reaches the
figures its card states on the real cases of ../shared, and it segments the shipped sample."""

import json

import pytest

from ParaspinalSegLib.cli import sample_folder
from ParaspinalSegLib.modelfile import load_model, sha256_of
from ParaspinalSegLib.registry import SHIPPED_MODELS, ModelRegistry

SHIPPED = sorted(p.parent for p in SHIPPED_MODELS.glob("*/model.json"))


@pytest.fixture(scope="module")
def shipped():
    assert SHIPPED, f"no model under {SHIPPED_MODELS}"
    return load_model(SHIPPED[-1])


def test_shipped_model_loads_and_its_hash_matches_its_card(shipped):
    assert sha256_of(SHIPPED[-1] / "model.safetensors") == shipped.card.weights_sha256
    assert (SHIPPED[-1] / "model.safetensors").stat().st_size < 50e6
    assert ModelRegistry(user_dir=SHIPPED_MODELS / "none").active().model_id == shipped.card.model_id


def test_shipped_model_reaches_its_stated_dice_on_real_cases(shipped, shared_dir):
    from ParaspinalSegTrainingLib.real_validation import validate_real

    stated = {c["case"]: c for c in shipped.card.validation["real_cases"]}
    reported = []
    found = validate_real(shipped, shared_dir, progress=lambda fraction, message: reported.append(fraction))
    assert reported == sorted(reported) and 0 <= reported[0] and reported[-1] <= 1
    assert len(found) == len(stated)
    for figures in found:
        assert figures.dice >= stated[figures.case]["dice"] - 0.005, figures.case
        for level, dice in stated[figures.case].get("dice_per_level", {}).items():  # cards since 1.2.0
            assert figures.dice_per_level[level] >= dice - 0.005, (figures.case, level)


def test_shipped_model_segments_the_sample_close_to_its_truth(shipped):
    from ParaspinalSegLib.measurement import mean_compartment_dice
    from ParaspinalSegLib.pipeline import segment_series
    from ParaspinalSegLib.reading import read_study
    from ParaspinalSegLib.segmentation import load_segmentation

    series = read_study(sample_folder() / "study").series
    truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
    result = segment_series(series, shipped)
    dice = mean_compartment_dice(truth, result.labels)
    assert dice >= shipped.card.validation["sample_compartment_dice"] - 0.005
    stated = json.loads((sample_folder() / "truth.json").read_text())
    assert result.summary.grade == stated["grade"]
