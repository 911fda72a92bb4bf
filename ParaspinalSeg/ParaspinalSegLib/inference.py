"""Running a loaded model on the slices of a series: label maps on each slice's own pixel grid.

No file I/O here: slices with their geometry in, scheme label maps out (the function the command
line and the Slicer module share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from .modelfile import LoadedModel
from .preprocess import prepare_slice, restore_labels
from .slices import SliceSeries
from .progress import ProgressCallback


def choose_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass(frozen=True)
class SeriesPrediction:
    """Scheme label maps per slice and, per slice, the network's confidence in its compartments."""

    labels: list[np.ndarray]
    confidence: list[float]  # NaN where the network found no compartment on the slice


# Class channels of a left-right mirrored prediction, read back in the original's order (sides swapped).
MIRRORED_CLASSES = [0, LEFT_MUSCLE, LEFT_FAT, RIGHT_MUSCLE, RIGHT_FAT]


def network_scores(network, batch, mirror: bool = False):
    """Class scores (logits) of a batch of windows; with `mirror`, averaged with the scores of the
    left-right mirrored windows, mirrored back and their sides swapped (test-time augmentation)."""
    scores = network(batch).float()
    if mirror:
        mirrored = network(batch.flip(-1)).float().flip(-1)[:, MIRRORED_CLASSES]
        scores = (scores + mirrored) / 2
    return scores


def compartment_confidence(scores: np.ndarray) -> float:
    """Mean top-class probability over the pixels of the network window that it puts in a compartment.

    The classes are merged into background, right compartment (muscle + fat) and left compartment
    first: the muscle/fat border inside a fatty muscle is uncertain by nature and is not what fails.
    `scores`: one slice's class scores (classes, size, size), before softmax. NaN if no compartment.
    """
    import torch

    probabilities = torch.from_numpy(scores).softmax(dim=0)
    merged = torch.stack((probabilities[0], probabilities[RIGHT_MUSCLE] + probabilities[RIGHT_FAT],
                          probabilities[LEFT_MUSCLE] + probabilities[LEFT_FAT]))
    top, winner = merged.max(dim=0)
    inside = winner > 0
    return float(top[inside].mean()) if bool(inside.any()) else math.nan


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
    with the left-right mirrored slice, sides swapped (twice the network time).

    Mixed precision (bfloat16) is used on CUDA only: on a CPU without AMX it is several times
    slower than float32 (measured on this project's AMD EPYC machines).
    """
    import torch

    pre = model.card.preprocessing
    prepared = [prepare_slice(s.pixels, s.geometry, pre) for s in series.slices]
    network = model.network.to(device).eval()
    use_bf16 = mixed_precision and device.startswith("cuda")
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16)
    labels: list[np.ndarray] = []
    confidence: list[float] = []
    with torch.inference_mode(), autocast:
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            batch = torch.from_numpy(np.stack([window for window, _, _ in chunk])[:, None]).to(device)
            scores = network_scores(network, batch, mirror).cpu().numpy()
            labels += [restore_labels(score, placement) for score, (_, placement, _) in zip(scores, chunk)]
            confidence += [compartment_confidence(score) for score in scores]
            if progress:
                progress(len(labels) / len(prepared), f"segmenting, slice {len(labels)}/{len(prepared)}")
    return SeriesPrediction(labels, confidence)


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
