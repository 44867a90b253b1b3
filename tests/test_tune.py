import dataclasses
import sys

import pandas as pd
import pytest
from conftest import small_config, synthetic_prices
from test_cli import assert_one_line_error, cli

from marketcast.config import load_config
from marketcast.errors import ConfigError
from marketcast.scale import tune as tune_module
from marketcast.scale.tune import SearchSpace, tune, validation_data

# Small enough that a trial takes well under a second.
TINY = SearchSpace(lookback=(5, 10), layers=(1, 2), units=(2, 6), dropout=(0.0, 0.2),
                   batch_sizes=(32, 64), learning_rate=(1e-3, 1e-2), max_epochs=(2, 3))
TINY_FLAGS = ["--lookback-range", "5,10", "--layers-range", "1,2", "--units-range", "2,6",
              "--dropout-range", "0,0.2", "--batch-sizes", "32,64",
              "--learning-rate-range", "0.001,0.01", "--epochs-range", "2,3"]


def test_tune_writes_the_best_config_run_accepts(config, tmp_path):
    result = tune(config, n_trials=4, space=TINY, output=tmp_path / "best.toml")
    assert result.config_path == tmp_path / "best.toml"
    loaded = load_config(result.path / "best_config.toml")
    assert load_config(result.config_path) == loaded
    assert loaded == result.best_config
    assert loaded.data == config.data and loaded.split == config.split
    assert 5 <= loaded.model.lookback <= 10 and 2 <= loaded.model.units <= 6
    assert loaded.train.batch_size in (32, 64) and 2 <= loaded.train.max_epochs <= 3
    assert len(result.trials) == 4
    assert set(result.trials["state"]) <= {"COMPLETE", "PRUNED"}
    done = result.trials[result.trials["state"] == "COMPLETE"]
    assert result.best_value == pytest.approx(done["value"].min())
    best_row = done.loc[done["value"].idxmin()]
    assert best_row["lookback"] == loaded.model.lookback


def test_trials_see_only_the_rows_before_the_test_period(config, tmp_path, monkeypatch):
    seen, split = validation_data(config)
    assert split.n_test == 48 and len(seen.y) == split.test_start == 272
    lengths = []
    original = tune_module.fit_trial

    def spy(seen, split, config, report):
        lengths.append(len(seen.y))
        return original(seen, split, config, report)

    monkeypatch.setattr(tune_module, "fit_trial", spy)
    tune(config, n_trials=2, space=TINY, output=tmp_path / "best.toml")
    assert lengths == [272, 272]


def test_tune_is_blind_to_the_test_period(tmp_path):
    frame = synthetic_prices()
    clean, dirty = tmp_path / "clean.csv", tmp_path / "dirty.csv"
    frame.to_csv(clean, index=False)
    test_rows = frame.index[272:]
    frame.loc[test_rows, ["Close", "Adj Close"]] *= 10.0
    frame.to_csv(dirty, index=False)
    a = tune(small_config(clean, tmp_path), 3, TINY, output=tmp_path / "a.toml")
    b = tune(small_config(dirty, tmp_path), 3, TINY, output=tmp_path / "b.toml")
    pd.testing.assert_series_equal(a.trials["value"], b.trials["value"])
    assert a.best_config.model == b.best_config.model
    # Changing a validation row does change the objective (so the test can fail).
    frame = synthetic_prices()
    frame.loc[frame.index[250:260], ["Close", "Adj Close"]] *= 1.2
    frame.to_csv(dirty, index=False)
    c = tune(small_config(dirty, tmp_path), 3, TINY, output=tmp_path / "c.toml")
    assert not a.trials["value"].equals(c.trials["value"])


def test_tune_rejects_a_lookback_longer_than_training(config, tmp_path):
    space = dataclasses.replace(TINY, lookback=(5, 500))
    with pytest.raises(ConfigError, match="largest lookback searched"):
        tune(config, 2, space, output=tmp_path / "best.toml")
    assert not (tmp_path / "best.toml").exists()


def test_tune_command_and_run_config(capsys, prices_csv, tmp_path):
    best = tmp_path / "best.toml"
    code, out, _ = cli(capsys, "tune", "--data", str(prices_csv), "--trials", "2",
                       "--output", str(best), "--runs-dir", str(tmp_path / "runs"),
                       *TINY_FLAGS)
    assert code == 0, out
    assert "2 trials (optuna)" in out and f"best configuration: {best}" in out
    code, out, _ = cli(capsys, "run", "--config", str(best), "--runs-dir",
                       str(tmp_path / "runs"), "--name", "tuned", "--days", "3")
    assert code == 0 and "verdict: LSTM RMSE" in out
    saved = load_config(tmp_path / "runs" / "tuned" / "config.toml")
    assert saved.model == load_config(best).model


def test_tune_command_rejects_a_bad_range(capsys, prices_csv, tmp_path):
    code, _, err = cli(capsys, "tune", "--data", str(prices_csv), "--units-range", "8",
                       "--output", str(tmp_path / "best.toml"))
    assert_one_line_error(code, err, "--units-range '8': expected MIN,MAX")
    assert not (tmp_path / "best.toml").exists()


def test_ray_commands_without_ray_say_how_to_install(capsys, prices_csv, tmp_path,
                                                      monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code, _, err = cli(capsys, "batch", "--tickers", "A,B", "--", "run", "--data",
                       str(prices_csv))
    assert_one_line_error(code, err, 'pip install "marketcast[ray]"')
    code, _, err = cli(capsys, "tune", "--data", str(prices_csv), "--backend", "ray",
                       "--trials", "1", "--output", str(tmp_path / "b.toml"), *TINY_FLAGS)
    assert_one_line_error(code, err, 'pip install "marketcast[ray]"')
    assert not (tmp_path / "b.toml").exists()
