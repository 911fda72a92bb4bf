"""Running one function over many items in worker processes, results in item order.

The workers are spawned (no fork of a process that may hold threads or a GPU context) with their numeric
libraries (OpenBLAS, OpenMP, MKL, ITK) on one thread each: N processes that each start a thread per core
spin against each other (6 such workers took about 90 s to read 176 cases on a 16-core GPU machine; on 2
cores, 2 such workers were slower than one process). Spawned processes import the caller's main module
again, so a script that uses workers must guard its entry point (`if __name__ == "__main__":`). Inside the
Slicer application the work stays in its process: there sys.executable is the PythonSlicer launcher, whose
spawned child never starts, and the parent would wait for it forever (Slicer issue #7445).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

Item, Result = TypeVar("Item"), TypeVar("Result")

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set inside the block, as it was after it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def inside_slicer_application() -> bool:
    """Whether this is the Python of the Slicer application (slicer.app is set there alone), where spawning
    hangs; the module is looked up, never imported."""
    return getattr(sys.modules.get("slicer"), "app", None) is not None


def in_processes(function: Callable[..., Result], items: Iterable[Item], workers: int, *args) -> Iterator[Result]:
    """function(item, *args) for each item, in order, as each becomes ready; in this process when
    workers <= 1 or inside the Slicer application, else in that many spawned single-threaded processes.
    Stopping the iteration early cancels the items not yet started."""
    if workers <= 1 or inside_slicer_application():
        yield from (function(item, *args) for item in items)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        with environment(ONE_THREAD):  # the spawned processes start at the first submit and inherit it
            futures = [pool.submit(function, item, *args) for item in items]
        try:
            yield from (future.result() for future in futures)
        finally:
            for future in futures:
                future.cancel()
