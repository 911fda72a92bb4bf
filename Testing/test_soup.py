"""bench/soup.py: weight averages of known composition, and a soup of a model with itself is that model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "Resources" / "Models" / "paraspinalseg-unet-r18-2.12.0"


@pytest.fixture(scope="module")
def soup():
    spec = importlib.util.spec_from_file_location("soup", ROOT / "bench" / "soup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_average_weighs_each_member_and_keeps_integer_counters(soup):
    import torch

    first = {"w": torch.tensor([0.0, 4.0]), "steps": torch.tensor(3)}
    second = {"w": torch.tensor([8.0, 8.0]), "steps": torch.tensor(7)}
    mean = soup.averaged_state([(1.0, first), (3.0, second)])
    assert mean["w"].tolist() == [6.0, 7.0] and mean["steps"].item() == 7


def test_a_soup_of_a_model_with_itself_is_that_model_and_nothing_is_overwritten(soup, tmp_path, capsys):
    from ParaspinalSegLib.network.modelfile import load_model

    out = tmp_path / "soup"
    assert soup.main([str(out), f"1={SHIPPED}", f"1={SHIPPED}"]) == 0  # halves: exact in binary
    made, shipped = load_model(out), load_model(SHIPPED)
    for key, value in shipped.network.state_dict().items():
        assert np.array_equal(made.network.state_dict()[key].numpy(), value.numpy()), key
    assert made.card.postprocessing == shipped.card.postprocessing and made.card.version.endswith("-soup")
    assert made.card.graph is not None
    before = (out / "model.json").read_bytes()
    assert soup.main([str(out), f"1={SHIPPED}"]) == 1
    assert "already exists" in capsys.readouterr().err and (out / "model.json").read_bytes() == before
    with pytest.raises(SystemExit):
        soup.main([str(tmp_path / "other"), "one=folder"])
    assert "needs WEIGHT=MODEL_FOLDER" in capsys.readouterr().err
