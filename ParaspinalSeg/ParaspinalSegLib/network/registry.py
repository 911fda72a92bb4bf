"""The model registry: the shipped default under Resources/Models, user models in a per-user folder.

List, import (folder or zip), export (zip), choose the active model. A model is known by its id
`<name>-<version>`; an id is never reused, so a fine-tuned model never replaces its parent.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .modelfile import (CARD_FILE, WEIGHTS_FILE, ModelCard, ModelFileError, check_safetensors, load_model, read_card,
                        sha256_of)
from ..output.outputs import move_into_place, rename_no_replace, write_text_atomic
from ..paths import check_separate, is_regular_file

SHIPPED_MODELS = Path(__file__).resolve().parents[3] / "Resources" / "Models"
ACTIVE_FILE = "active.json"


def user_models_dir() -> Path:
    """$PARASPINALSEG_HOME/models, else $XDG_DATA_HOME (or ~/.local/share)/ParaspinalSeg/models."""
    if os.environ.get("PARASPINALSEG_HOME"):
        return Path(os.environ["PARASPINALSEG_HOME"]) / "models"
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ParaspinalSeg" / "models"


@dataclass(frozen=True)
class RegisteredModel:
    card: ModelCard
    folder: Path
    shipped: bool

    @property
    def model_id(self) -> str:
        return self.card.model_id


class ModelRegistry:
    """Shipped and user models; the active one is remembered in the user folder."""

    def __init__(self, shipped_dir: Path | None = None, user_dir: Path | None = None) -> None:
        self.shipped_dir = Path(shipped_dir) if shipped_dir else SHIPPED_MODELS
        self.user_dir = Path(user_dir) if user_dir else user_models_dir()

    def _scan(self, root: Path, shipped: bool) -> list[RegisteredModel]:
        if not root.is_dir():
            return []
        found = []
        for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
            found.append(RegisteredModel(read_card(card_path.parent), card_path.parent, shipped))
        return found

    def models(self) -> list[RegisteredModel]:
        return self._scan(self.shipped_dir, True) + self._scan(self.user_dir, False)

    def get(self, model_id: str) -> RegisteredModel:
        models = {m.model_id: m for m in self.models()}
        if model_id in models:
            return models[model_id]
        close = difflib.get_close_matches(model_id, list(models), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"no model {model_id!r} is registered (known: {', '.join(models) or 'none'}){hint}")

    def active(self) -> RegisteredModel:
        """The model chosen with set_active, else the newest shipped model."""
        chosen = self.user_dir / ACTIVE_FILE
        if chosen.is_file():
            return self.get(json.loads(chosen.read_text())["model"])
        shipped = self._scan(self.shipped_dir, True)
        if not shipped:
            raise InputError(f"{self.shipped_dir}: no shipped model found and none chosen; import one first")
        return max(shipped, key=lambda m: m.card.created)

    def set_active(self, model_id: str) -> RegisteredModel:
        model = self.get(model_id)
        self.user_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.user_dir / ACTIVE_FILE, json.dumps({"model": model_id}) + "\n")
        return model

    def new_model_folder(self, card: ModelCard) -> Path:
        """The folder a new user model with this card goes to; refuses an id already registered."""
        if card.model_id in {m.model_id for m in self.models()}:
            raise InputError(f"a model {card.model_id!r} already exists; give the new model another version")
        target = self.user_dir / card.model_id
        if target.parent != self.user_dir or target.name != card.model_id:
            raise ModelFileError(f"model id {card.model_id!r}: not a plain folder name; refusing it")
        return target

    def import_model(self, source: Path) -> RegisteredModel:
        """Copy a model folder or zip into the user folder, after checking its card (names included),
        the weights' format and hash, and that they fit the card's network."""
        source = Path(source)
        if not source.exists():
            raise InputError(f"{source}: no such model folder or zip")
        with tempfile.TemporaryDirectory() as scratch:
            folder = _unzip_model(source, Path(scratch)) if source.is_file() else source
            try:
                card = _checked_model(folder, source)
            except ModelFileError as error:  # name the zip, not the scratch folder it was unpacked into
                raise ModelFileError(str(error).replace(scratch, str(source))) from None
            target = self.new_model_folder(card)
            staging = Path(tempfile.mkdtemp(prefix=".import.", dir=_ensure(self.user_dir)))
            try:
                for name in (CARD_FILE, WEIGHTS_FILE):
                    shutil.copy2(folder / name, staging / name)
                rename_no_replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return RegisteredModel(card, target, False)

    def export_model(self, model_id: str, destination: Path) -> Path:
        """Write a model as a zip holding model.json and model.safetensors (never overwriting)."""
        model = self.get(model_id)
        destination = Path(destination)
        check_separate(destination, [model.folder])
        if destination.exists():
            raise InputError(f"{destination}: already exists; choose another file name")
        handle, temporary = tempfile.mkstemp(prefix=".export.", suffix=".zip", dir=destination.parent)
        os.close(handle)
        try:
            with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
                for name in (CARD_FILE, WEIGHTS_FILE):
                    archive.write(model.folder / name, f"{model_id}/{name}")
            move_into_place(temporary, destination, replace=False)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return destination


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _checked_model(folder: Path, source: Path) -> ModelCard:
    """The card of a model to import, once its weights are known to be safetensors matching its
    hash, and to fit the network the card describes."""
    card = read_card(folder)
    weights = folder / WEIGHTS_FILE
    if not is_regular_file(weights):
        raise ModelFileError(f"{source}: {WEIGHTS_FILE} is missing (or not a regular file); refusing to import")
    check_safetensors(weights)
    if sha256_of(weights) != card.weights_sha256:
        raise ModelFileError(f"{source}: the weights' SHA-256 does not match its card; refusing to import")
    load_model(folder)
    return card


def _unzip_model(archive_path: Path, scratch: Path) -> Path:
    """Extract only a model's two files from a zip (no other paths, nothing outside `scratch`)."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = {Path(n).name: n for n in archive.namelist() if Path(n).name in (CARD_FILE, WEIGHTS_FILE)}
            if set(members) != {CARD_FILE, WEIGHTS_FILE}:
                raise ModelFileError(f"{archive_path}: a model zip must hold {CARD_FILE} and {WEIGHTS_FILE}")
            for name, member in members.items():
                with archive.open(member) as source, open(scratch / name, "wb") as target:
                    shutil.copyfileobj(source, target)
    except zipfile.BadZipFile:
        raise ModelFileError(f"{archive_path}: not a zip file") from None
    except (RuntimeError, NotImplementedError) as error:  # encrypted, or an unsupported compression
        raise ModelFileError(f"{archive_path}: its files cannot be extracted ({error})") from None
    return scratch


def resolve_model(reference: str | Path | None, registry: ModelRegistry | None = None) -> Path:
    """A model folder from a folder path or a registered model id (the active model if None)."""
    if reference and Path(reference).is_dir():
        return Path(reference)
    registry = registry or ModelRegistry()
    return (registry.get(str(reference)) if reference else registry.active()).folder
