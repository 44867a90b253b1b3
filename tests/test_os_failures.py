"""Every failure of the operating system is one error line, exit code 2, nothing half-written:
disk full, read-only or missing folders, a path that is a file, a name too long; SIGTERM is
handled like Ctrl-C."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from test_checkpoint import DRIVER, TRAIN
from test_cli import FAST, assert_one_line_error, cli

from marketcast.nn.checkpoint import CHECKPOINT
from marketcast.runs.session import CHECKPOINTS


def fail_with(code):
    def raising(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[0]) if args else None)
    return raising


@pytest.mark.parametrize(("code", "advice"), [
    (errno.ENOSPC, "No space left on device: '"),
    (errno.EROFS, "the file system is read-only; pass a writable folder"),
    (errno.EACCES, "check the permissions, or pass a folder you can write to"),
])
def test_a_failing_write_is_one_line_and_leaves_nothing(capsys, monkeypatch, prices_csv,
                                                        tmp_path, code, advice):
    runs = tmp_path / "runs"
    monkeypatch.setattr("marketcast.files.os.replace", fail_with(code))
    code_, out, err = cli(capsys, "train", "--data", str(prices_csv), "--runs-dir", str(runs),
                          "--name", "full", *FAST)
    assert_one_line_error(code_, err, advice)
    leftovers = [p.relative_to(runs).as_posix() for p in runs.rglob("*")] \
        if runs.exists() else []
    assert leftovers == []  # no run folder, no staging folder, no checkpoint, no .tmp


def test_paths_that_cannot_be_written(capsys, prices_csv, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = cli(capsys, "train", "--data", str(prices_csv), "--runs-dir", str(afile),
                       *FAST)
    assert_one_line_error(code, err, "a part of the path is a file, not a folder")
    long = tmp_path / ("d" * 300)
    code, _, err = cli(capsys, "train", "--data", str(prices_csv), "--runs-dir", str(long),
                       *FAST)
    assert_one_line_error(code, err, "File name too long")
    assert "use a shorter path or name" in err and len(err) < 400


def test_forecast_output_into_a_missing_folder(capsys, prices_csv, tmp_path):
    runs = tmp_path / "runs"
    code, _, _ = cli(capsys, "train", "--data", str(prices_csv), "--runs-dir", str(runs),
                     "--name", "m", *FAST)
    assert code == 0
    target = tmp_path / "missing" / "f.csv"
    code, out, err = cli(capsys, "forecast", "--run", str(runs / "m"), "--output", str(target))
    assert_one_line_error(code, err, "No such file or directory")
    assert "create the folder first" in err and not target.parent.exists()


def start_and_signal(runs, name, prices_csv, where, sig):
    folder = runs / CHECKPOINTS / name
    marker = runs.parent / f"{name}.reached"
    args = ["run", "--data", str(prices_csv), "--runs-dir", str(runs), "--name", name, *TRAIN]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(folder / CHECKPOINT),
                             str(marker), where, *args], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run never reached the signal point"
        time.sleep(0.02)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    proc.stderr.close()
    return folder, code, err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX's")
@pytest.mark.parametrize("where", ["training", "writing"])
def test_sigterm_keeps_the_checkpoint_and_removes_the_staging_folder(prices_csv, tmp_path,
                                                                     where):
    runs = tmp_path / "runs"
    folder, code, err = start_and_signal(runs, "t", prices_csv, where, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert err.splitlines()[-1] == "error: terminated"
    assert "Traceback" not in err
    assert (folder / CHECKPOINT).is_file()  # resumable
    assert sorted(p.name for p in runs.iterdir()) == [CHECKPOINTS]  # no staging folder
