"""The coarse-pixel report (bench/coarse_partial_volume.py): each variant changes only what it names on top of
the domain's own selection-draw settings, and its row reads the domain's figures."""

import importlib.util
import sys
from pathlib import Path

import pytest

from ParaspinalSegTrainingLib.heldout import DomainFigures
from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings

spec = importlib.util.spec_from_file_location("coarse_partial_volume",
                                              Path(__file__).parents[2] / "bench" / "coarse_partial_volume.py")
report = sys.modules["coarse_partial_volume"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


@pytest.mark.parametrize("domain", report.DOMAINS)
def test_each_variant_changes_only_what_it_names(domain):
    own = held_out_settings(domain)
    assert report.variant_settings(domain, "as drawn") == own
    clean = report.variant_settings(domain, "clean")
    assert clean.snr == (1e4, 1e4) and clean.resolution_factor == (1.0, 1.0) and clean.ghost_probability == 0
    assert clean.pixel_spacing_mm == own.pixel_spacing_mm and clean.in_plane_supersampling == 1
    fine = report.variant_settings(domain, "clean, 1.0-1.4 mm pixels")
    assert fine == clean.__class__(**{**clean.__dict__, "pixel_spacing_mm": (1.0, 1.4), "image_size": 320})
    area = report.variant_settings(domain, "clean, partial volume")
    assert area == clean.__class__(**{**clean.__dict__, "in_plane_supersampling": 5})
    drawn = report.variant_settings(domain, "as drawn, partial volume")
    assert drawn == own.__class__(**{**own.__dict__, "in_plane_supersampling": 5})
    assert len({report.folder_name(domain, v) for v in report.VARIANTS}) == len(report.VARIANTS)


def test_a_row_gives_dice_area_bias_and_the_end_levels():
    figures = DomainFigures("very_coarse_pixels", "resolution", dice_right=[0.9, 0.8], dice_left=[1.0, 0.7],
                            level_dice={"T12": [0.8, 0.9], "L3": [0.95]}, area_errors=[0.1, -0.02, float("nan")])
    assert report.table_row("very_coarse_pixels", "clean", figures) == \
        "| very_coarse_pixels | clean | 0.850 | +4.0 | 0.850 | – |"
