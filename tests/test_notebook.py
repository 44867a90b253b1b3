"""examples/quickstart.ipynb runs from top to bottom on this checkout, writing nothing."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
# Seconds any one cell may take: the notebook's settings are small.
CELL_TIMEOUT = 300


def test_quickstart_notebook_runs_and_shows_its_results(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), \
        "commit the notebook without outputs"
    # The kernel imports this checkout's code, whatever is installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error

    code = [c for c in notebook.cells if c.cell_type == "code"]
    outputs = {c.source.splitlines()[-1]: c.outputs for c in code}
    forecast = outputs["model.predict(10)"][0]["data"]
    assert forecast["text/plain"].count("\n") == 11  # header, index name and 10 sessions
    shown = outputs["result"][0]["data"]["text/html"]
    assert "marketcast run: data in memory" in shown and "data:image/png;base64," in shown
    assert "significantly" in shown  # the verdict carries its test
    assert "Backtest: 40 forecast cutoffs" in outputs["bt"][0]["data"]["text/html"]
    figure = outputs['result.plot("forecast")'][0]["data"]
    assert "image/png" in figure
    assert os.listdir(tmp_path) == []  # no runs/ folder, no files
