"""Price data: sources, the one data contract, features, quality checks and the store.

The price frame every other module receives satisfies this contract, enforced once by
:func:`validate_prices` (called by :func:`load_prices`):

- a ``DatetimeIndex`` named ``date``, timezone-naive, strictly increasing, unique, within
  the years of the NYSE calendar (1886 to 2199);
- lower-case column names (``"Adj Close"`` becomes ``adj_close``), float64 values;
- the target and the feature columns hold finite values with no NaN; the target's lie
  between ``1 / MAX_PRICE`` and ``MAX_PRICE`` (1e-50 to 1e50).

Downstream code trusts the contract and does not check it again.

Modules: :mod:`~marketcast.data.readers` (CSV text to frames), :mod:`~.sources` (built-in,
store, file and folder sources; single, long and wide layouts), :mod:`~.load` (the contract),
:mod:`~.features` (causal derived features), :mod:`~.quality` (the checks of ``marketcast
data check``) and :mod:`~.store` (the Parquet download store).
"""

from marketcast.data.load import check_data, data_sha256, load_prices, summarize, validate_prices
from marketcast.data.quality import CHECKS, QualityReport, check_prices
from marketcast.data.sources import list_tickers
from marketcast.data.store import download, list_store

__all__ = [
    "CHECKS",
    "QualityReport",
    "check_data",
    "check_prices",
    "data_sha256",
    "download",
    "list_store",
    "list_tickers",
    "load_prices",
    "summarize",
    "validate_prices",
]
