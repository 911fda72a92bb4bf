"""The cohort part of the command line: `segment --batch` (shards, resume, engine) and `summary`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ParaspinalError
from ..paths import display_name

ENGINES = ("serial", "dask")


def add_batch_options(segment: argparse.ArgumentParser) -> None:
    """--num-parts/--part-id (Slurm arrays), --engine/--workers/--scheduler, on `segment`."""
    from ..cli import positive_int

    group = segment.add_argument_group("cohorts (with --batch)")
    group.add_argument("--num-parts", type=positive_int, metavar="N",
                       help="split the batch into N parts (default: SLURM_ARRAY_TASK_COUNT in a Slurm array job, else 1)")
    group.add_argument("--part-id", type=int, metavar="K",
                       help="run part K, 0 to N-1 (default: SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN, else 0)")
    group.add_argument("--engine", choices=ENGINES, default="serial",
                       help="serial: the studies one after the other here (default); dask: on Dask workers, each "
                            "with the model loaded once (needs the extra paraspinalseg[cluster])")
    group.add_argument("--workers", type=positive_int,
                       help="--engine dask on this machine: worker processes (default: one per GPU with cuda, else 1)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="--engine dask: the address of a running Dask scheduler (tcp://host:8786) to use its "
                            "workers instead of starting them here")


def add_summary_command(commands) -> None:
    summary = commands.add_parser("summary", help="merge the results folders of a batch's parts into one cohort "
                                                  "table and QC report")
    summary.add_argument("results", nargs="+", help="results folders of `segment --batch` (one per part, or one shared)")
    expected = summary.add_mutually_exclusive_group()
    expected.add_argument("--studies", metavar="FOLDER", help="the batch folder: every study in it is expected")
    expected.add_argument("--expected", metavar="FILE", help="a list of the expected studies, one name per line")
    summary.add_argument("-o", "--output", default="paraspinal-cohort", help="output folder (default: %(default)s)")
    summary.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    summary.set_defaults(run=command_summary, input_paths=("results", "studies", "expected"), output_paths=("output",))


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """SIGTERM (Slurm's time limit, scancel) ends a batch as Ctrl-C does: the summary is written."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def batch_model(args: argparse.Namespace):
    """(model, device, engine) for a batch: the model loaded here for a serial run; for Dask only its
    card, the workers load it."""
    from ..cli import available_device
    from ..network.modelfile import LoadedModel, load_model, read_card
    from ..network.registry import resolve_model

    folder = resolve_model(args.model)
    if args.engine == "serial":
        if args.workers or args.scheduler:
            raise ParaspinalError("--workers and --scheduler go with --engine dask")
        device = available_device(args.device)
        return load_model(folder, device=device, backend=args.backend, keep_loaded=True), device, None
    from .engine import DaskEngine, default_workers, import_distributed

    import_distributed()
    device = args.device if args.scheduler else available_device(args.device)
    workers = args.workers or default_workers(device)
    return LoadedModel(None, read_card(folder), folder), device, DaskEngine(workers, args.scheduler, args.backend)


def outcome_text(outcome, percent, caution) -> str:
    figures = outcome.figures
    if figures is None:
        return f"{outcome.status.upper()}: {outcome.error}"
    kept = " (kept: complete from an earlier run)" if outcome.status == "kept" else ""
    return f"grade {figures.grade}, {percent(figures.mean_fat_fraction_pct)}{caution(figures.warnings)}{kept}"


def command_batch(args: argparse.Namespace, progress) -> int:
    """`segment STUDIES --batch`: one part of the batch, serially or on Dask; the studies listed at
    the end (stdout), one log line per study as it ends on stderr when no progress bar is shown."""
    from . import eta
    from .batch import BatchInterrupted, segment_folder
    from ..cli import EXIT_CANCELLED, _percent
    from ..measure.quality import grade_caution
    from .sharding import choose_shard

    shard = choose_shard(args.num_parts, args.part_id)
    model, device, engine = batch_model(args)
    study_log = logging.getLogger(eta.__name__)
    level = study_log.level
    if not progress.enabled and not args.quiet:
        study_log.setLevel(logging.INFO)
    try:
        with termination_as_interrupt():
            outcomes = segment_folder(Path(args.input), Path(args.output), model, fat_method=args.fat_method,
                                      device=device, batch_size=args.batch_size, overwrite=args.overwrite,
                                      progress=progress, mirror=args.mirror, shard=shard, engine=engine,
                                      dicom=args.dicom)
    except BatchInterrupted as stop:
        progress.close()
        done = sum(o.status in ("ok", "kept") for o in stop.outcomes)
        print(f"interrupted; the {done} studies finished before are kept in {args.output}, the others were "
              f"not run; {stop.summary} lists each", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        study_log.setLevel(level)
    progress.close()

    def caution(warnings) -> str:
        text = grade_caution(warnings)
        return f"  ({text})" if text else ""

    for o in outcomes:
        renamed = f" -> {o.output.name}/" if o.output and o.output.name != o.study.name else ""
        print(f"{display_name(o.study.name)}: {display_name(outcome_text(o, _percent, caution))}{renamed}")
    part = f" ({shard.describe()}, {len(outcomes)} studies)" if not shard.whole else ""
    print(f"summary: {Path(args.output) / shard.summary_name()}{part}")
    return 0 if all(o.status in ("ok", "kept") for o in outcomes) else 1


def expected_studies(args: argparse.Namespace) -> list[str] | None:
    from .batch import studies_in
    from .cohort import read_expected

    if args.studies:
        return [study.name for study in studies_in(Path(args.studies))]
    return read_expected(Path(args.expected)) if args.expected else None


def command_summary(args: argparse.Namespace, progress) -> int:
    """Merge results folders; write studies.csv, slices.csv and report.md; exit 1 if any study
    failed or is missing."""
    from .cohort import FAILED, MISSING, OK, merge_results, slices_csv, studies_csv
    from .cohort_report import cohort_report
    from ..output.outputs import output_folder, write_text_atomic

    cohort = merge_results([Path(r) for r in args.results], expected_studies(args))
    out = Path(args.output)
    with output_folder(out, args.overwrite) as staging:
        write_text_atomic(staging / "studies.csv", studies_csv(cohort))
        write_text_atomic(staging / "slices.csv", slices_csv(cohort))
        write_text_atomic(staging / "report.md", cohort_report(cohort, out.resolve()))
    print(f"{len(cohort.studies)} studies: {cohort.count(OK)} done, {cohort.count(FAILED)} failed, "
          f"{cohort.count(MISSING)} missing")
    print(f"outputs: {out}/ (studies.csv, slices.csv, report.md)")
    return 0 if cohort.count(OK) == len(cohort.studies) else 1
