"""paraspinal widen: a decoder grown wider gives the same scores, and its copied channels part when trained."""

from __future__ import annotations

import pytest

from helpers import SHIPPED_MODEL as SHIPPED, run_cli
from ParaspinalSegLib.network.model import ModelArchitecture, build_network
from ParaspinalSegTrainingLib.widen import copy_sources, split_shares, widen_unet_decoder

SMALL = ModelArchitecture(decoder_channels=(16, 8, 8, 8, 4))
WIDER = (32, 12, 8, 16, 6)  # doubled, grown by half, kept, doubled, grown by half


def small_network(seed: int):
    """A small U-Net with random weights and BatchNorm statistics (as a trained one has)."""
    import torch

    torch.manual_seed(seed)
    network = build_network(SMALL).double()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return network


def test_the_old_channels_keep_their_place_and_the_copies_are_spread():
    import torch

    sources = copy_sources(3, 8, torch.Generator().manual_seed(1))
    assert sources[:3] == [0, 1, 2] and len(sources) == 8
    assert sorted(sources[3:6]) == [0, 1, 2] and set(sources[6:]) < {0, 1, 2}
    assert copy_sources(4, 4, torch.Generator()) == [0, 1, 2, 3]


def test_the_shares_over_a_channel_and_its_copies_sum_to_one():
    import torch

    sources = [0, 1, 0, 0, 1]
    shares = split_shares(sources, 6, torch.Generator().manual_seed(2))
    assert shares.shape == (6, 5) and bool((shares > 0).all())
    assert torch.allclose(shares[:, [0, 2, 3]].sum(1), torch.ones(6, dtype=shares.dtype))
    assert torch.allclose(shares[:, [1, 4]].sum(1), torch.ones(6, dtype=shares.dtype))
    assert not torch.allclose(shares[0], shares[1])  # each consumer splits its own way


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_wider_network_computes_what_the_narrow_one_did(mode):
    import torch

    narrow, wide = small_network(3), small_network(3)
    widen_unet_decoder(wide, WIDER, seed=4)
    expected = {k: tuple(v.shape) for k, v in build_network(
        ModelArchitecture(decoder_channels=WIDER)).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in wide.state_dict().items()} == expected
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    getattr(narrow, mode)(), getattr(wide, mode)()
    with torch.no_grad():
        assert torch.allclose(wide(x), narrow(x), atol=1e-9)


def test_a_copied_channel_parts_from_its_original_after_one_training_step():
    import torch

    network = small_network(5)
    widen_unet_decoder(network, WIDER, seed=6)
    conv = network.decoder.blocks[3].conv1[0]  # 8 -> 16 channels: channel 8 + k copies one of 0..7
    copies = {(8 + k, int(torch.nonzero((conv.weight[:8] == conv.weight[8 + k]).flatten(1).all(1))[0]))
              for k in range(8)}
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    target = torch.randint(0, SMALL.classes, (2, 64, 64))
    torch.nn.functional.cross_entropy(network.train()(x), target).backward()
    with torch.no_grad():
        for copy, original in copies:
            assert not torch.allclose(conv.weight.grad[copy], conv.weight.grad[original])


def test_widen_writes_a_new_model_with_the_same_labels_and_refuses_narrower_or_an_existing_folder(tmp_path, capsys):
    import torch

    from ParaspinalSegLib.network.modelfile import load_model

    out = tmp_path / "wide"
    code, printed, err = run_cli(capsys, "widen", SHIPPED, out, "--decoder-channels", "256", "128", "64", "32", "16")
    assert code == 0, err
    shipped, made = load_model(SHIPPED), load_model(out)
    assert made.card.architecture.decoder_channels == (256, 128, 64, 32, 16)
    assert made.card.parent == shipped.card.model_id and made.card.postprocessing == shipped.card.postprocessing
    assert made.card.graph is not None and made.card.model_id in printed
    torch.manual_seed(7)
    x = torch.rand(1, 1, 224, 224)
    with torch.no_grad():
        before, after = shipped.network(x), made.network(x)
    assert (after - before).abs().max() < 0.02 * before.abs().max()  # float16 storage of the split weights
    assert torch.equal(after.argmax(1), before.argmax(1))
    stored = (out / "model.json").read_bytes()
    code, _, err = run_cli(capsys, "widen", SHIPPED, out, "--decoder-channels", "256", "128", "64", "32", "16")
    assert code != 0 and "already exists" in err and "Traceback" not in err
    assert (out / "model.json").read_bytes() == stored
    code, _, err = run_cli(capsys, "widen", SHIPPED, tmp_path / "narrow", "--decoder-channels",
                           "64", "64", "32", "16", "8")
    assert code != 0 and "none below the model's own (128 64 32 16 8)" in err and not (tmp_path / "narrow").exists()


def test_widen_refuses_a_model_that_is_not_a_unet(tmp_path, capsys):
    from ParaspinalSegLib.network.modelfile import ModelCard, save_model

    fpn = ModelArchitecture(name="FPN", encoder_depth=5)
    save_model(tmp_path / "fpn", build_network(fpn), ModelCard(name="fpn", version="1.0.0", architecture=fpn))
    code, _, err = run_cli(capsys, "widen", tmp_path / "fpn", tmp_path / "wide", "--decoder-channels", "256", "128",
                           "64", "32", "16")
    assert code != 0 and "a FPN; only a Unet's decoder can be widened" in err and "Traceback" not in err
    assert not (tmp_path / "wide").exists()


def test_widen_leaves_no_half_made_model_when_the_graph_fails(tmp_path, capsys, monkeypatch):
    from ParaspinalSegTrainingLib import graphexport

    monkeypatch.setattr(graphexport, "check_agreement", lambda *args: 1.0)  # ONNX Runtime disagrees with torch
    code, _, err = run_cli(capsys, "widen", SHIPPED, tmp_path / "wide", "--decoder-channels", "256", "128", "64",
                           "32", "16")
    assert code != 0 and "differ from torch's" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
