"""Releasing a trained model: a new model folder whose card carries its validation figures.

The weights are copied unchanged (same SHA-256); the card gains the figures measured here: the
compartment Dice on the shipped synthetic sample and, where ../shared is present, on the real
labelled cases (per case and side, CSA error, fat fraction per fat method), plus the data
credits and the limits. The trained run's own folder is left as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.modelfile import CARD_FILE, WEIGHTS_FILE, ModelCard, load_model, sha256_of
from ParaspinalSegLib.outputs import write_text_atomic

from .real_validation import validate_real

CREDITS = (
    "Synthetic training images made by ParaspinalSegTrainingLib.synthesis; compartment shapes at L3-L5 partly "
    "from the 411 expert-traced masks of 3Shot-LPM-Seg (Apache-2.0) on the Lumbar Spine MRI Dataset of "
    "Sudirman et al. (CC BY 4.0). Validation on MuscleMap sub0001 (MIT) and the TotalSegmentator MR "
    "example (Apache-2.0), whose labels are themselves model outputs."
)
LIMITS = (
    "Trained on synthetic images only; it has not seen clinical T2 data with expert labels. Real-data "
    "figures come from two cases with approximate (model-made) labels. Fine-tune on your own corrected "
    "cases before clinical research use (README, 'Fine-tuning on a site's own corrected cases')."
)


def sample_dice(model) -> float:
    """Mean compartment Dice over the slices of the shipped synthetic sample."""
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.measurement import mean_compartment_dice
    from ParaspinalSegLib.pipeline import segment_series
    from ParaspinalSegLib.reading import read_study
    from ParaspinalSegLib.segmentation import load_segmentation

    series = read_study(sample_folder() / "study").series
    truth = load_segmentation([sample_folder() / "truth.nrrd"], series).labels
    return mean_compartment_dice(truth, segment_series(series, model).labels)


def release_model(source: Path, destination: Path, shared: Path | None, notes: str = "") -> ModelCard:
    """Copy a trained model to `destination` with a card holding its validation figures."""
    if destination.exists():
        raise InputError(f"{destination}: already exists; a released model is never replaced")
    model = load_model(source)
    real = validate_real(model, shared) if shared and (shared / "data" / "real").is_dir() else []
    card = model.card.to_dict()
    card["description"] = notes or card["description"]
    card["training_data"] = {**card["training_data"], "credits": CREDITS}
    card["validation"] = {
        **card["validation"],
        "sample_compartment_dice": round(sample_dice(model), 4),
        "real_cases": [f.to_dict() for f in real],
        "limits": LIMITS,
    }
    staging = destination.parent / f".{destination.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(source / WEIGHTS_FILE, staging / WEIGHTS_FILE)
    released = ModelCard.from_dict(card)
    write_text_atomic(staging / CARD_FILE, json.dumps(released.to_dict(), indent=2) + "\n")
    if sha256_of(staging / WEIGHTS_FILE) != released.weights_sha256:
        raise InputError(f"{source}: the copied weights do not match the card's SHA-256")
    staging.rename(destination)
    return released
