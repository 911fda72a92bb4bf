"""Fine-tuning in a separate Python process, so that the caller (Slicer) stays responsive.

The parent writes the job to WORK/job.json and starts `python -m ParaspinalSegTrainingLib.trainprocess
WORK/job.json`. The child runs `finetune.fine_tune` and writes one JSON object per line to its
standard output (the parent sends it to WORK/events.jsonl; the log goes to WORK/training.log):

    {"event": "phase", "phase": "measuring" | "training" | "evaluating" | "registering"}
    {"event": "progress", "phase": ..., "fraction": 0.42, "message": "fold 0 epoch 3/10 loss 0.512"}
    {"event": "epoch", "phase": "training", "fold": 0, "epoch": 3, "epochs": 10, "loss": 0.51,
     "validation_loss": 0.55, "validation_dice": 0.81, "metrics": {...the metrics.csv row...}}
    {"event": "finished", "model_id": "...", "result": {...FineTuneResult.to_dict()...}}
    {"event": "cancelled", "message": "..."}  or  {"event": "error", "message": "..."}

`TrainingProcess.poll()` reads the new lines without blocking (for a Qt timer). `cancel()` creates
WORK/stop (and sends SIGTERM where there is one): the child stops at the next batch, keeps its
last checkpoint and registers nothing; starting the same job again resumes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ParaspinalSegLib.errors import InputError, OperationCancelled, ParaspinalError
from ParaspinalSegLib.network.registry import ModelRegistry

from .finetune import FineTuneSettings, fine_tune

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "training.log"
STOP_FILE = "stop"
FINAL_EVENTS = ("finished", "cancelled", "error")
LOG_TAIL_CHARACTERS = 2000


@dataclass(frozen=True)
class TrainingEvent:
    """One line of the child's output; the fields a progress display needs, the rest in `data`."""

    kind: str
    phase: str = ""
    message: str = ""
    fraction: float | None = None
    fold: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    validation_dice: float | None = None
    data: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingEvent:
        return cls(kind=str(data.get("event", "")), phase=str(data.get("phase", "")), message=str(data.get("message", "")),
                   fraction=data.get("fraction"), fold=data.get("fold"), epoch=data.get("epoch"),
                   epochs=data.get("epochs"), loss=data.get("loss"), validation_dice=data.get("validation_dice"),
                   data=data)


@dataclass(frozen=True)
class TrainingOutcome:
    """How a finished child ended: "finished" (model_id and result set), "cancelled" or "failed" (error)."""

    status: str
    model_id: str | None = None
    result: dict = field(default_factory=dict)
    error: str = ""
    exit_code: int | None = None


def package_roots() -> list[str]:
    """The folders holding ParaspinalSegLib and ParaspinalSegTrainingLib (Slicer's module folders)."""
    import ParaspinalSegLib
    import ParaspinalSegTrainingLib

    folders = [next(Path(f) for f in package.__path__ if Path(f).is_dir())  # __file__ is None in editable installs
               for package in (ParaspinalSegLib, ParaspinalSegTrainingLib)]
    return list(dict.fromkeys(str(folder.resolve().parent) for folder in folders))


def default_python() -> str:
    """PythonSlicer inside Slicer (whose own executable is the application), else this interpreter."""
    if "slicer" not in sys.modules:
        return sys.executable
    beside = Path(sys.executable).with_name("PythonSlicer" + Path(sys.executable).suffix)
    return shutil.which("PythonSlicer") or (str(beside) if beside.exists() else sys.executable)


def child_environment() -> dict[str, str]:
    """This process's environment with the two packages importable, whatever the child's start folder."""
    environment = dict(os.environ)
    paths = package_roots() + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


class TrainingProcess:
    """Fine-tuning in a child process: start(), poll() from a timer, cancel(), then `outcome`."""

    def __init__(
        self,
        training_set: Path,
        base_model: str | Path | None = None,
        settings: FineTuneSettings | None = None,
        *,
        registry: ModelRegistry | None = None,
        run_folder: Path | None = None,
        work_folder: Path | None = None,
        python: str | None = None,
    ) -> None:
        registry = registry or ModelRegistry()
        self.work_folder = Path(work_folder) if work_folder else Path(tempfile.mkdtemp(prefix="paraspinal-training-"))
        self.job = {
            "training_set": str(Path(training_set).resolve()),
            "base_model": str(base_model) if base_model else None,
            "settings": (settings or FineTuneSettings()).to_dict(),
            "run_folder": str(run_folder) if run_folder else None,
            "registry": {"shipped_dir": str(registry.shipped_dir), "user_dir": str(registry.user_dir)},
        }
        self.python = python or default_python()
        self.process: subprocess.Popen | None = None
        self.outcome: TrainingOutcome | None = None
        self.events: list[TrainingEvent] = []
        self.cancel_requested = False
        self._offset = 0

    @property
    def events_file(self) -> Path:
        return self.work_folder / EVENTS_FILE

    @property
    def log_file(self) -> Path:
        return self.work_folder / LOG_FILE

    @property
    def running(self) -> bool:
        return self.process is not None and self.outcome is None

    def start(self) -> None:
        """Start the child; returns at once."""
        if self.process is not None:
            raise InputError(f"{self.work_folder}: this training was started already; make a new TrainingProcess")
        self.work_folder.mkdir(parents=True, exist_ok=True)
        (self.work_folder / STOP_FILE).unlink(missing_ok=True)
        job = self.work_folder / JOB_FILE
        job.write_text(json.dumps(self.job, indent=2) + "\n", encoding="utf-8")
        with open(self.events_file, "wb") as events, open(self.log_file, "wb") as log_stream:
            self.process = subprocess.Popen(
                [self.python, "-m", "ParaspinalSegTrainingLib.trainprocess", str(job)],
                stdout=events, stderr=log_stream, stdin=subprocess.DEVNULL, env=child_environment(),
                cwd=self.work_folder, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console on Windows
            )
        log.info("training process %d started in %s", self.process.pid, self.work_folder)

    def poll(self) -> list[TrainingEvent]:
        """The events written since the last call (never blocks); sets `outcome` once the child has ended."""
        if self.process is None or self.outcome is not None:
            return []
        exit_code = self.process.poll()
        new = self._read_new_events()  # read after poll(): once the child has ended, its output is complete
        self.events += new
        if exit_code is not None:
            self.outcome = self._outcome(exit_code)
        return new

    def cancel(self) -> None:
        """Ask the child to stop at its next batch (keeping its last checkpoint, registering nothing)."""
        if not self.running:
            return
        self.cancel_requested = True
        (self.work_folder / STOP_FILE).touch()
        if os.name == "posix":  # the child catches SIGTERM: it means the same as the stop file
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> TrainingOutcome | None:
        """Poll until the child ends (or `timeout` seconds pass: then None); for the console and tests."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            self.poll()
            if self.outcome is None and deadline is not None and time.monotonic() > deadline:
                return None
            if self.outcome is None:
                time.sleep(interval)
        return self.outcome

    def _read_new_events(self) -> list[TrainingEvent]:
        with open(self.events_file, "rb") as stream:
            stream.seek(self._offset)
            chunk = stream.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        events = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                events.append(TrainingEvent.from_dict(json.loads(line)))
            except (ValueError, AttributeError):
                events.append(TrainingEvent("output", message=line))
        return events

    def _outcome(self, exit_code: int) -> TrainingOutcome:
        final = next((e for e in reversed(self.events) if e.kind in FINAL_EVENTS), None)
        if final and final.kind == "finished":
            return TrainingOutcome("finished", final.data.get("model_id"), final.data.get("result", {}), "", exit_code)
        if final and final.kind == "cancelled":
            return TrainingOutcome("cancelled", error=final.message, exit_code=exit_code)
        if final:
            return TrainingOutcome("failed", error=final.message, exit_code=exit_code)
        if self.cancel_requested:  # stopped before it could report (e.g. while still starting)
            return TrainingOutcome("cancelled", error="cancelled before training began; nothing was registered",
                                   exit_code=exit_code)
        tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARACTERS:]
        return TrainingOutcome("failed", error=f"the training process ended with exit code {exit_code}; "
                                                f"end of {self.log_file}:\n{tail}", exit_code=exit_code)


class EventWriter:
    """The child's side: JSON lines on standard output, with the phase it is in."""

    def __init__(self, stream, epochs: int) -> None:
        self.stream, self.epochs, self.current_phase = stream, epochs, ""

    def emit(self, event: str, **data) -> None:
        self.stream.write(json.dumps({"event": event, **data}) + "\n")
        self.stream.flush()

    def phase(self, name: str) -> None:
        self.current_phase = name
        self.emit("phase", phase=name)

    def progress(self, fraction: float, message: str) -> None:
        self.emit("progress", phase=self.current_phase, fraction=round(fraction, 4), message=message)

    def epoch(self, fold: int, metrics: dict[str, float]) -> None:
        self.emit("epoch", phase=self.current_phase, fold=fold, epoch=int(metrics["epoch"]), epochs=self.epochs,
                  loss=metrics["train_loss"], validation_loss=metrics["val_loss"],
                  validation_dice=metrics["val_dice_mean"], metrics=metrics)


class StopRequest:
    """should_stop for the child: true once WORK/stop exists or SIGTERM came."""

    def __init__(self, stop_file: Path) -> None:
        self.stop_file, self.signalled = stop_file, False
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, number, frame) -> None:
        self.signalled = True

    def __call__(self) -> bool:
        return self.signalled or self.stop_file.exists()


def run_job(job_file: Path, writer_stream) -> int:
    """Run the job of job.json, reporting on `writer_stream`; returns the exit code."""
    job = json.loads(job_file.read_text(encoding="utf-8"))
    settings = FineTuneSettings.from_dict(job["settings"])
    writer = EventWriter(writer_stream, settings.epochs)
    registry = ModelRegistry(Path(job["registry"]["shipped_dir"]), Path(job["registry"]["user_dir"]))
    try:
        result = fine_tune(
            Path(job["training_set"]), job["base_model"], settings, registry=registry,
            run_folder=Path(job["run_folder"]) if job["run_folder"] else None, progress=writer.progress,
            should_stop=StopRequest(job_file.parent / STOP_FILE), on_epoch=writer.epoch, on_phase=writer.phase,
        )
    except (OperationCancelled, KeyboardInterrupt) as error:
        writer.emit("cancelled", message=str(error) or "cancelled; the last checkpoint is kept, nothing was registered")
        return 130
    except ParaspinalError as error:
        writer.emit("error", message=str(error))
        return 2
    except Exception as error:  # reported to the parent whole; the traceback goes to the log
        log.exception("training failed")
        writer.emit("error", message=f"{type(error).__name__}: {error} (details in {LOG_FILE})")
        return 1
    writer.emit("finished", model_id=result.model_id, result=result.to_dict())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run a fine-tuning job, reporting JSON lines on standard output")
    parser.add_argument("job", type=Path, help="the job.json a TrainingProcess wrote")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_job(args.job, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
