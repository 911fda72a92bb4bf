"""The coded concepts of the DICOM SEG and SR export, and the local coding scheme where none exists.

Standard codes come from pydicom's code dictionary (SNOMED CT "SCT", DICOM "DCM", UCUM), never typed
by hand. The simplified Goutallier classification has no standard code: it is coded in the local
scheme 99PARASPINAL (PS3.16 8.2: a designator starting "99" is private to its maker), declared in the
SR's Coding Scheme Identification Sequence and listed in the README.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.sr.codedict import codes

from ..labels import LEFT, RIGHT

ERECTOR_SPINAE = codes.SCT.ErectorSpinaeMuscle  # 44947003
ADIPOSE_TISSUE = codes.SCT.AdiposeTissue  # 55603005
MUSCLE_TISSUE = codes.SCT.MuscleTissue  # 91727004
ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure  # 91723000, segment category of the muscle
TISSUE = codes.SCT.Tissue  # 85756007, segment category of the fat
LATERALITY = {RIGHT.name: codes.SCT.Right, LEFT.name: codes.SCT.Left, "both": codes.SCT.RightAndLeft}
AREA = codes.SCT.Area  # 42798000
FAT_FRACTION = codes.DCM.FatFraction  # 129100
MEAN = codes.SCT.Mean  # 373098007, derivation of the patient's mean fat fractions
IMAGING_PROCEDURE = codes.SCT.ImagingProcedure  # 363679005, the procedure reported
DEVICE = codes.DCM.Device  # 121007, observer type
ARTIFICIAL_INTELLIGENCE = codes.DCM.ArtificialIntelligence  # algorithm family of a model's segmentation
IMAGE_PROCESSING = codes.DCM.ImageProcessing  # algorithm family without a model (fat by image analysis)
SQUARE_MILLIMETRE = codes.UCUM.SquareMillimeter  # mm2
PERCENT = codes.UCUM.Percent  # %

LOCAL_SCHEME = "99PARASPINAL"
LOCAL_SCHEME_NAME = "ParaspinalSeg local codes"
SGC_GRADE = Code("SGC", LOCAL_SCHEME, "Simplified Goutallier classification grade")
SGC_GRADES = {
    "I": Code("SGC-I", LOCAL_SCHEME, "SGC grade I (mean fat fraction <= 10 %)"),
    "II": Code("SGC-II", LOCAL_SCHEME, "SGC grade II (mean fat fraction > 10 % and <= 50 %)"),
    "III": Code("SGC-III", LOCAL_SCHEME, "SGC grade III (mean fat fraction > 50 %)"),
}


def local_scheme_identification() -> Dataset:
    """The Coding Scheme Identification Sequence item that declares the local scheme."""
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = LOCAL_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "ParaspinalSeg developers"
    return item
