"""The real-case miss report (bench/real_misses.py) on a slice of known layout: which missed pixels it counts as
bright, in front, lateral and deep, in the patient's directions."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.labels import LEFT_MUSCLE, RIGHT_MUSCLE
from ParaspinalSegLib.slices import ImageSlice

spec = importlib.util.spec_from_file_location("real_misses", Path(__file__).parents[2] / "bench" / "real_misses.py")
real_misses = sys.modules["real_misses"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real_misses)


def axial(flip_rows: bool) -> SliceGeometry:
    """1 mm pixels, columns toward the patient's left; rows toward the back, or toward the front when flipped."""
    if flip_rows:
        return SliceGeometry((0.0, 59.0, 0.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (1.0, 1.0), (60, 80))
    return SliceGeometry((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0), (60, 80))


def case(flip_rows: bool):
    truth = np.zeros((60, 80), np.uint8)
    truth[20:40, 10:30] = RIGHT_MUSCLE  # 20 x 20 mm, 10-29 mm to the left of the field's edge
    truth[20:40, 50:70] = LEFT_MUSCLE
    prediction = truth.copy()
    prediction[20:26, 10:30] = 0  # the front six rows of the right side missed
    pixels = np.where(prediction > 0, 100.0, 0.0)
    pixels[20:26, 10:30] = 200.0  # bright where missed
    if flip_rows:  # the same patient, the image stored upside down: front is now the larger row index
        truth, prediction, pixels = truth[::-1], prediction[::-1], pixels[::-1]
    return ImageSlice(pixels.astype(np.float32), axial(flip_rows)), truth, prediction


def test_misses_at_the_front_of_one_side_are_counted_in_the_patients_directions_whatever_the_image_order():
    for flip_rows in (False, True):
        misses = real_misses.Misses()
        shapes = real_misses.count_misses(*case(flip_rows), into=misses)
        assert (misses.labelled, misses.missed, misses.bright, misses.anterior) == (800, 120, 120, 120)
        # the midline lies at 39.5 mm, the right side's centroid 20 mm from it: columns 10-19 lie farther out
        assert misses.lateral == 60
        # more than 2 mm from the labelled border: the square's rows 2-5 and columns 2-17 (counted from 0)
        assert misses.deep == 4 * 16
        assert shapes == [(29.5, 19.0), (29.5, 19.0)]
