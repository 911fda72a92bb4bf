"""ParaspinalSegTraining: from corrected segmentations to a better model (3D Slicer scripted module).

A thin layer over ParaspinalSegTrainingLib. A training-set folder of corrected cases is listed
with its warnings; cases come from the scene through ParaspinalSeg's Logic and leave for the set's
trash/. Train fine-tunes a registered model in a separate process (trainprocess) that a Qt timer
polls, so Slicer stays responsive; out come live training curves (a table and a plot), a new
versioned model in the registry (never replacing its parent) and the new model against its parent
on the held-out cases in the paper's Table 2 layout (a table node). The Logic works from the
Python console without the panel.
"""

from __future__ import annotations

import importlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import qt
import slicer
from ParaspinalSegLib.errors import InputError, ParaspinalError
from ParaspinalSegTrainingLib.trainingset import CaseSummary, list_cases, remove_case
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from ParaspinalSeg import DEVICES, ParaspinalSegLogic, fillModelComboBox, isInstalled, nodesRemovedOnFailure, percentText

TRAIN_TEXT = "Train"
CANCEL_TEXT = "Cancel"
POLL_INTERVAL_MS = 500
CASE_COLUMNS = ("Case", "Slices", "Fat fraction", "Corrected", "Added", "Warnings")
CORRECTED_TEXT = {True: "yes", False: "no", None: "unknown"}
CURVE_X_COLUMN = "epoch"
CURVE_SERIES = (("loss", "Training loss"), ("validation_loss", "Validation loss"),
                ("validation_dice", "Validation Dice"))  # (column = key of the "epoch" events, legend)
PHASE_TEXT = {"measuring": "Measuring the parent on the corrected cases...", "training": "Training...",
              "registering": "Registering the new model...",
              "evaluating": "Evaluating the new model and its parent on the held-out cases..."}
# Training needs one package beyond ParaspinalSeg's (torch, segmentation-models-pytorch, ...).
TRAINING_REQUIREMENTS = {"albumentations": "albumentations>=1.4"}


class ParaspinalSegTraining(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ParaspinalSeg Training"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["ParaspinalSeg"]
        self.parent.contributors = ["ParaspinalSeg developers"]
        self.parent.helpText = (
            "Fine-tunes a ParaspinalSeg model on a site's corrected segmentations, in a separate process with live "
            "curves; Cancel keeps the last checkpoint and registers nothing. The result is a new model in the "
            "registry, never a replacement of its parent: the fine-tuned network averaged with its parent (half "
            "each) where the parent drew the corrected cases well, the fine-tuned network alone where its "
            "compartment Dice on them was below 0.80; compared with its parent on the cases it was not trained on. "
            "One corrected study may not improve a model that already segments the site well: compare both on other "
            "studies before making the new one active. Research use only, not a medical device."
        )
        self.parent.acknowledgementText = (
            "Method: Baur D. et al., Analysis of the paraspinal muscle morphology of the lumbar spine using "
            "a convolutional neural network (CNN), Eur Spine J 2021."
        )


def optionalNumber(value) -> float:
    """A figure from JSON (None where undefined) as a float, NaN for None."""
    return math.nan if value is None else float(value)


def figureText(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # None: undefined on these slices


def metricUnit(metric: str) -> str:
    return "mm2" if metric.endswith("_mm2") else "%" if metric.endswith("_pct") else ""


@dataclass(frozen=True)
class ParaspinalSegTrainingResult:
    """A registered fine-tuned model and how it and its parent did on the cases it was not trained on.

    figures: structure -> dice_new, dice_parent, csa_error_pct_new, csa_error_pct_parent (None where
    undefined); tables: "new" / "parent" -> structure -> metric -> mean, sd, ci95_low, ci95_high, n.
    """

    modelId: str
    parentId: str
    trainedCaseIds: tuple[str, ...]
    heldOutCaseIds: tuple[str, ...]
    heldOutKind: str
    figures: dict
    tables: dict
    markdown: str
    shareNote: str  # what was registered (the average with the parent, or the fine-tuned network alone) and why

    @classmethod
    def fromDict(cls, data: dict) -> ParaspinalSegTrainingResult:
        """From FineTuneResult.to_dict(), which is also what the training process reports."""
        return cls(data["model_id"], data["parent_id"], tuple(data["trained_case_ids"]),
                   tuple(data["held_out_case_ids"]), data["held_out_kind"], data["figures"], data["tables"],
                   data["markdown"], data["share_note"])

    def summaryText(self) -> str:
        if not self.heldOutCaseIds:
            return (f"New model {self.modelId} (parent {self.parentId}), trained on {len(self.trainedCaseIds)} case(s) "
                    f"of one patient: nothing was held out to compare it with its parent. {self.shareNote} "
                    "Compare both on other studies of the site before making it active.")
        lines = [(f"New model {self.modelId} (parent {self.parentId}), trained on {len(self.trainedCaseIds)} case(s). "
                  f"Mean Dice on {len(self.heldOutCaseIds)} {self.heldOutKind} case(s), parent -> new:")]
        lines += [f"{structure}: {figureText(f['dice_parent'])} -> {figureText(f['dice_new'])}"
                  for structure, f in self.figures.items()]
        return "\n".join(lines + [self.shareNote])


def curveColumns(epochEvents: list) -> dict[str, np.ndarray]:
    """The curves table: one row per epoch reported (folds one after the other)."""
    columns = {CURVE_X_COLUMN: np.arange(1, len(epochEvents) + 1, dtype=np.int32),
               "fold": np.array([event.fold or 0 for event in epochEvents], dtype=np.int32)}
    for name, _ in CURVE_SERIES:
        columns[name] = np.array([optionalNumber(event.data.get(name)) for event in epochEvents], dtype=np.float64)
    return columns


class ParaspinalSegTrainingLogic(ScriptedLoadableModuleLogic):
    """Training set, fine-tuning (blocking, or in a separate process) and the model registry;
    usable from the Python console."""

    # -- dependencies -----------------------------------------------------------------------

    def setupPythonRequirements(self) -> None:
        """ParaspinalSeg's packages, then albumentations, each installed after the user agrees."""
        ParaspinalSegLogic().setupPythonRequirements()
        missing = [name for name in TRAINING_REQUIREMENTS if not isInstalled(name)]
        if not missing:
            return
        specs = [TRAINING_REQUIREMENTS[name] for name in missing]
        if not slicer.util.confirmOkCancelDisplay(
            f"Training needs Python packages that are not installed: {', '.join(specs)}.\n\nInstall them now with "
            "pip? This needs a network connection; torch, numpy and SimpleITK stay as they are.",
            windowTitle="ParaspinalSeg Training: install Python packages",
        ):
            raise ParaspinalError(f"Not installed: {', '.join(missing)}. Training cannot run without them; press "
                                  "Train again and accept the installation.")
        ParaspinalSegLogic.pipInstallKeepingCore(specs)
        importlib.invalidate_caches()
        stillMissing = [name for name in missing if not isInstalled(name)]
        if stillMissing:
            raise ParaspinalError(f"{', '.join(stillMissing)}: installed; restart Slicer to use them.")

    # -- training set ---------------------------------------------------------------------------

    @staticmethod
    def trainingSetPath(folder, needsCases: bool = False) -> Path:
        """The folder as a path, refusing none; with needsCases, checking that it holds cases."""
        from ParaspinalSegTrainingLib.datasets import find_cases

        if not str(folder or "").strip():
            raise InputError("No training-set folder: choose the folder of the training set first.")
        if needsCases:
            find_cases(Path(folder))
        return Path(folder)

    def listCases(self, trainingSetFolder) -> list[CaseSummary]:
        """The cases with slices, fat fraction, corrected or not, date and warnings; [] if none yet."""
        return list_cases(self.trainingSetPath(trainingSetFolder))

    def addCase(self, volumeNode, segmentationNode, trainingSetFolder, author: str = "",
                patientKey: str | None = None) -> Path:
        """Add a volume and its corrected segmentation as a new case (as ParaspinalSeg's Add to
        training set does: the pseudonym's link to patientKey is kept only if one is given)."""
        folder = self.trainingSetPath(trainingSetFolder)
        if volumeNode is None or segmentationNode is None:
            raise InputError("Choose the volume and its segmentation to add.")
        return ParaspinalSegLogic().addToTrainingSet(volumeNode, segmentationNode, folder, author=author,
                                                     patientKey=patientKey)

    def removeCase(self, trainingSetFolder, caseId: str) -> Path:
        """Move a case whole into the training set's trash/ folder; where it went."""
        return remove_case(self.trainingSetPath(trainingSetFolder), caseId)

    # -- models and training ----------------------------------------------------------------------

    def setActiveModel(self, modelId: str) -> None:
        """Make a registered model the one ParaspinalSeg and `paraspinal` use by default."""
        from ParaspinalSegLib.network.registry import ModelRegistry

        ModelRegistry().set_active(modelId)

    def fineTuneSettings(self, epochs=None, learningRate=None, folds=None, device=None, freezeEncoderEpochs=None,
                         parentShare=None, cpuBfloat16=None):
        """FineTuneSettings with the given values (None keeps the library's default), once the
        packages training needs are installed. cpuBfloat16: train under bfloat16 autocast on the CPU
        (the training setting `mixed_precision_cpu`, `paraspinal train --cpu-bfloat16`)."""
        self.setupPythonRequirements()
        from ParaspinalSegTrainingLib.finetune import FineTuneSettings

        recipe = FineTuneSettings()
        return recipe.with_overrides(epochs=epochs, learning_rate=learningRate, folds=folds, device=device,
                                     freeze_encoder_epochs=freezeEncoderEpochs, parent_share=parentShare,
                                     config=recipe.config.with_overrides(mixed_precision_cpu=cpuBfloat16))

    def train(self, trainingSetFolder, baseModel=None, epochs=None, learningRate=None, folds=None, device=None,
              freezeEncoderEpochs=None, progressCallback=None, parentShare=None,
              cpuBfloat16=None) -> ParaspinalSegTrainingResult:
        """Fine-tune baseModel (registered id or folder; the active model if None) on a training set in
        this process (blocking), register the new model and compare it with its parent. Settings left
        None take FineTuneSettings' defaults (parentShare: the parent's share of the registered weight average;
        None: 0.5 where the parent's compartment Dice on the corrected cases is at least 0.80, else 0; 0 registers
        the fine-tuned network alone; cpuBfloat16: bfloat16 autocast on the CPU, off by default). progressCallback
        (fraction, message) may raise OperationCancelled: then nothing is registered and the run keeps its last
        checkpoint."""
        folder = self.trainingSetPath(trainingSetFolder, needsCases=True)
        settings = self.fineTuneSettings(epochs, learningRate, folds, device, freezeEncoderEpochs, parentShare,
                                         cpuBfloat16)
        from ParaspinalSegTrainingLib.finetune import fine_tune

        result = fine_tune(folder, baseModel, settings, progress=progressCallback)
        return ParaspinalSegTrainingResult.fromDict(result.to_dict())

    def startTraining(self, trainingSetFolder, baseModel=None, epochs=None, learningRate=None, folds=None, device=None,
                      freezeEncoderEpochs=None, workFolder=None, parentShare=None, cpuBfloat16=None):
        """The same fine-tuning in a separate process, returned at once (TrainingProcess: poll() for
        its events, cancel(), then `outcome`)."""
        folder = self.trainingSetPath(trainingSetFolder, needsCases=True)
        settings = self.fineTuneSettings(epochs, learningRate, folds, device, freezeEncoderEpochs, parentShare,
                                         cpuBfloat16)
        from ParaspinalSegTrainingLib.trainprocess import TrainingProcess

        process = TrainingProcess(folder, baseModel, settings, work_folder=workFolder)
        process.start()
        return process

    # -- nodes ----------------------------------------------------------------------------------

    def createCurveNodes(self, name: str):
        """An (empty) table for the per-epoch curves and a chart of them: (table, chart)."""
        addNode = ParaspinalSegLogic.addNode  # a new node, listed in `created`
        with nodesRemovedOnFailure() as created:
            table = addNode("vtkMRMLTableNode", f"{name} curves", created)
            chart = addNode("vtkMRMLPlotChartNode", f"{name} curves", created)
            chart.SetTitle(f"{name}: loss and validation Dice")
            chart.SetXAxisTitle("epoch (folds one after the other)")
            chart.SetYAxisTitle("loss, Dice")
            chart.SetLegendVisibility(True)
            for column, legend in CURVE_SERIES:
                series = addNode("vtkMRMLPlotSeriesNode", legend, created)
                series.SetAndObserveTableNodeID(table.GetID())
                series.SetXColumnName(CURVE_X_COLUMN)
                series.SetYColumnName(column)
                series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeLine)
                series.SetUniqueColor()
                chart.AddAndObservePlotSeriesNodeID(series.GetID())
        return table, chart

    def updateCurves(self, tableNode, epochEvents: list) -> None:
        """Write the epochs reported so far (trainprocess "epoch" events) into the curves table."""
        columns = curveColumns(epochEvents)
        slicer.util.updateTableFromArray(tableNode, list(columns.values()), columnNames=list(columns))

    def writeEvaluationTable(self, result: ParaspinalSegTrainingResult, tableNode=None):
        """The paper's Table 2 for the parent and the new model on the held-out cases: one row per
        structure and model, one text column per metric (mean ± SD [95 % CI] over the slices)."""
        from ParaspinalSegTrainingLib.evaluation import METRICS, Summary

        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", f"{result.modelId} vs parent (Table 2)")
        tableNode.RemoveAllColumns()
        for index, name in enumerate(("structure", "model", *METRICS)):
            tableNode.AddColumn()
            tableNode.RenameColumn(index, name)
        for structure in result.tables["new"]:
            for modelId, key in ((result.parentId, "parent"), (result.modelId, "new")):
                figures = result.tables[key][structure]
                texts = [Summary(*(optionalNumber(figures[m][k]) for k in ("mean", "sd", "ci95_low", "ci95_high")),
                                 figures[m]["n"]).text() for m in METRICS]
                row = tableNode.AddEmptyRow()
                for column, text in enumerate((structure, modelId, *texts)):
                    tableNode.SetCellText(row, column, text)
        for metric in METRICS:
            tableNode.SetColumnUnitLabel(metric, metricUnit(metric))
            tableNode.SetColumnDescription(metric, f"{metric}: mean ± SD [95 % CI] over the slices of the "
                                                   f"{result.heldOutKind} cases {', '.join(result.heldOutCaseIds)}")
        return tableNode


def caseCells(case: CaseSummary) -> tuple[str, ...]:
    """One row of the case table, in CASE_COLUMNS order."""
    return (case.case_id, str(case.slices), percentText(case.mean_fat_fraction_pct), CORRECTED_TEXT[case.corrected],
            case.added[:10], "; ".join(case.warnings))


def epochText(event) -> str:
    """The progress bar's text after an epoch (Qt replaces %p with the percentage)."""
    return (f"epoch {event.epoch}/{event.epochs}, loss {optionalNumber(event.loss):.3f}, "
            f"validation Dice {optionalNumber(event.validation_dice):.3f} (%p%)")


class ParaspinalSegTrainingWidget(ScriptedLoadableModuleWidget):
    """The panel: training set, settings, Train (Cancel while running), result."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.ui = None
        self.pollTimer = None
        self.process = None  # the TrainingProcess while one runs
        self.epochEvents = []
        self.curvesTable = self.curvesChart = self.evaluationTable = None
        self.result = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ParaspinalSegTraining.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ParaspinalSegTrainingLogic()
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(POLL_INTERVAL_MS)
        self.pollTimer.connect("timeout()", self.onPoll)
        self.ui.casesTableWidget.setColumnCount(len(CASE_COLUMNS))
        self.ui.casesTableWidget.setHorizontalHeaderLabels(list(CASE_COLUMNS))
        for value, text in DEVICES:
            self.ui.deviceComboBox.addItem(text, value)
        self.fillModels()
        self.ui.trainingSetPathLineEdit.connect("currentPathChanged(QString)", self.refreshCases)
        self.ui.casesTableWidget.connect("itemSelectionChanged()", self.updateButtons)
        for selector in (self.ui.inputVolumeSelector, self.ui.segmentationSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.ui.refreshButton.connect("clicked(bool)", self.refreshCases)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCase)
        self.ui.addCaseButton.connect("clicked(bool)", self.onAddCase)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.showCurvesButton.connect("clicked(bool)", self.onShowCurves)
        self.ui.showEvaluationButton.connect("clicked(bool)", self.onShowEvaluation)
        self.ui.makeActiveButton.connect("clicked(bool)", self.onMakeActive)
        self.ui.progressBar.visible = False
        self.updateButtons()

    def cleanup(self):
        """Closing the module stops a running training (its last checkpoint stays)."""
        self.pollTimer.stop()
        if self.process is not None:
            self.process.cancel()

    def fillModels(self):
        fillModelComboBox(self.ui.baseModelComboBox, self.ui.statusLabel)

    @property
    def trainingSetFolder(self) -> str:
        return self.ui.trainingSetPathLineEdit.currentPath

    @property
    def parentShare(self) -> float | None:
        """The parent share box's value; None at its lowest step, "automatic" (FineTuneSettings chooses)."""
        value = self.ui.parentShareSpinBox.value
        return None if value < 0 else value

    def updateButtons(self, *unused):
        running = self.process is not None
        table = self.ui.casesTableWidget
        self.ui.addCaseButton.enabled = bool(self.trainingSetFolder) and not running and None not in (
            self.ui.inputVolumeSelector.currentNode(), self.ui.segmentationSelector.currentNode())
        self.ui.removeCaseButton.enabled = not running and table.currentRow() >= 0
        self.ui.refreshButton.enabled = bool(self.trainingSetFolder)
        ready = table.rowCount > 0 and self.ui.baseModelComboBox.count > 0
        self.ui.trainButton.enabled = (not self.process.cancel_requested) if running else ready
        self.ui.settingsCollapsibleButton.enabled = not running
        self.ui.showCurvesButton.enabled = self.curvesChart is not None
        self.ui.showEvaluationButton.enabled = self.evaluationTable is not None
        self.ui.makeActiveButton.enabled = self.result is not None and not running

    # -- training set ---------------------------------------------------------------------------

    def refreshCases(self, *unused):
        """List the training set's cases in the table; say how many there are and how many have warnings."""
        table = self.ui.casesTableWidget
        table.setRowCount(0)
        with slicer.util.tryWithErrorDisplay("Reading the training set failed."):
            cases = self.logic.listCases(self.trainingSetFolder) if self.trainingSetFolder else []
            table.setRowCount(len(cases))
            for row, case in enumerate(cases):
                for column, text in enumerate(caseCells(case)):
                    item = qt.QTableWidgetItem(text)
                    item.setToolTip("\n".join(case.warnings) if CASE_COLUMNS[column] == "Warnings" else text)
                    table.setItem(row, column, item)
            table.resizeColumnsToContents()
            flagged = sum(1 for case in cases if case.warnings)
            self.ui.statusLabel.text = f"{len(cases)} case(s) in the training set, {flagged} with warnings."
        self.updateButtons()

    def onAddCase(self):
        with slicer.util.tryWithErrorDisplay("Adding the case to the training set failed.", waitCursor=True):
            case = self.logic.addCase(self.ui.inputVolumeSelector.currentNode(),
                                      self.ui.segmentationSelector.currentNode(), self.trainingSetFolder,
                                      author=self.ui.authorLineEdit.text)
            self.refreshCases()
            self.ui.statusLabel.text = f"Added case {case.name}. {self.ui.statusLabel.text}"

    def onRemoveCase(self):
        caseId = self.ui.casesTableWidget.item(self.ui.casesTableWidget.currentRow(), 0).text()
        if not slicer.util.confirmOkCancelDisplay(
            f"Remove case {caseId} from the training set?\n\nIt is moved whole to the training set's trash/ folder, "
            "from where it can be moved back.", windowTitle="ParaspinalSeg Training: remove case"):
            return
        with slicer.util.tryWithErrorDisplay("Removing the case failed."):
            target = self.logic.removeCase(self.trainingSetFolder, caseId)
            self.refreshCases()
            self.ui.statusLabel.text = f"Removed case {caseId} (moved to {target}). {self.ui.statusLabel.text}"

    # -- training -------------------------------------------------------------------------------

    def onTrainButton(self):
        if self.process is not None:
            self.process.cancel()
            self.ui.statusLabel.text = "Cancelling: the training stops after the current batch..."
            self.updateButtons()
            return
        baseModel = self.ui.baseModelComboBox.currentData
        with slicer.util.tryWithErrorDisplay("Training could not start.", waitCursor=True):
            self.process = self.logic.startTraining(
                self.trainingSetFolder, baseModel, epochs=self.ui.epochsSpinBox.value,
                learningRate=self.ui.learningRateSpinBox.value, folds=self.ui.foldsSpinBox.value,
                device=self.ui.deviceComboBox.currentData, freezeEncoderEpochs=self.ui.freezeEncoderSpinBox.value,
                parentShare=self.parentShare, cpuBfloat16=self.ui.cpuBfloat16CheckBox.checked)
        self.epochEvents = []
        self.curvesTable, self.curvesChart = self.logic.createCurveNodes(f"{baseModel} fine-tuning")
        self.onShowCurves()
        self.setRunning(True)
        self.ui.statusLabel.text = "Starting the training process..."
        self.pollTimer.start()

    def setRunning(self, running: bool):
        self.ui.trainButton.text = CANCEL_TEXT if running else TRAIN_TEXT
        self.ui.progressBar.value = 0
        self.ui.progressBar.format = "%p%"
        self.ui.progressBar.visible = running
        self.updateButtons()

    def onPoll(self):
        """Timer: show what the training process reported since the last call."""
        for event in self.process.poll():
            if event.kind == "progress":
                self.ui.progressBar.value = round(100 * (event.fraction or 0.0))
                self.ui.statusLabel.text = event.message
            elif event.kind == "phase":
                self.ui.statusLabel.text = PHASE_TEXT.get(event.phase, event.phase)
            elif event.kind == "epoch":
                self.epochEvents.append(event)
                self.logic.updateCurves(self.curvesTable, self.epochEvents)
                self.ui.progressBar.format = epochText(event)
        if self.process.outcome is not None:
            self.finishTraining(self.process.outcome)

    def finishTraining(self, outcome):
        self.pollTimer.stop()
        self.process = None
        self.setRunning(False)
        if outcome.status == "finished":
            self.showResult(ParaspinalSegTrainingResult.fromDict(outcome.result))
        elif outcome.status == "cancelled":
            self.ui.statusLabel.text = (f"Cancelled ({outcome.error.rstrip('.')}). Nothing was registered; Train again "
                                        "with the same settings to resume the run from its last checkpoint.")
        else:
            self.ui.statusLabel.text = "Training failed."
            slicer.util.errorDisplay(f"Training failed:\n{outcome.error}", windowTitle="ParaspinalSeg Training")

    def showResult(self, result: ParaspinalSegTrainingResult):
        self.result = result
        self.evaluationTable = self.logic.writeEvaluationTable(result)
        self.ui.resultLabel.text = result.summaryText()
        self.ui.makeActiveButton.text = f"Make {result.modelId} the active model"
        self.ui.statusLabel.text = f"Registered the new model {result.modelId}."
        self.fillModels()
        self.updateButtons()

    def onShowCurves(self):
        slicer.modules.plots.logic().ShowChartInLayout(self.curvesChart)

    def onShowEvaluation(self):
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(self.evaluationTable.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def onMakeActive(self):
        with slicer.util.tryWithErrorDisplay("The model could not be made the active one."):
            self.logic.setActiveModel(self.result.modelId)
            self.fillModels()
            self.ui.statusLabel.text = (f"{self.result.modelId} is now the active model: ParaspinalSeg and the "
                                        "paraspinal command use it by default (reopen ParaspinalSeg's panel to see it "
                                        "chosen there).")


# -- self-test ------------------------------------------------------------------------------------


class ParaspinalSegTrainingTest(ScriptedLoadableModuleTest):
    """Two corrected cases from the shipped sample, one short epoch on the CPU from the console,
    then a second run in the training process cancelled midway that loses nothing."""

    SLICES_PER_CASE = 2
    TIMEOUT_S = 900

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_train_a_new_model_and_cancel_a_second_run()

    def addSampleCases(self, logic, trainingSet: Path, firstSlices=(2, 6)) -> list[str]:
        """Cases of a few sample slices each, every segment marked corrected; their case ids."""
        from ParaspinalSegLib.output import mrml
        from ParaspinalSegLib.cli import sample_folder
        from ParaspinalSegLib.read.reading import read_study
        from ParaspinalSegLib.read.segmentation import load_segmentation

        series = read_study(sample_folder() / "study").series
        volume = mrml.volume_from_series(series)
        truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
        labels = mrml.volume_from_series(series, truth).array
        status = slicer.vtkSlicerSegmentationsModuleLogic
        caseIds = []
        for first in firstSlices:
            crop = slice(first, first + self.SLICES_PER_CASE)
            matrix = volume.ijk_to_ras.copy()
            matrix[:3, 3] += first * matrix[:3, 2]  # the crop's first slice is the volume's slice `first`
            volumeNode = slicer.util.addVolumeFromArray(volume.array[crop], ijkToRAS=matrix,
                                                        name=f"sample from slice {first}")
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"corrected {first}")
            ParaspinalSegLogic().setSegments(segmentationNode, volumeNode, labels[crop])
            segmentation = segmentationNode.GetSegmentation()
            for index in range(segmentation.GetNumberOfSegments()):
                status.SetSegmentStatus(segmentation.GetSegment(segmentation.GetNthSegmentID(index)), status.Completed)
            caseIds.append(logic.addCase(volumeNode, segmentationNode, trainingSet, author="self-test").name)
        return sorted(caseIds)

    @staticmethod
    def heldOutDice(modelId: str, trainingSet: Path, caseIds) -> float:
        """Compartment Dice (per side) of a model's prediction on the named cases, mean over their slices,
        computed apart from the training's own evaluation."""
        from ParaspinalSegLib.network.inference import predict_series
        from ParaspinalSegLib.measure.measurement import sided_dice
        from ParaspinalSegLib.network.modelfile import load_model
        from ParaspinalSegLib.read.reading import read_study
        from ParaspinalSegLib.network.registry import resolve_model
        from ParaspinalSegTrainingLib.datasets import case_labels, find_cases

        model = load_model(resolve_model(modelId))
        values = []
        for case in find_cases(trainingSet):
            if case.case_id in caseIds:
                series = read_study(case.image).series
                values += [sided_dice(t, p) for t, p in zip(case_labels(case, series)[0], predict_series(model, series))]
        return float(np.nanmean(values))

    def waitFor(self, process, until=None):
        """Poll the training process, keeping Slicer responsive, until it ends or `until()` is true."""
        deadline = time.monotonic() + self.TIMEOUT_S
        while process.running and not (until and until()):
            self.assertLess(time.monotonic(), deadline, "the training process did not finish in time")
            process.poll()
            slicer.app.processEvents()
            time.sleep(0.2)
        return process.outcome

    def test_train_a_new_model_and_cancel_a_second_run(self):
        from ParaspinalSegLib.network.modelfile import WEIGHTS_FILE, load_model, sha256_of
        from ParaspinalSegLib.network.registry import ModelRegistry
        from ParaspinalSegTrainingLib.evaluation import STRUCTURES

        logic = ParaspinalSegTrainingLogic()
        # A temporary model home: the test registers nothing in the user's registry.
        with tempfile.TemporaryDirectory() as folder, mock.patch.dict(os.environ, {"PARASPINALSEG_HOME": folder}):
            trainingSet = Path(folder) / "training set"
            caseIds = self.addSampleCases(logic, trainingSet)
            cases = logic.listCases(trainingSet)
            self.assertEqual([(c.case_id, c.corrected, c.slices) for c in cases],
                             [(caseId, True, self.SLICES_PER_CASE) for caseId in caseIds])
            parent = ModelRegistry().active().model_id

            fractions = []
            result = logic.train(trainingSet, parent, epochs=1, device="cpu", freezeEncoderEpochs=0,
                                 progressCallback=lambda fraction, message: fractions.append(fraction))
            model = ModelRegistry().get(result.modelId)
            self.assertEqual((model.card.parent, result.parentId), (parent, parent))
            self.assertEqual(model.card.training_data["case_ids"], caseIds)
            self.assertEqual(sorted(result.trainedCaseIds + result.heldOutCaseIds), caseIds)
            self.assertEqual(set(result.figures), set(STRUCTURES))
            self.assertEqual(fractions, sorted(fractions))
            overall = result.figures["overall muscle"]
            for modelId, key in ((result.modelId, "dice_new"), (parent, "dice_parent")):
                self.assertAlmostEqual(overall[key], self.heldOutDice(modelId, trainingSet, result.heldOutCaseIds), 5)
            self.delayDisplay(f"Trained {result.modelId} from {parent} on {', '.join(result.trainedCaseIds)}: "
                              f"compartment Dice on {', '.join(result.heldOutCaseIds)} "
                              f"{overall['dice_parent']:.3f} -> {overall['dice_new']:.3f}")

            second = logic.startTraining(trainingSet, parent, epochs=3, device="cpu", freezeEncoderEpochs=0)
            self.waitFor(second, until=lambda: any(event.kind == "epoch" for event in second.events))
            second.cancel()
            cancelled = self.waitFor(second)
            self.assertEqual(cancelled.status, "cancelled", cancelled.error)
            self.assertEqual([m.model_id for m in ModelRegistry().models() if not m.shipped], [result.modelId])
            self.assertEqual(sha256_of(model.folder / WEIGHTS_FILE), load_model(model.folder).card.weights_sha256)
            self.delayDisplay("A second run in the training process, cancelled after its first epoch, "
                              "registered nothing")
