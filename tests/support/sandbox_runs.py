"""Running tiny notebooks through the execute step (execute_in_sandbox), for the sandbox and template tests."""

import nbformat

from grading.engine.execute_sandboxed import execute_in_sandbox
from grading.engine.sandbox import Sandbox

DEFAULTS = {"notebook_timeout": 60}  # limits every run gets unless it says otherwise


def run(*sources, files=None, **limits):
    """Execute one code cell per source in the sandbox; (executed cells, outcome)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    settings = {**Sandbox().limits(cell_timeout=10), **DEFAULTS, **limits}
    given = {"data/given.txt": b"given"} if files is None else files
    executed, outcome = execute_in_sandbox(nbformat.writes(nb), given, settings)
    return nbformat.reads(executed, as_version=4).cells, outcome


def text(cell):
    """A cell's printed text and error names and values, run together."""
    return "".join(o.get("text", "") + o.get("ename", "") + o.get("evalue", "") for o in cell.outputs)
