"""The in-memory study: a series of 2D slices, each with its own pixels and geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .geometry import DisplayTransform, SliceGeometry

if TYPE_CHECKING:
    from .read.dicom_files import DicomSource


@dataclass(frozen=True)
class DicomOrigin:
    """The DICOM image a slice was read from: its file, its frame (0-based; 0 for a single-frame
    file) of `frames`, and its SOPInstanceUID; what a DICOM SEG or SR export references."""

    file: DicomSource
    frame: int
    frames: int
    sop_uid: str


@dataclass
class ImageSlice:
    """One 2D image: float32 pixels [row, column] (rescale slope/intercept applied) and geometry.

    source_index: the slice's place in its source (k of a volume; file/frame order for DICOM), so
    that results can be written back in the source's own order.
    origin: the DICOM file and frame it came from (None for a volume or a Slicer node).
    """

    pixels: np.ndarray
    geometry: SliceGeometry
    source_index: int = 0
    origin: DicomOrigin | None = None

    @property
    def display(self) -> DisplayTransform:
        return DisplayTransform.for_geometry(self.geometry)


@dataclass(frozen=True)
class SeriesInfo:
    """What a series is, without patient identifiers (those stay out of logs and outputs).

    `patient` and `study` are shortened, hashed references that tell series of different patients
    and studies apart without naming anyone.
    """

    uid: str
    patient: str = ""
    study: str = ""
    number: int | None = None
    description: str = ""
    modality: str = "MR"
    sequence: str = ""
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    echo_train_length: int | None = None
    source: str = ""


@dataclass
class SliceSeries:
    """The slices of one series, ordered from inferior to superior.

    warnings: what reading found doubtful (files left out, a sequence other than T2 TSE); they
    are carried into the result's warnings.
    """

    slices: list[ImageSlice]
    info: SeriesInfo
    extra: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.slices)

    @property
    def geometries(self) -> list[SliceGeometry]:
        return [s.geometry for s in self.slices]

    def positions_mm(self) -> list[float]:
        """Superior (z, LPS) coordinate of each slice's centre, mm."""
        return [float(g.centre[2]) for g in self.geometries]
