"""The paper's augmentation with albumentations: shift, scale, rotate, elastic and optical distortion.

Image and label map are transformed together (labels with nearest neighbour).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentationSettings:
    shift: float = 0.08
    scale: float = 0.15
    rotate_deg: float = 15.0
    elastic_probability: float = 0.3
    optical_probability: float = 0.3
    flip_probability: float = 0.0  # left-right flips would swap the patient's sides; off by default

    def to_dict(self) -> dict:
        return asdict(self)


def build_augmentation(settings: AugmentationSettings, seed: int):
    """An albumentations pipeline, seeded."""
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


def augment(pipeline, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = pipeline(image=image, mask=labels.astype(np.uint8))
    return out["image"].astype(np.float32), out["mask"].astype(np.int64)
