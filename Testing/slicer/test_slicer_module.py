"""ParaspinalSeg.py end to end on stand-ins for Slicer (Testing/slicer_fakes): the panel built from
its .ui, Segment & Grade clicked on the shipped sample with the shipped model (CPU), Update
measurements after an edit, Cancel, the console batch, the dependency installation and the
self-test. The fakes are not Slicer; the self-test inside Slicer is the real check (README)."""

import csv
import importlib
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import slicer_fakes
from ParaspinalSegLib.output import mrml
from ParaspinalSegLib.cohorts.batch import SUMMARY_COLUMNS
from ParaspinalSegLib.cli import sample_folder
from ParaspinalSegLib.errors import NoSuitableSeriesError, ParaspinalError
from ParaspinalSegLib.output.export import SLICE_COLUMNS
from ParaspinalSegLib.labels import SEGMENTS
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.network.modelfile import real_case_note
from ParaspinalSegLib.network.registry import ModelRegistry
from ParaspinalSegLib.read.segmentation import load_segmentation

ROOT = Path(__file__).resolve().parents[2]
TRUTH = json.loads((sample_folder() / "truth.json").read_text())


@pytest.fixture(scope="module")
def installed():
    """The fakes in sys.modules and ParaspinalSeg.py imported against them (once per module)."""
    with pytest.MonkeyPatch.context() as patch:
        fake = slicer_fakes.install(patch)
        patch.syspath_prepend(str(ROOT / "ParaspinalSeg"))
        patch.delitem(sys.modules, "ParaspinalSeg", raising=False)
        yield SimpleNamespace(slicer=fake, module=importlib.import_module("ParaspinalSeg"))
        sys.modules.pop("ParaspinalSeg", None)


@pytest.fixture
def env(installed, tmp_path, monkeypatch):
    """An empty scene, fresh records, and the shipped model as the active one."""
    installed.slicer.reset()
    monkeypatch.setenv("PARASPINALSEG_HOME", str(tmp_path / "home"))
    return installed


@pytest.fixture(scope="module")
def sample():
    series = read_study(sample_folder() / "study").series
    truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
    return SimpleNamespace(volume=mrml.volume_from_series(series), truth=mrml.volume_from_series(series, truth).array)


def add_volume(env, arrays, name="sample T2"):
    return env.slicer.util.addVolumeFromArray(arrays.array, ijkToRAS=arrays.ijk_to_ras, name=name)


def panel(env, volume):
    widget = env.module.ParaspinalSegWidget()
    widget.setup()
    widget.ui.deviceComboBox.setCurrentIndex(widget.ui.deviceComboBox.findData("cpu"))
    widget.ui.inputVolumeSelector.setCurrentNode(volume)
    return widget


def column(table, name):
    return table.columns[name]


def test_panel_segments_grades_and_updates_after_an_edit(env, sample):
    volume = add_volume(env, sample.volume)
    widget = panel(env, volume)
    ui = widget.ui
    assert ui.modelComboBox.currentData == ModelRegistry().active().model_id
    assert ui.applyButton.enabled and ui.axialWarningLabel.text == ""
    assert not ui.updateButton.enabled and not ui.showTableButton.enabled

    ui.applyButton.click()

    segmentation_node, table = ui.outputSegmentationSelector.currentNode(), ui.outputTableSelector.currentNode()
    segmentation = segmentation_node.GetSegmentation()
    assert [s.name for s in segmentation.segments.values()] == [style.name for style in SEGMENTS]
    assert [s.color for s in segmentation.segments.values()] == [style.color for style in SEGMENTS]
    terms = {s.name: s.terminology for s in segmentation.segments.values()}
    assert all("SCT^44947003^Erector spinae muscle" in term for term in terms.values())
    assert "SCT^248300009^Body fat" in terms["Left fat"] and "SCT^24028007^Right" in terms["Right muscle tissue"]
    assert segmentation_node.reference_volume is volume and segmentation_node.references["referenceImageGeometryRef"] == volume.GetID()

    assert list(table.columns) == SLICE_COLUMNS and len(column(table, "slice_index")) == len(sample.volume.array)
    assert table.units["right_total_csa_mm2"] == "mm2" and table.units["left_fat_fraction_pct"] == "%"
    assert column(table, "source_index").dtype == np.int32
    masks = {s.name: s.mask for s in segmentation.segments.values()}
    spacing = volume.GetSpacing()
    for k, row in zip(column(table, "source_index"), column(table, "right_total_csa_mm2")):
        pixels = masks["Right muscle tissue"][k].sum() + masks["Right fat"][k].sum()
        assert row == pytest.approx(pixels * spacing[0] * spacing[1], rel=1e-12)

    assert ui.gradeLabel.text == f"Grade {TRUTH['grade']}"
    assert ui.qualityWarningsLabel.text == "" and not ui.qualityWarningsLabel.visible
    assert ui.fatFractionLabel.text.startswith("Mean fat fraction: right ") and ui.fatFractionLabel.text.endswith(" %")
    note = real_case_note(ModelRegistry().active().card)
    assert note and ui.statusLabel.text.endswith(f"\nModel note: {note}.")
    attributes = segmentation_node.attributes
    assert attributes[mrml.GRADE_ATTRIBUTE] == TRUTH["grade"] and attributes[mrml.WARNINGS_ATTRIBUTE] == "[]"
    assert attributes[mrml.MODEL_ATTRIBUTE] == ui.modelComboBox.currentData
    assert attributes["ParaspinalSeg.Software"].startswith("ParaspinalSeg ") and attributes["ParaspinalSeg.Created"]
    charts = env.slicer.mrmlScene.nodes_of_class("vtkMRMLPlotChartNode")
    series_nodes = env.slicer.mrmlScene.nodes_of_class("vtkMRMLPlotSeriesNode")
    assert len(charts) == 2 and len(series_nodes) == 4 and all(s.table_id == table.GetID() for s in series_nodes)
    assert {s.y_column for s in series_nodes} <= set(SLICE_COLUMNS)

    # A correction through the API: a 3 x 4 block of right muscle tissue becomes fat.
    status = env.slicer.vtkSlicerSegmentationsModuleLogic
    right_fat = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Right fat"))
    status.SetSegmentStatus(right_fat, status.Completed)
    muscle, fat = masks["Right muscle tissue"].copy(), masks["Right fat"].copy()
    k, j, i = first_block_inside(muscle, (3, 4))
    muscle[k, j:j + 3, i:i + 4], fat[k, j:j + 3, i:i + 4] = 0, 1
    for name, array in (("Right muscle tissue", muscle), ("Right fat", fat)):
        env.slicer.util.updateSegmentBinaryLabelmapFromArray(array, segmentation_node, segmentation.GetSegmentIdBySegmentName(name), volume)
    before = {name: column(table, name).copy() for name in SLICE_COLUMNS}

    ui.updateButton.click()

    edited_area = 12 * spacing[0] * spacing[1]
    row = list(column(table, "source_index")).index(k)
    for name, change in (("right_fat_csa_mm2", edited_area), ("right_muscle_csa_mm2", -edited_area),
                         ("both_fat_csa_mm2", edited_area), ("right_total_csa_mm2", 0.0)):
        difference = column(table, name) - before[name]
        assert difference[row] == pytest.approx(change, abs=1e-9)
        assert np.count_nonzero(np.delete(difference, row)) == 0
    assert status.GetSegmentStatus(right_fat) == status.Completed
    assert attributes[mrml.METHOD_ATTRIBUTE] == "muscle and fat from the edited segmentation"
    assert "Model note" not in ui.statusLabel.text  # the numbers are the surgeon's now, not the model's
    assert len(env.slicer.mrmlScene.nodes_of_class("vtkMRMLPlotChartNode")) == 2  # the same charts follow the table

    ui.showTableButton.click()
    ui.showCsaPlotButton.click()
    assert env.slicer.records.active_table_ids == [table.GetID()]
    assert [c.title for c in env.slicer.records.charts_shown] == ["Compartment CSA along the slices"]


def test_the_mirror_box_runs_mirrored_test_time_augmentation(env, sample):
    volume = add_volume(env, sample.volume)
    widget = panel(env, volume)
    widget.ui.applyButton.click()
    plain = widget.ui.outputSegmentationSelector.currentNode()
    assert "mirrored" not in plain.attributes[mrml.METHOD_ATTRIBUTE]

    widget.ui.outputSegmentationSelector.setCurrentNode(None)
    widget.ui.outputTableSelector.setCurrentNode(None)
    widget.ui.mirrorCheckBox.setChecked(True)
    widget.ui.applyButton.click()
    mirrored = widget.ui.outputSegmentationSelector.currentNode()
    assert mirrored is not plain
    assert mirrored.attributes[mrml.METHOD_ATTRIBUTE].endswith("with mirrored test-time augmentation")
    masks = {name: {s.name: s.mask for s in node.GetSegmentation().segments.values()} for name, node in
             (("plain", plain), ("mirrored", mirrored))}
    # the averaged prediction differs from the plain one somewhere, and both find the compartments
    assert any(not np.array_equal(masks["plain"][n], masks["mirrored"][n]) for n in masks["plain"])
    assert all(masks["mirrored"][style.name].any() for style in SEGMENTS)


def test_a_grade_from_a_failed_segmentation_is_shown_with_its_warnings(env, sample):
    """The sample's truth with the left compartment erased on its first 6 slices, measured by Update
    measurements: the grade says to see the warnings, which are listed beneath it and kept on the node."""
    volume = add_volume(env, sample.volume)
    widget = panel(env, volume)
    labels = sample.truth.copy()
    labels[:6][np.isin(labels[:6], (3, 4))] = 0
    segmentation_node = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "edited")
    widget.logic.setSegments(segmentation_node, volume, labels)
    widget.ui.outputSegmentationSelector.setCurrentNode(segmentation_node)

    widget.ui.updateButton.click()

    ui = widget.ui
    assert ui.gradeLabel.text == f"Grade {segmentation_node.attributes[mrml.GRADE_ATTRIBUTE]} (see the warnings)"
    lines = ui.qualityWarningsLabel.text.splitlines()
    assert ui.qualityWarningsLabel.visible and lines[0] == "Check the 1 warning(s): the segmentation may have failed:"
    assert lines[1:] == ["- left compartment missing on 6 of 12 slices (0, 1, 2, 3, 4, 5) where the right is found"]
    assert json.loads(segmentation_node.attributes[mrml.WARNINGS_ATTRIBUTE]) == [lines[1][2:]]


def first_block_inside(mask, size):
    """(k, j, i) of the first block of `size` rows x columns lying wholly inside the mask."""
    rows, columns = size
    for k, j, i in zip(*np.nonzero(mask)):
        if mask[k, j:j + rows, i:i + columns].sum() == rows * columns:
            return k, j, i
    raise AssertionError("no block of that size inside the mask")


def test_cancel_mid_run_leaves_the_scene_as_it_was(env, sample):
    volume = add_volume(env, sample.volume)
    existing = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "earlier result")
    existing.GetSegmentation().AddEmptySegment("kept", "kept")
    existing.SetAttribute(mrml.GRADE_ATTRIBUTE, "I")
    widget = panel(env, volume)
    widget.ui.outputSegmentationSelector.setCurrentNode(existing)
    seen = []

    def user_clicks_cancel_while_segmenting():
        if not widget.ui.statusLabel.text.startswith("segmenting"):
            env.slicer.app.call_later(user_clicks_cancel_while_segmenting)
            return
        seen.append((widget.ui.applyButton.text, widget.ui.progressBar.visible, widget.ui.statusLabel.text))
        widget.ui.applyButton.click()

    env.slicer.app.call_later(user_clicks_cancel_while_segmenting)
    widget.ui.applyButton.click()

    assert seen == [("Cancel", True, "segmenting, slice 4/12")]
    assert list(env.slicer.mrmlScene.nodes.values()) == [volume, existing]
    assert list(existing.GetSegmentation().segments) == ["kept"] and existing.attributes == {mrml.GRADE_ATTRIBUTE: "I"}
    assert widget.ui.statusLabel.text == "Cancelled; the scene is as it was."
    assert widget.ui.applyButton.text == "Segment && Grade" and not widget.ui.progressBar.visible


def test_console_batch_of_a_folder_writes_results_and_a_summary(env, tmp_path):
    studies = tmp_path / "studies"
    shutil.copytree(sample_folder() / "study", studies / "sample")
    outcomes = env.module.ParaspinalSegLogic().processDicomFolder(studies, tmp_path / "out", device="cpu")
    assert [o.error for o in outcomes] == [""]
    with open(tmp_path / "out" / "summary.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == SUMMARY_COLUMNS
    assert (rows[0]["study"], rows[0]["status"], rows[0]["grade"]) == ("sample", "ok", TRUTH["grade"])
    assert {p.name for p in (tmp_path / "out" / "sample").iterdir()} == {
        "slices.csv", "patient.json", "segmentation.seg.nrrd", "qc.png"}
    assert env.slicer.mrmlScene.nodes == {}


def test_a_volume_that_is_not_axial_is_refused_with_a_clear_message(env, sample):
    sagittal = np.eye(4)
    sagittal[:3, :3] = [[0, 0, 4.0], [0.8, 0, 0], [0, -0.8, 0]]
    volume = add_volume(env, SimpleNamespace(array=sample.volume.array[:, :8], ijk_to_ras=sagittal), name="sag T2")
    widget = panel(env, volume)
    assert widget.ui.axialWarningLabel.text.startswith("'sag T2' is not an axial series")
    assert widget.ui.axialWarningLabel.visible and not widget.ui.applyButton.enabled
    with pytest.raises(NoSuitableSeriesError, match="'sag T2' is not an axial series"):
        env.module.ParaspinalSegLogic().process(volume)
    assert list(env.slicer.mrmlScene.nodes.values()) == [volume]


def missing_until_installed(env, monkeypatch, missing):
    """Report `missing` as not importable until something was installed."""
    def is_installed(name):
        records = env.slicer.records
        return name not in missing or bool(records.pip_installs or records.torch_installs)
    monkeypatch.setattr(env.module, "isInstalled", is_installed)


def test_a_declined_installation_installs_nothing_and_says_why(env, sample, monkeypatch):
    missing_until_installed(env, monkeypatch, {"torch", "segmentation_models_pytorch"})
    env.slicer.records.confirm = False
    widget = panel(env, add_volume(env, sample.volume))
    with pytest.raises(ParaspinalError, match="Not installed: torch, segmentation_models_pytorch"):
        widget.ui.applyButton.click()
    records = env.slicer.records
    assert records.dialogs[0] == ("confirm", records.dialogs[0][1])
    assert "not installed: torch, segmentation_models_pytorch" in records.dialogs[0][1]
    assert records.dialogs[1][0] == "error" and "cannot segment without them" in records.dialogs[1][1]
    assert records.pip_installs == [] and records.torch_installs == []
    assert len(env.slicer.mrmlScene.nodes) == 1 and widget.ui.applyButton.text == "Segment && Grade"


def test_an_accepted_installation_takes_torch_from_the_extension_and_keeps_the_core(env, monkeypatch):
    missing_until_installed(env, monkeypatch, {"torch", "segmentation_models_pytorch"})
    env.module.ParaspinalSegLogic().setupPythonRequirements()
    records = env.slicer.records
    assert records.torch_installs == [{"askConfirmation": False}]
    (arguments, constraints), = records.pip_installs
    assert arguments[:1] == ["-c"] and arguments[2:] == ["segmentation-models-pytorch>=0.4"]
    pinned = dict(line.split("==") for line in constraints.split())
    assert pinned["numpy"] == np.__version__ and "torch" in pinned and "SimpleITK" in pinned
    assert records.restarts == 0 and [kind for kind, _ in records.dialogs] == ["confirm"]


def test_packages_still_missing_after_installation_ask_for_a_restart(env, monkeypatch):
    assert env.module.isInstalled("numpy") and not env.module.isInstalled("paraspinalseg_no_such_package")
    monkeypatch.setattr(env.module, "isInstalled", lambda name: name != "safetensors")
    env.slicer.records.restart_answer = True
    with pytest.raises(ParaspinalError, match="safetensors: installed; restart Slicer to use them"):
        env.module.ParaspinalSegLogic().setupPythonRequirements()
    assert env.slicer.records.restarts == 1 and env.slicer.records.dialogs[-1][0] == "yes/no"


def test_add_to_training_set_hands_the_corrected_case_to_the_training_library(env, sample, monkeypatch, tmp_path):
    calls = []

    def add_case(training_set, series, labels, **options):
        calls.append(SimpleNamespace(training_set=training_set, series=series, labels=labels, **options))
        return training_set / "case-0001"

    monkeypatch.setitem(sys.modules, "ParaspinalSegTrainingLib.trainingset",
                        SimpleNamespace(__name__="ParaspinalSegTrainingLib.trainingset", add_case=add_case))
    volume = add_volume(env, sample.volume)
    segmentation_node = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "corrected")
    logic = env.module.ParaspinalSegLogic()
    logic.setSegments(segmentation_node, volume, sample.truth)
    status = env.slicer.vtkSlicerSegmentationsModuleLogic
    segmentation = segmentation_node.GetSegmentation()
    status.SetSegmentStatus(segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Left fat")), status.Completed)
    widget = panel(env, volume)
    widget.ui.outputSegmentationSelector.setCurrentNode(segmentation_node)
    widget.ui.trainingSetPathLineEdit.currentPath = str(tmp_path / "training")
    widget.ui.authorLineEdit.text = "reader 1"

    widget.ui.addToTrainingSetButton.click()

    (call,) = calls
    assert call.training_set == tmp_path / "training" and len(call.series) == len(sample.truth)
    np.testing.assert_array_equal(mrml.label_volume(call.series, call.labels, sample.truth.shape), sample.truth)
    assert (call.draft_model, call.corrected_segments, call.author) == (None, ["Left fat"], "reader 1")
    assert (call.patient_key, call.keep_mapping) == (None, False)
    assert widget.ui.statusLabel.text == f"Added to the training set as {tmp_path / 'training' / 'case-0001'}."

    widget.ui.keepMappingCheckBox.setChecked(True)
    assert widget.ui.patientKeyLineEdit.enabled
    with pytest.raises(ParaspinalError, match="Type the patient key"):  # shown in a dialog in Slicer
        widget.ui.addToTrainingSetButton.click()
    assert len(calls) == 1
    widget.ui.patientKeyLineEdit.text = " MRN-0042 "
    widget.ui.addToTrainingSetButton.click()
    assert (calls[-1].patient_key, calls[-1].keep_mapping) == ("MRN-0042", True)


def test_add_to_training_set_writes_a_case_with_the_training_library(env, sample, tmp_path):
    trainingset = pytest.importorskip("ParaspinalSegTrainingLib.trainingset")
    volume = add_volume(env, sample.volume)
    segmentation_node = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "corrected")
    logic = env.module.ParaspinalSegLogic()
    logic.setSegments(segmentation_node, volume, sample.truth)
    case = logic.addToTrainingSet(volume, segmentation_node, tmp_path / "training", author="reader 1")
    assert case.parent == tmp_path / "training" / "cases"
    assert {trainingset.IMAGE_FILE, trainingset.LABELS_FILE, trainingset.CASE_FILE} <= {p.name for p in case.iterdir()}
    assert "reader 1" in (case / trainingset.CASE_FILE).read_text()
    assert not (tmp_path / "training" / trainingset.MAPPING_FILE).exists()
    linked = logic.addToTrainingSet(volume, segmentation_node, tmp_path / "training", patientKey="MRN-0042")
    mapping = (tmp_path / "training" / trainingset.MAPPING_FILE).read_text()
    assert linked.name in mapping and "MRN-0042" in mapping and case.name not in mapping
    assert "MRN-0042" not in (linked / trainingset.CASE_FILE).read_text()


def test_the_self_test_passes_on_the_stand_ins(env):
    env.module.ParaspinalSegTest().runTest()
    assert env.slicer.records.messages[0] == f"Segment & Grade: grade {TRUTH['grade']}"
    assert env.slicer.records.messages[1].startswith("Update measurements: ")


def test_the_help_names_the_method_its_limits_and_the_paper(installed):
    parent = SimpleNamespace()
    installed.module.ParaspinalSeg(parent)
    assert parent.title == "ParaspinalSeg"
    assert "simplified Goutallier" in parent.helpText and "axial slices only" in parent.helpText
    assert "Baur D. et al." in parent.acknowledgementText and "Eur Spine J 2021" in parent.acknowledgementText


def test_showing_the_panel_again_lists_models_registered_and_activated_meanwhile(env, sample, tmp_path):
    widget = panel(env, add_volume(env, sample.volume))
    registry = ModelRegistry()
    copy = shutil.copytree(registry.active().folder, tmp_path / "copy")
    card = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**card, "version": "9.9.9-test"}))
    new_id = registry.import_model(copy).model_id
    registry.set_active(new_id)
    assert widget.ui.modelComboBox.findData(new_id) == -1
    widget.enter()
    assert widget.ui.modelComboBox.currentData == new_id
    assert widget.ui.modelComboBox.count == len(registry.models())


@pytest.fixture
def dicom_volume(env, tmp_path):
    """A volume 'loaded from the DICOM database': a synthetic one-block study (tilted 8 degrees), its
    volume node with the instance UIDs, the fake database mapping them to the files, and a
    segmentation measured by Update measurements, marked as a model's result."""
    from test_dicom_export import scheme_labels, write_study

    study = write_study(tmp_path / "study", blocks=((0.0, 8.0),))
    series = read_study(study).series
    env.slicer.dicomDatabase.files = {s.origin.sop_uid: str(s.origin.file.path) for s in series.slices}
    volume = add_volume(env, mrml.volume_from_series(series), name="t2 from DICOM")
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(env.slicer.dicomDatabase.files))
    logic = env.module.ParaspinalSegLogic()
    segmentation = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "t2 paraspinal")
    planes = [scheme_labels(s.source_index) for s in series.slices]
    logic.setSegments(segmentation, volume, mrml.volume_from_series(series, planes).array)
    segmentation.SetAttribute(mrml.MODEL_ATTRIBUTE, "paraspinalseg-unet-r18-2.12.0")
    return SimpleNamespace(volume=volume, segmentation=segmentation, logic=logic, series=series)


def correct_right_fat(env, node, volume) -> int:
    """A reader moves a band of right muscle tissue to fat on slice 1 and marks Right fat completed;
    returns the pixels moved."""
    segmentation = node.GetSegmentation()
    muscle_id, fat_id = (segmentation.GetSegmentIdBySegmentName(style.name) for style in SEGMENTS[:2])
    muscle = env.slicer.util.arrayFromSegmentBinaryLabelmap(node, muscle_id, volume)
    fat = env.slicer.util.arrayFromSegmentBinaryLabelmap(node, fat_id, volume)
    band = np.zeros(muscle.shape, dtype=bool)
    band[1, 20:24] = muscle[1, 20:24] > 0
    muscle[band], fat[band] = 0, 1
    env.slicer.util.updateSegmentBinaryLabelmapFromArray(muscle, node, muscle_id, volume)
    env.slicer.util.updateSegmentBinaryLabelmapFromArray(fat, node, fat_id, volume)
    logic = env.slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetSegmentStatus(segmentation.GetSegment(fat_id), logic.Completed)
    return int(band.sum())


def test_export_to_dicom_writes_the_corrected_segments_and_updated_measurements(env, dicom_volume, tmp_path):
    import pydicom
    from test_dicom_export import scheme_labels, sr_groups

    moved = correct_right_fat(env, dicom_volume.segmentation, dicom_volume.volume)
    assert moved > 0
    updated = dicom_volume.logic.updateMeasurements(dicom_volume.segmentation, dicom_volume.volume)
    widget = panel(env, dicom_volume.volume)
    widget.ui.outputSegmentationSelector.setCurrentNode(dicom_volume.segmentation)
    assert widget.ui.exportDicomButton.enabled and widget.ui.addToDicomDatabaseCheckBox.checked
    folder = tmp_path / "export"
    widget.ui.dicomExportPathLineEdit.setCurrentPath(folder)

    widget.ui.exportDicomButton.click()

    assert sorted(p.name for p in folder.iterdir()) == ["seg.dcm", "sr.dcm"]
    assert env.slicer.records.dicom_imports == [(str(folder), True)]
    assert widget.ui.statusLabel.text.startswith("Exported 2 DICOM files (SEG + SR)")
    seg = pydicom.dcmread(folder / "seg.dcm")
    assert [item.SegmentAlgorithmType for item in seg.SegmentSequence] == ["AUTOMATIC", "SEMIAUTOMATIC", "AUTOMATIC",
                                                                          "AUTOMATIC"]
    assert seg.SeriesDescription == "ParaspinalSeg segmentation, corrected"
    corrected = dicom_volume.logic.labelsFromSegmentation(dicom_volume.segmentation, dicom_volume.volume,
                                                          dicom_volume.logic.seriesFromVolume(dicom_volume.volume))
    frames = {}
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, seg.pixel_array):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frames[(uid, int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber))] = frame
    for image_slice, plane in zip(dicom_volume.series.slices, corrected):
        for label in range(1, 5):
            assert np.array_equal(frames[(image_slice.origin.sop_uid, label)], plane == label)
    groups = sr_groups(pydicom.dcmread(folder / "sr.dcm"))
    table = updated.tableNode
    for row, index in enumerate(column(table, "slice_index")):
        for quantity, group in (("muscle_csa_mm2", "muscle tissue"), ("fat_csa_mm2", "fat")):
            assert groups[f"slice {int(index)} right {group}"]["area"][0] == pytest.approx(
                column(table, f"right_{quantity}")[row], abs=1e-6)
    fat_before = sum(int((scheme_labels(s.source_index) == 2).sum()) for s in dicom_volume.series.slices)
    assert sum(int(f.sum()) for (_, label), f in frames.items() if label == 2) == fat_before + moved


def test_export_of_a_volume_not_from_the_dicom_database_says_how_to_get_one(env, sample, tmp_path):
    volume = add_volume(env, sample.volume)
    node = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "s")
    with pytest.raises(ParaspinalError, match="'sample T2' was not loaded from Slicer's DICOM database"):
        env.module.ParaspinalSegLogic().exportDicom(node, volume, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_highdicom_is_installed_after_asking_when_slicer_lacks_it(env, dicom_volume, monkeypatch, tmp_path):
    missing_until_installed(env, monkeypatch, {"highdicom"})
    env.slicer.records.confirm = False
    with pytest.raises(ParaspinalError, match="Not installed: highdicom"):
        dicom_volume.logic.exportDicom(dicom_volume.segmentation, dicom_volume.volume, tmp_path / "declined")
    assert env.slicer.records.pip_installs == [] and not (tmp_path / "declined").exists()

    env.slicer.records.confirm = True
    files = dicom_volume.logic.exportDicom(dicom_volume.segmentation, dicom_volume.volume, tmp_path / "export")
    (arguments, constraints), = env.slicer.records.pip_installs
    assert arguments[2:] == ["highdicom>=0.27,<0.30"]
    import pydicom

    assert dict(line.split("==") for line in constraints.split())["pydicom"] == pydicom.__version__
    assert [p.name for p in files] == ["seg.dcm", "sr.dcm"] and all(p.is_file() for p in files)
    assert env.slicer.records.dicom_imports == []
