"""Running a loaded model on the slices of a series: label maps on each slice's own pixel grid.

No file I/O here: slices with their geometry in, scheme label maps out (the function the command
line and the Slicer module share).
"""

from __future__ import annotations


import numpy as np

from .modelfile import LoadedModel
from .preprocess import prepare_slice, restore_labels
from .slices import SliceSeries
from .progress import ProgressCallback


def choose_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def predict_series(
    model: LoadedModel,
    series: SliceSeries,
    device: str = "cpu",
    batch_size: int = 8,
    mixed_precision: bool = True,
    progress: ProgressCallback | None = None,
) -> list[np.ndarray]:
    """Scheme label maps, one per slice of the series, from the model's class scores.

    Mixed precision (bfloat16) is used on CUDA only: on a CPU without AMX it is several times
    slower than float32 (measured on this project's AMD EPYC machines).
    """
    import torch

    pre = model.card.preprocessing
    prepared = [prepare_slice(s.pixels, s.geometry, pre) for s in series.slices]
    network = model.network.to(device).eval()
    use_bf16 = mixed_precision and device.startswith("cuda")
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16)
    labels: list[np.ndarray] = []
    with torch.inference_mode(), autocast:
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            batch = torch.from_numpy(np.stack([window for window, _, _ in chunk])[:, None]).to(device)
            scores = network(batch).float().cpu().numpy()
            labels += [restore_labels(score, placement) for score, (_, placement, _) in zip(scores, chunk)]
            if progress:
                progress(len(labels) / len(prepared), f"segmenting, slice {len(labels)}/{len(prepared)}")
    return labels
