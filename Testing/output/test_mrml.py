"""Slicer volumes in library terms (ParaspinalSegLib.output.mrml): geometry equal to SimpleITK's reading of
the same grid, round trips on oblique and flipped grids, exact areas, the patient's sides, the table."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from ParaspinalSegLib.output import mrml
from ParaspinalSegLib.errors import InputError, NoSuitableSeriesError
from ParaspinalSegLib.output.export import SLICE_COLUMNS
from ParaspinalSegLib.measure.grading import sgc_grade
from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.pipeline import measure_labels, measure_series
from ParaspinalSegLib.read.segmentation import split_binary_at_midline
from ParaspinalSegLib.read.volumes import series_from_image

LPS = np.diag([-1.0, -1.0, 1.0])
SPACING = (0.7, 0.9, 4.0)  # i, j, k


def rotation_x(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])


def ijk_to_ras(axes: np.ndarray, spacing=SPACING, origin=(12.0, -20.0, 31.0)) -> np.ndarray:
    """A 4x4 matrix whose columns are the RAS directions of i, j, k (times spacing) and the origin."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(axes, dtype=float) @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


MATRICES = {
    # Slicer's matrix for an ordinary axial DICOM series: i to the patient's left, j posterior.
    "axial": ijk_to_ras(np.diag([-1.0, -1.0, 1.0])),
    "tilted 15 degrees": ijk_to_ras(rotation_x(15) @ np.diag([-1.0, -1.0, 1.0])),
    "i to the right, k inferior": ijk_to_ras(np.diag([1.0, -1.0, -1.0])),
    "rows and columns swapped, tilted": ijk_to_ras(rotation_x(-20) @ np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1.0]])),
}
SHAPE = (5, 24, 32)  # K, J, I


def sitk_image(array: np.ndarray, matrix: np.ndarray) -> sitk.Image:
    """The same grid as SimpleITK (LPS) would describe it: direction columns, spacing, origin."""
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((LPS @ matrix[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(LPS @ matrix[:3, 3]))
    return image


@pytest.mark.parametrize("name", MATRICES)
def test_slices_have_the_geometry_simpleitk_gives_the_same_grid(name):
    matrix = MATRICES[name]
    array = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    ours = mrml.series_from_volume(array, matrix, name)
    theirs = series_from_image(sitk_image(array, matrix), source=name)
    assert [s.source_index for s in ours.slices] == [s.source_index for s in theirs.slices]
    for a, b in zip(ours.slices, theirs.slices):
        np.testing.assert_array_equal(a.pixels, b.pixels)
        assert a.geometry.shape == b.geometry.shape == SHAPE[1:]
        for field in ("origin", "row_direction", "column_direction", "spacing"):
            np.testing.assert_allclose(getattr(a.geometry, field), getattr(b.geometry, field), atol=1e-9)
        assert a.geometry.thickness == pytest.approx(SPACING[2])


@pytest.mark.parametrize("name", MATRICES)
def test_every_pixel_lies_where_slicer_puts_its_voxel(name):
    matrix = MATRICES[name]
    series = mrml.series_from_volume(np.zeros(SHAPE), matrix, name)
    by_k = {s.source_index: s.geometry for s in series.slices}
    for i, j, k in [(0, 0, 0), (31, 0, 4), (7, 23, 2), (31, 23, 1)]:
        ras = (matrix @ [i, j, k, 1.0])[:3]
        np.testing.assert_allclose(by_k[k].index_to_lps(j, i), LPS @ ras, atol=1e-9)
    positions = series.positions_mm()
    assert positions == sorted(positions)  # inferior to superior, whichever way k runs


@pytest.mark.parametrize("name", MATRICES)
def test_labels_and_volumes_go_back_to_the_same_voxels(name):
    matrix = MATRICES[name]
    labels = np.random.default_rng(2).integers(0, 5, SHAPE).astype(np.uint8)
    image = np.random.default_rng(3).random(SHAPE).astype(np.float32)
    series = mrml.series_from_volume(image, matrix, name)
    planes = mrml.label_planes(series, labels)
    np.testing.assert_array_equal(mrml.label_volume(series, planes, SHAPE), labels)
    volume = mrml.volume_from_series(series)
    np.testing.assert_array_equal(volume.array, image)
    np.testing.assert_allclose(volume.ijk_to_ras, matrix, atol=1e-9)
    np.testing.assert_array_equal(mrml.volume_from_series(series, planes).array, labels)


def test_a_rectangle_measures_its_exact_area_through_the_conversion():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2, 4:11, 3:12] = RIGHT_MUSCLE  # 7 x 9 pixels
    labels[2, 4:7, 20:25] = RIGHT_FAT  # 3 x 5 pixels
    series = mrml.series_from_volume(np.zeros(SHAPE), MATRICES["tilted 15 degrees"], "tilted")
    measured = {m.source_index: m for m in measure_labels(series, mrml.label_planes(series, labels))}
    pixel_area = SPACING[0] * SPACING[1]
    assert measured[2].right.total_csa_mm2 == pytest.approx(78 * pixel_area, rel=1e-12)
    assert measured[2].right.fat_csa_mm2 == pytest.approx(15 * pixel_area, rel=1e-12)
    assert measured[2].right.fat_fraction_pct == pytest.approx(100 * 15 / 78, rel=1e-12)
    assert measured[1].right.total_csa_mm2 == 0 and measured[2].left.total_csa_mm2 == 0


@pytest.mark.parametrize("name", ["axial", "i to the right, k inferior", "rows and columns swapped, tilted"])
def test_the_patients_right_stays_right_whichever_way_the_axes_run(name):
    matrix = MATRICES[name]
    mask = np.zeros(SHAPE, dtype=bool)
    centre = np.array([15.5, 11.5, 2.0])
    ras_centre = (matrix @ [*centre, 1.0])[:3]
    voxels = {}
    for side, dx in (("right", 8.0), ("left", -8.0)):  # RAS +x is the patient's right
        i, j, k = np.rint(np.linalg.solve(matrix[:3, :3], ras_centre + [dx, 0, 0] - matrix[:3, 3])).astype(int)
        mask[k, j - 1:j + 2, i - 1:i + 2] = True
        voxels[side] = (k, j, i)
    series = mrml.series_from_volume(np.zeros(SHAPE), matrix, name)
    image_slice = next(s for s in series.slices if s.source_index == 2)
    right, left = split_binary_at_midline(mask[2], image_slice.geometry)
    assert right[voxels["right"][1:]] and left[voxels["left"][1:]]
    display = image_slice.display.to_display(np.where(right, 1, np.where(left, 2, 0)))
    columns = {side: np.nonzero(display == value)[1].mean() for side, value in (("right", 1), ("left", 2))}
    assert columns["right"] < columns["left"]  # the patient's right on the image's left


def test_a_volume_that_is_not_axial_gets_a_clear_message():
    assert mrml.axial_problem(ijk_to_ras(rotation_x(20)), "tilted T2") is None
    sagittal = ijk_to_ras(np.array([[0, 0, 1.0], [1, 0, 0], [0, -1, 0]]))  # k along the left-right axis
    message = mrml.axial_problem(sagittal, "sag T2")
    assert message.startswith("'sag T2' is not an axial series: its slices' normal lies 90 degrees")
    assert "Choose the axial T2 series" in message
    with pytest.raises(NoSuitableSeriesError, match="'sag T2' is not an axial series"):
        mrml.require_axial(sagittal, "sag T2")


def test_unusable_volumes_and_label_arrays_are_refused():
    with pytest.raises(InputError, match="scalar 3D volume is needed, this one has 2 dimensions"):
        mrml.series_from_volume(np.zeros((4, 4)), MATRICES["axial"], "flat")
    sheared = MATRICES["axial"].copy()
    sheared[0, 1] = 0.3
    with pytest.raises(InputError, match="not perpendicular"):
        mrml.series_from_volume(np.zeros(SHAPE), sheared, "sheared")
    series = mrml.series_from_volume(np.zeros(SHAPE), MATRICES["axial"], "axial")
    with pytest.raises(InputError, match=r"does not lie on the volume's grid \(5 slices of 24 x 32\)"):
        mrml.label_planes(series, np.zeros((5, 32, 24), dtype=np.uint8))


def test_segment_masks_and_back_with_fat_winning_an_overlap():
    labels = np.random.default_rng(4).integers(0, 5, SHAPE).astype(np.uint8)
    masks = mrml.segment_masks(labels)
    assert sorted(masks) == [RIGHT_MUSCLE, RIGHT_FAT, LEFT_MUSCLE, LEFT_FAT]
    np.testing.assert_array_equal(mrml.labels_from_segment_masks(masks), labels)
    for label, mask in masks.items():
        mask[0, 0, 0] = label in (RIGHT_MUSCLE, RIGHT_FAT)
    assert mrml.labels_from_segment_masks(masks)[0, 0, 0] == RIGHT_FAT


def test_table_columns_are_typed_with_units_and_the_attributes_carry_the_grade():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[1, 2:8, 2:8] = RIGHT_MUSCLE
    labels[1, 2:4, 2:8] = RIGHT_FAT  # 12 of 36 pixels
    labels[1, 2:8, 20:26] = LEFT_MUSCLE
    series = mrml.series_from_volume(np.zeros(SHAPE), MATRICES["axial"], "axial")
    result = measure_series(series, mrml.label_planes(series, labels), needs_fat=False, model="m-1.0")
    columns = {c.name: c for c in mrml.measurement_columns(result.slices)}
    assert list(columns) == SLICE_COLUMNS
    assert {name: columns[name].unit for name in ("slice_index", "position_mm", "right_total_csa_mm2", "both_fat_fraction_pct")} == {
        "slice_index": "", "position_mm": "mm", "right_total_csa_mm2": "mm2", "both_fat_fraction_pct": "%"}
    assert columns["source_index"].values.dtype == np.int32 and columns["left_fat_csa_mm2"].values.dtype == np.float64
    row = list(columns["source_index"].values).index(1)
    assert columns["right_total_csa_mm2"].values[row] == pytest.approx(36 * 0.63)
    assert columns["right_fat_fraction_pct"].values[row] == pytest.approx(100 / 3)
    assert math.isnan(columns["right_fat_fraction_pct"].values[row - 1])
    assert "the patient's left side" in columns["left_muscle_csa_mm2"].description

    attributes = mrml.result_attributes(result)
    mean = (100 / 3 + 0.0) / 2
    assert attributes[mrml.GRADE_ATTRIBUTE] == sgc_grade(mean) == "II"
    assert attributes["ParaspinalSeg.MeanFatFractionPct"] == f"{mean:.4f}"
    assert attributes["ParaspinalSeg.MeanFatFractionLeftPct"] == "0.0000"
    assert attributes[mrml.MODEL_ATTRIBUTE] == "m-1.0"
    assert attributes[mrml.METHOD_ATTRIBUTE] == "muscle and fat from segmentation"
    assert attributes["ParaspinalSeg.Software"].startswith("ParaspinalSeg ")
