"""Cohort throughput on this machine: studies per minute of `paraspinal segment --batch`, serial
against `--engine dask` with 1 and 2 local workers, and the engine's overhead.

    .venv/bin/python bench/cohort_throughput.py [--studies 12] [--repeats 2] [--model ID] [--backend auto]

The batch is N copies of the shipped sample study (12 DICOM slices, L1-S1, 256x256 pixels) or of
the study given with --study (bench/study_speed.py makes a 40-slice 512x512 one), each
run as a user runs it: a fresh `paraspinal` process, timed from its start to its end (Python
start, model load, cluster start and stop included). Each configuration runs `--repeats` times,
in turn, and the fastest run counts. The load averages before and after are printed: measure on a
quiet machine. Needs the extra paraspinalseg[cluster]. Writes only to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "Resources" / "Sample" / "study"
PARASPINAL = Path(sys.executable).with_name("paraspinal")
CONFIGURATIONS = {"serial": [], "dask, 1 worker": ["--engine", "dask", "--workers", "1"],
                  "dask, 2 workers": ["--engine", "dask", "--workers", "2"]}


def make_batch(folder: Path, studies: int, source: Path = SAMPLE) -> Path:
    for k in range(studies):
        shutil.copytree(source, folder / f"study-{k:03d}")
    return folder


def run_batch(batch: Path, out: Path, options: list[str], model: str | None, backend: str) -> float:
    """Seconds of one whole `paraspinal segment --batch` process."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(PARASPINAL), "-q", "segment", str(batch), "--batch", "-o", str(out), "--device", "cpu",
               "--backend", backend, *options] + (["--model", model] if model else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", help="model id or folder (default: the active model)")
    parser.add_argument("--backend", default="auto", help="--backend of paraspinal segment (default auto)")
    parser.add_argument("--study", type=Path, default=SAMPLE, help="the study to copy (default: the shipped sample)")
    parser.add_argument("--serial-only", action="store_true", help="time the serial run only (no Dask needed)")
    args = parser.parse_args()
    configurations = {"serial": []} if args.serial_only else CONFIGURATIONS
    load_before = os.getloadavg()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cohort-bench-") as scratch:
        batch = make_batch(Path(scratch) / "studies", args.studies, args.study)
        for _ in range(args.repeats):
            for name, options in configurations.items():
                seconds = run_batch(batch, Path(scratch) / "out", options, args.model, args.backend)
                best[name] = min(best.get(name, seconds), seconds)
    serial = best["serial"]
    what = "the sample study (12 axial T2 slices and 3 localizer images)" if args.study == SAMPLE else str(args.study)
    print(f"{args.studies} copies of {what}, backend {args.backend}, "
          f"{os.cpu_count()} CPU cores; best of {args.repeats}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}\n")
    print("| run | seconds | studies/min | seconds/study | against serial |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.1f} | {60 * args.studies / seconds:.1f} | {seconds / args.studies:.2f} | "
              f"{100 * (seconds / serial - 1):+.0f} % |")


if __name__ == "__main__":
    main()
