"""Small builders shared by the tests: volumes on oblique grids, label maps, CLI runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ParaspinalSegLib.cli import main
from ParaspinalSegLib.network.model import ModelArchitecture, Preprocessing
from ParaspinalSegLib.network.registry import SHIPPED_MODELS
from ParaspinalSegTrainingLib.config import TrainingConfig

SHIPPED_MODEL = sorted(p.parent for p in SHIPPED_MODELS.glob("*/model.json"))[-1]  # the newest shipped: the default

# A tiny training (2 folds, 2 epochs, a 3-level encoder at 64x64) that trains in seconds on phantom data.
TINY = TrainingConfig(
    epochs=2,
    batch_size=4,
    folds=2,
    mixed_precision=False,
    architecture=ModelArchitecture(encoder_depth=3, decoder_channels=(32, 16, 8)),
    preprocessing=Preprocessing(pixel_spacing_mm=4.5, input_size=64),
)


def volume(array: np.ndarray, spacing=(0.8, 0.6, 4.0), origin=(-40.0, -30.0, -20.0), tilt_deg=12.0) -> sitk.Image:
    """A SimpleITK image from a [slice, row, column] array on an oblique, anisotropic grid."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    t = math.radians(tilt_deg)
    direction = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    image.SetDirection(tuple(direction.ravel()))
    return image


def write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `paraspinal` in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_phantom_dataset(root: Path, cases: int, slices: int = 3, size: int = 96, spacing: float = 3.0) -> Path:
    """A small data set of phantom cases (image + scheme labels per case, one patient per case)."""
    import json

    from phantom import phantom_slice

    for case in range(cases):
        rng = np.random.default_rng(case)
        made = [phantom_slice((size, size), spacing, 0.9 + 0.05 * (case % 4), 0.1 + 0.08 * case, rng) for _ in range(slices)]
        folder = root / "cases" / f"case-{case:03d}"
        folder.mkdir(parents=True)
        for name, array in (("image.nii.gz", np.stack([m.image for m in made])),
                            ("labels.nii.gz", np.stack([m.labels for m in made]).astype(np.uint8))):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((spacing, spacing, 5.0))
            sitk.WriteImage(image, str(folder / name))
        (folder / "case.json").write_text(json.dumps({"patient_id": f"patient-{case}"}))
    return root


def phantom_series(slices: int = 3, size: int = 96, spacing: float = 3.0, fat_fraction: float = 0.2, seed: int = 0,
                   contrast=None):
    """A phantom series on a standard axial grid and its scheme labels; `contrast` maps the T2-like pixels."""
    from phantom import phantom_slice

    from ParaspinalSegLib.slices import ImageSlice, SeriesInfo, SliceSeries
    from ParaspinalSegTrainingLib.sample import axial_geometry

    rng = np.random.default_rng(seed)
    made = [phantom_slice((size, size), spacing, 0.9 + 0.1 * k, fat_fraction, rng) for k in range(slices)]
    images = [m.image if contrast is None else contrast(m.image).astype(np.float32) for m in made]
    planes = [ImageSlice(image, axial_geometry(k, spacing, 5.0, (size, size)), k) for k, image in enumerate(images)]
    return SliceSeries(planes, SeriesInfo(uid="phantom", description="phantom")), [m.labels for m in made]


def side_reading_runner(width: int = 20):
    """A small seeded network on windows `width` columns wide that also reads the patient's side from
    the column (right muscle up toward one edge, left muscle toward the other), so that its mirrored
    look differs from its own: a stand-in for the mirrored test-time augmentation's tests."""
    import torch

    from ParaspinalSegLib.network.runtime import TorchRunner

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Conv2d(8, 5, 3, padding=1))
    with torch.no_grad():
        network[2].bias += torch.linspace(-1, 1, 5)
    coordinate = torch.linspace(0, 1, width)
    side = torch.tensor([0.0, 2.0, 0.0, -2.0, 0.0])[:, None, None]
    return TorchRunner(lambda x: network(x) + coordinate * side)
