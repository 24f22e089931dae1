"""Collecting from nbgrader's file-system exchange only what each student really submitted, and when.

nbgrader's own collect believes a submission's folder name: `<student>+<assignment>+<timestamp>+<random>` says who
submitted it and when, and the timestamp.txt inside is written by the student. Any student who can write to the
exchange's inbound can therefore submit in a classmate's name, and date a submission as they like (a forged one dated
in the future even hides the classmate's later real submission). Its owner check only warns.

OwnedExchangeCollect (c.ExchangeFactory.collect = "grading.coordinator.exchange_collect.OwnedExchangeCollect", as
the class on JupyterHub configures it) trusts the file system instead:

- a submission counts only if its folder and everything in it belong to the Unix account of the student the name
  claims (the account that made it), and it holds no symbolic link (collecting runs as the instructor, who could
  otherwise be made to copy their own files, the gradebook or the solutions, into a submission); any other is
  refused, said as an error in collect's log (the formgrader's Collect dialog shows it), and never collected;
- its time is the latest status change (ctime) of the folder and its files, which only the kernel sets: a submission
  cannot be dated earlier than the moment the exchange last saw it change. That time picks the newest submission,
  decides whether it was before the due date, and is written to the collected copy's timestamp.txt, which the
  gradebook reads for late penalties.

Submissions are looked for where nbgrader puts them, inbound/<student>+..., and in each student's own folder of the
inbound, inbound/<student>/<student>+... (the class's hub: hub/private_submit.py), where a submission in another
student's name is refused too. Student ids are the Unix accounts' names (as on the hub).
"""

import datetime
import os
import pwd
import shutil
import stat

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from nbgrader.utils import check_mode, ignore_patterns


def account_uid(student_id):
    """The uid of the Unix account named student_id, or None."""
    try:
        return pwd.getpwnam(student_id).pw_uid
    except KeyError:
        return None


def owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _raise(error):
    raise error


def submission_problem(path, uid):
    """Why the submission folder at path cannot be the work of the account uid (None if it can). Symbolic links are
    never followed."""
    if os.path.islink(path):
        return "its folder is a symbolic link"
    entries = [path]
    try:
        for dirpath, dirnames, filenames in os.walk(path, onerror=_raise):
            entries += [os.path.join(dirpath, name) for name in dirnames + filenames]
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    for entry in entries:
        try:
            info = os.lstat(entry)
        except OSError as error:
            return f"it cannot be read ({error.strerror})"
        shown = "it" if entry == path else os.path.relpath(entry, path)
        if stat.S_ISLNK(info.st_mode):
            return f"{shown} is a symbolic link"
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            return f"{shown} is not a file or folder"
        if info.st_uid != uid:
            return f"{shown} belongs to {owner_name(info.st_uid)}"
        if not os.access(entry, os.R_OK | (os.X_OK if stat.S_ISDIR(info.st_mode) else 0)):
            return f"{shown} cannot be read"
    return None


def seen_at(path):
    """When the file system last saw the submission at path change: the latest ctime in it, as naive UTC."""
    latest = os.lstat(path).st_ctime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            latest = max(latest, os.lstat(os.path.join(dirpath, name)).st_ctime)
    return datetime.datetime.fromtimestamp(latest, datetime.UTC).replace(tzinfo=None)


class OwnedExchangeCollect(ExchangeCollect):
    """nbgrader's collect for submissions made by their students' own accounts, dated by the file system."""

    def ensure_root(self):
        """The exchange's root exists and is readable (nbgrader wants it writable by all; on the class's hub no one
        writes it)."""
        if not os.path.isdir(self.root) or not check_mode(self.root, read=True, execute=True):
            self.fail(f"The exchange {self.root} is missing or unreadable")

    def init_src(self):
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        if not check_mode(self.inbound_path, read=True, execute=True):
            self.fail(f"You don't have read permissions for the directory: {self.inbound_path}")
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
            try:
                self.duedate = gradebook.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        only = self.coursedir.student_id if self.coursedir.student_id not in ("", "*") else None
        records, self.refused = [], []
        for name, folder in self._candidates():
            parts = os.path.basename(name).rsplit("+", 3)  # student, assignment, the time claimed, a random string
            if len(parts) < 3 or parts[1] != self.coursedir.assignment_id:
                continue
            student_id = parts[0]
            if only is not None and student_id != only:
                continue
            path = os.path.join(self.inbound_path, name)
            uid = account_uid(student_id)
            problem = "no account has this student's id" if uid is None else submission_problem(path, uid)
            if problem is None and folder is not None and folder != student_id:
                problem = f"it is in {folder}'s folder"
            if problem is None:
                records.append({"username": student_id, "filename": name, "timestamp": seen_at(path)})
                continue
            self._refuse(name, problem)
        chosen = []
        for candidates in groupby(records, lambda record: record["username"]).values():
            ordered = self._sort_by_timestamp(candidates)
            if self.duedate is not None and self.before_duedate:
                ordered = [r for r in ordered if r["timestamp"] <= self.duedate] or ordered
            chosen.append(ordered[0])
        self.src_records = chosen
        self._times = {os.path.basename(record["filename"]): record["timestamp"] for record in chosen}

    def _candidates(self):
        """[(name relative to the inbound, the student folder it is in or None)] of every submission folder: in each
        student's own folder, inbound/<id>/ (the class's hub), or in the inbound itself (nbgrader's layout)."""
        found: list[tuple[str, str | None]] = []
        for entry in sorted(os.listdir(self.inbound_path)):
            path = os.path.join(self.inbound_path, entry)
            if entry.startswith("."):
                continue
            if "+" in entry:
                found.append((entry, None))
            elif os.path.isdir(path) and not os.path.islink(path):
                try:
                    inside = sorted(os.listdir(path))
                except OSError as error:
                    self.log.error("Cannot list the submissions of %s: %s", entry, error.strerror)
                    continue
                found += [(os.path.join(entry, name), entry) for name in inside if not name.startswith(".")]
        return found

    def do_copy(self, src, dest, log=None):
        """Copy a submission as nbgrader does (its size limit, ignore and include patterns), but never following a
        symbolic link (one made after the check is refused here); the copy is dated by the file system."""
        size = self.get_size(src)
        if size > 1000 * self.coursedir.max_dir_size:
            self._refuse(os.path.basename(src), f"it holds {size} bytes, more than the exchange accepts")
            return
        shutil.copytree(
            src,
            dest,
            symlinks=True,
            ignore=ignore_patterns(
                exclude=self.coursedir.ignore,
                include=self.coursedir.include,
                max_file_size=self.coursedir.max_file_size,
                log=self.log,
            ),
        )
        links = [
            os.path.join(d, n) for d, ds, fs in os.walk(dest) for n in ds + fs if os.path.islink(os.path.join(d, n))
        ]
        if links:
            shutil.rmtree(dest)
            self._refuse(os.path.basename(src), "it holds a symbolic link")
            return
        when = self._times.get(os.path.basename(src))
        if when is not None:  # the collected copy is dated by the file system, not by the student
            with open(os.path.join(dest, "timestamp.txt"), "w") as f:
                f.write(when.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC")

    def _refuse(self, name, problem):
        self.refused.append((name, problem))
        self.log.error(
            "Refused a submission in %s's name, not collected (cheating attempt?): %s. Its folder: %r",
            os.path.basename(name).rsplit("+", 3)[0],
            problem,
            name,
        )

    def copy_files(self):
        super().copy_files()
        if self.refused:
            self.log.error("%d submission(s) refused (above): not the work of the account named", len(self.refused))
