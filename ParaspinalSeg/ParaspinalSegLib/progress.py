"""The progress callback every long library call takes: (fraction 0..1, message) -> None.

The command line turns it into a tqdm bar, Slicer into a progress bar. A callback cancels the
work by raising errors.OperationCancelled; the libraries let it propagate.
"""

from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]


def part_of(progress: ProgressCallback | None, start: float, end: float) -> ProgressCallback | None:
    """A callback reporting a step's 0..1 as start..end of the whole bar (cancelling as the original)."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, message)
