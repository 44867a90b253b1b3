"""The ``marketcast data`` commands: summary, download, list and check of price sources."""

from __future__ import annotations

import click
from rich.table import Table

from marketcast.cli.console import out

SOURCE_HELP = ("sp500 (bundled S&P 500), store:TICKER, a CSV or Parquet file, or a folder of "
               "per-ticker files.")


@click.group(invoke_without_command=True)
@click.option("--data", "--source", "source", default="sp500", show_default=True,
              help=SOURCE_HELP)
@click.option("--ticker", default=None, help="Ticker to keep from a multi-ticker file.")
@click.option("--start", default=None, help="First date kept, YYYY-MM-DD.")
@click.option("--end", default=None, help="Last date kept, YYYY-MM-DD.")
@click.option("--date-column", default=None, help="Name of the CSV's date column.")
@click.option("--target", default="close", show_default=True, help="Column that must be clean.")
@click.pass_context
def data(ctx, source, ticker, start, end, date_column, target) -> None:
    """Summarise a data source: rows, dates, columns, gaps, missing values, quality.

    Subcommands download prices into the local store, list the tickers of a source and
    check its quality.
    """
    if ctx.invoked_subcommand is not None:
        given = [p.opts[0] for p in ctx.command.params if p.name in ctx.params and
                 ctx.get_parameter_source(p.name) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"put {', '.join(given)} after the subcommand: "
                                   f"marketcast data {ctx.invoked_subcommand} {given[0]} VALUE")
        return
    from marketcast.data import load_prices, summarize

    frame = load_prices(source, ticker=ticker, start=start, end=end, date_column=date_column,
                        target=target, features=(target,))
    summary = summarize(frame, target)
    table = Table(title=f"data: {source}", show_header=False)
    for key, value in summary.items():
        if key == "quality":
            value = ", ".join(f"{k} {v['count']} (first {v['dates'][0]})"
                              for k, v in value.items() if v["count"]) or "no findings"
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


@data.command()
@click.argument("tickers", nargs=-1, required=True)
@click.option("--start", default=None,
              help="First date, YYYY-MM-DD (default: the stored first date, or 2000-01-01).")
@click.option("--end", default=None, help="Last date, YYYY-MM-DD (default: today).")
@click.option("--store", default=None,
              help="Store folder (default: $MARKETCAST_STORE or the user cache directory).")
def download(tickers, start, end, store) -> None:
    """Download daily prices from Yahoo Finance into the local store (one Parquet file per
    ticker; only missing dates are fetched). Needs: pip install "marketcast[download]"."""
    from marketcast.data import download as download_api

    table = Table(title="download")
    for column in ("ticker", "rows added", "first", "last", "file"):
        table.add_column(column)
    for r in download_api(tickers, start=start, end=end, store=store):
        added = f"{r.rows_added} (history restated: all refetched)" if r.refetched \
            else str(r.rows_added)
        table.add_row(r.ticker, added, r.start or "-", r.end or "-", str(r.path))
    out.print(table)


@data.command("list")
@click.option("--data", "--source", "source", default=None,
              help="A source to list (file, folder, sp500); default: the download store.")
@click.option("--store", default=None,
              help="Store folder (default: $MARKETCAST_STORE or the user cache directory).")
@click.option("--date-column", default=None, help="Name of the CSV's date column.")
def list_(source, store, date_column) -> None:
    """List the tickers of a source (or of the store) with their date ranges."""
    from marketcast.data import list_store, list_tickers

    if source is not None and store is not None:
        raise click.UsageError("give --data or --store, not both")
    frame = list_store(store) if source is None else list_tickers(source,
                                                                  date_column=date_column)
    title = source or "store"
    if frame.empty:
        out.print(f"{title}: no tickers; `marketcast data download TICKER` fills the store")
        return
    table = Table(title=f"{title}: {len(frame)} tickers")
    for column in frame.columns:
        table.add_column(column, justify="right" if column == "rows" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*("-" if v is None else str(v) for v in row))
    out.print(table)


@data.command()
@click.option("--data", "--source", "source", default="sp500", show_default=True,
              help=SOURCE_HELP)
@click.option("--ticker", default=None, help="Check one ticker; default: every ticker.")
@click.option("--start", default=None, help="First date checked, YYYY-MM-DD.")
@click.option("--end", default=None, help="Last date checked, YYYY-MM-DD.")
@click.option("--date-column", default=None, help="Name of the CSV's date column.")
@click.option("--target", default="close", show_default=True,
              help="Price column for the move-based checks.")
@click.option("--strict", is_flag=True, help="Any finding is an error (exit code 2).")
def check(source, ticker, start, end, date_column, target, strict) -> None:
    """Check data quality: NYSE gaps, zero volume, OHLC order, bad prints, unadjusted
    splits, jumps and stale prices, with their dates."""
    from marketcast.data import CHECKS, check_data
    from marketcast.errors import DataError

    report = check_data(source, ticker=ticker, start=start, end=end, date_column=date_column,
                        target=target)
    rows = report.summary()
    if rows:
        table = Table(title=f"data check: {source}")
        for column in ("ticker", "check", "count", "dates"):
            table.add_column(column, justify="right" if column == "count" else "left")
        for row in rows:
            table.add_row(row["ticker"], row["check"], str(row["count"]), row["dates"])
        out.print(table)
        for name in [c for c in CHECKS if c in {r["check"] for r in rows}]:
            out.print(f"{name}: {CHECKS[name]}", soft_wrap=True, markup=False)
    n_tickers = len({r["ticker"] for r in rows})
    out.print(f"checked {_count(len(report.tickers), 'ticker')}: "
              f"{_count(len(report.findings), 'finding')} in {n_tickers} of them")
    if strict and rows:
        first = rows[0]
        raise DataError(
            f"data check found {_count(len(report.findings), 'problem')} in "
            f"{_count(n_tickers, 'ticker')} (first: "
            f"{first['ticker']} {first['check']} on {first['dates'].split(',')[0]}); fix the "
            "data or run without --strict"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
