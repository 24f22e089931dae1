"""Put back the nbgrader flags of a submitted notebook's cells from the gradebook, before nbgrader's own sanitizing.

nbgrader trusts a submitted cell's metadata: a student who marks an answer cell as graded makes OverwriteCells
raise (no such grade cell), and that student is not graded at all. RestoreCellFlags (first in
c.Autograde.sanitize_preprocessors) and `make autograde` restore grade, solution, task, locked and points of every
known cell from the gradebook instead, and turn cells with unknown grade ids or broken metadata into plain cells.
"""

from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.nbgraderformat import ValidationError
from nbgrader.preprocessors import NbGraderPreprocessor

from .cell_metadata import CellMetadataValidator


def restore_cell_flags(nb, db_url, course_id, assignment, name):
    """Put back the nbgrader flags (grade, solution, locked, points) of known cells from the gradebook;
    cells naming an unknown grade id or carrying broken metadata become plain cells. Returns notes."""
    notes = []
    validator = CellMetadataValidator()
    with Gradebook(db_url, course_id) as gb:
        notebook = gb.find_notebook(name, assignment)
        source = {c.name: c for c in notebook.source_cells}
        points = {c.name: c.max_score for c in notebook.grade_cells}
        solutions = {c.name for c in notebook.solution_cells}
        tasks = {c.name: c.max_score for c in notebook.task_cells}
    # a cell copied in JupyterLab keeps its nbgrader metadata: as nbgrader's DeduplicateIds does, the last copy is
    # graded, and the others become plain cells here (DeduplicateIds would leave them with empty metadata, on
    # which OverwriteCells fails and the whole notebook is not graded)
    last = {_grade_id(cell): index for index, cell in enumerate(nb.cells) if _grade_id(cell) is not None}
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        copied = _grade_id(cell)
        if copied is not None and last[copied] != index:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {copied} appears more than once (copied?); the last copy is graded")
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(gid, str) or gid not in source:
            del cell.metadata["nbgrader"]
            notes.append(f"a cell with unknown grade id {gid!r} is treated as a plain cell")
            continue
        if cell.cell_type != source[gid].cell_type:
            notes.append(f"cell {gid} changed type; restored")
            cell.cell_type = source[gid].cell_type
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
        restored = {
            "grade_id": gid,
            "grade": gid in points,
            "solution": gid in solutions,
            "task": gid in tasks,
            "locked": bool(source[gid].locked),
            "schema_version": 3,
            "cell_type": source[gid].cell_type,
        }
        if gid in points or gid in tasks:  # the submitted number, if equal, keeps the checksum's spelling
            most = points.get(gid, tasks.get(gid))
            restored["points"] = meta["points"] if _same_number(meta.get("points"), most) else most
        if isinstance(meta.get("checksum"), str):
            restored["checksum"] = meta["checksum"]
        changed = sorted(
            k
            for k in ("grade", "solution", "task", "locked", "points")
            if k in restored
            and meta.get(k) != restored[k]
            and not (k == "points" and _same_number(meta.get(k), restored[k]))
        )
        if changed:
            notes.append(f"nbgrader metadata ({', '.join(changed)}) of {gid} was changed; restored")
        cell.metadata["nbgrader"] = restored
        try:
            validator.validate_cell(cell)
        except ValidationError:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {gid} has broken metadata; treated as a plain cell")
    return notes


def _grade_id(cell):
    meta = cell.metadata.get("nbgrader")
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def _same_number(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


class RestoreCellFlags(NbGraderPreprocessor):
    """restore_cell_flags as a preprocessor of nbgrader's sanitize step; what it restored goes to the log."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        course_id = CourseDirectory(config=self.config).course_id
        for note in restore_cell_flags(nb, info["db_url"], course_id, info["assignment"], info["notebook"]):
            self.log.warning("%s: %s", info.get("student"), note)
        return nb, resources
