"""Report: where the study-confidence check's threshold would stand for a model, by the rule that chose it.

    python bench/warning_calibration.py [MODEL] --data heldout [--patients 8] [--calibration heldout/calibration]
                                        [--calibration-patients 32] [-o table.md]

`quality.Thresholds.min_study_confidence` warns a study whose mean compartment confidence (over its slices) is
below it. It was chosen by a rule written before its figures, on synthetic data only (README, *Warnings*):
the highest of 0.90-0.98 that warns at most 5 % of the good studies (compartment Dice >= 0.9) of the held-out
domains' selection draws that no other check warns, kept only if it also warns the failed studies (Dice below
0.8) that the other checks miss, among coarse, noisy studies: `coarse_noisy`'s selection draws and a
calibration set of its settings with seed 9300 (`--calibration`, made if missing). Every study goes through the
product's path (segment, clean, measure, `quality.assess_quality`); this prints, per candidate threshold, the
good studies of the pooled held-out domains (those that stay held out: `paraspinal heldout`'s pooled row) that
only the study check would warn, and the failed studies that the other checks miss and the study check warns;
then which other checks warn the good studies and what stands behind each of their flags (the truth's own
measurements flagged the same way, a slice segmented badly, or neither), each failed study the others miss,
and the good studies nearest the threshold. Last, with ../shared beside the clone, how asymmetric and how large the
expert-traced L4/L5 compartments are, against the asymmetry and area thresholds. It chooses nothing by itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ParaspinalSegLib.labels import LEFT, RIGHT
from ParaspinalSegLib.measure.quality import Check, Thresholds, assess_quality
from ParaspinalSegLib.network.modelfile import load_model
from ParaspinalSegLib.network.registry import ModelRegistry, resolve_model
from ParaspinalSegLib.pipeline import measure_labels, segment_series
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegTrainingLib.datasets import case_labels, find_cases
from ParaspinalSegTrainingLib.heldout import FAILED_BELOW, GOOD_FROM, dataset_of, domain_folders, side_dice
from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings
from ParaspinalSegTrainingLib.synthesis.shapes import MASK_PIXEL_MM, load_shapes, real_shapes_available, shapes_zip_path

CANDIDATES = tuple(round(0.90 + 0.01 * k, 2) for k in range(9))  # 0.90 .. 0.98
GOOD_SHARE = 0.05  # at most this share of the good studies warned by the study check alone
CALIBRATION_SEED = 9300
FAILED_DOMAIN = "coarse_noisy"


@dataclass(frozen=True)
class Study:
    """One study through the product's path: where it comes from, its compartment Dice (mean over slices and
    sides), its mean compartment confidence over its slices, and whether a check other than the study
    confidence flags it."""

    source: str
    case: str
    dice: float
    study_confidence: float
    other_checks: tuple[str, ...]
    other_flags: tuple[str, ...] = ()  # per flag of another check: "the truth too", "slice failed" or "needless"
    slices: int = 0
    truth_flags: tuple[str, ...] = ()  # per flag of the truth's own measurements: "check (shape source)"

    def warned_at(self, threshold: float) -> bool:
        """Whether the study check warns it at this threshold (a study below it always has a slice below it)."""
        return self.study_confidence < threshold


def study_of(model, case, source: str) -> Study:
    study = read_study(case.image)
    truth, _ = case_labels(case, study.series)
    result = segment_series(study.series, model)
    pairs = list(zip(truth, result.labels))
    dice = [side_dice(t, p, side) for t, p in pairs for side in (RIGHT, LEFT)]
    found = [c for c in result.confidence if not math.isnan(c)]
    flags = [f for f in result.flags if f.check is not Check.LOW_STUDY_CONFIDENCE]
    truth_flags = assess_quality(measure_labels(study.series, truth)).flags
    in_truth = {(f.slice_index, f.check, f.side) for f in truth_flags}
    kinds = tuple(kind_of(f, in_truth, *pairs[f.slice_index]) for f in flags)
    written = case.meta.get("slices")
    sources = [written[s.source_index].get("shape_source", "?") if isinstance(written, list) else "?"
               for s in study.series.slices]
    return Study(source, case.case_id, float(np.nanmean(dice)), float(np.mean(found)) if found else math.nan,
                 tuple(sorted({f.check.value for f in flags})), kinds, len(study.series),
                 tuple(f"{f.check.value} ({sources[f.slice_index]} shape)" for f in truth_flags))


def kind_of(flag, in_truth: set, truth: np.ndarray, prediction: np.ndarray) -> str:
    """What stands behind another check's flag: the truth's own measurements flagged the same way ("the truth
    too": a needless warning, the anatomy is so), the flagged slice segmented badly ("slice failed": Dice below
    0.8 on the flagged side, or on either side for a flag of both), or neither ("needless")."""
    if (flag.slice_index, flag.check, flag.side) in in_truth:
        return "the truth too"
    sides = {"right": (RIGHT,), "left": (LEFT,)}.get(flag.side, (RIGHT, LEFT))
    scores = [side_dice(truth, prediction, side) for side in sides]
    return "slice failed" if any(d < FAILED_BELOW for d in scores if not math.isnan(d)) else "needless"


def calibration_set(folder: Path, patients: int) -> Path:
    settings = dataclasses.replace(held_out_settings(FAILED_DOMAIN), seed=CALIBRATION_SEED)
    return dataset_of(folder, patients, settings)


def report(good: list[Study], failed: list[Study], pooled: list[Study]) -> str:
    missed = [s for s in failed if not s.other_checks]
    in_truth = Counter(flag for s in pooled for flag in s.truth_flags)
    lines = [f"Good studies (Dice >= {GOOD_FROM:g}) of the pooled held-out domains: {len(good)}; of them no other "
             f"check warns {sum(not s.other_checks for s in good)}. Failed studies (Dice < {FAILED_BELOW:g}) of "
             f"{FAILED_DOMAIN} and the calibration set: {len(failed)}; the other checks miss {len(missed)}.", "",
             "| threshold | good studies warned by the study check alone | share of the good | "
             "failed studies the other checks miss, warned |", "|---:|---:|---:|---:|"]
    alone = {t: sum(1 for s in good if not s.other_checks and s.warned_at(t)) for t in CANDIDATES}
    for t, n in alone.items():
        lines.append(f"| {t:.2f} | {n} | {n / len(good):.1%} | {sum(s.warned_at(t) for s in missed)} of "
                     f"{len(missed)} |")
    within = [t for t, n in alone.items() if n <= GOOD_SHARE * len(good)]
    lines += ["", f"Highest candidate warning at most {GOOD_SHARE:.0%} of the good studies alone: "
              f"{max(within):.2f}" if within else "No candidate warns few enough of the good studies."]
    by_check = Counter(check for s in good for check in s.other_checks)
    kinds = Counter(kind for s in good for kind in s.other_flags)
    lines += ["", "Good studies that other checks warn, by check (a study may count under several): " +
              ("; ".join(f"{check} {n}" for check, n in by_check.most_common()) or "none") +
              ". Their flags (slice, check, side): " + ("; ".join(f"{kind} {n}" for kind, n in kinds.most_common())
                                                       or "none") + "; studies whose every such flag the truth "
              f"shares: {sum(1 for s in good if s.other_flags and set(s.other_flags) == {'the truth too'})}.",
              "", f"The truth's own measurements through the same checks, over the pooled held-out domains' "
              f"{sum(s.slices for s in pooled)} slices of {len(pooled)} studies: " +
              ("; ".join(f"{flag} {n}" for flag, n in in_truth.most_common()) or "no flag") +
              f"; studies with such a flag: {sum(1 for s in pooled if s.truth_flags)}."]
    lines += ["", "Failed studies the other checks miss:"] + [
        f"- {s.source} {s.case}: Dice {s.dice:.3f}, study confidence {s.study_confidence:.4f}" for s in missed]
    lines += ["", "The good studies no other check warns, lowest study confidence first (ten):"] + [
        f"- {s.source} {s.case}: Dice {s.dice:.3f}, study confidence {s.study_confidence:.4f}"
        for s in sorted((s for s in good if not s.other_checks), key=lambda s: s.study_confidence)[:10]]
    return "\n".join(lines) + "\n"


def traced_anatomy() -> str:
    """The expert-traced L4/L5 compartments of ../shared (one slice a patient): how asymmetric and how large they
    are, against the asymmetry and area thresholds set by judgement (`quality.Thresholds`); empty without them."""
    if not real_shapes_available(""):
        return ""
    shapes = load_shapes(shapes_zip_path(""))
    pixel = MASK_PIXEL_MM ** 2
    # image-left (50 + 100) is the patient's right (the zip's README)
    areas = np.array([[np.isin(s.values, (50, 100)).sum() * pixel, np.isin(s.values, (150, 200)).sum() * pixel]
                      for s in shapes])
    ratios = areas.max(axis=1) / areas.min(axis=1)
    limits = Thresholds()
    low, high = limits.area_range_mm2
    p50, p99 = np.percentile(ratios, [50, 99])
    return (f"The {len(shapes)} expert-traced L4/L5 compartments (one slice a patient): left/right area ratio median "
            f"{p50:.2f}, 99th percentile {p99:.2f}, largest {ratios.max():.2f}; above {limits.asymmetry_ratio:g}: "
            f"{int((ratios > limits.asymmetry_ratio).sum())}. Areas per side {areas.min():.0f}-{areas.max():.0f} mm²; "
            f"outside {low:.0f}-{high:.0f}: {int(((areas < low) | (areas > high)).sum())}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model id or folder (default: the active model)")
    parser.add_argument("--data", required=True, type=Path, help="the held-out draws' folder (`paraspinal heldout --data`)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--calibration", type=Path, help="the calibration set's folder (default: DATA/calibration)")
    parser.add_argument("--calibration-patients", type=int, default=32)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    registry = ModelRegistry()
    model = load_model(resolve_model(args.model or registry.active().model_id, registry), "cpu", backend="torch")
    pooled, failed = [], []
    for domain, folder in domain_folders(args.data, args.patients):
        studies = [study_of(model, case, domain.name) for case in find_cases(folder)]
        if domain.name == FAILED_DOMAIN:
            failed += [s for s in studies if s.dice < FAILED_BELOW]
        elif not domain.inside_training:
            pooled += studies
        print(f"{domain.name}: {len(studies)} studies", flush=True)
    calibration = calibration_set(args.calibration or args.data / "calibration", args.calibration_patients)
    failed += [s for s in (study_of(model, case, "calibration") for case in find_cases(calibration))
               if s.dice < FAILED_BELOW]
    good = [s for s in pooled if s.dice >= GOOD_FROM]
    text = f"Model {model.card.model_id}.\n\n" + report(good, failed, pooled) + "\n" + traced_anatomy()
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
