"""The hostile corpus (Testing/hostile) run through the command line in-process, and the hostile
situations a corpus file cannot hold: two runs finishing on one output, Ctrl-C and unforeseen
failures in a batch, a full disk.

Every case: no traceback, the exit code its expectation says, an error naming the bad file, no
half-written output (".partial", ".import.", ".old." folders) anywhere, and no hang (an alarm).
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hostile import Case, Kit, Run, all_cases
from hostile.batches import summary_rows
from ParaspinalSegLib.cli import main, sample_folder

CASES = all_cases()
HANG_SECONDS = 60
DEBRIS = (".partial", ".import.", ".old.")


@pytest.fixture(scope="module")
def materials(tmp_path_factory) -> dict[str, Path]:
    """A copy of the sample study, a phantom volume with labels and a small random-weight model."""
    import torch

    from phantom import phantom_slice
    from ParaspinalSegLib.network.model import ModelArchitecture, Preprocessing, build_network
    from ParaspinalSegLib.network.modelfile import ModelCard, save_model

    root = tmp_path_factory.mktemp("hostile-materials")
    shutil.copytree(sample_folder() / "study", root / "study")
    made = [phantom_slice((96, 96), 3.0, 1.0, 0.2, np.random.default_rng(k)) for k in range(3)]
    for name, array in (("volume.nii.gz", np.stack([m.image for m in made]).astype(np.float32)),
                        ("labels.nii.gz", np.stack([m.labels for m in made]).astype(np.uint8))):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((3.0, 3.0, 5.0))
        sitk.WriteImage(image, str(root / name))
    torch.manual_seed(0)
    card = ModelCard(name="hostile", version="0.0.1",
                     architecture=ModelArchitecture(encoder_depth=3, decoder_channels=(32, 16, 8)),
                     preprocessing=Preprocessing(pixel_spacing_mm=4.5, input_size=64))
    save_model(root / "model", build_network(card.architecture), card)
    return {"root": root}


def make_kit(materials: dict[str, Path], tmp_path: Path) -> Kit:
    source = materials["root"]
    root = tmp_path / "case"
    root.mkdir()
    shutil.copytree(source / "model", root / "kit-model")
    study = source / "study"
    return Kit(root=root, study=study, dicom_file=study / "t2_tse_tra" / "IM0001",
               compartments=sample_folder() / "compartments.nrrd", volume=source / "volume.nii.gz",
               labels=source / "labels.nii.gz", model=root / "kit-model", home=tmp_path / "home")


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM after `seconds`."""
    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: the command hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(run: Run, capsys, monkeypatch) -> tuple[int, str, str]:
    """`paraspinal ARGV` in this process: (exit code, stdout, stderr); argparse's exit included."""
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    with deadline(HANG_SECONDS):
        try:
            code = main(run.argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def debris(*folders: Path) -> list[Path]:
    """Half-written outputs left behind under the folders."""
    return [p for folder in folders if folder.exists() for p in folder.rglob("*")
            if any(mark in p.name for mark in DEBRIS)]


EXPECTED_CODES = {"error": {2}, "ok": {0}, "either": {0, 2}, "some-failed": {1}}


def check_case(case: Case, run: Run, code: int, out: str, err: str, kit: Kit) -> None:
    assert "Traceback" not in out + err, err
    assert code in EXPECTED_CODES[case.expect], f"exit code {code}\n{out}\n{err}"
    if code == 2:
        message = [line for line in err.splitlines() if "error" in line]
        assert message, err
        assert run.names in err, f"the error does not name {run.names!r}: {err}"
    assert not debris(kit.root, kit.home, sample_folder()), debris(kit.root, kit.home, sample_folder())
    assert not (sample_folder() / "hostile-out").exists()
    if run.verify:
        run.verify()


@pytest.mark.parametrize("case", [c for c in CASES if not c.slow], ids=lambda c: c.name)
def test_hostile_case(case: Case, materials, tmp_path, capsys, monkeypatch):
    kit = make_kit(materials, tmp_path)
    run = case.build(kit)
    code, out, err = run_in_process(run, capsys, monkeypatch)
    check_case(case, run, code, out, err, kit)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.slow], ids=lambda c: c.name)
def test_hostile_case_slow(case: Case, materials, tmp_path, capsys, monkeypatch):
    test_hostile_case(case, materials, tmp_path, capsys, monkeypatch)


def test_the_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


def _segment_argv(kit: Kit, study: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "segment", str(study), "--model", str(kit.model), "--device", "cpu", "-o", str(out), *extra]


def test_a_run_finishing_second_on_the_same_output_fails_and_keeps_the_first(materials, tmp_path, capsys,
                                                                              monkeypatch):
    """The other run finishes while this one writes: this one must fail cleanly, not replace it."""
    import ParaspinalSegLib.output.qc as qc

    kit = make_kit(materials, tmp_path)
    out = tmp_path / "shared-out"
    original = qc.write_qc_montage

    def the_other_run_finishes_first(path, *args, **kwargs):
        out.mkdir()
        (out / "patient.json").write_text("the other run's result\n")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(qc, "write_qc_montage", the_other_run_finishes_first)
    code, _, err = run_in_process(Run(_segment_argv(kit, kit.study, out)), capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err and str(out) in err
    assert (out / "patient.json").read_text() == "the other run's result\n"
    assert not debris(tmp_path)


def test_overwrite_replaces_only_once_complete_and_never_a_folder_that_appeared(materials, tmp_path, capsys,
                                                                                monkeypatch):
    kit = make_kit(materials, tmp_path)
    out = tmp_path / "out"
    assert run_in_process(Run(_segment_argv(kit, kit.study, out)), capsys, monkeypatch)[0] == 0
    first = (out / "slices.csv").read_text()
    code, _, err = run_in_process(Run(_segment_argv(kit, kit.study, out, "--overwrite")), capsys, monkeypatch)
    assert code == 0, err
    assert (out / "slices.csv").read_text() == first and not debris(tmp_path)


def _batch_folder(kit: Kit, names: list[str]) -> Path:
    folder = kit.root / "batch"
    for name in names:
        shutil.copytree(kit.study, folder / name)
    return folder


def test_ctrl_c_in_a_batch_keeps_what_is_done_and_says_so(materials, tmp_path, capsys, monkeypatch):
    import ParaspinalSegLib.cohorts.batch as batch

    kit = make_kit(materials, tmp_path)
    folder, out = _batch_folder(kit, ["a", "b", "c"]), tmp_path / "results"
    original = batch.segment_study

    def interrupted_at_b(study, *args, **kwargs):
        if study.name == "b":
            raise KeyboardInterrupt
        return original(study, *args, **kwargs)

    monkeypatch.setattr(batch, "segment_study", interrupted_at_b)
    code, _, err = run_in_process(Run(["-q", "segment", str(folder), "--batch", "--model", str(kit.model), "-o",
                                       str(out)]), capsys, monkeypatch)
    assert code == 130 and "Traceback" not in err
    assert "nothing was written" not in err and "1 studies finished before are kept" in err
    rows = summary_rows(out)
    assert [rows[n]["status"] for n in "abc"] == ["ok", "not run", "not run"]
    assert (out / "a" / "patient.json").is_file() and not (out / "b").exists() and not debris(tmp_path)


def test_an_unforeseen_failure_of_one_study_does_not_end_the_batch(materials, tmp_path, capsys, monkeypatch):
    import ParaspinalSegLib.cohorts.batch as batch

    kit = make_kit(materials, tmp_path)
    folder, out = _batch_folder(kit, ["a", "b"]), tmp_path / "results"
    original = batch.segment_study

    def broken_on_a(study, *args, **kwargs):
        if study.name == "a":
            raise ZeroDivisionError("a bug")
        return original(study, *args, **kwargs)

    monkeypatch.setattr(batch, "segment_study", broken_on_a)
    code, out_text, err = run_in_process(Run(["-q", "segment", str(folder), "--batch", "--model", str(kit.model),
                                              "-o", str(out)]), capsys, monkeypatch)
    assert code == 1 and "Traceback" not in err
    rows = summary_rows(out)
    assert rows["a"]["status"] == "failed" and "ZeroDivisionError" in rows["a"]["error"]
    assert rows["b"]["status"] == "ok"


@pytest.mark.slow
def test_a_full_disk_is_one_clear_line_and_leaves_nothing(materials, tmp_path):
    """The file size limit makes every write past 64 kB fail as a full disk would (EFBIG)."""
    kit = make_kit(materials, tmp_path)
    out = tmp_path / "out"
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
              "from ParaspinalSegLib.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, *_segment_argv(kit, kit.study, out)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert str(out) in done.stderr and "cannot be written" in done.stderr
    assert not out.exists() and not debris(tmp_path)


def test_batch_output_names_are_unique_and_stable():
    from ParaspinalSegLib.paths import unique_folder_names

    names = ["knee.v1", "knee.v2", "1.2.840.1", "1.2.840.2", "Knee", "knee", "a b", "a_b", os.fsdecode(b"x\xff")]
    first = unique_folder_names(names)
    assert len({n.lower() for n in first}) == len(names)
    assert first[:4] == ["knee.v1", "knee.v2", "1.2.840.1", "1.2.840.2"] and first[7] == "a_b"
    assert unique_folder_names(list(reversed(names))) == list(reversed(first))
    assert all(n.isascii() and "/" not in n for n in first)


def test_summary_is_valid_csv_for_odd_names(materials, tmp_path, capsys, monkeypatch):
    kit = make_kit(materials, tmp_path)
    folder, out = _batch_folder(kit, ['quote"and,comma', "plain"]), tmp_path / "results"
    code, _, err = run_in_process(Run(["-q", "segment", str(folder), "--batch", "--model", str(kit.model), "-o",
                                       str(out)]), capsys, monkeypatch)
    assert code == 0, err
    with open(out / "summary.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert sorted(r["study"] for r in rows) == ['plain', 'quote"and,comma']


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_error_is_one_line_and_verbose_shows_its_traceback(verbose, tmp_path):
    import subprocess
    import sys

    crash = ("import sys; import ParaspinalSegLib.cli as cli\n"
             "def broken(args): raise ZeroDivisionError('a bug')\n"
             "cli.check_paths = broken\n"
             f"sys.exit(cli.main({['-v'] * verbose + ['series', str(tmp_path)]!r}))\n")
    done = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "error: unexpected ZeroDivisionError (a bug); please report it" in done.stderr
    assert ("Traceback" in done.stderr) == verbose
