"""The instructor notebook runs top to bottom and passes its own tests."""

import time

import nbformat
import pytest
from nbclient import NotebookClient

from grading.course_kit.submissions import SOURCE_NOTEBOOK


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(str(SOURCE_NOTEBOOK), as_version=4)
    start = time.monotonic()
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(SOURCE_NOTEBOOK.parent)}},
    ).execute()
    return nb, time.monotonic() - start


@pytest.mark.slow
def test_instructor_notebook_runs_without_errors_or_stderr(executed):
    nb, seconds = executed
    assert seconds > 1, "the notebook did not really run"
    for cell in nb.cells:
        if cell.cell_type == "code":
            bad = [o for o in cell.outputs if o.output_type == "error" or o.get("name") == "stderr"]
            assert not bad, f"{cell.metadata.get('nbgrader', {}).get('grade_id')}: {bad}"


@pytest.mark.slow
def test_instructor_notebook_draws_graphs_and_plots(executed):
    nb, _ = executed
    outputs = {c.metadata.get("nbgrader", {}).get("grade_id"): c.outputs for c in nb.cells if c.cell_type == "code"}
    for graph in ("q1_graph", "q2_graph"):
        svg = outputs[graph][0]["data"]["image/svg+xml"]
        assert "MulBackward0" in svg and "AccumulateGrad" in svg
    for plot in ("q4_loss_plot", "q4_weights_plot"):
        assert "image/png" in outputs[plot][0]["data"]
