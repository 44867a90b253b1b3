"""Ray, the optional engine for running many jobs or trials past one process.

Ray is an extra (``pip install "marketcast[ray]"``); importing this module does not import
Ray. :func:`ray_session` reuses a Ray already initialised in the process (a test fixture, a
notebook), connects to ``address`` when given, or starts a local Ray sized to the machine and
shuts it down afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from marketcast.errors import ConfigError, MissingDependencyError

INSTALL_HINT = 'pip install "marketcast[ray]"'


def require_ray():
    """The ``ray`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            f"this command needs Ray, which is not installed; install it with {INSTALL_HINT}"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator:
    """Yield an initialised ``ray`` module; shut down only a Ray started here."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot connect to Ray at {address} ({first}); check --ray-address"
            ) from None
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()
