"""A run's residuals.csv is read through the manifest-verified bytes and checked column by
column: an edit, resealed or not, is one error line naming residuals.csv and the column."""

import json

import pandas as pd
import pytest
import test_artifacts
from test_artifacts import reseal
from test_cli import assert_one_line_error, cli

from marketcast import api
from marketcast.errors import ArtifactError

# One `run` folder for the module, and a copy of it for each test.
finished, folder = test_artifacts.finished, test_artifacts.folder


def edit_residuals(folder, change, seal=True):
    path = folder / "residuals.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")
    if seal:
        reseal(folder)


def cell(row, column, value):
    """Set one cell (row 1 is the first data row) of the CSV's lines."""
    def change(lines):
        header = lines[0].split(",")
        cells = lines[row].split(",")
        cells[header.index(column)] = value
        return [*lines[:row], ",".join(cells), *lines[row + 1:]]
    return change


CASES = [
    (cell(3, "abs_log_residual", "nan"), "column 'abs_log_residual' holds 'nan'"),
    (cell(3, "abs_log_residual", "inf"), "column 'abs_log_residual' holds 'inf'"),
    (cell(1, "abs_log_residual", "-0.5"), "column 'abs_log_residual' holds '-0.5'"),
    (cell(2, "abs_log_residual", ""), "column 'abs_log_residual' holds ''"),
    (cell(2, "abs_log_residual", "abc"), "column 'abs_log_residual' holds 'abc'"),
    (cell(4, "volatility", "-1e-3"), "column 'volatility' holds '-1e-3'"),
    (cell(4, "volatility", "inf"), "column 'volatility' holds 'inf'"),
    (cell(2, "step", "0"), "column 'step' holds '0', not a whole number from 1 to 30"),
    (cell(2, "step", "31"), "column 'step' holds '31', not a whole number from 1 to 30"),
    (cell(2, "step", "1.5"), "column 'step' holds '1.5'"),
    (cell(2, "step", "-1"), "column 'step' holds '-1'"),
    (cell(2, "step", "9" * 400), "column 'step' holds '9999"),
    (lambda lines: ["step,abs_log_residual,extra", *lines[1:]],
     "the header is 'step,abs_log_residual,extra', not step,abs_log_residual,volatility"),
    (lambda lines: ["abs_log_residual,step,volatility", *lines[1:]], "the header is"),
    (lambda lines: [], "the file is not a readable CSV"),
    (lambda lines: [lines[0], *(line.rsplit(",", 1)[0] + "," for line in lines[1:])],
     "column 'volatility' is blank in every row"),
]


@pytest.mark.parametrize(("change", "fragment"), CASES, ids=[c[1][:36] for c in CASES])
def test_resealed_edits_of_residuals_csv_are_one_line(capsys, folder, change, fragment):
    edit_residuals(folder, change)
    code, _, err = cli(capsys, "forecast", "--run", str(folder), "--interval", "0.9")
    assert_one_line_error(code, err, fragment)
    assert str(folder / "residuals.csv") in err and len(err) < 400
    with pytest.raises(ArtifactError, match="residuals.csv"):
        api.forecast(folder, interval=0.9)


def test_the_bytes_parsed_are_the_bytes_hashed(capsys, folder, monkeypatch):
    edit_residuals(folder, cell(1, "abs_log_residual", "5.0"), seal=False)
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, "residuals.csv does not match its sha256")
    reseal(folder)
    parsed = []
    real = pd.read_csv

    def spy(source, *args, **kwargs):  # what is parsed: never the path, read a second time
        parsed.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr("marketcast.runs.residuals.pd.read_csv", spy)
    future = api.forecast(folder, interval=0.9)
    assert len(parsed) == 1 and not isinstance(parsed[0], str | bytes)
    bounded = future.dropna(subset=["lstm_upper"])  # a late step may lack calibration
    assert len(bounded) >= 5 and (bounded["lstm_upper"] > bounded["lstm"]).all()


def test_an_unlisted_residuals_file_is_refused(capsys, folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]["residuals.csv"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "forecast", "--run", str(folder), "--interval", "0.9")
    assert_one_line_error(code, err, "residuals.csv is not listed in manifest.json")


def test_what_a_run_writes_is_read_back_unchanged(folder):
    from marketcast.runs.residuals import read_residuals

    written = pd.read_csv(folder / "residuals.csv")
    meta = json.loads((folder / "model.json").read_text())
    back = read_residuals(folder, meta)
    assert list(back.columns) == ["step", "abs_log_residual", "volatility"]
    pd.testing.assert_frame_equal(back, written, check_dtype=False)
    assert meta["config"]["forecast"]["days"] == 30  # the bound the cases above use
    assert back["step"].min() == 1 and back["step"].max() == 30


def test_a_global_model_s_residuals_name_its_tickers(tmp_path):
    from marketcast.runs.residuals import check_residuals

    raw = pd.DataFrame({"ticker": ["AAA", "NA", "AAA"], "step": ["1", "2", "3"],
                        "abs_log_residual": ["0.01", "0", "0.03"],
                        "volatility": ["", "0.02", "0.01"]})
    table = check_residuals(raw, tmp_path / "residuals.csv", 3, {"AAA", "NA"})
    assert table["ticker"].tolist() == ["AAA", "NA", "AAA"]  # "NA" stays a name
    assert table["volatility"].isna().tolist() == [True, False, False]
    with pytest.raises(ArtifactError, match="column 'ticker' holds 'NA', a ticker the model"):
        check_residuals(raw, tmp_path / "residuals.csv", 3, {"AAA"})
    with pytest.raises(ArtifactError, match="column 'ticker' holds no residuals of 'BBB'"):
        check_residuals(raw, tmp_path / "residuals.csv", 3, {"AAA", "BBB", "NA"})
    with pytest.raises(ArtifactError, match="'volatility' is blank in every row of 'NA'"):
        check_residuals(raw.assign(volatility=["0.1", "", "0.2"]), tmp_path / "r.csv", 3,
                        {"AAA", "NA"})
    with pytest.raises(ArtifactError, match="the header is 'step,abs_log_residual,volatility"):
        check_residuals(raw.drop(columns="ticker"), tmp_path / "r.csv", 3, {"AAA"})


def test_a_residuals_file_with_no_rows_is_refused(capsys, folder):
    edit_residuals(folder, lambda lines: lines[:1])
    code, _, err = cli(capsys, "forecast", "--run", str(folder), "--interval", "0.9")
    assert_one_line_error(code, err, "residuals.csv: the file holds no residuals")
