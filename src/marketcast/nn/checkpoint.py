"""Crash-safe training: a checkpoint after every epoch, stored without pickle.

A :class:`CheckpointStore` keeps in its folder (where a run's folder lives and how it is
claimed and locked: :mod:`marketcast.runs.session`):

- ``state-NNNN.safetensors``: weights, best weights, Adam moments and the states of both
  random generators (shuffling and dropout) after epoch NNNN;
- ``checkpoint.json``: epoch, loss history, early-stopping state and the sha256 of the state
  file it belongs to. It is written after that file, and older state files are removed only
  after it, so a kill at any moment (SIGKILL included) leaves the previous checkpoint whole.

Restoring the last checkpoint continues training with exactly the weights and metrics of a
run that never stopped.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from marketcast import files
from marketcast.errors import ArtifactError, shown
from marketcast.nn.train import EpochLog, TrainState

CHECKPOINT = "checkpoint.json"
# 2: dropout masks are drawn before each batch (marketcast.nn.train), so a version-1 checkpoint
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
        info = files.read_json(path)
        try:
            if info["format_version"] != FORMAT_VERSION:
                raise ArtifactError(f"{path} was written by another marketcast version; "
                                    f"delete {self.folder} and start the run again")
            if info["inputs_sha256"] != self._inputs_sha256:
                raise ArtifactError(
                    f"{path} was saved while training on other data; restore the original "
                    f"data file, or delete {self.folder} and start again"
                )
            _check_info(info, path)
            state_path = self.folder / info["state_file"]
            tensors = files.load_tensors(state_path, info["state_sha256"])
            _check_tensors(tensors, net, optimizer, generator, state_path)
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
                f"{path} is unreadable ({shown(' '.join(str(exc).split()))}); delete "
                f"{self.folder} and start again"
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
        digest = files.write_tensors(self.folder / state_file, tensors)
        files.write_json(self.folder / CHECKPOINT, {
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


def _check_info(info: dict, path: Path) -> None:
    """The fields of ``checkpoint.json`` agree with each other: a state file of this folder
    named after the epoch, one history entry per epoch (epoch, train loss, validation loss
    or null, seconds), early-stopping counters in range."""
    epoch = info["epoch"]
    problem = None
    if not _whole(epoch) or epoch < 1:
        problem = "epoch is not a whole number of 1 or more"
    elif info["state_file"] != f"state-{epoch:04d}.safetensors":
        problem = "state_file is not the state of its epoch"
    elif [e[0] if isinstance(e, list) and len(e) == 4 else None
          for e in info["history"]] != list(range(1, epoch + 1)):
        problem = f"history does not hold epochs 1 to {epoch}"
    elif not all(_number(t) and (v is None or _number(v)) and _number(s) and s >= 0
                 for _, t, v, s in info["history"]):
        problem = "history holds a loss or time that is not a finite number"
    elif not (info["best_loss"] is None or _number(info["best_loss"])):
        problem = "best_loss is not a finite number or null"
    elif not _whole(info["best_epoch"]) or not 0 <= info["best_epoch"] <= epoch:
        problem = f"best_epoch is not between 0 and {epoch}"
    elif not _whole(info["waited"]) or not 0 <= info["waited"] <= epoch:
        problem = f"waited is not between 0 and {epoch}"
    if problem:
        raise ArtifactError(f"{path}: {problem}; it was edited: delete {path.parent} and "
                            "start the run again")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) <= 2**53  # beyond, no float stands for it exactly
    return isinstance(value, float) and math.isfinite(value)


def _check_tensors(tensors: dict, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   generator: torch.Generator, path: Path) -> None:
    """The state file holds exactly what :meth:`CheckpointStore.save` writes for this network:
    its weights (and best weights), Adam's moments of each parameter and both generators'
    states, each of the right shape and dtype, every number finite."""
    weights = {k: (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()}
    expected = {f"net.{k}": kind for k, kind in weights.items()}
    if any(k.startswith("best.") for k in tensors):
        expected |= {f"best.{k}": kind for k, kind in weights.items()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    moments = ("exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if any(
        group.get("amsgrad") for group in optimizer.param_groups) else ()))
    for index, param in enumerate(params):
        if any(k.startswith(f"optim.{index}.") for k in tensors):
            expected[f"optim.{index}.step"] = ((), torch.float32)
            expected |= {f"optim.{index}.{m}": (tuple(param.shape), param.dtype)
                         for m in moments}
    for name, state in (("rng.torch", torch.get_rng_state()),
                        ("rng.shuffle", generator.get_state())):
        expected[name] = (tuple(state.shape), state.dtype)
    for name in sorted(expected.keys() | tensors.keys()):
        got = tensors.get(name)
        problem = ("is missing" if got is None else "is not expected" if name not in expected
                   else None)
        if problem is None and (tuple(got.shape), got.dtype) != expected[name]:
            shape, dtype = expected[name]
            problem = (f"is {str(got.dtype).removeprefix('torch.')} of shape "
                       f"{tuple(got.shape)}, not {str(dtype).removeprefix('torch.')} of "
                       f"shape {shape}")
        elif problem is None and got.is_floating_point() and not torch.isfinite(got).all():
            problem = "holds a value that is not finite"
        elif problem is None and name.endswith(".step") and not (
                got >= 1 and got == torch.round(got)):
            problem = f"is {got.item()}, not a count of 1 or more Adam steps"
        if problem:
            raise ArtifactError(f"{path}: {shown(name)} {problem}; it was edited: delete "
                                f"{path.parent} and start the run again")


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
