"""Submitting to nbgrader's file-system exchange into a folder no other student can read or write.

nbgrader's own submit leaves each submission folder in the exchange's inbound open to all (mode 0777, its files
0644): whoever learns a folder's name can read it or put files in it. PrivateSubmit (the students' c.ExchangeFactory
.submit on the class's hub, which installs this file in the students' runtime as the module hub_private_submit)
copies the submission into a private folder first (0700, named at random, inside the inbound), gives its folders mode
0750 and its files 0640, then renames it to the name nbgrader gives it. The inbound is setgid to the instructor's
group, so the instructor reads the submission through its group; other students never can, not even while it is
being copied. The instructor's collect (grading/coordinator/exchange_collect.py) counts it as the work of the account
that owns it, at the time the file system saw it.
"""

import os
import secrets
import shutil
import stat

from nbgrader.exchange.default.submit import ExchangeSubmit

FOLDER_MODE = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP  # 0750
FILE_MODE = stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP  # 0640


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with the submission readable by its student and the instructor's group only."""

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
