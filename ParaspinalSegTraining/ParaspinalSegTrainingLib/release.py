"""Releasing a trained model: a new model folder whose card carries its validation figures.

The weights are copied unchanged (same SHA-256), the network's ONNX graph is exported beside them
(graphexport, for ONNX Runtime); the card gains the figures measured here: the
compartment Dice on the shipped synthetic sample, on the held-out synthesis domains that chose the
run (per domain: Dice per side, patient fat fraction per fat method) and, where ../shared is
present, on the real labelled cases (per case and side, CSA error, fat fraction per fat method), a
report measured once; plus the selection protocol, the data credits and the limits. The trained
run's own folder is left as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.modelfile import CARD_FILE, WEIGHTS_FILE, ModelCard, load_model, sha256_of
from ParaspinalSegLib.output.outputs import write_text_atomic

from .graphexport import add_graph
from .heldout import FAILED_BELOW, FAT_METHODS, GOOD_FROM, evaluate_held_out
from .real_validation import validate_real

CREDITS = (
    "Synthetic training images made by ParaspinalSegTrainingLib.synthesis; compartment shapes at L3-L5 partly "
    "from the 411 expert-traced masks of 3Shot-LPM-Seg (Apache-2.0) on the Lumbar Spine MRI Dataset of "
    "Sudirman et al. (CC BY 4.0). Validation on MuscleMap sub0001 (MIT) and the TotalSegmentator MR "
    "example (Apache-2.0), whose labels are themselves model outputs."
)
PROTOCOL = (
    "Runs, epochs, the starting model, synthesis settings, the fat method and the card's offsets (fat/muscle split, "
    "background) are chosen only on synthetic validation data from held-out synthesis domains (contrast families, "
    "resolutions, levels, noise and traced shapes that the training data lacked: `paraspinal heldout`), each by a "
    "rule written down before its figures; the real labelled cases are a "
    "report, measured once at release (`paraspinal validate-real`), never used to choose."
)
DICE_DEFINITIONS = {
    "validation_dice": "the training engine's: pooled over the pixels of the validation windows, the mean of "
                       "the right and left side's Dice, per structure",
    "held_out_domains": "compartment (muscle + fat) Dice per slice and side, right and left apart, averaged "
                        "over the slices",
    "real_cases": "compartment Dice per slice, the mean of right and left (dice, dice_per_slice, "
                  "dice_per_level) or per side (dice_right, dice_left), averaged over the slices",
    "sample_compartment_dice": "compartment Dice per slice, the mean of right and left, averaged over the slices",
}
FAT_DECIMALS = {"mean_abs_error_points": 2, "bias_points": 2, "within_3_points": 3,
                "per_slice_mean_abs_error_points": 2, "per_slice_pearson_r": 3}  # as written in the card
LIMITS = (
    "Trained on synthetic images only; it has not seen clinical T2 data with expert labels. Real-data "
    "figures come from two cases with approximate (model-made) labels. Fine-tune on your own corrected "
    "cases before clinical research use (README, 'Fine-tuning on a site's own corrected cases')."
)


def sample_dice(model) -> float:
    """Mean compartment Dice over the slices of the shipped synthetic sample."""
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.measure.measurement import mean_compartment_dice
    from ParaspinalSegLib.pipeline import segment_series
    from ParaspinalSegLib.read.reading import read_study
    from ParaspinalSegLib.read.segmentation import load_segmentation

    series = read_study(sample_folder() / "study").series
    truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
    return mean_compartment_dice(truth, segment_series(series, model).labels)


def held_out_figures(model, folder: Path, patients: int) -> list[dict]:
    """Per held-out domain, on the fresh report draws (not the sets that chose the run): slices, the mean
    Dice over slices per side, per fat method the patients' mean absolute error, bias and share
    within 3 points, and how many failed and good cases carry a quality warning."""
    out = []
    for f in evaluate_held_out(model, folder, patients, FAT_METHODS, report=True):
        fat = {method: {name: round(value, FAT_DECIMALS[name]) for name, value in f.fat_summary(method).items()}
               for method in FAT_METHODS}
        inside = {"inside_training": f"since {f.inside_training}: measured, no longer held out"} if f.inside_training else {}
        out.append({"domain": f.domain, "holds_out": f.holds_out, **inside, "slices": len(f.dice_right),
                    "dice": "mean over slices, per side", "dice_right": round(float(np.nanmean(f.dice_right)), 4),
                    "dice_left": round(float(np.nanmean(f.dice_left)), 4), "dice_mean": round(f.dice, 4),
                    "csa_bias_pct": round(f.csa_bias_pct, 2),
                    "dice_per_level": {level: round(float(np.mean(values)), 4) for level, values in f.level_dice.items()},
                    "patients": len(f.fat), "fat_fraction_vs_truth": fat,
                    "quality_warnings": {"failed_below_dice": FAILED_BELOW, "good_from_dice": GOOD_FROM, **f.warned()}})
    return out


def release_model(source: Path, destination: Path, shared: Path | None, notes: str = "",
                  heldout: Path | None = None, patients: int = 8, fat_score_offset: float | None = None,
                  background_score_offset: float | None = None, label_decision: str | None = None,
                  version: str | None = None, fat_split: str | None = None,
                  mirror_below_confidence: float | None = None) -> ModelCard:
    """Copy a trained model to `destination` with a card holding its validation figures (the held-out
    domains' when `heldout`, the folder of their data sets, is given); `fat_score_offset`,
    `background_score_offset`, `label_decision`, `fat_split` and `mirror_below_confidence`, chosen on the
    selection draws, go into the card's postprocessing before anything is measured. `version`: the
    released model's, when it is not the trained one's (the same weights released again with other
    postprocessing give other results, so they get a version of their own)."""
    if destination.exists():
        raise InputError(f"{destination}: already exists; a released model is never replaced")
    model = load_model(source)
    model = model.with_postprocessing(fat_score_offset=fat_score_offset, background_score_offset=background_score_offset,
                                      label_decision=label_decision, fat_split=fat_split,
                                      mirror_below_confidence=mirror_below_confidence)
    domains = held_out_figures(model, heldout, patients) if heldout else []
    real = validate_real(model, shared) if shared and (shared / "data" / "real").is_dir() else []
    card = model.card.to_dict()
    card["description"] = notes or card["description"]
    card["version"] = version or card["version"]
    card["training_data"] = {**card["training_data"], "credits": CREDITS}
    card["validation"] = {
        **card["validation"],
        "selection_protocol": PROTOCOL,
        "dice_definitions": DICE_DEFINITIONS,
        "sample_compartment_dice": round(sample_dice(model), 4),
        "sample_note": "the sample comes from the generator the model was trained on: in-distribution, not a quality figure",
        "held_out_domains": domains,
        "real_cases": [f.to_dict() for f in real],
        "real_cases_note": "a report, measured once at release; nothing was chosen on it",
        "limits": LIMITS,
    }
    card.pop("graph", None)  # exported anew below, beside the copied weights
    staging = destination.parent / f".{destination.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(source / WEIGHTS_FILE, staging / WEIGHTS_FILE)
    released = ModelCard.from_dict(card)
    write_text_atomic(staging / CARD_FILE, json.dumps(released.to_dict(), indent=2) + "\n")
    if sha256_of(staging / WEIGHTS_FILE) != released.weights_sha256:
        raise InputError(f"{source}: the copied weights do not match the card's SHA-256")
    released = add_graph(staging)
    staging.rename(destination)
    return released
