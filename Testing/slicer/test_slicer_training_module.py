"""ParaspinalSegTraining.py on stand-ins for Slicer (Testing/slicer_fakes): the panel built from its
.ui, corrected cases added from the scene and listed with their warnings, a case removed after
confirmation, Train in a separate process polled by the (manually fired) Qt timer until a new
model is registered, a second run cancelled midway that registers nothing, the console train(),
the installation dialog and the self-test. Training cases are one slice of the shipped sample
each, one epoch on the CPU (a run takes 20-40 s here, much of it loading torch in the training
process). The fakes are not Slicer; the self-test inside Slicer is the real check."""

import datetime
import importlib
import json
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import slicer_fakes
from ParaspinalSegLib.output import mrml
from ParaspinalSegLib.cli import sample_folder
from ParaspinalSegLib.errors import InputError, ParaspinalError
from ParaspinalSegLib.labels import SEGMENTS
from ParaspinalSegLib.network.modelfile import WEIGHTS_FILE, load_model, sha256_of
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.network.registry import ModelRegistry
from ParaspinalSegLib.read.segmentation import load_segmentation
from ParaspinalSegTrainingLib.evaluation import METRICS, STRUCTURES

ROOT = Path(__file__).resolve().parents[2]
TRUTH = json.loads((sample_folder() / "truth.json").read_text())
MODULES = ("ParaspinalSeg", "ParaspinalSegTraining")
PROCESS_TIMEOUT_S = 400


@pytest.fixture(scope="module")
def sample():
    """The shipped sample as a Slicer volume holds it, and its truth labels on the same grid."""
    series = read_study(sample_folder() / "study").series
    truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
    return SimpleNamespace(volume=mrml.volume_from_series(series), truth=mrml.volume_from_series(series, truth).array)


@pytest.fixture(scope="module")
def installed():
    """The fakes in sys.modules and both module files imported against them (once per module)."""
    with pytest.MonkeyPatch.context() as patch:
        fake = slicer_fakes.install(patch)
        for name in MODULES:
            patch.syspath_prepend(str(ROOT / name))
            patch.delitem(sys.modules, name, raising=False)
        module = importlib.import_module("ParaspinalSegTraining")
        yield SimpleNamespace(slicer=fake, module=module, segmentation=sys.modules["ParaspinalSeg"])
        for name in MODULES:
            sys.modules.pop(name, None)


@pytest.fixture
def env(installed, tmp_path, monkeypatch):
    """An empty scene, fresh records, and a model registry of the shipped model only."""
    installed.slicer.reset()
    monkeypatch.setenv("PARASPINALSEG_HOME", str(tmp_path / "home"))
    return installed


def case_nodes(env, sample, first, labels=None, corrected=True, slices=2):
    """A volume of a few sample slices from `first` on, and a segmentation of them (the truth unless
    `labels` are given) with every segment marked corrected or none."""
    crop = slice(first, first + slices)
    matrix = sample.volume.ijk_to_ras.copy()
    matrix[:3, 3] += first * matrix[:3, 2]
    volume = env.slicer.util.addVolumeFromArray(sample.volume.array[crop], ijkToRAS=matrix, name=f"slices {first}-")
    segmentation_node = env.slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"corrected {first}")
    labels = sample.truth[crop] if labels is None else labels
    env.segmentation.ParaspinalSegLogic().setSegments(segmentation_node, volume, labels)
    status = env.slicer.vtkSlicerSegmentationsModuleLogic
    segmentation = segmentation_node.GetSegmentation()
    for style in SEGMENTS:
        segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(style.name))
        status.SetSegmentStatus(segment, status.Completed if corrected else status.InProgress)
    return volume, segmentation_node


def two_case_training_set(env, sample, folder) -> list[str]:
    """Two cases of one slice each (the least that trains): their case ids."""
    logic = env.module.ParaspinalSegTrainingLogic()
    return sorted(logic.addCase(*case_nodes(env, sample, first, slices=1), folder, author="reader 1").name
                  for first in (2, 6))


def panel(env, training_set=None):
    widget = env.module.ParaspinalSegTrainingWidget()
    widget.setup()
    widget.ui.deviceComboBox.setCurrentIndex(widget.ui.deviceComboBox.findData("cpu"))
    widget.ui.freezeEncoderSpinBox.value = 0
    widget.ui.epochsSpinBox.value = 1
    if training_set is not None:
        widget.ui.trainingSetPathLineEdit.setCurrentPath(training_set)
    return widget


def rows_by_case(table) -> dict[str, list[str]]:
    return {table.item(row, 0).text(): table.row_texts(row) for row in range(table.rowCount)}


def fat_fraction_pct(labels) -> float:
    """Mean over slices of fat / compartment area, both sides, from label counts."""
    per_slice = [100 * np.isin(plane, (2, 4)).sum() / np.isin(plane, (1, 2, 3, 4)).sum() for plane in labels]
    return float(np.mean(per_slice))


def test_cases_from_the_scene_are_listed_with_their_warnings_and_removed_after_confirmation(env, sample, tmp_path):
    folder = tmp_path / "training set"
    widget = panel(env, folder)
    ui = widget.ui
    assert ui.casesTableWidget.header_labels == ["Case", "Slices", "Fat fraction", "Corrected", "Added", "Warnings"]
    assert ui.statusLabel.text == "0 case(s) in the training set, 0 with warnings."
    assert not ui.trainButton.enabled and not ui.removeCaseButton.enabled

    border = sample.truth[6:8].copy()
    border[0, 0, 100:104] = 1  # four pixels of right muscle tissue on the first row of the case's slice 0
    added = {}
    for key, first, labels, corrected in (("clean", 2, None, True), ("border", 6, border, False),
                                          ("empty", 9, np.zeros_like(border), False)):
        volume, segmentation_node = case_nodes(env, sample, first, labels, corrected)
        ui.inputVolumeSelector.setCurrentNode(volume)
        ui.segmentationSelector.setCurrentNode(segmentation_node)
        ui.authorLineEdit.text = "reader 1"
        ui.addCaseButton.click()
        added[key] = re.match(r"Added case (case-[0-9a-f]{8})\. ", ui.statusLabel.text).group(1)

    rows = rows_by_case(ui.casesTableWidget)
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    clean_fat = np.mean(TRUTH["fat_fraction_pct_per_slice"][2:4])
    assert rows[added["clean"]] == [added["clean"], "2", f"{clean_fat:.1f} %", "yes", today, ""]
    assert rows[added["border"]][1:5] == ["2", f"{fat_fraction_pct(border):.1f} %", "no", today]
    assert "the labels touch the image border on slice(s) 0:" in rows[added["border"]][5]
    assert rows[added["empty"]] == [added["empty"], "2", "-", "no", today,
                                    ("the labels are empty: no compartment on any slice; correct the segmentation "
                                     "or remove the case")]
    warnings_cell = ui.casesTableWidget.item(list(rows).index(added["border"]), 5)
    assert warnings_cell.toolTip() == warnings_cell.text()  # one warning: the tooltip shows it whole
    assert ui.statusLabel.text == f"Added case {added['empty']}. 3 case(s) in the training set, 2 with warnings."
    assert "reader 1" in (folder / "cases" / added["clean"] / "case.json").read_text()

    ui.casesTableWidget.setCurrentCell(list(rows).index(added["empty"]), 0)
    assert ui.removeCaseButton.enabled and ui.trainButton.enabled
    env.slicer.records.confirm = False
    ui.removeCaseButton.click()
    kind, text = env.slicer.records.dialogs[-1]
    assert kind == "confirm" and text.startswith(f"Remove case {added['empty']} from the training set?")
    assert ui.casesTableWidget.rowCount == 3
    env.slicer.records.confirm = True
    ui.removeCaseButton.click()
    assert sorted(rows_by_case(ui.casesTableWidget)) == sorted([added["clean"], added["border"]])
    assert (folder / "trash" / added["empty"] / "case.json").is_file()
    assert ui.statusLabel.text == (f"Removed case {added['empty']} (moved to {folder / 'trash' / added['empty']}). "
                                   "2 case(s) in the training set, 1 with warnings.")
    assert not ui.removeCaseButton.enabled


def test_the_panel_starts_at_the_fine_tuning_recipe(env):
    """The panel always sends its boxes' values, so they must start at the recipe that the rules chose
    (README: fine-tuning), as the command line and the console's train() use it."""
    from ParaspinalSegTrainingLib.finetune import FineTuneSettings

    widget = env.module.ParaspinalSegTrainingWidget()
    widget.setup()
    recipe = FineTuneSettings()
    assert widget.ui.epochsSpinBox.value == recipe.epochs == 30
    assert widget.ui.freezeEncoderSpinBox.value == recipe.freeze_encoder_epochs
    assert widget.ui.learningRateSpinBox.value == pytest.approx(recipe.learning_rate)
    assert widget.ui.foldsSpinBox.value == recipe.folds
    assert widget.parentShare is recipe.parent_share is None  # "automatic": the gate chooses
    assert widget.ui.cpuBfloat16CheckBox.checked is recipe.config.mixed_precision_cpu is False


class Started(Exception):
    """Raised by the stand-in startTraining (`sent_to_training`): the panel got as far as starting a training."""


def sent_to_training(env, monkeypatch, key: str, set_box, values) -> list:
    """The value of startTraining's argument `key` that the panel's Train button sends after `set_box(widget,
    value)`, for each of `values` (no training started)."""
    sent = []

    def start(*args, **kwargs):
        sent.append(kwargs[key])
        raise Started

    widget = env.module.ParaspinalSegTrainingWidget()
    widget.setup()
    monkeypatch.setattr(widget.logic, "startTraining", start)
    for value in values:
        set_box(widget, value)
        with pytest.raises(Started):
            widget.onTrainButton()
    return sent


def test_the_panels_parent_share_goes_to_the_training_as_automatic_or_as_set(env, monkeypatch):
    def set_share(widget, value):
        widget.ui.parentShareSpinBox.value = value

    assert sent_to_training(env, monkeypatch, "parentShare", set_share, (-0.05, 0.0, 0.25)) == [None, 0.0, 0.25]


def test_the_panels_bfloat16_box_reaches_the_training_settings(env, monkeypatch):
    """Ticked, the box sends cpuBfloat16 to the training, whose settings then train under bfloat16 autocast on the
    CPU (`mixed_precision_cpu`, as `paraspinal train --cpu-bfloat16`); unticked, the recipe's float32."""
    def tick(widget, ticked):
        widget.ui.cpuBfloat16CheckBox.setChecked(ticked)

    assert sent_to_training(env, monkeypatch, "cpuBfloat16", tick, (False, True)) == [False, True]
    logic = env.module.ParaspinalSegTrainingLogic()
    monkeypatch.setattr(logic, "setupPythonRequirements", lambda: None)
    assert logic.fineTuneSettings(cpuBfloat16=True).config.mixed_precision_cpu is True
    assert logic.fineTuneSettings(cpuBfloat16=False).config.mixed_precision_cpu is False
    assert logic.fineTuneSettings(epochs=5).config.mixed_precision_cpu is False


def test_training_needs_a_folder_of_cases(env, tmp_path):
    logic = env.module.ParaspinalSegTrainingLogic()
    with pytest.raises(InputError, match="No training-set folder: choose the folder"):
        logic.startTraining("")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'none'}: not a data set (no cases/ folder)")):
        logic.train(tmp_path / "none")


def fire_until(widget, done):
    """Deliver the poll timer's timeouts (0.2 s apart) until done() is true."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, widget.ui.statusLabel.text
        widget.pollTimer.fire()
        time.sleep(0.2)


def test_train_polls_the_process_registers_a_new_model_and_a_cancelled_run_registers_nothing(env, sample, tmp_path):
    case_ids = two_case_training_set(env, sample, tmp_path / "set")
    shipped = ModelRegistry().active().model_id
    widget = panel(env, tmp_path / "set")
    ui, records = widget.ui, env.slicer.records
    assert ui.baseModelComboBox.currentData == shipped and ui.trainButton.enabled

    ui.trainButton.click()
    running = (ui.trainButton.text, ui.progressBar.visible, ui.settingsCollapsibleButton.enabled)
    assert running == ("Cancel", True, False)
    assert records.charts_shown == [widget.curvesChart] and widget.pollTimer.active
    fire_until(widget, lambda: len(widget.epochEvents) == 1)
    assert ui.progressBar.format.startswith("epoch 1/1, loss ") and ui.progressBar.format.endswith(" (%p%)")
    fire_until(widget, lambda: widget.process is None)

    model_id = widget.result.modelId
    assert ui.statusLabel.text == f"Registered the new model {model_id}."
    card = ModelRegistry().get(model_id).card
    assert card.parent == shipped and card.training_data["case_ids"] == case_ids
    assert ui.resultLabel.text.startswith(f"New model {model_id} (parent {shipped}), trained on 1 case(s). "
                                          "Mean Dice on 1 validation case(s), parent -> new:\noverall muscle: ")
    # The panel says what was registered and why: the shipped model draws these sample slices well, so the average.
    parent_dice = card.training_settings["parent_dice_on_corrected_cases"]
    assert card.training_settings["parent_share"] == 0.5 and ui.resultLabel.text.endswith(
        "\nRegistered: the fine-tuned network averaged with its parent (the parent's weights taking 0.5), because the "
        f"parent's compartment Dice on the corrected cases, {parent_dice:.3f}, is at or above 0.8 (`--parent-share` "
        "sets the share).")
    assert (ui.trainButton.text, ui.progressBar.visible, widget.pollTimer.active) == ("Train", False, False)
    curves = widget.curvesTable.columns
    assert list(curves["epoch"]) == [1] and curves["loss"][0] > 0
    assert curves["validation_dice"][0] == pytest.approx(card.validation["validation_dice_mean"], abs=1e-5)
    assert ui.progressBar.format == "%p%"

    table = widget.evaluationTable.columns
    assert list(table) == ["structure", "model", *METRICS]
    assert table["structure"] == [s for s in STRUCTURES for _ in range(2)] and table["model"] == [shipped, model_id] * 3
    compared = card.validation["comparison_with_parent"]
    assert compared["cases"] == list(widget.result.heldOutCaseIds) and compared["parent"] == shipped
    assert table["dice"][1].startswith(f"{compared['figures']['overall muscle']['dice_new']:.2f} ± ")
    assert table["dice"][0].startswith(f"{compared['figures']['overall muscle']['dice_parent']:.2f} ± ")
    assert widget.evaluationTable.units["csa_error_pct"] == "%" and widget.evaluationTable.units["dice"] == ""
    assert ui.baseModelComboBox.findData(model_id) >= 0 and ui.baseModelComboBox.currentData == shipped
    ui.showEvaluationButton.click()
    assert records.active_table_ids == [widget.evaluationTable.GetID()]

    ui.epochsSpinBox.value = 3
    ui.trainButton.click()
    fire_until(widget, lambda: any(event.kind == "progress" for event in widget.process.events))  # it is working
    ui.trainButton.click()
    assert ui.statusLabel.text.startswith("Cancelling") and not ui.trainButton.enabled
    fire_until(widget, lambda: widget.process is None)

    assert ui.statusLabel.text.startswith("Cancelled (") and ui.statusLabel.text.endswith(
        "). Nothing was registered; Train again with the same settings to resume the run from its last checkpoint.")
    assert len(widget.epochEvents) < 3 and widget.result.modelId == model_id
    assert [m.model_id for m in ModelRegistry().models() if not m.shipped] == [model_id]
    first = ModelRegistry().get(model_id)
    assert sha256_of(first.folder / WEIGHTS_FILE) == load_model(first.folder).card.weights_sha256 == card.weights_sha256

    ui.makeActiveButton.click()
    assert ModelRegistry().active().model_id == model_id and ui.baseModelComboBox.currentData == model_id
    assert ui.statusLabel.text.startswith(f"{model_id} is now the active model")


def test_the_self_test_trains_from_the_console_and_cancels_a_run_in_the_process(env, monkeypatch):
    """The self-test's first run is the console train(): it checks the returned id, parent, cases and
    figures. Its second run is cancelled after its first epoch. One slice a case here, for time."""
    shipped = ModelRegistry().active().model_id
    monkeypatch.setattr(env.module.ParaspinalSegTrainingTest, "SLICES_PER_CASE", 1)
    env.module.ParaspinalSegTrainingTest().runTest()
    trained, cancelled = env.slicer.records.messages
    assert re.fullmatch(rf"Trained {shipped}-ft1 from {shipped} on case-[0-9a-f]{{8}}: compartment Dice on "
                        r"case-[0-9a-f]{8} [01]\.\d{3} -> [01]\.\d{3}", trained)
    assert cancelled == "A second run in the training process, cancelled after its first epoch, registered nothing"
    assert [m.model_id for m in ModelRegistry().models() if not m.shipped] == []  # the test's models lived in a temporary home


def test_a_declined_installation_of_the_training_packages_installs_nothing(env, monkeypatch):
    monkeypatch.setattr(env.module, "isInstalled", lambda name: name != "albumentations")
    env.slicer.records.confirm = False
    with pytest.raises(ParaspinalError, match="Not installed: albumentations. Training cannot run without them"):
        env.module.ParaspinalSegTrainingLogic().setupPythonRequirements()
    assert "albumentations>=1.4" in env.slicer.records.dialogs[0][1] and env.slicer.records.pip_installs == []

    env.slicer.records.confirm = True
    with pytest.raises(ParaspinalError, match="albumentations: installed; restart Slicer to use them"):
        env.module.ParaspinalSegTrainingLogic().setupPythonRequirements()
    (arguments, constraints), = env.slicer.records.pip_installs
    assert arguments[2:] == ["albumentations>=1.4"] and f"numpy=={np.__version__}" in constraints.split()


def test_the_help_names_the_method_and_the_paper(installed):
    parent = SimpleNamespace()
    installed.module.ParaspinalSegTraining(parent)
    assert parent.title == "ParaspinalSeg Training" and parent.dependencies == ["ParaspinalSeg"]
    assert "never a replacement of its parent" in parent.helpText and "Baur D. et al." in parent.acknowledgementText
