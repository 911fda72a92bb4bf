"""ParaspinalSeg: "Segment & Grade" of the lumbar paraspinal muscles (3D Slicer scripted module).

A thin layer over ParaspinalSegLib: an axial T2 volume node in; the library segments, measures
and grades (the same functions as the command line); a segmentation node with four segments, a
table of per-slice measurements, two plots and the grade (as node attributes) out. The conversion
between MRML arrays and the library's slices is ParaspinalSegLib.output.mrml. The Logic works from the
Python console without the panel.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import slicer
import vtk
from ParaspinalSegLib.output import mrml
from ParaspinalSegLib.errors import InputError, OperationCancelled, ParaspinalError
from ParaspinalSegLib.measure.fat import FatMethod
from ParaspinalSegLib.labels import SEGMENTS
from ParaspinalSegLib.pipeline import FAT_FROM_MODEL, MeasurementResult
from ParaspinalSegLib.measure.quality import grade_caution
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

log = logging.getLogger(__name__)

APPLY_TEXT = "Segment && Grade"  # "&&" shows as one "&" on a Qt button
CANCEL_TEXT = "Cancel"
INFERENCE_BATCH = 4  # slices per network call; Slicer handles events (and Cancel) between calls
DEVICES = (("auto", "Best available"), ("cpu", "CPU"), ("cuda", "NVIDIA GPU (CUDA)"), ("mps", "Apple GPU (MPS)"))
FAT_METHODS = (
    (FAT_FROM_MODEL, "The model's fat class"),
    (FatMethod.GMM.value, "Gaussian mixture inside the compartments"),
    (FatMethod.OTSU.value, "Otsu threshold inside the compartments"),
)

# Python packages Slicer does not bundle: torch comes from the PyTorch extension, the others from
# pip with constraints that keep torch, torchvision, numpy and Slicer's own SimpleITK as they are.
TORCH = "torch"
PIP_REQUIREMENTS = {
    "segmentation_models_pytorch": "segmentation-models-pytorch>=0.4",
    "safetensors": "safetensors>=0.4",
    "PIL": "pillow>=10",
    "onnxruntime": "onnxruntime>=1.17",  # runs the model on the CPU (1.5x torch's speed, README: Speed)
    "openvino": "openvino>=2024.0",  # faster still once loaded (bfloat16 on CPUs with AMX or AVX-512 BF16), with onnx
    "onnx": "onnx>=1.16",
}
KEPT_DISTRIBUTIONS = ("torch", "torchvision", "numpy", "SimpleITK", "pydicom")
# Export to DICOM needs highdicom: Slicer 5.12 bundles it (0.27.0), on 5.10 it comes from pip.
HIGHDICOM = "highdicom"
HIGHDICOM_REQUIREMENT = "highdicom>=0.27,<0.30"
DICOM_INSTANCE_UIDS = "DICOM.instanceUIDs"  # the attribute of a volume loaded by Slicer's DICOM module


def isInstalled(importName: str) -> bool:
    return importlib.util.find_spec(importName) is not None


def missingPythonPackages() -> list[str]:
    """Import names of the needed packages that cannot be imported."""
    return [name for name in (TORCH, *PIP_REQUIREMENTS) if not isInstalled(name)]


def keptVersionsConstraints() -> str:
    """pip constraints pinning the installed versions of KEPT_DISTRIBUTIONS."""
    lines = []
    for name in KEPT_DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            lines.append(f"{name}=={importlib.metadata.version(name)}")
    return "\n".join(lines) + "\n"


def fillModelComboBox(comboBox, statusLabel) -> None:
    """The registered models in a combo box (data = model id), the active one selected; a registry
    problem is shown in statusLabel."""
    try:
        models, active = ParaspinalSegLogic().modelChoices()
    except ParaspinalError as error:
        models, active = [], None
        statusLabel.text = str(error)
    comboBox.clear()
    for modelId in models:
        comboBox.addItem(modelId, modelId)
    if active:
        comboBox.setCurrentIndex(comboBox.findData(active))


class ParaspinalSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ParaspinalSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["ParaspinalSeg developers"]
        self.parent.helpText = (
            "Segments the erector spinae + multifidus compartment (inside the fascia) and its fat on each "
            "slice of an axial T2 series with a U-Net, measures the cross-sectional area (mm2) and fat "
            "fraction (%) per slice and side, and grades the patient with the simplified Goutallier "
            "classification of the mean fat fraction: I &lt;= 10 %, II 10-50 %, III &gt; 50 %.<br>"
            "Limits: axial slices only (normal within 40 degrees of the body axis); the shipped model was "
            "trained on synthetic images: check the segments, correct them in the Segment Editor and press "
            "Update measurements. Research use only, not a medical device."
        )
        self.parent.acknowledgementText = (
            "Method: Baur D. et al., Analysis of the paraspinal muscle morphology of the lumbar spine using "
            "a convolutional neural network (CNN), Eur Spine J 2021."
        )


@dataclass
class ParaspinalSegResult:
    """The nodes a run wrote and the patient's figures (library result in `measurement`)."""

    segmentationNode: object
    tableNode: object
    chartNodes: dict
    measurement: MeasurementResult

    @property
    def grade(self) -> str:
        return self.measurement.summary.grade

    @property
    def meanFatFractionRightPct(self) -> float:
        return self.measurement.summary.mean_fat_fraction_right_pct

    @property
    def meanFatFractionLeftPct(self) -> float:
        return self.measurement.summary.mean_fat_fraction_left_pct


@contextlib.contextmanager
def nodesRemovedOnFailure():
    """Yield a list for the nodes a step creates; on any failure they leave the scene again."""
    created = []
    try:
        yield created
    except BaseException:
        for node in created:
            slicer.mrmlScene.RemoveNode(node)
        raise


class ParaspinalSegLogic(ScriptedLoadableModuleLogic):
    """Segment & Grade, Update measurements, batch folders; usable from the Python console."""

    _loadedModel = None  # (folder, device, model): kept for the next run of any Logic

    # -- dependencies -----------------------------------------------------------------------

    def setupPythonRequirements(self) -> None:
        """Install missing packages after the user agrees; raise ParaspinalError if not usable."""
        missing = missingPythonPackages()
        if not missing:
            return
        names = ", ".join(missing)
        if not slicer.util.confirmOkCancelDisplay(
            f"ParaspinalSeg needs Python packages that are not installed: {names}.\n\nInstall them now? "
            "This needs a network connection and may take several minutes. torch comes from the PyTorch "
            "extension; the others from pip, leaving torch, numpy and SimpleITK as they are.",
            windowTitle="ParaspinalSeg: install Python packages",
        ):
            raise ParaspinalError(
                f"Not installed: {names}. ParaspinalSeg cannot segment without them; press Segment & Grade "
                "again and accept the installation."
            )
        if TORCH in missing:
            self._installTorch()
        specs = [PIP_REQUIREMENTS[name] for name in missing if name in PIP_REQUIREMENTS]
        if specs:
            self.pipInstallKeepingCore(specs)
        importlib.invalidate_caches()
        stillMissing = ", ".join(missingPythonPackages())
        if stillMissing:
            if slicer.util.confirmYesNoDisplay(
                f"{stillMissing}: installed, but usable only after Slicer restarts. Restart now?",
                windowTitle="ParaspinalSeg: restart needed",
            ):
                slicer.util.restart()
            raise ParaspinalError(f"{stillMissing}: installed; restart Slicer to use them.")

    @staticmethod
    def _installTorch() -> None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise ParaspinalError(
                "torch is installed through the PyTorch extension, which is missing: install 'PyTorch' "
                "from the Extensions Manager, restart Slicer and try again."
            ) from None
        log.info("installing torch through the PyTorch extension")
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise ParaspinalError("PyTorch could not be installed; try the PyTorch Utils module and see its log.")

    @staticmethod
    def pipInstallKeepingCore(specs: list[str]) -> None:
        log.info("installing %s with pip", ", ".join(specs))
        with tempfile.TemporaryDirectory() as folder:
            constraints = Path(folder) / "constraints.txt"
            constraints.write_text(keptVersionsConstraints())
            slicer.util.pip_install(["-c", str(constraints), *specs])

    # -- models and volumes -------------------------------------------------------------------

    def modelChoices(self) -> tuple[list[str], str | None]:
        """Ids of the registered models, and the active one (None if none can be chosen)."""
        from ParaspinalSegLib.network.registry import ModelRegistry

        registry = ModelRegistry()
        ids = [model.model_id for model in registry.models()]
        try:
            return ids, registry.active().model_id
        except ParaspinalError:
            return ids, None

    def loadModel(self, modelId: str | None = None, device: str | None = None):
        """The loaded model (active one if modelId is None) and the device it runs on."""
        from ParaspinalSegLib.network.inference import choose_device
        from ParaspinalSegLib.network.modelfile import load_model
        from ParaspinalSegLib.network.registry import resolve_model

        folder, device = resolve_model(modelId), choose_device(device or "auto")
        cached = ParaspinalSegLogic._loadedModel
        if cached is None or cached[:2] != (folder, device):
            # kept loaded, as in a batch: OpenVINO where installed, else ONNX Runtime; torch on a GPU
            model = load_model(folder, device, backend="auto", keep_loaded=True)
            ParaspinalSegLogic._loadedModel = (folder, device, model)
        return ParaspinalSegLogic._loadedModel[2], device

    @staticmethod
    def ijkToRas(volumeNode):
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        return slicer.util.arrayFromVTKMatrix(matrix)

    def axialProblem(self, volumeNode) -> str | None:
        """A message for the panel when the volume is not axial; None when it is."""
        return mrml.axial_problem(self.ijkToRas(volumeNode), volumeNode.GetName())

    def seriesFromVolume(self, volumeNode):
        """The volume's slices for the library; NoSuitableSeriesError when it is not axial."""
        if volumeNode is None:
            raise InputError("No input volume: select an axial T2 volume.")
        matrix = self.ijkToRas(volumeNode)
        mrml.require_axial(matrix, volumeNode.GetName())
        return mrml.series_from_volume(slicer.util.arrayFromVolume(volumeNode), matrix, volumeNode.GetName())

    # -- Segment & Grade ------------------------------------------------------------------------

    def process(self, volumeNode, modelId=None, device=None, fatMethod=None, progressCallback=None,
                segmentationNode=None, tableNode=None, mirror=False) -> ParaspinalSegResult:
        """Segment, measure and grade a volume; new output nodes unless given. progressCallback
        (fraction, message) may raise OperationCancelled: then the scene stays as it was. mirror:
        mirrored test-time augmentation (sides swapped; twice the network time)."""
        from ParaspinalSegLib.pipeline import segment_series

        series = self.seriesFromVolume(volumeNode)
        self.setupPythonRequirements()
        if progressCallback:
            progressCallback(0.0, "loading the model")
        model, device = self.loadModel(modelId, device)
        measurement = segment_series(series, model, fat_method=fatMethod or FAT_FROM_MODEL, device=device,
                                     batch_size=INFERENCE_BATCH, progress=progressCallback, mirror=mirror)
        labels = mrml.label_volume(series, measurement.labels, slicer.util.arrayFromVolume(volumeNode).shape)
        with nodesRemovedOnFailure() as created:
            if segmentationNode is None:
                segmentationNode = self.addNode("vtkMRMLSegmentationNode", f"{volumeNode.GetName()} paraspinal", created)
            self.setSegments(segmentationNode, volumeNode, labels)
            return self._writeMeasurements(segmentationNode, measurement, tableNode, created)

    def setSegments(self, segmentationNode, volumeNode, labels) -> None:
        """Replace the segments with the scheme's four (fixed names, colours, SNOMED CT terminology)
        from a [K, J, I] label array on the volume's grid."""
        from ParaspinalSegLib.output.segnrrd import terminology_entry

        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.SetNodeReferenceID(segmentationNode.GetReferenceImageGeometryReferenceRole(), volumeNode.GetID())
        segmentationNode.CreateDefaultDisplayNodes()
        segmentation = segmentationNode.GetSegmentation()
        segmentation.RemoveAllSegments()
        masks = mrml.segment_masks(labels)
        for style in SEGMENTS:
            segmentId = segmentation.AddEmptySegment(mrml.segment_id(style), style.name, style.color)
            segmentation.GetSegment(segmentId).SetTerminology(terminology_entry(style.label))
            slicer.util.updateSegmentBinaryLabelmapFromArray(masks[style.label], segmentationNode, segmentId, volumeNode)

    # -- corrections ----------------------------------------------------------------------------

    def labelsFromSegmentation(self, segmentationNode, volumeNode, series) -> list:
        """Per-slice scheme label maps (series order) from the four segments, found by name."""
        segmentation = segmentationNode.GetSegmentation()
        masks = {}
        for style in SEGMENTS:
            segmentId = segmentation.GetSegmentIdBySegmentName(style.name)
            if not segmentId:
                raise InputError(
                    f"'{segmentationNode.GetName()}' has no segment named '{style.name}'; ParaspinalSeg "
                    f"measures its segments by name ({', '.join(s.name for s in SEGMENTS)})."
                )
            masks[style.label] = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)
        return mrml.label_planes(series, mrml.labels_from_segment_masks(masks))

    def updateMeasurements(self, segmentationNode, volumeNode, tableNode=None) -> ParaspinalSegResult:
        """Measure the (edited) segments again, as `paraspinal measure` does; the segments and their
        status tags are only read."""
        from ParaspinalSegLib.pipeline import measure_series

        series = self.seriesFromVolume(volumeNode)
        labels = self.labelsFromSegmentation(segmentationNode, volumeNode, series)
        measurement = measure_series(series, labels, needs_fat=False, source="the edited segmentation",
                                     model=segmentationNode.GetAttribute(mrml.MODEL_ATTRIBUTE) or None)
        with nodesRemovedOnFailure() as created:
            return self._writeMeasurements(segmentationNode, measurement, tableNode, created)

    def correctedSegments(self, segmentationNode) -> list[str]:
        """Names of the segments marked "completed" (corrected) in the Segment Editor's status."""
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        segmentation = segmentationNode.GetSegmentation()
        corrected = []
        for style in SEGMENTS:
            segmentId = segmentation.GetSegmentIdBySegmentName(style.name)
            if segmentId and logic.GetSegmentStatus(segmentation.GetSegment(segmentId)) == logic.Completed:
                corrected.append(style.name)
        return corrected

    def addToTrainingSet(self, volumeNode, segmentationNode, trainingSetFolder, author: str = "",
                         patientKey: str | None = None) -> Path:
        """Add the volume and its corrected segmentation as a case of a training set; the case folder.

        The case gets a random pseudonym; only with a patientKey is the link pseudonym -> patientKey
        kept (in the set's pseudonyms.csv), as the user asked."""
        try:
            from ParaspinalSegTrainingLib.trainingset import add_case
        except ModuleNotFoundError as error:
            if not (error.name or "").startswith("ParaspinalSegTrainingLib"):
                raise
            raise ParaspinalError("Adding cases needs the ParaspinalSeg Training module of this extension.") from None
        series = self.seriesFromVolume(volumeNode)
        return add_case(
            Path(trainingSetFolder), series, self.labelsFromSegmentation(segmentationNode, volumeNode, series),
            draft_model=segmentationNode.GetAttribute(mrml.MODEL_ATTRIBUTE) or None,
            corrected_segments=self.correctedSegments(segmentationNode), author=author,
            patient_key=patientKey or None, keep_mapping=bool(patientKey),
        )

    # -- DICOM export ---------------------------------------------------------------------------

    def setupDicomExportRequirements(self) -> None:
        """highdicom: bundled from Slicer 5.12; on older Slicer installed with pip after the user agrees."""
        if isInstalled(HIGHDICOM):
            return
        if not slicer.util.confirmOkCancelDisplay(
            "Export to DICOM needs the Python package highdicom, which this Slicer does not bundle.\n\nInstall it "
            "now? This needs a network connection; pip leaves torch, numpy, pydicom and SimpleITK as they are.",
            windowTitle="ParaspinalSeg: install highdicom",
        ):
            raise ParaspinalError("Not installed: highdicom. Export to DICOM needs it; press Export again and accept "
                                  "the installation.")
        self.pipInstallKeepingCore([HIGHDICOM_REQUIREMENT])
        importlib.invalidate_caches()
        if not isInstalled(HIGHDICOM):
            raise ParaspinalError("highdicom: installed; restart Slicer to use it.")

    @staticmethod
    def sourceDicomFiles(volumeNode) -> list[str]:
        """The files in Slicer's DICOM database that the volume was loaded from."""
        uids = (volumeNode.GetAttribute(DICOM_INSTANCE_UIDS) or "").split()
        files = [slicer.dicomDatabase.fileForInstance(uid) for uid in uids]
        if not uids or not all(files):
            raise InputError(
                f"'{volumeNode.GetName()}' was not loaded from Slicer's DICOM database, or its files are no longer "
                "there: DICOM SEG and SR must reference the source images. Load the series in the DICOM module, "
                "run ParaspinalSeg on it, then export."
            )
        return files

    def exportDicom(self, segmentationNode, volumeNode, outputFolder, addToDatabase=False, sourceFiles=None) -> list[Path]:
        """The segments as they are now (corrected ones included) as DICOM SEG, and their measurements, as
        Update measurements computes them, as a DICOM SR, written to outputFolder (new or empty), on the
        grid of the volume's source DICOM files (sourceFiles, or those of Slicer's DICOM database);
        optionally added to the DICOM database. Returns the files written."""
        from ParaspinalSegLib.read.dicom import load_series
        from ParaspinalSegLib.output.outputs import output_folder
        from ParaspinalSegLib.pipeline import measure_series

        self.setupDicomExportRequirements()
        from ParaspinalSegLib.output.dicomexport import check_dicom_export, write_dicom_export

        series = load_series(sourceFiles or self.sourceDicomFiles(volumeNode))
        check_dicom_export(series)
        volumeSeries = self.seriesFromVolume(volumeNode)
        planes = self.labelsFromSegmentation(segmentationNode, volumeNode, volumeSeries)
        labels = mrml.planes_on_dicom_series(volumeSeries, planes, series)
        measurement = measure_series(series, labels, needs_fat=False, source="the edited segmentation",
                                     model=segmentationNode.GetAttribute(mrml.MODEL_ATTRIBUTE) or None)
        corrected = {style.label for style in SEGMENTS if style.name in self.correctedSegments(segmentationNode)}
        with output_folder(Path(outputFolder)) as staging:
            written = write_dicom_export(staging, measurement, series, corrected)
        files = [Path(outputFolder) / path.name for path in (*written.segmentations, written.report)]
        if addToDatabase:
            from DICOMLib import DICOMUtils

            DICOMUtils.importDicom(str(outputFolder), copyFiles=True)
        return files

    # -- batch ----------------------------------------------------------------------------------

    def processDicomFolder(self, inputFolder, outputFolder, modelId=None, device=None, fatMethod=None,
                           overwrite=False, progressCallback=None, mirror=False) -> list:
        """Every study of inputFolder (a sub-folder, zip or volume each) into outputFolder/<study>/
        plus outputFolder/summary.csv, exactly as `paraspinal segment --batch`; no GUI, no nodes."""
        from ParaspinalSegLib.cohorts.batch import segment_folder

        self.setupPythonRequirements()
        model, device = self.loadModel(modelId, device)
        return segment_folder(Path(inputFolder), Path(outputFolder), model, fat_method=fatMethod or FAT_FROM_MODEL,
                              device=device, overwrite=overwrite, progress=progressCallback, mirror=mirror)

    # -- nodes ----------------------------------------------------------------------------------

    @staticmethod
    def addNode(className: str, name: str, created: list):
        node = slicer.mrmlScene.AddNewNodeByClass(className, name)
        created.append(node)
        return node

    @staticmethod
    def linkedNode(segmentationNode, attribute: str):
        """The node whose ID the segmentation holds in `attribute` (table, charts), or None."""
        nodeId = segmentationNode.GetAttribute(attribute)
        return slicer.mrmlScene.GetNodeByID(nodeId) if nodeId else None

    def _writeMeasurements(self, segmentationNode, measurement, tableNode, created) -> ParaspinalSegResult:
        if tableNode is None:
            tableNode = self.linkedNode(segmentationNode, mrml.TABLE_ATTRIBUTE) or self.addNode(
                "vtkMRMLTableNode", f"{segmentationNode.GetName()} measurements", created)
        columns = mrml.measurement_columns(measurement.slices)
        slicer.util.updateTableFromArray(tableNode, [c.values for c in columns], columnNames=[c.name for c in columns])
        for column in columns:
            tableNode.SetColumnUnitLabel(column.name, column.unit)
            tableNode.SetColumnDescription(column.name, column.description)
        charts = {spec.key: self._chart(spec, segmentationNode, tableNode, created) for spec in mrml.CHARTS}
        attributes = mrml.result_attributes(measurement) | {mrml.TABLE_ATTRIBUTE: tableNode.GetID()}
        attributes |= {spec.attribute: charts[spec.key].GetID() for spec in mrml.CHARTS}
        for name, value in attributes.items():
            segmentationNode.SetAttribute(name, value)
        return ParaspinalSegResult(segmentationNode, tableNode, charts, measurement)

    def _chart(self, spec, segmentationNode, tableNode, created):
        """The segmentation's chart of `spec` if it shows this table (its series follow the table's
        columns), else a new one."""
        chart = self.linkedNode(segmentationNode, spec.attribute)
        if chart is not None and chart.GetAttribute(mrml.TABLE_ATTRIBUTE) == tableNode.GetID():
            return chart
        chart = self.addNode("vtkMRMLPlotChartNode", f"{segmentationNode.GetName()} {spec.title.lower()}", created)
        chart.SetAttribute(mrml.TABLE_ATTRIBUTE, tableNode.GetID())
        chart.SetTitle(spec.title)
        chart.SetXAxisTitle(mrml.CHART_X_TITLE)
        chart.SetYAxisTitle(spec.y_title)
        chart.SetLegendVisibility(True)
        for column, legend in spec.series:
            series = self.addNode("vtkMRMLPlotSeriesNode", legend, created)
            series.SetAndObserveTableNodeID(tableNode.GetID())
            series.SetXColumnName(mrml.CHART_X_COLUMN)
            series.SetYColumnName(column)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            series.SetUniqueColor()
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        return chart


def percentText(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} %"  # NaN: no compartment on any slice


class ParaspinalSegWidget(ScriptedLoadableModuleWidget):
    """The panel: inputs, Segment & Grade (Cancel while running), result, corrections, training set."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.ui = None
        self._running = False
        self._cancelRequested = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ParaspinalSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ParaspinalSegLogic()
        self._fillChoices()
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputVolumeChanged)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.updateButton.connect("clicked(bool)", self.onUpdateButton)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowTable)
        self.ui.showFatFractionPlotButton.connect("clicked(bool)", lambda: self.onShowChart("FatFraction"))
        self.ui.showCsaPlotButton.connect("clicked(bool)", lambda: self.onShowChart("CSA"))
        self.ui.addToTrainingSetButton.connect("clicked(bool)", self.onAddToTrainingSet)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.applyButton.text = APPLY_TEXT
        self.ui.progressBar.visible = False
        self.onInputVolumeChanged()

    def cleanup(self):
        self._cancelRequested = True

    def enter(self):
        """Each time the module is shown: models registered or activated elsewhere appear."""
        self.refreshModels()

    def refreshModels(self):
        fillModelComboBox(self.ui.modelComboBox, self.ui.statusLabel)

    def _fillChoices(self):
        self.refreshModels()
        for value, text in DEVICES:
            self.ui.deviceComboBox.addItem(text, value)
        for value, text in FAT_METHODS:
            self.ui.fatMethodComboBox.addItem(text, value)

    def onInputVolumeChanged(self, node=None):
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        problem = self.logic.axialProblem(volumeNode) if volumeNode else None
        self.ui.axialWarningLabel.text = problem or ""
        self.ui.axialWarningLabel.visible = bool(problem)
        self.updateButtons()

    def updateButtons(self, node=None):
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        segmentationNode = self.ui.outputSegmentationSelector.currentNode()
        ready = volumeNode is not None and not self.ui.axialWarningLabel.text and self.ui.modelComboBox.count > 0
        self.ui.applyButton.enabled = self._running or ready
        editable = ready and segmentationNode is not None and not self._running
        self.ui.updateButton.enabled = editable
        self.ui.addToTrainingSetButton.enabled = editable
        self.ui.exportDicomButton.enabled = editable
        measured = segmentationNode is not None and self.logic.linkedNode(segmentationNode, mrml.TABLE_ATTRIBUTE) is not None
        for button in (self.ui.showTableButton, self.ui.showFatFractionPlotButton, self.ui.showCsaPlotButton):
            button.enabled = measured and not self._running

    def _setRunning(self, running: bool):
        self._running = running
        self._cancelRequested = False
        self.ui.applyButton.text = CANCEL_TEXT if running else APPLY_TEXT
        self.ui.progressBar.value = 0
        self.ui.progressBar.visible = running
        for widget in (self.ui.inputsCollapsibleButton, self.ui.outputsCollapsibleButton):
            widget.enabled = not running
        self.updateButtons()

    def onProgress(self, fraction: float, message: str):
        """Progress callback of a run: shows it, lets Slicer handle events, stops on Cancel."""
        self.ui.progressBar.value = round(100 * fraction)
        self.ui.statusLabel.text = message
        slicer.app.processEvents()
        if self._cancelRequested:
            raise OperationCancelled("Segment & Grade was cancelled")

    def onApplyButton(self):
        if self._running:
            self._cancelRequested = True
            self.ui.statusLabel.text = "Cancelling..."
            return
        with slicer.util.tryWithErrorDisplay("Segment & Grade failed.", waitCursor=True):
            self._setRunning(True)
            try:
                result = self.logic.process(
                    self.ui.inputVolumeSelector.currentNode(),
                    modelId=self.ui.modelComboBox.currentData,
                    device=self.ui.deviceComboBox.currentData,
                    fatMethod=self.ui.fatMethodComboBox.currentData,
                    progressCallback=self.onProgress,
                    segmentationNode=self.ui.outputSegmentationSelector.currentNode(),
                    tableNode=self.ui.outputTableSelector.currentNode(),
                    mirror=self.ui.mirrorCheckBox.checked,
                )
            except OperationCancelled:
                self.ui.statusLabel.text = "Cancelled; the scene is as it was."
                return
            finally:
                self._setRunning(False)
            self.showResult(result)

    def showResult(self, result: ParaspinalSegResult):
        self.ui.outputSegmentationSelector.setCurrentNode(result.segmentationNode)
        self.ui.outputTableSelector.setCurrentNode(result.tableNode)
        warnings = result.measurement.warnings
        self.ui.gradeLabel.text = (f"Grade {result.grade}" + (" (see the warnings)" if warnings else "")
                                   if result.grade else "No grade: no compartment found")
        caution = grade_caution(warnings)
        self.ui.qualityWarningsLabel.text = "\n".join(
            [caution[:1].upper() + caution[1:] + ":"] + [f"- {w}" for w in warnings]) if warnings else ""
        self.ui.qualityWarningsLabel.visible = bool(warnings)
        self.ui.fatFractionLabel.text = (
            f"Mean fat fraction: right {percentText(result.meanFatFractionRightPct)}, "
            f"left {percentText(result.meanFatFractionLeftPct)}"
        )
        note = result.measurement.model_note
        self.ui.statusLabel.text = f"Done: {result.measurement.provenance.method}." + (f"\nModel note: {note}." if note else "")
        self.updateButtons()

    def onUpdateButton(self):
        with slicer.util.tryWithErrorDisplay("Update measurements failed.", waitCursor=True):
            self.showResult(self.logic.updateMeasurements(
                self.ui.outputSegmentationSelector.currentNode(),
                self.ui.inputVolumeSelector.currentNode(),
                self.ui.outputTableSelector.currentNode(),
            ))

    def onShowTable(self):
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
        applicationLogic = slicer.app.applicationLogic()
        applicationLogic.GetSelectionNode().SetActiveTableID(self.ui.outputTableSelector.currentNode().GetID())
        applicationLogic.PropagateTableSelection()

    def onShowChart(self, key: str):
        spec = next(spec for spec in mrml.CHARTS if spec.key == key)
        chart = self.logic.linkedNode(self.ui.outputSegmentationSelector.currentNode(), spec.attribute)
        slicer.modules.plots.logic().ShowChartInLayout(chart)

    def onAddToTrainingSet(self):
        with slicer.util.tryWithErrorDisplay("Adding the case to the training set failed.", waitCursor=True):
            folder = self.ui.trainingSetPathLineEdit.currentPath
            if not folder:
                raise InputError("Choose a training-set folder first.")
            patientKey = self.ui.patientKeyLineEdit.text.strip() if self.ui.keepMappingCheckBox.checked else ""
            if self.ui.keepMappingCheckBox.checked and not patientKey:
                raise InputError("Type the patient key to keep the link, or untick the box to add the case without it.")
            case = self.logic.addToTrainingSet(
                self.ui.inputVolumeSelector.currentNode(), self.ui.outputSegmentationSelector.currentNode(),
                folder, author=self.ui.authorLineEdit.text, patientKey=patientKey or None,
            )
            self.ui.statusLabel.text = f"Added to the training set as {case}."


    def onExportDicom(self):
        with slicer.util.tryWithErrorDisplay("Export to DICOM failed.", waitCursor=True):
            folder = self.ui.dicomExportPathLineEdit.currentPath
            if not folder:
                raise InputError("Choose an output folder for the DICOM files first.")
            addToDatabase = self.ui.addToDicomDatabaseCheckBox.checked
            files = self.logic.exportDicom(self.ui.outputSegmentationSelector.currentNode(),
                                           self.ui.inputVolumeSelector.currentNode(), folder, addToDatabase=addToDatabase)
            added = " and added them to the DICOM database" if addToDatabase else ""
            self.ui.statusLabel.text = f"Exported {len(files)} DICOM files (SEG + SR) to {folder}{added}."


class ParaspinalSegTest(ScriptedLoadableModuleTest):
    """Segment & Grade on the shipped synthetic sample, then a correction and Update measurements."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_grade_and_update_after_an_edit()

    def test_segment_grade_and_update_after_an_edit(self):
        import json

        import numpy as np
        from ParaspinalSegLib.cli import sample_folder
        from ParaspinalSegLib.read.reading import read_study

        volume = mrml.volume_from_series(read_study(sample_folder() / "study").series)
        volumeNode = slicer.util.addVolumeFromArray(volume.array, ijkToRAS=volume.ijk_to_ras, name="sample T2")
        logic = ParaspinalSegLogic()
        result = logic.process(volumeNode, device="cpu")
        self.delayDisplay(f"Segment & Grade: grade {result.grade}")

        truth = json.loads((sample_folder() / "truth.json").read_text())
        self.assertEqual(result.grade, truth["grade"])
        self.assertEqual(result.segmentationNode.GetAttribute(mrml.GRADE_ATTRIBUTE), truth["grade"])
        segmentation = result.segmentationNode.GetSegmentation()
        self.assertEqual(segmentation.GetNumberOfSegments(), len(SEGMENTS))
        ids = {style.name: segmentation.GetSegmentIdBySegmentName(style.name) for style in SEGMENTS}
        self.assertTrue(all(ids.values()))
        self.assertEqual(len(slicer.util.arrayFromTableColumn(result.tableNode, "right_total_csa_mm2")), len(volume.array))

        # Correction: a band of the right muscle tissue on one slice becomes fat.
        muscle, fat = (slicer.util.arrayFromSegmentBinaryLabelmap(result.segmentationNode, ids[style.name], volumeNode)
                       for style in SEGMENTS[:2])
        k = len(volume.array) // 2
        rows = np.nonzero(muscle[k].any(axis=1))[0]
        band = np.zeros(muscle.shape, dtype=bool)
        band[k, rows[0]:rows[0] + 5] = muscle[k, rows[0]:rows[0] + 5] > 0
        muscle[band], fat[band] = 0, 1
        for style, array in zip(SEGMENTS[:2], (muscle, fat)):
            slicer.util.updateSegmentBinaryLabelmapFromArray(array, result.segmentationNode, ids[style.name], volumeNode)
        spacing = volumeNode.GetSpacing()
        movedArea = int(band.sum()) * spacing[0] * spacing[1]

        before = {name: slicer.util.arrayFromTableColumn(result.tableNode, name).copy()
                  for name in ("source_index", "right_muscle_csa_mm2", "right_fat_csa_mm2")}
        updated = logic.updateMeasurements(result.segmentationNode, volumeNode)
        row = int(np.nonzero(before["source_index"] == k)[0][0])
        for name, sign in (("right_muscle_csa_mm2", -1), ("right_fat_csa_mm2", 1)):
            change = slicer.util.arrayFromTableColumn(updated.tableNode, name) - before[name]
            self.assertAlmostEqual(change[row], sign * movedArea, places=6)
            self.assertEqual(np.count_nonzero(np.abs(change) > 1e-9), 1)
        self.delayDisplay(f"Update measurements: {movedArea:.1f} mm2 of muscle tissue moved to fat")
