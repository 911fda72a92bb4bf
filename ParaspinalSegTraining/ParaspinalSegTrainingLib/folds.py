"""Patient-level splits: k folds for cross-validation, and train/validation inside each fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Patients to train on, to pick the best epoch with, and to test on (empty when not k-fold)."""

    fold: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def train_validation(patients: list[str], fraction: float, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Split patients (shuffled) into train and validation; at least one of each when possible."""
    shuffled = list(rng.permutation(sorted(patients)))
    n_validation = min(max(1, int(round(fraction * len(shuffled)))), len(shuffled) - 1) if len(shuffled) > 1 else 0
    return sorted(shuffled[n_validation:]), sorted(shuffled[:n_validation])


def patient_splits(patients: list[str], folds: int, validation_fraction: float = 0.2, seed: int = 0) -> list[Split]:
    """k-fold by patient (folds >= 2), or one train/validation split with no test set (folds 0 or 1)."""
    unique = sorted(set(patients))
    rng = np.random.default_rng(seed)
    if folds <= 1:
        train, validation = train_validation(unique, validation_fraction, rng)
        return [Split(0, tuple(train), tuple(validation), ())]
    if folds > len(unique):
        raise ValueError(f"{folds} folds need at least {folds} patients; there are {len(unique)}")
    order = list(rng.permutation(unique))
    splits = []
    for fold in range(folds):
        test = sorted(order[fold::folds])
        rest = [p for p in unique if p not in set(test)]
        train, validation = train_validation(rest, validation_fraction, rng)
        splits.append(Split(fold, tuple(train), tuple(validation), tuple(test)))
    return splits
