"""Cleaning predicted label maps."""

import numpy as np

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.network.postprocess import clean_labels


def test_stray_islands_go_holes_fill_and_fat_stays_inside():
    labels = np.zeros((40, 60), dtype=np.uint8)
    labels[5:25, 5:25] = RIGHT_MUSCLE
    labels[10:14, 10:14] = 0  # a hole: becomes muscle
    labels[18:22, 8:20] = RIGHT_FAT
    labels[30:33, 2:5] = RIGHT_MUSCLE  # a stray island of the right side: removed
    labels[35:38, 50:53] = RIGHT_FAT  # stray fat far away: removed
    labels[5:25, 35:55] = LEFT_MUSCLE
    labels[6:9, 36:50] = LEFT_FAT
    cleaned = clean_labels(labels)
    assert (cleaned[10:14, 10:14] == RIGHT_MUSCLE).all()
    assert (cleaned[30:33, 2:5] == 0).all() and (cleaned[35:38, 50:53] == 0).all()
    assert (cleaned == RIGHT_FAT).sum() == 4 * 12
    assert (cleaned == LEFT_FAT).sum() == 3 * 14
    assert np.isin(cleaned, (RIGHT_MUSCLE, RIGHT_FAT)).sum() == 400
    assert np.isin(cleaned, (LEFT_MUSCLE, LEFT_FAT)).sum() == 400
