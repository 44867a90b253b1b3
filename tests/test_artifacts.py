"""Saved models are distrusted: a folder edited and resealed (its manifest recomputed, as
anyone editing it can) is refused field by field, with one error line naming the file and
the field, exit code 2; never a traceback, never a NaN forecast."""

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
from conftest import small_config
from safetensors.numpy import load_file, save_file
from test_cli import assert_one_line_error, cli

from marketcast import api
from marketcast.errors import ArtifactError
from marketcast.runs.schema import validate_model_spec


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run folder (a `run`, with residuals), copied by each test."""
    from conftest import synthetic_prices

    root = tmp_path_factory.mktemp("finished")
    synthetic_prices().to_csv(root / "prices.csv", index=False)
    config = small_config(root / "prices.csv", root / "runs")
    config = dataclasses.replace(
        config, train=dataclasses.replace(config.train, max_epochs=1),
        output=dataclasses.replace(config.output, name="r"))
    return api.run(config).path


@pytest.fixture
def folder(finished, tmp_path):
    copy = tmp_path / "runs" / "r"
    shutil.copytree(finished, copy)
    return copy


def reseal(folder):
    """Recompute the manifest as `RunFolder.finish` does: the sha256 of every listed file."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                         for name in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def edit_model(folder, change):
    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))  # NaN is written as NaN
    reseal(folder)


def scaler(meta):
    return meta["transform"]["scaler"]


def everywhere(key, value):
    """The same setting changed consistently in the model, transform and config."""
    def change(meta):
        meta["model"][key] = meta["config"]["model"][key] = meta["transform"][key] = value
    return change


EDITS = [
    ("fan method unknown", lambda m: m["fan"].update(method="magic"),
     "fan.method is 'magic', not one of conformal, scaled, aci"),
    ("fan level out of range", lambda m: m["fan"].update(level=1.5),
     "fan.level is 1.5, not between 0 and 1"),
    ("scaler of the wrong length", lambda m: scaler(m).update(min=[0.0, 1.0]),
     "transform.scaler.min must be a list of 1 numbers"),
    ("negative lookback", everywhere("lookback", -5), "model.lookback must be at least 1"),
    ("string lookback", everywhere("lookback", "10"), "lookback: expected int, got '10'"),
    ("lookback beyond the context", everywhere("lookback", 50),
     "context_y must hold at least 51 prices (lookback 50)"),
    ("horizon changed", everywhere("horizon", 3),
     "weights: head.bias has shape (1,), not (3,) for the model's settings"),
    ("horizon changed in one place", lambda m: m["transform"].update(horizon=3),
     "transform.horizon is 3, but the model's is 1"),
    ("config out of step", lambda m: m["config"]["model"].update(units=9),
     "model differs from the same section of config"),
    ("unparseable context date", lambda m: m["context_dates"].__setitem__(0, "yesterday"),
     "context_dates holds a value that is not a YYYY-MM-DD date"),
    ("dates out of order", lambda m: m["context_dates"].reverse(),
     "context_dates are not increasing"),
    ("too few context values", lambda m: m.update(context_y=m["context_y"][:3]),
     "context_y must hold at least 11 prices"),
    ("NaN scaler range", lambda m: scaler(m).update(range=[float("nan")]),
     "transform.scaler.range holds a value that is not finite"),
    ("zero scaler range", lambda m: scaler(m).update(range=[0.0]),
     "transform.scaler.range holds a value that is not positive"),
    ("1e308 scaler range", lambda m: scaler(m).update(range=[1e308]),
     "transform.scaler.range holds a value that is not finite or beyond 1e+50"),
    ("negative context price", lambda m: m["context_y"].__setitem__(-1, -5.0),
     "context_y holds a value that is not positive"),
    ("unknown target transform", everywhere("target_transform", "diff"),
     "model.target_transform must be one of level, log_return"),
    ("unknown key", lambda m: m.update(pickle="x"), "the file has an unknown key 'pickle'"),
    ("best epoch beyond the epochs", lambda m: m.update(best_epoch=99),
     "best_epoch is 99, not a whole number from 0 to 1"),
    ("extra features without context_X", lambda m: m.update(features=["close", "volume"]),
     "transform.n_features is 1, not a whole number from 2 to 2"),
]


@pytest.mark.parametrize(("what", "change", "message"), EDITS, ids=[e[0] for e in EDITS])
def test_resealed_edits_of_model_json_are_one_line(capsys, folder, what, change, message):
    edit_model(folder, change)
    for command in (["forecast", "--run", str(folder)], ["evaluate", "--run", str(folder)]):
        code, out, err = cli(capsys, *command)
        assert_one_line_error(code, err, message)
        assert f"error: {folder / 'model.json'}: " in err
        assert out == "" and "nan" not in err.lower().replace("nan scaler", "")


def test_nan_or_reshaped_weights_are_refused(capsys, folder):
    weights = load_file(folder / "model.safetensors")
    weights["head.bias"] = np.full_like(weights["head.bias"], np.nan)
    save_file(weights, folder / "model.safetensors")
    reseal(folder)
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, f"{folder / 'model.safetensors'}: head.bias holds a "
                          "weight that is not finite")
    weights["head.bias"] = np.zeros(2, dtype=np.float32)
    save_file(weights, folder / "model.safetensors")
    reseal(folder)
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, "weights: head.bias has shape (2,), not (1,)")


def test_a_forecast_that_overflows_is_an_error_not_inf(capsys, folder):
    edit_model(folder, lambda m: scaler(m).update(range=[1e49]))  # valid, but exp overflows
    code, out, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, f"the forecast of {folder} came out NaN or infinite")
    assert out == ""


def test_symlinked_files_are_refused(capsys, folder, tmp_path):
    outside = tmp_path / "outside.csv"
    shutil.copy(folder / "loss_history.csv", outside)
    (folder / "loss_history.csv").unlink()
    (folder / "loss_history.csv").symlink_to(outside)
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, "loss_history.csv is a symbolic link")


def test_forecast_options_are_checked(capsys, folder):
    for flag, value, message in [("--interval", "nan", "--interval nan must be in [0, 1)"),
                                 ("--days", "100000", "--days 100000 must be between 1 and")]:
        code, _, err = cli(capsys, "forecast", "--run", str(folder), flag, value)
        assert_one_line_error(code, err, message)


def test_validate_model_spec_accepts_what_was_written(folder):
    meta = json.loads((folder / "model.json").read_text())
    shapes = {k: v.shape for k, v in load_file(folder / "model.safetensors").items()}
    assert validate_model_spec(meta, shapes) is meta
    with pytest.raises(ArtifactError, match="lstm.weight_hh_l1 is missing"):
        validate_model_spec(meta, {k: s for k, s in shapes.items() if k != "lstm.weight_hh_l1"})


def edit_metrics(folder, change):
    metrics = json.loads((folder / "metrics.json").read_text())
    change(metrics)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    reseal(folder)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(metrics="x"), "metrics.json: metrics is 'x', of the wrong type"),
    (lambda m: m.update(environment=3), "metrics.json: environment is 3, of the wrong type"),
    (lambda m: m.update(best_epoch="a"), "metrics.json: best_epoch is 'a', of the wrong type"),
    (lambda m: m["metrics"].__setitem__(0, 5), "metrics.json: metrics must be a list of tables"),
    (lambda m: m["metrics"][0].update(rmse="x"), "holds values marketcast did not write"),
])
def test_resealed_edits_of_metrics_json_are_one_line(capsys, folder, change, message):
    edit_metrics(folder, change)
    code, _, err = cli(capsys, "report", str(folder))
    assert_one_line_error(code, err, message)


def test_an_interrupted_report_rewrite_says_how_to_repair(capsys, folder):
    (folder / "report.html").write_text("<html>half</html>")  # renamed in, manifest not yet
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, f"rewrite it with `marketcast report {folder}`")
    code, _, err = cli(capsys, "report", str(folder))
    assert code == 0, err
    code, out, err = cli(capsys, "forecast", "--run", str(folder))
    assert code == 0 and out.startswith("date,lstm"), err


def leaves(value, path=()):
    """Paths to every field of a JSON value (the first item of each list)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        yield from leaves(value[0], (*path, 0))


def test_every_field_of_model_json_replaced_by_a_hostile_value_is_clean(folder):
    """Derandomized: each field in turn set to each hostile value, manifest resealed;
    the forecast either works (finite) or ends in our error, never another exception."""
    from marketcast.errors import MarketcastError

    original = json.loads((folder / "model.json").read_text())
    paths = [p for p in leaves(original) if p and p[0] != "versions"]
    outcomes = {"ok": 0, "refused": 0}
    for path in paths:
        for hostile in (None, "x", -1, 1e308, float("nan"), [], {}):
            meta = json.loads(json.dumps(original))
            *parents, last = path
            target = meta
            for key in parents:
                target = target[key]
            target[last] = hostile
            (folder / "model.json").write_text(json.dumps(meta))
            reseal(folder)
            try:
                frame = api.forecast(folder, interval=0)
            except MarketcastError:
                outcomes["refused"] += 1
            else:
                assert np.isfinite(frame["lstm"]).all(), path
                outcomes["ok"] += 1
    assert outcomes["refused"] > 0.8 * len(paths) * 7, outcomes
