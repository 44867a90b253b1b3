"""Ray, the optional engine for running many jobs or trials past one process.

Ray is an extra (``pip install "marketcast[ray]"``); importing this module does not import
Ray. :func:`ray_session` reuses a Ray already initialised in the process (a test fixture, a
notebook), connects to ``address`` when given, or starts a local Ray sized to the machine,
listening on 127.0.0.1 only (:func:`start_local`), and shuts it down afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from marketcast.errors import ConfigError, MissingDependencyError

INSTALL_HINT = 'pip install "marketcast[ray]"'
# Ray's switch between a single-machine node on loopback ("0") and a cluster node.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require_ray():
    """The ``ray`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            f"this command needs Ray, which is not installed; install it with {INSTALL_HINT}"
        ) from None
    return ray


def start_local(ray, **options) -> None:
    """Start a Ray on this machine whose every service listens on 127.0.0.1 only.

    Ray has no authentication, so a local Ray must not be reachable from the network.
    ``node_ip_address`` alone does not do it (Ray turns 127.0.0.1 back into the machine's
    address, and its servers then listen on every interface); Ray's own single-machine mode
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, its default on macOS and Windows) makes the
    node address loopback, and every server binds to it. The switch is read when ``ray`` is
    imported, so it is set both for the processes Ray starts (environment) and in this one.
    """
    import ray._private.ray_constants as ray_constants

    os.environ[LOOPBACK_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             **options)


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
        start_local(ray, num_cpus=os.cpu_count() or 1)
    try:
        yield ray
    finally:
        ray.shutdown()
