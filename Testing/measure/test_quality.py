"""Quality warnings: each check fires on a case built to trigger it (label maps of known size on
grids of known spacing), none fires on the shipped sample segmented by the shipped model, and a
grade from a failed segmentation never leaves without a warning (CLI, patient.json, summary.csv,
QC picture)."""

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import SHIPPED_MODEL, run_cli
from ParaspinalSegLib.cli import sample_folder
from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.network.inference import compartment_confidence
from ParaspinalSegLib.network.preprocess import softmax
from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.measure.measurement import measure_slice
from ParaspinalSegLib.measure.quality import Check, Thresholds, assess_quality, grade_caution

SPACING = (0.8, 0.5)  # mm per row, per column: 0.4 mm² a pixel
COLUMNS = 200  # a side's rectangle is `area / 0.4 / 100` rows of 100 columns


def slice_of(index, right_mm2, left_mm2, spacing=SPACING):
    """A measured slice with right and left compartments of the given areas (rectangles, 20 % fat)."""
    pixel_area = spacing[0] * spacing[1]
    rows = 400
    labels = np.zeros((rows, COLUMNS), dtype=np.uint8)
    for area, muscle, fat, columns in ((right_mm2, RIGHT_MUSCLE, RIGHT_FAT, slice(0, 100)),
                                       (left_mm2, LEFT_MUSCLE, LEFT_FAT, slice(100, 200))):
        pixels = round(area / pixel_area)
        assert pixels % 100 == 0 and pixels // 100 <= rows, "choose areas that fill whole rows"
        block = labels[: pixels // 100, columns]
        block[:] = muscle
        block[: pixels // 500] = fat
    geometry = SliceGeometry((0.0, 0.0, 4.0 * index), (1, 0, 0), (0, 1, 0), spacing, labels.shape)
    return measure_slice(labels, geometry, slice_index=index)


def series_of(areas, spacing=SPACING):
    return [slice_of(i, right, left, spacing) for i, (right, left) in enumerate(areas)]


NORMAL = [(2000, 2000), (2400, 2200), (2800, 2600), (2400, 2400), (2000, 2200)]


def checks(report):
    return {(f.slice_index, f.check, f.side) for f in report.flags}


def test_a_normal_series_raises_nothing():
    report = assess_quality(series_of(NORMAL), confidence=[0.985] * 5)  # as sure as on the sample (0.98-0.99)
    assert report.flags == () and report.warnings == () and grade_caution(report.warnings) == ""


def test_a_slice_with_only_the_right_side_says_the_left_is_missing():
    areas = list(NORMAL)
    areas[2] = (2800, 0)
    report = assess_quality(series_of(areas))
    assert checks(report) == {(2, Check.SIDE_MISSING, "left")}
    assert report.warnings == ("left compartment missing on 1 of 5 slices (2) where the right is found",)
    assert report.flags[0].message == "left compartment missing (right 2800 mm²)"


def test_a_slice_without_any_compartment_is_not_a_missing_side():
    areas = list(NORMAL) + [(0, 0)]
    assert assess_quality(series_of(areas)).flags == ()


def test_a_compartment_of_50_mm2_and_one_of_6000_mm2_are_out_of_range():
    areas = list(NORMAL)
    areas[1] = (2400, 6000)
    areas[3] = (40, 2400)  # 100 pixels of 0.4 mm²: 40 mm²
    report = assess_quality(series_of(areas))
    out_of_range = {(f.slice_index, f.side) for f in report.flags if f.check is Check.AREA_RANGE}
    assert out_of_range == {(1, "left"), (3, "right")}
    assert "right compartment area outside 400-5000 mm² on 1 of 5 slices (3)" in report.warnings
    assert "left compartment area outside 400-5000 mm² on 1 of 5 slices (1)" in report.warnings
    assert (3, Check.ASYMMETRY, "both") in checks(report)  # 40 against 2400 is also a 60:1 asymmetry


def test_areas_come_from_each_slice_own_pixel_spacing():
    """The same 1500 pixels are 600 mm² at 0.8 x 0.5 mm and 135 mm² at 0.3 x 0.3 mm."""
    fine = slice_of(1, 135, 135, spacing=(0.3, 0.3))
    coarse = slice_of(0, 600, 600)
    assert fine.right.total_csa_mm2 == pytest.approx(135) and coarse.right.total_csa_mm2 == pytest.approx(600)
    report = assess_quality([coarse, fine])
    assert checks(report) == {(1, Check.AREA_RANGE, "right"), (1, Check.AREA_RANGE, "left")}


def test_a_slice_far_below_the_series_median_is_flagged_although_in_range():
    areas = [(2400, 2400)] * 6
    areas[4] = (800, 800)  # in 400-5000 mm², symmetric, but a third of the median
    report = assess_quality(series_of(areas))
    assert checks(report) == {(4, Check.AREA_MEDIAN, "right"), (4, Check.AREA_MEDIAN, "left")}
    assert report.flags[0].message.endswith("0.33 times the series' median of 2400 mm²")
    assert "right compartment area more than 2.5 times off the series' median on 1 of 6 slices (4)" in report.warnings


def test_the_median_needs_three_slices():
    assert assess_quality(series_of([(2400, 2400), (800, 800)])).flags == ()


def test_a_3_to_1_asymmetry_is_flagged_and_a_1_3_to_1_is_not():
    areas = list(NORMAL)
    areas[0] = (3000, 1000)
    areas[4] = (2600, 2000)
    report = assess_quality(series_of(areas))
    assert checks(report) == {(0, Check.ASYMMETRY, "both")}
    assert report.flags[0].message == "right 3000 mm², left 1000 mm² (ratio 3.00)"
    assert report.warnings == ("left/right area ratio above 1.5 on 1 of 5 slices (0)",)


def test_low_confidence_slices_are_flagged_and_a_slice_without_compartment_is_not():
    report = assess_quality(series_of(NORMAL), confidence=[0.98, 0.55, math.nan, 0.95, 0.89])
    # the study's mean (0.84, the slice without compartment left out) is low too: slice 3 (0.95) is flagged for it
    assert checks(report) == {(1, Check.LOW_CONFIDENCE, "both"), (4, Check.LOW_CONFIDENCE, "both"),
                              (3, Check.LOW_STUDY_CONFIDENCE, "both")}
    assert report.warnings == ("low model confidence (below 0.90) on 2 of 5 slices (1, 4)",
                               "low model confidence over the study (mean below 0.98); below it also on 1 of 5 "
                               "slices (3)")
    assert "0.55" in report.flags[0].message


def test_a_study_whose_mean_confidence_is_low_is_flagged_though_no_slice_is_below_the_slice_minimum():
    report = assess_quality(series_of(NORMAL), confidence=[0.97, 0.96, 0.97, 0.965, 0.99])  # mean 0.971
    assert checks(report) == {(n, Check.LOW_STUDY_CONFIDENCE, "both") for n in range(4)}
    assert report.warnings == ("low model confidence over the study (mean below 0.98); below it also on 4 of 5 "
                               "slices (0, 1, 2, 3)",)
    assert report.flags[0].message == "mean probability 0.97 in the compartments, in a study whose mean is 0.971"
    assert grade_caution(report.warnings).endswith("the segmentation may have failed")
    # one unsure slice in a sure study: the mean holds (0.986), nothing is flagged
    assert assess_quality(series_of(NORMAL), confidence=[0.99, 0.99, 0.97, 0.99, 0.99]).flags == ()
    assert assess_quality(series_of(NORMAL), confidence=[math.nan] * 5).flags == ()


def test_a_model_result_on_pixels_coarser_than_any_measured_is_flagged_and_a_hand_drawn_one_is_not():
    """4 mm pixels lie beyond the coarsest held-out domain (3.6 mm); 3.5 mm pixels do not. The areas are
    normal and the model sure, so nothing else fires."""
    coarse = series_of([(1600, 1600), (3200, 3200), (1600, 1600)], spacing=(4.0, 4.0))
    report = assess_quality(coarse, confidence=[0.99] * 3)
    assert checks(report) == {(n, Check.COARSE_PIXELS, "both") for n in range(3)}
    assert report.warnings == ("pixels coarser than 3.6 mm, beyond any series the model was measured on, on 3 of "
                               "3 slices (0, 1, 2)",)
    assert report.flags[0].message == "pixels of 4.0 mm, coarser than 3.6 mm" and report.flags[0].tag == "coarse pixels"
    assert grade_caution(report.warnings).endswith("the segmentation may have failed")
    assert assess_quality(coarse).flags == ()  # a segmentation the user drew: not the model's to doubt
    measured = series_of([(2450, 2450)] * 3, spacing=(3.5, 3.5))
    assert assess_quality(measured, confidence=[0.99] * 3).flags == ()


def test_thresholds_are_the_callers_to_change():
    report = assess_quality(series_of(NORMAL), confidence=[0.95] * 5, thresholds=Thresholds(min_confidence=0.96))
    assert len(report.flags) == 5


def test_compartment_confidence_merges_muscle_and_fat_and_ignores_the_background():
    sure = np.full((5, 4, 4), -10.0, dtype=np.float32)
    sure[0] = 10.0  # background, sure, on most of the window
    sure[0, :2, :2] = -10.0
    sure[RIGHT_MUSCLE, :2, :2] = sure[RIGHT_FAT, :2, :2] = 3.0  # muscle or fat, a toss-up; the right compartment, sure
    assert compartment_confidence(softmax(sure)) == pytest.approx(1.0, abs=1e-4)

    unsure = np.zeros((5, 4, 4), dtype=np.float32)
    unsure[LEFT_MUSCLE] = unsure[LEFT_FAT] = -1.0  # right compartment 2 / (3 + 2/e) likely, the top merged class
    assert compartment_confidence(softmax(unsure)) == pytest.approx(2 / (3 + 2 / math.e), abs=1e-6)

    background = np.where(np.arange(5)[:, None, None] == 0, 5.0, 0.0) * np.ones((5, 4, 4))
    assert math.isnan(compartment_confidence(softmax(background.astype(np.float32))))


# -- the sample, and a failed segmentation of it, end to end ------------------------------------


@pytest.fixture(scope="module")
def sample_series():
    from ParaspinalSegLib.read.reading import read_study

    return read_study(sample_folder() / "study").series


def test_the_shipped_model_on_the_sample_raises_no_warning(sample_series, tmp_path, capsys):
    from ParaspinalSegLib.cli import print_result
    from ParaspinalSegLib.output.export import write_result
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegLib.pipeline import segment_series

    model = load_model(SHIPPED_MODEL)
    result = segment_series(sample_series, model)
    assert result.summary.grade and result.warnings == () and result.flags == ()
    assert len(result.confidence) == len(sample_series) and min(result.confidence) > 0.95
    write_result(tmp_path / "out", result, sample_series)
    patient = json.loads((tmp_path / "out" / "patient.json").read_text())
    assert patient["warnings"] == [] and patient["quality"]["slice_flags"] == []
    assert patient["quality"]["slice_confidence"] == [round(c, 4) for c in result.confidence]
    print_result(result, tmp_path / "out")
    out = capsys.readouterr().out
    assert f"SGC grade: {result.summary.grade}\n" in out and "warning" not in out


def test_the_sample_truth_raises_no_warning(sample_series):
    from ParaspinalSegLib.pipeline import measure_series
    from ParaspinalSegLib.read.segmentation import load_segmentation

    truth = load_segmentation([sample_folder() / "truth.nrrd"], sample_series).labels
    result = measure_series(sample_series, truth, needs_fat=False)
    assert result.warnings == () and result.flags == ()


def test_a_failed_segmentation_is_graded_only_with_its_warnings(sample_series, tmp_path, capsys):
    """The sample's truth with the left compartment erased on half its slices: `paraspinal measure`
    still grades it, and the grade line, the warnings, patient.json and the QC picture say so."""
    from ParaspinalSegLib.output.qc import FRAME_PX, TILE_PX, WARNING_RED

    truth = sitk.ReadImage(str(sample_folder() / "truth.nrrd"))
    array = sitk.GetArrayFromImage(truth)
    array[:6][np.isin(array[:6], (LEFT_MUSCLE, LEFT_FAT))] = 0
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(truth)
    sitk.WriteImage(broken, str(tmp_path / "broken.nrrd"))

    code, out, err = run_cli(capsys, "measure", sample_folder() / "study", tmp_path / "broken.nrrd",
                             "--labels", "scheme", "-o", tmp_path / "out")
    assert code == 0, err
    grade_line = next(line for line in out.splitlines() if line.startswith("SGC grade:"))
    assert grade_line.endswith("(check the 1 warning(s): the segmentation may have failed)")
    missing = "left compartment missing on 6 of 12 slices"
    assert any(line.startswith(f"warning: {missing}") for line in out.splitlines())

    patient = json.loads((tmp_path / "out" / "patient.json").read_text())
    assert patient["grade"] in ("I", "II", "III")
    assert [w[: len(missing)] for w in patient["warnings"]] == [missing]
    flags = patient["quality"]["slice_flags"]
    assert len(flags) == 6 and {(f["check"], f["side"]) for f in flags} == {("side missing", "left")}
    assert patient["quality"]["thresholds"]["area_range_mm2"] == [400.0, 5000.0]

    from PIL import Image

    picture = np.asarray(Image.open(tmp_path / "out" / "qc.png").convert("RGB"))
    red = np.all(picture == WARNING_RED, axis=2)
    assert red[26:40].all(axis=1).any()  # the banner under the grade line, the picture's width
    framed = 0  # red frames: their left edges are red columns TILE_PX high at a tile's x
    for x in range(0, picture.shape[1], TILE_PX):
        edge = np.concatenate(([0], red[:, x : x + FRAME_PX].all(axis=1).astype(int), [0]))
        starts, ends = np.nonzero(np.diff(edge) == 1)[0], np.nonzero(np.diff(edge) == -1)[0]
        framed += sum((end - start) // TILE_PX for start, end in zip(starts, ends))
    assert framed == 6  # one red frame per flagged slice


def test_the_batch_summary_carries_the_warnings(sample_series):
    from ParaspinalSegLib.cohorts.batch import StudyOutcome, summary_csv
    from ParaspinalSegLib.pipeline import measure_series
    from ParaspinalSegLib.read.segmentation import load_segmentation
    import csv
    import io
    from pathlib import Path

    truth = load_segmentation([sample_folder() / "truth.nrrd"], sample_series).labels
    broken = [np.where(np.isin(plane, (RIGHT_MUSCLE, RIGHT_FAT)), 0, plane) if k == 3 else plane
              for k, plane in enumerate(truth)]
    good, bad = (measure_series(sample_series, labels, needs_fat=False) for labels in (truth, broken))
    text = summary_csv([StudyOutcome(Path("good"), Path("good"), good), StudyOutcome(Path("bad"), Path("bad"), bad)],
                       "model-1", "cnn")
    rows = {row["study"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["good"]["warnings"] == ""
    assert rows["bad"]["warnings"].startswith("right compartment missing on 1 of 12 slices (3)")
