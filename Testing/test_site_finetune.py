"""The same-protocol sites of bench/site_finetune.py: one pixel size, slice gap, matrix reduction and noise for
all of a site's patients, drawn from the domain's ranges; sites differ; the held-out draws stay as they were."""

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
        spacings = {draw_patient(np.random.default_rng([site.seed, k]), site).pixel_spacing_mm for k in range(4)}
        assert spacings == {site.pixel_spacing_mm[0]}
    assert len({site.pixel_spacing_mm for site in sites}) == 3 and len({site.seed for site in sites}) == 3
    assert domain.seed not in {site.seed for site in sites} and domain.pixel_spacing_mm == (3.1, 3.6)
