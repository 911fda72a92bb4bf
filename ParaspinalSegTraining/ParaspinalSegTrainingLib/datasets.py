"""Training data sets: a folder of cases, each an image and its label map on the same grid.

    DATASET/
      dataset.json                 optional: how the set was made
      cases/<case_id>/
        image.nii.gz | image.nrrd | image/ (a DICOM folder)
        labels.nii.gz | labels.nrrd | segmentation.seg.nrrd
        case.json                  optional: {"patient_id": ..., ...}; patient id defaults to the case id

Labels may be anything ParaspinalSegLib.read.segmentation reads (scheme, compartment-only, MuscleMap,
TotalSegmentator, .seg.nrrd); compartment-only maps get their fat by image analysis (recorded).
Slices become network-ready windows with ParaspinalSegLib.network.preprocess, kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.model import Preprocessing
from ParaspinalSegLib.pipeline import add_fat
from ParaspinalSegLib.measure.fat import FatSettings
from ParaspinalSegLib.network.preprocess import prepare_slice
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.read.segmentation import load_segmentation
from ParaspinalSegLib.progress import ProgressCallback
from ParaspinalSegLib.slices import SliceSeries

from .workers import in_processes

log = logging.getLogger(__name__)

IMAGE_NAMES = ("image.nii.gz", "image.nii", "image.nrrd", "image")
LABEL_NAMES = ("labels.nii.gz", "labels.nii", "labels.nrrd", "segmentation.seg.nrrd")


@dataclass(frozen=True)
class CaseFiles:
    case_id: str
    patient_id: str
    image: Path
    labels: Path
    meta: dict = field(default_factory=dict)


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).exists()), None)


def case_files(folder: Path) -> CaseFiles:
    """The files of one case folder; a clear error if its image or labels are missing."""
    image, labels = _first_existing(folder, IMAGE_NAMES), _first_existing(folder, LABEL_NAMES)
    if image is None or labels is None:
        raise InputError(f"{folder}: a case needs an image ({', '.join(IMAGE_NAMES)}) and labels ({', '.join(LABEL_NAMES)})")
    meta_path = folder / "case.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return CaseFiles(folder.name, str(meta.get("patient_id", folder.name)), image, labels, meta)


def case_folders(dataset: Path) -> list[Path]:
    """The case folders under DATASET/cases, sorted; hidden ones (unfinished writes) are left out."""
    root = Path(dataset) / "cases"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def find_cases(dataset: Path) -> list[CaseFiles]:
    """The cases of a data set folder, sorted by case id; a clear error if there are none."""
    dataset = Path(dataset)
    if not (dataset / "cases").is_dir():
        raise InputError(f"{dataset}: not a data set (no cases/ folder); see the data set layout in the README")
    cases = [case_files(folder) for folder in case_folders(dataset)]
    if not cases:
        raise InputError(f"{dataset / 'cases'}: no cases found")
    return cases


def case_labels(case: CaseFiles, series: SliceSeries) -> tuple[list[np.ndarray], bool]:
    """The case's scheme labels on the series' slices, and whether their fat came from image analysis
    (labels giving compartments only)."""
    segmentation = load_segmentation([case.labels], series)
    if segmentation.needs_fat:
        return add_fat(series, segmentation.labels, FatSettings()), True
    return segmentation.labels, False


@dataclass
class PreparedSlices:
    """Network-ready slices of a set of cases: images (n, size, size), labels, and who they belong to."""

    images: np.ndarray
    labels: np.ndarray
    case_ids: list[str]
    patient_ids: list[str]
    pixel_area_mm2: float
    fat_by_image_analysis: list[str] = field(default_factory=list)

    def subset(self, patients: set[str]) -> PreparedSlices:
        keep = [i for i, p in enumerate(self.patient_ids) if p in patients]
        return PreparedSlices(
            self.images[keep],
            self.labels[keep],
            [self.case_ids[i] for i in keep],
            [self.patient_ids[i] for i in keep],
            self.pixel_area_mm2,
            self.fat_by_image_analysis,
        )

    def __len__(self) -> int:
        return len(self.images)


def prepare_case(case: CaseFiles, pre: Preprocessing, label_resampling: str = "nearest"
                 ) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """Windows and label windows of every slice of one case (labels resized by `label_resampling`,
    see `resample_labels`); whether fat came from image analysis."""
    study = read_study(case.image)
    labels, fat_from_image = case_labels(case, study.series)
    images, targets = [], []
    for image_slice, plane in zip(study.series.slices, labels):
        window, _, label_window = prepare_slice(image_slice.pixels, image_slice.geometry, pre, plane,
                                                   label_resampling)
        images.append(window)
        targets.append(label_window)
    return images, targets, fat_from_image


def prepare_dataset(
    cases: list[CaseFiles], pre: Preprocessing, progress: ProgressCallback | None = None,
    label_resampling: str = "nearest", workers: int = 0,
) -> PreparedSlices:
    """Every slice of the cases as a network window with its label window, in case order; `workers`
    processes read and resample the cases where there are more than one (as a GPU run has)."""
    images, labels, case_ids, patient_ids, fat_cases = [], [], [], [], []
    for n, (case, (case_images, case_labels, fat_from_image)) in enumerate(
            zip(cases, in_processes(prepare_case, cases, workers, pre, label_resampling))):
        images += case_images
        labels += case_labels
        case_ids += [case.case_id] * len(case_images)
        patient_ids += [case.patient_id] * len(case_images)
        if fat_from_image:
            fat_cases.append(case.case_id)
        if progress:
            progress((n + 1) / len(cases), f"reading cases, {n + 1}/{len(cases)}")
    return PreparedSlices(
        np.stack(images).astype(np.float32),
        np.stack(labels).astype(np.int64),
        case_ids,
        patient_ids,
        pre.pixel_spacing_mm**2,
        fat_cases,
    )


def dataset_fingerprint(cases: list[CaseFiles]) -> dict:
    """Case count, patient count and a SHA-256 over every file's content, for the model card."""
    digest = hashlib.sha256()
    for case in cases:
        for path in sorted(p for f in (case.image, case.labels) for p in ([f] if f.is_file() else f.rglob("*")) if p.is_file()):
            digest.update(path.name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return {
        "cases": len(cases),
        "patients": len({c.patient_id for c in cases}),
        "sha256": digest.hexdigest(),
    }
