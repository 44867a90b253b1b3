"""A run folder as one self-contained HTML page: the verdict, plots and tables.

The report renders from the files of a run folder (tables in, HTML out); it never fits or
predicts. CSS is inline and every image is a PNG data URI, so the page opens offline and
requests nothing. Rendering is deterministic: the same folder gives the same bytes.

Every section is always present; one the folder has nothing for (a backtest keeps no loss
history, a run has no walk-forward table) says so and what to run to get it.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from marketcast.errors import ArtifactError, os_errors, shown
from marketcast.report import plots
from marketcast.report.blocks import RunFiles, code
from marketcast.report.panel import global_sections
from marketcast.report.search import search_sections
from marketcast.report.single import single_sections
from marketcast.runs import folder as run_folder
from marketcast.runs.layout import Kind

REPORT = "report.html"


@os_errors
def report(run_dir: str | Path) -> Path:
    """Write ``report.html`` into a finished run folder and add it to the manifest.

    The folder is verified against its manifest first, so the report shows only files that
    are what the run wrote. Returns the report's path; an unchanged report is not rewritten.
    """
    folder = Path(run_dir)
    run_folder.verify_folder(folder, replacing=REPORT)
    try:
        html = render_report(folder)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # The files match the manifest, but someone who rewrote them resealed it.
        raise ArtifactError(
            f"{folder} holds values marketcast did not write ({type(exc).__name__}: "
            f"{shown(str(exc), 80)}); use an untouched run folder, or run again") from None
    return run_folder.add_to_run(folder, REPORT, html)


def render_report(folder: str | Path, kind: Kind | None = None) -> str:
    """The report of the run, backtest or train folder ``folder`` as HTML text."""
    run = RunFiles.read(Path(folder), kind)
    many = run.kind == Kind.GLOBAL or run.tickers
    if run.kind in (Kind.TUNE, Kind.STUDY):
        sections = search_sections(run)
    else:
        sections = global_sections(run) if many else single_sections(run)
    env = jinja2.Environment(loader=jinja2.PackageLoader("marketcast.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["code"] = code
    return env.get_template("report.html.j2").render(
        title=run.title, subtitle=run.subtitle, sections=sections, colors=plots.COLORS)
