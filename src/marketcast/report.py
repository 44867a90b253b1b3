"""A run folder as one self-contained HTML page: the verdict, plots and tables.

The report renders from the files of a run folder (tables in, HTML out); it never fits or
predicts. CSS is inline and every image is a PNG data URI, so the page opens offline and
requests nothing. Rendering is deterministic: the same folder gives the same bytes.

Every section is always present; one the folder has nothing for (a backtest keeps no loss
history, a run has no walk-forward table) says so and what to run to get it.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from marketcast import artifacts, plots
from marketcast.errors import ArtifactError
from marketcast.metrics import BENCHMARK
from marketcast.stats import diebold_mariano, ljung_box

REPORT = "report.html"
SECTIONS = {
    "verdict": "Verdict", "config": "Configuration", "data": "Data", "loss": "Training loss",
    "test": "Test period", "backtest": "Backtest", "forecast": "Forecast",
    "residuals": "Residual diagnostics", "environment": "Environment",
}
# Section titles, those of a global model's report (report_global.py) included.
TITLES = {**SECTIONS, "tickers": "Tickers"}
# Scores shown in tables: (key in metrics.json, heading, format).
SCORES = [
    ("n", "n", "{:.0f}"), ("rmse", "RMSE", "{:.3f}"), ("mae", "MAE", "{:.3f}"),
    ("mape", "MAPE %", "{:.3f}"), ("mase", "MASE", "{:.3f}"), ("theils_u", "Theil's U", "{:.3f}"),
    ("directional_accuracy", "direction %", "{:.1f}"), ("dm_p_value", "DM p vs naive", "{:.3g}"),
]


def report(run_dir: str | Path) -> Path:
    """Write ``report.html`` into a finished run folder and add it to the manifest.

    The folder is verified against its manifest first, so the report shows only files that
    are what the run wrote. Returns the report's path; an unchanged report is not rewritten.
    """
    folder = Path(run_dir)
    artifacts.verify_folder(folder, replacing=REPORT)
    return artifacts.add_to_run(folder, REPORT, render_report(folder))


def render_report(folder: str | Path) -> str:
    """The report of the run, backtest or train folder ``folder`` as HTML text."""
    run = RunFiles.read(Path(folder))
    if run.kind == "global":
        from marketcast.report_global import global_sections

        sections = global_sections(run)
    else:
        sections = [
            _verdict(run), _configuration(run), _data(run), _loss(run), _test(run),
            _backtest(run), _forecast(run), _residuals(run), _environment(run),
        ]
    env = jinja2.Environment(loader=jinja2.PackageLoader("marketcast", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["code"] = _code
    return env.get_template("report.html.j2").render(
        title=run.title, subtitle=run.subtitle, sections=sections, colors=plots.COLORS)


@dataclass
class RunFiles:
    """What the report reads from a folder: metrics, config and the long forecast table."""

    folder: Path
    kind: str  # "run", "backtest", "train" or "global"
    metrics: dict
    config: dict
    table: pd.DataFrame | None  # model, cutoff, date, step, y, y_hat, ...

    @classmethod
    def read(cls, folder: Path) -> RunFiles:
        if not (folder / "metrics.json").is_file() or not (folder / "config.toml").is_file():
            raise ArtifactError(
                f"{folder} has no metrics.json and config.toml: not a marketcast run folder; "
                "pass a folder written by `marketcast run`, `train` or `backtest`")
        metrics = artifacts.read_json(folder / "metrics.json")
        if not isinstance(metrics, dict):
            raise ArtifactError(f"{folder}/metrics.json is not a marketcast metrics file")
        try:
            config = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{folder}/config.toml is not valid TOML: {exc}") from None
        kind = (metrics.get("kind") if metrics.get("kind") in ("backtest", "global")
                # global folders written before "kind" was recorded
                else "global" if (folder / "per_ticker.csv").is_file()
                else "run" if "metrics" in metrics else "train")
        name = {"backtest": "backtest.csv", "run": "test_forecasts.csv"}.get(kind)
        table = _read_csv(folder / name, ["cutoff", "date"]) if name else None
        return cls(folder, kind, metrics, config, table)

    def csv(self, name: str, dates=("date",)) -> pd.DataFrame | None:
        path = self.folder / name
        return _read_csv(path, list(dates)) if path.is_file() else None

    @functools.cached_property
    def meta(self) -> dict:
        """``model.json`` (model folders only; empty for a backtest)."""
        path = self.folder / artifacts.MODEL_META
        return artifacts.read_json(path) if path.is_file() else {}

    @property
    def target(self) -> str:
        return self.config.get("data", {}).get("target", "close")

    @property
    def title(self) -> str:
        data = self.config.get("data", {})
        source = Path(data.get("source", "?")).name
        ticker = f" {data['ticker']}" if data.get("ticker") else ""
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


def _read_csv(path: Path, dates: list[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(path, parse_dates=dates)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None


def _code(text: str) -> markupsafe.Markup:
    """Escaped text with `back-quoted` parts set as code."""
    parts = str(markupsafe.escape(text)).split("`")
    return markupsafe.Markup("".join(f"<code>{p}</code>" if i % 2 else p
                                     for i, p in enumerate(parts)))


def _section(key: str, *blocks: dict) -> dict:
    return {"id": key, "title": TITLES[key], "blocks": [b for b in blocks if b]}


def _note(text: str) -> dict:
    return {"kind": "note", "text": text}


def _figure(plot, *args, alt: str, caption: str = "", **kwargs) -> dict:
    buffer = io.BytesIO()
    plot(*args, buffer, **kwargs)
    src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"kind": "figure", "src": src, "alt": alt, "caption": caption}


def _fmt(value, fmt: str = "{}") -> str:
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return "–"
    return fmt.format(value)


def _score_table(rows: list[dict], caption: str, by_step: bool = False) -> dict:
    columns = ["model", *(["step"] if by_step else []), *[h for _, h, _ in SCORES]]
    body = [[{"model": r["model"]}, *([_fmt(r["step"])] if by_step else []),
             *[_fmt(r.get(k), f) for k, _, f in SCORES]] for r in rows]
    return {"kind": "table", "caption": caption, "columns": columns, "rows": body}


def _pairs(caption: str, pairs: list[tuple[str, object]]) -> dict:
    return {"kind": "pairs", "caption": caption, "rows": [(k, _fmt(v)) for k, v in pairs]}


# --- sections ---------------------------------------------------------------------------

def _verdict(run: RunFiles) -> dict:
    model = run.focus
    if run.table is None:
        return _section("verdict", _note(
            "This folder holds a trained model without an out-of-sample evaluation (a "
            "`marketcast train` folder): `marketcast evaluate --run FOLDER` scores it."))
    if model is None:
        return _section("verdict", _note("Only the random walk was evaluated: nothing to "
                                         "compare it with."))
    one = run.table[run.table["step"] == 1]
    cards = [_compare(one, model, other, label) for other, label in
             ((BENCHMARK, "the random walk (tomorrow = today)"), ("linear", "the linear model"))
             if other in set(one["model"]) and other != model]
    echo = [r for r in run.metrics.get("lag_copy", []) if r["model"] == model and r["echoes_last"]]
    if echo:
        cards.append({"tone": "bad", "headline": f"{model.upper()} echoes yesterday",
                      "detail": f"Its forecasts move {echo[0]['move_ratio']:.0%} as much as "
                                f"prices; {echo[0]['closer_to_last']:.0f}% sit nearer the last "
                                "price than the outcome"})
    where = "walk-forward backtest" if run.kind == "backtest" else "test period"
    caption = (f"{model.upper()} one-day-ahead forecasts on the {where}, "
               f"{one['cutoff'].nunique()} origins; Diebold-Mariano test of equal squared "
               "error (p < 0.05 decides).")
    lines = run.metrics.get("verdict", [])
    return _section(
        "verdict",
        {"kind": "cards", "cards": cards, "caption": caption},
        {"kind": "list", "items": lines} if lines else None)


def _compare(one: pd.DataFrame, model: str, other: str, label: str) -> dict:
    """Headline card: RMSE of ``model`` against ``other`` on the same rows, with DM p."""
    pair = one[one["model"].isin([model, other])].pivot_table(
        index="cutoff", columns="model", values=["y", "y_hat"]).dropna()
    y = pair[("y", model)].to_numpy()
    e_model, e_other = pair[("y_hat", model)].to_numpy() - y, pair[("y_hat", other)].to_numpy() - y
    rmse, rmse_other = np.sqrt(np.mean(e_model**2)), np.sqrt(np.mean(e_other**2))
    _, p = diebold_mariano(e_model, e_other, h=1)
    change = rmse / rmse_other - 1
    if math.isfinite(p) and p < 0.05:
        tone, word = ("good", "beats") if change < 0 else ("bad", "loses to")
    elif change >= 0:
        tone, word = "neutral", "does not beat"
    else:
        tone, word = "neutral", "is not significantly better than"
    return {
        "tone": tone,
        "headline": f"{model.upper()} {word} {label}",
        "detail": f"RMSE {rmse:.3f} vs {rmse_other:.3f} ({change:+.1%}); "
                  f"DM p = {_fmt(p, '{:.3g}')}"
                  + ("" if tone != "neutral" else ", not significant"),
    }


def _configuration(run: RunFiles) -> dict:
    tables = [_pairs(f"[{name}]", [(k, ", ".join(map(str, v)) if isinstance(v, list) else v)
                                   for k, v in values.items()])
              for name, values in run.config.items() if isinstance(values, dict)]
    return _section("config", {"kind": "grid", "items": tables},
                    _note("config.toml of this folder: pass it to `--config` to repeat the run."))


def _data(run: RunFiles) -> dict:
    d, m = run.metrics.get("data", {}), run.metrics
    sha = m.get("data_sha256") or run.meta.get("data_sha256")
    split = m.get("split")
    pairs = [
        ("source", run.config.get("data", {}).get("source")),
        ("ticker", run.config.get("data", {}).get("ticker", "–")),
        ("rows (trading days)", d.get("rows")), ("first day", d.get("start")),
        ("last day", d.get("end")), ("columns", ", ".join(d.get("columns", []))),
        ("missing values", ", ".join(f"{k} {v}" for k, v in d.get("missing_values", {}).items())),
        ("missing NYSE sessions", d.get("missing_nyse_sessions")),
        ("first missing sessions", ", ".join(d.get("first_missing_sessions", [])) or "–"),
        ("largest gap (calendar days)", d.get("largest_gap_days")),
    ]
    if split:
        for (part, span), rows in zip(list(split.items())[:3], split.get("rows", []), strict=False):
            pairs.append((f"{part} period", f"{span[0]} to {span[1]} ({rows} days)" if span
                          else "none"))
    pairs.append(("data sha256", sha))
    quality = d.get("quality")
    return _section(
        "data", _pairs("summary", pairs),
        {"kind": "value", "caption": "quality findings", "value": quality}
        if quality is not None else _note("No data quality findings were recorded for this run."))


def _loss(run: RunFiles) -> dict:
    history = run.csv("loss_history.csv", dates=())
    if history is None:
        fits = ", ".join(f"{k} {v}" for k, v in run.metrics.get("fits", {}).items())
        return _section("loss", _note(
            "A backtest refits its models from scratch and keeps no training history "
            f"(fits per model: {fits or '–'}); the loss curves are in `marketcast run` folders."))
    best = int(run.metrics.get("best_epoch", history["epoch"].iloc[-1]))
    train = run.config.get("train", {})
    stopped = len(history) < train.get("max_epochs", math.inf)
    text = (f"Trained {len(history)} of at most {train.get('max_epochs', '?')} epochs; "
            + (f"early stopping (patience {train.get('patience', '?')}) ended training. "
               if stopped else "training ran every epoch. ")
            + f"The weights of epoch {best}, with the lowest validation loss, were kept.")
    return _section("loss", _figure(plots.plot_loss, history, best,
                                    alt="LSTM train and validation loss per epoch"),
                    {"kind": "text", "text": text})


def _test(run: RunFiles) -> dict:
    if run.table is None:
        return _section("test", _note("No test-period evaluation in this folder."))
    one = run.table[run.table["step"] == 1]
    wide = one.pivot_table(index="date", columns="model", values="y_hat", sort=False)
    wide.insert(0, "actual", one.drop_duplicates("date").set_index("date")["y"])
    wide = wide.reset_index().assign(step=1)
    if run.kind == "backtest":
        title, what = "Walk-forward: actual vs one-day-ahead forecasts", "forecast origins"
    else:
        title, what = "Test period: actual vs one-day-ahead forecasts", "test days"
    start, end = wide["date"].min(), wide["date"].max()
    blocks = [_figure(plots.plot_test, wide, run.target, title=title,
                      alt=title, caption=f"{start:%Y-%m-%d} to {end:%Y-%m-%d}, {len(wide)} "
                      f"{what}; every forecast sees only the prices up to the day before.")]
    if run.kind == "run":
        blocks.append(_score_table(run.metrics["metrics"], f"Scores on the test period "
                                   f"({run.target}, price units)"))
    return _section("test", *blocks)


def _backtest(run: RunFiles) -> dict:
    if run.kind != "backtest":
        return _section("backtest", _note(
            "No walk-forward backtest in this folder. `marketcast backtest` scores every model "
            "from many forecast origins; `marketcast report` on its folder shows the table here."))
    b = run.config.get("backtest", {})
    lag = run.metrics.get("lag_copy", [])
    lag_table = {"kind": "table", "caption": "Lag-copy check (one-day-ahead): do forecasts "
                 "merely echo the last price?",
                 "columns": ["model", "forecast move / actual move", "correlation of moves",
                             "nearer the last price %", "echoes yesterday"],
                 "rows": [[{"model": r["model"]}, _fmt(r["move_ratio"], "{:.2f}"),
                           _fmt(r["change_corr"], "{:.3f}"),
                           _fmt(r["closer_to_last"], "{:.1f}"),
                           "yes" if r["echoes_last"] else "no"] for r in lag]}
    return _section(
        "backtest",
        {"kind": "text", "text": f"{b.get('n_windows', '?')} forecast origins "
         f"{b.get('step', '?')} trading day(s) apart; "
         + (f"a fresh fit every {b['refit_every']} origins" if b.get("refit_every")
            else "one fit, at the first origin")
         + ("; expanding training window." if b.get("train_size") is None
            else f"; training window of the last {b['train_size']} days.")},
        _score_table(run.metrics["metrics"], f"Walk-forward scores ({run.target}, price units)",
                     by_step=True),
        lag_table if lag else None)


def _forecast(run: RunFiles) -> dict:
    level = run.config.get("forecast", {}).get("interval")
    if run.kind == "backtest":
        cover = run.metrics.get("coverage", [])
        return _section("forecast", _note(
            "A backtest makes no forecast past the end of its data: `marketcast run` does. "
            f"Below, how often the {_fmt(level, '{:.0%}')} conformal interval of each "
            "walk-forward forecast held the outcome."),
            {"kind": "table", "caption": "Conformal interval coverage",
             "columns": ["model", "step", "n", "coverage %", "mean width (price units)"],
             "rows": [[{"model": r["model"]}, _fmt(r["step"]), _fmt(r["n"]),
                       _fmt(r["coverage"], "{:.1f}"), _fmt(r["mean_width"], "{:.3g}")]
                      for r in cover]} if cover else None)
    future, meta = run.csv("forecast.csv"), run.meta
    if future is None or "context_dates" not in meta:
        return _section("forecast", _note(
            "No forecast saved in this folder: `marketcast forecast --run FOLDER` makes one."))
    # The model's saved context plus the test period: the last days of the data.
    tested = run.table[(run.table["step"] == 1) & (run.table["model"] == BENCHMARK)]
    history = pd.concat([pd.Series(tested["y"].to_numpy(), index=tested["date"]),
                         pd.Series(meta["context_y"], index=pd.to_datetime(meta["context_dates"]))])
    history = history[~history.index.duplicated()].sort_index()
    has_interval = "lstm_lower" in future and future["lstm_lower"].notna().any()
    caption = (f"The band is a {level:.0%} split-conformal interval calibrated per step on the "
               "LSTM's out-of-sample test residuals." if has_interval else
               "No interval: turned off (--interval 0) or too few test residuals.")
    rows = [[f"{r['date']:%Y-%m-%d}", *[_fmt(r[c], "{:.2f}") for c in future.columns[1:]]]
            for _, r in future.iterrows()]
    return _section(
        "forecast",
        _figure(plots.plot_forecast, history, future, run.target, level=level,
                alt="Price history and forecast fan", caption=caption),
        {"kind": "table", "caption": "Forecast on NYSE trading dates (price units)",
         "columns": ["date", *future.columns[1:]], "rows": rows, "collapsed": True})


def _residuals(run: RunFiles) -> dict:
    model = run.focus
    if model is None:
        return _section("residuals", _note("No out-of-sample forecasts to diagnose."))
    one = run.table[run.table["step"] == 1]
    residuals = {m: (g["y"] - g["y_hat"]).to_numpy() for m, g in one.groupby("model", sort=False)
                 if m in (model, BENCHMARK)}
    r = residuals[model]
    lags = max(1, min(10, len(r) // 5))
    q, p = ljung_box(r, lags)
    verdict = ("pattern is left that the model did not use" if p < 0.05
               else "no significant pattern is left")
    text = (f"One-day-ahead residuals of {model}: n {len(r)}, mean {r.mean():+.3g} (bias), "
            f"standard deviation {r.std(ddof=1):.3g} price units. Ljung-Box over {lags} lags: "
            f"Q = {q:.3g}, p = {p:.3g}: {verdict}.")
    return _section("residuals", _figure(
        plots.plot_residuals, dict(sorted(residuals.items(), key=lambda kv: kv[0] != model)),
        model, run.target, alt="Residual histogram and autocorrelation",
        caption=f"Histogram of {model}'s residuals beside those of the random walk (naive)."),
        {"kind": "text", "text": text})


def _environment(run: RunFiles) -> dict:
    env = run.metrics.get("environment", {})
    packages = env.get("packages") or run.meta.get("versions", {})
    seconds = run.metrics.get("wall_seconds")
    what = "the whole backtest" if run.kind == "backtest" else "data to forecast"
    pairs = [
        ("made", env.get("created", "not recorded")),
        ("run time", f"{seconds:.1f} s ({what})" if seconds else "not recorded"),
        ("seed", run.config.get("train", {}).get("seed")),
        ("python", env.get("python", "not recorded")),
        ("platform", env.get("platform", "not recorded")),
    ]
    return _section("environment", {"kind": "grid", "items": [
        _pairs("run", pairs),
        _pairs("package versions", sorted(packages.items()) or [("packages", "not recorded")])]})

