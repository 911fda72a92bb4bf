"""Batch inference on a Dask cluster: `paraspinal segment STUDIES --batch --engine dask`.

Dask distributed is the optional extra `paraspinalseg[cluster]` (why Dask rather than Ray: README,
*Cohorts*). One study is one task; each worker process loads the model on its first study and keeps
it; the driver records each study as it finishes (batch.BatchRecorder), so the outputs, the failure
records and the summary are those of a serial run.

- A failing study comes back as a failed outcome like any other: the run goes on.
- A worker that dies (killed, out of memory) loses the studies it was running or holding: the
  scheduler runs them again on a worker that is alive (a local cluster restarts the dead one), up to
  ALLOWED_FAILURES times more; after that a study is recorded as failed and the run goes on. A study
  whose outputs were complete before its worker died is not run twice (done_before).
- Local mode (no scheduler address): a LocalCluster of `workers` processes on this machine, each with
  an equal share of the CPU cores (OMP_NUM_THREADS); with device cuda, worker k uses GPU k (modulo the GPUs).
  With a scheduler address, the workers are the cluster's (one per GPU: `dask cuda worker`, or
  `dask worker --nworkers 1` per GPU under its own CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .batch import Finished, StudyOutcome, failed, run_job
from .batchplan import SegmentSettings, StudyJob, made_as_asked
from ..errors import ParaspinalError
from .studyrecords import complete_outputs

ALLOWED_FAILURES = 2  # a study whose worker died is run again this many times before it is recorded as failed
CONNECT_TIMEOUT = "20s"
# A local cluster costs about 1.5 s to start here (Dask's import, the cluster, a second process importing
# the pipeline and loading the model: bench/cohort_throughput.py); a one-worker run shorter than 15 s (40
# studies of the sample at 0.4 s) would be more than 10 % slower than serial, so it runs in this process.
SMALL_LOCAL_RUN = 40
log = logging.getLogger(__name__)

_MODELS: dict[tuple[str, str, str], object] = {}  # in each worker process: the models it has loaded


def import_distributed():
    """The dask.distributed module, or a clear error naming the extra to install."""
    try:
        import distributed
    except ImportError:
        raise ParaspinalError("--engine dask needs Dask distributed, the optional extra: "
                              "pip install -c constraints.txt -e \".[cluster]\" (or pip install 'paraspinalseg[cluster]')"
                              ) from None
    return distributed


def cores_here() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(device: str) -> int:
    """One worker per GPU for cuda, else one (it gets every core: on a CPU, more workers share them)."""
    if device != "cuda":
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def worker_device(device: str) -> str:
    """On a local cluster's worker k, cuda means GPU k (modulo the GPUs); auto is chosen on the worker."""
    if device == "auto":
        from ..network.inference import choose_device

        device = choose_device("auto")
    if device != "cuda":
        return device
    import torch
    from distributed import get_worker

    name = get_worker().name
    return f"cuda:{name % torch.cuda.device_count()}" if isinstance(name, int) else device


def model_on_worker(folder: str, device: str, backend: str):
    """This worker's model (loaded on its first study)."""
    if (folder, device, backend) not in _MODELS:
        from ..network.modelfile import load_model

        _MODELS[(folder, device, backend)] = load_model(Path(folder), device=device, backend=backend, keep_loaded=True)
    return _MODELS[(folder, device, backend)]


def segment_on_worker(job: StudyJob, model_folder: str, settings: SegmentSettings, backend: str) -> StudyOutcome:
    """One study on a worker, returned without its images and label maps."""
    device = worker_device(settings.device)
    try:
        model = model_on_worker(model_folder, device, backend)
    except ParaspinalError as error:
        return failed(job, str(error))
    method = settings.method(model.card.model_id, model.card.postprocessing.mirror_below_confidence)
    return (done_before(job, settings, method)
            or run_job(job, model, dataclasses.replace(settings, device=device)).portable())


def done_before(job: StudyJob, settings: SegmentSettings, method: str) -> StudyOutcome | None:
    """The outcome of a study that an earlier try of this task finished before its worker died (the
    outputs are there, the result never reached the scheduler); None when it has to run."""
    document = None if job.replace else complete_outputs(job.target)
    if document is None or not made_as_asked(document, method, settings.dicom):
        return None
    return StudyOutcome(job.study, job.target, None, document=document, number=job.number)


def outcome_of(future, job: StudyJob, distributed) -> StudyOutcome:
    """A finished task's outcome; a study whose workers kept dying is a failed outcome."""
    try:
        return future.result()
    except distributed.KilledWorker:
        return failed(job, f"its worker process died {ALLOWED_FAILURES + 1} times while running it (out of memory, "
                           "or killed); run it alone to see why")
    except Exception as error:  # a task that could not run (pickling, a lost connection): recorded, the run goes on
        return failed(job, f"the engine could not run it ({type(error).__name__}: {error})")


@contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    """Only warnings and errors of a library's logger (Dask sets its own to INFO) while inside."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def close_quietly(cluster) -> None:
    """Close a local cluster. When a run ends while a nanny is restarting a worker that died (a study
    that kills its worker, as the last task), Dask's close can fail on the process not yet started
    ("can only join a started process"); every outcome is recorded by then, so that is logged, not
    raised."""
    try:
        cluster.close()
    except (AssertionError, RuntimeError, TimeoutError, OSError) as error:
        log.warning("the local Dask cluster did not close cleanly (%s: %s); the run's outcomes are recorded",
                    type(error).__name__, error)


@dataclass(frozen=True)
class DaskEngine:
    """Runs a batch's studies on Dask: a local cluster of `workers` processes, or the cluster whose
    scheduler is at `scheduler`; `backend` runs the network (modelfile.load_model). `task` is what
    each study runs on a worker."""

    workers: int = 1
    scheduler: str | None = None
    backend: str = "torch"
    task: Callable[..., StudyOutcome] = segment_on_worker
    small_run: int = SMALL_LOCAL_RUN

    def runs_here(self, studies: int) -> bool:
        """Whether a run goes on in this process instead: one local worker (which overlaps nothing)
        and fewer studies than `small_run`, so short that the cluster's start would cost more than
        10 % of it."""
        return self.scheduler is None and self.workers == 1 and studies < self.small_run

    def run(self, jobs: list[StudyJob], model_folder: Path, settings: SegmentSettings, finished: Finished) -> None:
        """Every job on the cluster; `finished` is called here as each one ends (any order)."""
        if not jobs:
            return
        if self.runs_here(len(jobs)):
            log.info("%d studies on one local worker: run in this process (a local cluster takes about 1.5 s "
                     "to start, more than 10 %% of so short a run)", len(jobs))
            for job in jobs:
                finished(job, self.task(job, str(model_folder), settings, self.backend))
            return
        distributed = import_distributed()
        with self.client(distributed) as client:
            pending = {client.submit(self.task, job, str(model_folder), settings, self.backend, pure=False): job
                       for job in jobs}
            try:
                for future in distributed.as_completed(pending):
                    finished(pending[future], outcome_of(future, pending[future], distributed))
            except BaseException:
                client.cancel(list(pending))
                raise

    @contextmanager
    def client(self, distributed) -> Iterator:
        """A client of the given scheduler, or of a local cluster made (and closed) here."""
        if self.scheduler:
            try:
                client = distributed.Client(self.scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as error:
                raise ParaspinalError(f"--scheduler {self.scheduler}: cannot reach a Dask scheduler there ({error})") from None
            with client:
                yield client
            return
        import dask

        threads = str(max(1, cores_here() // self.workers))  # Dask's default is 1 thread per worker process
        environment = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        settings = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                    "distributed.nanny.pre-spawn-environ": environment}
        with dask.config.set(settings), quiet("distributed"):
            cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
            try:
                with distributed.Client(cluster) as client:
                    yield client
            finally:
                close_quietly(cluster)
