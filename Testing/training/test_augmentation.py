"""Training augmentation: image and labels move together; the mirror swaps the patient's sides."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegTrainingLib.augmentation import AugmentationSettings, mirror
from ParaspinalSegTrainingLib.config import TrainingConfig
from ParaspinalSegTrainingLib.datasets import PreparedSlices
from ParaspinalSegTrainingLib.batches import AugmentedSlices

NO_MOTION = AugmentationSettings(shift=0.0, scale=0.0, rotate_deg=0.0, elastic_probability=0.0, optical_probability=0.0)


def two_sided_slice() -> tuple[np.ndarray, np.ndarray]:
    """A 32 x 32 slice: right compartment (image left) with a fat spot, left compartment (image right)."""
    labels = np.zeros((32, 32), dtype=np.uint8)
    labels[10:20, 2:12] = RIGHT_MUSCLE
    labels[12:14, 4:6] = RIGHT_FAT
    labels[10:22, 18:30] = LEFT_MUSCLE
    image = np.linspace(0.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    return image, labels


def test_mirror_puts_each_compartment_on_the_other_side_under_the_other_sides_label():
    image, labels = two_sided_slice()
    mirrored_image, mirrored = mirror(image, labels)
    assert np.array_equal(mirrored_image, image[:, ::-1])
    # the former left compartment (12 x 12) now lies on the image's left, so it is the right one
    assert (mirrored == RIGHT_MUSCLE).sum() == 144 and (mirrored[10:22, 2:14] == RIGHT_MUSCLE).all()
    assert (mirrored == LEFT_MUSCLE).sum() == 96 and (mirrored == LEFT_FAT).sum() == 4 and (mirrored[12:14, 26:28] == LEFT_FAT).all()
    assert not (mirrored == RIGHT_FAT).any()


def test_training_draws_mirrored_slices_at_the_set_rate_and_never_when_off():
    image, labels = two_sided_slice()
    ids = [f"p{i}" for i in range(200)]
    data = PreparedSlices(np.stack([image] * 200), np.stack([labels] * 200), ids, ids, pixel_area_mm2=1.0)
    for probability, expected in ((0.0, 0), (1.0, 200), (0.5, 100)):
        config = replace(TrainingConfig(), augmentation=replace(NO_MOTION, flip_probability=probability))
        dataset = AugmentedSlices(data, config, seed=3)
        # row 21 holds only the left compartment, which a mirror brings to the image's left as the right one
        mirrored = sum(int(dataset[i][1][21, 5] == RIGHT_MUSCLE) for i in range(len(dataset)))
        if probability == 0.5:
            assert 70 <= mirrored <= 130
        else:
            assert mirrored == expected


def test_building_the_augmentation_asks_nothing_of_the_internet():
    """albumentations checks for a newer version online when imported, unless told not to."""
    import os
    import subprocess
    import sys

    code = ("import socket\n"
            "def refuse(*args, **kwargs):\n"
            "    raise SystemExit('network call: ' + repr(args[:1]))\n"
            "socket.getaddrinfo = socket.create_connection = refuse\n"
            "from ParaspinalSegTrainingLib.augmentation import AugmentationSettings, build_augmentation\n"
            "build_augmentation(AugmentationSettings(), 0)\n"
            "print('offline')\n")
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"})
    assert done.returncode == 0 and done.stdout.strip() == "offline", done.stderr[-800:]
