"""Damaged run folders and checkpoints end in success (finite forecasts) or our own
one-line error, never a crash: a derandomized subset of ``benchmarks/fuzz_loaders.py``.

The strategies and checks live in ``messy_artifacts.py``. A case damages one file and loads
its folder with the manifest kept (refused by the sha256 check) and recomputed (refused by
the schema checks, or loaded). Below: regressions the fuzzer found, each crashed before.
"""

import collections
import dataclasses
import hashlib
import json
import shutil

import pytest
import torch
from messy_artifacts import TARGETS, build_fixtures, fuzz_artifacts, modes, reseal, run_case
from safetensors.torch import load_file, save_file
from test_cli import assert_one_line_error, cli

from marketcast import api
from marketcast.config import Config
from marketcast.errors import ArtifactError

# Cases per target: a few dozen where a case takes milliseconds, fewer where one renders a
# report or trains an epoch.
CASES = {"model_json": 30, "weights": 30, "metrics_json": 5, "config_toml": 6,
         "checkpoint_state": 6, "checkpoint_json": 16, "session_json": 6,
         "store_parquet": 40}

@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return build_fixtures(tmp_path_factory.mktemp("fixtures"))


@pytest.mark.parametrize("target", [t for t in TARGETS if t not in ("model_json", "weights")])
def test_damaged_files_load_or_are_refused_cleanly(fixtures, tmp_path, target):
    counts = collections.Counter()
    for case in range(CASES[target]):
        for mode, outcome, label, detail in run_case(target, case, 0, fixtures,
                                                     tmp_path / str(case)):
            assert outcome != "crash", f"case {case} ({mode}): {label}\n{detail}"
            counts[mode, outcome] += 1
    assert sum(counts.values()) == CASES[target] * len(modes(target))
    if "kept" in modes(target):  # every damaged file refused by the manifest
        assert counts["kept", "error"] >= CASES[target] - 2, counts
    last = modes(target)[-1]
    assert counts[last, "error"] >= 2, counts  # the schema checks refuse some
    assert counts[last, "ok"] >= 1, counts  # and some edits still load


def test_worker_pool_counts_outcomes_and_peak_memory(fixtures):
    root = fixtures["run"].parent.parent
    report = fuzz_artifacts(["model_json", "weights"], 30, 0, root, workers=1, timeout=30)
    for one in report.values():
        assert one["crashes"] == {}, one["crashes"]
        counts = one["counts"]
        assert sum(counts["kept"].values()) == sum(counts["resealed"].values()) == 30
        assert counts["kept"].get("hang", 0) == counts["resealed"].get("hang", 0) == 0
        assert counts["kept"]["error"] >= 27, counts
        assert counts["resealed"]["error"] >= 10 and counts["resealed"]["ok"] >= 1, counts
        assert one["peak"][0] > 50 * 1024, one["peak"]  # KiB: torch and pandas are loaded


# ---- regressions -------------------------------------------------------------------------

@pytest.fixture
def stopped(fixtures, tmp_path):
    """A copy of the run stopped after epoch 1, its settings and checkpoint folder."""
    shutil.copytree(fixtures["checkpoints"], tmp_path / "ck")
    config = Config.from_dict(json.loads(fixtures["stopped"].read_text()))
    config = dataclasses.replace(config, output=dataclasses.replace(
        config.output, runs_dir=str(tmp_path / "ck")))
    return config, tmp_path / "ck" / ".checkpoints" / "s"


def edit_state(folder, change):
    """Edit the state file and record its new sha256, as an editor can."""
    info = json.loads((folder / "checkpoint.json").read_text())
    path = folder / info["state_file"]
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)
    info["state_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "checkpoint.json").write_text(json.dumps(info))
    return path


@pytest.mark.parametrize(("change", "message"), [
    # Adam crashed on its first step (a size mismatch, a KeyError).
    (lambda t: t.update({"optim.0.exp_avg": torch.zeros(32, 1)}),
     "'optim.0.exp_avg' is float32 of shape (32, 1), not float32 of shape (16, 1)"),
    (lambda t: t.pop("optim.2.exp_avg_sq"), "'optim.2.exp_avg_sq' is missing"),
    (lambda t: t.update({"optim.1.exp_avg": t["optim.1.exp_avg"].double()}),
     "'optim.1.exp_avg' is float64 of shape (16, 4), not float32 of shape (16, 4)"),
    (lambda t: t.update({"optim.1.step": torch.tensor(0.0)}),
     "'optim.1.step' is 0.0, not a count of 1 or more Adam steps"),
    # Torch's message ran over several lines.
    (lambda t: t.update({"net.head.weight": torch.zeros(4)}),
     "'net.head.weight' is float32 of shape (4,), not float32 of shape (1, 4)"),
    (lambda t: t.update({"best.lstm.bias_ih_l0": torch.full((16,), float("nan"))}),
     "'best.lstm.bias_ih_l0' holds a value that is not finite"),
])
def test_a_resealed_checkpoint_state_of_other_tensors_is_one_error(stopped, change, message):
    config, folder = stopped
    path = edit_state(folder, change)
    with pytest.raises(ArtifactError) as error:
        api.run(config, resume=True)
    assert str(error.value).startswith(f"{path}: {message}; it was edited: delete {folder}")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("edit", "message"), [
    # A list as a loss crashed the loss plot of the finished run; 10**400 overflowed a float.
    (lambda info: info["history"][0].__setitem__(1, [1.0]),
     "history holds a loss or time that is not a finite number"),
    (lambda info: info["history"][0].__setitem__(3, -1), "history holds a loss or time"),
    (lambda info: info.update(best_loss=10**400), "best_loss is not a finite number or null"),
    (lambda info: info.update(best_loss="0.1"), "best_loss is not a finite number or null"),
    (lambda info: info.update(waited=True), "waited is not between 0 and 1"),
])
def test_an_edited_checkpoint_history_is_one_error(stopped, edit, message):
    config, folder = stopped
    info = json.loads((folder / "checkpoint.json").read_text())
    edit(info)
    (folder / "checkpoint.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match=f"^{folder / 'checkpoint.json'}: {message}"):
        api.run(config, resume=True)


@pytest.mark.parametrize("fraction", ["5e-324", "1e-300"])
def test_a_saved_split_fraction_too_small_for_any_data_is_one_error(capsys, stopped, fraction):
    """session.json's test_fraction 5e-324 crashed (OverflowError), 1e-300 looped for ever."""
    config, folder = stopped
    session = json.loads((folder / "session.json").read_text())
    session["config"]["split"]["test_fraction"] = float(fraction)
    (folder / "session.json").write_text(json.dumps(session))
    capsys.readouterr()
    code, _, err = cli(capsys, "run", "--runs-dir", config.output.runs_dir, "--name", "s",
                       "--resume")
    assert_one_line_error(code, err, f"error: a 0.15 validation and {float(fraction):g} test "
                          "split needs over 1e+12 days to hold one window of each; use larger "
                          "--val-fraction and --test-fraction")


@pytest.fixture
def run_folder(fixtures, tmp_path):
    shutil.copytree(fixtures["run"], tmp_path / "r")
    return tmp_path / "r"


def resealed(folder, name, edit):
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data))
    reseal(folder)


@pytest.mark.parametrize(("edit", "field"), [
    # An integer no float can hold crashed the report's number format and the loss plot.
    (lambda m: m.update(best_epoch=10**400), "best_epoch"),
    (lambda m: m["metrics"][0].update(rmse=-(10**60)), "metrics[0].rmse"),
])
def test_a_huge_integer_in_metrics_json_is_one_error(capsys, run_folder, edit, field):
    resealed(run_folder, "metrics.json", edit)
    code, _, err = cli(capsys, "report", str(run_folder))
    assert_one_line_error(code, err, f"error: {run_folder}/metrics.json: {field} is a whole "
                          "number beyond 1e+50; it was edited or not written by marketcast")


def test_a_huge_integer_in_model_json_is_one_error(run_folder):
    """It crashed converting the context to floats (OverflowError)."""
    resealed(run_folder, "model.json", lambda m: m["context_y"].__setitem__(0, 10**400))
    with pytest.raises(ArtifactError, match=r"model.json: context_y holds a value that is not "
                       r"finite or beyond 1e\+50; it was edited"):
        api.forecast(run_folder)
