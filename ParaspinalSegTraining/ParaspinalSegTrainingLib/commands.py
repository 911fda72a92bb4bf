"""The training side of the `paraspinal` command line: synth, train, evaluate, validate-real, release, models."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

from ParaspinalSegLib.cli import add_device_option, available_device, positive_int
from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.output.outputs import write_text_atomic
from ParaspinalSegLib.network.model import FAT_SPLITS, LABEL_DECISIONS
from ParaspinalSegLib.network.registry import resolve_model


def read_settings_json(path: Path) -> dict:
    """A settings file's JSON object; InputError naming the file when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such settings file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot be read ({error})") from None
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: must hold a JSON object of settings, not a {type(data).__name__}")
    return data


def synthesis_settings(path: Path | None):
    """The synthesis settings of a JSON file (defaults without one); InputError naming the file."""
    from .synthesis import SynthesisSettings

    if path is None:
        return SynthesisSettings()
    data = read_settings_json(path)
    try:
        return SynthesisSettings.from_dict(data)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: invalid synthesis settings ({error})") from None


def command_synth(args: argparse.Namespace, progress) -> int:
    from .synthesis import SynthesisSettings, write_dataset

    settings = synthesis_settings(Path(args.config) if args.config else None)
    changes = {"seed": args.seed, "image_size": args.size, "shape_source": args.shapes}
    settings = SynthesisSettings.from_dict({**settings.to_dict(), **{k: v for k, v in changes.items() if v is not None}})
    folder = write_dataset(Path(args.out), args.cases, settings, progress=progress, overwrite=args.overwrite,
                           workers=args.workers)
    progress.close()
    summary = json.loads((folder / "dataset.json").read_text())
    print(f"{args.cases} synthetic cases in {folder} ({summary['slices']} slices)")
    return 0


def training_overrides(args: argparse.Namespace) -> dict:
    """The `train` flags that override the settings file (None where not given)."""
    return dict(folds=args.folds, epochs=args.epochs, learning_rate=args.learning_rate, device=args.device,
                freeze_encoder_epochs=args.freeze_encoder_epochs, seed=args.seed, name=args.name, version=args.version)


def command_fine_tune(args: argparse.Namespace, progress) -> int:
    """`train --base MODEL --register`: one new registered model, compared with its parent."""
    from .config import TrainingConfig
    from .finetune import FineTuneSettings, fine_tune

    settings = FineTuneSettings.from_config(TrainingConfig.from_file(Path(args.config))) if args.config else FineTuneSettings()
    settings = settings.with_overrides(**training_overrides(args), parent_share=args.parent_share)
    if args.cpu_bfloat16:
        settings = replace(settings, config=settings.config.with_overrides(mixed_precision_cpu=True))
    try:
        result = fine_tune(Path(args.data), args.base, settings, run_folder=Path(args.out), progress=progress)
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted; nothing was registered; run the same command again to resume from the last checkpoint "
              f"in {args.out}")
        return 130
    progress.close()
    print(result.markdown())
    print(f"registered {result.model_id} (parent {result.parent_id}); make it the active model with "
          f"`paraspinal models activate {result.model_id}`")
    return 0


def training_world(args: argparse.Namespace):
    """This process's place in a `train --ddp` run, from torchrun's environment; None without --ddp."""
    from .distributed import world_from_environment

    if not args.ddp:
        if args.accumulate:
            raise InputError("--accumulate adds up the micro-batches of a --ddp run; add --ddp")
        if world_from_environment().size > 1:
            raise InputError("started as one of several processes (torchrun): add --ddp, or every process would "
                             "train the same run into the same folder")
        return None
    if args.base and args.register:
        raise InputError("--ddp trains with `paraspinal train`; fine-tuning with --base and --register runs in one "
                         "process: leave out --ddp")
    return world_from_environment(args.accumulate or 1)


def command_train(args: argparse.Namespace, progress) -> int:
    from ParaspinalSegLib.network.inference import choose_device

    from .config import TrainingConfig
    from .distributed import process_group
    from .run import run_training

    if args.device:
        available_device(args.device)
    world = training_world(args)
    if args.base and args.register:
        return command_fine_tune(args, progress)
    if args.parent_share is not None:
        raise InputError("--parent-share averages a fine-tune with its parent: it needs --base and --register")
    config = TrainingConfig.from_file(Path(args.config)) if args.config else TrainingConfig()
    config = config.with_overrides(**training_overrides(args), mixed_precision_cpu=args.cpu_bfloat16 or None)
    base = resolve_model(args.base) if args.base else None
    writes = world is None or world.writes
    try:
        with process_group(world, choose_device(config.device)):
            run = run_training(Path(args.data), Path(args.out), config, base_model=base,
                               progress=progress if writes else None, validation=args.validation, world=world)
    except KeyboardInterrupt:
        progress.close()
        if writes:
            print(f"interrupted; run the same command again to resume from the last checkpoint in {args.out}")
        return 130
    progress.close()
    if not writes:
        return 0
    for fold in run.folds:
        chosen = (f"best epoch {fold.best_epoch}, validation Dice {fold.best_validation_dice:.3f}"
                  if not math.isnan(fold.best_validation_dice)
                  else f"last epoch {fold.best_epoch} (no patient to validate with)")
        print(f"fold {fold.fold}: {chosen}, model {fold.model_folder}")
    if run.evaluation:
        print((Path(args.out) / "evaluation" / "pooled_table2.md").read_text())
    if args.register:
        from ParaspinalSegLib.network.registry import ModelRegistry

        for fold in run.folds:
            print(f"registered {ModelRegistry().import_model(fold.model_folder).model_id}")
    return 0


def command_evaluate(args: argparse.Namespace, progress) -> int:
    from ParaspinalSegLib.network.modelfile import load_model

    from .datasets import find_cases
    from .evaluate import evaluate_cases

    model = load_model(resolve_model(args.model))
    cases, device = find_cases(Path(args.data)), available_device(args.device)
    if args.fat_methods:
        from .fatcomparison import compare_fat_methods, comparison_markdown

        table = comparison_markdown(compare_fat_methods(model, cases, device=device, progress=progress))
        progress.close()
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            write_text_atomic(Path(args.out) / "fat_methods.md", table)
        print(f"fat methods with model {model.card.model_id} on {args.data}, per patient against the truth:\n")
        print(table)
        return 0
    report = evaluate_cases(model, cases, device=device, progress=progress)
    progress.close()
    if args.out:
        report.write(Path(args.out))
    print(f"model {model.card.model_id} on {args.data}:\n")
    print(report.markdown())
    return 0


def command_validate_real(args: argparse.Namespace, progress) -> int:
    from ParaspinalSegLib.network.modelfile import load_model

    from .real_validation import REAL_CASES, figures_markdown, validate_real

    model = load_model(resolve_model(args.model))
    figures = validate_real(model, Path(args.shared), device=available_device(args.device), progress=progress)
    progress.close()
    if not figures:
        raise InputError(f"{Path(args.shared) / 'data' / 'real'}: none of the real labelled cases "
                         f"({', '.join(REAL_CASES)}) is there")
    table = figures_markdown(figures)
    if args.out:
        write_text_atomic(Path(args.out), table)
    print(f"model {model.card.model_id} on the real labelled cases (labels are model outputs, approximate):\n")
    print(table)
    return 0


def command_heldout(args: argparse.Namespace, progress) -> int:
    from ParaspinalSegLib.network.modelfile import load_model

    from .heldout import (FAT_FROM_MODEL, FAT_METHODS, GOAL_FAT_POINTS, evaluate_held_out, held_out_markdown,
                          patient_table_csv, pooled_figures)
    from .synthesis.shapes import real_shapes_available

    model = load_model(resolve_model(args.model)).with_postprocessing(
        fat_score_offset=args.fat_score_offset, background_score_offset=args.background_score_offset,
        label_decision=args.label_decision, fat_split=args.fat_split, mirror_below_confidence=args.mirror_below)
    methods = FAT_METHODS if args.fat_methods else (FAT_FROM_MODEL,)
    figures = evaluate_held_out(model, Path(args.data), args.patients, methods, available_device(args.device), progress,
                                args.mirror, args.report, tuple(args.domains or ()), args.fat_starts)
    progress.close()
    table = held_out_markdown(figures, methods)
    if args.out:
        write_text_atomic(Path(args.out), table)
    if args.patients_csv:
        write_text_atomic(Path(args.patients_csv), patient_table_csv(figures, methods))
    print(f"model {model.card.model_id}{' with mirrored test-time augmentation' if args.mirror else ''}, fat/muscle "
          f"split offset {model.card.postprocessing.fat_score_offset:g}, background offset "
          f"{model.card.postprocessing.background_score_offset:g}, labels {model.card.postprocessing.label_decision}, fat "
          f"split {model.card.postprocessing.fat_split}, on the "
          f"held-out synthesis domains, {'report' if args.report else 'selection'} draws ({args.patients} patients "
          f"each, data in {args.data}):\n")
    for f in figures:
        print(f"- {f.domain}: {f.holds_out}" + (f"; inside training since {f.inside_training}" if f.inside_training else ""))
    if not real_shapes_available(""):
        print("\nnote: the traced masks (../shared/data/shapes) are not here: the L3-L5 slices take procedural "
              "shapes and the traced-shape domain is left out, so these figures are not those of the model cards")
    print("\n" + table)
    pooled = pooled_figures(figures)
    print(f"pooled compartment Dice of the held-out domains, the figure that chooses: {pooled.dice:.4f} "
          f"({len(pooled.dice_right)} slices)")
    if model.card.postprocessing.mirror_below_confidence and not args.mirror:
        mirrored, slices = sum(f.mirrored_slices for f in figures), sum(len(f.dice_right) for f in figures)
        print(f"slices segmented again mirrored (confidence below "
              f"{model.card.postprocessing.mirror_below_confidence:g}): {mirrored} of {slices} ({mirrored / slices:.0%})")
    within, patients = pooled.fat_within_count(FAT_FROM_MODEL)
    print(f"patients of the held-out domains with the model's fat fraction within {GOAL_FAT_POINTS:g} points of the "
          f"truth: {within} of {patients} (mean absolute error "
          f"{pooled.fat_summary(FAT_FROM_MODEL)['mean_abs_error_points']:.2f} points)")
    return 0


def command_heldout_pair(args: argparse.Namespace, progress) -> int:
    from .pairing import paired_fat, paired_fat_text, read_patient_table

    if not args.points > 0:
        raise InputError(f"--points {args.points:g}: give a distance above 0 points")
    tables = [read_patient_table(Path(path), args.method) for path in (args.a, args.b)]
    print(paired_fat_text(paired_fat(*tables, points=args.points), args.a, args.b, args.points))
    return 0


def command_models(args: argparse.Namespace, progress) -> int:
    from ParaspinalSegLib.network.registry import ModelRegistry

    registry = ModelRegistry()
    if args.action == "list":
        try:
            active = registry.active().model_id
        except InputError:
            active = None
        for m in registry.models():
            mark = "*" if m.model_id == active else " "
            where = "shipped" if m.shipped else "user"
            print(f"{mark} {m.model_id:32s} {where:8s} parent={m.card.parent or '-'}  {m.folder}")
        return 0
    if not args.target:
        raise InputError(f"`paraspinal models {args.action}` needs a model id, folder or zip")
    if args.action == "show":
        print(json.dumps(registry.get(args.target).card.to_dict(), indent=2))
    elif args.action == "import":
        print(f"imported {registry.import_model(Path(args.target)).model_id}")
    elif args.action == "export":
        destination = Path(args.destination or f"{args.target}.zip")
        print(f"exported to {registry.export_model(args.target, destination)}")
    elif args.action == "activate":
        print(f"active model: {registry.set_active(args.target).model_id}")
    return 0


def command_release(args: argparse.Namespace, progress) -> int:
    from .release import release_model

    card = release_model(Path(args.model), Path(args.out), Path(args.shared), args.notes or "",
                         Path(args.heldout) if args.heldout else None, fat_score_offset=args.fat_score_offset,
                         background_score_offset=args.background_score_offset, label_decision=args.label_decision,
                         fat_split=args.fat_split, mirror_below_confidence=args.mirror_below, version=args.version)
    print(f"released {card.model_id} to {args.out}: sample compartment Dice {card.validation['sample_compartment_dice']:.3f}")
    for case in card.validation["real_cases"]:
        levels = ", ".join(f"{name} {dice:.3f}" for name, dice in case["dice_per_level"].items())
        print(f"  {case['case']} ({case['levels']}): Dice right {case['dice_right']:.3f}, left {case['dice_left']:.3f} "
              f"({levels}), CSA error {case['csa_error_pct_mean']:.1f} %, fat fraction {case['fat_fraction_pct']}")
    return 0


def command_soup(args: argparse.Namespace, progress) -> int:
    from ParaspinalSegLib.cli import check_paths

    from .soup import make_soup, parse_member

    members = [parse_member(text) for text in args.members]
    # the members' folders are inputs, checked as every command's are (the output never inside one)
    check_paths(argparse.Namespace(folders=[str(folder) for _, folder in members], out=args.out,
                                   input_paths=("folders",), output_paths=("out",)))
    names = make_soup(Path(args.out), members)
    print(f"wrote {args.out}: {names}")
    return 0


def command_widen(args: argparse.Namespace, progress) -> int:
    from .widen import make_widened

    model_id = make_widened(Path(args.out), Path(args.model), tuple(args.decoder_channels), args.seed)
    print(f"wrote {args.out}: {model_id}, the same scores with a wider decoder; "
          f"train it on with `train --base {args.out}`")
    return 0


def score_offset(name: str):
    """The argument type of a postprocessing offset (`name`, a Postprocessing field), refused with the card's own bounds."""
    from ParaspinalSegLib.network.model import Postprocessing

    def parse(text: str) -> float:
        try:
            return getattr(Postprocessing(**{name: float(text)}), name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return parse


def add_postprocessing_options(parser, why: str) -> None:
    parser.add_argument("--fat-score-offset", type=score_offset("fat_score_offset"), metavar="X",
                        help=f"fat/muscle split offset: fat needs odds over muscle above exp(X); {why}")
    parser.add_argument("--background-score-offset", type=score_offset("background_score_offset"), metavar="B",
                        help=f"background offset: a compartment's class needs odds over background above exp(B); {why}")
    parser.add_argument("--label-decision", choices=LABEL_DECISIONS,
                        help="flat: the most probable of the five classes; compartment_first: background or a side's "
                             f"compartment (muscle + fat summed) first, then fat or muscle inside; {why}")
    parser.add_argument("--fat-split", choices=FAT_SPLITS,
                        help="per_pixel: a compartment pixel is fat where fat's odds beat muscle's; expected_area: each "
                             "side's fat area on a slice is the sum of fat's share of its compartment probability, "
                             f"given to the pixels with the highest share; {why}")
    parser.add_argument("--mirror-below", type=score_offset("mirror_below_confidence"), metavar="T",
                        help="a slice whose compartment confidence is below T is segmented again mirrored, sides "
                             f"swapped, and the two averaged (0: never); {why}")


def add_training_commands(commands) -> None:
    release = commands.add_parser("release", help="copy a trained model into a new folder with its validation figures")
    release.add_argument("model", help="the trained model folder (e.g. RUN/fold_0/model)")
    release.add_argument("--out", required=True, help="new model folder, e.g. Resources/Models/<name>-<version>")
    release.add_argument("--shared", default="../shared", help="folder with data/real for real-case figures")
    release.add_argument("--notes", help="description for the card")
    release.add_argument("--version", help="the released model's version (default: the trained model's); give a new "
                                           "one when releasing the same weights with other offsets")
    release.add_argument("--heldout", help="folder of the held-out domains' data sets (`paraspinal heldout --data`): "
                                           "their figures go into the card")
    add_postprocessing_options(release, "chosen on the held-out domains' selection draws (`paraspinal heldout "
                                        "--fat-score-offset / --background-score-offset / --label-decision / "
                                        "--fat-split`); default: the trained model's")
    release.set_defaults(run=command_release, input_paths=("model", "shared"), output_paths=("out", "heldout"))

    soup = commands.add_parser("soup", help="a new model whose weights are the weighted mean of other models' "
                                            "(a model soup of fine-tunes of one parent)")
    soup.add_argument("out", help="new model folder (must not exist)")
    soup.add_argument("members", nargs="+", metavar="WEIGHT=MODEL",
                      help="a member's weight and model folder, e.g. 1=run-a/fold_0/model 1=run-b/fold_0/model")
    soup.set_defaults(run=command_soup)  # its paths are checked once the members are parsed
    widen = commands.add_parser("widen", help="a new model with a wider decoder that gives the same scores as MODEL "
                                              "(Net2WiderNet), to train on with more capacity")
    widen.add_argument("model", help="model folder (a Unet)")
    widen.add_argument("out", help="new model folder (must not exist)")
    widen.add_argument("--decoder-channels", type=positive_int, nargs="+", required=True, metavar="N",
                       help="channels of each decoder block, none below the model's own (e.g. 256 128 64 32 16)")
    widen.add_argument("--seed", type=int, default=0, help="draws which channels are copied and the weight shares")
    widen.set_defaults(run=command_widen, input_paths=("model",), output_paths=("out",))
    synth = commands.add_parser("synth", help="write a synthetic training data set (label maps L1-S1 turned into images)")
    synth.add_argument("out", help="data set folder to create")
    synth.add_argument("--cases", type=positive_int, required=True, help="number of synthetic patients")
    synth.add_argument("--seed", type=int)
    synth.add_argument("--size", type=int, help="image size in pixels (default 256)")
    synth.add_argument("--shapes", choices=["auto", "procedural", "real"],
                       help="compartment shapes: real traced L4/L5 masks from ../shared where present (auto)")
    synth.add_argument("--config", help="synthesis settings JSON (flags above override it)")
    synth.add_argument("--workers", type=positive_int, default=1,
                       help="draw the cases in this many processes (the same data set whatever their number)")
    synth.add_argument("--overwrite", action="store_true")
    synth.set_defaults(run=command_synth, input_paths=("config",), output_paths=("out",))

    train = commands.add_parser(
        "train", help="train a U-Net on a data set folder (k-fold by patient), or with --base and --register fine-tune "
                      "a model into a new registered one, compared with its parent on the cases it did not train on")
    train.add_argument("data", help="data set folder (cases/<id>/image + labels)")
    train.add_argument("--out", required=True, help="run folder (an interrupted run resumes there)")
    train.add_argument("--config", help="training settings JSON (flags below override it)")
    train.add_argument("--base", help="fine-tune this model (registered id or folder)")
    train.add_argument("--validation", nargs="+", metavar="DATASET",
                       help="data set folders that choose the best epoch (the held-out synthesis domains, as "
                            "`paraspinal heldout --data` writes them) instead of a share of DATA")
    train.add_argument("--folds", type=int, help="k for k-fold; 0 = one model with a validation split")
    train.add_argument("--epochs", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--freeze-encoder-epochs", type=int)
    add_device_option(train, default=None)
    train.add_argument("--seed", type=int)
    train.add_argument("--cpu-bfloat16", action="store_true",
                       help="on the CPU, train under bfloat16 autocast (settings: mixed_precision_cpu): about 1.6 times "
                            "as fast a step on a CPU with AVX-512 BF16 (measured; README); off by default (float32)")
    train.add_argument("--name", help="model name (fine-tuning: default the parent's)")
    train.add_argument("--version", help="model version (name-version must be new; fine-tuning: default the "
                                         "parent's version + -ft<n>)")
    train.add_argument("--register", action="store_true",
                       help="add the resulting model(s) to the user registry; with --base: fine-tune (default 30 "
                            "epochs, learning rate 3e-4, 3 frozen encoder epochs, folds 0) and compare with the parent")
    train.add_argument("--parent-share", type=float, metavar="S",
                       help="with --base and --register: register the weight average of the fine-tuned network and its "
                            "parent, the parent taking S (0: the fine-tuned network alone; default: 0.5 where the "
                            "parent's compartment Dice on the corrected cases is at least 0.80, else 0)")
    train.add_argument("--ddp", action="store_true",
                       help="distributed data parallel: start with `torchrun --nproc_per_node N -m ParaspinalSegLib.cli "
                            "train ... --ddp`; batches planned by patient shards, the batch size split over the "
                            "processes, rank 0 writes (see the README)")
    train.add_argument("--accumulate", type=positive_int,
                       help="with --ddp: micro-batches each process adds up per step (default 1); N processes x K "
                            "repeat the batches of N*K processes, e.g. to resume an 8-GPU run on 4 GPUs with 2")
    train.set_defaults(run=command_train, input_paths=("data", "config", "base", "validation"), output_paths=("out",))

    evaluate = commands.add_parser("evaluate", help="the paper's Table 2 for a model on a data set")
    evaluate.add_argument("model", help="registered model id or model folder")
    evaluate.add_argument("data", help="data set folder")
    evaluate.add_argument("-o", "--out", help="folder for table2.csv and table2.md")
    add_device_option(evaluate)
    evaluate.add_argument("--fat-methods", action="store_true",
                          help="instead of Table 2: each fat method's patient fat fraction against the truth")
    evaluate.set_defaults(run=command_evaluate, input_paths=("model", "data"), output_paths=("out",))

    real = commands.add_parser(
        "validate-real", help="compartment Dice, precision, recall, CSA bias and outline offset per level on the "
                              "real labelled cases of ../shared")
    real.add_argument("model", help="registered model id or model folder")
    real.add_argument("--shared", default="../shared", help="folder with data/real")
    real.add_argument("-o", "--out", help="Markdown file for the table")
    add_device_option(real)
    real.set_defaults(run=command_validate_real, input_paths=("model", "shared"), output_paths=("out",))

    heldout = commands.add_parser(
        "heldout", help="compartment Dice per side and patient fat fraction on synthetic data from the held-out "
                        "domains (contrasts, resolutions, noise and traced shapes that training lacked): what "
                        "chooses runs, epochs and the fat method")
    heldout.add_argument("model", help="registered model id or model folder")
    heldout.add_argument("--data", required=True, help="folder for the domains' data sets (made there if missing, "
                                                      "reused after)")
    heldout.add_argument("--patients", type=positive_int, default=8, help="synthetic patients per domain (default 8)")
    heldout.add_argument("--fat-methods", action="store_true", help="also compare the fat methods (cnn, gmm, otsu)")
    heldout.add_argument("--fat-starts", type=positive_int, default=1, metavar="N",
                         help="with --fat-methods: fit gmm's mixture from N starts, the most likely kept (default 1)")
    heldout.add_argument("--report", action="store_true",
                         help="the fresh draws of the domains (other seeds) that report a chosen model, instead of "
                              "the sets that choose")
    heldout.add_argument("--mirror", action="store_true",
                         help="test-time augmentation: average with the left-right mirrored slice, sides swapped")
    heldout.add_argument("--domains", nargs="+", metavar="NAME", help="only these domains (default: all)")
    heldout.add_argument("-o", "--out", help="Markdown file for the table")
    heldout.add_argument("--patients-csv", metavar="FILE",
                         help="CSV file with each patient's true and measured fat fraction, for `heldout-pair`")
    add_postprocessing_options(heldout, "instead of the card's, to choose one")
    add_device_option(heldout)
    heldout.set_defaults(run=command_heldout, input_paths=("model",), output_paths=("data", "out", "patients_csv"))

    pair = commands.add_parser(
        "heldout-pair", help="two models' patient fat on the same held-out draws, patient by patient: the patients "
                             "within 3 points for one model only, an exact sign test, the change of the error")
    pair.add_argument("a", help="`heldout --patients-csv` table of the reference model")
    pair.add_argument("b", help="the same of the candidate, on the same draws")
    pair.add_argument("--points", type=float, default=3.0, help="the goal's distance from the truth (default 3)")
    pair.add_argument("--method", default="cnn", help="fat method column to compare (default cnn)")
    pair.set_defaults(run=command_heldout_pair, input_paths=("a", "b"))

    models = commands.add_parser("models", help="list, show, import, export or activate models")
    models.add_argument("action", choices=["list", "show", "import", "export", "activate"])
    models.add_argument("target", nargs="?", help="model id (show, export, activate) or folder/zip (import)")
    models.add_argument("destination", nargs="?", help="zip file for export")
    models.set_defaults(run=command_models, input_paths=("target",), output_paths=("destination",))
