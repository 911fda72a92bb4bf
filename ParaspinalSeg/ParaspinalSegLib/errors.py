"""The project's exception classes: each message says what went wrong, where, and what to do."""


class ParaspinalError(Exception):
    """Base class of every error the libraries raise on purpose."""


class InputError(ParaspinalError):
    """An input file or folder cannot be read or does not hold what is needed."""


class NoSuitableSeriesError(InputError):
    """A study has no axial T2-weighted series that could be processed."""


class GeometryMismatchError(InputError):
    """A segmentation does not lie on the pixel grid of its image."""


class OutputExistsError(ParaspinalError):
    """An output would overwrite existing files without permission."""


class OutputPlaceError(ParaspinalError):
    """An output cannot go where it was asked to: onto an input, or a folder that cannot be written."""


class OperationCancelled(ParaspinalError):
    """The user cancelled a long operation (raised from a progress callback)."""
