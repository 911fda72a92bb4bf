"""Output paths that must be refused: the input itself, inside it, around it, unwritable, unnamable.

Every command that writes is tried with its output on its own input; `measure` is also tried on
files, a parent that is a file, names too long or not UTF-8, and a folder the system will not let
anyone write.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from . import Case, Kit, Run


def _study_copy(kit: Kit) -> Path:
    copy = kit.root / "inputs" / "study"
    if not copy.exists():
        shutil.copytree(kit.study, copy)
    return copy


def _measure(kit: Kit, out: Path, *extra: str, names: str = "") -> Run:
    study = _study_copy(kit)
    return Run(["measure", str(study), str(kit.compartments), "-o", str(out), *extra], names=names or out.name)


def _measure_cases() -> dict[str, tuple[Callable[[Kit], Run], str]]:
    def on_input(kit: Kit) -> Run:
        return _measure(kit, _study_copy(kit), "--overwrite")

    def inside_input(kit: Kit) -> Run:
        return _measure(kit, _study_copy(kit) / "t2_tse_tra" / "results", "--overwrite")

    def around_input(kit: Kit) -> Run:
        return _measure(kit, _study_copy(kit).parent, "--overwrite")

    def on_segmentation(kit: Kit) -> Run:
        labels = kit.path("inputs", "labels.nrrd")
        shutil.copy(kit.compartments, labels)
        return Run(["measure", str(_study_copy(kit)), str(labels), "-o", str(labels), "--overwrite"],
                   names=labels.name)

    def around_segmentation(kit: Kit) -> Run:
        labels = kit.root / "segs" / "labels.nrrd"
        labels.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(kit.compartments, labels)
        return Run(["measure", str(_study_copy(kit)), str(labels), "-o", str(labels.parent), "--overwrite"],
                   names=labels.parent.name)

    def link_to_input(kit: Kit) -> Run:
        link = kit.root / "link-to-study"
        link.symlink_to(_study_copy(kit), target_is_directory=True)
        return _measure(kit, link, "--overwrite")

    def relative_dots(kit: Kit) -> Run:
        study = _study_copy(kit)
        return _measure(kit, study / "t2_tse_tra" / "..", "--overwrite", names="..")

    def existing(kit: Kit) -> Run:
        out = kit.path("existing", "keep.txt")
        out.write_text("user file\n")
        return _measure(kit, out.parent)

    def a_file(kit: Kit) -> Run:
        out = kit.path("a-file.txt")
        out.write_text("user file\n")
        return _measure(kit, out)

    def parent_file(kit: Kit) -> Run:
        parent = kit.path("parent-file")
        parent.write_text("user file\n")
        return _measure(kit, parent / "out", names="parent-file")

    def long_name(length: int) -> Callable[[Kit], Run]:
        return lambda kit: _measure(kit, kit.root / ("n" * length), names="n" * 20)

    def not_utf8(kit: Kit) -> Run:
        return _measure(kit, kit.root / os.fsdecode(b"out-\xff"), names="out-")

    def system_folder(kit: Kit) -> Run:
        return _measure(kit, Path("/sys/paraspinal-hostile-out"), names="paraspinal-hostile-out")

    return {
        "measure-on-input": (on_input, "error"),
        "measure-inside-input": (inside_input, "error"),
        "measure-around-input": (around_input, "error"),
        "measure-on-segmentation": (on_segmentation, "error"),
        "measure-around-segmentation": (around_segmentation, "error"),
        "measure-link-to-input": (link_to_input, "error"),
        "measure-dots-to-input": (relative_dots, "error"),
        "measure-existing-not-empty": (existing, "error"),
        "measure-onto-a-file": (a_file, "error"),
        "measure-parent-is-a-file": (parent_file, "error"),
        "measure-name-too-long": (long_name(300), "error"),
        "measure-name-long-but-fine": (long_name(240), "ok"),
        "measure-name-not-utf8": (not_utf8, "error"),
        "measure-unwritable-system-folder": (system_folder, "error"),
    }


def _other_commands() -> dict[str, tuple[Callable[[Kit], Run], str]]:
    def segment(where: str) -> Callable[[Kit], Run]:
        def build(kit: Kit) -> Run:
            study = _study_copy(kit)
            out = {"on": study, "inside": study / "out", "around": study.parent}[where]
            return Run(["-q", "segment", str(study), "--model", str(kit.model), "-o", str(out), "--overwrite"],
                       names=out.name)
        return build

    def segment_on_model(kit: Kit) -> Run:
        model = kit.root / "inputs" / "model"
        shutil.copytree(kit.model, model)
        return Run(["-q", "segment", str(_study_copy(kit)), "--model", str(model), "-o", str(model / "out")],
                   names="out")

    def batch_inside(kit: Kit) -> Run:
        studies = _study_copy(kit).parent
        return Run(["-q", "segment", str(studies), "--batch", "--model", str(kit.model), "-o", str(studies / "r")],
                   names="r")

    def demo_into_sample(kit: Kit) -> Run:
        from ParaspinalSegLib.cli import sample_folder

        return Run(["demo", "--measure", "-o", str(sample_folder() / "hostile-out"), "--overwrite"], names="hostile-out")

    def synth_around_config(kit: Kit) -> Run:
        config = kit.path("synth", "settings.json")
        config.write_text("{}\n")
        return Run(["synth", str(config.parent), "--cases", "1", "--config", str(config), "--overwrite"],
                   names="synth")

    def train_on_data(kit: Kit) -> Run:
        data = kit.path("data", "cases", "x").parent.parent
        return Run(["train", str(data), "--out", str(data / "run")], names="run")

    def evaluate_on_data(kit: Kit) -> Run:
        data = kit.path("data2", "cases", "x").parent.parent
        return Run(["evaluate", str(kit.model), str(data), "-o", str(data)], names="data2")

    def release_into_model(kit: Kit) -> Run:
        model = kit.root / "inputs" / "release-model"
        shutil.copytree(kit.model, model)
        return Run(["release", str(model), "--out", str(model / "released")], names="released")

    def export_into_model(kit: Kit) -> Run:
        model = kit.root / "inputs" / "export-model"
        shutil.copytree(kit.model, model)
        return Run(["models", "export", str(model), str(model / "copy.zip")], names="copy.zip")

    def validate_into_model(kit: Kit) -> Run:
        return Run(["validate-real", str(kit.model), "-o", str(kit.model / "figures.md")], names="figures.md")

    return {
        "segment-on-input": (segment("on"), "error"),
        "segment-inside-input": (segment("inside"), "error"),
        "segment-around-input": (segment("around"), "error"),
        "segment-inside-model": (segment_on_model, "error"),
        "segment-batch-inside-input": (batch_inside, "error"),
        "demo-into-sample": (demo_into_sample, "error"),
        "synth-around-config": (synth_around_config, "error"),
        "train-into-data": (train_on_data, "error"),
        "evaluate-onto-data": (evaluate_on_data, "error"),
        "release-into-model": (release_into_model, "error"),
        "export-into-model": (export_into_model, "error"),
        "validate-real-into-model": (validate_into_model, "error"),
    }


def cases() -> list[Case]:
    return [Case(f"place-{name}", build, expect)
            for name, (build, expect) in {**_measure_cases(), **_other_commands()}.items()]
