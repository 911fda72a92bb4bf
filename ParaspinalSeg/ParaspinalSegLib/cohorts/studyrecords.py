"""What a batch leaves behind for each study, read back to resume it and to merge a cohort.

- Complete outputs: the study's folder (it is renamed into place whole, see outputs.output_folder)
  holding a readable patient.json, slices.csv, qc.png and every segmentation file patient.json lists.
- A failure record: `failures/<output name>.json` in the batch folder, written (atomically) when a
  study fails and removed once it succeeds; it says which study, what went wrong, and when.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..output.outputs import write_text_atomic
from ..paths import display_name

FAILURES = "failures"
PATIENT_FILE = "patient.json"
FIXED_OUTPUTS = ("patient.json", "slices.csv", "qc.png")
TOOL_FOLDER = "dicom"  # the DICOM SEG and SR (dicomexport)


def read_patient(folder: Path) -> dict | None:
    """The folder's patient.json as a dict, or None when it is missing or unreadable."""
    try:
        document = json.loads((Path(folder) / PATIENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def complete_outputs(folder: Path) -> dict | None:
    """patient.json of a folder holding a study's complete outputs; None if anything is missing."""
    document = read_patient(folder)
    if document is None:
        return None
    expected = list(FIXED_OUTPUTS) + [str(name) for name in document.get("outputs", ())]
    if not all((Path(folder) / name).is_file() for name in expected):
        return None
    return document


@dataclass(frozen=True)
class StudyFigures:
    """A study's headline figures (percent NaN where not measured)."""

    grade: str
    mean_fat_fraction_pct: float
    mean_fat_fraction_right_pct: float
    mean_fat_fraction_left_pct: float
    slices: int
    warnings: tuple[str, ...]
    model: str


def _percent(value) -> float:
    return math.nan if value is None else float(value)


def figures_of_document(document: dict) -> StudyFigures:
    """The figures of a patient.json."""
    means = document.get("mean_fat_fraction_pct", {})
    return StudyFigures(str(document.get("grade") or ""), _percent(means.get("overall")), _percent(means.get("right")),
                        _percent(means.get("left")), int(document.get("slices_with_compartment", {}).get("overall", 0)),
                        tuple(str(w) for w in document.get("warnings", ())),
                        str(document.get("provenance", {}).get("model") or ""))


def only_tool_outputs(folder: Path) -> bool:
    """True when every entry of the folder has a name this tool writes (so replacing it loses
    nothing of the user's): the fixed files, segmentations, and the DICOM export's folder."""
    return all((p.is_file() and (p.name in FIXED_OUTPUTS or p.name.endswith(".seg.nrrd")))
               or (p.is_dir() and p.name == TOOL_FOLDER) for p in Path(folder).iterdir())


@dataclass(frozen=True)
class FailureRecord:
    study: str
    output: str
    error: str
    software: str = f"ParaspinalSeg {__version__}"
    created: str = ""


def failure_path(batch_out: Path, output_name: str) -> Path:
    return Path(batch_out) / FAILURES / f"{output_name}.json"


def record_failure(batch_out: Path, study_name: str, output_name: str, error: str) -> Path:
    """Write (or replace) the failure record of one study."""
    path = failure_path(batch_out, output_name)
    path.parent.mkdir(exist_ok=True)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = FailureRecord(display_name(study_name), output_name, display_name(error), created=created)
    write_text_atomic(path, json.dumps(record.__dict__, indent=2) + "\n")
    return path


def clear_failure(batch_out: Path, output_name: str) -> None:
    """Remove a study's failure record, if any (it succeeded, or its outputs are complete)."""
    path = failure_path(batch_out, output_name)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # only when empty
    except OSError:
        pass


def read_failures(batch_out: Path) -> list[FailureRecord]:
    """Every readable failure record of a batch folder (name order)."""
    folder = Path(batch_out) / FAILURES
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records.append(FailureRecord(**{k: str(data[k]) for k in FailureRecord.__dataclass_fields__ if k in data}))
        except (OSError, ValueError, TypeError):
            records.append(FailureRecord(path.stem, path.stem, f"{path}: unreadable failure record"))
    return records


def leftover_staging(batch_out: Path) -> list[Path]:
    """Half-written study folders (`.name.xxxx.partial`) that a killed run left behind."""
    return sorted(p for p in Path(batch_out).iterdir() if p.name.startswith(".") and p.name.endswith(".partial")
                  and p.is_dir()) if os.path.isdir(batch_out) else []
