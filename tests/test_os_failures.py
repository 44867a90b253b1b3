"""Every failure of the operating system is one error line, exit code 2, nothing half-written:
disk full, read-only or missing folders, a path that is a file, a name too long; SIGTERM is
handled like Ctrl-C."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import small_config
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


SMALL = {"lookback": 10, "layers": 1, "units": 8, "epochs": 2, "days": 5}


def test_the_python_api_raises_our_error_chained_from_the_os_error(capsys, prices_csv,
                                                                   tmp_path, monkeypatch):
    import marketcast
    from marketcast.errors import StorageError

    afile = tmp_path / "afile"
    afile.write_text("x")
    y = marketcast.load_prices(str(prices_csv))["close"]
    with pytest.raises(StorageError) as caught:
        marketcast.run(y, write=afile / "runs", name="n", **SMALL)
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOTDIR
    assert str(caught.value).startswith("Not a directory: ")
    assert str(caught.value).endswith("a part of the path is a file, not a folder; pass a folder")
    # The same line as the command line prints for the same failure.
    code, _, err = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir",
                       str(afile / "runs"), "--name", "n", *FAST)
    assert code == 2 and err == f"error: {caught.value}\n"

    runs = tmp_path / "runs"
    monkeypatch.setattr("marketcast.files.os.replace", fail_with(errno.ENOSPC))
    with pytest.raises(StorageError, match="No space left on device: .*free some disk space"
                       ) as caught:
        marketcast.train_run(small_config(prices_csv, runs, units=8))
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert not runs.exists() or [p.name for p in runs.iterdir()] == []
    with pytest.raises(marketcast.ArtifactError, match="run folder .*missing not found"):
        marketcast.forecast(tmp_path / "missing")


def test_a_storage_error_stops_a_batch_instead_of_failing_each_job(prices_csv, tmp_path,
                                                                    monkeypatch):
    from marketcast.errors import MarketcastError, StorageError, os_errors
    from marketcast.scale.batch import run_job

    calls = []

    def disk_full(config):
        calls.append(config)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "x")

    monkeypatch.setattr("marketcast.api.run", os_errors(disk_full))  # as run is decorated
    with pytest.raises(StorageError, match="No space left on device"):
        run_job(small_config(prices_csv, tmp_path), "AAA", "run")
    assert len(calls) == 1
    monkeypatch.setattr("marketcast.api.run",
                        lambda config: (_ for _ in ()).throw(MarketcastError("bad ticker")))
    assert run_job(small_config(prices_csv, tmp_path), "AAA", "run")["error"] == "bad ticker"


def test_a_read_only_report_folder_and_a_crash_before_the_manifest(capsys, prices_csv,
                                                                   tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    code, _, _ = cli(capsys, "train", "--data", str(prices_csv), "--runs-dir", str(runs),
                     "--name", "m", *FAST)
    assert code == 0
    folder = runs / "m"
    (folder / "report.html").unlink()  # so that `report` writes one
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with monkeypatch.context() as patched:
        patched.setattr("marketcast.files.os.replace", fail_with(errno.EROFS))
        code, _, err = cli(capsys, "report", str(folder))
    assert_one_line_error(code, err, "Read-only file system: ")
    assert "the file system is read-only; pass a writable folder" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no .tmp left

    real = os.replace

    def crash_at_the_manifest(src, dst):
        if str(dst).endswith("manifest.json"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        return real(src, dst)

    # The report being replaced differs from the new one (as after an upgrade).
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["report.html"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with monkeypatch.context() as patched:  # report.html renamed in, the manifest not
        patched.setattr("marketcast.files.os.replace", crash_at_the_manifest)
        code, _, err = cli(capsys, "report", str(folder))
    assert code == 2 and "Input/output error" in err
    assert (folder / "report.html").is_file()
    code, _, err = cli(capsys, "forecast", "--run", str(folder))  # says how to repair
    assert_one_line_error(code, err, f"rewrite it with `marketcast report {folder}`")
    code, _, err = cli(capsys, "report", str(folder))
    assert code == 0, err
    code, out, err = cli(capsys, "forecast", "--run", str(folder))
    assert code == 0 and out.startswith("date,lstm"), err


def test_data_download_into_a_store_that_is_a_file(capsys, tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    fetched = []
    monkeypatch.setattr("marketcast.data.store._yahoo_source", lambda: "Yahoo (faked)")
    monkeypatch.setattr("marketcast.data.store.yahoo_fetch", lambda *a: fetched.append(a))
    code, _, err = cli(capsys, "data", "download", "AAA", "--store", str(afile))
    assert_one_line_error(code, err, f"cannot write to the store {afile}")
    assert "pass a writable folder with --store" in err
    assert fetched == [] and afile.read_text() == "x"
