"""Mirrored test-time augmentation only where the network is unsure (the card's `mirror_below_confidence`):
which slices get the second look, what their scores become, the product path on the sample, the card field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import SHIPPED_MODEL, side_reading_runner
from ParaspinalSegLib.cohorts.batchplan import SegmentSettings
from ParaspinalSegLib.errors import OperationCancelled
from ParaspinalSegLib.network.inference import (class_probabilities, compartment_confidence, mirror_unsure,
                                                network_scores)
from ParaspinalSegLib.network.model import Postprocessing
from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.output.export import quality_document
from ParaspinalSegLib.pipeline import segment_series


@pytest.fixture(scope="module")
def runner():
    return side_reading_runner(width=20)


def confidence(scores: np.ndarray, post: Postprocessing) -> float:
    return compartment_confidence(class_probabilities(scores[None], post)[0])


def test_only_the_slices_below_the_threshold_are_averaged_with_their_mirrored_look(runner):
    windows = list(np.random.default_rng(1).random((5, 16, 20)).astype(np.float32))
    batch = np.stack(windows)[:, None]
    plain, both = network_scores(runner, batch), network_scores(runner, batch, mirror=True)
    plain[4, 0] += 50.0  # slice 4: background everywhere, no compartment (confidence NaN)
    found = [confidence(s, Postprocessing()) for s in plain]
    assert np.isnan(found[4]) and len(set(found[:4])) == 4
    threshold = float(np.median(found[:4]))  # two of the four slices with a compartment lie below it
    post = Postprocessing(mirror_below_confidence=threshold)
    scores = [plain[:3].copy(), plain[3:].copy()]
    probabilities = [class_probabilities(s, post) for s in scores]
    reports = []
    unsure = mirror_unsure(runner, windows, scores, probabilities, post, 3, lambda f, m: reports.append((f, m)))
    assert unsure == [i for i in range(4) if found[i] < threshold] and len(unsure) == 2
    assert [len(p) for p in probabilities] == [3, 2]  # the batches as they came
    result = np.concatenate(probabilities)
    for i in range(5):
        expected = class_probabilities((both if i in unsure else plain)[i][None], post)[0]
        np.testing.assert_allclose(result[i], expected, rtol=1e-5, atol=1e-5)
    assert reports == [(1.0, "segmenting again mirrored, unsure slice 2/2")]  # one batch of the second look
    never = [class_probabilities(plain, post)]
    assert mirror_unsure(runner, windows, [plain], never, Postprocessing(mirror_below_confidence=1e-6), 8) == []


def test_the_second_look_can_be_cancelled_between_its_batches(runner):
    windows = list(np.random.default_rng(2).random((6, 16, 20)).astype(np.float32))
    plain = network_scores(runner, np.stack(windows)[:, None])
    post = Postprocessing(mirror_below_confidence=1.0)  # every slice with a compartment
    probabilities = [class_probabilities(plain, post)]
    before = probabilities[0].copy()

    def cancel(fraction: float, message: str) -> None:
        raise OperationCancelled(message)

    with pytest.raises(OperationCancelled, match="unsure slice 2/6"):
        mirror_unsure(runner, windows, [plain], probabilities, post, 2, cancel)
    assert not np.allclose(probabilities[0][:2], before[:2]) and np.array_equal(probabilities[0][2:], before[2:])


@pytest.fixture(scope="module")
def sample_series():
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.read.reading import read_study

    return read_study(sample_folder() / "study").series


def test_on_the_sample_a_threshold_of_one_mirrors_every_slice_as_the_mirror_does_and_says_so(sample_series):
    model = load_model(SHIPPED_MODEL, "cpu", backend="torch")
    assert model.card.postprocessing.mirror_below_confidence == 0.0  # the shipped card: never
    everywhere = segment_series(sample_series, model, mirror=True)
    unsure = segment_series(sample_series, model.with_postprocessing(mirror_below_confidence=1.0))
    assert unsure.mirrored == tuple(range(len(sample_series)))  # every slice has a compartment below 1
    for a, b in zip(everywhere.labels, unsure.labels):
        np.testing.assert_array_equal(a, b)
    assert "mirrored test-time augmentation on the slices of confidence below 1" in unsure.provenance.method
    assert quality_document(unsure)["slices_mirrored_unsure"] == list(range(len(sample_series)))
    # a batch run names the method as the study's outputs do, so that it keeps them when resumed
    assert SegmentSettings().method(model.card.model_id, 1.0) == unsure.provenance.method
    plain = segment_series(sample_series, model)
    assert plain.mirrored == () and "mirrored" not in plain.provenance.method
    assert quality_document(plain)["slices_mirrored_unsure"] == []
    assert SegmentSettings().method(model.card.model_id) == plain.provenance.method
    assert any((a != b).any() for a, b in zip(plain.labels, unsure.labels))


def test_the_threshold_is_a_card_field_between_zero_and_one_absent_from_older_cards():
    card = json.loads((SHIPPED_MODEL / "model.json").read_text())
    assert "mirror_below_confidence" not in card["postprocessing"]
    assert Postprocessing.from_dict(card["postprocessing"]).mirror_below_confidence == 0.0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="mirror_below_confidence"):
            Postprocessing(mirror_below_confidence=bad)
