"""Held-out-domain validation: a model on synthetic data from domains its training lacked.

This is what chooses runs, epochs, synthesis settings and the fat method (the selection protocol in
the README). For each held-out domain of `synthesis.domains`: compartment Dice per side and slice
(right and left apart, so a swapped side scores 0), and per patient the mean fat fraction of each
fat method against the label maps' truth. Dice is also kept per vertebral level (a disc's slices with
the vertebra below it, as the real cases' level groups take them), to show where along the spine a
model falls short.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.measure.fat import FatMethod, FatSettings
from ParaspinalSegLib.labels import LEFT, RIGHT
from ParaspinalSegLib.measure.measurement import overlap_counts, summarise
from ParaspinalSegLib.network.modelfile import LoadedModel
from ParaspinalSegLib.pipeline import FAT_FROM_MODEL, measure_labels, measure_series, segment_series
from ParaspinalSegLib.progress import ProgressCallback, part_of
from ParaspinalSegLib.read.reading import read_study

from .datasets import CaseFiles, case_labels, find_cases
from .synthesis import SynthesisSettings, write_dataset
from .synthesis.domains import HELD_OUT, HeldOutDomain, held_out_domain, held_out_settings
from .synthesis.levels import ALL_VERTEBRAE, below, parse_level
from .synthesis.shapes import real_shapes_available

FAT_METHODS = (FAT_FROM_MODEL, FatMethod.GMM.value, FatMethod.OTSU.value)
GOAL_FAT_POINTS = 3.0
FAILED_BELOW, GOOD_FROM = 0.80, 0.90  # a case's compartment Dice: a failed segmentation, a good one
PATIENT_TABLE_COLUMNS = ("domain", "patient", "pooled", "true_fat_pct")  # then "<method>_fat_pct" per fat method


def side_scores(truth: np.ndarray, prediction: np.ndarray, side) -> tuple[float, float]:
    """Dice of one side's compartment on one slice (NaN where neither has it) and its area error,
    (predicted - true) / true (NaN where the truth has none)."""
    n_t, n_p, n_tp = overlap_counts(truth, prediction, side.labels)
    return (2.0 * n_tp / (n_t + n_p) if n_t + n_p else math.nan), ((n_p - n_t) / n_t if n_t else math.nan)


def side_dice(truth: np.ndarray, prediction: np.ndarray, side) -> float:
    """Dice of one side's compartment on one slice; NaN where neither has it."""
    return side_scores(truth, prediction, side)[0]


@dataclass
class DomainFigures:
    """One domain: per-slice side Dice, and per patient (truth, {method: predicted}) mean fat fraction %."""

    domain: str
    holds_out: str
    dice_right: list[float] = field(default_factory=list)
    dice_left: list[float] = field(default_factory=list)
    fat: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)
    slice_fat: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # method -> (truth, predicted) %
    seconds: float = 0.0  # segmenting (network, cleaning, cnn fat), summed over the cases
    cases: list[tuple[float, bool]] = field(default_factory=list)  # per case: compartment Dice, quality-flagged
    inside_training: str = ""  # since when the training domain covers it (then measured, not pooled)
    level_dice: dict[str, list[float]] = field(default_factory=dict)  # vertebra -> per slice and side Dice
    area_errors: list[float] = field(default_factory=list)  # per slice and side: (predicted - true) / true area
    mirrored_slices: int = 0  # segmented again mirrored, the network unsure of them (card's mirror_below_confidence)

    @property
    def csa_bias_pct(self) -> float:
        """Mean signed compartment area error over slices and sides, in % of the true area."""
        errors = [e for e in self.area_errors if not math.isnan(e)]
        return 100.0 * float(np.mean(errors)) if errors else math.nan

    @property
    def dice(self) -> float:
        """Mean over slices and sides of the compartment Dice."""
        return float(np.nanmean(self.dice_right + self.dice_left))

    def warned(self) -> dict[str, int]:
        """How many failed cases (compartment Dice below FAILED_BELOW) carry a quality warning, and how many
        good ones (from GOOD_FROM) carry one needlessly."""
        failed = [flagged for dice, flagged in self.cases if dice < FAILED_BELOW]
        good = [flagged for dice, flagged in self.cases if dice >= GOOD_FROM]
        return {"failed_cases": len(failed), "failed_warned": sum(failed),
                "good_cases": len(good), "good_warned": sum(good)}

    def fat_errors(self, method: str) -> np.ndarray:
        return np.array([predicted[method] - truth for truth, predicted in self.fat.values() if method in predicted])

    def fat_within_count(self, method: str, points: float = GOAL_FAT_POINTS) -> tuple[int, int]:
        """How many patients' mean fat fraction lies within `points` of the truth, and of how many."""
        errors = self.fat_errors(method)
        return int(np.sum(np.abs(errors) <= points)), int(errors.size)

    def fat_within(self, method: str, points: float = GOAL_FAT_POINTS) -> float:
        within, patients = self.fat_within_count(method, points)
        return within / patients if patients else math.nan

    def slice_agreement(self, method: str) -> tuple[float, float]:
        """Per slice (both sides together): the mean absolute fat fraction error in points and Pearson's r
        with the truth, over the slices where both have a compartment."""
        pairs = np.array([pair for pair in self.slice_fat.get(method, []) if not np.isnan(pair).any()])
        if len(pairs) < 2:
            return math.nan, math.nan
        return float(np.abs(pairs[:, 1] - pairs[:, 0]).mean()), float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])

    def fat_summary(self, method: str) -> dict[str, float]:
        """A fat method's agreement with the truth: per patient the mean absolute error, the bias and the
        share within GOAL_FAT_POINTS; per slice the mean absolute error and Pearson's r."""
        errors = self.fat_errors(method)
        slice_error, slice_r = self.slice_agreement(method)
        return {"mean_abs_error_points": float(np.abs(errors).mean()), "bias_points": float(errors.mean()),
                f"within_{GOAL_FAT_POINTS:g}_points": self.fat_within(method),
                "per_slice_mean_abs_error_points": slice_error, "per_slice_pearson_r": slice_r}


def level_group(level: str) -> str:
    """The vertebra a slice's level counts under: itself, or for a disc the vertebra below it ('L4/L5' -> 'L5')."""
    parsed = parse_level(level)
    return below(parsed.vertebra) if parsed.disc else parsed.vertebra


def add_level_dice(figures: DomainFigures, case: CaseFiles, source_indices: list[int], case_dice: list[float]) -> None:
    """Each slice's side Dice under its level group, from the case's written per-slice levels (none when the
    case does not say them: a training set's corrected cases write only their slice count); `case_dice` holds
    right, left for each slice in turn."""
    written = case.meta.get("slices")
    levels = [s["level"] for s in written] if isinstance(written, list) else []
    for n, index in enumerate(source_indices):
        if index < len(levels):
            group = figures.level_dice.setdefault(level_group(levels[index]), [])
            group += [d for d in case_dice[2 * n:2 * n + 2] if not math.isnan(d)]


def same_settings(written: dict, settings: SynthesisSettings) -> bool:
    """Whether a data set's written settings are `settings`; settings added to the synthesiser after it
    was made count at their defaults (as `from_dict` reads them), which make the same data (a test pins this)."""
    try:
        return SynthesisSettings.from_dict(written) == settings
    except InputError:  # a setting this version does not know
        return False


def domain_folders(folder: Path, patients: int, progress: ProgressCallback | None = None,
                   report: bool = False, names: tuple[str, ...] = ()) -> list[tuple[HeldOutDomain, Path]]:
    """Each held-out domain's data set under `folder`, written if missing (the traced-shape domain only
    where the traced masks are there); a folder made with other settings is refused. `report`: the
    fresh draws (other seeds) that report a chosen model. names: only these domains (all if empty)."""
    for name in names:
        held_out_domain(name)  # an unknown name is refused, with the known ones
    domains = [d for d in HELD_OUT if (not d.needs_real_shapes or real_shapes_available("")) and
               (not names or d.name in names)]
    return [(domain, dataset_of(Path(folder) / domain.name, patients, held_out_settings(domain, report),
                                part_of(progress, n / len(domains), (n + 1) / len(domains))))
            for n, domain in enumerate(domains)]


def dataset_of(target: Path, patients: int, settings: SynthesisSettings, progress: ProgressCallback | None = None) -> Path:
    """The data set of `patients` cases of `settings` at `target`, written if missing; a folder made with other
    settings or another number of patients is refused."""
    if not (target / "dataset.json").exists():
        return write_dataset(target, patients, settings, progress=progress)
    made = json.loads((target / "dataset.json").read_text())
    if not same_settings(made["settings"], settings) or made["cases"] != patients:
        raise InputError(f"{target}: made with other settings or another number of patients; use a new folder")
    return target


def intensity_fat(series, labels: list[np.ndarray], fat_methods: tuple[str, ...], fat_starts: int = 1) -> dict:
    """Each named fat method but the model's own (`gmm`, `otsu`) measured on the model's compartments (`labels`),
    by method; `gmm`'s mixture fitted from `fat_starts` starts."""
    return {method: measure_series(series, labels, needs_fat=True,
                                   fat_settings=FatSettings(method=FatMethod(method), starts=fat_starts))
            for method in fat_methods if method != FAT_FROM_MODEL}


def evaluate_case(model: LoadedModel, case: CaseFiles, figures: DomainFigures, fat_methods: tuple[str, ...],
                  device: str, mirror: bool = False, fat_starts: int = 1) -> None:
    """One case through the product's path (segment, clean, measure), added to the domain's figures; `gmm`'s
    mixture fitted from `fat_starts` starts."""
    study = read_study(case.image)
    truth, _ = case_labels(case, study.series)
    started = time.perf_counter()
    result = segment_series(study.series, model, device=device, mirror=mirror)
    figures.seconds += time.perf_counter() - started
    figures.mirrored_slices += len(result.mirrored)
    scores = [side_scores(t, p, side) for t, p in zip(truth, result.labels) for side in (RIGHT, LEFT)]
    case_dice = [dice for dice, _ in scores]
    figures.dice_right += case_dice[0::2]
    figures.dice_left += case_dice[1::2]
    figures.area_errors += [area_error for _, area_error in scores]
    add_level_dice(figures, case, [image.source_index for image in study.series.slices], case_dice)
    figures.cases.append((float(np.nanmean(case_dice)), bool(result.flags)))
    true_slices = measure_labels(study.series, truth)
    measured = {FAT_FROM_MODEL: result, **intensity_fat(study.series, result.labels, fat_methods, fat_starts)}
    for method, found in measured.items():
        figures.slice_fat.setdefault(method, []).extend(
            (t.both.fat_fraction_pct, p.both.fat_fraction_pct) for t, p in zip(true_slices, found.slices))
    predicted = {method: found.summary.mean_fat_fraction_pct for method, found in measured.items()}
    figures.fat[case.patient_id] = (summarise(true_slices).mean_fat_fraction_pct, predicted)


def evaluate_held_out(model: LoadedModel, folder: Path, patients: int = 8, fat_methods: tuple[str, ...] = (FAT_FROM_MODEL,),
                      device: str = "cpu", progress: ProgressCallback | None = None,
                      mirror: bool = False, report: bool = False, names: tuple[str, ...] = (),
                      fat_starts: int = 1) -> list[DomainFigures]:
    """The model on every held-out domain (data sets made under `folder` if missing); with `mirror`,
    test-time augmentation with the mirrored slices; `report`: on the fresh report draws; `fat_starts`: the
    starts of `gmm`'s mixture."""
    domains = domain_folders(folder, patients, part_of(progress, 0.0, 0.3), report, names)
    out = []
    for n, (domain, target) in enumerate(domains):
        figures = DomainFigures(domain.name, domain.holds_out, inside_training=domain.inside_training)
        cases = find_cases(target)
        for k, case in enumerate(cases):
            evaluate_case(model, case, figures, fat_methods, device, mirror, fat_starts)
            if progress:
                done = (n + (k + 1) / len(cases)) / len(domains)
                progress(0.3 + 0.7 * done, f"held-out domain {domain.name}, case {k + 1}/{len(cases)}")
        out.append(figures)
    return out


def pooled_figures(figures: list[DomainFigures]) -> DomainFigures:
    """The held-out domains' figures together (the domains that training has since taken in left out)."""
    pooled = DomainFigures("all held-out domains", "")
    for f in (f for f in figures if not f.inside_training):
        pooled.dice_right += f.dice_right
        pooled.dice_left += f.dice_left
        pooled.seconds += f.seconds
        pooled.cases += f.cases
        pooled.area_errors += f.area_errors
        for level, values in f.level_dice.items():
            pooled.level_dice.setdefault(level, []).extend(values)
        pooled.fat.update({f"{f.domain}/{p}": v for p, v in f.fat.items()})
        for method, pairs in f.slice_fat.items():
            pooled.slice_fat.setdefault(method, []).extend(pairs)
    return pooled


def patient_table_csv(figures: list[DomainFigures], fat_methods: tuple[str, ...] = (FAT_FROM_MODEL,)) -> str:
    """One row per patient: its domain, whether the domain is pooled (held out: 1; inside training: 0), the
    truth's mean fat fraction and each method's, in %, for comparing two models pair by pair (`pairing`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*PATIENT_TABLE_COLUMNS, *(f"{m}_fat_pct" for m in fat_methods)])
    for f in figures:
        for patient, (truth, predicted) in f.fat.items():
            writer.writerow([f.domain, patient, 0 if f.inside_training else 1, f"{truth:.4f}",
                             *(f"{predicted[m]:.4f}" for m in fat_methods)])
    return out.getvalue()


def held_out_markdown(figures: list[DomainFigures], fat_methods: tuple[str, ...] = (FAT_FROM_MODEL,)) -> str:
    """One row per domain: Dice right / left / mean, the compartments' mean signed area error, per fat
    method the mean absolute patient error, the bias and the share of patients within 3 points, then the
    failed and the good cases that carry a quality warning; a row pools the held-out domains, and the
    domains that training has since taken in follow it, marked, outside the pool. The table of Dice per
    vertebral level follows, with the same rows."""
    head = "| domain | slices | ms per slice | Dice right | Dice left | Dice | CSA bias (%) | " + " | ".join(
        f"{m}: patient fat MAE (points) | {m}: bias | {m}: within {GOAL_FAT_POINTS:g} | {m}: slice fat MAE | {m}: slice r"
        for m in fat_methods) + f" | failed cases (Dice < {FAILED_BELOW:g}) warned | good cases (>= {GOOD_FROM:g}) warned |"
    lines = [head, "|---" * (9 + 5 * len(fat_methods)) + "|"]
    rows = ([f for f in figures if not f.inside_training] + [pooled_figures(figures)]
            + [f for f in figures if f.inside_training])
    for f in rows:
        name = f.domain + (" (inside training)" if f.inside_training else "")
        cells = [name, str(len(f.dice_right)), f"{1000 * f.seconds / max(len(f.dice_right), 1):.0f}",
                 f"{np.nanmean(f.dice_right):.3f}", f"{np.nanmean(f.dice_left):.3f}", f"{f.dice:.3f}", f"{f.csa_bias_pct:+.1f}"]
        for m in fat_methods:
            error, bias, within, slice_error, slice_r = f.fat_summary(m).values()
            cells += [f"{error:.1f}", f"{bias:+.1f}", f"{100 * within:.0f} %", f"{slice_error:.1f}", f"{slice_r:.2f}"]
        warned = f.warned()
        cells += [f"{warned['failed_warned']} of {warned['failed_cases']}", f"{warned['good_warned']} of {warned['good_cases']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + level_markdown(rows)


def level_markdown(figures: list[DomainFigures]) -> str:
    """Compartment Dice per vertebral level (a disc with the vertebra below), one row per domain; the
    number of slices and sides behind each figure in brackets."""
    levels = [v for v in ALL_VERTEBRAE if any(v in f.level_dice for f in figures)]
    lines = ["| domain | " + " | ".join(f"Dice at {v}" for v in levels) + " |", "|---" * (1 + len(levels)) + "|"]
    for f in figures:
        name = f.domain + (" (inside training)" if f.inside_training else "")
        cells = [f"{np.mean(f.level_dice[v]):.3f} ({len(f.level_dice[v])})" if f.level_dice.get(v) else "–" for v in levels]
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines) + "\n"
