"""Training settings as one frozen dataclass, saved as JSON beside what it produced."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.model import ModelArchitecture, Preprocessing
from ParaspinalSegLib.network.preprocess import LABEL_RESAMPLING

from .augmentation import AugmentationSettings


def checked_fields(cls, data: dict, what: str) -> dict:
    """A copy of `data` after checking that every key is a field of the dataclass `cls`."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown {what} {unknown}; known: {sorted(known)}")
    return dict(data)


@dataclass(frozen=True)
class TrainingConfig:
    """The paper's recipe by default: Dice + focal loss, 10-fold by patient, 28 epochs, best on validation."""

    name: str = "paraspinal-unet"
    version: str = "0.1.0"
    epochs: int = 28
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    folds: int = 10
    validation_fraction: float = 0.2
    seed: int = 0
    freeze_encoder_epochs: int = 0
    dice_weight: float = 1.0
    focal_weight: float = 1.0
    compartment_dice_weight: float = 0.0  # a per-slice Dice of each side's compartment, added to the loss
    fat_split_weight: float = 0.0  # a per-slice error of each side's fat share inside its true compartment, added
    mirror_distillation_weight: float = 0.0  # cross-entropy against the base model's mirrored look (needs a base)
    label_resampling: str = "nearest"  # how label maps reach the network grid: "nearest" or "smooth" (resample_labels)
    device: str = "auto"
    workers: int = -1  # -1: none on the CPU, 8 on a GPU
    mixed_precision: bool = True  # bfloat16 autocast on CUDA
    # bfloat16 autocast on the CPU too: about 1.6 times as fast a training step on a CPU with AVX-512 BF16 (README,
    # *Training on the CPU in bfloat16*); off by default, so that the recipes trained in float32 on the CPU stay exact
    mixed_precision_cpu: bool = False
    half_precision_weights: bool = False
    architecture: ModelArchitecture = field(default_factory=ModelArchitecture)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mirror_distillation_weight) and self.mirror_distillation_weight >= 0):
            raise ValueError(f"mirror_distillation_weight {self.mirror_distillation_weight!r}: "
                             "needs a weight of 0 or more")
        if self.label_resampling not in LABEL_RESAMPLING:
            raise ValueError(f"label_resampling {self.label_resampling!r}: choose one of {', '.join(LABEL_RESAMPLING)}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["architecture"] = self.architecture.to_dict()
        out["preprocessing"] = self.preprocessing.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainingConfig:
        data = checked_fields(cls, data, "training settings")
        if "architecture" in data:
            data["architecture"] = ModelArchitecture.from_dict(data["architecture"])
        if "preprocessing" in data:
            data["preprocessing"] = Preprocessing.from_dict(data["preprocessing"])
        if "augmentation" in data:
            data["augmentation"] = AugmentationSettings(**data["augmentation"])
        return cls(**data)

    @classmethod
    def from_file(cls, path: Path) -> TrainingConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise InputError(f"{path}: cannot read the training settings ({error})") from None

    def with_overrides(self, **changes) -> TrainingConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
