"""Multi-process training on the CPU (gloo, 2 processes): patient shards, synced parameters, reduced
metrics, rank-0 writes, resume, and the same losses as one process adding up the same micro-batches."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers import write_phantom_dataset
from ParaspinalSegLib.errors import InputError, OperationCancelled
from ParaspinalSegLib.network.model import ModelArchitecture, Preprocessing
from ParaspinalSegTrainingLib.config import TrainingConfig
from ParaspinalSegTrainingLib.distributed import World, world_from_environment
from ParaspinalSegTrainingLib.sharding import epoch_plan, micro_batch_size, patient_shards, step_plan

TINY = TrainingConfig(
    epochs=2,
    batch_size=4,  # the global batch: 2 processes x micro-batches of 2
    folds=0,
    validation_fraction=0.25,  # 8 patients: 6 train (18 slices), 2 validate
    mixed_precision=False,
    device="cpu",
    architecture=ModelArchitecture(encoder_depth=3, decoder_channels=(32, 16, 8)),
    preprocessing=Preprocessing(pixel_spacing_mm=4.5, input_size=64),
)
LOSS_TOLERANCE = 1e-6  # relative; see the README (Multi-GPU training) for why and what was measured
PARAMETER_TOLERANCE = 1e-6  # absolute, on parameters and batch-norm running statistics (of order 0.01-10)
ACCUMULATED_LOSS_TOLERANCE = 1e-5  # relative, on an epoch's loss when the gradient sums group differently
ONE_EPOCH = replace(TINY, epochs=1)
STEPS_BEFORE_STOP = 5 + 2  # 5 steps in epoch 1 (9 slices per shard, micro-batches of 2, cycled to 10), stop in epoch 2


# ---------------------------------------------------------------- the plan, without processes


def test_each_patient_lies_in_one_shard_and_the_shards_balance_the_slices():
    patients = ["a"] * 5 + ["b"] * 1 + ["c"] * 3 + ["d"] * 3 + ["e"] * 2  # 14 slices, 5 patients
    shards = patient_shards(patients, 2, np.random.default_rng(7))
    owner = {patients[i]: s for s, shard in enumerate(shards) for i in shard}
    assert all(patients[i] in owner and owner[patients[i]] == s for s, shard in enumerate(shards) for i in shard)
    assert sorted(np.concatenate(shards).tolist()) == list(range(14))  # every slice once
    sizes = sorted(len(s) for s in shards)
    assert sizes == [6, 8] and sizes[1] - sizes[0] < 5  # differ by less than the largest patient's slices
    again = patient_shards(patients, 2, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(shards, again))


def test_fewer_patients_than_shards_is_refused():
    with pytest.raises(InputError, match="2 patient\\(s\\) cannot fill 4 shards"):
        patient_shards(["a", "a", "b"], 4, np.random.default_rng(0))


def test_short_shards_cycle_their_own_slices_into_whole_micro_batches():
    plan = step_plan([np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7])], micro_batch=2)
    assert plan.parts.tolist() == [[[0, 1], [5, 6]], [[2, 3], [7, 5]], [[4, 0], [6, 7]]]
    # process 1 of 2 (one micro-batch per step) owns shard 1; positions number the plan's slots
    assert plan.micro_batches(range(1, 2)) == [[(5, 2), (6, 3)], [(7, 6), (5, 7)], [(6, 10), (7, 11)]]


def test_processes_times_accumulation_steps_share_out_the_same_plan():
    patients = [f"p{i // 3}" for i in range(48)]  # 16 patients of 3 slices
    plan = epoch_plan(patients, 4, 2, np.random.default_rng(1))
    whole = plan.micro_batches(range(4))  # one process adding up all 4 micro-batches of a step
    two_by_two = [World(rank, 2, rank, 2) for rank in range(2)]
    shares = [plan.micro_batches(w.own_shards()) for w in two_by_two]
    assert [w.own_shards() for w in two_by_two] == [range(0, 2), range(2, 4)]
    for step in range(plan.steps):
        assert whole[4 * step : 4 * step + 4] == shares[0][2 * step : 2 * step + 2] + shares[1][2 * step : 2 * step + 2]
    on = [{patients[i] for batch in share for i, _ in batch} for share in shares]
    assert not on[0] & on[1] and len(on[0] | on[1]) == 16


def test_batch_size_must_split_into_the_micro_batches():
    assert micro_batch_size(8, 4) == 2
    with pytest.raises(InputError, match="batch size 6 does not split into 4 equal micro-batches"):
        micro_batch_size(6, 4)


def test_the_place_of_a_process_comes_from_torchrun_s_environment():
    assert world_from_environment(environment={}) == World(0, 1, 0, 1)
    assert world_from_environment(2, {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1, 2)
    with pytest.raises(InputError, match="RANK=4 does not fit WORLD_SIZE=4"):
        world_from_environment(environment={"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(InputError, match="WORLD_SIZE='x' is not a whole number"):
        world_from_environment(environment={"WORLD_SIZE": "x"})


def test_a_planned_slice_looks_the_same_whoever_draws_it_and_in_any_order():
    from ParaspinalSegTrainingLib.batches import PlannedSlices
    from ParaspinalSegTrainingLib.datasets import PreparedSlices

    rng = np.random.default_rng(0)
    data = PreparedSlices(rng.random((3, 32, 32), dtype=np.float32), np.zeros((3, 32, 32), dtype=np.int64),
                          ["c"] * 3, ["p"] * 3, 1.0)
    config = replace(TrainingConfig(), augmentation=replace(TrainingConfig().augmentation, flip_probability=0.5))
    first, second = PlannedSlices(data, config, seed=5), PlannedSlices(data, config, seed=5)
    forward = [first[(i, 10 + i)][0].numpy() for i in range(3)]
    backward = [second[(i, 10 + i)][0].numpy() for i in reversed(range(3))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert not np.array_equal(first[(0, 10)][0].numpy(), first[(0, 11)][0].numpy())  # another slot, another draw


def test_accumulation_without_ddp_is_refused(tmp_path, capsys):
    from helpers import run_cli

    (tmp_path / "data").mkdir()
    code, _, err = run_cli(capsys, "train", tmp_path / "data", "--out", tmp_path / "run", "--accumulate", "2")
    assert code == 2 and "--accumulate adds up the micro-batches of a --ddp run; add --ddp" in err


def test_several_processes_without_ddp_are_refused(tmp_path, capsys, monkeypatch):
    from helpers import run_cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    (tmp_path / "data").mkdir()
    code, _, err = run_cli(capsys, "train", tmp_path / "data", "--out", tmp_path / "run")
    assert code == 2 and "started as one of several processes (torchrun): add --ddp" in err
    assert not (tmp_path / "run").exists()


def test_nccl_on_cuda_gloo_on_the_cpu():
    from ParaspinalSegTrainingLib.distributed import backend_for

    assert (backend_for("cuda"), backend_for("cpu")) == ("nccl", "gloo")
    with pytest.raises(InputError, match="--ddp trains on CUDA GPUs \\(nccl\\) or on the CPU \\(gloo\\), not on 'mps'"):
        backend_for("mps")


def test_a_ddp_run_refuses_a_batch_that_does_not_split(tmp_path):
    from ParaspinalSegTrainingLib.run import run_training

    with pytest.raises(InputError, match="batch size 4 does not split into 3 equal micro-batches"):
        run_training(tmp_path, tmp_path / "run", TINY, world=World(0, 1, 0, 3))


# ---------------------------------------------------------------- two processes and the reference


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state_sha(network) -> str:
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def record_calls(root: Path, label: str) -> dict:
    """Wrap the training engine's writes, epochs and validations to record what this process did."""
    from safetensors.torch import save_file

    import ParaspinalSegTrainingLib.training as training

    record = {"writes": [], "losses": [], "validations": []}
    save_checkpoint, save_model = training.save_checkpoint, training.save_model
    train_epoch, validation_scores = training.train_epoch, training.validation_scores

    def writing(function):
        def wrapped(folder, *args, **kwargs):
            record["writes"].append(str(folder))
            return function(folder, *args, **kwargs)
        return wrapped

    def epoch(*args, **kwargs):
        losses = train_epoch(*args, **kwargs)
        record["losses"].append(losses)
        return losses

    def validating(network, *args, **kwargs):
        loss, dice = validation_scores(network, *args, **kwargs)
        record["validations"].append({"sha": state_sha(network), "loss": loss, "dice": dice})
        save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()},
                  str(root / f"{label}-epoch{len(record['validations'])}.safetensors"))
        return loss, dice

    training.save_checkpoint, training.save_model = writing(save_checkpoint), writing(save_model)
    training.train_epoch, training.validation_scores = epoch, validating
    return record


def stop_after(calls: int):
    count = {"n": 0}

    def should_stop() -> bool:
        count["n"] += 1
        return count["n"] > calls
    return should_stop


def process(index: int, port: int, root: Path, data: Path) -> None:
    """Processes 0 and 1 form a gloo group and train (straight, then interrupted and resumed, then one
    epoch adding up 2 micro-batches each); process 2 alone trains the references: one process adding
    up the same 2 (then 4) micro-batches per step."""
    import torch

    from ParaspinalSegTrainingLib.distributed import process_group
    from ParaspinalSegTrainingLib.run import run_training

    torch.set_num_threads(1)
    if index == 2:
        record = record_calls(root, "reference")
        run_training(data, root / "reference", TINY, world=World(0, 1, 0, accumulation=2))
        run_training(data, root / "reference_4", ONE_EPOCH, world=World(0, 1, 0, accumulation=4))
    else:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(index), LOCAL_RANK=str(index),
                          WORLD_SIZE="2")
        world = world_from_environment()
        with process_group(world, "cpu"):
            record = record_calls(root, f"rank{index}")
            run_training(data, root / "straight", TINY, world=world)
            try:
                run_training(data, root / "resumed", TINY, world=world, should_stop=stop_after(STEPS_BEFORE_STOP))
            except OperationCancelled:
                record["stopped"] = True
            run_training(data, root / "resumed", TINY, world=world)
            run_training(data, root / "accumulated", ONE_EPOCH, world=replace(world, accumulation=2))
    (root / f"record-{index}.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Runs the 3 processes once for the tests below; their records by process index."""
    import torch.multiprocessing as mp

    root = tmp_path_factory.mktemp("ddp")
    data = write_phantom_dataset(root / "data", cases=8)
    context = mp.spawn(process, args=(free_port(), root, data), nprocs=3, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("the 2-process training did not finish in 300 s")
    return root, data, [json.loads((root / f"record-{i}.json").read_text()) for i in range(3)]


def metrics(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as stream:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(stream)]


def test_parameters_and_buffers_are_the_same_in_both_processes_after_every_epoch(two_processes):
    _, _, (rank0, rank1, _) = two_processes
    assert len(rank0["validations"]) == 2 + 1 + 1 + 1  # straight; resumed: 1 before the stop, 1 after; accumulated
    assert [v["sha"] for v in rank0["validations"]] == [v["sha"] for v in rank1["validations"]]
    assert rank0["validations"][0]["sha"] != rank0["validations"][1]["sha"]  # and they did train


def test_each_process_trains_its_own_micro_batches(two_processes):
    _, _, (rank0, rank1, _) = two_processes
    assert [len(losses) for losses in rank0["losses"]] == [5, 5, 5, 5, 12]  # the stopped epoch records nothing
    assert rank0["losses"][0] != rank1["losses"][0]


def test_metrics_are_summed_over_the_processes(two_processes):
    """Both processes hold the same validation figures; the Dice from their summed pixel counts is exactly
    that of one pass over all validation patients; metrics.csv's loss is the mean over both processes."""
    import torch
    from safetensors.torch import load_file

    from ParaspinalSegLib.network.model import build_network
    from ParaspinalSegTrainingLib.datasets import find_cases, prepare_dataset
    from ParaspinalSegTrainingLib.folds import patient_splits
    from ParaspinalSegTrainingLib.training import loss_function, validation_scores

    root, data, (rank0, rank1, _) = two_processes
    assert json.dumps(rank0["validations"]) == json.dumps(rank1["validations"])
    slices = prepare_dataset(find_cases(data), TINY.preprocessing)
    split = patient_splits(slices.patient_ids, 0, TINY.validation_fraction, TINY.seed)[0]
    network = build_network(TINY.architecture)
    network.load_state_dict(load_file(str(root / "rank1-epoch2.safetensors")))
    torch.set_num_threads(1)
    _, dice = validation_scores(network, slices.subset(set(split.validation)), loss_function(TINY), "cpu", TINY)
    assert dice == rank0["validations"][1]["dice"]
    rows = metrics(root / "straight" / "fold_0")
    assert [row["train_loss"] for row in rows] == [
        f"{np.mean(a + b):.5f}" for a, b in zip(rank0["losses"][:2], rank1["losses"][:2])]


def test_rank_0_alone_writes(two_processes):
    root, _, (rank0, rank1, _) = two_processes
    assert rank1["writes"] == []
    straight = [w for w in rank0["writes"] if w.startswith(str(root / "straight"))]
    assert set(straight) == {str(root / "straight" / "fold_0" / name) for name in ("best", "checkpoint", "model")}
    assert straight.count(str(root / "straight" / "fold_0" / "checkpoint")) == 2  # after each epoch
    assert len(metrics(root / "straight" / "fold_0")) == 2  # one row per epoch, not one per process
    card = json.loads((root / "straight" / "fold_0" / "model" / "model.json").read_text())
    assert card["training_settings"]["distributed"] == {"processes": 2, "accumulation_steps": 1, "shards": 2,
                                                        "micro_batch": 2}


def test_an_interrupted_run_resumes_to_the_same_result(two_processes):
    root, _, (rank0, rank1, _) = two_processes
    assert rank0["stopped"] and rank1["stopped"]
    assert metrics(root / "resumed" / "fold_0") == metrics(root / "straight" / "fold_0")
    weights = [json.loads((root / run / "fold_0" / "model" / "model.json").read_text())["weights_sha256"]
               for run in ("straight", "resumed")]
    assert weights[0] == weights[1]


def test_losses_match_one_process_adding_up_the_same_micro_batches(two_processes):
    """Step k of the reference adds up micro-batches (shard 0, shard 1); rank r trains shard r."""
    from safetensors.torch import load_file

    root, _, (rank0, rank1, reference) = two_processes
    for epoch in range(2):
        interleaved = [loss for pair in zip(rank0["losses"][epoch], rank1["losses"][epoch]) for loss in pair]
        assert np.allclose(reference["losses"][epoch], interleaved, rtol=LOSS_TOLERANCE, atol=0)
        assert np.mean(reference["losses"][epoch]) == pytest.approx(np.mean(interleaved), rel=LOSS_TOLERANCE)
    for epoch in (1, 2):
        ddp, single = (load_file(str(root / f"{label}-epoch{epoch}.safetensors")) for label in ("rank0", "reference"))
        assert max(float((ddp[n].double() - single[n].double()).abs().max()) for n in ddp) <= PARAMETER_TOLERANCE
        assert reference["validations"][epoch - 1]["dice"] == rank0["validations"][epoch - 1]["dice"]


def test_torchrun_starts_paraspinal_train_ddp(tmp_path):
    """The README's command line, with 2 CPU processes and 2 folds (rank 0 evaluates each fold's test
    patients while the other waits): one result, printed once."""
    data = write_phantom_dataset(tmp_path / "data", cases=6)  # per fold: 3 test, 2 train, 1 validation patient
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(replace(TINY, epochs=1, folds=2).to_dict()))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "ParaspinalSegLib.cli", "-q", "train", str(data), "--out", str(tmp_path / "run"),
               "--config", str(config), "--ddp"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [done.stdout.count(f"fold {k}: best epoch 1, validation Dice") for k in (0, 1)] == [1, 1]
    assert done.stdout.count("over 6 patients") == 1 and (tmp_path / "run" / "evaluation" / "pooled_table2.md").exists()
    card = json.loads((tmp_path / "run" / "fold_0" / "model" / "model.json").read_text())
    assert card["training_settings"]["distributed"]["processes"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["shards"] == 2


def test_two_processes_adding_up_two_micro_batches_train_as_one_adding_up_four(two_processes):
    """The same 4 shards (6 patients of 3 slices: 6, 6, 3 and 3 slices, micro-batches of 1, 6 steps):
    2 processes x 2 accumulation steps against 1 process x 4. The first step's losses are equal; then
    the gradient sums group differently ((g0 + g1) + (g2 + g3) against ((g0 + g1) + g2) + g3), and
    the rounding difference grows through Adam's normalised updates (README: measured figures)."""
    _, _, (rank0, rank1, reference) = two_processes
    steps = zip(np.reshape(rank0["losses"][4], (-1, 2)), np.reshape(rank1["losses"][4], (-1, 2)))
    interleaved = np.concatenate([pair for step in steps for pair in step])
    single = np.array(reference["losses"][2])
    assert len(single) == len(interleaved) == 6 * 4
    assert np.array_equal(single[:4], interleaved[:4])
    assert np.mean(interleaved) == pytest.approx(np.mean(single), rel=ACCUMULATED_LOSS_TOLERANCE)
