"""Running a loaded model on the slices of a series: label maps on each slice's own pixel grid.

No file I/O here: slices with their geometry in, scheme label maps out (the function the command
line and the Slicer module share).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from .modelfile import LoadedModel
from .model import Postprocessing
from .preprocess import prepare_slice, restore_labels, softmax
from ..progress import ProgressCallback, part_of
from .runtime import NetworkRunner, TorchRunner
from ..slices import SliceSeries


def gpu_possible() -> bool:
    """Whether this machine may have a CUDA or Apple GPU, judged without importing torch (1.5 s)."""
    return sys.platform == "darwin" or Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


def choose_device(requested: str = "auto") -> str:
    """The device for `requested`: auto is CUDA, then Apple MPS, then the CPU."""
    if requested != "auto":
        return requested
    if "torch" not in sys.modules and not gpu_possible():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass(frozen=True)
class SeriesPrediction:
    """Scheme label maps per slice and, per slice, the network's confidence in its compartments, and
    the slices segmented again mirrored because the network was unsure of them (`mirror_unsure`)."""

    labels: list[np.ndarray]
    confidence: list[float]  # NaN where the network found no compartment on the slice
    mirrored: tuple[int, ...] = ()  # slice indices; every slice's mirrored look (mirror=True) is not listed


# Class channels of a left-right mirrored prediction, read back in the original's order (sides swapped).
MIRRORED_CLASSES = [0, LEFT_MUSCLE, LEFT_FAT, RIGHT_MUSCLE, RIGHT_FAT]


def mirrored_scores(runner: NetworkRunner, batch: np.ndarray) -> np.ndarray:
    """Class scores of the left-right mirrored windows, mirrored back and their sides swapped."""
    return runner.scores(batch[..., ::-1])[..., ::-1][:, MIRRORED_CLASSES]


def network_scores(runner: NetworkRunner, batch: np.ndarray, mirror: bool = False) -> np.ndarray:
    """Class scores (logits) of a batch of windows; with `mirror`, averaged with the scores of the
    left-right mirrored windows (`mirrored_scores`; test-time augmentation)."""
    scores = runner.scores(batch)
    if mirror:
        scores = (scores + mirrored_scores(runner, batch)) / 2
    return scores


def shift_fat_split(probabilities: np.ndarray, fat_score_offset: float) -> np.ndarray:
    """Class probabilities (batch, classes, rows, columns) with each side's fat/muscle split moved by
    `fat_score_offset` (the card's postprocessing): fat's odds over muscle are divided by
    exp(offset), and each compartment's probability (muscle + fat) stays as it was, so what moves is
    the border between fat and muscle (and, rarely, a pixel where background had tied with both). 0
    leaves them as they are."""
    if not fat_score_offset:
        return probabilities
    shifted = probabilities.copy()
    weight = math.exp(-fat_score_offset)
    for muscle, fat in ((RIGHT_MUSCLE, RIGHT_FAT), (LEFT_MUSCLE, LEFT_FAT)):
        compartment, weighted_fat = probabilities[:, muscle] + probabilities[:, fat], probabilities[:, fat] * weight
        shifted[:, fat] = compartment * weighted_fat / np.maximum(probabilities[:, muscle] + weighted_fat, 1e-12)
        shifted[:, muscle] = compartment - shifted[:, fat]
    return shifted


def class_probabilities(scores: np.ndarray, post: Postprocessing) -> np.ndarray:
    """Class probabilities (batch, classes, rows, columns) from the network's scores with the card's
    offsets: background's added to its score before the softmax, which multiplies background's odds
    over every other class by exp(offset) and keeps the others' ratios (0 leaves them as they are),
    then the fat/muscle split (`shift_fat_split`)."""
    if post.background_score_offset:
        scores = scores.copy()
        scores[:, 0] += post.background_score_offset
    return shift_fat_split(softmax(scores, axis=1), post.fat_score_offset)


def compartment_confidence(probabilities: np.ndarray) -> float:
    """Mean top-class probability over the pixels of the network window that it puts in a compartment.

    The classes are merged into background, right compartment (muscle + fat) and left compartment
    first: the muscle/fat border inside a fatty muscle is uncertain by nature and is not what fails.
    A pixel is in a compartment where the larger side's sum beats background (a tie is background,
    as in an argmax), and that sum is its top probability. `probabilities`: one slice's class
    probabilities (classes, size, size), the softmax of its scores. NaN if no compartment.
    """
    p = probabilities
    compartment = np.maximum(p[RIGHT_MUSCLE] + p[RIGHT_FAT], p[LEFT_MUSCLE] + p[LEFT_FAT])
    inside = compartment > p[0]
    return float(compartment[inside].mean()) if inside.any() else math.nan


def runner_for(model: LoadedModel, device: str, mixed_precision: bool) -> NetworkRunner:
    """What runs the model's network: its graph's session (ONNX Runtime or OpenVINO), or its torch
    module on `device`."""
    if model.network is None:
        return model.runner
    return TorchRunner(model.network.to(device).eval(), device, mixed_precision)


def predict_series_with_confidence(
    model: LoadedModel,
    series: SliceSeries,
    device: str = "cpu",
    batch_size: int = 8,
    mixed_precision: bool = True,
    progress: ProgressCallback | None = None,
    mirror: bool = False,
) -> SeriesPrediction:
    """Scheme label maps, one per slice of the series, from the model's class scores, and the
    model's confidence per slice (`compartment_confidence`, on the network window). mirror: average
    with the left-right mirrored slice, sides swapped (twice the network time); without it, only the
    slices below the card's `mirror_below_confidence` are (`mirror_unsure`).

    The card's postprocessing moves the background's odds and each side's fat/muscle split (`class_probabilities`)
    and says how the labels are taken and fat is split (`preprocess.class_labels`).
    Mixed precision (bfloat16) is used on CUDA only: the CPU's fast paths are ONNX Runtime and
    OpenVINO (the README's Speed section), and torch's float32 keeps this path exact there.
    The network runs over up to `NETWORK_GROUP` slices, batch after batch, before their labels are
    made (`scores_of_group`), then the group's class probabilities are taken once, for the choice of
    `mirror_unsure` and for the labels and confidence.
    """
    pre = model.card.preprocessing
    prepared = [prepare_slice(s.pixels, s.geometry, pre) for s in series.slices]
    runner = runner_for(model, device, mixed_precision)
    post = model.card.postprocessing
    labels: list[np.ndarray] = []
    confidence: list[float] = []
    mirrored: list[int] = []
    for start in range(0, len(prepared), NETWORK_GROUP):
        group = prepared[start : start + NETWORK_GROUP]
        windows = [window for window, _, _ in group]
        scores = scores_of_group(runner, windows, batch_size, mirror, progress, start, len(prepared))
        probabilities = [class_probabilities(batch_scores, post) for batch_scores in scores]
        if not mirror and post.mirror_below_confidence > 0:
            done = (start + len(group)) / len(prepared)
            unsure = mirror_unsure(runner, windows, scores, probabilities, post, batch_size,
                                   part_of(progress, done, done))
            mirrored += [start + index for index in unsure]
        del scores
        for first, batch_probabilities in zip(range(0, len(group), batch_size), probabilities):
            placements = [placement for _, placement, _ in group[first : first + batch_size]]
            labels += [restore_labels(p, placement, post.label_decision, post.fat_split)
                       for p, placement in zip(batch_probabilities, placements)]
            confidence += [compartment_confidence(p) for p in batch_probabilities]
    return SeriesPrediction(labels, confidence, tuple(mirrored))


def mirror_unsure(
    runner: NetworkRunner,
    windows: list[np.ndarray],
    scores: list[np.ndarray],
    probabilities: list[np.ndarray],
    post: Postprocessing,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> list[int]:
    """Looks again, mirrored, at each slice of a group whose compartment confidence is below the card's
    `mirror_below_confidence`: its class probabilities (in `probabilities`, one array per batch of
    `scores`, changed in place) become those of its scores averaged with its mirrored scores. Returns
    those slices' indices in the group. A slice without a compartment (confidence NaN) is left as it is.
    Reports progress (and so can be cancelled) after each batch of the second look."""
    found = [compartment_confidence(p) for batch in probabilities for p in batch]
    unsure = [i for i, confidence in enumerate(found) if confidence < post.mirror_below_confidence]
    for first in range(0, len(unsure), batch_size):
        chosen = unsure[first : first + batch_size]
        again = mirrored_scores(runner, np.stack([windows[i] for i in chosen])[:, None]).astype(np.float32, copy=False)
        for index, mirrored in zip(chosen, again):
            batch, position = divmod(index, batch_size)
            averaged = (scores[batch][position] + mirrored) / 2
            probabilities[batch][position] = class_probabilities(averaged[None], post)[0]
        if progress:
            looked = first + len(chosen)
            progress(looked / len(unsure), f"segmenting again mirrored, unsure slice {looked}/{len(unsure)}")
    return unsure


# Slices whose scores are made, batch after batch, before their labels: making each batch's labels
# between the network's batches made a 40-slice study's network a third slower on the 2-core CPU
# (README, Speed); 64 slices' scores take 64 MB, and their class probabilities as much again.
NETWORK_GROUP = 64


def scores_of_group(
    runner: NetworkRunner,
    windows: list[np.ndarray],
    batch_size: int,
    mirror: bool,
    progress: ProgressCallback | None,
    done_before: int,
    total: int,
) -> list[np.ndarray]:
    """Class scores (batch, classes, size, size; float32) of a group of windows, one array per batch,
    with progress counted over the whole series."""
    scores = []
    for start in range(0, len(windows), batch_size):
        batch = np.stack(windows[start : start + batch_size])[:, None]
        scores.append(network_scores(runner, batch, mirror).astype(np.float32, copy=False))
        if progress:
            scored = done_before + start + len(batch)
            progress(scored / total, f"segmenting, slice {scored}/{total}")
    return scores


def predict_series(
    model: LoadedModel,
    series: SliceSeries,
    device: str = "cpu",
    batch_size: int = 8,
    mixed_precision: bool = True,
    progress: ProgressCallback | None = None,
    mirror: bool = False,
) -> list[np.ndarray]:
    """Scheme label maps, one per slice of the series (`predict_series_with_confidence` without the
    confidence)."""
    return predict_series_with_confidence(model, series, device, batch_size, mixed_precision, progress, mirror).labels
