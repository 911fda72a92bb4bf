"""Cohorts: shards of a batch (stable, disjoint, covering), resume, `paraspinal summary` and its
report, progress with the time left and a log line per study without identifiers."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from helpers import SHIPPED_MODEL as SHIPPED, run_cli, write_phantom_dataset
from ParaspinalSegLib.cohorts.eta import BatchClock, duration_text, study_line
from ParaspinalSegLib.errors import ParaspinalError
from ParaspinalSegLib.cohorts.sharding import Shard, choose_shard, part_of_name

GOOD = ["Doe^Jane.nii.gz", "Roe^Richard.nii.gz", "case-3.nii.gz", "case-4.nii.gz"]
BROKEN = "zz-broken.nii.gz"


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """A batch folder: four small phantom volumes (2 slices each) named like patients, and a broken file."""
    data = write_phantom_dataset(tmp_path_factory.mktemp("data"), cases=len(GOOD), slices=2)
    folder = tmp_path_factory.mktemp("batch")
    for name, case in zip(GOOD, sorted((data / "cases").iterdir())):
        shutil.copy(case / "image.nii.gz", folder / name)
    (folder / BROKEN).write_bytes(b"not a volume")
    return folder


def batch(capsys, studies: Path, out: Path, *extra) -> tuple[int, str, str]:
    return run_cli(capsys, "segment", studies, "--batch", "--model", SHIPPED, "--device", "cpu", "--backend", "torch",
                   "-o", out, *extra)


def rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return {row["study"]: row for row in csv.DictReader(stream)}


def test_parts_are_disjoint_covering_and_stable():
    names = [f"patient-{i:04d}" for i in range(300)] + ["a b", "Ümlaut", "x.zip"]
    for n in (1, 2, 3, 8):
        parts = [[name for name in names if Shard(k, n).holds(name)] for k in range(n)]
        assert sorted(sum(parts, [])) == sorted(names)  # covering, and each name in exactly one part
        assert all(len(p) > 300 / n / 2 for p in parts)  # no part left nearly empty
    # a study's part depends on its own name only: fixed forever by the SHA-256 rule
    assert [part_of_name(f"patient-{i:04d}", 4) for i in range(8)] == [
        int.from_bytes(hashlib.sha256(f"patient-{i:04d}".encode()).digest()[:8], "big") % 4
        for i in range(8)]
    assert [part_of_name(name, 3) for name in ("a", "b", "c", "d")] == [1, 1, 2, 2]
    assert Shard(2, 8).summary_name() == "summary-part-002-of-008.csv" and Shard().summary_name() == "summary.csv"


def test_the_part_comes_from_a_slurm_array_unless_given():
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert choose_shard(None, None, slurm) == Shard(2, 4)  # --array=1-4: the third task is part 2
    assert choose_shard(None, None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}) == Shard(0, 2)
    assert choose_shard(5, 1, slurm) == Shard(1, 5)
    assert choose_shard(None, None, {}) == Shard(0, 1)
    with pytest.raises(ParaspinalError, match="--part-id 4: must lie between 0 and 3"):
        choose_shard(4, 4, {})
    with pytest.raises(ParaspinalError, match="SLURM_ARRAY_TASK_ID='x' is not a whole number"):
        choose_shard(None, None, {"SLURM_ARRAY_TASK_ID": "x"})


def test_time_left_and_the_study_line():
    now = [100.0]
    clock = BatchClock(4, clock=lambda: now[0])
    assert clock.status() == "studies 0/4"
    now[0] += 20.0
    clock.finish_one()
    clock.finish_one()
    assert clock.status() == "studies 2/4, about 20 s left"
    assert study_line(clock, 17, "ok", "grade II", 9.04) == "study #17 ok in 9.0 s: grade II; studies 2/4, about 20 s left"
    assert [duration_text(s) for s in (44.6, 600, 11100)] == ["45 s", "10 min", "3 h 05 min"]


def test_sharded_batch_resumes_and_merges_into_one_cohort(studies, tmp_path, capsys, monkeypatch, caplog):
    import ParaspinalSegLib.cohorts.batch as batch_module

    out = tmp_path / "results"
    parts = []
    for part in (0, 1):
        code, _, err = batch(capsys, studies, out, "--num-parts", "2", "--part-id", str(part))
        assert "Traceback" not in err
        parts.append(rows(out / f"summary-part-00{part}-of-002.csv"))
    assert not set(parts[0]) & set(parts[1])
    assert sorted(set(parts[0]) | set(parts[1])) == sorted(GOOD + [BROKEN])
    # the per-study log lines (no progress bar here) carry numbers, never the studies' names
    lines = [r.getMessage() for r in caplog.records if r.name == "ParaspinalSegLib.cohorts.eta"]
    assert sorted(line.split()[1] for line in lines) == sorted(f"#{r['number']}" for r in (*parts[0].values(), *parts[1].values()))
    assert not any(n.split(".")[0] in "\n".join(lines) for n in GOOD + [BROKEN])
    assert json.loads((out / "failures" / f"{BROKEN}.json").read_text())["study"] == BROKEN

    # resume: complete studies are kept, an incomplete one and the failed one are run again
    (out / "case-3.nii.gz" / "qc.png").unlink()
    ran = []
    original = batch_module.segment_study
    monkeypatch.setattr(batch_module, "segment_study", lambda study, *a, **k: ran.append(study.name) or original(study, *a, **k))
    code, stdout, _ = batch(capsys, studies, out)
    assert code == 1 and sorted(ran) == ["case-3.nii.gz", BROKEN]
    summary = rows(out / "summary.csv")
    assert [summary[n]["status"] for n in GOOD + [BROKEN]] == ["kept", "kept", "ok", "kept", "failed"]
    assert [summary[n]["number"] for n in GOOD + [BROKEN]] == ["1", "2", "3", "4", "5"]
    assert (out / "case-3.nii.gz" / "qc.png").is_file() and "(kept: complete from an earlier run)" in stdout
    ran.clear()
    assert batch(capsys, studies, out, "--overwrite")[0] == 1 and sorted(ran) == sorted(GOOD + [BROKEN])

    # another method does not silently mix with the kept outputs
    code, _, _ = batch(capsys, studies, out, "--fat-method", "gmm")
    assert code == 1
    assert "made earlier with muscle and fat from model" in rows(out / "summary.csv")["case-4.nii.gz"]["error"]

    # summary: one row per study, one per study/slice/side, the failed and the missing ones reported
    expected = tmp_path / "expected.txt"
    expected.write_text("\n".join(GOOD + [BROKEN, "never-run"]) + "\n")
    code, stdout, err = run_cli(capsys, "summary", out, "--expected", expected, "-o", tmp_path / "cohort")
    assert code == 1, err
    assert stdout.splitlines()[0] == "6 studies: 4 done, 1 failed, 1 missing"
    cohort = rows(tmp_path / "cohort" / "studies.csv")
    assert {n: r["status"] for n, r in cohort.items()} == {**{n: "ok" for n in GOOD}, BROKEN: "failed",
                                                          "never-run": "missing"}
    assert cohort["Doe^Jane.nii.gz"]["output"].startswith("Doe_Jane.nii.gz-")  # its safe folder name
    for name in GOOD:
        assert cohort[name]["grade"] == json.loads((out / cohort[name]["output"] / "patient.json").read_text())["grade"]
    with open(tmp_path / "cohort" / "slices.csv", newline="") as stream:
        slices = list(csv.DictReader(stream))
    assert len(slices) == len(GOOD) * 2 * 3  # 2 slices, 3 sides each
    with open(out / cohort["Doe^Jane.nii.gz"]["output"] / "slices.csv", newline="") as stream:
        first = next(csv.DictReader(stream))
    jane = [r for r in slices if r["study"] == "Doe^Jane.nii.gz" and r["slice_index"] == "0"]
    assert [(r["side"], r["fat_fraction_pct"]) for r in jane] == [
        (side, first[f"{side}_fat_fraction_pct"]) for side in ("right", "left", "both")]


def test_report_counts_grades_and_links_each_warned_study_to_its_qc_picture(studies, tmp_path, capsys):
    out = tmp_path / "results"
    batch(capsys, studies, out)
    code, _, err = run_cli(capsys, "summary", out, "--studies", studies, "-o", tmp_path / "cohort")
    assert code == 1, err  # the broken study failed
    report = (tmp_path / "cohort" / "report.md").read_text()
    grades = [json.loads((out / r["output"] / "patient.json").read_text())["grade"]
              for n, r in rows(out / "summary.csv").items() if n in GOOD]
    for grade in ("I", "II", "III"):
        assert f"| {grade} | {grades.count(grade)} | {100 * grades.count(grade) / len(GOOD):.1f} % |" in report
    assert "5 studies: 4 done, 1 failed, 0 missing" in report and f"| {BROKEN} |" in report
    links = [line.split("(<")[1].split(">)")[0] for line in report.splitlines() if "[qc.png]" in line]
    assert len(links) == len(GOOD)  # a volume file always warns that its sequence is unknown
    assert all((tmp_path / "cohort" / link).resolve().is_file() for link in links)


def test_a_folder_in_the_way_is_refused_and_never_replaced(studies, tmp_path, capsys):
    out = tmp_path / "results"
    (out / "case-3.nii.gz").mkdir(parents=True)
    (out / "case-3.nii.gz" / "notes.txt").write_text("mine")
    code, _, _ = batch(capsys, studies, out)
    assert code == 1 and (out / "case-3.nii.gz" / "notes.txt").read_text() == "mine"
    assert "is in the way" in rows(out / "summary.csv")["case-3.nii.gz"]["error"]
