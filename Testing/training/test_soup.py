"""paraspinal soup: weight averages of known composition, and a soup of a model with itself is that model."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SHIPPED_MODEL as SHIPPED, run_cli
from ParaspinalSegLib.errors import InputError
from ParaspinalSegTrainingLib.soup import averaged_state, parse_member


def test_the_average_weighs_each_member_and_keeps_integer_counters():
    import torch

    first = {"w": torch.tensor([0.0, 4.0]), "steps": torch.tensor(3)}
    second = {"w": torch.tensor([8.0, 8.0]), "steps": torch.tensor(7)}
    mean = averaged_state([(1.0, first), (3.0, second)])
    assert mean["w"].tolist() == [6.0, 7.0] and mean["steps"].item() == 7


@pytest.mark.parametrize("text", ["one=folder", "0=folder", "-1=folder", "1=", "nan=folder"])
def test_a_member_without_a_positive_weight_and_a_folder_is_refused(text):
    with pytest.raises(InputError, match="WEIGHT=MODEL_FOLDER|positive weight"):
        parse_member(text)


def test_a_soup_of_a_model_with_itself_is_that_model_and_nothing_is_overwritten(tmp_path, capsys):
    from ParaspinalSegLib.network.modelfile import load_model

    out = tmp_path / "soup"
    code, printed, err = run_cli(capsys, "soup", out, f"1={SHIPPED}", f"1={SHIPPED}")  # halves: exact in binary
    assert code == 0, err
    assert f"wrote {out}: 1 x {SHIPPED.name} + 1 x {SHIPPED.name}" in printed
    made, shipped = load_model(out), load_model(SHIPPED)
    for key, value in shipped.network.state_dict().items():
        assert np.array_equal(made.network.state_dict()[key].numpy(), value.numpy()), key
    assert made.card.postprocessing == shipped.card.postprocessing and made.card.version.endswith("-soup")
    assert made.card.graph is not None
    for field in ("training_data", "training_settings"):
        listed = getattr(made.card, field)["soup_members"]
        assert [(m.pop("model"), m.pop("weight")) for m in listed] == [(shipped.card.model_id, 1.0)] * 2
        assert listed == [getattr(shipped.card, field)] * 2
    before = (out / "model.json").read_bytes()
    code, _, err = run_cli(capsys, "soup", out, f"1={SHIPPED}")
    assert code != 0 and "already exists" in err and "Traceback" not in err
    assert (out / "model.json").read_bytes() == before
    code, _, err = run_cli(capsys, "soup", out / "inside", f"1={out}")
    assert code != 0 and "lies inside the input" in err and not (out / "inside").exists()
    code, _, err = run_cli(capsys, "soup", tmp_path / "other", "one=folder")
    assert code != 0 and "needs WEIGHT=MODEL_FOLDER" in err and not (tmp_path / "other").exists()
