"""Tendinous bands inside the compartments: the aponeuroses that real paraspinal muscles carry.

A real compartment is not muscle and fat alone. Behind it lies the erector spinae aponeurosis, a
band of tendon just inside the posterior fascia, thickest caudally, where the erector spinae turns
tendinous over the sacrum. Inside the erector spinae the lumbar intermuscular aponeurosis parts
longissimus from iliocostalis, running forward from the back. Between multifidus and erector spinae
the septum may be tendinous too. All three are inside the fascia, so they are part of the
compartment (its muscle label, not fat), but on an image they look like its border: dark on T2 and
T1, bright where tendon is bright. They are painted on the slice's tissue map, after the fascia
has sealed the compartments and before fat is drawn, with their own tissue codes (tendon material).

Directions on a slice: rows run from anterior (top) to posterior (bottom); the midline lies between
the two compartments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from .tissues import Tissue

SIDE_CODES = (
    (Tissue.RIGHT_MULTIFIDUS, Tissue.RIGHT_ERECTOR_SPINAE, Tissue.RIGHT_APONEUROSIS),
    (Tissue.LEFT_MULTIFIDUS, Tissue.LEFT_ERECTOR_SPINAE, Tissue.LEFT_APONEUROSIS),
)


@dataclass(frozen=True)
class Aponeuroses:
    """One slice's bands, in mm, the same on both sides.

    posterior_mm: thickness of the posterior band (0: none); posterior_inset_mm: its depth under the
    compartment's back; posterior_reach: the share of the compartment's width it covers from the
    midline out. intermuscular_mm: thickness of the lateral band (0: none), which starts on the back
    at intermuscular_at (share of the width from the midline), reaches intermuscular_depth of the
    local depth forward and leans intermuscular_lean mm outwards per mm forward. septum_mm: thickness of
    the tendinous multifidus-erector septum (0: none)."""

    posterior_mm: float
    posterior_inset_mm: float
    posterior_reach: float
    intermuscular_mm: float
    intermuscular_at: float
    intermuscular_depth: float
    intermuscular_lean: float
    septum_mm: float


def draw_aponeuroses(position: float, rng: np.random.Generator) -> Aponeuroses:
    """A slice's bands: the posterior band on most slices, thicker caudally (L4 down); the lateral band and
    the tendinous septum on about half of them."""
    caudal = float(np.clip(position - 3.0, 0.0, 2.0))  # 0 down to L4, 2 at S1
    return Aponeuroses(
        posterior_mm=float(rng.uniform(0.6, 2.0) * (1.0 + 0.6 * caudal)) if rng.random() < 0.85 else 0.0,
        posterior_inset_mm=float(rng.uniform(0.3, 3.0)),
        posterior_reach=float(rng.uniform(0.4, 1.0)),
        intermuscular_mm=float(rng.uniform(0.5, 1.5)) if rng.random() < 0.5 else 0.0,
        intermuscular_at=float(rng.uniform(0.5, 0.8)),
        intermuscular_depth=float(rng.uniform(0.4, 0.9)),
        intermuscular_lean=float(rng.uniform(-0.2, 0.6)),
        septum_mm=float(rng.uniform(0.5, 1.2)) if rng.random() < 0.5 else 0.0,
    )


def across(side: np.ndarray, lateral: int, share: float) -> float:
    """The column `share` of the compartment's width out from its medial edge (`lateral`: +1 when the
    columns grow outwards, -1 when they shrink)."""
    columns = np.nonzero(side.any(axis=0))[0]
    medial = columns.min() if lateral > 0 else columns.max()
    return float(medial + lateral * share * (columns.max() - columns.min()))


def posterior_band(side: np.ndarray, lateral: int, bands: Aponeuroses, spacing: float) -> np.ndarray:
    """The pixels of `side` (one compartment) between inset and inset + thickness above its back, per column,
    over the share of its width next to the midline."""
    out = np.zeros_like(side)
    if bands.posterior_mm <= 0 or not side.any():
        return out
    reach = across(side, lateral, bands.posterior_reach)
    rows = np.arange(side.shape[0])[:, None]
    back = np.where(side, rows, -1).max(axis=0)
    inset, thick = bands.posterior_inset_mm / spacing, max(bands.posterior_mm / spacing, 0.5)
    covered = (np.arange(side.shape[1]) - reach) * lateral <= 0
    band = (rows <= back - inset) & (rows > back - inset - thick) & covered[None, :]
    return band & side


def intermuscular_band(erector: np.ndarray, side: np.ndarray, lateral: int, bands: Aponeuroses,
                       spacing: float) -> np.ndarray:
    """A band through the erector spinae from its back forward, leaning outwards: the lumbar intermuscular
    aponeurosis between longissimus and iliocostalis."""
    out = np.zeros_like(side)
    if bands.intermuscular_mm <= 0 or not side.any() or not erector.any():
        return out
    start = int(round(across(side, lateral, bands.intermuscular_at)))
    rows_in = np.nonzero(side[:, start])[0]
    if rows_in.size == 0:
        return out
    back, front = rows_in.max(), rows_in.min()
    length = bands.intermuscular_depth * (back - front + 1)
    rows, cols = np.indices(side.shape)
    forward = back - rows  # pixels in front of the back at the start column
    centre = start + lateral * bands.intermuscular_lean * forward
    half = max(bands.intermuscular_mm / spacing, 0.5) / 2.0
    band = (np.abs(cols - centre) <= half) & (forward >= 0) & (forward <= length)
    return band & erector


def septum_band(multifidus: np.ndarray, erector: np.ndarray, bands: Aponeuroses, spacing: float) -> np.ndarray:
    """The erector spinae's pixels within the septum's thickness of the multifidus."""
    if bands.septum_mm <= 0 or not multifidus.any() or not erector.any():
        return np.zeros_like(erector)
    return (distance_transform_edt(~multifidus) * spacing <= bands.septum_mm) & erector


def add_aponeuroses(tissues: np.ndarray, bands: Aponeuroses, spacing: float) -> np.ndarray:
    """The tissue map with each compartment's bands painted in its aponeurosis code."""
    out = tissues.copy()
    sides = [np.isin(tissues, codes[:2]) for codes in SIDE_CODES]
    if not (sides[0].any() and sides[1].any()):
        return out
    centres = [float(np.nonzero(side)[1].mean()) for side in sides]
    midline = (centres[0] + centres[1]) / 2.0
    for (mf_code, es_code, code), side, centre in zip(SIDE_CODES, sides, centres):
        lateral = 1 if centre > midline else -1
        multifidus, erector = tissues == mf_code, tissues == es_code
        band = (posterior_band(side, lateral, bands, spacing)
                | intermuscular_band(erector, side, lateral, bands, spacing)
                | septum_band(multifidus, erector, bands, spacing))
        out[band] = code
    return out
