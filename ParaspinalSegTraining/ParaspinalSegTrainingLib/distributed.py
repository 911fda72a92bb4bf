"""Multi-process training (torchrun, DistributedDataParallel): this process's place and the collective steps.

torchrun starts one process per GPU and tells each its RANK, LOCAL_RANK and WORLD_SIZE in the
environment; `world_from_environment` reads them (one process when they are absent). The
processes join one group: nccl on CUDA (each on the GPU of its LOCAL_RANK), gloo on the CPU.

What is kept in sync:
- parameters: DistributedDataParallel averages the gradients over the processes at every step, so
  the same update is applied everywhere (it also sends rank 0's parameters when it wraps a network);
- buffers (batch-norm running statistics): DistributedDataParallel sends rank 0's before every
  forward pass, and `broadcast_buffers` sends them once more after an epoch's last step, so every
  process validates, and rank 0 saves, the same network. They follow shard 0's micro-batches
  (`running_statistics`), however the shards are spread over processes;
- batch-norm normalises each micro-batch with its own statistics (no SyncBatchNorm: it runs on
  GPUs only, and per-micro-batch statistics keep 8 GPUs, 4 GPUs x 2 accumulation steps and one
  process x 8 on the same losses and gradients);
- metrics: the training loss and the validation sums (loss, and the pixel counts the Dice is made
  of) are summed over the processes (`sum_over_processes`) before the Dice is computed, so every
  process holds the same figures and chooses the same best epoch.

Seeds: every process seeds torch and numpy from (seed, fold) and (seed, fold, epoch), the same
values on every rank; nothing random depends on the rank. The epoch's generator plans the batches
of all processes at once (`sharding.epoch_plan`), each process takes its own shards of that plan,
and each slice's augmentation is seeded by its place in the plan.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from ParaspinalSegLib.errors import InputError

GROUP_TIMEOUT = timedelta(minutes=60)  # rank 0 alone evaluates a fold's test patients while the others wait
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """This process among those of a run: rank, size, GPU index on its node, and accumulation steps
    (micro-batches each process adds up before an optimizer step)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    accumulation: int = 1

    @property
    def shards(self) -> int:
        """Patient shards of an epoch = micro-batches in one optimizer step."""
        return self.size * self.accumulation

    @property
    def writes(self) -> bool:
        """Only rank 0 writes checkpoints, metrics, models and evaluations."""
        return self.rank == 0

    def own_shards(self) -> range:
        return range(self.rank * self.accumulation, (self.rank + 1) * self.accumulation)

    def to_dict(self) -> dict:
        return {"processes": self.size, "accumulation_steps": self.accumulation, "shards": self.shards}


def world_from_environment(accumulation: int = 1, environment: Mapping[str, str] = os.environ) -> World:
    """This process's World from torchrun's variables; one process (rank 0 of 1) when they are absent."""
    values = {}
    for name in TORCHRUN_VARIABLES:
        text = environment.get(name, "1" if name == "WORLD_SIZE" else "0")
        try:
            values[name] = int(text)
        except ValueError:
            raise InputError(f"environment variable {name}={text!r} is not a whole number; start the run with "
                             f"torchrun, which sets it") from None
    if values["WORLD_SIZE"] < 1 or not 0 <= values["RANK"] < values["WORLD_SIZE"]:
        raise InputError(f"RANK={values['RANK']} does not fit WORLD_SIZE={values['WORLD_SIZE']}; start the run with "
                         f"torchrun, which sets both")
    if accumulation < 1:
        raise InputError(f"--accumulate {accumulation}: give 1 or more micro-batches per process and step")
    return World(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], accumulation)


def backend_for(device: str) -> str:
    """nccl for CUDA, gloo for the CPU; other devices cannot join a process group."""
    if device == "cuda":
        return "nccl"
    if device == "cpu":
        return "gloo"
    raise InputError(f"--ddp trains on CUDA GPUs (nccl) or on the CPU (gloo), not on {device!r}; use --device cuda "
                     f"or cpu")


@contextmanager
def process_group(world: World | None, device: str) -> Iterator[None]:
    """Join the run's process group for the duration (nothing to join for one process); the CUDA
    device becomes the GPU of this process's LOCAL_RANK."""
    if not joined(world):
        yield
        return
    backend = backend_for(device)
    import torch
    import torch.distributed as dist

    gpu = torch.device("cuda", world.local_rank) if device == "cuda" else None
    if gpu is not None:
        torch.cuda.set_device(gpu)
    dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=GROUP_TIMEOUT, device_id=gpu)
    try:
        yield
    finally:
        dist.destroy_process_group()


def joined(world: World | None) -> bool:
    """Whether this process is one of several in a process group."""
    return world is not None and world.size > 1


def sum_over_processes(values, world: World | None) -> np.ndarray:
    """The element-wise sum of `values` over all processes (float64; the values themselves for one)."""
    totals = np.asarray(values, dtype=np.float64)
    if not joined(world):
        return totals
    import torch
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.from_numpy(totals.copy()).to(device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def barrier(world: World | None) -> None:
    """Wait until every process arrives here (for files that rank 0 writes and the others read)."""
    if joined(world):
        import torch.distributed as dist

        dist.barrier()


def broadcast_buffers(network, world: World | None) -> None:
    """Rank 0's buffers (batch-norm running statistics) copied into every process's network."""
    if joined(world):
        import torch.distributed as dist

        for buffer in network.buffers():
            dist.broadcast(buffer, src=0)


def data_parallel(network, device: str, world: World | None):
    """The network wrapped for gradient averaging over the processes (itself for one process). Made
    anew each epoch, since DistributedDataParallel fixes the trainable parameters (a frozen encoder)
    when it wraps. find_unused_parameters: an encoder shallower than 5 keeps deeper layers that never
    take part (one pass over the autograd graph per step; static_graph would spare it, but breaks
    with no_sync, pytorch/pytorch#143580)."""
    if not joined(world):
        return network
    import torch

    device_ids = [torch.cuda.current_device()] if device == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids, find_unused_parameters=True)


def gradient_sync(model, last_micro_batch: bool):
    """Gradients are averaged over the processes only after a step's last micro-batch (no_sync before)."""
    return nullcontext() if last_micro_batch or not hasattr(model, "no_sync") else model.no_sync()


@contextmanager
def running_statistics(model, update: bool) -> Iterator[None]:
    """Batch-norm layers normalise with each micro-batch's own statistics; only a process's first
    micro-batch of a step updates their running statistics (update=True). DistributedDataParallel
    keeps rank 0's, so in every arrangement of the same shards (8 processes, 4 x 2 accumulation
    steps, 1 x 8) they follow shard 0's micro-batches, and the trained network is the same."""
    if update:
        yield
        return
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True
