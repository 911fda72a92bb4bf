"""A procedural axial lumbar phantom with exact truth: label maps and T2-like images per slice.

Simple anatomy in display orientation (patient's right on the image's left, anterior up): body
outline with subcutaneous fat, vertebral body with cortex, spinal canal, spinous process, psoas,
and the two paraspinal compartments holding intramuscular fat in streaks at a chosen fraction.
It makes quick test cases; the product's sample and training data come from the synthesiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE

# Tissue codes of the phantom's own anatomy map (the scheme labels 1-4 are kept as they are).
SUBCUTANEOUS_FAT, BODY, BONE, CORTEX, CSF, PSOAS = 10, 11, 12, 13, 14, 15

T2_INTENSITY = {
    0: 0.0,
    RIGHT_MUSCLE: 280.0,
    LEFT_MUSCLE: 280.0,
    RIGHT_FAT: 860.0,
    LEFT_FAT: 860.0,
    SUBCUTANEOUS_FAT: 900.0,
    BODY: 420.0,
    BONE: 520.0,
    CORTEX: 90.0,
    CSF: 1100.0,
    PSOAS: 300.0,
}


@dataclass(frozen=True)
class PhantomSlice:
    """Anatomy map (tissue codes), the scheme label map and the T2-like image of one slice."""

    anatomy: np.ndarray
    labels: np.ndarray
    image: np.ndarray
    fat_fraction_pct: float


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def anatomy_map(shape: tuple[int, int], spacing_mm: float, scale: float) -> np.ndarray:
    """Tissue codes of one slice; `scale` (about 0.8-1.2) varies the muscle size along the spine."""
    rows, columns = shape
    y, x = np.mgrid[0:rows, 0:columns].astype(float)
    x = (x - columns / 2) * spacing_mm  # mm towards the patient's left
    y = (y - rows / 2) * spacing_mm + 10  # mm towards posterior
    out = np.zeros(shape, dtype=np.uint8)
    out[_ellipse(x, y, 0, 0, 140, 104)] = SUBCUTANEOUS_FAT
    out[_ellipse(x, y, 0, 0, 126, 90)] = BODY
    for side in (-1, 1):
        out[_ellipse(x, y, side * 42, 18, 15 * scale, 18 * scale)] = PSOAS
    out[_ellipse(x, y, 0, 18, 24, 20)] = CORTEX
    out[_ellipse(x, y, 0, 18, 21, 17)] = BONE
    out[_ellipse(x, y, 0, 48, 9, 8)] = CSF
    for side, muscle in ((-1, RIGHT_MUSCLE), (1, LEFT_MUSCLE)):
        out[_ellipse(x, y, side * 34, 68, 29 * scale, 20 * scale) & (np.abs(x) > 6)] = muscle
    out[(np.abs(x) <= 4) & (y > 56) & (y < 86)] = CORTEX
    return out


def streak_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth random field elongated left-right, like fatty streaks between muscle fascicles."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(rng.standard_normal(shape), sigma=(1.2, 3.5))


def place_fat(anatomy: np.ndarray, fat_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Scheme labels: in each compartment the brightest-field share `fat_fraction` becomes fat."""
    labels = np.where(np.isin(anatomy, (RIGHT_MUSCLE, LEFT_MUSCLE)), anatomy, 0).astype(np.uint8)
    field = streak_field(anatomy.shape, rng)
    for muscle, fat in ((RIGHT_MUSCLE, RIGHT_FAT), (LEFT_MUSCLE, LEFT_FAT)):
        inside = np.flatnonzero(labels == muscle)
        n_fat = int(round(fat_fraction * inside.size))
        if n_fat:
            brightest = inside[np.argsort(field.ravel()[inside])[-n_fat:]]
            labels.ravel()[brightest] = fat
    return labels


def t2_image(anatomy: np.ndarray, labels: np.ndarray, rng: np.random.Generator, noise: float = 35.0) -> np.ndarray:
    """T2-like image: tissue intensities, a smooth bias field, slight blur and Rician-like noise."""
    from scipy.ndimage import gaussian_filter

    tissue = np.where(labels > 0, labels, anatomy)
    image = np.vectorize(T2_INTENSITY.get, otypes=[float])(tissue)
    rows, columns = anatomy.shape
    y, x = np.mgrid[0:rows, 0:columns] / max(rows, columns)
    bias = 1.0 + 0.12 * np.sin(2.2 * x + rng.uniform(0, 3)) + 0.08 * np.cos(1.7 * y + rng.uniform(0, 3))
    image = gaussian_filter(image * bias, 0.9)
    real = image + rng.normal(0, noise, image.shape)
    imaginary = rng.normal(0, noise, image.shape)
    return np.hypot(real, imaginary).astype(np.float32)


def phantom_slice(
    shape: tuple[int, int], spacing_mm: float, scale: float, fat_fraction: float, rng: np.random.Generator
) -> PhantomSlice:
    """One phantom slice with exactly `fat_fraction` (to the pixel) of each compartment as fat."""
    anatomy = anatomy_map(shape, spacing_mm, scale)
    labels = place_fat(anatomy, fat_fraction, rng)
    compartment = labels > 0
    fat = np.isin(labels, (RIGHT_FAT, LEFT_FAT))
    return PhantomSlice(anatomy, labels, t2_image(anatomy, labels, rng), float(100.0 * fat.sum() / compartment.sum()))
