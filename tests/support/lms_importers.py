"""Canvas's and Moodle's importers, as far as the course's LMS files meet them: each rule is written from the
importer's own code, named by project and file beside it, so that tests/test_lms.py can read the course's files the
way the LMS will. Only what decides which grade each student ends with is modelled (no permissions, grading
periods, custom columns, scales or feedback).

Canvas (github.com/instructure/canvas-lms):
- lib/content_zipper.rb: the file names of the "Download Submissions" zip;
- app/models/attachment.rb (Attachment.make_unique_filename): "-1" ... of a file uploaded under a name taken;
- app/models/gradebook_importer.rb: how Grades > Import reads the CSV (header, "Points Possible" row, students,
  cells), app/models/assignment.rb (Assignment.title_and_id): "title (id)" columns;
- ui/features/gradebook_uploads/jquery/process_gradebook_upload.js: what the upload then sends for each cell.

Moodle (github.com/moodle/moodle):
- lib/csvlib.class.php (csv_import_reader::load_csv_content): how the file is split into rows;
- grade/import/csv/classes/load_data.php: how each row and cell is read, per column mapping;
- grade/import/lib.php (grade_import_commit), lib/grade/grade_item.php (update_final_grade, bounded_grade,
  the constructor's default maximum) and lib/dml/*_native_moodle_database.php (normalise_value): what is stored.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field

# ============================================================================================== Canvas's zip


def _ruby_word_character(ch):
    """Ruby's [[:word:]]: a letter, mark, decimal digit or connector punctuation (the underscore)."""
    return unicodedata.category(ch)[0] in "LM" or unicodedata.category(ch) in ("Nd", "Pc")


def canvas_zip_name(sortable_name, user_id, file_id, display_name, *, late=False, anonymous_id=None):
    """A file's name in Canvas's "Download Submissions" zip (lib/content_zipper.rb).

    get_filename joins the user's name (left out under anonymous grading), "LATE" for a late submission and the
    user id (or "anon_<anonymous id>") with "_", then keeps word characters only (sanitize_file_name); the name was
    lowercased with each "_<digits>_" reduced to its digits first (sanitize_user_name). add_upload_submission
    appends "_<attachment id>_" and the display name, its characters \\x00 / \\ : * ? " < > | replaced by "_"
    (sanitize_attachment_filename).
    """
    users_name = None if anonymous_id else re.sub(r"_([0-9]+)_", r"\1", sortable_name).lower()
    identity = f"anon_{anonymous_id}" if anonymous_id else str(user_id)
    parts = [part for part in (users_name, "LATE" if late else None, identity) if part is not None]
    filename = "".join(ch for ch in "_".join(parts) if _ruby_word_character(ch))
    uploaded = re.sub(r'[\x00/\\:*?"<>|]+', "_", display_name)
    return f"{filename}_{file_id}_{uploaded}"


def canvas_unique_name(filename, taken, attempts=1):
    """The name Canvas gives a file uploaded under a name the student's folder already has
    (app/models/attachment.rb, Attachment.make_unique_filename): "-1" ... "-7" before the extension, then a uuid."""
    if attempts <= 1 and filename not in taken:
        return filename
    match = re.search(r"(\.[A-Za-z][A-Za-z0-9]*)*(\.[A-Za-z0-9]*)$", filename)
    extension = match.group(0) if match else ""
    base = filename[: len(filename) - len(extension)] if extension else filename
    fallback = f"{base}-{uuid.uuid4()}{extension}"
    if attempts >= 8:
        return fallback
    addition = attempts or 1
    while f"{base}-{addition}{extension}" in taken:
        addition += 1
        if addition >= 8:
            return fallback
    return f"{base}-{addition}{extension}"


# ======================================================================================== Canvas's importer


class InvalidHeaderRow(Exception):
    """Canvas refuses the file: "Invalid header row" (gradebook_importer.rb, process_header)."""


def _ruby_csv_line(line, sep):
    """One line as Ruby's CSV parses it: an unquoted empty field is nil (None), a quoted one "" (a str)."""
    fields, value, quoted, in_quotes, i = [], "", False, False, 0
    while i < len(line):
        ch = line[i]
        if in_quotes:
            if ch == '"' and line[i + 1 : i + 2] == '"':
                value, i = value + '"', i + 2
                continue
            if ch == '"':
                in_quotes = False
            else:
                value += ch
        elif ch == '"' and not value:
            in_quotes = quoted = True
        elif ch == sep:
            fields.append(value if quoted or value else None)
            value, quoted = "", False
        else:
            value += ch
        i += 1
    if in_quotes:
        raise ValueError("malformed CSV")  # CSV::MalformedCSVError
    fields.append(value if quoted or value else None)
    return fields


def _decimal_comma_to_period(value):
    """gradebook_importer.rb's converter: a number written with "," or "." ("6,5", "1.234,5") becomes "6.5"."""
    if value is None or not re.fullmatch(r"-?[0-9.,]+%?", value):
        return value
    parts = re.split(r"[,.]", value)
    while parts and parts[-1] == "":  # Ruby's String#split drops trailing empty fields
        parts.pop()
    last = parts.pop() if parts else ""
    return f"{''.join(parts)}.{last}" if parts else last


def canvas_csv_rows(text):
    """The rows Canvas reads (gradebook_importer.rb, csv_stream): ";" or "," as the first three lines say
    (identify_delimiter), lines of only separators and spaces skipped, numbers normalised."""
    lines = [line for line in re.split(r"\r\n|\n|\r", text.removesuffix("\n").removesuffix("\r"))]
    counts = {}
    for sep in ";,":
        try:
            sizes = [len(_ruby_csv_line(line, sep)) if line else 0 for line in lines[:3]]
        except ValueError:
            sizes = []
        counts[sep] = sizes[0] if sizes and len(set(sizes)) == 1 else 0
    sep = ";" if counts[";"] > counts[","] else ","
    rows = []
    for line in lines:
        if re.fullmatch(r"[;, ]+", line):
            continue
        rows.append([_decimal_comma_to_period(v) for v in _ruby_csv_line(line, sep)] if line else [])
    return rows


@dataclass
class CanvasUser:
    """A student of the Canvas course, with their login (pseudonym's unique_id) and SIS user id."""

    id: int
    name: str
    sortable_name: str
    login: str = ""
    sis_user_id: str = ""


@dataclass
class CanvasAssignment:
    id: int  # negative: created by the upload
    title: str
    points_possible: str | float | None = None


@dataclass
class CanvasCourse:
    """What Canvas holds before the upload: students, assignments, scores ("EX" for excused)."""

    users: list[CanvasUser]
    assignments: list[CanvasAssignment]
    scores: dict[tuple[int, int], float | str | None] = field(default_factory=dict)  # (user, assignment) -> score


@dataclass
class CanvasImport:
    """What one upload of the file does."""

    assignments: list[CanvasAssignment]  # the file's assignment columns, in order (new ones: negative ids)
    points: dict[int, str]  # assignment id -> the "Points Possible" row's cell (a new assignment's maximum)
    matched: dict[int, tuple[CanvasUser, str]]  # row number -> (student, the column that matched them)
    unmatched: list[str]  # Student column of rows Canvas cannot match: the instructor picks the student by hand
    sent: dict[tuple[int, int], dict]  # (user, assignment) -> what the upload sends: {"posted_grade": ...}
    scores: dict[tuple[int, int], float | str | None]  # the course's scores after the upload


NON_ASSIGNMENT_COLUMNS = re.compile(
    "Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|Override Score|"
    "Override Grade|Override Status"
)


def _cell(row, i):
    return row[i] if i < len(row) else None


def _header(row):
    """gradebook_importer.rb (header?, row_has_student_headers?, update_column_count): how many student columns
    come first, and where the SIS User ID and SIS Login ID columns are."""
    if not (len(row) > 3 and "Student" in (row[0] or "") and "ID" in (row[1] or "")):
        raise InvalidHeaderRow(row)  # LastName/FirstName headers need an account setting
    columns, sis_user, sis_login = 3, None, None
    if re.search(r"SIS\s+Login\s+ID", row[2] or ""):
        sis_login, columns = 2, 4
    elif re.search(r"SIS\s+User\s+ID", row[2] or "") and re.search(r"SIS\s+Login\s+ID", row[3] or ""):
        integration = 1 if re.search(r"Integration\s+ID", _cell(row, 4) or "") else 0
        sis_user, sis_login, columns = 2, 3, 5 + integration
        if re.search(r"Root\s+Account", _cell(row, 4 + integration) or ""):
            columns += 1
    if "Section" not in (_cell(row, columns - 1) or ""):
        raise InvalidHeaderRow(row)
    return columns, sis_user, sis_login


def _title_and_id(text):
    """app/models/assignment.rb, Assignment.title_and_id: "backprop (4711)" -> ("backprop", 4711)."""
    match = re.fullmatch(r"(.*)\s\(([0-9]+)\)", text or "")
    return (match[1], int(match[2])) if match else (text, None)


def _ruby_to_i(text):
    match = re.match(r"\s*[-+]?[0-9]+", text or "")
    return int(match[0]) if match else 0


def _ruby_float_to_s(score):
    return "EX" if score == "EX" else "" if score is None else repr(float(score))


def _no_score(value):
    return value is None or value.strip() == "" or value == "-"


def _no_change(new, current):
    """gradebook_importer.rb, no_change_to_value?: equal, both without a score, or equal to two decimals."""
    if new == current or (_no_score(current) and _no_score(new)):
        return True
    if _no_score(current) or _no_score(new) or "EX" in (str(new).upper(), str(current).upper()):
        return False
    try:
        return f"{float(current):.2f}" == f"{float(new):.2f}"
    except ValueError:
        return False


def canvas_import(text, course):
    """Grades > Import of `text` into `course`: gradebook_importer.rb's parse!, then the upload page's
    process_gradebook_upload.js (a cell is sent when it differs from Canvas's grade, as a string: a blank cell as
    posted_grade null, which removes the grade; "EX" as excused)."""
    rows = canvas_csv_rows(text)
    header = rows[0]
    student_columns, sis_user, sis_login = _header(header)
    stripped = [h for h in header[student_columns:] if not NON_ASSIGNMENT_COLUMNS.search(h or "")]
    assignments, index, new_id = [], {}, -1
    for name in stripped:
        title, wanted = _title_and_id(name)
        found = next((a for a in course.assignments if wanted is not None and a.id == wanted), None)
        found = found or next((a for a in course.assignments if a.title == name), None)
        if found is None:
            found, new_id = CanvasAssignment(new_id, title or name), new_id - 1
        assignments.append(found)
        index[found.id] = header.index(name)
    points = {}
    matched, unmatched, grades = {}, [], {}
    for number, row in enumerate(rows[1:], start=1):
        if row and "Points Possible" in (row[0] or ""):
            points.update({a.id: _cell(row, index[a.id]) for a in assignments if _cell(row, index[a.id]) is not None})
            continue
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", cell, re.IGNORECASE) for cell in row if cell):
            continue  # a muted-assignments row, not a student
        student, how = None, ""
        if (row[1] or "").strip():
            student, how = next((u for u in course.users if u.id == _ruby_to_i(row[1])), None), "ID"
        if student is None and sis_user is not None and (row[sis_user] or "").strip():
            student, how = next((u for u in course.users if u.sis_user_id == row[sis_user]), None), "SIS User ID"
        if student is None and sis_login is not None and (row[sis_login] or "").strip():
            student, how = next((u for u in course.users if u.login == row[sis_login]), None), "SIS Login ID"
        if student is None:
            name = row[0]
            student, how = next((u for u in course.users if name in (u.name, u.sortable_name)), None), "Student"
        if student is None:
            unmatched.append(row[0] or "")
            continue
        matched[number] = (student, how)
        for a in assignments:
            cell = _cell(row, index[a.id])
            grades[(student.id, a.id)] = cell.strip() if cell is not None else None
    for a in assignments:
        if a.id < 0:
            a.points_possible = points.get(a.id)  # createIndividualAssignment's points_possible
    original = {
        key: _ruby_float_to_s(course.scores[key]) if key in course.scores else None for key in grades
    }  # the submission's score to_s, nil without a submission
    if not unmatched:  # "weed out assignments with no changes"
        unchanged = {
            a.id for a in assignments if all(_no_change(g, original[k]) for k, g in grades.items() if k[1] == a.id)
        }
        grades = {k: g for k, g in grades.items() if k[1] not in unchanged}
    sent, scores = {}, dict(course.scores)
    for key, grade in grades.items():
        if grade == original[key]:
            continue  # process_gradebook_upload.js: "no change"
        if str(grade or "").upper() in ("EX", "EXCUSED"):
            sent[key], scores[key] = {"excuse": True}, "EX"
        else:
            sent[key] = {"posted_grade": grade}
            scores[key] = None if grade is None or grade == "" else float(grade)
    return CanvasImport(assignments, points, matched, unmatched, sent, scores)


# ======================================================================================== Moodle's importer


class MoodleImportError(Exception):
    """Moodle stops the import and imports nothing (the string id of its message)."""


def moodle_csv_rows(text, delimiter=","):
    """csv_import_reader::load_csv_content (lib/csvlib.class.php): BOM and surrounding blank lines dropped, empty
    lines skipped, and every row must have as many fields as the header ("csvweirdcolumns")."""
    content = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").strip()
    rows = [_ruby_csv_line(line, delimiter) for line in content.split("\n") if line != ""]
    rows = [[value or "" for value in row] for row in rows]  # PHP's fgetcsv gives "" for an empty field
    if not rows:
        raise MoodleImportError("csvemptyfile")
    if any(len(row) != len(rows[0]) for row in rows):
        raise MoodleImportError("csvweirdcolumns")
    return rows


@dataclass
class MoodleItem:
    """A grade item of the Moodle course: manual (Gradebook setup > Add grade item) or an activity's ("mod")."""

    id: int
    name: str
    grademax: float = 100.0  # grade_item's default, $CFG->gradepointdefault
    grademin: float = 0.0
    itemtype: str = "manual"
    grades: dict[int, float | None] = field(default_factory=dict)  # user id -> final grade (None: no grade)
    overridden: set[int] = field(default_factory=set)  # users whose grade no longer follows the activity's


def _unformat_float(value):
    """unformat_float($value, true): a number with "." as decimal point, else false ("badgrade")."""
    try:
        return float(value) if re.fullmatch(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)\s*", value) else None
    except ValueError:
        return None


def moodle_import(text, *, users, map_from, mapping, items, map_to="useremail", gradepointmax=100.0):
    """Grades > Import > CSV file of `text`: gradeimport_csv_load_data::prepare_import_grade_data (load_data.php)
    with the columns mapped as on the import page (`map_from` column to `map_to`; `mapping`: column name ->
    "new", an item id, or 0 to ignore), then grade_import_commit (grade/import/lib.php). Returns the items, the
    ones the import creates last. `users`: the value of the mapped user field -> Moodle user id."""
    rows = moodle_csv_rows(text)
    header = [h.strip() for h in rows[0]]
    columns = {i: mapping.get(name, 0) for i, name in enumerate(header)}
    columns[header.index(map_from)] = map_to
    targets = [t for t in columns.values() if t not in (0, "0")]
    if len(targets) != len(set(targets)):
        raise MoodleImportError("cannotmapfield")
    items = {item.id: item for item in items}
    new_items, buffered = {}, []
    student = None  # not reset between rows: a row with an empty user field keeps the previous row's user
    for line in rows[1:]:
        if len(line) <= 1:
            continue
        grades = []
        for key, raw in enumerate(line):
            value, target = raw.strip(), columns[key]
            kind = str(target).split("_")[0]
            if kind in ("userid", "useridnumber", "useremail", "username"):
                if value not in ("", "0"):  # PHP's empty()
                    if value not in users:
                        raise MoodleImportError("usermappingerror")  # the whole import stops
                    student = users[value]
            elif kind == "new":
                if key not in new_items:
                    new_items[key] = MoodleItem(-1 - len(new_items), header[key])
                if value != "-":  # import_new_grade_item: '-' gives no grade
                    grades.append((new_items[key], value))
            elif kind == "feedback" or target in (0, "0"):
                continue
            else:  # update_grade_item: '' and '-' are "no grade", anything else a number
                if value in ("", "-"):
                    grades.append((items[int(target)], None))
                else:
                    number = _unformat_float(value)
                    if number is None:
                        raise MoodleImportError("badgrade")
                    grades.append((items[int(target)], number))
        if student is None:
            raise MoodleImportError("usermappingerrorusernotfound")
        for item, grade in grades:  # insert_grade_record
            if grade not in (None, "") and float(grade) > gradepointmax:
                raise MoodleImportError("gradevaluetoobig")
            buffered.append((item, student, grade))
    for item, user, grade in buffered:  # grade_import_commit -> grade_item::update_final_grade
        if grade == "":
            grade = 0.0  # the buffer table's numeric finalgrade column stores '' as 0 (normalise_value)
        if item.itemtype != "manual":
            item.overridden.add(user)  # is_overridable_item: an activity's grade becomes an override
        item.grades[user] = None if grade is None else min(max(float(grade), item.grademin), item.grademax)
    return [*items.values(), *new_items.values()]
