"""NYSE trading days (exchange-calendars ``XNYS``): no weekends, no exchange holidays."""

from __future__ import annotations

import functools
import warnings

import pandas as pd

from marketcast.errors import DataError

# exchange-calendars' XNYS starts in 1886; pandas' nanosecond dates end in 2262.
FIRST_YEAR, LAST_YEAR = 1886, 2200


@functools.lru_cache(maxsize=8)
def _xnys(start_year: int, end_year: int):
    import exchange_calendars as xcals

    # exchange-calendars trips pandas deprecation warnings of its own; they are not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return xcals.get_calendar("XNYS", start=f"{start_year}-01-01", end=f"{end_year}-12-31")


def nyse_sessions(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE sessions from ``start`` to ``end`` inclusive, timezone-naive.

    Raises :class:`DataError` when the range lies outside the years the calendar covers.
    """
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end.year < FIRST_YEAR or end.year >= LAST_YEAR:
        raise DataError(
            f"dates up to {end.date()} are outside the NYSE calendar ({FIRST_YEAR} to "
            f"{LAST_YEAR - 1}); check the date column of the data"
        )
    calendar = _xnys(max(start.year, FIRST_YEAR), end.year + 1)
    # The calendar starts at its first session: a holiday or weekend before it has none.
    start = max(start, pd.Timestamp(calendar.first_session).tz_localize(None))
    return pd.DatetimeIndex(calendar.sessions_in_range(start, end), name="date").tz_localize(None)


def next_trading_days(last: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    """The ``n`` NYSE sessions strictly after ``last``."""
    last = pd.Timestamp(last).normalize()
    # Roughly 252 sessions a year: twice the calendar days needed, plus holiday slack.
    end = last + pd.Timedelta(days=2 * n + 14)
    sessions = nyse_sessions(last, end)
    return pd.DatetimeIndex(sessions[sessions > last][:n], name="date")
