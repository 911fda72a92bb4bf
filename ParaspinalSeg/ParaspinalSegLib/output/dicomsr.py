"""The DICOM SR measurement report of a result (Comprehensive 3D SR, TID 1500), made by highdicom.

Per slice and side where the compartment is present, three measurement groups:
- the compartment (TID 1501, the source image referenced): total CSA (SCT Area, mm2) and fat fraction
  (DCM 129100, %);
- its muscle tissue and its fat (TID 1411 each, referencing the SEG segment restricted to that slice's
  source image): muscle CSA and fat CSA (SCT Area, mm2).
Per patient one group: the mean fat fraction per side and of both sides (derivation SCT Mean) and the
SGC grade in the local scheme (dicomcodes). The observer is the device: ParaspinalSeg with its model.
Values are those of slices.csv and patient.json, unrounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from .. import __version__
from .dicomcodes import (
    ADIPOSE_TISSUE,
    AREA,
    DEVICE,
    ERECTOR_SPINAE,
    FAT_FRACTION,
    IMAGING_PROCEDURE,
    LATERALITY,
    MEAN,
    MUSCLE_TISSUE,
    PERCENT,
    SGC_GRADE,
    SGC_GRADES,
    SQUARE_MILLIMETRE,
    local_scheme_identification,
)
from .dicomseg import SOFTWARE, SegmentationObject, SourceImages
from ..labels import SIDES, Side
from ..measure.measurement import AreaMeasurement, PatientSummary
from ..pipeline import MeasurementResult, Provenance
from ..slices import DicomOrigin, SliceSeries

Group = hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
SourceReference = tuple[str, str, list[int] | None]  # SOP class UID, SOP instance UID, frame numbers


def _tracking(identifier: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=identifier)


def _site(side: str) -> list[hd.sr.FindingSite]:
    return [hd.sr.FindingSite(anatomic_location=ERECTOR_SPINAE, laterality=LATERALITY[side])]


def algorithm(provenance: Provenance) -> hd.sr.AlgorithmIdentification:
    parameters = [f"method: {provenance.method}"] + ([f"model: {provenance.model}"] if provenance.model else [])
    return hd.sr.AlgorithmIdentification(name=SOFTWARE, version=__version__, parameters=parameters)


def _area(value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=AREA, value=value, unit=SQUARE_MILLIMETRE)


def _segment(segmentations: Sequence[SegmentationObject], index: int, label: int,
             source: hd.sr.SourceImageForSegmentation) -> hd.sr.ReferencedSegment:
    """Segment `label` of the SEG that covers slice `index`, restricted to that slice's source image.

    (A segment and its source image rather than a SEG frame: the image reference macro allows a
    frame number or a segment number, not both, and dciodvfy refuses both.)"""
    seg = next(s.dataset for s in segmentations if index in s.members)
    return hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                   segment_number=label, source_images=[source])


def side_groups(
    index: int,
    side: Side,
    area: AreaMeasurement,
    image: SourceReference,
    segmentations: Sequence[SegmentationObject],
    algorithm_id: hd.sr.AlgorithmIdentification,
) -> list[Group]:
    """The compartment, muscle tissue and fat groups of one side of one slice."""
    name = f"slice {index} {side.name}"
    compartment = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(f"{name} compartment"),
        finding_type=ERECTOR_SPINAE,
        finding_sites=_site(side.name),
        algorithm_id=algorithm_id,
        source_images=[hd.sr.SourceImageForMeasurementGroup(*image)],
        measurements=[_area(area.total_csa_mm2),
                      hd.sr.Measurement(name=FAT_FRACTION, value=area.fat_fraction_pct, unit=PERCENT)],
    )
    tissues = [
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"{name} {what}"),
            referenced_segment=_segment(segmentations, index, label, hd.sr.SourceImageForSegmentation(*image)),
            finding_type=finding,
            finding_sites=_site(side.name),
            algorithm_id=algorithm_id,
            measurements=[_area(value)],
        )
        for what, label, finding, value in (
            ("muscle tissue", side.muscle, MUSCLE_TISSUE, area.muscle_csa_mm2),
            ("fat", side.fat, ADIPOSE_TISSUE, area.fat_csa_mm2),
        )
    ]
    return [compartment, *tissues]


def source_reference(images: SourceImages, origin: DicomOrigin) -> SourceReference:
    """A slice's source image: SOP class and instance, and its frame when the file has several."""
    dataset = images.of(origin)
    return (dataset.SOPClassUID, dataset.SOPInstanceUID, [origin.frame + 1] if origin.frames > 1 else None)


def patient_group(summary: PatientSummary, algorithm_id: hd.sr.AlgorithmIdentification) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The patient's mean fat fraction per side and of both sides, and the SGC grade (those that exist)."""
    means = (("right", summary.mean_fat_fraction_right_pct), ("left", summary.mean_fat_fraction_left_pct),
             ("both", summary.mean_fat_fraction_pct))
    measurements = [
        hd.sr.Measurement(name=FAT_FRACTION, value=value, unit=PERCENT, derivation=MEAN, finding_sites=_site(side))
        for side, value in means if not math.isnan(value)
    ]
    grade = [hd.sr.QualitativeEvaluation(name=SGC_GRADE, value=SGC_GRADES[summary.grade])] if summary.grade else []
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("patient"),
        finding_type=ERECTOR_SPINAE,
        algorithm_id=algorithm_id,
        measurements=measurements or None,
        qualitative_evaluations=grade or None,
    )


def observation_context(provenance: Provenance) -> hd.sr.ObservationContext:
    """The device observer: ParaspinalSeg, its version and model; one UID per software and model."""
    model = provenance.model or "no model"
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[SOFTWARE, __version__, model]),
        name=f"{SOFTWARE} {__version__}",
        manufacturer_name=SOFTWARE,
        model_name=model,
    )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=DEVICE, observer_identifying_attributes=device))


def build_report(
    result: MeasurementResult,
    series: SliceSeries,
    images: SourceImages,
    segmentations: Sequence[SegmentationObject],
    *,
    corrected: bool = False,
    series_number: int,
) -> Dataset:
    """The Comprehensive 3D SR of `result`, referencing the SEG segments and the source images."""
    algorithm_id = algorithm(result.provenance)
    groups: list[Group] = []
    for m, image_slice in zip(result.slices, series.slices):
        for side in SIDES:
            if m.side(side.name).present:
                image = source_reference(images, image_slice.origin)
                groups += side_groups(m.slice_index, side, m.side(side.name), image, segmentations, algorithm_id)
    groups.append(patient_group(result.summary, algorithm_id))
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(result.provenance),
        procedure_reported=IMAGING_PROCEDURE,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*images.datasets.values(), *(s.dataset for s in segmentations)],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=SOFTWARE,
        is_complete=True,
        series_description="ParaspinalSeg measurements" + (", corrected" if corrected else ""),
    )
    sr.CodingSchemeIdentificationSequence = [local_scheme_identification()]
    return sr
