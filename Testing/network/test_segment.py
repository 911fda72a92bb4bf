"""`paraspinal segment`: one study and a batch, with a tiny model trained here on phantom data."""

import csv
import json
import math
import shutil

import pytest

from helpers import TINY, run_cli, write_phantom_dataset
from ParaspinalSegLib.cli import sample_folder
from ParaspinalSegLib.measure.grading import sgc_grade
from ParaspinalSegTrainingLib.run import run_training


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    data = write_phantom_dataset(tmp_path_factory.mktemp("data"), cases=4)
    run = run_training(data, tmp_path_factory.mktemp("run") / "run", TINY.with_overrides(folds=0, epochs=1))
    return run.folds[0].model_folder


def test_segment_writes_every_output_with_provenance(tiny_model, tmp_path, capsys):
    code, out, err = run_cli(capsys, "segment", sample_folder() / "study", "--model", tiny_model, "--device", "cpu",
                             "-o", tmp_path / "out")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"slices.csv", "patient.json", "segmentation.seg.nrrd", "qc.png"}
    patient = json.loads((tmp_path / "out" / "patient.json").read_text())
    assert patient["provenance"]["model"] == "paraspinal-unet-0.1.0"
    assert patient["provenance"]["method"] == "muscle and fat from model paraspinal-unet-0.1.0"
    assert patient["model_note"] is None and "model note" not in out  # its card reports no real case
    code, _, err = run_cli(capsys, "segment", sample_folder() / "study", "--model", tiny_model, "--fat-method", "gmm",
                           "-o", tmp_path / "gmm")
    assert code == 0, err
    assert "fat by gmm" in json.loads((tmp_path / "gmm" / "patient.json").read_text())["provenance"]["method"]


def test_batch_reports_the_broken_study_and_goes_on(tiny_model, tmp_path, capsys):
    studies = tmp_path / "studies"
    shutil.copytree(sample_folder() / "study", studies / "patient_a")
    shutil.copytree(sample_folder() / "study", studies / "patient_b")
    (studies / "patient_c").mkdir()
    (studies / "patient_c" / "IM0001").write_bytes((sample_folder() / "study" / "t2_tse_tra" / "IM0001").read_bytes()[:600])
    code, out, err = run_cli(capsys, "segment", studies, "--batch", "--model", tiny_model, "-o", tmp_path / "results")
    assert code == 1 and "Traceback" not in err
    with open(tmp_path / "results" / "summary.csv", newline="") as stream:
        rows = {row["study"]: row for row in csv.DictReader(stream)}
    assert [rows[s]["status"] for s in ("patient_a", "patient_b", "patient_c")] == ["ok", "ok", "failed"]
    assert "IM0001" in rows["patient_c"]["error"] and "patient_c: FAILED" in out
    assert rows["patient_a"]["model"] == "paraspinal-unet-0.1.0"
    for study in ("patient_a", "patient_b"):  # the grade of the slices written for that study
        with open(tmp_path / "results" / study / "slices.csv", newline="") as stream:
            fractions = [float(r["both_fat_fraction_pct"]) for r in csv.DictReader(stream) if r["both_fat_fraction_pct"]]
        assert rows[study]["grade"] == sgc_grade(sum(fractions) / len(fractions) if fractions else math.nan)
        assert rows[study]["grade"] == json.loads((tmp_path / "results" / study / "patient.json").read_text())["grade"]
    assert rows["patient_a"]["grade"] == rows["patient_b"]["grade"]  # the same images
    assert (tmp_path / "results" / "patient_a" / "slices.csv").exists()
    assert not (tmp_path / "results" / "patient_c").exists()


def test_segment_series_progress_runs_once_to_the_end_and_cancels_in_the_fat_step(tiny_model):
    from ParaspinalSegLib.errors import OperationCancelled
    from ParaspinalSegLib.network.modelfile import load_model
    from ParaspinalSegLib.pipeline import segment_series
    from ParaspinalSegLib.read.reading import read_study

    series, model = read_study(sample_folder() / "study").series, load_model(tiny_model)
    seen = []
    segment_series(series, model, fat_method="gmm", progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any("fat" in m for _, m in seen)

    def cancel_in_fat_step(fraction, message):
        if "fat" in message:
            raise OperationCancelled("stopped")

    with pytest.raises(OperationCancelled):
        segment_series(series, model, fat_method="gmm", progress=cancel_in_fat_step)
