"""Reading DICOM studies: discovery, series summaries, per-slice geometry, pixels, real files, bad input."""

import hashlib
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from helpers import run_cli
from ParaspinalSegLib.read.dicom import list_series, load_series, short_hash
from ParaspinalSegLib.read.dicom_files import DicomSource, find_dicom_files
from ParaspinalSegLib.read.dicom_frames import read_frames
from ParaspinalSegLib.errors import InputError, NoSuitableSeriesError, OperationCancelled
from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.read.series_selection import choose_series
from ParaspinalSegLib.slices import ImageSlice, SeriesInfo, SliceSeries
from ParaspinalSegTrainingLib.dicom_writer import SyntheticPatient, series_from_arrays, write_dicom_series

SHAPE = (32, 40)
SPACING = (0.75, 0.8)
RESCALE = (0.5, -100.0)
PATIENT = SyntheticPatient("PATIENT-A-0042", "Doe^Jane")
T2 = SeriesInfo(uid="", number=7, description="t2_tse_tra", sequence="SE",
                echo_time_ms=98.0, repetition_time_ms=4000.0, echo_train_length=17)
T1 = SeriesInfo(uid="", number=3, description="t1_tse_tra", sequence="SE",
                echo_time_ms=12.0, repetition_time_ms=600.0, echo_train_length=3)
SAGITTAL = SeriesInfo(uid="", number=2, description="t2_tse_sag", sequence="SE",
                      echo_time_ms=100.0, repetition_time_ms=3500.0, echo_train_length=15)


def tilted_geometry(centre_z: float, tilt_deg: float, step: int) -> SliceGeometry:
    """Axial slice rotated by tilt_deg about the left-right axis, `step` 4.5 mm along its normal."""
    t = math.radians(tilt_deg)
    column = (0.0, math.cos(t), math.sin(t))
    normal = np.array([0.0, -math.sin(t), math.cos(t)])
    origin = np.array([-12.0, -9.0, centre_z]) + 4.5 * step * normal
    return SliceGeometry(tuple(float(v) for v in origin), (1.0, 0.0, 0.0), column, SPACING, SHAPE, 4.0)


def t2_blocks() -> tuple[SliceSeries, list[SliceGeometry], list[np.ndarray]]:
    """Two blocks of 5 slices angled +15 and -15 degrees; slices given in shuffled source order.

    Returns the series and the geometries and pixels expected after loading (inferior first).
    """
    rng = np.random.default_rng(11)
    geometries = [tilted_geometry(-40.0, 15.0, k) for k in range(5)]
    geometries += [tilted_geometry(20.0, -15.0, k) for k in range(5)]
    pixels = [(rng.integers(0, 4000, SHAPE) * RESCALE[0] + RESCALE[1]).astype(np.float32) for _ in geometries]
    shuffled = rng.permutation(len(geometries))
    slices = [ImageSlice(pixels[i], geometries[i], source_index=int(k)) for k, i in enumerate(shuffled)]
    order = np.argsort([g.centre[2] for g in geometries])
    return SliceSeries(slices, T2), [geometries[i] for i in order], [pixels[i] for i in order]


def simple_series(info: SeriesInfo, geometries: list[SliceGeometry], value: float) -> SliceSeries:
    return series_from_arrays([np.full(g.shape, value + k, dtype=np.float32) for k, g in enumerate(geometries)],
                              geometries, info)


def sagittal_geometries(count: int) -> list[SliceGeometry]:
    return [SliceGeometry((-10.0 + 5 * k, -60.0, 80.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.5, 1.5), (40, 30), 5.0)
            for k in range(count)]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study folder (T2 angled blocks with random names, T1 axial, sagittal T2, junk, a duplicate)
    and copies of the T2 series: Enhanced MR, RLE, JPEG 2000 multi-frame, and a zip of the study."""
    base = tmp_path_factory.mktemp("dicom")
    root = base / "study"
    series, geometries, pixels = t2_blocks()
    t2_files = write_dicom_series(series, root / "PAT_A" / "ST1" / "se7", patient=PATIENT, rescale=RESCALE,
                                  file_names="random", seed=5)
    write_dicom_series(simple_series(T1, [tilted_geometry(-40.0, 0.0, k) for k in range(4)], 300.0),
                       root / "PAT_A" / "ST1" / "se3", patient=PATIENT, file_names="uid")
    write_dicom_series(simple_series(SAGITTAL, sagittal_geometries(3), 500.0), root / "PAT_A" / "sag", patient=PATIENT)
    (root / "notes.txt").write_text("reading notes, not DICOM\n")
    (root / "PAT_A" / "junk").write_bytes(np.random.default_rng(0).bytes(2000))
    (root / "backup").mkdir()
    shutil.copy(t2_files[0], root / "backup" / "copy_of_one_slice")
    copies = {
        "enhanced": write_dicom_series(series, base / "enhanced", patient=PATIENT, rescale=RESCALE, enhanced=True),
        "rle": write_dicom_series(series, base / "rle", patient=PATIENT, rescale=RESCALE, transfer_syntax=RLELossless),
        "j2k": write_dicom_series(series, base / "j2k", patient=PATIENT, rescale=RESCALE, enhanced=True,
                                  transfer_syntax=JPEG2000Lossless),
    }
    archive = base / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as stream:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stream.write(path, path.relative_to(root).as_posix())
    return {"root": root, "zip": archive, "base": base, "copies": copies, "t2_files": t2_files,
            "geometries": geometries, "pixels": pixels}


def by_description(summaries):
    return {s.info.description: s for s in summaries}


def assert_t2_slices(series: SliceSeries, study) -> None:
    """Ten slices inferior to superior with exactly the written geometry and pixel values."""
    assert len(series) == 10
    z = series.positions_mm()
    assert z == sorted(z)
    for item, geometry, pixels in zip(series.slices, study["geometries"], study["pixels"]):
        got = item.geometry
        assert got.origin == pytest.approx(geometry.origin, abs=1e-12)
        assert got.row_direction == geometry.row_direction
        assert got.column_direction == pytest.approx(geometry.column_direction, abs=1e-13)
        assert got.spacing == SPACING and got.thickness == 4.0 and got.shape == SHAPE
        assert item.pixels.dtype == np.float32
        np.testing.assert_array_equal(item.pixels, pixels)


def test_finds_dicom_files_by_content_not_name(study):
    files = find_dicom_files(study["root"])
    names = {f.name for f in files}
    assert len(files) == 10 + 4 + 3 + 1  # the junk and notes are skipped, the duplicate copy is found
    assert "notes.txt" not in names and "junk" not in names
    assert all("." not in f.name for f in find_dicom_files(study["root"] / "PAT_A" / "ST1" / "se7"))
    assert not [p for p in study["base"].rglob(".*")], "the writer left temporary files behind"
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in study["t2_files"]} == {0o666 & ~umask}, "not the usual permissions"


def test_lists_each_series_from_headers_with_hashed_identifiers(study):
    summaries = by_description(list_series(study["root"]))
    assert set(summaries) == {"t2_tse_tra", "t1_tse_tra", "t2_tse_sag"}
    t2, t1, sag = summaries["t2_tse_tra"], summaries["t1_tse_tra"], summaries["t2_tse_sag"]
    assert (t2.orientation, t2.slice_count, t2.orientation_count) == ("axial", 10, 2)
    assert t2.max_angle_deg == pytest.approx(15.0, abs=1e-9)
    assert t2.pixel_spacings == (SPACING,)
    assert len(t2.files) == 10, "the duplicate copy of one slice is left out"
    assert (t1.orientation, t1.slice_count, t1.orientation_count, t1.max_angle_deg) == ("axial", 4, 1, 0.0)
    assert (sag.orientation, sag.max_angle_deg, sag.slice_count) == ("sagittal", 90.0, 3)
    assert (t2.info.echo_time_ms, t2.info.repetition_time_ms, t2.info.echo_train_length) == (98.0, 4000.0, 17)
    assert (t2.info.number, t2.info.sequence, t2.info.modality) == (7, "SE", "MR")
    assert t2.info.patient == short_hash(PATIENT.id) and len(t2.info.patient) == 8
    assert t2.info.patient != hashlib.sha256(PATIENT.id.encode()).hexdigest()[:8], "keyed, not a plain digest"
    assert t1.info.study == t2.info.study and len(t2.info.study) == 8
    assert PATIENT.id not in repr(t2) and "Doe" not in repr(t2)


def test_loads_angled_blocks_slice_by_slice_in_body_order(study):
    t2 = by_description(list_series(study["root"]))["t2_tse_tra"]
    series = load_series(t2)
    assert_t2_slices(series, study)
    normals = {tuple(np.round(s.geometry.normal, 6)) for s in series.slices}
    assert len(normals) == 2
    assert sorted(s.source_index for s in series.slices) == list(range(10))
    assert series.info == t2.info


@pytest.mark.parametrize("copy, files", [("enhanced", 1), ("rle", 10), ("j2k", 1)])
def test_multiframe_and_compressed_copies_read_like_classic_files(study, copy, files):
    (summary,) = list_series(study["copies"][copy][0].parent)
    assert (summary.slice_count, len(summary.files), summary.orientation_count) == (10, files, 2)
    assert summary.info.echo_time_ms == 98.0 and summary.info.sequence == "SE"
    assert_t2_slices(load_series(summary), study)


def test_enhanced_mr_geometry_shared_by_all_frames(tmp_path):
    geometries = [tilted_geometry(-40.0, 10.0, k) for k in range(3)]
    (path,) = write_dicom_series(simple_series(T1, geometries, 300.0), tmp_path, enhanced=True)
    shared = pydicom.dcmread(path).SharedFunctionalGroupsSequence[0]
    assert "PlaneOrientationSequence" in shared and "PixelMeasuresSequence" in shared
    series = load_series([path])
    np.testing.assert_allclose([s.geometry.origin for s in series.slices], [g.origin for g in geometries], atol=1e-12)
    assert all(s.geometry.column_direction == pytest.approx(geometries[0].column_direction) for s in series.slices)
    assert [float(s.pixels[0, 0]) for s in series.slices] == [300.0, 301.0, 302.0]
    assert (series.info.sequence, series.info.echo_time_ms, series.info.echo_train_length) == ("SE", 12.0, 3)


def test_zip_reads_like_the_folder(study):
    summaries = by_description(list_series(study["zip"]))
    assert set(summaries) == {"t2_tse_tra", "t1_tse_tra", "t2_tse_sag"}
    t2 = summaries["t2_tse_tra"]
    assert str(t2.files[0]).startswith(f"{study['zip']}/PAT_A/ST1/se7/")
    assert_t2_slices(load_series(t2), study)
    folder = study["base"] / "zip_in_folder"
    folder.mkdir(exist_ok=True)
    shutil.copy(study["zip"], folder / "export.zip")
    assert {s.info.description: s.slice_count for s in list_series(folder)} == {
        "t2_tse_tra": 10, "t1_tse_tra": 4, "t2_tse_sag": 3}


def test_load_series_from_file_paths(study):
    series = load_series([str(p) for p in reversed(study["t2_files"])])
    assert_t2_slices(series, study)
    with pytest.raises(InputError, match="hold 2 image series"):
        load_series(study["t2_files"] + [study["root"] / "PAT_A" / "sag" / "IM0001"])


def test_progress_reaches_one_and_may_cancel(study):
    seen = []
    summaries = list_series(study["root"], progress=lambda f, m: seen.append((f, m)))
    assert seen[-1][0] == 1.0 and seen[0][0] == 0.0 and "headers" in seen[0][1]

    def cancel(fraction, message):
        if fraction > 0.3:
            raise OperationCancelled("cancelled")

    with pytest.raises(OperationCancelled):
        load_series(by_description(summaries)["t2_tse_tra"], progress=cancel)


def test_the_t2_axial_series_is_chosen_with_a_reason(study):
    choice = choose_series(list_series(study["root"]))
    assert choice.summary.info.description == "t2_tse_tra"
    assert choice.reason == (
        "series 7 't2_tse_tra': axial, T2 TSE (TE 98 ms, TR 4000 ms, ETL 17), 10 slices in 2 angled blocks"
    )


def test_cli_lists_series_and_honours_the_override(study, capsys):
    code, out, err = run_cli(capsys, "series", study["root"])
    assert code == 0, err
    chosen = [line for line in out.splitlines() if line.startswith("*")]
    assert len(chosen) == 1 and "t2_tse_tra" in chosen[0] and "PATIENT-A" not in out
    t1 = by_description(list_series(study["root"]))["t1_tse_tra"]
    code, out, err = run_cli(capsys, "series", study["root"], "--series", t1.info.uid)
    assert code == 0, err
    assert "chosen: series 3 't1_tse_tra': axial" in out and "chosen by its SeriesInstanceUID" in out
    code, out, err = run_cli(capsys, "series", study["root"], "--series", "1.2.3.4")
    assert code == 2 and "series UID 1.2.3.4 is not in the study" in err and t1.info.uid in err


def test_sagittal_only_study_is_refused_with_its_series_listed(study, tmp_path):
    shutil.copytree(study["root"] / "PAT_A" / "sag", tmp_path / "sag")
    listed = r"series 2 't2_tse_sag': sagittal, T2 TSE, 3 slices, UID [0-9.]+ - not axial \(slice normal 90 degrees"
    with pytest.raises(NoSuitableSeriesError, match=rf"no axial MR series(.|\n)*{listed}.*\n.*--series UID"):
        choose_series(list_series(tmp_path))


def test_bad_input_names_the_path(tmp_path, study):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=f"{tmp_path / 'empty'}: is empty"):
        list_series(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("hello")
    (tmp_path / "other" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(InputError, match=f"{tmp_path / 'other'}: holds no DICOM files among its 2 files"):
        list_series(tmp_path / "other")
    with pytest.raises(InputError, match=f"{tmp_path / 'other' / 'a.txt'}: is not a DICOM file"):
        list_series(tmp_path / "other" / "a.txt")
    with pytest.raises(InputError, match="no such file or folder"):
        list_series(tmp_path / "missing")
    data = study["t2_files"][0].read_bytes()
    (tmp_path / "head.dcm").write_bytes(data[:500])
    with pytest.raises(InputError, match=f"{tmp_path / 'head.dcm'}: an MR Image Storage file .* truncated"):
        list_series(tmp_path / "head.dcm")
    (tmp_path / "pixels.dcm").write_bytes(data[:-300])
    (summary,) = list_series(tmp_path / "pixels.dcm")
    with pytest.raises(InputError, match=f"{tmp_path / 'pixels.dcm'}: its pixel data .* truncated"):
        load_series(summary)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="bad.zip: cannot be opened as a zip archive"):
        list_series(tmp_path / "bad.zip")


def test_writer_refuses_what_it_cannot_encode(tmp_path):
    geometry = SliceGeometry((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0), (16, 40))
    small = simple_series(T1, [geometry], 1.0)
    with pytest.raises(ValueError, match="at least 32 rows and columns, not 16"):
        write_dicom_series(small, tmp_path, transfer_syntax=JPEG2000Lossless)
    with pytest.raises(ValueError, match="cannot write transfer syntax 1.2.840.10008.1.2.4.50"):
        write_dicom_series(small, tmp_path, transfer_syntax="1.2.840.10008.1.2.4.50")
    with pytest.raises(ValueError, match="do not fit uint16"):
        write_dicom_series(small, tmp_path, rescale=(1.0, 100.0))
    assert not list(tmp_path.iterdir())


def test_writer_rescales_real_valued_pixels(tmp_path):
    pixels = np.linspace(-3.25, 1234.5, SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    series = series_from_arrays([pixels], [tilted_geometry(0.0, 0.0, 0)], T2)
    (item,) = load_series(write_dicom_series(series, tmp_path)).slices
    slope = (1234.5 + 4) / 65535
    assert np.abs(item.pixels - pixels).max() <= slope / 2 * 1.001


def test_writer_is_deterministic(tmp_path):
    series = simple_series(T1, [tilted_geometry(0.0, 5.0, k) for k in range(2)], 10.0)
    first = write_dicom_series(series, tmp_path / "a", seed=3, file_names="random")
    second = write_dicom_series(series, tmp_path / "b", seed=3, file_names="random")
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


# Real files from pydicom-data (MIT): ../shared/data/dicom/pydicom_data_mr

EMRI_VARIANTS = ["emri_small_big_endian.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm",
                 "emri_small_jpeg_ls_lossless.dcm"]


@pytest.fixture
def real(shared_dir) -> Path:
    return shared_dir / "data" / "dicom" / "pydicom_data_mr"


def test_compressed_enhanced_mr_decodes_to_the_uncompressed_pixels(real):
    reference = read_frames(real / "emri_small.dcm")
    assert reference.shape == (10, 64, 64) and reference.max() == 467
    for name in EMRI_VARIANTS:
        np.testing.assert_array_equal(read_frames(real / name), reference, err_msg=name)


def test_enhanced_mr_without_geometry_is_listed_but_not_loaded(real):
    (summary,) = list_series(real / "emri_small_RLE.dcm")
    assert (summary.orientation, summary.slice_count, summary.info.sequence) == ("unknown", 10, "GR")
    assert summary.info.patient == ""  # the anonymised file has an empty PatientID
    with pytest.raises(InputError, match="emri_small_RLE.dcm frame 1: has no ImagePositionPatient"):
        load_series(summary)


def test_truncated_jpeg2000_file_fails_naming_it(real):
    with pytest.raises(InputError, match="emri_small_jpeg_2k_lossless_too_short.dcm: has no complete pixel data"):
        read_frames(real / "emri_small_jpeg_2k_lossless_too_short.dcm")


def test_siemens_file_with_overlays_reads_with_its_geometry(real):
    series = load_series([real / "MR-SIEMENS-DICOM-WithOverlays.dcm"])
    (item,) = series.slices
    assert item.geometry.origin == (-159.82565509386, -175.32202350207, 28.426151275635)
    assert item.geometry.spacing == (0.72314049586777, 0.72314049586777)
    assert item.geometry.shape == (484, 484) and item.geometry.thickness == 4.0
    assert item.pixels.max() == 1123
    assert (series.info.sequence, series.info.number) == ("GR", 18)


def test_jpeg2000_lossless_and_lossy_copies_of_one_slice(real):
    lossless = read_frames(real / "MR2_J2KR.dcm")
    lossy = read_frames(real / "MR2_J2KI.dcm")
    slope = 3.774114
    assert lossless.shape == (1, 1024, 1024)
    assert lossless.max() == pytest.approx(595 * slope + 0.000061, rel=1e-6)
    assert 0 < np.abs(lossless - lossy).max() <= 32 * slope + 1e-3


def test_folder_of_real_files(real):
    summaries = by_description(list_series(real))
    assert set(summaries) == {"", "T1W/SE/1024", "marked lesion<MPR Collection>"}
    emri = summaries[""]
    assert [f.name for f in emri.files] == ["emri_small.dcm"], "identical copies of one instance count once"
    mr2 = summaries["T1W/SE/1024"]
    assert mr2.orientation == "sagittal" and mr2.slice_count == 2  # a lossless and a lossy copy
    with pytest.raises(InputError, match="more than one slice at the same place"):
        load_series(mr2)
    choice = choose_series(list(summaries.values()))
    assert choice.summary.info.number == 18
    assert choice.reason.endswith("although not a T2 TSE")


def test_dicom_source_names_zip_members():
    source = DicomSource(Path("/data/study.zip"), "a/b/IM1")
    assert (str(source), source.name) == ("/data/study.zip/a/b/IM1", "IM1")


@pytest.mark.parametrize("case", ["empty", "not_images", "truncated", "sagittal_only"])
def test_bad_studies_give_one_clear_line_and_exit_2(tmp_path, study, capsys, case):
    """The command line turns each bad study into one line naming it, exit code 2, no traceback."""
    bad = tmp_path / case
    bad.mkdir()
    if case == "not_images":
        (bad / "report.txt").write_text("no images here")
    elif case == "truncated":
        (bad / "IM1").write_bytes(study["t2_files"][0].read_bytes()[:-300])
    elif case == "sagittal_only":
        shutil.copytree(study["root"] / "PAT_A" / "sag", bad, dirs_exist_ok=True)
    code, out, err = run_cli(capsys, "measure", bad, bad / "labels.nii.gz", "-o", tmp_path / "out")
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: ") and str(bad) in err
    assert not (tmp_path / "out").exists()


def test_patient_hashes_are_keyed_anew_in_every_process():
    import subprocess
    import sys

    code = "from ParaspinalSegLib.read.dicom import short_hash; print(short_hash('12345'))"
    made = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
            for _ in range(2)}
    assert len(made) == 2 and all(len(h) == 8 for h in made)
    assert short_hash("12345") == short_hash("12345") and short_hash("") == ""


def test_a_rescale_beyond_float32_reads_as_infinite_without_a_numpy_warning(study, tmp_path):
    """A slope of 1e308 makes values no float32 holds: they read as inf, quietly (the input check then
    refuses the series, naming the file: Testing/hostile), instead of printing numpy's overflow
    warning and its source line to a user's terminal."""
    import warnings

    dataset = pydicom.dcmread(study["t2_files"][0])
    dataset.RescaleSlope = 1e308
    damaged = tmp_path / "slope.dcm"
    dataset.save_as(damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = read_frames(damaged)
    assert np.isinf(frames[frames != 0]).all() and (frames != 0).any()
