"""From a tissue map to an MR-like image: per-case contrast, texture, blur, bias, resolution and noise.

Contrast: every material gets a mean intensity drawn per case from the priors of a contrast mode
(T2 TSE: fat bright, muscle dark, CSF bright; T1: fat bright, CSF dark; fat-suppressed T2: fat
dark, fluid bright; proton density: fat bright, muscle and fluid mid-grey; gradient-echo in-phase:
fat bright, muscle mid-grey, CSF fairly dark; inverted: a T2 draw turned upside down below air;
random: any material anything; random_tissue: SynthSeg's route, every tissue code its own random
mean in any order of brightness), each tissue code a little off its material, with a small
texture. Intramuscular fat always differs from muscle by a visible margin, so fat stays learnable.
Then: an optional second anatomy blended in (through-plane partial volume of a thick slice),
partial-volume blur, a smooth multiplicative bias field with the spine coil's brightness behind
the back, a lower acquisition resolution (k-space truncation, with its ringing), Rician noise at a
random SNR, optionally motion ghosts and wrap-around along the phase-encoding axis. The result is
float32, normalised so that its 1st..99th percentile spans 0..1 (values beyond are kept), or raw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .fields import smooth_random_field
from .tissues import APONEUROSES, COMPARTMENT_MUSCLE, COMPARTMENT_TISSUES, MATERIAL, Material, Tissue

# Mean intensity ranges (low, high) per material, for each realistic contrast mode.
PRIORS: dict[str, dict[Material, tuple[float, float]]] = {
    "t2": {
        Material.AIR: (0.0, 0.02), Material.SKIN: (0.3, 0.6), Material.FAT: (0.75, 1.0),
        Material.MUSCLE: (0.12, 0.28), Material.TENDON: (0.02, 0.1), Material.CORTEX: (0.0, 0.06),
        Material.MARROW: (0.35, 0.7), Material.DISC_ANNULUS: (0.05, 0.2), Material.DISC_NUCLEUS: (0.2, 0.9),
        Material.CSF: (0.85, 1.15), Material.FLUID: (0.7, 1.1), Material.NERVE: (0.2, 0.4),
        Material.KIDNEY: (0.4, 0.7), Material.LIVER: (0.15, 0.3), Material.SPLEEN: (0.4, 0.6),
        Material.PANCREAS: (0.3, 0.45), Material.ARTERY: (0.0, 0.15), Material.VEIN: (0.05, 0.5),
        Material.BOWEL_WALL: (0.2, 0.4), Material.BOWEL_CONTENT: (0.25, 0.6), Material.GAS: (0.0, 0.04),
    },
    "t1": {
        Material.AIR: (0.0, 0.02), Material.SKIN: (0.3, 0.5), Material.FAT: (0.8, 1.0),
        Material.MUSCLE: (0.15, 0.3), Material.TENDON: (0.02, 0.08), Material.CORTEX: (0.0, 0.05),
        Material.MARROW: (0.55, 0.85), Material.DISC_ANNULUS: (0.1, 0.25), Material.DISC_NUCLEUS: (0.2, 0.35),
        Material.CSF: (0.05, 0.2), Material.FLUID: (0.05, 0.25), Material.NERVE: (0.25, 0.35),
        Material.KIDNEY: (0.3, 0.45), Material.LIVER: (0.35, 0.5), Material.SPLEEN: (0.25, 0.35),
        Material.PANCREAS: (0.4, 0.55), Material.ARTERY: (0.0, 0.2), Material.VEIN: (0.05, 0.35),
        Material.BOWEL_WALL: (0.2, 0.35), Material.BOWEL_CONTENT: (0.2, 0.5), Material.GAS: (0.0, 0.04),
    },
    "fat_suppressed": {
        Material.AIR: (0.0, 0.02), Material.SKIN: (0.2, 0.4), Material.FAT: (0.05, 0.25),
        Material.MUSCLE: (0.15, 0.3), Material.TENDON: (0.02, 0.08), Material.CORTEX: (0.0, 0.05),
        Material.MARROW: (0.1, 0.3), Material.DISC_ANNULUS: (0.05, 0.2), Material.DISC_NUCLEUS: (0.3, 0.9),
        Material.CSF: (0.85, 1.15), Material.FLUID: (0.75, 1.1), Material.NERVE: (0.3, 0.5),
        Material.KIDNEY: (0.55, 0.85), Material.LIVER: (0.2, 0.35), Material.SPLEEN: (0.5, 0.75),
        Material.PANCREAS: (0.3, 0.5), Material.ARTERY: (0.0, 0.3), Material.VEIN: (0.1, 0.6),
        Material.BOWEL_WALL: (0.25, 0.45), Material.BOWEL_CONTENT: (0.3, 0.8), Material.GAS: (0.0, 0.04),
    },
}
# Proton density: little T1 or T2 weighting, so fat bright and most soft tissue and fluid mid-grey.
PRIORS["pd"] = {**PRIORS["t2"], Material.FAT: (0.8, 1.0), Material.MUSCLE: (0.3, 0.45), Material.CSF: (0.45, 0.7),
                Material.FLUID: (0.45, 0.7), Material.MARROW: (0.6, 0.85), Material.DISC_NUCLEUS: (0.4, 0.7),
                Material.LIVER: (0.35, 0.5), Material.KIDNEY: (0.45, 0.6), Material.SPLEEN: (0.45, 0.6)}
# Gradient-echo in-phase (the fat image of a Dixon pair without the water): fat bright, muscle mid-grey,
# CSF fairly dark, vessels bright with inflow.
PRIORS["gre_in_phase"] = {**PRIORS["t1"], Material.MUSCLE: (0.3, 0.5), Material.CSF: (0.12, 0.3),
                          Material.FLUID: (0.15, 0.35), Material.ARTERY: (0.5, 0.9), Material.VEIN: (0.3, 0.8),
                          Material.MARROW: (0.5, 0.8), Material.CORTEX: (0.0, 0.08)}
# Texture (standard deviation relative to the mean scale) per material; others get 0.02..0.05.
TEXTURE = {Material.BOWEL_CONTENT: (0.05, 0.15), Material.MARROW: (0.03, 0.08), Material.AIR: (0.0, 0.0)}
MIN_FAT_MUSCLE_GAP = 0.15


@dataclass(frozen=True)
class Contrast:
    """One case's contrast: the mode it was drawn from and each material's mean and texture."""

    mode: str
    means: dict[Material, float]
    textures: dict[Material, float]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "means": {m.value: round(v, 4) for m, v in self.means.items()}}


def draw_contrast(mode: str, rng: np.random.Generator) -> Contrast:
    """Material means from the mode's priors (uniform 0..1 for "random" and "random_tissue"; a T2 draw
    turned upside down for "inverted"), fat kept apart from muscle. "random_tissue" redraws every
    tissue code when the image is rendered (tissue_table)."""
    if mode in ("random", "random_tissue"):
        means = {m: (float(rng.uniform(0.0, 0.03)) if m is Material.AIR else float(rng.uniform(0.0, 1.0))) for m in Material}
    elif mode == "inverted":
        means = {m: (float(rng.uniform(0.0, 0.03)) if m is Material.AIR else 1.0 - float(rng.uniform(*PRIORS["t2"][m])) * 0.9)
                 for m in Material}
    else:
        means = {m: float(rng.uniform(*PRIORS[mode][m])) for m in Material}
    muscle, gap = means[Material.MUSCLE], means[Material.FAT] - means[Material.MUSCLE]
    if abs(gap) < MIN_FAT_MUSCLE_GAP:
        step = MIN_FAT_MUSCLE_GAP if gap >= 0 else -MIN_FAT_MUSCLE_GAP
        means[Material.FAT] = muscle + step if 0.0 <= muscle + step <= 1.0 else muscle - step
    textures = {m: float(rng.uniform(*TEXTURE.get(m, (0.02, 0.05)))) for m in Material}
    return Contrast(mode, means, textures)


def tissue_table(contrast: Contrast, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and texture per tissue code (256 entries): the material's, each code a little off it."""
    means, textures = np.zeros(256), np.zeros(256)
    for tissue in Tissue:
        if tissue in APONEUROSES:
            continue
        material = MATERIAL[tissue]
        jitter = 1.0 if material in (Material.AIR, Material.FAT, Material.MUSCLE) else rng.uniform(0.9, 1.1)
        means[tissue] = contrast.means[material] * jitter
        textures[tissue] = contrast.textures[material]
    muscle = np.array([t for t in Tissue if MATERIAL[t] is Material.MUSCLE])
    means[muscle] *= rng.uniform(0.93, 1.07, muscle.size)
    means[list(APONEUROSES)] = contrast.means[Material.TENDON]
    textures[list(APONEUROSES)] = contrast.textures[Material.TENDON]
    if contrast.mode == "random_tissue":
        redraw_tissues(means, rng)
    return means, textures


def fade_fascia(means: np.ndarray, textures: np.ndarray, share: float) -> None:
    """The fascia's mean moved towards the compartments' muscle, keeping `share` of its difference
    from it (0: as grey as that muscle, with its texture), in place."""
    muscle = [int(t) for t in COMPARTMENT_MUSCLE]
    muscle_mean = float(np.mean(means[muscle]))
    means[Tissue.FASCIA] = muscle_mean + share * (means[Tissue.FASCIA] - muscle_mean)
    textures[Tissue.FASCIA] = share * textures[Tissue.FASCIA] + (1.0 - share) * float(np.mean(textures[muscle]))


def redraw_tissues(means: np.ndarray, rng: np.random.Generator) -> None:
    """SynthSeg's route: every tissue code outside the compartments a new uniform 0..1 mean, in place.

    The compartments' muscle and intramuscular fat keep their (case) means, so that fat inside the
    compartment still differs from its muscle; everything around them, the fat and muscle outside
    included, may take any brightness."""
    for tissue in Tissue:
        if tissue is not Tissue.BACKGROUND and tissue not in COMPARTMENT_TISSUES:
            means[tissue] = rng.uniform(0.0, 1.0)


@dataclass(frozen=True)
class CoilProfile:
    """The spine coil under the patient's back: with `probability` a slice is brighter towards the back by
    1 + gain x exp(-depth / fall-off), gain and fall-off (mm) drawn from their ranges."""

    probability: float = 0.8
    gain: tuple[float, float] = (0.0, 1.5)
    falloff_mm: tuple[float, float] = (50.0, 150.0)


def bias_field(shape: tuple[int, int], body: np.ndarray, spacing: float, strength: float,
               rng: np.random.Generator, coil: CoilProfile = CoilProfile()) -> np.ndarray:
    """exp(smooth random field) times a coil profile brighter towards the back (the patient lies on the coil)."""
    smooth = smooth_random_field(shape, 4, rng)
    field = np.exp(strength * smooth / max(float(np.abs(smooth).max()), 1e-6))
    rows = np.nonzero(body.any(axis=1))[0]
    if rows.size and rng.random() < coil.probability:
        back = rows.max()
        depth_mm = (back - np.arange(shape[0]))[:, None] * spacing
        gain = rng.uniform(*coil.gain)
        field = field * (1.0 + gain * np.exp(-np.clip(depth_mm, 0, None) / rng.uniform(*coil.falloff_mm)))
    return field


def lowpass(shape: tuple[int, int], factors: tuple[float, float]) -> np.ndarray:
    """k-space mask keeping the central 1/factor of the frequencies along rows and columns."""
    ky = np.abs(np.fft.fftfreq(shape[0]))[:, None]
    kx = np.abs(np.fft.fftfreq(shape[1]))[None, :]
    return ((ky <= 0.5 / factors[0]) & (kx <= 0.5 / factors[1])).astype(float)


def render_image(tissues: np.ndarray, contrast: Contrast, spacing: float, rng: np.random.Generator, *,
                 snr: tuple[float, float], resolution_factor: tuple[float, float], bias_strength: float,
                 normalise: bool, partner: np.ndarray | None = None, ghost_probability: float = 0.1,
                 wrap_probability: float = 0.0, coil: CoilProfile = CoilProfile(),
                 fascia_contrast: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """An MR-like float32 image of a tissue map.

    partner: the anatomy a little further along the spine, blended in with a random weight up to
    0.5 (the through-plane partial volume of a thick slice). fascia_contrast: the range of the share
    of its contrast to muscle that the fascia keeps (`fade_fascia`; (1, 1) draws nothing)."""
    means, textures = tissue_table(contrast, rng)
    if fascia_contrast != (1.0, 1.0):
        fade_fascia(means, textures, float(rng.uniform(*fascia_contrast)))
    texture = gaussian_filter(rng.standard_normal(tissues.shape), rng.uniform(0.5, 1.2))
    texture /= max(float(texture.std()), 1e-6)
    image = means[tissues] + textures[tissues] * texture
    if partner is not None:
        weight = float(rng.uniform(0.1, 0.5))
        image = (1.0 - weight) * image + weight * (means[partner] + textures[partner] * texture)
    image = gaussian_filter(image, rng.uniform(0.3, 0.9))
    body = tissues != Tissue.BACKGROUND
    image *= bias_field(tissues.shape, body, spacing, rng.uniform(0.0, bias_strength), rng, coil)
    factors = (float(rng.uniform(*resolution_factor)), float(rng.uniform(*resolution_factor)))
    mask = lowpass(tissues.shape, factors)
    level = float(np.mean(image[body])) if body.any() else 1.0
    sigma = level / float(rng.uniform(*snr))
    noise = (rng.standard_normal(tissues.shape) + 1j * rng.standard_normal(tissues.shape)) * sigma
    spectrum = np.fft.fft2(image) + np.fft.fft2(noise) * np.sqrt(factors[0] * factors[1])
    if rng.random() < ghost_probability:
        spectrum = spectrum * motion_ghosts(tissues.shape, rng)
    image = np.abs(np.fft.ifft2(spectrum * mask))
    if wrap_probability > 0 and rng.random() < wrap_probability:
        image = wrap_around(image, body, rng)
    image = image ** rng.uniform(0.8, 1.25)
    if normalise:
        low, high = np.percentile(image, (1.0, 99.0))
        image = (image - low) / max(float(high - low), 1e-6)
    return image.astype(np.float32)


def motion_ghosts(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A k-space phase modulation along the phase-encoding (row) axis that makes faint ghost copies."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    period = int(rng.integers(2, 6))
    lines = (np.arange(shape[0]) % period == 0)[:, None]
    shift = rng.uniform(0.3, 1.5)
    return np.where(lines, np.exp(-2j * np.pi * ky * shift), 1.0)


def wrap_around(image: np.ndarray, body: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Aliasing of a phase-encoding field of view smaller than the body: what lies beyond one edge of
    the field (3 to 20 % of the body's extent, mostly left-right) folds in over the other edge. The
    image keeps its size and its content beyond the field (the crop is made separately, where it
    cannot cut the compartments)."""
    axis = 1 if rng.random() < 0.8 else 0
    extent = np.nonzero(body.any(axis=1 - axis))[0]
    if extent.size < 8:
        return image
    fold = max(1, int(round(extent.size * rng.uniform(0.03, 0.2))))
    low, high = int(extent[0]) + fold, int(extent[-1]) + 1 - fold  # the field of view: rows or columns [low, high)
    source = np.moveaxis(image, axis, 0)
    folded = source.copy()
    outside = np.nonzero((np.arange(source.shape[0]) < low) | (np.arange(source.shape[0]) >= high))[0]
    np.add.at(folded, low + (outside - low) % (high - low), source[outside])
    return np.moveaxis(folded, 0, axis)
