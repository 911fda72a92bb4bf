"""Hostile model folders, zips and cards: escaping names, fake weights with matching hashes, bad values.

Each is tried with `models import` (into a scratch $PARASPINALSEG_HOME) and with `segment --model`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from . import Case, Kit, Run

CARD, WEIGHTS = "model.json", "model.safetensors"
CardChange = Callable[[dict], None]


def _copy(kit: Kit, name: str) -> Path:
    folder = kit.root / "models" / name
    shutil.copytree(kit.model, folder)
    return folder


def _edit_card(folder: Path, change: CardChange) -> None:
    card = json.loads((folder / CARD).read_text())
    change(card)
    (folder / CARD).write_text(json.dumps(card))


def _weights(folder: Path, content: bytes) -> None:
    """Replace the weights and make the card's hash match them (a forger's move)."""
    (folder / WEIGHTS).write_bytes(content)
    _edit_card(folder, lambda card: card.update(weights_sha256=hashlib.sha256(content).hexdigest()))


def _safetensors(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _field(path: str, value) -> CardChange:
    def change(card: dict) -> None:
        *parents, last = path.split(".")
        target = card
        for key in parents:
            target = target[key]
        target[last] = value
    return change


def _card_changes() -> dict[str, CardChange]:
    return {
        "name-escapes": _field("name", "../../escaped"),
        "name-nested": _field("name", "nested/dir/name"),
        "name-absolute": _field("name", "/tmp/absolute"),
        "name-empty": _field("name", ""),
        "name-dots": _field("name", ".."),
        "name-spaces": _field("name", "my model"),
        "name-number": _field("name", 42),
        "name-null": _field("name", None),
        "name-backslash": _field("name", "a\\b"),
        "name-unicode": _field("name", "modèle"),
        "name-too-long": _field("name", "m" * 200),
        "version-escapes": _field("version", "../1"),
        "version-hidden": _field("version", ".1"),
        "encoder-unknown": _field("architecture.encoder", "resnet9999"),
        "encoder-number": _field("architecture.encoder", 18),
        "architecture-unknown": _field("architecture.name", "Transformer"),
        "architecture-extra-key": _field("architecture.layers", 3),
        "depth-string": _field("architecture.encoder_depth", "3"),
        "depth-zero": _field("architecture.encoder_depth", 0),
        "classes-wrong": _field("architecture.classes", 7),
        "spacing-string": _field("preprocessing.pixel_spacing_mm", "4.5"),
        "spacing-negative": _field("preprocessing.pixel_spacing_mm", -1),
        "input-size-string": _field("preprocessing.input_size", "64"),
        "input-size-zero": _field("preprocessing.input_size", 0),
        "percentiles-string": _field("preprocessing.percentiles", "1,99"),
        "percentiles-reversed": _field("preprocessing.percentiles", [99, 1]),
        "normalisation-unknown": _field("preprocessing.normalisation", "zscore"),
        "labels-other": _field("labels", {"0": "Background", "1": "Liver"}),
        "no-architecture": lambda card: card.pop("architecture"),
        "hash-wrong": _field("weights_sha256", "0" * 64),
    }


def _folder_builders() -> dict[str, Callable[[Kit], Path]]:
    """name: builder of a bad model folder."""
    def card_case(name: str, change: CardChange) -> Callable[[Kit], Path]:
        def build(kit: Kit) -> Path:
            folder = _copy(kit, name)
            _edit_card(folder, change)
            return folder
        return build

    def weights_case(name: str, content: Callable[[Path], bytes]) -> Callable[[Kit], Path]:
        def build(kit: Kit) -> Path:
            folder = _copy(kit, name)
            _weights(folder, content(folder))
            return folder
        return build

    def no_weights(kit: Kit) -> Path:
        folder = _copy(kit, "no-weights")
        (folder / WEIGHTS).unlink()
        return folder

    def no_card(kit: Kit) -> Path:
        folder = _copy(kit, "no-card")
        (folder / CARD).unlink()
        return folder

    def card_text(name: str, text: str) -> Callable[[Kit], Path]:
        def build(kit: Kit) -> Path:
            folder = _copy(kit, name)
            (folder / CARD).write_text(text)
            return folder
        return build

    def weights_fifo(kit: Kit) -> Path:
        folder = _copy(kit, "weights-fifo")
        (folder / WEIGHTS).unlink()
        os.mkfifo(folder / WEIGHTS)
        return folder

    def weights_folder(kit: Kit) -> Path:
        folder = _copy(kit, "weights-folder")
        (folder / WEIGHTS).unlink()
        (folder / WEIGHTS).mkdir()
        return folder

    pickled = pickle.dumps({"weights": [1.0, 2.0]})
    builders = {name: card_case(name, change) for name, change in _card_changes().items()}
    builders.update({
        "pickle-with-matching-hash": weights_case("pickle-with-matching-hash", lambda f: pickled),
        "random-with-matching-hash": weights_case("random-with-matching-hash", lambda f: os.urandom(4096)),
        "empty-with-matching-hash": weights_case("empty-with-matching-hash", lambda f: b""),
        "cut-with-matching-hash": weights_case("cut-with-matching-hash",
                                               lambda f: (f / WEIGHTS).read_bytes()[:5000]),
        "header-lies-with-matching-hash": weights_case(
            "header-lies-with-matching-hash",
            lambda f: _safetensors({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 16)),
        "header-not-json-with-matching-hash": weights_case(
            "header-not-json-with-matching-hash", lambda f: struct.pack("<Q", 5) + b"{{{{{" + b"\0" * 64),
        "other-network-with-matching-hash": weights_case(
            "other-network-with-matching-hash",
            lambda f: _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)),
        "no-weights": no_weights, "no-card": no_card,
        "card-not-json": card_text("card-not-json", "{not json"),
        "card-a-list": card_text("card-a-list", "[1, 2]"),
        "card-empty": card_text("card-empty", ""),
        "weights-fifo": weights_fifo, "weights-folder": weights_folder,
    })
    return builders


def _zip_builders() -> dict[str, Callable[[Kit], Path]]:
    def write_zip(kit: Kit, name: str, members: dict[str, bytes]) -> Path:
        path = kit.path("model-zips", name)
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        return path

    def good_members(kit: Kit) -> dict[str, bytes]:
        return {name: (kit.model / name).read_bytes() for name in (CARD, WEIGHTS)}

    def escaping(kit: Kit) -> Path:
        members = good_members(kit)
        card = json.loads(members[CARD])
        card["name"] = "../../zip-escaped"
        return write_zip(kit, "escaping.zip", {f"../../{n}": d for n, d in {**members, CARD: json.dumps(card).encode()}.items()})

    def card_only(kit: Kit) -> Path:
        return write_zip(kit, "card-only.zip", {CARD: good_members(kit)[CARD]})

    def encrypted(kit: Kit) -> Path:
        from .archives import _patch_headers

        return _patch_headers(write_zip(kit, "encrypted.zip", good_members(kit)), flag=0x1)

    def not_zip(kit: Kit) -> Path:
        path = kit.path("model-zips", "fake.zip")
        path.write_bytes(b"not a zip at all")
        return path

    return {"zip-escaping": escaping, "zip-card-only": card_only, "zip-encrypted": encrypted, "zip-fake": not_zip}


def _import(kit: Kit, source: Path) -> Run:
    return Run(["models", "import", str(source)], names=source.name, env={"PARASPINALSEG_HOME": str(kit.home)})


def _segment(kit: Kit, model: Path) -> Run:
    return Run(["-q", "segment", str(kit.study), "--model", str(model), "-o", str(kit.root / "out")],
               names=model.name)


SEGMENT_TOO = ("no-weights", "encoder-unknown", "spacing-string", "percentiles-string", "pickle-with-matching-hash",
               "header-lies-with-matching-hash", "other-network-with-matching-hash", "weights-fifo", "depth-string",
               "card-a-list")


def cases() -> list[Case]:
    found = [Case(f"model-import-{name}", lambda kit, b=build: _import(kit, b(kit)))
             for name, build in {**_folder_builders(), **_zip_builders()}.items()]
    folders = _folder_builders()
    found += [Case(f"model-segment-{name}", lambda kit, b=folders[name]: _segment(kit, b(kit))) for name in SEGMENT_TOO]
    return found
