"""How synthetic training data are made: one frozen dataclass, saved in every data set's dataset.json."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields

from ParaspinalSegLib.errors import InputError

from .compartments import WIDTH_MM
from .fat import PATCH_MM, STREAK_LENGTH_MM, STREAK_WIDTH_MM
from .levels import ALL_VERTEBRAE, VERTEBRAE

# The generator's version, written into every dataset.json beside the settings that made the set. 2.0.0:
# domain randomisation. 2.1.0: the settings added since (T12 in levels, habitus_spread, fat_fraction_beta, the
# fat grain, aponeuroses, the coil profile, the fascia's contrast), each at a default that makes 2.0.0's data sets
# again to the byte.
SYNTHESIS_VERSION = "2.1.0"
SHAPE_SOURCES = ("auto", "procedural", "real")
CONTRASTS = ("t2", "t1", "fat_suppressed", "pd", "gre_in_phase", "inverted", "random", "random_tissue")
SHAPE_SPLITS = ("all", "train", "heldout")
MAX_HABITUS_SPREAD = 2.0  # keeps every range of anatomy.draw_habitus positive (abdominal wall 2-18 mm at 2)
MAX_SUPERSAMPLING = 8  # sub-pixels a side: a 256-pixel slice drawn on a 2048-pixel grid at most


def _did_you_mean(value: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class SynthesisSettings:
    """Settings of the label-map-to-image synthesiser (ranges are drawn uniformly unless said otherwise).

    image_size: rows = columns of every slice. pixel_spacing_mm: range of the in-plane spacing,
    drawn per case (field of view = size x spacing). slice_spacing_mm: range of the nominal
    distance between a case's slices (slices are independent; only the NIfTI grid uses it).
    levels, slices_per_level: each case has that many slices of each vertebra; each slice is the
    disc below its vertebra with disc_probability (never at S1). levels may add "T12" (with the
    T12/L1 disc) above the default L1..S1; no data set is made with it unless asked. A vertebra named
    twice gets twice the slices (more of the levels a training set is short of). fat_fraction_pct: range of the
    case's intramuscular fat fraction (per-slice and per-side variation stay inside it); fat_fraction_beta: the
    (a, b) of the Beta distribution the case's fraction is drawn from over that range: (1.2, 2) mostly lean
    muscle, sometimes very fatty (the default), (1, 1) uniform.
    shape_source: "procedural" (drawn compartments only), "real" (the expert-traced L4/L5 masks at
    real_shape_levels, procedural elsewhere; an error if the masks are missing) or "auto" (real masks with
    real_shape_probability when available, procedural otherwise); real_shape_levels: L1..S1 (the traced
    L4/L5 masks are never put on T12). shapes_zip: the masks' zip, ""
    for ../shared/data/shapes beside the repository. compartment_width_mm: the procedural
    compartments' typical width from the midline at L1..S1 (scaled by the patient's size and muscle
    bulk; T12's is fixed, see compartments.T12_WIDTH_MM). compartment_width_scale, compartment_depth_scale:
    ranges of factors on a procedural compartment's width and depth, drawn per slice (flat, wide strips below
    a depth factor of 1 and above a width factor of 1); (1, 1), the default, draws nothing.
    habitus_spread: how much wider than the default the patients' builds are drawn (see
    anatomy.draw_habitus): 1 the default ranges, 1.5 or 2 thinner and far more obese bodies, smaller and
    larger builds, more atrophy and more bulk; below 1 narrower. deep_fat: range of the per-case weight
    that draws intramuscular fat towards bone (the deep fibres on the laminae and transverse processes);
    (0, 0) leaves it out. fat_streak_length_mm,
    fat_streak_width_mm, fat_patch_mm: ranges of the per-case grain of the intramuscular fat (streaks
    between fascicles, blotches); widths below the pixel make fine marbling that the image shows only as
    partial volume, the truth still counting each fat pixel whole. bone_gap_mm: gaps up to this
    size between a compartment and the posterior elements it lies on are filled with its muscle (0:
    the outlines as drawn). contrast_probabilities: (mode, weight) pairs
    of the per-case contrast. rotation_deg, scale, elastic_mm: in-plane spatial augmentation.
    snr: signal-to-noise range of the Rician noise; resolution_factor: range of the acquisition
    matrix reduction (1 = full); bias_strength: amplitude of the smooth multiplicative bias field.
    coil_probability, coil_gain, coil_falloff_mm: the spine coil's brightness behind the back, on that
    share of slices: 1 + gain x exp(-depth / fall-off), depth in mm from the back of the body (a gain of
    1.5 makes the skin of the back 2.5 times as bright as deep tissue).
    normalise: each slice scaled so that its 1st..99th percentile is 0..1, values beyond kept (else
    raw: material means of 0..1 times the bias field, with noise).
    Domain randomisation (synthesis 2.0; the defaults make the 1.x data sets): contrast_per_slice: a
    new contrast for every slice instead of one per case; partial_volume_probability: share of slices
    blended with the anatomy slightly further along the spine (a thick slice); ghost_probability:
    share with motion ghosts; wrap_probability: share with wrap-around; crop_probability: share whose
    field of view is cut down to a random rectangle that still holds both compartments;
    aponeurosis_probability: share of slices whose compartments carry tendinous bands inside the fascia
    (the erector spinae aponeurosis behind, the lumbar intermuscular aponeurosis, a tendinous septum; see
    aponeuroses.py), labelled as the compartment's muscle; fascia_contrast: range of the share of the
    tendon-to-muscle contrast that the fascia keeps, drawn per slice (its mean intensity is muscle's plus
    that share of the difference; 1, the default, is tendon's and draws nothing; 0 makes the fascia as
    grey as muscle, a border seen only by its shape); real_shape_split: which traced masks may be
    used, "all", "train" (four in five) or "heldout" (every fifth, by file name order), so that
    validation can use traced shapes that training never saw; site_contrast_seed: 0 or more gives every
    patient the one contrast (mode, material means and textures) drawn from a generator seeded by it alone,
    as one protocol at one site does (with contrast_per_slice off; -1, the default, draws each patient its own).
    in_plane_supersampling: K; above 1 each slice is drawn at 1/K of its pixel spacing and its image averaged
    over each K x K block, so that a pixel shows its area's mean (in-plane partial volume: a fascia thinner than
    the pixel stays a faint line instead of vanishing or filling whole pixels); labels and tissues are each
    block's centre sub-pixel, as a pixel's are at K = 1. On the fine grid the matrix reduction is multiplied by
    K, so that the acquired k-space, noise included, stays the pixel grid's and snr keeps its meaning at the
    pixel. 1, the default, samples each pixel at its centre.
    """

    image_size: int = 256
    pixel_spacing_mm: tuple[float, float] = (0.75, 1.6)
    slice_spacing_mm: tuple[float, float] = (4.0, 5.0)
    levels: tuple[str, ...] = VERTEBRAE
    slices_per_level: int = 2
    disc_probability: float = 0.4
    fat_fraction_pct: tuple[float, float] = (0.0, 70.0)
    fat_fraction_beta: tuple[float, float] = (1.2, 2.0)
    shape_source: str = "auto"
    real_shape_probability: float = 0.5
    real_shape_levels: tuple[str, ...] = ("L3", "L4", "L5")
    shapes_zip: str = ""
    compartment_width_mm: tuple[float, float, float, float, float, float] = WIDTH_MM
    compartment_width_scale: tuple[float, float] = (1.0, 1.0)
    compartment_depth_scale: tuple[float, float] = (1.0, 1.0)
    deep_fat: tuple[float, float] = (0.0, 0.0)
    fat_streak_length_mm: tuple[float, float] = STREAK_LENGTH_MM
    fat_streak_width_mm: tuple[float, float] = STREAK_WIDTH_MM
    fat_patch_mm: tuple[float, float] = PATCH_MM
    habitus_spread: float = 1.0
    bone_gap_mm: float = 0.0
    contrast_probabilities: tuple[tuple[str, float], ...] = (
        ("t2", 0.55), ("t1", 0.15), ("fat_suppressed", 0.1), ("random", 0.2),
    )
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    elastic_mm: float = 3.0
    snr: tuple[float, float] = (8.0, 50.0)
    resolution_factor: tuple[float, float] = (1.0, 2.2)
    bias_strength: float = 0.3
    coil_probability: float = 0.8
    coil_gain: tuple[float, float] = (0.0, 1.5)
    coil_falloff_mm: tuple[float, float] = (50.0, 150.0)
    normalise: bool = True
    contrast_per_slice: bool = False
    partial_volume_probability: float = 0.0
    ghost_probability: float = 0.1
    wrap_probability: float = 0.0
    crop_probability: float = 0.0
    aponeurosis_probability: float = 0.0
    fascia_contrast: tuple[float, float] = (1.0, 1.0)
    real_shape_split: str = "all"
    site_contrast_seed: int = -1
    in_plane_supersampling: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.compartment_width_mm) != len(VERTEBRAE) or min(self.compartment_width_mm) <= 0:
            raise InputError(f"synthesis setting compartment_width_mm={self.compartment_width_mm}: needs "
                             f"{len(VERTEBRAE)} positive widths, one per level {VERTEBRAE[0]}..{VERTEBRAE[-1]}")
        for name in ("pixel_spacing_mm", "slice_spacing_mm", "fat_fraction_pct", "scale", "snr", "resolution_factor",
                     "deep_fat", "fat_streak_length_mm", "fat_streak_width_mm", "fat_patch_mm", "coil_gain",
                     "coil_falloff_mm", "fascia_contrast"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise InputError(f"synthesis setting {name}={getattr(self, name)}: needs 0 <= low <= high")
        for name in ("partial_volume_probability", "ghost_probability", "wrap_probability", "crop_probability",
                     "aponeurosis_probability", "coil_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"synthesis setting {name}={getattr(self, name)}: needs a probability 0..1")
        if self.real_shape_split not in SHAPE_SPLITS:
            raise InputError(f"synthesis setting real_shape_split={self.real_shape_split!r}: choose one of "
                             f"{', '.join(SHAPE_SPLITS)}" + _did_you_mean(self.real_shape_split, SHAPE_SPLITS))
        if not 0 < self.habitus_spread <= MAX_HABITUS_SPREAD:
            raise InputError(f"synthesis setting habitus_spread={self.habitus_spread}: needs more than 0 and at "
                             f"most {MAX_HABITUS_SPREAD} (1: the default builds)")
        if self.fascia_contrast[1] > 1:
            raise InputError(f"synthesis setting fascia_contrast={self.fascia_contrast}: a share of at most 1")
        if self.coil_falloff_mm[0] <= 0:
            raise InputError(f"synthesis setting coil_falloff_mm={self.coil_falloff_mm}: needs a fall-off above 0 mm")
        for name in ("compartment_width_scale", "compartment_depth_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise InputError(f"synthesis setting {name}={getattr(self, name)}: needs 0 < low <= high")
        if self.bone_gap_mm < 0:
            raise InputError(f"synthesis setting bone_gap_mm={self.bone_gap_mm}: needs 0 or more")
        if not 1 <= self.in_plane_supersampling <= MAX_SUPERSAMPLING:
            raise InputError(f"synthesis setting in_plane_supersampling={self.in_plane_supersampling}: needs 1 to "
                             f"{MAX_SUPERSAMPLING} sub-pixels a side (1: each pixel sampled at its centre)")
        if self.image_size < 64:
            raise InputError(f"synthesis setting image_size={self.image_size}: needs at least 64 pixels")
        if len(self.fat_fraction_beta) != 2 or min(self.fat_fraction_beta) <= 0:
            raise InputError(f"synthesis setting fat_fraction_beta={self.fat_fraction_beta}: needs two numbers above 0")
        if self.fat_fraction_pct[1] > 100:
            raise InputError(f"synthesis setting fat_fraction_pct={self.fat_fraction_pct}: percentages above 100")
        if self.shape_source not in SHAPE_SOURCES:
            raise InputError(
                f"synthesis setting shape_source={self.shape_source!r}: choose one of {', '.join(SHAPE_SOURCES)}"
                + _did_you_mean(self.shape_source, SHAPE_SOURCES)
            )
        for level in self.levels:
            if level not in ALL_VERTEBRAE:
                raise InputError(
                    f"synthesis setting level {level!r}: choose from {', '.join(ALL_VERTEBRAE)}"
                    + _did_you_mean(level, ALL_VERTEBRAE)
                )
        for level in self.real_shape_levels:
            if level not in VERTEBRAE:
                raise InputError(
                    f"synthesis setting real_shape_levels: {level!r}: choose from {', '.join(VERTEBRAE)} (the traced "
                    "L4/L5 masks are not put on thoracic levels)" + _did_you_mean(level, VERTEBRAE)
                )
        if not self.levels or self.slices_per_level < 1:
            raise InputError("synthesis settings: at least one level and one slice per level are needed")
        for mode, weight in self.contrast_probabilities:
            if mode not in CONTRASTS or weight < 0:
                raise InputError(
                    f"synthesis setting contrast_probabilities: {mode!r}: {weight} is not a known contrast "
                    f"({', '.join(CONTRASTS)}) with a weight >= 0" + _did_you_mean(mode, CONTRASTS)
                )
        if sum(weight for _, weight in self.contrast_probabilities) <= 0:
            raise InputError("synthesis setting contrast_probabilities: the weights add up to 0")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["contrast_probabilities"] = {mode: weight for mode, weight in self.contrast_probabilities}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SynthesisSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown synthesis settings {unknown}; known: {sorted(known)}")
        data = dict(data)
        for field in fields(cls):  # JSON gives lists where the settings hold tuples
            if field.name in data and field.name != "contrast_probabilities" and field.type.startswith("tuple"):
                data[field.name] = tuple(data[field.name])
        if isinstance(data.get("contrast_probabilities"), dict):
            data["contrast_probabilities"] = tuple(data["contrast_probabilities"].items())
        elif "contrast_probabilities" in data:
            data["contrast_probabilities"] = tuple(tuple(pair) for pair in data["contrast_probabilities"])
        return cls(**data)
