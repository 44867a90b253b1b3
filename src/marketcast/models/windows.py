"""Leak-free preparation: chronological splits, MinMax scaling and sliding windows.

Vocabulary (one name per idea, everywhere): ``y`` is the price series (T,), ``X`` optional
extra features (T, F-1); a *cutoff* ``t`` is the index of the last observed day of a window,
whose inputs are rows ``t-lookback+1 .. t``; ``horizon`` is the network's output width (days
predicted at once, directly), ``h`` the number of steps a forecast covers (``--days`` for the
future; past ``horizon`` the forecast recurses) and a *step* is one of them, ``1 .. h``; the
backtest's spacing of cutoffs is its *stride*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from marketcast.config import SplitConfig
from marketcast.errors import ConfigError, DataError, NotFittedError


class MinMaxScaler:
    """Per-column scaling to [0, 1]; fit it on training rows only."""

    def fit(self, Z: np.ndarray) -> MinMaxScaler:
        """Learn ``min_`` and ``range_`` from ``Z`` of shape (rows, F)."""
        Z = np.asarray(Z, dtype=np.float64)
        self.min_ = Z.min(axis=0)
        span = Z.max(axis=0) - self.min_
        # A constant column would divide by zero; leave it unscaled instead.
        self.range_ = np.where(span > 0, span, 1.0)
        return self

    def transform(self, Z: np.ndarray) -> np.ndarray:
        self._check()
        return (np.asarray(Z, dtype=np.float64) - self.min_) / self.range_

    def inverse_transform(self, Z: np.ndarray, column: int | None = None) -> np.ndarray:
        """Undo :meth:`transform`; with ``column``, ``Z`` holds values of that column only."""
        self._check()
        if column is None:
            return np.asarray(Z) * self.range_ + self.min_
        return np.asarray(Z) * self.range_[column] + self.min_[column]

    def to_dict(self) -> dict:
        self._check()
        return {"min": self.min_.tolist(), "range": self.range_.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> MinMaxScaler:
        scaler = cls()
        scaler.min_ = np.asarray(state["min"], dtype=np.float64)
        scaler.range_ = np.asarray(state["range"], dtype=np.float64)
        return scaler

    def _check(self) -> None:
        if not hasattr(self, "min_"):
            raise NotFittedError("scaler is not fitted; call fit on the training rows first")


class WindowTransform:
    """Maps prices (and extra features) to scaled model inputs, and forecasts back to prices.

    Column 0 of the inputs is the target series in model space: the price itself
    (``level``) or its daily log return (``log_return``); the extra features follow. Because
    the target is also an input, a one-step model can be run recursively.
    """

    def __init__(self, lookback: int, horizon: int, target_transform: str = "log_return",
                 dtype=np.float32):
        self.lookback = lookback
        self.horizon = horizon
        self.target_transform = target_transform
        # float32 for the network; the linear baseline keeps float64.
        self.dtype = dtype

    @property
    def offset(self) -> int:
        """Leading rows without a value in model space (the first day has no return)."""
        return 1 if self.target_transform == "log_return" else 0

    def fit(self, y: np.ndarray, X: np.ndarray | None, n_train: int) -> WindowTransform:
        """Fit the scaler on rows ``[:n_train]`` only: the training rows."""
        Z = self._raw_inputs(y[:n_train], None if X is None else X[:n_train])
        self.scaler_ = MinMaxScaler().fit(Z[self.offset :])
        self.n_features_ = Z.shape[1]
        return self

    def inputs(self, y: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
        """Scaled inputs (T, F), row-aligned with ``y`` (NaN rows before ``offset``)."""
        if not hasattr(self, "scaler_"):
            raise NotFittedError("window transform is not fitted")
        return self.scaler_.transform(self._raw_inputs(y, X)).astype(self.dtype)

    def cutoffs(self, first_target: int, stop: int) -> np.ndarray:
        """Cutoffs whose ``h`` targets all lie in rows ``[first_target, stop)``."""
        first = max(first_target - 1, self.offset + self.lookback - 1)
        return np.arange(first, stop - self.horizon, dtype=np.int64)

    def windows(self, Z: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
        """Input windows (n, lookback, F) for ``cutoffs``: a gather from a strided view."""
        view = sliding_window_view(Z, self.lookback, axis=0)  # (T-L+1, F, L), no copy
        return view[cutoffs - self.lookback + 1].transpose(0, 2, 1)

    def targets(self, Z: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
        """Scaled targets (n, horizon): column 0 of rows ``t+1 .. t+h``."""
        view = sliding_window_view(Z[:, 0], self.horizon)  # (T-h+1, h)
        return view[cutoffs + 1]

    def to_price(self, y: np.ndarray, cutoffs: np.ndarray, scaled: np.ndarray) -> np.ndarray:
        """Forecasts in model space (n, k) -> prices (n, k)."""
        values = self.scaler_.inverse_transform(scaled, column=0)
        if self.target_transform == "level":
            return values
        with np.errstate(over="ignore"):  # an overflow is caught where forecasts are used
            return y[cutoffs][:, None] * np.exp(np.cumsum(values, axis=1))

    def forecast(self, predict_scaled, y, X, cutoffs, h: int) -> np.ndarray:
        """Price forecasts (n, h) from each cutoff; recursive when ``h`` exceeds the horizon.

        ``predict_scaled`` maps windows (n, lookback, F) to scaled targets (n, horizon).
        """
        cutoffs = self.check_cutoffs(cutoffs)
        if h > self.horizon and self.n_features_ > 1:
            raise ConfigError(
                f"a {h}-day forecast from a model with extra features needs future feature "
                f"values; train with --horizon {h} (direct) or use the target as only feature"
            )
        batch = self.windows(self.inputs(y, X), cutoffs)
        steps = [np.asarray(predict_scaled(batch), dtype=self.dtype)]  # (n, horizon) each
        while len(steps) * self.horizon < h:
            # Slide each window forward over its own forecasts (column 0 is the target).
            batch = np.concatenate([batch, steps[-1][:, :, None]], axis=1)[:, -self.lookback :]
            steps.append(np.asarray(predict_scaled(batch), dtype=self.dtype))
        return self.to_price(y, cutoffs, np.concatenate(steps, axis=1)[:, :h])

    def check_cutoffs(self, cutoffs) -> np.ndarray:
        """``cutoffs`` as int64, after checking each has a full window of history."""
        cutoffs = np.asarray(cutoffs, dtype=np.int64)
        if cutoffs.size and cutoffs.min() < self.offset + self.lookback - 1:
            raise DataError(
                f"forecasting needs {self.offset + self.lookback} days of history; got fewer"
            )
        return cutoffs

    def to_dict(self) -> dict:
        return {
            "lookback": self.lookback,
            "horizon": self.horizon,
            "target_transform": self.target_transform,
            "n_features": self.n_features_,
            "scaler": self.scaler_.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> WindowTransform:
        transform = cls(state["lookback"], state["horizon"], state["target_transform"])
        transform.scaler_ = MinMaxScaler.from_dict(state["scaler"])
        transform.n_features_ = int(state["n_features"])
        return transform

    def _raw_inputs(self, y: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.target_transform == "level":
            series = y
        else:
            series = np.concatenate([[np.nan], np.diff(np.log(y))])
        columns = [series[:, None]]
        if X is not None:
            columns.append(np.asarray(X, dtype=np.float64).reshape(len(y), -1))
        return np.concatenate(columns, axis=1)


@dataclass
class Pooled:
    """Scaled rows of many series stacked into one array, and the window cutoffs in it.

    ``Z`` is (N, F) float32; series ``k`` owns rows ``starts[k]:starts[k+1]``.
    ``train_cutoffs`` and ``val_cutoffs`` are row indices of ``Z`` (int64); every cutoff's
    window and targets stay inside its own series' rows.
    """

    Z: np.ndarray
    starts: np.ndarray
    transforms: list[WindowTransform]
    train_cutoffs: np.ndarray
    val_cutoffs: np.ndarray


def pool_series(series: Sequence[tuple[np.ndarray, np.ndarray | None, int]], lookback: int,
                horizon: int, target_transform: str,
                transforms: Sequence[WindowTransform] | None = None) -> Pooled:
    """Scale each ``(y, X, n_val)`` on its own training rows and stack the scaled rows.

    ``transforms`` (fitted, one per series) scale the series instead, unchanged: a warm
    refit keeps the scalers its starting weights were trained with.

    Memory: one float32 array of (rows, summed over series) x F plus the cutoff indices;
    windows are gathered per batch by :func:`marketcast.nn.train.fit_network`, never copied.
    """
    blocks, fitted, train, val, starts = [], [], [], [], [0]
    for k, (y, X, n_val) in enumerate(series):
        y = np.asarray(y, dtype=np.float64)
        n_train, start = len(y) - n_val, starts[-1]
        if transforms is None:
            transform = WindowTransform(lookback, horizon, target_transform)
            transform.fit(y, X, n_train=n_train)
        else:
            transform = transforms[k]
        blocks.append(transform.inputs(y, X))
        fitted.append(transform)
        train.append(transform.cutoffs(0, n_train) + start)
        if n_val:
            val.append(transform.cutoffs(n_train, len(y)) + start)
        starts.append(start + len(y))
    empty = np.empty(0, dtype=np.int64)
    return Pooled(
        Z=np.concatenate(blocks),
        starts=np.asarray(starts, dtype=np.int64),
        transforms=fitted,
        train_cutoffs=np.concatenate(train) if train else empty,
        val_cutoffs=np.concatenate(val) if val else empty,
    )


@dataclass(frozen=True)
class Split:
    """Row counts of the chronological split: train, then validation, then test."""

    n_train: int
    n_val: int
    n_test: int

    @property
    def test_start(self) -> int:
        return self.n_train + self.n_val


def split_rows(
    dates: pd.DatetimeIndex, split: SplitConfig, lookback: int, horizon: int, offset: int
) -> Split:
    """Chronological train/validation/test rows; explicit dates override fractions.

    Raises :class:`DataError` stating the minimum number of rows when there are too few for
    one training, one validation (if any) and one test window.
    """
    n = len(dates)
    n_test = _rows_from(dates, split.test_start, "test_start", n)
    if n_test is None:
        n_test = round(n * split.test_fraction)
    val_end = n - n_test
    n_val = _rows_from(dates[:val_end], split.val_start, "val_start", val_end)
    if n_val is None:
        n_val = round(n * split.val_fraction)
    result = Split(n - n_val - n_test, n_val, n_test)
    if not _enough(result, lookback, horizon, offset, split.val_fraction > 0 or n_val > 0):
        if split.test_start or split.val_start:
            raise DataError(
                f"the split leaves {result.n_train} training, {result.n_val} validation and "
                f"{result.n_test} test days; with lookback {lookback} and horizon {horizon} "
                f"training needs at least {lookback + horizon + offset} days and the others "
                f"{horizon} each; move --val-start/--test-start"
            )
        need = _minimum_rows(split, lookback, horizon, offset)
        raise DataError(
            f"{n} days are too few: lookback {lookback} + horizon {horizon} with a "
            f"{split.val_fraction:.0%} validation and {split.test_fraction:.0%} test split needs "
            f"at least {need}; use more data (--start earlier) or a shorter --lookback"
        )
    return result


def _rows_from(dates: pd.DatetimeIndex, start: str | None, name: str, n: int) -> int | None:
    if start is None:
        return None
    try:
        first = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise ConfigError(f"split.{name} {start!r} is not a date; use YYYY-MM-DD") from None
    return int(n - np.searchsorted(dates.values, first.to_datetime64()))


def _enough(split: Split, lookback: int, horizon: int, offset: int, with_val: bool) -> bool:
    return (
        split.n_train >= lookback + horizon + offset
        and (split.n_val >= horizon or not with_val)
        and split.n_test >= horizon
    )


# More rows than any price series has (a century of seconds is 3e9).
MOST_ROWS = 1e12


def _minimum_rows(split: SplitConfig, lookback: int, horizon: int, offset: int) -> int:
    """The fewest rows whose fractional split holds one window of each part.

    Rounding moves each part by at most half a row, so no count below the bounds computed
    here can do; the search from there takes a few steps, whatever the lookback.
    """
    need = lookback + horizon + offset
    bounds = [need, (need - 1) / (1 - split.val_fraction - split.test_fraction),
              (horizon - 0.5) / split.test_fraction]
    if split.val_fraction > 0:
        bounds.append((horizon - 0.5) / split.val_fraction)
    if not max(bounds) < MOST_ROWS:  # a fraction like 1e-300: no data is that long
        raise ConfigError(
            f"a {split.val_fraction:g} validation and {split.test_fraction:g} test split "
            f"needs over {MOST_ROWS:.0e} days to hold one window of each; use larger "
            "--val-fraction and --test-fraction (0 for no validation)")
    n = max(need, int(max(bounds)) - 2)
    while True:
        n_test = round(n * split.test_fraction)
        n_val = round(n * split.val_fraction)
        candidate = Split(n - n_val - n_test, n_val, n_test)
        if _enough(candidate, lookback, horizon, offset, split.val_fraction > 0):
            return n
        n += 1
