"""Benchmark: the inference backends side by side in one run: time, peak memory, Dice change.

    python bench/backends.py [--model MODEL] [--slices 40] [--repeats 3] [--real] [--only NAME ...]

Each backend runs in its own process (so that its peak memory is its own) on the same 40 network
windows of the shipped sample, batches of 8, after one warm-up. Dice: the compartment Dice of the
whole pipeline with that backend against the sample's truth and, with --real and ../shared present,
against the labels of the visible real cases; the change is against torch float32. A backend that
cannot run here (a package missing, a compiler failing) is listed with the reason.

Backends: torch float32, torch bfloat16 (autocast), torch channels_last, torch.export + AOTInductor,
ONNX Runtime float32 (the product's CPU path), ONNX Runtime int8 (static, QDQ, per channel,
calibrated on synthetic training-style slices, not on the sample or the real cases), OpenVINO
float32 and OpenVINO with its bfloat16 hint (openvino is not a dependency: pip install openvino).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKENDS = ("torch-fp32", "torch-bf16", "torch-channels-last", "torch-aotinductor", "onnxruntime-fp32",
            "onnxruntime-int8", "openvino-fp32", "openvino-bf16")
CALIBRATION_SEED = 4242  # synthetic slices for int8 calibration: none of the sample's or the held-out draws


@dataclass
class ArrayRunner:
    """A NetworkRunner over any function from a float32 batch to class scores."""

    function: object
    backend: str

    def scores(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)


def torch_runner(network, name: str) -> ArrayRunner:
    import torch

    if name == "torch-channels-last":
        network = network.to(memory_format=torch.channels_last)
    bf16 = name == "torch-bf16"

    def run(batch):
        tensor = torch.from_numpy(batch)
        if name == "torch-channels-last":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return network(tensor).float().numpy()

    return ArrayRunner(run, name)


def aotinductor_runner(network, size: int, scratch: Path) -> ArrayRunner:
    import torch

    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(network, (torch.zeros(8, 1, size, size),), dynamic_shapes=({0: batch},))
    package = torch._inductor.aoti_compile_and_package(exported, package_path=str(scratch / "model.pt2"))
    compiled = torch._inductor.aoti_load_package(package)

    def run(batch):
        with torch.inference_mode():
            return compiled(torch.from_numpy(batch)).numpy()

    return ArrayRunner(run, "torch-aotinductor")


def full_onnx(network, size: int, path: Path) -> Path:
    """The network as a self-contained ONNX file (weights inside, batch normalisation folded)."""
    import torch

    torch.onnx.export(network, (torch.zeros(2, 1, size, size),), str(path), dynamo=False, input_names=["image"],
                      output_names=["scores"], opset_version=18, dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}})
    return path


def calibration_windows(model, count: int = 24) -> np.ndarray:
    """Network windows of synthetic training-style patients other than the sample's (cases 100 on,
    seed CALIBRATION_SEED)."""
    from ParaspinalSegLib.network.preprocess import prepare_slice
    from ParaspinalSegTrainingLib.sample import SIGNAL_SCALE, axial_geometry, sample_settings
    from ParaspinalSegTrainingLib.synthesis import synth_case

    windows = []
    case_id = 100
    while len(windows) < count:
        case = synth_case(case_id, sample_settings(CALIBRATION_SEED + case_id))
        pixel_mm, gap_mm = case.patient.pixel_spacing_mm, case.patient.slice_spacing_mm
        windows += [prepare_slice(s.image * SIGNAL_SCALE, axial_geometry(k, pixel_mm, gap_mm, s.image.shape),
                                  model.card.preprocessing)[0] for k, s in enumerate(case.slices)]
        case_id += 1
    return np.stack(windows[:count])[:, None]


def int8_runner(model, network, scratch: Path) -> ArrayRunner:
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    size = model.card.preprocessing.input_size
    full_onnx(network, size, scratch / "full.onnx")
    quant_pre_process(str(scratch / "full.onnx"), str(scratch / "pre.onnx"))
    windows = calibration_windows(model)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": windows[i : i + 1]} for i in range(len(windows))])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(scratch / "pre.onnx"), str(scratch / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = onnxruntime.InferenceSession(str(scratch / "int8.onnx"), options, providers=["CPUExecutionProvider"])
    return ArrayRunner(lambda batch: session.run(None, {"image": batch})[0], "onnxruntime-int8")


def openvino_runner(network, size: int, scratch: Path, bf16: bool) -> ArrayRunner:
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(str(full_onnx(network, size, scratch / "full.onnx")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
    return ArrayRunner(lambda batch: compiled(batch)[0], "openvino-bf16" if bf16 else "openvino-fp32")


def make_runner(name: str, folder: Path, scratch: Path):
    from ParaspinalSegLib.network.modelfile import load_model

    if name == "onnxruntime-fp32":
        return load_model(folder, backend="onnxruntime")
    model = load_model(folder, backend="torch")
    network, size = model.network, model.card.preprocessing.input_size
    if name.startswith("torch-") and name != "torch-aotinductor":
        runner = torch_runner(network, name)
    elif name == "torch-aotinductor":
        runner = aotinductor_runner(network, size, scratch)
    elif name == "onnxruntime-int8":
        runner = int8_runner(model, network, scratch)
    else:
        runner = openvino_runner(network, size, scratch, bf16=name.endswith("bf16"))
    return type(model)(None, model.card, model.folder, runner)


def measure_one(name: str, folder: Path, slices: int, repeats: int, real: bool) -> dict:
    """One backend's figures (run in a process of its own)."""
    import resource

    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.network.preprocess import prepare_slice
    from ParaspinalSegLib.read.reading import read_study
    from ParaspinalSegTrainingLib.release import sample_dice

    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        model = make_runner(name, folder, Path(scratch))
        prepare = time.perf_counter() - start
        series = read_study(sample_folder() / "study").series
        windows = [prepare_slice(s.pixels, s.geometry, model.card.preprocessing)[0] for s in series.slices]
        batch = np.stack((windows * (slices // len(windows) + 1))[:slices])[:, None]

        def network():
            for i in range(0, len(batch), 8):
                model.runner.scores(batch[i : i + 8])

        network()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            network()
            times.append(time.perf_counter() - start)
        figures = {"backend": name, "ms_per_slice": 1000 * statistics.median(times) / slices,
                   "setup_s": prepare, "sample_dice": sample_dice(model)}
        if real:
            figures["real_dice"] = real_dice(model)
        figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def real_dice(model) -> float | None:
    """Mean compartment Dice over the visible real cases' slices (None without ../shared)."""
    from ParaspinalSegTrainingLib.real_validation import validate_real

    shared = Path(__file__).resolve().parents[1].parent / "shared"
    if not (shared / "data" / "real").is_dir():
        return None
    cases = validate_real(model, shared)
    return float(np.mean([case.dice for case in cases]))


def table(rows: list[dict]) -> str:
    reference = next((r for r in rows if r.get("backend") == "torch-fp32" and "error" not in r), None)
    lines = ["| backend | ms per slice | speed-up | peak MB | sample Dice | change | real Dice | change |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['backend']} | not run here: {r['error']} | | | | | | |")
            continue
        speed = f"{reference['ms_per_slice'] / r['ms_per_slice']:.2f}x" if reference else ""
        change = f"{r['sample_dice'] - reference['sample_dice']:+.4f}" if reference else ""
        real = f"{r['real_dice']:.4f}" if r.get("real_dice") is not None else "–"
        real_change = (f"{r['real_dice'] - reference['real_dice']:+.4f}"
                       if reference and r.get("real_dice") is not None and reference.get("real_dice") is not None else "–")
        lines.append(f"| {r['backend']} | {r['ms_per_slice']:.1f} | {speed} | {r['peak_mb']:.0f} | "
                     f"{r['sample_dice']:.4f} | {change} | {real} | {real_change} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real", action="store_true", help="also the Dice on the visible real cases (../shared)")
    parser.add_argument("--only", nargs="+", choices=BACKENDS, help="these backends only")
    parser.add_argument("--one", choices=BACKENDS, help=argparse.SUPPRESS)  # internal: one backend, JSON out
    args = parser.parse_args(argv)
    from ParaspinalSegLib.network.registry import resolve_model

    folder = resolve_model(args.model)
    if args.one:
        print(json.dumps(measure_one(args.one, folder, args.slices, args.repeats, args.real)))
        return 0
    rows = []
    for name in args.only or BACKENDS:
        command = [sys.executable, __file__, "--one", name, "--slices", str(args.slices), "--repeats", str(args.repeats)]
        command += (["--model", args.model] if args.model else []) + (["--real"] if args.real else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            reason = (done.stderr.strip().splitlines() or ["failed"])[-1][:120].replace("|", "/")
            rows.append({"backend": name, "error": reason})
        print(f"{name}: done", file=sys.stderr)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.slices} windows of the shipped sample, batches of 8\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
