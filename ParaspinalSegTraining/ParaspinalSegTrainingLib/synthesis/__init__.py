"""Training-data synthesis: random label maps (L1..S1, T12 on request) turned into MR-like images, as SynthSeg does.

Public API:
    SynthesisSettings                       how data are made (frozen, saved in dataset.json)
    synth_slice(level, rng, settings)       one SynthSlice: image, scheme labels, tissue codes, fat truth
    synth_case(case_index, settings)        one SynthCase: a synthetic patient's slices, inferior to superior
    write_dataset(out, n_cases, settings)   a data set folder that ParaspinalSegTrainingLib.datasets reads
    Level, parse_level, Tissue              levels ("L4", "L4/L5") and the anatomy maps' tissue codes
"""

from .dataset import write_dataset
from .generator import Patient, SynthCase, SynthSlice, draw_patient, synth_case, synth_slice
from .levels import VERTEBRAE, Level, parse_level
from .settings import SYNTHESIS_VERSION, SynthesisSettings
from .tissues import Tissue, scheme_labels

__all__ = [
    "SYNTHESIS_VERSION", "VERTEBRAE", "Level", "Patient", "SynthCase", "SynthSlice", "SynthesisSettings", "Tissue",
    "draw_patient", "parse_level", "scheme_labels", "synth_case", "synth_slice", "write_dataset",
]
