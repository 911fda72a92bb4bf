"""Benchmark: a study from DICOM to grade, cold (a fresh `paraspinal segment` process) and warm (the
model loaded, as in Slicer or a batch), stage by stage, against the naive baseline.

    python bench/study_speed.py [--slices 40] [--size 512] [--repeats 3] [--model MODEL] [--backend auto]
                                [--device cpu|cuda] [--whole-study-only]

Studies: the shipped synthetic sample (12 slices of 256²) and a DICOM study of `--slices` slices of
`--size`² made from it (its slices upsampled and repeated at new positions, 4 mm apart). Cold: the
command line's wall time and peak memory, the median of `--repeats` fresh processes, and the import
time of what a segment run imports. Warm: each stage timed on its own, and the whole study as a batch
or Slicer runs it (`segment_study`, the figure for the warm goal). The naive baseline is the
same network in torch, one slice at a time, float32, autograd on; the optimised path is what the
command line runs with `--backend` (default auto: ONNX Runtime). Prints one Markdown table per study.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMPORTS = ("import ParaspinalSegLib.cli, ParaspinalSegLib.cohorts.batch, ParaspinalSegLib.read.dicom, ParaspinalSegLib.output.qc, "
           "ParaspinalSegLib.output.segnrrd, ParaspinalSegLib.measure.fat, onnxruntime, SimpleITK, safetensors.numpy, PIL.ImageDraw")


def median_time(function, repeats: int) -> float:
    """Median wall time of `function()` over `repeats` runs after one warm-up, seconds."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_process(command: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (MB) of a command run to completion. The memory comes
    from GNU time where present: a child forked from this (large) process would report this
    process's memory as its own peak."""
    timer = shutil.which("time") or "/usr/bin/time"
    measured = Path(timer).exists()
    start = time.perf_counter()
    done = subprocess.run(([timer, "-f", "%M"] if measured else []) + command, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024 if measured else math.nan


def cold_figures(study: Path, scratch: Path, repeats: int, model: str | None, backend: str,
                 device: str) -> dict[str, float]:
    """A fresh `paraspinal segment` process: median wall time and peak memory; and the import time."""
    paraspinal = str(Path(sys.executable).with_name("paraspinal"))
    runs = []
    for k in range(repeats):
        command = [paraspinal, "segment", str(study), "-o", str(scratch / f"cold{k}"), "--backend", backend,
                   "--device", device]
        runs.append(run_process(command + (["--model", model] if model else [])))
    imports = [run_process([sys.executable, "-c", IMPORTS])[0] for _ in range(repeats)]
    interpreter = [run_process([sys.executable, "-c", "pass"])[0] for _ in range(repeats)]
    return {"cold_wall": statistics.median(r[0] for r in runs), "cold_peak_mb": max(r[1] for r in runs),
            "imports": statistics.median(imports) - statistics.median(interpreter),
            "interpreter": statistics.median(interpreter)}


def warm_stages(study: Path, scratch: Path, model, repeats: int, device: str, batch_size: int = 8) -> dict[str, float]:
    """Seconds per stage of a warm run (model loaded), each stage the median of `repeats`."""
    from ParaspinalSegLib.output.export import patient_document, slices_csv_text, write_segmentations
    from ParaspinalSegLib.network.inference import class_probabilities, compartment_confidence, runner_for
    from ParaspinalSegLib.pipeline import measure_series
    from ParaspinalSegLib.network.postprocess import clean_labels
    from ParaspinalSegLib.network.preprocess import prepare_slice, restore_labels
    from ParaspinalSegLib.output.qc import write_qc_montage
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(study).series
    pre = model.card.preprocessing
    prepared = [prepare_slice(s.pixels, s.geometry, pre) for s in series.slices]
    batch = np.stack([window for window, _, _ in prepared])[:, None]
    runner = runner_for(model, device, mixed_precision=True)  # bfloat16 autocast on CUDA only
    scores = np.concatenate([runner.scores(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)])
    post = model.card.postprocessing
    probabilities = class_probabilities(scores, post)
    raw = [restore_labels(p, placement) for p, (_, placement, _) in zip(probabilities, prepared)]
    labels = [clean_labels(label) for label in raw]
    result = measure_series(series, labels, needs_fat=False, label_kind="model", model=model.card.model_id)
    out = scratch / "warm"
    out.mkdir(exist_ok=True)
    stages = {
        "read and decode DICOM": lambda: read_study(study),
        "preprocess": lambda: [prepare_slice(s.pixels, s.geometry, pre) for s in series.slices],
        "network": lambda: [runner.scores(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)],
        f"class probabilities with the card's offsets (fat/muscle {post.fat_score_offset:g}, background "
        f"{post.background_score_offset:g})": lambda: class_probabilities(scores, post),
        "labels back on the slices": lambda: [restore_labels(p, placement) for p, (_, placement, _) in
                                              zip(probabilities, prepared)],
        "confidence": lambda: [compartment_confidence(p) for p in probabilities],
        "clean labels": lambda: [clean_labels(label) for label in raw],
        "measure, fat, grade, quality": lambda: measure_series(series, labels, needs_fat=False, label_kind="model",
                                                                model=model.card.model_id),
        "slices.csv": lambda: (out / "slices.csv").write_text(slices_csv_text(result)),
        "patient.json": lambda: patient_document(result, series, []),
        ".seg.nrrd": lambda: write_segmentations(out, result, series),
        "qc.png": lambda: write_qc_montage(out / "qc.png", series, result),
    }
    return {name: median_time(stage, repeats) for name, stage in stages.items()}


def warm_end_to_end(study: Path, scratch: Path, model, repeats: int, device: str) -> float:
    """Seconds for one warm study as a batch or Slicer runs it (`segment_study`: read, segment, clean,
    measure, write every output), the median of `repeats`. It need not equal the stages' sum: the
    outputs go into a folder that is renamed when complete, and the network's speed depends on the
    work done between its batches (README, Speed)."""
    from ParaspinalSegLib.cohorts.batch import segment_study

    return median_time(lambda: segment_study(study, scratch / "end_to_end", model, device=device, overwrite=True),
                       repeats)


def baseline_network(model_folder: Path, batch: np.ndarray, repeats: int, device: str) -> float:
    """Seconds for the naive baseline: torch, one slice at a time, float32, autograd on."""
    import torch

    from ParaspinalSegLib.network.modelfile import load_model

    network = load_model(model_folder, device=device, backend="torch").network
    tensor = torch.from_numpy(batch).to(device)
    return median_time(lambda: [network(tensor[i : i + 1]).argmax(1).cpu() for i in range(len(tensor))], repeats)


def model_load_time(model_folder: Path, repeats: int, backend: str, device: str) -> float:
    from ParaspinalSegLib.network.modelfile import load_model

    return median_time(lambda: load_model(model_folder, device=device, backend=backend), repeats)


def upsampled_study(source: Path, slices: int, size: int, folder: Path) -> Path:
    """A DICOM study of `slices` slices of size² made from the source study's slices (linear
    upsampling, pixel spacing scaled to keep the field of view), 4 mm apart."""
    from scipy.ndimage import zoom

    from ParaspinalSegLib.read.reading import read_study
    from ParaspinalSegLib.slices import ImageSlice, SliceSeries
    from ParaspinalSegTrainingLib.dicom_writer import write_dicom_series
    from ParaspinalSegTrainingLib.sample import axial_geometry

    series = read_study(source).series
    made = []
    for k in range(slices):
        original = series.slices[k % len(series.slices)]
        factor = size / original.pixels.shape[0]
        pixels = np.clip(zoom(original.pixels.astype(np.float32), factor, order=1), 0, None).astype(original.pixels.dtype)
        geometry = axial_geometry(k, original.geometry.spacing[0] / factor, 4.0, pixels.shape)
        made.append(ImageSlice(pixels, geometry, k))
    write_dicom_series(SliceSeries(made, series.info), folder / "t2_tse_tra", seed=slices)
    return folder


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), platform.processor())
    features = [f for f in ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni") if f" {f}" in flags]
    return f"{name}, {len(os.sched_getaffinity(0))} cores usable, {', '.join(features) or 'no avx512_bf16/AMX/VNNI'}"


def report(name: str, slices: int, cold: dict, warm: dict, end_to_end: float, load: float, baseline: float) -> str:
    network = warm["network"]
    warm_total = sum(warm.values())
    lines = [f"### {name}: {slices} slices", "", "| stage | seconds | ms per slice |", "|---|---:|---:|"]
    lines.append(f"| cold: interpreter start | {cold['interpreter']:.2f} | |")
    lines.append(f"| cold: imports | {cold['imports']:.2f} | |")
    lines.append(f"| model load (graph and weights) | {load:.2f} | |")
    lines += [f"| warm: {stage} | {seconds:.3f} | {1000 * seconds / slices:.1f} |" for stage, seconds in warm.items()]
    lines.append(f"| warm study, the stages above summed | {warm_total:.2f} | {1000 * warm_total / slices:.1f} |")
    lines.append(f"| **warm study end to end (`segment_study`)** | **{end_to_end:.2f}** | {1000 * end_to_end / slices:.1f} |")
    lines.append(f"| **cold `paraspinal segment`, all outputs** | **{cold['cold_wall']:.2f}** | peak {cold['cold_peak_mb']:.0f} MB |")
    lines.append(f"| naive baseline network (torch, batch 1, float32, autograd) | {baseline:.2f} | "
                 f"{1000 * baseline / slices:.1f} |")
    lines.append(f"| warm study with the baseline network | {warm_total - network + baseline:.2f} | ratio "
                 f"{(warm_total - network + baseline) / warm_total:.2f}x |")
    lines.append(f"| network: baseline / optimised | | ratio {baseline / network:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegLib.network.preprocess import prepare_slice
    from ParaspinalSegLib.read.reading import read_study
    from ParaspinalSegLib.network.registry import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "openvino", "torch"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: the torch path on the GPU")
    parser.add_argument("--whole-study-only", action="store_true",
                        help="time only the whole warm study (segment_study), which every version of the "
                             "library has: to compare commits, run it with PYTHONPATH=<checkout>/ParaspinalSeg")
    args = parser.parse_args(argv)
    folder = resolve_model(args.model)
    model = load_model(folder, device=args.device, backend=args.backend)
    print(f"machine: {machine()}; model {model.card.model_id} on {model.backend}; load average "
          f"{os.getloadavg()[0]:.2f} at the start\n")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        studies = {"shipped sample (256², synthetic)": sample_folder() / "study",
                   f"{args.slices}-slice study at {args.size}²": upsampled_study(sample_folder() / "study", args.slices,
                                                                                args.size, scratch / "big")}
        for index, (name, study) in enumerate(studies.items()):
            if args.whole_study_only:
                print(f"{name}: whole warm study (segment_study), median of {args.repeats}: "
                      f"{warm_end_to_end(study, scratch, model, args.repeats, args.device):.2f} s")
                continue
            series = read_study(study).series
            batch = np.stack([prepare_slice(s.pixels, s.geometry, model.card.preprocessing)[0] for s in series.slices])[:, None]
            cold = cold_figures(study, scratch / f"cold{index}", args.repeats, args.model, args.backend, args.device)
            warm = warm_stages(study, scratch, model, args.repeats, args.device)
            end_to_end = warm_end_to_end(study, scratch, model, args.repeats, args.device)
            print(report(name, len(series), cold, warm, end_to_end,
                         model_load_time(folder, args.repeats, args.backend, args.device),
                         baseline_network(folder, batch, args.repeats, args.device)) + "\n")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
