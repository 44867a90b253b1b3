"""The exception family of marketcast.

Every error a user can cause derives from :class:`MarketcastError`. The CLI maps these to a
one-line ``error: ...`` message and a non-zero exit code; anything else is a bug and keeps its
traceback. A failure of the operating system (disk full, a read-only or missing folder) in
a public function becomes a :class:`StorageError` (see :func:`os_errors`) chained from the
``OSError``, with the line the CLI prints.
"""

import errno
import functools

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


class StorageError(MarketcastError):
    """The operating system refused to read or write a file: disk full, a read-only or
    missing folder, a path that is a file. ``__cause__`` holds the ``OSError``."""


# What to do about an operating-system failure, by errno.
OS_ADVICE = {
    errno.ENOSPC: "free some disk space and run again",
    errno.EDQUOT: "free some disk space and run again",
    errno.EROFS: "the file system is read-only; pass a writable folder",
    errno.EACCES: "check the permissions, or pass a folder you can write to",
    errno.EPERM: "check the permissions, or pass a folder you can write to",
    errno.ENOENT: "check the path; create the folder first",
    errno.ENOTDIR: "a part of the path is a file, not a folder; pass a folder",
    errno.EEXIST: "a file is in the way; pass a folder",
    errno.EISDIR: "the path is a folder; pass a file name",
    errno.ENAMETOOLONG: "use a shorter path or name",
}


def os_message(exc: OSError) -> str:
    """One line about an ``OSError``: what failed, on which path, and what to do."""
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or type(exc).__name__
    advice = OS_ADVICE.get(exc.errno, "check the path, the permissions and the free space")
    return f"{what}: {shown(str(where), 200) if where else 'a file'}; {advice}"


def os_errors(function):
    """Decorate a public function: an ``OSError`` escaping it is raised again as a
    :class:`StorageError` with :func:`os_message`'s line, chained from it."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            raise StorageError(os_message(exc)) from exc

    return wrapper


class FieldCheck:
    """Checks of the fields of one file we read: each failure raises ``error`` naming the
    file (``where``) and the field, then says what to do (``advice``)."""

    def __init__(self, where: object, error: type[MarketcastError], advice: str):
        self.where, self.error, self.advice = where, error, advice

    def fail(self, field: str, problem: str):
        raise self.error(f"{self.where}: {field} {problem}; {self.advice}")

    def table(self, value, field: str, keys: set[str], required: set[str] | None = None) -> dict:
        """``value`` if it is a JSON object whose keys are among ``keys`` and include every
        one of ``required`` (default: all of ``keys``)."""
        if not isinstance(value, dict):
            self.fail(field, f"must be a JSON object, not {type(value).__name__}")
        unknown = sorted(set(value) - keys, key=str)
        if unknown:
            self.fail(field, f"has an unknown key {shown(unknown[0])}")
        missing = sorted((keys if required is None else required) - set(value))
        if missing:
            self.fail(field, f"lacks {missing[0]!r}")
        return value
