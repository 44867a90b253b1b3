"""Ray runs: batch jobs and Ray Tune, against one local Ray (2 CPUs) for the module."""

import dataclasses

import pandas as pd
import pytest
from test_cli import cli
from test_tune import TINY, TINY_FLAGS

from marketcast.config import load_config
from marketcast.runs.folder import verify_folder
from marketcast.scale.batch import batch
from marketcast.scale.distributed import start_local
from marketcast.scale.study import study

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    start_local(ray, num_cpus=2)  # what `marketcast batch` and `tune` start
    yield
    ray.shutdown()


def test_a_local_ray_listens_on_loopback_only():
    psutil = pytest.importorskip("psutil")
    ray.get([ray.remote(lambda: 1).remote() for _ in range(2)])  # workers up too
    me = psutil.Process()
    tree = {p.pid for p in [me, *me.children(recursive=True)]}
    listening = [(c.laddr.ip, psutil.Process(c.pid).name())
                 for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in tree]
    names = {name for _, name in listening}
    assert {"gcs_server", "raylet"} <= names  # Ray's servers were found
    assert [(ip, name) for ip, name in listening
            if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")] == []


def test_batch_reports_a_broken_ticker_and_finishes_the_others(capsys, long_csv, tmp_path):
    runs, table_path = tmp_path / "runs", tmp_path / "batch.csv"
    code, out, err = cli(capsys, "batch", "--tickers", "AAA,NOPE,BBB", "--output",
                         str(table_path), "--", "run", "--data", str(long_csv), "--runs-dir",
                         str(runs), "--name", "b", "--lookback", "10", "--layers", "1",
                         "--units", "4", "--epochs", "2", "--days", "3")
    assert code == 1
    assert "error: 1 of 3 tickers failed (NOPE); see the table above" in err
    assert "failed: NOPE: ticker 'NOPE' not in" in out
    table = pd.read_csv(table_path)
    assert table["ticker"].tolist() == ["AAA", "NOPE", "BBB"]
    assert table["status"].tolist() == ["ok", "error", "ok"]
    ok = table[table["status"] == "ok"]
    pd.testing.assert_series_equal(ok["theils_u_lstm"], ok["rmse_lstm"] / ok["rmse_naive"],
                                   check_names=False)
    assert (runs / "b-AAA" / "forecast.csv").is_file() and (runs / "b-BBB").is_dir()
    # Beside the DM p-value, its adjustment across the tickers that have one (NOPE has none).
    columns = list(table.columns)
    assert columns[columns.index("dm_p_lstm") + 1] == "dm_p_adjusted_lstm"
    assert table["dm_p_adjusted_lstm"].isna().tolist() == [False, True, False]
    assert (ok["dm_p_adjusted_lstm"] >= ok["dm_p_lstm"]).all()
    assert not (runs / "b-NOPE").exists()


def test_batch_backtest_jobs(long_csv, tmp_path, config):
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(long_csv)),
        backtest=dataclasses.replace(config.backtest, models=("naive", "drift"), n_windows=20,
                                     refit_every=0))
    done = []
    result = batch(config, ["CCC", "SHORT"], "backtest",
                   on_done=lambda d, n, row: done.append((d, n)))
    assert sorted(done) == [(1, 2), (2, 2)]
    ccc, short = result.table.to_dict(orient="records")
    assert ccc["status"] == "ok" and ccc["rmse_naive"] > 0 and ccc["theils_u_drift"] > 0
    assert short["status"] == "error" and "rows for the first fit" in short["error"]


def test_batch_jobs_read_the_rows_the_driver_put_in_the_object_store(
        long_csv, tmp_path, config, monkeypatch):
    from marketcast.data import sources

    reads = []

    def read_then_remove(*args, **kwargs):
        reads.append(args)
        result = read_many(*args, **kwargs)
        long_csv.unlink()  # no job can read the file again
        return result

    read_many = sources.read_many
    monkeypatch.setattr(sources, "read_many", read_then_remove)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(long_csv)),
        backtest=dataclasses.replace(config.backtest, models=("naive",), n_windows=10,
                                     refit_every=0))
    result = batch(config, ["AAA", "bbb", "CCC"], "backtest")
    assert len(reads) == 1 and not long_csv.exists()
    table = result.table
    assert table["ticker"].tolist() == ["AAA", "bbb", "CCC"]
    assert table["status"].tolist() == ["ok"] * 3, table["error"].tolist()
    assert (table["rmse_naive"] > 0).all()


def test_tune_on_ray_tune(capsys, prices_csv, tmp_path):
    best = tmp_path / "best.toml"
    code, out, _ = cli(capsys, "tune", "--data", str(prices_csv), "--backend", "ray",
                       "--trials", "3", "--output", str(best), "--runs-dir",
                       str(tmp_path / "runs"), "--name", "t", *TINY_FLAGS)
    assert code == 0, out
    assert "3 trials (ray)" in out and "Configuration for experiment" not in out
    loaded = load_config(best)
    assert TINY.lookback[0] <= loaded.model.lookback <= TINY.lookback[1]
    assert loaded.train.batch_size in TINY.batch_sizes
    assert loaded.data.source == str(prices_csv)
    # The same folder as with Optuna in this process: every trial's epochs, and the best.
    folder = tmp_path / "runs" / "t"
    assert load_config(folder / "best_config.toml") == loaded
    epochs = pd.read_csv(folder / "trials.csv")
    assert sorted(epochs["trial"].unique()) == [0, 1, 2]
    assert set(epochs["state"]) <= {"COMPLETE", "PRUNED"}
    for _, rows in epochs.groupby("trial"):
        assert rows["epoch"].tolist() == list(range(1, len(rows) + 1))
        assert (rows["val_theils_u"] > 0).all()
    done = epochs[epochs["state"] == "COMPLETE"]
    best_trial = done.loc[done["val_loss"].idxmin()]
    assert loaded.model.lookback == best_trial["lookback"]
    assert "report.html" in verify_folder(folder)


def test_study_on_ray_equals_the_study_here(config, tmp_path):
    grid = {"batch_size": (16, 32)}
    small = dataclasses.replace(config, model=dataclasses.replace(config.model, units=4,
                                                                  layers=1))
    here = study(small, (1, 2), grid)
    done = []
    on_ray = study(small, (1, 2), grid, backend="ray", on_done=lambda d, n: done.append(d))
    assert sorted(done) == [2, 4]  # epochs trained, after each training
    scores = ["val_loss", "val_rmse", "val_theils_u"]
    pd.testing.assert_frame_equal(here.table[scores], on_ray.table[scores])
    assert on_ray.best_config == here.best_config
