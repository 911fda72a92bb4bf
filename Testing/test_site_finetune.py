"""The same-protocol sites of bench/site_finetune.py: one pixel size, slice gap, matrix reduction, noise and
contrast for all of a site's patients, drawn from the domain's ranges; sites differ; the held-out draws stay."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings
from ParaspinalSegTrainingLib.synthesis.generator import draw_patient

spec = importlib.util.spec_from_file_location("site_finetune", Path(__file__).parents[1] / "bench" / "site_finetune.py")
site_finetune = sys.modules["site_finetune"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(site_finetune)


def test_a_site_keeps_one_protocol_drawn_from_its_domain_s_ranges():
    domain = held_out_settings("very_coarse_pixels")
    sites = [site_finetune.site_settings("very_coarse_pixels", False, k) for k in range(3)]
    for site in sites:
        for name in site_finetune.PROTOCOL:
            low, high = getattr(site, name)
            assert low == high and getattr(domain, name)[0] <= low <= getattr(domain, name)[1]
        assert not site.contrast_per_slice and site.image_size == domain.image_size
        patients = [draw_patient(np.random.default_rng([site.seed, k]), site) for k in range(4)]
        assert {patient.pixel_spacing_mm for patient in patients} == {site.pixel_spacing_mm[0]}
        assert len({str(patient.contrast) for patient in patients}) == 1
    assert len({site.pixel_spacing_mm for site in sites}) == 3 and len({site.seed for site in sites}) == 3
    assert domain.seed not in {site.seed for site in sites} and domain.pixel_spacing_mm == (3.1, 3.6)


def test_a_site_contrast_is_shared_and_leaves_the_rest_of_each_patient_as_it_was():
    own = held_out_settings("gre_in_phase")
    shared = own.__class__.from_dict({**own.to_dict(), "site_contrast_seed": 7})
    for k in range(3):
        alone, at_site = (draw_patient(np.random.default_rng([own.seed, k]), s) for s in (own, shared))
        assert at_site.contrast == draw_patient(np.random.default_rng([own.seed, 0]), shared).contrast
        assert alone.contrast != at_site.contrast and alone.contrast.mode == at_site.contrast.mode == "gre_in_phase"
        assert (alone.pixel_spacing_mm, alone.fat_fraction_pct, alone.habitus) == (
            at_site.pixel_spacing_mm, at_site.fat_fraction_pct, at_site.habitus)
