"""Report: what a user sees when a model segments the real, unlabelled fat-suppressed T2 volumes of ../shared.

    python bench/unlabelled_real.py [MODEL] [--shared ../shared] [--qc FOLDER]    # MODEL: default the active one

The three CHAOS T2-SPIR volumes (`data/real/chaos_t2spir`, L2-L5, 1.5-1.8 mm pixels, 7.7-9 mm apart) have no
muscle labels, so no Dice: for each, through the product's own path (`segment_series`: segment, clean, measure,
quality checks), the slices where each side is drawn, each side's median compartment area (mm²) with the
spread over slices, the mean model confidence, how many slices each quality check flags, the study's warnings,
the mean fat fraction and the grade. Fat-suppressed images are outside what the grade is defined on (axial T2
turbo spin echo without fat suppression), so their fat fraction means nothing: the report shows whether the
user is warned, and how the compartments come out on a real contrast that is not among the held-out domains by
name. `--qc FOLDER` also writes each volume's QC picture there, to look at the masks. It chooses nothing (the
real cases are a report: README, "How models are chosen").
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from ParaspinalSegLib.measure.quality import Check
from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.network.registry import ModelRegistry, resolve_model
from ParaspinalSegLib.pipeline import MeasurementResult, segment_series
from ParaspinalSegLib.read.reading import read_study

CHAOS = Path("data/real/chaos_t2spir")


def area_text(result: MeasurementResult, side: str) -> str:
    """A side's median compartment area over the slices where it is drawn, and its range, mm²."""
    areas = [m.side(side).total_csa_mm2 for m in result.slices if m.side(side).present]
    if not areas:
        return "-"
    return f"{np.median(areas):.0f} ({min(areas):.0f}-{max(areas):.0f})"


def flagged_slices(result: MeasurementResult) -> str:
    """How many slices each quality check flags, the checks that flag none left out."""
    slices = {check: {f.slice_index for f in result.flags if f.check == check} for check in Check}
    counts = Counter({check.value: len(found) for check, found in slices.items() if found})
    return "; ".join(f"{name} {n}" for name, n in counts.most_common()) or "none"


def report_row(volume: Path, model, qc_folder: Path | None) -> str:
    study = read_study(volume)
    result = segment_series(study.series, model)
    if qc_folder is not None:
        from ParaspinalSegLib.output.qc import write_qc_montage

        write_qc_montage(qc_folder / f"{volume.name.split('.')[0]}.png", study.series, result)
    pixel = sorted({round(s.geometry.spacing[0], 2) for s in study.series.slices})
    summary = result.summary
    return (f"| {volume.name.split('_')[0]} | {len(study.series)} | {pixel[0]:g} "
            f"| {summary.slices_right} / {summary.slices_left} | {area_text(result, 'right')} "
            f"| {area_text(result, 'left')} | {np.mean(result.confidence):.3f} | {flagged_slices(result)} "
            f"| {len(result.warnings)} | {summary.mean_fat_fraction_pct:.1f} | {summary.grade} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="", help="model id or folder (default: the active model)")
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--qc", type=Path, help="write each volume's QC picture into this folder")
    args = parser.parse_args()
    volumes = sorted((args.shared / CHAOS).glob("*.nii.gz"))
    if not volumes:
        raise SystemExit(f"no CHAOS volumes in {args.shared / CHAOS}: this report needs ../shared")
    registry = ModelRegistry()
    model = load_model(resolve_model(args.model or registry.active().model_id, registry), "cpu")
    if args.qc is not None:
        args.qc.mkdir(parents=True, exist_ok=True)
    print(f"model {model.card.model_id}; CHAOS T2-SPIR (fat-suppressed), no labels\n")
    print("| volume | slices | pixel mm | slices drawn right / left | right area mm², median (range) "
          "| left area mm², median (range) | mean confidence | slices flagged, by check | study warnings "
          "| mean fat % (not defined here) | grade |")
    print("|---|---:|---:|---|---|---|---:|---|---:|---:|---|")
    for volume in volumes:
        print(report_row(volume, model, args.qc), flush=True)


if __name__ == "__main__":
    main()
