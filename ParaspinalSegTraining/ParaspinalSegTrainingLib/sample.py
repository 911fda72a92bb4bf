"""The product's synthetic sample study: a DICOM folder, its compartment map and its exact truth.

Made from the procedural phantom with a fixed seed, so that `python -m ParaspinalSegTrainingLib.sample
OUT` writes the same study as the one shipped in Resources/Sample. The folder holds an axial T2 TSE
series (the one to process) and a sagittal localizer (to be passed over).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.grading import sgc_grade
from ParaspinalSegLib.outputs import output_folder, write_text_atomic
from ParaspinalSegLib.slices import ImageSlice, SeriesInfo, SliceSeries
from ParaspinalSegLib.volumes import block_image, grid_blocks

from .phantom import phantom_slice

SEED = 2021
SHAPE = (256, 256)
PIXEL_MM = 1.09375
SLICE_GAP_MM = 4.4
SLICES = 16
# Fat fraction per slice from inferior (more fat at L5/S1) to superior.
FAT_FRACTIONS = np.linspace(0.34, 0.14, SLICES)
MUSCLE_SCALE = np.linspace(1.05, 0.85, SLICES)


def axial_geometry(k: int) -> SliceGeometry:
    """Standard axial slice k: columns towards the patient's left, rows towards posterior."""
    half = (SHAPE[0] - 1) / 2 * PIXEL_MM
    return SliceGeometry(
        origin=(-half, -half, -40.0 + k * SLICE_GAP_MM),
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 1.0, 0.0),
        spacing=(PIXEL_MM, PIXEL_MM),
        shape=SHAPE,
        thickness=4.0,
    )


def sample_series(seed: int = SEED):
    """The axial series with its truth label maps (scheme) and per-slice truth fat fractions."""
    rng = np.random.default_rng(seed)
    phantoms = [
        phantom_slice(SHAPE, PIXEL_MM, float(MUSCLE_SCALE[k]), float(FAT_FRACTIONS[k]), rng) for k in range(SLICES)
    ]
    info = SeriesInfo(
        uid="", number=3, description="t2_tse_tra_lumbar", sequence="SE",
        echo_time_ms=96.0, repetition_time_ms=4200.0, echo_train_length=17,
    )
    slices = [ImageSlice(p.image, axial_geometry(k), source_index=k) for k, p in enumerate(phantoms)]
    return SliceSeries(slices, info), phantoms


def truth_document(phantoms, seed: int) -> dict:
    fractions = [p.fat_fraction_pct for p in phantoms]
    mean = float(np.mean(fractions))
    return {
        "description": "synthetic lumbar phantom made by ParaspinalSegTrainingLib.sample; no patient data",
        "seed": seed,
        "slices": len(phantoms),
        "fat_fraction_pct_per_slice": [round(f, 4) for f in fractions],
        "mean_fat_fraction_pct": round(mean, 4),
        "grade": sgc_grade(mean),
    }


def write_sample_study(folder: Path, seed: int = SEED, overwrite: bool = False) -> dict:
    """Write study/ (DICOM), compartments.nrrd, truth.nrrd and truth.json into `folder`."""
    import SimpleITK as sitk

    from .dicom_writer import write_dicom_series

    series, phantoms = sample_series(seed)
    truth = truth_document(phantoms, seed)
    (block,) = grid_blocks(series)
    labels = [p.labels for p in phantoms]
    compartments = [np.where(np.isin(p.labels, (1, 2)), 1, np.where(p.labels > 0, 3, 0)) for p in phantoms]
    with output_folder(Path(folder), overwrite) as staging:
        write_dicom_series(series, staging / "study" / "t2_tse_tra", seed=seed)
        write_dicom_series(localizer_series(), staging / "study" / "localizer", seed=seed + 1)
        sitk.WriteImage(block_image(block, labels, sitk.sitkUInt8), str(staging / "truth.nrrd"), True)
        sitk.WriteImage(block_image(block, compartments, sitk.sitkUInt8), str(staging / "compartments.nrrd"), True)
        write_text_atomic(staging / "truth.json", json.dumps(truth, indent=2) + "\n")
    return truth


def localizer_series() -> SliceSeries:
    """Three sagittal localizer slices: a series the chooser must pass over."""
    slices = []
    for k, x in enumerate((-20.0, 0.0, 20.0)):
        geometry = SliceGeometry((x, -120.0, 60.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (2.0, 2.0), (96, 128), 5.0)
        slices.append(ImageSlice(np.full((96, 128), 200.0, dtype=np.float32), geometry, source_index=k))
    info = SeriesInfo(uid="", number=1, description="localizer_sag", sequence="GR",
                      echo_time_ms=3.0, repetition_time_ms=8.0, echo_train_length=1)
    return SliceSeries(slices, info)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    truth = write_sample_study(args.output, args.seed, args.overwrite)
    print(f"sample study in {args.output}: mean fat fraction {truth['mean_fat_fraction_pct']:.1f} %, grade {truth['grade']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
