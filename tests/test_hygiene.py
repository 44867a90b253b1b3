"""Crash hygiene: leftovers of killed processes are removed by the next writer (never a
live one's), files are synced to disk before the rename that publishes them, and created
files follow the umask."""

import os
import stat
import sys

import filelock
import pytest

from marketcast import api
from marketcast.runs.folder import staged
from marketcast.runs.layout import Kind


def test_stale_staging_is_removed_and_a_live_one_kept(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    dead = runs / ".old-run.k3j4h5g6"  # a killed writer's (tempfile's name, no lock)
    dead.mkdir()
    (dead / "model.json").write_text("{}")
    live = runs / ".busy.0a1b2c3d"
    lock = filelock.FileLock(runs / ".busy.0a1b2c3d.lock", timeout=0)
    lock.acquire()
    live.mkdir()
    (runs / ".checkpoints").mkdir()
    try:
        with staged(runs, "new", label="x", kind=Kind.TRAIN) as folder:
            (folder.path / "a.txt").write_text("a")
        assert not dead.exists()
        assert live.is_dir() and (runs / ".checkpoints").is_dir()
        assert sorted(p.name for p in runs.iterdir()) == [
            ".busy.0a1b2c3d", ".busy.0a1b2c3d.lock", ".checkpoints", "new"]
    finally:
        lock.release()
    with staged(runs, "newer", label="x", kind=Kind.TRAIN):
        pass
    assert not live.exists()  # its writer is gone now


def test_a_resumed_checkpoint_folder_loses_its_stale_temporary_files(config, tmp_path):
    import dataclasses

    config = dataclasses.replace(config, output=dataclasses.replace(config.output, name="s"))

    def stop(log, max_epochs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.run(config, callback=stop)
    folder = tmp_path / "runs" / ".checkpoints" / "s"
    stale = folder / ".checkpoint.json.abc123.tmp"
    stale.write_text("half")
    from marketcast.runs.session import session

    with session(config, resume=True) as opened:
        assert opened.store.folder == folder
        assert not stale.exists() and (folder / "checkpoint.json").is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and umask")
@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [
    (0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)])
def test_run_files_follow_the_umask(config, umask, file_mode, folder_mode):
    old = os.umask(umask)
    try:
        path = api.train_run(config)[1]
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == folder_mode
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert set(modes.values()) == {file_mode}, modes


@pytest.mark.skipif(sys.platform != "linux", reason="names open files through /proc")
def test_files_and_folder_are_synced_before_the_publishing_rename(tmp_path, monkeypatch):
    events = []
    fsync, rename = os.fsync, os.rename

    def recording_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recording_rename(a, b):
        events.append(("rename", str(a)))
        rename(a, b)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "rename", recording_rename)
    with staged(tmp_path, "synced", label="x", kind=Kind.TRAIN) as folder:
        (folder.path / "plain.txt").write_text("written without write_bytes")
        staging = str(folder.path)
    publish = events.index(("rename", staging))
    synced = {path for what, path in events[:publish] if what == "fsync"}
    assert {f"{staging}/plain.txt", staging} <= synced
    # the manifest is synced under its temporary name, before its own rename
    assert any(p.startswith(f"{staging}/.manifest.json.") for p in synced)
    assert ("fsync", str(tmp_path)) in events[publish:]  # the new name itself
