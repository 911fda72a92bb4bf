"""The paper's augmentation with albumentations: shift, scale, rotate, elastic and optical distortion.

Image and label map are transformed together (labels with nearest neighbour). Optionally a
left-right mirror that swaps the side labels too: in display orientation the image's left is
always the patient's right, so the mirrored slice is a valid slice of a mirrored patient (organs
on the other side), which keeps the network from reading the side from the organs around it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE

SIDE_SWAP = np.arange(256, dtype=np.uint8)
SIDE_SWAP[[RIGHT_MUSCLE, RIGHT_FAT, LEFT_MUSCLE, LEFT_FAT]] = [LEFT_MUSCLE, LEFT_FAT, RIGHT_MUSCLE, RIGHT_FAT]


@dataclass(frozen=True)
class AugmentationSettings:
    shift: float = 0.08
    scale: float = 0.15
    rotate_deg: float = 15.0
    elastic_probability: float = 0.3
    optical_probability: float = 0.3
    flip_probability: float = 0.0  # left-right mirror with the side labels swapped (a mirrored patient)

    def to_dict(self) -> dict:
        return asdict(self)


def build_augmentation(settings: AugmentationSettings, seed: int):
    """An albumentations pipeline, seeded."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations asks the internet for news at import
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.Affine(
                translate_percent=(-settings.shift, settings.shift),
                scale=(1 - settings.scale, 1 + settings.scale),
                rotate=(-settings.rotate_deg, settings.rotate_deg),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REPLICATE,
                p=0.9,
            ),
            A.ElasticTransform(alpha=30, sigma=6, p=settings.elastic_probability),
            A.OpticalDistortion(distort_limit=0.15, p=settings.optical_probability),
        ],
        seed=seed,
    )


def mirror(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slice mirrored left-right, its right and left labels swapped (display orientation kept)."""
    return image[:, ::-1].copy(), SIDE_SWAP[labels[:, ::-1]]


def augment(pipeline, image: np.ndarray, labels: np.ndarray, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    labels = labels.astype(np.uint8)
    if mirrored:
        image, labels = mirror(image, labels)
    out = pipeline(image=image, mask=labels)
    return out["image"].astype(np.float32), out["mask"].astype(np.int64)
