"""A run while it trains: its claimed name, its checkpoint folder, its lock, its resume.

A run keeps its checkpoints in ``<runs_dir>/.checkpoints/<name>/`` while it trains:
``session.json`` (the run name and its resolved settings, written when the run starts), the
checkpoint files of :class:`~marketcast.nn.checkpoint.CheckpointStore`, and ``lock``, held
by the process training the run (a portable ``filelock``), so two never share the folder.

The folder has no ``manifest.json``, so it never loads as a finished run. When the run
folder is complete the checkpoints are removed; when training fails they are kept, and
``marketcast run --name NAME --resume`` continues from the last one, ending with exactly the
weights and metrics of a run that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from marketcast import files
from marketcast.config import Config, check_run_name, load_config
from marketcast.errors import ArtifactError, ConfigError, MarketcastError
from marketcast.nn.checkpoint import CHECKPOINT, FORMAT_VERSION, CheckpointStore

log = logging.getLogger("marketcast")

CHECKPOINTS = ".checkpoints"
SESSION = "session.json"
LOCK = "lock"


@dataclass(frozen=True)
class Session:
    """Where a run being trained writes: its run folder name and its checkpoint store."""

    runs_dir: Path
    name: str
    store: CheckpointStore


@contextlib.contextmanager
def session(config: Config, resume: bool | str | Path = False,
            label: str = "run") -> Iterator[Session]:
    """Claim and lock the checkpoint folder of a run while it trains.

    A new run claims ``<runs_dir>/.checkpoints/<name>`` (``label`` names unnamed runs);
    ``resume`` (True: the folder of ``config.output.name``; or a checkpoint folder) reopens
    one, whose saved settings must equal ``config``. On success the folder is removed. On
    failure it is kept if it holds a checkpoint, so the run can be resumed.
    """
    folder, name, lock = _open(config, resume, label)
    store = CheckpointStore(folder)
    try:
        yield Session(folder.parent.parent, name, store)
    except BaseException as exc:
        if not (folder / CHECKPOINT).is_file():
            _remove(folder)  # nothing worth resuming
            raise
        kept = f"the checkpoint of epoch {store.epoch}" if store.epoch else "the checkpoint"
        if isinstance(exc, MarketcastError):
            raise type(exc)(f"{exc}; {kept} is kept in {folder}") from None
        log.warning("%s is kept in %s; continue with --resume %s", kept, folder, folder)
        raise
    else:
        _remove(folder)
    finally:
        lock.release()


def resume_config(resume: str | None, config_path: str | Path | None,
                  overrides: dict[str, Any]) -> tuple[Config, Path]:
    """Settings for ``--resume [PATH]``: the stopped run's saved ones < config file < flags.

    Returns the settings and the checkpoint folder to pass to :func:`session`.
    """
    folder = checkpoint_folder(load_config(config_path, overrides), resume or True)
    info = _read_session(folder)
    saved = Config.from_dict(info.get("config"), where=str(folder / SESSION))
    return load_config(config_path, overrides, base=saved), folder


def checkpoint_folder(config: Config, resume: bool | str | Path) -> Path:
    """The checkpoint folder ``resume`` refers to (True: the one of ``config.output.name``)."""
    if resume is not True:
        return Path(resume)
    if config.output.name is None:
        raise ConfigError(
            "--resume needs the --name of the stopped run, or its checkpoint folder: "
            f"--resume {Path(config.output.runs_dir) / CHECKPOINTS}/NAME"
        )
    return Path(config.output.runs_dir) / CHECKPOINTS / config.output.name


def _claim(config: Config, label: str) -> tuple[Path, str]:
    """Create the checkpoint folder of a new run under a name no other run has."""
    runs_dir, chosen = Path(config.output.runs_dir), config.output.name
    if chosen is not None:
        check_run_name(chosen)
    base = chosen or files.default_name(label)
    for attempt in range(100):
        name = base if attempt == 0 else f"{base}-{attempt}"
        folder, finished = runs_dir / CHECKPOINTS / name, runs_dir / name
        taken = f"run folder {finished} already exists; pick another --name"
        if not finished.exists():
            try:
                folder.mkdir(parents=True)  # atomic: of two runs claiming a name, one fails
            except FileExistsError:
                taken = _taken(folder, name)
            else:
                if not finished.exists():  # a run of that name may have finished meanwhile
                    return folder, name
                _remove(folder)
        if chosen:
            raise ArtifactError(taken)
    raise ArtifactError(f"cannot find a free run name for {base}; pass --name")


def _taken(folder: Path, name: str) -> str:
    """Why the checkpoint folder of ``name`` cannot be claimed, asking its lock whether the
    run that made it is alive: only a dead run's folder may be deleted."""
    probe = filelock.FileLock(folder / LOCK, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return (f"run {name} is being trained by another process ({folder}); wait for it "
                "to finish or pick another --name")
    except OSError:
        pass  # unreadable: say what the folder is, and let the user look
    else:
        probe.release()
    return (f"run {name} stopped before it finished ({folder}); continue it with --resume, "
            f"or delete {folder} to start again")


def _open(config: Config, resume: bool | str | Path,
          label: str) -> tuple[Path, str, filelock.BaseFileLock]:
    """Claim or reopen the checkpoint folder and lock it: (folder, run name, lock)."""
    if not resume:
        folder, name = _claim(config, label)
    else:
        folder = checkpoint_folder(config, resume)
        name = check_run_name(_read_session(folder).get("name"), f"{folder / SESSION}: name")
    lock = _lock(folder)
    try:
        if resume:
            _check_resumable(folder, name, config)
            for stale in folder.glob(".*.tmp"):  # a killed writer's; the lock is ours now
                stale.unlink(missing_ok=True)
        else:
            files.write_json(folder / SESSION, {
                "format_version": FORMAT_VERSION, "name": name, "config": config.to_dict()})
    except BaseException:
        lock.release()
        if not resume:
            _remove(folder)
        raise
    return folder, name, lock


def _check_resumable(folder: Path, name: str, config: Config) -> None:
    info = _read_session(folder)  # again, under the lock: it may have finished meanwhile
    saved = Config.from_dict(info.get("config"), where=str(folder / SESSION))
    # The folder was found, so its runs folder is the same, however it is spelled now.
    saved = dataclasses.replace(saved, output=dataclasses.replace(
        saved.output, runs_dir=config.output.runs_dir))
    if saved != config:
        raise ConfigError(
            f"--resume continues run {name} with its saved settings, but "
            f"{_differences(saved, config)}; drop those options, or start a new run"
        )
    finished = folder.parent.parent / name
    if finished.exists():
        raise ArtifactError(
            f"run {name} already finished in {finished}; nothing to resume, delete {folder}"
        )


def _read_session(folder: Path) -> dict:
    if folder.parent.name != CHECKPOINTS or not (folder / SESSION).is_file():
        finished = folder.parent.parent / folder.name
        if folder.parent.name == CHECKPOINTS and finished.is_dir():
            raise ArtifactError(f"run {folder.name} already finished in {finished}; "
                                "nothing to resume")
        raise ArtifactError(
            f"no stopped run to resume in {folder}; start the run without --resume"
        )
    info = files.read_json(folder / SESSION)
    if (not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION
            or set(info) != {"format_version", "name", "config"}):
        raise ArtifactError(f"{folder / SESSION} is malformed or from another marketcast "
                            f"version; delete {folder} and start again")
    return info


def _lock(folder: Path) -> filelock.BaseFileLock:
    """Hold an exclusive lock on ``folder`` (released when the process ends, even killed)."""
    if not folder.is_dir():
        raise ArtifactError(f"no stopped run to resume in {folder}")
    lock = filelock.FileLock(folder / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ArtifactError(
            f"run {folder.name} is being trained by another process ({folder}); wait for "
            "it to finish or pick another --name"
        ) from None
    return lock


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # .checkpoints, when no other run has one


def _differences(saved: Config, config: Config) -> str:
    a, b = _flat(saved), _flat(config)
    keys = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} was {a.get(k)!r}, now {b.get(k)!r}" for k in keys[:3])


def _flat(config: Config) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in config.to_dict().items() for k, v in values.items()}
