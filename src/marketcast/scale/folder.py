"""The run folder of a search on the validation period (``tune`` and ``study``).

Written like every other run folder: staged under a hidden name, then ``manifest.json``
with the sha256 of every file, then renamed into place. It holds the resolved
configuration, the search's tables, the configuration the validation period prefers as
TOML (for ``marketcast run --config``), ``metrics.json`` and ``report.html``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marketcast import files
from marketcast.config import Config, config_to_toml
from marketcast.models.windows import Split
from marketcast.pipeline.series import Series
from marketcast.runs import folder as run_folder
from marketcast.runs import layout


def write_search(kind: layout.Kind, config: Config, seen: Series, split: Split,
                 tables: dict[str, pd.DataFrame], best: Config, summary: dict,
                 seconds: float) -> Path:
    """Write the folder of a ``tune`` or ``study`` (``kind``) under the configured runs
    folder and name; return its path. ``seen`` is the rows before the test period."""
    from marketcast.report import render_report

    source = config.data.ticker or config.data.source
    with run_folder.staged(config.output.runs_dir, config.output.name,
                           label=f"{kind}-{Path(source).name}", kind=kind) as folder:
        out = folder.path
        files.write_text(out / layout.CONFIG, config_to_toml(config))
        files.write_text(out / layout.BEST_CONFIG, config_to_toml(best))
        for name, table in tables.items():
            files.write_csv(out / name, table)
        files.write_json(out / layout.METRICS, {
            "kind": str(kind),
            "data": {"rows": len(seen.y), "start": seen.dates[0].date().isoformat(),
                     "end": seen.dates[-1].date().isoformat()},
            "split": {"train": _span(seen.dates[: split.n_train]),
                      "validation": _span(seen.dates[split.n_train :]),
                      "rows": [split.n_train, split.n_val, split.n_test]},
            **summary,
            "wall_seconds": round(seconds, 2),
            "environment": files.environment(),
        })
        files.write_text(out / layout.REPORT, render_report(out, kind))
    return folder.final


def _span(dates: pd.DatetimeIndex) -> list[str]:
    return [dates[0].date().isoformat(), dates[-1].date().isoformat()]
