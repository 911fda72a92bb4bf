"""The same-protocol sites of bench/site_finetune.py: one pixel size, slice gap, matrix reduction, noise and
contrast for all of a site's patients, drawn from the domain's ranges; sites differ; the held-out draws stay."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ParaspinalSegTrainingLib.synthesis.domains import held_out_settings
from ParaspinalSegTrainingLib.synthesis.generator import draw_patient

spec = importlib.util.spec_from_file_location("site_finetune", Path(__file__).parents[2] / "bench" / "site_finetune.py")
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


def test_several_studies_are_fine_tuned_together_and_measured_on_the_same_later_patients(monkeypatch):
    """--together: one fine-tune on all the named studies, the parent's Dice on them pooled over their slices (as
    the recipe's gate measures it); --measure-from: only the later patients measured, whatever the studies."""
    from types import SimpleNamespace

    import ParaspinalSegLib.network.modelfile as modelfile
    import ParaspinalSegTrainingLib.datasets as datasets
    from ParaspinalSegTrainingLib.heldout import DomainFigures

    cases = [SimpleNamespace(case_id=f"p{k}") for k in range(8)]
    parent_slices = {"p0": [0.5, 0.5], "p1": [0.9, 0.9, 0.9, 0.9, 0.9, 0.9]}  # 2 and 6 slices a side
    trained, measured_by = [], {}

    def figures(model, case):
        found = DomainFigures(case.case_id, "")
        dice = parent_slices.get(case.case_id, [0.8]) if model == "parent" else [0.95]
        found.dice_right, found.dice_left = list(dice), list(dice)
        measured_by.setdefault(model, []).append(case.case_id)
        return found

    def variants(parent, parent_on_study, fine_tuned, work, offsets, shares):
        trained.append((fine_tuned, round(parent_on_study, 6)))
        return {"fine-tuned": "fine-tuned", "registered": "registered"}

    monkeypatch.setattr(modelfile, "load_model", lambda *args, **kwargs: "parent")
    monkeypatch.setattr(datasets, "find_cases", lambda folder: cases)
    monkeypatch.setattr(site_finetune, "case_figures", figures)
    monkeypatch.setattr(site_finetune, "fine_tuned_on", lambda studies, *args: "+".join(c.case_id for c in studies))
    monkeypatch.setattr(site_finetune, "variant_models", variants)
    for together, expected_rows in ((True, ["p0+p1"]), (False, ["p0", "p1"])):
        trained.clear(), measured_by.clear()
        rows = site_finetune.site_rows(Path("x"), "d", Path("f"), [0, 1], [], [], None, together=together,
                                       measure_from=3)
        assert [row.site_case for row in rows] == expected_rows
        assert measured_by["registered"] == ["p3", "p4", "p5", "p6", "p7"] * len(expected_rows)
        assert all(row.variants["registered"].dice == pytest.approx(0.95) and row.parent.dice == pytest.approx(0.8)
                   for row in rows)
    assert trained == [("p0", 0.5), ("p1", 0.9)]  # each study alone, the last loop
    rows = site_finetune.site_rows(Path("x"), "d", Path("f"), [0, 1], [], [], None, together=True, measure_from=3)
    assert rows[0].parent_on_study == pytest.approx((2 * 2 * 0.5 + 2 * 6 * 0.9) / 16)  # over both studies' slices


def test_the_recipe_takes_a_learning_rate_and_keeps_the_rest():
    from ParaspinalSegTrainingLib.finetune import FineTuneSettings

    default, other = site_finetune.recipe(), site_finetune.recipe(learning_rate=1e-3)
    assert default.learning_rate == FineTuneSettings().learning_rate != 1e-3
    assert other.learning_rate == 1e-3 and other.training_config("m", "1").learning_rate == 1e-3
    assert other.epochs == default.epochs and other.config == default.config and other.parent_share == 0.0


def test_the_recipe_takes_augmentation_settings_and_refuses_unknown_or_impossible_ones():
    import argparse

    default = site_finetune.recipe()
    strong = site_finetune.recipe(augmentation=dict(site_finetune.augmentation_setting(text) for text in (
        "scale=0.25", "elastic_probability=0.7", "flip_probability=0.5")))
    trained = strong.training_config("m", "1").augmentation
    assert (trained.scale, trained.elastic_probability, trained.flip_probability) == (0.25, 0.7, 0.5)
    assert trained.rotate_deg == default.config.augmentation.rotate_deg and default.config.augmentation.scale == 0.15
    for text in ("zoom=2", "scale=big", "elastic_probability=1.5", "shift=-0.1"):
        with pytest.raises(argparse.ArgumentTypeError):
            site_finetune.augmentation_setting(text)


def test_the_recipe_takes_the_frozen_epochs():
    default, unfrozen = site_finetune.recipe(), site_finetune.recipe(freeze_encoder_epochs=0)
    assert default.freeze_encoder_epochs == 3 and unfrozen.freeze_encoder_epochs == 0
    assert unfrozen.training_config("m", "1").freeze_encoder_epochs == 0 and unfrozen.epochs == default.epochs
