"""The course's learning management system (LMS) connections, as nbgrader plugins.

- `CanvasCollector`, for `nbgrader zip_collect`: takes Canvas's "Download Submissions" zip into
  `submitted/<student id>/<assignment>/`, finding each file's student in the gradebook's roster (imported from
  `students.csv`) by the name or the Canvas user id in the file's name.
- `CanvasExport` and `MoodleExport`, for `nbgrader export --exporter=grading.reports.lms.CanvasExport`: every student
  of the gradebook with their points per assignment, in the CSV that Canvas's Gradebook import and Moodle's "Import
  grades from CSV file" read.

nbgrader_config.py makes `CanvasCollector` the collector of `nbgrader zip_collect`; `make grades` runs both exporters.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin, FileNameCollectorPlugin
from nbgrader.utils import find_all_notebooks
from traitlets import Dict, Unicode, default

# How Canvas names each file of its "Download Submissions" zip:
#     {sortable name}[_late]_{Canvas user id}_{file id}_{file name as the student uploaded it}
# e.g. perfectada_late_12345_67890_backprop.ipynb. The sortable name ("Perfect, Ada") keeps only letters, digits and
# underscores and is lowercased; "late" marks a submission that Canvas counts as late; a file name gets "-1", "-2", ...
# before its extension when the student had uploaded a file of that name before. nbgrader requires the groups
# student_id and file_id; student_id is the Canvas name here, which CanvasCollector turns into the roster's id.
CANVAS_FILE_NAME = (
    r"^(?:.*/)?(?:(?P<student_id>[^\W_]+)_)?(?:(?P<late>late)_)?"
    r"(?P<lms_user_id>\d+)_(?P<lms_file_id>\d+)_(?P<file_id>[^/]+)$"
)
_RENAMED_BY_CANVAS = re.compile(r"^(?P<stem>.+)-\d+(?P<ext>\.[^.]+)$")

ROSTER_HINT = (
    "add the student to students.csv (columns id, first_name, last_name, email; a column lms_user_id with "
    "the Canvas user id matches whatever the name), run `make roster` "
    "(nbgrader db student import students.csv) and collect again"
)


# -------------------------------------------------------------------------------------------------- roster


@dataclass(frozen=True)
class RosterStudent:
    """A student of the gradebook, as the LMS plugins need it."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""

    @property
    def sortable_name(self):
        """ "Last, First", the name Canvas shows and matches."""
        return ", ".join(part for part in (self.last_name, self.first_name) if part)


def roster(gradebook):
    """Every student of the gradebook, sorted by last name, first name and id."""
    students = [
        RosterStudent(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
        for s in gradebook.students
    ]
    return sorted(students, key=lambda s: (s.last_name.lower(), s.first_name.lower(), s.id))


def canvas_name(text):
    """A name as Canvas writes it in file names: letters and digits only, lowercased ("Perfect, Ada" -> perfectada).

    Canvas keeps underscores too, but in a file name they cannot be told from its separators, so they are dropped
    on both sides of the comparison.
    """
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFC", text or "")).lower()


class Roster:
    """Finds the student of a Canvas file: by Canvas user id (the gradebook's lms_user_id), else by name."""

    def __init__(self, students):
        self.students = list(students)
        self.by_lms_user_id = {s.lms_user_id: s for s in self.students if s.lms_user_id}
        self.by_name = defaultdict(list)
        for s in self.students:
            self.by_name[canvas_name(s.sortable_name)].append(s)

    def find(self, name, lms_user_id):
        """(student, None) or (None, the reason no single student matches)."""
        if lms_user_id and lms_user_id in self.by_lms_user_id:
            return self.by_lms_user_id[lms_user_id], None
        if not self.students:
            return None, (
                "the gradebook has no students: import the roster first "
                "(`make roster`, or nbgrader db student import students.csv)"
            )
        found = self.by_name.get(canvas_name(name), []) if name else []
        if len(found) == 1:
            return found[0], None
        if found:
            return None, (
                f"{len(found)} students of the roster are called '{name}' "
                f"({', '.join(s.id for s in found)}); give each their Canvas user id in a column "
                "lms_user_id of students.csv, run `make roster` and collect again"
            )
        who = f"'{name}' (Canvas user {lms_user_id})" if name else f"Canvas user {lms_user_id}"
        return None, f"no student of the roster matches {who}; {ROSTER_HINT}"


# ------------------------------------------------------------------------------------------ zip_collect


class CanvasCollector(FileNameCollectorPlugin):
    """`nbgrader zip_collect`'s collector for Canvas's "Download Submissions" zip (see CANVAS_FILE_NAME).

    Each file goes to `submitted/<id>/<assignment>/<file name as uploaded>` for the roster student whose Canvas user id
    (the gradebook's lms_user_id) or "Last, First" name the file name carries; Canvas's "-1", "-2" suffixes of
    re-uploaded files are dropped when that gives a notebook of the release. A file that matches no single student,
    is not a notebook, or repeats a notebook the student already has in the zip, is skipped with a warning that says
    why; it stays in the extracted folder. Canvas's file names carry no submission time, only a "late" marker: no
    timestamp.txt is written (so nbgrader computes no lateness and applies no late penalty), and the late ones are
    reported. Every file and what became of it is listed in `collected.csv` beside the `archive` folder.
    """

    @default("named_regexp")
    def _default_named_regexp(self):
        return CANVAS_FILE_NAME

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._roster = None
        self._taken = {}  # (student id, notebook) -> file name that gave it
        self._released = None
        self._listing = None

    # what the zip_collect app that runs the plugin knows
    def _coursedir(self):
        return getattr(self.parent, "coursedir", None)

    def load_roster(self):
        """The gradebook's students (nbgrader db student import students.csv puts the roster there)."""
        coursedir = self._coursedir()
        if coursedir is None:
            return Roster([])
        with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
            return Roster(roster(gradebook))

    def _released_notebooks(self):
        if self._released is None:
            coursedir = self._coursedir()
            self._released = set()
            if coursedir is not None:
                release = coursedir.format_path(coursedir.release_directory, ".", coursedir.assignment_id)
                self._released = set(find_all_notebooks(release))
        return self._released

    def _listing_path(self):
        app = self.parent
        if self._coursedir() is None or not hasattr(app, "collect_directory_structure"):
            return None
        return os.path.join(
            self._coursedir().root,
            app.collect_directory_structure.format(
                downloaded=app.downloaded_directory,
                assignment_id=self._coursedir().assignment_id,
                collect_step="collected.csv",
            ),
        )

    def _record(self, file_name, student_id, lms_user_id, late, result):
        """One line of collected.csv: each file of the download and what became of it."""
        if self._listing is None:
            self._listing = self._listing_path() or ""
            if self._listing:
                os.makedirs(os.path.dirname(self._listing), exist_ok=True)
                with open(self._listing, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerow(["file", "student_id", "lms_user_id", "late", "result"])
        if self._listing:
            with open(self._listing, "a", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow([file_name, student_id, lms_user_id, "late" if late else "", result])

    def _skip(self, submitted_file, why, lms_user_id="", late=False):
        self.log.warning(
            "Skipped %s: %s. The file stays in %s.",
            os.path.basename(submitted_file),
            why,
            os.path.dirname(submitted_file),
        )
        self._record(os.path.basename(submitted_file), "", lms_user_id, late, f"skipped: {why}")
        return None

    def notebook_name(self, uploaded):
        """The uploaded file's name, without the "-N" Canvas adds to a re-upload if that names a released notebook."""
        renamed = _RENAMED_BY_CANVAS.match(uploaded)
        if uploaded not in self._released_notebooks() and renamed:
            original = renamed["stem"] + renamed["ext"]
            if original in self._released_notebooks():
                return original
        return uploaded

    def collect(self, submitted_file):
        file_name = unicodedata.normalize("NFC", os.path.basename(submitted_file))
        if os.path.splitext(file_name)[1] not in self.valid_ext:
            return self._skip(submitted_file, f"not a notebook (collected: {', '.join(self.valid_ext)})")
        match = re.match(self.named_regexp, file_name)
        if not match:
            return self._skip(
                submitted_file,
                "its name is not a Canvas submission's ({name}[_late]_{Canvas user id}_{file id}_{file name})",
            )
        info = match.groupdict()
        lms_user_id, late = info.get("lms_user_id") or "", bool(info.get("late"))
        if self._roster is None:
            self._roster = self.load_roster()
        student, why = self._roster.find(info.get("student_id"), lms_user_id)
        if student is None:
            return self._skip(submitted_file, why, lms_user_id, late)
        notebook = self.notebook_name(info["file_id"])
        earlier = self._taken.get((student.id, notebook))
        if earlier:
            return self._skip(submitted_file, f"{student.id} already has {notebook} from {earlier}", lms_user_id, late)
        self._taken[(student.id, notebook)] = file_name
        if late:
            self.log.warning(
                "%s: Canvas marks %s's submission late. The download carries no submission time, so "
                "nbgrader applies no late penalty; a Canvas late policy, if the course has one, deducts "
                "when the grade is uploaded.",
                file_name,
                student.id,
            )
        self._record(file_name, student.id, lms_user_id, late, f"collected as {student.id}/{notebook}")
        return {"student_id": student.id, "file_id": notebook}


# ------------------------------------------------------------------------------------------------ export


def submission_points(submission):
    """Points of a submission after its late penalty, or None while a grade waits for a manual score."""
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.manual_score is None and grade.auto_score is None:
                return None
    return max(0.0, submission.score - (submission.late_submission_penalty or 0.0))


def format_points(points):
    """Points as the LMS reads them: at most two decimals, no trailing zeros; blank for None."""
    return "" if points is None else f"{round(points, 2):g}"


NO_SUBMISSION = object()  # in LmsExport.grades, where a student submitted nothing


class LmsExport(ExportPlugin):
    """Every gradebook student with their points per assignment, in an LMS's grade upload format.

    A student without a submission gets 0 (as in nbgrader's grades.csv; `no_submission` changes it); a submission
    that still waits for a manual grade is left blank, which the LMS reads as "no grade".
    """

    default_file = ""  # where the file goes without --to, from the course root
    lms = ""

    assignment_columns = Dict(
        {}, help="assignment -> the column name the LMS knows it by (default: the assignment's name)"
    ).tag(config=True)
    no_submission = Unicode(
        "0",
        help="the grade of a student who submitted nothing: 0, or '' to leave it blank (Canvas then keeps the "
        "grade it has, e.g. from a missing-submission policy; Moodle clears it)",
    ).tag(config=True)

    def destination(self):
        if self.to:
            return Path(self.to)
        root = getattr(getattr(self.parent, "coursedir", None), "root", None) or os.getcwd()
        return Path(root) / self.default_file

    def grades(self, gradebook):
        """(assignments, [(RosterStudent, [points, None or NO_SUBMISSION per assignment])]), selected students."""
        only_assignments, only_students = set(map(str, self.assignment)), set(map(str, self.student))
        assignments = [a for a in gradebook.assignments if not only_assignments or a.name in only_assignments]
        students = [s for s in roster(gradebook) if not only_students or s.id in only_students]
        table, pending = [], []
        for student in students:
            points = []
            for assignment in assignments:
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    points.append(NO_SUBMISSION)
                    continue
                points.append(submission_points(submission))
                if points[-1] is None:
                    pending.append(f"{student.id} ({assignment.name})")
            table.append((student, points))
        if pending:
            self.log.warning(
                "%d submission(s) still wait for a manual grade and are left blank in the %s file: %s",
                len(pending),
                self.lms,
                ", ".join(pending),
            )
        return assignments, table

    def column(self, assignment):
        return self.assignment_columns.get(assignment.name, assignment.name)

    def cells(self, points):
        return [self.no_submission if p is NO_SUBMISSION else format_points(p) for p in points]

    def export(self, gradebook):
        assignments, table = self.grades(gradebook)
        dest = self.destination()
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "w", newline="", encoding="utf-8") as f:
            self.write(csv.writer(f), assignments, table)
        self.log.info("Wrote the %s grades of %d students to %s", self.lms, len(table), dest)

    def write(self, writer, assignments, table):
        raise NotImplementedError


class CanvasExport(LmsExport):
    """Canvas's Gradebook import (Grades > Import): the columns of Canvas's own export.

    Student ("Last, First"), ID (the Canvas user id: the roster's lms_user_id, if any), SIS User ID (left blank: the
    course's ids are not the institution's), SIS Login ID (the roster's email), Section (blank), then one column per
    assignment, with a "Points Possible" row first. Canvas finds each student by ID, else SIS Login ID, else name.
    A column named "backprop (12345)", with the Canvas assignment's id, fills that assignment; a name alone fills the
    assignment of that name, or creates it (`c.CanvasExport.assignment_columns = {"backprop": "backprop (12345)"}`).
    """

    default_file = os.path.join("build", "lms", "canvas_grades.csv")
    lms = "Canvas"

    def write(self, writer, assignments, table):
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *map(self.column, assignments)])
        writer.writerow(["Points Possible", "", "", "", "", *(format_points(a.max_score) for a in assignments)])
        unmatched = []
        for student, points in table:
            if not (student.lms_user_id or student.email):
                unmatched.append(student.id)
            writer.writerow(
                [student.sortable_name or student.id, student.lms_user_id, "", student.email, "", *self.cells(points)]
            )
        if unmatched:
            self.log.warning(
                "No email or Canvas user id for %s: Canvas can match them by name only", ", ".join(unmatched)
            )


class MoodleExport(LmsExport):
    """Moodle's grade import (Grades > Import > CSV file), one row per student keyed by email address.

    Columns: First name, Last name, Email address, then one per assignment. On import, map from "Email address" to
    "Email address" and each assignment column to its grade item (or a new one). Moodle stops the whole import at a
    row whose user it cannot find, so students without an email are left out (with a warning); it reads a blank
    grade as "no grade".
    """

    default_file = os.path.join("build", "lms", "moodle_grades.csv")
    lms = "Moodle"

    def write(self, writer, assignments, table):
        writer.writerow(["First name", "Last name", "Email address", *map(self.column, assignments)])
        left_out = []
        for student, points in table:
            if not student.email:
                left_out.append(student.id)
                continue
            writer.writerow([student.first_name, student.last_name, student.email, *self.cells(points)])
        if left_out:
            self.log.warning("Left out of the Moodle file, no email address in the roster: %s", ", ".join(left_out))
