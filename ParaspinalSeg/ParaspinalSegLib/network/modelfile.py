"""Model folders: `model.safetensors` plus `model.json` (the model card); saving, checking, loading.

Loading checks the weights' SHA-256 against the card and the card's label scheme against the
project's; it never unpickles anything (safetensors only).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import re
import struct
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..labels import SEGMENTS
from .model import ARCHITECTURES, NUM_CLASSES, ModelArchitecture, Postprocessing, Preprocessing, build_network
from ..output.outputs import move_into_place, write_text_atomic

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_FORMAT = 1
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
MAX_SAFETENSORS_HEADER = 100 << 20
SAFETENSORS_DTYPES = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"}


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
    postprocessing: Postprocessing = field(default_factory=Postprocessing)
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
    graph: dict = field(default_factory=dict)  # the ONNX graph beside the weights: file, sha256, initializers
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
            "postprocessing": self.postprocessing.to_dict(),
            "labels": dict(self.labels),
            "training_data": self.training_data,
            "training_settings": self.training_settings,
            "validation": self.validation,
            "software": self.software,
            "created": self.created,
            "weights_sha256": self.weights_sha256,
            "weights_dtype": self.weights_dtype,
            **({"graph": self.graph} if self.graph else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        return cls(
            name=data["name"],
            version=data["version"],
            architecture=ModelArchitecture.from_dict(data["architecture"]),
            preprocessing=Preprocessing.from_dict(data.get("preprocessing", {})),
            postprocessing=Postprocessing.from_dict(data.get("postprocessing", {})),
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
            graph=data.get("graph", {}),
            format=data.get("format", CARD_FORMAT),
        )


def real_case_note(card: ModelCard) -> str:
    """What the card's real-case report says a user should know about every result of the model:
    its compartment Dice on those cases and how far its compartment areas were off their labels, by
    level group (`validation.real_cases`, written at release). "" when the card reports no real case
    (a model fine-tuned on a site's own corrected cases is validated there, not here)."""
    cases = [case for case in card.validation.get("real_cases", []) if isinstance(case, dict) and _is_number(case.get("dice"))]
    if not cases:
        return ""
    dice = sorted(float(case["dice"]) for case in cases)
    biases = sorted(float(group["csa_bias_pct"]) for case in cases for group in case.get("per_level", {}).values()
                    if isinstance(group, dict) and _is_number(group.get("csa_bias_pct")))
    note = (f"model {card.model_id} reached a compartment Dice of {dice[0]:.2f}-{dice[-1]:.2f} on the "
            f"{len(cases)} real case(s) of its card (labels made by other models)")
    if biases and (biases[-1] < 0 or biases[0] > 0):
        smallest, largest = sorted(abs(b) for b in (biases[0], biases[-1]))
        note += (f" and drew the compartments {smallest:.0f}-{largest:.0f} % "
                 f"{'smaller' if biases[0] < 0 else 'larger'} than their labels, by level group")
    elif biases:
        note += f", compartment areas {biases[0]:+.0f} to {biases[-1]:+.0f} % against their labels by level group"
    return note + ": check the masks before using the numbers, or fine-tune on your own corrected cases"


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


def check_identifier(value: object, what: str, path: Path) -> None:
    """Refuse a card's name or version that could not safely be part of a folder name: it must be
    1-64 letters, digits, ".", "_", "+" or "-", start with a letter or digit, and hold no "..".
    """
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value) or ".." in value:
        raise ModelFileError(f"{path}: the model's {what} {value!r} is not allowed; use 1-64 letters, digits, "
                             "'.', '_', '+' or '-', starting with a letter or digit, without '..'")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def card_problems(card: ModelCard) -> list[str]:
    """What in a card's architecture and preprocessing cannot be right (types and ranges)."""
    a, p = card.architecture, card.preprocessing
    problems = []
    if a.name not in ARCHITECTURES:
        problems.append(f"architecture {a.name!r} (known: {', '.join(ARCHITECTURES)})")
    if not isinstance(a.encoder, str):
        problems.append(f"encoder {a.encoder!r}")
    if not _is_count(a.encoder_depth, 1, 5):
        problems.append(f"encoder_depth {a.encoder_depth!r} (1 to 5)")
    if not all(_is_count(c, 1, 4096) for c in a.decoder_channels):
        problems.append(f"decoder_channels {list(a.decoder_channels)!r} (positive whole numbers)")
    if a.in_channels != 1 or a.classes != NUM_CLASSES:
        problems.append(f"in_channels {a.in_channels!r} and classes {a.classes!r} (1 and {NUM_CLASSES})")
    if not (_is_number(p.pixel_spacing_mm) and 0.05 <= p.pixel_spacing_mm <= 20):
        problems.append(f"pixel_spacing_mm {p.pixel_spacing_mm!r} (a number of mm)")
    if not _is_count(p.input_size, 16, 4096):
        problems.append(f"input_size {p.input_size!r} (16 to 4096 pixels)")
    if p.normalisation != "percentile":
        problems.append(f"normalisation {p.normalisation!r} (percentile)")
    low_high = list(p.percentiles)
    if len(low_high) != 2 or not all(_is_number(v) for v in low_high) or not 0 <= low_high[0] < low_high[1] <= 100:
        problems.append(f"percentiles {low_high!r} (two numbers, 0 <= low < high <= 100)")
    if card.graph and not graph_entry_is_sound(card.graph):
        problems.append("graph (a file name, its sha256 and the list of its initializers' names)")
    return problems


def graph_entry_is_sound(graph: object) -> bool:
    """Whether a card's graph entry has the fields the runtimes read, of the right types."""
    return (isinstance(graph, dict) and isinstance(graph.get("file"), str) and isinstance(graph.get("sha256"), str)
            and isinstance(graph.get("initializers"), list) and all(isinstance(n, str) for n in graph["initializers"]))


def read_card(folder: Path) -> ModelCard:
    """The model card of a model folder, with a clear error if missing or malformed."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ModelFileError(f"{folder}: not a model folder ({CARD_FILE} is missing)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        check_identifier(data.get("name"), "name", path)
        check_identifier(data.get("version"), "version", path)
        card = ModelCard.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelFileError(f"{path}: malformed model card ({error})") from None
    problems = card_problems(card)
    if problems:
        raise ModelFileError(f"{path}: the card's values cannot be right: {'; '.join(problems)}")
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


def check_safetensors(path: Path) -> None:
    """Refuse a weights file that is not in the safetensors format (checked without loading it):
    an 8-byte little-endian header length, a JSON header of tensors whose dtypes, shapes and byte
    ranges fit the data that follows, and nothing else (a pickle renamed fails here)."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        prefix = stream.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 2 <= length <= min(MAX_SAFETENSORS_HEADER, size - 8):
            raise ModelFileError(f"{path}: not a safetensors file (no valid header); refusing it")
        header_bytes = stream.read(length)
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{path}: not a safetensors file (its header is not JSON); refusing it") from None
    if not isinstance(header, dict) or not _tensors_fit(header, size - 8 - length):
        raise ModelFileError(f"{path}: not a safetensors file (its header does not describe its data); refusing it")


def _tensors_fit(header: dict, data_bytes: int) -> bool:
    """Whether each tensor entry of a safetensors header is well formed and inside the data."""
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            return False
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(_is_count(d, 0, 1 << 40) for d in shape)):
            return False
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o, 0, data_bytes) for o in offsets)
                and offsets[0] <= offsets[1]):
            return False
    return True


@dataclass
class LoadedModel:
    """A model ready to run: its torch network in eval mode (None when it runs on ONNX Runtime
    only), its card and folder, and, for ONNX Runtime, the session that runs it."""

    network: object | None
    card: ModelCard
    folder: Path
    runner: object | None = None  # runtime.NetworkRunner when network is None

    @property
    def backend(self) -> str:
        return "torch" if self.network is not None else self.runner.backend

    def with_postprocessing(self, **settings: float | str | None) -> LoadedModel:
        """The same model with other settings in its card's postprocessing (fat_score_offset=...,
        background_score_offset=..., label_decision=..., fat_split=...; one given as None keeps the card's)."""
        changes = {name: value for name, value in settings.items() if value is not None}
        return replace(self, card=replace(self.card, postprocessing=replace(self.card.postprocessing, **changes)))


def checked_weights(folder: Path, card: ModelCard) -> Path:
    """The model's weights file, checked: present, in the safetensors format, the card's SHA-256."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{folder}: {WEIGHTS_FILE} is missing")
    check_safetensors(weights)
    actual = sha256_of(weights)
    if actual != card.weights_sha256:
        raise ModelFileError(
            f"{weights}: SHA-256 {actual[:12]}... does not match the card's {card.weights_sha256[:12]}...; "
            "the file is corrupted or was replaced; re-import the model"
        )
    return weights


def load_model(folder: Path, device: str = "cpu", backend: str = "torch", keep_loaded: bool = False) -> LoadedModel:
    """Check and load a model folder: hash, label scheme, architecture; float32 weights on `device`.

    backend: "torch" (a torch module, what training and fine-tuning need), "onnxruntime" or
    "openvino" (the model's ONNX graph on the CPU, no torch imported) or "auto" (`runtime.choose_backend`;
    keep_loaded: the model serves many studies, a batch or Slicer)."""
    from .runtime import choose_backend

    folder = Path(folder)
    card = read_card(folder)
    weights = checked_weights(folder, card)
    chosen = choose_backend(backend, device, bool(card.graph), keep_loaded)
    if chosen != "torch":
        return LoadedModel(None, card, folder, load_graph_runner(folder, card, weights, device, chosen))
    return LoadedModel(load_torch_network(folder, card, weights).to(device).eval(), card, folder)


def load_torch_network(folder: Path, card: ModelCard, weights: Path):
    """The card's architecture as a torch module with the weights of the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{weights}: unreadable weights ({error})") from None
    try:
        network = build_network(card.architecture)
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise ModelFileError(f"{folder / CARD_FILE}: its architecture cannot be built ({str(error)[:200]})") from None
    try:
        network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as error:
        raise ModelFileError(f"{weights}: weights do not fit the card's architecture ({str(error)[:200]})") from None
    return network


def load_graph_runner(folder: Path, card: ModelCard, weights: Path, device: str, backend: str):
    """The model's graph (checked against the card's SHA-256) with its weights, ready to run on
    ONNX Runtime or OpenVINO."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from .runtime import GRAPH_FILE, onnx_runner, onnxruntime_installed, openvino_installed, openvino_runner

    if device != "cpu":
        raise ModelFileError(f"{folder}: the {backend} backend runs on the CPU here; use the torch backend for {device}")
    if not card.graph:
        raise ModelFileError(f"{folder}: this model has no ONNX graph; use the torch backend")
    if not (onnxruntime_installed() if backend == "onnxruntime" else openvino_installed()):
        extra = "onnxruntime" if backend == "onnxruntime" else "paraspinalseg[openvino] (openvino and onnx)"
        raise ModelFileError(f"{backend} is not installed: install {extra}, or use the torch backend")
    graph = folder / card.graph.get("file", GRAPH_FILE)
    if graph.parent != folder or not graph.is_file():
        raise ModelFileError(f"{folder}: the card's graph {card.graph.get('file')!r} is missing")
    if sha256_of(graph) != card.graph.get("sha256"):
        raise ModelFileError(f"{graph}: SHA-256 does not match the card's; the file is corrupted or was replaced")
    try:
        state = load_file(str(weights))
        names = list(card.graph.get("initializers", []))
        make = onnx_runner if backend == "onnxruntime" else openvino_runner
        runner = make(graph, {name: state[name] for name in names})
    except KeyError as error:
        raise ModelFileError(f"{weights}: the graph needs weight {error} which the file lacks") from None
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{weights}: unreadable weights ({error})") from None
    except Exception as error:  # the runtimes' own exception types
        raise ModelFileError(f"{graph}: {backend} cannot run this graph with these weights ({str(error)[:200]})") from None
    return runner
