"""Which studies of a batch folder one run does, and which it leaves as they are (resume).

The studies are the folder's entries in sorted order, numbered from 1; their output names are
made unique over the whole folder (so every shard of an array job agrees on them). Of the run's
shard, a study whose folder holds complete outputs made with the same method is kept unless
`overwrite`; incomplete outputs of an earlier run are redone; anything else in the way is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..measure.fat import FatMethod, FatSettings
from ..paths import unique_folder_names
from ..pipeline import FAT_FROM_MODEL, method_text, model_source
from .sharding import Shard
from .studyrecords import clear_failure, complete_outputs, only_tool_outputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSettings:
    """How every study of a batch is segmented."""

    fat_method: str = FAT_FROM_MODEL
    device: str = "cpu"
    batch_size: int = 8
    mirror: bool = False
    dicom: bool = False  # also the DICOM SEG and SR (dicomexport)

    def method(self, model_id: str, mirror_below: float = 0.0) -> str:
        """The provenance method (patient.json) of outputs made with these settings by a model whose card
        has this `mirror_below_confidence`."""
        fat = None if self.fat_method == FAT_FROM_MODEL else FatSettings(method=FatMethod(self.fat_method))
        return method_text(model_source(model_id, self.mirror, mirror_below), fat)


@dataclass(frozen=True)
class StudyJob:
    """One study to run: its input, its output folder, its number in the batch (1-based) and whether
    an existing output folder may be replaced (--overwrite, or incomplete outputs of an earlier run)."""

    study: Path
    target: Path
    number: int
    replace: bool = False


@dataclass(frozen=True)
class Decision:
    """What a run does with one study: `run` it, or not (`document`: complete outputs kept; `error`:
    refused)."""

    job: StudyJob
    run: bool
    document: dict | None = None
    error: str = ""


def made_as_asked(document: dict, method: str, dicom: bool) -> bool:
    """Outputs made with this method, with the DICOM export if it is asked for."""
    with_dicom = any(str(name).startswith("dicom/") for name in document.get("outputs", ()))
    return document.get("provenance", {}).get("method") == method and (with_dicom or not dicom)


def decide(job: StudyJob, method: str, overwrite: bool, dicom: bool = False) -> Decision:
    """Run, keep or refuse one study, from what its output folder holds."""
    target = job.target
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return Decision(job, run=True)
    if overwrite:
        return Decision(StudyJob(job.study, target, job.number, replace=True), run=True)
    document = complete_outputs(target) if target.is_dir() else None
    if document is not None:
        if made_as_asked(document, method, dicom):
            return Decision(job, run=False, document=document)
        made_with = str(document.get("provenance", {}).get("method", "an unknown method"))
        asked = method + (" with the DICOM export" if dicom else "")
        return Decision(job, run=False, error=f"{target}: its outputs were made earlier with {made_with}, this run "
                                              f"asks for {asked}; pass --overwrite to redo it")
    if target.is_dir() and only_tool_outputs(target):
        log.info("study #%d: incomplete outputs of an earlier run, done again", job.number)
        return Decision(StudyJob(job.study, target, job.number, replace=True), run=True)
    return Decision(job, run=False, error=f"{target}: is in the way and does not hold this tool's outputs; move it "
                                          "away or pass --overwrite")


def plan_batch(studies: list[Path], out: Path, shard: Shard, method: str, overwrite: bool,
               dicom: bool = False) -> list[Decision]:
    """The decision for each study of the shard (batch order). Kept studies lose any failure record."""
    names = unique_folder_names([study.name for study in studies])
    decisions = [decide(StudyJob(study, out / name, number), method, overwrite, dicom)
                 for number, (study, name) in enumerate(zip(studies, names), start=1) if shard.holds(study.name)]
    for decision in decisions:
        if decision.document is not None:
            clear_failure(out, decision.job.target.name)
    return decisions
