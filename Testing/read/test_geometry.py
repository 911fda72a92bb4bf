"""Slice geometry: display orientation from direction cosines, exact round trips, axial checks."""

import itertools

import numpy as np
import pytest

from ParaspinalSegLib.geometry import DisplayTransform, SliceGeometry, orientation_label


def rotation_about_x(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def canonical_picture() -> np.ndarray:
    """An asymmetric 6x9 picture in display orientation: value = 100*row + column."""
    rows, columns = np.mgrid[0:6, 0:9]
    return (100 * rows + columns).astype(np.int32)


@pytest.mark.parametrize("transpose,flip_rows,flip_columns", list(itertools.product([False, True], repeat=3)))
@pytest.mark.parametrize("tilt", [0.0, 25.0, -30.0])
def test_every_stored_orientation_comes_back_to_display(transpose, flip_rows, flip_columns, tilt):
    """Store the canonical picture in any of the 8 axis orders a scanner may use; the geometry alone
    must bring it back to display orientation (patient's right on the left, anterior up)."""
    picture = canonical_picture()
    stored = picture
    right_dir, down_dir = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])  # display: +x columns, +y rows
    if flip_columns:
        stored, right_dir = stored[:, ::-1], -right_dir
    if flip_rows:
        stored, down_dir = stored[::-1, :], -down_dir
    if transpose:
        stored, right_dir, down_dir = stored.T, down_dir, right_dir
    tilt_matrix = rotation_about_x(tilt)
    geometry = SliceGeometry(
        origin=(0.0, 0.0, 0.0),
        row_direction=tuple(tilt_matrix @ right_dir),
        column_direction=tuple(tilt_matrix @ down_dir),
        spacing=(1.0, 1.0),
        shape=stored.shape,
    )
    transform = DisplayTransform.for_geometry(geometry)
    np.testing.assert_array_equal(transform.to_display(stored), picture)
    np.testing.assert_array_equal(transform.from_display(transform.to_display(stored)), stored)


def test_display_spacing_follows_transpose():
    geometry = SliceGeometry((0, 0, 0), (0, 1, 0), (1, 0, 0), spacing=(0.5, 2.0), shape=(4, 8))
    transform = DisplayTransform.for_geometry(geometry)
    assert transform.transpose
    assert transform.display_spacing(geometry) == (2.0, 0.5)


def test_axial_tolerance_and_orientation_names():
    axial = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), (4, 4))
    tilted = SliceGeometry((0, 0, 0), (1, 0, 0), tuple(rotation_about_x(35) @ [0, 1, 0]), (1, 1), (4, 4))
    sagittal = SliceGeometry((0, 0, 0), (0, 1, 0), (0, 0, -1), (1, 1), (4, 4))
    coronal = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 0, -1), (1, 1), (4, 4))
    assert axial.is_axial() and axial.angle_to_body_axis_deg() == pytest.approx(0)
    assert tilted.is_axial() and tilted.angle_to_body_axis_deg() == pytest.approx(35)
    assert not tilted.is_axial(tolerance_deg=30)
    assert not sagittal.is_axial() and orientation_label(sagittal.normal) == "sagittal"
    assert not coronal.is_axial() and orientation_label(coronal.normal) == "coronal"


def test_pixel_positions_follow_dicom_convention():
    """IPP is pixel [0,0]; IOP[0:3] runs along a row (column index), PixelSpacing is (row, column)."""
    g = SliceGeometry((10.0, 20.0, 30.0), (1, 0, 0), (0, 1, 0), spacing=(0.5, 2.0), shape=(3, 4))
    np.testing.assert_allclose(g.index_to_lps(2, 3), [10 + 3 * 2.0, 20 + 2 * 0.5, 30])
    np.testing.assert_allclose(g.centre, [10 + 1.5 * 2.0, 20 + 1 * 0.5, 30])
    assert g.pixel_area_mm2 == 1.0
