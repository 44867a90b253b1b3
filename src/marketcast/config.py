"""Typed, frozen run configuration.

Precedence: defaults < TOML config file < command-line flags. Unknown keys are errors. The
resolved configuration is saved as ``config.toml`` beside every run's outputs, and
``marketcast run --config that/config.toml`` repeats the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from marketcast.errors import SHOWN, ConfigError, shown

log = logging.getLogger("marketcast")

TARGET_TRANSFORMS = ("level", "log_return")
LR_SCALINGS = ("none", "sqrt", "linear")  # see TrainConfig.lr_scaling
# A run name is one folder name on every platform: bounded, printable, no separators.
NAME_LIMIT = 100
NOT_IN_NAMES = re.compile(r'[/\\<>:"|?*]')
# Largest value of each integer setting: beyond, a run would not end or fit in memory.
LIMITS = {
    ("model", "lookback"): 10_000, ("model", "horizon"): 1_000, ("model", "layers"): 16,
    ("model", "units"): 4_096, ("train", "batch_size"): 1_000_000,
    ("train", "max_epochs"): 100_000, ("train", "patience"): 100_000,
    ("train", "seed"): 2**32 - 1, ("train", "warmup_steps"): 10_000_000,
    ("forecast", "days"): 10_000, ("backtest", "n_windows"): 1_000_000,
    ("backtest", "stride"): 100_000, ("backtest", "train_size"): 100_000_000,
    ("backtest", "refit_every"): 1_000_000, ("backtest", "workers"): 1_024,
}
MAX_CONFIG_BYTES = 1_000_000
# LSTM weights trained at most: four float32 copies (Adam's two moments, best weights) are 320 MB.
MAX_WEIGHTS = 20_000_000
FILL_POLICIES = ("none", "ffill", "drop")
STRATEGY_RULES = ("long_flat", "long_short", "both")


@dataclass(frozen=True)
class DataConfig:
    # Built-in name ("sp500": S&P 500 index 1999-2018, shipped by `arch`) or a CSV path.
    source: str = "sp500"
    # Which ticker to keep from a multi-ticker (long) file; required when it holds several.
    ticker: str | None = None
    # Global model: "all" or a list of tickers of a long file, pooled into one LSTM;
    # empty for the single-series run.
    tickers: tuple[str, ...] = ()
    # First and last date kept (inclusive). None: sp500 starts 2010-01-01, files at their start.
    start: str | None = None
    end: str | None = None
    # Date column of a CSV; None: found by name (date, timestamp, datetime, time, day).
    date_column: str | None = None
    # Column forecast, after lower-casing ("Adj Close" is adj_close).
    target: str = "close"
    # Extra model inputs: columns or derived features (rsi14, volume, ...). The target is
    # always the first input, listed here or not; empty: the target alone.
    features: tuple[str, ...] = ()
    # Missing or non-positive target values: "none" is an error, "ffill" carries the last
    # good value forward, "drop" removes those days.
    fill: str = "none"


@dataclass(frozen=True)
class SplitConfig:
    # Chronological shares of the days: train is what remains (70% by default).
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Explicit first days of validation and test (ISO dates); override the fractions.
    val_start: str | None = None
    test_start: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    # Past trading days per input window. 60 had the best mean validation RMSE over 5 seeds,
    # narrowly ahead of 20 and 100 (benchmarks/README.md).
    lookback: int = 60
    # Days forecast at once (direct); longer forecasts recurse on h = 1.
    horizon: int = 1
    layers: int = 3
    units: int = 50
    dropout: float = 0.2
    # "log_return": forecast daily log returns, stationary, so MinMax bounds fitted on
    # training rows still hold in the test period. "level": forecast the scaled price
    # itself, as the classic notebook does; test prices above the training range then sit
    # outside [0, 1] and the forecasts lag.
    target_transform: str = "log_return"


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    # Upper bound; early stopping on validation loss usually ends sooner.
    max_epochs: int = 100
    learning_rate: float = 1e-3
    # Epochs without validation improvement before stopping (best weights are restored).
    patience: int = 10
    # Gradient-norm clipping: LSTMs on price data spike without it.
    clip_norm: float = 1.0
    seed: int = 0
    # Large batches: learning_rate times sqrt(batch_size / 64) ("sqrt", the square-root rule
    # for Adam), batch_size / 64 ("linear") or 1 ("none"), reached linearly over the first
    # warmup_steps optimizer steps (0: at once).
    lr_scaling: str = "none"
    warmup_steps: int = 0
    # Data-parallel training of the global model on Ray Train: 0 trains in this process;
    # N >= 1 trains on N Ray workers (N = 1 gives the weights of this process).
    workers: int = 0


@dataclass(frozen=True)
class ForecastConfig:
    # Trading days forecast after the last date, on the NYSE calendar.
    days: int = 30
    # Nominal coverage of the conformal prediction interval; 0 turns intervals off.
    interval: float = 0.9


@dataclass(frozen=True)
class BacktestConfig:
    # Forecast cutoffs, the last one h days before the end of the data.
    n_windows: int = 250
    # Trading days between consecutive cutoffs ("step" is only ever a step ahead).
    stride: int = 1
    # Training rows per fit: None expands from the first day; a number keeps a fixed window.
    train_size: int | None = None
    # Refit every k cutoffs (a fresh model and scaler each time, unless refit is warm); 0 fits
    # once, at the first. 25 gives 10 fits over the default 250 cutoffs.
    refit_every: int = 25
    # The LSTM's refits after the first: "cold" (fresh weights and scaler, up to
    # train.max_epochs; the default, see benchmarks/README.md section 8) or "warm" (the
    # previous fold's, up to warm_epochs with patience warm_patience). Others refit cold.
    refit: str = "cold"
    warm_epochs: int = 10
    warm_patience: int = 3
    # Models compared; all registered models by default.
    models: tuple[str, ...] = ("lstm", "naive", "drift", "linear", "arima")
    # Processes fitting folds at once, each with one torch thread; 0: one per CPU core, 1: no
    # worker processes. The folds are independent, so this changes no result, only the time.
    workers: int = 0
    # Interval calibration: "conformal" (residuals as they are), "scaled" (residuals over
    # the EWMA volatility known at each cutoff, so bands follow volatility), "aci" (scaled,
    # with the miss level adapted online) or "auto": the one of the three with the lowest
    # interval score on the first third of the cutoffs, scored on the rest (no habit).
    # `run` uses it too, for its test-period intervals and its forecast fan.
    interval_method: str = "auto"


@dataclass(frozen=True)
class StrategyConfig:
    # Trading rule scored on the one-day-ahead forecasts: "long_flat" (long or in cash),
    # "long_short" (long or short) or "both". Both by default: a forecast can be worth
    # something long-only and not long-short, or the other way round.
    rule: str = "both"
    # Forecast return (a fraction: 0.001 is 0.1%) the next day's forecast must exceed to go
    # long, or fall below minus it to go short. 0 trades on the forecast's sign alone.
    threshold: float = 0.0
    # Trading cost in basis points per unit of turnover (a long-flat-long round trip is two
    # units): 5 bps is roughly the spread and fees of trading a liquid index fund.
    cost_bps: float = 5.0


@dataclass(frozen=True)
class OutputConfig:
    runs_dir: str = "runs"
    # Run folder name; None: a timestamp plus the data source.
    name: str | None = None


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        _check_ranges(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> Config:
        """Build from nested ``{section: {key: value}}``; unknown keys and bad types raise."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table of sections, got {type(raw).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, values in raw.items():
            if name not in sections:
                raise ConfigError(
                    f"{where}: unknown section [{name}]; known sections: {', '.join(sections)}"
                )
            if not isinstance(values, dict):
                raise ConfigError(f"{where}: [{name}] must be a table of settings")
            section_cls = sections[name].default_factory
            values = _renamed(name, values, where)
            kwargs[name] = _build_section(section_cls, values, f"{where}: [{name}]")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict, None values left out (TOML has no null)."""
        out = {}
        for f in dataclasses.fields(self):
            section = dataclasses.asdict(getattr(self, f.name))
            out[f.name] = {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in section.items()
                if v is not None
            }
        return out

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """Apply ``{"section.key": value}`` overrides (from command-line flags)."""
        raw = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, key = dotted.split(".", 1)
            raw.setdefault(section, {})[key] = value
        return Config.from_dict(raw, where="options")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                base: Config | None = None) -> Config:
    """Resolve defaults (or ``base``) < TOML file at ``path`` < ``overrides``."""
    config = base or Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; pass the path of a TOML file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is over {MAX_CONFIG_BYTES // 1000} kB; a "
                              "marketcast config is a few sections of settings")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as exc:
            # ValueError: an integer of thousands of digits
            raise ConfigError(f"config file {path} is not valid TOML: "
                              f"{str(exc)[:SHOWN]}") from None
        except RecursionError:
            raise ConfigError(f"config file {path} nests tables or arrays too deeply; a "
                              "marketcast config has sections of plain settings") from None
        from_file = Config.from_dict(raw, where=str(path))  # unknown keys, types, ranges
        config = from_file if base is None else base.with_overrides(
            {f"{section}.{key}": v for section, values in raw.items() for key, v in values.items()}
        )
    return config.with_overrides(overrides or {})


def check_run_name(name: object, where: str = "--name") -> str:
    """``name`` if it is a plain folder name (one path part, printable, at most
    :data:`NAME_LIMIT` characters, not hidden); else a :class:`ConfigError` naming ``where``.

    Every run name goes through here: flags, config files and saved sessions on resume.
    """
    if (not isinstance(name, str) or not name.strip() or len(name) > NAME_LIMIT
            or not name.isprintable() or NOT_IN_NAMES.search(name) or name.startswith(".")
            or name != name.strip()):
        raise ConfigError(
            f"{where} {shown(name)} must be a plain folder name, like sp500-lstm: at most "
            f"{NAME_LIMIT} printable characters, no / \\ < > : \" | ? *, not starting "
            "with a dot"
        )
    return name


def config_to_toml(config: Config) -> str:
    return tomli_w.dumps(config.to_dict())


# Settings renamed for one vocabulary: (section, old key) -> new key. The old key still works
# for now, with a one-line note.
RENAMED = {("backtest", "step"): "stride"}


def _renamed(section: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` with old setting names replaced by their new ones (noted once each)."""
    out = dict(values)
    for (name, old), new in RENAMED.items():
        if name == section and old in out:
            if new in out:
                raise ConfigError(f"{where}: [{section}] has both {old} and {new}; keep {new}")
            log.warning("[%s] %s is now called %s (%s); the old name will stop working",
                        section, old, new, where)
            out[new] = out.pop(old)
    return out


def _build_section(section_cls: type, values: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(section_cls)
    known = {f.name for f in dataclasses.fields(section_cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; known settings: {', '.join(sorted(known))}"
            )
        kwargs[key] = _coerce(value, hints[key], f"{where} {key}")
    return section_cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a field's type hint; convert only int -> float, list -> tuple."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    if hint is str and isinstance(value, dt.date):  # an unquoted TOML date or date-time
        return value.isoformat()
    generic = typing.get_origin(hint)
    if generic is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of names, got {shown(value)}")
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {shown(value)}")
    return value


def _check_ranges(config: Config) -> None:
    d, s, m, t = config.data, config.split, config.model, config.train
    if config.output.name is not None:
        check_run_name(config.output.name, "--name (output.name)")
    for (section, key), limit in LIMITS.items():
        value = getattr(getattr(config, section), key)
        if value is not None and value > limit:
            raise ConfigError(f"{section}.{key} {shown(value)} is above its limit of {limit}; "
                              "fix the config file or the flag")
    for flag, key, value in (("--start", "data.start", d.start), ("--end", "data.end", d.end),
                             ("--val-start", "split.val_start", s.val_start),
                             ("--test-start", "split.test_start", s.test_start)):
        if not _is_date(value):
            raise ConfigError(f"{flag} ({key}) {shown(value)} is not a date; use YYYY-MM-DD")
    weights = 4 * m.units * (2 * m.units + 2) * m.layers
    if weights > MAX_WEIGHTS:
        raise ConfigError(
            f"model.units {m.units} and model.layers {m.layers} make about {weights:.2g} LSTM "
            f"weights, above the limit of {MAX_WEIGHTS:.0e}; use fewer --units or --layers")
    checks = [
        (d.fill in FILL_POLICIES, f"data.fill must be one of {', '.join(FILL_POLICIES)}"),
        (0 <= s.val_fraction < 1, "split.val_fraction must be in [0, 1)"),
        (0 < s.test_fraction < 1, "split.test_fraction must be in (0, 1)"),
        (s.val_fraction + s.test_fraction < 1, "split fractions must leave days for training"),
        (m.lookback >= 1, "model.lookback must be at least 1"),
        (m.horizon >= 1, "model.horizon must be at least 1"),
        (m.layers >= 1, "model.layers must be at least 1"),
        (m.units >= 1, "model.units must be at least 1"),
        (0 <= m.dropout < 1, "model.dropout must be in [0, 1)"),
        (
            m.target_transform in TARGET_TRANSFORMS,
            f"model.target_transform must be one of {', '.join(TARGET_TRANSFORMS)}",
        ),
        (t.batch_size >= 1, "train.batch_size must be at least 1"),
        (t.max_epochs >= 1, "train.max_epochs must be at least 1"),
        (math.isfinite(t.learning_rate) and t.learning_rate > 0,
         "train.learning_rate must be positive"),
        (t.seed >= 0, "train.seed must be 0 or more"),
        (t.lr_scaling in LR_SCALINGS,
         f"train.lr_scaling must be one of {', '.join(LR_SCALINGS)}"),
        (t.warmup_steps >= 0, "train.warmup_steps must be 0 or more"),
        (t.patience >= 1, "train.patience must be at least 1"),
        (t.workers >= 0, "train.workers (--train-workers) must be 0 (this process) or more"),
        (t.workers == 0 or bool(d.tickers),
         "train.workers (--train-workers) trains the global model; pass --tickers too"),
        (t.clip_norm > 0, "train.clip_norm must be positive"),
        (config.forecast.days >= 1, "forecast.days must be at least 1"),
        (0 <= config.forecast.interval < 1, "forecast.interval must be in [0, 1)"),
        (config.backtest.interval_method in ("auto", "conformal", "scaled", "aci"),
         "backtest.interval_method must be auto, conformal, scaled or aci"),
        (config.backtest.n_windows >= 1, "backtest.n_windows must be at least 1"),
        (config.backtest.refit in ("cold", "warm"), "backtest.refit must be cold or warm"),
        (config.backtest.warm_epochs >= 1, "backtest.warm_epochs must be at least 1"),
        (config.backtest.warm_patience >= 1, "backtest.warm_patience must be at least 1"),
        (config.backtest.stride >= 1, "backtest.stride must be at least 1"),
        (config.backtest.refit_every >= 0, "backtest.refit_every must be 0 or more"),
        (config.backtest.workers >= 0, "backtest.workers must be 0 (one per core) or more"),
        (config.backtest.train_size is None or config.backtest.train_size >= 2,
         "backtest.train_size must be at least 2"),
        (len(config.backtest.models) > 0, "backtest.models must name at least one model"),
        (config.strategy.rule in STRATEGY_RULES,
         f"strategy.rule must be one of {', '.join(STRATEGY_RULES)}"),
        (math.isfinite(config.strategy.threshold) and config.strategy.threshold >= 0,
         "strategy.threshold must be a forecast return of 0 or more (0.001 is 0.1%)"),
        (math.isfinite(config.strategy.cost_bps) and config.strategy.cost_bps >= 0,
         "strategy.cost_bps must be 0 or more basis points per unit of turnover"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{message}; fix the config file or the flag")


def _is_date(value: str | None) -> bool:
    """None, or text that starts with an ISO date (times and offsets may follow)."""
    if value is None:
        return True
    try:
        dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return False
    return True
