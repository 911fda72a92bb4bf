"""Validation of a model on the real labelled MRI in ../shared (never part of the repository).

Compartment truth: MuscleMap sub0001, multifidus + erector spinae merged per side (roughly L3-S1,
model-made labels, approximate); the TotalSegmentator MR example, autochthon per side (T11/T12 to
L1/L2). Reported per case and side: Dice of the compartment per slice and its mean per level group,
CSA error per slice, and the mean fat fraction each fat method gives inside the model's compartments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ParaspinalSegLib.fat import FatMethod, FatSettings
from ParaspinalSegLib.inference import predict_series
from ParaspinalSegLib.labels import SIDES
from ParaspinalSegLib.measurement import summarise
from ParaspinalSegLib.modelfile import LoadedModel
from ParaspinalSegLib.pipeline import add_fat, measure_labels
from ParaspinalSegLib.postprocess import clean_labels
from ParaspinalSegLib.reading import read_study
from ParaspinalSegLib.segmentation import load_segmentation

REAL_CASES = {
    "musclemap_sub0001": ("image.nii.gz", "seg_8labels.nii.gz", "L3-S1"),
    "totalseg_example_mr": ("image.nii.gz", "seg.nii.gz", "T11/T12-L1/L2"),
}
# Levels of each case's slices (index from inferior to superior), read off the images: MuscleMap by the
# sacral alae and foramina (0-3) and the L5/S1 disc (4-5); TotalSegmentator by its own vertebra and disc
# labels (discs at 0-1, 9-11, 18-19), the psoas ending within the lower vertebra (so L1) and the lung
# bases in the top slice (so T12 above it). Slices of thoracic levels are reported but lie outside L1-S1.
LEVEL_GROUPS = {
    "musclemap_sub0001": {"L5/S1-S1": range(0, 6), "L3-L5": range(6, 20)},
    "totalseg_example_mr": {"L1/L2-L1": range(0, 9), "T12/L1": range(9, 12), "T11/T12-T12 (thoracic)": range(12, 20)},
}


@dataclass(frozen=True)
class RealCaseFigures:
    case: str
    levels: str
    slices: int
    dice_right: float
    dice_left: float
    dice_per_slice: list[float]
    dice_per_level: dict[str, float]
    csa_error_pct_mean: float
    fat_fraction_pct: dict[str, float]

    @property
    def dice(self) -> float:
        return (self.dice_right + self.dice_left) / 2

    def to_dict(self) -> dict:
        return {**asdict(self), "dice": self.dice}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def validate_case(model: LoadedModel, folder: Path, image: str, labels: str, levels: str, device: str = "cpu") -> RealCaseFigures:
    study = read_study(folder / image)
    truth = load_segmentation([folder / labels], study.series).labels
    prediction = [clean_labels(p) for p in predict_series(model, study.series, device=device)]
    per_side = {side.name: [] for side in SIDES}
    per_slice: dict[int, float] = {}  # slice index -> mean Dice of the sides present there
    csa_errors = []
    for index, (t, p) in enumerate(zip(truth, prediction)):
        slice_dice = []
        for side in SIDES:
            tm, pm = np.isin(t, side.labels), np.isin(p, side.labels)
            if tm.any() or pm.any():
                per_side[side.name].append(_dice(tm, pm))
                slice_dice.append(per_side[side.name][-1])
            if tm.any():
                csa_errors.append(100.0 * abs(int(pm.sum()) - int(tm.sum())) / tm.sum())
        if slice_dice:
            per_slice[index] = float(np.mean(slice_dice))
    fat = {"cnn": summarise(measure_labels(study.series, prediction)).mean_fat_fraction_pct}
    for method in FatMethod:  # add_fat treats the model's fat as compartment and finds fat anew
        filled = add_fat(study.series, prediction, FatSettings(method=method))
        fat[method.value] = summarise(measure_labels(study.series, filled)).mean_fat_fraction_pct
    groups = LEVEL_GROUPS.get(folder.name, {levels: range(len(truth))})
    return RealCaseFigures(
        case=folder.name,
        levels=levels,
        slices=len(study.series),
        dice_right=float(np.nanmean(per_side["right"])),
        dice_left=float(np.nanmean(per_side["left"])),
        dice_per_slice=[round(d, 4) for d in per_slice.values()],
        dice_per_level={name: round(float(np.mean([per_slice[i] for i in group if i in per_slice])), 4)
                        for name, group in groups.items() if any(i in per_slice for i in group)},
        csa_error_pct_mean=float(np.mean(csa_errors)) if csa_errors else float("nan"),
        fat_fraction_pct={k: round(float(v), 2) for k, v in fat.items()},
    )


def validate_real(model: LoadedModel, shared: Path, device: str = "cpu") -> list[RealCaseFigures]:
    """Figures on every real labelled case present under shared/data/real."""
    root = Path(shared) / "data" / "real"
    return [
        validate_case(model, root / name, image, labels, levels, device)
        for name, (image, labels, levels) in REAL_CASES.items()
        if (root / name / image).exists()
    ]
