"""The fat-border report (bench/fat_border_offset.py): at 0 it is the card's class probabilities; at D it
keeps fat's odds over muscle and moves only the compartment's odds over background, by
(p_muscle + p_fat e^D) / (p_muscle + p_fat) of the card's own probabilities before the split."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.network import inference
from ParaspinalSegLib.network.model import Postprocessing
from ParaspinalSegLib.network.preprocess import softmax

spec = importlib.util.spec_from_file_location("fat_border_offset",
                                              Path(__file__).parents[2] / "bench" / "fat_border_offset.py")
border = sys.modules["fat_border_offset"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(border)

CARD = Postprocessing(fat_score_offset=1.0, background_score_offset=1.5)
SCORES = np.random.default_rng(3).normal(0.0, 2.0, (2, 5, 6, 6))


def test_at_zero_it_is_the_cards_own_class_probabilities():
    assert np.allclose(border.with_fat_border(0.0)(SCORES, CARD), inference.class_probabilities(SCORES, CARD))


def test_it_keeps_fats_odds_over_muscle_and_moves_the_compartment_by_its_fat_share():
    offset = 1.0
    before, after = inference.class_probabilities(SCORES, CARD), border.with_fat_border(offset)(SCORES, CARD)
    raw = softmax(SCORES + np.array([CARD.background_score_offset, 0, 0, 0, 0])[None, :, None, None], axis=1)
    assert np.allclose(after.sum(axis=1), 1.0)
    for muscle, fat in ((RIGHT_MUSCLE, RIGHT_FAT), (LEFT_MUSCLE, LEFT_FAT)):
        assert np.allclose(after[:, fat] / after[:, muscle], before[:, fat] / before[:, muscle])
        rise = (raw[:, muscle] + raw[:, fat] * math.exp(offset)) / (raw[:, muscle] + raw[:, fat])
        odds = lambda p: (p[:, muscle] + p[:, fat]) / p[:, 0]  # noqa: E731
        assert np.allclose(odds(after) / odds(before), rise)
        assert (rise > 1.0).all() and (rise < math.e).all()


def test_a_bad_offset_is_refused_with_a_message(capsys):
    assert border.main(["one", "some-model"]) == 2
    assert "'one' is not a number" in capsys.readouterr().err
