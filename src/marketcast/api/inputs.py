"""What the Python API functions accept: data in memory or a source, a Config, and keyword
overrides of single settings (``mc.run(y, epochs=20)``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from marketcast.config import Config, load_config
from marketcast.errors import ConfigError

# Short names that read better in a call than the setting they stand for.
ALIASES = {"epochs": "train.max_epochs"}
# The data source recorded for prices passed in memory (there is no file to read again).
MEMORY = "memory"

Data = pd.Series | pd.DataFrame | str | Path | None


def setting_names() -> dict[str, str]:
    """Every setting's keyword name -> ``section.key`` (names are unique across sections)."""
    names = {}
    for section in dataclasses.fields(Config):
        for field in dataclasses.fields(section.default_factory):
            names[field.name] = f"{section.name}.{field.name}"
    return {**names, **ALIASES}


def resolve(data: Data, config: Config | None, config_path: str | Path | None,
            overrides: dict[str, Any]) -> tuple[Config, pd.Series | pd.DataFrame | None]:
    """The config (defaults < ``config_path`` or ``config`` < ``data`` < ``overrides``) and
    the prices in memory, if ``data`` holds them."""
    names = setting_names()
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; settings: "
                          f"{', '.join(sorted(names))}")
    dotted = {names[k]: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    in_memory = isinstance(data, pd.Series | pd.DataFrame)
    if in_memory:
        dotted.setdefault("data.source", MEMORY)
    elif data is not None:
        dotted.setdefault("data.source", str(data))
    config = load_config(config_path, dotted, base=config)
    return config, data if in_memory else None


def write_target(write: bool | str | Path | None, config_given: bool,
                 config: Config) -> Config | None:
    """The config whose ``output.runs_dir`` the result is written to, or None to keep it in
    memory. ``write``: True, False, or the runs folder; None writes when a Config was
    passed (as the command line does) and not otherwise."""
    if write is None:
        write = config_given
    if write is False:
        return None
    if write is True:
        return config
    return dataclasses.replace(config, output=dataclasses.replace(
        config.output, runs_dir=str(write)))
