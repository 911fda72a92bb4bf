"""Model folders and the registry: hashes checked, label scheme checked, nothing overwritten."""

import json
import zipfile

import pytest
import torch

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.model import ModelArchitecture, build_network
from ParaspinalSegLib.network.modelfile import CARD_FILE, WEIGHTS_FILE, ModelCard, ModelFileError, load_model, save_model
from ParaspinalSegLib.network.registry import ModelRegistry

TINY = ModelArchitecture(encoder="resnet18", encoder_depth=3, decoder_channels=(32, 16, 8))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    network = build_network(TINY)
    card = save_model(tmp_path / "tiny", network, ModelCard(name="tiny", version="1.0.0", architecture=TINY))
    return tmp_path / "tiny", network, card


def test_saved_model_loads_back_with_identical_outputs(saved):
    folder, network, card = saved
    loaded = load_model(folder)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x), network.eval()(x))
    assert loaded.card.weights_sha256 == card.weights_sha256 and len(card.weights_sha256) == 64
    assert loaded.card.software["torch"] == torch.__version__
    assert set(loaded.card.labels) == {"0", "1", "2", "3", "4"}


def test_half_precision_weights_are_half_the_size(tmp_path, saved):
    folder, network, _ = saved
    half = save_model(tmp_path / "half", network, ModelCard(name="tiny", version="1.0.1", architecture=TINY), half_precision=True)
    ratio = (tmp_path / "half" / WEIGHTS_FILE).stat().st_size / (folder / WEIGHTS_FILE).stat().st_size
    assert 0.45 < ratio < 0.55 and half.weights_dtype == "float16"
    assert load_model(tmp_path / "half").card.weights_dtype == "float16"


def test_corrupted_weights_are_refused(saved):
    folder, _, _ = saved
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256 .* does not match"):
        load_model(folder)


def test_foreign_label_scheme_is_refused(saved):
    folder, _, _ = saved
    card = json.loads((folder / CARD_FILE).read_text())
    card["labels"]["2"] = "Psoas"
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="label scheme"):
        load_model(folder)


def test_models_are_never_overwritten(saved):
    folder, network, _ = saved
    with pytest.raises(ModelFileError, match="never overwritten"):
        save_model(folder, network, ModelCard(name="tiny", version="1.0.0", architecture=TINY))


def test_registry_imports_exports_and_activates(tmp_path, saved):
    folder, _, card = saved
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (folder).rename(shipped / "tiny-1.0.0")
    registry = ModelRegistry(shipped_dir=shipped, user_dir=tmp_path / "user")
    assert registry.active().model_id == "tiny-1.0.0" and registry.active().shipped
    archive = registry.export_model("tiny-1.0.0", tmp_path / "tiny.zip")
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["tiny-1.0.0/model.json", "tiny-1.0.0/model.safetensors"]
    with pytest.raises(InputError, match="already exists"):
        registry.import_model(archive)  # same id as the shipped one
    other = ModelRegistry(shipped_dir=tmp_path / "none", user_dir=tmp_path / "user2")
    imported = other.import_model(archive)
    assert imported.model_id == "tiny-1.0.0" and not imported.shipped
    assert other.set_active("tiny-1.0.0").model_id == other.active().model_id
    with pytest.raises(InputError, match="did you mean 'tiny-1.0.0'"):
        other.get("tiny-1.0.1")


def test_broken_zip_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not really")
    with pytest.raises(ModelFileError, match="not a zip"):
        ModelRegistry(shipped_dir=tmp_path, user_dir=tmp_path / "u").import_model(bad)


def real_case(dice: float, *biases: float) -> dict:
    return {"case": "c", "dice": dice, "per_level": {f"group {n}": {"csa_bias_pct": b} for n, b in enumerate(biases)}}


def test_the_model_note_sums_up_the_cards_real_case_report():
    from ParaspinalSegLib.network.modelfile import ModelCard, real_case_note

    card = ModelCard(name="m", version="1", validation={"real_cases": [real_case(0.838, -22.8, -31.1), real_case(0.353, -61.7)]})
    assert real_case_note(card) == (
        "model m-1 reached a compartment Dice of 0.35-0.84 on the 2 real case(s) of its card (labels made by other "
        "models) and drew the compartments 23-62 % smaller than their labels, by level group: check the masks before "
        "using the numbers, or fine-tune on your own corrected cases")
    larger = ModelCard(name="m", version="2", validation={"real_cases": [real_case(0.9, 4.0, 12.0)]})
    assert "drew the compartments 4-12 % larger than their labels" in real_case_note(larger)
    mixed = ModelCard(name="m", version="3", validation={"real_cases": [real_case(0.9, -4.0, 12.0)]})
    assert ", compartment areas -4 to +12 % against their labels by level group:" in real_case_note(mixed)
    assert real_case_note(ModelCard(name="m", version="4", validation={"real_cases": [real_case(0.9)]})).startswith(
        "model m-4 reached a compartment Dice of 0.90-0.90 on the 1 real case(s) of its card (labels made by other models):")
    assert real_case_note(ModelCard(name="m", version="5")) == ""  # e.g. fine-tuned on a site's own cases
