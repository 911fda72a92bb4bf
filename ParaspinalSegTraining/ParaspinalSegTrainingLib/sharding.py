"""An epoch's batches planned by patient for several processes: all slices of a patient in one shard.

The training slices are split into S shards (S = processes x accumulation steps): patients in the
epoch generator's random order, each to the shard with the fewest slices so far (the first such),
so a patient's slices share one shard and the shards differ by less than one patient's slices.
Each shard's slices are shuffled and cycled to a common length of whole micro-batches (so a few
slices of the shorter shards are seen twice in the epoch, every slice at least once). Optimizer
step k takes micro-batch k of every shard: a global batch of S x micro-batch slices. Process r
owns shards r*a ... r*a + a - 1 (a = accumulation steps), so no patient is on two processes in
an epoch.

The plan depends only on (patients, S, micro-batch size, the epoch's generator): 8 processes, or
4 processes adding up 2 micro-batches, or one process adding up 8, see the same global batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.errors import InputError


def patient_shards(patient_ids: Sequence[str], shards: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Slice indices per shard, shuffled; each patient's slices all in one shard, sizes balanced."""
    patients = sorted(set(patient_ids))
    if len(patients) < shards:
        raise InputError(f"{len(patients)} patient(s) cannot fill {shards} shards (processes x accumulation steps): "
                         f"every process needs patients of its own; use fewer processes or more patients")
    slices_of: dict[str, list[int]] = {p: [] for p in patients}
    for index, patient in enumerate(patient_ids):
        slices_of[patient].append(index)
    members: list[list[int]] = [[] for _ in range(shards)]
    for patient in rng.permutation(patients):
        smallest = min(range(shards), key=lambda s: len(members[s]))
        members[smallest] += slices_of[patient]
    return [rng.permutation(np.array(m, dtype=np.int64)) for m in members]


@dataclass(frozen=True)
class StepPlan:
    """parts[k, s] = the slice indices of shard s's micro-batch in optimizer step k."""

    parts: np.ndarray  # (steps, shards, micro_batch) int64

    @property
    def steps(self) -> int:
        return self.parts.shape[0]

    def micro_batches(self, shards: range) -> list[list[tuple[int, int]]]:
        """The micro-batches of `shards`, step by step, as (slice index, position in the plan) pairs:
        the position seeds the slice's augmentation, whichever process draws it."""
        positions = np.arange(self.parts.size).reshape(self.parts.shape)
        return [[(int(i), int(p)) for i, p in zip(self.parts[k, s], positions[k, s])]
                for k in range(self.steps) for s in shards]


def step_plan(shards: list[np.ndarray], micro_batch: int) -> StepPlan:
    """Each shard cycled to the longest one's length rounded up to whole micro-batches, cut into steps."""
    length = -(-max(len(s) for s in shards) // micro_batch) * micro_batch
    padded = np.stack([np.resize(s, length) for s in shards])  # np.resize repeats a shard from its start
    return StepPlan(padded.reshape(len(shards), length // micro_batch, micro_batch).transpose(1, 0, 2))


def epoch_plan(patient_ids: Sequence[str], shards: int, micro_batch: int, rng: np.random.Generator) -> StepPlan:
    return step_plan(patient_shards(patient_ids, shards, rng), micro_batch)


def micro_batch_size(batch_size: int, shards: int) -> int:
    """The slices each shard gives to a step; InputError when the batch does not split evenly."""
    if batch_size % shards:
        raise InputError(f"batch size {batch_size} does not split into {shards} equal micro-batches (processes x "
                         f"accumulation steps); use a batch size that is a multiple of {shards}")
    return batch_size // shards
