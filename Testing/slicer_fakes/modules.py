"""The stand-in modules `slicer`, `slicer.util`, `slicer.ScriptedLoadableModule`, `qt`, `ctk`,
`vtk` and `PyTorchUtils`, and what they record for tests (dialogs, installs, layouts shown)."""

from __future__ import annotations

import contextlib
import sys
import unittest
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np

from . import scene as mrml
from .widgets import TableWidgetItem, Timer, child_widget_variables, load_ui


class Records:
    """What the module asked of Slicer, for tests to check; `confirm` answers OK/Cancel dialogs."""

    def __init__(self):
        self.confirm = True
        self.restart_answer = False
        self.dialogs: list[tuple[str, str]] = []  # (kind, text)
        self.pip_installs: list[tuple[list[str], str]] = []  # (arguments, constraints file text)
        self.torch_installs: list[dict] = []
        self.restarts = 0
        self.layouts: list[object] = []
        self.active_table_ids: list[str] = []
        self.charts_shown: list[object] = []
        self.messages: list[str] = []
        self.dicom_imports: list[tuple[str, bool]] = []  # (folder, copyFiles)


class Application:
    """slicer.app: processEvents runs what a test queued with `call_later` (a user's click)."""

    def __init__(self, records: Records):
        self._records = records
        self._queued: list = []
        self._layout = SimpleNamespace(layout=1, setLayout=records.layouts.append)
        selection = SimpleNamespace(SetActiveTableID=records.active_table_ids.append)
        self._application_logic = SimpleNamespace(GetSelectionNode=lambda: selection, PropagateTableSelection=lambda: None)

    def call_later(self, function):
        self._queued.append(function)

    def processEvents(self):
        queued, self._queued = self._queued, []
        for function in queued:
            function()

    def layoutManager(self):
        return self._layout

    def applicationLogic(self):
        return self._application_logic


class Util:
    """slicer.util functions, with Slicer's parameter names."""

    def __init__(self, scene: mrml.Scene, records: Records):
        self._scene, self._records = scene, records

    def arrayFromVolume(self, volumeNode):
        return volumeNode.array

    def arrayFromVTKMatrix(self, vmatrix):
        return vmatrix.elements.copy()

    def addVolumeFromArray(self, narray, ijkToRAS=None, name=None, nodeClassName=None):
        node = self._scene.AddNewNodeByClass(nodeClassName or "vtkMRMLScalarVolumeNode", name or "Volume")
        node.array = np.asarray(narray)
        node.ijk_to_ras = np.asarray(ijkToRAS, dtype=float) if ijkToRAS is not None else np.eye(4)
        return node

    def arrayFromSegmentBinaryLabelmap(self, segmentationNode, segmentId, referenceVolumeNode=None):
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
        reference = referenceVolumeNode or segmentationNode.reference_volume
        assert reference is segmentationNode.reference_volume, "fakes keep segments on their reference grid only"
        return segment.mask.copy() if segment.mask is not None else np.zeros(reference.array.shape, np.uint8)

    def updateSegmentBinaryLabelmapFromArray(self, narray, segmentationNode, segmentId, referenceVolumeNode=None):
        reference = referenceVolumeNode or segmentationNode.reference_volume
        assert narray.shape == reference.array.shape, (narray.shape, reference.array.shape)
        segmentationNode.GetSegmentation().GetSegment(segmentId).mask = (np.asarray(narray) > 0).astype(np.uint8)

    def updateTableFromArray(self, tableNode, narrays, columnNames=None, setBoolAsUchar=False):
        tableNode.columns = {name: np.array(values) for name, values in zip(columnNames, narrays, strict=True)}
        return tableNode

    def arrayFromTableColumn(self, tableNode, columnName):
        return tableNode.columns[columnName]

    def loadUI(self, path):
        return load_ui(path)

    def childWidgetVariables(self, widget):
        return child_widget_variables(widget)

    @contextlib.contextmanager
    def tryWithErrorDisplay(self, message=None, show=True, waitCursor=False):
        try:
            yield
        except Exception as error:
            self._records.dialogs.append(("error", f"{message}\n{error}"))
            raise

    def errorDisplay(self, text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
        self._records.dialogs.append(("error", text))

    def confirmOkCancelDisplay(self, text, windowTitle=None, parent=None, **kwargs):
        self._records.dialogs.append(("confirm", text))
        return self._records.confirm

    def confirmYesNoDisplay(self, text, windowTitle=None, parent=None, **kwargs):
        self._records.dialogs.append(("yes/no", text))
        return self._records.restart_answer

    def pip_install(self, requirements):
        arguments = list(requirements)
        constraints = Path(arguments[arguments.index("-c") + 1]).read_text() if "-c" in arguments else ""
        self._records.pip_installs.append((arguments, constraints))

    def restart(self):
        self._records.restarts += 1


class DicomDatabase:
    """slicer.dicomDatabase: `files` maps SOPInstanceUID -> file (tests fill it)."""

    def __init__(self):
        self.files: dict[str, str] = {}

    def fileForInstance(self, sopInstanceUID):
        return self.files.get(sopInstanceUID, "")


class DICOMUtils:
    """DICOMLib.DICOMUtils: records importDicom calls."""

    records: Records | None = None

    @classmethod
    def importDicom(cls, dicomDataDir, dicomDatabase=None, copyFiles=False):
        cls.records.dicom_imports.append((str(dicomDataDir), copyFiles))
        return True


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent
        self.layout = SimpleNamespace(widgets=[])
        self.layout.addWidget = self.layout.widgets.append

    def setup(self):
        pass

    def resourcePath(self, filename):
        return str(Path(sys.modules[type(self).__module__].__file__).parent / "Resources" / filename)


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        pass


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, requestedDelay=None, msec=None):
        sys.modules["slicer"].records.messages.append(message)


class FakeSlicer(ModuleType):
    """The `slicer` module: scene, app, util, modules; `records` and `reset` are for tests."""

    def __init__(self):
        super().__init__("slicer")
        self.util = ModuleType("slicer.util")
        self.ScriptedLoadableModule = _module(
            "slicer.ScriptedLoadableModule",
            SimpleNamespace(ScriptedLoadableModule=ScriptedLoadableModule, ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget,
                            ScriptedLoadableModuleLogic=ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest=ScriptedLoadableModuleTest),
        )
        self.vtkSlicerSegmentationsModuleLogic = mrml.SegmentationsModuleLogic
        self.vtkMRMLPlotSeriesNode = mrml.PlotSeriesNode
        self.reset()

    def reset(self):
        """A new, empty scene and fresh records (the modules stay installed)."""
        records = self.records = Records()
        self.mrmlScene = mrml.Scene()
        self.app = Application(records)
        self.util.__dict__.update(_public(Util(self.mrmlScene, records)))
        self.modules = SimpleNamespace(
            tables=SimpleNamespace(logic=lambda: SimpleNamespace(GetLayoutWithTable=lambda current: ("table", current))),
            plots=SimpleNamespace(logic=lambda: SimpleNamespace(ShowChartInLayout=records.charts_shown.append)),
        )
        PyTorchUtilsLogic.records = records
        DICOMUtils.records = records
        self.dicomDatabase = DicomDatabase()


class PyTorchUtilsLogic:
    """PyTorchUtils.PyTorchUtilsLogic of the PyTorch extension: records installTorch calls."""

    records: Records | None = None

    def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,
                     torchvisionVersionRequirement=None):
        self.records.torch_installs.append({"askConfirmation": askConfirmation})
        return SimpleNamespace(__version__="fake")


def _public(source) -> dict:
    return {name: getattr(source, name) for name in dir(source) if not name.startswith("_")}


def _module(name: str, source) -> ModuleType:
    module = ModuleType(name)
    module.__dict__.update(_public(source))
    return module


def install(monkeypatch) -> FakeSlicer:
    """Put the stand-ins into sys.modules (undone by monkeypatch); returns the fake `slicer`."""
    slicer = FakeSlicer()
    torch_utils = _module("PyTorchUtils", SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    modules = {
        "slicer": slicer,
        "slicer.util": slicer.util,
        "slicer.ScriptedLoadableModule": slicer.ScriptedLoadableModule,
        "vtk": _module("vtk", SimpleNamespace(vtkMatrix4x4=mrml.vtkMatrix4x4)),
        "qt": _module("qt", SimpleNamespace(QTimer=Timer, QTableWidgetItem=TableWidgetItem)),
        "ctk": ModuleType("ctk"),
        "PyTorchUtils": torch_utils,
        "DICOMLib": _module("DICOMLib", SimpleNamespace(DICOMUtils=DICOMUtils)),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return slicer
