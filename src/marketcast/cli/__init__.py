"""The command line: ``marketcast`` and its commands (:mod:`~.main`, :mod:`~.data`)."""

from marketcast.cli.main import cli, main

__all__ = ["cli", "main"]
