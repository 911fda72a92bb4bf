"""The training engine: one fold's epochs (resumable, seeded), k-fold runs, and the resulting models.

Per epoch: augmented batches, loss = Dice + focal (+ optionally a per-slice compartment Dice, a
per-slice fat-split error and a cross-entropy against the base model's mirrored look),
validation Dice of the compartment, muscle tissue and fat; metrics appended to metrics.csv; a
checkpoint after every epoch; the best epoch on validation becomes the fold's model. A training set
of one patient (one corrected study) has no patient to validate with: its slices are all trained on
and the last epoch becomes the model. A run can be interrupted and started again with the same
output folder: finished folds are kept, an unfinished fold continues from its last checkpoint.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError, OperationCancelled
from ParaspinalSegLib.network.inference import MIRRORED_CLASSES, choose_device, class_probabilities
from ParaspinalSegLib.labels import SIDES
from ParaspinalSegLib.measure.measurement import overlap_counts
from ParaspinalSegLib.network.model import Postprocessing, build_network
from ParaspinalSegLib.network.modelfile import CARD_FILE, ModelCard, read_card, save_model
from ParaspinalSegLib.network.preprocess import class_labels

from .batches import planned_steps, shuffled_steps
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .datasets import PreparedSlices
from .distributed import (World, barrier, broadcast_buffers, data_parallel, gradient_sync, joined,
                          running_statistics, sum_over_processes)
from .evaluation import STRUCTURES
from .folds import Split
from ParaspinalSegLib.progress import ProgressCallback

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_dice_overall", "val_dice_muscle", "val_dice_fat",
                  "val_dice_mean", "learning_rate", "seconds"]
EpochCallback = Callable[[int, dict[str, float]], None]  # (fold, the epoch's metrics.csv row as numbers)


def seed_everything(*keys: int) -> np.random.Generator:
    """Seed torch from the keys and return a numpy generator for the same keys."""
    import torch

    rng = np.random.default_rng(list(keys))
    torch.manual_seed(int(rng.integers(2**31)))
    return rng


def mean_over_pairs(values: list, logits):
    """The mean of the per-side tensors of (slice, side) values; 0, still joined to the graph, when there is none."""
    import torch

    values = torch.cat(values)
    return values.mean() if values.numel() else logits.sum() * 0.0


def compartment_dice_loss(logits, target, smooth: float = 1.0):
    """1 - soft Dice of each side's compartment (muscle + fat probabilities summed), per slice, averaged over
    the (slice, side) pairs whose truth holds that side (0 if none does). Each slice counts alike, so a small
    compartment (T12, coarse pixels) weighs as much as a large one, unlike the class Dice over the batch."""
    probabilities = logits.float().softmax(dim=1)
    losses = []
    for side in SIDES:
        predicted = probabilities[:, side.muscle] + probabilities[:, side.fat]
        truth = ((target == side.muscle) | (target == side.fat)).to(predicted.dtype)
        overlap, true_area = (predicted * truth).sum(dim=(1, 2)), truth.sum(dim=(1, 2))
        dice = (2.0 * overlap + smooth) / (predicted.sum(dim=(1, 2)) + true_area + smooth)
        losses.append((1.0 - dice)[true_area > 0])
    return mean_over_pairs(losses, logits)


def fat_split_loss(logits, target):
    """Mean absolute error of each side's soft fat fraction inside its true compartment, per slice: the fat
    probability summed over the truth's compartment over the muscle + fat probability summed there, against the
    truth's fat share, averaged over the (slice, side) pairs whose truth holds that side (0 if none does). It
    scores the split the product measures, apart from the compartment's outline (the compartment Dice's job)."""
    probabilities = logits.float().softmax(dim=1)
    errors = []
    for side in SIDES:
        truth = ((target == side.muscle) | (target == side.fat)).to(probabilities.dtype)
        true_area = truth.sum(dim=(1, 2))
        fat = (probabilities[:, side.fat] * truth).sum(dim=(1, 2))
        tissue = ((probabilities[:, side.muscle] + probabilities[:, side.fat]) * truth).sum(dim=(1, 2))
        true_fat = (target == side.fat).to(probabilities.dtype).sum(dim=(1, 2))
        present = true_area > 0
        errors.append((fat[present] / tissue[present].clamp(min=1e-6) - true_fat[present] / true_area[present]).abs())
    return mean_over_pairs(errors, logits)


def distillation_loss(logits, teacher_probabilities):
    """Cross-entropy of the network's class probabilities against a teacher's, per pixel, mean over the
    pixels (the teacher's own entropy apart, the KL divergence from it: the same gradient)."""
    return -(teacher_probabilities * logits.float().log_softmax(dim=1)).sum(dim=1).mean()


def mirrored_teacher(network, device: str, use_amp: bool) -> Callable:
    """The base network, frozen in eval mode, with mirrored test-time augmentation: for a batch, the
    softmax of its class scores averaged with those of the left-right mirrored batch, mirrored back and
    its sides swapped (what `--mirror` segments with)."""
    import torch

    network = network.to(device).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)

    def probabilities(images):
        with torch.no_grad(), torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=use_amp):
            scores = network(images).float()
            mirrored = network(images.flip(-1)).float().flip(-1)[:, MIRRORED_CLASSES]
        return ((scores + mirrored) / 2).softmax(dim=1)

    return probabilities


def loss_function(config: TrainingConfig):
    """The recipe's loss: class Dice over the batch + focal, + the per-slice compartment Dice and fat-split
    error where weighted, + the distillation from a teacher's probabilities where weighted and given."""
    from segmentation_models_pytorch.losses import DiceLoss, FocalLoss

    dice, focal = DiceLoss("multiclass", from_logits=True), FocalLoss("multiclass")

    def loss(logits, target, teacher_probabilities=None):
        value = config.dice_weight * dice(logits, target) + config.focal_weight * focal(logits, target)
        if config.compartment_dice_weight:
            value = value + config.compartment_dice_weight * compartment_dice_loss(logits, target)
        if config.fat_split_weight:
            value = value + config.fat_split_weight * fat_split_loss(logits, target)
        if config.mirror_distillation_weight and teacher_probabilities is not None:
            value = value + config.mirror_distillation_weight * distillation_loss(logits, teacher_probabilities)
        return value

    return loss


def structure_counts(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(truth, predicted, both) pixel counts per structure of the evaluation and side: shape (structures, 2, 3).
    Counts add over slices and over processes."""
    return np.array([[overlap_counts(truth, prediction, side) for side in sides] for sides in STRUCTURES.values()],
                    dtype=np.float64)


def dice_of_counts(counts: np.ndarray) -> dict[str, float]:
    """Per structure the Dice pooled over the counted pixels: the mean over the sides present in truth or
    prediction of 2 x both / (truth + predicted) (as measurement.sided_dice; NaN when neither side is)."""
    scores = {}
    for structure, per_side in zip(STRUCTURES, counts):
        dice = [2 * both / (truth + predicted) for truth, predicted, both in per_side if truth + predicted]
        scores[structure] = float(np.mean(dice)) if dice else float("nan")
    return scores


def window_labels(logits, post: Postprocessing = Postprocessing()) -> np.ndarray:
    """The labels the product gives a batch of network windows: the card's label decision and fat split
    (`preprocess.class_labels`) on the class probabilities after its offsets (`inference.class_probabilities`,
    the product's own: background's odds, each side's fat/muscle split)."""
    if post == Postprocessing():
        return logits.argmax(dim=1).cpu().numpy().astype(np.uint8)
    probabilities = class_probabilities(logits.detach().float().cpu().numpy(), post)
    return class_labels(probabilities, post.label_decision, post.fat_split)


def validation_scores(network, data: PreparedSlices, loss, device: str, config: TrainingConfig,
                      world: World | None = None, post: Postprocessing = Postprocessing()) -> tuple[float, dict]:
    """Mean validation loss and per-structure Dice from one pass of the network over the slices, the
    labels taken as the product takes them with the card's postprocessing `post`; with
    several processes, each passes over its share and the sums are added up over all of them."""
    import torch

    network.eval()
    loss_sum, batches, counts = 0.0, 0, np.zeros((len(STRUCTURES), 2, 3))
    with torch.inference_mode():
        for start in range(0, len(data), config.batch_size):
            images = torch.from_numpy(data.images[start : start + config.batch_size, None]).to(device)
            target = data.labels[start : start + config.batch_size]
            logits = network(images).float()
            loss_sum += float(loss(logits, torch.from_numpy(target).to(device)))
            batches += 1
            counts += structure_counts(window_labels(logits, post), target)
    totals = sum_over_processes([loss_sum, batches, *counts.ravel()], world)
    return totals[0] / totals[1] if totals[1] else float("nan"), dice_of_counts(totals[2:].reshape(counts.shape))


def validation_share(validation: PreparedSlices, world: World | None) -> PreparedSlices:
    """The validation patients this process scores: all of them, or its shard of them when there are several."""
    if not joined(world):
        return validation
    return validation.subset(set(sorted(set(validation.patient_ids))[world.rank :: world.size]))


def mean_over_processes(values: list[float], world: World | None) -> float:
    """The mean of every process's values together (this process's mean when it is alone)."""
    total, count = sum_over_processes([np.sum(values), len(values)], world)
    return float(total / count)


@dataclass(frozen=True)
class FoldResult:
    fold: int
    best_epoch: int
    best_validation_dice: float
    model_folder: Path
    card: ModelCard


def loader_workers(config: TrainingConfig, device: str) -> int:
    """The settings' worker processes, or by default none on the CPU and 8 on a GPU."""
    return config.workers if config.workers >= 0 else (8 if device == "cuda" else 0)


def set_encoder_trainable(network, trainable: bool) -> None:
    for parameter in network.encoder.parameters():
        parameter.requires_grad = trainable


def append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def train_epoch(model, steps, step_count: int, optimizer, loss, device: str, use_amp: bool, where: str,
                should_stop: Callable[[], bool] | None, report: Callable[[float, float], None] | None,
                teacher: Callable | None = None) -> list[float]:
    """One epoch's optimizer steps; the loss of every micro-batch. A step's micro-batches add up their
    gradients (each loss divided by their number) before the optimizer steps; report(fraction of the
    epoch, mean loss so far) after each step; `where` (fold and epoch) names the stop; `teacher` gives
    each batch's teacher probabilities for the loss (`mirrored_teacher`)."""
    import torch

    losses = []
    for step, micro_batches in enumerate(steps):
        if should_stop and should_stop():
            raise OperationCancelled(f"training stopped in {where}; the last checkpoint is kept")
        optimizer.zero_grad(set_to_none=True)
        for n, (images, target) in enumerate(micro_batches):
            images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
            taught = teacher(images) if teacher else None
            with gradient_sync(model, last_micro_batch=n == len(micro_batches) - 1), running_statistics(model, n == 0):
                with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=use_amp):
                    value = loss(model(images).float(), target, taught)
                (value / len(micro_batches)).backward()
            losses.append(float(value.detach()))
        optimizer.step()
        if report:
            report((step + 1) / max(step_count, 1), float(np.mean(losses)))
    return losses


def uses_bfloat16(config: TrainingConfig, device: str) -> bool:
    """Whether training runs the network under bfloat16 autocast: on CUDA with `mixed_precision`, on the CPU with
    `mixed_precision_cpu`; the weights and the optimizer stay float32."""
    kind = device.split(":")[0]
    return (config.mixed_precision and kind == "cuda") or (config.mixed_precision_cpu and kind == "cpu")


def base_teacher(config: TrainingConfig, initial_weights: dict | None, device: str) -> Callable | None:
    """The base model's mirrored look as the teacher of `mirror_distillation_weight` (None when unweighted);
    refused without a base model."""
    if not config.mirror_distillation_weight:
        return None
    if initial_weights is None:
        raise InputError("mirror_distillation_weight needs a base model to learn from (--base)")
    network = build_network(config.architecture)
    network.load_state_dict(initial_weights)
    return mirrored_teacher(network, device, uses_bfloat16(config, device))


def train_fold(
    data: PreparedSlices,
    split: Split,
    config: TrainingConfig,
    folder: Path,
    card: ModelCard,
    initial_weights: dict | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: EpochCallback | None = None,
    validation_data: PreparedSlices | None = None,
    world: World | None = None,
) -> FoldResult:
    """Train one fold into `folder` (resuming if a checkpoint is there); the best epoch is saved as a model.

    on_epoch receives each finished epoch's metrics (after its checkpoint is written). validation_data,
    when given, replaces the split's validation patients (the held-out synthesis domains of the
    selection protocol): the best epoch is the one best on them, and the split's validation patients
    are not trained on either. world, when given, plans the batches by patient shards
    (`batches.planned_steps`) and, with several processes, trains this process's shards with the
    gradients averaged over all of them; only rank 0 writes. should_stop must then answer alike in
    every process."""
    import torch

    if (folder / "model" / CARD_FILE).exists():
        finished = read_card(folder / "model")
        dice = finished.validation["validation_dice_mean"]
        return FoldResult(split.fold, finished.validation["best_epoch"], math.nan if dice is None else dice,
                          folder / "model", finished)
    writes = world is None or world.writes
    if writes:
        folder.mkdir(parents=True, exist_ok=True)
    device = choose_device(config.device)
    train = data.subset(set(split.train))
    validation = validation_data if validation_data is not None else data.subset(set(split.validation))
    if len(train) == 0:
        raise InputError(f"fold {split.fold}: needs slices to train on (patients: {len(split.train)} train, "
                         f"{len(split.validation)} validation)")
    validating = len(validation) > 0
    if not validating:
        log.warning("fold %d: no patient to validate with (%d patient(s) to train on): every epoch trains on all "
                    "the slices and the last one is kept", split.fold, len(split.train))
    scored = validation_share(validation, world)
    seed_everything(config.seed, split.fold)
    network = build_network(config.architecture)
    if initial_weights is not None:
        network.load_state_dict(initial_weights)
    network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss = loss_function(config)
    teacher = base_teacher(config, initial_weights, device)
    state = load_checkpoint(folder / "checkpoint", network, optimizer) or {"epoch": 0, "best_dice": -1.0, "best_epoch": 0}
    best_folder = folder / "best"
    workers = loader_workers(config, device)
    use_amp = uses_bfloat16(config, device)
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        started = time.monotonic()
        rng = seed_everything(config.seed, split.fold, epoch)
        set_encoder_trainable(network, epoch > config.freeze_encoder_epochs)
        learning_rate = config.learning_rate * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / config.epochs))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        steps, step_count = (planned_steps(train, config, rng, workers, device, world) if world
                             else shuffled_steps(train, config, rng, workers, device))
        model = data_parallel(network, device, world)
        network.train()
        if epoch <= config.freeze_encoder_epochs:
            network.encoder.eval()  # frozen: batch-norm statistics stay as the base model had them

        def report(fraction: float, mean_loss: float) -> None:
            if progress:
                progress((epoch - 1 + fraction) / config.epochs, f"fold {split.fold} epoch {epoch}/{config.epochs} "
                         f"loss {mean_loss:.3f}")

        losses = train_epoch(model, steps, step_count, optimizer, loss, device, use_amp,
                             f"fold {split.fold}, epoch {epoch}", should_stop, report, teacher)
        broadcast_buffers(network, world)
        train_loss = mean_over_processes(losses, world)
        validation_loss, dice = (validation_scores(network, scored, loss, device, config, world, card.postprocessing)
                                 if validating else (math.nan, dict.fromkeys(STRUCTURES, math.nan)))
        mean_dice = float(np.nanmean(list(dice.values()))) if validating else math.nan
        row = {
            "epoch": epoch, "train_loss": f"{train_loss:.5f}", "val_loss": f"{validation_loss:.5f}",
            "val_dice_overall": f"{dice['overall muscle']:.5f}", "val_dice_muscle": f"{dice['muscle tissue']:.5f}",
            "val_dice_fat": f"{dice['fat']:.5f}", "val_dice_mean": f"{mean_dice:.5f}",
            "learning_rate": f"{learning_rate:.3g}", "seconds": f"{time.monotonic() - started:.1f}",
        }
        if writes:
            append_metrics(folder / "metrics.csv", row)
        if mean_dice > state["best_dice"] or not validating:  # without validation: the last epoch
            state.update(best_dice=mean_dice, best_epoch=epoch, best_scores=dice)
            if writes:
                save_checkpoint(best_folder, network, optimizer, {"epoch": epoch})
        state["epoch"] = epoch
        if writes:
            save_checkpoint(folder / "checkpoint", network, optimizer, state)
        if on_epoch:
            on_epoch(split.fold, {k: float(v) for k, v in row.items()})
        if progress:
            progress(epoch / config.epochs, f"fold {split.fold} epoch {epoch}/{config.epochs} loss {train_loss:.3f} "
                     f"val Dice {mean_dice:.3f}")
    if writes:
        save_fold_model(folder, network, optimizer, card, split, state, validation, config)
    barrier(world)
    saved = read_card(folder / "model")
    return FoldResult(split.fold, state["best_epoch"], state["best_dice"], folder / "model", saved)


def save_fold_model(folder: Path, network, optimizer, card: ModelCard, split: Split, state: dict,
                    validation: PreparedSlices, config: TrainingConfig) -> None:
    """The fold's best epoch (the last one when nothing validates) as a model in folder/model, its card
    carrying the validation figures (null without validation slices)."""
    load_checkpoint(folder / "best", network, optimizer)
    validated = len(validation) > 0
    fold_card = ModelCard.from_dict({
        **card.to_dict(),
        "validation": {**card.validation, "fold": split.fold, "best_epoch": state["best_epoch"],
                       "epoch_choice": "best on the validation slices" if validated else
                                       "the last epoch: no patient to validate with",
                       "validation_dice": state.get("best_scores", {}) if validated else {},
                       "validation_dice_mean": state["best_dice"] if validated else None,
                       "validation_patients": len(set(validation.patient_ids)),
                       "validation_slices": len(validation)},
    })
    save_model(folder / "model", network.cpu(), fold_card, half_precision=config.half_precision_weights)
