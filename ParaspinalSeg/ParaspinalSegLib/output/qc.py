"""The QC picture: a PNG montage of slices in display orientation with the label outlines drawn.

Warnings (pipeline and quality.py) are written in a red banner under the grade, the model's note
(its card's real-case report) in grey under them; a slice with a quality flag gets a red frame and
its flags' tags at the foot of its tile.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from ..labels import SEGMENTS
from ..pipeline import MeasurementResult
from ..measure.quality import grade_caution
from ..slices import SliceSeries

TILE_PX = 224
MAX_TILES = 24
MARGIN_MM = 35.0
LINE_PX = 14
WARNING_RED = (200, 0, 0)
FRAME_PX = 3


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of a mask that touch a pixel outside it (4-neighbourhood)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def grey_levels(pixels: np.ndarray) -> np.ndarray:
    """uint8 grey image, windowed to the 1st-99.5th percentile of the slice."""
    low, high = np.percentile(pixels, [1.0, 99.5])
    scaled = (pixels - low) / max(float(high - low), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def overlay_tile(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB uint8 image of one slice with each segment's outline in its colour."""
    grey = grey_levels(pixels)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for style in SEGMENTS:
        edge = outline(labels == style.label)
        rgb[edge] = (np.asarray(style.color) * 255).astype(np.uint8)
    return rgb


def crop_around_labels(
    pixels: np.ndarray, labels: np.ndarray, spacing: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays cut to the labels' bounding box plus MARGIN_MM (the whole slice if no labels)."""
    rows, columns = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
    if rows.size == 0:
        return pixels, labels
    pad_rows, pad_columns = (int(math.ceil(MARGIN_MM / s)) for s in spacing)
    r0, r1 = max(rows.min() - pad_rows, 0), rows.max() + pad_rows + 1
    c0, c1 = max(columns.min() - pad_columns, 0), columns.max() + pad_columns + 1
    return pixels[r0:r1, c0:c1], labels[r0:r1, c0:c1]


def chosen_slices(result: MeasurementResult) -> list[int]:
    """Slices with a compartment (all slices if none has one), at most MAX_TILES, evenly spread."""
    present = [m.slice_index for m in result.slices if m.both.present] or [m.slice_index for m in result.slices]
    if len(present) <= MAX_TILES:
        return present
    picks = np.linspace(0, len(present) - 1, MAX_TILES).round().astype(int)
    return [present[i] for i in picks]


def montage(series: SliceSeries, result: MeasurementResult):
    """A Pillow image: tiles in display orientation around the compartments, with index and fat fraction."""
    from PIL import Image, ImageDraw

    indices = chosen_slices(result)
    columns = min(6, len(indices))
    rows = math.ceil(len(indices) / columns)
    banner = warning_lines(result.warnings, columns * TILE_PX)
    note = wrapped_lines(f"model note: {result.model_note}" if result.model_note else "", columns * TILE_PX)
    top_of_note = 28 + (len(banner) * LINE_PX + 8 if banner else 0)
    header = top_of_note + (len(note) * LINE_PX + 4 if note else 0)
    sheet = Image.new("RGB", (columns * TILE_PX, rows * TILE_PX + header), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    s = result.summary
    caution = grade_caution(result.warnings)
    draw.text(
        (6, 8),
        f"SGC grade {s.grade or '-'}{'  (' + caution + ')' if caution else ''}   mean fat fraction "
        f"{s.mean_fat_fraction_pct:.1f} % (R {s.mean_fat_fraction_right_pct:.1f} %, "
        f"L {s.mean_fat_fraction_left_pct:.1f} %)   patient's right on the left",
        fill=(255, 255, 255),
    )
    if banner:
        draw.rectangle((0, 26, sheet.width - 1, top_of_note - 2), fill=WARNING_RED)
        for n, line in enumerate(banner):
            draw.text((6, 30 + n * LINE_PX), line, fill=(255, 255, 255))
    for n, line in enumerate(note):
        draw.text((6, top_of_note + n * LINE_PX), line, fill=(190, 190, 190))
    tags = {}
    for flag in result.flags:
        tags.setdefault(flag.slice_index, []).append(flag.tag)
    for n, index in enumerate(indices):
        image_slice = series.slices[index]
        transform = image_slice.display
        row_mm, column_mm = transform.display_spacing(image_slice.geometry)
        pixels, labels = crop_around_labels(
            transform.to_display(image_slice.pixels), transform.to_display(result.labels[index]), (row_mm, column_mm)
        )
        tile = overlay_tile(pixels, labels)
        height, width = tile.shape[0] * row_mm, tile.shape[1] * column_mm
        scale = TILE_PX / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = Image.fromarray(tile).resize(size, Image.Resampling.NEAREST)
        x0 = (n % columns) * TILE_PX + (TILE_PX - size[0]) // 2
        y0 = header + (n // columns) * TILE_PX + (TILE_PX - size[1]) // 2
        sheet.paste(picture, (x0, y0))
        fraction = result.slices[index].both.fat_fraction_pct
        label = f"#{index}  FF {fraction:.1f} %" if not math.isnan(fraction) else f"#{index}"
        draw.text(((n % columns) * TILE_PX + 4, header + (n // columns) * TILE_PX + 4), label, fill=(255, 255, 0))
        if index in tags:
            left, top = (n % columns) * TILE_PX, header + (n // columns) * TILE_PX
            draw.rectangle((left, top, left + TILE_PX - 1, top + TILE_PX - 1), outline=WARNING_RED, width=FRAME_PX)
            foot = textwrap.wrap(", ".join(dict.fromkeys(tags[index])), width=(TILE_PX - 12) // 6)
            for k, line in enumerate(reversed(foot)):
                x, y = left + 6, top + TILE_PX - 6 - (k + 1) * LINE_PX
                draw.rectangle((x - 2, y - 1, x + draw.textlength(line) + 2, y + LINE_PX - 2), fill=(0, 0, 0))
                draw.text((x, y), line, fill=(255, 80, 80))
    return sheet


def wrapped_lines(text: str, width_px: int) -> list[str]:
    """Text wrapped to the picture's width (the default font: 6 px a character), later lines indented."""
    return textwrap.wrap(text, width=max(20, (width_px - 12) // 6), subsequent_indent="  ")


def warning_lines(warnings: tuple[str, ...], width_px: int) -> list[str]:
    """The warnings as "! ..." lines wrapped to the picture's width."""
    return [line for warning in warnings for line in wrapped_lines(f"! {warning}", width_px)]


def write_qc_montage(path: Path, series: SliceSeries, result: MeasurementResult) -> None:
    """Save the montage as PNG (called inside an output folder that is renamed when complete)."""
    montage(series, result).save(Path(path), format="PNG", compress_level=1)  # 3x faster than 6, as small
