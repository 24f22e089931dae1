"""The course's learning management system (LMS) connections, as nbgrader plugins.

- `CanvasCollector`, for `nbgrader zip_collect`: takes Canvas's "Download Submissions" zip into
  `submitted/<student id>/<assignment>/`, finding each file's student in the gradebook's roster (imported from
  `students.csv`) by the Canvas user id or the name in the file's name, or, for anonymous grading, by the roster's
  column canvas_anonymous_id.
- `CanvasExport` and `MoodleExport`, for `nbgrader export --exporter=grading.reports.lms.CanvasExport`: the final
  points per assignment of the gradebook's students, in the CSV that Canvas's Gradebook import and Moodle's "Import
  grades from CSV file" read. A grade that is not final is never written as a blank cell: both importers would
  erase (or, Moodle into a new grade item, invent 0 for) the grade the LMS holds.

nbgrader_config.py makes `CanvasCollector` the collector of `nbgrader zip_collect`; `make grades` runs both exporters.
What each importer does with each row is written from the importers' code (Canvas: lib/content_zipper.rb,
app/models/gradebook_importer.rb, ui/features/gradebook_uploads/jquery/process_gradebook_upload.js; Moodle:
grade/import/csv/classes/load_data.php, grade/import/lib.php, lib/csvlib.class.php); tests/support/lms_importers.py
models those rules and tests/test_lms.py imports the course's files with them.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin, FileNameCollectorPlugin
from nbgrader.utils import find_all_notebooks
from traitlets import Dict, TraitError, Unicode, default, validate

# How Canvas names each file of its "Download Submissions" zip (lib/content_zipper.rb, get_filename and
# add_upload_submission):
#     {name}[_LATE]_{Canvas user id}_{file id}_{file name as uploaded}   perfectada_LATE_12345_67890_backprop.ipynb
#     [LATE_]anon_{anonymous id}_{file id}_{file name as uploaded}       (anonymous grading) anon_aB3xY_67890_...
# The name is the sortable name ("Perfect, Ada") lowercased, "_<digits>_" runs collapsed to their digits, then cut to
# word characters: letters, digits and underscores stay (so a name may hold underscores). "LATE" is upper case;
# "late" is taken too. A file name the student uploaded twice comes as "backprop-1.ipynb" (Attachment's
# make_unique_filename: "-1" ... "-7", then "-<uuid>"). nbgrader requires the groups student_id and file_id;
# student_id is Canvas's name here, which CanvasCollector turns into the roster's id.
CANVAS_FILE_NAME = (
    r"^(?:.*/)?(?:"
    r"(?:(?P<late_anonymous>(?i:late))_)?anon_(?P<anonymous_id>[0-9A-Za-z]{5,})"
    r"|(?P<student_id>[^/]*?)_(?:(?P<late>(?i:late))_)?(?P<lms_user_id>[0-9]+)"
    r")_(?P<lms_file_id>[0-9]+)_(?P<file_id>[^/]+)$"
)
_RENAMED_BY_CANVAS = re.compile(
    r"^(?P<stem>.+)-(?:[0-9]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?P<ext>\.[^.]+)$"
)
ANONYMOUS_ID_COLUMN = "canvas_anonymous_id"

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


def anonymous_ids(path):
    """{Canvas anonymous id: [student ids]} from the roster file's optional column canvas_anonymous_id.

    `nbgrader db student import` skips the column (the gradebook has no place for it), so the collector reads it
    from the file. A cell may hold the id as Canvas's file names show it, with or without "anon_".
    """
    found: defaultdict[str, list[str]] = defaultdict(list)
    if not os.path.isfile(path):
        return found
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            anonymous = (row.get(ANONYMOUS_ID_COLUMN) or "").strip().removeprefix("anon_")
            if anonymous and (row.get("id") or "").strip():
                found[anonymous].append(row["id"].strip())
    return found


def canvas_name(text):
    """A name as Canvas writes it in file names, compared without underscores ("Perfect, Ada" -> perfectada).

    Canvas keeps letters, digits and underscores, lowercased. Underscores are dropped on both sides of the
    comparison: in a file name they cannot always be told from its separators.
    """
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFC", text or "")).lower()


class Roster:
    """Finds the student of a Canvas file: by anonymous id (students.csv), by Canvas user id (the gradebook's
    lms_user_id), else by name."""

    def __init__(self, students, anonymous=None):
        self.students = list(students)
        self.by_id = {s.id: s for s in self.students}
        self.by_lms_user_id = {s.lms_user_id: s for s in self.students if s.lms_user_id}
        self.by_name = defaultdict(list)
        for s in self.students:
            self.by_name[canvas_name(s.sortable_name)].append(s)
        self.anonymous = dict(anonymous or {})

    def find(self, name, lms_user_id, anonymous_id=""):
        """(student, None) or (None, the reason no single student matches)."""
        if anonymous_id:
            return self._find_anonymous(anonymous_id)
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

    def _find_anonymous(self, anonymous_id):
        ids = self.anonymous.get(anonymous_id, [])
        if not ids:
            return None, (
                f"Canvas's anonymous grading does not say whose file this is (anon_{anonymous_id}); to collect it, "
                f"put {anonymous_id} in a column {ANONYMOUS_ID_COLUMN} of students.csv, on the student's row, "
                "and collect again"
            )
        if len(ids) > 1:
            return None, (
                f"students.csv gives the anonymous id {anonymous_id} to {len(ids)} students ({', '.join(ids)}); "
                "keep it on one row and collect again"
            )
        if ids[0] not in self.by_id:
            return None, (
                f"students.csv gives the anonymous id {anonymous_id} to {ids[0]}, who is not in the gradebook; "
                "run `make roster` and collect again"
            )
        return self.by_id[ids[0]], None


# ------------------------------------------------------------------------------------------ zip_collect


@dataclass
class CanvasFile:
    """One file of Canvas's download: what its name says, and its student and notebook, or why it is skipped."""

    path: str
    name: str
    lms_user_id: str = ""
    anonymous_id: str = ""
    late: bool = False
    lms_file_id: int = -1
    student: RosterStudent | None = None
    notebook: str = ""
    skipped: str = ""


class CanvasCollector(FileNameCollectorPlugin):
    """`nbgrader zip_collect`'s collector for Canvas's "Download Submissions" zip (see CANVAS_FILE_NAME).

    Each file goes to `submitted/<id>/<assignment>/<file name as uploaded>` for the roster student whose Canvas user id
    (the gradebook's lms_user_id) or "Last, First" name the file name carries, or, under anonymous grading
    (`anon_<id>` names), whose row of students.csv has that id in its column canvas_anonymous_id. Canvas's "-1", "-2"
    suffixes of re-uploaded files are dropped when that gives a notebook of the release; when the zip holds a notebook
    twice for a student, the later upload (the higher Canvas file id) is collected. A file that matches no single
    student, is not a notebook, or is an earlier upload of a notebook collected from the zip, is skipped with a warning
    that says why; it stays in the extracted folder. Canvas's file names carry no submission time, only its late mark:
    a late file gets a timestamp.txt one second after the assignment's due date in the gradebook, so nbgrader's late
    penalty applies to it; without a due date in the gradebook none is written and the late files are reported. Every
    file and what became of it is listed in `collected.csv` beside the `archive` folder.
    """

    roster_file = Unicode(
        "students.csv",
        help="The roster file (from the course root) whose optional column canvas_anonymous_id maps Canvas's "
        "anonymous grading ids, anon_<id> in the download's file names, to students",
    ).tag(config=True)

    @default("named_regexp")
    def _default_named_regexp(self):
        return CANVAS_FILE_NAME

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._roster = None
        self._plan = {}  # file path -> CanvasFile
        self._released = None
        self._listing = None
        self._due = None  # [due date or None], once read

    # what the zip_collect app that runs the plugin knows
    def _coursedir(self):
        return getattr(self.parent, "coursedir", None)

    def load_roster(self):
        """The gradebook's students (nbgrader db student import students.csv puts the roster there), with the
        anonymous ids of the roster file."""
        coursedir = self._coursedir()
        if coursedir is None:
            return Roster([])
        with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
            students = roster(gradebook)
        return Roster(students, anonymous_ids(os.path.join(coursedir.root, self.roster_file)))

    def due_date(self):
        """The assignment's due date in the gradebook (naive UTC, as nbgrader keeps it), or None."""
        if self._due is None:
            self._due = [None]
            coursedir = self._coursedir()
            if coursedir is not None:
                with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
                    try:
                        self._due = [gradebook.find_assignment(coursedir.assignment_id).duedate]
                    except MissingEntry:
                        pass
        return self._due[0]

    def released_notebooks(self):
        """The notebooks of the assignment's release, e.g. {"backprop.ipynb"}."""
        if self._released is None:
            coursedir = self._coursedir()
            self._released = set()
            if coursedir is not None:
                release = coursedir.format_path(coursedir.release_directory, ".", coursedir.assignment_id)
                self._released = set(find_all_notebooks(release))
        return self._released

    def _collect_path(self, step):
        """A path of zip_collect's folders (collect_step: the extracted folder, collected.csv), or None."""
        app = self.parent
        if self._coursedir() is None or not hasattr(app, "collect_directory_structure"):
            return None
        return os.path.join(
            self._coursedir().root,
            app.collect_directory_structure.format(
                downloaded=app.downloaded_directory, assignment_id=self._coursedir().assignment_id, collect_step=step
            ),
        )

    def _record(self, file, result):
        """One line of collected.csv: each file of the download and what became of it."""
        if self._listing is None:
            self._listing = self._collect_path("collected.csv") or ""
            if self._listing:
                os.makedirs(os.path.dirname(self._listing), exist_ok=True)
                with open(self._listing, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerow(["file", "student_id", "lms_user_id", "anonymous_id", "late", "result"])
        if self._listing:
            with open(self._listing, "a", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(
                    [
                        file.name,
                        file.student.id if file.student and not file.skipped else "",
                        file.lms_user_id,
                        file.anonymous_id,
                        "late" if file.late else "",
                        result,
                    ]
                )

    def notebook_name(self, uploaded):
        """The uploaded file's name, without the "-N" Canvas adds to a re-upload if that names a released notebook."""
        renamed = _RENAMED_BY_CANVAS.match(uploaded)
        if uploaded not in self.released_notebooks() and renamed:
            original = renamed["stem"] + renamed["ext"]
            if original in self.released_notebooks():
                return original
        return uploaded

    def read_name(self, path):
        """A CanvasFile from the file's name: its student and notebook, or why it is skipped."""
        name = unicodedata.normalize("NFC", os.path.basename(path))
        file = CanvasFile(path, name)
        if os.path.splitext(name)[1] not in self.valid_ext:
            file.skipped = f"not a notebook (collected: {', '.join(self.valid_ext)})"
            return file
        match = re.match(self.named_regexp, name)
        if not match:
            file.skipped = (
                "its name is not a Canvas submission's ({name}[_LATE]_{Canvas user id}_{file id}_{file name}, "
                "or [LATE_]anon_{anonymous id}_{file id}_{file name})"
            )
            return file
        info = match.groupdict()
        file.lms_user_id = info.get("lms_user_id") or ""
        file.anonymous_id = info.get("anonymous_id") or ""
        file.late = bool(info.get("late") or info.get("late_anonymous"))
        file.lms_file_id = int(info.get("lms_file_id") or -1)
        if self._roster is None:
            self._roster = self.load_roster()
        file.student, why = self._roster.find(info.get("student_id"), file.lms_user_id, file.anonymous_id)
        if file.student is None:
            file.skipped = why or "no student"
            return file
        file.notebook = self.notebook_name(info["file_id"])
        return file

    def _files_beside(self, submitted_file):
        """Every file zip_collect will hand over with this one: the extracted folder's (else the file's folder's)."""
        extracted = self._collect_path(getattr(self.parent, "extracted_directory", "extracted"))
        if not extracted or not os.path.abspath(submitted_file).startswith(os.path.abspath(extracted) + os.sep):
            extracted = os.path.dirname(submitted_file)
        files = [os.path.join(root, f) for root, _, names in os.walk(extracted) for f in names]
        return files if submitted_file in files else [*files, submitted_file]

    def _make_plan(self, paths):
        """Reads every file's name; of the files that give a student the same notebook, the latest upload wins."""
        files = [self.read_name(path) for path in paths if path not in self._plan]
        by_notebook = defaultdict(list)
        for file in files:
            if not file.skipped and file.student is not None:
                by_notebook[(file.student.id, file.notebook)].append(file)
        for (student_id, notebook), same in by_notebook.items():
            latest = max(same, key=lambda f: f.lms_file_id)
            for file in same:
                if file is not latest:
                    file.skipped = (
                        f"{student_id} uploaded {notebook} again later in this submission ({latest.name}, "
                        f"Canvas file {latest.lms_file_id}), which is collected instead"
                    )
        self._plan.update((file.path, file) for file in files)

    def collect(self, submitted_file):
        if submitted_file not in self._plan:
            self._make_plan(self._files_beside(submitted_file))
        file = self._plan[submitted_file]
        if file.skipped or file.student is None:
            self.log.warning(
                "Skipped %s: %s. The file stays in %s.", file.name, file.skipped, os.path.dirname(file.path)
            )
            self._record(file, f"skipped: {file.skipped}")
            return None
        collected = {"student_id": file.student.id, "file_id": file.notebook}
        result = f"collected as {file.student.id}/{file.notebook}"
        if file.late:
            due = self.due_date()
            if isinstance(due, datetime):
                collected["timestamp"] = (due + timedelta(seconds=1)).isoformat(" ")
                result += f", late: timestamp {collected['timestamp']} (due {due.isoformat(' ')} UTC)"
            else:
                self.log.warning(
                    "%s: Canvas marks %s's submission late, but the gradebook has no due date for %s, so nbgrader "
                    "applies no late penalty (set one with nbgrader db assignment add %s --duedate=... and collect "
                    "again); a Canvas late policy, if the course has one, deducts when the grade is uploaded.",
                    file.name,
                    file.student.id,
                    self._assignment(),
                    self._assignment(),
                )
                result += ", late: no due date in the gradebook, no timestamp"
        self._record(file, result)
        return collected

    def _assignment(self):
        coursedir = self._coursedir()
        return coursedir.assignment_id if coursedir is not None else "the assignment"


# ------------------------------------------------------------------------------------------------ export


def submission_points(submission):
    """Points of a submission after its late penalty, or None while a grade waits for a manual score."""
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.manual_score is None and grade.auto_score is None:
                return None
    return max(0.0, submission.score - (submission.late_submission_penalty or 0.0))


def format_points(points):
    """Points as both importers read them: a plain decimal, at most two decimals, no trailing zeros (6.5, 7)."""
    text = f"{round(points, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


NO_SUBMISSION = object()  # in LmsExport.grades, where a student submitted nothing


class LmsExport(ExportPlugin):
    """The gradebook's students with their final points per assignment, in an LMS's grade upload format.

    A student without a submission gets 0 (as in nbgrader's grades.csv; `no_submission` changes it). A grade that is
    not final (a submission waiting for a manual grade, or no submission with `no_submission = ''`) is never a blank
    cell: Canvas's upload sends a blank as "no grade" and erases the grade Canvas holds; Moodle stores a blank as 0 in
    a new grade item and erases the grade of an existing one. Each exporter says what it writes instead.
    """

    default_file = ""  # where the file goes without --to, from the course root
    lms = ""

    assignment_columns = Dict(
        {}, help="assignment -> the column name the LMS knows it by (default: the assignment's name)"
    ).tag(config=True)
    no_submission = Unicode(
        "0",
        help="the grade of a student who submitted nothing: a number (0), or '' to upload none, so that the LMS "
        "keeps the grade it has (e.g. from Canvas's missing-submission policy): such a student is left out of the "
        "Canvas file, and gets Moodle's '-' (or is left out) in the Moodle file",
    ).tag(config=True)

    @validate("no_submission")
    def _valid_no_submission(self, proposal):
        value = proposal["value"].strip()
        if value and not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value):
            raise TraitError(f"no_submission must be a number of points or '' (no grade uploaded), not {value!r}")
        return format_points(float(value)) if value else ""

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
        table = []
        for student in students:
            points = []
            for assignment in assignments:
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    points.append(NO_SUBMISSION)
                    continue
                points.append(submission_points(submission))
            table.append((student, points))
        return assignments, table

    def column(self, assignment):
        return self.assignment_columns.get(assignment.name, assignment.name)

    def cells(self, points):
        """Each cell's text, or None where no final grade is to be uploaded."""
        return [
            (self.no_submission or None) if p is NO_SUBMISSION else None if p is None else format_points(p)
            for p in points
        ]

    @staticmethod
    def not_final(student, assignments, points):
        """What keeps a student's grades from being final, e.g. "sum-instead-of-product (backprop: manual grade)"."""
        why = [
            f"{a.name}: {'no submission' if p is NO_SUBMISSION else 'manual grade to give'}"
            for a, p in zip(assignments, points)
            if p is None or p is NO_SUBMISSION
        ]
        return f"{student.id} ({', '.join(why)})"

    def export(self, gradebook):
        assignments, table = self.grades(gradebook)
        dest = self.destination()
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "w", newline="", encoding="utf-8") as f:
            written = self.write(csv.writer(f), assignments, table)
        self.log.info("Wrote the %s grades of %d students to %s", self.lms, written, dest)

    def write(self, writer, assignments, table):
        """Writes the file's rows; returns how many students it holds."""
        raise NotImplementedError


class CanvasExport(LmsExport):
    """Canvas's Gradebook import (Grades > Import): the columns of Canvas's own export.

    Student ("Last, First"), ID (the Canvas user id: the roster's lms_user_id, if any), SIS User ID (left blank: the
    course's ids are not the institution's), SIS Login ID (the roster's email), Section (blank), then one column per
    assignment, with a "Points Possible" row first. Canvas finds each row's student by ID, else by SIS Login ID (the
    login, exactly, case included: it matches only where Canvas logins are the email addresses), else by the Student
    column equal to a Canvas name or "Last, First" name; a row it cannot match waits for the instructor to pick the
    student by hand. A column named "backprop (12345)", with the Canvas assignment's id, fills that assignment; a name
    alone fills the assignment of that title, or creates it with the "Points Possible" row's maximum
    (`c.CanvasExport.assignment_columns = {"backprop": "backprop (12345)"}`).

    Canvas sets every cell of a row it reads and leaves the students not in the file untouched; a blank cell is sent
    as "no grade" and erases the grade Canvas holds. So a student is in the file only when every grade of theirs is
    final; the others are left out (Canvas keeps their grades) and named in a warning.
    """

    default_file = os.path.join("build", "lms", "canvas_grades.csv")
    lms = "Canvas"

    def write(self, writer, assignments, table):
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *map(self.column, assignments)])
        writer.writerow(["Points Possible", "", "", "", "", *(format_points(a.max_score) for a in assignments)])
        left_out, by_name_only, written = [], defaultdict(list), 0
        for student, points in table:
            cells = self.cells(points)
            if any(cell is None for cell in cells):
                left_out.append(self.not_final(student, assignments, points))
                continue
            if not student.lms_user_id:
                by_name_only[student.sortable_name or student.id].append(student)
            writer.writerow([student.sortable_name or student.id, student.lms_user_id, "", student.email, "", *cells])
            written += 1
        if left_out:
            self.log.warning(
                "Left out of the Canvas file, no final grade to upload (Canvas keeps the grade it has): %s",
                ", ".join(left_out),
            )
        no_login = [s.id for same in by_name_only.values() for s in same if not s.email]
        if no_login:
            self.log.warning(
                "No email or Canvas user id (lms_user_id) for %s: Canvas can match them by name only, or by hand",
                ", ".join(no_login),
            )
        namesakes = [
            f"{name} ({', '.join(s.id for s in same)})" for name, same in by_name_only.items() if len(same) > 1
        ]
        if namesakes:
            self.log.warning(
                "Students of the same name without lms_user_id: %s. Where Canvas logins are not the email addresses, "
                "Canvas gives every such row to the first Canvas student of that name; add lms_user_id",
                "; ".join(namesakes),
            )
        return written


class MoodleExport(LmsExport):
    """Moodle's grade import (Grades > Import > CSV file), one row per student keyed by email address.

    Columns: First name, Last name, Email address, then one per assignment. On import, map from "Email address" to
    "Email address", and each assignment column to a manual grade item created first in the gradebook with the
    assignment's maximum (22 points for backprop), not to "New grade item" (Moodle creates it with a maximum of 100)
    nor to the grade item of a Moodle activity (every imported grade, a '-' included, would override the activity's
    grade for good). Moodle stops the whole import at a row whose user it cannot find, and gives a row with a blank
    email the previous row's user, so students without an email are left out (with a warning).

    Moodle reads '-' as "no grade": into a new grade item it imports nothing, into an existing one it sets the
    student's grade there to none; a blank cell would be 0 in a new item. A student with no final grade at all is
    left out (Moodle does not touch a student who is not in the file); where a row holds final grades of other
    assignments, '-' stands in the cells that are not final.
    """

    default_file = os.path.join("build", "lms", "moodle_grades.csv")
    lms = "Moodle"

    def write(self, writer, assignments, table):
        writer.writerow(["First name", "Last name", "Email address", *map(self.column, assignments)])
        no_email, left_out, dashed, written = [], [], [], 0
        for student, points in table:
            if not student.email:
                no_email.append(student.id)
                continue
            cells = self.cells(points)
            if all(cell is None for cell in cells):
                left_out.append(self.not_final(student, assignments, points))
                continue
            if any(cell is None for cell in cells):
                dashed.append(self.not_final(student, assignments, points))
            writer.writerow([student.first_name, student.last_name, student.email, *(c or "-" for c in cells)])
            written += 1
        if no_email:
            self.log.warning("Left out of the Moodle file, no email address in the roster: %s", ", ".join(no_email))
        if left_out:
            self.log.warning(
                "Left out of the Moodle file, no final grade to upload (Moodle keeps the grade it has): %s",
                ", ".join(left_out),
            )
        if dashed:
            self.log.warning(
                "'-' (no grade) in the Moodle file where a grade is not final: %s. Into an existing grade item, "
                "Moodle sets that student's grade to none",
                ", ".join(dashed),
            )
        return written
