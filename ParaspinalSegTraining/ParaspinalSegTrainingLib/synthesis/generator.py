"""Synthetic slices and cases: a patient drawn per case, a label map per slice, an image from it.

A case is one synthetic patient: build, contrast, pixel spacing and fat (a case fraction, more
caudally, a little different per side and per slice) are drawn once; its slices cover the
requested levels, ordered from inferior to superior, each an independent 2D slice (no 3D
continuity). Everything is drawn from numpy generators seeded by (settings.seed, case index), so
the same settings give the same arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ParaspinalSegLib.errors import InputError
from ParaspinalSegLib.labels import LEFT, RIGHT

from .anatomy import Habitus, draw_habitus, paint_anatomy
from .aponeuroses import add_aponeuroses, draw_aponeuroses
from .compartments import ShapeScale
from .fat import FatPattern, add_fat, draw_fat_pattern, seal_compartments
from .intensities import CoilProfile, Contrast, draw_contrast, render_image
from .levels import Level, parse_level
from .raster import Canvas
from .settings import SynthesisSettings
from .shapes import load_shapes, real_shapes_available, shapes_zip_path
from .tissues import scheme_labels
from .warp import covering_grid, draw_view, read_nearest, view_coordinates


@dataclass(frozen=True)
class Patient:
    """What is drawn once per case: build, contrast, pixel spacing and the fat model."""

    habitus: Habitus
    contrast: Contrast
    fat_pattern: FatPattern
    fat_fraction_pct: float
    fat_gradient_pct_per_level: float
    fat_side_difference_pct: float
    pixel_spacing_mm: float
    slice_spacing_mm: float

    def fat_fractions(self, position: float, settings: SynthesisSettings, rng: np.random.Generator) -> tuple[float, float]:
        """(right, left) fat fraction (%) of a slice: the case's, more caudally, per side, with slice noise."""
        low, high = settings.fat_fraction_pct
        level = self.fat_fraction_pct + self.fat_gradient_pct_per_level * (position - 2.5) + rng.normal(0.0, 2.0)
        half = self.fat_side_difference_pct / 2
        return (float(np.clip(level + half + rng.normal(0.0, 1.0), low, high)),
                float(np.clip(level - half + rng.normal(0.0, 1.0), low, high)))


def draw_contrast_mode(rng: np.random.Generator, settings: SynthesisSettings) -> str:
    """A contrast mode drawn with the settings' weights."""
    modes = [mode for mode, _ in settings.contrast_probabilities]
    weights = np.array([weight for _, weight in settings.contrast_probabilities], dtype=float)
    return modes[int(rng.choice(len(modes), p=weights / weights.sum()))]


def site_contrast(settings: SynthesisSettings, own: Contrast) -> Contrast:
    """The contrast drawn from settings.site_contrast_seed alone where it is set (0 or more), else `own`."""
    if settings.site_contrast_seed < 0:
        return own
    site = np.random.default_rng(settings.site_contrast_seed)
    return draw_contrast(draw_contrast_mode(site, settings), site)


def draw_patient(rng: np.random.Generator, settings: SynthesisSettings) -> Patient:
    """A new synthetic patient. The case fat fraction is low + (high - low) x Beta(a, b), the settings'
    fat_fraction_beta (by default (1.2, 2): mostly lean muscle, sometimes very fatty); it rises by 0-4
    points per level caudally, and the sides differ by a normal N(0, 3) points. With a site_contrast_seed the
    patient takes the site's contrast (the patient's own is still drawn, so that the rest of it stays the same)."""
    mode = draw_contrast_mode(rng, settings)
    low, high = settings.fat_fraction_pct
    return Patient(
        habitus=draw_habitus(rng, settings.habitus_spread),
        contrast=site_contrast(settings, draw_contrast(mode, rng)),
        fat_pattern=draw_fat_pattern(rng, settings.deep_fat, settings.fat_streak_length_mm, settings.fat_streak_width_mm,
                                     settings.fat_patch_mm),
        fat_fraction_pct=float(low + (high - low) * rng.beta(*settings.fat_fraction_beta)),
        fat_gradient_pct_per_level=float(rng.uniform(0.0, 4.0)),
        fat_side_difference_pct=float(rng.normal(0.0, 3.0)),
        pixel_spacing_mm=float(rng.uniform(*settings.pixel_spacing_mm)),
        slice_spacing_mm=float(rng.uniform(*settings.slice_spacing_mm)),
    )


@dataclass(frozen=True, eq=False)
class SynthSlice:
    """One synthetic slice in display orientation: image, scheme labels and tissue codes on one grid.

    fat_fraction_*_pct: fat pixels / compartment pixels of the label map (the truth), per side and
    both together; fat_fraction_drawn_pct: the (right, left) fractions asked for. shape_source:
    "procedural" or "real"; shape_name names the real mask used.
    """

    image: np.ndarray
    labels: np.ndarray
    tissues: np.ndarray
    level: Level
    position: float
    fat_fraction_pct: float
    fat_fraction_right_pct: float
    fat_fraction_left_pct: float
    fat_fraction_drawn_pct: tuple[float, float]
    shape_source: str
    shape_name: str
    pixel_spacing_mm: float
    contrast: str

    def summary(self) -> dict:
        return {
            "level": self.level.name,
            "vertebra": self.level.vertebra,
            "disc": self.level.disc,
            "position": round(self.position, 3),
            "fat_fraction_pct": {
                "both": round(self.fat_fraction_pct, 4),
                "right": round(self.fat_fraction_right_pct, 4),
                "left": round(self.fat_fraction_left_pct, 4),
                "drawn_right": round(self.fat_fraction_drawn_pct[0], 4),
                "drawn_left": round(self.fat_fraction_drawn_pct[1], 4),
            },
            "shape_source": self.shape_source,
            "shape_name": self.shape_name,
            "contrast": self.contrast,
        }


def slice_position(level: Level, rng: np.random.Generator) -> float:
    """Where in its level a slice falls: anywhere in the vertebra's height, or within the disc."""
    if level.disc:
        return level.position + float(rng.uniform(-0.06, 0.06))
    if level.vertebra == "S1":
        return level.position + float(rng.uniform(-0.1, 0.15))
    return level.position + float(rng.uniform(-0.2, 0.2))


def wants_real_shape(level: Level, settings: SynthesisSettings, rng: np.random.Generator) -> bool:
    """Whether this slice takes its compartments from the traced masks."""
    if settings.shape_source == "procedural" or level.vertebra not in settings.real_shape_levels:
        return False
    if settings.shape_source == "real":
        if not real_shapes_available(settings.shapes_zip):
            raise InputError(
                f"{shapes_zip_path(settings.shapes_zip)}: not found; shape_source 'real' needs the traced masks "
                "(../shared beside the repository, or set shapes_zip), or use 'auto' or 'procedural'"
            )
        return True
    return real_shapes_available(settings.shapes_zip) and bool(rng.random() < settings.real_shape_probability)


def compartment_fat_pct(labels: np.ndarray, side) -> float:
    inside = np.isin(labels, side.labels)
    return float(100.0 * (labels[inside] == side.fat).mean()) if inside.any() else 0.0


def synth_slice(level: Level | str, rng: np.random.Generator, settings: SynthesisSettings,
                patient: Patient | None = None) -> SynthSlice:
    """One synthetic slice at a level ('L1'..'S1', 'T12', or a disc such as 'L4/L5'); a new patient if none is
    given. Each pixel sampled at its centre, or with settings.in_plane_supersampling above 1 over its area."""
    level = parse_level(level)
    patient = patient or draw_patient(rng, settings)
    if settings.in_plane_supersampling > 1:
        return area_sampled_slice(level, rng, settings, patient)
    return point_sampled_slice(level, rng, settings, patient)


def area_sampled_slice(level: Level, rng: np.random.Generator, settings: SynthesisSettings,
                       patient: Patient) -> SynthSlice:
    """A slice drawn at 1/K of the patient's pixel spacing (K = settings.in_plane_supersampling), its image the
    mean of each K x K block and its labels and tissues each block's centre sub-pixel; the fat truth of those."""
    k = settings.in_plane_supersampling
    fine_settings = dataclasses.replace(
        settings, image_size=settings.image_size * k, in_plane_supersampling=1,
        resolution_factor=(settings.resolution_factor[0] * k, settings.resolution_factor[1] * k))
    fine = point_sampled_slice(level, rng, fine_settings,
                               dataclasses.replace(patient, pixel_spacing_mm=patient.pixel_spacing_mm / k))
    size = settings.image_size
    image = fine.image.reshape(size, k, size, k).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    labels, tissues = (np.ascontiguousarray(a[k // 2::k, k // 2::k]) for a in (fine.labels, fine.tissues))
    return dataclasses.replace(fine, image=image, labels=labels, tissues=tissues,
                               pixel_spacing_mm=patient.pixel_spacing_mm, **fat_truth(labels))


def fat_truth(labels: np.ndarray) -> dict[str, float]:
    """A label map's fat fractions (fat pixels / compartment pixels), both sides and each, as SynthSlice's fields."""
    compartment = labels > 0
    fat = np.isin(labels, (RIGHT.fat, LEFT.fat))
    return {"fat_fraction_pct": float(100.0 * fat[compartment].mean()) if compartment.any() else 0.0,
            "fat_fraction_right_pct": compartment_fat_pct(labels, RIGHT),
            "fat_fraction_left_pct": compartment_fat_pct(labels, LEFT)}


def point_sampled_slice(level: Level, rng: np.random.Generator, settings: SynthesisSettings,
                        patient: Patient) -> SynthSlice:
    """A slice whose tissues and labels are read at each pixel's centre and its image rendered from them."""
    position = slice_position(level, rng)
    real = wants_real_shape(level, settings, rng)
    size, spacing = settings.image_size, patient.pixel_spacing_mm
    view = draw_view(rng, size, spacing, settings.rotation_deg, settings.scale, settings.elastic_mm)
    x, y = view_coordinates(view, size, spacing, rng)
    grid = covering_grid(x, y, spacing / view.scale)
    canvas = Canvas(grid)
    shapes = split_shapes(load_shapes(shapes_zip_path(settings.shapes_zip)), settings.real_shape_split) if real else None
    compartments = paint_anatomy(canvas, position, level.disc, patient.habitus, rng, shapes,
                                 settings.compartment_width_mm, settings.bone_gap_mm,
                                 ShapeScale(settings.compartment_width_scale, settings.compartment_depth_scale))
    tissues = seal_compartments(read_nearest(canvas.codes, grid, x, y))
    if settings.aponeurosis_probability > 0 and rng.random() < settings.aponeurosis_probability:
        tissues = add_aponeuroses(tissues, draw_aponeuroses(position, rng), spacing)
    fractions = patient.fat_fractions(position, settings, rng)
    tissues = add_fat(tissues, fractions, patient.fat_pattern, spacing, rng)
    labels = scheme_labels(tissues)
    contrast = draw_contrast(draw_contrast_mode(rng, settings), rng) if settings.contrast_per_slice else patient.contrast
    thick = settings.partial_volume_probability > 0 and rng.random() < settings.partial_volume_probability
    image = render_image(
        tissues, contrast, spacing, rng, snr=settings.snr, resolution_factor=settings.resolution_factor,
        bias_strength=settings.bias_strength, normalise=settings.normalise,
        partner=neighbouring_anatomy(tissues, labels, spacing, rng) if thick else None,
        ghost_probability=settings.ghost_probability, wrap_probability=settings.wrap_probability,
        coil=CoilProfile(settings.coil_probability, settings.coil_gain, settings.coil_falloff_mm),
        fascia_contrast=settings.fascia_contrast,
    )
    if settings.crop_probability > 0 and rng.random() < settings.crop_probability:
        image = crop_field_of_view(image, labels, spacing, rng)
    return SynthSlice(
        image=image,
        labels=labels,
        tissues=tissues,
        level=level,
        position=position,
        **fat_truth(labels),
        fat_fraction_drawn_pct=fractions,
        shape_source="real" if real else "procedural",
        shape_name=compartments.source,
        pixel_spacing_mm=spacing,
        contrast=contrast.mode,
    )


def split_shapes(shapes: tuple, split: str) -> tuple:
    """The traced masks of a split: "all", "train" (all but every fifth) or "heldout" (every fifth)."""
    if split == "all":
        return shapes
    return tuple(shape for index, shape in enumerate(shapes) if (index % 5 == 0) == (split == "heldout"))


def neighbouring_anatomy(tissues: np.ndarray, labels: np.ndarray, spacing: float,
                         rng: np.random.Generator) -> np.ndarray:
    """The tissue map as it might look a few millimetres further along the spine: scaled by up to
    +-4 % about the centre of the compartments' muscle (`labels`, its scheme labels) and shifted by up
    to 2 mm (nearest neighbour)."""
    from scipy.ndimage import affine_transform

    rows, columns = np.nonzero(np.isin(labels, (RIGHT.muscle, LEFT.muscle)))
    centre = np.array([rows.mean(), columns.mean()]) if rows.size else np.array(tissues.shape) / 2
    zoom = rng.uniform(0.96, 1.04, 2)
    shift = rng.uniform(-2.0, 2.0, 2) / spacing
    return affine_transform(tissues, 1.0 / zoom, offset=centre - centre / zoom + shift, order=0, mode="nearest")


def crop_field_of_view(image: np.ndarray, labels: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """The image with everything outside a rectangle set to its minimum (a smaller or shifted field of
    view): each edge, with even odds, moves in by up to 60 % of its room to the compartments, which
    keep at least 5 mm to spare."""
    rows, columns = np.nonzero(labels)
    if rows.size == 0:
        return image
    margin = int(np.ceil(5.0 / spacing))
    room = (max(rows.min() - margin, 0), max(image.shape[0] - 1 - rows.max() - margin, 0),
            max(columns.min() - margin, 0), max(image.shape[1] - 1 - columns.max() - margin, 0))
    top, bottom, left, right = (int(r * rng.uniform(0.0, 0.6)) if rng.random() < 0.5 else 0 for r in room)
    out = np.full_like(image, float(image.min()))
    out[top:image.shape[0] - bottom, left:image.shape[1] - right] = image[top:image.shape[0] - bottom,
                                                                         left:image.shape[1] - right]
    return out


@dataclass(frozen=True, eq=False)
class SynthCase:
    """One synthetic patient: slices ordered from inferior to superior on one pixel grid."""

    case_id: str
    index: int
    seed: int
    patient: Patient
    slices: tuple[SynthSlice, ...]

    @property
    def patient_id(self) -> str:
        return self.case_id

    @property
    def shape_source(self) -> str:
        """"procedural", "real" or "mixed" over the case's slices."""
        sources = {s.shape_source for s in self.slices}
        return sources.pop() if len(sources) == 1 else "mixed"

    def image_volume(self) -> np.ndarray:
        return np.stack([s.image for s in self.slices])

    def label_volume(self) -> np.ndarray:
        return np.stack([s.labels for s in self.slices]).astype(np.uint8)

    def metadata(self) -> dict:
        """case.json: identifiers, how the case was drawn, and per-slice level and fat truth."""
        return {
            "case_id": self.case_id,
            "patient_id": self.patient_id,
            "generator": "ParaspinalSegTrainingLib.synthesis",
            "seed": self.seed,
            "case_index": self.index,
            "contrast": self.patient.contrast.to_dict(),
            "pixel_spacing_mm": round(self.patient.pixel_spacing_mm, 6),
            "slice_spacing_mm": round(self.patient.slice_spacing_mm, 6),
            "case_fat_fraction_pct": round(self.patient.fat_fraction_pct, 4),
            "shape_source": self.shape_source,
            "slice_order": "inferior to superior",
            "slices": [s.summary() for s in self.slices],
        }


def case_levels(settings: SynthesisSettings, rng: np.random.Generator) -> list[Level]:
    """The case's slice levels, each vertebra `slices_per_level` times, some at discs; inferior first."""
    levels = [
        Level(vertebra, disc=vertebra != "S1" and bool(rng.random() < settings.disc_probability))
        for vertebra in settings.levels
        for _ in range(settings.slices_per_level)
    ]
    return sorted(levels, key=lambda level: -level.position)


def synth_case(case_index: int, settings: SynthesisSettings) -> SynthCase:
    """Case number `case_index` of the data set that `settings` (with its seed) describes."""
    rng = np.random.default_rng([settings.seed, case_index])
    patient = draw_patient(rng, settings)
    levels = case_levels(settings, rng)
    slices = tuple(synth_slice(level, child, settings, patient) for level, child in zip(levels, rng.spawn(len(levels))))
    return SynthCase(f"synth-{case_index:04d}", case_index, settings.seed, patient, slices)
