"""Progress bars on stderr for long commands: training epochs, tickers done, trials done.

Each is a context manager yielding a callback, or None when the console is not a terminal
(nothing is drawn into pipes and log files).
"""

from __future__ import annotations

from rich.console import Console


class EpochProgress:
    """Rich progress bar for training epochs on stderr, started by the first epoch; nothing
    is drawn when stderr is not a terminal."""

    def __init__(self, console: Console):
        self.console, self.bar = console, None

    def __enter__(self):
        return self.callback if self.console.is_terminal else None

    def callback(self, log, max_epochs: int) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("epoch {task.completed}/{task.total}"), BarColumn(),
                                TextColumn("{task.description}"), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("", total=max_epochs)
        self.bar.update(self.task, completed=log.epoch,
                        description=f"train {log.train_loss:.5f}  val {log.val_loss:.5f}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


class CountProgress:
    """Rich progress bar of ``done/total`` jobs on stderr (with the best value so far when
    ``best``); nothing is drawn, and the callback is None, when stderr is not a terminal."""

    def __init__(self, console: Console, label: str, best: bool = False):
        self.console, self.label, self.best, self.bar = console, label, best, None

    def __enter__(self):
        return self.callback if self.console.is_terminal else None

    def callback(self, done: int, total: int, best: float | None = None) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(f"{self.label} {{task.completed}}/{{task.total}}"),
                                BarColumn(), TextColumn("{task.description}"),
                                TimeElapsedColumn(), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("", total=total)
        text = f"best {best:.6g}" if self.best and best is not None else ""
        self.bar.update(self.task, completed=done, description=text)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
