"""The HTML report: contents, the manifest around it, and the page in a real browser."""

import base64
import dataclasses
import json
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest
from browser import Browser, browser_or_skip
from conftest import TEST_OUTPUT, long_prices, small_config, synthetic_prices

from marketcast import api
from marketcast.api import backtest
from marketcast.config import BacktestConfig, OutputConfig
from marketcast.errors import ArtifactError
from marketcast.files import sha256_file as _sha256
from marketcast.models import MODELS
from marketcast.report import REPORT, render_report, report
from marketcast.report.blocks import SECTIONS, TITLES
from marketcast.report.panel import GLOBAL_SECTIONS
from marketcast.report.plots import COLORS
from marketcast.runs.folder import MANIFEST, check_run, verify_folder

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A `run` folder, a `backtest` folder (all five models) and a global model's folder
    (`run --tickers`) of tiny models."""
    tmp = tmp_path_factory.mktemp("report")
    path = tmp / "prices.csv"
    synthetic_prices().to_csv(path, index=False)
    config = small_config(path, tmp / "runs")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_epochs=12))
    run = api.run(dataclasses.replace(config, output=OutputConfig(str(tmp / "runs"), "run")))
    bt = backtest(dataclasses.replace(
        config, output=OutputConfig(str(tmp / "runs"), "bt"),
        backtest=BacktestConfig(n_windows=40, refit_every=0)))
    long = tmp / "long.csv"
    long_prices().to_csv(long, index=False)
    many = small_config(long, tmp / "runs", layers=1)
    many = dataclasses.replace(many, data=dataclasses.replace(many.data, tickers=("all",)),
                               output=OutputConfig(str(tmp / "runs"), "global"))
    return {"run": run.path, "backtest": bt.path, "global": api.run_global(many).path}


class Parsed(HTMLParser):
    """Section ids, image sources and every URL-valued attribute of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.sections, self.images, self.urls = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "action", "data")]


def copy_folder(source, target):
    shutil.copytree(source, target)
    return target


def test_every_model_has_its_own_colour():
    assert set(MODELS) <= set(COLORS)
    assert len(set(COLORS.values())) == len(COLORS)


@pytest.mark.parametrize("kind", ["run", "backtest"])
def test_report_is_in_the_folder_and_its_manifest(folders, kind):
    folder = folders[kind]
    files = verify_folder(folder)
    assert files[REPORT] == _sha256(folder / REPORT)
    page = Parsed((folder / REPORT).read_text(encoding="utf-8"))
    assert page.sections == list(SECTIONS)
    # Self-contained: images are inline PNGs, links point inside the page.
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert all(url.startswith(("data:", "#")) for url in page.urls)


def test_run_report_contents(folders):
    html = (folders["run"] / REPORT).read_text(encoding="utf-8")
    page = Parsed(html)
    # loss, test period, two strategy rules' equity and drawdown, forecast fan, residuals
    assert len(page.images) == 6
    metrics = json.loads((folders["run"] / "metrics.json").read_text())
    assert metrics["data_sha256"] in html
    assert "LSTM" in html and "the random walk (tomorrow = today)" in html
    assert "the linear model" in html and "DM p = " in html
    assert "No walk-forward backtest in this folder" in html
    assert metrics["environment"]["packages"]["torch"] in html


def test_backtest_report_contents(folders):
    html = (folders["backtest"] / REPORT).read_text(encoding="utf-8")
    # walk-forward forecasts, two strategy rules' equity and drawdown, residuals
    assert len(Parsed(html).images) == 4
    assert "Walk-forward scores" in html and "judged as a value-at-risk model" in html
    assert "Kupiec p" in html and "storm %" in html
    for model in BacktestConfig().models:  # the default models (garch is asked for)
        assert f"</span>{model}</td>" in html  # a table row with the model's colour swatch
    assert "keeps no training history" in html
    assert "Model confidence set (90%)" in html and "SPA vs the random walk: " in html


@pytest.mark.parametrize("kind", ["run", "backtest", "global"])
def test_strategy_section(folders, kind):
    html = (folders[kind] / REPORT).read_text(encoding="utf-8")
    part = html.split('<section id="strategy"', 1)[1].split("</section>", 1)[0]
    block = json.loads((folders[kind] / "metrics.json").read_text())["strategy"]
    assert block["sentence"].replace("'", "&#39;") in part
    assert len(Parsed(part).images) == 2  # long/flat and long/short, equity and drawdown
    assert "Trading on the one-day-ahead forecasts" in part and "always long" in part
    assert "paired stationary bootstrap" in part
    if kind == "global":
        assert "median over 3 tickers" in part and "tickers better" in part
        assert "the ticker with the median Theil&#39;s U" in part
    else:
        lstm = block["models"]["lstm"]["long_flat"]
        assert f"{lstm['annual_return']:.1%}</td>" in part


def test_backtest_with_cutoffs_days_apart_has_no_strategy(config, tmp_path):
    result = backtest(dataclasses.replace(
        config, output=OutputConfig(str(tmp_path / "runs"), "apart"),
        backtest=BacktestConfig(n_windows=10, stride=3, refit_every=0,
                                models=("naive", "linear"))))
    assert result.strategy is None and not (result.path / "strategy.csv").exists()
    html = (result.path / REPORT).read_text(encoding="utf-8")
    assert Parsed(html).sections == list(SECTIONS)
    assert "backtest with <code>--stride 1</code>" in html


def test_report_command_leaves_a_finished_folder_unchanged(folders, tmp_path):
    folder = copy_folder(folders["run"], tmp_path / "run")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert report(folder) == folder / REPORT
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_report_is_added_to_an_older_folder(folders, tmp_path):
    folder = copy_folder(folders["run"], tmp_path / "old")
    expected = (folder / REPORT).read_bytes()
    (folder / REPORT).unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["files"][REPORT]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    report(folder)
    assert (folder / REPORT).read_bytes() == expected  # the same page as `run` wrote
    assert check_run(folder) == folder
    assert verify_folder(folder)[REPORT] == _sha256(folder / REPORT)


def test_stale_report_is_replaced_and_the_manifest_updated(folders, tmp_path):
    folder = copy_folder(folders["backtest"], tmp_path / "stale")
    good = (folder / REPORT).read_bytes()
    (folder / REPORT).write_text("<html>edited</html>")
    with pytest.raises(ArtifactError, match="report.html does not match its sha256"):
        verify_folder(folder)
    report(folder)
    assert (folder / REPORT).read_bytes() == good
    verify_folder(folder)


def test_tampered_folder_gets_no_report(folders, tmp_path):
    folder = copy_folder(folders["run"], tmp_path / "tampered")
    (folder / REPORT).unlink()
    metrics = folder / "metrics.json"
    metrics.write_text(metrics.read_text().replace('"verdict"', '"verdict" ', 1))
    manifest = (folder / MANIFEST).read_bytes()
    with pytest.raises(ArtifactError, match="metrics.json does not match its sha256"):
        report(folder)
    assert not (folder / REPORT).exists()
    assert (folder / MANIFEST).read_bytes() == manifest


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / MANIFEST).write_text('{"files": {}}')
    with pytest.raises(ArtifactError, match="not a marketcast run folder"):
        report(tmp_path)


def test_quality_findings_are_rendered(folders, tmp_path):
    folder = copy_folder(folders["run"], tmp_path / "quality")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["data"]["quality"] = {
        "ohlc_inconsistent": [{"date": "2015-03-02", "check": "high < low"}],
        "stale_prices": [], "zero_volume_days": 3,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(folder)
    assert "quality findings" in html and "No data quality findings" not in html
    assert "ohlc inconsistent" in html and "2015-03-02" in html and "high &lt; low" in html
    assert "zero volume days" in html


def test_train_folder_report_says_what_is_missing(capsys, prices_csv, tmp_path):
    from marketcast.cli import main

    main(["train", "--data", str(prices_csv), "--runs-dir", str(tmp_path), "--name", "t",
          "--lookback", "10", "--layers", "1", "--units", "4", "--epochs", "2"])
    assert f"report: {tmp_path / 't' / REPORT}" in capsys.readouterr().out
    html = (tmp_path / "t" / REPORT).read_text(encoding="utf-8")
    assert Parsed(html).sections == list(SECTIONS)
    assert "without an out-of-sample evaluation" in html
    assert "No forecast saved in this folder" in html


# --- in a real browser ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with browser_or_skip(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


@pytest.mark.parametrize("kind", ["run", "backtest", "global"])
def test_report_in_headless_chromium(browser: Browser, folders, kind, tmp_path):
    page = browser.open(folders[kind] / REPORT)
    keys = GLOBAL_SECTIONS if kind == "global" else SECTIONS
    assert page.sections == [(key, TITLES[key]) for key in keys]
    assert page.images and page.broken_images == []
    assert all(width >= 600 for width in page.image_widths)  # readable, not thumbnails
    assert page.external_requests == []
    assert page.console_errors == []
    shot = tmp_path / f"report-{kind}.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(PNG)
    TEST_OUTPUT.mkdir(exist_ok=True)
    stable = TEST_OUTPUT / ("report.png" if kind == "run" else f"report-{kind}.png")
    shutil.copyfile(shot, stable)
    print(f"screenshot: {stable}")


def test_browser_check_catches_requests_and_broken_images(browser: Browser, tmp_path):
    """The checks above can fail: a page that loads an outside image is caught twice."""
    page_path = tmp_path / "leaky.html"
    page_path.write_text('<html><body><section id="a"><h2>A</h2>'
                         '<img src="http://example.invalid/chart.png"></section></body></html>')
    page = browser.open(page_path)
    assert page.external_requests == ["http://example.invalid/chart.png"]
    assert page.broken_images == ["http://example.invalid/chart.png"]


def test_forecast_table_lists_every_trading_day(folders):
    forecast = pd.read_csv(folders["run"] / "forecast.csv")
    html = (folders["run"] / REPORT).read_text(encoding="utf-8")
    assert all(day in html for day in forecast["date"])


def test_backtest_of_the_random_walk_alone(config, tmp_path):
    result = backtest(dataclasses.replace(
        config, output=OutputConfig(str(tmp_path / "runs"), "walk"),
        backtest=BacktestConfig(n_windows=30, refit_every=0, models=("naive",))))
    html = (result.path / REPORT).read_text(encoding="utf-8")
    assert Parsed(html).sections == list(SECTIONS)
    assert "Only the random walk was evaluated" in html


def test_clean_quality_checks_collapse_to_one_line(folders, tmp_path):
    folder = copy_folder(folders["run"], tmp_path / "clean")
    metrics = json.loads((folder / "metrics.json").read_text())
    checks = ["stale_prices", "zero_volume", "ohlc_inconsistent"]
    metrics["data"]["quality"] = {c: {"count": 0, "dates": []} for c in checks}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(folder)
    assert "3 of 3 data quality checks found nothing (stale prices, zero volume, ohlc " \
           "inconsistent)." in html
    assert "quality findings" not in html and html.count("<th>count</th>") == 0
    metrics["data"]["quality"]["zero_volume"] = {"count": 2, "dates": ["2015-03-02"]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(folder)
    assert "quality findings (2 of 3 data quality checks found nothing)" in html
    assert "zero volume" in html and "2015-03-02" in html and "stale prices" not in html
