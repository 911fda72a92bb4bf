"""Odd NIfTI/NRRD volumes and label maps for `measure` (and `segment` on a volume).

Colour and vector voxels, wrong dimensions, cut and fake files, label maps with two components,
off the grid, of the wrong type, and names the C++ readers cannot take.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import Case, Kit, Run


def _like(kit: Kit, array: np.ndarray, vector: bool = False) -> sitk.Image:
    """An image with the good volume's geometry holding `array` ([slice, row, column(, component)])."""
    reference = sitk.ReadImage(str(kit.volume))
    image = sitk.GetImageFromArray(array, isVector=vector)
    if image.GetDimension() == 3:
        image.CopyInformation(reference)
    return image


def _write(kit: Kit, name: str, image: sitk.Image) -> Path:
    path = kit.path("volumes", name)
    sitk.WriteImage(image, str(path))
    return path


def _shape(kit: Kit) -> tuple[int, int, int]:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(kit.volume))).shape


def _image_cases() -> dict[str, Callable[[Kit], Path]]:
    """Bad images (with the good label map as segmentation)."""
    def rgb(kit: Kit) -> Path:
        return _write(kit, "rgb.nii.gz", _like(kit, np.zeros(_shape(kit) + (3,), np.uint8), vector=True))

    def vector2(kit: Kit) -> Path:
        return _write(kit, "vector2.nii.gz", _like(kit, np.ones(_shape(kit) + (2,), np.float32), vector=True))

    def flat2d(kit: Kit) -> Path:
        return _write(kit, "flat.nii.gz", sitk.GetImageFromArray(np.ones((64, 64), np.float32)))

    def four_d(kit: Kit) -> Path:
        return _write(kit, "four-d.nii.gz", sitk.GetImageFromArray(np.ones((2, 3, 64, 64), np.float32)))

    def one_pixel(kit: Kit) -> Path:
        return _write(kit, "one-pixel.nii.gz", sitk.GetImageFromArray(np.ones((1, 1, 1), np.float32)))

    def cut(fraction: float) -> Callable[[Kit], Path]:
        def make(kit: Kit) -> Path:
            path = kit.path("volumes", f"cut-{fraction}.nii")
            data = gzip.decompress(kit.volume.read_bytes())
            path.write_bytes(data[: int(len(data) * fraction)])
            return path
        return make

    def raw(name: str, content: bytes) -> Callable[[Kit], Path]:
        return lambda kit: kit.file(content, "volumes", name)

    def nhdr_missing_data(kit: Kit) -> Path:
        path = kit.path("volumes", "missing-data.nhdr")
        path.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 64 64 3\nencoding: raw\n"
                        "data file: nowhere.raw\n\n")
        return path

    def fifo(kit: Kit) -> Path:
        path = kit.path("volumes", "pipe.nii")
        os.mkfifo(path)
        return path

    return {
        "rgb": rgb, "vector2": vector2, "flat2d": flat2d, "four-d": four_d, "one-pixel": one_pixel,
        "cut-0.1": cut(0.1), "cut-0.5": cut(0.5), "cut-0.99": cut(0.99),
        "empty": raw("empty.nii", b""), "text": raw("text.nii.gz", b"not a volume\n"),
        "bad-gzip": raw("bad.nii.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 200),
        "nrrd-header-only": raw("header.nrrd", b"NRRD0004\ntype: float\ndimension: 3\n"),
        "nrrd-garbage": raw("garbage.nrrd", b"NRRD0004\n" + np.random.default_rng(3).bytes(500)),
        "mha-garbage": raw("garbage.mha", b"ObjectType = Image\nNDims = 3\nDimSize = 99999 99999 99999\n"
                                          b"ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"),
        "nhdr-missing-data": nhdr_missing_data, "fifo": fifo,
    }


def _label_cases() -> dict[str, Callable[[Kit], Path]]:
    """Bad label maps for the good image."""
    def two_components(kit: Kit) -> Path:
        return _write(kit, "labels-2c.nii.gz", _like(kit, np.ones(_shape(kit) + (2,), np.uint8), vector=True))

    def off_grid(kit: Kit) -> Path:
        image = sitk.ReadImage(str(kit.labels))
        image.SetOrigin(tuple(v + 7.3 for v in image.GetOrigin()))
        return _write(kit, "labels-off-grid.nii.gz", image)

    def wrong_size(kit: Kit) -> Path:
        z, y, x = _shape(kit)
        return _write(kit, "labels-small.nii.gz", sitk.GetImageFromArray(np.ones((z, y // 2, x // 2), np.uint8)))

    def values(name: str, value: float, dtype) -> Callable[[Kit], Path]:
        def make(kit: Kit) -> Path:
            array = (sitk.GetArrayFromImage(sitk.ReadImage(str(kit.labels))) > 0) * value
            return _write(kit, name, _like(kit, array.astype(dtype)))
        return make

    def empty(kit: Kit) -> Path:
        return _write(kit, "labels-empty.nii.gz", _like(kit, np.zeros(_shape(kit), np.uint8)))

    def fifo(kit: Kit) -> Path:
        path = kit.path("volumes", "labels-pipe.nii.gz")
        os.mkfifo(path)
        return path

    def seg_nrrd_garbage(kit: Kit) -> Path:
        path = kit.path("volumes", "garbage.seg.nrrd")
        path.write_bytes(b"NRRD0004\ntype: uchar\n" + np.random.default_rng(4).bytes(300))
        return path

    return {
        "two-components": two_components, "off-grid": off_grid, "wrong-size": wrong_size,
        "float-labels": values("labels-float.nii.gz", 1.5, np.float32),
        "label-255": values("labels-255.nii.gz", 255, np.uint8),
        "label-negative": values("labels-negative.nii.gz", -1, np.int16),
        "empty": empty, "fifo": fifo, "seg-nrrd-garbage": seg_nrrd_garbage,
    }


READABLE_OFF_GRID = ("one-pixel",)


def _measure(kit: Kit, image: Path, labels: Path, bad: Path) -> Run:
    return Run(["measure", str(image), str(labels), "-o", str(kit.root / "out-measure")], names=bad.name)


def _image_case(name: str, make: Callable[[Kit], Path]) -> Case:
    """The bad image with the good labels; a readable image off their grid is refused naming the labels."""
    def build(kit: Kit) -> Run:
        image = make(kit)
        return _measure(kit, image, kit.labels, kit.labels if name in READABLE_OFF_GRID else image)
    return Case(f"volume-image-{name}", build)


def _label_case(name: str, make: Callable[[Kit], Path]) -> Case:
    def build(kit: Kit) -> Run:
        labels = make(kit)
        return _measure(kit, kit.volume, labels, labels)
    return Case(f"volume-labels-{name}", build, "either" if name in ("empty", "label-255") else "error")


def _segment_case(name: str, make: Callable[[Kit], Path]) -> Case:
    def build(kit: Kit) -> Run:
        image = make(kit)
        return Run(["-q", "segment", str(image), "--model", str(kit.model), "-o", str(kit.root / "out")],
                   names=image.name)
    return Case(f"volume-segment-{name}", build)


def _bad_name(kit: Kit) -> Run:
    """A good volume under a name that is not valid UTF-8 (SimpleITK would abort the process)."""
    path = kit.root / os.fsdecode(b"scan-\xff\xfe.nii.gz")
    path.write_bytes(kit.volume.read_bytes())
    return Run(["measure", str(path), str(kit.labels), "-o", str(kit.root / "out")], names="scan-")


def cases() -> list[Case]:
    images = _image_cases()
    return ([_image_case(n, m) for n, m in images.items()]
            + [_label_case(n, m) for n, m in _label_cases().items()]
            + [_segment_case(n, images[n]) for n in ("rgb", "vector2", "four-d", "cut-0.5", "fifo", "text")]
            + [Case("volume-name-not-utf8", _bad_name)])
