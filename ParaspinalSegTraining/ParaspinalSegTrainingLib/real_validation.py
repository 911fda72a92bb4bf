"""Validation of a model on the real labelled MRI in ../shared (never part of the repository).

Compartment truth: MuscleMap sub0001, multifidus + erector spinae merged per side (roughly L3-S1,
model-made labels, approximate); the TotalSegmentator MR example, autochthon per side (T11/T12 to
L1/L2). Reported per case and side: Dice of the compartment per slice; per level group its Dice,
precision, recall, signed CSA error and outline offset (where the predicted outline lies against
the truth's, in mm: which way a model and a labelling convention disagree); CSA error per slice;
and the mean fat fraction each fat method gives inside the model's compartments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt

from ParaspinalSegLib.measure.fat import FatMethod, FatSettings
from ParaspinalSegLib.network.inference import predict_series
from ParaspinalSegLib.labels import SIDES
from ParaspinalSegLib.measure.measurement import summarise
from ParaspinalSegLib.network.modelfile import LoadedModel
from ParaspinalSegLib.pipeline import add_fat, measure_labels
from ParaspinalSegLib.network.postprocess import clean_labels
from ParaspinalSegLib.progress import ProgressCallback, part_of
from ParaspinalSegLib.read.reading import LoadedStudy, read_study
from ParaspinalSegLib.read.segmentation import load_segmentation

from .evaluation import ratio, summarise_values

REAL_CASES = {
    "musclemap_sub0001": ("image.nii.gz", "seg_8labels.nii.gz", "L3-S1"),
    "totalseg_example_mr": ("image.nii.gz", "seg.nii.gz", "T11/T12-L1/L2"),
}
# Levels of each case's slices (index from inferior to superior), read off the images: MuscleMap by the
# sacral alae and foramina (0-3) and the L5/S1 disc (4-5); TotalSegmentator by its own vertebra and disc
# labels (discs at 0-1, 9-11, 18-19), the psoas ending within the lower vertebra (so L1) and the lung
# bases in the top slice (so T12 above it). Slices of thoracic levels are reported but lie outside L1-S1.
# The rule: a disc's slices go with the level below it (MuscleMap's L5/S1 disc with S1, the TotalSegmentator
# case's T12/L1 disc as its own group), except that a case's lowest disc, L1/L2 of the TotalSegmentator case,
# has no level below it in the image and goes with L1. Which slice shows a disc is a judgement read off the
# images, so the Dice of every slice is reported too (figures_markdown), and no goal is claimed on a group
# whose figure crosses it when its boundary slice moves to the neighbouring group.
LEVEL_GROUPS = {
    "musclemap_sub0001": {"L5/S1-S1": range(0, 6), "L3-L5": range(6, 20)},
    "totalseg_example_mr": {"L1/L2-L1": range(0, 9), "T12/L1": range(9, 12), "T11/T12-T12 (thoracic)": range(12, 20)},
}


@dataclass(frozen=True)
class SideScore:
    """One side's compartment on one slice; NaN where a figure is undefined (e.g. recall with no truth)."""

    slice_index: int
    dice: float
    precision: float
    recall: float
    csa_error_pct: float  # signed: (prediction - truth) / truth
    outline_offset_mm: float


@dataclass(frozen=True)
class LevelFigures:
    """Means over the slices and sides of one level group."""

    slices: int
    dice: float  # mean over slices of the sides' mean, as dice_per_slice
    dice_ci95: tuple[float, float]  # over the slices (neighbouring slices are alike: it reads too narrow)
    precision: float
    recall: float
    csa_bias_pct: float  # mean signed CSA error: below 0 the model's compartment is smaller than the truth's
    outline_offset_mm: float  # below 0 the model's outline lies inside the truth's


@dataclass(frozen=True)
class RealCaseFigures:
    case: str
    levels: str
    slices: int
    dice_right: float
    dice_left: float
    dice_per_slice: list[float]
    per_level: dict[str, LevelFigures]
    csa_error_pct_mean: float
    fat_fraction_pct: dict[str, float]

    @property
    def dice(self) -> float:
        return (self.dice_right + self.dice_left) / 2

    @property
    def dice_per_level(self) -> dict[str, float]:
        return {name: level.dice for name, level in self.per_level.items()}

    def to_dict(self) -> dict:
        return {**asdict(self), "dice": self.dice, "dice_per_level": self.dice_per_level}


def outline(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it; the edge of the field of view is no outline."""
    return mask & ~binary_erosion(mask, border_value=1)


def outline_offset_mm(truth: np.ndarray, prediction: np.ndarray, spacing: tuple[float, float]) -> float:
    """Mean signed distance in mm from the predicted outline to the truth's (+ outside it, - inside it).

    Each outline pixel of the prediction stands for the outline half a pixel beyond its centre: outside
    the truth its offset is the distance to the nearest truth pixel, inside it minus the distance to the
    nearest pixel outside the truth less one pixel, so identical masks give 0 and a prediction grown or
    shrunk by k pixels gives +k or -k pixel spacings (exactly along an axis; pixels taken as square for
    the half-pixel step).
    """
    edge = outline(prediction)
    if not edge.any() or not truth.any():
        return float("nan")
    outside = distance_transform_edt(~truth, sampling=spacing)
    inside = distance_transform_edt(truth, sampling=spacing)
    step = float(np.mean(spacing))
    return float(np.where(truth, step - inside, outside)[edge].mean())


def score_side(truth: np.ndarray, prediction: np.ndarray, spacing: tuple[float, float], index: int) -> SideScore:
    n_t, n_p, n_tp = int(truth.sum()), int(prediction.sum()), int((truth & prediction).sum())
    return SideScore(
        slice_index=index,
        dice=ratio(2 * n_tp, n_t + n_p),
        precision=ratio(n_tp, n_p),
        recall=ratio(n_tp, n_t),
        csa_error_pct=ratio(100.0 * (n_p - n_t), n_t),
        outline_offset_mm=outline_offset_mm(truth, prediction, spacing),
    )


def score_sides(truth: list[np.ndarray], prediction: list[np.ndarray],
                spacings: list[tuple[float, float]]) -> dict[str, list[SideScore]]:
    """Per side, the score of every slice where the truth or the prediction has that side."""
    scores: dict[str, list[SideScore]] = {side.name: [] for side in SIDES}
    for index, (t, p, spacing) in enumerate(zip(truth, prediction, spacings)):
        for side in SIDES:
            tm, pm = np.isin(t, side.labels), np.isin(p, side.labels)
            if tm.any() or pm.any():
                scores[side.name].append(score_side(tm, pm, spacing, index))
    return scores


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return round(float(np.mean(values)), 4) if values else float("nan")


def slice_dice(scores: dict[str, list[SideScore]]) -> dict[int, float]:
    """Slice index -> mean Dice of the sides present there."""
    per_slice: dict[int, list[float]] = {}
    for side_scores in scores.values():
        for score in side_scores:
            per_slice.setdefault(score.slice_index, []).append(score.dice)
    return {index: float(np.mean(per_slice[index])) for index in sorted(per_slice)}


def level_figures(scores: dict[str, list[SideScore]], groups: dict[str, range]) -> dict[str, LevelFigures]:
    """The figures of each level group that has a scored slice."""
    per_slice = slice_dice(scores)
    out = {}
    for name, group in groups.items():
        members = [s for side_scores in scores.values() for s in side_scores if s.slice_index in group]
        if not members:
            continue
        dice = summarise_values([per_slice[i] for i in group if i in per_slice])
        out[name] = LevelFigures(
            slices=len({s.slice_index for s in members}),
            dice=round(dice.mean, 4),
            dice_ci95=(round(dice.ci_low, 4), round(dice.ci_high, 4)),
            precision=_nanmean([s.precision for s in members]),
            recall=_nanmean([s.recall for s in members]),
            csa_bias_pct=_nanmean([s.csa_error_pct for s in members]),
            outline_offset_mm=_nanmean([s.outline_offset_mm for s in members]),
        )
    return out


def segmented_case(model: LoadedModel, folder: Path, image: str, labels: str, device: str = "cpu",
                   progress: ProgressCallback | None = None) -> tuple[LoadedStudy, list[np.ndarray], list[np.ndarray]]:
    """A real case read, its labels on the study's slices (the truth), and the model's cleaned labels."""
    study = read_study(folder / image)
    truth = load_segmentation([folder / labels], study.series).labels
    predicted = predict_series(model, study.series, device=device, progress=progress)
    return study, truth, [clean_labels(p) for p in predicted]


def validate_case(model: LoadedModel, folder: Path, image: str, labels: str, levels: str, device: str = "cpu",
                  progress: ProgressCallback | None = None) -> RealCaseFigures:
    study, truth, prediction = segmented_case(model, folder, image, labels, device, part_of(progress, 0.0, 0.7))
    scores = score_sides(truth, prediction, [s.geometry.spacing for s in study.series.slices])
    fat = {"cnn": summarise(measure_labels(study.series, prediction)).mean_fat_fraction_pct}
    for method in FatMethod:  # add_fat treats the model's fat as compartment and finds fat anew
        if progress is not None:
            progress(0.8, f"{folder.name}: fat by {method.value}")
        filled = add_fat(study.series, prediction, FatSettings(method=method))
        fat[method.value] = summarise(measure_labels(study.series, filled)).mean_fat_fraction_pct
    csa_errors = [abs(s.csa_error_pct) for side_scores in scores.values() for s in side_scores
                  if not np.isnan(s.csa_error_pct)]
    return RealCaseFigures(
        case=folder.name,
        levels=levels,
        slices=len(study.series),
        dice_right=float(np.nanmean([s.dice for s in scores["right"]])),
        dice_left=float(np.nanmean([s.dice for s in scores["left"]])),
        dice_per_slice=[round(d, 4) for d in slice_dice(scores).values()],
        per_level=level_figures(scores, LEVEL_GROUPS.get(folder.name, {levels: range(len(truth))})),
        csa_error_pct_mean=float(np.mean(csa_errors)) if csa_errors else float("nan"),
        fat_fraction_pct={k: round(float(v), 2) for k, v in fat.items()},
    )


def validate_real(model: LoadedModel, shared: Path, device: str = "cpu",
                  progress: ProgressCallback | None = None) -> list[RealCaseFigures]:
    """Figures on every real labelled case present under shared/data/real."""
    present = present_cases(shared)
    return [
        validate_case(model, folder, image, labels, levels, device,
                      part_of(progress, index / len(present), (index + 1) / len(present)))
        for index, (folder, (image, labels, levels)) in enumerate(present)
    ]


def present_cases(shared: Path) -> list[tuple[Path, tuple[str, str, str]]]:
    """(folder, (image, labels, levels)) of each case of REAL_CASES whose image lies under shared/data/real."""
    root = Path(shared) / "data" / "real"
    return [(root / name, files) for name, files in REAL_CASES.items() if (root / name / files[0]).exists()]


def figures_markdown(figures: list[RealCaseFigures]) -> str:
    """One table row per case and level group, then one line per case with its sides, CSA error and fat,
    and its Dice per slice (a group's figure can hang on the slice at its boundary)."""
    rows = ["| case | levels | slices | Dice [95 % CI over slices] | precision | recall | CSA bias (%) | outline offset (mm) |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for case in figures:
        for name, level in case.per_level.items():
            low, high = level.dice_ci95
            rows.append(f"| {case.case} | {name} | {level.slices} | {level.dice:.3f} [{low:.3f}, {high:.3f}] | {level.precision:.3f} | "
                        f"{level.recall:.3f} | {level.csa_bias_pct:+.1f} | {level.outline_offset_mm:+.2f} |")
        fat = ", ".join(f"{method} {value:.1f} %" for method, value in case.fat_fraction_pct.items())
        notes.append(f"- {case.case} ({case.levels}): Dice right {case.dice_right:.3f}, left {case.dice_left:.3f}; "
                     f"CSA error per slice {case.csa_error_pct_mean:.1f} %; fat fraction {fat}")
        notes.append(f"  Dice per slice, inferior to superior: {' '.join(f'{d:.3f}' for d in case.dice_per_slice)}")
    return "\n".join(rows + [""] + notes) + "\n"
