"""The training engine: one fold's epochs (resumable, seeded), k-fold runs, and the resulting models.

Per epoch: augmented batches, loss = Dice + focal, validation Dice of the compartment, muscle tissue
and fat; metrics appended to metrics.csv; a checkpoint after every epoch; the best epoch on
validation becomes the fold's model. A run can be interrupted and started again with the same
output folder: finished folds are kept, an unfinished fold continues from its last checkpoint.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError, OperationCancelled
from ParaspinalSegLib.inference import choose_device
from ParaspinalSegLib.measurement import sided_dice
from ParaspinalSegLib.model import build_network
from ParaspinalSegLib.modelfile import CARD_FILE, ModelCard, read_card, save_model

from .augmentation import augment, build_augmentation
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .datasets import PreparedSlices
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


class AugmentedSlices:
    """A torch-style dataset over prepared slices, augmenting each draw (seeded per worker)."""

    def __init__(self, data: PreparedSlices, config: TrainingConfig, seed: int) -> None:
        self.data, self.config, self.seed = data, config, seed
        self.pipeline = build_augmentation(config.augmentation, seed)
        self.rng = np.random.default_rng(seed)

    def reseed(self, worker: int) -> None:
        self.pipeline = build_augmentation(self.config.augmentation, self.seed * 1000 + worker)
        self.rng = np.random.default_rng([self.seed, worker])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        import torch

        share = self.config.augmentation.flip_probability
        mirrored = share > 0 and self.rng.random() < share  # no draw when off: earlier runs repeat exactly
        image, labels = augment(self.pipeline, self.data.images[index], self.data.labels[index], mirrored)
        return torch.from_numpy(image[None]), torch.from_numpy(labels)


def _reseed_worker(worker: int) -> None:
    import torch

    torch.utils.data.get_worker_info().dataset.reseed(worker)


def loss_function(config: TrainingConfig):
    from segmentation_models_pytorch.losses import DiceLoss, FocalLoss

    dice, focal = DiceLoss("multiclass", from_logits=True), FocalLoss("multiclass")
    return lambda logits, target: config.dice_weight * dice(logits, target) + config.focal_weight * focal(logits, target)


def structure_dice(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice pooled over all pixels of a set of slices, per structure of the evaluation: the mean
    of the right and the left side's Dice (sides swapped score 0)."""
    return {structure: sided_dice(truth, prediction, values) for structure, values in STRUCTURES.items()}


def validation_scores(network, data: PreparedSlices, loss, device: str, config: TrainingConfig) -> tuple[float, dict]:
    """Mean validation loss and per-structure Dice, from one pass of the network over the slices."""
    import torch

    network.eval()
    losses, predictions = [], []
    with torch.inference_mode():
        for start in range(0, len(data), config.batch_size):
            images = torch.from_numpy(data.images[start : start + config.batch_size, None]).to(device)
            target = torch.from_numpy(data.labels[start : start + config.batch_size]).to(device)
            logits = network(images).float()
            losses.append(float(loss(logits, target)))
            predictions.append(logits.argmax(dim=1).cpu().numpy().astype(np.uint8))
    prediction = np.concatenate(predictions) if predictions else np.zeros(data.labels.shape, dtype=np.uint8)
    return float(np.mean(losses)) if losses else float("nan"), structure_dice(prediction, data.labels)


@dataclass(frozen=True)
class FoldResult:
    fold: int
    best_epoch: int
    best_validation_dice: float
    model_folder: Path
    card: ModelCard


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
) -> FoldResult:
    """Train one fold into `folder` (resuming if a checkpoint is there); the best epoch is saved as a model.

    on_epoch receives each finished epoch's metrics (after its checkpoint is written). validation_data,
    when given, replaces the split's validation patients (the held-out synthesis domains of the
    selection protocol): the best epoch is the one best on them, and the split's validation patients
    are not trained on either."""
    import torch

    if (folder / "model" / CARD_FILE).exists():
        finished = read_card(folder / "model")
        return FoldResult(split.fold, finished.validation["best_epoch"], finished.validation["validation_dice_mean"],
                          folder / "model", finished)
    folder.mkdir(parents=True, exist_ok=True)
    device = choose_device(config.device)
    train = data.subset(set(split.train))
    validation = validation_data if validation_data is not None else data.subset(set(split.validation))
    if len(train) == 0 or len(validation) == 0:
        raise InputError(f"fold {split.fold}: needs slices to train on and to validate with (patients: "
                         f"{len(split.train)} train, {len(split.validation)} validation)")
    seed_everything(config.seed, split.fold)
    network = build_network(config.architecture)
    if initial_weights is not None:
        network.load_state_dict(initial_weights)
    network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss = loss_function(config)
    state = load_checkpoint(folder / "checkpoint", network, optimizer) or {"epoch": 0, "best_dice": -1.0, "best_epoch": 0}
    best_folder = folder / "best"
    workers = config.workers if config.workers >= 0 else (8 if device == "cuda" else 0)
    use_amp = config.mixed_precision and device == "cuda"
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        started = time.monotonic()
        rng = seed_everything(config.seed, split.fold, epoch)
        set_encoder_trainable(network, epoch > config.freeze_encoder_epochs)
        learning_rate = config.learning_rate * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / config.epochs))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        dataset = AugmentedSlices(train, config, seed=int(rng.integers(2**31)))
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=config.batch_size, shuffle=True, num_workers=workers, drop_last=len(train) > config.batch_size,
            generator=torch.Generator().manual_seed(int(rng.integers(2**31))),
            worker_init_fn=_reseed_worker if workers else None, pin_memory=device == "cuda",
            persistent_workers=False,
        )
        network.train()
        if epoch <= config.freeze_encoder_epochs:
            network.encoder.eval()  # frozen: batch-norm statistics stay as the base model had them
        losses = []
        for step, (images, target) in enumerate(loader):
            if should_stop and should_stop():
                raise OperationCancelled(f"training stopped in fold {split.fold}, epoch {epoch}; the last checkpoint is kept")
            images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                value = loss(network(images).float(), target)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            losses.append(float(value.detach()))
            if progress:
                fraction = ((epoch - 1) + (step + 1) / max(len(loader), 1)) / config.epochs
                progress(fraction, f"fold {split.fold} epoch {epoch}/{config.epochs} loss {np.mean(losses):.3f}")
        validation_loss, dice = validation_scores(network, validation, loss, device, config)
        mean_dice = float(np.nanmean(list(dice.values())))
        row = {
            "epoch": epoch, "train_loss": f"{np.mean(losses):.5f}", "val_loss": f"{validation_loss:.5f}",
            "val_dice_overall": f"{dice['overall muscle']:.5f}", "val_dice_muscle": f"{dice['muscle tissue']:.5f}",
            "val_dice_fat": f"{dice['fat']:.5f}", "val_dice_mean": f"{mean_dice:.5f}",
            "learning_rate": f"{learning_rate:.3g}", "seconds": f"{time.monotonic() - started:.1f}",
        }
        append_metrics(folder / "metrics.csv", row)
        if mean_dice > state["best_dice"]:
            state.update(best_dice=mean_dice, best_epoch=epoch, best_scores=dice)
            save_checkpoint(best_folder, network, optimizer, {"epoch": epoch})
        state["epoch"] = epoch
        save_checkpoint(folder / "checkpoint", network, optimizer, state)
        if on_epoch:
            on_epoch(split.fold, {k: float(v) for k, v in row.items()})
        if progress:
            progress(epoch / config.epochs, f"fold {split.fold} epoch {epoch}/{config.epochs} loss {np.mean(losses):.3f} "
                     f"val Dice {mean_dice:.3f}")
    load_checkpoint(best_folder, network, optimizer)
    fold_card = ModelCard.from_dict({
        **card.to_dict(),
        "validation": {**card.validation, "fold": split.fold, "best_epoch": state["best_epoch"],
                       "validation_dice": state.get("best_scores", {}), "validation_dice_mean": state["best_dice"],
                       "validation_patients": len(set(validation.patient_ids)),
                       "validation_slices": len(validation)},
    })
    saved = save_model(folder / "model", network.cpu(), fold_card, half_precision=config.half_precision_weights)
    return FoldResult(split.fold, state["best_epoch"], state["best_dice"], folder / "model", saved)
