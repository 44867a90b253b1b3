"""Crash-safe training: a checkpoint after every epoch, stored without pickle.

A run keeps its checkpoints in ``<runs_dir>/.checkpoints/<name>/`` while it trains:

- ``session.json``: the run name and its resolved settings, written when the run starts;
- ``state-NNNN.safetensors``: weights, best weights, Adam moments and the states of both
  random generators (shuffling and dropout) after epoch NNNN;
- ``checkpoint.json``: epoch, loss history, early-stopping state and the sha256 of the state
  file it belongs to. It is written after that file, and older state files are removed only
  after it, so a kill at any moment (SIGKILL included) leaves the previous checkpoint whole;
- ``lock``: held (``flock``) by the process training the run, so two never share the folder.

The folder has no ``manifest.json``, so it never loads as a finished run. When the run
folder is complete the checkpoints are removed; when training fails they are kept, and
``marketcast run --name NAME --resume`` continues from the last one, ending with exactly the
weights and metrics of a run that never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marketcast import artifacts
from marketcast.config import Config, load_config
from marketcast.errors import ArtifactError, ConfigError, MarketcastError
from marketcast.train import EpochLog, TrainState

log = logging.getLogger("marketcast")

CHECKPOINTS = ".checkpoints"
SESSION = "session.json"
CHECKPOINT = "checkpoint.json"
LOCK = "lock"
# 2: dropout masks are drawn before each batch (marketcast.train), so a version-1 checkpoint
# would resume onto another random stream than the run that wrote it.
FORMAT_VERSION = 2


class CheckpointStore:
    """Saves and restores the training state of one run in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.epoch = 0  # last epoch saved or restored
        self._inputs_sha256 = ""

    def restore(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, inputs: tuple[np.ndarray, ...]) -> TrainState | None:
        """Load the last checkpoint into ``net``, ``optimizer`` and both generators.

        ``inputs`` (the arrays trained on) must be the ones the checkpoint was made with.
        Returns None when there is no checkpoint yet.
        """
        self._inputs_sha256 = _arrays_sha256(inputs)
        path = self.folder / CHECKPOINT
        if not path.is_file():
            return None
        info = artifacts.read_json(path)
        try:
            if info["format_version"] != FORMAT_VERSION:
                raise ArtifactError(f"{path} was written by another marketcast version; "
                                    f"delete {self.folder} and start the run again")
            if info["inputs_sha256"] != self._inputs_sha256:
                raise ArtifactError(
                    f"{path} was saved while training on other data; restore the original "
                    f"data file, or delete {self.folder} and start again"
                )
            tensors = artifacts.load_tensors(self.folder / info["state_file"],
                                             info["state_sha256"])
            net.load_state_dict(_part(tensors, "net."), strict=True)
            optimizer.load_state_dict(_optimizer_state(optimizer, tensors))
            generator.set_state(tensors["rng.shuffle"])
            torch.set_rng_state(tensors["rng.torch"])
            state = TrainState(
                epoch=info["epoch"],
                history=[EpochLog(e, t, _float(v, math.nan), s) for e, t, v, s in info["history"]],
                best_loss=_float(info["best_loss"], math.inf),
                best_epoch=info["best_epoch"],
                best_weights=_part(tensors, "best.") or None,
                waited=info["waited"],
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(
                f"{path} is unreadable ({exc}); delete {self.folder} and start again"
            ) from None
        self.epoch = state.epoch
        return state

    def save(self, state: TrainState, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
             generator: torch.Generator) -> None:
        """Write the checkpoint of ``state.epoch``; the previous one stays valid until done."""
        tensors = _part(net.state_dict(), "", prefix="net.")
        tensors |= _part(state.best_weights or {}, "", prefix="best.")
        for index, values in optimizer.state_dict()["state"].items():
            tensors |= _part(values, "", prefix=f"optim.{index}.")
        tensors["rng.torch"] = torch.get_rng_state()  # dropout
        tensors["rng.shuffle"] = generator.get_state()
        state_file = f"state-{state.epoch:04d}.safetensors"
        digest = artifacts.write_tensors(self.folder / state_file, tensors)
        artifacts.write_json(self.folder / CHECKPOINT, {
            "format_version": FORMAT_VERSION,
            "epoch": state.epoch,
            "state_file": state_file,
            "state_sha256": digest,
            "inputs_sha256": self._inputs_sha256,
            # JSON has no NaN or infinity: null stands for "no validation" / "none yet".
            "history": [[e.epoch, e.train_loss, _finite(e.val_loss), e.seconds]
                        for e in state.history],
            "best_loss": _finite(state.best_loss),
            "best_epoch": state.best_epoch,
            "waited": state.waited,
        })
        for old in self.folder.glob("state-*.safetensors"):
            if old.name != state_file:
                old.unlink(missing_ok=True)
        self.epoch = state.epoch


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
        os.close(lock)


def resume_config(resume: str | None, config_path: str | Path | None,
                  overrides: dict[str, Any]) -> tuple[Config, Path]:
    """Settings for ``--resume [PATH]``: the stopped run's saved ones < config file < flags.

    Returns the settings and the checkpoint folder to pass to :func:`session`.
    """
    folder = checkpoint_folder(load_config(config_path, overrides), resume or True)
    info = _read_session(folder)
    saved = Config.from_dict(info.get("config"), origin=str(folder / SESSION))
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
    if chosen is not None and (Path(chosen).name != chosen or chosen.startswith(".")):
        raise ConfigError(f"--name {chosen!r} must be a plain folder name, like sp500-lstm")
    base = chosen or artifacts.default_name(label)
    for attempt in range(100):
        name = base if attempt == 0 else f"{base}-{attempt}"
        folder, finished = runs_dir / CHECKPOINTS / name, runs_dir / name
        taken = f"run folder {finished} already exists; pick another --name"
        if not finished.exists():
            try:
                folder.mkdir(parents=True)  # atomic: of two runs claiming a name, one fails
            except FileExistsError:
                taken = (f"run {name} is training, or stopped before it finished ({folder}); "
                         f"continue it with --resume, or delete {folder} to start again")
            else:
                if not finished.exists():  # a run of that name may have finished meanwhile
                    return folder, name
                _remove(folder)
        if chosen:
            raise ArtifactError(taken)
    raise ArtifactError(f"cannot find a free run name for {base}; pass --name")


def _open(config: Config, resume: bool | str | Path, label: str) -> tuple[Path, str, int]:
    """Claim or reopen the checkpoint folder and lock it: (folder, run name, lock)."""
    if not resume:
        folder, name = _claim(config, label)
    else:
        folder = checkpoint_folder(config, resume)
        name = _read_session(folder)["name"]
    lock = _lock(folder)
    try:
        if resume:
            _check_resumable(folder, name, config)
        else:
            artifacts.write_json(folder / SESSION, {
                "format_version": FORMAT_VERSION, "name": name, "config": config.to_dict()})
    except BaseException:
        os.close(lock)
        if not resume:
            _remove(folder)
        raise
    return folder, name, lock


def _check_resumable(folder: Path, name: str, config: Config) -> None:
    info = _read_session(folder)  # again, under the lock: it may have finished meanwhile
    saved = Config.from_dict(info.get("config"), origin=str(folder / SESSION))
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
    info = artifacts.read_json(folder / SESSION)
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{folder / SESSION} is malformed or from another marketcast "
                            f"version; delete {folder} and start again")
    return info


def _lock(folder: Path) -> int:
    """Hold an exclusive lock on ``folder`` (released when the process ends, even killed)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise ArtifactError(f"no stopped run to resume in {folder}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ArtifactError(
            f"run {folder.name} is being trained by another process ({folder}); wait for "
            "it to finish or pick another --name"
        ) from None
    return fd


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


def _part(tensors: dict, strip: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """Entries whose key starts with ``strip``, renamed from ``strip`` to ``prefix``."""
    return {prefix + k[len(strip):]: v for k, v in tensors.items() if k.startswith(strip)}


def _optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict) -> dict:
    """An optimizer state dict: saved per-parameter tensors, hyper-parameters from the run."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in _part(tensors, "optim.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}


def _arrays_sha256(arrays: tuple[np.ndarray, ...]) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: float | None, missing: float) -> float:
    return missing if value is None else float(value)
