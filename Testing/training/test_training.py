"""The training engine on tiny phantom data sets, on the CPU: k-fold, resume, determinism, loss."""

import csv

import numpy as np
import pytest

from helpers import TINY, write_phantom_dataset
from ParaspinalSegLib.errors import OperationCancelled
from ParaspinalSegLib.network.inference import predict_series
from ParaspinalSegLib.network.model import Preprocessing
from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegTrainingLib.config import TrainingConfig
from ParaspinalSegTrainingLib.folds import patient_splits
from ParaspinalSegTrainingLib.run import run_training


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("data"), cases=6)


def metrics(folder):
    with open(folder / "metrics.csv", newline="") as stream:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(stream)]


def test_two_fold_run_trains_evaluates_and_writes_loadable_models(dataset, tmp_path):
    run = run_training(dataset, tmp_path / "run", TINY)
    assert [f.fold for f in run.folds] == [0, 1]
    for fold in run.folds:
        assert len(metrics(tmp_path / "run" / f"fold_{fold.fold}")) == 2
        model = load_model(fold.model_folder)
        assert model.card.validation["best_epoch"] in (1, 2)
        assert model.card.training_data["cases"] == 6 and model.card.parent is None
        series = read_study(dataset / "cases" / "case-000" / "image.nii.gz").series
        labels = predict_series(model, series, mixed_precision=False)
        assert [l.shape for l in labels] == [(96, 96)] * 3
    for name in ("fold_0_table2.md", "fold_1_table2.csv", "pooled_table2.md"):
        assert (tmp_path / "run" / "evaluation" / name).exists()
    assert "overall muscle" in (tmp_path / "run" / "evaluation" / "pooled_table2.md").read_text()
    assert run.evaluation.grades.patients == 6


def test_folds_never_share_a_patient():
    patients = [f"p{i // 3}" for i in range(60)]  # 20 patients, 3 slices each
    splits = patient_splits(patients, folds=10, seed=3)
    tested = [p for s in splits for p in s.test]
    assert sorted(tested) == sorted(set(patients))  # each patient tested exactly once
    for s in splits:
        assert not set(s.train) & set(s.validation) and not set(s.train) & set(s.test)
        assert not set(s.validation) & set(s.test)
        assert len(s.validation) == round(0.2 * 18)


def test_interrupted_run_resumes_to_the_same_result(dataset, tmp_path):
    config = TINY.with_overrides(folds=0, epochs=3)
    calls = {"n": 0}

    def stop_in_second_epoch():
        calls["n"] += 1
        return calls["n"] > 3  # 4 training batches per epoch here

    with pytest.raises(OperationCancelled):
        run_training(dataset, tmp_path / "resumed", config, should_stop=stop_in_second_epoch)
    assert len(metrics(tmp_path / "resumed" / "fold_0")) == 1
    resumed = run_training(dataset, tmp_path / "resumed", config)
    straight = run_training(dataset, tmp_path / "straight", config)
    assert metrics(tmp_path / "resumed" / "fold_0") == metrics(tmp_path / "straight" / "fold_0")
    assert resumed.folds[0].card.weights_sha256 == straight.folds[0].card.weights_sha256


def test_loss_falls_on_a_fixed_set(dataset, tmp_path):
    config = TINY.with_overrides(folds=0, epochs=8, learning_rate=3e-3)
    run_training(dataset, tmp_path / "long", config)
    losses = [float(row["train_loss"]) for row in metrics(tmp_path / "long" / "fold_0")]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])


def test_other_settings_in_the_same_folder_are_refused(dataset, tmp_path):
    run_training(dataset, tmp_path / "run", TINY.with_overrides(folds=0, epochs=1))
    from ParaspinalSegLib.errors import InputError

    with pytest.raises(InputError, match="other settings"):
        run_training(dataset, tmp_path / "run", TINY.with_overrides(folds=0, epochs=2))


def test_a_run_started_before_a_setting_was_added_resumes_with_it_at_its_default(dataset, tmp_path):
    import json

    from ParaspinalSegLib.errors import InputError

    one = TINY.with_overrides(folds=0, epochs=1)
    first = run_training(dataset, tmp_path / "run", one)
    saved = tmp_path / "run" / "config.json"
    document = json.loads(saved.read_text())
    del document["config"]["mixed_precision_cpu"]  # as a run started before the setting existed wrote it
    saved.write_text(json.dumps(document))
    again = run_training(dataset, tmp_path / "run", one)  # the same settings: resumed, nothing trained anew
    assert again.folds[0].best_epoch == first.folds[0].best_epoch
    assert len(metrics(tmp_path / "run" / "fold_0")) == 1
    with pytest.raises(InputError, match="other settings"):
        run_training(dataset, tmp_path / "run", one.with_overrides(mixed_precision_cpu=True))
    document["config"]["no_such_setting"] = 1  # written by a later version
    saved.write_text(json.dumps(document))
    with pytest.raises(InputError, match="other settings"):
        run_training(dataset, tmp_path / "run", one)


def test_command_line_trains_evaluates_and_registers(dataset, tmp_path, capsys, monkeypatch):
    import json

    from helpers import run_cli

    monkeypatch.setenv("PARASPINALSEG_HOME", str(tmp_path / "home"))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY.to_dict()))
    code, out, err = run_cli(capsys, "train", dataset, "--out", tmp_path / "run", "--config", config,
                             "--folds", "0", "--epochs", "1", "--version", "9.9.9", "--register")
    assert code == 0, err
    assert "registered paraspinal-unet-9.9.9" in out
    code, out, err = run_cli(capsys, "models", "list")
    assert "paraspinal-unet-9.9.9" in out and "user" in out
    code, out, err = run_cli(capsys, "evaluate", "paraspinal-unet-9.9.9", dataset, "-o", tmp_path / "eval")
    assert code == 0, err
    assert "overall muscle" in out and (tmp_path / "eval" / "table2.csv").exists()
    code, out, err = run_cli(capsys, "train", dataset, "--out", tmp_path / "run2", "--config", config, "--folds", "0",
                             "--epochs", "1", "--base", "paraspinal-unet-9.9.9", "--version", "9.9.10", "--cpu-bfloat16")
    assert code == 0, err
    card = json.loads((tmp_path / "run2" / "fold_0" / "model" / "model.json").read_text())
    assert card["parent"] == "paraspinal-unet-9.9.9" and card["training_settings"]["mixed_precision_cpu"] is True
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["mixed_precision_cpu"] is False
    code, _, err = run_cli(capsys, "evaluate", "no-such-model", dataset)
    assert code == 2 and "no model 'no-such-model'" in err


def test_tiny_run_on_synthesised_cases(tmp_path, capsys):
    """The issue's tiny run: `paraspinal synth` cases at low resolution, one epoch, 2 folds, then a model
    that loads back and predicts."""
    from helpers import run_cli

    code, out, err = run_cli(capsys, "synth", tmp_path / "synth", "--cases", "4", "--size", "96", "--shapes", "procedural")
    assert code == 0, err
    assert "4 synthetic cases" in out
    run = run_training(tmp_path / "synth", tmp_path / "run", TINY.with_overrides(epochs=1))
    assert len(run.folds) == 2 and run.evaluation.grades.patients == 4
    model = load_model(run.folds[1].model_folder)
    series = read_study(tmp_path / "synth" / "cases" / "synth-0000" / "image.nii.gz").series
    assert len(predict_series(model, series)) == len(series)


def test_frozen_encoder_stays_as_the_base_model_had_it(dataset, tmp_path):
    import torch

    base = run_training(dataset, tmp_path / "base", TINY.with_overrides(folds=0, epochs=1)).folds[0]
    tuned = run_training(dataset, tmp_path / "tuned", TINY.with_overrides(folds=0, epochs=1, freeze_encoder_epochs=1,
                                                                          version="0.1.1", learning_rate=1e-2),
                         base_model=base.model_folder).folds[0]
    before = load_model(base.model_folder).network.state_dict()
    after = load_model(tuned.model_folder).network.state_dict()
    encoder = [k for k in before if k.startswith("encoder.")]
    decoder = [k for k in before if k.startswith("decoder.") and before[k].is_floating_point()]
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder)
    assert tuned.card.parent == base.card.model_id


def test_held_out_validation_sets_choose_the_epoch_instead_of_a_share_of_the_training_data(dataset, tmp_path):
    from dataclasses import replace

    held_out = write_phantom_dataset(tmp_path / "held-out", cases=2)
    config = replace(TINY, folds=0, validation_fraction=0.2)
    run = run_training(dataset, tmp_path / "run", config, validation=[held_out])
    card = load_model(run.folds[0].model_folder).card
    assert card.validation["validation_slices"] == 2 * 3  # the held-out set's slices, not a share of the 6 cases
    rows = metrics(tmp_path / "run" / "fold_0")
    best = max(rows, key=lambda row: float(row["val_dice_mean"]))
    assert card.validation["best_epoch"] == int(best["epoch"])
    assert card.validation["validation_dice_mean"] == pytest.approx(float(best["val_dice_mean"]), abs=1e-5)
    with pytest.raises(Exception, match="other settings"):
        run_training(dataset, tmp_path / "run", config)  # the same folder without the held-out sets is refused


def test_cases_read_in_two_processes_give_the_same_slices(dataset):
    from ParaspinalSegTrainingLib.datasets import find_cases, prepare_dataset

    cases, pre = find_cases(dataset), Preprocessing(pixel_spacing_mm=3.0, input_size=64)
    serial, parallel = prepare_dataset(cases, pre), prepare_dataset(cases, pre, workers=2)
    assert len(serial) == len(cases) * 3
    assert np.array_equal(serial.images, parallel.images) and np.array_equal(serial.labels, parallel.labels)
    assert serial.case_ids == parallel.case_ids and serial.patient_ids == parallel.patient_ids


def test_the_distillation_term_is_least_where_the_network_agrees_with_its_teacher():
    import torch

    from ParaspinalSegTrainingLib.training import distillation_loss

    logits = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(0), requires_grad=True)
    teacher = logits.detach().softmax(dim=1)
    value = distillation_loss(logits, teacher)
    value.backward()
    entropy = -(teacher * teacher.log()).sum(dim=1).mean()
    assert float(value.detach()) == pytest.approx(float(entropy), rel=1e-5)  # the cross-entropy with itself: its entropy
    assert float(logits.grad.abs().max()) < 1e-6  # a minimum: nothing to learn from a teacher it already matches
    other = torch.roll(teacher, 1, dims=1)
    assert float(distillation_loss(logits.detach(), other)) > float(entropy) + 0.1


def test_the_mirrored_teacher_answers_a_mirrored_batch_with_its_mirrored_answer_sides_swapped():
    import torch

    from ParaspinalSegLib.network.inference import MIRRORED_CLASSES
    from ParaspinalSegLib.network.model import build_network
    from ParaspinalSegTrainingLib.training import mirrored_teacher

    torch.manual_seed(0)
    teacher = mirrored_teacher(build_network(TINY.architecture), "cpu", use_amp=False)
    images = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    plain, mirrored = teacher(images), teacher(images.flip(-1))
    torch.testing.assert_close(mirrored, plain.flip(-1)[:, MIRRORED_CLASSES], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(plain.sum(dim=1), torch.ones(2, 64, 64), rtol=1e-5, atol=1e-5)


def test_distillation_from_the_base_model_trains_and_is_refused_without_one(dataset, tmp_path):
    from ParaspinalSegLib.errors import InputError

    base = run_training(dataset, tmp_path / "base", TINY.with_overrides(folds=0, epochs=1)).folds[0]
    untaught = TINY.with_overrides(folds=0, epochs=1, version="0.1.2")
    taught = untaught.with_overrides(mirror_distillation_weight=1.0)
    run_training(dataset, tmp_path / "untaught", untaught, base_model=base.model_folder)
    tuned = run_training(dataset, tmp_path / "taught", taught, base_model=base.model_folder).folds[0]
    assert load_model(tuned.model_folder).card.training_settings["mirror_distillation_weight"] == 1.0
    # the same seed and batches: the loss adds the cross-entropy against the teacher, at least its entropy
    loss = {name: float(metrics(tmp_path / name / "fold_0")[0]["train_loss"]) for name in ("untaught", "taught")}
    assert loss["taught"] > loss["untaught"] + 0.1, loss
    with pytest.raises(InputError, match="mirror_distillation_weight needs a base model"):
        run_training(dataset, tmp_path / "alone", taught)
    with pytest.raises(ValueError, match="mirror_distillation_weight -1"):
        TINY.with_overrides(mirror_distillation_weight=-1.0)


def test_bfloat16_on_the_cpu_is_asked_for_apart_and_trains_the_same_batches_nearly_alike(dataset, tmp_path):
    from ParaspinalSegTrainingLib.training import uses_bfloat16

    cpu_bf16 = TINY.with_overrides(mixed_precision_cpu=True)
    assert not uses_bfloat16(TINY, "cpu") and uses_bfloat16(cpu_bf16, "cpu")
    assert not uses_bfloat16(cpu_bf16.with_overrides(mixed_precision=False), "cuda:1")
    assert uses_bfloat16(TrainingConfig(), "cuda:1") and not uses_bfloat16(TrainingConfig(), "cpu")
    run_training(dataset, tmp_path / "float32", TINY.with_overrides(folds=0, epochs=1))
    low = run_training(dataset, tmp_path / "bfloat16", cpu_bf16.with_overrides(folds=0, epochs=1))
    assert load_model(low.folds[0].model_folder).card.training_settings["mixed_precision_cpu"] is True
    # the same seed and batches: bfloat16's rounding moves the loss a little, not the training
    loss = {name: float(metrics(tmp_path / name / "fold_0")[0]["train_loss"]) for name in ("float32", "bfloat16")}
    assert loss["float32"] != loss["bfloat16"] and abs(loss["bfloat16"] / loss["float32"] - 1) < 0.05, loss
