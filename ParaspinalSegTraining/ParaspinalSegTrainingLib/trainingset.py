"""A training set of corrected cases: adding a segmented series as a pseudonymous case, listing, removing.

    TRAINING_SET/
      dataset.json              what the set holds (cases, slices, label scheme), updated on each change
      pseudonyms.csv            case and patient pseudonym -> patient key; only if the user asked to keep it
      cases/<case_id>/          the layout ParaspinalSegTrainingLib.datasets reads
        image.nrrd              the series' pixels (float32) on its own grid
        labels.nrrd             uint8 scheme labels on exactly that grid
        case.json               pseudonyms, label scheme, slices, author, date, draft model, corrected segments
      trash/<case_id>/          removed cases (moved there whole; delete the folder to discard them)

Case ids and patient pseudonyms are random ("case-1a2b3c4d", "patient-5e6f7a8b"): nothing in a case
can be traced back to the patient without pseudonyms.csv. With the mapping kept, later cases of the
same patient get the same patient pseudonym, so training never splits one patient between training
and validation; without it every case counts as a patient of its own. A case appears whole or not
at all (written into a hidden folder, then renamed) and is never overwritten.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ParaspinalSegLib import __version__
from ParaspinalSegLib.errors import GeometryMismatchError, InputError
from ParaspinalSegLib.labels import BACKGROUND, LEFT_FAT
from ParaspinalSegLib.measure.measurement import summarise
from ParaspinalSegLib.network.modelfile import label_scheme
from ParaspinalSegLib.output.outputs import output_folder, write_text_atomic
from ParaspinalSegLib.pipeline import measure_labels
from ParaspinalSegLib.read.reading import check_axial, read_study
from ParaspinalSegLib.read.segmentation import side_warnings
from ParaspinalSegLib.slices import SliceSeries
from ParaspinalSegLib.read.volumes import GridBlock, block_image, grid_blocks

from .datasets import case_files, case_folders, case_labels

log = logging.getLogger(__name__)

IMAGE_FILE = "image.nrrd"
LABELS_FILE = "labels.nrrd"
CASE_FILE = "case.json"
DATASET_FILE = "dataset.json"
MAPPING_FILE = "pseudonyms.csv"
MAPPING_COLUMNS = ["case_id", "patient_id", "patient_key", "added"]
TRASH = "trash"


@dataclass(frozen=True)
class CaseSummary:
    """One case of a training set as the case list shows it.

    corrected: whether someone corrected the draft (None when the case does not say, e.g. a
    synthetic case); mean_fat_fraction_pct: NaN when the labels cannot be read or are empty.
    """

    case_id: str
    folder: Path
    slices: int
    mean_fat_fraction_pct: float
    corrected: bool | None
    added: str
    draft_model: str | None
    author: str
    warnings: tuple[str, ...]


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check_labels(series: SliceSeries, labels: list[np.ndarray]) -> list[np.ndarray]:
    """The label maps as uint8, after checking there is one per slice, of its shape, in the scheme."""
    if len(series) == 0:
        raise InputError("the series has no slices; nothing to add to the training set")
    if len(labels) != len(series):
        raise InputError(f"{len(labels)} label maps for {len(series)} slices: give one label map per slice")
    checked = []
    for index, (image_slice, plane) in enumerate(zip(series.slices, labels)):
        plane = np.asarray(plane)
        if plane.shape != image_slice.geometry.shape:
            raise InputError(f"slice {index}: label map of shape {plane.shape} on an image of shape "
                             f"{image_slice.geometry.shape}; the labels must lie on the image's own grid")
        if plane.size and (plane.min() < BACKGROUND or plane.max() > LEFT_FAT):
            raise InputError(f"slice {index}: label values outside the scheme 0-{LEFT_FAT} "
                             f"({sorted(set(np.unique(plane).tolist()))}); convert the segmentation to the scheme first")
        checked.append(plane.astype(np.uint8))
    return checked


def single_block(series: SliceSeries) -> GridBlock:
    """The one grid block of the series; a case holds one regular grid, so angled blocks are refused."""
    blocks = grid_blocks(series)
    if len(blocks) > 1:
        raise InputError(
            f"the series lies on {len(blocks)} grid blocks (stacks of slices angled to each disc); a training "
            "case holds one regular grid: add each block as a case of its own (in Slicer, one volume per block)"
        )
    return blocks[0]


def new_case_id(cases: Path) -> str:
    """A random case id not used in `cases` yet."""
    while True:
        case_id = f"case-{secrets.token_hex(4)}"
        if not (cases / case_id).exists():
            return case_id


def read_mapping(training_set: Path) -> list[dict[str, str]]:
    path = training_set / MAPPING_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def write_mapping(training_set: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MAPPING_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(training_set / MAPPING_FILE, buffer.getvalue())


def patient_pseudonym(mapping: list[dict[str, str]], patient_key: str | None) -> str:
    """The pseudonym this patient already has in the kept mapping, else a new random one."""
    known = {row["patient_key"]: row["patient_id"] for row in mapping if row["patient_key"]}
    if patient_key and patient_key in known:
        return known[patient_key]
    return f"patient-{secrets.token_hex(4)}"


def case_document(case_id: str, patient_id: str, slices: int, draft_model: str | None,
                  corrected_segments: list[str], author: str) -> dict:
    """case.json of a new case: pseudonyms and provenance, no patient identifier."""
    return {
        "case_id": case_id,
        "patient_id": patient_id,
        "image": IMAGE_FILE,
        "labels": LABELS_FILE,
        "label_scheme": label_scheme(),
        "slices": slices,
        "author": author,
        "added": now_iso(),
        "draft_model": draft_model,
        "corrected": bool(corrected_segments),
        "corrected_segments": list(corrected_segments),
        "software": {"paraspinalseg": __version__},
    }


def write_case_files(folder: Path, series: SliceSeries, block: GridBlock, labels: list[np.ndarray],
                     document: dict) -> None:
    """image.nrrd and labels.nrrd on the series' grid block, and case.json, into `folder`."""
    import SimpleITK as sitk

    planes = [series.slices[i].pixels.astype(np.float32) for i in block.members]
    sitk.WriteImage(block_image(block, planes, sitk.sitkFloat32), str(folder / IMAGE_FILE), useCompression=True)
    sitk.WriteImage(block_image(block, [labels[i] for i in block.members], sitk.sitkUInt8), str(folder / LABELS_FILE),
                    useCompression=True)
    write_text_atomic(folder / CASE_FILE, json.dumps(document, indent=2) + "\n")


def add_case(
    training_set: Path,
    series: SliceSeries,
    labels: list[np.ndarray],
    *,
    draft_model: str | None,
    corrected_segments: list[str],
    author: str,
    patient_key: str | None = None,
    keep_mapping: bool = False,
) -> Path:
    """Save a series and its (corrected) scheme labels as a new case; returns the case folder.

    The patient key (e.g. the patient ID) is written only with keep_mapping, and only to
    pseudonyms.csv at the training set's root, never into the case. A series on several angled
    grid blocks is refused (InputError): add each block as its own case.
    """
    training_set = Path(training_set)
    labels = check_labels(series, labels)
    check_axial(series, Path(series.info.source or "the series"))
    block = single_block(series)
    cases = training_set / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    mapping = read_mapping(training_set) if keep_mapping else []
    case_id = new_case_id(cases)
    patient_id = patient_pseudonym(mapping, patient_key)
    document = case_document(case_id, patient_id, len(series), draft_model, corrected_segments, author)
    with output_folder(cases / case_id) as staging:
        write_case_files(staging, series, block, labels, document)
    if keep_mapping:
        write_mapping(training_set, mapping + [{"case_id": case_id, "patient_id": patient_id,
                                                "patient_key": patient_key or "", "added": document["added"]}])
    update_dataset_document(training_set)
    log.info("added case %s (%d slices) to %s", case_id, len(series), training_set)
    return cases / case_id


def update_dataset_document(training_set: Path) -> dict:
    """Write dataset.json anew from the cases present (keeping what else it says)."""
    path = training_set / DATASET_FILE
    document = json.loads(path.read_text()) if path.is_file() else {
        "description": "corrected segmentations collected with ParaspinalSeg; case ids are pseudonyms",
        "collected_with": "ParaspinalSegTrainingLib.trainingset",
    }
    folders = case_folders(training_set)
    metas = [json.loads((folder / CASE_FILE).read_text()) for folder in folders if (folder / CASE_FILE).is_file()]
    document.update({
        "label_scheme": label_scheme(),
        "cases": len(folders),
        "slices": sum(int(meta.get("slices", 0)) for meta in metas),
        "pseudonym_mapping": MAPPING_FILE if (training_set / MAPPING_FILE).is_file() else None,
        "updated": now_iso(),
        "software": {"paraspinalseg": __version__},
    })
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")
    return document


def border_slices(labels: list[np.ndarray]) -> list[int]:
    """Slices whose labels reach the first or last row or column of the image."""
    return [index for index, plane in enumerate(labels)
            if plane[0].any() or plane[-1].any() or plane[:, 0].any() or plane[:, -1].any()]


def label_warnings(series: SliceSeries, labels: list[np.ndarray]) -> list[str]:
    """Empty labels, labels at the image border, sides that look swapped."""
    if not any(plane.any() for plane in labels):
        return ["the labels are empty: no compartment on any slice; correct the segmentation or remove the case"]
    warnings = list(side_warnings(labels, series))
    touching = border_slices(labels)
    if touching:
        warnings.append(f"the labels touch the image border on slice(s) {', '.join(map(str, touching))}: the "
                        "compartment may be cut off by the field of view; check those slices")
    return warnings


def summarise_case(folder: Path) -> CaseSummary:
    """A case's figures and warnings; a case that cannot be read is listed with the reason, not raised."""
    meta_path = folder / CASE_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    slices, fat_fraction, warnings = int(meta.get("slices", 0)), math.nan, []
    try:
        case = case_files(folder)
        series = read_study(case.image).series
        slices = len(series)
        labels, _ = case_labels(case, series)
        warnings += label_warnings(series, labels)
        fat_fraction = summarise(measure_labels(series, labels)).mean_fat_fraction_pct
    except GeometryMismatchError as error:
        warnings.append(f"the labels do not lie on the image's grid: {error}")
    except InputError as error:
        warnings.append(f"the case cannot be read: {error}")
    corrected = meta.get("corrected")
    return CaseSummary(
        case_id=folder.name,
        folder=folder,
        slices=slices,
        mean_fat_fraction_pct=fat_fraction,
        corrected=None if corrected is None else bool(corrected),
        added=str(meta.get("added", "")),
        draft_model=meta.get("draft_model"),
        author=str(meta.get("author", "")),
        warnings=tuple(warnings),
    )


def list_cases(training_set: Path) -> list[CaseSummary]:
    """Every case of a training set (sorted by case id) with its figures and warnings; [] if none yet."""
    return [summarise_case(folder) for folder in case_folders(Path(training_set))]


def remove_case(training_set: Path, case_id: str) -> Path:
    """Move a case whole into TRAINING_SET/trash/ (one rename; restore by moving it back); returns
    where it went. Its row in pseudonyms.csv, if any, stays."""
    training_set = Path(training_set)
    folder = training_set / "cases" / case_id
    if not case_id or case_id.startswith(".") or Path(case_id).name != case_id or not folder.is_dir():
        raise InputError(f"{folder}: no such case in the training set")
    trash = training_set / TRASH
    trash.mkdir(exist_ok=True)
    target = trash / case_id
    if target.exists():
        target = trash / f"{case_id}.{datetime.datetime.now():%Y%m%dT%H%M%S}.{secrets.token_hex(2)}"
    os.replace(folder, target)
    update_dataset_document(training_set)
    log.info("moved case %s to %s", case_id, target)
    return target
