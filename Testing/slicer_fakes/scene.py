"""Stand-in MRML scene and nodes: volumes, segmentations, tables, plots, with numpy arrays in
[K, J, I] order. Only the methods the module files call, plus plain attributes tests read."""

from __future__ import annotations

import itertools

import numpy as np


class vtkMatrix4x4:
    def __init__(self):
        self.elements = np.eye(4)

    def GetElement(self, i, j):
        return float(self.elements[i, j])

    def SetElement(self, i, j, value):
        self.elements[i, j] = value


class Node:
    """vtkMRMLNode: ID, name, attributes, node references."""

    def __init__(self, node_id: str, name: str):
        self._id, self._name = node_id, name
        self.attributes: dict[str, str] = {}
        self.references: dict[str, str] = {}

    def GetID(self):
        return self._id

    def GetName(self):
        return self._name

    def SetAttribute(self, name, value):
        self.attributes[name] = str(value)

    def GetAttribute(self, name):
        return self.attributes.get(name)

    def SetNodeReferenceID(self, role, node_id):
        self.references[role] = node_id


class ScalarVolumeNode(Node):
    def __init__(self, node_id, name):
        super().__init__(node_id, name)
        self.array = np.zeros((1, 1, 1), dtype=np.float32)
        self.ijk_to_ras = np.eye(4)

    def GetIJKToRASMatrix(self, matrix):
        matrix.elements[:] = self.ijk_to_ras

    def GetSpacing(self):
        return tuple(float(v) for v in np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0))


class Segment:
    def __init__(self, name, color):
        self.name, self.color = name, tuple(color)
        self.tags: dict[str, str] = {}
        self.terminology = ""
        self.mask: np.ndarray | None = None  # on the reference volume's grid

    def SetTerminology(self, entry):
        self.terminology = entry


class Segmentation:
    def __init__(self):
        self.segments: dict[str, Segment] = {}

    def AddEmptySegment(self, segmentId="", segmentName="", color=None):
        segment_id = segmentId or f"Segment_{len(self.segments) + 1}"
        self.segments[segment_id] = Segment(segmentName or segment_id, color or (0.5, 0.5, 0.5))
        return segment_id

    def GetSegmentIdBySegmentName(self, name):
        return next((i for i, s in self.segments.items() if s.name == name), "")

    def GetSegment(self, segmentId):
        return self.segments.get(segmentId)

    def GetNthSegmentID(self, index):
        return list(self.segments)[index]

    def GetNumberOfSegments(self):
        return len(self.segments)

    def RemoveAllSegments(self):
        self.segments.clear()


class SegmentationNode(Node):
    def __init__(self, node_id, name):
        super().__init__(node_id, name)
        self.segmentation = Segmentation()
        self.reference_volume = None
        self.has_display_nodes = False

    def GetSegmentation(self):
        return self.segmentation

    def CreateDefaultDisplayNodes(self):
        self.has_display_nodes = True

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volumeNode):
        self.reference_volume = volumeNode

    @staticmethod
    def GetReferenceImageGeometryReferenceRole():
        return "referenceImageGeometryRef"


class SegmentationsModuleLogic:
    """slicer.vtkSlicerSegmentationsModuleLogic: the segment status (a tag, as in Slicer)."""

    NotStarted, InProgress, Completed, Flagged = range(4)
    _NAMES = ("notstarted", "inprogress", "completed", "flagged")

    @staticmethod
    def GetStatusTagName():
        return "Segmentation.Status"

    @classmethod
    def GetSegmentStatus(cls, segment):
        return cls._NAMES.index(segment.tags.get(cls.GetStatusTagName(), "notstarted"))

    @classmethod
    def SetSegmentStatus(cls, segment, status):
        segment.tags[cls.GetStatusTagName()] = cls._NAMES[status]


class TableNode(Node):
    """Columns by name: numpy arrays (updateTableFromArray) or lists of cell texts (AddColumn)."""

    def __init__(self, node_id, name):
        super().__init__(node_id, name)
        self.columns: dict[str, np.ndarray | list[str]] = {}
        self.units: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}

    def RemoveAllColumns(self):
        self.columns.clear()
        return True

    def AddColumn(self, column=None):
        """A new text column (what Slicer adds without an array), as long as the table."""
        assert column is None, "the fakes add text columns only"
        self.columns[f"Column {len(self.columns) + 1}"] = [""] * self.GetNumberOfRows()

    def RenameColumn(self, columnIndex, newName):
        names = list(self.columns)
        names[columnIndex] = newName
        self.columns = dict(zip(names, self.columns.values()))
        return True

    def GetNumberOfRows(self):
        return len(next(iter(self.columns.values()), []))

    def AddEmptyRow(self):
        for cells in self.columns.values():
            cells.append("")
        return self.GetNumberOfRows() - 1

    def SetCellText(self, row, column, text):
        list(self.columns.values())[column][row] = str(text)
        return True

    def GetCellText(self, row, column):
        return list(self.columns.values())[column][row]

    def SetColumnUnitLabel(self, columnName, unit):
        assert columnName in self.columns, columnName
        self.units[columnName] = unit

    def SetColumnDescription(self, columnName, description):
        assert columnName in self.columns, columnName
        self.descriptions[columnName] = description


class PlotSeriesNode(Node):
    PlotTypeLine, PlotTypeBar, PlotTypeScatter, PlotTypeScatterBar = range(4)
    MarkerStyleNone, MarkerStyleCross, MarkerStylePlus, MarkerStyleSquare, MarkerStyleCircle = range(5)

    def __init__(self, node_id, name):
        super().__init__(node_id, name)
        self.table_id = self.x_column = self.y_column = None
        self.plot_type = self.marker_style = None
        self.unique_color = False

    def SetAndObserveTableNodeID(self, tableNodeId):
        self.table_id = tableNodeId

    def SetXColumnName(self, name):
        self.x_column = name

    def SetYColumnName(self, name):
        self.y_column = name

    def SetPlotType(self, plotType):
        self.plot_type = plotType

    def SetMarkerStyle(self, style):
        self.marker_style = style

    def SetUniqueColor(self, colorTableNodeID=None):
        self.unique_color = True


class PlotChartNode(Node):
    def __init__(self, node_id, name):
        super().__init__(node_id, name)
        self.series_ids: list[str] = []
        self.title = self.x_title = self.y_title = ""
        self.legend = False

    def AddAndObservePlotSeriesNodeID(self, seriesId):
        self.series_ids.append(seriesId)

    def SetTitle(self, title):
        self.title = title

    def SetXAxisTitle(self, title):
        self.x_title = title

    def SetYAxisTitle(self, title):
        self.y_title = title

    def SetLegendVisibility(self, visible):
        self.legend = bool(visible)


NODE_CLASSES = {
    "vtkMRMLScalarVolumeNode": ScalarVolumeNode,
    "vtkMRMLSegmentationNode": SegmentationNode,
    "vtkMRMLTableNode": TableNode,
    "vtkMRMLPlotSeriesNode": PlotSeriesNode,
    "vtkMRMLPlotChartNode": PlotChartNode,
}


class Scene:
    """vtkMRMLScene: nodes by ID, in the order they were added."""

    def __init__(self):
        self.nodes: dict[str, Node] = {}
        self._numbers = itertools.count(1)

    def AddNewNodeByClass(self, className, nodeBaseName=""):
        node_id = f"{className}{next(self._numbers)}"
        node = NODE_CLASSES[className](node_id, nodeBaseName or className)
        self.nodes[node_id] = node
        return node

    def RemoveNode(self, node):
        self.nodes.pop(node.GetID())

    def GetNodeByID(self, nodeId):
        return self.nodes.get(nodeId)

    def Clear(self, removeSingletons=0):
        self.nodes.clear()

    def nodes_of_class(self, className):
        return [n for n in self.nodes.values() if isinstance(n, NODE_CLASSES[className])]
