"""The product's synthetic sample study: a DICOM folder, its compartment map and its exact truth.

Made by the training-data synthesiser (T2 contrast, procedural anatomy, L1 to S1) with a fixed
seed, so that `python -m ParaspinalSegTrainingLib.sample OUT` writes the same study as the one
shipped in Resources/Sample. The folder holds an axial T2 TSE
series (the one to process) and a sagittal localizer (to be passed over).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.measure.grading import sgc_grade
from ParaspinalSegLib.output.outputs import output_folder, write_text_atomic
from ParaspinalSegLib.slices import ImageSlice, SeriesInfo, SliceSeries
from ParaspinalSegLib.read.volumes import block_image, grid_blocks

SEED = 2021
CASE = 11
SIGNAL_SCALE = 1000.0  # the synthesiser's 0..1 intensities as scanner-like values


def sample_settings(seed: int = SEED):
    """A T2 TSE-like synthetic patient with procedural anatomy (the same with or without ../shared), its
    compartments lying on the spine (synthesis 1.1 anatomy, as model 1.2.0 was trained on)."""
    from .synthesis import SynthesisSettings

    return SynthesisSettings(seed=seed, shape_source="procedural", contrast_probabilities=(("t2", 1.0),),
                             compartment_width_mm=(70.0, 70.0, 70.0, 68.0, 60.0, 50.0), bone_gap_mm=12.0)


def axial_geometry(k: int, pixel_mm: float, gap_mm: float, shape: tuple[int, int]) -> SliceGeometry:
    """Axial slice k: columns towards the patient's left, rows towards posterior, k upwards."""
    half_rows, half_columns = ((n - 1) / 2 * pixel_mm for n in shape)
    return SliceGeometry(
        origin=(-half_columns, -half_rows, -60.0 + k * gap_mm),
        row_direction=(1.0, 0.0, 0.0),
        column_direction=(0.0, 1.0, 0.0),
        spacing=(pixel_mm, pixel_mm),
        shape=shape,
        thickness=round(gap_mm * 0.9, 2),
    )


def sample_series(seed: int = SEED):
    """The axial series of one synthetic patient (L1 to S1) and its synthesised case (the truth)."""
    from .synthesis import synth_case

    case = synth_case(CASE, sample_settings(seed))
    pixel_mm, gap_mm = case.patient.pixel_spacing_mm, case.patient.slice_spacing_mm
    slices = [
        ImageSlice((s.image * SIGNAL_SCALE).astype(np.float32), axial_geometry(k, pixel_mm, gap_mm, s.image.shape), k)
        for k, s in enumerate(case.slices)
    ]
    info = SeriesInfo(
        uid="", number=3, description="t2_tse_tra_lumbar", sequence="SE",
        echo_time_ms=96.0, repetition_time_ms=4200.0, echo_train_length=17,
    )
    return SliceSeries(slices, info), case


def truth_document(case, seed: int) -> dict:
    labels = [s.labels for s in case.slices]
    fractions = [100.0 * np.isin(l, (2, 4)).sum() / (l > 0).sum() for l in labels if (l > 0).any()]
    mean = float(np.mean(fractions))
    return {
        "description": "synthetic lumbar study made by ParaspinalSegTrainingLib.synthesis; no patient data",
        "seed": seed,
        "case": case.case_id,
        "slices": len(labels),
        "levels": [str(s.level) for s in case.slices],
        "fat_fraction_pct_per_slice": [round(float(f), 4) for f in fractions],
        "mean_fat_fraction_pct": round(mean, 4),
        "grade": sgc_grade(mean),
    }


def write_sample_study(folder: Path, seed: int = SEED, overwrite: bool = False) -> dict:
    """Write study/ (DICOM), compartments.nrrd, truth.nrrd and truth.json into `folder`."""
    import SimpleITK as sitk

    from .dicom_writer import write_dicom_series

    series, case = sample_series(seed)
    truth = truth_document(case, seed)
    (block,) = grid_blocks(series)
    labels = [s.labels for s in case.slices]
    compartments = [np.where(np.isin(l, (1, 2)), 1, np.where(l > 0, 3, 0)) for l in labels]
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
