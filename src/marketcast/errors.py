"""The exception family of marketcast.

Every error a user can cause derives from :class:`MarketcastError`. The CLI maps these to a
one-line ``error: ...`` message and a non-zero exit code; anything else is a bug and keeps its
traceback.
"""


# Longest value quoted in a message: a 10 MB value is cut, never echoed whole.
SHOWN = 80


def shown(value: object, limit: int = SHOWN) -> str:
    """``repr(value)`` cut to ``limit`` characters (with an ellipsis): safe to print in a
    message, control characters and escapes included (repr escapes them)."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def listed(names, limit: int = 8) -> str:
    """The first ``limit`` of ``names``, comma-separated, with the count of the rest."""
    names = [str(n)[:SHOWN] for n in names]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class MarketcastError(Exception):
    """Base class: a problem the user can fix. The message says what was wrong and what to do."""

    exit_code = 2


class DataError(MarketcastError):
    """The price data cannot be read or breaks the data contract."""


class NotMultiTicker(DataError):
    """A ticker was asked of a file that holds one series (no ticker column or wide column)."""


class ConfigError(MarketcastError):
    """A setting is unknown, of the wrong type or out of range."""


class NotFittedError(MarketcastError):
    """A model was asked to predict before ``fit``."""


class ArtifactError(MarketcastError):
    """A saved run or model is missing, incomplete, tampered with or of the wrong kind."""


class TrainingError(MarketcastError):
    """Training diverged (NaN or infinite loss)."""


class MissingDependencyError(MarketcastError):
    """An optional dependency (an extra such as ``marketcast[ray]``) is not installed."""


class TrackingError(MarketcastError):
    """Logging to an experiment tracker failed; the run itself finished, and is saved when
    it was to be (``result`` holds it)."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class BatchError(MarketcastError):
    """Some per-ticker jobs of a batch failed; the others finished and were reported."""

    exit_code = 1
