"""Submitting to nbgrader's file-system exchange into a folder no other student can read or write.

nbgrader's own submit puts every submission into the exchange's one inbound folder, which all students can write,
each submission open to all (mode 0777, its files 0644): whoever learns a folder's name can read it or put files in
it, and one student can fill the inbound for all. On the class's hub the inbound holds a folder per student,
inbound/<id>, theirs alone (setgid to the instructor's group, 2750), on the student's own disk where the hub could
make one (hub/student_disks.py); no student can write the inbound itself. PrivateSubmit (the students'
c.ExchangeFactory.submit, which hub/setup_hub.py installs in the students' runtime as the module hub_private_submit)
submits into that folder: it copies the submission into a private folder first (0700, named at random), gives its
folders mode 0750 and its files 0640, then renames it to the name nbgrader gives it. The instructor reads it through
the group; other students never can, not even while it is being copied. The instructor's collect
(grading/coordinator/exchange_collect.py) counts it as the work of the account that owns it, at the time the file
system saw it.

nbgrader also wants the exchange's root writable by all (1777), where any student could fill the disk under it; on the
hub no account writes it (root's, 0755). The exchange's other steps here (the students' fetch, fetch feedback and
list; the instructor's release, release feedback and list, in the settings of each role) are nbgrader's own with
that check only: the root must exist and be readable.
"""

import base64
import os
import secrets
import shutil
import stat

from nbgrader.exchange.default.fetch_assignment import ExchangeFetchAssignment
from nbgrader.exchange.default.fetch_feedback import ExchangeFetchFeedback
from nbgrader.exchange.default.list import ExchangeList
from nbgrader.exchange.default.release_assignment import ExchangeReleaseAssignment
from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback
from nbgrader.exchange.default.submit import ExchangeSubmit
from nbgrader.utils import check_mode, get_username

FOLDER_MODE = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP  # 0750
FILE_MODE = stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP  # 0640


class ReadOnlyRoot:
    """An exchange step for a root that no one writes: nbgrader's check that it is writable by the account (or its
    release step's change of its mode to 0777) becomes a check that it is there and readable."""

    def ensure_root(self):
        if not os.path.isdir(self.root) or not check_mode(self.root, read=True, execute=True):
            self.fail(f"The exchange {self.root} is missing or unreadable; please contact your instructor")


class FetchAssignment(ReadOnlyRoot, ExchangeFetchAssignment):
    pass


class FetchFeedback(ReadOnlyRoot, ExchangeFetchFeedback):
    pass


class List(ReadOnlyRoot, ExchangeList):
    pass


class ReleaseAssignment(ReadOnlyRoot, ExchangeReleaseAssignment):
    pass


class ReleaseFeedback(ReadOnlyRoot, ExchangeReleaseFeedback):
    pass


class PrivateSubmit(ReadOnlyRoot, ExchangeSubmit):
    """nbgrader's submit, into the student's own folder of the inbound, readable by the student and the instructor's
    group only."""

    def init_dest(self):
        """nbgrader's init_dest, with the student's own folder of the inbound as the destination (nbgrader's checks
        the inbound itself, which only the instructor can write)."""
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        if not self.authenticator.has_access(self.coursedir.student_id, self.coursedir.course_id):
            self.fail("You do not have access to this course.")
        student_id = get_username()
        if self.coursedir.student_id not in ("*", student_id):
            self.fail(f"A submission is made in one's own name ({student_id}), not {self.coursedir.student_id}")
        self.inbound_path = os.path.join(self.root, self.coursedir.course_id, "inbound", student_id)
        if not os.path.isdir(self.inbound_path) or not check_mode(self.inbound_path, write=True, execute=True):
            self.fail(f"Your folder of the exchange is missing or not yours: {self.inbound_path}; ask your instructor")
        self.cache_path = os.path.join(self.cache, self.coursedir.course_id)
        self.assignment_filename = f"{student_id}+{self.coursedir.assignment_id}+{self.timestamp}"
        if self.add_random_string:
            self.assignment_filename += "+" + base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")

    def copy_files(self):
        self.init_release()
        submission_secret = secrets.token_hex(64)
        dest_path = os.path.join(self.inbound_path, self.assignment_filename)
        if self.add_random_string:
            cache_path = os.path.join(self.cache_path, self.assignment_filename.rsplit("+", 1)[0])
        else:
            cache_path = os.path.join(self.cache_path, self.assignment_filename)
        self.log.info(f"Source: {self.src_path}")
        self.log.info(f"Destination: {dest_path}")
        self.check_filename_diff()
        staging = os.path.join(self.inbound_path, "." + secrets.token_urlsafe(24))
        os.mkdir(staging, 0o700)  # and setgid, as the inbound is: what is made in it is the instructor's group's
        try:
            fresh = os.path.join(staging, self.assignment_filename)
            self.do_copy(self.src_path, fresh)
            # written where the inbound's group is still inherited (copying cleared the setgid bit of fresh), then
            # moved in, so that the instructor's group can read them too
            for name, text in (("timestamp.txt", self.timestamp), ("submission_secret.txt", submission_secret)):
                with open(os.path.join(staging, name), "w") as fh:
                    fh.write(text)
                os.rename(os.path.join(staging, name), os.path.join(fresh, name))
            self.set_perms(fresh, fileperms=FILE_MODE, dirperms=FOLDER_MODE)
            os.rename(fresh, dest_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # the student's own copy, from which Fetch Feedback finds the feedback's name
        if not os.path.isdir(self.cache_path):
            os.makedirs(self.cache_path)
        self.do_copy(self.src_path, cache_path)
        with open(os.path.join(cache_path, "timestamp.txt"), "w") as fh:
            fh.write(self.timestamp)
        with open(os.path.join(cache_path, "submission_secret.txt"), "w") as fh:
            fh.write(submission_secret)
        self.log.info(f"Submitted as: {self.coursedir.course_id} {self.coursedir.assignment_id} {self.timestamp}")
