"""The classic study: validation accuracy for every combination of a grid, by epoch count.

``epochs`` and each setting of ``grid`` (batch size, units, lookback, ...) are lists; every
combination of the settings other than epochs is trained once, seeded, to the largest epoch
count with early stopping off, and scored on the validation days after every epoch
(:mod:`marketcast.scale.trial`). Without early stopping a training to 100 epochs passes
through exactly the weights a training to 25 or 50 would end with (same seed, same batches,
same updates), so one training per combination gives every epoch count. The test period is
cut off before the first training (:func:`marketcast.scale.tune.validation_data`'s rows).
Trainings run one after another here, or as Ray tasks (``backend="ray"``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from marketcast import files
from marketcast.config import Config, config_to_toml
from marketcast.errors import ConfigError, MarketcastError, TrainingError, os_errors
from marketcast.models.windows import Split
from marketcast.pipeline.series import Series, load_series, split_series
from marketcast.runs.layout import BEST_CONFIG, EPOCHS, STUDY, Kind
from marketcast.scale.folder import write_search
from marketcast.scale.trial import EPOCH_COLUMNS, fit_scored

BACKENDS = ("local", "ray")
# The settings a grid may list, with their config keys, in the order of the tables.
GRID = {"lookback": "model.lookback", "layers": "model.layers", "units": "model.units",
        "dropout": "model.dropout", "learning_rate": "train.learning_rate",
        "batch_size": "train.batch_size"}
SCORES = ["val_loss", "val_rmse", "val_theils_u"]

OnDone = Callable[[int, int], None]  # (epochs trained, total over every training)


@dataclass
class StudyResult:
    """``table``: one row per combination and epoch count studied (scores, training
    seconds to reach it); ``epochs``: every epoch of every training; ``best_config`` (the
    combination with the lowest validation RMSE) is written to ``config_path``."""

    table: pd.DataFrame
    epochs: pd.DataFrame
    best_config: Config
    path: Path
    seconds: float
    config_path: Path


def parse_list(flag: str, text: str, kind: type) -> tuple:
    """``"16,32,64"`` as sorted, distinct numbers of ``kind``; a :class:`ConfigError` naming
    ``flag`` otherwise."""
    try:
        values = tuple(sorted({kind(v) for v in str(text).split(",") if v.strip()}))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers, "
                          "e.g. 16,32,64") from None
    if not values:
        raise ConfigError(f"{flag} {text!r}: expected at least one number")
    return values


@os_errors
def study(config: Config, epochs: Sequence[int], grid: dict[str, Sequence] | None = None,
          backend: str = "local", address: str | None = None, output: str | Path | None = None,
          on_done: OnDone | None = None) -> StudyResult:
    """Train every combination of ``grid`` (``{"batch_size": (32, 64), ...}``, keys of
    :data:`GRID`; unlisted settings keep ``config``'s) to ``max(epochs)`` with early stopping
    off and write a ``study`` run folder; with ``output``, the preferred configuration also
    goes there."""
    grid = {k: tuple(v) for k, v in (grid or {}).items()}
    unknown = sorted(set(grid) - set(GRID))
    if unknown:
        raise ConfigError(f"a study cannot vary {', '.join(unknown)}; it varies "
                          f"{', '.join(GRID)} and epochs")
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    epochs = tuple(sorted(set(epochs)))
    if not epochs or epochs[0] < 1:
        raise ConfigError(f"--epochs {','.join(map(str, epochs))}: every count must be at "
                          "least 1")
    grid.setdefault("batch_size", (config.train.batch_size,))
    settings = [k for k in GRID if k in grid]
    started = time.perf_counter()
    _, series = load_series(config)
    combos = [dict(zip(settings, values, strict=True))
              for values in itertools.product(*(grid[k] for k in settings))]
    jobs = [_job(series, config, combo, epochs[-1]) for combo in combos]
    run = _train_ray if backend == "ray" else _train_here
    trained = run(jobs, address, on_done)
    long = _epoch_table(combos, trained, settings)
    table = long[long["epoch"].isin(epochs)].rename(columns={"epoch": "epochs"})
    table = table.drop(columns=["train_loss", "epoch_seconds"]).reset_index(drop=True)
    best = table.loc[table["val_rmse"].idxmin()]
    preferred = combos[int(best["combination"])]
    best_config = _combo_config(config, preferred, int(best["epochs"]))
    seen, split = jobs[0][0], jobs[0][1]
    summary = {"backend": backend, "epochs": list(epochs),
               "grid": {k: list(grid[k]) for k in settings}, "trainings": len(combos),
               "preferred": {**preferred, "epochs": int(best["epochs"]),
                             **{s: best[s] for s in SCORES}}}
    path = write_search(Kind.STUDY, config, seen, split, {STUDY: table, EPOCHS: long},
                        best_config, summary, time.perf_counter() - started)
    if output is not None:
        files.write_text(Path(output), config_to_toml(best_config))
    return StudyResult(table, long, best_config, path, time.perf_counter() - started,
                       Path(output) if output is not None else path / BEST_CONFIG)


def _combo_config(config: Config, combo: dict, max_epochs: int) -> Config:
    """``config`` with the combination's settings, ``max_epochs`` and early stopping off
    (patience as long as the training)."""
    values = {GRID[k]: v.item() if hasattr(v, "item") else v for k, v in combo.items()}
    return config.with_overrides({**values, "train.max_epochs": max_epochs,
                                  "train.patience": max_epochs})


def _job(series: Series, config: Config, combo: dict, max_epochs: int
         ) -> tuple[Series, Split, Config]:
    """The rows before the test period, their split and the configuration of one training."""
    combo_config = _combo_config(config, combo, max_epochs)
    split = split_series(series, combo_config)
    if split.n_val == 0:
        raise ConfigError("a study needs a validation period; set --val-fraction above 0")
    return series.head(split.test_start), split, combo_config


def train_one(seen: Series, split: Split, config: Config, threads: int | None = None,
              on_epoch: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """One training of the study (see :func:`marketcast.scale.trial.fit_scored`)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return fit_scored(seen, split, config, on_epoch)


def _train_here(jobs, address, on_done) -> list[pd.DataFrame]:
    total = sum(config.train.max_epochs for _, _, config in jobs)
    done, results = 0, []

    def count(_: dict) -> None:
        nonlocal done
        done += 1
        if on_done is not None:
            on_done(done, total)

    for seen, split, config in jobs:
        results.append(train_one(seen, split, config, on_epoch=count))
    return results


def _train_ray(jobs, address, on_done) -> list[pd.DataFrame]:
    from marketcast.scale.distributed import ray_session

    with ray_session(address) as ray:
        task = ray.remote(num_cpus=1, max_retries=0)(train_one)
        pending = {task.remote(seen, split, config, 1): i
                   for i, (seen, split, config) in enumerate(jobs)}
        results: dict[int, pd.DataFrame] = {}
        total = sum(config.train.max_epochs for _, _, config in jobs)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            try:
                results[pending.pop(ready[0])] = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                # Our own error (a diverging loss, say) as it would be raised here.
                cause = getattr(exc, "cause", None)
                if isinstance(cause, MarketcastError):
                    raise cause from None
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise TrainingError(f"a study training failed on Ray: {first}") from None
            if on_done is not None:  # a training's epochs at once, when it ends
                on_done(sum(len(r) for r in results.values()), total)
    return [results[i] for i in range(len(jobs))]


def _epoch_table(combos: list[dict], trained: list[pd.DataFrame],
                 settings: list[str]) -> pd.DataFrame:
    """The long table of ``epochs.csv``: one row per combination and epoch, with the
    training seconds to reach that epoch (``seconds``)."""
    frames = []
    for number, (combo, epochs) in enumerate(zip(combos, trained, strict=True)):
        frame = epochs.drop(columns="last").assign(combination=number, **combo)
        frame["seconds"] = frame["epoch_seconds"].cumsum()
        frames.append(frame)
    columns = ["combination", *settings, *[c for c in EPOCH_COLUMNS if c != "last"], "seconds"]
    return pd.concat(frames, ignore_index=True)[columns]
