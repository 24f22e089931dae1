"""Execute one sanitized notebook in the sandbox: the only step of grading that runs student code.

    execute_in_sandbox(notebook_json, files, limits, questions) -> (executed_notebook_json, outcome)

questions (grade id -> source of a probe cell, grading/checks/judge.py) are asked right after the test cell of that
grade id has run, and what the kernel printed while answering comes back in outcome["answers"], to be judged elsewhere.

Everything in and out is plain data (str, dict of bytes, dict), so the call can run in any worker process.
It never touches the gradebook or the course directory. The kernel is nbgrader's Execute preprocessor
(an nbclient client) with a kernel manager that starts the kernel in the sandbox. Whatever happens to
the kernel, the notebook comes back: outputs kept so far, and an error output in every code cell that
did not run to the end, so those cells score 0 and the cells that ran are graded.
"""

import json
import logging
import threading
import time

import nbformat
import zmq
import zmq.asyncio
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbgrader.preprocessors import Execute

from .kernel_template import TemplateError, TemplateKernelManager, discard_worker_template, worker_template
from .sandbox import Limits, SandboxKernelManager, remove_tree, scratch_folder, write_files

ERROR_TEXT_CHARS = 4000
MAX_ANSWER_BYTES = 8 << 20  # what a probe may print; the judge caps what it parses too
_QUIET = logging.getLogger("grading.execute.client")
_QUIET.setLevel(logging.CRITICAL)  # what the client would log is in the outcome
SIGNALS = {
    4: "an illegal instruction",
    6: "an abort",
    7: "a bus error",
    8: "a floating-point exception",
    9: "being killed (SIGKILL; often the memory limit)",
    11: "a segmentation fault",
}


class LimitedExecute(Execute):
    """nbgrader's Execute that keeps a bounded amount of output and remembers which cell is running."""

    def __init__(self, max_output_bytes, questions=None, **kwargs):
        super().__init__(**kwargs)
        self.max_output_bytes = max_output_bytes
        self.kept_bytes = 0
        self.truncated = False
        self.running_cell = None
        self.questions = dict(questions or {})
        self.answers = {}
        self.asked_seconds = 0.0  # time the kernel spent answering the judge
        self.asking = None  # the probe cell being run, whose output is the kernel's answer, not the notebook's

    def on_cell_start(self, cell, cell_index):  # nbclient hook
        self.running_cell = cell_index

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if self.asking is None and gid in self.questions:
            self.answers[gid] = await self.ask(self.questions.pop(gid), cell_index)
        return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds its own coroutine here; ours asks the probes

    async def ask(self, code, cell_index):
        """Run a probe cell right after the test cell at cell_index; what it printed (the judge reads its answer)."""
        self.asking, self.asked_bytes = nbformat.v4.new_code_cell(code), 0
        test_cell, started = self.nb.cells[cell_index], time.monotonic()
        try:
            await super().async_execute_cell(self.asking, cell_index, store_history=False)
            return "".join(
                o.get("text", "")
                for o in self.asking.outputs
                if o.get("output_type") == "stream" and o.get("name") == "stdout"
            )[:MAX_ANSWER_BYTES]
        finally:
            self.nb.cells[cell_index] = test_cell  # nbclient stores the cell it ran at cell_index
            self.asking = None
            self.asked_seconds += time.monotonic() - started

    def output(self, outs, msg, display_id, cell_index):
        if self.asking is not None:  # a probe's output: kept apart, within its own cap
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None:
                self.asked_bytes += len(json.dumps(out))
                if self.asked_bytes > MAX_ANSWER_BYTES and outs and outs[-1] is out:
                    outs.pop()
            return None
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return None
        if out.output_type in ("error", "execute_result"):  # they decide grades: keep them, shortened
            _shorten(out)
            return out
        size = len(json.dumps(out))
        if self.kept_bytes + size <= self.max_output_bytes:
            self.kept_bytes += size
            return out
        self.truncated = True
        if outs and outs[-1] is out:
            outs.pop()
        if out.output_type == "stream" and not any(o.get("name") == out.name for o in outs):
            # a stream of this name stays (an stderr stream fails a test cell), its text replaced
            note = f"[output truncated: this notebook printed more than {self.max_output_bytes} bytes]\n"
            outs.append(nbformat.v4.new_output("stream", name=out.name, text=note))
        return None


def _shorten(out):
    if "evalue" in out:
        out.evalue = out.evalue[:ERROR_TEXT_CHARS]
    if "traceback" in out:
        out.traceback = [line[:ERROR_TEXT_CHARS] for line in out.traceback[:200]]
    for mime, value in list(out.get("data", {}).items()):
        if isinstance(value, str) and len(value) > ERROR_TEXT_CHARS:
            out.data[mime] = value[:ERROR_TEXT_CHARS]


def _error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _death_cause(km, timed_out, limits):
    if timed_out:
        return "notebook-timeout", f"the notebook ran longer than {limits.notebook_timeout} s and was stopped"
    if km.oom_killed():
        return "out-of-memory", f"the kernel used more than {limits.memory_bytes >> 20} MiB of memory and was stopped"
    code = km.exit_code()
    if code is None:
        return "kernel-died", "the kernel stopped responding"
    if code > 128 and code - 128 in SIGNALS:
        return "kernel-crashed", f"the kernel crashed with {SIGNALS[code - 128]}"
    if code < 0 and -code in SIGNALS:
        return "kernel-crashed", f"the kernel crashed with {SIGNALS[-code]}"
    return "kernel-exited", f"the kernel exited (exit code {code}), e.g. by os._exit or sys.exit"


def _mark_not_run(nb, running_cell, why):
    """Error outputs in the cell that was running and in every later code cell; returns how many cells."""
    marked = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or running_cell is None or index < running_cell or not cell.source.strip():
            continue
        if index == running_cell:
            cell.setdefault("outputs", []).append(_error("KernelDied", f"{why} while running this cell"))
        else:
            cell.outputs = [_error("NotRun", f"this cell was not run: {why} in an earlier cell")]
            cell.execution_count = None
        marked += 1
    return marked


def execute_in_sandbox(notebook_json, files, limits, questions=None):
    """Run every cell of notebook_json with `files` (relative name -> bytes) in the kernel's working folder, and
    after each test cell named in questions (grade id -> probe source) ask the kernel that probe.

    limits: a dict of Limits fields (see grading.engine.sandbox.Limits). Returns (executed notebook as JSON text,
    outcome) where outcome = {"status", "detail", "seconds", "cells_not_run", "output_truncated", "answers"};
    answers maps each grade id asked to the text the kernel printed while answering.
    status is "ok", "notebook-timeout", "out-of-memory", "kernel-crashed", "kernel-exited", "kernel-died",
    "cell-timeout" (a cell ran too long and ignored the interrupt) or "sandbox-error" (the kernel never ran).
    When the worker's kernel template fails before any cell of the notebook began (it stopped answering, its
    kernel did not start, or what the last submission left could not be cleaned), the notebook runs once more
    in a new sandbox.
    """
    executed, outcome, template_failed = _execute(notebook_json, files, Limits(**limits), questions)
    if template_failed:
        executed, outcome, _ = _execute(notebook_json, files, Limits(**limits), questions)
    return executed, outcome


def _execute(notebook_json, files, limits, questions=None):
    """execute_in_sandbox's one attempt: (executed JSON, outcome, whether the template failed before any cell ran)."""
    started = time.monotonic()
    nb = nbformat.reads(notebook_json, as_version=4)
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
    template = scratch = None
    try:
        if limits.sandbox and limits.kernel_template:
            template = worker_template(limits)
            template.prepare(files)
            workdir = template.workdir
            km = TemplateKernelManager(template, context=context)
        else:
            scratch = scratch_folder("exec")
            workdir, ipc_dir = scratch / "work", scratch / "ipc"
            write_files(workdir, files)
            km = SandboxKernelManager(limits, workdir, ipc_dir, context=context)
    except TemplateError as error:
        context.destroy(linger=0)
        detail = f"TemplateError: {error}"[:500]
        outcome = {
            "status": "sandbox-error",
            "detail": detail,
            "seconds": round(time.monotonic() - started, 2),
            "cells_not_run": _mark_not_run(nb, 0, detail),
            "output_truncated": False,
            "answers": {},
        }
        return nbformat.writes(nb), outcome, True
    client = LimitedExecute(
        limits.max_output_bytes,
        questions,
        timeout=limits.cell_timeout,
        interrupt_on_timeout=True,
        startup_timeout=60,
        shutdown_kernel="immediate",
        log=_QUIET,
    )
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        km.kill_sandbox()

    watchdog = threading.Timer(limits.notebook_timeout, stop)
    watchdog.daemon = True
    watchdog.start()
    status, detail, marked, template_failed = "ok", "", 0, False
    try:
        client.preprocess(nb, {"metadata": {"path": str(workdir)}}, km=km)
        if timed_out.is_set():
            status, detail = _death_cause(km, True, limits)
    except DeadKernelError:
        status, detail = _death_cause(km, timed_out.is_set(), limits)
    except CellTimeoutError:
        status, detail = (
            "cell-timeout",
            (f"a cell ran longer than {limits.cell_timeout} s and could not be interrupted, so the kernel was stopped"),
        )
    except Exception as error:  # the kernel never started, or the client broke: nothing of this notebook counts
        status, detail = "sandbox-error", f"{type(error).__name__}: {error}"[:500]
        template_failed = template is not None and client.running_cell is None  # no cell of it had begun
        client.running_cell = client.running_cell or 0
    finally:
        watchdog.cancel()
        if template is not None:
            if status != "ok" or timed_out.is_set() or not template.reset():
                discard_worker_template()  # anything out of the ordinary: the next submission gets a new sandbox
        else:
            km.kill_sandbox(wait=True)
            km.cgroup.remove()
            remove_tree(scratch)
        context.destroy(linger=0)
    if status != "ok":
        marked = _mark_not_run(nb, client.running_cell, detail)
    if client.truncated:
        detail = (detail + "; " if detail else "") + f"output beyond {limits.max_output_bytes} bytes was dropped"
    outcome = {
        "status": status,
        "detail": detail,
        "seconds": round(time.monotonic() - started, 2),
        "cells_not_run": marked,
        "output_truncated": client.truncated,
        "answers": client.answers,
        "asking_seconds": round(client.asked_seconds, 3),
    }
    return nbformat.writes(nb), outcome, template_failed
