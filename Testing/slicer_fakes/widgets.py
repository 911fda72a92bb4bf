"""Stand-in Qt/CTK/qMRML widgets, built from the module's real Qt Designer file.

`load_ui` reads the .ui XML: every named widget becomes a fake of its class with the simple
properties the file sets (text, bool, number, string list), and the file's signal-slot
connections are wired. Properties are plain attributes, as PythonQt exposes Qt properties.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree


def _call_slot(slot, args):
    """Call a slot with as many of the signal's arguments as it takes (PythonQt does the same)."""
    parameters = inspect.signature(slot).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return slot(*args)
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return slot(*args[: len(positional)])


class Widget:
    def __init__(self, class_name: str, name: str):
        self.className, self.objectName = class_name, name
        self.enabled, self.visible = True, True
        self.toolTip = ""
        self._slots: dict[str, list] = {}

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        for slot in list(self._slots.get(signal, [])):
            _call_slot(slot, args)

    def setEnabled(self, enabled):
        self.enabled = bool(enabled)


class PushButton(Widget):
    text = ""

    def click(self):
        """A user's click: ignored while the button is disabled, as in Qt."""
        if self.enabled:
            self.emit("clicked(bool)", False)


class Label(Widget):
    text = ""


class LineEdit(Widget):
    text = ""


class CheckBox(Widget):
    text = ""
    checked = False

    def setChecked(self, checked):
        """A user's tick: sets `checked` and emits toggled(bool), as Qt does."""
        self.checked = bool(checked)
        self.emit("toggled(bool)", self.checked)


class PathLineEdit(Widget):
    currentPath = ""

    def setCurrentPath(self, path):
        """A user's choice of folder: sets currentPath and emits currentPathChanged, as ctk does."""
        self.currentPath = str(path)
        self.emit("currentPathChanged(QString)", self.currentPath)


class ProgressBar(Widget):
    value = 0
    format = "%p%"


class SpinBox(Widget):
    """QSpinBox and QDoubleSpinBox: `value` as the .ui file sets it."""

    value = 0


class CollapsibleButton(Widget):
    text = ""
    collapsed = False


class ComboBox(Widget):
    def __init__(self, class_name, name):
        super().__init__(class_name, name)
        self.items: list[tuple[str, object]] = []
        self.currentIndex = -1

    def addItem(self, text, userData=None):
        self.items.append((text, userData))
        self.currentIndex = max(self.currentIndex, 0)

    def clear(self):
        self.items.clear()
        self.currentIndex = -1

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)

    def setCurrentIndex(self, index):
        self.currentIndex = index

    @property
    def count(self):
        return len(self.items)

    @property
    def currentData(self):
        return self.items[self.currentIndex][1] if self.currentIndex >= 0 else None


class NodeComboBox(Widget):
    """qMRMLNodeComboBox: the current node among the scene's nodes of `nodeTypes`."""

    def __init__(self, class_name, name):
        super().__init__(class_name, name)
        self.nodeTypes: list[str] = []
        self.noneEnabled = False
        self.scene = None
        self._node = None

    def setMRMLScene(self, scene):
        self.scene = scene
        if not self.noneEnabled:
            self.setCurrentNode(next(iter(scene.nodes_of_class(self.nodeTypes[0])), None))

    def currentNode(self):
        if self._node is not None and self.scene.GetNodeByID(self._node.GetID()) is None:
            self._node = None  # removed from the scene
        return self._node

    def setCurrentNode(self, node):
        self._node = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class TableWidgetItem:
    """qt.QTableWidgetItem: a cell's text and tooltip."""

    def __init__(self, text=""):
        self._text, self._tool_tip = str(text), ""

    def text(self):
        return self._text

    def setToolTip(self, toolTip):
        self._tool_tip = toolTip

    def toolTip(self):
        return self._tool_tip


class TableWidget(Widget):
    """QTableWidget: cells by (row, column); setCurrentCell is a user's click on a row."""

    def __init__(self, class_name, name):
        super().__init__(class_name, name)
        self.header_labels: list[str] = []
        self.cells: dict[tuple[int, int], TableWidgetItem] = {}
        self._rows, self._columns, self._current_row = 0, 0, -1

    @property
    def rowCount(self):
        return self._rows

    @property
    def columnCount(self):
        return self._columns

    def setRowCount(self, rows):
        self._rows = rows
        self.cells = {(r, c): item for (r, c), item in self.cells.items() if r < rows}
        if self._current_row >= rows:
            self._current_row = -1
            self.emit("itemSelectionChanged()")

    def setColumnCount(self, columns):
        self._columns = columns

    def setHorizontalHeaderLabels(self, labels):
        self.header_labels = list(labels)

    def setItem(self, row, column, item):
        assert row < self._rows and column < self._columns, (row, column)
        self.cells[row, column] = item

    def item(self, row, column):
        return self.cells.get((row, column))

    def currentRow(self):
        return self._current_row

    def setCurrentCell(self, row, column):
        self._current_row = row
        self.emit("itemSelectionChanged()")

    def resizeColumnsToContents(self):
        pass

    def row_texts(self, row):
        """For tests: the texts of one row, column by column."""
        return [self.cells[row, column].text() for column in range(self._columns)]


class Timer(Widget):
    """qt.QTimer: it never fires by itself; a test calls `fire()` for each timeout it wants."""

    def __init__(self, parent=None):
        super().__init__("QTimer", "")
        self.interval, self.active = 0, False

    def setInterval(self, msec):
        self.interval = msec

    def start(self, msec=None):
        self.active = True

    def stop(self):
        self.active = False

    def fire(self):
        """One timeout, as the event loop would deliver it while the timer runs."""
        if self.active:
            self.emit("timeout()")


class MRMLWidget(Widget):
    def setMRMLScene(self, scene):
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene)


WIDGET_CLASSES = {
    "QPushButton": PushButton,
    "QLabel": Label,
    "QLineEdit": LineEdit,
    "QCheckBox": CheckBox,
    "QComboBox": ComboBox,
    "QProgressBar": ProgressBar,
    "QSpinBox": SpinBox,
    "QDoubleSpinBox": SpinBox,
    "QTableWidget": TableWidget,
    "ctkCollapsibleButton": CollapsibleButton,
    "ctkPathLineEdit": PathLineEdit,
    "qMRMLNodeComboBox": NodeComboBox,
    "qMRMLWidget": MRMLWidget,
}


def _property_value(element):
    """The value of a simple <property>; None for kinds the fakes do not need (font, set, enum)."""
    value = element[0]
    if value.tag == "string":
        return value.text or ""
    if value.tag == "bool":
        return value.text == "true"
    if value.tag == "number":
        return int(value.text)
    if value.tag == "double":
        return float(value.text)
    if value.tag == "stringlist":
        return [item.text for item in value]
    return None


def _make_widget(element) -> Widget:
    widget = WIDGET_CLASSES.get(element.get("class"), Widget)(element.get("class"), element.get("name"))
    for prop in element.findall("property"):
        value = _property_value(prop)
        if value is not None:
            setattr(widget, prop.get("name"), value)
    return widget


def load_ui(path: str | Path) -> Widget:
    """The root widget of a .ui file; its named descendants are in `root.children`."""
    tree = ElementTree.parse(path).getroot()
    root_element = tree.find("widget")
    root = _make_widget(root_element)
    root.children = {e.get("name"): _make_widget(e) for e in root_element.iter("widget") if e is not root_element}
    everything = {root.objectName: root, **root.children}
    for connection in tree.iter("connection"):
        sender, receiver = everything[connection.findtext("sender")], everything[connection.findtext("receiver")]
        sender.connect(connection.findtext("signal"), getattr(receiver, connection.findtext("slot").split("(")[0]))
    return root


def child_widget_variables(root: Widget) -> SimpleNamespace:
    return SimpleNamespace(**root.children)
