"""Tasks for the Dask engine's tests that kill their worker process: a light module, since every
restarted worker imports it again."""

import os


def dies_on_its_first_try(job, *args):
    """segment_on_worker, but the worker process dies the first time it meets a study (a marker
    file beside the study's output remembers that it did)."""
    marker = job.target.parent / f".died-{job.number}"
    if not marker.exists():
        marker.touch()
        os._exit(1)
    from ParaspinalSegLib.cohorts.engine import segment_on_worker

    return segment_on_worker(job, *args)


def always_dies(job, *args):
    os._exit(1)
