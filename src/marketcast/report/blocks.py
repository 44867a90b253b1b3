"""What every report is built from: the files of a run folder read once (:class:`RunFiles`),
and the blocks a section holds (notes, figures, tables, key-value pairs)."""

from __future__ import annotations

import base64
import functools
import io
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import markupsafe
import pandas as pd

from marketcast import files
from marketcast.errors import ArtifactError
from marketcast.evaluation.metrics import BENCHMARK, accuracy
from marketcast.runs import folder as run_folder
from marketcast.runs import layout
from marketcast.runs.schema import validate_metrics

SECTIONS = {
    "verdict": "Verdict", "config": "Configuration", "data": "Data", "loss": "Training loss",
    "test": "Test period", "backtest": "Backtest", "strategy": "Strategy",
    "forecast": "Forecast",
    "residuals": "Residual diagnostics", "environment": "Environment",
}
# Section titles, those of a many-ticker report (report.panel) included.
TITLES = {**SECTIONS, "tickers": "Tickers"}
# Section titles of a search's report (report.search: tune and study folders).
TITLES |= {"search": "Result", "epochs": "By epoch", "settings": "By setting",
           "importance": "Importance", "pruned": "Pruned trials", "best": "Best trial",
           "trials": "Trials", "grid": "Study table", "preferred": "Preferred combination"}
# Scores shown in tables: (key in metrics.json, heading, format).
SCORES = [
    ("n", "n", "{:.0f}"), ("rmse", "RMSE", "{:.3f}"), ("mae", "MAE", "{:.3f}"),
    ("mape", "MAPE %", "{:.3f}"), ("mase", "MASE", "{:.3f}"), ("theils_u", "Theil's U", "{:.3f}"),
    ("directional_accuracy", "direction %", "{:.1f}"), ("dm_p_value", "DM p vs naive", "{:.3g}"),
]


@dataclass
class RunFiles:
    """What the report reads from a folder: metrics, config and the long forecast table."""

    folder: Path
    kind: layout.Kind
    metrics: dict
    config: dict
    table: pd.DataFrame | None  # [ticker,] model, cutoff, date, step, y, y_hat, ...
    ticker: str | None = None  # set on the view of one ticker of a many-ticker folder

    @classmethod
    def read(cls, folder: Path, kind: layout.Kind | None = None) -> RunFiles:
        """The files of ``folder``; its kind as recorded (given while it is being written)."""
        if not (folder / "metrics.json").is_file() or not (folder / "config.toml").is_file():
            raise ArtifactError(
                f"{folder} has no metrics.json and config.toml: not a marketcast run folder; "
                "pass a folder written by `marketcast run`, `train` or `backtest`")
        metrics = validate_metrics(files.read_json(folder / "metrics.json"),
                                   f"{folder}/metrics.json")
        try:
            config = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{folder}/config.toml is not valid TOML: {exc}") from None
        kind = kind or run_folder.kind_of(folder)
        name = layout.TABLES.get(kind)
        table = (read_csv(folder / name, ["cutoff", "date"])
                 if name and (folder / name).is_file() else None)
        return cls(folder, kind, metrics, config, table)

    def csv(self, name: str, dates=("date",)) -> pd.DataFrame | None:
        """A table of the folder (that ticker's rows only, on a one-ticker view)."""
        path = self.folder / name
        if not path.is_file():
            return None
        frame = read_csv(path, list(dates))
        if self.ticker is not None and "ticker" in frame.columns:
            frame = frame[frame["ticker"].astype(str) == self.ticker].drop(columns="ticker")
        return frame.reset_index(drop=True)

    @functools.cached_property
    def meta(self) -> dict:
        """``model.json`` (model folders only; empty for a backtest), one ticker's on a view."""
        path = self.folder / layout.MODEL_META
        meta = files.read_json(path) if path.is_file() else {}
        if self.ticker is not None and isinstance(meta.get("tickers"), dict):
            shared = {k: v for k, v in meta.items() if k != "tickers"}
            return {**shared, **meta["tickers"].get(self.ticker, {})}
        return meta

    @property
    def tickers(self) -> list[str]:
        """The tickers of the long table ([] for a folder of one series)."""
        if self.table is None or "ticker" not in self.table.columns:
            return []
        return list(dict.fromkeys(self.table["ticker"].astype(str)))

    def for_ticker(self, ticker: str) -> RunFiles:
        """The folder seen as one ticker's run or backtest: its rows, scores and model, so
        that every single-series section renders it unchanged."""
        table = self.table[self.table["ticker"].astype(str) == ticker].drop(columns="ticker")
        table = table.reset_index(drop=True)
        metrics = {**self.metrics, "metrics": files.json_records(
            accuracy(table, by_step=self.kind == layout.Kind.BACKTEST))}
        kind = layout.Kind.BACKTEST if self.kind == layout.Kind.BACKTEST else layout.Kind.RUN
        return RunFiles(self.folder, kind, metrics, self.config, table, ticker)

    @property
    def target(self) -> str:
        return self.config.get("data", {}).get("target", "close")

    @property
    def title(self) -> str:
        data = self.config.get("data", {})
        source = Path(data.get("source", "?")).name
        ticker = f" {data['ticker']}" if data.get("ticker") else ""
        if self.ticker is not None:
            ticker = f" {self.ticker}"
        if self.kind == "global":
            ticker = f", {self.metrics.get('tickers', '?')} tickers"
        return f"marketcast {self.kind}: {source}{ticker}"

    @property
    def subtitle(self) -> str:
        d = self.metrics.get("data", {})
        created = self.metrics.get("environment", {}).get("created", "")[:16].replace("T", " ")
        made = f"made {created}; " if created else ""
        rows = (f"{d.get('rows', '?')} rows over {self.metrics.get('tickers', '?')} tickers"
                if self.kind == "global" else f"{d.get('rows', '?')} days")
        return f"{made}data {d.get('start', '?')} to {d.get('end', '?')}, {rows}"

    @property
    def focus(self) -> str | None:
        """The model the verdict is about: the LSTM, or the first learned model."""
        if self.table is None:
            return None
        models = [m for m in self.table["model"].unique() if m != BENCHMARK]
        return "lstm" if "lstm" in models else (models[0] if models else None)


def read_csv(path: Path, dates: list[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(path, parse_dates=dates)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None


def code(text: str) -> markupsafe.Markup:
    """Escaped text with `back-quoted` parts set as code."""
    parts = str(markupsafe.escape(text)).split("`")
    return markupsafe.Markup("".join(f"<code>{p}</code>" if i % 2 else p
                                     for i, p in enumerate(parts)))


def section(key: str, *blocks: dict) -> dict:
    return {"id": key, "title": TITLES[key], "blocks": [b for b in blocks if b]}


def note(text: str) -> dict:
    return {"kind": "note", "text": text}


def figure(plot, *args, alt: str, caption: str = "", **kwargs) -> dict:
    buffer = io.BytesIO()
    plot(*args, buffer, **kwargs)
    src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"kind": "figure", "src": src, "alt": alt, "caption": caption}


def fmt(value, fmt: str = "{}") -> str:
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return "–"
    return fmt.format(value)


def score_table(rows: list[dict], caption: str, by_step: bool = False) -> dict:
    columns = ["model", *(["step"] if by_step else []), *[h for _, h, _ in SCORES]]
    body = [[{"model": r["model"]}, *([fmt(r["step"])] if by_step else []),
             *[fmt(r.get(k), f) for k, _, f in SCORES]] for r in rows]
    return {"kind": "table", "caption": caption, "columns": columns, "rows": body}


def pairs(caption: str, pairs: list[tuple[str, object]]) -> dict:
    return {"kind": "pairs", "caption": caption, "rows": [(k, fmt(v)) for k, v in pairs]}
