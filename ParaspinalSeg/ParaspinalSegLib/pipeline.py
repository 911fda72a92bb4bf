"""From a series and its segmentation to per-slice measurements and the grade, without file I/O.

This is the one path that the command line and the Slicer module share: slices with their
geometry and label maps in, completed label maps and measurements out.
"""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .measure.fat import FatMethod, FatSettings, quantify_fat
from .labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE, compartment_masks
from .measure.measurement import PatientSummary, SliceMeasurement, measure_slice, summarise
from .slices import SliceSeries
from .progress import ProgressCallback, part_of
from .measure.grading import boundary_note
from .measure.quality import SliceFlag, assess_quality


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: method, versions, date."""

    method: str
    fat_settings: dict | None
    label_kind: str
    software: str = f"ParaspinalSeg {__version__}"
    python: str = platform.python_version()
    model: str | None = None
    backend: str | None = None  # what ran the model's network: onnxruntime or torch
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    )


@dataclass
class MeasurementResult:
    """Label maps (scheme, per slice), measurements per slice, the patient summary, provenance, the
    warnings (input and quality, in sentences), the quality flags per slice (quality.py) and, for a
    model's result, what its card's real-case report says of every result (`modelfile.real_case_note`)."""

    labels: list[np.ndarray]
    slices: list[SliceMeasurement]
    summary: PatientSummary
    provenance: Provenance
    warnings: tuple[str, ...] = ()
    flags: tuple[SliceFlag, ...] = ()
    confidence: tuple[float, ...] = ()  # the model's, per slice; empty when no model segmented
    model_note: str = ""
    mirrored: tuple[int, ...] = ()  # slices segmented again mirrored, the network unsure of them (card's threshold)


def add_fat(
    series: SliceSeries,
    labels: list[np.ndarray],
    settings: FatSettings,
    progress: ProgressCallback | None = None,
) -> list[np.ndarray]:
    """Scheme label maps with fat found inside each slice's compartments by image analysis."""
    completed = []
    for index, (image_slice, plane) in enumerate(zip(series.slices, labels)):
        right, left = compartment_masks(plane)
        fat = quantify_fat(image_slice.pixels, right | left, image_slice.geometry.spacing, settings)
        out = np.zeros(plane.shape, dtype=np.uint8)
        out[right] = np.where(fat[right], RIGHT_FAT, RIGHT_MUSCLE)
        out[left] = np.where(fat[left], LEFT_FAT, LEFT_MUSCLE)
        completed.append(out)
        if progress:
            progress((index + 1) / len(series), f"fat quantification, slice {index + 1}/{len(series)}")
    return completed


def measure_labels(series: SliceSeries, labels: list[np.ndarray]) -> list[SliceMeasurement]:
    """Per-slice measurements of scheme label maps (series order)."""
    return [
        measure_slice(plane, s.geometry, slice_index=i, source_index=s.source_index)
        for i, (s, plane) in enumerate(zip(series.slices, labels))
    ]


def measure_series(
    series: SliceSeries,
    labels: list[np.ndarray],
    *,
    needs_fat: bool,
    fat_settings: FatSettings | None = None,
    label_kind: str = "scheme",
    model: str | None = None,
    backend: str | None = None,
    source: str = "segmentation",
    warnings: tuple[str, ...] = (),
    confidence: list[float] | None = None,
    progress: ProgressCallback | None = None,
) -> MeasurementResult:
    """Complete the labels (fat by image analysis if they give only compartments), measure, and
    check the result's quality (`confidence`: the model's per slice, when a model segmented)."""
    if len(labels) != len(series):
        raise ValueError(f"{len(labels)} label maps for {len(series)} slices")
    settings = (fat_settings or FatSettings()) if needs_fat else None
    if settings is not None:
        labels = add_fat(series, labels, settings, progress)
    method = method_text(source, settings)
    described = settings.describe() if settings is not None else None
    measurements = measure_labels(series, labels)
    provenance = Provenance(method=method, fat_settings=described, label_kind=label_kind, model=model,
                            backend=backend)
    all_warnings = tuple(series.warnings) + tuple(warnings)
    quality = assess_quality(measurements, confidence)
    summary = summarise(measurements)
    near_boundary = tuple(filter(None, [boundary_note(summary.mean_fat_fraction_pct)]))
    return MeasurementResult(labels, measurements, summary, provenance,
                             all_warnings + quality.warnings + near_boundary, quality.flags, tuple(confidence or ()))


def method_text(source: str, fat_settings: FatSettings | None) -> str:
    """The provenance's method: where the compartments came from and, if not from the same source, the fat."""
    if fat_settings is None:
        return f"muscle and fat from {source}"
    return f"compartment from {source}, fat by {fat_settings.method.value}"


def model_source(model_id: str, mirror: bool = False, mirror_below: float = 0.0) -> str:
    """How a model's segmentation is named in the provenance's method: with mirrored test-time
    augmentation on every slice (`mirror`), or on the slices whose confidence is below the card's
    `mirror_below_confidence` (which slices, patient.json's quality block lists). The same for every
    study segmented the same way, so that a batch run can tell its own outputs (`cohorts.batchplan`)."""
    if mirror:
        return f"model {model_id} with mirrored test-time augmentation"
    if mirror_below:
        return (f"model {model_id} with mirrored test-time augmentation on the slices of confidence "
                f"below {mirror_below:g}")
    return f"model {model_id}"


FAT_FROM_MODEL = "cnn"


def segment_series(
    series: SliceSeries,
    model,
    *,
    fat_method: str = FAT_FROM_MODEL,
    device: str = "cpu",
    batch_size: int = 8,
    progress: ProgressCallback | None = None,
    mirror: bool = False,
) -> MeasurementResult:
    """Segment every slice with a loaded model, clean the labels, quantify fat and measure.

    fat_method "cnn" keeps the model's own fat class; "gmm" or "otsu" keep only its compartments
    and find the fat inside them by image analysis. mirror: test-time augmentation with the
    left-right mirrored slice (sides swapped), at twice the network time.
    """
    from .network.inference import predict_series_with_confidence
    from .network.modelfile import real_case_note
    from .network.postprocess import clean_labels

    from_model = fat_method == FAT_FROM_MODEL
    network_share = 1.0 if from_model else 0.85  # the rest of the bar is the fat step
    predicted = predict_series_with_confidence(model, series, device=device, batch_size=batch_size,
                                               progress=part_of(progress, 0.0, network_share), mirror=mirror)
    labels = [clean_labels(plane) for plane in predicted.labels]
    result = measure_series(
        series,
        labels,
        needs_fat=not from_model,
        fat_settings=None if from_model else FatSettings(method=FatMethod(fat_method)),
        label_kind="model",
        model=model.card.model_id,
        backend=model.backend,
        source=model_source(model.card.model_id, mirror, model.card.postprocessing.mirror_below_confidence),
        confidence=predicted.confidence,
        progress=part_of(progress, network_share, 1.0),
    )
    result.model_note = real_case_note(model.card)
    result.mirrored = predicted.mirrored
    return result
