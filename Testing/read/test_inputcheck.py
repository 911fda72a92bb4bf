"""Invalid input is refused (exit 2, one line naming the file) and doubtful input is warned about.

Refused: NIfTI voxel size 0 or NaN, a cut .nii.gz, NaN/inf voxels, label maps with fractional
values, an implausible DICOM PixelSpacing. Warned in patient.json and the CLI summary: files of a
study left out because they cannot be read (damaged zip member, truncated file), a series that is
not T2 TSE, and a volume that does not name its sequence.
"""

import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from helpers import run_cli, volume, write
from ParaspinalSegLib.labels import RIGHT_MUSCLE

SAMPLE = Path(__file__).resolve().parents[2] / "Resources" / "Sample"
T2_FOLDER = "t2_tse_tra"


@pytest.fixture
def image_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(300, 20, (3, 40, 50)).astype(np.float32)
    labels = np.zeros((3, 40, 50), dtype=np.float32)
    labels[:, 10:30, 5:15] = RIGHT_MUSCLE
    return image, labels


def _set_pixdim(path: Path, value: float) -> Path:
    """Write pixdim[1] (the x voxel size) of an uncompressed NIfTI-1 file."""
    raw = bytearray(path.read_bytes())
    raw[80:84] = struct.pack("<f", value)
    path.write_bytes(bytes(raw))
    return path


def _refused(capsys, *argv) -> str:
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 2, stdout + stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    return stderr


@pytest.mark.parametrize("pixdim", [0.0, float("nan"), -0.8])
def test_nifti_voxel_size_that_is_not_a_positive_number_is_refused(tmp_path, capsys, image_and_labels, pixdim):
    image, labels = image_and_labels
    path = _set_pixdim(write(volume(image), tmp_path / "image.nii").with_name("image.nii"), pixdim)
    seg = write(volume(labels.astype(np.uint8)), tmp_path / "labels.nrrd")
    stderr = _refused(capsys, "measure", path, seg, "-o", tmp_path / "out")
    assert str(path) in stderr and "pixdim" in stderr
    assert not (tmp_path / "out").exists()


def test_cut_nii_gz_is_refused_not_zero_filled(tmp_path, capsys, image_and_labels):
    image, labels = image_and_labels
    whole = write(volume(image), tmp_path / "whole.nii.gz").read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    seg = write(volume(labels.astype(np.uint8)), tmp_path / "labels.nrrd")
    stderr = _refused(capsys, "measure", cut, seg, "-o", tmp_path / "out")
    assert str(cut) in stderr and "cut short" in stderr


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_voxels_are_refused(tmp_path, capsys, image_and_labels, bad):
    image, labels = image_and_labels
    image[1, 20, 10] = bad
    path = write(volume(image), tmp_path / "image.nii.gz")
    seg = write(volume(labels.astype(np.uint8)), tmp_path / "labels.nrrd")
    stderr = _refused(capsys, "measure", path, seg, "-o", tmp_path / "out")
    assert str(path) in stderr and "1 voxels are NaN or infinite" in stderr


def test_non_finite_pixels_of_an_nrrd_volume_are_refused(tmp_path, capsys, image_and_labels):
    image, labels = image_and_labels
    image[2, 5, 5] = float("nan")
    path = write(volume(image), tmp_path / "image.nrrd")
    seg = write(volume(labels.astype(np.uint8)), tmp_path / "labels.nrrd")
    stderr = _refused(capsys, "measure", path, seg, "-o", tmp_path / "out")
    assert str(path) in stderr and "slice 3 has 1 pixels that are NaN or infinite" in stderr


def test_fractional_label_values_are_refused(tmp_path, capsys, image_and_labels):
    image, labels = image_and_labels
    labels[0, 12, 6] = 1.5
    labels[2, 12, 6] = 3.2
    path = write(volume(image), tmp_path / "image.nii.gz")
    seg = write(volume(labels), tmp_path / "labels.nii.gz")
    stderr = _refused(capsys, "measure", path, seg, "--labels", "compartment", "-o", tmp_path / "out")
    assert str(seg) in stderr and "1.5, 3.2" in stderr and "not whole numbers" in stderr


def test_whole_valued_float_labels_are_measured(tmp_path, capsys, image_and_labels):
    image, labels = image_and_labels
    path = write(volume(image), tmp_path / "image.nii.gz")
    seg = write(volume(labels), tmp_path / "labels.nii.gz")
    code, stdout, stderr = run_cli(capsys, "measure", path, seg, "--labels", "compartment", "-o", tmp_path / "out")
    assert code == 0, stderr
    assert "slices with compartment: 3 (right 3, left 0)" in stdout


def _sample_copy(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    shutil.copytree(SAMPLE / "study", study)
    return study


def _edit_t2_headers(study: Path, **values) -> None:
    for path in sorted((study / T2_FOLDER).iterdir()):
        dataset = pydicom.dcmread(path)
        for keyword, value in values.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)


def test_implausible_pixel_spacing_is_refused(tmp_path, capsys):
    study = _sample_copy(tmp_path)
    _edit_t2_headers(study, PixelSpacing=[1.31, 0.2])
    stderr = _refused(capsys, "measure", study, SAMPLE / "compartments.nrrd", "-o", tmp_path / "out")
    assert str(study) in stderr and "1.31 x 0.2 mm" in stderr and "differ more than 3 times" in stderr


def _measure_sample(capsys, study, out) -> tuple[str, dict]:
    code, stdout, stderr = run_cli(capsys, "measure", study, SAMPLE / "compartments.nrrd", "-o", out)
    assert code == 0, stderr
    return stdout, json.loads((out / "patient.json").read_text())


def test_t2_tse_sample_has_no_warning(tmp_path, capsys):
    stdout, patient = _measure_sample(capsys, SAMPLE / "study", tmp_path / "out")
    assert patient["warnings"] == [] and "warning:" not in stdout


def test_fat_suppressed_t1_gradient_echo_is_graded_with_a_warning(tmp_path, capsys):
    study = _sample_copy(tmp_path)
    _edit_t2_headers(study, ScanningSequence="GR", ScanOptions="FS", EchoTime=2.4, RepetitionTime=6.0,
                     EchoTrainLength=1, SeriesDescription="ax_vibe_fs")
    stdout, patient = _measure_sample(capsys, study, tmp_path / "out")
    assert len(patient["warnings"]) == 1
    warning = patient["warnings"][0]
    assert warning.startswith("the series reads as GRE with fat suppression (TE 2.4 ms, TR 6 ms, ETL 1)")
    assert "defined on axial T2 TSE" in warning and f"warning: {warning}" in stdout


def test_damaged_zip_member_is_named_in_the_warnings(tmp_path, capsys):
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted((SAMPLE / "study").rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(SAMPLE / "study").as_posix())
    with zipfile.ZipFile(archive) as read:
        victim = read.getinfo(sorted(n for n in read.namelist() if n.startswith(T2_FOLDER))[5])
    raw = bytearray(archive.read_bytes())
    data_start = victim.header_offset + 30 + len(victim.filename.encode()) + len(victim.extra)
    raw[data_start + 40: data_start + 240] = bytes(200)  # damage the compressed stream
    archive.write_bytes(bytes(raw))
    stdout, patient = _measure_sample(capsys, archive, tmp_path / "out")
    assert patient["input"]["slices"] == 11  # of the sample's 12
    left_out = [w for w in patient["warnings"] if w.startswith("a file of the study was left out")]
    assert len(left_out) == 1 and victim.filename in left_out[0]
    assert f"warning: {left_out[0]}" in stdout


def test_truncated_dicom_file_in_a_folder_is_named_in_the_warnings(tmp_path, capsys):
    study = _sample_copy(tmp_path)
    victim = sorted((study / T2_FOLDER).iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:300])
    stdout, patient = _measure_sample(capsys, study, tmp_path / "out")
    left_out = [w for w in patient["warnings"] if w.startswith("a file of the study was left out")]
    assert len(left_out) == 1 and victim.name in left_out[0] and f"warning: {left_out[0]}" in stdout


def test_a_compartment_of_a_few_mm2_is_never_graded_without_a_warning(tmp_path, capsys, image_and_labels):
    image, _ = image_and_labels
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[:, 20:22, 10:12] = 2  # 4 pixels of 0.48 mm², all fat: 1.9 mm² per slice
    path = write(volume(image), tmp_path / "image.nii.gz")
    seg = write(volume(labels), tmp_path / "labels.nrrd")
    code, stdout, stderr = run_cli(capsys, "measure", path, seg, "-o", tmp_path / "out")
    assert code == 0, stderr
    patient = json.loads((tmp_path / "out" / "patient.json").read_text())
    assert patient["grade"] == "III"
    tiny = [w for w in patient["warnings"] if w.startswith("right compartment area outside")]  # quality.py
    assert tiny and f"warning: {tiny[0]}" in stdout
