"""A slice to network input and the network's class scores back onto the slice's own pixel grid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.geometry import DisplayTransform
from ParaspinalSegLib.network.model import Preprocessing
from ParaspinalSegLib.network.preprocess import Placement, prepare_slice, resample_labels, restore_labels, softmax
from ParaspinalSegTrainingLib.config import TrainingConfig
from ParaspinalSegTrainingLib.sample import axial_geometry

PRE = Preprocessing(pixel_spacing_mm=1.5, input_size=64)


def one_hot_scores(window: np.ndarray, classes: int = 5) -> np.ndarray:
    return (np.arange(classes)[:, None, None] == window[None]).astype(np.float32) * 20.0


@pytest.mark.parametrize("flip", [False, True])
def test_scores_of_the_prepared_labels_restore_them_exactly_at_the_model_spacing(flip):
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 5, (6, 6)), np.ones((8, 8), dtype=np.int64)).astype(np.uint8)  # 48 x 48
    geometry = axial_geometry(0, PRE.pixel_spacing_mm, 5.0, labels.shape)
    if flip:  # rows run towards anterior: the display transform must flip them back
        geometry = replace(geometry, column_direction=(0.0, -1.0, 0.0))
    pixels = rng.normal(100.0, 5.0, labels.shape).astype(np.float32)
    window, placement, label_window = prepare_slice(pixels, geometry, PRE, labels)
    assert window.shape == label_window.shape == (PRE.input_size, PRE.input_size)
    assert np.array_equal(restore_labels(softmax(one_hot_scores(label_window)), placement), labels)


def test_a_coarse_pixel_takes_the_class_covering_most_of_it_not_the_one_at_its_centre():
    # Model pixels 3x finer than the slice's: in every 3-column block, class 1 fills the outer two
    # columns and background the middle one, so each coarse pixel is two-thirds class 1 (by area)
    # while its centre lies on background.
    fine = np.zeros((30, 30), dtype=np.int64)
    fine[:, 0::3] = 1
    fine[:, 2::3] = 1
    placement = Placement(DisplayTransform.for_geometry(axial_geometry(0, 3.0, 5.0, (10, 10))),
                          display_shape=(10, 10), resampled_shape=(30, 30), window_origin=(0, 0), size=30)
    restored = restore_labels(softmax(one_hot_scores(fine)), placement)
    assert (restored[:, 1:-1] == 1).all()


@pytest.mark.parametrize("spacing_mm", [2.5, 2.8, 3.0])
def test_labels_sent_there_and_back_keep_their_area_at_coarse_pixels(spacing_mm):
    """The geometry is not why a network draws compartments too large at coarse pixels: ellipses of
    truth labels taken to the model's grid and their one-hot scores brought back keep their area to 1 %
    (at pixels finer than the model's 1.4 mm the round trip cannot keep what the grid cannot hold)."""
    size = int(round(120 / spacing_mm))  # a 120 mm field
    rows, columns = np.mgrid[:size, :size] * spacing_mm
    labels = np.zeros((size, size), dtype=np.uint8)
    labels[((rows - 60) / 22) ** 2 + ((columns - 45) / 14) ** 2 <= 1] = 1  # 22 x 14 mm half-axes
    labels[((rows - 60) / 20) ** 2 + ((columns - 78) / 12) ** 2 <= 1] = 3
    pre = Preprocessing(pixel_spacing_mm=1.4, input_size=96)
    geometry = axial_geometry(0, spacing_mm, 5.0, labels.shape)
    _, placement, label_window = prepare_slice(np.zeros(labels.shape, np.float32), geometry, pre, labels)
    restored = restore_labels(softmax(one_hot_scores(label_window)), placement)
    for value in (1, 3):
        assert abs(int((restored == value).sum()) - int((labels == value).sum())) <= 0.01 * (labels == value).sum()


def ellipse_labels(size: int, spacing_mm: float) -> np.ndarray:
    """Two compartments (ellipses, right 1 and left 3) with a fat stripe (2) across the right one,
    sampled at the pixel centres of a size x size slice of `spacing_mm` pixels (a 120 mm field)."""
    rows, columns = (np.mgrid[:size, :size] + 0.5) * spacing_mm
    labels = np.zeros((size, size), dtype=np.uint8)
    labels[((rows - 60) / 22) ** 2 + ((columns - 40) / 15) ** 2 <= 1] = 1
    labels[(labels == 1) & (np.abs(rows - 60) < 4)] = 2
    labels[((rows - 58) / 20) ** 2 + ((columns - 80) / 13) ** 2 <= 1] = 3
    return labels


def test_smooth_labels_lie_closer_to_the_shapes_than_the_coarse_pixels_steps():
    """Compartments sampled at 3 mm pixels, taken to a 1 mm grid: the smooth resampling misses the
    shapes sampled at 1 mm on fewer pixels than the nearest label's steps, and the fat (inside the
    compartment) keeps exactly the pixels that nearest sampling gives it."""
    coarse, fine = ellipse_labels(40, 3.0), ellipse_labels(120, 1.0)
    nearest, smooth = resample_labels(coarse, fine.shape, "nearest"), resample_labels(coarse, fine.shape, "smooth")
    compartments = {name: np.isin(grid, (1, 2)) * 1 + np.isin(grid, (3, 4)) * 2
                    for name, grid in (("fine", fine), ("nearest", nearest), ("smooth", smooth))}
    missed_nearest = int((compartments["nearest"] != compartments["fine"]).sum())
    missed_smooth = int((compartments["smooth"] != compartments["fine"]).sum())
    assert missed_smooth < 0.8 * missed_nearest
    assert np.array_equal(smooth == 2, nearest == 2)


@pytest.mark.parametrize("how", ["nearest", "smooth"])
def test_labels_resized_to_their_own_grid_stay_as_they_are(how):
    labels = ellipse_labels(50, 2.4)
    assert np.array_equal(resample_labels(labels, labels.shape, how), labels)


def test_smooth_labels_reach_the_network_window_and_an_unknown_way_is_refused(tmp_path):
    labels = ellipse_labels(40, 3.0)
    geometry = axial_geometry(0, 3.0, 5.0, labels.shape)
    pre = Preprocessing(pixel_spacing_mm=1.5, input_size=96)
    pixels = np.zeros(labels.shape, np.float32)
    nearest = prepare_slice(pixels, geometry, pre, labels)[2]
    smooth = prepare_slice(pixels, geometry, pre, labels, label_resampling="smooth")[2]
    assert 0 < int((nearest != smooth).sum()) and np.array_equal(nearest == 2, smooth == 2)
    with pytest.raises(ValueError, match="choose one of nearest, smooth"):
        resample_labels(labels, (80, 80), "cubic")
    settings = tmp_path / "train.json"
    settings.write_text('{"label_resampling": "cubic"}')
    with pytest.raises(InputError, match="train.json.*label_resampling 'cubic'"):
        TrainingConfig.from_file(settings)
