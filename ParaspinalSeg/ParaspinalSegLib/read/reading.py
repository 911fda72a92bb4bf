"""Reading a study: a DICOM folder or zip (series chosen), or a single NIfTI/NRRD volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, NoSuitableSeriesError
from ..geometry import DEFAULT_AXIAL_TOLERANCE_DEG
from ..paths import check_input_kind
from .inputcheck import VOLUME_SEQUENCE_WARNING, check_series
from ..progress import ProgressCallback
from ..slices import SliceSeries
from .volumes import is_volume_file, read_volume_series


@dataclass
class LoadedStudy:
    """The series that will be processed, and why it was chosen."""

    series: SliceSeries
    reason: str


def check_axial(series: SliceSeries, source: Path, tolerance_deg: float = DEFAULT_AXIAL_TOLERANCE_DEG) -> None:
    """Refuse a volume whose slices are not axial (normal too far from the body axis)."""
    worst = max(s.geometry.angle_to_body_axis_deg() for s in series.slices)
    if worst > tolerance_deg:
        raise NoSuitableSeriesError(
            f"{source}: its slices are not axial (normal {worst:.0f} degrees from the body axis, "
            f"at most {tolerance_deg:.0f} allowed); reformat it to axial slices first"
        )


def read_study(
    path: Path, series_uid: str | None = None, progress: ProgressCallback | None = None
) -> LoadedStudy:
    """The series to process from a DICOM folder/zip/file or a volume file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    check_input_kind(path)
    if is_volume_file(path):
        series = read_volume_series(path)
        check_axial(series, path)
        check_series(series, path)
        series.warnings.append(VOLUME_SEQUENCE_WARNING)
        return LoadedStudy(series, f"volume {path.name}: {len(series)} axial slices")
    from .dicom import list_series, load_series
    from .series_selection import choose_series, series_sequence_warning

    choice = choose_series(list_series(path, progress=progress), series_uid=series_uid)
    series = load_series(choice.summary, progress=progress)
    check_series(series, path)
    series.warnings.extend(w for w in [series_sequence_warning(choice.summary)] if w)
    return LoadedStudy(series, choice.reason)
