"""Worker processes: results in item order, numeric libraries on one thread each, this process untouched."""

from __future__ import annotations

import os

from ParaspinalSegTrainingLib.workers import ONE_THREAD, in_processes


def threads_setting(item: int, offset: int) -> tuple[int, dict[str, str | None], int]:
    return item + offset, {name: os.environ.get(name) for name in ONE_THREAD}, os.getpid()


def test_items_come_back_in_order_from_single_threaded_processes(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "16")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    results = list(in_processes(threads_setting, range(6), 2, 100))
    assert [value for value, _, _ in results] == list(range(100, 106))
    assert all(settings == ONE_THREAD for _, settings, _ in results)
    assert os.getpid() not in {pid for _, _, pid in results} and len({pid for _, _, pid in results}) <= 2
    assert os.environ["OPENBLAS_NUM_THREADS"] == "16" and "OMP_NUM_THREADS" not in os.environ


def test_one_worker_runs_here():
    value, _, pid = next(in_processes(threads_setting, [1], 1, 1))
    assert value == 2 and pid == os.getpid()


def test_inside_the_slicer_application_the_work_stays_in_this_process(monkeypatch):
    import sys
    from types import SimpleNamespace

    monkeypatch.setitem(sys.modules, "slicer", SimpleNamespace(app=object()))
    assert [pid for _, _, pid in in_processes(threads_setting, range(3), 2, 0)] == [os.getpid()] * 3
    monkeypatch.setitem(sys.modules, "slicer", SimpleNamespace())  # PythonSlicer's slicer has no app: spawn works
    assert os.getpid() not in {pid for _, _, pid in in_processes(threads_setting, range(2), 2, 0)}
