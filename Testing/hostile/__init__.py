"""A generated corpus of hostile inputs for the `paraspinal` command line (issue 13).

Each Case builds its bad input under a test's tmp_path (never inside the project) and says what the
command line must do with it: refuse it with exit code 2 and one line naming the file ("error"),
run to the end ("ok"), either of the two ("either": a doubtful input that may be handled with
a warning), or, for a batch, go on past a failing study ("some-failed": exit code 1). Test_hostile.py runs every case and checks the common rules on top: no traceback,
no half-written output, no hang.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Kit:
    """What the builders start from: a scratch folder, a good study, a good volume with labels, a model."""

    root: Path
    study: Path  # a DICOM folder of one good axial T2 series
    dicom_file: Path  # one good slice of it
    compartments: Path  # the study's compartment map (for `measure`)
    volume: Path  # a good NIfTI volume
    labels: Path  # a scheme label map on its grid
    model: Path  # a small model folder (random weights)
    home: Path  # $PARASPINALSEG_HOME for model imports

    def path(self, *parts: str) -> Path:
        """A fresh path under root (its parent folders made)."""
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, content: bytes, *parts: str) -> Path:
        """A fresh file under root holding `content`."""
        path = self.path(*parts)
        path.write_bytes(content)
        return path


@dataclass(frozen=True)
class Run:
    """A command line to run, and what an error message must name."""

    argv: list[str]
    names: str = ""  # a part of the bad file's or folder's name that the error must mention
    env: dict[str, str] = field(default_factory=dict)
    verify: Callable[[], None] | None = None  # further checks once it ran (asserts)


@dataclass(frozen=True)
class Case:
    """One hostile input: how to build it, and what the command line must do."""

    name: str
    build: Callable[[Kit], Run]
    expect: str = "error"  # "error", "ok", "either" or "some-failed" (a batch: exit code 1)
    slow: bool = False


def all_cases() -> list[Case]:
    """Every case of the corpus, in a stable order."""
    from . import archives, batches, dicom_inputs, models, options, places, volumes

    return [*dicom_inputs.cases(), *volumes.cases(), *archives.cases(), *places.cases(), *models.cases(),
            *options.cases(), *batches.cases()]
