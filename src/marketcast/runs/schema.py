"""The schema of a saved model: what ``model.json`` must hold, checked before anything uses it.

A manifest catches accidents, not edits: whoever edits a folder can recompute it. So every
field of ``model.json`` is checked on load for its type, its range and its agreement with the
other fields and with the weights' shapes, and a violation is one :class:`ArtifactError`
naming the file and the field. Torch-free: any forecast path can call
:func:`validate_model_spec` with the weights' shapes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping

import numpy as np

from marketcast.config import TARGET_TRANSFORMS, Config
from marketcast.errors import ArtifactError, ConfigError, FieldCheck, shown

# Keys of a model.json: the shared ones, and those each ticker of a global model has.
TOP_KEYS = {"format_version", "model", "train", "transform", "best_epoch", "context_y",
            "context_X", "config", "features", "context_dates", "data_sha256", "data_rows",
            "versions", "kind", "tickers", "fan"}
TICKER_KEYS = {"transform", "context_y", "context_X", "context_dates", "data_sha256"}
FAN_KEYS = {"method", "level", "volatility"}
FAN_METHODS = ("conformal", "scaled", "aci")
TRANSFORM_KEYS = {"lookback", "horizon", "target_transform", "n_features", "scaler"}
# Scaler bounds and context values beyond this are no data marketcast reads (MAX_PRICE).
LARGEST = 1e50
SHA256 = re.compile(r"[0-9a-f]{64}")


class _Fields(FieldCheck):
    """Checks of the fields of one file of a run folder."""

    def __init__(self, where: str):
        super().__init__(where, ArtifactError, "it was edited or not written by marketcast: "
                         "use an untouched run folder or retrain")

    def integer(self, value, field: str, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(field, f"is {shown(value)}, not a whole number from {low} to {high}")
        return value

    def numbers(self, value, field: str, length: int | None, positive: bool = False,
                low: float = -LARGEST) -> np.ndarray:
        if not isinstance(value, list) or (length is not None and len(value) != length):
            self.fail(field, f"must be a list of {length if length is not None else ''} "
                      "numbers".replace("  ", " "))
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            self.fail(field, "holds a value that is not a number")
        if any(isinstance(v, int) and abs(v) > LARGEST for v in value):  # no float holds 1e400
            self.fail(field, f"holds a value that is not finite or beyond {LARGEST:.0e}")
        array = np.asarray(value, dtype=np.float64)
        if not np.isfinite(array).all() or (array.size and (array.max() > LARGEST
                                                            or array.min() < low)):
            self.fail(field, f"holds a value that is not finite or beyond {LARGEST:.0e}")
        if positive and array.size and array.min() <= 0:
            self.fail(field, "holds a value that is not positive")
        return array


def validate_model_spec(meta: object, shapes: Mapping[str, tuple[int, ...]],
                        where: str = "model.json") -> dict:
    """Check a ``model.json`` (one series' or a global model's) against its weights' shapes
    (``{name: shape}``); return it. Raises :class:`ArtifactError` naming the field."""
    check = _Fields(where)
    meta = check.table(meta, "the file", TOP_KEYS, {"format_version", "model", "train",
                                                     "best_epoch", "config", "features"})
    config = _config(check, meta)
    m = config.model
    check.integer(meta["best_epoch"], "best_epoch", 0, config.train.max_epochs)
    features = meta["features"]
    if (not isinstance(features, list) or not features
            or not all(isinstance(f, str) for f in features)):
        check.fail("features", "must be a non-empty list of column names")
    if "tickers" in meta:
        tickers = meta["tickers"]
        if not isinstance(tickers, dict) or not tickers:
            check.fail("tickers", "must be a non-empty table of tickers")
        for ticker, one in tickers.items():
            field = f"tickers.{shown(ticker)}"
            check.table(one, field, TICKER_KEYS | {"fan"}, TICKER_KEYS)
            _context(check, one, m, len(features), f"{field}.")
            _fan(check, one, f"{field}.")
    else:
        _context(check, meta, m, len(features), "")
        _fan(check, meta, "")
    _shapes(check, shapes, len(features), m.units, m.layers, m.horizon)
    return meta


def _fan(check: _Fields, meta: dict, prefix: str) -> None:
    """How the forecast fan is drawn (:func:`marketcast.pipeline.series.fan_settings`)."""
    if "fan" not in meta:
        return
    field = f"{prefix}fan"
    fan = check.table(meta["fan"], field, FAN_KEYS, FAN_KEYS)
    if fan["method"] not in FAN_METHODS:
        check.fail(f"{field}.method", f"is {shown(fan['method'])}, not one of "
                   f"{', '.join(FAN_METHODS)}")
    level = check.numbers([fan["level"]], f"{field}.level", 1)[0]
    if not 0 < level < 1:
        check.fail(f"{field}.level", f"is {level}, not between 0 and 1")
    if fan["method"] == "conformal":
        if fan["volatility"] is not None:
            check.fail(f"{field}.volatility", "must be null for conformal intervals")
    else:
        check.numbers([fan["volatility"]], f"{field}.volatility", 1, positive=True)


# The top-level fields of a metrics.json, of any kind of folder, and their JSON types.
METRICS_TYPES = {
    "data": dict, "data_sha256": str, "split": dict, "best_epoch": int, "epochs_run": int,
    "wall_seconds": int | float, "environment": dict, "metrics": list,
    "metrics_by_step": list, "comparisons": list, "verdict": list | str,
    "strategy": dict | None, "kind": str, "tickers": int | list | dict,
}


def validate_metrics(metrics: object, where: str) -> dict:
    """Check the types of the fields of a ``metrics.json`` the report reads; return it."""
    check = _Fields(where)
    if not isinstance(metrics, dict):
        check.fail("the file", "must be a table of fields")
    for key, kind in METRICS_TYPES.items():
        if key in metrics and not isinstance(metrics[key], kind) or (
                kind is int and isinstance(metrics.get(key), bool)):
            check.fail(key, f"is {shown(metrics[key], 40)}, of the wrong type")
    for key in ("metrics", "metrics_by_step", "comparisons"):
        if not all(isinstance(row, dict) for row in metrics.get(key, [])):
            check.fail(key, "must be a list of tables")
    field = _huge_integer(metrics)
    if field is not None:
        check.fail(field, f"is a whole number beyond {LARGEST:.0e}")
    return metrics


def _huge_integer(value: object) -> str | None:
    """The first field (``a.b[0].c``) holding an integer no float can stand for (JSON has
    no limit: ``1e400`` written as digits), or None. Iterative: nesting depth is the file's."""
    stack = [("", value)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{path}.{k if k.isidentifier() else shown(k, 40)}".lstrip("."), v)
                      for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST:
            return path
    return None


def check_finite_weights(arrays: Mapping[str, object], where: str) -> None:
    """Every weight a finite number (NaN weights forecast NaN)."""
    for name, values in arrays.items():
        if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            _Fields(where).fail(name, "holds a weight that is not finite")


def _config(check: _Fields, meta: dict):
    """The run's settings, in agreement with the model and training settings saved beside."""
    try:
        config = Config.from_dict(meta["config"], where="config")
        saved = Config.from_dict({"model": meta["model"], "train": meta["train"]},
                                 where="model")
    except ConfigError as exc:
        check.fail("config", f"is invalid ({str(exc).split('; fix the')[0]})")
    # The model's own train section does not say where it trained (Ray Train workers).
    train = dataclasses.replace(saved.train, workers=config.train.workers)
    for section, mine in (("model", saved.model), ("train", train)):
        if mine != getattr(config, section):
            check.fail(section, "differs from the same section of config")
    return config


def _context(check: _Fields, meta: dict, m, n_features: int, prefix: str) -> None:
    """The scaler and the last days a forecast starts from, of one series."""
    transform = check.table(meta.get("transform"), f"{prefix}transform", TRANSFORM_KEYS,
                            TRANSFORM_KEYS)
    for key in ("lookback", "horizon", "target_transform"):
        if transform[key] != getattr(m, key):
            check.fail(f"{prefix}transform.{key}", f"is {shown(transform[key])}, but the "
                       f"model's is {getattr(m, key)!r}")
    if transform["target_transform"] not in TARGET_TRANSFORMS:
        check.fail(f"{prefix}transform.target_transform", "is unknown")
    check.integer(transform["n_features"], f"{prefix}transform.n_features", n_features,
                  n_features)
    scaler = check.table(transform["scaler"], f"{prefix}transform.scaler", {"min", "range"},
                         {"min", "range"})
    check.numbers(scaler["min"], f"{prefix}transform.scaler.min", n_features)
    check.numbers(scaler["range"], f"{prefix}transform.scaler.range", n_features,
                  positive=True)
    if "data_sha256" in meta and not (isinstance(meta["data_sha256"], str)
                                      and SHA256.fullmatch(meta["data_sha256"])):
        check.fail(f"{prefix}data_sha256", "is not a sha256 in hex")
    offset = 1 if m.target_transform == "log_return" else 0
    y = meta.get("context_y")
    if not isinstance(y, list) or len(y) < m.lookback + offset:
        check.fail(f"{prefix}context_y", f"must hold at least {m.lookback + offset} prices "
                   f"(lookback {m.lookback})")
    check.numbers(y, f"{prefix}context_y", None, positive=True)
    X = meta.get("context_X")
    if (X is None) != (n_features == 1):
        check.fail(f"{prefix}context_X", f"does not match {n_features} features")
    if X is not None:
        if not isinstance(X, list) or len(X) != len(y):
            check.fail(f"{prefix}context_X", f"must hold {len(y)} rows, one per price")
        for row in X:
            check.numbers(row, f"{prefix}context_X", n_features - 1)
    dates = meta.get("context_dates")
    if not isinstance(dates, list) or len(dates) != len(y):
        check.fail(f"{prefix}context_dates", f"must hold {len(y)} dates, one per price")
    try:
        days = [dt.date.fromisoformat(d) for d in dates]
    except (TypeError, ValueError):
        check.fail(f"{prefix}context_dates", "holds a value that is not a YYYY-MM-DD date")
    if any(b <= a for a, b in zip(days, days[1:], strict=False)):
        check.fail(f"{prefix}context_dates", "are not increasing")
    if "data_rows" in meta:
        check.integer(meta["data_rows"], f"{prefix}data_rows", len(y), 10**9)


def _shapes(check: _Fields, shapes: Mapping[str, tuple[int, ...]], n_features: int,
            units: int, layers: int, horizon: int) -> None:
    """The weights the settings imply, by name and shape: nothing more, nothing less."""
    expected = {"head.weight": (horizon, units), "head.bias": (horizon,)}
    for k in range(layers):
        expected |= {f"lstm.weight_ih_l{k}": (4 * units, n_features if k == 0 else units),
                     f"lstm.weight_hh_l{k}": (4 * units, units),
                     f"lstm.bias_ih_l{k}": (4 * units,), f"lstm.bias_hh_l{k}": (4 * units,)}
    got = {name: tuple(shape) for name, shape in shapes.items()}
    for name in sorted(expected.keys() | got.keys()):
        if got.get(name) != expected.get(name):
            what = "is missing" if name not in got else "is not expected" \
                if name not in expected else f"has shape {got[name]}, not {expected[name]}"
            check.fail(f"weights: {name}", f"{what} for the model's settings")


def finite_or_fail(values, what: str) -> None:
    """A forecast or score that came out NaN or infinite is an error, never a result."""
    array = np.asarray(values, dtype=np.float64)
    if array.size and not np.isfinite(array).all():
        raise ArtifactError(f"{what} came out NaN or infinite: the saved model cannot "
                            "forecast these prices; retrain it")
