"""Running tiny notebooks through the execute step (execute_in_sandbox), for the sandbox and template tests."""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import nbformat

from grading.engine.execute_sandboxed import execute_in_sandbox
from grading.engine.sandbox import Sandbox

# limits every run gets unless it says otherwise: generous, since these tests check what happens, not how fast (a busy
# machine can take tens of seconds to import torch); a test of a time limit sets its own
CELL_TIMEOUT = 300
DEFAULTS = {"notebook_timeout": 900}
ROOT = Path(__file__).resolve().parents[2]


def run(*sources, files=None, **limits):
    """Execute one code cell per source in the sandbox; (executed cells, outcome)."""
    executed, outcome = run_json(*sources, files=files, **limits)
    return nbformat.reads(executed, as_version=4).cells, outcome


def run_json(*sources, files=None, questions=None, probe_setup="", **limits):
    """Like run, but (the executed notebook as the JSON text the grader keeps, outcome); a source may be a whole
    cell (to carry a grade id), and questions and probe_setup are as execute_in_sandbox takes them."""
    cells = [nbformat.v4.new_code_cell(s) if isinstance(s, str) else s for s in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    settings = dataclasses.replace(Sandbox().limits(cell_timeout=CELL_TIMEOUT), **{**DEFAULTS, **limits})
    given = {"data/given.txt": b"given"} if files is None else files
    return execute_in_sandbox(nbformat.writes(nb), given, settings, questions, probe_setup)


def run_measured(*sources, **limits):
    """run_json in a grader process of its own: (executed JSON, outcome, that process's peak resident memory in
    bytes). Only the grader is measured: the kernel's memory is the sandbox's business."""
    code = (
        "import json, pickle, resource, sys\n"
        "from support.sandbox_runs import run_json\n"
        "sources, limits = json.load(sys.stdin)\n"
        "executed, outcome = run_json(*sources, **limits)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "pickle.dump([executed, outcome, peak], sys.stdout.buffer)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([sources, {**DEFAULTS, **limits}]).encode(),
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:].decode(errors="replace")
    executed, outcome, peak = pickle.loads(done.stdout)
    return executed, outcome, peak


def text(cell):
    """A cell's printed text and error names and values, run together."""
    return "".join(o.get("text", "") + o.get("ename", "") + o.get("evalue", "") for o in cell.outputs)
