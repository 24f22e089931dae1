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
- what is checked is what is collected: the folder is copied once, as it is checked, through file descriptors opened
  without following links (grading/coordinator/submission_snapshot.py), and the collected copy is made from that
  snapshot, never from the student's folder again, which its student could meanwhile swap for a link or change;
- its time is the latest status change (ctime) of the folder and its files as the snapshot read them, which only the
  kernel sets: a submission cannot be dated earlier than the moment the exchange last saw it change. That time
  picks the newest submission, decides whether it was before the due date, and is written to the collected copy's
  timestamp.txt, which the gradebook reads for late penalties.

Submissions are looked for where nbgrader puts them, inbound/<student>+..., and in each student's own folder of the
inbound, inbound/<student>/<student>+... (the class's hub: hub/private_submit.py), where a submission in another
student's name is refused too. Student ids are the Unix accounts' names (as on the hub). A submission that cannot be
read, or that changes under the copy in a way it cannot be, is refused with why; the others are collected.
"""

import datetime
import os
import pwd
import shutil
import tempfile

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from nbgrader.utils import check_mode

from .submission_snapshot import CopyRules, Refused, take_snapshot


def account_uid(student_id):
    """The uid of the Unix account named student_id, or None."""
    try:
        return pwd.getpwnam(student_id).pw_uid
    except KeyError:
        return None


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
        self._snapshots: dict[str, str] = {}  # a submission folder's name -> the snapshot taken of it
        self._staging = tempfile.mkdtemp(prefix="collect-")  # the instructor's own, mode 0700
        rules = CopyRules(
            tuple(self.coursedir.ignore),
            tuple(self.coursedir.include),
            self.coursedir.max_file_size,
            self.coursedir.max_dir_size,
        )
        for name, folder in self._candidates():
            parts = os.path.basename(name).rsplit("+", 3)  # student, assignment, the time claimed, a random string
            if len(parts) < 3 or parts[1] != self.coursedir.assignment_id:
                continue
            student_id = parts[0]
            if only is not None and student_id != only:
                continue
            uid = account_uid(student_id)
            if uid is None:
                self._refuse(name, "no account has this student's id")
                continue
            if folder is not None and folder != student_id:
                self._refuse(name, f"it is in {folder}'s folder")
                continue
            copy = os.path.join(self._staging, str(len(self._snapshots)))
            try:  # what is checked is what is collected: one copy, through descriptors, at this moment
                taken = take_snapshot(os.path.join(self.inbound_path, name), uid, copy, rules)
            except (Refused, OSError) as problem:
                shutil.rmtree(copy, ignore_errors=True)
                self._refuse(name, str(problem) if isinstance(problem, Refused) else f"it cannot be read ({problem})")
                continue
            for left_out in taken.left_out:
                self.log.warning("Left out of %s's submission %r: %s", student_id, name, left_out)
            self._snapshots[os.path.basename(name)] = copy
            when = datetime.datetime.fromtimestamp(taken.ctime, datetime.UTC).replace(tzinfo=None)
            records.append({"username": student_id, "filename": name, "timestamp": when})
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
        """Copy the snapshot taken of the submission at src (never src itself, which its student may have changed
        since), dated by the file system."""
        shutil.copytree(self._snapshots[os.path.basename(src)], dest)
        when = self._times.get(os.path.basename(src))
        if when is not None:  # the collected copy is dated by the file system, not by the student
            with open(os.path.join(dest, "timestamp.txt"), "w") as f:
                f.write(when.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC")

    def start(self):
        try:
            super().start()
        finally:
            if getattr(self, "_staging", None):
                shutil.rmtree(self._staging, ignore_errors=True)

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
