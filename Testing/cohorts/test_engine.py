"""`segment --batch --engine dask` in local mode: the same outputs as a serial run, byte for byte
apart from the timestamps; a failing study recorded while the others finish; a study whose worker
died run again. Skipped when the extra paraspinalseg[cluster] is not installed."""

import re
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the optional extra paraspinalseg[cluster] (Dask) is not installed")

from engine_faults import always_dies, dies_on_its_first_try  # noqa: E402
from test_cohort import BROKEN, GOOD, SHIPPED, batch, rows, studies  # noqa: E402,F401 (studies: a fixture)

TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def files_without_timestamps(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): TIMESTAMP.sub(b"<time>", p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dask_gives_the_serial_outputs_and_records_the_failing_study(studies, tmp_path, capsys):
    code, _, err = batch(capsys, studies, tmp_path / "serial")
    assert code == 1, err
    code, out, err = batch(capsys, studies, tmp_path / "dask", "--engine", "dask", "--workers", "2")
    assert code == 1 and "Traceback" not in err, err
    summary = rows(tmp_path / "dask" / "summary.csv")
    assert [summary[n]["status"] for n in GOOD + [BROKEN]] == ["ok"] * len(GOOD) + ["failed"]
    assert f"{BROKEN}: FAILED: {studies / BROKEN}: the file is cut short or damaged" in out
    serial, dask = (files_without_timestamps(tmp_path / name) for name in ("serial", "dask"))
    assert sorted(serial) == sorted(dask) and len(serial) == 4 * len(GOOD) + 2  # 4 files a study, summary, 1 failure
    assert [name for name in serial if serial[name] != dask[name]] == []


def test_a_study_whose_worker_died_runs_again_and_one_that_always_kills_it_is_recorded(studies, tmp_path):
    from ParaspinalSegLib.cohorts.batch import segment_folder
    from ParaspinalSegLib.cohorts.engine import ALLOWED_FAILURES, DaskEngine
    from ParaspinalSegLib.network.modelfile import LoadedModel, read_card

    model = LoadedModel(None, read_card(SHIPPED), SHIPPED)
    only_one = tmp_path / "one"
    only_one.mkdir()
    (only_one / GOOD[2]).symlink_to(studies / GOOD[2])
    outcomes = segment_folder(only_one, tmp_path / "retried", model,
                              engine=DaskEngine(workers=1, backend="torch", task=dies_on_its_first_try, small_run=0))
    assert [o.status for o in outcomes] == ["ok"], [o.error for o in outcomes]
    assert (tmp_path / "retried" / ".died-1").is_file() and (tmp_path / "retried" / GOOD[2] / "qc.png").is_file()

    outcomes = segment_folder(only_one, tmp_path / "lost", model, engine=DaskEngine(workers=1, task=always_dies, small_run=0))
    assert [o.status for o in outcomes] == ["failed"]
    assert outcomes[0].error.startswith(f"its worker process died {ALLOWED_FAILURES + 1} times while running it")
    assert rows(tmp_path / "lost" / "summary.csv")[GOOD[2]]["status"] == "failed"
    assert (tmp_path / "lost" / "failures" / f"{GOOD[2]}.json").is_file()


def test_a_short_one_worker_run_goes_on_in_this_process():
    """One local worker overlaps nothing: a run shorter than the cluster's start-up is worth runs here."""
    from ParaspinalSegLib.cohorts.engine import DaskEngine

    assert DaskEngine(workers=1).runs_here(39) and not DaskEngine(workers=1).runs_here(40)
    assert not DaskEngine(workers=2).runs_here(3) and not DaskEngine(workers=1, scheduler="tcp://x:8786").runs_here(3)
    recorded = []
    DaskEngine(workers=1, task=lambda job, folder, settings, backend: f"{job} in this process").run(
        ["a", "b"], Path("model"), None, lambda job, outcome: recorded.append(outcome))
    assert recorded == ["a in this process", "b in this process"]


def test_a_cluster_that_fails_to_close_after_the_run_is_logged_not_raised(caplog):
    """Dask can fail to close a local cluster whose nanny is restarting a dead worker ("can only join a
    started process"); the run's outcomes are in by then."""
    from ParaspinalSegLib.cohorts.engine import close_quietly

    class Restarting:
        def close(self):
            raise AssertionError("can only join a started process")

    close_quietly(Restarting())
    assert "did not close cleanly (AssertionError: can only join a started process)" in caplog.text
