"""The batches of one training epoch: augmented slices, shuffled for one process or planned by patient.

Both give the epoch as optimizer steps, each step a list of (images, labels) micro-batches whose
gradients add up before the step: one batch per step when shuffled (`paraspinal train`), the
process's own shards of the patient plan (`sharding`) when planned (`paraspinal train --ddp`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .augmentation import augment, build_augmentation
from .config import TrainingConfig
from .datasets import PreparedSlices
from .distributed import World
from .sharding import epoch_plan, micro_batch_size


class AugmentedSlices:
    """A torch-style dataset over prepared slices, augmenting each draw (seeded per worker)."""

    def __init__(self, data: PreparedSlices, config: TrainingConfig, seed: int) -> None:
        self.data, self.config, self.seed = data, config, seed
        self.pipeline = build_augmentation(config.augmentation, seed)
        self.rng = np.random.default_rng(seed)

    def reseed(self, worker: int) -> None:
        self.pipeline = build_augmentation(self.config.augmentation, self.seed * 1000 + worker)
        self.rng = np.random.default_rng([self.seed, worker])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        import torch

        share = self.config.augmentation.flip_probability
        mirrored = share > 0 and self.rng.random() < share  # no draw when off: earlier runs repeat exactly
        image, labels = augment(self.pipeline, self.data.images[index], self.data.labels[index], mirrored)
        return torch.from_numpy(image[None]), torch.from_numpy(labels)


class PlannedSlices(AugmentedSlices):
    """Drawn by (slice index, position in the epoch's plan): the augmentation is seeded by the position,
    so a slice looks the same whichever process or DataLoader worker draws it, in whatever order."""

    def __getitem__(self, item: tuple[int, int]):
        index, position = item
        key = [self.seed, position]
        self.pipeline.set_random_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
        self.rng = np.random.default_rng(key)
        return super().__getitem__(index)


def _reseed_worker(worker: int) -> None:
    import torch

    torch.utils.data.get_worker_info().dataset.reseed(worker)


def loader_options(workers: int, device: str) -> dict:
    return dict(num_workers=workers, pin_memory=device == "cuda", persistent_workers=False)


def shuffled_steps(train: PreparedSlices, config: TrainingConfig, rng: np.random.Generator, workers: int,
                   device: str) -> tuple[Iterator[list], int]:
    """One process: shuffled batches of batch_size slices, one per step (the last partial one dropped)."""
    import torch

    dataset = AugmentedSlices(train, config, seed=int(rng.integers(2**31)))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(train) > config.batch_size,
        generator=torch.Generator().manual_seed(int(rng.integers(2**31))),
        worker_init_fn=_reseed_worker if workers else None, **loader_options(workers, device),
    )
    return ([batch] for batch in loader), len(loader)


def planned_steps(train: PreparedSlices, config: TrainingConfig, rng: np.random.Generator, workers: int, device: str,
                  world: World) -> tuple[Iterator[list], int]:
    """This process's micro-batches of the epoch's patient plan, `world.accumulation` per step."""
    import torch

    plan = epoch_plan(train.patient_ids, world.shards, micro_batch_size(config.batch_size, world.shards), rng)
    dataset = PlannedSlices(train, config, seed=int(rng.integers(2**31)))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=plan.micro_batches(world.own_shards()),
                                         **loader_options(workers, device))
    return _grouped(iter(loader), world.accumulation), plan.steps


def _grouped(micro_batches: Iterator, size: int) -> Iterator[list]:
    while step := [batch for _, batch in zip(range(size), micro_batches)]:
        yield step
