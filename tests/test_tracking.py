"""``--track``: runs logged to a real MLflow tracking server, read back through its client."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import small_config
from test_cli import FAST, assert_one_line_error, cli

import marketcast as mc
from marketcast.errors import TrackingError

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

README = (Path(__file__).parents[1] / "README.md").read_text()
# Seconds the server gets to start (it migrates its SQLite database first).
START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with a SQLite store and a local artifact folder."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    with open(root / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def only_run(uri: str, name: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("marketcast")
    runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    assert len(runs) == 1
    return client, runs[0]


def test_run_track_logs_config_losses_scores_verdict_and_folder(server, capsys, prices_csv,
                                                                tmp_path):
    runs = tmp_path / "runs"
    code, out, err = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir", str(runs),
                         "--name", "tracked", *FAST, "--track", server)
    assert code == 0, err
    run_id = re.search(r"tracked in MLflow: run (\w+)", out).group(1)
    client, run = only_run(server, "tracked")
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.params["model.lookback"] == "10"
    assert run.data.params["train.max_epochs"] == "3"
    assert run.data.params["data.source"] == str(prices_csv)
    saved = json.loads((runs / "tracked" / "metrics.json").read_text())
    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    lstm = next(r for r in saved["metrics"] if r["model"] == "lstm")
    assert run.data.metrics["lstm.rmse"] == pytest.approx(lstm["rmse"])
    assert run.data.metrics["lstm.theils_u"] == pytest.approx(lstm["theils_u"])
    assert "lstm_vs_naive.dm_p_value" in run.data.metrics
    assert run.data.tags["marketcast.verdict"] == "\n".join(saved["verdict"])
    assert run.data.tags["marketcast.kind"] == "run"
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "model.safetensors", "model.json", "config.toml",
            "metrics.json"} <= artifacts
    assert "MLmodel" not in artifacts  # no MLflow model flavour, no pickle
    local = client.download_artifacts(run_id, "model.json", str(tmp_path))
    assert Path(local).read_bytes() == (runs / "tracked" / "model.json").read_bytes()


def test_python_backtest_tracks_scores_per_step(server, prices_csv, tmp_path):
    config = small_config(prices_csv, tmp_path / "runs")
    result = mc.backtest(config=config, write=False, track=server,
                         models=["naive", "linear"], n_windows=10, horizon=2)
    assert result.path is None
    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("marketcast")
    (run,) = client.search_runs([experiment.experiment_id],
                                "tags.`marketcast.kind` = 'backtest'")
    steps = {m.step: m.value for m in client.get_metric_history(run.info.run_id,
                                                                 "linear.rmse")}
    expected = result.scores[result.scores["model"] == "linear"].set_index("step")["rmse"]
    assert steps == pytest.approx(expected.to_dict())
    assert run.data.params["backtest.n_windows"] == "10"


def test_an_unreachable_server_is_one_error_line_and_the_run_is_saved(capsys, prices_csv,
                                                                      tmp_path):
    runs = tmp_path / "runs"
    nobody = f"http://127.0.0.1:{free_port()}"
    code, out, err = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir", str(runs),
                         "--name", "kept", *FAST, "--track", nobody)
    assert_one_line_error(code, err, f"cannot reach the MLflow server at {nobody}")
    assert f"the run is saved in {runs / 'kept'}" in err
    assert (runs / "kept" / "report.html").is_file() and "run folder:" in out
    with pytest.raises(TrackingError) as caught:
        mc.backtest(config=small_config(prices_csv, runs), write=False, track=nobody,
                    models=["naive"], n_windows=5)
    assert caught.value.result.table["cutoff"].nunique() == 5  # the result is not lost


def test_without_mlflow_track_says_how_to_install_it(capsys, prices_csv, tmp_path,
                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    runs = tmp_path / "runs"
    for command in ("run", "train", "backtest", "tune"):
        code, _, err = cli(capsys, command, "--data", str(prices_csv), "--runs-dir",
                           str(runs), "--track", "http://127.0.0.1:1")
        assert_one_line_error(code, err, 'pip install "marketcast[mlflow]"')
    assert not runs.exists()  # refused before any work


def test_track_is_documented_for_every_command_that_has_it():
    for command in ("run", "train", "backtest", "tune"):
        section = README.split(f"### `marketcast {command}`", 1)[1].split("\n### ", 1)[0]
        assert "`--track URI`" in section, command
    assert "## MLflow" in README and "## Python and notebooks" in README
