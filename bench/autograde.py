"""Benchmark: stock `nbgrader autograde` against the course's sandboxed, concurrent grader, in the same run.

    python -m bench.autograde [--submissions 32] [--workers N] [--keep]

Builds N synthetic submissions (the solution, the blank release, and the correct and wrong variants of
grading/course_kit/submission_catalogue.py, in turn) in three copies of the course and grades them one after the other:
stock `nbgrader autograde` (nbgrader's own Execute: no sandbox, hidden tests in the student's kernel, one
submission at a time); the course's grader
`python -m grading.coordinator.autograde_class` with a new kernel process per submission
(c.Sandbox.kernel_template = False);
and the same grader as `make autograde` runs it (sandbox, N workers, kernels forked from a warm template).
Prints each wall time, seconds per submission, the ratios, peak memory per worker (proportional set size of a
worker process with its sandbox's processes, read from /proc while grading), the floor (the notebook's own
cells' execution time, from nbclient's timing metadata in the autograded notebooks, with no kernel start-up),
and how long a student's Run All of the answered notebook takes (nbclient, a new kernel, no sandbox; the
kernel's start is timed apart, as JupyterLab starts it when the notebook opens).
Not a test: the figures depend on the machine and on whatever else runs on it (the load average is printed).
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

from grading.course_kit.course_copy import BIN, copy_course  # noqa: E402
from grading.course_kit.submission_catalogue import CORRECT, WRONG  # noqa: E402
from grading.course_kit.submissions import ASSIGNMENT, build_submission, solution_answers, write_submission  # noqa: E402
from grading.reports.class_grades import class_scores  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def class_of(n):
    """n submissions: student id -> notebook, cycling through the solution, the blank release and the catalogue."""
    solution = solution_answers()
    kinds = (
        [("perfect", {}), ("blank", None)]
        + [(k, a) for k, a in CORRECT.items()]
        + [(k, a) for k, (_, a) in WRONG.items()]
    )
    submissions = {}
    for i in range(n):
        kind, answers = kinds[i % len(kinds)]
        nb = build_submission({}) if answers is None else build_submission({**solution, **answers})
        submissions[f"s{i:03d}-{kind}"] = nb
    return submissions


# --- memory: proportional set sizes of a process tree, sampled from /proc ----------------------------------------
def _processes():
    """pid -> (parent pid, (start time, CPU seconds)) of every process we can read."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), (fields[19], (int(fields[11]) + int(fields[12])) / TICK))
    return table


def _memory(pid):
    """Proportional set size in bytes: resident pages, each shared page split among the processes that share it
    (a template and the kernels it forked share most of theirs; resident sizes would count them twice)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class TreeMemory(threading.Thread):
    """Samples the process tree under `root`: peak memory (PSS) of each child of the root together with
    its descendants (a worker process with its sandboxed kernel; for stock nbgrader, its kernel), and the CPU
    seconds of every process seen in the tree (as last sampled: a process's last interval is missed)."""

    def __init__(self, root, interval=0.25):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_per_child = 0
        self.peak_kernel = 0
        self.stop = threading.Event()
        self.cpu_seen = {}

    def run(self):
        while not self.stop.is_set():
            table = _processes()
            children = {}
            for pid, (ppid, _) in table.items():
                children.setdefault(ppid, []).append(pid)

            def tree(pid, table=table, children=children):
                total, stack = 0, [pid]
                while stack:
                    p = stack.pop()
                    if p in table:
                        total += _memory(p)
                        start, cpu = table[p][1]
                        self.cpu_seen[(p, start)] = cpu
                    stack += children.get(p, [])
                return total

            for child in children.get(self.root, []):
                self.peak_per_child = max(self.peak_per_child, tree(child))
                for grandchild in children.get(child, []):  # a worker's sandbox (bwrap and the kernel in it)
                    self.peak_kernel = max(self.peak_kernel, tree(grandchild))
            self.stop.wait(self.interval)


def timed(args, cwd):
    """(wall seconds, TreeMemory) of running args; TreeMemory.cpu: CPU seconds of the whole process tree."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # as course_command
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = TreeMemory(process.pid)
    memory.start()
    output = process.communicate()[0]
    wall = time.perf_counter() - start
    memory.stop.set()
    memory.join()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    memory.cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    memory.cpu_sampled = sum(memory.cpu_seen.values())
    if process.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} exited {process.returncode}:\n{output[-3000:]}")
    return wall, memory


def cell_seconds(course, students):
    """Per student: the sum over code cells of nbclient's execution time (execute_input to execute_reply)."""

    def parse(stamp):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    seconds = {}
    for student in students:
        nb = nbformat.read(str(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
        seconds[student] = sum(
            (parse(ex["shell.execute_reply"]) - parse(ex["iopub.execute_input"])).total_seconds()
            for cell in nb.cells
            if cell.cell_type == "code"
            for ex in [cell.metadata.get("execution", {})]
            if "shell.execute_reply" in ex and "iopub.execute_input" in ex
        )
    return seconds


def run_all_seconds(tmp):
    """A student's Run All of the answered notebook, no sandbox: (seconds to start the kernel, seconds from Run All
    to the end of the last cell). In JupyterLab the kernel starts when the notebook opens, before Run All."""
    from nbclient import NotebookClient

    folder = tmp / "student"
    shutil.copytree(ROOT / "release" / ASSIGNMENT, folder)
    nb = build_submission(solution_answers())
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    start = time.perf_counter()
    with client.setup_kernel():
        ready = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        done = time.perf_counter()
    return ready - start, done - ready


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=32, help="synthetic submissions (default 32)")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="workers of the course's grader (default: the number of cores)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the two graded course copies and print where")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="bench-autograde-"))
    try:
        print(f"machine: {cores} cores, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        submissions = class_of(args.submissions)
        courses = {}
        for how in ("stock", "fresh", "course"):
            courses[how] = copy_course(tmp / how, fresh_release=True)
            for student, nb in submissions.items():
                write_submission(courses[how], student, nb)
        with open(courses["fresh"] / "nbgrader_config.py", "a") as config:
            config.write("\nc.Sandbox.kernel_template = False  # a new kernel process per submission\n")
        with open(courses["stock"] / "nbgrader_config.py", "a") as config:  # nbgrader's own Execute: hidden tests
            config.write(
                "\nfrom nbgrader.preprocessors import Execute\n"  # run in the student's kernel, unsandboxed
                "c.Autograde.autograde_preprocessors = [Execute] + c.Autograde.autograde_preprocessors[1:]\n"
            )

        def ours(how):
            return timed(
                [
                    sys.executable,
                    "-m",
                    "grading.coordinator.autograde_class",
                    ASSIGNMENT,
                    "--course",
                    str(courses[how]),
                    "--force",
                    "--workers",
                    str(args.workers),
                ],
                cwd=ROOT,
            )

        stock_wall, stock_mem = timed(
            ["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=courses["stock"]
        )
        fresh_wall, fresh_mem = ours("fresh")
        ours_wall, ours_mem = ours("course")
        load_after = os.getloadavg()[0]
        kernel_start, run_all = run_all_seconds(tmp)

        grades = {how: class_scores(f"sqlite:///{courses[how] / 'gradebook.db'}") for how in courses}
        same = all(grades["stock"][s] == grades["course"][s] == grades["fresh"][s] for s in submissions)
        stock_cells = cell_seconds(courses["stock"], submissions)
        ours_cells = cell_seconds(courses["course"], submissions)
        n = args.submissions
        mib = 1 << 20
        print(f"submissions: {n}   grades equal in both runs: {same}")
        print(
            f"stock nbgrader autograde (no sandbox, serial):  {stock_wall:7.1f} s   {stock_wall / n:5.2f} s/submission"
        )
        print(
            f"make autograde, a new kernel process per submission (sandbox, {args.workers} workers): "
            f"{fresh_wall:7.1f} s   {fresh_wall / n:5.2f} s/submission   ratio {stock_wall / fresh_wall:5.2f}x"
        )
        print(
            f"make autograde (sandbox, {args.workers} workers, kernels forked from a warm template): "
            f"{ours_wall:7.1f} s   {ours_wall / n:5.2f} s/submission"
        )
        print(f"ratio (stock / make autograde):                 {stock_wall / ours_wall:7.2f}x")
        print(
            f"CPU time of the run's processes, sampled from /proc: stock {stock_mem.cpu_sampled / n:.2f} "
            f"s/submission, new kernel per submission {fresh_mem.cpu_sampled / n:.2f}, make autograde "
            f"{ours_mem.cpu_sampled / n:.2f} s/submission (children reaped normally: stock {stock_mem.cpu / n:.2f}; "
            "sandboxed kernels are killed, not counted there)"
        )
        print(
            "peak memory per worker (worker process + its sandbox, PSS):          "
            f"{ours_mem.peak_per_child / mib:6.0f} MiB"
        )
        print(
            f"peak memory of one worker's sandbox (template + kernel, PSS):       {ours_mem.peak_kernel / mib:6.0f} MiB"
        )
        print(
            "peak memory of stock nbgrader's kernel (PSS):                       "
            f"{stock_mem.peak_per_child / mib:6.0f} MiB"
        )
        total = sum(stock_cells.values())
        print(
            f"floor: the notebook's cells, no start-up: {total / n:5.2f} s/submission (stock run, serial); "
            f"{total:.1f} s for the class on 1 core, {total / cores:.1f} s on {cores}"
        )
        print(
            f"       the same cells in the concurrent sandboxed run: {sum(ours_cells.values()) / n:5.2f} s/submission"
        )
        print(
            f"student's Run All of the answered notebook (new kernel, no sandbox): {run_all:.1f} s "
            f"(and {kernel_start:.1f} s before it to start the kernel, which JupyterLab does when the notebook opens)"
        )
        print(f"load average {load_after:.1f} after grading")
        if args.keep:
            print(f"graded copies kept in {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
