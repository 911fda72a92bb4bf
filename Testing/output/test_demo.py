"""The newcomer's first command: `paraspinal demo` on the shipped synthetic sample study."""

import json

import pytest

from helpers import run_cli
from ParaspinalSegTrainingLib.sample import write_sample_study

from ParaspinalSegLib.cli import sample_folder


def test_demo_measure_mode_agrees_with_the_sample_truth(tmp_path, capsys):
    code, out, err = run_cli(capsys, "demo", "--measure", "-o", tmp_path / "demo")
    assert code == 0, err
    truth = json.loads((sample_folder() / "truth.json").read_text())
    patient = json.loads((tmp_path / "demo" / "patient.json").read_text())
    assert patient["grade"] == truth["grade"] and "agrees" in out
    assert patient["mean_fat_fraction_pct"]["overall"] == pytest.approx(truth["mean_fat_fraction_pct"], abs=3.0)
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {"slices.csv", "patient.json", "segmentation.seg.nrrd", "qc.png"}
    assert "t2_tse_tra" in out  # the T2 TSE series was chosen over the localizer
    assert "In-distribution only: the sample comes from the same generator the shipped models were trained on" in out


def test_shipped_sample_is_what_the_generator_makes(tmp_path):
    """Resources/Sample is reproducible from its seed: same truth, same compartment map."""
    truth = write_sample_study(tmp_path / "sample")
    shipped = sample_folder()
    assert truth == json.loads((shipped / "truth.json").read_text())
    import SimpleITK as sitk

    for name in ("compartments.nrrd", "truth.nrrd"):
        made = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "sample" / name)))
        kept = sitk.GetArrayFromImage(sitk.ReadImage(str(shipped / name)))
        assert (made == kept).all()


def test_measure_refuses_the_cnn_fat_method(tmp_path, capsys):
    sample = sample_folder()
    code, _, err = run_cli(capsys, "measure", sample / "study", sample / "compartments.nrrd", "--fat-method", "cnn",
                           "-o", tmp_path / "out")
    assert code == 2 and "gmm or otsu" in err
