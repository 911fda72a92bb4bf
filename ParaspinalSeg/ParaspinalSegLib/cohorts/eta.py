"""A batch's progress as the studies finish: the time left, and one log line per study without
patient identifiers (a study is named by its number in the batch folder's sorted listing, the
`number` column of summary.csv, never by its name)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def duration_text(seconds: float) -> str:
    """'45 s', '12 min', '3 h 05 min'."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class BatchClock:
    """Counts the finished studies of `total` to run and estimates the time left from the rate so far
    (studies skipped because they were complete do not count: they take no time)."""

    total: int
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finish_one(self) -> None:
        self.done += 1

    def seconds_left(self) -> float | None:
        """None until a study has finished."""
        if self.done == 0:
            return None
        return (self.clock() - self.started) / self.done * (self.total - self.done)

    def status(self) -> str:
        """'studies 3/20, about 2 min left'."""
        left = self.seconds_left()
        estimate = "" if left is None or self.done == self.total else f", about {duration_text(left)} left"
        return f"studies {self.done}/{self.total}{estimate}"


def study_line(clock: BatchClock, number: int, status: str, detail: str, seconds: float) -> str:
    """The log line of one finished study: 'study #17 ok in 2.1 s: grade II, ...; studies 3/20, about
    2 min left'."""
    return f"study #{number} {status} in {seconds:.1f} s: {detail}; {clock.status()}"


def log_study(clock: BatchClock, number: int, status: str, detail: str, seconds: float) -> None:
    log.info(study_line(clock, number, status, detail, seconds))
