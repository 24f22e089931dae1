"""Grade every submission of an assignment, each executed in a sandbox, several at once.

This process is the coordinator and the only writer of the gradebook. For each student, in sorted order, it opens
the submission in the gradebook (ClassGradebook), sanitizes each notebook (NotebookPreparer), has an Executor run
it (ExecutionScheduler: a pool of local workers that only execute notebooks in the sandbox, or a Dask cluster),
then judges and grades the executed notebook and writes it atomically (NotebookFinisher). A student whose
autograded notebook is newer than the submission is skipped (--force regrades), so a killed run resumes where it
stopped. What happened to each student is a StudentOutcome (grading/coordinator/grading_outcome.py): a line of
autograde_report.txt, and the exit status (1 when a student is NOT GRADED; run again).

    python -m grading.coordinator.autograde_class backprop [--workers N] [--force] [--unsafe-no-sandbox]
        [--dask ADDRESS]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SAWarning
from tqdm import tqdm

from grading.engine.executions import (
    ClusterExecutor,
    ExecutionRequest,
    ExecutionScheduler,
    Executor,
    Finished,
    LocalExecutor,
)
from grading.engine.sandbox import allocator_library, bwrap_problem, sweep_leftovers

from .class_gradebook import ClassGradebook, one_engine_per_database
from .course_layout import CourseAssignment
from .grading_outcome import (
    ExitStatus,
    GradingStatus,
    NotebookOutcome,
    StudentOutcome,
    error_words,
    not_graded_note,
    report_text,
)
from .judged_execute import UNSAFE_BANNER
from .judged_execution import NotExecuted
from .notebook_steps import NotebookFinisher, NotebookPreparer, PreparedNotebook, Unreadable

REFUSAL = (
    "make autograde refuses to run student code without its sandbox: {problem}.\n"
    "Install bubblewrap (apt-get install bubblewrap) and allow user namespaces "
    "(e.g. sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu "
    "kernel.apparmor_restrict_unprivileged_userns=0), or run as root.\n"
    "To grade WITHOUT protection (student code runs as you): make autograde UNSAFE_NO_SANDBOX=1"
)
SLOWER_MALLOC = (
    "Note: {allocator} (c.Sandbox.allocator) cannot be preloaded here (it is not a library under /usr that this "
    "machine's Python starts with), so the kernels use the C library's malloc and grading takes longer. For "
    "jemalloc, the default: apt-get install libjemalloc2. c.Sandbox.allocator = '' says to use the C library's."
)


class Progress:
    """The progress bar on stderr, with a line for each student as they are done."""

    def __init__(self, students: int, workers: int) -> None:
        self.bar = tqdm(total=students, unit="student", desc=f"autograde ({workers} workers)", file=sys.stderr)
        self.faults = 0

    def done(self, outcome: StudentOutcome) -> None:
        self.faults += outcome.status.is_fault
        self.bar.set_postfix(failures=self.faults)
        self.bar.update(1)
        self.bar.write(f"{outcome.student}: {outcome.seconds:.1f} s  {outcome.line}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


@dataclass
class _Grading:
    """A student being graded: their outcome so far, and the notebooks still to finish."""

    outcome: StudentOutcome
    names: list[str]
    started: float = field(default_factory=time.monotonic)
    finished: dict[str, NotebookOutcome] = field(default_factory=dict)
    reported: bool = False

    def add(self, notebook: NotebookOutcome) -> None:
        self.finished[notebook.notebook] = notebook

    @property
    def complete(self) -> bool:
        return all(name in self.finished for name in self.names)


class ClassGrader:
    """Grades every submission of one assignment with `executor`; run() once, it returns the exit status.

    The executor is the caller's: ClassGrader never starts or shuts it down (restarting it after a worker died
    excepted)."""

    def __init__(
        self,
        course: CourseAssignment,
        executor: Executor,
        *,
        force: bool = False,
        gradebook: ClassGradebook | None = None,
    ) -> None:
        self.course = course
        self.executor = executor
        self.force = force
        self.gradebook = gradebook or ClassGradebook(course.db_url, course.course_id, course.assignment)
        self.preparer = NotebookPreparer(course)
        self.finisher = NotebookFinisher(course)
        self.outcomes: dict[str, StudentOutcome] = {}
        self._grading: dict[str, _Grading] = {}
        self._progress: Progress | None = None

    def run(self) -> ExitStatus:
        """Grade the class; write and print autograde_report.txt. Students already graded are kept unless force."""
        with one_engine_per_database():  # nbgrader's steps compile their statements once for the class
            return self._run()

    def _run(self) -> ExitStatus:
        if self.course.unsafe:
            print(UNSAFE_BANNER, file=sys.stderr)
        names = self.gradebook.notebook_names()
        students = self.course.students()
        if not students:
            print(
                f"No submissions under {self.course.coursedir.submitted_directory}/*/{self.course.assignment}/",
                file=sys.stderr,
            )
            return ExitStatus.COMPLETE
        self.outcomes, self._grading = {}, {}
        self._progress = Progress(len(students), self.executor.capacity)
        try:
            with closing(ExecutionScheduler(self.executor).run(self._jobs(students, names))) as executions:
                for execution in executions:
                    self._executed(execution)
        finally:
            self._progress.close()
        self.write_report()
        if self.course.unsafe:
            print(UNSAFE_BANNER, file=sys.stderr)
        return ExitStatus.of(self.outcomes.values())

    def already_graded(self, student: str, names: Sequence[str]) -> bool:
        """Whether every notebook's autograded copy is newer than the submission and every grade is given."""
        for name in names:
            done = self.course.autograded(student) / f"{name}.ipynb"
            submitted = self.course.submitted(student) / f"{name}.ipynb"
            if not done.exists() or (submitted.exists() and submitted.stat().st_mtime > done.stat().st_mtime):
                return False
        return self.gradebook.has_every_grade(student)

    def write_report(self) -> None:
        """autograde_report.txt in the course, also printed."""
        text = report_text(self.outcomes.values(), self.course.unsafe)
        (self.course.root / "autograde_report.txt").write_text(text)
        print(text, end="")

    # --- one student at a time, as the scheduler asks for more work ------------------------------------------------
    def _jobs(self, students: Sequence[str], names: list[str]) -> Iterator[tuple[PreparedNotebook, ExecutionRequest]]:
        """The notebooks to execute, each ready; students skipped or not openable are done here."""
        for student in students:
            grading = _Grading(StudentOutcome(student), names)
            try:
                if not self.force and self.already_graded(student, names):
                    self._done(_Grading(StudentOutcome.already_graded(student), names))
                    continue
                self._grading[student] = grading
                self.gradebook.open_submission(student, self.course.timestamp(student))
                extras = self.preparer.extra_files(student, names)
            except Exception as error:  # noqa: BLE001 - one student never stops the class
                grading.outcome.own_status = GradingStatus.NOT_GRADED
                grading.outcome.notes.append(not_graded_note(error_words(error)))
                self._done(grading)
                continue
            if extras:
                grading.outcome.notes.append(f"ignored extra files: {', '.join(extras[:5])}")
            for name in names:
                try:
                    prepared = self.preparer.prepare(student, name)
                except Unreadable as error:
                    grading.add(self._scored_zero(student, name, error))
                    continue
                except Exception as error:  # noqa: BLE001 - nbgrader's preprocessors included
                    grading.add(NotebookOutcome.not_graded(name, f"{name}: {error_words(error)}"))
                    continue
                yield prepared, prepared.execution.request
            if grading.complete:  # nothing of theirs to execute, or the last execution finished already
                self._done(grading)

    def _scored_zero(self, student: str, name: str, why: Unreadable) -> NotebookOutcome:
        try:
            self.gradebook.zero(student, name)
        except Exception as error:  # noqa: BLE001 - one student never stops the class
            return NotebookOutcome.not_graded(name, f"{name}: {error_words(error)}")
        return NotebookOutcome.unreadable(name, str(why))

    def _executed(self, execution: Finished[PreparedNotebook]) -> None:
        prepared, outcome = execution.key, execution.outcome
        try:
            result = self.finisher.finish(prepared, execution.executed_json or "", outcome)
        except NotExecuted as error:  # nothing of the notebook ran: nothing to grade
            result = NotebookOutcome.not_graded(prepared.notebook, error.detail, prepared.notes)
        except Exception as error:  # noqa: BLE001 - nbgrader's code included: one student never stops the class
            result = NotebookOutcome.not_graded(
                prepared.notebook, f"grading failed: {error_words(error)}", prepared.notes
            )
        grading = self._grading[prepared.student]
        grading.add(result)
        if grading.complete:
            self._done(grading)

    def _done(self, grading: _Grading) -> None:
        """The student's outcome recorded and shown, once."""
        if grading.reported:
            return
        grading.reported = True
        outcome = grading.outcome
        outcome.notebooks = [grading.finished[name] for name in grading.names if name in grading.finished]
        outcome.seconds = time.monotonic() - grading.started
        outcome.score = self.gradebook.score(outcome.student)
        self.outcomes[outcome.student] = outcome
        self._grading.pop(outcome.student, None)
        assert self._progress is not None
        self._progress.done(outcome)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="course directory (default: here)")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="submissions executed at once (default: the number of cores)",
    )
    parser.add_argument("--force", action="store_true", help="regrade students already graded")
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="execute student code WITHOUT the sandbox (only where bubblewrap cannot run)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="execute on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); "
        "--workers is then the cluster's thread count",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's gradebook API, harmless here
    sweep_leftovers()  # what graders killed with SIGKILL left behind
    unsafe = args.unsafe_no_sandbox
    course = CourseAssignment.load(args.course, args.assignment, unsafe)
    executor: Executor
    if args.dask:  # executions on a Dask cluster (grading/engine/dask_executor.py); grading stays here
        from grading.engine.dask_executor import DaskExecutor

        executor = ClusterExecutor(DaskExecutor(args.dask, sandbox=not unsafe))  # checks its workers' sandboxes
    else:
        problem = None if unsafe else bwrap_problem(course.limits)
        if problem:
            print(REFUSAL.format(problem=problem), file=sys.stderr)
            return ExitStatus.NO_SANDBOX
        if not unsafe and course.limits.allocator and allocator_library(course.limits.allocator) is None:
            print(SLOWER_MALLOC.format(allocator=course.limits.allocator), file=sys.stderr)
        local = LocalExecutor(max(1, args.workers))
        local.warm_up(course.limits)
        executor = local
    try:
        return ClassGrader(course, executor, force=args.force).run()
    finally:
        executor.shutdown()


if __name__ == "__main__":
    sys.exit(main())
