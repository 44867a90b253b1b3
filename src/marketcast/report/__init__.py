"""``report.html`` of a run folder: verdict, plots and tables in one offline page."""

from marketcast.report.render import REPORT, render_report, report

__all__ = ["REPORT", "render_report", "report"]
