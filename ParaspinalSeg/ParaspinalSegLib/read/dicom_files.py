"""Finding DICOM files and opening them: folders (recursively), zip archives, single files.

A file counts as DICOM when it has the DICM preamble or starts like a dataset (group 0002 or
0008); other files are skipped quietly. A reader keeps each zip archive open while a batch of its
members is read, and turns pydicom's many failures into one InputError naming the file.
"""

from __future__ import annotations

import io
import logging
import lzma
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pydicom
from pydicom.dataset import Dataset

from ..errors import InputError

log = logging.getLogger(__name__)

PREAMBLE_BYTES = 132


@dataclass(frozen=True)
class DicomSource:
    """One DICOM file: a path on disk, or a member of a zip archive at `path`."""

    path: Path
    member: str = ""

    def __str__(self) -> str:
        return f"{self.path}/{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name if self.member else self.path.name



def as_source(item: DicomSource | Path | str) -> DicomSource:
    return item if isinstance(item, DicomSource) else DicomSource(Path(item))


class SourceReader:
    """Reads DicomSources, keeping each zip archive open while a batch is read.

    While it is open, pydicom's own log (tracebacks of failing pixel decoders) stays off stderr:
    every failure is raised as one InputError naming the file instead.
    """

    def __init__(self) -> None:
        self._archives: dict[Path, zipfile.ZipFile] = {}
        self._pydicom_propagates = True

    def __enter__(self) -> SourceReader:
        logger = logging.getLogger("pydicom")
        self._pydicom_propagates, logger.propagate = logger.propagate, False
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger("pydicom").propagate = self._pydicom_propagates
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()

    def _archive(self, path: Path) -> zipfile.ZipFile:
        if path not in self._archives:
            self._archives[path] = zipfile.ZipFile(path)
        return self._archives[path]

    def head(self, source: DicomSource) -> bytes | None:
        """The first bytes of a file, enough for the DICM preamble or the first tag (None if unreadable)."""
        try:
            if source.member:
                with self._archive(source.path).open(source.member) as stream:
                    return stream.read(PREAMBLE_BYTES)
            with open(source.path, "rb") as stream:
                return stream.read(PREAMBLE_BYTES)
        except (OSError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError,
                NotImplementedError) as error:
            log.debug("%s: cannot be read (%s)", source, error)  # encrypted, unknown compression...
            return None

    def _member_bytes(self, source: DicomSource) -> bytes:
        """A zip member's bytes; InputError when it is encrypted or compressed in a way zipfile lacks."""
        try:
            return self._archive(source.path).read(source.member)
        except (RuntimeError, NotImplementedError, lzma.LZMAError, EOFError, zlib.error) as error:
            raise InputError(f"{source}: cannot be extracted from its zip ({error}); unpack the archive with "
                             "the tool that made it and give the folder") from None

    def dataset(self, source: DicomSource, headers_only: bool) -> tuple[Dataset, list[str]]:
        """The parsed file and pydicom's warnings about it; InputError when it cannot be parsed."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if source.member:
                    data = io.BytesIO(self._member_bytes(source))
                    dataset = pydicom.dcmread(data, stop_before_pixels=headers_only, force=True)
                else:
                    dataset = pydicom.dcmread(source.path, stop_before_pixels=headers_only, force=True)
            except InputError:
                raise
            except Exception as error:  # pydicom raises many types for damaged files
                raise InputError(
                    f"{source}: cannot be read as DICOM ({type(error).__name__}: {error}); the file is "
                    "damaged or truncated, copy or export it again"
                ) from error
        return dataset, [str(w.message) for w in caught]


def looks_like_dicom(head: bytes) -> bool:
    """True for the DICM preamble, or for a preamble-less dataset starting at group 0002 or 0008."""
    if len(head) >= PREAMBLE_BYTES and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group, _ = struct.unpack("<HH", head[:4])
    return group in (0x0002, 0x0008)


def _may_be_dicom(head: bytes | None) -> bool:
    """Kept for reading: DICOM by its first bytes, or unreadable (so that it is reported, not lost)."""
    return head is None or looks_like_dicom(head)


def _walk_files(folder: Path) -> Iterator[Path]:
    for root, directories, names in os.walk(folder):
        directories.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file():
                yield path


def _zip_members(path: Path) -> list[DicomSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{path}: cannot be opened as a zip archive ({error}); check the download") from error
    return [DicomSource(path, name) for name in sorted(names) if not name.startswith("__MACOSX/")]


def _candidates(path: Path) -> list[DicomSource]:
    if path.is_dir():
        sources: list[DicomSource] = []
        for file in _walk_files(path):
            sources.extend(_zip_members(file) if file.suffix.lower() == ".zip" else [DicomSource(file)])
        return sources
    if path.suffix.lower() == ".zip":
        return _zip_members(path)
    return [DicomSource(path)]


def find_dicom_files(path: Path) -> list[DicomSource]:
    """The DICOM files in a folder (recursively, *.zip inside included), a *.zip, or one file.

    Files without the DICM preamble are kept only when they start like a DICOM dataset; other
    files are skipped quietly. Files that cannot be read at all are kept, so that reading them
    fails and reports them. Raises InputError when the path does not exist or holds no DICOM.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    candidates = _candidates(path)
    with SourceReader() as reader:
        found = [source for source in candidates if _may_be_dicom(reader.head(source))]
    log.info("%d DICOM files among %d files in %s", len(found), len(candidates), path)
    if not found:
        if path.is_file() and path.suffix.lower() != ".zip":
            what = "is not a DICOM file (no DICM preamble, and it does not start like a DICOM dataset)"
        elif not candidates:
            what = "is empty"
        else:
            what = f"holds no DICOM files among its {len(candidates)} files"
        raise InputError(
            f"{path}: {what}; point to the folder, zip or file holding the study's DICOM images"
        )
    return found
