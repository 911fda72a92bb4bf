"""The card's postprocessing (the fat/muscle split, the background's odds, the label decision, the
fat split by expected area): fat fractions and compartment areas on probability maps of known
composition, the card fields, the product path on the sample, fine-tuning and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import SHIPPED_MODEL, run_cli
from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.measure.measurement import mean_compartment_dice
from ParaspinalSegLib.network.inference import class_probabilities, shift_fat_split
from ParaspinalSegLib.network.model import Postprocessing
from ParaspinalSegLib.network.modelfile import ModelCard, load_model
from ParaspinalSegLib.network.preprocess import class_labels, softmax
from ParaspinalSegLib.pipeline import segment_series


def right_compartment(groups: list[tuple[int, float, float]]) -> np.ndarray:
    """Probabilities (1, 5, 1, pixels) of a right compartment: per group, its pixel count and its muscle
    and fat probability (the rest background)."""
    columns = []
    for count, muscle, fat in groups:
        pixel = np.zeros(5, dtype=np.float32)
        pixel[[0, RIGHT_MUSCLE, RIGHT_FAT]] = 1.0 - muscle - fat, muscle, fat
        columns += [pixel] * count
    return np.stack(columns, axis=1)[None, :, None, :]


def fat_pct(probabilities: np.ndarray) -> float:
    labels = probabilities.argmax(axis=1)
    return 100.0 * float(np.mean(labels == RIGHT_FAT)) / float(np.mean(labels > 0))


def test_the_offset_keeps_only_fat_whose_odds_over_muscle_exceed_its_exponential():
    # 30 pixels at fat:muscle odds 3, 20 at 1.5, 50 of muscle: 50 % fat by argmax, 30 % at odds above 2
    probabilities = right_compartment([(30, 0.2, 0.6), (20, 0.3, 0.45), (50, 0.7, 0.1)])
    assert shift_fat_split(probabilities, 0.0) is probabilities
    assert fat_pct(probabilities) == pytest.approx(50.0)
    shifted = shift_fat_split(probabilities, math.log(2.0))
    assert fat_pct(shifted) == pytest.approx(30.0)
    np.testing.assert_allclose(shifted[:, RIGHT_MUSCLE] + shifted[:, RIGHT_FAT],
                               probabilities[:, RIGHT_MUSCLE] + probabilities[:, RIGHT_FAT], rtol=1e-6)
    np.testing.assert_array_equal(shifted[:, 0], probabilities[:, 0])
    np.testing.assert_allclose(shifted.sum(axis=1), 1.0, rtol=1e-6)
    assert fat_pct(shift_fat_split(probabilities, -math.log(2.0))) == pytest.approx(50.0)  # muscle at odds 1/7 stays
    assert fat_pct(shift_fat_split(probabilities, math.log(4.0))) == pytest.approx(0.0)


def test_the_offset_moves_each_side_by_its_own_probabilities():
    probabilities = np.zeros((1, 5, 1, 2), dtype=np.float32)
    probabilities[0, [LEFT_MUSCLE, LEFT_FAT], 0, 0] = 0.25, 0.75  # left: fat at odds 3
    probabilities[0, [RIGHT_MUSCLE, RIGHT_FAT], 0, 1] = 0.5, 0.5  # right: a tie
    shifted = shift_fat_split(probabilities, math.log(3.0))
    np.testing.assert_allclose(shifted[0, [LEFT_MUSCLE, LEFT_FAT], 0, 0], (0.5, 0.5), rtol=1e-6)
    np.testing.assert_allclose(shifted[0, [RIGHT_MUSCLE, RIGHT_FAT], 0, 1], (0.75, 0.25), rtol=1e-6)


def test_cards_without_postprocessing_mean_no_offset_and_bad_offsets_are_refused():
    card = ModelCard(name="m", version="1")
    data = card.to_dict()
    assert data["postprocessing"] == {"fat_score_offset": 0.0, "background_score_offset": 0.0, "label_decision": "flat",
                                      "fat_split": "per_pixel", "mirror_below_confidence": 0.0}
    del data["postprocessing"]
    assert ModelCard.from_dict(data).postprocessing == Postprocessing(0.0, 0.0, "flat")
    older = ModelCard.from_dict({**data, "postprocessing": {"fat_score_offset": 0.5}}).postprocessing  # a 2.6.0 card
    assert older.fat_score_offset == 0.5 and older.background_score_offset == 0.0 and older.label_decision == "flat"
    with pytest.raises(ValueError, match="label_decision 'sides_first': choose from flat, compartment_first"):
        Postprocessing(label_decision="sides_first")
    for bad in (float("nan"), 6.0, -7.5):
        with pytest.raises(ValueError, match="fat_score_offset"):
            Postprocessing(bad)
        with pytest.raises(ValueError, match="background_score_offset"):
            Postprocessing(background_score_offset=bad)


def scores_of(probabilities: np.ndarray) -> np.ndarray:
    """Class scores whose softmax is `probabilities` (their logarithms; a zero stays at 1e-30)."""
    return np.log(np.maximum(probabilities, 1e-30))


def background_reweighted(probabilities: np.ndarray, offset: float) -> np.ndarray:
    """The background offset by its definition: background's probability times exp(offset), renormalised."""
    shifted = probabilities.copy()
    shifted[:, 0] *= math.exp(offset)
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_the_background_offset_keeps_only_compartment_whose_odds_over_background_exceed_its_exponential():
    # right muscle at odds 9 (40 pixels), 1.5 (30) and 2/3 (30) over background: 70 pixels by argmax,
    # 40 at odds above 2, all 100 at odds above 1/2
    probabilities = right_compartment([(40, 0.9, 0.0), (30, 0.6, 0.0), (30, 0.4, 0.0)])
    def area(offset: float) -> int:
        p = class_probabilities(scores_of(probabilities), Postprocessing(background_score_offset=offset))
        return int((p.argmax(axis=1) > 0).sum())
    assert area(0.0) == 70
    assert area(math.log(2.0)) == 40
    assert area(-math.log(2.0)) == 100
    mixed = right_compartment([(1, 0.3, 0.5)])  # background 0.2, fat 0.5, muscle 0.3
    shifted = class_probabilities(scores_of(mixed), Postprocessing(background_score_offset=math.log(3.0)))
    # background 0.6 of 1.4: 3/7, fat 5/14, muscle 3/14
    np.testing.assert_allclose(shifted[0, [0, RIGHT_MUSCLE, RIGHT_FAT], 0, 0], (3 / 7, 3 / 14, 5 / 14), rtol=1e-6)
    np.testing.assert_allclose(shifted.sum(axis=1), 1.0, rtol=1e-6)
    both = class_probabilities(scores_of(mixed), Postprocessing(fat_score_offset=math.log(2.0),
                                                                background_score_offset=math.log(3.0)))
    assert both.argmax(axis=1).item() == 0  # background first (3/7 beats fat 5/14 and muscle)
    fat_first = class_probabilities(scores_of(mixed), Postprocessing(fat_score_offset=math.log(2.0)))
    assert fat_first.argmax(axis=1).item() == RIGHT_MUSCLE  # fat at odds 5/3, below 2: muscle


@pytest.mark.parametrize("fat_offset, background_offset", [(0.0, 0.0), (1.5, 0.0), (0.0, -1.0), (1.5, 1.5)])
def test_the_offsets_taken_on_the_scores_equal_those_taken_on_the_probabilities(fat_offset, background_offset):
    """`class_probabilities` adds the background offset to its score before the softmax: the same
    probabilities as background's reweighted by its definition after the softmax, then `shift_fat_split`,
    and the scores are left as they were."""
    scores = (np.random.default_rng(7).standard_normal((3, 5, 16, 16)) * 4).astype(np.float32)
    given = scores.copy()
    post = Postprocessing(fat_score_offset=fat_offset, background_score_offset=background_offset)
    expected = shift_fat_split(background_reweighted(softmax(scores, axis=1), background_offset), fat_offset)
    np.testing.assert_allclose(class_probabilities(scores, post), expected, atol=1e-6)
    np.testing.assert_array_equal(scores, given)
    if background_offset:
        assert not np.allclose(expected, shift_fat_split(softmax(scores, axis=1), fat_offset), atol=1e-3)


def test_on_the_sample_a_larger_background_offset_draws_smaller_compartments(shipped):
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(sample_folder() / "study").series
    base = shipped.card.postprocessing.background_score_offset
    plain, tight = (segment_series(series, shipped.with_postprocessing(background_score_offset=x)) for x in (base, base + 1.5))
    area = lambda result: sum(s.both.total_csa_mm2 for s in result.slices)  # noqa: E731
    assert area(tight) < area(plain) * 0.99
    assert mean_compartment_dice(plain.labels, tight.labels) > 0.95


@pytest.fixture(scope="module")
def shipped():
    return load_model(SHIPPED_MODEL)


def test_on_the_sample_a_larger_offset_calls_less_fat_in_nearly_the_same_compartments(shipped):
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(sample_folder() / "study").series
    base = shipped.card.postprocessing.fat_score_offset
    plain, lean = (segment_series(series, shipped.with_postprocessing(fat_score_offset=x)) for x in (base, base + 1.0))
    assert lean.summary.mean_fat_fraction_pct < plain.summary.mean_fat_fraction_pct - 1.0
    assert mean_compartment_dice(plain.labels, lean.labels) > 0.99


def test_fine_tuning_keeps_the_parents_offset(shipped):
    from ParaspinalSegTrainingLib.config import TrainingConfig
    from ParaspinalSegTrainingLib.run import card_template

    parent = shipped.with_postprocessing(fat_score_offset=0.7, background_score_offset=0.4)
    assert card_template(TrainingConfig(), parent, {}).postprocessing == Postprocessing(0.7, 0.4)
    assert card_template(TrainingConfig(), None, {}).postprocessing == Postprocessing(0.0, 0.0)


def test_release_and_heldout_take_an_offset_and_refuse_a_bad_one(shipped, tmp_path, capsys):
    (tmp_path / "shared").mkdir()  # no real cases: none measured
    code, out, err = run_cli(capsys, "release", shipped.folder, "--out", tmp_path / "released", "--shared",
                             tmp_path / "shared", "--fat-score-offset", "0.25", "--background-score-offset", "0.5",
                             "--version", "0.0.1")
    assert code == 0, err
    card = json.loads((tmp_path / "released" / "model.json").read_text())
    assert card["postprocessing"] == {"fat_score_offset": 0.25, "background_score_offset": 0.5, "label_decision": "flat",
                                      "fat_split": "per_pixel", "mirror_below_confidence": 0.0}
    released = load_model(tmp_path / "released").card
    assert released.postprocessing == Postprocessing(0.25, 0.5)
    code, _, err = run_cli(capsys, "release", tmp_path / "released", "--out", tmp_path / "first", "--shared",
                           tmp_path / "shared", "--label-decision", "compartment_first", "--fat-split", "expected_area",
                           "--mirror-below", "0.98", "--version", "0.0.2")
    assert code == 0, err
    assert load_model(tmp_path / "first").card.postprocessing == Postprocessing(0.25, 0.5, "compartment_first",
                                                                                "expected_area", 0.98)
    with pytest.raises(SystemExit) as exit:
        run_cli(capsys, "heldout", shipped.folder, "--data", tmp_path / "h", "--label-decision", "sides")
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "invalid choice: 'sides'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit:
        run_cli(capsys, "heldout", shipped.folder, "--data", tmp_path / "h", "--fat-split", "soft")
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "invalid choice: 'soft'" in err and "Traceback" not in err
    assert released.version == "0.0.1" and released.name == shipped.card.name and released.weights_sha256 == shipped.card.weights_sha256
    for option in ("--fat-score-offset", "--background-score-offset"):
        with pytest.raises(SystemExit) as exit:  # argparse's own refusal
            run_cli(capsys, "heldout", shipped.folder, "--data", tmp_path / "h", option, "9")
        err = capsys.readouterr().err
        name = option[2:].replace("-", "_")
        assert exit.value.code == 2 and f"{name} 9.0: needs a number from -5 to 5" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit:
        run_cli(capsys, "heldout", shipped.folder, "--data", tmp_path / "h", "--mirror-below", "1.5")
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "mirror_below_confidence 1.5: needs a number from 0 to 1" in err


def test_the_training_engine_chooses_epochs_on_the_labels_the_offset_gives():
    import torch

    from ParaspinalSegTrainingLib.config import TrainingConfig
    from ParaspinalSegTrainingLib.datasets import PreparedSlices
    from ParaspinalSegTrainingLib.training import validation_scores, window_labels

    logits = torch.full((1, 5, 1, 3), -10.0)
    logits[0, RIGHT_MUSCLE] = 0.0
    logits[0, RIGHT_FAT] = torch.tensor([1.0, 3.0, -1.0])  # fat at odds e, e^3 and 1/e over muscle
    assert window_labels(logits).tolist() == [[[RIGHT_FAT, RIGHT_FAT, RIGHT_MUSCLE]]]
    assert window_labels(logits, Postprocessing(2.0)).tolist() == [[[RIGHT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE]]]

    class Fixed(torch.nn.Module):
        def forward(self, images):
            return logits.expand(len(images), -1, -1, -1)

    truth = np.array([[[RIGHT_FAT, RIGHT_FAT, RIGHT_MUSCLE]]], dtype=np.uint8)
    slices = PreparedSlices(np.zeros((1, 1, 3), dtype=np.float32), truth, ["c"], ["p"], 1.0)
    no_loss = lambda scores, target: torch.tensor(0.0)  # noqa: E731
    _, plain = validation_scores(Fixed(), slices, no_loss, "cpu", TrainingConfig())
    _, shifted = validation_scores(Fixed(), slices, no_loss, "cpu", TrainingConfig(), post=Postprocessing(2.0))
    assert plain["fat"] == 1.0 and shifted["fat"] == pytest.approx(2 / 3)  # one of the two fat pixels left
    assert plain["overall muscle"] == shifted["overall muscle"] == 1.0
    # background at logit 2: odds of e^-1 (fat, first pixel), e (second) and e^-2 (muscle, third) over it; with
    # odds e^-1 needed the third pixel goes to background
    background = logits.clone()
    background[0, 0] = 2.0
    assert window_labels(background).tolist() == [[[0, RIGHT_FAT, 0]]]
    assert window_labels(background, Postprocessing(background_score_offset=-1.5)).tolist() == [[[RIGHT_FAT, RIGHT_FAT, 0]]]


def test_compartment_first_keeps_a_border_pixel_whose_compartment_beats_background_split_between_muscle_and_fat():
    # 40 pixels: background 0.4, muscle 0.35, fat 0.25 (compartment 0.6); 30: background 0.5, muscle 0.3, fat 0.2
    # (a tie of compartment and background: background); 30 of clear muscle. Flat: 30 pixels; compartment first: 70
    probabilities = right_compartment([(40, 0.35, 0.25), (30, 0.3, 0.2), (30, 0.9, 0.05)])
    flat, first = class_labels(probabilities), class_labels(probabilities, "compartment_first")
    assert int((flat > 0).sum()) == 30 and int((first > 0).sum()) == 70
    assert set(np.unique(first[first > 0])) == {RIGHT_MUSCLE}
    even = right_compartment([(1, 0.3, 0.3)])  # fat ties muscle: muscle, as in the flat argmax
    assert class_labels(even, "compartment_first").item() == RIGHT_MUSCLE
    sides = np.zeros((5, 1, 2), dtype=np.float32)
    sides[[0, RIGHT_MUSCLE, RIGHT_FAT, LEFT_MUSCLE, LEFT_FAT], 0, 0] = 0.32, 0.25, 0.15, 0.28, 0.0  # right 0.4 beats 0.32
    sides[[0, RIGHT_MUSCLE, RIGHT_FAT, LEFT_MUSCLE, LEFT_FAT], 0, 1] = 0.32, 0.0, 0.0, 0.3, 0.38  # left 0.68: fat
    assert class_labels(sides).tolist() == [[0, LEFT_FAT]]
    assert class_labels(sides, "compartment_first").tolist() == [[RIGHT_MUSCLE, LEFT_FAT]]


def test_the_training_engine_takes_labels_by_the_cards_decision():
    import torch

    from ParaspinalSegTrainingLib.training import window_labels

    probabilities = torch.tensor(right_compartment([(2, 0.35, 0.25), (1, 0.05, 0.05)]))
    logits = torch.log(probabilities.clamp_min(1e-9))
    assert window_labels(logits).tolist() == [[[0, 0, 0]]]
    assert window_labels(logits, Postprocessing(label_decision="compartment_first")).tolist() == [[[RIGHT_MUSCLE, RIGHT_MUSCLE, 0]]]
    # the background offset comes first: at odds e over a compartment of 0.6 the border pixels go to background
    assert window_labels(logits, Postprocessing(background_score_offset=1.0, label_decision="compartment_first")).tolist() == [[[0, 0, 0]]]


def test_expected_area_gives_each_side_the_sum_of_fats_share_in_the_same_compartments():
    # right: 60 pixels where fat's share of the compartment is 0.3 (muscle 0.63, fat 0.27) and 40 at 0.05: the per-pixel
    # split finds no fat, the expected area 0.3 x 60 + 0.05 x 40 = 20 pixels, all where the share is highest
    probabilities = right_compartment([(60, 0.63, 0.27), (40, 0.855, 0.045)])
    per_pixel, expected = class_labels(probabilities), class_labels(probabilities, fat_split="expected_area")
    assert not (per_pixel == RIGHT_FAT).any()
    assert int((expected == RIGHT_FAT).sum()) == 20 and (expected[..., :60] == RIGHT_FAT).sum() == 20
    np.testing.assert_array_equal(expected > 0, per_pixel > 0)
    import torch

    from ParaspinalSegTrainingLib.training import window_labels

    scores = torch.log(torch.from_numpy(probabilities))  # the training engine's epoch choice takes the same split
    assert int((window_labels(scores, Postprocessing(fat_split="expected_area")) == RIGHT_FAT).sum()) == 20
    # a batch of two slices, each side its own count: left fat at share 0.75 on 8 pixels and 0.25 on 8 (8 pixels)
    batch = np.zeros((2, 5, 1, 16), dtype=np.float32)
    batch[:, 0] = 1.0
    batch[0] = right_compartment([(16, 0.5, 0.5)])[0]  # a tie everywhere: muscle per pixel, half fat by area
    batch[1, 0] = 0.0
    batch[1, LEFT_MUSCLE], batch[1, LEFT_FAT] = np.repeat([0.25, 0.75], 8), np.repeat([0.75, 0.25], 8)
    labels = class_labels(batch, fat_split="expected_area")
    assert int((labels[0] == RIGHT_FAT).sum()) == 8 and not (labels[0] == LEFT_FAT).any()
    assert labels[1].tolist() == [[LEFT_FAT] * 8 + [LEFT_MUSCLE] * 8]
    assert class_labels(batch).tolist()[1] == labels[1].tolist()  # there the per-pixel split agrees


def test_the_fat_split_is_a_card_field_with_a_default_and_refuses_an_unknown_one():
    assert Postprocessing.from_dict({"fat_score_offset": 1.5}).fat_split == "per_pixel"
    assert Postprocessing.from_dict(Postprocessing(fat_split="expected_area").to_dict()).fat_split == "expected_area"
    with pytest.raises(ValueError, match="fat_split 'soft': choose from per_pixel, expected_area"):
        Postprocessing(fat_split="soft")


def test_on_the_sample_the_expected_area_split_keeps_each_compartment_and_moves_only_its_fat(shipped):
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(sample_folder() / "study").series
    per_pixel = segment_series(series, shipped)
    expected = segment_series(series, shipped.with_postprocessing(fat_split="expected_area"))
    for a, b in zip(per_pixel.labels, expected.labels):
        for side in ((RIGHT_MUSCLE, RIGHT_FAT), (LEFT_MUSCLE, LEFT_FAT)):
            np.testing.assert_array_equal(np.isin(a, side), np.isin(b, side))
    assert expected.summary.mean_fat_fraction_pct != per_pixel.summary.mean_fat_fraction_pct
