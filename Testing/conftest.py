"""Shared pytest fixtures: the optional ../shared reference data beside the repository."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared (real MRI, shapes, DICOM files); tests using it skip on a fresh clone without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present (fresh clone): real-data test skipped")
    return SHARED
