"""Grade every submission of an assignment, each executed in a sandbox, several at once.

This process is the coordinator and the only writer of the gradebook: it runs nbgrader's sanitize
preprocessors on each submitted notebook, hands the sanitized notebook to a worker process that only
executes it in the sandbox (grading.execute_sandboxed.execute_in_sandbox), then runs nbgrader's
post-execution preprocessors (LimitOutput, SaveAutoGrades, late penalties, ...) and writes the
autograded notebook atomically. Students are graded in sorted order; one whose autograded notebook is
newer than the submission is skipped (--force regrades), so a killed run resumes where it stopped.

    python -m grading.autograde_class backprop [--workers N] [--force] [--unsafe-no-sandbox]
"""
import argparse
import concurrent.futures as cf
import logging
import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import compute_checksum
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, Execute,
                                    IgnorePattern, LimitOutput, OverwriteCells, OverwriteKernelspec, SaveAutoGrades)
from traitlets.config.loader import PyFileConfigLoader
from traitlets.utils.importstring import import_item
from sqlalchemy.exc import SAWarning
from tqdm import tqdm

from .execute_sandboxed import execute_in_sandbox
from .judge import Judgement
from .judged_execute import SandboxedJudgedExecute, assignment_files
from .restore_cell_flags import RestoreCellFlags, restore_cell_flags
from .sandbox import Sandbox, bwrap_problem, sweep_leftovers

# nbgrader's defaults; c.Autograde.sanitize_preprocessors and c.Autograde.autograde_preprocessors replace them,
# the execute step of the latter being this grader's own (workers, sandbox, judge)
SANITIZE = [ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
AFTER_EXECUTION = [IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                   CheckCellMetadata]
MAX_NOTEBOOK_BYTES = 20 << 20
NOTABLE_ERRORS = {"CellTimeoutError": "ran out of time", "MemoryError": "ran out of memory",
                  "BlockingIOError": "hit a resource limit"}
UNSAFE_BANNER = ("!" * 78 + "\n!! UNSAFE: grading WITHOUT the sandbox. Student code runs as you, can read the\n"
                 "!! solutions and the gradebook, change any grade and reach the network.\n" + "!" * 78)


class Unreadable(Exception):
    """A submitted notebook that cannot be graded at all; its message says why, in words."""


def load_config(course):
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _plain(message):
    """nbgrader's sanitize warnings, said for an instructor."""
    if message.startswith("Attribute '"):
        attr, cell = message.split("'")[1], message.split("cell ")[1].split(" ")[0]
        return {"checksum": f"locked cell {cell} was edited; original restored",
                "points": f"points of {cell} were changed; restored",
                "cell_type": f"cell {cell} changed type; restored",
                "locked": f"lock of {cell} changed; restored"}.get(attr, message)
    if message.startswith("Missing grade cell"):
        return f"test cell {message.split()[3]} was deleted; restored and run"
    return message


@dataclass
class Job:
    student: str
    notebook: str
    resources: dict
    notebook_json: str  # without the hidden tests the judge checks: what the sandbox (or Dask) sees
    judgement: Judgement
    notes: list = field(default_factory=list)
    attempts: int = 0


class ClassGrader:
    def __init__(self, course, assignment, workers, force=False, unsafe=False):
        self.course = Path(course).resolve()
        self.assignment = assignment
        self.config = load_config(self.course)
        self.coursedir = CourseDirectory(config=self.config, root=str(self.course))
        self.db_url = self.coursedir.db_url
        self.workers, self.force, self.unsafe = workers, force, unsafe
        limits = Sandbox(config=self.config).limits(cell_timeout=Execute(config=self.config).timeout)
        self.limits = {**limits, "sandbox": not unsafe}
        self.log = logging.getLogger("grading.sanitize")
        self.log.propagate = False
        self.collected = _Collect()
        self.log.addHandler(self.collected)
        self.files = assignment_files(self.coursedir, self.assignment)
        autograde = self.config.get("Autograde", {})
        self.sanitize_steps = [pp for pp in map(_class, autograde.get("sanitize_preprocessors", SANITIZE))
                               if not issubclass(pp, RestoreCellFlags)]  # done first, with notes for the report
        self.after_execution = [pp for pp in map(_class, autograde.get("autograde_preprocessors", AFTER_EXECUTION))
                                if not issubclass(pp, (Execute, SandboxedJudgedExecute))]
        self.report = {}
        self.incomplete = False  # a student was not graded (the report says why); the exit status says so too

    # --- paths -------------------------------------------------------------------------------------------
    def submitted(self, student):
        return Path(self.coursedir.format_path(self.coursedir.submitted_directory, student, self.assignment))

    def autograded(self, student):
        return Path(self.coursedir.format_path(self.coursedir.autograded_directory, student, self.assignment))

    def students(self):
        root = Path(self.coursedir.format_path(self.coursedir.submitted_directory, ".", ".")).resolve()
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir()
                      if not p.name.startswith(".") and (p / self.assignment).is_dir())

    # --- gradebook ---------------------------------------------------------------------------------------
    def notebook_names(self):
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            try:
                return [nb.name for nb in gb.find_assignment(self.assignment).notebooks]
            except MissingEntry:
                sys.exit(f"No assignment '{self.assignment}' in the gradebook: run `make release` first.")

    def already_graded(self, student, names):
        if self.force:
            return False
        for name in names:
            done, sub = self.autograded(student) / f"{name}.ipynb", self.submitted(student) / f"{name}.ipynb"
            if not done.exists() or (sub.exists() and sub.stat().st_mtime > done.stat().st_mtime):
                return False
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            try:
                return all(g.auto_score is not None or g.needs_manual_grade
                           for nb in gb.find_submission(self.assignment, student).notebooks for g in nb.grades)
            except MissingEntry:
                return False

    def open_submission(self, student):
        timestamp = self.coursedir.get_existing_timestamp(str(self.submitted(student)))
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            gb.update_or_create_student(student)
            if timestamp:
                gb.update_or_create_submission(self.assignment, student, timestamp=timestamp)
            else:
                gb.update_or_create_submission(self.assignment, student)

    def zero(self, student, name):
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            for grade in gb.find_submission_notebook(name, self.assignment, student).grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
            gb.db.commit()

    def score(self, student):
        with Gradebook(self.db_url, self.coursedir.course_id) as gb:
            submission = gb.find_submission(self.assignment, student)
            return f"{submission.score:g}/{submission.max_score:g}"

    # --- before execution ---------------------------------------------------------------------------------
    def read_notebook(self, student, name):
        folder = self.submitted(student)
        path = folder / f"{name}.ipynb"
        if folder.is_symlink() or folder.parent.is_symlink():
            raise Unreadable("the submission folder is a symbolic link; not graded")
        if not path.exists() and not path.is_symlink():
            others = sorted(p.name for p in folder.glob("*.ipynb"))
            found = f" (found {', '.join(others)}: renamed?)" if others else ""
            raise Unreadable(f"no {name}.ipynb in the submission{found}")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            raise Unreadable(f"{name}.ipynb is a symbolic link or unreadable") from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_NOTEBOOK_BYTES + 1)
        if len(data) > MAX_NOTEBOOK_BYTES:
            raise Unreadable(f"{name}.ipynb is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
        try:
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
            nbformat.validate(nb)
        except Exception as error:
            raise Unreadable(f"{name}.ipynb is not a valid notebook ({type(error).__name__}: "
                             f"{str(error).splitlines()[0][:120]})") from None
        return nb

    def sanitize(self, student, name):
        """The notebook ready to execute, or Unreadable."""
        nb = self.read_notebook(student, name)
        resources = {"unique_key": name, "output_files_dir": f"{name}_files",
                     "nbgrader": {"student": student, "assignment": self.assignment, "notebook": name,
                                  "db_url": self.db_url}}
        notes = restore_cell_flags(nb, self.db_url, self.coursedir.course_id, self.assignment, name)
        # locked cells as released (hidden tests are put back into them: not an edit by the student)
        as_released = {cell.metadata.nbgrader["grade_id"] for cell in nb.cells if "nbgrader" in cell.metadata
                       and cell.metadata.nbgrader.get("checksum") == compute_checksum(cell)}
        self.collected.messages = []
        try:
            for pp in self.sanitize_steps:
                nb, resources = pp(config=self.config, log=self.log)(nb, resources)
        except Exception as error:
            raise Unreadable(f"{name}.ipynb could not be sanitized ({type(error).__name__}: {error})") from None
        notes += [_plain(m) for m in self.collected.messages
                  if not (m.startswith("Attribute 'checksum'") and m.split("cell ")[1].split(" ")[0] in as_released)]
        judgement, runnable = Judgement.prepare(nb, self.assignment)
        return Job(student, name, resources, nbformat.writes(runnable), judgement, notes)

    # --- after execution ------------------------------------------------------------------------------------
    def finish(self, job, executed_json, outcome):
        nb = nbformat.reads(executed_json, as_version=4)
        job.judgement.apply(nb, outcome)  # the judge, not the kernel, writes each test cell's graded output
        resources = job.resources
        for pp in self.after_execution:
            nb, resources = pp(config=self.config, log=self.log)(nb, resources)
        dest = self.autograded(job.student)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, data in self.files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
        stamp = self.submitted(job.student) / "timestamp.txt"
        if stamp.is_file() and not stamp.is_symlink():
            (dest / "timestamp.txt").write_bytes(stamp.read_bytes()[:1000])
        tmp = dest / f".{job.notebook}.ipynb.partial"
        tmp.write_text(nbformat.writes(nb), encoding="utf-8")
        os.replace(tmp, dest / f"{job.notebook}.ipynb")  # last: its presence means "graded"
        return _execution_notes(nb, outcome)

    # --- the class ----------------------------------------------------------------------------------------------
    def run(self):
        if self.unsafe:
            print(UNSAFE_BANNER, file=sys.stderr)
        else:
            problem = None if self.pool_factory else bwrap_problem(_limits_obj(self.limits))  # Dask: workers checked
            if problem:
                print(f"make autograde refuses to run student code without its sandbox: {problem}.\n"
                      "Install bubblewrap (apt-get install bubblewrap) and allow user namespaces "
                      "(e.g. sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu "
                      "kernel.apparmor_restrict_unprivileged_userns=0), or run as root.\n"
                      "To grade WITHOUT protection (student code runs as you): make autograde UNSAFE_NO_SANDBOX=1",
                      file=sys.stderr)
                return 3
        names = self.notebook_names()
        students = self.students()
        if not students:
            print(f"No submissions under {self.coursedir.submitted_directory}/*/{self.assignment}/", file=sys.stderr)
            return 0
        bar = tqdm(total=len(students), unit="student", desc=f"autograde ({self.workers} workers)", file=sys.stderr)
        failures = 0
        pending_notebooks, started, notes = {}, {}, {}

        def done(student, ok=True):
            nonlocal failures
            failures += not ok
            bar.set_postfix(failures=failures)
            bar.update(1)
            seconds = time.monotonic() - started.get(student, time.monotonic())
            line = "; ".join(notes[student]) or "graded normally"
            self.report[student] = f"{self.score(student) if _has_submission(self, student) else '-'}  {line}"
            bar.write(f"{student}: {seconds:.1f} s  {self.report[student]}", file=sys.stderr)

        def jobs():
            for student in students:
                if self.already_graded(student, names):
                    notes[student] = ["already graded (autograded notebook newer than the submission); "
                                      "--force regrades"]
                    done(student)
                    continue
                started[student] = time.monotonic()
                notes[student], ok = [], True
                pending_notebooks[student] = set(names)
                try:
                    self.open_submission(student)
                    extras = self.extra_files(student, names)
                except Exception as error:  # noqa: BLE001 - one student never stops the class
                    notes[student].append(f"NOT GRADED ({type(error).__name__}: {str(error)[:200]}); run again")
                    self.incomplete = True
                    pending_notebooks[student].clear()
                    done(student, False)
                    continue
                if extras:
                    notes[student].append(f"ignored extra files: {', '.join(extras[:5])}")
                for name in names:
                    try:
                        job = self.sanitize(student, name)
                    except Unreadable as error:
                        self.zero(student, name)
                        notes[student].append(f"{error}; scored 0")
                        pending_notebooks[student].discard(name)
                        ok = False
                        continue
                    except Exception as error:  # noqa: BLE001 - nbgrader's preprocessors included
                        notes[student].append(f"NOT GRADED ({name}: {type(error).__name__}: {str(error)[:200]}); "
                                              "run again")
                        self.incomplete = True
                        pending_notebooks[student].discard(name)
                        ok = False
                        continue
                    notes[student] += job.notes
                    yield job
                if not pending_notebooks[student]:
                    done(student, ok)

        status = self._execute_all(jobs(), pending_notebooks, notes, done)
        status = max(status, int(self.incomplete))
        bar.close()
        self.write_report()
        if self.unsafe:
            print(UNSAFE_BANNER, file=sys.stderr)
        return status

    # --- executions: local worker processes, or (pool_factory) another executor such as a Dask cluster ------------
    pool_factory = None  # a callable returning an executor with submit(fn, *args) -> Future and shutdown()

    def new_pool(self):
        return self.pool_factory() if self.pool_factory else _pool(self.workers)

    def _execute_all(self, jobs, pending_notebooks, notes, done):
        status, queue, inflight = 0, [], {}
        jobs = iter(jobs)
        pool = self.new_pool()
        exhausted = False
        try:
            while True:
                while not exhausted and len(inflight) + len(queue) < 2 * self.workers:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                    else:
                        queue.append(job)
                while queue:
                    job = queue.pop(0)
                    inflight[pool.submit(execute_in_sandbox, job.notebook_json, self.files, self.limits,
                                         job.judgement.probes)] = job
                if not inflight:
                    break
                finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                broken = False
                for future in finished:
                    job = inflight.pop(future)
                    try:
                        executed, outcome = future.result()
                    except cf.process.BrokenProcessPool:
                        broken = True
                        job.attempts += 1
                        if job.attempts < 2:
                            queue.append(job)
                            continue
                        executed, outcome = None, {"status": "sandbox-error", "detail": "a grading worker crashed"}
                    except Exception as error:
                        executed, outcome = None, {"status": "sandbox-error", "detail": f"{type(error).__name__}: {error}"}
                    if outcome["status"] == "sandbox-error":
                        notes[job.student].append(f"NOT GRADED ({outcome['detail']}); run again")
                        status = 1
                    else:
                        try:
                            notes[job.student] += self.finish(job, executed, outcome)
                        except Exception as error:  # noqa: BLE001 - nbgrader's code included: one student never stops the class
                            notes[job.student].append(f"NOT GRADED (grading failed: {type(error).__name__}: "
                                                      f"{str(error)[:200]}); run again")
                            status = 1
                    pending_notebooks[job.student].discard(job.notebook)
                    if not pending_notebooks[job.student]:
                        done(job.student, outcome["status"] == "ok" and not _mentions_fault(notes[job.student]))
                if broken:
                    pool.shutdown(wait=False, cancel_futures=True)
                    for future, job in list(inflight.items()):
                        queue.append(job)
                    inflight.clear()
                    pool = self.new_pool()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return status

    def extra_files(self, student, names):
        folder = self.submitted(student)
        expected = {f"{n}.ipynb" for n in names} | {"timestamp.txt"}
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                      if p.name not in expected and not p.is_dir())

    def write_report(self):
        lines = [f"{student}  {line}" for student, line in sorted(self.report.items())]
        header = "UNSAFE: graded without the sandbox\n" if self.unsafe else ""
        (self.course / "autograde_report.txt").write_text(header + "\n".join(lines) + "\n")
        print(header + "\n".join(lines))


def _class(preprocessor):
    """A preprocessor class named in nbgrader's configuration (as a class or as an import string)."""
    return import_item(preprocessor) if isinstance(preprocessor, str) else preprocessor


def _has_submission(grader, student):
    with Gradebook(grader.db_url, grader.coursedir.course_id) as gb:
        try:
            gb.find_submission(grader.assignment, student)
            return True
        except MissingEntry:
            return False


def _mentions_fault(notes):
    return any(word in " ".join(notes) for word in ("scored 0", "NOT GRADED", "kernel", "ran out", "stopped"))


def _execution_notes(nb, outcome):
    notes = []
    if outcome["status"] != "ok":
        notes.append(f"{outcome['detail']}; {outcome['cells_not_run']} cells after it scored 0"
                     if outcome["cells_not_run"] else outcome["detail"])
    elif outcome.get("output_truncated"):
        notes.append(outcome["detail"])
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "a cell")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") in NOTABLE_ERRORS:
                notes.append(f"{gid} {NOTABLE_ERRORS[out['ename']]} ({out['ename']})")
                break
    return notes


def _limits_obj(limits):
    from .sandbox import Limits
    return Limits(**limits)


def _set_parent_death_signal():
    """Worker processes die with the coordinator (and their sandboxes with them)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _pool(workers):
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_set_parent_death_signal)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="course directory (default: here)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="submissions executed at once (default: the number of cores)")
    parser.add_argument("--force", action="store_true", help="regrade students already graded")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="execute student code WITHOUT the sandbox (only where bubblewrap cannot run)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="execute on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); "
                             "--workers is then the cluster's thread count")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's gradebook API, harmless here
    sweep_leftovers()  # what graders killed with SIGKILL left behind
    grader = ClassGrader(args.course, args.assignment, max(1, args.workers), args.force, args.unsafe_no_sandbox)
    if args.dask:  # executions on a Dask cluster (grading/dask_executor.py); grading stays here
        from .dask_executor import DaskExecutor
        executor = DaskExecutor(args.dask, sandbox=not args.unsafe_no_sandbox)
        grader.workers, grader.pool_factory = executor.threads, lambda: executor
    return grader.run()


if __name__ == "__main__":
    sys.exit(main())
