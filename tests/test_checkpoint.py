"""Crash-safe training: checkpoints, --resume after SIGKILL, divergence, locking."""

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_same_run, synthetic_prices
from test_cli import assert_one_line_error, cli

from marketcast import api
from marketcast.errors import ArtifactError
from marketcast.files import load_tensors
from marketcast.files import sha256_file as _sha256
from marketcast.nn.checkpoint import CHECKPOINT
from marketcast.nn.network import StackedLSTM
from marketcast.runs.folder import check_run
from marketcast.runs.session import CHECKPOINTS, SESSION, session

TRAIN = ["--lookback", "10", "--layers", "2", "--units", "8", "--batch-size", "32",
         "--epochs", "6", "--patience", "3", "--days", "5"]

# Runs the CLI with one hook: the first time `hook` is called while the checkpoint file
# argv[1] says epoch 2, touch argv[2] and sleep, so the parent can kill at that exact point.
DRIVER = """
import json, sys, time
from pathlib import Path
import marketcast.nn.network, marketcast.report.plots
from marketcast.cli import main

checkpoint, marker, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
calls = 0

def wait_here():
    marker.touch()
    time.sleep(600)

def forward(self, x, masks=None, _forward=marketcast.nn.network.StackedLSTM.forward):
    global calls
    if self.training and checkpoint.is_file() and json.loads(checkpoint.read_text())["epoch"] == 2:
        calls += 1
        if calls == 5:  # a batch is two calls: three batches into epoch 3, weights and Adam
            wait_here()  # moved past the checkpoint
    return _forward(self, x, masks)

def plot_forecast(*args, _plot=marketcast.report.plots.plot_forecast):
    _plot(*args)
    wait_here()  # the run folder is half written

if where == "training":
    marketcast.nn.network.StackedLSTM.forward = forward
else:
    marketcast.report.plots.plot_forecast = plot_forecast
main(sys.argv[4:])
"""


def run_and_kill(runs, name, prices_csv, where, extra=()):
    """Start `marketcast run` in a subprocess, SIGKILL it at ``where``; return the checkpoint
    folder."""
    folder = runs / CHECKPOINTS / name
    marker = runs.parent / f"{name}.reached"
    args = ["run", "--data", str(prices_csv), "--runs-dir", str(runs), "--name", name, *TRAIN,
            *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(folder / CHECKPOINT),
                             str(marker), where, *args], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    proc.stderr.close()
    return folder


def assert_nothing_loads_as_a_run(runs):
    folders = [p for p in runs.rglob("*") if p.is_dir()]
    assert folders, "expected leftovers of the killed run"
    for folder in [runs, *folders]:
        with pytest.raises(ArtifactError):
            check_run(folder)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(capsys, prices_csv, tmp_path):
    runs = tmp_path / "runs"
    folder = run_and_kill(runs, "k", prices_csv, where="training")
    assert json.loads((folder / CHECKPOINT).read_text())["epoch"] == 2
    assert_nothing_loads_as_a_run(runs)

    # Only the name: the settings come from the checkpoint.
    code, out, err = cli(capsys, "run", "--runs-dir", str(runs), "--name", "k", "--resume")
    assert code == 0, err
    assert "run folder: " in out
    assert not folder.exists() and not (runs / CHECKPOINTS).exists()
    code, _, err = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir",
                       str(tmp_path / "ref"), "--name", "k", *TRAIN)
    assert code == 0, err
    check_run(runs / "k")
    history = (runs / "k" / "loss_history.csv").read_text().splitlines()
    assert len(history) == 1 + 6  # header and six epochs: 1-2 before the kill, 3-6 after
    assert_same_run(runs / "k", tmp_path / "ref" / "k")


def test_global_run_sigkilled_mid_epoch_resumes_to_the_uninterrupted_result(
        capsys, long_csv, tmp_path):
    runs, tickers = tmp_path / "runs", ["--tickers", "AAA,BBB,CCC"]
    folder = run_and_kill(runs, "g", long_csv, where="training", extra=tickers)
    assert json.loads((folder / CHECKPOINT).read_text())["epoch"] == 2
    assert_nothing_loads_as_a_run(runs)
    code, _, err = cli(capsys, "run", "--runs-dir", str(runs), "--name", "g", "--resume")
    assert code == 0, err
    assert not folder.exists()
    code, _, err = cli(capsys, "run", "--data", str(long_csv), "--runs-dir",
                       str(tmp_path / "ref"), "--name", "g", *TRAIN, *tickers)
    assert code == 0, err
    a, b = runs / "g", tmp_path / "ref" / "g"
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    for name in ("test_forecasts.csv", "per_ticker.csv", "forecast.csv", "residuals.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name
    assert len((a / "loss_history.csv").read_text().splitlines()) == 1 + 6


def test_killed_while_writing_leaves_no_complete_folder_and_resumes_without_training(
    capsys, monkeypatch, prices_csv, tmp_path
):
    runs = tmp_path / "runs"
    run_and_kill(runs, "w", prices_csv, where="writing")
    staging = [p for p in runs.iterdir() if p.name.startswith(".w.") and p.is_dir()]
    assert len(staging) == 1 and (staging[0] / "model.safetensors").is_file()
    assert not (runs / "w").exists()
    assert_nothing_loads_as_a_run(runs)
    with pytest.raises(ArtifactError, match="no manifest.json"):
        api.forecast(staging[0])

    def no_training(*args, **kwargs):
        raise AssertionError("resume trained again")

    monkeypatch.setattr(torch.optim.Adam, "step", no_training)
    code, _, err = cli(capsys, "run", "--runs-dir", str(runs), "--resume",
                       str(runs / CHECKPOINTS / "w"))
    assert code == 0, err
    check_run(runs / "w")
    # the killed writer's staging folder and its lock are gone
    assert sorted(p.name for p in runs.iterdir()) == ["w"]


def named(config, name, **train):
    return dataclasses.replace(
        config, output=dataclasses.replace(config.output, name=name),
        train=dataclasses.replace(config.train, **train))


@pytest.mark.parametrize("train", [{}, {"lr_scaling": "sqrt", "warmup_steps": 40}],
                         ids=["default", "warm-up"])
def test_interrupted_run_resumes_to_the_same_result(config, tmp_path, caplog, train):
    # With the warm-up, the rate is still rising when the run stops after epoch 2.
    config = named(config, "i", max_epochs=5, patience=5, **train)

    def stop(log, max_epochs):
        if log.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.run(config, callback=stop)
    folder = tmp_path / "runs" / CHECKPOINTS / "i"
    assert f"the checkpoint of epoch 2 is kept in {folder}" in caplog.text
    resumed = api.run(config, resume=True)
    reference = api.run(dataclasses.replace(config, output=dataclasses.replace(
        config.output, runs_dir=str(tmp_path / "ref"))))
    assert [e.epoch for e in resumed.trained.lstm.history_] == [1, 2, 3, 4, 5]
    assert_same_run(resumed.path, reference.path)


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(
    capsys, monkeypatch, prices_csv, tmp_path
):
    runs = tmp_path / "runs"
    folder = runs / CHECKPOINTS / "nan"
    forward = StackedLSTM.forward

    def diverging(self, x, masks=None):
        checkpoint = folder / CHECKPOINT
        late = checkpoint.is_file() and json.loads(checkpoint.read_text())["epoch"] >= 2
        return forward(self, x, masks) * (float("nan") if late else 1.0)

    monkeypatch.setattr("marketcast.nn.network.StackedLSTM.forward", diverging)
    code, _, err = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir", str(runs),
                       "--name", "nan", *TRAIN)
    assert_one_line_error(code, err, "training loss became nan in epoch 3; lower "
                          "--learning-rate or check the data for extreme values; the "
                          f"checkpoint of epoch 2 is kept in {folder}")
    info = json.loads((folder / CHECKPOINT).read_text())
    assert info["epoch"] == 2 and [e[0] for e in info["history"]] == [1, 2]
    tensors = load_tensors(folder / info["state_file"], info["state_sha256"])
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("net."))
    assert [p.name for p in runs.iterdir()] == [CHECKPOINTS]


@pytest.fixture
def stopped(config, tmp_path):
    """A run named "s" stopped after epoch 1, and its checkpoint folder."""
    config = named(config, "s")

    def stop(log, max_epochs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.run(config, callback=stop)
    return config, tmp_path / "runs" / CHECKPOINTS / "s"


def test_tampered_or_pickled_checkpoint_is_refused(stopped, tmp_path):
    config, folder = stopped
    info = json.loads((folder / CHECKPOINT).read_text())
    state = folder / info["state_file"]
    data = bytearray(state.read_bytes())
    data[-1] ^= 1
    state.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        api.run(config, resume=True)

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state.write_bytes(pickle.dumps(Payload()))
    info["state_sha256"] = _sha256(state)  # a consistent, but malicious, checkpoint
    (folder / CHECKPOINT).write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="not a valid safetensors file"):
        api.run(config, resume=True)
    assert not marker.exists()
    assert folder.is_dir()  # refused, never deleted


@pytest.mark.parametrize(("edit", "message"), [
    ({"epoch": 99}, "state_file is not the state of its epoch"),
    ({"epoch": 99, "state_file": "state-0099.safetensors"}, "history does not hold epochs 1"),
    ({"state_file": "../../../etc/passwd"}, "state_file is not the state of its epoch"),
    ({"best_epoch": -1}, "best_epoch is not between 0 and 1"),
    ({"epoch": "1"}, "epoch is not a whole number"),
])
def test_edited_checkpoint_json_is_refused(capsys, stopped, edit, message):
    config, folder = stopped
    capsys.readouterr()
    info = json.loads((folder / CHECKPOINT).read_text())
    (folder / CHECKPOINT).write_text(json.dumps({**info, **edit}))
    code, out, err = cli(capsys, "run", "--runs-dir", config.output.runs_dir, "--name", "s",
                         "--resume")
    assert_one_line_error(code, err, f"{folder / CHECKPOINT}: {message}")
    assert out == "" and folder.is_dir()
    assert [p.name for p in (folder.parent.parent).iterdir()] == [CHECKPOINTS]


def test_checkpoint_edited_past_the_last_epoch_is_refused(capsys, stopped):
    config, folder = stopped
    capsys.readouterr()
    info = json.loads((folder / CHECKPOINT).read_text())
    state = folder / info["state_file"]
    epochs = config.train.max_epochs + 5
    renamed = state.with_name(f"state-{epochs:04d}.safetensors")
    state.rename(renamed)
    first = info["history"][0]
    info.update(epoch=epochs, state_file=renamed.name,
                history=[[e, *first[1:]] for e in range(1, epochs + 1)])
    (folder / CHECKPOINT).write_text(json.dumps(info))
    code, out, err = cli(capsys, "run", "--runs-dir", config.output.runs_dir, "--name", "s",
                         "--resume")
    assert_one_line_error(code, err, f"the checkpoint records epoch {epochs} (waited 0), "
                          f"beyond the run's {config.train.max_epochs} epochs")
    assert [p.name for p in (folder.parent.parent).iterdir()] == [CHECKPOINTS]


def test_resume_with_other_settings_or_data_is_refused(capsys, stopped, prices_csv):
    config, folder = stopped
    capsys.readouterr()  # the note of the stopped run
    runs = config.output.runs_dir
    code, _, err = cli(capsys, "run", "--runs-dir", runs, "--name", "s", "--resume",
                       "--units", "9")
    assert_one_line_error(code, err, "--resume continues run s with its saved settings, but "
                          "model.units was 8, now 9")
    synthetic_prices(seed=1).to_csv(prices_csv, index=False)
    code, _, err = cli(capsys, "run", "--runs-dir", runs, "--name", "s", "--resume")
    assert_one_line_error(code, err, "was saved while training on other data")
    assert folder.is_dir()


def test_resume_and_name_mistakes(capsys, stopped):
    config, folder = stopped
    capsys.readouterr()
    runs = config.output.runs_dir
    code, _, err = cli(capsys, "run", "--runs-dir", runs, "--resume")
    assert_one_line_error(code, err, "--resume needs the --name of the stopped run")
    code, _, err = cli(capsys, "run", "--runs-dir", runs, "--name", "other", "--resume")
    assert_one_line_error(code, err, "no stopped run to resume in")
    code, _, err = cli(capsys, "run", "--data", config.data.source, "--runs-dir", runs,
                       "--name", "s")
    assert_one_line_error(code, err, f"run s stopped before it finished ({folder}); continue "
                          f"it with --resume, or delete {folder} to start again")
    code, _, err = cli(capsys, "run", "--runs-dir", runs, "--name", "../s")
    assert_one_line_error(code, err, "--name (output.name) '../s' must be a plain folder name")
    for name in ("x" * 101, "red\x1b[31mtext", "tab\there", "a\\b", ".hidden", " s"):
        code, _, err = cli(capsys, "run", "--runs-dir", runs, "--name", name)
        assert_one_line_error(code, err, "must be a plain folder name")
        assert "\x1b" not in err and len(err) < 400
    assert sorted(p.name for p in Path(runs).iterdir()) == [CHECKPOINTS]


@pytest.mark.parametrize("crafted", ["checkpoints/../../x", "/tmp/x", "..", 7])
def test_resume_refuses_a_crafted_name_in_session_json(capsys, stopped, tmp_path, crafted):
    config, folder = stopped
    capsys.readouterr()
    info = json.loads((folder / SESSION).read_text())
    info["name"] = crafted if crafted != "/tmp/x" else str(tmp_path / "outside")
    (folder / SESSION).write_text(json.dumps(info))
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = cli(capsys, "run", "--runs-dir", config.output.runs_dir, "--resume",
                       str(folder))
    assert_one_line_error(code, err, f"{folder / SESSION}: name")
    assert "must be a plain folder name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [CHECKPOINTS]
    assert (folder / CHECKPOINT).is_file()  # refused, never deleted


def test_one_name_is_never_trained_twice_at_once(config):
    config = named(config, "x")
    locked = "run x is being trained by another process"
    with session(config) as first:
        with pytest.raises(ArtifactError, match=locked) as caught, session(config):
            pass
        assert "delete" not in str(caught.value)  # never advice to delete a live run's files
        with pytest.raises(ArtifactError, match=locked), session(config, resume=True):
            pass
        assert first.store.folder.is_dir()
    assert not first.store.folder.exists()


def test_unnamed_runs_started_together_get_separate_folders(config, monkeypatch):
    monkeypatch.setattr("marketcast.files.default_name", lambda label: "same-second")
    with session(config) as a, session(config) as b:
        assert (a.name, b.name) == ("same-second", "same-second-1")
        assert a.store.folder != b.store.folder


def test_two_processes_with_one_name_never_share_a_folder(prices_csv, tmp_path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "marketcast", "train", "--data", str(prices_csv),
            "--runs-dir", str(runs), "--name", "same", *TRAIN]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = sorted((p.wait(), p.stderr.read()) for p in procs)
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0, 2]
    assert results[1][1].startswith("error: ") and results[1][1].count("\n") == 1
    assert sorted(p.name for p in runs.iterdir()) == ["same"]
    check_run(runs / "same")
