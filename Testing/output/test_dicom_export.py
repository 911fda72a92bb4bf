"""DICOM SEG and SR export: read back with highdicom and pydicom, on a synthetic study of two grid
blocks (one tilted 12 degrees) with a fixed label map: masks pixel for pixel, measurements equal to
slices.csv, references, new UIDs, codes, dciodvfy, the command line and bad input."""

import csv
import logging
import math
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from helpers import SHIPPED_MODEL, run_cli
from ParaspinalSegLib.output.dicomexport import write_dicom_export
from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.pipeline import Provenance, measure_series
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.slices import ImageSlice, SeriesInfo, SliceSeries
from ParaspinalSegLib.read.volumes import block_image, grid_blocks
from ParaspinalSegTrainingLib.dicom_writer import SyntheticPatient, write_dicom_series

SHAPE = (40, 56)
PATIENT = SyntheticPatient("PATSECRET-0042", "Secretname^Jane")
INFO = SeriesInfo(uid="", number=7, description="t2_tse_tra", sequence="SE", echo_time_ms=98.0,
                  repetition_time_ms=4000.0, echo_train_length=17)
NUM = {"42798000": "area", "129100": "fat fraction"}


def block_geometry(centre_z: float, tilt_deg: float, step: int) -> SliceGeometry:
    t = math.radians(tilt_deg)
    normal = np.array([0.0, -math.sin(t), math.cos(t)])
    origin = np.array([-22.0, -15.0, centre_z]) + 4.5 * step * normal
    return SliceGeometry(tuple(float(v) for v in origin), (1.0, 0.0, 0.0), (0.0, math.cos(t), math.sin(t)),
                         (0.8, 0.75), SHAPE, 4.0)


def scheme_labels(k: int) -> np.ndarray:
    """A label map that differs on every slice: right muscle/fat, left muscle/fat rectangles."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[8:30, 4:24] = 1
    labels[10:13 + k, 6:10] = 2
    labels[8:28 + k % 2, 32:52] = 3
    labels[20:22, 36:40 + k] = 4
    return labels


def write_study(folder: Path, enhanced: bool = False, blocks=((-40.0, 12.0), (10.0, 0.0))) -> Path:
    geometries = [block_geometry(z, tilt, k) for z, tilt in blocks for k in range(3)]
    rng = np.random.default_rng(3)
    slices = [ImageSlice(rng.integers(100, 900, SHAPE).astype(np.float32), g, k) for k, g in enumerate(geometries)]
    write_dicom_series(SliceSeries(slices, INFO), folder, patient=PATIENT, enhanced=enhanced)
    return folder


def label_files(series: SliceSeries, folder: Path) -> list[Path]:
    """One label NIfTI per grid block, as `paraspinal measure` takes them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, block in enumerate(grid_blocks(series)):
        image = block_image(block, [scheme_labels(series.slices[i].source_index) for i in block.members],
                            sitk.sitkUInt8)
        paths.append(folder / f"labels{n}.nii.gz")
        sitk.WriteImage(image, str(paths[-1]))
    return paths


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("dicom_export") / "study")


@pytest.fixture(scope="module")
def exported(study, tmp_path_factory):
    """`paraspinal measure STUDY LABELS --dicom` run once; its output folder and the series."""
    series = read_study(study).series
    out = tmp_path_factory.mktemp("measured") / "out"
    code = run_measure(study, label_files(series, out.parent / "labels"), out)
    assert code == 0
    return out, series


def run_measure(study: Path, labels: list[Path], out: Path, *options: str) -> int:
    from ParaspinalSegLib.cli import main

    return main([*options, "measure", str(study), *map(str, labels), "-o", str(out), "--dicom"])


def source_uids(series: SliceSeries) -> set[str]:
    return {s.origin.sop_uid for s in series.slices}


def seg_frames_by_source(ds) -> dict[tuple[str, int], np.ndarray]:
    """(source SOP instance UID, segment number) -> frame, from pydicom's own decoding of the SEG."""
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    frames = {}
    for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels):
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frames[(source, int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber))] = frame
    return frames


def test_one_seg_per_block_equals_the_label_map_pixel_for_pixel(exported):
    out, series = exported
    segs = sorted((out / "dicom").glob("seg*.dcm"))
    assert [p.name for p in segs] == ["seg_block01.dcm", "seg_block02.dcm"]
    by_uid = {s.origin.sop_uid: s for s in series.slices}
    seen = set()
    for path, block in zip(segs, grid_blocks(series)):
        ds = pydicom.dcmread(path)
        seg = hd.seg.segread(path)
        uids = [series.slices[i].origin.sop_uid for i in block.members]
        assert {uid for uid, _ in seg_frames_by_source(ds)} == set(uids)
        orientation = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
        geometry = series.slices[block.members[0]].geometry
        assert np.allclose([float(v) for v in orientation], geometry.row_direction + geometry.column_direction)
        frames = seg_frames_by_source(ds)
        for uid in uids:
            truth = scheme_labels(by_uid[uid].source_index)
            read = seg.get_pixels_by_source_instance([uid], segment_numbers=[1, 2, 3, 4])[0]
            for segment in range(1, 5):
                assert np.array_equal(read[..., segment - 1], truth == segment)
                assert np.array_equal(frames[(uid, segment)], truth == segment)
            seen.add(uid)
    assert seen == source_uids(series)
    tilted = pydicom.dcmread(segs[0]).SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    assert float(tilted.ImageOrientationPatient[5]) == pytest.approx(math.sin(math.radians(12.0)))


def test_segments_are_coded_in_snomed_ct_with_their_side(exported):
    assert (codes.SCT.ErectorSpinaeMuscle.value, codes.SCT.AdiposeTissue.value) == ("44947003", "55603005")
    assert (codes.SCT.Right.value, codes.SCT.Left.value) == ("24028007", "7771000")
    assert (codes.SCT.Area.value, codes.DCM.FatFraction.value) == ("42798000", "129100")
    ds = pydicom.dcmread(exported[0] / "dicom" / "seg_block01.dcm")
    described = {}
    for item in ds.SegmentSequence:
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        if "AnatomicRegionSequence" in item:
            region = item.AnatomicRegionSequence[0]
            side = region.AnatomicRegionModifierSequence[0].CodeValue
            what = (kind.CodeValue, region.CodeValue)
        else:
            side = kind.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue
            what = (kind.CodeValue,)
        described[int(item.SegmentNumber)] = (item.SegmentLabel, what, side, item.SegmentAlgorithmType)
    assert described == {
        1: ("Right muscle tissue", ("44947003",), "24028007", "SEMIAUTOMATIC"),
        2: ("Right fat", ("55603005", "44947003"), "24028007", "SEMIAUTOMATIC"),
        3: ("Left muscle tissue", ("44947003",), "7771000", "SEMIAUTOMATIC"),
        4: ("Left fat", ("55603005", "44947003"), "7771000", "SEMIAUTOMATIC"),
    }
    algorithm = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "ParaspinalSeg" and "method" in algorithm.AlgorithmParameters
    assert ds.SeriesDescription == "ParaspinalSeg segmentation"


def sr_groups(ds) -> dict[str, dict[str, object]]:
    """Tracking identifier -> {measurement name: value, 'grade': code, 'segment': (SEG UID, number)}."""
    groups = {}
    for item in ds.ContentSequence:
        if item.ValueType != "CONTAINER" or item.ConceptNameCodeSequence[0].CodeValue != "126010":
            continue
        for group in item.ContentSequence:
            values, name = {}, None
            for child in group.ContentSequence:
                concept = child.ConceptNameCodeSequence[0].CodeValue
                if concept == "112039":
                    name = child.TextValue
                elif child.ValueType == "NUM":
                    key = NUM[concept] + (" mean" if "ContentSequence" in child else "")
                    values.setdefault(key, []).append(float(child.MeasuredValueSequence[0].NumericValue))
                elif child.ValueType == "CODE" and child.ConceptCodeSequence[0].CodingSchemeDesignator == "99PARASPINAL":
                    values["grade"] = child.ConceptCodeSequence[0].CodeValue
                elif child.ValueType == "IMAGE" and concept == "121191":
                    ref = child.ReferencedSOPSequence[0]
                    values["segment"] = (ref.ReferencedSOPInstanceUID, int(ref.ReferencedSegmentNumber))
            groups[name] = values
    return groups


def test_sr_measurements_equal_slices_csv_and_patient_json(exported):
    import json

    out, series = exported
    groups = sr_groups(pydicom.dcmread(out / "dicom" / "sr.dcm"))
    rows = list(csv.DictReader((out / "slices.csv").open()))
    assert len(groups) == 6 * len(rows) + 1
    for row in rows:
        for side in ("right", "left"):
            name = f"slice {row['slice_index']} {side}"
            assert groups[f"{name} compartment"]["area"][0] == pytest.approx(float(row[f"{side}_total_csa_mm2"]), abs=5e-4)
            assert groups[f"{name} compartment"]["fat fraction"][0] == pytest.approx(
                float(row[f"{side}_fat_fraction_pct"]), abs=5e-5)
            assert groups[f"{name} muscle tissue"]["area"] == [pytest.approx(float(row[f"{side}_muscle_csa_mm2"]), abs=5e-4)]
            assert groups[f"{name} fat"]["area"] == [pytest.approx(float(row[f"{side}_fat_csa_mm2"]), abs=5e-4)]
            assert groups[f"{name} fat"]["segment"][1] == (2 if side == "right" else 4)
    patient = json.loads((out / "patient.json").read_text())
    means = groups["patient"]["fat fraction mean"]
    expected = patient["mean_fat_fraction_pct"]
    assert means == [pytest.approx(expected[k], abs=5e-5) for k in ("right", "left", "overall")]
    assert groups["patient"]["grade"] == f"SGC-{patient['grade']}"
    assert "dicom/sr.dcm" in patient["outputs"]


def test_sr_reads_back_with_highdicom_as_a_tid_1500_report(exported):
    out, _ = exported
    sr = hd.sr.srread(out / "dicom" / "sr.dcm")
    assert isinstance(sr, hd.sr.Comprehensive3DSR) and sr.SeriesDescription == "ParaspinalSeg measurements"
    report = sr.content
    assert report[0].ConceptNameCodeSequence[0].CodeValue == "126000"
    volumetric = report.get_volumetric_roi_measurement_groups()
    assert len(volumetric) == 4 * 6
    assert {g.finding_type.value for g in volumetric} == {"91727004", "55603005"}
    assert len(report.get_image_measurement_groups()) == 2 * 6 + 1
    observer = report.get_observer_contexts()[0]
    assert observer.observer_type.value == codes.DCM.Device.value
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99PARASPINAL"


def referenced_uids(dataset) -> set[str]:
    found = set()
    for element in dataset.iterall():
        if element.keyword == "ReferencedSOPInstanceUID":
            found.add(str(element.value))
    return found


def test_every_reference_resolves_to_a_source_or_an_exported_instance(exported):
    out, series = exported
    segs = [pydicom.dcmread(p) for p in sorted((out / "dicom").glob("seg*.dcm"))]
    sr = pydicom.dcmread(out / "dicom" / "sr.dcm")
    sources = source_uids(series)
    for seg, block in zip(segs, grid_blocks(series)):
        assert referenced_uids(seg) == {series.slices[i].origin.sop_uid for i in block.members}
    assert referenced_uids(sr) == sources | {seg.SOPInstanceUID for seg in segs}
    source = pydicom.dcmread(series.slices[0].origin.file.path, stop_before_pixels=True)
    for ds in (*segs, sr):
        assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
        assert ds.PatientName == source.PatientName and ds.SOPInstanceUID not in sources


def test_every_export_has_new_uids(exported, tmp_path):
    out, series = exported
    labels = [scheme_labels(s.source_index) for s in series.slices]
    result = measure_series(series, labels, needs_fat=False)
    again = write_dicom_export(tmp_path / "again", result, series)
    first = [pydicom.dcmread(p) for p in (out / "dicom" / "seg_block01.dcm", out / "dicom" / "sr.dcm")]
    second = [pydicom.dcmread(p) for p in (again.segmentations[0], again.report)]
    for a, b in zip(first, second):
        assert a.SOPInstanceUID != b.SOPInstanceUID and a.SeriesInstanceUID != b.SeriesInstanceUID
        assert a.StudyInstanceUID == b.StudyInstanceUID


def test_corrected_segments_of_a_model_result_say_so(exported, tmp_path):
    _, series = exported
    labels = [scheme_labels(s.source_index) for s in series.slices]
    result = measure_series(series, labels, needs_fat=False, model="paraspinalseg-unet-r18-2.12.0")
    written = write_dicom_export(tmp_path / "corrected", result, series, corrected={2})
    ds = pydicom.dcmread(written.segmentations[0])
    assert [item.SegmentAlgorithmType for item in ds.SegmentSequence] == ["AUTOMATIC", "SEMIAUTOMATIC", "AUTOMATIC",
                                                                         "AUTOMATIC"]
    algorithm = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert "paraspinalseg-unet-r18-2.12.0" in algorithm.AlgorithmParameters
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == codes.DCM.ArtificialIntelligence.value
    assert ds.SeriesDescription == "ParaspinalSeg segmentation, corrected"
    assert pydicom.dcmread(written.report).SeriesDescription == "ParaspinalSeg measurements, corrected"


def test_an_enhanced_multiframe_source_is_referenced_frame_by_frame(tmp_path):
    study = write_study(tmp_path / "enhanced", enhanced=True, blocks=((0.0, 8.0),))
    series = read_study(study).series
    labels = [scheme_labels(s.source_index) for s in series.slices]
    written = write_dicom_export(tmp_path / "out", measure_series(series, labels, needs_fat=False), series)
    seg = hd.seg.segread(written.segmentations[0])
    source = series.slices[0].origin
    for s, truth in zip(series.slices, labels):
        read = seg.get_pixels_by_source_frame(source.sop_uid, [s.origin.frame + 1], segment_numbers=[1, 2, 3, 4])[0]
        assert np.array_equal(np.argmax(np.concatenate([~read.any(-1, keepdims=True), read], -1), -1), truth)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian's dicom3tools) is not installed")
def test_dciodvfy_reports_no_errors(exported):
    for path in sorted((exported[0] / "dicom").glob("*.dcm")):
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"


def test_no_patient_identifier_in_logs_or_console(study, tmp_path, capsys, caplog):
    series = read_study(study).series
    labels = label_files(series, tmp_path / "labels")
    with caplog.at_level(logging.DEBUG):
        code = run_measure(study, labels, tmp_path / "out", "--verbose")
    captured = capsys.readouterr()
    assert code == 0 and (tmp_path / "out" / "dicom" / "sr.dcm").is_file()
    text = captured.out + captured.err + caplog.text
    assert "DICOM export" in caplog.text
    for identifier in (PATIENT.id, "Secretname", "Jane"):
        assert identifier not in text
    assert pydicom.dcmread(tmp_path / "out" / "dicom" / "sr.dcm").PatientID == PATIENT.id


def refuse(capsys, study: Path, labels: list[Path], out: Path) -> str:
    code = run_measure(study, labels, out)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists(), err
    assert not list(out.parent.glob(f".{out.name}*")), "a partial folder was left"
    assert "Traceback" not in err
    return err


def test_a_volume_input_has_no_source_dicom(study, tmp_path, capsys):
    series = read_study(study).series
    block = grid_blocks(series)[1]
    volume = tmp_path / "t2.nii.gz"
    sitk.WriteImage(block_image(block, [series.slices[i].pixels for i in block.members]), str(volume))
    labels = label_files(series, tmp_path / "labels")[1:]
    err = refuse(capsys, volume, labels, tmp_path / "out")
    assert f"{volume}: is not a DICOM series" in err and "give the study's DICOM folder" in err


def test_a_zipped_study_is_refused(study, tmp_path, capsys):
    archive = Path(shutil.make_archive(str(tmp_path / "study"), "zip", study))
    labels = label_files(read_study(study).series, tmp_path / "labels")
    err = refuse(capsys, archive, labels, tmp_path / "out")
    assert f"{archive}: the study is read from a zip archive" in err and "unpack the zip" in err


def test_a_source_without_frame_of_reference_is_refused_naming_the_file(study, tmp_path, capsys):
    broken = tmp_path / "study"
    shutil.copytree(study, broken)
    victim = sorted(broken.iterdir())[2]
    ds = pydicom.dcmread(victim)
    del ds.FrameOfReferenceUID
    ds.save_as(victim)
    labels = label_files(read_study(study).series, tmp_path / "labels")
    err = refuse(capsys, broken, labels, tmp_path / "out")
    assert f"{victim}: has no FrameOfReferenceUID" in err and "export the series again" in err


def test_the_library_refuses_a_series_read_from_a_volume():
    from ParaspinalSegLib.output.dicomexport import check_dicom_export

    series = SliceSeries([ImageSlice(np.zeros(SHAPE, np.float32), block_geometry(0.0, 0.0, 0))],
                         SeriesInfo(uid="volume:x.nii", description="x.nii", source="x.nii"))
    with pytest.raises(InputError, match=r"^x.nii: is not a DICOM series"):
        check_dicom_export(series)


def test_the_device_observer_is_the_software_with_its_model():
    from ParaspinalSegLib.output.dicomsr import observation_context

    context = observation_context(Provenance(method="m", fat_settings=None, label_kind="model", model="abc-1.0.0"))
    items = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in context}
    assert items["Observer Type"].ConceptCodeSequence[0].CodeValue == codes.DCM.Device.value
    assert items["Device Observer Model Name"].TextValue == "abc-1.0.0"
    assert items["Device Observer Name"].TextValue.startswith("ParaspinalSeg ")
    again = observation_context(Provenance(method="m", fat_settings=None, label_kind="model", model="abc-1.0.0"))
    assert next(i for i in again if i.ValueType == "UIDREF").UID == items["Device Observer UID"].UID


def test_segment_writes_seg_and_sr_from_the_model(study, tmp_path, capsys):
    code, out, err = run_cli(capsys, "segment", study, "-o", tmp_path / "out", "--device", "cpu", "--dicom")
    assert code == 0, err
    assert "dicom/ (SEG + SR)" in out
    folder = tmp_path / "out" / "dicom"
    assert sorted(p.name for p in folder.iterdir()) == ["seg_block01.dcm", "seg_block02.dcm", "sr.dcm"]
    seg = pydicom.dcmread(folder / "seg_block01.dcm")
    assert seg.ManufacturerModelName == SHIPPED_MODEL.name  # the default model
    assert {item.SegmentAlgorithmType for item in seg.SegmentSequence} == {"AUTOMATIC"}
    rows = list(csv.DictReader((tmp_path / "out" / "slices.csv").open()))
    groups = sr_groups(pydicom.dcmread(folder / "sr.dcm"))
    for row in rows:
        for side in ("right", "left"):
            if row[f"{side}_fat_fraction_pct"]:
                assert groups[f"slice {row['slice_index']} {side} fat"]["area"][0] == pytest.approx(
                    float(row[f"{side}_fat_csa_mm2"]), abs=5e-4)
            else:
                assert f"slice {row['slice_index']} {side} fat" not in groups


def test_batch_exports_each_dicom_study_and_fails_a_volume_alone(study, tmp_path, capsys):
    studies = tmp_path / "studies"
    shutil.copytree(study, studies / "a_dicom")
    series = read_study(study).series
    block = grid_blocks(series)[1]
    sitk.WriteImage(block_image(block, [series.slices[i].pixels for i in block.members]), str(studies / "b.nii.gz"))
    code, _, err = run_cli(capsys, "segment", studies, "--batch", "-o", tmp_path / "out", "--device", "cpu", "--dicom")
    assert code == 1, err
    assert (tmp_path / "out" / "a_dicom" / "dicom" / "sr.dcm").is_file()
    summary = {row["study"]: row for row in csv.DictReader((tmp_path / "out" / "summary.csv").open())}
    assert summary["a_dicom"]["status"] == "ok"
    assert "is not a DICOM series" in summary["b.nii.gz"]["error"]
    assert not (tmp_path / "out" / "b").exists()
