"""Benchmark: per-slice inference and whole-study time (DICOM to grade) against a plain baseline.

    python bench/inference_speed.py [--model MODEL] [--study DICOM_FOLDER] [--device cpu|cuda] [--repeats 3]

Optimised: the product's path (batched, inference mode, bfloat16 on CUDA). Baseline: batch of one,
float32, autograd on (no inference mode). Both on the same prepared slices; the ratio is printed.
The study defaults to the shipped synthetic sample; --slices repeats its slices to a given count.
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
        counter = iter(range(1000))
        whole = timed(lambda: segment_study(study, Path(scratch) / str(next(counter)), model, device=device,
                                            batch_size=args.batch_size), args.repeats)
    print(f"whole study ({len(series)} slices, DICOM to grade, outputs written): {whole:.2f} s "
          f"= {1000 * whole / len(series):.0f} ms per slice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
