"""`paraspinal measure` end to end on volumes: exact areas, fat by image analysis, outputs, bad input."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import run_cli, volume, write
from ParaspinalSegLib.read.inputcheck import VOLUME_SEQUENCE_WARNING
from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE, LabelKind
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.read.segmentation import load_segmentation
from phantom import phantom_slice

SPACING = (0.8, 0.6, 4.0)  # column (x), row (y), slice: 0.48 mm² pixels


def read_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def scheme_case(tmp_path):
    """4 slices; right compartment 20x10 pixels with 4 fat rows... on slices 0-2; left on 1-3."""
    rng = np.random.default_rng(0)
    image = rng.normal(300, 20, (4, 40, 50)).astype(np.float32)
    labels = np.zeros((4, 40, 50), dtype=np.uint8)
    labels[0:3, 10:30, 5:15] = RIGHT_MUSCLE  # 200 pixels
    labels[0:3, 10:14, 5:15] = RIGHT_FAT  # 40 of them fat: 20 %
    labels[1:4, 10:30, 30:45] = LEFT_MUSCLE  # 300 pixels
    labels[1:4, 10:16, 30:45] = LEFT_FAT  # 90 fat: 30 %
    image_path = write(volume(image, SPACING), tmp_path / "image.nii.gz")
    seg_path = write(volume(labels, SPACING), tmp_path / "labels.nrrd")
    return image_path, seg_path, labels


def test_scheme_label_map_gives_exact_areas_and_all_outputs(tmp_path, capsys, scheme_case):
    image_path, seg_path, labels = scheme_case
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "measure", image_path, seg_path, "-o", out)
    assert code == 0, stderr
    rows = read_rows(out / "slices.csv")
    assert len(rows) == 4
    first, last = rows[0], rows[3]
    assert float(first["pixel_area_mm2"]) == pytest.approx(0.48)
    assert float(first["right_total_csa_mm2"]) == pytest.approx(200 * 0.48)
    assert float(first["right_fat_csa_mm2"]) == pytest.approx(40 * 0.48)
    assert float(first["right_fat_fraction_pct"]) == pytest.approx(20.0)
    assert first["left_fat_fraction_pct"] == "" and float(first["left_total_csa_mm2"]) == 0
    assert float(last["left_muscle_csa_mm2"]) == pytest.approx(210 * 0.48)
    assert float(rows[1]["both_fat_fraction_pct"]) == pytest.approx(100 * 130 / 500)
    patient = json.loads((out / "patient.json").read_text())
    assert patient["mean_fat_fraction_pct"]["right"] == pytest.approx(20.0)
    assert patient["mean_fat_fraction_pct"]["left"] == pytest.approx(30.0)
    assert patient["mean_fat_fraction_pct"]["overall"] == pytest.approx((20 + 26 + 26 + 30) / 4)
    assert patient["grade"] == "II" and "SGC grade: II" in stdout
    assert patient["provenance"]["method"] == "muscle and fat from segmentation"
    assert patient["provenance"]["software"].startswith("ParaspinalSeg ")
    assert (out / "qc.png").stat().st_size > 1000
    # The written segmentation reads back onto the image as the same labels.
    study = read_study(image_path)
    again = load_segmentation([out / "segmentation.seg.nrrd"], study.series)
    stacked = np.stack([again.labels[i] for i in np.argsort([s.source_index for s in study.series.slices])])
    np.testing.assert_array_equal(stacked, labels)


def test_compartment_map_gets_fat_from_the_image(tmp_path, capsys):
    """Phantom slices (blurred, noisy) with 10-45 % fat: the mixture finds each fraction within 3 points."""
    rng = np.random.default_rng(7)
    fractions = [0.1, 0.2, 0.35, 0.45]
    slices = [phantom_slice((192, 192), 1.5, 1.0, f, rng) for f in fractions]
    image = np.stack([s.image for s in slices])
    compartments = np.stack([np.where(np.isin(s.labels, (1, 2)), 1, np.where(s.labels > 0, 3, 0)) for s in slices])
    image_path = write(volume(image, (1.5, 1.5, 5.0), tilt_deg=0), tmp_path / "image.nrrd")
    seg_path = write(volume(compartments.astype(np.uint8), (1.5, 1.5, 5.0), tilt_deg=0), tmp_path / "comp.nii.gz")
    code, _, stderr = run_cli(capsys, "measure", image_path, seg_path, "-o", tmp_path / "out")
    assert code == 0, stderr
    rows = read_rows(tmp_path / "out" / "slices.csv")
    for row, truth in zip(rows, slices):
        assert float(row["both_fat_fraction_pct"]) == pytest.approx(truth.fat_fraction_pct, abs=3.0)
    patient = json.loads((tmp_path / "out" / "patient.json").read_text())
    assert patient["provenance"]["label_kind"] == "compartment"
    assert patient["provenance"]["fat_settings"]["method"] == "gmm"


def test_binary_map_is_split_into_the_patients_sides(tmp_path, capsys):
    image = np.full((2, 30, 40), 100.0, dtype=np.float32)
    mask = np.zeros((2, 30, 40), dtype=np.uint8)
    mask[:, 5:25, 2:12] = 1  # low column = low LPS x = patient's right (identity direction)
    mask[:, 5:25, 25:39] = 1
    image_path = write(volume(image, tilt_deg=0), tmp_path / "image.nii.gz")
    seg_path = write(volume(mask, tilt_deg=0), tmp_path / "binary.nii.gz")
    code, _, stderr = run_cli(capsys, "measure", image_path, seg_path, "-o", tmp_path / "out", "--labels", "binary")
    assert code == 0, stderr
    row = read_rows(tmp_path / "out" / "slices.csv")[0]
    assert float(row["right_total_csa_mm2"]) == pytest.approx(200 * 0.48)
    assert float(row["left_total_csa_mm2"]) == pytest.approx(280 * 0.48)


def test_swapped_sides_are_warned_about(tmp_path, capsys, scheme_case):
    image_path, _, labels = scheme_case
    swapped = np.select([labels == RIGHT_MUSCLE, labels == RIGHT_FAT, labels == LEFT_MUSCLE, labels == LEFT_FAT],
                        [LEFT_MUSCLE, LEFT_FAT, RIGHT_MUSCLE, RIGHT_FAT], 0).astype(np.uint8)
    seg_path = write(volume(swapped, SPACING), tmp_path / "swapped.nrrd")
    code, stdout, _ = run_cli(capsys, "measure", image_path, seg_path, "-o", tmp_path / "out")
    assert code == 0 and "patient's left" in stdout


def test_segmentation_off_the_image_grid_is_refused(tmp_path, capsys, scheme_case):
    image_path, _, labels = scheme_case
    seg_path = write(volume(labels, (0.8, 0.7, 4.0)), tmp_path / "other_grid.nrrd")
    code, stdout, stderr = run_cli(capsys, "measure", image_path, seg_path, "-o", tmp_path / "out")
    assert code == 2
    assert "other_grid.nrrd" in stderr and "pixel grid" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_is_not_overwritten_silently(tmp_path, capsys, scheme_case):
    image_path, seg_path, _ = scheme_case
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    code, _, stderr = run_cli(capsys, "measure", image_path, seg_path, "-o", out)
    assert code == 2 and "--overwrite" in stderr
    assert (out / "mine.txt").read_text() == "a user's file"
    code, _, _ = run_cli(capsys, "measure", image_path, seg_path, "-o", out, "--overwrite")
    assert code == 0 and (out / "slices.csv").exists() and not (out / "mine.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("make_bad", ["missing", "text", "values"])
def test_bad_segmentation_files_give_one_clear_line(tmp_path, capsys, scheme_case, make_bad):
    image_path, _, labels = scheme_case
    bad = tmp_path / "bad.nii.gz"
    if make_bad == "text":
        bad.write_text("not an image")
    elif make_bad == "values":
        write(volume((labels * 7).astype(np.uint8), SPACING), bad)
    code, _, stderr = run_cli(capsys, "measure", image_path, bad, "-o", tmp_path / "out")
    assert code == 2 and "bad.nii.gz" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_non_axial_volume_is_refused(tmp_path, capsys):
    image = volume(np.zeros((3, 10, 10), dtype=np.float32), tilt_deg=90)
    image_path = write(image, tmp_path / "sagittal.nii.gz")
    code, _, stderr = run_cli(capsys, "measure", image_path, image_path, "-o", tmp_path / "out")
    assert code == 2 and "not axial" in stderr and "sagittal.nii.gz" in stderr


def test_real_case_csa_equals_independent_pixel_count(tmp_path, capsys, shared_dir):
    """MuscleMap sub0001: merged multifidus + erector spinae per side, CSA = count x pixel area."""
    case = shared_dir / "data" / "real" / "musclemap_sub0001"
    code, _, stderr = run_cli(capsys, "measure", case / "image.nii.gz", case / "seg_8labels.nii.gz", "-o", tmp_path / "out")
    assert code == 0, stderr
    seg = sitk.ReadImage(str(case / "seg_8labels.nii.gz"))
    array = sitk.GetArrayFromImage(seg)
    pixel_area = seg.GetSpacing()[0] * seg.GetSpacing()[1]
    rows = {int(r["source_index"]): r for r in read_rows(tmp_path / "out" / "slices.csv")}
    assert len(rows) == array.shape[0]
    for k in range(array.shape[0]):
        right = np.isin(array[k], (1, 3)).sum() * pixel_area
        left = np.isin(array[k], (2, 4)).sum() * pixel_area
        assert float(rows[k]["right_total_csa_mm2"]) == pytest.approx(right, abs=1e-3)
        assert float(rows[k]["left_total_csa_mm2"]) == pytest.approx(left, abs=1e-3)
    patient = json.loads((tmp_path / "out" / "patient.json").read_text())
    assert patient["provenance"]["label_kind"] == "musclemap"
    assert VOLUME_SEQUENCE_WARNING in patient["warnings"]  # a NIfTI does not name its sequence


def test_progress_is_reported_and_cancel_stops_the_work(scheme_case):
    from ParaspinalSegLib.errors import OperationCancelled
    from ParaspinalSegLib.pipeline import measure_series

    image_path, seg_path, _ = scheme_case
    study = read_study(image_path)
    compartments = load_segmentation([seg_path], study.series, kind=LabelKind.COMPARTMENT)
    seen = []

    def cancel_after_two(fraction, message):
        seen.append(fraction)
        if len(seen) == 2:
            raise OperationCancelled("user pressed Cancel")

    with pytest.raises(OperationCancelled):
        measure_series(study.series, compartments.labels, needs_fat=True, progress=cancel_after_two)
    assert seen == [0.25, 0.5]
