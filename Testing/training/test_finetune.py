"""Fine-tuning the shipped model on corrected cases (CPU, short): a new registered model naming its
parent and cases, a cancelled run in the training process that leaves the first model intact, the
command line, and a contrast the parent never saw."""

import csv
import dataclasses
import itertools
import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import phantom_series, run_cli
from ParaspinalSegLib.network.inference import predict_series
from ParaspinalSegLib.measure.measurement import sided_dice
from ParaspinalSegLib.network.modelfile import WEIGHTS_FILE, load_model, sha256_of
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.network.registry import ModelRegistry, resolve_model
from ParaspinalSegTrainingLib.config import TrainingConfig
from ParaspinalSegTrainingLib.datasets import case_labels, find_cases
from ParaspinalSegTrainingLib.finetune import POOR_PARENT_DICE, PARENT_SHARE, FineTuneSettings, fine_tune
from ParaspinalSegTrainingLib import trainingset
from ParaspinalSegTrainingLib.trainingset import add_case
from ParaspinalSegTrainingLib.trainprocess import TrainingProcess

FAST = TrainingConfig(batch_size=2, mixed_precision=False, workers=0)
ONE_EPOCH = FineTuneSettings(epochs=1, freeze_encoder_epochs=0, config=FAST)
PROCESS_TIMEOUT_S = 400


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """PARASPINALSEG_HOME in a temporary folder: the shipped model plus what the tests register."""
    folder = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARASPINALSEG_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def shipped(home) -> str:
    return ModelRegistry().active().model_id


def corrected_cases(folder, cases: int, contrast=None):
    for seed in range(cases):
        series, labels = phantom_series(slices=2, seed=seed, fat_fraction=0.05 + 0.1 * seed, contrast=contrast)
        add_case(folder, series, labels, draft_model="paraspinalseg-unet-r18-1.0.0",
                 corrected_segments=["Right muscle tissue"], author="test")
    return folder


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory):
    return corrected_cases(tmp_path_factory.mktemp("set") / "training set", 2)


def case_ids(training_set) -> list[str]:
    return sorted(p.name for p in (training_set / "cases").iterdir())


def series_dice(model_ref, pairs) -> float:
    """Compartment Dice (per side) of a model's raw prediction, mean over the slices of (series, labels) pairs,
    computed here apart from the fine-tuning's own evaluation."""
    model = load_model(resolve_model(str(model_ref)))
    values = [sided_dice(t, p) for series, labels in pairs for t, p in zip(labels, predict_series(model, series))]
    return float(np.nanmean(values))


def case_pairs(training_set, wanted) -> list:
    """(series, scheme labels) of the training set's cases named in `wanted`."""
    pairs = []
    for case in find_cases(training_set):
        if case.case_id in wanted:
            series = read_study(case.image).series
            pairs.append((series, case_labels(case, series)[0]))
    assert len(pairs) == len(wanted)
    return pairs


def test_training_process_registers_a_new_model_and_a_cancelled_second_run_loses_nothing(home, shipped, two_cases,
                                                                                           tmp_path):
    registry = ModelRegistry()
    before = {m.model_id for m in registry.models()}
    first = TrainingProcess(two_cases, shipped, ONE_EPOCH, work_folder=tmp_path / "first")
    first.start()
    outcome = first.wait(timeout=PROCESS_TIMEOUT_S)
    assert outcome is not None and outcome.status == "finished", outcome and outcome.error
    epochs = [e for e in first.events if e.kind == "epoch"]
    assert [(e.epoch, e.epochs) for e in epochs] == [(1, 1)]
    assert epochs[0].loss > 0
    phases = ["measuring", "training", "evaluating", "registering"]
    assert [e.phase for e in first.events if e.kind == "phase"] == phases

    model = registry.get(outcome.model_id)
    assert outcome.model_id != shipped and not model.shipped
    assert model.card.parent == shipped
    assert model.card.training_data["case_ids"] == case_ids(two_cases)
    held_out = outcome.result["held_out_case_ids"]
    assert len(held_out) == 1 and model.card.validation["comparison_with_parent"]["cases"] == held_out
    assert epochs[0].validation_dice == pytest.approx(model.card.validation["validation_dice_mean"], abs=1e-5)
    figures = outcome.result["figures"]["overall muscle"]  # recomputed here on the held-out case
    held_out_pairs = case_pairs(two_cases, held_out)
    assert figures["dice_new"] == pytest.approx(series_dice(model.folder, held_out_pairs), abs=1e-6)
    assert figures["dice_parent"] == pytest.approx(series_dice(shipped, held_out_pairs), abs=1e-6)
    assert set(outcome.result["tables"]) == {"new", "parent"}

    second = TrainingProcess(two_cases, shipped, FineTuneSettings(epochs=3, freeze_encoder_epochs=0, config=FAST),
                             run_folder=tmp_path / "second run", work_folder=tmp_path / "second")
    second.start()
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not any(e.kind == "epoch" for e in second.events):  # cancel once the first of 3 epochs is done
        assert second.running and time.monotonic() < deadline, second.outcome
        second.poll()
        time.sleep(0.2)
    second.cancel()
    cancelled = second.wait(timeout=120)
    assert cancelled is not None and cancelled.status == "cancelled", cancelled
    assert "nothing was registered" in cancelled.error or "checkpoint is kept" in cancelled.error
    assert {m.model_id for m in ModelRegistry().models()} == before | {outcome.model_id}
    reloaded = load_model(model.folder)
    assert sha256_of(model.folder / WEIGHTS_FILE) == reloaded.card.weights_sha256 == model.card.weights_sha256
    with open(tmp_path / "second run" / "fold_0" / "metrics.csv", newline="") as stream:
        assert 1 <= len(list(csv.DictReader(stream))) < 3
    assert (tmp_path / "second run" / "fold_0" / "checkpoint" / "checkpoint.safetensors").is_file()


def test_one_corrected_study_fine_tunes_on_all_its_slices_keeps_the_last_epoch_and_says_nothing_was_compared(
        home, shipped, tmp_path, capsys):
    """A site with one corrected study (the issue's correction loop): no patient is left to validate with,
    so every slice is trained on, the last epoch becomes the model, and the output says no comparison
    was made and how to make one, instead of refusing."""
    one = corrected_cases(tmp_path / "one study", 1)
    config = tmp_path / "fast.json"
    config.write_text(json.dumps(FAST.to_dict() | {"folds": 0, "epochs": 2, "freeze_encoder_epochs": 0}))
    code, out, err = run_cli(capsys, "train", one, "--out", tmp_path / "run", "--base", shipped, "--register",
                             "--config", config, "--version", "1.0.0-one")
    assert code == 0, err
    assert "no case was held out" in out and "the last epoch (2) was kept" in out and "paraspinal evaluate" in out
    assert "may not improve a model that already segments the site well" in out
    model = ModelRegistry().get("paraspinalseg-unet-r18-1.0.0-one")
    assert model.card.parent == shipped and model.card.training_data["trained_case_ids"] == case_ids(one)
    assert model.card.validation["best_epoch"] == 2 and model.card.validation["validation_dice_mean"] is None
    assert "last epoch" in model.card.validation["epoch_choice"] and model.card.validation["validation_slices"] == 0
    assert model.card.validation["comparison_with_parent"] == {"parent": shipped, "cases": [], "kind": "none", "figures": {}}
    json.loads((model.folder / "model.json").read_text(),  # strict JSON: no NaN in the card
               parse_constant=lambda name: pytest.fail(f"{name} in the card"))
    assert sha256_of(model.folder / WEIGHTS_FILE) != sha256_of(resolve_model(shipped) / WEIGHTS_FILE)  # it trained
    with open(tmp_path / "run" / "fold_0" / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["epoch"] for row in rows] == ["1", "2"] and all(float(row["train_loss"]) > 0 for row in rows)
    # The parent draws this in-distribution study well (its Dice on it is at or above POOR_PARENT_DICE), so what
    # is registered is the average of the fine-tuned network (kept in the run folder) and its parent.
    assert model.card.training_settings["parent_dice_on_corrected_cases"] >= POOR_PARENT_DICE == 0.80
    assert model.card.training_settings["parent_share"] == PARENT_SHARE == 0.5
    assert "averaged with it" in model.card.description
    assert "averaged with its parent (the parent's weights taking 0.5), because the parent's compartment Dice" in out
    # Without the parent's offsets (the shipped model's are not 0), the rest of its postprocessing kept.
    parent_post = load_model(resolve_model(shipped)).card.postprocessing
    assert parent_post.fat_score_offset > 0 and parent_post.background_score_offset > 0
    assert model.card.postprocessing == dataclasses.replace(parent_post, fat_score_offset=0.0, background_score_offset=0.0)
    registered = load_file(model.folder / WEIGHTS_FILE)
    fine_tuned = load_file(tmp_path / "run" / "fold_0" / "model" / WEIGHTS_FILE)
    parent = load_file(resolve_model(shipped) / WEIGHTS_FILE)
    assert registered.keys() == fine_tuned.keys() == parent.keys()
    for key, value in registered.items():
        if value.is_floating_point():
            expected = PARENT_SHARE * parent[key].float() + (1 - PARENT_SHARE) * fine_tuned[key].float()
            assert torch.equal(value, expected.to(value.dtype)), key
        else:  # BatchNorm's step counters: the fine-tuned network's
            assert torch.equal(value, fine_tuned[key]), key


def test_command_line_fine_tunes_registers_and_compares_with_the_parent(home, shipped, two_cases, tmp_path, capsys):
    config = tmp_path / "fast.json"
    config.write_text(json.dumps(FAST.to_dict() | {"folds": 0, "epochs": 1, "freeze_encoder_epochs": 0}))
    code, out, err = run_cli(capsys, "train", two_cases, "--out", tmp_path / "run", "--base", shipped, "--register",
                             "--config", config, "--version", "1.0.0-cli", "--parent-share", "0")
    assert code == 0, err
    assert f"registered paraspinalseg-unet-r18-1.0.0-cli (parent {shipped})" in out
    assert "| structure | Dice parent | Dice new |" in out and "| overall muscle |" in out
    model = ModelRegistry().get("paraspinalseg-unet-r18-1.0.0-cli")
    assert model.card.parent == shipped and model.card.training_settings["epochs"] == 1
    # A parent share of 0 registers the fine-tuned network itself.
    assert model.card.training_settings["parent_share"] == 0 and "averaged" not in model.card.description
    assert model.card.training_settings["parent_dice_on_corrected_cases"] is None and "alone, as asked" in out
    assert sha256_of(model.folder / WEIGHTS_FILE) == sha256_of(tmp_path / "run" / "fold_0" / "model" / WEIGHTS_FILE)
    for share in ("1", "-0.1"):
        code, _, err = run_cli(capsys, "train", two_cases, "--out", tmp_path / "share", "--base", shipped, "--register",
                               "--parent-share", share)
        assert code == 2 and f"parent_share {float(share)!r}" in err and "below 1" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "train", two_cases, "--out", tmp_path / "plain", "--parent-share", "0.5")
    assert code == 2 and "needs --base and --register" in err
    assert not (tmp_path / "share").exists() and not (tmp_path / "plain").exists()
    code, _, err = run_cli(capsys, "train", two_cases, "--out", tmp_path / "again", "--base", shipped, "--register",
                           "--config", config, "--version", "1.0.0-cli")
    assert code == 2 and "already exists" in err


def removed_share(parent_dice: float, new_dice: float) -> float:
    """The share of the parent's shortfall from a Dice of 1 that the new model removes."""
    return (new_dice - parent_dice) / (1.0 - parent_dice)


def test_fine_tuning_on_a_contrast_the_parent_never_saw_improves_dice_on_new_held_out_slices(home, shipped, tmp_path,
                                                                                              monkeypatch):
    def inverted(image):
        return np.clip(1400.0 - image, 0.0, None)

    counter = itertools.count(1)  # pseudonyms in a fixed order, so that the same case is held out every time
    monkeypatch.setattr(trainingset.secrets, "token_hex", lambda n: f"{next(counter):0{2 * n}x}")
    training_set = corrected_cases(tmp_path / "inverted", 4, contrast=inverted)
    monkeypatch.undo()
    settings = FineTuneSettings(epochs=3, learning_rate=3e-3, freeze_encoder_epochs=2, seed=0, config=FAST)
    result = fine_tune(training_set, shipped, settings)
    figures = result.figures()
    shown = result.markdown().split("\n\nParent")[0]
    assert result.held_out_kind == "validation" and len(result.held_out_case_ids) == 1
    # The parent has never seen this contrast and draws the corrected cases poorly (below POOR_PARENT_DICE), so the
    # fine-tuned network is registered alone, not averaged with it (the average would give back much of the gain).
    assert result.parent_dice < POOR_PARENT_DICE and result.parent_share == 0, result.parent_dice
    assert "the fine-tuned network alone, because the parent's compartment Dice" in shown
    # The gain asked is a share of what the parent leaves to gain, so that it means the same as parents improve
    # (a fixed +0.3 suited 2.6.2; 2.12.0 already reaches 0.57 and 0.49 on this validation case, 2.19.0 0.54 and
    # 0.43): what is registered must remove at least a third of the parent's shortfall from a Dice of 1 on the
    # validation case, and end above 0.8 on it (0.85 when written; from 2.19.0 0.81 and 0.76, 0.59 and 0.58 of
    # the shortfall).
    for structure in ("overall muscle", "muscle tissue"):
        assert removed_share(figures[structure]["dice_parent"], figures[structure]["dice_new"]) > 1 / 3, shown
    validation = case_pairs(training_set, result.held_out_case_ids)
    assert series_dice(result.model_folder, validation) > 0.8, shown
    assert result.parent_id == shipped and result.model_id.startswith(f"{shipped}-ft")
    assert load_model(result.model_folder).card.parent == shipped
    # Slices of the same domain that neither training nor the choice of epoch saw: new seeds.
    unseen = [phantom_series(slices=2, seed=seed, fat_fraction=0.1 + 0.1 * (seed - 20), contrast=inverted)
              for seed in (20, 21, 22)]
    parent_dice, new_dice = series_dice(shipped, unseen), series_dice(result.model_folder, unseen)
    # The same share on slices of new seeds, and above 0.8 there (parents there: 2.6.2 0.41, 2.9.0 0.63, 2.12.0
    # 0.72, 2.19.0 0.70; the fine-tuned network alone 0.83 when written, its average with the parent 0.85; from
    # 2.19.0, alone, 0.82)
    assert removed_share(parent_dice, new_dice) > 1 / 3 and new_dice > 0.8, (parent_dice, new_dice)


def test_training_process_reports_a_failure_and_an_early_cancel(home, shipped, tmp_path):
    (tmp_path / "empty set").mkdir()
    failing = TrainingProcess(tmp_path / "empty set", shipped, ONE_EPOCH, work_folder=tmp_path / "failing")
    failing.start()
    outcome = failing.wait(timeout=PROCESS_TIMEOUT_S)
    assert outcome.status == "failed" and outcome.exit_code == 2
    assert outcome.error == (f"{tmp_path / 'empty set'}: not a data set (no cases/ folder); "
                             "see the data set layout in the README")

    early = TrainingProcess(tmp_path / "empty set", shipped, ONE_EPOCH, work_folder=tmp_path / "early")
    early.start()
    early.cancel()
    outcome = early.wait(timeout=PROCESS_TIMEOUT_S)
    assert outcome.status == "cancelled" and outcome.model_id is None
    assert not (tmp_path / "early" / "events.jsonl").read_text().count('"finished"')


def test_the_registered_fold_is_one_that_validated_when_another_had_no_patient_to_validate_with():
    from pathlib import Path

    from ParaspinalSegTrainingLib.finetune import validated_dice
    from ParaspinalSegTrainingLib.training import FoldResult

    folds = [FoldResult(k, 3, dice, Path(f"fold_{k}"), None) for k, dice in enumerate((float("nan"), 0.4, 0.7, 0.5))]
    assert max(folds, key=validated_dice).fold == 2
    assert max(folds[:1], key=validated_dice).fold == 0  # none validated: the only one there is


def test_the_parent_share_follows_the_parents_dice_on_the_corrected_cases():
    """Below POOR_PARENT_DICE the fine-tuned network is registered alone; at it and above, averaged; a Dice
    that could not be measured (no compartment in the labels) keeps the average and says so."""
    from pathlib import Path

    from ParaspinalSegTrainingLib.finetune import FineTuneResult, automatic_parent_share

    assert automatic_parent_share(POOR_PARENT_DICE - 0.001) == 0.0
    assert automatic_parent_share(POOR_PARENT_DICE) == automatic_parent_share(0.95) == PARENT_SHARE
    assert automatic_parent_share(float("nan")) == PARENT_SHARE

    def note(share, parent_dice):
        return FineTuneResult("new", "parent", Path("m"), Path("r"), ("a",), (), "none", 3, float("nan"), None, None,
                              share, parent_dice).share_note()

    assert note(0.0, 0.612) == ("Registered: the fine-tuned network alone, because the parent's compartment Dice on "
                                "the corrected cases, 0.612, is below 0.8 (`--parent-share` sets the share).")
    averaged = note(0.5, 0.9)
    assert "(the parent's weights taking 0.5), because" in averaged and "0.900, is at or above 0.8" in averaged
    assert note(0.5, float("nan")).endswith("could not be measured (no compartment in their labels).")
    assert note(0.25, None) == ("Registered: the fine-tuned network averaged with its parent (the parent's weights "
                                "taking 0.25), as asked.")
