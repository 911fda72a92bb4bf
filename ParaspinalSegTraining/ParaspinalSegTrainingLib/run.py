"""A training run: data set in, fold models and the paper's evaluation out, resumable in one folder.

    OUT/config.json            the settings (a second start must use the same ones)
    OUT/fold_<k>/metrics.csv   per-epoch loss and validation Dice
    OUT/fold_<k>/model/        the fold's best-on-validation model (model.safetensors + model.json)
    OUT/evaluation/            per-fold and pooled Table 2 (CSV, Markdown) and grade agreement

With folds 0 or 1 there is one model trained on all patients but a validation share, and no test
set; with k >= 2 each fold's model is tested on the patients held out of it.

With a World (`paraspinal train --ddp` under torchrun) every process reads the data set and trains
its patient shards; rank 0 alone writes config.json, checkpoints, metrics, models and the
evaluation, and the run folder records the shard count: a resume must split the batches alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.inference import choose_device
from ParaspinalSegLib.network.model import Postprocessing
from ParaspinalSegLib.network.modelfile import LoadedModel, ModelCard, load_model
from ParaspinalSegLib.output.outputs import write_text_atomic

from .config import TrainingConfig
from .datasets import dataset_fingerprint, find_cases, prepare_dataset
from .distributed import World, barrier
from .evaluate import EvaluationReport, evaluate_cases
from .folds import Split, patient_splits
from .sharding import micro_batch_size
from .training import EpochCallback, FoldResult, loader_workers, train_fold
from ParaspinalSegLib.progress import ProgressCallback, part_of

READING_SHARE = 0.05  # of the progress bar, for reading and preparing the cases


@dataclass
class TrainingRun:
    folder: Path
    folds: list[FoldResult]
    evaluation: EvaluationReport | None
    splits: list[Split]

    @property
    def model_folders(self) -> list[Path]:
        return [f.model_folder for f in self.folds]


def same_run(saved: dict, document: dict) -> bool:
    """Whether a run folder's saved settings are this run's; settings added to `TrainingConfig` after the run
    started count at their defaults (as `from_dict` reads them), so such a run still resumes."""
    try:
        saved = {**saved, "config": TrainingConfig.from_dict(saved["config"]).to_dict()}
    except (KeyError, TypeError, ValueError, InputError):
        return False
    return json.loads(json.dumps(saved)) == json.loads(json.dumps(document))


def _check_same_config(out: Path, config: TrainingConfig, base_id: str | None, validation: list[Path],
                       world: World | None) -> None:
    saved = out / "config.json"
    document = {"config": config.to_dict(), "base_model": base_id}
    if validation:
        document["validation_data"] = [str(v) for v in validation]
    if world:
        document["shards"] = world.shards
    if saved.exists():
        if not same_run(json.loads(saved.read_text()), document):
            raise InputError(f"{saved}: this folder holds a run with other settings (or, with --ddp, another number of "
                             f"processes x accumulation steps); use a new output folder to start afresh")
        return
    if world is None or world.writes:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(saved, json.dumps(document, indent=2) + "\n")


def card_template(config: TrainingConfig, base: LoadedModel | None, fingerprint: dict,
                  world: World | None = None, postprocessing: Postprocessing | None = None) -> ModelCard:
    """The card every fold model starts from: architecture and postprocessing (offsets) from the base model
    when fine-tuning, unless `postprocessing` is given; with a World, the processes and accumulation steps that
    shared each global batch."""
    architecture = base.card.architecture if base else config.architecture
    preprocessing = config.preprocessing
    distributed = {"distributed": {**world.to_dict(), "micro_batch": config.batch_size // world.shards}} if world else {}
    return ModelCard(
        name=config.name,
        version=config.version,
        architecture=architecture,
        preprocessing=preprocessing,
        postprocessing=postprocessing if postprocessing is not None else base.card.postprocessing if base else Postprocessing(),
        parent=base.card.model_id if base else None,
        description=f"U-Net trained with ParaspinalSegTrainingLib{' (fine-tuned)' if base else ''}",
        training_data=fingerprint,
        training_settings={**config.to_dict(), "architecture": architecture.to_dict(), "preprocessing": preprocessing.to_dict(),
                           **distributed},
    )


def run_training(
    dataset: Path,
    out: Path,
    config: TrainingConfig,
    base_model: Path | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch: EpochCallback | None = None,
    validation: list[Path] | None = None,
    world: World | None = None,
    postprocessing: Postprocessing | None = None,
) -> TrainingRun:
    """Train (and with k >= 2 folds, evaluate) on a data set folder; resumes an interrupted run in `out`.

    Fine-tuning (base_model given) keeps the base model's architecture and network grid (pixel
    spacing, input size, normalisation), whatever the config says; the resampling onto that grid
    follows the config. The cards list the data set's case ids. validation: data set folders that
    choose the best epoch instead of a validation share of `dataset` (the held-out synthesis domains).
    world: this process's place in a multi-process run (see the module's docstring); on ranks other than
    0 the result has no evaluation. postprocessing: the fold cards' (which also choose the epoch), instead
    of the base model's."""
    out = Path(out)
    base = load_model(base_model) if base_model else None
    if base:
        preprocessing = replace(base.card.preprocessing, resampling=config.preprocessing.resampling)
        config = replace(config, architecture=base.card.architecture, preprocessing=preprocessing)
    validation = [Path(v) for v in validation or []]
    if world:
        micro_batch_size(config.batch_size, world.shards)
    _check_same_config(out, config, base.card.model_id if base else None, validation, world)
    cases = find_cases(dataset)
    card = card_template(config, base, {**dataset_fingerprint(cases), "case_ids": [c.case_id for c in cases]}, world,
                         postprocessing)
    workers = loader_workers(config, choose_device(config.device))
    data = prepare_dataset(cases, card.preprocessing, part_of(progress, 0.0, READING_SHARE / 2), config.label_resampling,
                           workers)
    validation_slices = prepare_dataset([c for v in validation for c in find_cases(v)], card.preprocessing,
                                        part_of(progress, READING_SHARE / 2, READING_SHARE),
                                        config.label_resampling, workers) if validation else None
    if data.fat_by_image_analysis:
        card = ModelCard.from_dict({**card.to_dict(), "training_data": {
            **card.training_data, "fat_by_image_analysis": data.fat_by_image_analysis}})
    splits = patient_splits(data.patient_ids, config.folds, config.validation_fraction, config.seed)
    initial = {k: v.float() for k, v in base.network.state_dict().items()} if base else None
    results, reports = [], []
    for split in splits:
        fold_share = (1 - READING_SHARE) / len(splits)
        fold_progress = part_of(progress, READING_SHARE + split.fold * fold_share, READING_SHARE + (split.fold + 1) * fold_share)
        result = train_fold(data, split, config, out / f"fold_{split.fold}", card, initial, fold_progress, should_stop,
                            on_epoch, validation_slices, world)
        results.append(result)
        if split.test and (world is None or world.writes):
            held_out = [c for c in cases if c.patient_id in set(split.test)]
            report = evaluate_cases(load_model(result.model_folder), held_out, device=choose_device(config.device))
            report.write(out / "evaluation", prefix=f"fold_{split.fold}_")
            reports.append(report)
        barrier(world)
    pooled = None
    if reports:
        pooled = EvaluationReport(
            [s for r in reports for s in r.scores],
            {p: v for r in reports for p, v in r.fat_fractions.items()},
            {c: p for r in reports for c, p in r.patient_of_case.items()},
        )
        pooled.write(out / "evaluation", prefix="pooled_")
    return TrainingRun(out, results, pooled, splits)
