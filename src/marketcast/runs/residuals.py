"""A run's ``residuals.csv``, read as input: the bytes parsed are the bytes the manifest
vouches for, and every column is checked before an interval is calibrated on it.

The file holds one row per out-of-sample test forecast step: ``step`` (1 to the forecast
length the run wrote them for), ``abs_log_residual`` (finite, not negative) and
``volatility`` (the EWMA volatility at the cutoff: finite and not negative, blank before
its warm-up), with a ``ticker`` column first in a global model's folder. A violation is one
:class:`ArtifactError` naming the file and the column.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.config import Config
from marketcast.errors import ArtifactError, ConfigError, FieldCheck, shown
from marketcast.files import read_json, read_verified
from marketcast.runs.layout import MANIFEST, RESIDUALS

COLUMNS = ("step", "abs_log_residual", "volatility")


def read_residuals(folder: str | Path, meta: dict) -> pd.DataFrame | None:
    """The verified, checked ``residuals.csv`` of a model folder whose ``model.json`` is
    ``meta`` (already validated); None when the run wrote none (a ``train`` folder)."""
    path = Path(folder) / RESIDUALS
    manifest = read_json(Path(folder) / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    digest = files.get(RESIDUALS) if isinstance(files, dict) else None
    if digest is None:
        if path.exists():
            raise ArtifactError(f"{path} is not listed in {MANIFEST}; use an untouched run "
                                "folder")
        return None
    data = read_verified(path, digest)
    try:
        raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        _fail(path, "the file", f"is not a readable CSV ({shown(str(exc), 80)})")
    return check_residuals(raw, path, _days(meta), set(meta.get("tickers") or ()))


def check_residuals(raw: pd.DataFrame, path: Path, days: int,
                    tickers: set[str]) -> pd.DataFrame:
    """``residuals.csv`` as text -> its typed table; see the module docstring."""
    expected = (["ticker"] if tickers else []) + ["step", "abs_log_residual"]
    got = list(raw.columns)
    if got not in (expected, [*expected, "volatility"]):
        _fail(path, "the header", f"is {shown(','.join(map(str, got)), 120)}, not "
              f"{','.join([*expected, 'volatility'])}")
    if raw.empty:
        _fail(path, "the file", "holds no residuals")
    out = pd.DataFrame(index=raw.index)
    if tickers:
        unknown = ~raw["ticker"].isin(tickers)
        if unknown.any():
            _fail(path, "column 'ticker'", f"holds {shown(raw['ticker'][unknown].iloc[0])}, "
                  "a ticker the model was not trained on")
        lacking = sorted(tickers - set(raw["ticker"]))
        if lacking:
            _fail(path, "column 'ticker'", f"holds no residuals of {shown(lacking[0])}")
        out["ticker"] = raw["ticker"]
    step = raw["step"]
    number = pd.to_numeric(step.where(step.str.fullmatch(r"[0-9]{1,9}")))  # NaN: not whole
    bad = ~number.between(1, days)
    if bad.any():
        _fail(path, "column 'step'", f"holds {shown(step[bad].iloc[0])}, not a whole number "
              f"from 1 to {days}")
    out["step"] = number.astype(np.int64)
    out["abs_log_residual"] = _numbers(raw["abs_log_residual"], path, "abs_log_residual",
                                       blank=False)
    if "volatility" in raw.columns:
        out["volatility"] = _numbers(raw["volatility"], path, "volatility", blank=True)
        group = out["ticker"] if tickers else np.zeros(len(out), dtype=int)
        known = out["volatility"].notna().groupby(group).any()
        if not known.all():  # the scaled intervals would have no score to calibrate on
            _fail(path, "column 'volatility'", "is blank in every row"
                  + (f" of {shown(known.index[~known][0])}" if tickers else ""))
    return out


def _numbers(text: pd.Series, path: Path, column: str, blank: bool) -> np.ndarray:
    """Finite, non-negative numbers (a blank is NaN where ``blank``)."""
    values = pd.to_numeric(text.where(text != "", "nan"), errors="coerce").to_numpy(
        dtype=np.float64)
    empty = (text == "").to_numpy()
    bad = (~np.isfinite(values) & ~(empty & blank)) | (values < 0)
    if bad.any():
        _fail(path, f"column {column!r}", f"holds {shown(text.iloc[int(np.argmax(bad))])}, "
              "not a finite number at least 0")
    return values


def _days(meta: dict) -> int:
    """The forecast length the residuals were written for: the run's ``--days``, or its
    horizon when extra features stop the forecast there."""
    try:
        config = Config.from_dict(meta["config"], where="model.json config")
    except (ConfigError, KeyError, TypeError) as exc:
        raise ArtifactError(f"model.json has an invalid config ({exc})") from None
    return config.forecast.days if len(meta["features"]) == 1 else config.model.horizon


def _fail(path: Path, field: str, problem: str):
    FieldCheck(path, ArtifactError, "it was edited or not written by marketcast: use an "
               "untouched run folder or run again").fail(field, problem)
