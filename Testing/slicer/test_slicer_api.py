"""Every Slicer, Qt, CTK and VTK name the module files use exists in Slicer 5.10+, called with the
parameter names Slicer gives it: checked with `ast` against ../shared/slicer_api/signatures.md
(read there, never copied; the tests skip where ../shared is absent)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_FILES = (ROOT / "ParaspinalSeg" / "ParaspinalSeg.py", ROOT / "ParaspinalSegTraining" / "ParaspinalSegTraining.py")
CHECKED_ROOTS = ("slicer", "qt", "ctk", "vtk", "DICOMUtils")

# Qt and CTK widget classes are not in signatures.md (it lists Slicer's own API). These are the
# ones the module files name as qt.X / ctk.X; add a class here only after checking Qt's or CTK's
# documentation.
QT_CTK_CLASSES = {
    "QTimer": "ParaspinalSegTraining.py: polls the training process (QTimer(), setInterval, start, stop, "
              "signal timeout())",
    "QTableWidgetItem": "ParaspinalSegTraining.py: a cell of the case table (QTableWidgetItem(text), setToolTip, text)",
}

# Slicer core application and MRML methods that signatures.md does not list, with what they are.
CORE_NAMES = {
    "processEvents": "QCoreApplication::processEvents, on slicer.app: the GUI stays responsive during a run",
    "layoutManager": "qSlicerApplication::layoutManager(), on slicer.app",
    "GetSelectionNode": "vtkMRMLApplicationLogic::GetSelectionNode(), for showing a table",
    "AddNewNodeByClass": "vtkMRMLScene::AddNewNodeByClass(className, nodeBaseName)",
    "RemoveNode": "vtkMRMLScene::RemoveNode(node)",
    "GetNodeByID": "vtkMRMLScene::GetNodeByID(id)",
    "GetID": "vtkMRMLNode::GetID()",
    "GetName": "vtkMRMLNode::GetName()",
    "SetAttribute": "vtkMRMLNode::SetAttribute(name, value)",
    "GetAttribute": "vtkMRMLNode::GetAttribute(name)",
    "fileForInstance": "ctkDICOMDatabase::fileForInstance(sopInstanceUID), on slicer.dicomDatabase: the file of a "
                       "volume's source instance (Slicer's DICOMPlugin uses it for a loadable's referenced instances)",
}

SECTIONS = {  # heading start -> where the functions are called from
    "slicer.util": "slicer.util",
    "slicer.packaging": "slicer.packaging",
    "slicer.ScriptedLoadableModule": "slicer.ScriptedLoadableModule",
    "DICOMLib.DICOMUtils": "DICOMUtils",
    "SampleData": "SampleData",
    "slicer.cli": "slicer.cli",
    "C++": "methods",
}
QUALIFIED = ("slicer.util", "slicer.packaging", "slicer.cli", "DICOMUtils")
NEWER = "5.12"  # the target is Slicer 5.10: names only available since 5.12 are refused


@dataclass(frozen=True)
class Signature:
    parameters: tuple[str, ...]
    var_positional: bool
    var_keyword: bool
    since_newer: bool


@dataclass
class Api:
    """What signatures.md says: functions per place, every identifier, names that do not exist."""

    functions: dict[str, dict[str, list[Signature]]] = field(default_factory=dict)
    words: set[str] = field(default_factory=set)
    nonexistent: set[str] = field(default_factory=set)

    def known(self, name: str) -> bool:
        return (name in self.words or name in CORE_NAMES) and name not in self.nonexistent

    def method_signatures(self, name: str) -> list[Signature]:
        return [s for place in self.functions.values() for s in place.get(name, [])]


def _split_parameters(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in parts + [current] if p.strip()]


def _signature(parameters: str, since_newer: bool) -> Signature:
    names, var_positional, var_keyword = [], False, False
    for part in _split_parameters(parameters):
        var_keyword |= part.startswith("**")
        var_positional |= part.startswith("*") and not part.startswith("**") and part != "*"
        match = re.match(r"\*{0,2}([A-Za-z_]\w*)", part)
        if match and not part.startswith("*") and match.group(1) != "self":
            names.append(match.group(1))
    return Signature(tuple(names), var_positional, var_keyword, since_newer)


def _abbreviated_words(text: str) -> set[str]:
    """Names the reference abbreviates: `MarkerStyleNone/Cross/Circle` also lists MarkerStyleCircle."""
    words = set()
    for prefix, first, rest in re.findall(r"\b((?:[A-Z][a-z]+)+?)([A-Z][a-z]+)((?:/[A-Z][a-z]+)+)", text):
        words |= {prefix + word for word in [first, *rest.split("/")[1:]]}
    return words


def parse_signatures(text: str) -> Api:
    api = Api(words=set(re.findall(r"[A-Za-z_]\w*", text)) | _abbreviated_words(text))
    place, section_newer = None, False
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:]
            place = next((p for start, p in SECTIONS.items() if title.startswith(start)), None)
            section_newer = f"NEW in Slicer {NEWER}" in title
            continue
        spans = re.findall(r"`([^`]+)`", line)
        if "DOES NOT EXIST" in line:
            api.nonexistent |= {span.split(".")[-1] for span in spans}
            continue
        if place is None:
            continue
        for span in spans:
            match = re.match(r"^([A-Za-z_][\w.]*)\((.*)\)\s*(->.*)?$", span)
            if not match:
                continue
            functions = api.functions.setdefault(place, {})
            since_newer = section_newer or f"[since v{NEWER}" in line
            full = match.group(1)
            functions.setdefault(full if place in QUALIFIED else full.split(".")[-1], []).append(
                _signature(match.group(2), since_newer))
            functions.setdefault(full.split(".")[0], [])  # a class named before its method
    return api


# ---------------------------------------------------------------------------------------------
# The module files' use of the API


def _chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """Root name and attribute names of an expression such as slicer.modules.plots.logic().X."""
    parts = []
    while isinstance(node, (ast.Attribute, ast.Call)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        else:
            node = node.func
    return (node.id if isinstance(node, ast.Name) else None), parts[::-1]


def _imports(tree: ast.AST) -> tuple[set[str], list[tuple[str, str]]]:
    """Names bound by imports, and (module, name) of every `from slicer... import name`."""
    bound, from_slicer = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            bound |= {a.asname or a.name for a in node.names}
            if node.module and node.module.split(".")[0] in ("slicer", "DICOMLib"):
                from_slicer += [(node.module, a.name) for a in node.names]
    return bound, from_slicer


def _check_call(call: ast.Call, where: str, signatures: list[Signature]) -> list[str]:
    if not signatures:
        return []
    problems = []
    used = [k.arg for k in call.keywords if k.arg]
    if not any(s.var_keyword or set(used) <= set(s.parameters) for s in signatures):
        known = sorted({p for s in signatures for p in s.parameters})
        problems.append(f"{where}: keyword(s) {used} not among Slicer's parameters {known}")
    if not any(s.var_positional or len(call.args) <= len(s.parameters) for s in signatures):
        problems.append(f"{where}: {len(call.args)} positional arguments, Slicer's signature takes fewer")
    return problems


def _check_chain(root: str, parts: list[str], api: Api) -> list[str]:
    where = ".".join([root, *parts])
    if root in ("qt", "ctk"):
        return [] if parts[0] in QT_CTK_CLASSES else [f"{where}: {parts[0]} is not in the Qt/CTK allowlist"]
    place = ".".join([root, parts[0]]) if root == "slicer" else root
    if place in QUALIFIED:
        name = parts[len(place.split(".")) - 1] if len(parts) >= len(place.split(".")) else None
        if name is None:
            return []
        if name not in api.functions.get(place, {}):
            return [f"{where}: {place} has no {name!r} in Slicer's API"]
        signatures = api.functions[place][name]
        if signatures and all(s.since_newer for s in signatures):
            return [f"{where}: exists only since Slicer {NEWER}; the extension targets 5.10"]
        return []
    return [f"{where}: {part!r} is not in Slicer's API" for part in parts if not api.known(part)]


def api_problems(source: str, api: Api, filename: str = "<source>") -> list[str]:
    """Every use in `source` of a Slicer/Qt/CTK/VTK name that the reference does not back."""
    tree = ast.parse(source, filename)
    bound, from_slicer = _imports(tree)
    problems = []
    for module, name in from_slicer:
        place = {"DICOMLib": "DICOMUtils"}.get(module, module)
        if name not in api.functions.get(place, {}) and not (module == "DICOMLib" and name == "DICOMUtils"):
            problems.append(f"from {module} import {name}: not in Slicer's API")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            root, parts = _chain(node)
            if root in CHECKED_ROOTS:
                problems += _check_chain(root, parts, api)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root, parts = _chain(node.func)
            where = f"line {node.lineno}: {'.'.join(filter(None, [root, *parts]))}"
            if root == "slicer" and ".".join(parts[:1]) in ("util", "packaging", "cli") and len(parts) == 2:
                problems += _check_call(node, where, api.functions.get(f"slicer.{parts[0]}", {}).get(parts[1], []))
            elif root == "DICOMUtils" and len(parts) == 1:
                problems += _check_call(node, where, api.functions.get("DICOMUtils", {}).get(parts[0], []))
            elif node.func.attr[0].isupper() and root not in bound - {"slicer", "vtk"}:
                if not api.known(node.func.attr):
                    problems.append(f"{where}: method {node.func.attr!r} is not in Slicer's API")
                problems += _check_call(node, where, api.method_signatures(node.func.attr))
    return sorted(set(problems))


@pytest.fixture
def api(shared_dir) -> Api:
    path = shared_dir / "slicer_api" / "signatures.md"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return parse_signatures(path.read_text())


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda p: p.name)
def test_the_module_files_use_only_names_of_slicers_api(path, api):
    if not path.is_file():
        pytest.skip(f"{path.name} is not in this checkout")
    problems = api_problems(path.read_text(), api, str(path))
    assert not problems, f"{path.name} uses names the Slicer 5.10+ API reference does not list:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import slicer\nslicer.util.arrayFromVolumee(node)", "slicer.util has no 'arrayFromVolumee'"),
        ("import slicer\nslicer.util.updateTableFromDataFrame(table, frame)", "no 'updateTableFromDataFrame'"),
        ("table.SetColumnUnitLabell('area', 'mm2')", "method 'SetColumnUnitLabell' is not in Slicer's API"),
        ("import slicer\nslicer.util.addVolumeFromArray(a, ijkToRas=m)", "keyword(s) ['ijkToRas'] not among"),
        ("segmentation.AddEmptySegment('a', 'b', (1, 0, 0), 7)", "4 positional arguments"),
        ("import slicer\nslicer.packaging.pip_install('torch')", "exists only since Slicer 5.12"),
        ("import slicer\nslicer.util.executePythonModule('pip', ['list'])", "exists only since Slicer 5.12"),
        ("import slicer\nslicer.mrmlScene.AddNewNodeByClas('vtkMRMLTableNode')", "'AddNewNodeByClas' is not in"),
        ("import qt\nqt.QLabell('x')", "QLabell is not in the Qt/CTK allowlist"),
        ("from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidgets", "not in Slicer's API"),
        ("from DICOMLib import DICOMUtils\nDICOMUtils.importDicom('/d', copyfiles=True)", "['copyfiles'] not among"),
    ],
)
def test_the_check_catches_a_misspelled_or_missing_name(source, expected, api):
    problems = api_problems(source, api)
    assert any(expected in p for p in problems), problems


def test_the_check_passes_correct_uses(api):
    source = (
        "import slicer, vtk\nfrom DICOMLib import DICOMUtils\n"
        "node = slicer.util.addVolumeFromArray(a, ijkToRAS=m, name='v')\n"
        "table.SetColumnUnitLabel('area', 'mm2')\nslicer.util.pip_install(['-c', 'c.txt', 'x'])\n"
        "DICOMUtils.importDicom('/d', copyFiles=False)\nmatrix = vtk.vtkMatrix4x4()\n"
        "slicer.modules.plots.logic().ShowChartInLayout(chart)\n"
    )
    assert api_problems(source, api) == []
