"""Synthesis domains: the training domain of synthesis 2.0 and the held-out domains that choose runs.

The selection protocol (README, "How models are chosen"): runs, epochs, synthesis settings and the
fat method are chosen only on synthetic validation data from domains that the training data
lack: contrast families never trained on, pixel spacings and noise beyond the training ranges,
and traced compartment shapes that training never saw. The real labelled cases are a report,
measured once per released model, never used to choose.
"""

from __future__ import annotations

from dataclasses import dataclass

from ParaspinalSegLib.errors import InputError

from .levels import VERTEBRAE
from .settings import SynthesisSettings

TRAINING_CONTRASTS = {"random": 0.4, "random_tissue": 0.3, "t2": 0.15, "t1": 0.1, "fat_suppressed": 0.05}

# The synthesis 2.0 training domain. The held-out domains are drawn on top of it and stay as they were,
# so that every model is measured on the same draws.
HELD_OUT_BASE = {
    "contrast_probabilities": TRAINING_CONTRASTS,
    "contrast_per_slice": True,
    "pixel_spacing_mm": (0.7, 1.8),
    "snr": (5.0, 50.0),
    "resolution_factor": (1.0, 2.6),
    "bias_strength": 0.6,
    "partial_volume_probability": 0.3,
    "ghost_probability": 0.2,
    "wrap_probability": 0.15,
    "crop_probability": 0.25,
    "shape_source": "auto",
    "real_shape_split": "train",
}
# The training domain of model 2.1.0: 2.0's with noise down to SNR 3, so the coarse, noisy held-out domain
# holds out its resolution (pixels and matrix reduction beyond training), not its noise.
TRAINING_2_1 = {**HELD_OUT_BASE, "snr": (3.0, 50.0)}
# The training domain of models 2.2.0 and 2.3.0: 2.1.0's with T12 slices and wider builds (neither is in a
# held-out domain: they widen training, they are not held out).
TRAINING_2_2 = {**TRAINING_2_1, "levels": ("T12",) + VERTEBRAE, "habitus_spread": 1.5}
# The training domain of models 2.4.0 and 2.5.0: 2.2.0's with coarser pixels and blur (SynthSeg's route: any
# resolution), which takes in the coarse, noisy domain; coarser pixels still are held out (coarse_pixels).
TRAINING_2_4 = {**TRAINING_2_2, "pixel_spacing_mm": (0.7, 2.4), "resolution_factor": (1.0, 3.2)}
# The training domain of models 2.6.0 and later: 2.4.0's with the case fat fraction drawn uniformly over 0-70 %
# (it was Beta(1.2, 2), mostly lean), so that compartments mostly of fat and nearly free of it are as common as
# the middle. The held-out domains keep Beta(1.2, 2): fat is not an axis they hold out.
TRAINING = {**TRAINING_2_4, "fat_fraction_beta": (1.0, 1.0)}
# The training domain of stages 21 and 22 (recipes 2.17.0 and 2.18.0), the half of model 2.19.0 that is not
# 2.12.0: 2.6.0's with the procedural compartments drawn 0.9-1.4 times as wide from the midline and 0.6-1.1
# times as deep, which takes in the flat, wide thoracolumbar domain. Training goes on from here.
TRAINING_2_19 = {**TRAINING, "compartment_width_scale": (0.9, 1.4), "compartment_depth_scale": (0.6, 1.1)}


@dataclass(frozen=True)
class HeldOutDomain:
    """A validation domain: what it holds out, and its settings on top of the training domain's.

    inside_training: for a domain the training domain has since taken in, since when; it is still
    measured (on the same draws) but no longer chooses and is not pooled with the held-out domains."""

    name: str
    holds_out: str
    overrides: dict
    needs_real_shapes: bool = False
    inside_training: str = ""


HELD_OUT = (
    HeldOutDomain("gre_in_phase", "contrast family: gradient-echo in-phase (fat bright, muscle mid-grey, CSF dark)",
                  {"contrast_probabilities": {"gre_in_phase": 1.0}}),
    HeldOutDomain("proton_density", "contrast family: proton density (fat bright, muscle and fluid mid-grey)",
                  {"contrast_probabilities": {"pd": 1.0}}),
    HeldOutDomain("inverted", "contrast family: inverted T2 (fat and fluid dark, muscle bright)",
                  {"contrast_probabilities": {"inverted": 1.0}}),
    HeldOutDomain("fine_matrix", "resolution: pixels of 0.4-0.65 mm, finer than any training image (T2)",
                  {"contrast_probabilities": {"t2": 1.0}, "pixel_spacing_mm": (0.4, 0.65), "image_size": 512,
                   "resolution_factor": (1.0, 1.3)}),
    HeldOutDomain("coarse_noisy", "resolution: 1.9-2.3 mm pixels and matrix reduction 2.6-3.2, beyond "
                  "training's 1.8 mm and 2.6, at SNR 3-5, training's lowest noise band since synthesis 2.1 (T2)",
                  {"contrast_probabilities": {"t2": 1.0}, "pixel_spacing_mm": (1.9, 2.3),
                   "resolution_factor": (2.6, 3.2), "snr": (3.0, 5.0), "image_size": 192},
                  inside_training="the training domain of model 2.4.0 (pixels to 2.4 mm, matrix reduction to 3.2)"),
    HeldOutDomain("traced_shapes", "shapes: the fifth of the traced L4/L5 masks that training never used, L3-L5 "
                  "(T2 and gradient-echo in-phase)",
                  {"contrast_probabilities": {"t2": 0.5, "gre_in_phase": 0.5}, "shape_source": "real",
                   "real_shape_split": "heldout", "levels": ("L3", "L4", "L5"), "slices_per_level": 2},
                  needs_real_shapes=True),
    HeldOutDomain("coarse_pixels", "resolution: pixels of 2.5-3.0 mm, coarser than any training image (training: "
                  "up to 2.4 mm since model 2.4.0), matrix reduction 1.0-1.3 (T2)",
                  {"contrast_probabilities": {"t2": 1.0}, "pixel_spacing_mm": (2.5, 3.0), "resolution_factor": (1.0, 1.3),
                   "image_size": 144}),
    HeldOutDomain("thoracolumbar_coarse", "resolution at the thoracolumbar junction: T12-L2, where small compartments "
                  "lie beside the kidneys, liver, spleen and ribs, at pixels of 2.5-3.0 mm, coarser than any training "
                  "image (T2 and T1; added after model 2.6.0 was released, so its card lacks it)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "pixel_spacing_mm": (2.5, 3.0),
                   "resolution_factor": (1.0, 1.3), "image_size": 144, "levels": ("T12", "L1", "L2"),
                   "slices_per_level": 2}),
    HeldOutDomain("fine_fat", "fat grain: intramuscular fat in streaks 0.3-0.9 mm wide and blotches of 0.8-2 mm, finer "
                  "than any training image's (1.2-3.5 mm and 2.5-7 mm) and seen only as partial volume, at 5-60 % fat "
                  "(T2 and T1; added after model 2.6.1 was released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "fat_streak_width_mm": (0.3, 0.9),
                   "fat_streak_length_mm": (1.5, 4.0), "fat_patch_mm": (0.8, 2.0), "fat_fraction_pct": (5.0, 60.0),
                   "fat_fraction_beta": (1.0, 1.0)}),
    HeldOutDomain("aponeuroses", "anatomy: tendinous bands inside the compartments, which training never drew: the "
                  "erector spinae aponeurosis behind, the lumbar intermuscular aponeurosis, a tendinous septum (T2 "
                  "and T1; added after model 2.6.1 was released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "aponeurosis_probability": 1.0}),
    HeldOutDomain("strong_coil", "coil: a spine coil's fall-off uncorrected, every slice 4-7 times as bright at the "
                  "back of the body as deep inside, falling off within 20-50 mm, where training's is at most 2.5 "
                  "times over 50-150 mm (T2 and T1; added after model 2.6.1 was released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "coil_probability": 1.0, "coil_gain": (3.0, 6.0),
                   "coil_falloff_mm": (20.0, 50.0)}),
    HeldOutDomain("faint_fascia", "fascia: the fascia around the compartments nearly as grey as their muscle (a "
                  "quarter of its contrast at most), so that a compartment's border with the muscles beside it shows "
                  "only by its shape, where training drew it at tendon's intensity (dark in T2 and T1, a random grey "
                  "in the random contrasts, near the muscle's only by chance) (T2 and T1; added after model 2.12.0 "
                  "was released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "fascia_contrast": (0.0, 0.25)}),
    HeldOutDomain("very_coarse_pixels", "resolution: pixels of 3.1-3.6 mm from T12 to S1, coarser than any image "
                  "of the other domains (the held-out frontier of resolution should training reach 3.0 mm), matrix "
                  "reduction 1.0-1.3, 128x128 (T2 and T1; added after model 2.12.0 was released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "pixel_spacing_mm": (3.1, 3.6),
                   "resolution_factor": (1.0, 1.3), "image_size": 128, "levels": ("T12",) + VERTEBRAE}),
    HeldOutDomain("deep_fat", "fat's place: intramuscular fat gathered next to bone (the laminae, transverse processes "
                  "and sacrum), as in fatty deep multifidus, at 10-60 % fat, where training draws none toward bone "
                  "(`deep_fat` 1.5-3.0; training 0 since synthesis 2.0) (T2 and T1; added after model 2.12.0 was "
                  "released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "deep_fat": (1.5, 3.0),
                   "fat_fraction_pct": (10.0, 60.0), "fat_fraction_beta": (1.0, 1.0)}),
    HeldOutDomain("flat_thoracolumbar", "shape: flat, wide compartments at T12-L2, 1.2-1.4 times the usual width from "
                  "the midline and 0.6-0.75 times the depth (width over depth about 3-5, where training's are about "
                  "2.4 and reach about 3.9 at the extreme), as the erector spinae spreads over the ribs in a lean back "
                  "(T2 and T1, training's pixels; added after model 2.12.0 was released)",
                  {"contrast_probabilities": {"t2": 0.5, "t1": 0.5}, "levels": ("T12", "L1", "L2"),
                   "slices_per_level": 2, "compartment_width_scale": (1.2, 1.4),
                   "compartment_depth_scale": (0.6, 0.75)},
                  inside_training="the training domain of model 2.19.0's stages 21 and 22 (compartments 0.9-1.4 "
                                  "times as wide, 0.6-1.1 times as deep)"),
)
# Seeds: DOMAIN_SEED + the domain's index for the sets that choose (epochs, runs, settings); REPORT_SEED + the
# index for fresh draws of the same domains that only report a chosen model; training recipes use others.
DOMAIN_SEED, REPORT_SEED = 9100, 9200


def training_settings(seed: int, **changes) -> SynthesisSettings:
    """The current training domain (model 2.19.0's stages and later) with a seed (and any further changes)."""
    return domain_settings(TRAINING_2_19, seed, **changes)


def domain_settings(domain: dict, seed: int, **changes) -> SynthesisSettings:
    """Synthesis settings: the defaults, a domain's, a seed and any further changes, in that order."""
    return SynthesisSettings.from_dict({**domain, "seed": seed, **changes})


def held_out_settings(domain: HeldOutDomain | str, report: bool = False) -> SynthesisSettings:
    """The settings of a held-out validation domain (synthesis 2.0's training domain, the domain's overrides,
    its own seed);
    `report`: the fresh draw that reports a chosen model instead of the one that chose it."""
    domain = held_out_domain(domain) if isinstance(domain, str) else domain
    index = HELD_OUT.index(domain)
    seed = (REPORT_SEED if report else DOMAIN_SEED) + index
    return domain_settings(HELD_OUT_BASE, seed, **{"slices_per_level": 1, **domain.overrides})


def held_out_domain(name: str) -> HeldOutDomain:
    for domain in HELD_OUT:
        if domain.name == name:
            return domain
    raise InputError(f"held-out domain {name!r} is unknown; choose from {', '.join(d.name for d in HELD_OUT)}")
