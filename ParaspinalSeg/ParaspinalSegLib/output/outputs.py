"""An output folder that appears whole or not at all, and never replaces user files silently."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError, OutputExistsError, OutputPlaceError
from ..paths import check_utf8


@contextmanager
def output_folder(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it is renamed to `path`.

    An existing non-empty `path` is an error unless overwrite is True, in which case it is
    replaced only after the new folder is complete. On failure nothing under `path` changes.
    The last step refuses a `path` that another process filled meanwhile (`rename_no_replace`).
    A folder that cannot be written (read-only, disk full, a parent that is a file, a name too
    long) is an OutputPlaceError naming it.
    """
    path = Path(path)
    check_utf8(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise OutputExistsError(
            f"{path}: already exists and is not empty; choose another output folder or pass --overwrite"
        )
    with _unwritable_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.parent / f".{path.name[:32]}.{uuid.uuid4().hex[:12]}.partial"
        staging.mkdir()  # ordinary permissions (umask), unlike mkdtemp's 0700
    try:
        with _unwritable_as_error(path):
            yield staging
            _into_place(staging, path, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def _unwritable_as_error(path: Path) -> Iterator[None]:
    """OSError while writing `path` (permissions, disk full, name too long...) as one clear error;
    an OSError about a file elsewhere (an input) names that file instead."""
    try:
        yield
    except OutputExistsError:
        raise
    except OSError as error:
        reason = error.strerror or str(error)
        other = Path(os.fsdecode(error.filename)) if error.filename else None
        if other is not None and path.parent.resolve() not in other.resolve().parents:
            raise InputError(f"{other}: cannot be used ({reason})") from None
        raise OutputPlaceError(f"{path}: the output cannot be written there ({reason}); choose another "
                               "output folder") from None


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename a finished folder to `target` unless `target` exists with anything in it.

    POSIX rename(2) of a folder is atomic and fails (ENOTEMPTY/EEXIST, ENOTDIR for a file) when the
    target is not an empty folder; it replaces only an empty folder, which loses nothing. Windows
    refuses any existing target. So two runs finishing at the same time cannot replace each
    other's results, with no window between a check and the rename.
    """
    try:
        os.rename(source, target)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        raise OutputExistsError(f"{target}: appeared while this run was writing ({error.strerror}); "
                                "the results of this run were not kept, choose another output folder") from None
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise OutputExistsError(f"{target}: appeared while this run was writing; the results of this run "
                                    "were not kept, choose another output folder") from None
        raise


def _into_place(staging: Path, path: Path, overwrite: bool) -> None:
    """Move the finished staging folder to `path`; with overwrite, the old folder goes only after."""
    if not (overwrite and path.exists()):
        rename_no_replace(staging, path)
        return
    retired = Path(tempfile.mkdtemp(prefix=".old.", dir=path.parent))
    os.rename(path, retired / "old")
    try:
        rename_no_replace(staging, path)
    except BaseException:
        try:
            os.rename(retired / "old", path)
            retired.rmdir()
        except OSError:
            raise OutputExistsError(f"{path}: appeared while this run was writing; the folder it replaces "
                                    f"was kept in {retired / 'old'}") from None
        raise
    shutil.rmtree(retired, ignore_errors=True)


def default_file_mode() -> int:
    """The permissions an ordinary new file gets under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def move_into_place(temporary: Path | str, path: Path, replace: bool = True) -> None:
    """Rename a finished temporary file (mkstemp makes it 0600) to its final name, ordinary permissions.

    With replace=False an existing `path` is an OutputExistsError, checked atomically: a hard link
    fails when the name exists (where the file system has no hard links, a check just before).
    """
    os.chmod(temporary, default_file_mode())
    if replace:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputExistsError(f"{path}: already exists; choose another name") from None
    except OSError:  # no hard links here (FAT, some network shares)
        if os.path.lexists(path):
            raise OutputExistsError(f"{path}: already exists; choose another name") from None
        os.rename(temporary, path)
        return
    os.unlink(temporary)


def write_text_atomic(path: Path, text: str, replace: bool = True) -> None:
    """Write a text file under a temporary name, then rename it into place (see move_into_place)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:32]}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        move_into_place(temporary, path, replace)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
