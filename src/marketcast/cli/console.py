"""The CLI's two consoles: results on stdout; notes, progress and errors on stderr."""

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
