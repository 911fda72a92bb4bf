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


class PathLineEdit(Widget):
    currentPath = ""


class ProgressBar(Widget):
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


class MRMLWidget(Widget):
    def setMRMLScene(self, scene):
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene)


WIDGET_CLASSES = {
    "QPushButton": PushButton,
    "QLabel": Label,
    "QLineEdit": LineEdit,
    "QComboBox": ComboBox,
    "QProgressBar": ProgressBar,
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
