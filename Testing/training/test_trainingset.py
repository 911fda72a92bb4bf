"""Collecting corrected cases: files on the image's grid, pseudonyms, the mapping only when asked,
warnings on suspicious cases, no overwriting, removal into the trash."""

import datetime
import json

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import phantom_series
from ParaspinalSegLib.errors import InputError, OutputExistsError
from ParaspinalSegLib.geometry import SliceGeometry
from ParaspinalSegLib.labels import LEFT_FAT, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegLib.network.modelfile import label_scheme
from ParaspinalSegLib.read.reading import read_study
from ParaspinalSegLib.read.segmentation import load_segmentation
from ParaspinalSegLib.slices import ImageSlice, SliceSeries
from ParaspinalSegTrainingLib import trainingset
from ParaspinalSegTrainingLib.datasets import find_cases
from ParaspinalSegTrainingLib.trainingset import add_case, list_cases, remove_case

DRAFT = "paraspinalseg-unet-r18-1.0.0"


def add_phantom(training_set, seed, labels=None, **options):
    series, phantom_labels = phantom_series(slices=2, size=80, seed=seed, fat_fraction=0.1 + 0.2 * seed)
    options = {"draft_model": DRAFT, "corrected_segments": ["Right muscle tissue", "Left fat"], "author": "Dr. Test",
               **options}
    return add_case(training_set, series, phantom_labels if labels is None else labels, **options), series, phantom_labels


def exact_mean_fat_fraction(labels) -> float:
    return float(np.mean([100.0 * np.isin(l, (RIGHT_FAT, LEFT_FAT)).sum() / (l > 0).sum() for l in labels]))


def every_file_bytes(root):
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_two_corrected_cases_are_written_on_the_image_grid_under_pseudonyms(tmp_path):
    folder_a, series, labels = add_phantom(tmp_path / "set", 0, patient_key="MRN-0042")
    folder_b, _, labels_b = add_phantom(tmp_path / "set", 1, patient_key="MRN-0043")

    assert folder_a != folder_b and all(f.name.startswith("case-") for f in (folder_a, folder_b))
    assert b"MRN-004" not in every_file_bytes(tmp_path / "set")  # no patient key anywhere without the mapping
    assert not (tmp_path / "set" / "pseudonyms.csv").exists()
    study = read_study(folder_a / "image.nrrd").series
    assert all(a.geometry.same_grid(b.geometry) and a.geometry.spacing == b.geometry.spacing
               for a, b in zip(study.slices, series.slices, strict=True))  # thickness becomes the slice gap in a volume
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(study.slices, series.slices, strict=True))
    stored = load_segmentation([folder_a / "labels.nrrd"], study).labels
    assert all(np.array_equal(a, b) for a, b in zip(stored, labels, strict=True))

    meta = json.loads((folder_a / "case.json").read_text())
    assert meta["case_id"] == folder_a.name and meta["patient_id"].startswith("patient-")
    assert meta["label_scheme"] == label_scheme() and meta["slices"] == 2
    assert (meta["author"], meta["draft_model"], meta["corrected"]) == ("Dr. Test", DRAFT, True)
    assert meta["corrected_segments"] == ["Right muscle tissue", "Left fat"]
    assert datetime.datetime.fromisoformat(meta["added"]).tzinfo is not None
    assert meta["software"]["paraspinalseg"]
    dataset = json.loads((tmp_path / "set" / "dataset.json").read_text())
    assert (dataset["cases"], dataset["slices"], dataset["pseudonym_mapping"]) == (2, 4, None)
    assert sorted(c.case_id for c in find_cases(tmp_path / "set")) == sorted([folder_a.name, folder_b.name])

    summaries = {s.case_id: s for s in list_cases(tmp_path / "set")}
    a, b = summaries[folder_a.name], summaries[folder_b.name]
    assert (a.slices, a.corrected, a.draft_model, a.author, a.warnings) == (2, True, DRAFT, "Dr. Test", ())
    assert a.mean_fat_fraction_pct == pytest.approx(exact_mean_fat_fraction(labels), abs=1e-9)
    assert b.mean_fat_fraction_pct == pytest.approx(exact_mean_fat_fraction(labels_b), abs=1e-9)
    assert b.mean_fat_fraction_pct > a.mean_fat_fraction_pct + 15


def test_the_mapping_is_kept_only_when_asked_and_groups_a_patients_cases(tmp_path):
    first, _, _ = add_phantom(tmp_path, 0, patient_key="MRN-7", keep_mapping=True)
    second, _, _ = add_phantom(tmp_path, 1, patient_key="MRN-7", keep_mapping=True)
    third, _, _ = add_phantom(tmp_path, 2, patient_key="MRN-8")

    rows = (tmp_path / "pseudonyms.csv").read_text().splitlines()
    assert rows[0] == "case_id,patient_id,patient_key,added" and len(rows) == 3
    patient = {c.case_id: c.patient_id for c in find_cases(tmp_path)}
    assert patient[first.name] == patient[second.name] != patient[third.name]
    assert rows[1].startswith(f"{first.name},{patient[first.name]},MRN-7,")
    assert "MRN-8" not in (tmp_path / "pseudonyms.csv").read_text()
    assert b"MRN" not in every_file_bytes(tmp_path / "cases")
    assert json.loads((tmp_path / "dataset.json").read_text())["pseudonym_mapping"] == "pseudonyms.csv"


def test_the_case_list_warns_about_empty_border_touching_and_off_grid_labels(tmp_path):
    good, _, _ = add_phantom(tmp_path, 0)
    series, labels = phantom_series(slices=2, size=80, seed=1)
    empty, _, _ = add_phantom(tmp_path, 1, labels=[np.zeros_like(l) for l in labels])
    touching = [l.copy() for l in labels]
    touching[1][0, 30:40] = RIGHT_MUSCLE
    border, _, _ = add_phantom(tmp_path, 1, labels=touching)
    shifted, _, _ = add_phantom(tmp_path, 2)
    moved = sitk.ReadImage(str(shifted / "labels.nrrd"))
    moved.SetOrigin(tuple(v + 7.0 for v in moved.GetOrigin()))
    sitk.WriteImage(moved, str(shifted / "labels.nrrd"))

    warnings = {s.case_id: s.warnings for s in list_cases(tmp_path)}
    assert warnings[good.name] == ()
    assert warnings[empty.name] == ("the labels are empty: no compartment on any slice; correct the segmentation "
                                    "or remove the case",)
    assert len(warnings[border.name]) == 1
    assert warnings[border.name][0].startswith("the labels touch the image border on slice(s) 1:")
    assert len(warnings[shifted.name]) == 1
    assert warnings[shifted.name][0].startswith("the labels do not lie on the image's grid:")
    assert "labels.nrrd" in warnings[shifted.name][0]


def test_a_case_is_never_overwritten_and_removal_moves_it_whole_to_the_trash(tmp_path, monkeypatch):
    first, _, _ = add_phantom(tmp_path, 0)
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    monkeypatch.setattr(trainingset, "new_case_id", lambda cases: first.name)
    with pytest.raises(OutputExistsError, match=first.name):
        add_phantom(tmp_path, 1)
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert [p.name for p in (tmp_path / "cases").iterdir()] == [first.name]  # no half-written folder left
    monkeypatch.undo()

    second, _, _ = add_phantom(tmp_path, 1)
    target = remove_case(tmp_path, first.name)
    assert target == tmp_path / "trash" / first.name
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [s.case_id for s in list_cases(tmp_path)] == [second.name]
    assert json.loads((tmp_path / "dataset.json").read_text())["cases"] == 1
    for unknown in (first.name, "../trash", ""):
        with pytest.raises(InputError, match="no such case"):
            remove_case(tmp_path, unknown)


def test_add_case_refuses_what_would_make_a_broken_case(tmp_path):
    series, labels = phantom_series(slices=2, size=80)
    with pytest.raises(InputError, match="1 label maps for 2 slices"):
        add_case(tmp_path, series, labels[:1], draft_model=None, corrected_segments=[], author="x")
    with pytest.raises(InputError, match=r"shape \(40, 80\)"):
        add_case(tmp_path, series, [l[:40] for l in labels], draft_model=None, corrected_segments=[], author="x")
    with pytest.raises(InputError, match="outside the scheme"):
        add_case(tmp_path, series, [l + 5 for l in labels], draft_model=None, corrected_segments=[], author="x")
    g = series.slices[1].geometry
    tilted = SliceGeometry(g.origin, g.row_direction, (0.0, 0.9848, 0.1736), g.spacing, g.shape, g.thickness)
    angled = SliceSeries([series.slices[0], ImageSlice(series.slices[1].pixels, tilted, 1)], series.info)
    with pytest.raises(InputError, match="2 grid blocks"):
        add_case(tmp_path, angled, labels, draft_model=None, corrected_segments=[], author="x")
    assert not (tmp_path / "cases").exists() or not any((tmp_path / "cases").iterdir())
