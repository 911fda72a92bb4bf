"""A U-Net's decoder grown wider without changing what the network computes (Net2WiderNet, Chen et al. 2016).

Each decoder convolution gets more output channels: the new ones copy existing channels (their kernel and
BatchNorm, running statistics included), and every layer that reads a widened output splits its weights over
a channel and its copies by random shares that sum to 1. The wider network gives the same scores as the model
it grew from (up to float16 storage), and training can go on from there with more capacity; the random shares
give the copies different gradients, so they do not stay copies. The encoder is untouched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ParaspinalSegLib.errors import InputError


def copy_sources(old: int, new: int, generator) -> list[int]:
    """For each of `new` channels, the old channel it copies: the first `old` keep their place, the rest are
    drawn at random, each old channel at most once more than any other."""
    import torch

    extra = new - old
    rounds = [torch.randperm(old, generator=generator).tolist() for _ in range(-(-extra // old))]
    return list(range(old)) + [c for r in rounds for c in r][:extra]


def split_shares(sources: list[int], consumers: int, generator):
    """Per consumer channel and widened input channel, the share of the old weight it takes: random in 0.5-1.5
    before each old channel's shares are scaled to sum to 1 (a float64 tensor [consumers, len(sources)])."""
    import torch

    index = torch.tensor(sources)
    raw = 0.5 + torch.rand(consumers, len(sources), generator=generator, dtype=torch.float64)
    total = torch.zeros(consumers, int(index.max()) + 1, dtype=torch.float64).index_add_(1, index, raw)
    return raw / total[:, index]


def widen_producer(conv, norm, sources: list[int]) -> None:
    """Give a convolution (and its BatchNorm) the output channels `sources` copies."""
    import torch

    index = torch.tensor(sources)
    conv.weight = torch.nn.Parameter(conv.weight.data[index].clone())
    conv.out_channels = len(sources)
    if conv.bias is not None:
        conv.bias = torch.nn.Parameter(conv.bias.data[index].clone())
    for name in ("weight", "bias"):
        setattr(norm, name, torch.nn.Parameter(getattr(norm, name).data[index].clone()))
    norm.running_mean = norm.running_mean[index].clone()
    norm.running_var = norm.running_var[index].clone()
    norm.num_features = len(sources)


def widen_consumer(conv, start: int, sources: list[int], generator) -> None:
    """Let a convolution read the widened channels that begin at input channel `start` (the ones after
    them, a skip connection, keep their weights), splitting each old weight over the channel and its copies."""
    import torch

    old_count = max(sources) + 1
    index = torch.tensor(sources)
    weight = conv.weight.data
    shares = split_shares(sources, weight.shape[0], generator).to(weight.dtype)[:, :, None, None]
    widened = weight[:, start + index] * shares
    conv.weight = torch.nn.Parameter(torch.cat([weight[:, :start], widened, weight[:, start + old_count:]], dim=1))
    conv.in_channels = conv.weight.shape[1]


def widen_unet_decoder(network, channels: tuple[int, ...], seed: int) -> None:
    """Widen a segmentation-models-pytorch U-Net's decoder blocks, in place, to `channels` (one count per
    block, none narrower than now); the network's output stays what it was."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    blocks = network.decoder.blocks
    head = network.segmentation_head[0]
    for number, (block, width) in enumerate(zip(blocks, channels, strict=True)):
        first = copy_sources(block.conv1[0].out_channels, width, generator)
        widen_producer(block.conv1[0], block.conv1[1], first)
        widen_consumer(block.conv2[0], 0, first, generator)
        second = copy_sources(block.conv2[0].out_channels, width, generator)
        widen_producer(block.conv2[0], block.conv2[1], second)
        reader = blocks[number + 1].conv1[0] if number + 1 < len(blocks) else head
        widen_consumer(reader, 0, second, generator)


def make_widened(out: Path, model_folder: Path, channels: tuple[int, ...], seed: int) -> str:
    """Write `model_folder`'s model with its decoder widened to `channels` into the new folder `out`;
    returns the card's new model id."""
    from ParaspinalSegLib.network.modelfile import load_model

    from .graphexport import save_model_with_graph

    model = load_model(model_folder)
    architecture = model.card.architecture
    if architecture.name != "Unet":
        raise InputError(f"{model_folder}: a {architecture.name}; only a Unet's decoder can be widened")
    current = tuple(architecture.decoder_channels)
    if len(channels) != len(current) or any(new < old for new, old in zip(channels, current)):
        raise InputError(f"--decoder-channels {' '.join(map(str, channels))}: needs {len(current)} counts, none "
                         f"below the model's own ({' '.join(map(str, current))})")
    widen_unet_decoder(model.network, channels, seed)
    card = dataclasses.replace(
        model.card, version=f"{model.card.version}-wide{'-'.join(map(str, channels))}", graph=None,
        architecture=dataclasses.replace(architecture, decoder_channels=tuple(channels)),
        parent=model.card.model_id,
        description=f"{model.card.model_id} with its decoder widened from {list(current)} to {list(channels)} "
                    f"(Net2WiderNet, seed {seed}): the same scores, more channels to train; train it on "
                    f"(`train --base`) and release it to give it its own version and notes")
    save_model_with_graph(out, model.network, card)
    return card.model_id
