"""Writing a synthetic training data set: dataset.json and one folder per case, written atomically.

    DATASET/
      dataset.json                  generator, version, settings (with seed), counts
      cases/synth-0000/
        image.nii.gz                float32 [slice, row, column], slices inferior to superior
        labels.nii.gz               uint8 scheme labels on the same grid
        case.json                   case and patient id, contrast, spacing, per-slice level, fat truth, shape source

The volumes lie on a standard axial LPS grid (identity direction: columns towards the patient's
left, rows towards posterior, slices towards superior), so the slices are in display orientation.
This is the layout ParaspinalSegTrainingLib.datasets reads.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from ParaspinalSegLib.output.outputs import output_folder, write_text_atomic

from ..workers import in_processes
from .generator import SynthCase, synth_case
from .settings import SYNTHESIS_VERSION, SynthesisSettings
from .shapes import SHAPES_NAME, real_shapes_available
from ParaspinalSegLib.progress import ProgressCallback

log = logging.getLogger(__name__)


def volume_image(array: np.ndarray, pixel_spacing_mm: float, slice_spacing_mm: float):
    """A SimpleITK image of a [slice, row, column] array on the standard axial grid, centred in-plane."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    slices, rows, columns = array.shape
    image.SetSpacing((pixel_spacing_mm, pixel_spacing_mm, slice_spacing_mm))
    image.SetOrigin((-(columns - 1) / 2 * pixel_spacing_mm, -(rows - 1) / 2 * pixel_spacing_mm,
                     -(slices - 1) / 2 * slice_spacing_mm))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return image


def write_case(case: SynthCase, folder: Path) -> None:
    """image.nii.gz, labels.nii.gz and case.json of one case into `folder`."""
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    spacing, gap = case.patient.pixel_spacing_mm, case.patient.slice_spacing_mm
    sitk.WriteImage(volume_image(case.image_volume(), spacing, gap), str(folder / "image.nii.gz"), useCompression=True)
    sitk.WriteImage(volume_image(case.label_volume(), spacing, gap), str(folder / "labels.nii.gz"), useCompression=True)
    write_text_atomic(folder / "case.json", json.dumps(case.metadata(), indent=2) + "\n")


def dataset_document(settings: SynthesisSettings, cases: list[dict]) -> dict:
    """dataset.json: how the set was made and what it holds."""
    slices = [s for case in cases for s in case["slices"]]
    return {
        "description": "synthetic axial lumbar MRI slices with exact labels, made from procedural and traced "
                       "anatomy; no patient images",
        "generator": "ParaspinalSegTrainingLib.synthesis",
        "version": SYNTHESIS_VERSION,
        "seed": settings.seed,
        "settings": settings.to_dict(),
        "real_shapes": {
            "file": SHAPES_NAME,
            "available": real_shapes_available(settings.shapes_zip),
            "source": "masks of 3Shot-LPM-Seg (Apache-2.0) on the Lumbar Spine MRI Dataset of Sudirman et al. (CC BY 4.0)",
        },
        "cases": len(cases),
        "slices": len(slices),
        "slices_per_level": dict(sorted(Counter(s["level"] for s in slices).items())),
        "slices_per_shape_source": dict(sorted(Counter(s["shape_source"] for s in slices).items())),
        "cases_per_contrast": dict(sorted(Counter(c["contrast"]["mode"] for c in cases).items())),
    }


def synth_and_write(index: int, settings: SynthesisSettings, cases_folder: Path) -> dict:
    """Case `index` of `settings` drawn and written under `cases_folder`; its case.json document."""
    case = synth_case(index, settings)
    write_case(case, cases_folder / case.case_id)
    log.debug("wrote %s (%d slices)", case.case_id, len(case.slices))
    return case.metadata()


def write_dataset(out: Path, n_cases: int, settings: SynthesisSettings,
                  progress: ProgressCallback | None = None, overwrite: bool = False, workers: int = 1) -> Path:
    """Write cases 0..n_cases-1 of `settings` as a data set folder at `out` (whole or not at all), drawing
    them in `workers` processes (the same files whatever their number).

    Raises OutputExistsError if `out` holds files and overwrite is False; a progress callback may
    raise OperationCancelled to stop, leaving `out` untouched.
    """
    out = Path(out)
    documents = []
    with output_folder(out, overwrite=overwrite) as staging:
        for document in in_processes(synth_and_write, range(n_cases), workers, settings, staging / "cases"):
            documents.append(document)
            if progress:
                progress(len(documents) / n_cases, f"synthesising cases, {len(documents)}/{n_cases}")
        write_text_atomic(staging / "dataset.json", json.dumps(dataset_document(settings, documents), indent=2) + "\n")
    log.info("wrote %d synthetic cases to %s", n_cases, out)
    return out
