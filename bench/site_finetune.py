"""Benchmark: what one corrected study of a site buys on the site's other patients.

    python bench/site_finetune.py --data heldout-report [--domains NAME ...] [--site-patients 0 1 ...]
                                  [--selection] [--offsets FAT:BACKGROUND ...] [--shares S ...]
                                  [--model MODEL] [--epochs N] [--learning-rate LR] [--mirror P]
                                  [--augmentation NAME=VALUE ...] [--freeze-encoder-epochs N]
                                  [--compartment-dice W] [--cpu-bfloat16]
                                  [--per-patient] [--sites N] [--together] [--measure-from M] [-o table.md]

A synthetic stand-in for a site: a held-out domain's report draws (`paraspinal heldout --report`, made in
`--data` if missing; 8 patients a domain; with --selection the selection draws, `paraspinal heldout --data`,
which choose). Those draw each patient's pixel size, slice gap, matrix reduction and noise anew, and each
slice's contrast; a real site keeps one protocol. `--sites N` makes N same-protocol sites a domain instead
(in `--data`/sites, 8 patients each): each takes one pixel size, slice gap, matrix reduction and noise level
for all its patients, drawn once from the domain's ranges, and one contrast (within the domain's family) for
all its patients and slices; its seed is the draws' seed + 1000 x (site + 1). For each patient named by
`--site-patients` (an index in the domain's case order), the model is fine-tuned on that one patient's
slices with their true labels, as on a surgeon's corrected study, with the recipe of `paraspinal train STUDY
--base MODEL --register` (its epochs, 3 with the encoder frozen, every slice trained on, the last epoch
kept; with `--together`, the fine-tune is one, on all the named patients' studies as one training set of
several corrected studies; `--epochs N` trains N epochs instead, as `--epochs 10` gives the recipe before it
went to 30; `--learning-rate LR` trains at that rate instead of the recipe's; `--mirror P` mirrors that share
of the slices left-right, sides swapped, as the training stages' `flip_probability` does (the same as
`--augmentation flip_probability=P`); `--augmentation` sets fields of the recipe's `AugmentationSettings`,
such as `scale=0.25 elastic_probability=0.7`;
`--freeze-encoder-epochs N` keeps the encoder frozen for the first N epochs instead of 3;
`--compartment-dice W` adds the per-slice Dice of each side's compartment to the loss at weight W, as the
training stages' `compartment_dice_weight` does; `--cpu-bfloat16` trains under
bfloat16 autocast, as `paraspinal train --cpu-bfloat16` does). Measured through the product's
path (segment, clean, measure) on the domain's other patients (`--measure-from M`: only those whose index is
M or more, so that runs with different studies measure the same patients), as `paraspinal heldout` counts them
(compartment Dice per side, area bias, patients' fat within 3 points), all on torch on the CPU:
- "model": the model itself;
- "fine-tuned": the fine-tuned network alone, as `--parent-share 0` registers it;
- "registered": what the fine-tune registers by default: the weight average of the fine-tuned network
  and the model (`finetune.PARENT_SHARE`), or the fine-tuned network alone where the model's Dice on the
  site's corrected study is below `finetune.POOR_PARENT_DICE` (`finetune.automatic_parent_share`);
- with --offsets, each of the last two again at those fat/muscle and background offsets instead of the
  fine-tune's own (`paraspinal heldout --fat-score-offset X --background-score-offset B`);
- with --shares, the average with the parent at each of those parent shares (`--parent-share S`).
Each row also gives the model's own compartment Dice on the site's corrected study ("the model on the
study"): how much the surgeon had to correct, known before fine-tuning. With --per-patient each row is
followed by a table per patient (the study itself first): pixel size, compartment Dice and area bias of
the model and of each variant, which shows how an error of the model on the study carries over.
The last table sums over all the fine-tunes: mean compartment Dice, fine-tunes that harm (Dice more than
0.005 below the model's on the same patients) and (fine-tune, patient) pairs with the fat within 3
points. The fine-tuned models live in a temporary registry and are deleted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DOMAINS = ("thoracolumbar_coarse", "very_coarse_pixels", "inverted", "gre_in_phase")
PATIENTS = 8
HARM = 0.005  # a fine-tune harms where its compartment Dice is this much below the model's
PROTOCOL = ("pixel_spacing_mm", "slice_spacing_mm", "resolution_factor", "snr")  # one value for all of a site's patients
SITE_SEED_STEP = 1000


@dataclass
class SiteRow:
    """One site patient's fine-tune: the model and what the fine-tune made of it, on the domain's other
    patients. variants: name -> DomainFigures."""

    domain: str
    site_case: str
    parent_on_study: float  # the model's compartment Dice on the site's corrected study itself
    parent: object  # DomainFigures
    variants: dict
    seconds: float
    patients: str = ""  # with --per-patient: the table per patient (patients_markdown)


def case_figures(model, case):
    """The model's `paraspinal heldout` figures on one case, named by the case."""
    from ParaspinalSegLib.pipeline import FAT_FROM_MODEL
    from ParaspinalSegTrainingLib.heldout import DomainFigures, evaluate_case

    figures = DomainFigures(case.case_id, "")
    evaluate_case(model, case, figures, (FAT_FROM_MODEL,), "cpu")
    return figures


def site_study(cases: list, folder: Path) -> Path:
    """A training set holding the site's corrected studies."""
    for case in cases:
        shutil.copytree(case.image.parent, folder / "cases" / case.case_id)
    return folder


def recipe(epochs: int | None = None, compartment_dice: float | None = None, bfloat16: bool = False,
           learning_rate: float | None = None, augmentation: dict[str, float] | None = None,
           freeze_encoder_epochs: int | None = None):
    """The fine-tuning recipe on the CPU, the fine-tuned network alone (parent share 0), with `epochs`,
    the weight of the per-slice compartment Dice in the loss, the learning rate, augmentation settings
    (`AugmentationSettings` fields, such as the mirrored share of the slices, `flip_probability`) and the
    epochs with the encoder frozen where given (None: the recipe's); `bfloat16`: trained under bfloat16
    autocast (`mixed_precision_cpu`)."""
    from dataclasses import replace

    from ParaspinalSegTrainingLib.finetune import FineTuneSettings

    settings = FineTuneSettings(device="cpu", parent_share=0.0).with_overrides(
        epochs=epochs, learning_rate=learning_rate, freeze_encoder_epochs=freeze_encoder_epochs)
    config = settings.config
    if augmentation:
        config = replace(config, augmentation=replace(config.augmentation, **augmentation))
    if compartment_dice is not None:
        config = replace(config, compartment_dice_weight=compartment_dice)
    return replace(settings, config=replace(config, mixed_precision_cpu=bfloat16))


def fine_tuned_on(cases: list, base: Path, work: Path, settings) -> Path:
    """The base model fine-tuned on these cases with these settings, registered in a registry under `work`."""
    from ParaspinalSegLib.network.registry import ModelRegistry
    from ParaspinalSegTrainingLib.finetune import fine_tune

    registry = ModelRegistry(user_dir=work / "models")
    result = fine_tune(site_study(cases, work / "site"), base, settings, registry=registry, run_folder=work / "run")
    return result.model_folder


def variant_models(parent, parent_on_study: float, fine_tuned: Path, work: Path, offsets: list[tuple[float, float]],
                   shares: list[float]) -> dict:
    """The models to measure, by name: the fine-tuned network, what the fine-tune registers by default (its
    average with the parent), each of them at other (fat/muscle, background) offsets, and the averages at
    other parent shares."""
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegTrainingLib.finetune import automatic_parent_share, averaged_with_parent

    share = automatic_parent_share(parent_on_study)
    registered = averaged_with_parent(fine_tuned, parent, share, work / "registered") if share else fine_tuned
    models = {"fine-tuned": load_model(fine_tuned, "cpu", backend="torch", keep_loaded=True),
              "registered": load_model(registered, "cpu", backend="torch", keep_loaded=True)}
    for name in list(models):
        for fat, background in offsets:
            models[at_offsets(name, fat, background)] = models[name].with_postprocessing(
                fat_score_offset=fat, background_score_offset=background)
    for share in shares:
        averaged = averaged_with_parent(fine_tuned, parent, share, work / at_share(share))
        models[at_share(share)] = load_model(averaged, "cpu", backend="torch", keep_loaded=True)
    return models


def at_offsets(name: str, fat: float, background: float) -> str:
    """A variant's name at other offsets."""
    return f"{name} at {fat:g}/{background:g}"


def at_share(share: float) -> str:
    """The name of the average at another parent share."""
    return f"average {share:g}"


def variant_names(offsets: list[tuple[float, float]], shares: list[float]) -> list[str]:
    """The names `variant_models` gives, in its order."""
    names = ["fine-tuned", "registered"]
    return (names + [at_offsets(name, fat, background) for name in names for fat, background in offsets]
            + [at_share(share) for share in shares])


def parent_share(text: str) -> float:
    """A parent share between 0 and 1 (1 excluded)."""
    share = float(text)
    if not 0.0 <= share < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a parent share lies in 0 <= S < 1")
    return share


def mirror_share(text: str) -> float:
    """A share of the slices between 0 and 1."""
    share = float(text)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a share of the slices lies in 0 <= P <= 1")
    return share


def augmentation_setting(text: str) -> tuple[str, float]:
    """NAME=VALUE for a number field of `AugmentationSettings` (shift, scale, rotate_deg, ...), at 0 or more."""
    from dataclasses import fields

    from ParaspinalSegTrainingLib.augmentation import AugmentationSettings

    name, _, value = text.partition("=")
    known = [f.name for f in fields(AugmentationSettings)]
    if name not in known:
        raise argparse.ArgumentTypeError(f"{text}: NAME=VALUE with NAME one of {', '.join(known)}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: {value!r} is not a number") from None
    if not (0 <= number <= 1 if name.endswith("_probability") else number >= 0):
        raise argparse.ArgumentTypeError(f"{text}: needs a value of 0 or more (at most 1 for a probability)")
    return name, number


def offset_pair(text: str) -> tuple[float, float]:
    """'FAT:BACKGROUND' as two offsets."""
    fat, _, background = text.partition(":")
    try:
        return float(fat), float(background)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: needs FAT:BACKGROUND, e.g. 1.5:1.5") from None


def pixel_mm(case) -> float:
    """The in-plane pixel size of a case's image, from its header."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(case.image))
    reader.ReadImageInformation()
    return float(reader.GetSpacing()[0])


def patients_markdown(cases: list, parent_figures: dict, per_case: dict) -> str:
    """Per patient (the site's study first): pixel size, then the model's and each variant's compartment
    Dice and area bias. per_case: variant name -> the variant's figures on `cases`, in their order."""
    names = ["model"] + list(per_case)
    lines = ["| patient | pixel (mm) | " + " | ".join(f"{n}: Dice; area bias" for n in names) + " |",
             "|---|---:|" + "---|" * len(names)]
    for k, case in enumerate(cases):
        figures = [parent_figures[case.case_id]] + [per_case[name][k] for name in per_case]
        label = f"{case.case_id} (the study)" if k == 0 else case.case_id
        lines.append(f"| {label} | {pixel_mm(case):.2f} | "
                     + " | ".join(f"{f.dice:.3f}; {f.csa_bias_pct:+.1f} %" for f in figures) + " |")
    return "\n".join(lines)


def site_settings(domain: str, report: bool, site: int):
    """Synthesis settings of one same-protocol site of a held-out domain: the domain's draws with each PROTOCOL
    range narrowed to one value drawn from it, and one contrast for all its patients and slices."""
    from ParaspinalSegTrainingLib.synthesis import SynthesisSettings
    from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings

    settings = held_out_settings(domain, report)
    seed = settings.seed + SITE_SEED_STEP * (site + 1)
    rng = np.random.default_rng(seed)
    protocol = {name: [float(rng.uniform(*getattr(settings, name)))] * 2 for name in PROTOCOL}
    return SynthesisSettings.from_dict({**settings.to_dict(), **protocol, "seed": seed, "contrast_per_slice": False,
                                        "site_contrast_seed": seed})


def site_folder(data: Path, domain: str, report: bool, site: int, settings) -> Path:
    """The data set of one same-protocol site (PATIENTS patients of its `settings`) under data/sites, written
    if missing; a folder made with other settings is refused."""
    from ParaspinalSegTrainingLib.heldout import dataset_of

    return dataset_of(data / "sites" / f"{domain}-{'report' if report else 'selection'}-site{site}", PATIENTS, settings)


def site_rows(base: Path, domain: str, folder: Path, site_patients: list[int],
              offsets: list[tuple[float, float]], shares: list[float], settings,
              per_patient: bool = False, site: str = "", together: bool = False,
              measure_from: int = 0) -> list[SiteRow]:
    """One row per fine-tune: on each named patient's study alone, or (`together`) one on all of them; measured on
    the site's other patients from index `measure_from` on."""
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegTrainingLib.datasets import find_cases
    from ParaspinalSegTrainingLib.heldout import pooled_figures

    parent = load_model(base, "cpu", backend="torch", keep_loaded=True)
    cases = find_cases(folder)
    parent_figures = {case.case_id: case_figures(parent, case) for case in cases}
    rows = []
    for chosen in ([site_patients] if together else [[index] for index in site_patients]):
        studies = [cases[index] for index in chosen]
        others = [c for index, c in enumerate(cases) if index not in chosen and index >= measure_from]
        parent_on_studies = pooled_figures([parent_figures[c.case_id] for c in studies]).dice
        with tempfile.TemporaryDirectory(prefix="site-finetune-") as work:
            started = time.perf_counter()
            fine_tuned = fine_tuned_on(studies, base, Path(work), settings)
            seconds = time.perf_counter() - started
            models = variant_models(parent, parent_on_studies, fine_tuned, Path(work), offsets, shares)
            measured = [*studies, *others] if per_patient else others
            per_case = {name: [case_figures(model, c) for c in measured] for name, model in models.items()}
        variants = {name: pooled_figures(figures[-len(others):]) for name, figures in per_case.items()}
        patients = patients_markdown(measured, parent_figures, per_case) if per_patient else ""
        rows.append(SiteRow(domain, site + "+".join(c.case_id for c in studies), parent_on_studies,
                            pooled_figures([parent_figures[c.case_id] for c in others]), variants, seconds, patients))
        print(row_markdown(rows[-1]) + (f"\n\n{patients}\n" if patients else ""), flush=True)
    return rows


def side_dice(figures) -> str:
    return f"{np.nanmean(figures.dice_right):.3f} / {np.nanmean(figures.dice_left):.3f}"


def fat_pairs(figures) -> tuple[int, int]:
    from ParaspinalSegLib.pipeline import FAT_FROM_MODEL

    return figures.fat_within_count(FAT_FROM_MODEL)


def fat_cell(figures) -> str:
    from ParaspinalSegLib.pipeline import FAT_FROM_MODEL

    within, patients = fat_pairs(figures)
    errors = figures.fat_errors(FAT_FROM_MODEL)
    return f"{within} of {patients} ({np.abs(errors).mean():.1f}, {errors.mean():+.1f})"


def row_markdown(row: SiteRow) -> str:
    """The model, then each variant: Dice per side, area bias, patients' fat within 3 points."""
    figures = [row.parent] + list(row.variants.values())
    return (f"| {row.domain} | {row.site_case} | {row.parent_on_study:.3f} | "
            + " -> ".join(side_dice(f) for f in figures) + " | "
            + " -> ".join(f"{f.csa_bias_pct:+.1f}" for f in figures) + " % | "
            + " -> ".join(fat_cell(f) for f in figures) + f" | {row.seconds:.0f} |")


def header(variants: list[str]) -> str:
    names = " -> ".join(["model"] + variants)
    return (f"| domain | the site's corrected study | the model on the study | "
            f"compartment Dice right / left on the other patients ({names}) | "
            f"area bias | patients' fat within 3 points (MAE, bias in points) | fine-tuning s |\n"
            "|---|---|---:|---|---|---|---:|")


def totals_markdown(rows: list[SiteRow], by_domain: bool) -> str:
    """Over the fine-tunes (per domain, or all together): for the model and each variant, the mean
    compartment Dice, the fine-tunes that harm, and the (fine-tune, patient) pairs with fat within 3 points."""
    names = ["model"] + list(rows[0].variants)
    lines = [f"| {'domain' if by_domain else 'fine-tunes'} | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    groups = {d: [r for r in rows if r.domain == d] for d in dict.fromkeys(r.domain for r in rows)} if by_domain \
        else {f"all {len(rows)}": rows}
    for label, mine in groups.items():
        cells = []
        for name in names:
            figures = [r.parent if name == "model" else r.variants[name] for r in mine]
            harmed = sum(f.dice < r.parent.dice - HARM for f, r in zip(figures, mine))
            within = sum(fat_pairs(f)[0] for f in figures)
            pairs = sum(fat_pairs(f)[1] for f in figures)
            cells.append(f"{np.mean([f.dice for f in figures]):.4f}; " + ("" if name == "model" else f"{harmed} harm; ")
                         + f"fat {within} of {pairs}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from ParaspinalSegLib.network.registry import ModelRegistry, resolve_model
    from ParaspinalSegTrainingLib.heldout import domain_folders

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the held-out domains' draws (made if missing)")
    parser.add_argument("--domains", nargs="+", default=list(DEFAULT_DOMAINS))
    parser.add_argument("--site-patients", nargs="+", type=int, default=[0, 1, 2],
                        help=f"which patients (0-{PATIENTS - 1}) stand for the site's corrected study, one at a time")
    parser.add_argument("--selection", action="store_true", help="the selection draws instead of the report draws")
    parser.add_argument("--offsets", nargs="+", type=offset_pair, default=[], metavar="FAT:BACKGROUND",
                        help="also measure the fine-tuned and registered models at these offsets")
    parser.add_argument("--shares", nargs="+", type=parent_share, default=[], metavar="S",
                        help="also measure the average with the model at these parent shares")
    parser.add_argument("--model", default="", help="the model to fine-tune (default: the active one)")
    parser.add_argument("--epochs", type=int, help="fine-tune for this many epochs (default: the recipe's)")
    parser.add_argument("--learning-rate", type=float, metavar="LR",
                        help="fine-tune at this learning rate (default: the recipe's)")
    parser.add_argument("--mirror", type=mirror_share, metavar="P",
                        help="mirror this share of the slices left-right, sides swapped (default: the recipe's)")
    parser.add_argument("--freeze-encoder-epochs", type=int, metavar="N",
                        help="train the first N epochs with the encoder frozen (default: the recipe's 3)")
    parser.add_argument("--augmentation", nargs="+", type=augmentation_setting, default=[], metavar="NAME=VALUE",
                        help="augmentation settings instead of the recipe's (AugmentationSettings fields)")
    parser.add_argument("--compartment-dice", type=float, metavar="W",
                        help="weight of the per-slice compartment Dice in the loss (default: the recipe's)")
    parser.add_argument("--cpu-bfloat16", action="store_true",
                        help="fine-tune under bfloat16 autocast, as `paraspinal train --cpu-bfloat16` does")
    parser.add_argument("--per-patient", action="store_true",
                        help="after each fine-tune, a table per patient: pixel size, Dice and area bias")
    parser.add_argument("--sites", type=int, default=0, metavar="N",
                        help="N same-protocol sites a domain instead of the domain's draws (see above)")
    parser.add_argument("--together", action="store_true",
                        help="one fine-tune on all the --site-patients' studies together (several corrected studies)")
    parser.add_argument("--measure-from", type=int, default=0, metavar="M",
                        help=f"measure only the patients with index M or more (0-{PATIENTS - 1})")
    parser.add_argument("-o", "--out", type=Path, help="Markdown file for the tables")
    args = parser.parse_args()
    if not all(0 <= k < PATIENTS for k in args.site_patients):
        parser.error(f"--site-patients are indexes 0-{PATIENTS - 1}")
    later = range(args.measure_from, PATIENTS)
    if not 0 <= args.measure_from < PATIENTS or all(k in args.site_patients for k in later):
        parser.error("--measure-from must leave a patient to measure")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs needs at least 1")
    if args.freeze_encoder_epochs is not None and args.freeze_encoder_epochs < 0:
        parser.error("--freeze-encoder-epochs needs 0 or more")
    if args.compartment_dice is not None and args.compartment_dice < 0:
        parser.error("--compartment-dice needs a weight of 0 or more")
    if args.learning_rate is not None and args.learning_rate <= 0:
        parser.error("--learning-rate needs a positive rate")
    registry = ModelRegistry()
    base = resolve_model(args.model or registry.active().model_id, registry)
    print(header(variant_names(args.offsets, args.shares)), flush=True)
    augmentation = dict(args.augmentation) | ({} if args.mirror is None else {"flip_probability": args.mirror})
    rows, settings = [], recipe(args.epochs, args.compartment_dice, args.cpu_bfloat16, args.learning_rate,
                                augmentation, args.freeze_encoder_epochs)
    if args.sites:
        for domain in args.domains:
            for site in range(args.sites):
                protocol = site_settings(domain, not args.selection, site)
                folder = site_folder(args.data, domain, not args.selection, site, protocol)
                rows += site_rows(base, domain, folder, args.site_patients, args.offsets, args.shares, settings,
                                  args.per_patient, f"site {site} ({protocol.pixel_spacing_mm[0]:.2f} mm): ",
                                  args.together, args.measure_from)
    else:
        for domain, folder in domain_folders(args.data, PATIENTS, report=not args.selection, names=tuple(args.domains)):
            rows += site_rows(base, domain.name, folder, args.site_patients, args.offsets, args.shares, settings,
                              args.per_patient, together=args.together, measure_from=args.measure_from)
    tables = (header(list(rows[0].variants)) + "\n" + "\n".join(row_markdown(r) for r in rows) + "\n\n"
              + totals_markdown(rows, by_domain=True) + "\n\n" + totals_markdown(rows, by_domain=False))
    patients = "\n\n".join(f"{r.domain}, study {r.site_case}:\n\n{r.patients}" for r in rows if r.patients)
    print("\n" + tables.split("\n\n", 1)[1])
    if args.out:
        args.out.write_text(tables + (f"\n\n{patients}" if patients else "") + "\n")


if __name__ == "__main__":
    main()
