"""Hostile zip archives of DICOM files: encrypted members, unknown compression, cut, fake, traversal names."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from . import Case, Kit, Run

LOCAL_HEADER, CENTRAL_HEADER = b"PK\x03\x04", b"PK\x01\x02"


def _zip_of_study(kit: Kit, name: str, arcname: Callable[[str], str] = lambda n: n) -> Path:
    path = kit.path("zips", name)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted(kit.study.rglob("*")):
            if file.is_file():
                archive.write(file, arcname(file.relative_to(kit.study).as_posix()))
    return path


def _patch_headers(path: Path, flag: int | None = None, method: int | None = None) -> Path:
    """Set the general-purpose flag bits and/or the compression method of every member, in both
    the local and the central headers (what zipfile reads)."""
    data = bytearray(path.read_bytes())
    for signature, flag_at, method_at in ((LOCAL_HEADER, 6, 8), (CENTRAL_HEADER, 8, 10)):
        start = data.find(signature)
        while start >= 0:
            if flag is not None:
                struct.pack_into("<H", data, start + flag_at, struct.unpack_from("<H", data, start + flag_at)[0] | flag)
            if method is not None:
                struct.pack_into("<H", data, start + method_at, method)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


def _builders() -> dict[str, tuple[Callable[[Kit], Path], str]]:
    """name: (builder, expectation)."""
    def encrypted(kit: Kit) -> Path:
        return _patch_headers(_zip_of_study(kit, "encrypted.zip"), flag=0x1)

    def method(number: int) -> Callable[[Kit], Path]:
        return lambda kit: _patch_headers(_zip_of_study(kit, f"method-{number}.zip"), method=number)

    def cut(fraction: float) -> Callable[[Kit], Path]:
        def make(kit: Kit) -> Path:
            path = _zip_of_study(kit, f"cut-{fraction}.zip")
            path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
            return path
        return make

    def raw(name: str, content: bytes) -> Callable[[Kit], Path]:
        return lambda kit: kit.file(content, "zips", name)

    def only_folders(kit: Kit) -> Path:
        path = kit.path("zips", "folders.zip")
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a/", b"")
            archive.writestr("a/b/", b"")
        return path

    def traversal(kit: Kit) -> Path:
        return _zip_of_study(kit, "traversal.zip", lambda n: f"../../../escape/{n}")

    def absolute(kit: Kit) -> Path:
        return _zip_of_study(kit, "absolute.zip", lambda n: f"/tmp/escape/{n}")

    def nested(kit: Kit) -> Path:
        inner = _zip_of_study(kit, "inner.zip")
        path = kit.path("zips", "nested.zip")
        with zipfile.ZipFile(path, "w") as archive:
            archive.write(inner, "inner.zip")
        return path

    def junk_members(kit: Kit) -> Path:
        path = kit.path("zips", "junk.zip")
        with zipfile.ZipFile(path, "w") as archive:
            for n in range(5):
                archive.writestr(f"IM{n}", b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
        return path

    return {
        "encrypted": (encrypted, "error"),
        "deflate64": (method(9), "error"),
        "method-99-aes": (method(99), "error"),
        "method-12-bzip2-lie": (method(12), "error"),
        "method-14-lzma-lie": (method(14), "error"),
        "cut-0.3": (cut(0.3), "error"),
        "cut-0.9": (cut(0.9), "error"),
        "empty-file": (raw("empty.zip", b""), "error"),
        "not-a-zip": (raw("fake.zip", b"PK\x05\x06" + b"\0" * 10), "error"),
        "random": (raw("random.zip", bytes(range(256)) * 20), "error"),
        "only-folders": (only_folders, "error"),
        "traversal-names": (traversal, "either"),
        "absolute-names": (absolute, "either"),
        "nested-zip": (nested, "either"),
        "junk-members": (junk_members, "error"),
    }


def _run(kit: Kit, command: str, path: Path) -> Run:
    if command == "series":
        return Run(["series", str(path)], names=path.name)
    return Run(["-q", "segment", str(path), "--model", str(kit.model), "-o", str(kit.root / "out")], names=path.name)


def cases() -> list[Case]:
    found = []
    for name, (build, expect) in _builders().items():
        for command in ("series", "segment"):
            found.append(Case(f"zip-{command}-{name}", lambda kit, b=build, c=command: _run(kit, c, b(kit)), expect,
                              slow=command == "segment"))
    return found
