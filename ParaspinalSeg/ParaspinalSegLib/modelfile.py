"""Model folders: `model.safetensors` plus `model.json` (the model card); saving, checking, loading.

Loading checks the weights' SHA-256 against the card and the card's label scheme against the
project's; it never unpickles anything (safetensors only).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import InputError
from .labels import SEGMENTS
from .model import ModelArchitecture, Preprocessing, build_network
from .outputs import move_into_place, write_text_atomic

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_FORMAT = 1


class ModelFileError(InputError):
    """A model folder is missing, corrupted or does not fit this software."""


def label_scheme() -> dict[str, str]:
    """The project's label scheme as the card stores it: value -> name."""
    return {"0": "Background", **{str(s.label): s.name for s in SEGMENTS}}


@dataclass(frozen=True)
class ModelCard:
    """What a model is, how it was made and how well it did (model.json)."""

    name: str
    version: str
    architecture: ModelArchitecture = field(default_factory=ModelArchitecture)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: dict = field(default_factory=label_scheme)
    parent: str | None = None
    description: str = ""
    training_data: dict = field(default_factory=dict)
    training_settings: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    software: dict = field(default_factory=dict)
    created: str = ""
    weights_sha256: str = ""
    weights_dtype: str = "float32"
    format: int = CARD_FORMAT

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.version}"

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "parent": self.parent,
            "architecture": self.architecture.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "labels": dict(self.labels),
            "training_data": self.training_data,
            "training_settings": self.training_settings,
            "validation": self.validation,
            "software": self.software,
            "created": self.created,
            "weights_sha256": self.weights_sha256,
            "weights_dtype": self.weights_dtype,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        return cls(
            name=data["name"],
            version=data["version"],
            architecture=ModelArchitecture.from_dict(data["architecture"]),
            preprocessing=Preprocessing.from_dict(data.get("preprocessing", {})),
            labels=data["labels"],
            parent=data.get("parent"),
            description=data.get("description", ""),
            training_data=data.get("training_data", {}),
            training_settings=data.get("training_settings", {}),
            validation=data.get("validation", {}),
            software=data.get("software", {}),
            created=data.get("created", ""),
            weights_sha256=data.get("weights_sha256", ""),
            weights_dtype=data.get("weights_dtype", "float32"),
            format=data.get("format", CARD_FORMAT),
        )


def software_versions() -> dict[str, str]:
    import segmentation_models_pytorch as smp
    import torch

    return {
        "paraspinalseg": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "segmentation_models_pytorch": smp.__version__,
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(folder: Path) -> ModelCard:
    """The model card of a model folder, with a clear error if missing or malformed."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ModelFileError(f"{folder}: not a model folder ({CARD_FILE} is missing)")
    try:
        card = ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{path}: malformed model card ({error})") from None
    if card.labels != label_scheme():
        raise ModelFileError(
            f"{path}: the model's labels {card.labels} differ from this software's label scheme "
            f"{label_scheme()}; it cannot be used here"
        )
    return card


def save_model(folder: Path, network, card: ModelCard, half_precision: bool = False) -> ModelCard:
    """Write weights and card into a new folder (refuses to overwrite an existing model)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    if (folder / CARD_FILE).exists() or (folder / WEIGHTS_FILE).exists():
        raise ModelFileError(f"{folder}: a model is already there; models are never overwritten, choose a new folder")
    expected = {k: tuple(v.shape) for k, v in build_network(card.architecture).state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in network.state_dict().items()}:
        raise ValueError(f"the network does not match the card's architecture {card.architecture}")
    folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half_precision else torch.float32
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in network.state_dict().items()
    }
    handle, temporary = tempfile.mkstemp(prefix=".weights.", dir=folder)
    os.close(handle)
    try:
        save_file(state, temporary, metadata={"format": "pt"})  # one key: byte-identical files
        digest = sha256_of(Path(temporary))
        move_into_place(temporary, folder / WEIGHTS_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    final = ModelCard.from_dict(
        {
            **card.to_dict(),
            "weights_sha256": digest,
            "weights_dtype": "float16" if half_precision else "float32",
            "software": card.software or software_versions(),
            "created": card.created or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    write_text_atomic(folder / CARD_FILE, json.dumps(final.to_dict(), indent=2) + "\n")
    return final


@dataclass
class LoadedModel:
    """A network in eval mode with its card and folder."""

    network: object
    card: ModelCard
    folder: Path


def load_model(folder: Path, device: str = "cpu") -> LoadedModel:
    """Check and load a model folder: hash, label scheme, architecture; float32 weights on `device`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    card = read_card(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{folder}: {WEIGHTS_FILE} is missing")
    actual = sha256_of(weights)
    if actual != card.weights_sha256:
        raise ModelFileError(
            f"{weights}: SHA-256 {actual[:12]}... does not match the card's {card.weights_sha256[:12]}...; "
            "the file is corrupted or was replaced; re-import the model"
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{weights}: unreadable weights ({error})") from None
    network = build_network(card.architecture)
    try:
        network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as error:
        raise ModelFileError(f"{weights}: weights do not fit the card's architecture ({str(error)[:200]})") from None
    return LoadedModel(network.to(device).eval(), card, folder)
