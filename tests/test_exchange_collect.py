"""Collecting from the exchange: what is checked is what is collected, whatever the student does to the folder after.

Two accounts play the students: root (who runs the tests) and nobody, so the tests need root, to own files as
nobody. Each submission is a folder inbound/<student>/<student>+backprop+<time>+<random>, as students submit on the
class's hub; the collect is the one the hub configures.
"""

import datetime
import itertools
import os
import shutil
import threading

import pytest
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory

from grading.coordinator.exchange_collect import OwnedExchangeCollect
from grading.coordinator.submission_snapshot import MAX_ENTRIES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owning files as another account needs root")
NOBODY = 65534
ANSWER = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
SUFFIX = itertools.count()


@pytest.fixture
def exchange(tmp_path):
    """(course folder, inbound folder) of an exchange with the course "course"."""
    inbound = tmp_path / "exchange" / "course" / "inbound"
    inbound.mkdir(parents=True)
    (tmp_path / "course").mkdir()
    return tmp_path / "course", inbound


def submit(inbound, student, uid, files=None):
    """A submission folder of student's, owned by uid, holding files (name -> bytes)."""
    folder = inbound / student / f"{student}+backprop+2026-12-01 10:00:00.000000 UTC+r{next(SUFFIX)}"
    folder.mkdir(parents=True)
    for name, content in (files or {"backprop.ipynb": ANSWER}).items():
        (folder / name).write_bytes(content)
    for path in [folder.parent, folder, *folder.rglob("*")]:
        os.lchown(path, uid, uid)
    return folder


MADE = []  # the collects made by a test, whose snapshots a test that stops between steps leaves behind


@pytest.fixture(autouse=True)
def snapshots_removed():
    yield
    while MADE:
        shutil.rmtree(getattr(MADE.pop(), "_staging", None) or "/nonexistent", ignore_errors=True)


def collector(course, inbound):
    coursedir = CourseDirectory(root=str(course), course_id="course", assignment_id="backprop")
    made = OwnedExchangeCollect(coursedir=coursedir, authenticator=Authenticator(), root=str(inbound.parent.parent))
    MADE.append(made)
    return made


def collected(course, student):
    folder = course / "submitted" / student / "backprop"
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


def test_a_folder_swapped_for_a_link_after_the_check_is_collected_as_it_was_checked(exchange, tmp_path):
    course, inbound = exchange
    secret = tmp_path / "solutions"
    secret.mkdir()
    (secret / "backprop.ipynb").write_bytes(b"the solutions")
    folder = submit(inbound, "root", 0)
    collect = collector(course, inbound)
    collect.init_src()  # checked, and dated
    shutil.move(folder, tmp_path / "kept")
    folder.symlink_to(secret)  # then swapped before the copy
    collect.init_dest()
    collect.copy_files()
    assert collected(course, "root")["backprop.ipynb"] == ANSWER


def test_work_changed_after_the_check_is_not_collected_nor_dated_before_it(exchange):
    course, inbound = exchange
    folder = submit(inbound, "root", 0)
    collect = collector(course, inbound)
    collect.init_src()
    checked_at = collect._times[folder.name]
    (folder / "backprop.ipynb").write_bytes(b"finished after the due date")
    edited_at = datetime.datetime.fromtimestamp((folder / "backprop.ipynb").stat().st_ctime, datetime.UTC)
    collect.init_dest()
    collect.copy_files()
    files = collected(course, "root")
    assert files["backprop.ipynb"] == ANSWER
    assert files["timestamp.txt"].decode() == checked_at.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"
    assert checked_at <= edited_at.replace(tzinfo=None)


def test_a_pipe_a_link_or_anothers_file_is_refused_and_the_class_is_still_collected(exchange, tmp_path):
    course, inbound = exchange
    piped = submit(inbound, "nobody", NOBODY)
    os.mkfifo(piped / "data.txt")
    os.lchown(piped / "data.txt", NOBODY, NOBODY)
    submit(inbound, "root", 0)
    collect = collector(course, inbound)
    done = threading.Thread(target=collect.start, daemon=True)
    done.start()
    done.join(60)
    assert not done.is_alive(), "collect waited on a pipe"
    assert [problem for _, problem in collect.refused] == ["data.txt is not a file or folder"]
    assert collected(course, "nobody") is None and collected(course, "root")["backprop.ipynb"] == ANSWER

    linked = submit(inbound, "nobody", NOBODY)
    (linked / "backprop.ipynb").unlink()
    (linked / "backprop.ipynb").symlink_to(tmp_path / "course" / "gradebook.db")
    os.lchown(linked / "backprop.ipynb", NOBODY, NOBODY)
    owned = submit(inbound, "nobody", NOBODY)
    os.chown(owned / "backprop.ipynb", 0, 0)
    collect = collector(course, inbound)
    collect.start()
    assert sorted(problem for _, problem in collect.refused) == [
        "backprop.ipynb belongs to root",
        "backprop.ipynb is a symbolic link",
        "data.txt is not a file or folder",
    ]
    assert collected(course, "nobody") is None


def test_a_submission_of_too_many_files_is_refused_alone(exchange):
    course, inbound = exchange
    submit(inbound, "nobody", NOBODY, {f"f{i}": b"" for i in range(MAX_ENTRIES + 1)})
    submit(inbound, "root", 0)
    collect = collector(course, inbound)
    collect.start()
    assert [problem for _, problem in collect.refused] == [f"it holds more than {MAX_ENTRIES} files and folders"]
    assert collected(course, "root")["backprop.ipynb"] == ANSWER


def test_files_that_vanish_or_change_while_collecting_never_stop_the_class(exchange):
    course, inbound = exchange
    churned = submit(inbound, "nobody", NOBODY, {f"f{i}": b"x" * 1000 for i in range(300)})
    submit(inbound, "root", 0)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            for i in range(300):
                path = churned / f"f{i}"
                try:
                    path.unlink()
                    path.write_bytes(b"y" * 1000)
                    os.chown(path, NOBODY, NOBODY)
                except OSError:
                    pass

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    try:
        for _ in range(5):
            collect = collector(course, inbound)
            collect.start()  # raises nothing
            assert collected(course, "root")["backprop.ipynb"] == ANSWER
    finally:
        stop.set()
        churner.join()
