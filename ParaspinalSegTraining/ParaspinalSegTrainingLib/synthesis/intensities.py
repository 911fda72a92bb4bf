"""From a tissue map to an MR-like image: per-case contrast, texture, blur, bias, resolution and noise.

Contrast: every material gets a mean intensity drawn per case from the priors of a contrast mode
(T2 TSE: fat bright, muscle dark, CSF bright; T1: fat bright, CSF dark; fat-suppressed T2: fat
dark, fluid bright; random: anything), each tissue code a little off its material, with a small
texture. Intramuscular fat always differs from muscle by a visible margin, so fat stays learnable.
Then: partial-volume blur, a smooth multiplicative bias field with the spine coil's brightness
behind the back, a lower acquisition resolution (k-space truncation, with its ringing), Rician
noise at a random SNR, and optionally motion ghosts. The result is float32, normalised so that
its 1st..99th percentile spans 0..1 (values beyond are kept), or left raw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .fields import smooth_random_field
from .tissues import MATERIAL, Material, Tissue

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
    """Material means from the mode's priors (uniform 0..1 for "random"), fat kept apart from muscle."""
    if mode == "random":
        means = {m: (float(rng.uniform(0.0, 0.03)) if m is Material.AIR else float(rng.uniform(0.0, 1.0))) for m in Material}
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
        material = MATERIAL[tissue]
        jitter = 1.0 if material in (Material.AIR, Material.FAT, Material.MUSCLE) else rng.uniform(0.9, 1.1)
        means[tissue] = contrast.means[material] * jitter
        textures[tissue] = contrast.textures[material]
    muscle = np.array([t for t in Tissue if MATERIAL[t] is Material.MUSCLE])
    means[muscle] *= rng.uniform(0.93, 1.07, muscle.size)
    return means, textures


def bias_field(shape: tuple[int, int], body: np.ndarray, spacing: float, strength: float,
               rng: np.random.Generator) -> np.ndarray:
    """exp(smooth random field) times a coil profile brighter towards the back (the patient lies on the coil)."""
    smooth = smooth_random_field(shape, 4, rng)
    field = np.exp(strength * smooth / max(float(np.abs(smooth).max()), 1e-6))
    rows = np.nonzero(body.any(axis=1))[0]
    if rows.size and rng.random() < 0.8:
        back = rows.max()
        depth_mm = (back - np.arange(shape[0]))[:, None] * spacing
        field = field * (1.0 + rng.uniform(0.0, 1.5) * np.exp(-np.clip(depth_mm, 0, None) / rng.uniform(50.0, 150.0)))
    return field


def lowpass(shape: tuple[int, int], factors: tuple[float, float]) -> np.ndarray:
    """k-space mask keeping the central 1/factor of the frequencies along rows and columns."""
    ky = np.abs(np.fft.fftfreq(shape[0]))[:, None]
    kx = np.abs(np.fft.fftfreq(shape[1]))[None, :]
    return ((ky <= 0.5 / factors[0]) & (kx <= 0.5 / factors[1])).astype(float)


def render_image(tissues: np.ndarray, contrast: Contrast, spacing: float, rng: np.random.Generator, *,
                 snr: tuple[float, float], resolution_factor: tuple[float, float], bias_strength: float,
                 normalise: bool) -> np.ndarray:
    """An MR-like float32 image of a tissue map."""
    means, textures = tissue_table(contrast, rng)
    texture = gaussian_filter(rng.standard_normal(tissues.shape), rng.uniform(0.5, 1.2))
    texture /= max(float(texture.std()), 1e-6)
    image = means[tissues] + textures[tissues] * texture
    image = gaussian_filter(image, rng.uniform(0.3, 0.9))
    body = tissues != Tissue.BACKGROUND
    image *= bias_field(tissues.shape, body, spacing, rng.uniform(0.0, bias_strength), rng)
    factors = (float(rng.uniform(*resolution_factor)), float(rng.uniform(*resolution_factor)))
    mask = lowpass(tissues.shape, factors)
    level = float(np.mean(image[body])) if body.any() else 1.0
    sigma = level / float(rng.uniform(*snr))
    noise = (rng.standard_normal(tissues.shape) + 1j * rng.standard_normal(tissues.shape)) * sigma
    spectrum = np.fft.fft2(image) + np.fft.fft2(noise) * np.sqrt(factors[0] * factors[1])
    if rng.random() < 0.1:
        spectrum = spectrum * motion_ghosts(tissues.shape, rng)
    image = np.abs(np.fft.ifft2(spectrum * mask))
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
