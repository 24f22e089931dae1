"""A submission's notebook run in a forked IPython shell in this process, each test cell judged right after it.

The fast way to run the judge's checks (grading/checks/backprop_checks.py) on the submission catalogue: the same checks
and the same parser as grading, asked in-process (NotebookStudent) instead of through a sandboxed kernel. Each
notebook runs in a child forked from this process, so what a submission patches (torch, builtins) dies with it.
"""

import importlib
import multiprocessing
import os
import sys
import traceback

from grading.checks.backprop_questions import CHECKS, PUBLIC
from grading.checks.judge import NotebookStudent, as_executed, grade_id, run_check
from grading.course_kit.submissions import SOURCE_NOTEBOOK
from grading.engine.sandbox import PRELOAD

_WARM = []


def _warm_up():
    """Import once, in this process, what every notebook imports, so that no forked child pays for it."""
    if not _WARM:
        os.environ["MPLBACKEND"] = "agg"
        _WARM.extend(importlib.import_module(name) for name in PRELOAD + ("IPython.core.interactiveshell",))


NOT_RUN = {
    "q1_graph",
    "q2_graph",
    "lr_sweep",
    "q4_loss_plot",
    "q4_weights_plot",
    "q6_experiment",
}  # drawings and timings: nothing to check, slow to run


def _judge_in_shell(nb, seed):
    """{test cell grade id: (passed, sentence)} of the hidden checks for nb, run cell by cell in a new IPython shell,
    and {"public:" + grade id: (passed, sentence)} of the public checks, asked at the same moment (after the hidden
    check, as the cells grading executes have no public check's call)."""
    from IPython.core.interactiveshell import InteractiveShell

    os.chdir(SOURCE_NOTEBOOK.parent)  # where the notebook's public checks are, as beside the release
    sys.path.insert(0, "")
    shell = InteractiveShell.instance()
    verdicts = {}
    for cell in as_executed(nb, CHECKS).cells:  # as grading executes them: no hidden test, no public check's call
        gid = grade_id(cell)
        if cell.cell_type != "code" or gid in NOT_RUN:
            continue
        source = cell.source.replace("%matplotlib inline", "")  # a plain shell has no inline backend
        shell.run_cell(source, silent=True, store_history=False)
        if gid in CHECKS:
            verdicts[gid] = run_check(CHECKS[gid], NotebookStudent(shell.user_ns, seed, gid))
            verdicts[f"public:{gid}"] = run_check(PUBLIC[gid], NotebookStudent(shell.user_ns, seed, gid))
    return verdicts


def _child(nb, seed, pipe):
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    try:
        pipe.send(_judge_in_shell(nb, seed))
    except BaseException:  # noqa: BLE001 - reported to the parent
        pipe.send({"error": (False, traceback.format_exc())})
    finally:
        pipe.close()
        os._exit(0)


def judged_all(notebooks, at_once=None):
    """{name: {test cell grade id: (passed, sentence)}} of {name: notebook}, each run in a forked child seeded by
    its name, `at_once` children at a time (default: the cores this process may use)."""
    _warm_up()
    context = multiprocessing.get_context("fork")
    at_once = at_once or len(os.sched_getaffinity(0))
    pending, running, results = list(notebooks.items()), [], {}
    while pending or running:
        while pending and len(running) < at_once:
            name, nb = pending.pop(0)
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_child, args=(nb, name, send))
            child.start()
            send.close()
            running.append((name, receive, child))
        name, receive, child = running.pop(0)
        try:
            results[name] = receive.recv()
        except EOFError:
            results[name] = {"error": (False, "the child died")}
        child.join()
    return results
