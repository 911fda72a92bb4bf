"""Fat quantification: mixtures of known composition, with noise and bias field."""

import numpy as np
import pytest

from ParaspinalSegLib.measure.fat import FatMethod, FatSettings, fit_gaussian_mixture, otsu_threshold, quantify_fat


def mixture_slice(fat_fraction: float, seed: int, bias: float = 0.2, noise: float = 30.0):
    """A 120 x 90 compartment whose fat (intensity 300 vs muscle 100) lies in streaks of known share."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = (120, 90)
    field = gaussian_filter(rng.standard_normal(shape), (1.0, 3.0)).ravel()
    fat = np.zeros(shape[0] * shape[1], dtype=bool)
    fat[np.argsort(field)[len(field) - int(round(fat_fraction * len(field))):]] = True
    fat = fat.reshape(shape)
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]]
    bias_field = 1 + bias * (columns / shape[1] - 0.5) + 0.5 * bias * np.sin(rows / shape[0] * 3)
    image = np.where(fat, 300.0, 100.0) * bias_field + rng.normal(0, noise, shape)
    return image.astype(np.float32), fat


@pytest.mark.parametrize("fraction", [0.03, 0.08, 0.15, 0.3, 0.45, 0.6, 0.75])
@pytest.mark.parametrize("seed", [1, 2])
def test_gaussian_mixture_recovers_known_fat_fraction_within_2_points(fraction, seed):
    image, truth = mixture_slice(fraction, seed)
    compartment = np.ones(truth.shape, dtype=bool)
    fat = quantify_fat(image, compartment, (0.9, 0.9), FatSettings(method=FatMethod.GMM))
    assert abs(100 * fat.mean() - 100 * truth.mean()) <= 2.0


@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.45])
def test_otsu_recovers_known_fat_fraction_within_3_points(fraction):
    image, truth = mixture_slice(fraction, seed=5)
    fat = quantify_fat(image, np.ones(truth.shape, dtype=bool), (1, 1), FatSettings(method=FatMethod.OTSU))
    assert abs(100 * fat.mean() - 100 * truth.mean()) <= 3.0


@pytest.mark.parametrize("method", list(FatMethod))
def test_lean_muscle_has_no_fat(method):
    """Muscle alone (no bright class), at a muscle SNR of about 7: its noisy upper tail is not fat."""
    image, truth = mixture_slice(0.0, seed=3, noise=15.0)
    fat = quantify_fat(image, np.ones(truth.shape, dtype=bool), (1, 1), FatSettings(method=method))
    assert fat.mean() < 0.01


def test_only_compartment_pixels_can_be_fat():
    image, truth = mixture_slice(0.3, seed=4)
    compartment = np.zeros(truth.shape, dtype=bool)
    compartment[:, :45] = True
    fat = quantify_fat(image, compartment, (1, 1), FatSettings())
    assert not fat[~compartment].any()
    assert abs(fat[compartment].mean() - truth[compartment].mean()) <= 0.02


def test_n4_correction_handles_strong_bias():
    """With a strong bias field N4 first keeps the estimate within 2 points."""
    image, truth = mixture_slice(0.25, seed=6, bias=0.6, noise=20.0)
    padded = np.zeros((200, 170), dtype=np.float32)
    padded[40:160, 40:130] = image
    compartment = np.zeros(padded.shape, dtype=bool)
    compartment[40:160, 40:130] = True
    fat = quantify_fat(padded, compartment, (1, 1), FatSettings(n4=True))
    assert abs(100 * fat[compartment].mean() - 100 * truth.mean()) <= 2.0


def test_mixture_and_otsu_find_the_two_populations():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(100, 10, 7000), rng.normal(400, 20, 3000)])
    mixture = fit_gaussian_mixture(values, classes=2)
    np.testing.assert_allclose(mixture.means, [100, 400], rtol=0.02)
    np.testing.assert_allclose(mixture.weights, [0.7, 0.3], atol=0.01)
    assert (values > otsu_threshold(values)).mean() == pytest.approx(0.3, abs=0.005)


def test_settings_are_recorded():
    described = FatSettings(method=FatMethod.OTSU, n4=True).describe()
    assert described["method"] == "otsu" and described["n4"] is True and "classes" not in described
