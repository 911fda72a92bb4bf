"""The progress callback every long library call takes: (fraction 0..1, message) -> None.

The command line turns it into a tqdm bar, Slicer into a progress bar. A callback cancels the
work by raising errors.OperationCancelled; the libraries let it propagate.
"""

from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]
