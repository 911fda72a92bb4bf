"""Running a model's network on batches of windows: ONNX Runtime or OpenVINO on the model's graph, or torch.

ONNX Runtime needs no torch (importing torch and segmentation-models-pytorch takes about 5 s on a
2-core CPU, ONNX Runtime 0.15 s). The graph file (`model.onnx`, about 50 kB) holds the operators
only; its weights are the model's own safetensors file, read with numpy and handed to the session
as it starts, so that both backends run the very same weights and nothing is stored twice.

OpenVINO (the optional extra `paraspinalseg[openvino]`) runs the same graph in bfloat16 where the
CPU has it natively (AMX or AVX-512 BF16), float32 elsewhere: once started, five times faster than
ONNX Runtime on a CPU with AMX and twice as fast on the AMD EPYC with AVX-512 BF16 only, but its
import and compilation take what it saves on one study.

Which backend runs where: `auto` is ONNX Runtime on the CPU when the model has a graph and
onnxruntime is installed, torch otherwise (GPU, Apple MPS, models without a graph); for a model
kept loaded (a batch, Slicer) `auto` is OpenVINO when it is installed. The README's speed section
gives the measurements.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = ("auto", "onnxruntime", "openvino", "torch")
GRAPH_FILE = "model.onnx"
GRAPH_INPUT = "image"


class NetworkRunner(Protocol):
    """Class scores (batch, classes, size, size) of a float32 batch of windows (batch, 1, size, size)."""

    backend: str

    def scores(self, batch: np.ndarray) -> np.ndarray: ...


def cpu_threads() -> int:
    """The cores this process may use (its CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("onnx") is not None


def choose_backend(requested: str, device: str, has_graph: bool, keep_loaded: bool = False) -> str:
    """The backend that runs the network: `auto` picks ONNX Runtime on the CPU for a model with a
    graph, or OpenVINO where it is installed when the model is kept loaded (a batch, Slicer): its
    faster network pays for its slower start there."""
    if requested not in BACKENDS:
        raise ValueError(f"backend {requested!r}: choose one of {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested
    if device != "cpu" or not has_graph:
        return "torch"
    if keep_loaded and openvino_installed():
        return "openvino"
    return "onnxruntime" if onnxruntime_installed() else "torch"


@dataclass
class OnnxRunner:
    """An ONNX Runtime session of the model's graph with the model's weights (kept alive here: the
    session reads them in place)."""

    session: object
    weights: list
    backend: str = "onnxruntime"

    def scores(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {GRAPH_INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]


@dataclass
class TorchRunner:
    """A torch module in eval mode on a device; bfloat16 autocast on CUDA when mixed_precision."""

    network: object
    device: str = "cpu"
    mixed_precision: bool = True
    backend: str = "torch"

    def scores(self, batch: np.ndarray) -> np.ndarray:
        import torch

        use_bf16 = self.mixed_precision and self.device.startswith("cuda")
        autocast = torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16)
        with torch.inference_mode(), autocast:
            tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.network(tensor).float().cpu().numpy()


def onnx_runner(graph: Path, weights: dict[str, np.ndarray], threads: int | None = None) -> OnnxRunner:
    """An ONNX Runtime CPU session of `graph` whose initializers (exactly the names of `weights`, as
    the card's graph entry lists them) are the given float32 arrays."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    names = list(weights)
    values = [onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(weights[n], dtype=np.float32)) for n in names]
    options.add_external_initializers(names, values)
    return OnnxRunner(onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"]), values)


@dataclass
class OpenVinoRunner:
    """An OpenVINO model compiled for the CPU at `precision` (bf16 or f32)."""

    compiled: object
    precision: str

    @property
    def backend(self) -> str:
        return f"openvino-{self.precision}"

    def scores(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(np.ascontiguousarray(batch, dtype=np.float32))[0], dtype=np.float32)


def openvino_runner(graph: Path, weights: dict[str, np.ndarray], threads: int | None = None) -> OpenVinoRunner:
    """The graph with its weights filled in (float32), compiled by OpenVINO for this CPU at OpenVINO's
    own default precision for it: bfloat16 where the CPU has it natively (AMX or AVX-512 BF16), float32
    otherwise."""
    import onnx
    import openvino
    from onnx import numpy_helper

    model = onnx.load(str(graph), load_external_data=False)
    for initializer in model.graph.initializer:
        initializer.CopyFrom(numpy_helper.from_array(np.asarray(weights[initializer.name], dtype=np.float32),
                                                     initializer.name))
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(model=model.SerializeToString()), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads or cpu_threads()})
    return OpenVinoRunner(compiled, compiled.get_property("INFERENCE_PRECISION_HINT").to_string())
