"""The batch-norm adaptation report (bench/batchnorm_adaptation.py): each layer takes the blend of its training
statistics and the study's, after the layers before it are adapted, and gets its own back afterwards."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

spec = importlib.util.spec_from_file_location("batchnorm_adaptation",
                                              Path(__file__).parents[2] / "bench" / "batchnorm_adaptation.py")
adaptation = sys.modules["batchnorm_adaptation"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adaptation)


def two_norms() -> torch.nn.Sequential:
    # a 2x scaling, then a norm whose training statistics are mean 0 and variance 1, then a +3 shift and another norm
    first, second = torch.nn.BatchNorm2d(1), torch.nn.BatchNorm2d(1)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1, bias=False), first, torch.nn.Conv2d(1, 1, 1), second)
    with torch.no_grad():
        network[0].weight.fill_(2.0)
        network[2].weight.fill_(1.0)
        network[2].bias.fill_(3.0)
    return network.eval()


def test_each_layer_takes_the_blend_of_its_training_statistics_and_the_studys():
    network = two_norms()
    windows = np.random.default_rng(1).normal(5.0, 1.0, (4, 1, 8, 8))
    first, second = network[1], network[3]
    with adaptation.study_statistics(network, windows, share=0.25):
        scaled = 2 * windows
        assert abs(first.running_mean.item() - 0.25 * scaled.mean()) < 1e-4
        assert abs(first.running_var.item() - (0.75 + 0.25 * scaled.var())) < 1e-3
        # the second layer sees the first one's output normalised with the blended statistics, shifted by 3
        normalised = (scaled - first.running_mean.item()) / np.sqrt(first.running_var.item() + first.eps) + 3
        assert abs(second.running_mean.item() - 0.25 * normalised.mean()) < 1e-4
        assert abs(second.running_var.item() - (0.75 + 0.25 * normalised.var())) < 1e-3
    for norm in (first, second):
        assert norm.running_mean.item() == 0.0 and norm.running_var.item() == 1.0


def test_the_whole_share_normalises_the_study_to_zero_mean_and_unit_variance():
    network = two_norms()
    windows = np.random.default_rng(2).normal(-2.0, 3.0, (3, 1, 8, 8))
    with adaptation.study_statistics(network, windows, share=1.0), torch.no_grad():
        out = network(torch.from_numpy(windows.astype(np.float32))).numpy()
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3
    with torch.no_grad():  # training statistics back: the same windows come out far from normalised
        assert abs(network(torch.from_numpy(windows.astype(np.float32))).numpy().mean()) > 1
