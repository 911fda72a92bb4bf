"""Benchmark: per-slice inference and whole-study time (DICOM to grade) against a plain baseline.

    python bench/inference_speed.py [--model MODEL] [--study DICOM_FOLDER] [--device cpu|cuda] [--repeats 3]
                                    [--study-slices 40]

Optimised: the product's path (batched, inference mode, bfloat16 on CUDA). Baseline: batch of one,
float32, autograd on (no inference mode). Both on the same prepared slices; the ratio is printed.
The study defaults to the shipped synthetic sample; --slices repeats its slices to a given count
for the per-slice figure, --study-slices writes a DICOM study of that many slices (the study's
slices repeated at new positions) for the whole-study figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def timed(function, repeats: int) -> float:
    """Median wall time of `function()` over `repeats` runs after one warm-up, seconds."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def repeated_study(series, slices: int, folder: Path) -> Path:
    """A DICOM folder of `slices` axial slices: the series' slices repeated, 4 mm apart."""
    from ParaspinalSegLib.slices import ImageSlice, SliceSeries
    from ParaspinalSegTrainingLib.dicom_writer import write_dicom_series
    from ParaspinalSegTrainingLib.sample import axial_geometry

    made = []
    for k in range(slices):
        source = series.slices[k % len(series.slices)]
        geometry = axial_geometry(k, source.geometry.spacing[0], 4.0, source.pixels.shape)
        made.append(ImageSlice(source.pixels, geometry, k))
    write_dicom_series(SliceSeries(made, series.info), folder / "t2_tse_tra", seed=slices)
    return folder


def main(argv=None) -> int:
    import torch

    from ParaspinalSegLib.batch import segment_study
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.modelfile import load_model
    from ParaspinalSegLib.preprocess import prepare_slice
    from ParaspinalSegLib.reading import read_study
    from ParaspinalSegLib.registry import resolve_model
    from ParaspinalSegLib.inference import choose_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--study", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--study-slices", type=int, help="time a DICOM study of this many slices made from the study's")
    args = parser.parse_args(argv)
    device = choose_device(args.device)
    model = load_model(resolve_model(args.model), device=device)
    study = args.study or sample_folder() / "study"
    series = read_study(study).series
    windows = [prepare_slice(s.pixels, s.geometry, model.card.preprocessing)[0] for s in series.slices]
    windows = (windows * (args.slices // len(windows) + 1))[: args.slices]
    stack = torch.from_numpy(np.stack(windows)[:, None])
    network = model.network

    def baseline():
        for i in range(len(stack)):
            network(stack[i : i + 1].to(device)).argmax(1).cpu()

    def optimised():
        use_bf16 = device.startswith("cuda")
        with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            for start in range(0, len(stack), args.batch_size):
                network(stack[start : start + args.batch_size].to(device)).argmax(1).cpu()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    base = timed(baseline, args.repeats) / len(stack)
    fast = timed(optimised, args.repeats) / len(stack)
    print(f"model {model.card.model_id}, device {device}, {len(stack)} slices of {stack.shape[-1]}x{stack.shape[-1]}")
    print(f"per slice: baseline {1000 * base:.1f} ms, optimised {1000 * fast:.1f} ms, ratio {base / fast:.2f}x")
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        if args.study_slices:
            study = repeated_study(series, args.study_slices, Path(scratch) / "study")
            series = read_study(study).series
        counter = iter(range(1000))
        whole = timed(lambda: segment_study(study, Path(scratch) / "out" / str(next(counter)), model, device=device,
                                            batch_size=args.batch_size), args.repeats)
    print(f"whole study ({len(series)} slices, DICOM to grade, outputs written): {whole:.2f} s "
          f"= {1000 * whole / len(series):.0f} ms per slice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
