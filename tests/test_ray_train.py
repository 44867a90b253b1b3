"""The global model trained data-parallel on Ray Train, against one local Ray (2 CPUs)."""

import contextlib
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import long_prices
from test_cli import cli

from marketcast.config import ModelConfig, TrainConfig
from marketcast.models import LSTMForecaster
from marketcast.nn.checkpoint import CheckpointStore
from marketcast.scale.distributed import start_local
from marketcast.scale.train import ray_trainer

ray = pytest.importorskip("ray")
pytest.importorskip("ray.train")

TINY = ["--lookback", "10", "--layers", "1", "--units", "4", "--days", "3", "--seed", "3"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    start_local(ray, num_cpus=2)
    yield
    ray.shutdown()


LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


@contextlib.contextmanager
def listening_sockets():
    """Collect (address, process name) of every listening socket of this process tree,
    polled twice a second while the block runs."""
    psutil = pytest.importorskip("psutil")
    seen, done = set(), threading.Event()

    def poll():
        me = psutil.Process()
        while not done.is_set():
            tree = {p.pid for p in [me, *me.children(recursive=True)]}
            for c in psutil.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN and c.pid in tree:
                    with contextlib.suppress(psutil.Error):
                        seen.add((c.laddr.ip, psutil.Process(c.pid).name()))
            time.sleep(0.5)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()


def test_two_workers_train_a_global_run_that_loads_and_forecasts(capsys, tmp_path):
    data = tmp_path / "long.csv"
    long_prices(("AAA", "BBB", "CCC", "DDD")).to_csv(data, index=False)
    runs = tmp_path / "runs"
    args = ["run", "--data", str(data), "--tickers", "AAA,BBB,CCC,DDD", "--runs-dir", str(runs),
            "--epochs", "2", "--learning-rate", "0.01", *TINY]
    with listening_sockets() as sockets:
        code, out, err = cli(capsys, *args, "--train-workers", "2", "--name", "ray")
    assert code == 0, err
    # The workers' process group (gloo) listens too, on loopback like every Ray server.
    assert any(name.startswith("ray::RayTrainWo") for _, name in sockets)
    assert [(ip, name) for ip, name in sockets if ip not in LOOPBACK] == []
    code, _, err = cli(capsys, *args, "--name", "one")  # the same run in this process
    assert code == 0, err
    ray_run, one_run = runs / "ray", runs / "one"
    assert sorted(p.name for p in ray_run.iterdir()) == sorted(p.name for p in one_run.iterdir())
    assert not (runs / ".checkpoints").exists()  # Ray Train's storage went with the run
    history = pd.read_csv(ray_run / "loss_history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert np.isfinite(history["train_loss"]).all() and np.isfinite(history["val_loss"]).all()
    assert history["train_loss"][1] < history["train_loss"][0]
    assert json.loads((ray_run / "metrics.json").read_text())["train_workers"] == 2
    assert "workers = 2" in (ray_run / "config.toml").read_text()
    code, out, err = cli(capsys, "evaluate", "--run", str(ray_run))
    assert code == 0, err
    assert "global model, test period per ticker" in out and "(4)" in out
    assert all(t in out for t in ("AAA", "BBB", "CCC", "DDD"))
    code, out, err = cli(capsys, "forecast", "--run", str(ray_run), "--ticker", "CCC")
    assert code == 0, err
    forecast = pd.read_csv(pd.io.common.StringIO(out))
    assert len(forecast) == 3 and forecast["lstm"].gt(0).all()


def series():
    frame = long_prices(("AAA", "BBB", "CCC"), n=160)
    return [(group["close"].to_numpy(), None, 25) for _, group in frame.groupby("Name")]


def test_one_worker_gives_the_weights_of_one_process():
    # Two layers with dropout: the masks come from the generator the driver hands over.
    lstm = LSTMForecaster.from_config(ModelConfig(lookback=8, layers=2, units=4, dropout=0.2),
                          TrainConfig(max_epochs=2, batch_size=16, seed=5))
    here = lstm.fit_many(series())[0]
    on_ray = lstm.fit_many(series(), trainer=ray_trainer(1))[0]
    assert [(e.train_loss, e.val_loss) for e in on_ray.history_] == \
        [(e.train_loss, e.val_loss) for e in here.history_]
    weights = here.net_.state_dict()
    for name, value in on_ray.net_.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_a_stopped_two_worker_run_resumes_where_it_stopped(tmp_path):
    model = ModelConfig(lookback=8, layers=2, units=4, dropout=0.2)
    whole = LSTMForecaster.from_config(model, TrainConfig(max_epochs=3, batch_size=16, seed=1))
    straight = whole.fit_many(series(), trainer=ray_trainer(2))[0]
    # Two epochs, stopped; then the same run asked for three continues from epoch 2.
    store = CheckpointStore(tmp_path)
    first = LSTMForecaster.from_config(model, TrainConfig(max_epochs=2, batch_size=16, seed=1))
    first.fit_many(series(), checkpoints=store, trainer=ray_trainer(2))
    resumed = whole.fit_many(series(), checkpoints=store, trainer=ray_trainer(2))[0]
    assert [e.epoch for e in resumed.history_] == [1, 2, 3]
    assert [e.train_loss for e in resumed.history_] == [e.train_loss for e in straight.history_]
    weights = straight.net_.state_dict()
    for name, value in resumed.net_.state_dict().items():
        assert torch.equal(value, weights[name]), name
