"""The course's check of nbgrader cell metadata gives nbgrader's own verdict on every cell, valid or not."""

import copy

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from grading.coordinator.cell_metadata import CellMetadataValidator, CheckCellMetadataOnce

GOOD = {"grade": True, "solution": False, "locked": True, "grade_id": "q1_test", "points": 2, "schema_version": 3}
CASES = {
    "a valid test cell": GOOD,
    "a valid answer cell": {k: v for k, v in GOOD.items() if k != "points"} | {"grade": False, "solution": True},
    "a valid written answer": {**GOOD, "solution": True, "locked": False},
    "points as none": {**GOOD, "points": None},
    "points as text": {**GOOD, "points": "two"},
    "grade as a number": {**GOOD, "grade": 1},
    "grade id as a number": {**GOOD, "grade_id": 7},
    "no grade id": {k: v for k, v in GOOD.items() if k != "grade_id"},
    "an empty grade id": {**GOOD, "grade_id": ""},
    "no points on a graded cell": {k: v for k, v in GOOD.items() if k != "points"},
    "negative points": {**GOOD, "points": -1},
    "an older schema": {**GOOD, "schema_version": 2},
    "a newer schema": {**GOOD, "schema_version": 4},
    "no schema version": {k: v for k, v in GOOD.items() if k != "schema_version"},
    "metadata that is a list": ["grade", True],
    "an unknown key": {**GOOD, "surprise": True},
    "checksum as a number": {**GOOD, "checksum": 12},
}


def verdict(validator, meta, cell_type="code"):
    cell = nbformat.v4.new_code_cell("x = 1") if cell_type == "code" else nbformat.v4.new_markdown_cell("x")
    cell.metadata["nbgrader"] = copy.deepcopy(meta)
    try:
        validator.validate_cell(cell)
    except Exception as error:  # noqa: BLE001 - the verdict is the exception's type and message
        return type(error).__name__, str(error).splitlines()[0]
    return "valid"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cell_type", ["code", "markdown"])
def test_each_cell_gets_nbgraders_own_verdict(case, cell_type):
    assert verdict(CellMetadataValidator(), CASES[case], cell_type) == verdict(
        MetadataValidator(), CASES[case], cell_type
    )


def test_the_preprocessor_refuses_a_notebook_with_broken_metadata_and_passes_a_good_one():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = 2")]
    nb.cells[0].metadata["nbgrader"] = dict(GOOD)
    nb.cells[1].metadata["nbgrader"] = {**GOOD, "grade_id": "q2_test"}
    assert CheckCellMetadataOnce().preprocess(nb, {})[0] is nb
    nb.cells[1].metadata["nbgrader"]["grade_id"] = "q1_test"  # the same grade id twice
    with pytest.raises(Exception, match="Notebook failed to validate"):
        CheckCellMetadataOnce().preprocess(nb, {})
    nb.cells[1].metadata["nbgrader"] = {**GOOD, "grade_id": "q2_test", "points": "two"}
    with pytest.raises(Exception, match="Notebook failed to validate"):
        CheckCellMetadataOnce().preprocess(nb, {})
