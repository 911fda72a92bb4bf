"""A slice to network input and the network's output back to the slice's own pixel grid.

Forward: display orientation (exact flips), resampling to the model's pixel spacing (low-pass
filtered where the slice is finer, unless the model was trained with plain linear resampling), a square
window of the model's input size centred on the body, intensities scaled by percentiles.
Backward: class probabilities (the softmax of the scores) are put back into the window, resized to the display grid
(area-weighted where it is coarser), turned into labels (the card's label decision and fat split), and flipped back
to the original orientation (exact).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..geometry import DisplayTransform, SliceGeometry
from ..labels import BACKGROUND, LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE, SIDES
from .model import Preprocessing


@dataclass(frozen=True)
class Placement:
    """Where the model's window lies on the resampled display slice, to undo it exactly."""

    transform: DisplayTransform
    display_shape: tuple[int, int]
    resampled_shape: tuple[int, int]
    window_origin: tuple[int, int]  # top-left of the window in resampled pixels (may be negative)
    size: int


def normalise_intensities(pixels: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Scale so that the low/high percentiles map to 0/1 (values beyond are kept, not clipped)."""
    low, high = np.percentile(pixels, percentiles)
    return ((pixels - low) / max(float(high - low), 1e-6)).astype(np.float32)


def resample(array: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    """Resize a 2D array to `shape` (pixel centres aligned; order 0 nearest, 1 linear)."""
    from scipy.ndimage import map_coordinates

    rows = (np.arange(shape[0]) + 0.5) * array.shape[0] / shape[0] - 0.5
    columns = (np.arange(shape[1]) + 0.5) * array.shape[1] / shape[1] - 0.5
    grid = np.meshgrid(rows, columns, indexing="ij")
    return map_coordinates(array, grid, order=order, mode="nearest").astype(array.dtype)


@functools.lru_cache(maxsize=64)
def resize_weights(size_in: int, size_out: int) -> np.ndarray:
    """The (size_out, size_in) matrix of torch's antialiased bilinear resize along one axis: a
    triangle filter as wide as the new pixel where the axis shrinks, plain linear where it grows,
    pixel centres aligned, weights cut at the edges and renormalised (as `F.interpolate(...,
    antialias=True)` computes them, so that the models see what they were trained on)."""
    scale = size_in / size_out
    support, stretch = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    centre = scale * (np.arange(size_out) + 0.5)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    stop = np.minimum((centre + support + 0.5).astype(np.int64), size_in)
    source = np.arange(size_in)[None, :]
    weights = np.clip(1.0 - np.abs((source - centre[:, None] + 0.5) * stretch), 0.0, None)
    weights[(source < first[:, None]) | (source >= stop[:, None])] = 0.0
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    weights.setflags(write=False)  # cached: shared by every slice of the same size
    return weights


def resample_antialiased(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes of an array to `shape` (pixel centres aligned), low-pass filtered
    along an axis that shrinks, linear where it grows (`resize_weights`)."""
    rows, columns = resize_weights(array.shape[-2], shape[0]), resize_weights(array.shape[-1], shape[1])
    return (rows @ np.asarray(array, dtype=np.float32) @ columns.T).astype(np.float32)


LABEL_RESAMPLING = ("nearest", "smooth")


def resample_labels(labels: np.ndarray, shape: tuple[int, int], how: str = "nearest") -> np.ndarray:
    """A scheme label map resized to `shape` (pixel centres aligned). "nearest": each new pixel takes
    the label at its centre, so a coarse slice's borders arrive as its pixels' steps. "smooth": the
    background and each side's compartment, as shares, are resized as `resample_antialiased` resizes
    an image (area-weighted along an axis that shrinks; along one that grows, first smoothed with the
    binomial kernel 1-2-1, then linear), and each new pixel goes to the one with the largest share
    (background on a tie): a border between coarse pixels runs across their steps, not along them.
    Inside, a pixel is fat where the nearest label is that side's fat, so the fat keeps the area that
    nearest sampling gives it."""
    if how not in LABEL_RESAMPLING:
        raise ValueError(f"label resampling {how!r}: choose one of {', '.join(LABEL_RESAMPLING)}")
    nearest = resample(labels, shape, order=0)
    if how == "nearest":
        return nearest
    from scipy.ndimage import correlate1d

    shares = np.stack([labels == BACKGROUND] + [np.isin(labels, side.labels) for side in SIDES]).astype(np.float32)
    for axis, (size_in, size_out) in enumerate(zip(labels.shape, shape), start=1):
        if size_out > size_in:
            shares = correlate1d(shares, [0.25, 0.5, 0.25], axis=axis, mode="nearest")
    region = resample_antialiased(shares, shape).argmax(axis=0)
    out = np.zeros(shape, dtype=labels.dtype)
    for index, side in enumerate(SIDES, start=1):
        inside = region == index
        out[inside] = np.where(nearest[inside] == side.fat, side.fat, side.muscle)
    return out


def softmax(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    """Class probabilities from class scores along `axis`."""
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def body_centre(image: np.ndarray) -> tuple[int, int]:
    """Centre of the pixels brighter than the slice mean (the body), in pixels."""
    rows, columns = np.nonzero(image > image.mean())
    if rows.size == 0:
        return image.shape[0] // 2, image.shape[1] // 2
    return int(round(rows.mean())), int(round(columns.mean()))


def cut_window(array: np.ndarray, origin: tuple[int, int], size: int, fill: float) -> np.ndarray:
    """A size x size window of `array` at `origin` (top-left), padded with `fill` outside."""
    out = np.full((size, size), fill, dtype=array.dtype)
    r0, c0 = origin
    rs, re = max(r0, 0), min(r0 + size, array.shape[0])
    cs, ce = max(c0, 0), min(c0 + size, array.shape[1])
    if rs < re and cs < ce:
        out[rs - r0 : re - r0, cs - c0 : ce - c0] = array[rs:re, cs:ce]
    return out


def prepare_slice(
    pixels: np.ndarray, geometry: SliceGeometry, pre: Preprocessing, labels: np.ndarray | None = None,
    label_resampling: str = "nearest",
) -> tuple[np.ndarray, Placement, np.ndarray | None]:
    """Network input (size x size float32), its placement, and the labels on the same window
    (resized by `resample_labels` with `label_resampling`)."""
    transform = DisplayTransform.for_geometry(geometry)
    display = transform.to_display(np.asarray(pixels, dtype=np.float32))
    row_mm, column_mm = transform.display_spacing(geometry)
    shape = (
        max(1, int(round(display.shape[0] * row_mm / pre.pixel_spacing_mm))),
        max(1, int(round(display.shape[1] * column_mm / pre.pixel_spacing_mm))),
    )
    resampled = resample_antialiased(display, shape) if pre.resampling == "antialiased" else resample(display, shape, order=1)
    image = normalise_intensities(resampled, pre.percentiles)
    centre = body_centre(image)
    origin = (centre[0] - pre.input_size // 2, centre[1] - pre.input_size // 2)
    placement = Placement(transform, display.shape, shape, origin, pre.input_size)
    window = cut_window(image, origin, pre.input_size, fill=float(image.min()))
    label_window = None
    if labels is not None:
        resampled_labels = resample_labels(transform.to_display(np.asarray(labels, dtype=np.uint8)), shape, label_resampling)
        label_window = cut_window(resampled_labels, origin, pre.input_size, fill=0)
    return window, placement, label_window


def compartment_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Background, right compartment and left compartment (each side's muscle + fat) along the class
    axis, the third from last: (..., 3, rows, columns) from (..., 5, rows, columns)."""
    p = probabilities
    return np.stack((p[..., 0, :, :], p[..., RIGHT_MUSCLE, :, :] + p[..., RIGHT_FAT, :, :],
                     p[..., LEFT_MUSCLE, :, :] + p[..., LEFT_FAT, :, :]), axis=-3)


def class_labels(probabilities: np.ndarray, decision: str = "flat", fat_split: str = "per_pixel") -> np.ndarray:
    """Labels from class probabilities (..., classes, rows, columns) by the card's label `decision`
    (`decided_labels`), their fat redrawn by `fat_split` "expected_area" (`fat_by_expected_area`, per
    slice) or left as the decision took it ("per_pixel")."""
    labels = decided_labels(probabilities, decision)
    if fat_split == "per_pixel":
        return labels
    slices = zip(labels.reshape((-1,) + labels.shape[-2:]), probabilities.reshape((-1,) + probabilities.shape[-3:]))
    return np.stack([fat_by_expected_area(*pair) for pair in slices]).reshape(labels.shape)


def fat_by_expected_area(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """One slice's labels (rows, columns) with each side's fat redrawn by its expected area: as many
    fat pixels as the sum, over the compartment's pixels, of fat's share of the compartment
    probability p_fat / (p_fat + p_muscle) (rounded), given to the pixels with the highest share
    (equal shares in raster order). The compartments keep their pixels. `probabilities`: (classes,
    rows, columns)."""
    out = labels.copy()
    for side in SIDES:
        inside = np.isin(labels, side.labels)
        if not inside.any():
            continue
        fat, muscle = probabilities[side.fat][inside], probabilities[side.muscle][inside]
        share = fat / np.maximum(fat + muscle, 1e-12)
        split = np.full(share.shape, side.muscle, dtype=np.uint8)
        split[np.argsort(-share, kind="stable")[: int(round(float(share.sum())))]] = side.fat
        out[inside] = split
    return out


def decided_labels(probabilities: np.ndarray, decision: str = "flat") -> np.ndarray:
    """Labels from class probabilities (..., classes, rows, columns). "flat": the most probable class.
    "compartment_first": background, right or left compartment by their summed probabilities, then
    fat where its probability exceeds muscle's (a tie is muscle, as in the flat argmax)."""
    if decision == "flat":
        return probabilities.argmax(axis=-3).astype(np.uint8)
    side = compartment_probabilities(probabilities).argmax(axis=-3)
    p = probabilities
    right = np.where(p[..., RIGHT_FAT, :, :] > p[..., RIGHT_MUSCLE, :, :], RIGHT_FAT, RIGHT_MUSCLE)
    left = np.where(p[..., LEFT_FAT, :, :] > p[..., LEFT_MUSCLE, :, :], LEFT_FAT, LEFT_MUSCLE)
    return np.select([side == 1, side == 2], [right, left], 0).astype(np.uint8)


def above_background(probabilities: np.ndarray, decision: str = "flat") -> np.ndarray:
    """Where a class (flat) or a compartment (compartment_first) is more probable than background."""
    others = probabilities[1:] if decision == "flat" else compartment_probabilities(probabilities)[1:]
    return probabilities[0] < others.max(axis=0)


def reached_by(weights: np.ndarray, first: int, last: int) -> tuple[slice, slice]:
    """The output pixels of a resize (`resize_weights`) that take any weight from inputs first..last,
    and all the inputs that those output pixels take weight from."""
    outputs = np.nonzero(weights[:, first : last + 1].any(axis=1))[0]
    reached = slice(int(outputs[0]), int(outputs[-1]) + 1)
    inputs = np.nonzero(weights[reached].any(axis=0))[0]
    return reached, slice(int(inputs[0]), int(inputs[-1]) + 1)


def restore_labels(
    probabilities: np.ndarray, placement: Placement, decision: str = "flat", fat_split: str = "per_pixel"
) -> np.ndarray:
    """Labels on the slice's original pixel grid from class probabilities (classes, size, size; the
    softmax of the network's scores), by the card's label `decision` and `fat_split` (`class_labels`).

    The class probabilities are resized, area-weighted where the slice's pixels are coarser than the
    model's (antialiased), so that a coarse pixel takes the class that covers most of it. Only the
    part of the slice that pixels with a class (or compartment) above background reach is resized:
    elsewhere every weighted mix has background on top, so the label is background exactly."""
    window = probabilities
    probabilities = np.zeros((window.shape[0],) + placement.resampled_shape, dtype=np.float32)
    probabilities[0] = 1.0
    r0, c0 = placement.window_origin
    size = placement.size
    rs, re = max(r0, 0), min(r0 + size, placement.resampled_shape[0])
    cs, ce = max(c0, 0), min(c0 + size, placement.resampled_shape[1])
    if rs < re and cs < ce:
        probabilities[:, rs:re, cs:ce] = window[:, rs - r0 : re - r0, cs - c0 : ce - c0]
    labels = np.zeros(placement.display_shape, dtype=np.uint8)
    candidates = above_background(probabilities, decision)
    if candidates.any():
        rows, columns = np.nonzero(candidates.any(axis=1))[0], np.nonzero(candidates.any(axis=0))[0]
        row_weights = resize_weights(placement.resampled_shape[0], placement.display_shape[0])
        column_weights = resize_weights(placement.resampled_shape[1], placement.display_shape[1])
        out_rows, in_rows = reached_by(row_weights, rows[0], rows[-1])
        out_columns, in_columns = reached_by(column_weights, columns[0], columns[-1])
        region = row_weights[out_rows, in_rows] @ probabilities[:, in_rows, in_columns] @ column_weights[out_columns, in_columns].T
        labels[out_rows, out_columns] = class_labels(region, decision, fat_split)
    return placement.transform.from_display(labels)
