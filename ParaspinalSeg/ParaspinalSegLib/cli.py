"""The `paraspinal` command line: list series, measure a segmentation, run the demo.

`main(argv)` returns an exit code and never calls sys.exit, so it runs in-process from tests and
from Slicer's console. Library errors become one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import OperationCancelled, ParaspinalError
from .measure.fat import FatMethod, FatSettings
from .cohorts.cli_cohort import add_batch_options, add_summary_command
from .labels import LabelKind
from .paths import check_input_kind, check_separate, check_utf8, display_name

log = logging.getLogger(__name__)

EXIT_ERROR = 2
EXIT_INTERNAL = 3
EXIT_CANCELLED = 130
DEVICES = ("auto", "cpu", "cuda", "mps")
BACKENDS = ("auto", "onnxruntime", "openvino", "torch")  # runtime.BACKENDS, kept here so that --help imports nothing heavy


class ProgressBar:
    """A tqdm bar on stderr driven by the libraries' (fraction, message) progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=1000, file=sys.stderr, leave=False, bar_format="{l_bar}{bar}| {elapsed}")
        self.bar.set_description_str(message[:70])
        self.bar.n = int(round(1000 * min(max(fraction, 0.0), 1.0)))
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} %"


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give 1 or more")
    return value


def available_device(requested: str) -> str:
    """The torch device for --device; InputError when the one asked for is not on this machine."""
    from .network.inference import choose_device

    if requested in ("cuda", "mps"):
        import torch

        if requested == "cuda" and not torch.cuda.is_available():
            raise ParaspinalError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
        if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ParaspinalError("--device mps: Apple's Metal (MPS) is not available here; use --device cpu or auto")
    return choose_device(requested)


def add_device_option(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--device", choices=DEVICES, default=default,
                        help="auto (CUDA, MPS, CPU), cpu, cuda or mps; refused if not available here")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the network: auto (ONNX Runtime on the CPU when the model has a graph, "
                             "torch otherwise), onnxruntime, openvino (extra paraspinalseg[openvino]: bfloat16 "
                             "where the CPU has it; fastest once started, for batches) or torch")


def _given_paths(args: argparse.Namespace, names: Sequence[str]) -> list[Path]:
    values = [getattr(args, name, None) for name in names]
    flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
    return [Path(v) for v in flat if v]


def check_paths(args: argparse.Namespace) -> None:
    """Before anything runs: inputs are files or folders (never a pipe), every path is valid UTF-8,
    and no output is, lies inside or contains an input."""
    inputs = _given_paths(args, getattr(args, "input_paths", ()))
    for path in inputs:
        check_utf8(path)
        check_input_kind(path)
    existing = [path for path in inputs if path.exists()]
    for output in _given_paths(args, getattr(args, "output_paths", ())):
        check_utf8(output)
        check_separate(output, existing)


def command_series(args: argparse.Namespace, progress: ProgressBar) -> int:
    from .read.dicom import list_series
    from .read.series_selection import choose_series, format_series_table
    from .read.volumes import is_volume_file

    if is_volume_file(Path(args.input)):
        from .read.reading import read_study

        print(f"chosen: {read_study(Path(args.input)).reason}")
        return 0
    summaries = list_series(Path(args.input), progress=progress)
    progress.close()
    try:
        choice = choose_series(summaries, series_uid=args.series)
    except ParaspinalError:
        print("\n".join(format_series_table(summaries, None)))
        raise
    print("\n".join(format_series_table(summaries, choice)))
    print(f"\nchosen: {choice.reason}")
    return 0


def measure_to_folder(args: argparse.Namespace, progress: ProgressBar):
    """Read image and segmentation, measure, write the outputs; returns (result, out folder)."""
    from .output.export import write_result
    from .pipeline import measure_series
    from .read.reading import read_study
    from .read.segmentation import load_segmentation

    dicom = getattr(args, "dicom", False)
    if dicom:
        from .output.dicomexport import check_dicom_input

        check_dicom_input(Path(args.image))
    study = read_study(Path(args.image), series_uid=args.series, progress=progress)
    log.info("series: %s", study.reason)
    if dicom:
        from .output.dicomexport import check_dicom_export

        check_dicom_export(study.series)
    segmentation = load_segmentation([Path(p) for p in args.segmentation], study.series, LabelKind(args.labels))
    if args.fat_method == "cnn":
        raise ParaspinalError("--fat-method cnn needs a model's fat class; `measure` takes gmm or otsu")
    settings = FatSettings(method=FatMethod(args.fat_method or FatMethod.GMM.value), n4=args.n4)
    result = measure_series(
        study.series,
        segmentation.labels,
        needs_fat=segmentation.needs_fat,
        fat_settings=settings,
        label_kind=segmentation.kind.value,
        warnings=segmentation.warnings,
        progress=progress,
    )
    out = write_result(Path(args.output), result, study.series, segmentation.sources, overwrite=args.overwrite,
                       dicom=dicom)
    progress.close()
    return study, result, out


def print_summary(study, result, out: Path) -> None:
    print(f"series:  {study.reason}")
    print_result(result, out)


def _caution(result) -> str:
    """What follows the grade: nothing, or "  (check the N warning(s): ...)" (quality.grade_caution)."""
    from .measure.quality import grade_caution

    caution = grade_caution(result.warnings)
    return f"  ({caution})" if caution else ""


def print_result(result, out: Path) -> None:
    s = result.summary
    print(f"method:  {result.provenance.method}")
    print(f"slices with compartment: {s.slices} (right {s.slices_right}, left {s.slices_left})")
    print(
        f"mean fat fraction: {_percent(s.mean_fat_fraction_pct)} "
        f"(right {_percent(s.mean_fat_fraction_right_pct)}, left {_percent(s.mean_fat_fraction_left_pct)})"
    )
    print(f"SGC grade: {s.grade or 'n/a'}{_caution(result)}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.model_note:
        print(f"model note: {result.model_note}")
    dicom = ", dicom/ (SEG + SR)" if (Path(out) / "dicom").is_dir() else ""
    print(f"outputs: {out}/ (slices.csv, patient.json, *.seg.nrrd, qc.png{dicom})")


def command_measure(args: argparse.Namespace, progress: ProgressBar) -> int:
    study, result, out = measure_to_folder(args, progress)
    print_summary(study, result, out)
    return 0


def command_segment(args: argparse.Namespace, progress: ProgressBar) -> int:
    from ParaspinalSegLib.network.registry import resolve_model

    from .cohorts.batch import segment_study
    from .cohorts.cli_cohort import command_batch
    from .network.modelfile import load_model

    if args.batch:
        return command_batch(args, progress)
    if args.num_parts or args.part_id is not None or args.engine != "serial" or args.workers or args.scheduler:
        raise ParaspinalError("--num-parts, --part-id, --engine, --workers and --scheduler go with --batch")
    if args.dicom:
        from .output.dicomexport import check_dicom_input

        check_dicom_input(Path(args.input))
    device = available_device(args.device)
    model = load_model(resolve_model(args.model), device=device, backend=args.backend)
    outcome = segment_study(Path(args.input), Path(args.output), model, fat_method=args.fat_method, device=device,
                            batch_size=args.batch_size, series_uid=args.series, overwrite=args.overwrite, progress=progress,
                            mirror=args.mirror, dicom=args.dicom)
    progress.close()
    print(f"model:   {model.card.model_id} on {device} ({model.backend})")
    print_result(outcome.result, outcome.output)
    return 0


def sample_folder() -> Path:
    """Resources/Sample of the source tree this package was installed from (editable install)."""
    folder = Path(__file__).resolve().parents[2] / "Resources" / "Sample"
    if not (folder / "truth.json").exists():
        raise ParaspinalError(
            f"{folder}: the shipped sample study is missing; install from a clone with "
            "`pip install -e .` (see README)"
        )
    return folder


def compare_with_truth(result, sample: Path, series) -> str:
    """How a result on the sample compares with the sample's truth (fat fraction, grade, Dice)."""
    from .measure.measurement import mean_compartment_dice
    from .read.segmentation import load_segmentation

    truth = json.loads((sample / "truth.json").read_text())
    measured = result.summary.mean_fat_fraction_pct
    dice = mean_compartment_dice(load_segmentation([sample / "truth.nrrd"], series).labels, result.labels)
    return (
        f"sample truth: mean fat fraction {truth['mean_fat_fraction_pct']:.1f} %, grade {truth['grade']}; "
        f"measured {measured:.1f} % ({measured - truth['mean_fat_fraction_pct']:+.1f} points), grade "
        f"{result.summary.grade} ({'agrees' if result.summary.grade == truth['grade'] else 'DIFFERS'}); "
        f"compartment Dice against the truth {dice:.3f} (mean of right and left). In-distribution only: "
        "the sample comes from the same generator the shipped models were trained on, so this shows the "
        "tool runs, not how well it segments real images (see the README's real-case figures)"
    )


def command_demo(args: argparse.Namespace, progress: ProgressBar) -> int:
    """Segment & grade the shipped sample with the shipped model (or, with --measure, measure its
    shipped compartment map) and compare with the sample's known truth."""
    sample = sample_folder()
    check_separate(Path(args.output), [sample])
    if args.measure:
        args.image = str(sample / "study")
        args.segmentation = [str(sample / "compartments.nrrd")]
        args.labels, args.series = LabelKind.AUTO.value, None
        study, result, out = measure_to_folder(args, progress)
        print_summary(study, result, out)
        series = study.series
    else:
        from ParaspinalSegLib.network.registry import resolve_model

        from .cohorts.batch import segment_study
        from .network.modelfile import load_model

        device = available_device(args.device)
        model = load_model(resolve_model(args.model), device=device, backend=args.backend)
        outcome = segment_study(sample / "study", Path(args.output), model, fat_method=args.fat_method or "cnn",
                                device=device, overwrite=args.overwrite, progress=progress)
        progress.close()
        print(f"model:   {model.card.model_id} on {device} ({model.backend})")
        print_result(outcome.result, outcome.output)
        result, series = outcome.result, outcome.series
    print("\n" + compare_with_truth(result, sample, series))
    return 0


def add_measure_options(parser: argparse.ArgumentParser, default_output: str) -> None:
    parser.add_argument("-o", "--output", default=default_output, help="output folder (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--fat-method", choices=["cnn"] + [m.value for m in FatMethod],
                        help="cnn: the model's own fat class (default when a model segments); gmm (default "
                             "otherwise) or otsu: image analysis inside the compartments")
    parser.add_argument("--n4", action="store_true", help="N4 bias-field correction before fat quantification")


def add_dicom_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dicom", action="store_true",
                        help="also write DICOM SEG (one per block of slices) and a DICOM SR measurement report to "
                             "OUT/dicom/, referencing the source DICOM images (a DICOM folder or file is needed)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paraspinal", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", required=True)

    series = commands.add_parser("series", help="list the series of a study and say which would be chosen")
    series.add_argument("input", help="DICOM folder (searched recursively), DICOM zip or file")
    series.add_argument("--series", metavar="UID", help="choose this SeriesInstanceUID")
    series.set_defaults(run=command_series, input_paths=("input",))

    measure = commands.add_parser("measure", help="CSA, fat fraction and grade from a given segmentation")
    measure.add_argument("image", help="DICOM folder/zip/file, or a NIfTI/NRRD volume")
    measure.add_argument("segmentation", nargs="+",
                         help="label map(s) on the image grid (NIfTI/NRRD) or Slicer .seg.nrrd; one per block of angled slices")
    measure.add_argument("--labels", choices=[k.value for k in LabelKind], default=LabelKind.AUTO.value,
                         help="what the label values mean (default: detect; see README)")
    measure.add_argument("--series", metavar="UID", help="choose this SeriesInstanceUID")
    add_measure_options(measure, "paraspinal-output")
    add_dicom_option(measure)
    measure.set_defaults(run=command_measure, input_paths=("image", "segmentation"), output_paths=("output",))

    segment = commands.add_parser("segment", help="segment, measure and grade a study (or, with --batch, a folder of studies)")
    segment.add_argument("input", help="DICOM folder/zip/file or NIfTI/NRRD volume; with --batch a folder of those")
    segment.add_argument("--batch", action="store_true", help="INPUT is a folder of studies: one result folder each plus summary.csv")
    segment.add_argument("--model", help="registered model id or model folder (default: the active model)")
    add_device_option(segment)
    add_backend_option(segment)
    segment.add_argument("--batch-size", type=positive_int, default=8, help="slices per network pass (default 8)")
    segment.add_argument("--series", metavar="UID", help="choose this SeriesInstanceUID")
    segment.add_argument("--mirror", action="store_true",
                         help="test-time augmentation: average with the left-right mirrored slice, sides swapped "
                              "(twice the network time; +0.005 Dice on the held-out domains, README)")
    segment.add_argument("-o", "--output", default="paraspinal-output", help="output folder (default: %(default)s)")
    segment.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    segment.add_argument("--fat-method", choices=["cnn"] + [m.value for m in FatMethod], default="cnn",
                         help="fat from the model's own class (cnn) or by image analysis inside its compartments")
    add_dicom_option(segment)
    add_batch_options(segment)
    segment.set_defaults(run=command_segment, input_paths=("input", "model"), output_paths=("output",))

    demo = commands.add_parser("demo", help="segment & grade the shipped synthetic sample and compare with its truth")
    demo.add_argument("--measure", action="store_true", help="measure the sample's shipped compartment map instead")
    demo.add_argument("--model", help="registered model id or model folder (default: the active model)")
    add_device_option(demo)
    add_backend_option(demo)
    add_measure_options(demo, "paraspinal-demo")
    demo.set_defaults(run=command_demo, input_paths=("model",), output_paths=("output",))

    add_summary_command(commands)
    add_plugin_commands(commands)
    return parser


COMMAND_GROUP = "paraspinalseg.commands"  # entry points: functions that add subcommands (the training commands)


def add_plugin_commands(commands) -> None:
    """Subcommands that installed packages register under the COMMAND_GROUP entry-point group (the
    training library's synth, train, evaluate, ...), so that this inference library never imports them."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(commands)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    progress = ProgressBar(enabled=not args.quiet and sys.stderr.isatty())
    try:
        check_paths(args)
        return args.run(args, progress)
    except OperationCancelled:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    except ParaspinalError as error:
        print(f"error: {display_name(error)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"error: {display_name(error.filename or 'a file')}: {error.strerror or error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # no traceback for the user; -v logs it for a bug report
        log.info("unexpected error", exc_info=True)  # shown with -v, which logs from INFO
        print(f"error: unexpected {type(error).__name__} ({display_name(error)}); please report it (-v shows the "
              "details)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
