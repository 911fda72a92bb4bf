"""The project's own consistency: CI runs the README's commands; CMake lists every library file."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readme_quick_start_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = readme_commands()
    assert len(commands) == 2
    assert all(command in ci for command in commands)


def test_each_module_cmakelists_lists_every_library_file():
    for module, library in (("ParaspinalSeg", "ParaspinalSegLib"), ("ParaspinalSegTraining", "ParaspinalSegTrainingLib")):
        listed = set(re.findall(rf"{library}/\S+\.py", (ROOT / module / "CMakeLists.txt").read_text()))
        present = {p.relative_to(ROOT / module).as_posix() for p in (ROOT / module / library).rglob("*.py")}
        assert listed == present, f"{module}/CMakeLists.txt differs from the files: {sorted(listed ^ present)}"


def test_the_inference_library_never_imports_the_training_library():
    """Layers: ParaspinalSegLib (inference) never imports ParaspinalSegTrainingLib, not even lazily inside a
    function; the training commands join the command line through an entry point instead."""
    import ast

    offenders = []
    for path in (ROOT / "ParaspinalSeg" / "ParaspinalSegLib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}:{node.lineno}" for name in names if name.split(".")[0] == "ParaspinalSegTrainingLib"]
    assert offenders == []


def test_the_training_commands_join_the_command_line_through_their_entry_point():
    from ParaspinalSegLib.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert {"synth", "train", "evaluate", "heldout", "validate-real", "release", "models"} <= set(commands)
    assert commands["train"].get_default("run").__module__ == "ParaspinalSegTrainingLib.commands"
