"""Hostile folders of studies for `segment --batch`: names that collide or cannot be names, bad
studies before good ones, pipes posing as zips, nothing to do."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ParaspinalSegLib.paths import display_name

from . import Case, Kit, Run
from .archives import _patch_headers, _zip_of_study


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    """summary.csv of a batch, by study name."""
    with open(out / "summary.csv", newline="", encoding="utf-8") as stream:
        return {row["study"]: row for row in csv.DictReader(stream)}


def _batch(kit: Kit, names: list[str], extra: Callable[[Path], None] | None = None) -> tuple[Path, Path]:
    """A batch folder holding a copy of the good study under each name (and whatever `extra` adds)."""
    folder = kit.root / "batch"
    for name in names:
        shutil.copytree(kit.study, folder / name)
    folder.mkdir(exist_ok=True)
    if extra:
        extra(folder)
    return folder, kit.root / "results"


def _run(folder: Path, out: Path, kit: Kit, verify: Callable[[], None], names: str = "") -> Run:
    return Run(["-q", "segment", str(folder), "--batch", "--model", str(kit.model), "-o", str(out), "--overwrite"],
               names=names, verify=verify)


def _all_distinct(names: list[str]) -> Callable[[Kit], Run]:
    """Every study ok, each in its own output folder, as summary.csv says."""
    def build(kit: Kit) -> Run:
        folder, out = _batch(kit, names)

        def verify() -> None:
            rows = summary_rows(out)
            assert sorted(rows) == sorted(display_name(n) for n in names)
            assert {row["status"] for row in rows.values()} == {"ok"}
            outputs = [row["output"] for row in rows.values()]
            assert len(set(o.lower() for o in outputs)) == len(names)
            assert all((out / o / "patient.json").is_file() for o in outputs)
        return _run(folder, out, kit, verify)
    return build


def _bad_then_good(name: str, add_bad: Callable[[Kit, Path], str]) -> Callable[[Kit], Run]:
    """A bad study sorted before a good one: the bad one fails in summary.csv, the good one is done."""
    def build(kit: Kit) -> Run:
        folder, out = _batch(kit, ["z-good"])
        bad = add_bad(kit, folder)

        def verify() -> None:
            rows = summary_rows(out)
            assert rows["z-good"]["status"] == "ok", rows
            assert rows[display_name(bad)]["status"] == "failed" and rows[display_name(bad)]["error"], rows
        return _run(folder, out, kit, verify)
    return build


def _encrypted_zip(kit: Kit, folder: Path) -> str:
    path = _patch_headers(_zip_of_study(kit, "a-encrypted.zip"), flag=0x1)
    shutil.move(path, folder / path.name)
    return path.name


def _deflate64_zip(kit: Kit, folder: Path) -> str:
    path = _patch_headers(_zip_of_study(kit, "a-deflate64.zip"), method=9)
    shutil.move(path, folder / path.name)
    return path.name


def _not_utf8_volume(kit: Kit, folder: Path) -> str:
    name = os.fsdecode(b"a-\xff\xfe.nii.gz")
    (folder / name).write_bytes(kit.volume.read_bytes())
    return name


def _rgb_volume(kit: Kit, folder: Path) -> str:
    from .volumes import _image_cases

    path = _image_cases()["rgb"](kit)
    shutil.move(path, folder / "a-rgb.nii.gz")
    return "a-rgb.nii.gz"


def _empty_folder(kit: Kit, folder: Path) -> str:
    (folder / "a-empty").mkdir()
    return "a-empty"


def _pipe_as_zip(kit: Kit) -> Run:
    folder, out = _batch(kit, ["good"], lambda f: os.mkfifo(f / "pipe.zip"))

    def verify() -> None:
        assert list(summary_rows(out)) == ["good"]
    return _run(folder, out, kit, verify)


def _nothing(content: Callable[[Path], None]) -> Callable[[Kit], Run]:
    def build(kit: Kit) -> Run:
        folder = kit.root / "batch"
        folder.mkdir()
        content(folder)
        return Run(["-q", "segment", str(folder), "--batch", "--model", str(kit.model), "-o", str(kit.root / "r")],
                   names="batch")
    return build


def cases() -> list[Case]:
    return [
        Case("batch-dotted-names", _all_distinct(["knee.v1", "knee.v2"]), "ok"),
        Case("batch-uid-names", _all_distinct(["1.2.840.1", "1.2.840.2"]), "ok"),
        Case("batch-case-only-names", _all_distinct(["Knee", "knee"]), "ok"),
        Case("batch-unsafe-names", _all_distinct(["Müller, Hans", "M_ller__Hans", "a b", "a_b"]), "ok"),
        Case("batch-reserved-name", _all_distinct(["summary.csv", "x"]), "ok"),
        Case("batch-encrypted-zip-first", _bad_then_good("encrypted", _encrypted_zip), "some-failed"),
        Case("batch-deflate64-zip-first", _bad_then_good("deflate64", _deflate64_zip), "some-failed"),
        Case("batch-not-utf8-volume-first", _bad_then_good("utf8", _not_utf8_volume), "some-failed"),
        Case("batch-not-utf8-folder", _all_distinct([os.fsdecode(b"a-\xff-study"), "good"]), "ok"),
        Case("batch-rgb-volume-first", _bad_then_good("rgb", _rgb_volume), "some-failed"),
        Case("batch-empty-study-first", _bad_then_good("empty", _empty_folder), "some-failed"),
        Case("batch-pipe-named-zip", _pipe_as_zip, "ok"),
        Case("batch-empty-folder", _nothing(lambda f: None)),
        Case("batch-only-junk", _nothing(lambda f: (f / "notes.txt").write_text("x"))),
    ]
