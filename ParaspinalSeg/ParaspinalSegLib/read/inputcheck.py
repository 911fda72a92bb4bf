"""Is an input valid to measure on? Checks made once an image or label map is read.

Refused with an InputError that names the file:
- a NIfTI file whose voxel size (pixdim) is 0, negative or not a number (readers take 1 mm), or
  that holds less pixel data than its header says (a cut download, which readers fill with zeros);
- a slice whose pixel spacing lies outside PLAUSIBLE_SPACING_MM, or whose rows and columns differ
  in spacing by more than MAX_ANISOTROPY times: areas in mm² would be wrong by that factor;
- pixels that are NaN or infinite (they would change the fat found, hence the grade);
- a label map whose values are not whole numbers (1.5 would be cut to 1).

Warned (the warning goes into the result): a series whose headers do not show an axial T2
turbo spin echo without fat suppression, the only sequence the Goutallier grade is defined on.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..slices import SliceSeries

PLAUSIBLE_SPACING_MM = (0.1, 5.0)
MAX_ANISOTROPY = 3.0
NIFTI1_HEADER, NIFTI2_HEADER = 348, 540
FLOAT_DATATYPES = {16: np.float32, 64: np.float64}  # NIfTI datatype codes
T2_TSE = "T2 TSE"


@dataclass(frozen=True)
class NiftiHeader:
    """What the checks need from a NIfTI-1 or -2 header."""

    dim: list[int]
    pixdim: list[float]
    vox_offset: int
    datatype: int
    bitpix: int
    endian: str

    def data_bytes(self) -> int:
        return int(np.prod([max(d, 1) for d in self.dim[1:1 + self.dim[0]]])) * max(self.bitpix, 8) // 8


def _nifti_fields(header: bytes) -> NiftiHeader | None:
    """The fields of a NIfTI-1 or -2 header, or None if it is not one."""
    for e in "<>":
        if len(header) >= NIFTI1_HEADER and struct.unpack(e + "i", header[:4])[0] == NIFTI1_HEADER:
            datatype, bitpix = struct.unpack(e + "2h", header[70:74])
            return NiftiHeader(list(struct.unpack(e + "8h", header[40:56])), list(struct.unpack(e + "8f", header[76:108])),
                               int(struct.unpack(e + "f", header[108:112])[0]), datatype, bitpix, e)
        if len(header) >= NIFTI2_HEADER and struct.unpack(e + "i", header[:4])[0] == NIFTI2_HEADER:
            datatype, bitpix = struct.unpack(e + "2h", header[12:16])
            return NiftiHeader(list(struct.unpack(e + "8q", header[16:80])), list(struct.unpack(e + "8d", header[104:168])),
                               int(struct.unpack(e + "q", header[168:176])[0]), datatype, bitpix, e)
    return None


def _file_bytes(path: Path) -> bytes:
    """The whole file, decompressed; InputError when a .gz stream is cut short or damaged."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            return stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(
            f"{path}: the file is cut short or damaged ({error}); copy or download it again"
        ) from None


def _non_finite_voxels(header: NiftiHeader, data: bytes) -> int:
    """How many stored float voxels are NaN or infinite (readers turn them into 0)."""
    kind = FLOAT_DATATYPES.get(header.datatype)
    if kind is None:
        return 0
    values = np.frombuffer(data, dtype=np.dtype(kind).newbyteorder(header.endian),
                           count=header.data_bytes() // np.dtype(kind).itemsize, offset=header.vox_offset)
    return int(np.count_nonzero(~np.isfinite(values)))


def check_nifti_file(path: Path) -> None:
    """Refuse a NIfTI file with a voxel size that is not a positive number, missing data or NaN/inf voxels."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return
    data = _file_bytes(path)
    header = _nifti_fields(data[:NIFTI2_HEADER])
    if header is None:
        return  # not a NIfTI header: the image reader gives its own error
    spatial = header.pixdim[1:1 + min(3, max(header.dim[0], 0))]
    if any(not math.isfinite(v) or v <= 0 for v in spatial):
        raise InputError(
            f"{path}: its voxel size (pixdim) {[float(v) for v in spatial]} is not a positive number of mm, "
            "so no area can be measured; fix the header or export the volume again"
        )
    needed = header.vox_offset + header.data_bytes()
    if len(data) < needed:
        raise InputError(
            f"{path}: holds {len(data)} bytes but its header needs {needed}; the file is cut short, "
            "copy or download it again"
        )
    bad = _non_finite_voxels(header, data)
    if bad:
        raise InputError(
            f"{path}: {bad} voxels are NaN or infinite; they cannot be measured, export the image again"
        )


def _spacing_problem(spacing: tuple[float, float]) -> str:
    low, high = PLAUSIBLE_SPACING_MM
    if not all(math.isfinite(v) and low <= v <= high for v in spacing):
        return f"outside {low}-{high} mm"
    if max(spacing) / min(spacing) > MAX_ANISOTROPY:
        return f"rows and columns differ more than {MAX_ANISOTROPY:g} times"
    return ""


def check_series(series: SliceSeries, source: Path | str) -> None:
    """Refuse implausible pixel spacings and NaN or infinite pixels, naming the source."""
    for index, image_slice in enumerate(series.slices):
        spacing = image_slice.geometry.spacing
        problem = _spacing_problem(spacing)
        if problem:
            raise InputError(
                f"{source}: slice {index + 1} has a pixel spacing of {spacing[0]:g} x {spacing[1]:g} mm "
                f"({problem}), not that of an axial lumbar MR image; check PixelSpacing in its header"
            )
        bad = int(np.count_nonzero(~np.isfinite(image_slice.pixels)))
        if bad:
            raise InputError(
                f"{source}: slice {index + 1} has {bad} pixels that are NaN or infinite; "
                "they cannot be measured, export the image again"
            )


def check_label_values(path: Path, array: np.ndarray) -> None:
    """Refuse a label map whose values are not all finite whole numbers."""
    if np.issubdtype(array.dtype, np.integer):
        return
    odd = np.unique(array[~np.isfinite(array) | (array != np.round(array))])
    if odd.size:
        shown = ", ".join(f"{v:g}" for v in odd[:5].tolist())
        raise InputError(
            f"{path}: holds label values that are not whole numbers ({shown}); a label map holds "
            "integer labels, export the segmentation as labels"
        )


def sequence_warning(label: str, fat_suppressed: bool, timing: str) -> str:
    """A warning when the series is not shown to be T2 TSE without fat suppression, else ''."""
    if label == T2_TSE and not fat_suppressed:
        return ""
    what = f"{label}{' with fat suppression' if fat_suppressed else ''}"
    return (
        f"the series reads as {what}" + (f" ({timing})" if timing else "")
        + ", not as T2 turbo spin echo without fat suppression; the Goutallier grade and the fat "
        "fraction are defined on axial T2 TSE images, so treat them with care"
    )


VOLUME_SEQUENCE_WARNING = (
    "a volume file does not say which MR sequence it holds; the Goutallier grade and the fat fraction "
    "are defined on axial T2 turbo spin echo images without fat suppression, check that this is one"
)
