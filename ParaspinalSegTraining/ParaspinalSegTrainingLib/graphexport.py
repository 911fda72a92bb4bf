"""Exporting a model's network as an ONNX graph without weights, for ONNX Runtime (no torch at run time).

The graph is exported with torch's TorchScript exporter, batch size dynamic, batch normalisation
kept as it is (no constant folding), so that every weight of the graph is a tensor of the model's
safetensors file under its own name. The weights are then taken out of the graph (it keeps only
placeholders) and the card lists the names to fill in and the graph's SHA-256. ONNX Runtime folds
the batch normalisation into the convolutions itself when the session starts.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.network.modelfile import CARD_FILE, ModelCard, load_model, read_card, sha256_of
from ParaspinalSegLib.output.outputs import move_into_place, write_text_atomic
from ParaspinalSegLib.network.runtime import GRAPH_FILE, GRAPH_INPUT

OPSET = 18
AGREEMENT = 1e-3  # largest score difference allowed between torch and ONNX Runtime on a test batch


def exported_graph(network, size: int):
    """The network as an ONNX model (onnx.ModelProto) whose initializers still hold their data."""
    import io

    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and the only one that keeps
        warnings.simplefilter("ignore", DeprecationWarning)  # the weights' own names (no folding)
        torch.onnx.export(network.cpu().eval(), (torch.zeros(2, 1, size, size),), buffer, dynamo=False,
                          input_names=[GRAPH_INPUT], output_names=["scores"], opset_version=OPSET,
                          do_constant_folding=False, dynamic_axes={GRAPH_INPUT: {0: "batch"}, "scores": {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


def strip_weights(graph, state: dict) -> list[str]:
    """Replace the graph's initializers by placeholders; their names, each a tensor of `state`."""
    from onnx import TensorProto

    names = []
    for initializer in graph.graph.initializer:
        if initializer.name not in state:
            raise ValueError(f"graph initializer {initializer.name!r} is not a weight of the model")
        names.append(initializer.name)
        initializer.ClearField("raw_data")
        initializer.ClearField("float_data")
        initializer.data_location = TensorProto.EXTERNAL
        del initializer.external_data[:]
        entry = initializer.external_data.add()
        entry.key, entry.value = "location", "model.safetensors"  # filled in from there when the session starts
    return names


def check_agreement(folder: Path, network, size: int) -> float:
    """Largest difference between the torch and the ONNX Runtime scores of a random batch."""
    import torch

    batch = np.random.default_rng(0).normal(size=(3, 1, size, size)).astype(np.float32)
    with torch.inference_mode():
        expected = network(torch.from_numpy(batch)).numpy()
    actual = load_model(folder, backend="onnxruntime").runner.scores(batch)
    return float(np.abs(expected - actual).max())


def add_graph(folder: Path) -> ModelCard:
    """Write `model.onnx` beside a model's weights and record it in the card (the weights are not
    touched). Refused when the model already has a graph; nothing is left behind when it fails."""
    folder = Path(folder)
    card = read_card(folder)
    if card.graph or (folder / GRAPH_FILE).exists():
        raise InputError(f"{folder}: the model already has an ONNX graph; graphs are never replaced")
    model = load_model(folder)
    state = model.network.state_dict()
    graph = exported_graph(model.network, card.preprocessing.input_size)
    names = strip_weights(graph, state)
    handle, temporary = tempfile.mkstemp(prefix=".graph.", dir=folder)
    os.close(handle)
    card_before = (folder / CARD_FILE).read_text(encoding="utf-8")
    try:
        Path(temporary).write_bytes(graph.SerializeToString())
        move_into_place(temporary, folder / GRAPH_FILE, replace=False)
        import torch

        entry = {"file": GRAPH_FILE, "sha256": sha256_of(folder / GRAPH_FILE), "opset": OPSET,
                 "exporter": f"torch {torch.__version__.split('+')[0]} TorchScript exporter, batch normalisation kept",
                 "weights": "the initializers are the tensors of model.safetensors with these names, as float32",
                 "initializers": names}
        updated = ModelCard.from_dict({**card.to_dict(), "graph": entry})
        write_text_atomic(folder / CARD_FILE, json.dumps(updated.to_dict(), indent=2) + "\n")
        difference = check_agreement(folder, model.network, card.preprocessing.input_size)
        if difference > AGREEMENT:
            raise InputError(f"{folder}: the ONNX graph's scores differ from torch's by {difference:.2g}")
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        (folder / GRAPH_FILE).unlink(missing_ok=True)
        write_text_atomic(folder / CARD_FILE, card_before)
        raise
    return updated


def save_model_with_graph(out: Path, network, card: ModelCard) -> ModelCard:
    """Write a new model folder `out`: float16 weights, card and ONNX graph, all or nothing (made in a
    hidden sibling folder and renamed into place, so that a failure leaves no half-made model)."""
    import shutil

    from ParaspinalSegLib.network.modelfile import save_model

    if out.exists():
        raise InputError(f"{out}: already exists; choose a new folder")
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        save_model(staging, network, card, half_precision=True)
        saved = add_graph(staging)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return saved
