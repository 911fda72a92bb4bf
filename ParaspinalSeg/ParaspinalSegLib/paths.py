"""Checking the paths a command is given, before anything is read or written.

- an input must be a regular file or a folder (a named pipe or a device would block or never end);
- a path must be valid UTF-8: SimpleITK's C++ readers and writers abort the process otherwise;
- an output must not be an input, lie inside one, or contain one (`-o STUDY --overwrite` would
  otherwise delete the study);
- a folder name made from a study's name keeps the name, replaces unsafe characters, and gets a
  short hash of the original name when it had to be changed, so that it is unique and stable.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError, OutputPlaceError

SAFE_CHARACTER = re.compile(r"[A-Za-z0-9._+-]")
MAX_FOLDER_NAME = 96
RESERVED_NAMES = {"summary.csv", ".", ".."}


def check_utf8(path: Path) -> None:
    """Refuse a path whose name is not valid UTF-8 (bytes undecodable on this system)."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{display_name(path)}: the name is not valid UTF-8; rename it with "
            "ordinary characters"
        ) from None


def check_input_kind(path: Path) -> None:
    """Refuse an existing input that is neither a regular file nor a folder (never opened: no blocking)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # the reader says "no such file" in its own words
    except OSError as error:
        raise InputError(f"{path}: cannot be examined ({error.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(f"{path}: is not a regular file or a folder (a named pipe, socket or device); "
                         "give the file or folder itself")


def is_regular_file(path: Path) -> bool:
    """True for a regular file (symbolic links followed); False for pipes, devices, folders, nothing."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_separate(output: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output that is an input, lies inside one, or contains one (links resolved)."""
    out = _real(output)
    for item in inputs:
        source = _real(item)
        if _within(out, source) or _within(source, out):
            relation = "is" if out == source else "lies inside" if _within(out, source) else "contains"
            raise OutputPlaceError(
                f"{output}: the output {relation} the input {item}; choose an output folder outside the input"
            )


def display_name(text: str | Path) -> str:
    """Text safe to print or write as UTF-8: bytes of a name that are not UTF-8 shown as U+FFFD."""
    return os.fsencode(str(text)).decode("utf-8", "replace")


def short_hash(name: str) -> str:
    """Eight hex digits that stand for a name (its bytes as stored on disk)."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:8]


def safe_folder_name(name: str) -> str:
    """`name` with every character outside [A-Za-z0-9._+-] replaced by "_"; if that changed it, or
    it is too long or reserved, a short hash of the original name is appended."""
    cleaned = "".join(c if SAFE_CHARACTER.fullmatch(c) else "_" for c in name).lstrip(".") or "_"
    if cleaned == name and len(name) <= MAX_FOLDER_NAME and name.lower() not in RESERVED_NAMES:
        return name
    return f"{cleaned[:MAX_FOLDER_NAME]}-{short_hash(name)}"


def unique_folder_names(names: list[str]) -> list[str]:
    """A safe folder name per name; names that would still coincide (ignoring case, as some file
    systems do) get the hash of their original name too."""
    safe = [safe_folder_name(n) for n in names]
    counts: dict[str, int] = {}
    for s in safe:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    return [s if counts[s.lower()] == 1 or s != n else f"{s}-{short_hash(n)}" for s, n in zip(safe, names)]
