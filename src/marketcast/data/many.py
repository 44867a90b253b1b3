"""Many tickers read once: :func:`load_many` is :func:`~marketcast.data.load_prices` for a
list of tickers (or all of a source), each held to the same data contract.

A ticker that cannot be read, or breaks the contract, is recorded with the reason and the
others go on; rows with an empty ticker are recorded too, never dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from marketcast.data.load import parse_date, prepare_frame, validate_prices
from marketcast.data.sources import read_many
from marketcast.errors import SHOWN, DataError, MarketcastError

log = logging.getLogger("marketcast")


def load_many(
    source: str,
    tickers: Sequence[str] | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    date_column: str | None = None,
    target: str = "close",
    features: Sequence[str] = (),
    fill: str = "none",
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Frames satisfying the data contract per ticker, and ``{ticker: why it was left out}``.

    Each ticker's frame is exactly what ``load_prices(source, ticker=...)`` returns for it;
    ``tickers`` None takes every ticker of the source (upper-cased names). The per-ticker
    notes of loading (dates sorted, warm-up days dropped) are logged once per kind, with the
    number of tickers they concern.
    """
    parse_date(start, "start"), parse_date(end, "end")  # a bad date fails every ticker
    strict = () if fill != "none" else (target, *features)
    raw, skipped = read_many(source, tickers, date_column=date_column, strict=strict)
    if "" in raw:
        rows = len(raw.pop(""))
        skipped["(no ticker)"] = f"{rows} rows of {source} have an empty ticker"
    frames = {}
    notes = _OncePerKind()
    log.addFilter(notes)
    try:
        for ticker, frame in raw.items():
            try:
                frame = prepare_frame(frame, target=target, features=features, start=start,
                                      end=end)
                frames[ticker] = validate_prices(frame, target=target, features=features,
                                                 fill=fill)
            except MarketcastError as exc:
                skipped[ticker] = str(exc)
    finally:
        log.removeFilter(notes)
        notes.say()
    if not frames:
        reasons = "; ".join(f"{t}: {why}"[:SHOWN * 3] for t, why in list(skipped.items())[:3])
        raise DataError(f"no usable ticker in {source} ({reasons})")
    return frames, skipped


class _OncePerKind(logging.Filter):
    """Holds back the per-ticker data notes (dates sorted, warm-up days dropped); ``say``
    then logs each kind once, with the number of tickers it concerned."""

    def __init__(self):
        super().__init__()
        self.kinds: dict[str, list[logging.LogRecord]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        self.kinds.setdefault(str(record.msg), []).append(record)
        return False

    def say(self) -> None:
        for records in self.kinds.values():
            more = f" (and {len(records) - 1} more tickers)" if len(records) > 1 else ""
            log.warning("%s%s", records[0].getMessage(), more)
