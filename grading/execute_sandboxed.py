"""Execute one sanitized notebook in the sandbox: the only step of grading that runs student code.

    execute_in_sandbox(notebook_json, files, limits) -> (executed_notebook_json, outcome)

Everything in and out is plain data (str, dict of bytes, dict), so the call can run in any worker process.
It never touches the gradebook or the course directory. The kernel is nbgrader's Execute preprocessor
(an nbclient client) with a kernel manager that starts the kernel in the sandbox. Whatever happens to
the kernel, the notebook comes back: outputs kept so far, and an error output in every code cell that
did not run to the end, so those cells score 0 and the cells that ran are graded.
"""
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

import nbformat
import zmq
import zmq.asyncio
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute

from .sandbox import Limits, SandboxKernelManager

ERROR_TEXT_CHARS = 4000
_QUIET = logging.getLogger("grading.execute.client")
_QUIET.setLevel(logging.CRITICAL)  # what the client would log is in the outcome
SIGNALS = {4: "an illegal instruction", 6: "an abort", 7: "a bus error", 8: "a floating-point exception",
           9: "being killed (SIGKILL; often the memory limit)", 11: "a segmentation fault"}


class LimitedExecute(Execute):
    """nbgrader's Execute that keeps a bounded amount of output and remembers which cell is running."""

    def __init__(self, max_output_bytes, **kwargs):
        super().__init__(**kwargs)
        self.max_output_bytes = max_output_bytes
        self.kept_bytes = 0
        self.truncated = False
        self.running_cell = None

    def on_cell_start(self, cell, cell_index):  # nbclient hook
        self.running_cell = cell_index

    def output(self, outs, msg, display_id, cell_index):
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


def _write_files(workdir, files):
    for name, data in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"refusing file name {name!r}")
        path = Path(workdir, *rel.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _death_cause(km, timed_out, limits):
    if timed_out:
        return "notebook-timeout", f"the notebook ran longer than {limits.notebook_timeout} s and was stopped"
    if km.cgroup.oom_killed():
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


def execute_in_sandbox(notebook_json, files, limits):
    """Run every cell of notebook_json with `files` (relative name -> bytes) in the kernel's working folder.

    limits: a dict of Limits fields (see grading.sandbox.Limits). Returns (executed notebook as JSON text,
    outcome) where outcome = {"status", "detail", "seconds", "cells_not_run", "output_truncated"};
    status is "ok", "notebook-timeout", "out-of-memory", "kernel-crashed", "kernel-exited", "kernel-died",
    "cell-timeout" (a cell ran too long and ignored the interrupt) or "sandbox-error" (the kernel never ran).
    """
    limits = Limits(**limits)
    started = time.monotonic()
    nb = nbformat.reads(notebook_json, as_version=4)
    scratch = Path(tempfile.mkdtemp(prefix="nbgrader-exec-"))
    workdir, ipc_dir = scratch / "work", scratch / "ipc"
    workdir.mkdir()
    ipc_dir.mkdir(mode=0o700)
    _write_files(workdir, files)

    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
    km = SandboxKernelManager(limits, workdir, ipc_dir, context=context)
    client = LimitedExecute(limits.max_output_bytes, timeout=limits.cell_timeout, interrupt_on_timeout=True,
                            startup_timeout=60, shutdown_kernel="immediate",
                            log=_QUIET)
    timed_out = threading.Event()

    def stop():
        timed_out.set()
        km.kill_sandbox()
    watchdog = threading.Timer(limits.notebook_timeout, stop)
    watchdog.daemon = True
    watchdog.start()
    status, detail, marked = "ok", "", 0
    try:
        client.preprocess(nb, {"metadata": {"path": str(workdir)}}, km=km)
        if timed_out.is_set():
            status, detail = _death_cause(km, True, limits)
    except DeadKernelError:
        status, detail = _death_cause(km, timed_out.is_set(), limits)
    except CellTimeoutError:
        status, detail = "cell-timeout", (f"a cell ran longer than {limits.cell_timeout} s and could not be "
                                          "interrupted, so the kernel was stopped")
    except Exception as error:  # the kernel never started, or the client broke: nothing of this notebook counts
        status, detail = "sandbox-error", f"{type(error).__name__}: {error}"[:500]
        client.running_cell = client.running_cell or 0
    finally:
        watchdog.cancel()
        km.kill_sandbox(wait=True)
        context.destroy(linger=0)
        km.cgroup.remove()
        shutil.rmtree(scratch, ignore_errors=True)
    if status != "ok":
        marked = _mark_not_run(nb, client.running_cell, detail)
    if client.truncated:
        detail = (detail + "; " if detail else "") + f"output beyond {limits.max_output_bytes} bytes was dropped"
    outcome = {"status": status, "detail": detail, "seconds": round(time.monotonic() - started, 2),
               "cells_not_run": marked, "output_truncated": client.truncated}
    return nbformat.writes(nb), outcome
