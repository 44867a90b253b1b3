"""Shared fixtures: small synthetic price files and a fast configuration."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from marketcast.calendar import nyse_sessions
from marketcast.config import Config, ModelConfig, OutputConfig, TrainConfig

# One thread per xdist worker: two workers share two cores.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Files for people to look at after a test run (screenshots); gitignored.
TEST_OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session):
    session.config.stash[_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter, config):
    """Name the screenshots this run wrote (xdist swallows the tests' own prints)."""
    started = config.stash.get(_STARTED, time.time())
    fresh = [p for p in sorted(TEST_OUTPUT.glob("*.png")) if p.stat().st_mtime >= started]
    if fresh:
        terminalreporter.write_sep("-", "screenshots to look at")
        for path in fresh:
            terminalreporter.write_line(str(path))


def synthetic_prices(n: int = 320, seed: int = 0, start: str = "2015-01-02") -> pd.DataFrame:
    """Yahoo-layout frame of a geometric random walk on NYSE trading days."""
    rng = np.random.default_rng(seed)
    dates = nyse_sessions(pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=3 * n))
    dates = dates[:n]
    close = 100 * np.exp(np.cumsum(0.0004 + 0.01 * rng.standard_normal(n)))
    open_ = close * np.exp(0.002 * rng.standard_normal(n))
    return pd.DataFrame({
        "Date": dates.strftime("%Y-%m-%d"),
        "Open": open_,
        "High": np.maximum(open_, close) * 1.004,
        "Low": np.minimum(open_, close) * 0.996,
        "Close": close,
        "Adj Close": close,
        "Volume": rng.integers(1_000_000, 2_000_000, n),
    })


@pytest.fixture
def prices_csv(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    synthetic_prices().to_csv(path, index=False)
    return path


def small_config(source: Path | str, runs_dir: Path, **model) -> Config:
    """A configuration that trains in a second or two."""
    return Config(
        data=dataclasses.replace(Config().data, source=str(source)),
        model=ModelConfig(**{"lookback": 10, "layers": 2, "units": 8, **model}),
        train=TrainConfig(max_epochs=4, batch_size=32, patience=2),
        output=OutputConfig(runs_dir=str(runs_dir)),
    )


@pytest.fixture
def config(prices_csv: Path, tmp_path: Path) -> Config:
    return small_config(prices_csv, tmp_path / "runs")


def assert_same_run(a, b):
    """Bit for bit: weights, test forecasts, future forecast, metrics and losses."""
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    for name in ("test_forecasts.csv", "predictions.csv", "forecast.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name
    metrics_a, metrics_b = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    for m in (metrics_a, metrics_b):  # when and how long: the only fields that may differ
        del m["wall_seconds"]
        m.get("environment", {}).pop("created", None)
    assert metrics_a == metrics_b
    losses_a, losses_b = ([line.rsplit(",", 1)[0] for line in (p / "loss_history.csv")
                           .read_text().splitlines()] for p in (a, b))  # all but seconds
    assert losses_a == losses_b


def long_prices(tickers=("AAA", "BBB", "CCC"), n: int = 200) -> pd.DataFrame:
    """A long multi-ticker frame (date, open, high, low, close, volume, Name) like the
    all_stocks_5yr file: one synthetic random walk per ticker, seeds 0, 1, 2, ..."""
    frames = []
    for seed, ticker in enumerate(tickers):
        one = synthetic_prices(n, seed=seed)
        frames.append(pd.DataFrame({
            "date": one["Date"], "open": one["Open"], "high": one["High"], "low": one["Low"],
            "close": one["Close"], "volume": one["Volume"], "Name": ticker,
        }))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def long_csv(tmp_path: Path) -> Path:
    """Three tickers of 200 days and one (SHORT) of 12: too short for any split."""
    path = tmp_path / "long.csv"
    frame = pd.concat([long_prices(), long_prices(("SHORT",), n=12)], ignore_index=True)
    frame.to_csv(path, index=False)
    return path
