"""One assignment of a course directory as `make autograde` sees it: nbgrader's configuration, where each student's
submission and autograded notebook are, the limits of an execution and the files that go with every notebook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader
from traitlets.utils.importstring import import_item

from grading.engine.limits import Limits

from .judged_execute import SandboxedJudgedExecute, assignment_files, sandbox_limits
from .restore_cell_flags import RestoreCellFlags

# nbgrader's defaults, from its traitlets; c.Autograde.sanitize_preprocessors and c.Autograde.autograde_preprocessors
# replace them, the execute step of the latter being the coordinator's own (workers, sandbox, judge)
SANITIZE = Autograde.class_traits()["sanitize_preprocessors"].default()
AFTER_EXECUTION = [pp for pp in Autograde.class_traits()["autograde_preprocessors"].default() if pp is not Execute]


def load_config(course: Path | str) -> Config:
    """The course's nbgrader_config.py."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def preprocessor_class(preprocessor: type | str) -> type:
    """A preprocessor class named in nbgrader's configuration (as a class or as an import string)."""
    return import_item(preprocessor) if isinstance(preprocessor, str) else preprocessor


@dataclass(frozen=True)
class CourseAssignment:
    """An assignment of a course directory: configuration, paths, limits and the assignment's own files."""

    root: Path
    assignment: str
    config: Config
    coursedir: CourseDirectory
    limits: Limits  # one execution's limits, whether it is sandboxed included
    files: dict[str, bytes]  # what enters the sandbox beside the notebook: relative name -> content
    sanitize_steps: tuple[type, ...]  # nbgrader's sanitize preprocessors, after RestoreCellFlags
    after_execution: tuple[type, ...]  # nbgrader's preprocessors after the execute step

    @classmethod
    def load(cls, root: Path | str, assignment: str, unsafe: bool = False) -> CourseAssignment:
        """The assignment of the course at root; unsafe: its notebooks execute without the sandbox."""
        root = Path(root).resolve()
        config = load_config(root)
        coursedir = CourseDirectory(config=config, root=str(root))
        autograde = config.get("Autograde", {})
        sanitize = tuple(
            pp
            for pp in map(preprocessor_class, autograde.get("sanitize_preprocessors", SANITIZE))
            if not issubclass(pp, RestoreCellFlags)
        )  # done first, with notes for the report
        after = tuple(
            pp
            for pp in map(preprocessor_class, autograde.get("autograde_preprocessors", AFTER_EXECUTION))
            if not issubclass(pp, (Execute, SandboxedJudgedExecute))
        )
        return cls(
            root,
            assignment,
            config,
            coursedir,
            sandbox_limits(config, unsafe),
            assignment_files(coursedir, assignment),
            sanitize,
            after,
        )

    @property
    def unsafe(self) -> bool:
        """Whether student code runs without the sandbox."""
        return not self.limits.sandbox

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id

    def submitted(self, student: str) -> Path:
        """The folder of a student's submission of the assignment."""
        return Path(self.coursedir.format_path(self.coursedir.submitted_directory, student, self.assignment))

    def autograded(self, student: str) -> Path:
        """The folder of a student's autograded notebooks."""
        return Path(self.coursedir.format_path(self.coursedir.autograded_directory, student, self.assignment))

    def students(self) -> list[str]:
        """Students with a submission of the assignment, sorted."""
        root = Path(self.coursedir.format_path(self.coursedir.submitted_directory, ".", ".")).resolve()
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / self.assignment).is_dir())

    def timestamp(self, student: str) -> Any:
        """The submission's timestamp (its timestamp.txt), or None."""
        return self.coursedir.get_existing_timestamp(str(self.submitted(student)))
