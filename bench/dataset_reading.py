"""Benchmark: reading a training data set into network windows, in one process and in worker processes.

    python bench/dataset_reading.py [--cases 40] [--workers 2] [--rounds 2] [--data DATASET]

Synthesises `--cases` patients of stage 22's training domain (or reads `--data`), then times
`prepare_dataset` (what `paraspinal train` does before its first epoch) in one process, in `--workers`
processes whose numeric libraries start a thread per core (as before the workers were made
single-threaded), and in `--workers` single-threaded processes (what training does), `--rounds` times
each in turn. Prints a Markdown table. Writes only to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTHESIS = ROOT / "Resources" / "Recipes" / "paraspinalseg-unet-r18-2.18.0" / "synth.json"


def timed_reading(cases, preprocessing, workers: int, one_thread: bool) -> tuple[float, int]:
    """Seconds to read the cases into windows, and the number of slices read."""
    from ParaspinalSegTrainingLib import workers as pool
    from ParaspinalSegTrainingLib.datasets import prepare_dataset

    saved, pool.ONE_THREAD = pool.ONE_THREAD, pool.ONE_THREAD if one_thread else {}
    try:
        start = time.perf_counter()
        slices = len(prepare_dataset(cases, preprocessing, workers=workers))
        return time.perf_counter() - start, slices
    finally:
        pool.ONE_THREAD = saved


def main(argv=None) -> int:
    from ParaspinalSegLib.network.model import Preprocessing
    from ParaspinalSegTrainingLib.commands import synthesis_settings
    from ParaspinalSegTrainingLib.datasets import find_cases
    from ParaspinalSegTrainingLib.synthesis import write_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, help="a data set folder to read instead of synthesising one")
    args = parser.parse_args(argv)
    preprocessing = Preprocessing(pixel_spacing_mm=1.4, input_size=224)  # the shipped model's grid
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or write_dataset(Path(scratch) / "data", args.cases, synthesis_settings(SYNTHESIS),
                                          workers=args.workers)
        cases = find_cases(data)
        ways = {"one process": (0, True), f"{args.workers} workers, a thread per core": (args.workers, False),
                f"{args.workers} workers, one thread each (training's)": (args.workers, True)}
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, (workers, one_thread) in ways.items():
                seconds, slices = timed_reading(cases, preprocessing, workers, one_thread)
                times[name].append(seconds)
    print(f"{len(cases)} cases, {slices} slices, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| reading | seconds, each round |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
