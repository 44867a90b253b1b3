"""The global model trained data-parallel on Ray Train (``run --tickers ... --train-workers N``).

The driver puts the pooled panel (``Z`` and the cutoffs) into Ray's object store once; each
of the N workers (``ray.train.torch.TorchTrainer``, gloo on CPU) reads it from there (on the
driver's machine without a copy: numpy arrays in the object store are shared memory) and
runs the loop of :func:`marketcast.nn.train.fit_network` on its share of every epoch
(:class:`marketcast.nn.parallel.DataParallel`). Worker 0 puts our own checkpoint (the files
of :class:`~marketcast.nn.checkpoint.CheckpointStore`: safetensors and JSON) into a Ray Train
checkpoint after every epoch. A failed worker restarts the group from the last one
(``FailureConfig``); a stopped run resumes from it with ``run --resume``, because Ray Train
keeps its storage in the run's checkpoint folder (``.checkpoints/NAME/ray``), which the run
removes once its folder is written. The driver reads the last checkpoint back: the best
weights, the loss history and the best epoch, exactly what one process returns.

On a Ray that listens on 127.0.0.1 only (the one marketcast starts), the workers' process
group is made here, not by ``TorchTrainer``: torch's rendezvous server (``TCPStore``) listens
on every network interface whatever address it is given, so the workers meet through a file
store in a temporary folder instead, and gloo is bound to the loopback interface. Nothing
else changes; on a cluster (``--ray-address``) ``TorchTrainer`` sets the group up as usual.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from marketcast import files
from marketcast.config import Config, TrainConfig
from marketcast.errors import ConfigError, MarketcastError, TrainingError, os_errors
from marketcast.nn.checkpoint import CHECKPOINT, CheckpointStore
from marketcast.nn.network import StackedLSTM
from marketcast.nn.parallel import DataParallel, same_weights
from marketcast.nn.train import Callback, EpochLog, TrainState, fit_network
from marketcast.scale.distributed import ray_session, require_ray

# Restarts of the worker group after a worker fails, each from the last checkpoint.
MAX_FAILURES = 2
# Ray Train's name for the run, inside the run's own checkpoint folder.
RAY_FOLDER, RAY_RUN = "ray", "train"
LOOPBACK = "127.0.0.1"


@os_errors
def run_global(config: Config, address: str | None = None, **kwargs):
    """:func:`marketcast.run_global` with the network trained on ``config.train.workers``
    Ray Train workers (Ray at ``address``, or started on this machine, on 127.0.0.1 only).
    The run folder is the one a one-process run writes."""
    from marketcast.api import run_global as run_global_api

    if config.train.workers < 1:
        raise ConfigError("training on Ray needs --train-workers 1 or more")
    return run_global_api(config, trainer=ray_trainer(config.train.workers, address), **kwargs)


def ray_trainer(workers: int, address: str | None = None) -> Callable:
    """A trainer for :meth:`marketcast.models.LSTMForecaster.fit_many`: the arguments and
    result of :func:`marketcast.nn.train.fit_network`, trained on ``workers`` workers."""

    def train(net, Z, train_cutoffs, val_cutoffs, lookback, horizon, config, callback=None,
              checkpoints=None):
        return fit_on_ray(net, (Z, train_cutoffs, val_cutoffs), lookback, horizon, config,
                          workers, address, callback, checkpoints)

    return train


def fit_on_ray(net: StackedLSTM, inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
               lookback: int, horizon: int, config: TrainConfig, workers: int,
               address: str | None = None, callback: Callback | None = None,
               checkpoints: CheckpointStore | None = None) -> tuple[list[EpochLog], int]:
    """Train ``net`` in place on ``inputs`` (``Z``, train and validation cutoffs) on Ray
    Train; return the loss history and the best epoch, as ``fit_network`` does.

    ``callback`` sees every epoch once training has ended (the workers train in other
    processes). Ray Train keeps its checkpoints in ``checkpoints.folder`` (a temporary
    folder without one).
    """
    require_ray()
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    with contextlib.ExitStack() as stack:
        folder = (Path(checkpoints.folder) if checkpoints is not None
                  else Path(stack.enter_context(tempfile.TemporaryDirectory())))
        storage = folder.resolve() / RAY_FOLDER
        ray = stack.enter_context(ray_session(address))
        cpus = max(1, int(ray.available_resources().get("CPU", 1)) // workers)
        loopback = ray.util.get_node_ip_address() == LOOPBACK
        setup = {
            "inputs": ray.put(inputs),  # once; every worker reads it from the object store
            "shape": (net.lstm.input_size, net.lstm.hidden_size, net.lstm.num_layers,
                      net.dropout.p, net.head.out_features),
            # The initial weights and dropout generator of this process: one worker
            # continues exactly as this process would.
            "weights": {k: v.clone() for k, v in net.state_dict().items()},
            "rng": torch.get_rng_state(), "lookback": lookback, "horizon": horizon,
            "config": config, "threads": cpus, "loopback": loopback,
        }
        trainer = trainer_class(loopback)(
            train_worker, train_loop_config=setup,
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                         resources_per_worker={"CPU": cpus}),
            run_config=RunConfig(name=RAY_RUN, storage_path=str(storage),
                                 failure_config=FailureConfig(max_failures=MAX_FAILURES),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)),
        )
        try:
            result = trainer.fit()
        except Exception as exc:
            if checkpoints is not None:
                keep_last(storage, checkpoints)
            if isinstance(exc, ray.train.TrainingFailedError):
                raise worker_error(exc) from None
            raise
        with result.checkpoint.as_directory() as last:
            state = read_checkpoint(Path(last), net, inputs, config)
    if state.best_weights is not None:
        net.load_state_dict(state.best_weights)
    net.eval()
    if callback is not None:
        for log in state.history:
            callback(log, config.max_epochs)
    return state.history, state.best_epoch


def trainer_class(loopback: bool):
    """``TorchTrainer``, or on a loopback Ray the same trainer without its process group
    (:func:`loopback_group` makes it)."""
    if loopback:
        from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

        return DataParallelTrainer
    from ray.train.torch import TorchTrainer

    return TorchTrainer


@contextlib.contextmanager
def loopback_group():
    """A gloo process group of this Ray Train worker group on 127.0.0.1 only, met through a
    file store in a fresh temporary folder (a new one each time the group starts)."""
    import ray.train
    import torch.distributed as dist
    from ray.train.collective import barrier, broadcast_from_rank_zero

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    folder = broadcast_from_rank_zero(tempfile.mkdtemp(prefix="marketcast-group-")
                                      if rank == 0 else None)
    os.environ["GLOO_SOCKET_IFNAME"] = loopback_interface()
    dist.init_process_group("gloo", store=dist.FileStore(str(Path(folder) / "store"), world),
                            rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()
        barrier()
        if rank == 0:
            shutil.rmtree(folder, ignore_errors=True)


def loopback_interface() -> str:
    """The name of the loopback network interface (``lo`` on Linux, ``lo0`` on macOS)."""
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in names if n.startswith("lo")), "lo")


def train_worker(setup: dict) -> None:
    """One Ray Train worker: the loop of ``fit_network`` on this worker's share."""
    with loopback_group() if setup["loopback"] else contextlib.nullcontext():
        train_share(setup)


def train_share(setup: dict) -> None:
    import ray
    import ray.train

    torch.set_num_threads(setup["threads"])
    with warnings.catch_warnings():
        # Arrays from the object store are read-only; training never writes to them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        Z, train_cutoffs, val_cutoffs = ray.get(setup["inputs"])
        torch.from_numpy(Z)  # warns once here, inside the filter
    net = StackedLSTM(*setup["shape"])
    net.load_state_dict(setup["weights"])
    torch.set_rng_state(setup["rng"])
    config = setup["config"]
    same_weights(net)
    shard = DataParallel(config.seed)
    rank = ray.train.get_context().get_world_rank()
    fit_network(net, Z, train_cutoffs, val_cutoffs, setup["lookback"], setup["horizon"],
                config, checkpoints=RayCheckpoints(rank), shard=shard)


class RayCheckpoints:
    """The checkpoints of one worker: restored from Ray Train's last checkpoint; saved by
    worker 0 into a new one after every epoch (every worker reports, as Ray Train needs)."""

    def __init__(self, rank: int):
        self.rank = rank
        self.store: CheckpointStore | None = None

    def restore(self, net, optimizer, generator, inputs) -> TrainState | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            with tempfile.TemporaryDirectory() as empty:
                self.store = CheckpointStore(Path(empty))
                return self.store.restore(net, optimizer, generator, inputs)  # the digest
        with checkpoint.as_directory() as folder:
            self.store = CheckpointStore(Path(folder))
            return self.store.restore(net, optimizer, generator, inputs)

    def save(self, state: TrainState, net, optimizer, generator) -> None:
        import ray.train

        last = state.history[-1]
        metrics = {"epoch": state.epoch, "train_loss": last.train_loss,
                   "val_loss": last.val_loss}
        if self.rank:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            self.store.folder = Path(folder)
            self.store.save(state, net, optimizer, generator)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                             checkpoint_dir_name=f"epoch-{state.epoch:04d}")


def read_checkpoint(folder: Path, net: StackedLSTM, inputs: tuple,
                    config: TrainConfig) -> TrainState:
    """The training state in the checkpoint ``folder`` (weights loaded into ``net``)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    state = CheckpointStore(folder).restore(net, optimizer, torch.Generator(), inputs)
    if state is None:
        raise TrainingError(f"Ray Train returned no checkpoint in {folder}")
    return state


def keep_last(storage: Path, checkpoints: CheckpointStore) -> None:
    """Copy the last checkpoint Ray Train saved into ``checkpoints.folder``, so the run is
    kept to be resumed (the copy records the epoch; Ray Train resumes from its own)."""
    saved = sorted(storage.glob(f"{RAY_RUN}/epoch-*/{CHECKPOINT}"))
    if not saved:
        return
    info = files.read_json(saved[-1])
    for name in (CHECKPOINT, info.get("state_file", "")):
        source = saved[-1].parent / name
        if name and source.is_file():
            shutil.copyfile(source, Path(checkpoints.folder) / name)
    checkpoints.epoch = int(info.get("epoch", 0))


def worker_error(exc: Exception) -> MarketcastError:
    """Our error that stopped a worker, or a training error with the worker's message."""
    for failure in getattr(exc, "worker_failures", {}).values():
        cause = getattr(failure, "cause", None) or failure
        if isinstance(cause, MarketcastError):
            return cause
    text = [line for line in str(exc).splitlines() if line.strip()]
    return TrainingError(f"data-parallel training on Ray failed ({text[-1] if text else exc})")

