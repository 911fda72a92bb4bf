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
