"""Tissue codes of the synthetic anatomy maps, the material of each, and the scheme labels they give.

Every structure the anatomy draws has its own code (so tests and pictures can find it); every
code is made of one material, and the image synthesis draws intensities per material, so that all
fat is alike, all muscle is alike, and so on. Only the compartment codes become scheme labels.
"""

from __future__ import annotations

from enum import Enum, IntEnum

import numpy as np

from ParaspinalSegLib.labels import BACKGROUND, LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE


class Tissue(IntEnum):
    BACKGROUND = 0
    SKIN = 1
    SUBCUTANEOUS_FAT = 2
    WALL_MUSCLE = 3
    VISCERAL_FAT = 4
    BOWEL_WALL = 5
    BOWEL_FLUID = 6
    BOWEL_GAS = 7
    BOWEL_CONTENT = 8
    LIVER = 9
    GALLBLADDER = 10
    SPLEEN = 11
    PANCREAS = 12
    KIDNEY = 13
    RENAL_SINUS_FAT = 14
    ARTERY = 15
    VEIN = 16
    DIAPHRAGM_CRUS = 17
    PSOAS = 18
    QUADRATUS_LUMBORUM = 19
    ILIACUS = 20
    GLUTEAL_MUSCLE = 21
    FASCIA = 22
    CORTICAL_BONE = 23
    VERTEBRAL_BODY = 24
    POSTERIOR_ARCH = 25
    DISC_ANNULUS = 26
    DISC_NUCLEUS = 27
    EPIDURAL_FAT = 28
    CSF = 29
    NERVE = 30
    SACRUM = 31
    ILIUM = 32
    RIB = 33
    RIGHT_MULTIFIDUS = 40
    RIGHT_ERECTOR_SPINAE = 41
    RIGHT_INTRAMUSCULAR_FAT = 42
    LEFT_MULTIFIDUS = 43
    LEFT_ERECTOR_SPINAE = 44
    LEFT_INTRAMUSCULAR_FAT = 45
    RIGHT_APONEUROSIS = 46
    LEFT_APONEUROSIS = 47


class Material(str, Enum):
    AIR = "air"
    SKIN = "skin"
    FAT = "fat"
    MUSCLE = "muscle"
    TENDON = "tendon"
    CORTEX = "cortex"
    MARROW = "marrow"
    DISC_ANNULUS = "disc_annulus"
    DISC_NUCLEUS = "disc_nucleus"
    CSF = "csf"
    FLUID = "fluid"
    NERVE = "nerve"
    KIDNEY = "kidney"
    LIVER = "liver"
    SPLEEN = "spleen"
    PANCREAS = "pancreas"
    ARTERY = "artery"
    VEIN = "vein"
    BOWEL_WALL = "bowel_wall"
    BOWEL_CONTENT = "bowel_content"
    GAS = "gas"


MATERIAL: dict[Tissue, Material] = {
    Tissue.BACKGROUND: Material.AIR,
    Tissue.SKIN: Material.SKIN,
    Tissue.SUBCUTANEOUS_FAT: Material.FAT,
    Tissue.WALL_MUSCLE: Material.MUSCLE,
    Tissue.VISCERAL_FAT: Material.FAT,
    Tissue.BOWEL_WALL: Material.BOWEL_WALL,
    Tissue.BOWEL_FLUID: Material.FLUID,
    Tissue.BOWEL_GAS: Material.GAS,
    Tissue.BOWEL_CONTENT: Material.BOWEL_CONTENT,
    Tissue.LIVER: Material.LIVER,
    Tissue.GALLBLADDER: Material.FLUID,
    Tissue.SPLEEN: Material.SPLEEN,
    Tissue.PANCREAS: Material.PANCREAS,
    Tissue.KIDNEY: Material.KIDNEY,
    Tissue.RENAL_SINUS_FAT: Material.FAT,
    Tissue.ARTERY: Material.ARTERY,
    Tissue.VEIN: Material.VEIN,
    Tissue.DIAPHRAGM_CRUS: Material.MUSCLE,
    Tissue.PSOAS: Material.MUSCLE,
    Tissue.QUADRATUS_LUMBORUM: Material.MUSCLE,
    Tissue.ILIACUS: Material.MUSCLE,
    Tissue.GLUTEAL_MUSCLE: Material.MUSCLE,
    Tissue.FASCIA: Material.TENDON,
    Tissue.CORTICAL_BONE: Material.CORTEX,
    Tissue.VERTEBRAL_BODY: Material.MARROW,
    Tissue.POSTERIOR_ARCH: Material.MARROW,
    Tissue.DISC_ANNULUS: Material.DISC_ANNULUS,
    Tissue.DISC_NUCLEUS: Material.DISC_NUCLEUS,
    Tissue.EPIDURAL_FAT: Material.FAT,
    Tissue.CSF: Material.CSF,
    Tissue.NERVE: Material.NERVE,
    Tissue.SACRUM: Material.MARROW,
    Tissue.ILIUM: Material.MARROW,
    Tissue.RIB: Material.MARROW,
    Tissue.RIGHT_MULTIFIDUS: Material.MUSCLE,
    Tissue.RIGHT_ERECTOR_SPINAE: Material.MUSCLE,
    Tissue.RIGHT_INTRAMUSCULAR_FAT: Material.FAT,
    Tissue.LEFT_MULTIFIDUS: Material.MUSCLE,
    Tissue.LEFT_ERECTOR_SPINAE: Material.MUSCLE,
    Tissue.LEFT_INTRAMUSCULAR_FAT: Material.FAT,
    Tissue.RIGHT_APONEUROSIS: Material.TENDON,
    Tissue.LEFT_APONEUROSIS: Material.TENDON,
}

RIGHT_COMPARTMENT = (Tissue.RIGHT_MULTIFIDUS, Tissue.RIGHT_ERECTOR_SPINAE, Tissue.RIGHT_INTRAMUSCULAR_FAT,
                     Tissue.RIGHT_APONEUROSIS)
LEFT_COMPARTMENT = (Tissue.LEFT_MULTIFIDUS, Tissue.LEFT_ERECTOR_SPINAE, Tissue.LEFT_INTRAMUSCULAR_FAT,
                    Tissue.LEFT_APONEUROSIS)
# Drawn only when a data set asks for them (synthesis setting aponeurosis_probability); their intensity is the
# tendon material's own, so that data sets made without them draw the same random numbers as before.
APONEUROSES = (Tissue.RIGHT_APONEUROSIS, Tissue.LEFT_APONEUROSIS)
COMPARTMENT_TISSUES = RIGHT_COMPARTMENT + LEFT_COMPARTMENT
COMPARTMENT_MUSCLE = (Tissue.RIGHT_MULTIFIDUS, Tissue.RIGHT_ERECTOR_SPINAE, Tissue.LEFT_MULTIFIDUS,
                      Tissue.LEFT_ERECTOR_SPINAE)
BONE_TISSUES = (
    Tissue.CORTICAL_BONE, Tissue.VERTEBRAL_BODY, Tissue.POSTERIOR_ARCH, Tissue.SACRUM, Tissue.ILIUM, Tissue.RIB,
)

SCHEME_OF_TISSUE: dict[Tissue, int] = {
    Tissue.RIGHT_MULTIFIDUS: RIGHT_MUSCLE,
    Tissue.RIGHT_ERECTOR_SPINAE: RIGHT_MUSCLE,
    Tissue.RIGHT_INTRAMUSCULAR_FAT: RIGHT_FAT,
    Tissue.LEFT_MULTIFIDUS: LEFT_MUSCLE,
    Tissue.LEFT_ERECTOR_SPINAE: LEFT_MUSCLE,
    Tissue.LEFT_INTRAMUSCULAR_FAT: LEFT_FAT,
    Tissue.RIGHT_APONEUROSIS: RIGHT_MUSCLE,
    Tissue.LEFT_APONEUROSIS: LEFT_MUSCLE,
}


def scheme_labels(tissues: np.ndarray) -> np.ndarray:
    """The project's scheme label map (uint8) of a tissue map: compartments only, the rest background."""
    lookup = np.full(256, BACKGROUND, dtype=np.uint8)
    for tissue, label in SCHEME_OF_TISSUE.items():
        lookup[int(tissue)] = label
    return lookup[tissues]
