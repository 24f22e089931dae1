"""Where one submission's grading time goes: kernel start (a new sandbox and kernel process, or a kernel forked
from the worker's warm template), the common imports, the cells, and the coordinator's nbgrader bookkeeping
(sanitize before, SaveAutoGrades and the rest after), and the judge's share: its questions, asked in the kernel
after each test cell, and its checks, run in the coordinator.

    python -m bench.where_time_goes [--repeat 3]

Each figure is the median of --repeat runs, one submission at a time (nothing else of ours running). Seconds are
wall-clock seconds, except the rows that say core-seconds: CPU time (user and system), which a busy machine changes
much less. The floor is the core-seconds of the notebook's own cells, as a student's Run All executes them, in a
kernel forked from the template (what the kernel's process and the processes it started used from the first cell to
the last, without the judge's questions): the notebook's own cost. Grading executes less than that: it leaves out
the test cells' public checks, which the judge's checks supersede (the row after the floor's).
bench/autograde.py prints the floor beside its ratios.
"""

import argparse
import asyncio
import dataclasses
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager

from grading.checks.judge import HIDDEN, Judgement, grade_id, judged_cells
from grading.course_kit.submissions import ASSIGNMENT, build_submission, solution_answers, write_submission
from grading.engine import kernel_template
from grading.engine.execute_sandboxed import BoundedKernelClient, bounded_context, execute_in_sandbox
from grading.engine.execution_outcome import ExecutionStatus
from grading.engine.kernel_template import TemplateKernelManager, worker_template
from grading.engine.sandbox import Limits, SandboxKernelManager

ROOT = Path(__file__).resolve().parent.parent
COMMON_IMPORTS = "import numpy, torch, matplotlib.pyplot, torchviz"
SELF = resource.RUSAGE_SELF


async def _kernel_phases(how):
    """(seconds to a ready kernel, seconds to import COMMON_IMPORTS in it); how: "sandbox" (a new sandbox and
    kernel process), "template" (a kernel forked by this thread's warm template) or "plain" (no sandbox)."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-kernel-"))
    (scratch / "work").mkdir()
    (scratch / "ipc").mkdir(mode=0o700)
    # the grader's own zmq context and client, as make autograde starts a kernel (the plain kernel: jupyter_client's)
    context = zmq.asyncio.Context() if how == "plain" else bounded_context(Limits())
    if how == "template":
        template = worker_template(Limits())  # started before the timing, as a grading worker has it
        template.prepare({})
    t0 = time.perf_counter()
    if how == "sandbox":
        km = SandboxKernelManager(Limits(), scratch / "work", scratch / "ipc", context=context)
    elif how == "template":
        km = TemplateKernelManager(template, context=context)
    else:
        km = AsyncKernelManager(kernel_name="python3", context=context)
    if how != "plain":
        km.client_factory = BoundedKernelClient
    try:
        await km.start_kernel(cwd=str(scratch / "work")) if how == "plain" else await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=120)
        t1 = time.perf_counter()
        await _run(kc, COMMON_IMPORTS)
        t2 = time.perf_counter()
        kc.stop_channels()
    finally:
        if how == "sandbox":
            km.kill_sandbox(wait=True)
            km.cgroup.remove()
        elif how == "template":
            template.reset()
        else:
            await km.shutdown_kernel(now=True)
        context.destroy(linger=0)
        shutil.rmtree(scratch, ignore_errors=True)
    return t1 - t0, t2 - t1


async def _run(kc, code, timeout=120):
    """Execute code in the kernel and wait for its idle status on IOPub (the grader's channels take messages off
    zmq as they come, so jupyter_client's execute_interactive, which polls zmq itself, cannot read them)."""
    msg_id = kc.execute(code)
    while True:
        msg = await kc.iopub_channel.get_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
            return


def _parse_time(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cell_seconds(nb):
    """Sum over code cells of nbclient's recorded execution time (shell.execute_reply - iopub.execute_input)."""

    total = 0.0
    for cell in nb.cells:
        ex = cell.get("metadata", {}).get("execution", {})
        start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        if start and end:
            total += (_parse_time(end) - _parse_time(start)).total_seconds()
    return total


# a cell that prints the CPU seconds its kernel's process, and the processes it started, used so far
CPU_CELL = (
    "import resource as _resource\n"
    "print(sum(getattr(_resource.getrusage(who), field) for who in (_resource.RUSAGE_SELF, _resource.RUSAGE_CHILDREN)"
    " for field in ('ru_utime', 'ru_stime')))"
)


def core_seconds_of(rusage):
    return rusage.ru_utime + rusage.ru_stime


def sandbox_core_seconds():
    """CPU seconds so far of this thread's sandbox: its template and every kernel it forked (0 without one)."""
    template = getattr(kernel_template._local, "template", None)
    if template is None or not template.alive():
        return 0.0
    total = 0.0
    try:
        root = psutil.Process(template.process.pid)
        for process in [root, *root.children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    except psutil.Error:
        pass
    return total


def as_a_student_runs_it(execution):
    """The notebook JSON a student's Run All executes: the notebook grading executes (execution.request), with each
    judged test cell's public check back in (grading leaves it out; the hidden tests stay out)."""
    nb = nbformat.reads(execution.request.notebook_json, as_version=4)
    for cell in judged_cells(nb, execution.judgement.checks):
        cell["source"] = HIDDEN.sub("", execution.judgement.sources[grade_id(cell)])
    return nbformat.writes(nb)


def floor_core_seconds(notebook_json, files, limits):
    """(core-seconds, wall seconds) of the notebook's own cells in a kernel forked from the template, without the
    judge's questions: the CPU time its kernel (and what the kernel started) used from the start of the first cell
    to the end of the last, read by a cell run before the first and one after the last."""
    nb = nbformat.reads(notebook_json, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(CPU_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(CPU_CELL))
    executed, outcome = execute_in_sandbox(nbformat.writes(nb), files, limits, {})
    if outcome.status != ExecutionStatus.OK:
        raise RuntimeError(f"the floor's execution ended {outcome.status}: {outcome.detail}")
    cells = nbformat.reads(executed, as_version=4).cells
    first, last = (float("".join(o.get("text", "") for o in cells[i].outputs)) for i in (0, -1))
    return last - first, cell_seconds(nbformat.reads(executed, as_version=4)) - sum(
        cell_seconds(nbformat.from_dict({"cells": [cells[i]]})) for i in (0, -1)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from grading.coordinator.class_gradebook import ClassGradebook
    from grading.coordinator.course_layout import CourseAssignment
    from grading.coordinator.notebook_steps import NotebookFinisher, NotebookPreparer
    from grading.course_kit.course_copy import copy_course

    rows = {}

    def add(name, value):
        rows.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        course = copy_course(Path(tmp) / "course", fresh_release=True)  # with its own gradebook
        write_submission(course, "perfect", build_submission(solution_answers()))
        assignment = CourseAssignment.load(course, ASSIGNMENT)
        gradebook = ClassGradebook(assignment.db_url, assignment.course_id, ASSIGNMENT)
        preparer, finisher = NotebookPreparer(assignment), NotebookFinisher(assignment)
        for _ in range(args.repeat):
            start, imports = asyncio.run(_kernel_phases("sandbox"))
            add("new sandbox and kernel process, start to ready", start)
            add(f"`{COMMON_IMPORTS}` in that new kernel", imports)
            start, imports = asyncio.run(_kernel_phases("template"))
            add("kernel forked from the warm template, start to ready", start)
            add(f"`{COMMON_IMPORTS}` in the forked kernel", imports)
            start, _ = asyncio.run(_kernel_phases("plain"))
            add("unsandboxed kernel start to ready (for comparison)", start)

            t0, c0 = time.perf_counter(), time.process_time()
            gradebook.open_submission("perfect", assignment.timestamp("perfect"))
            job = preparer.prepare("perfect", ASSIGNMENT)
            t1, c1 = time.perf_counter(), time.process_time()
            request = job.execution.request
            fresh = dataclasses.replace(request.limits, kernel_template=False)
            executed, outcome = execute_in_sandbox(*dataclasses.replace(request, limits=fresh).arguments())
            t2 = time.perf_counter()
            add("execute_in_sandbox, new sandbox and kernel process", t2 - t1)
            add("  of which the cells (nbclient timing)", cell_seconds(nbformat.reads(executed, as_version=4)))
            worker_template(request.limits)  # started before the timing, as a grading worker has it
            sandbox_before, worker_before = sandbox_core_seconds(), core_seconds_of(resource.getrusage(SELF))
            t2 = time.perf_counter()
            executed, outcome = job.execution.execute()
            t3 = time.perf_counter()
            sandbox_after, worker_after = sandbox_core_seconds(), core_seconds_of(resource.getrusage(SELF))
            add("execute_in_sandbox, kernel forked from the template (as make autograde)", t3 - t2)
            add("  of which the cells (nbclient timing) ", cell_seconds(nbformat.reads(executed, as_version=4)))
            add(
                f"  of which the kernel answering the judge's questions ({len(request.questions)} probes)",
                outcome.asking_seconds,
            )
            add("  core-seconds of the sandbox (kernel start, cells, probes, reset)", sandbox_after - sandbox_before)
            add("  core-seconds of the worker (its client, threads included)", worker_after - worker_before)
            floor, floor_wall = floor_core_seconds(as_a_student_runs_it(job.execution), request.files, request.limits)
            add("floor: the cells' core-seconds, forked kernel, no probes", floor)
            add("  the same cells' seconds (nbclient timing)", floor_wall)
            graded, _ = floor_core_seconds(request.notebook_json, request.files, request.limits)
            add("  the same cells' core-seconds as grading runs them (no public checks)", graded)
            sanitized = nbformat.reads(request.notebook_json, as_version=4)
            t4 = time.perf_counter()
            Judgement.prepare(sanitized, ASSIGNMENT)
            t5 = time.perf_counter()
            job.execution.judge(executed, outcome)
            t6 = time.perf_counter()
            c6 = time.process_time()
            finisher.finish(job, executed, outcome)
            t7 = time.perf_counter()
            add("coordinator: open submission + sanitize (judge's preparation included)", t1 - t0)
            add("  its core-seconds (this process)", c1 - c0)
            add("  of which the judge: draw the points, record the questions, strip hidden tests", t5 - t4)
            add("coordinator: judge + after-execution preprocessors + write", t7 - t6)
            add("  its core-seconds (this process) ", time.process_time() - c6)
            add("  of which the judge: check the answers, write the test cells' outputs", t6 - t5)
    width = max(map(len, rows))
    print(f"median of {args.repeat} runs, one at a time, seconds")
    for name, values in rows.items():
        print(f"{name:<{width}}  {statistics.median(values):6.2f}   ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    sys.exit(main())
