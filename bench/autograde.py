"""Benchmark: stock `nbgrader autograde` against the course's sandboxed, concurrent grader, in the same run.

    python -m bench.autograde [--submissions 32] [--workers N] [--keep]

Builds N synthetic submissions (the solution, the blank release, and the correct and wrong variants of
grading/course_kit/submission_catalogue.py, in turn) in three copies of the course and grades them one after the other:
the course's grader as `make autograde` runs it (`python -m grading.coordinator.autograde_class`: sandbox, N workers,
kernels forked from a warm template); stock `nbgrader autograde` (nbgrader as installed: its default configuration,
only the course's paths set; its own Execute: no sandbox, hidden tests in the student's kernel, one submission at a
time); the course's grader again, whose two runs' mean is compared with stock's run between them (so that a machine
that speeds up or slows down over those minutes moves both sides); and the course's grader with a new kernel process
per submission (c.Sandbox.kernel_template = False).
Prints each wall time, seconds per submission, the ratios, and each run's core-seconds per submission: the CPU
time (user and system) of the grader and of every process under it, sandboxes and kernels included (this process
adopts what a grader leaves behind, so that a killed sandbox is counted too), which other work on the machine
changes much less than wall time. Beside them the floor, as bench/where_time_goes.py measures it: the
core-seconds of the solution's own cells as a student's Run All executes them (public checks included; grading
leaves those out), in a kernel forked from the template, without the judge's questions (the median of three
executions after grading). Then peak memory per worker (proportional set size of a worker
process with its sandbox's processes, read from /proc once a second while grading), the cells' execution time in
the class (nbclient's timing metadata in the autograded notebooks, no kernel start-up), and how long a student's
Run All of the answered notebook takes (nbclient, a new kernel, no sandbox; the kernel's start is timed apart, as
JupyterLab starts it when the notebook opens).
Not a test: the figures depend on the machine and on whatever else runs on it (the load average is printed).
"""

import argparse
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

from grading.coordinator.course_layout import CourseAssignment  # noqa: E402
from grading.course_kit.course_copy import BIN, copy_course  # noqa: E402
from grading.course_kit.submission_catalogue import CORRECT, WRONG  # noqa: E402
from grading.course_kit.submissions import ASSIGNMENT, build_submission, solution_answers, write_submission  # noqa: E402
from grading.reports.class_grades import class_scores  # noqa: E402

from .where_time_goes import as_a_student_runs_it, floor_core_seconds  # noqa: E402

# nbgrader as installed: its default configuration (its own Execute runs the hidden tests in the student's kernel,
# unsandboxed), only the course's paths set
STOCK_CONFIG = """c = get_config()  # noqa: F821
import os
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
"""
PR_SET_CHILD_SUBREAPER = 36
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
    """Samples the process tree under `root`, once a second: peak memory (PSS) of each child of the root together
    with its descendants (a worker process with its sandboxed kernel; for stock nbgrader, its kernel). Reading a
    process's PSS costs milliseconds when it holds torch: sampled four times a second, this thread took about 6
    core-seconds from a class run of 40 s that kept both cores busy (a serial run leaves it a free core)."""

    def __init__(self, root, interval=1.0):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_per_child = 0
        self.peak_kernel = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            table = _processes()
            children = {}
            for pid, (ppid, _) in table.items():
                children.setdefault(ppid, []).append(pid)

            sizes = {}  # pid -> its PSS, read once per sample (reading it costs milliseconds for a big process)

            def tree(pid, table=table, children=children, sizes=sizes):
                total, stack = 0, [pid]
                while stack:
                    p = stack.pop()
                    if p in table:
                        if p not in sizes:
                            sizes[p] = _memory(p)
                        total += sizes[p]
                    stack += children.get(p, [])
                return total

            for child in children.get(self.root, []):
                self.peak_per_child = max(self.peak_per_child, tree(child))
                for grandchild in children.get(child, []):  # a worker's sandbox (bwrap and the kernel in it)
                    self.peak_kernel = max(self.peak_kernel, tree(grandchild))
            self.stop.wait(self.interval)


def adopt_orphans():
    """Make this process the reaper of every process its children leave behind (a sandbox's processes whose parent
    was killed first), so that their CPU time, too, is counted in RUSAGE_CHILDREN when they end."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("cannot become a child subreaper: the core-seconds of killed sandboxes would be missed")


def reap_orphans(timeout=30):
    """Wait for the processes a finished grader left to this process (they are ending: the grader killed them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def core_seconds(rusage):
    return rusage.ru_utime + rusage.ru_stime


class CpuAccount:
    """The CPU seconds of one process tree: a cpuacct cgroup (cgroup v1) that its first process joins before it
    runs, so that every process of the tree counts, wherever and however it ends (a kernel killed with its
    sandbox's PID namespace is reaped by the kernel, and its time never reaches any parent's RUSAGE_CHILDREN).
    Where no such cgroup can be made: RUSAGE_CHILDREN, with this process adopting orphans (adopt_orphans), which
    misses processes killed with their PID namespace; `how` says which."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self, name):
        self.folder = self.ROOT / f"bench-autograde-{os.getpid()}-{name}"
        try:
            self.folder.mkdir()
            self.how = "cgroup"
        except OSError:
            self.folder = None
            self.how = "rusage (sandboxes' kernels killed with them are not counted)"
        self.rusage_before = resource.getrusage(resource.RUSAGE_CHILDREN)

    def join(self):
        """For the tree's first process, before it runs (Popen's preexec_fn)."""
        if self.folder is not None:
            (self.folder / "cgroup.procs").write_text("0")

    def seconds(self):
        """CPU seconds of the tree so far; call after it ended (and orphans were reaped) for its total."""
        if self.folder is None:
            return core_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - core_seconds(self.rusage_before)
        return int((self.folder / "cpuacct.usage").read_text()) / 1e9

    def remove(self):
        if self.folder is not None:
            for _ in range(100):  # the cgroup empties as its last processes are reaped
                try:
                    self.folder.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def timed(args, cwd, name):
    """(wall seconds, TreeMemory) of running args; TreeMemory.cpu: CPU seconds of the whole process tree
    (CpuAccount), TreeMemory.cpu_how: how they were counted."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # as course_command
    reap_orphans()
    account = CpuAccount(name)
    start = time.perf_counter()
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=account.join,  # writes one file, before exec
    )
    memory = TreeMemory(process.pid)
    memory.start()
    output = process.communicate()[0]
    wall = time.perf_counter() - start
    memory.stop.set()
    memory.join()
    reap_orphans()
    memory.cpu, memory.cpu_how = account.seconds(), account.how
    account.remove()
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


def floor_of(course, student, repeat=3):
    """The floor of bench/where_time_goes.py for `student`'s notebook, graded in `course`: median (core-seconds,
    wall seconds) of the notebook's own cells in a kernel forked from the template, without the judge's questions."""
    from grading.coordinator.notebook_steps import NotebookPreparer

    assignment = CourseAssignment.load(course, ASSIGNMENT)
    job = NotebookPreparer(assignment).prepare(student, ASSIGNMENT)
    runs = [
        floor_core_seconds(as_a_student_runs_it(job.execution), assignment.files, assignment.limits)
        for _ in range(repeat)
    ]
    return statistics.median(cpu for cpu, _ in runs), statistics.median(wall for _, wall in runs)


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
    adopt_orphans()
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
        course_id = CourseAssignment.load(courses["stock"], ASSIGNMENT).coursedir.course_id
        (courses["stock"] / "nbgrader_config.py").write_text(STOCK_CONFIG.format(course_id=course_id))

        def ours(how, run=""):
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
                name=how + run,  # each run its own cpuacct cgroup
            )

        # the course's grader before and after stock (A B A): a machine that speeds up or slows down over stock's
        # minutes moves both of its runs, and their mean stays comparable with stock's run between them
        before_wall, before_mem = ours("course", "-before")
        stock_wall, stock_mem = timed(
            ["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=courses["stock"], name="stock"
        )
        after_wall, ours_mem = ours("course", "-after")
        if before_mem.cpu_how != ours_mem.cpu_how:
            sys.exit(f"the two runs' CPU was counted two ways: {before_mem.cpu_how}; {ours_mem.cpu_how}")
        ours_wall = (before_wall + after_wall) / 2
        ours_mem.cpu = (before_mem.cpu + ours_mem.cpu) / 2
        ours_mem.peak_per_child = max(before_mem.peak_per_child, ours_mem.peak_per_child)
        ours_mem.peak_kernel = max(before_mem.peak_kernel, ours_mem.peak_kernel)
        fresh_wall, fresh_mem = ours("fresh")
        load_after = os.getloadavg()[0]
        floor, floor_wall = floor_of(courses["course"], next(s for s in submissions if s.endswith("-perfect")))
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
            f"{ours_wall:7.1f} s   {ours_wall / n:5.2f} s/submission   (the mean of {before_wall:.1f} s before stock "
            f"and {after_wall:.1f} s after)"
        )
        print(
            f"ratio (stock / make autograde):                 {stock_wall / ours_wall:7.2f}x   "
            f"floor {floor:.2f} core-seconds per submission "
            "(the solution's cells as Run All runs them, forked kernel, no probes)"
        )
        print(
            f"core-seconds per submission (CPU of the grader and all its processes): stock {stock_mem.cpu / n:.2f}, "
            f"new kernel per submission {fresh_mem.cpu / n:.2f}, make autograde {ours_mem.cpu / n:.2f}; "
            f"floor {floor:.2f} (counted by {ours_mem.cpu_how})"
        )
        print(
            f"core-seconds ratios: stock / make autograde {stock_mem.cpu / ours_mem.cpu:.2f}x; "
            f"make autograde / floor {ours_mem.cpu / n / floor:.2f}x; stock / floor {stock_mem.cpu / n / floor:.2f}x"
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
        print(f"floor's cells, wall: {floor_wall:.2f} s (the solution, forked kernel, nothing else of ours running)")
        print(
            f"the class's cells, no start-up: {total / n:5.2f} s/submission (stock run, serial); "
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
