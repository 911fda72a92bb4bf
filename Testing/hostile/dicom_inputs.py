"""Corrupt and odd DICOM files: damaged headers, pixel data that cannot be decoded, cut files.

Each mutation of one good slice is run twice: `series FILE` (headers only) and `segment FOLDER`
with that file alone in the folder (pixels decoded, the whole pipeline).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import UID

from . import Case, Kit, Run

Mutation = Callable[[pydicom.Dataset], None]


def _set(keyword: str, value) -> Mutation:
    def mutate(dataset: pydicom.Dataset) -> None:
        setattr(dataset, keyword, value)
    return mutate


def _drop(keyword: str) -> Mutation:
    def mutate(dataset: pydicom.Dataset) -> None:
        delattr(dataset, keyword)
    return mutate


def _encapsulated(syntax: str) -> Mutation:
    """Random bytes as the one fragment of a compressed transfer syntax (decoders fail on them)."""
    def mutate(dataset: pydicom.Dataset) -> None:
        from pydicom.encaps import encapsulate

        dataset.file_meta.TransferSyntaxUID = UID(syntax)
        dataset.PixelData = encapsulate([np.random.default_rng(0).bytes(4000)])
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
    return mutate


def _half_pixels(dataset: pydicom.Dataset) -> None:
    dataset.PixelData = dataset.PixelData[: len(dataset.PixelData) // 2]


MUTATIONS: dict[str, Mutation] = {
    "rows-0": _set("Rows", 0),
    "columns-0": _set("Columns", 0),
    "rows-huge": _set("Rows", 65535),
    "bits-12": _set("BitsAllocated", 12),
    "bits-1": _set("BitsAllocated", 1),
    "samples-3": _set("SamplesPerPixel", 3),
    "photometric-rgb": _set("PhotometricInterpretation", "RGB"),
    "pixel-representation-2": _set("PixelRepresentation", 2),
    "frames-1000": _set("NumberOfFrames", 1000),
    "no-pixel-spacing": _drop("PixelSpacing"),
    "pixel-spacing-zero": _set("PixelSpacing", [0, 0]),
    "pixel-spacing-negative": _set("PixelSpacing", [-1, -1]),
    "pixel-spacing-one-value": _set("PixelSpacing", [0.8]),
    "no-orientation": _drop("ImageOrientationPatient"),
    "orientation-zero": _set("ImageOrientationPatient", [0, 0, 0, 0, 0, 0]),
    "orientation-parallel": _set("ImageOrientationPatient", [1, 0, 0, 1, 0, 0]),
    "orientation-short": _set("ImageOrientationPatient", [1, 0, 0]),
    "no-position": _drop("ImagePositionPatient"),
    "position-short": _set("ImagePositionPatient", [1, 2]),
    "slope-zero": _set("RescaleSlope", 0),
    "slope-huge": _set("RescaleSlope", 1e308),
    "no-pixel-data": _drop("PixelData"),
    "half-pixel-data": _half_pixels,
    "jpeg-random": _encapsulated("1.2.840.10008.1.2.4.50"),
    "jpeg-lossless-random": _encapsulated("1.2.840.10008.1.2.4.70"),
    "jpeg2000-random": _encapsulated("1.2.840.10008.1.2.4.90"),
    "rle-random": _encapsulated("1.2.840.10008.1.2.5"),
    "unknown-syntax": _encapsulated("1.2.3.4.5.6.7"),
    "no-series-uid": _drop("SeriesInstanceUID"),
    "modality-ct": _set("Modality", "CT"),
    "thickness-negative": _set("SliceThickness", -3),
    "charset-bogus": _set("SpecificCharacterSet", "ISO_IR 999"),
}


def _mutated(kit: Kit, name: str, mutation: Mutation) -> Path:
    dataset = pydicom.dcmread(kit.dicom_file)
    mutation(dataset)
    path = kit.path("dicom", name, f"IM-{name}")
    dataset.save_as(path, enforce_file_format=False)
    return path


def _cut(kit: Kit, name: str, length: int) -> Path:
    path = kit.path("dicom", name, f"IM-{name}")
    path.write_bytes(kit.dicom_file.read_bytes()[:length])
    return path


def _raw(kit: Kit, name: str, content: bytes) -> Path:
    return kit.file(content, "dicom", name, f"IM-{name}")


CUT_LENGTHS = (0, 1, 100, 131, 132, 140, 400, 1000, 2000, 66000, 132000)
RAW_FILES: dict[str, bytes] = {
    "preamble-then-noise": b"\0" * 128 + b"DICM" + np.random.default_rng(1).bytes(3000),
    "zeros": b"\0" * 5000,
    "text": b"this is not an image\n" * 50,
    "preamble-huge-length": b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\xff\xff\xff\x7f" + b"\0" * 64,
    "group-8-noise": b"\x08\x00\x05\x00CS" + np.random.default_rng(2).bytes(3000),
}


def _series_run(path: Path) -> Run:
    return Run(["series", str(path)], names=path.name)


def _segment_run(kit: Kit, path: Path) -> Run:
    out = kit.root / "out-segment"
    return Run(["-q", "segment", str(path.parent), "--model", str(kit.model), "--device", "cpu", "-o", str(out)],
               names=path.parent.name)  # the study folder given (or the file in it)


def _both(name: str, make: Callable[[Kit], Path], expect_series: str, expect_segment: str) -> list[Case]:
    return [Case(f"dicom-series-{name}", lambda kit: _series_run(make(kit)), expect_series),
            Case(f"dicom-segment-{name}", lambda kit: _segment_run(kit, make(kit)), expect_segment, slow=True)]


def cases() -> list[Case]:
    """Header and pixel mutations, cut files and raw junk; `series` and `segment` on each."""
    found: list[Case] = []
    for name, mutation in MUTATIONS.items():
        found += _both(name, lambda kit, n=name, m=mutation: _mutated(kit, n, m), "either", "either")
    for length in CUT_LENGTHS:
        found += _both(f"cut-{length}", lambda kit, n=length: _cut(kit, f"cut-{n}", n), "either", "error")
    for name, content in RAW_FILES.items():
        found += _both(name, lambda kit, n=name, c=content: _raw(kit, n, c), "error", "error")
    found.append(Case("dicom-series-fifo", lambda kit: _series_run(_fifo(kit)), "error"))
    found.append(Case("dicom-segment-fifo", lambda kit: _fifo_segment_run(kit), "error"))
    return found


def _fifo_segment_run(kit: Kit) -> Run:
    path = _fifo(kit)
    return Run(["segment", str(path), "--model", str(kit.model), "-o", str(kit.root / "out")], names=path.name)


def _fifo(kit: Kit) -> Path:
    path = kit.path("dicom", "fifo", "IM-fifo")
    os.mkfifo(path)
    return path
