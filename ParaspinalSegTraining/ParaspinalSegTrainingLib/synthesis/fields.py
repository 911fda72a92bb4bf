"""Smooth random fields (elastic displacements, bias fields): a few random nodes, interpolated smoothly."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom


def smooth_random_field(shape: tuple[int, int], nodes: int, rng: np.random.Generator) -> np.ndarray:
    """A field over `shape` through nodes x nodes standard-normal values: cubic onto 32 x 32, then linear."""
    coarse = rng.normal(0.0, 1.0, (nodes, nodes))
    middle = zoom(coarse, 32 / nodes, order=3, mode="nearest")
    full = zoom(middle, (shape[0] / middle.shape[0], shape[1] / middle.shape[1]), order=1, mode="nearest")
    return full[: shape[0], : shape[1]]
