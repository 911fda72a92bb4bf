"""Fine-tuning a model on a training set of corrected cases into a new registered model, compared with its parent.

The new model gets an id of its own (the parent's name, the parent's version + "-ft<n>" unless
given), so it never replaces the parent; its card names the parent, the cases trained on and
validated with, and the figures below. Both the new model and its parent are evaluated with the
paper's Table 2 on the cases the new model was not trained on: with folds 0 or 1 the validation
cases (they also chose the best epoch, so the new model's figures lean optimistic), with k >= 2
folds the test cases of the fold whose model is registered (the one best on its validation). A
training set of one patient (one corrected study) holds nothing out: the new model is its last
epoch, and the comparison is left to the user, on other studies (`paraspinal evaluate`).

`parent_share` > 0 registers, instead of the fine-tuned network, the weight average of it and its
parent, the parent taking that share (WiSE-FT, Wortsman et al. 2022): fine-tuned on a few slices, a
network fits them and loses some of what held it elsewhere; the average keeps part of both. The
comparison above is then the average's. Left unset, the share follows how well the parent drew the
corrected cases before anyone corrected them (`parent_dice_on`): PARENT_SHARE where it drew them
well, 0 where its compartment Dice on them is below POOR_PARENT_DICE, since there the average gives
back much of what the fine-tune gained (`automatic_parent_share`). A fine-tuned model's card drops
the parent's fat/muscle and background offsets (`fine_tuned_postprocessing`); its epoch is chosen
without them too. These choices were made by rules on the held-out synthesis domains, with one
corrected study a site (README).

A run lives in its own folder (default: runs/<model id>-<settings hash> beside the user models):
cancelled, it keeps its last checkpoint and registers nothing; the same call again resumes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ParaspinalSegLib.errors import InputError, OperationCancelled
from ParaspinalSegLib.network.inference import choose_device
from ParaspinalSegLib.network.model import Postprocessing
from ParaspinalSegLib.network.modelfile import (CARD_FILE, WEIGHTS_FILE, LoadedModel, ModelCard, load_model, read_card,
                                                save_model)
from ParaspinalSegLib.output.outputs import write_text_atomic
from ParaspinalSegLib.pipeline import FAT_FROM_MODEL
from ParaspinalSegLib.progress import ProgressCallback, part_of
from ParaspinalSegLib.network.registry import ModelRegistry, RegisteredModel, resolve_model

from .config import TrainingConfig, checked_fields
from .datasets import CaseFiles, find_cases
from .evaluate import EvaluationReport, evaluate_cases
from .evaluation import METRICS, STRUCTURES, Summary, table2_markdown
from .folds import Split
from .run import run_training
from .training import EpochCallback, FoldResult

log = logging.getLogger(__name__)

TRAINING_SHARE = 0.9  # of the progress bar; evaluation takes the rest
PARENT_CHECK_SHARE = 0.05  # of the progress bar: measuring the parent on the corrected cases, when it chooses the share
PARENT_SHARE = 0.5  # of the registered weights where the parent serves the site; by a rule (README)
POOR_PARENT_DICE = 0.80  # the parent's Dice on the corrected cases below which it takes no share; by a rule (README)
PhaseCallback = Callable[[str], None]  # "measuring", "training", "evaluating", "registering"


@dataclass(frozen=True)
class FineTuneSettings:
    """What the issue's training panel sets; everything else comes from `config` (batch size, loss,
    augmentation, ...). name/version: of the new model ("" = the parent's name, and the parent's
    version + "-ft<n>" with the first n not registered yet). parent_share: the parent's share of the
    registered weights; None chooses it from the parent's Dice on the corrected cases
    (`automatic_parent_share`)."""

    epochs: int = 30  # by a rule on the held-out domains (README: fine-tuning): 10 made too few steps on one study
    learning_rate: float = 3e-4
    folds: int = 0
    device: str = "auto"
    freeze_encoder_epochs: int = 3
    seed: int = 0
    name: str = ""
    version: str = ""
    parent_share: float | None = None
    config: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.parent_share is not None and not 0.0 <= self.parent_share < 1.0:
            raise InputError(f"parent_share {self.parent_share!r}: the parent's share of the averaged weights must be "
                             "at least 0 (the fine-tuned network alone) and below 1")

    @classmethod
    def from_config(cls, config: TrainingConfig) -> FineTuneSettings:
        """Settings taking epochs, learning rate, folds, device, frozen epochs and seed from a config."""
        return cls(epochs=config.epochs, learning_rate=config.learning_rate, folds=config.folds, device=config.device,
                   freeze_encoder_epochs=config.freeze_encoder_epochs, seed=config.seed, config=config)

    def with_overrides(self, **changes) -> FineTuneSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["config"] = self.config.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FineTuneSettings:
        data = checked_fields(cls, data, "fine-tuning settings")
        if "config" in data:
            data["config"] = TrainingConfig.from_dict(data["config"])
        return cls(**data)

    def training_config(self, name: str, version: str) -> TrainingConfig:
        return replace(self.config, name=name, version=version, epochs=self.epochs, learning_rate=self.learning_rate,
                       folds=self.folds, device=self.device, freeze_encoder_epochs=self.freeze_encoder_epochs,
                       seed=self.seed)


def finite_or_none(value: float | None) -> float | None:
    """A number for JSON files: NaN (a figure undefined on these slices) and None (not measured) become null."""
    return None if value is None or math.isnan(value) else value


def table_dict(table: dict[str, dict[str, Summary]]) -> dict:
    """A Table 2 (structure -> metric -> Summary) as plain numbers, NaN as None."""
    return {structure: {metric: {"mean": finite_or_none(s.mean), "sd": finite_or_none(s.sd),
                                 "ci95_low": finite_or_none(s.ci_low), "ci95_high": finite_or_none(s.ci_high), "n": s.n}
                        for metric, s in metrics.items()}
            for structure, metrics in table.items()}


def figures_dict(figures: dict[str, dict[str, float]]) -> dict:
    """comparison_figures as plain numbers, NaN as None."""
    return {structure: {k: finite_or_none(v) for k, v in values.items()} for structure, values in figures.items()}


def comparison_figures(new: EvaluationReport, parent: EvaluationReport) -> dict[str, dict[str, float]]:
    """structure -> mean Dice and CSA error (%) over the evaluated slices, new model and parent."""
    return {structure: {"dice_new": new.table[structure]["dice"].mean, "dice_parent": parent.table[structure]["dice"].mean,
                        "csa_error_pct_new": new.table[structure]["csa_error_pct"].mean,
                        "csa_error_pct_parent": parent.table[structure]["csa_error_pct"].mean}
            for structure in STRUCTURES}


@dataclass(frozen=True)
class FineTuneResult:
    """The new registered model and how it and its parent did on the cases it was not trained on."""

    model_id: str
    parent_id: str
    model_folder: Path
    run_folder: Path
    trained_case_ids: tuple[str, ...]
    held_out_case_ids: tuple[str, ...]
    held_out_kind: str  # "validation", "test", or "none" (one patient: nothing held out)
    best_epoch: int
    best_validation_dice: float
    new_evaluation: EvaluationReport | None  # None when nothing was held out
    parent_evaluation: EvaluationReport | None
    parent_share: float  # of the registered weights
    parent_dice: float | None = None  # the parent's Dice on the corrected cases, where it chose the share

    def share_note(self) -> str:
        """What the registered weights are, and why."""
        if self.parent_share:
            what = ("the fine-tuned network averaged with its parent (the parent's weights taking "
                    f"{self.parent_share:g})")
        else:
            what = "the fine-tuned network alone"
        if self.parent_dice is None:
            return f"Registered: {what}, as asked."
        if math.isnan(self.parent_dice):
            return (f"Registered: {what}: the parent's compartment Dice on the corrected cases could not be measured "
                    "(no compartment in their labels).")
        served = "below" if self.parent_dice < POOR_PARENT_DICE else "at or above"
        return (f"Registered: {what}, because the parent's compartment Dice on the corrected cases, "
                f"{self.parent_dice:.3f}, is {served} {POOR_PARENT_DICE:g} (`--parent-share` sets the share).")

    def figures(self) -> dict[str, dict[str, float]]:
        """structure -> mean Dice and CSA error (%) over the held-out slices, new model and parent (none
        when nothing was held out)."""
        if self.new_evaluation is None or self.parent_evaluation is None:
            return {}
        return comparison_figures(self.new_evaluation, self.parent_evaluation)

    def markdown(self) -> str:
        if self.new_evaluation is None or self.parent_evaluation is None:
            return (f"New model {self.model_id} (parent {self.parent_id}), trained on "
                    f"{', '.join(self.trained_case_ids)}: one patient, so no case was held out to compare it with its "
                    f"parent, and the last epoch ({self.best_epoch}) was kept. {self.share_note()} One corrected study "
                    f"may not improve a model that already segments the site well: compare both on other studies of "
                    f"the site before making it active: `paraspinal evaluate {self.model_id} DATA` and `paraspinal "
                    f"evaluate {self.parent_id} DATA`.\n")
        rows = [f"| {structure} | {f['dice_parent']:.3f} | {f['dice_new']:.3f} | {f['dice_new'] - f['dice_parent']:+.3f} | "
                f"{f['csa_error_pct_parent']:.1f} | {f['csa_error_pct_new']:.1f} |"
                for structure, f in self.figures().items()]
        return (
            f"New model {self.model_id} against its parent {self.parent_id} on {len(self.held_out_case_ids)} "
            f"{self.held_out_kind} case(s) ({', '.join(self.held_out_case_ids)}), mean over slices. "
            f"{self.share_note()}\n\n"
            "| structure | Dice parent | Dice new | change | CSA error % parent | CSA error % new |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Parent {self.parent_id}:\n\n{table2_markdown(self.parent_evaluation.table)}\n"
            f"New {self.model_id}:\n\n{table2_markdown(self.new_evaluation.table)}"
        )

    def to_dict(self) -> dict:
        """JSON-ready: ids, folders, cases, figures and both Table 2s."""
        return {
            "model_id": self.model_id, "parent_id": self.parent_id, "model_folder": str(self.model_folder),
            "run_folder": str(self.run_folder), "trained_case_ids": list(self.trained_case_ids),
            "held_out_case_ids": list(self.held_out_case_ids), "held_out_kind": self.held_out_kind,
            "best_epoch": self.best_epoch, "best_validation_dice": finite_or_none(self.best_validation_dice),
            "parent_share": self.parent_share,
            "parent_dice_on_corrected_cases": finite_or_none(self.parent_dice),
            "share_note": self.share_note(),
            "figures": figures_dict(self.figures()), "metrics": list(METRICS),
            "tables": {key: table_dict(report.table) if report else {} for key, report in
                       (("new", self.new_evaluation), ("parent", self.parent_evaluation))},
            "markdown": self.markdown(),
        }


def next_version(registry: ModelRegistry, name: str, parent_version: str) -> str:
    """The parent's version + "-ft<n>", with the smallest n whose id is not registered."""
    taken = {m.model_id for m in registry.models()}
    n = 1
    while f"{name}-{parent_version}-ft{n}" in taken:
        n += 1
    return f"{parent_version}-ft{n}"


def default_run_folder(registry: ModelRegistry, model_id: str, config: TrainingConfig, parent_id: str,
                       cases: list[CaseFiles], training_set: Path) -> Path:
    """runs/<model id>-<hash of settings, parent and cases>: the same call finds its cancelled run again."""
    key = json.dumps({"config": config.to_dict(), "parent": parent_id, "set": str(Path(training_set).resolve()),
                      "cases": [c.case_id for c in cases]}, sort_keys=True)
    return registry.user_dir.parent / "runs" / f"{model_id}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def stopping_progress(progress: ProgressCallback | None, should_stop: Callable[[], bool] | None,
                      start: float, share: float) -> ProgressCallback:
    """A progress callback mapped onto [start, start + share] that cancels when should_stop says so."""
    mapped = part_of(progress, start, start + share)

    def report(fraction: float, message: str) -> None:
        if should_stop and should_stop():
            raise OperationCancelled(f"fine-tuning cancelled while {message}; nothing was registered")
        if mapped:
            mapped(fraction, message)

    return report


def case_ids_of(cases: list[CaseFiles], patients: tuple[str, ...]) -> list[str]:
    return [c.case_id for c in cases if c.patient_id in set(patients)]


def fine_tuned_postprocessing(parent: Postprocessing) -> Postprocessing:
    """A fine-tuned model's postprocessing: the parent's, without its fat/muscle and background offsets.
    Those were chosen to correct the parent's network where it draws too much fat or too large compartments;
    fine-tuned on a site's corrected labels, a network no longer does, and the offsets would push it the
    other way (chosen by a rule on the held-out domains, README: fine-tuning)."""
    return replace(parent, fat_score_offset=0.0, background_score_offset=0.0)


def parent_dice_on(parent: LoadedModel, cases: list[CaseFiles], device: str, progress: ProgressCallback) -> float:
    """The parent's compartment Dice on the corrected cases, through the product's path (segment, clean,
    measure; mean over slices and sides): how much the user had to correct, known before fine-tuning."""
    from .heldout import DomainFigures, evaluate_case

    figures = DomainFigures("corrected cases", "")
    for n, case in enumerate(cases):
        evaluate_case(parent, case, figures, (FAT_FROM_MODEL,), device)
        progress((n + 1) / len(cases), f"measuring the parent on the corrected cases, case {n + 1}/{len(cases)}")
    return figures.dice


def automatic_parent_share(parent_dice: float) -> float:
    """The parent's share of the registered weights when the user sets none: PARENT_SHARE where the parent
    already drew the corrected cases well, 0 (the fine-tuned network alone) where its Dice on them is below
    POOR_PARENT_DICE. A parent that serves the site poorly would take back much of what the fine-tune gained
    (held-out domains with poor parents, README: fine-tuning)."""
    return 0.0 if parent_dice < POOR_PARENT_DICE else PARENT_SHARE


def averaged_with_parent(trained: Path, parent: LoadedModel, share: float, folder: Path) -> Path:
    """The fine-tuned model in `trained` averaged with its parent's weights, the parent taking `share`,
    written to the new `folder` in the trained model's precision, with its card."""
    from .soup import averaged_state

    child = load_model(trained)
    child.network.load_state_dict(averaged_state([(share, parent.network.state_dict()),
                                                  (1.0 - share, child.network.state_dict())]))
    save_model(folder, child.network, child.card, half_precision=child.card.weights_dtype == "float16")
    return folder


def final_card(trained: ModelCard, fold: FoldResult, split: Split, cases: list[CaseFiles], kind: str, figures: dict,
               parent_share: float, parent_dice: float | None) -> ModelCard:
    """The registered model's card (`trained`: the fold model's, or its average with the parent's) with
    the cases it trained, validated and was tested on, and its comparison with the parent."""
    card = trained.to_dict()
    average = (f", then averaged with it (the parent's weights taking {parent_share:g}, WiSE-FT)"
               if parent_share else "")
    card["description"] = f"{card['description']}; fine-tuned from {fold.card.parent} on corrected cases{average}"
    card["training_settings"] = {**card["training_settings"], "parent_share": parent_share,
                                 "parent_dice_on_corrected_cases": finite_or_none(parent_dice)}
    card["training_data"] = {**card["training_data"], "trained_case_ids": case_ids_of(cases, split.train),
                             "validation_case_ids": case_ids_of(cases, split.validation),
                             "test_case_ids": case_ids_of(cases, split.test)}
    card["validation"] = {**card["validation"], "comparison_with_parent": {
        "parent": fold.card.parent, "cases": case_ids_of(cases, split.test or split.validation), "kind": kind,
        "figures": figures}}
    return ModelCard.from_dict(card)


def register(registry: ModelRegistry, trained: Path, card: ModelCard, run_folder: Path) -> RegisteredModel:
    """Copy the trained weights with the final card into the registry (checked, whole or not at all)."""
    with tempfile.TemporaryDirectory(prefix=".register.", dir=run_folder) as staging:
        shutil.copy2(trained / WEIGHTS_FILE, Path(staging) / WEIGHTS_FILE)
        write_text_atomic(Path(staging) / CARD_FILE, json.dumps(card.to_dict(), indent=2) + "\n")
        return registry.import_model(Path(staging))


def validated_dice(fold: FoldResult) -> float:
    """The fold's best validation Dice, for choosing the fold to register; a fold with no patient to
    validate with (NaN) comes last, so it is chosen only when no fold validated."""
    return -1.0 if math.isnan(fold.best_validation_dice) else fold.best_validation_dice


def evaluate_both(new: LoadedModel, parent: LoadedModel, cases: list[CaseFiles], device: str,
                  progress: ProgressCallback) -> tuple[EvaluationReport, EvaluationReport]:
    new_report = evaluate_cases(new, cases, device=device, progress=lambda f, m: progress(f / 2, f"new model: {m}"))
    parent_report = evaluate_cases(parent, cases, device=device,
                                   progress=lambda f, m: progress(0.5 + f / 2, f"parent model: {m}"))
    return new_report, parent_report


def fine_tune(
    training_set: Path,
    base_model: str | Path | None = None,
    settings: FineTuneSettings | None = None,
    *,
    registry: ModelRegistry | None = None,
    run_folder: Path | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: EpochCallback | None = None,
    on_phase: PhaseCallback | None = None,
) -> FineTuneResult:
    """Fine-tune `base_model` (registered id or folder; the active model if None) on a training set,
    register the result as a new model and compare it with its parent.

    should_stop (checked between batches and cases) cancels with OperationCancelled, registering
    nothing; the run folder keeps its last checkpoint and the same call resumes from it.
    """
    settings = settings or FineTuneSettings()
    registry = registry or ModelRegistry()
    training_set = Path(training_set)
    cases = find_cases(training_set)
    parent = load_model(resolve_model(base_model, registry))
    name = settings.name or parent.card.name
    version = settings.version or next_version(registry, name, parent.card.version)
    if f"{name}-{version}" == parent.card.model_id:
        raise InputError(f"the new model would have its parent's id {parent.card.model_id!r}; give it another version")
    registry.new_model_folder(ModelCard(name=name, version=version))  # refuses an id already registered
    config = settings.training_config(name, version)
    run_folder = Path(run_folder) if run_folder else default_run_folder(
        registry, f"{name}-{version}", config, parent.card.model_id, cases, training_set)
    device = choose_device(config.device)
    share, parent_dice, start = settings.parent_share, None, 0.0
    if share is None:
        if on_phase:
            on_phase("measuring")
        parent_dice = parent_dice_on(parent, cases, device,
                                     stopping_progress(progress, should_stop, 0.0, PARENT_CHECK_SHARE))
        share, start = automatic_parent_share(parent_dice), PARENT_CHECK_SHARE
        log.info("the parent's compartment Dice on the corrected cases: %.3f; parent share %g", parent_dice, share)
    if on_phase:
        on_phase("training")
    run = run_training(training_set, run_folder, config, base_model=parent.folder,
                       progress=stopping_progress(progress, should_stop, start, TRAINING_SHARE - start),
                       should_stop=should_stop, on_epoch=on_epoch,
                       postprocessing=fine_tuned_postprocessing(parent.card.postprocessing))
    fold = max(run.folds, key=validated_dice)
    split = run.splits[fold.fold]
    held_out = case_ids_of(cases, split.test or split.validation)
    kind = "test" if split.test else "validation" if held_out else "none"
    with tempfile.TemporaryDirectory(prefix=".average.", dir=run_folder) as scratch:
        trained = (averaged_with_parent(fold.model_folder, parent, share, Path(scratch) / "model")
                   if share else fold.model_folder)
        new_report = parent_report = None
        if held_out:
            if on_phase:
                on_phase("evaluating")
            new_report, parent_report = evaluate_both(
                load_model(trained), parent, [c for c in cases if c.case_id in held_out], device,
                stopping_progress(progress, should_stop, TRAINING_SHARE, 1.0 - TRAINING_SHARE))
            new_report.write(run_folder / "comparison", prefix="new_")
            parent_report.write(run_folder / "comparison", prefix="parent_")
        if should_stop and should_stop():
            raise OperationCancelled("fine-tuning cancelled before registering; nothing was registered")
        if on_phase:
            on_phase("registering")
        figures = figures_dict(comparison_figures(new_report, parent_report)) if new_report and parent_report else {}
        card = final_card(read_card(trained), fold, split, cases, kind, figures, share, parent_dice)
        registered = register(registry, trained, card, run_folder)
    result = FineTuneResult(registered.model_id, parent.card.model_id, registered.folder, run_folder,
                            tuple(case_ids_of(cases, split.train)), tuple(held_out), kind, fold.best_epoch,
                            fold.best_validation_dice, new_report, parent_report, share, parent_dice)
    (run_folder / "comparison").mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_folder / "comparison" / "comparison.md", result.markdown())
    log.info("registered %s (parent %s) from %s", registered.model_id, parent.card.model_id, run_folder)
    return result
