import dataclasses
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import small_config, synthetic_prices

import marketcast
from marketcast import api
from marketcast.errors import ArtifactError
from marketcast.runs.folder import MANIFEST, check_run

RUN_FILES = {
    "config.toml", "metrics.json", "predictions.csv", "test_forecasts.csv", "forecast.csv",
    "loss_history.csv", "loss.png", "test.png", "forecast.png", "model.safetensors",
    "model.json", "residuals.csv", "strategy.csv", "report.html", MANIFEST,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    path = tmp / "prices.csv"
    synthetic_prices().to_csv(path, index=False)
    config = small_config(path, tmp / "runs")
    return api.run(dataclasses.replace(config, output=dataclasses.replace(config.output,
                                                                          name="r1")))


def test_run_writes_every_file(finished):
    assert {p.name for p in finished.path.iterdir()} == RUN_FILES
    metrics = json.loads((finished.path / "metrics.json").read_text())
    assert [m["model"] for m in metrics["metrics"]] == ["lstm", "naive", "linear"]
    assert metrics["verdict"][0].startswith("LSTM RMSE")
    predictions = pd.read_csv(finished.path / "predictions.csv")
    assert list(predictions.columns) == ["date", "step", "actual", "lstm", "naive", "linear"]
    assert len(predictions) == finished.trained.split.n_test
    forecast = pd.read_csv(finished.path / "forecast.csv", parse_dates=["date"])
    assert len(forecast) == 30 and forecast["date"].min() > finished.trained.series.dates[-1]
    check_run(finished.path)


def test_test_period_is_out_of_sample(finished):
    split = finished.trained.split
    table = finished.evaluation.table
    first_test_day = finished.trained.series.dates[split.test_start]
    assert table["date"].min() == first_test_day
    assert (table["cutoff"] < table["date"]).all()
    naive = table[table["model"] == "naive"]
    np.testing.assert_array_equal(naive["y_hat"], naive["y_cutoff"])


def test_run_judges_test_intervals_calibrated_sequentially(finished):
    from marketcast.evaluation.intervals import MIN_CALIBRATION

    metrics = json.loads((finished.path / "metrics.json").read_text())
    about = metrics["interval_method"]
    assert about["calibration"].startswith("sequential")
    assert about["method"] in ("conformal", "scaled", "aci")  # auto chose one of them
    assert set(about["validation_scores"]) == {"conformal", "scaled", "aci"}
    table = finished.evaluation.table
    lstm = table[(table["model"] == "lstm") & (table["step"] == 1)].sort_values("cutoff")
    # No interval before MIN_CALIBRATION test residuals are known: none is calibrated on
    # the residual it is judged on.
    assert lstm["lower"].iloc[:MIN_CALIBRATION].isna().all()
    assert lstm["lower"].iloc[MIN_CALIBRATION:].notna().all()
    scored = lstm[lstm["cutoff"] >= pd.Timestamp(about["evaluation_from"])]
    inside = (scored["y"] >= scored["lower"]) & (scored["y"] <= scored["upper"])
    row = next(r for r in metrics["coverage"] if r["model"] == "lstm" and r["step"] == 1)
    assert row["n"] == len(scored) > 0
    assert row["coverage"] == pytest.approx(100 * inside.mean())
    assert {"kupiec_p", "christoffersen_cc_p", "interval_score", "pinball_lower",
            "pinball_upper", "coverage_low", "coverage_high"} <= set(row)
    assert "Intervals: " in (finished.path / "report.html").read_text()


def test_reload_reproduces_forecast_csv_exactly(finished):
    again = api.forecast(finished.path)
    text = again.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    assert text == (finished.path / "forecast.csv").read_text()


def test_evaluate_run_reproduces_metrics(finished):
    evaluation = api.evaluate_run(finished.path)
    pd.testing.assert_frame_equal(evaluation.scores, finished.evaluation.scores)


def test_forecast_from_newer_data(finished, tmp_path):
    newer = synthetic_prices(400)  # same generator, 80 more days
    path = tmp_path / "newer.csv"
    newer.to_csv(path, index=False)
    out = api.forecast(finished.path, data=str(path), days=5)
    assert out["date"].iloc[0] > pd.Timestamp(newer["Date"].iloc[-1])
    assert out["naive"].iloc[0] == pytest.approx(newer["Close"].iloc[-1])


def test_same_seed_same_metrics(config):
    a = api.evaluate(api.train(config))
    b = api.evaluate(api.train(config))
    pd.testing.assert_frame_equal(a.scores, b.scores)


def test_newest_first_file_gives_same_result(config, tmp_path):
    flipped = tmp_path / "flipped.csv"
    synthetic_prices().iloc[::-1].to_csv(flipped, index=False)
    reversed_config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(flipped)))
    a = api.evaluate(api.train(config))
    b = api.evaluate(api.train(reversed_config))
    pd.testing.assert_frame_equal(a.scores, b.scores)


def test_tampered_weights_are_refused(finished, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in finished.path.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        api.forecast(copy)


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    run = tmp_path / "evil"
    run.mkdir()
    (run / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    (run / "model.json").write_text("{}")
    from marketcast.files import sha256_file as _sha256

    (run / MANIFEST).write_text(json.dumps({"files": {
        n: _sha256(run / n) for n in ("model.safetensors", "model.json")}}))
    with pytest.raises(ArtifactError, match="not a valid safetensors file"):
        api.forecast(run)
    with pytest.raises(ArtifactError, match="is a file, not a run folder"):
        api.forecast(run / "model.safetensors")
    assert not marker.exists()


def test_no_pickle_in_the_package():
    source = "\n".join(p.read_text() for p in Path(marketcast.__file__).parent.rglob("*.py"))
    for call in (r"\bimport pickle", r"(?<![\w.])torch\.load\(", r"read_pickle",
                 r"allow_pickle", r"\bjoblib\b", r"weights_only"):
        assert not re.search(call, source), call


def test_incomplete_run_folder_is_refused(finished, tmp_path):
    copy = tmp_path / "partial"
    copy.mkdir()
    (copy / "model.json").write_bytes((finished.path / "model.json").read_bytes())
    with pytest.raises(ArtifactError, match="no manifest.json: the run is incomplete"):
        api.forecast(copy)


def test_failed_run_leaves_no_folder(config, monkeypatch, tmp_path):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("marketcast.report.plots.plot_forecast", boom)
    with pytest.raises(RuntimeError):
        api.run(config)
    runs = tmp_path / "runs"
    # Only the hidden checkpoint of the trained model is left, and it is not a run.
    assert [p.name for p in runs.iterdir()] == [".checkpoints"]
    (kept,) = (runs / ".checkpoints").iterdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        check_run(kept)
    monkeypatch.undo()
    resumed = api.run(config, resume=kept)
    assert resumed.path == runs / kept.name and not (runs / ".checkpoints").exists()
    check_run(resumed.path)



def test_run_with_features_uses_them_and_forecasts_the_horizon(config, tmp_path):
    features = ("close", "volume", "rsi14")
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, features=features),
        output=dataclasses.replace(config.output, name="features"))
    result = api.run(config)
    models = result.trained.models
    assert models["lstm"].transform_.n_features_ == 3
    assert models["linear"].transform_.n_features_ == 3
    assert result.trained.series.feature_names == features
    # Future volume and RSI are unknown: the forecast covers the 1-day horizon only.
    assert len(result.forecast) == 1
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert "rsi14" in metrics["data"]["columns"]
    assert metrics["data"]["quality"]["ohlc"] == {"count": 0, "dates": []}
    again = api.forecast(result.path)
    pd.testing.assert_frame_equal(again, result.forecast)


def test_aci_run_fan_follows_the_volatility_and_reloads_exactly(config, tmp_path):
    from marketcast.evaluation.intervals import ewma_volatility

    config = dataclasses.replace(
        config, backtest=dataclasses.replace(config.backtest, interval_method="aci"),
        output=dataclasses.replace(config.output, name="aci"))
    result = api.run(config)
    fan = json.loads((result.path / "model.json").read_text())["fan"]
    series = result.trained.series
    assert fan["method"] == "aci" and result.evaluation.intervals.method == "aci"
    assert fan["volatility"] == pytest.approx(ewma_volatility(series.dates, series.y).iloc[-1])
    low, high = 0.9 - 3 * 0.1 + 0.1, 0.9 + 0.1 * 3 / 4  # alpha_t in [alpha / 4, 3 alpha]
    assert low <= fan["level"] <= high
    future = result.forecast
    width = np.log(future["lstm_upper"] / future["lstm"]).to_numpy()
    # The 48-day test period leaves too few residuals for the last steps (NaN there).
    finite = width[np.isfinite(width)]
    assert len(finite) >= 20 and np.all(np.diff(finite) >= 0) and finite[-1] > finite[0]
    # `forecast` redraws the same fan from the folder, bit for bit.
    again = api.forecast(result.path)
    text = again.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    assert text == (result.path / "forecast.csv").read_text()
    # From newer data whose last weeks are stormier, the fan is wider.
    newer = synthetic_prices(400)
    close = newer["Close"].to_numpy()
    shocks = np.exp(np.random.default_rng(0).normal(0, 0.05, 30).cumsum())
    newer["Close"] = np.r_[close[:-30], close[-31] * shocks]
    path = tmp_path / "stormy.csv"
    newer.to_csv(path, index=False)
    stormy = api.forecast(result.path, data=str(path), days=30)
    assert np.log(stormy["lstm_upper"] / stormy["lstm"]).iloc[0] > 2 * width[0]
    assert fan["volatility"] * 2 < ewma_volatility(pd.DatetimeIndex(newer["Date"]),
                                                   newer["Close"].to_numpy()).iloc[-1]
    assert "widens with the volatility model" in (result.path / "report.html").read_text()
