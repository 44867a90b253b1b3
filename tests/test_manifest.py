"""The manifest of a run folder is input too: each of its fields edited is one error line
naming manifest.json, and nothing outside the folder is read."""

import json

import pytest
import test_artifacts
from test_cli import assert_one_line_error, cli

# One `run` folder for the module, and a copy of it for each test.
finished, folder = test_artifacts.finished, test_artifacts.folder


def edited(manifest, **changes):
    return {**manifest, **changes}


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda m: "{not json", "cannot read"),
    (lambda m: "[" * 100_000 + "]" * 100_000, "cannot read"),
    (lambda m: json.dumps([1]), "manifest.json is malformed"),
    (lambda m: json.dumps(edited(m, files=["model.json"])), "manifest.json is malformed"),
    (lambda m: json.dumps(edited(m, files={**m["files"], "../outside.json": "0" * 64})),
     "manifest.json lists '../outside.json'"),
    (lambda m: json.dumps(edited(m, files={**m["files"], "model.json": 5})),
     "manifest.json lists 'model.json'"),
    (lambda m: json.dumps(edited(m, files={**m["files"], "gone.csv": "0" * 64})),
     "is missing gone.csv"),
    (lambda m: json.dumps(edited(m, kind="z" * 10_000)), "records an unknown kind 'zzzz"),
], ids=["not JSON", "nested 100,000 deep", "a list", "files a list", "a path outside",
        "a digest not a string", "a file missing", "an unknown kind"])
def test_edits_of_manifest_json_are_one_line(capsys, folder, tmp_path, change, fragment):
    (tmp_path / "runs" / "outside.json").write_text("{}")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(change(manifest))
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, fragment)
    assert len(err) < 400
