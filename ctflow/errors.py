"""Exceptions and warnings raised by ctflow.

Every error a user can trigger with bad input derives from :class:`CTFlowError`, so scripts can
catch one type; the concrete classes also derive from the matching builtin (``ValueError``,
``FileNotFoundError``) so generic handlers keep working.
"""

from __future__ import annotations


class CTFlowError(Exception):
    """Base class of every error ctflow raises on purpose."""


class GeometryError(CTFlowError, ValueError):
    """A geometry is invalid, unknown, or does not match the data it is used with."""


class ShapeError(CTFlowError, ValueError):
    """An array has the wrong shape, dtype or layout for the operation."""


class NonFiniteError(CTFlowError, ValueError):
    """An input contains NaN or Inf values."""


class ConfigError(CTFlowError, ValueError):
    """A configuration (model, training run, solver options) is invalid."""


class BackendError(CTFlowError, RuntimeError):
    """A projector backend cannot run the requested operation (projector type, device)."""


class DetectorCoverageWarning(UserWarning):
    """The detector does not see the whole image: projections are truncated."""


class FBPWarning(UserWarning):
    """An FBP setting is outside the conditions under which the formula is exact."""


class DataError(CTFlowError, ValueError):
    """A data file is missing, corrupt, or not what was expected. The message names the file."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path

    def __reduce__(self):  # keep ``path`` when the error crosses a process boundary (batch workers)
        msg = str(self)
        if self.path and msg.startswith(f"{self.path}: "):
            msg = msg[len(self.path) + 2 :]
        return (_rebuild_data_error, (type(self), msg, self.path))


def _rebuild_data_error(cls, message, path):
    return cls(message, path)


class NonFiniteDataError(DataError, NonFiniteError):
    """A file holds NaN/Inf where numbers are expected (pixel data, a rescale slope, a weight); names the file."""


class LimitError(DataError):
    """A file declares a size (array shape, element count, text length, nesting depth) beyond a configured
    limit of :mod:`ctflow.limits`; nothing that large was allocated. The message names the file and the limit."""


class GeometryFileError(GeometryError, DataError):
    """A geometry file (or a geometry stored in a data file) is unreadable or invalid; names the file."""


class ConfigFileError(ConfigError, DataError):
    """A configuration file (``prior.json``, a preset file) is unreadable or invalid; names the file."""


class TimeLimitError(DataError):
    """Reading or reconstructing one input took longer than the per-input time limit (``--time-limit``)."""
