"""The class on JupyterHub (`make hub`), in Chromium: every step through the browser, as each person would.

A fresh class is set up as `make hub` does it (hub/setup_hub.py: runtime, Unix accounts, the instructor's course
directory, nbgrader's exchange) for an instructor and two students, and served by JupyterHub on loopback ports.
The instructor releases `backprop` from the formgrader. Ada and Cara log in (browser contexts of their own), fetch it
from the Assignments tab, answer (the answers are written into their fetched notebook, as the student's own file),
press Validate and Submit: Ada answers correctly before the due date, which the instructor then sets in the
formgrader; Cara gets Question 1a wrong and submits after it. The instructor collects, autogrades in the sandbox,
scores Question 6 by hand, generates and releases feedback; each student fetches their own feedback and reads their
score and messages. Each person logs in with their own password: no student gets in as a classmate. Before the
collect, Cara forges a submission in Ada's name dated in the future and tries Ada's real submission folder: she can
neither read nor write it, and the collect refuses the forgery and says so; Ada's submission and feedback are hers.
Each step is a module fixture made after the steps it needs, so that the tests pass in any order. From the students'
accounts: nothing of the other students or of the instructor's course is readable, no hidden check or solution is
readable anywhere the class's accounts reach, the students' servers run on nothing from the checkout, and a student
who exceeds a limit (processes, memory per process or per server, file size, her disk) fails alone while the other's
server keeps working. Each user's server is on an origin of its own (http://<user>.localhost:<port>): a page Cara's
server serves, opened in the instructor's browser, can neither read nor drive the instructor's server. A student's
busy loops get her CPU quota and no more; her /tmp, /var/tmp and /dev/shm are her own, /tmp on her disk, /dev/shm
bounded and gone when her server stops. Screenshots: build/screenshots/hub-*.png.
"""

import contextlib
import datetime
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.utils import notebook_hash
from traitlets.config.loader import PyFileConfigLoader

from grading.checks.backprop_questions import AUTOGRADED, POINTS, TOTAL_POINTS
from grading.course_kit.demo_class import MISTAKES
from grading.course_kit.submissions import ASSIGNMENT, ROOT, build_submission, solution_answers
from hub import server_cgroups, setup_hub
from support.hub_class import INSTRUCTOR, SERVER_MEMORY, STUDENT_SHM, Student, running_class
from support.lab_browser import chromium

pytestmark = [pytest.mark.hub, pytest.mark.slow]

SCREENSHOTS = ROOT / "build" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
ADA = Student("hubtest-ada", "Ada", "Lovelace")  # correct answers, submitted before the due date
CARA = Student("hubtest-cara", "Cara", "Sum")  # F = c + s in Question 1a, submitted after the due date
STUDENTS = (ADA, CARA)
WRONG_1A = {k: v.strip() for k, v in MISTAKES["sum-instead-of-product"].items()}
WRONG_1A_MESSAGE = "✗ F does not equal c multiplied by s (F = c * s, the product, not the sum)."
QUESTION_6 = {
    ADA.id: (2.0, "Clear: one pass per input against one pass per output."),
    CARA.id: (1.0, "Say why: count the passes each mode needs."),
}
MAX_SCORE = float(TOTAL_POINTS)
FORGED_SECRET = "chosen-by-the-forger"


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"hub-{name}.png"), animations="disabled")  # dialogs fully shown


def menu(page, top, item):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def configured_late_penalty(course_dir=ROOT):
    """c.LateSubmissionPlugin.penalty_method of the course's nbgrader_config.py ("none" unless it says)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    return config.LateSubmissionPlugin.get("penalty_method", "none")


# ---------------------------------------------------------------------------------------------------------------
# fixtures: the class, the browser, one logged-in browser context per person


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the hub tests run as root: JupyterHub starts each user's server as their own Unix account")
    unprivileged = subprocess.run(
        ["runuser", "-u", "nobody", "--", "bwrap", "--ro-bind", "/", "/", "true"], capture_output=True, text=True
    )
    if unprivileged.returncode != 0:  # the instructor's account could not start the grading sandbox
        pytest.skip(
            f"this machine forbids unprivileged user namespaces (bwrap as nobody: {unprivileged.stderr.strip()})"
        )
    with running_class(STUDENTS, tmp_path_factory.mktemp("hub-logs")) as hub:
        yield hub


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def sessions(hub, browser):
    """{user: page} of the instructor and the students, each logged in in a context of their own, in JupyterLab.
    All three log in before any waits, so that the hub starts their servers side by side."""
    pages, contexts = {}, []
    try:
        for number, user in enumerate([INSTRUCTOR, ADA.id, CARA.id]):
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(90_000)
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", user)
            page.fill("#password_input", hub.password(user))
            if number == 0:
                screenshot(page, "01-login")
            page.click("#login_submit")
            pages[user] = page
        for user, page in pages.items():
            page.wait_for_url(f"**/user/{user}/lab**", timeout=300_000)
            assert page.url.startswith(hub.user_url(user) + "/lab"), page.url  # each on the origin of their own
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
        yield pages
    except Exception as error:
        raise RuntimeError(f"{error}\nJupyterHub's log:\n{hub.log_tail()}") from error
    finally:
        for context in contexts:
            context.close()


# ---------------------------------------------------------------------------------------------------------------
# the formgrader (its own browser tab: JupyterHub 4.1 and later forbid showing it inside JupyterLab's frame)


def formgrader(page, hub, path=""):
    page.goto(f"{hub.user_url(INSTRUCTOR)}/formgrader{path}")


def assignment_row(page):
    return page.locator("tr", has=page.get_by_role("link", name=ASSIGNMENT, exact=True))


def modal_result(page, success_text, timeout=90_000, name=None):
    """Wait for the formgrader's dialog saying success_text, screenshot it (as name), close it."""
    dialog = page.locator(".modal-dialog:visible")
    dialog.wait_for(timeout=timeout)
    text = dialog.inner_text()
    assert success_text in text, text
    if name:
        screenshot(page, name)
    dialog.locator("button", has_text=re.compile("^OK$")).click()
    dialog.wait_for(state="hidden")
    return text


# ---------------------------------------------------------------------------------------------------------------
# a student's Assignments tab


def assignments_tab(page):
    """The Assignments tab (nbgrader's assignment list), opened or brought to the front, its lists refreshed."""
    tab = page.locator(".lm-TabBar-tab", has_text=re.compile("^Assignments$"))
    if tab.count():
        tab.click()
        page.locator("#refresh_assignments_list").click()
    else:
        menu(page, "Nbgrader", "Assignment List")
    page.locator("#assignments").wait_for()
    return page


def fetch(page, student):
    assignments_tab(page)
    released = page.locator("#released_assignments_list .list_item", has_text=ASSIGNMENT)
    released.wait_for()
    screenshot(page, f"04-{student.first_name.lower()}-assignment-list")
    released.get_by_role("button", name="Fetch").click()
    page.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first.wait_for()
    home = pwd.getpwnam(student.id).pw_dir
    notebook = os.path.join(home, ASSIGNMENT, f"{ASSIGNMENT}.ipynb")
    assert os.path.isfile(notebook)
    return notebook


def write_answers(student, notebook, answers):
    """The student's answers in their fetched notebook: a file of theirs, as if they had typed them."""
    user = pwd.getpwnam(student.id)
    nb = build_submission(answers, release_notebook=notebook)
    tmp = notebook + ".answering"
    nbformat.write(nb, tmp)
    os.chown(tmp, user.pw_uid, user.pw_gid)
    os.chmod(tmp, 0o644)
    os.replace(tmp, notebook)


def open_and_validate(page):
    """Open the fetched notebook from the Assignments tab and press Validate; returns the result dialog's text."""
    assignments_tab(page)
    page.locator("#fetched_assignments_list a.assignment-notebooks-link").click()
    page.locator("#fetched_assignments_list .nested_list_item a", has_text=ASSIGNMENT).click()
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".validate-button").first.wait_for()
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle\s*$")).wait_for(timeout=120_000)
    panel.locator(".validate-button").first.click()
    dialog = page.locator(".nbgrader-SuccessDialog, .nbgrader-ErrorDialog")
    dialog.wait_for(timeout=300_000)  # saves, then runs the whole notebook in the student's server
    return dialog


def close_dialog(dialog):
    dialog.locator("button.jp-Dialog-button").last.click()
    dialog.wait_for(state="detached")


def submit(page):
    assignments_tab(page)
    page.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).get_by_role(
        "button", name="Submit"
    ).click()
    page.locator("#submitted_assignments_list .nested_list_item").first.wait_for()


def submission_time(hub, student):
    """When the student's own submission in the exchange was made (its timestamp.txt), in UTC."""
    stamp = (own_submission_folder(hub, student) / "timestamp.txt").read_text().strip()
    return datetime.datetime.strptime(stamp.replace(" UTC", ""), "%Y-%m-%d %H:%M:%S.%f")


# ---------------------------------------------------------------------------------------------------------------
# the story


@pytest.mark.parametrize(
    "user, password_of",
    [(CARA.id, ADA.id), (INSTRUCTOR, ADA.id), ("root", ADA.id), (ADA.id, None)],
    ids=["a-classmate-with-her-own-password", "instructor-with-a-students-password", "not-in-the-class", "wrong"],
)
def test_each_person_logs_in_as_themselves_only(hub, browser, user, password_of):
    """Each account has its own password (PAM): Ada's opens no one else's JupyterLab, and no one outside the class
    gets in."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", hub.password(password_of) if password_of else "not-a-password")
        page.click("#login_submit")
        page.locator(".login_error", has_text="Invalid username or password").wait_for()
        assert "/hub/login" in page.url
        if user == CARA.id:
            screenshot(page, "01b-no-login-as-a-classmate")
    finally:
        context.close()


def test_the_passwords_are_each_accounts_own_and_never_printed(hub):
    """Every account got a password of its own; the students' are in a file only the instructor can read; the
    setup printed none of them."""
    words = {user: hub.password(user) for user in [INSTRUCTOR, ADA.id, CARA.id]}
    assert len(set(words.values())) == 3 and all(len(w) >= 12 for w in words.values())
    sheet = Path(hub.klass["logins_file"])
    info = sheet.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (pwd.getpwnam(INSTRUCTOR).pw_uid, 0o600)
    rows = sheet.read_text().splitlines()
    assert rows == ["id,password", f"{ADA.id},{words[ADA.id]}", f"{CARA.id},{words[CARA.id]}"]
    printed = hub.setup_log.read_text()
    assert str(sheet) in printed and not any(w in printed for w in words.values())


# ---------------------------------------------------------------------------------------------------------------
# the story's steps: each a fixture, made once, after the steps it needs, whichever test asks first; each test checks
# what its step did


@pytest.fixture(scope="module")
def released(hub, sessions):
    """The instructor releases backprop (a draft until then) from the formgrader."""
    page = sessions[INSTRUCTOR]
    formgrader(page, hub)
    row = assignment_row(page)
    assert row.locator("td.status").inner_text().strip() == "draft"
    row.locator("td.release a").click()
    modal_result(page, f"Successfully released '{ASSIGNMENT}'", name="03-instructor-releases")
    return row.locator("td.status").inner_text().strip()


def validate_and_submit(page, student, answers, after=None):
    """The student fetches the assignment, answers (their notebook written as their own file), presses Validate
    (after the time `after`, if given) and submits. Returns (the Validate dialog's class, its text)."""
    notebook = fetch(page, student)
    if student is ADA:
        screenshot(page, "05-ada-fetched")
    write_answers(student, notebook, answers)
    if after is not None:
        page.wait_for_function(
            "due => Date.now() > due", arg=(after.replace(tzinfo=datetime.UTC).timestamp() + 1) * 1000
        )
    dialog = open_and_validate(page)
    seen = (dialog.get_attribute("class"), dialog.inner_text())
    success = "nbgrader-SuccessDialog" in seen[0]
    screenshot(page, "06-ada-validate-success" if success else f"09-{student.first_name.lower()}-validate-failure")
    close_dialog(dialog)
    submit(page)
    return seen


@pytest.fixture(scope="module")
def ada_submitted(hub, sessions, released):
    """Ada answers correctly and submits (before the due date, which the instructor sets after)."""
    seen = validate_and_submit(sessions[ADA.id], ADA, solution_answers())
    screenshot(sessions[ADA.id], "07-ada-submitted")
    return seen


@pytest.fixture(scope="module")
def due_date(hub, sessions, ada_submitted):
    """The instructor sets the due date in the formgrader: now, after Ada's submission, before Cara's."""
    page = sessions[INSTRUCTOR]
    formgrader(page, hub)
    row = assignment_row(page)
    row.locator("td.edit a").click()
    due = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None) + datetime.timedelta(seconds=1)
    if due.second == 0:  # the browser writes hh:mm:00 as hh:mm
        due += datetime.timedelta(seconds=1)
    dialog = page.locator(".modal-dialog:visible")
    dialog.locator("input.modal-duedate").fill(due.strftime("%Y-%m-%dT%H:%M:%S"))
    dialog.locator("input.modal-timezone").fill("+0000")
    screenshot(page, "08-instructor-sets-the-due-date")
    dialog.locator("button.save").click()
    dialog.wait_for(state="hidden")
    page.wait_for_function(
        "due => document.querySelector('td.duedate').textContent.trim().startsWith(due)",
        arg=due.strftime("%Y-%m-%d %H:%M:%S"),
    )
    return due


@pytest.fixture(scope="module")
def cara_submitted(hub, sessions, due_date):
    """Cara answers Question 1a wrongly and submits after the due date."""
    seen = validate_and_submit(sessions[CARA.id], CARA, {**solution_answers(), **WRONG_1A}, after=due_date)
    screenshot(sessions[CARA.id], "10-cara-submitted-late")
    return seen


def test_instructor_releases_the_assignment_from_the_formgrader(hub, sessions, released):
    page = sessions[INSTRUCTOR]
    # A link to the instructor's server on the hub's origin still works: the hub sends it on to her own origin.
    page.goto(f"{hub.url}/user/{INSTRUCTOR}/lab")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for()
    assert page.url.startswith(hub.user_url(INSTRUCTOR) + "/lab"), page.url
    screenshot(page, "02-instructor-jupyterlab")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    items = page.locator(".lm-Menu:visible .lm-Menu-itemLabel")
    items.first.wait_for()
    labels = [label.strip() for label in items.all_inner_texts()]
    assert "Assignment List" in labels and "Formgrader" in labels, labels
    page.keyboard.press("Escape")
    assert released == "released"
    assert (hub.exchange / "outbound" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()


def test_the_formgrader_panel_works_inside_the_instructors_jupyterlab(hub, sessions, released):
    """Nbgrader > Formgrader shows the formgrader inside the instructor's JupyterLab (a frame of her own origin, which
    her server allows), and an assignment's name there opens its source folder in JupyterLab's file browser."""
    page = sessions[INSTRUCTOR]
    page.goto(f"{hub.user_url(INSTRUCTOR)}/lab")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for()
    menu(page, "Nbgrader", "Formgrader")
    frame = page.frame_locator("iframe[src*='formgrader']")
    name = frame.locator("td.name a", has_text=re.compile(f"^{ASSIGNMENT}$"))
    name.wait_for(timeout=90_000)
    screenshot(page, "02b-formgrader-panel")
    name.click()
    page.wait_for_function(
        "name => [...document.querySelectorAll('.jp-BreadCrumbs')].some(b => b.textContent.includes(name))",
        arg=ASSIGNMENT,
        timeout=60_000,
    )
    page.locator(".jp-DirListing-itemText", has_text=f"{ASSIGNMENT}.ipynb").first.wait_for(timeout=60_000)
    screenshot(page, "02c-formgrader-panel-opens-the-folder")


def test_ada_fetches_validates_and_submits_correct_answers(hub, ada_submitted):
    dialog_class, text = ada_submitted
    assert "nbgrader-SuccessDialog" in dialog_class
    assert "Success! Your notebook passes all the tests." in text
    assert own_submission_folder(hub, ADA).is_dir()


def test_instructor_sets_the_due_date_in_the_formgrader(hub, due_date):
    """The due date passes between the two submissions: it is set to now, after Ada's."""
    assert submission_time(hub, ADA) < due_date
    with Gradebook(hub.db_url) as gradebook:
        assert gradebook.find_assignment(ASSIGNMENT).duedate == due_date


def test_cara_validates_a_wrong_answer_and_submits_after_the_due_date(hub, cara_submitted, due_date):
    dialog_class, text = cara_submitted
    assert "nbgrader-ErrorDialog" in dialog_class
    assert "The following cell failed:" in text and WRONG_1A_MESSAGE in text
    assert submission_time(hub, CARA) > due_date > submission_time(hub, ADA)


# Cara, from her account (a JupyterLab terminal could do the same): a folder in Ada's name, dated in the future, with
# a secret of her choosing, in the exchange's root, in its inbound, in Ada's folder there, and, where she can write,
# in her own; then Ada's real submission folder, whose name she is told here.
FORGE = """
import json, os, shutil, sys
root, inbound, own, ada, release, ada_folder, secret = sys.argv[1:]
seen = {}
for where, folder in (("the exchange", root), ("inbound", inbound), ("ada's folder", ada), ("own folder", own)):
    forged = os.path.join(folder, "hubtest-ada+backprop+2099-12-06 00:30:00.000000 UTC+forged")
    try:
        shutil.copytree(release, forged)
        with open(os.path.join(forged, "timestamp.txt"), "w") as f:
            f.write("2099-12-06 00:30:00.000000 UTC")
        with open(os.path.join(forged, "submission_secret.txt"), "w") as f:
            f.write(secret)
        os.chmod(forged, 0o777)
        seen["forge in " + where] = "allowed"
    except OSError as error:
        seen["forge in " + where] = error.strerror
for how in ("list", "read", "write", "replace", "rename"):
    try:
        if how == "list":
            os.listdir(ada_folder)
        elif how == "read":
            open(os.path.join(ada_folder, "backprop.ipynb"), "rb").read(1)
        elif how == "write":
            open(os.path.join(ada_folder, "extra.txt"), "w").write("x")
        elif how == "replace":
            os.unlink(os.path.join(ada_folder, "backprop.ipynb"))
        else:
            os.rename(ada_folder, ada_folder + "-moved")
        seen[how] = "allowed"
    except OSError as error:
        seen[how] = error.strerror
print(json.dumps(seen))
"""
DENIED = {"Permission denied", "Operation not permitted"}


def own_submission_folder(hub, student):
    """The student's submission, in their folder of the inbound."""
    uid = pwd.getpwnam(student.id).pw_uid
    (folder,) = [
        p
        for p in (hub.exchange / "inbound" / student.id).iterdir()
        if p.name.startswith(f"{student.id}+") and p.stat().st_uid == uid
    ]
    return folder


@pytest.fixture(scope="module")
def forgery(hub, ada_submitted, cara_submitted):
    """What Cara's forgery (FORGE) could do, and Ada's own submission secret, before the collect."""
    ada_folder = own_submission_folder(hub, ADA)
    inbound = hub.exchange / "inbound"
    release = hub.exchange / "outbound" / ASSIGNMENT
    folders = [hub.exchange.parent, inbound, inbound / CARA.id, inbound / ADA.id, release, ada_folder]
    result = as_student(hub, CARA, ["python", "-c", FORGE, *folders, FORGED_SECRET])
    return json.loads(result.stdout), (ada_folder / "submission_secret.txt").read_text()


def test_a_student_can_neither_forge_a_classmates_submission_nor_touch_hers(hub, forgery):
    """Cara knows the name of Ada's submission folder: she can neither read it nor write in it, rename it nor
    remove from it. She can write neither in the exchange's root, nor in its inbound, nor in Ada's folder there; she
    can put a forged, future-dated folder in Ada's name into her own folder: the collect must refuse it."""
    seen, _ = forgery
    ada_folder = own_submission_folder(hub, ADA)
    info = ada_folder.stat()
    assert stat.S_IMODE(info.st_mode) == 0o750 and info.st_gid == pwd.getpwnam(INSTRUCTOR).pw_gid
    assert seen.pop("forge in own folder") == "allowed", seen
    assert set(seen.values()) <= DENIED, seen
    assert ada_folder.is_dir() and not (ada_folder / "extra.txt").exists()


@pytest.fixture(scope="module")
def collected(hub, sessions, forgery):
    """The instructor collects; returns the Collect dialog's text."""
    page = sessions[INSTRUCTOR]
    formgrader(page, hub)
    row = assignment_row(page)
    row.locator("td.collect a").click()
    return modal_result(page, f"Successfully collected submissions of '{ASSIGNMENT}'", name="11-instructor-collects")


def test_instructor_collects_only_what_each_student_submitted(hub, collected, forgery):
    assert (
        f"Collecting submission: {ADA.id} {ASSIGNMENT}" in collected
        and f"Collecting submission: {CARA.id} {ASSIGNMENT}" in collected
    )
    # the forgery is refused and said so; what is collected for Ada is her own submission, dated when it was made
    assert (
        f"Refused a submission in {ADA.id}'s name, not collected (cheating attempt?): it is in {CARA.id}'s folder"
        in collected
    )
    assert f"'{CARA.id}/{ADA.id}+{ASSIGNMENT}+2099-12-06" in collected
    submitted = hub.course_dir / "submitted" / ADA.id / ASSIGNMENT
    assert (submitted / "submission_secret.txt").read_text() == forgery[1]
    stamp = datetime.datetime.strptime((submitted / "timestamp.txt").read_text().strip(), "%Y-%m-%d %H:%M:%S.%f UTC")
    assert abs((stamp - submission_time(hub, ADA)).total_seconds()) < 60


@pytest.fixture(scope="module")
def autograded(hub, sessions, collected):
    """The instructor autogrades each submission from the formgrader; returns each dialog's text."""
    page = sessions[INSTRUCTOR]
    formgrader(page, hub)
    assignment_row(page).locator("td.num-submissions a").click()
    texts = {}
    for student in STUDENTS:
        submission = page.locator("tr", has=page.locator("td.student-id", has_text=re.compile(f"^{student.id}$")))
        submission.locator("td.autograde a").click()
        texts[student.id] = modal_result(
            page, f"Successfully autograded '{ASSIGNMENT}' for student '{student.id}'", timeout=400_000
        )
    page.locator("td.status", has_text="needs manual grading").nth(1).wait_for()
    screenshot(page, "12-instructor-autograded")
    return texts


AUTOGRADED_POINTS = float(sum(POINTS[q] for q in AUTOGRADED))
CODE_SCORES = {ADA.id: AUTOGRADED_POINTS, CARA.id: AUTOGRADED_POINTS - POINTS["q1a"]}  # all; all but Question 1a


def test_instructor_autogrades_in_the_sandbox(hub, autograded):
    assert not any("UNSAFE" in text for text in autograded.values())  # in the sandbox, as the instructor's account
    with Gradebook(hub.db_url) as gradebook:
        ada = gradebook.find_submission(ASSIGNMENT, ADA.id)
        cara = gradebook.find_submission(ASSIGNMENT, CARA.id)
        assert ada.total_seconds_late == 0 and cara.total_seconds_late > 0
        assert {ADA.id: ada.code_score, CARA.id: cara.code_score} == CODE_SCORES


def saved_question_6(hub, student):
    """(manual score, comment) of the student's Question 6 in the gradebook."""
    with Gradebook(hub.db_url) as gradebook:
        return (
            gradebook.find_grade("q6_answer", ASSIGNMENT, ASSIGNMENT, student.id).manual_score,
            gradebook.find_comment("q6_answer", ASSIGNMENT, ASSIGNMENT, student.id).manual_comment,
        )


@pytest.fixture(scope="module")
def scored(hub, sessions, autograded):
    """The instructor scores Question 6 of each submission, with a comment, in the formgrader; returns what the
    gradebook then holds."""
    page = sessions[INSTRUCTOR]
    for number, student in enumerate(STUDENTS):
        formgrader(page, hub, f"/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
        page.locator("td.name a").first.wait_for()
        toggle = page.locator("#toggle_names")
        if "Show" in toggle.inner_text():
            toggle.click()
        page.get_by_role("link", name=student.listed_name, exact=True).click()
        score, comment = QUESTION_6[student.id]
        # the page has loaded the grade and the comment (their views set these placeholders); typing earlier is lost
        page.locator("input#q6_answer_extra_credit[placeholder]").wait_for(state="attached")
        page.locator("textarea#q6_answer-comment[placeholder]").wait_for(state="attached")
        box = page.locator("input.score#q6_answer")
        box.scroll_into_view_if_needed()
        box.fill(str(score))
        box.press("Tab")  # leaving a box saves it
        page.locator("textarea#q6_answer-comment").fill(comment)
        page.locator("textarea#q6_answer-comment").press("Tab")
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
        while saved_question_6(hub, student) != (score, comment) and datetime.datetime.now() < deadline:
            page.wait_for_timeout(250)  # the formgrader saves in the background
        if number == 0:
            page.wait_for_function("() => jQuery(':animated').length === 0")  # the formgrader scrolls to the box
            box.scroll_into_view_if_needed()
            screenshot(page, "13-instructor-scores-question-6")
    return {student.id: saved_question_6(hub, student) for student in STUDENTS}


def test_instructor_scores_question_6_by_hand(scored):
    assert scored == QUESTION_6


@pytest.fixture(scope="module")
def feedback_released(hub, sessions, scored):
    """The instructor generates feedback, then releases it; returns the Release Feedback dialog's text."""
    page = sessions[INSTRUCTOR]
    formgrader(page, hub)
    row = assignment_row(page)
    row.locator("td.generate-feedback a").click()
    modal_result(page, f"Successfully generated feedback of '{ASSIGNMENT}'", timeout=300_000)
    row.locator("td.release-feedback a").click()
    return modal_result(
        page, f"Successfully released feedback of '{ASSIGNMENT}'", name="14-instructor-releases-feedback"
    )


def test_instructor_generates_and_releases_feedback(feedback_released):
    for student in STUDENTS:
        assert f"Releasing feedback for student '{student.id}'" in feedback_released


def expected_total(hub, student):
    """The score the student's feedback shows: code and Question 6, less the late penalty the course configures."""
    with Gradebook(hub.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student.id)
        score, penalty = notebook.score, notebook.late_submission_penalty or 0.0
    assert score == CODE_SCORES[student.id] + QUESTION_6[student.id][0]
    method = configured_late_penalty()
    if student is CARA and method == "zero":  # nbgrader assigns it when autograding: Question 6 was not scored then
        assert penalty == CODE_SCORES[CARA.id]
    elif method == "none" or student is ADA:
        assert penalty == 0
    return round(score - penalty, 2), penalty


@pytest.mark.parametrize("student", STUDENTS, ids=lambda s: s.first_name)
def test_each_student_fetches_their_own_feedback(hub, sessions, feedback_released, student):
    page = sessions[student.id]
    assignments_tab(page)
    submitted = page.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first
    submitted.get_by_role("button", name="Fetch Feedback").click()
    link = page.locator("#submitted_assignments_list a", has_text="view feedback")
    link.wait_for()
    assert page.locator("#submitted_assignments_list .nested_list_item").count() == 1  # their own submission only
    link.click()  # the file browser opens the feedback's folder
    page.locator(".jp-DirListing-item", has_text=f"{ASSIGNMENT}.html").dblclick()
    feedback = page.frame_locator(".jp-HTMLViewer:not(.lm-mod-hidden) iframe")
    total, penalty = expected_total(hub, student)
    feedback.get_by_text(f"{ASSIGNMENT} (Score: {total} / {MAX_SCORE})").wait_for()
    text = feedback.locator("body").inner_text()
    own, other = QUESTION_6[student.id][1], QUESTION_6[(set(QUESTION_6) - {student.id}).pop()][1]
    assert own in text and other not in text
    assert f"Written response (Score: {QUESTION_6[student.id][0]} / 2.0)" in text
    if student is CARA:
        assert WRONG_1A_MESSAGE in text
        assert ("Late submission penalty" in text) == (penalty > 0)
        if penalty:
            assert f"Late submission penalty (Score: -{round(penalty, 2)})" in text
    else:
        assert "✗" not in text and "Late submission penalty" not in text
    screenshot(page, f"{15 + STUDENTS.index(student)}-{student.first_name.lower()}-reads-feedback")
    if student is CARA:  # trusted, the page runs the MathJax it carries and typesets its formulas
        page.locator(".jp-Toolbar-item", has_text="Trust HTML").click()
        feedback.locator("mjx-container").first.wait_for()
        feedback.get_by_text(WRONG_1A_MESSAGE).first.scroll_into_view_if_needed()
        screenshot(page, "17-cara-reads-the-failed-check")
    home = pwd.getpwnam(student.id).pw_dir
    assert len(os.listdir(os.path.join(home, ASSIGNMENT, "feedback"))) == 1
    # the forger's secret names no feedback: none was made from the forged submission
    forged_name = notebook_hash(secret=FORGED_SECRET, notebook_id=ASSIGNMENT) + ".html"
    assert not (hub.exchange / "feedback" / forged_name).exists()


# ---------------------------------------------------------------------------------------------------------------
# isolation, from a student's account

PROBE = """
import json, os, sys
seen = {}
for name, (how, path) in json.loads(sys.argv[1]).items():
    try:
        os.listdir(path) if how == "list" else open(path, "rb").read(1)
        seen[name] = "allowed"
    except PermissionError:
        seen[name] = "denied"
    except OSError as error:
        seen[name] = type(error).__name__
print(json.dumps(seen))
"""


def as_student(hub, student, args, **kwargs):
    return setup_hub.run_as(
        student.id, args, runtime=hub.root / "venv", config_dir=hub.klass["config_dirs"]["student"], **kwargs
    )


def test_a_student_reads_nothing_of_the_other_students_or_the_course(hub, sessions, collected):
    ada_home, cara_home = (pwd.getpwnam(s.id).pw_dir for s in STUDENTS)
    course = hub.course_dir
    targets = {
        "the exchange's submissions": ("list", hub.exchange / "inbound"),
        "Cara's folder of the exchange": ("list", hub.exchange / "inbound" / CARA.id),
        "the students' disks": ("list", hub.root / "disks"),
        "the exchange's feedback": ("list", hub.exchange / "feedback"),
        "the instructor's home": ("list", os.path.dirname(course)),
        "the course directory": ("list", course),
        "the gradebook": ("read", course / "gradebook.db"),
        "the source notebook": ("read", course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"),
        "the course's nbgrader_config.py": ("read", course / "nbgrader_config.py"),
        "Cara's submitted notebook in the course": (
            "read",
            course / "submitted" / CARA.id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
        ),
        "Cara's home": ("list", cara_home),
        "Cara's notebook": ("read", os.path.join(cara_home, ASSIGNMENT, f"{ASSIGNMENT}.ipynb")),
        "the released assignment": ("list", hub.exchange / "outbound" / ASSIGNMENT),
        "Ada's own notebook": ("read", os.path.join(ada_home, ASSIGNMENT, f"{ASSIGNMENT}.ipynb")),
    }
    result = as_student(
        hub, ADA, ["python", "-c", PROBE, json.dumps({k: [h, str(p)] for k, (h, p) in targets.items()})]
    )
    seen = json.loads(result.stdout)
    allowed = {"the released assignment", "Ada's own notebook"}
    assert seen == {name: "allowed" if name in allowed else "denied" for name in targets}
    # nbgrader's own listing of the exchange's submissions, as Ada: it lists none (the folder is not listable)
    listing = as_student(hub, ADA, ["nbgrader", "list", "--inbound", "--log-level=INFO"])
    output = listing.stdout + listing.stderr
    assert "Submitted assignments:" in output and CARA.id not in output and ADA.id not in output


def secret_texts():
    """Texts found only in what the release does not ship: the hidden checks' own functions, the solutions' lines,
    the catalogues' and the demo class's opening lines."""
    shipped = "".join(p.read_text() for p in (ROOT / "release" / ASSIGNMENT).glob("*.py"))
    shipped += (ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    hidden = (ROOT / "grading" / "checks" / "backprop_checks.py").read_text()
    texts = [m for m in re.findall(r"^def ([a-z]\w+)\(", hidden, re.M) if f"def {m}(" not in shipped]
    texts = [f"def {m}(" for m in texts]
    source = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for cell in source.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) > 30 and line.strip() not in shipped:
                if not line.strip().startswith(("import ", "from ", "#")):  # imports are anyone's
                    texts.append(line.strip())
    for module in ("submission_catalogue", "tamper_catalogue", "demo_class"):
        first = (ROOT / "grading" / "course_kit" / f"{module}.py").read_text().splitlines()[0]
        texts.append(first.strip('"'))
    return texts


def test_no_hidden_check_or_solution_is_readable_by_a_student(hub, sessions):
    """As Cara: grep for every hidden check and solution text through the class's runtime, the instructor's library,
    the exchange, the configuration and every other account's home finds nothing she can read; her Python imports
    none of the course's package (her notebook's checks are the copies the release ships beside it)."""
    texts = secret_texts()
    assert len(texts) > 20
    patterns = "\n".join(texts) + "\n"
    homes = [pwd.getpwnam(user).pw_dir for user in (INSTRUCTOR, ADA.id)]
    grep = ["grep", "-rlsF", "-f", "-", hub.root, *homes]  # -s: what she cannot read is skipped silently
    result = as_student(hub, CARA, grep, check=False, timeout=900, input=patterns)
    assert result.returncode in (1, 2) and result.stdout == "", result.stdout[:2000]  # 2: some were unreadable
    probe = "import importlib.util as u; print([m for m in ('grading', 'backprop_checks') if u.find_spec(m)])"
    assert as_student(hub, CARA, ["python", "-c", probe]).stdout.strip() == "[]"
    # the check sees them where they are: in the instructor's library, as root
    found = subprocess.run(
        ["grep", "-rlsF", "-f", "-", hub.klass["instructor_library"]], input=patterns, text=True, capture_output=True
    )
    assert found.returncode == 0


def test_setup_refuses_a_checkout_students_could_read():
    """A checkout whose hidden checks or source notebook others can read: setup_hub.py says which and what to do,
    and makes nothing, unless told to go on; a private one passes."""
    with tempfile.TemporaryDirectory() as top:  # in the machine's temporary folder, which every account can enter
        tmp_path = Path(top)
        course = tmp_path / "course"
        for rel in ("grading/checks/backprop_checks.py", "grading/course_kit/tamper_catalogue.py", "source/a/a.ipynb"):
            (course / rel).parent.mkdir(parents=True, exist_ok=True)
            (course / rel).write_text("secret\n")
        for dirpath, _dirnames, filenames in os.walk(tmp_path):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(Path(dirpath, name), 0o644)
        exposed = setup_hub.exposed_secrets(course, tmp_path / "venv")
        assert {p.name for p in exposed} == {"backprop_checks.py", "tamper_catalogue.py", "a.ipynb"}
        if os.geteuid() == 0:
            hub_root = tmp_path / "hub-root"
            with pytest.raises(setup_hub.SetupError, match=f"chmod 700 {re.escape(str(course))}"):
                setup_hub.setup(hub_root, tmp_path / "roster.csv", "teacher", course_from=course, venv=tmp_path / "v")
            assert not hub_root.exists()
        os.chmod(course, 0o700)
        assert setup_hub.exposed_secrets(course, tmp_path / "venv") == []


def test_setup_names_the_checkout_an_editable_install_imports_when_students_could_read_it():
    """A private checkout whose .venv imports the grading package from another checkout (an editable install made
    there, or a .venv linked from it): that checkout's secrets count too."""
    with tempfile.TemporaryDirectory() as top:
        tmp_path = Path(top)
        course, other, venv = tmp_path / "course", tmp_path / "other", tmp_path / "venv"
        tmp_path.chmod(0o755)
        for rel in ("grading/__init__.py", "grading/checks/backprop_checks.py", "source/a/a.ipynb"):
            (other / rel).parent.mkdir(parents=True, exist_ok=True)
            (other / rel).write_text("# secret\n")
        course.mkdir(mode=0o700)
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text(f'#!/bin/sh\nPYTHONPATH={other} exec {sys.executable} "$@"\n')
        (venv / "bin" / "python").chmod(0o755)
        for dirpath, _dirnames, filenames in os.walk(other):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(Path(dirpath, name), 0o644)
        exposed = setup_hub.exposed_secrets(course, venv)
        assert {p.name for p in exposed} == {"backprop_checks.py", "a.ipynb"}, exposed
        os.chmod(other, 0o700)
        assert setup_hub.exposed_secrets(course, venv) == []


def test_the_students_servers_run_on_nothing_from_the_checkout(hub, sessions):
    """The students' servers and kernels map no file of the checkout, its .venv or a folder they cannot enter; so
    the class runs the same from a checkout under /root (a fresh clone's layout there)."""
    outside = [str(ROOT)] + [p for p in ("/root",) if os.path.isdir(p)]
    for student in STUDENTS:
        uid = pwd.getpwnam(student.id).pw_uid
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and os.stat(f"/proc/{p}").st_uid == uid]
        assert pids, f"no process of {student.id}: their server is not running"
        for pid in pids:
            try:
                files = {line.split(None, 5)[5] for line in open(f"/proc/{pid}/maps") if len(line.split(None, 5)) == 6}
                files |= {os.readlink(f"/proc/{pid}/exe"), os.readlink(f"/proc/{pid}/cwd")}
            except OSError:
                continue  # it ended meanwhile
            bad = sorted(f for f in files if any(f == o or f.startswith(o + os.sep) for o in outside))
            assert bad == [], f"{student.id}'s process {pid} uses {bad[:5]}"
    # and the same Python, with the checkout and /root hidden, imports all a server and the course need
    tops = [p for p in outside if not any(p.startswith(o + os.sep) for o in outside)]  # /root covers a checkout in it
    hide = [arg for path in tops for arg in ("--tmpfs", path)]
    result = as_student(
        hub,
        ADA,
        [
            "bwrap",
            "--dev-bind",
            "/",
            "/",
            *hide,
            "--",
            "python",
            "-c",
            "import jupyterhub.singleuser, jupyterlab, nbgrader, torch, hub_private_submit as h; print(h.__file__)",
        ],
    )
    assert result.stdout.strip().startswith(str(hub.root / "venv"))


def test_make_hub_serves_the_roster(hub):
    """`make hub` reads students.csv: every id there can be a Unix account and a JupyterHub user."""
    roster = setup_hub.read_roster(ROOT / "students.csv")
    assert len(roster) >= 2 and all(setup_hub.USERNAME.match(sid) for sid, _ in roster)
    assert hub.klass["students"] == [s.id for s in STUDENTS] and hub.klass["instructor"] == INSTRUCTOR
    assert hub.klass["sandbox_problem"] is None
    pinned = re.search(r"^jupyterhub==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    version = as_student(hub, ADA, ["python", "-c", "import jupyterhub; print(jupyterhub.__version__)"]).stdout.strip()
    assert version == pinned


HOG = """
import json, os, signal, sys, time
seen = {}
children = []
try:
    for _ in range(3000):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    seen["forks"] = len(children)
except OSError:
    seen["forks"] = len(children)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
try:
    hog = bytearray(int(sys.argv[1]) + (1 << 30))
    seen["memory"] = "allocated"
except MemoryError:
    seen["memory"] = "refused"
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = os.path.expanduser("~/big.bin")
try:
    with open(path, "wb") as f:
        f.seek(int(sys.argv[2]))
        f.write(b"x")
    seen["file"] = "written"
except OSError:
    seen["file"] = "refused"
finally:
    os.unlink(path)
print(json.dumps(seen))
"""


def server_limits(student):
    """{limit: soft value} of the student's running server (its jupyterhub-singleuser process)."""
    uid = pwd.getpwnam(student.id).pw_uid
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if (
                os.stat(f"/proc/{pid}").st_uid != uid
                or b"jupyterhub-singleuser" not in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                continue
            lines = Path(f"/proc/{pid}/limits").read_text().splitlines()
        except OSError:
            continue
        names = {"Max processes": "nproc", "Max address space": "as", "Max file size": "fsize"}
        return {names[n]: int(line[26:].split()[0]) for line in lines for n in names if line.startswith(n)}
    raise AssertionError(f"no server of {student.id}")


def test_a_runaway_student_fails_alone(hub, sessions):
    """Cara's server runs under limits of processes, memory and file size; a fork bomb, a huge allocation and a huge
    file under those limits fail, and Ada's server keeps working."""
    limits = server_limits(CARA)
    assert 0 < limits["nproc"] <= 4096 and 0 < limits["as"] <= 16 << 30 and 0 < limits["fsize"] <= 8 << 30, limits
    prefix = ["prlimit", *(f"--{name}={value}" for name, value in limits.items()), "--"]
    result = as_student(hub, CARA, [*prefix, "python", "-c", HOG, limits["as"], limits["fsize"]], timeout=300)
    seen = json.loads(result.stdout)
    assert seen["forks"] < limits["nproc"] and seen["memory"] == "refused" and seen["file"] == "refused", seen
    page = sessions[ADA.id]
    page.reload()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
    assert server_limits(CARA) == limits  # and Cara's own server is still there


FILL = """
import errno, json, os, sys
seen = {"written": 0}
chunk = b"x" * (1 << 20)
path = os.path.expanduser("~/fill.bin")
try:
    with open(path, "wb") as f:
        while seen["written"] < int(sys.argv[1]):
            f.write(chunk)
            f.flush()
            seen["written"] += len(chunk)
    seen["home"] = "not full"
except OSError as error:
    seen["home"] = errno.errorcode[error.errno]
try:
    with open(os.path.join(sys.argv[2], "fill.bin"), "wb") as f:
        f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    seen["inbound"] = "written"
except OSError as error:
    seen["inbound"] = errno.errorcode[error.errno]
print(json.dumps(seen))
"""


def test_a_student_who_fills_her_disk_stops_there_and_no_one_else_is_touched(hub, sessions):
    """Cara's home and her folder of the exchange are one disk of her own, of the size the class gives each
    student: filling her home stops there (ENOSPC), her inbound folder is full with it, and the disk that holds the
    hub's state, the gradebook and Ada's home is another; Ada still writes in her home and her server and the hub
    keep answering."""
    disks = hub.klass["student_disks"]
    if disks["problem"]:
        pytest.skip(f"no students' disks here: {disks['problem']}")
    cara_home, ada_home = (Path(pwd.getpwnam(s.id).pw_dir) for s in (CARA, ADA))
    inbound = hub.exchange / "inbound" / CARA.id
    devices = {
        "Cara's home": cara_home.stat().st_dev,
        "Cara's inbound": inbound.stat().st_dev,
        "Ada's home": ada_home.stat().st_dev,
        "the hub's state": (hub.root / "state").stat().st_dev,
        "the gradebook": (hub.course_dir / "gradebook.db").stat().st_dev,
    }
    assert devices["Cara's home"] == devices["Cara's inbound"]
    assert len(set(devices.values()) - {devices["the hub's state"]}) == 2, devices  # two disks: Cara's, Ada's
    assert devices["the gradebook"] == devices["the hub's state"]
    try:
        result = as_student(hub, CARA, ["python", "-c", FILL, 4 * disks["size"], inbound], timeout=300)
        seen = json.loads(result.stdout)
        assert seen["home"] == "ENOSPC" and seen["inbound"] == "ENOSPC", seen
        assert disks["size"] // 2 < seen["written"] <= disks["size"], seen
        # on the disk of the hub's state, all Cara holds is her disk's image, allocated in full when it was made
        image = hub.root / "disks" / f"{CARA.id}.img"
        assert image.stat().st_size == disks["size"] and image.stat().st_blocks * 512 <= disks["size"] + (1 << 20)
        written = as_student(hub, ADA, ["python", "-c", "open('ada.bin', 'wb').write(bytes(8 << 20))"])
        assert written.returncode == 0 and (ada_home / "ada.bin").stat().st_size == 8 << 20
        page = sessions[ADA.id]
        page.reload()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
        with urllib.request.urlopen(f"{hub.loopback}/hub/api", timeout=30) as response:
            assert response.status == 200
    finally:
        for path in (cara_home / "fill.bin", inbound / "fill.bin", ada_home / "ada.bin"):
            path.unlink(missing_ok=True)


# JavaScript of the two snippets below: a new kernel of the server at `base`, started from the user's JupyterLab page
# (the REST API and the kernel's websocket, as JupyterLab does), and `execute(id, code)`, which sends it code
NEW_KERNEL = """
  const xsrf = decodeURIComponent((document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "");
  const headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"};
  const kernel = await (await fetch(base + "api/kernels", {method: "POST", headers, body: "{}"})).json();
  const ws = new WebSocket(location.origin.replace(/^http/, "ws") + base + "api/kernels/" + kernel.id + "/channels");
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  const execute = (id, code) => ws.send(JSON.stringify({
    header: {msg_id: id, username: "", session: id, msg_type: "execute_request", version: "5.3",
             date: new Date().toISOString()},
    parent_header: {}, metadata: {}, channel: "shell",
    content: {code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false,
              stop_on_error: true}}));
"""
# a notebook of Cara's: a new kernel of her server, sent its code; its websocket kept open on the page
RUN_IN_A_NEW_KERNEL = (
    "async ([base, code]) => {"
    + NEW_KERNEL
    + """
  window.hubTestSocket = ws;
  execute("hog", code);
  return kernel.id;
}
"""
)
KERNELS = """
async ([base, remove]) => {
  const xsrf = decodeURIComponent((document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "");
  const listed = await fetch(base + "api/kernels", {headers: {"X-XSRFToken": xsrf}});  // JupyterHub asks it of GETs too
  if (remove) await fetch(base + "api/kernels/" + remove, {method: "DELETE", headers: {"X-XSRFToken": xsrf}});
  return [listed.status, listed.ok ? (await listed.json()).map(k => k.id) : []];
}
"""


def server_pid(student):
    """The process of the student's running server (jupyterhub-singleuser)."""
    uid = pwd.getpwnam(student.id).pw_uid
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if os.stat(f"/proc/{pid}").st_uid == uid and b"jupyterhub-singleuser" in command:
                return pid
    raise AssertionError(f"no server of {student.id}")


def test_a_notebook_beyond_its_servers_memory_dies_alone(hub, sessions):
    """Cara's server and all it starts share one memory limit (a cgroup of its own): a notebook of hers that
    allocates beyond it is ended by that cgroup's OOM killer, her server keeps running, and Ada's server, in a cgroup
    of its own, keeps answering."""
    if hub.klass["server_cgroups"]["problem"]:
        pytest.skip(f"no cgroup per student server here: {hub.klass['server_cgroups']['problem']}")
    cara, ada = (server_cgroups.ServerCgroup.of(s.id) for s in (CARA, ADA))
    pids = {s.id: server_pid(s) for s in STUDENTS}
    assert pids[CARA.id] in cara.pids() and pids[ADA.id] in ada.pids() and not cara.pids() & ada.pids()
    assert {k: v for k, v in cara.limits().items() if k != "cpus"} == {
        "memory": SERVER_MEMORY,
        "processes": server_limits(CARA)["nproc"],
    }
    before = {CARA.id: cara.oom_kills(), ADA.id: ada.oom_kills()}
    size = SERVER_MEMORY + (1 << 30)  # beyond the server's memory, within a process's address space limit
    assert size + (1 << 30) < server_limits(CARA)["as"]
    code = f"hog = bytearray({size})\nhog[::4096] = b'x' * len(range(0, {size}, 4096))\nprint('allocated')"
    page, base = sessions[CARA.id], f"/user/{CARA.id}/"
    kernel = page.evaluate(RUN_IN_A_NEW_KERNEL, [base, code])
    try:
        deadline = time.monotonic() + 180
        while cara.oom_kills() == before[CARA.id] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert cara.oom_kills() > before[CARA.id], "the notebook was not ended by the server's memory limit"
        assert ada.oom_kills() == before[ADA.id]
        assert server_pid(CARA) == pids[CARA.id] and server_pid(ADA) == pids[ADA.id]  # both servers still run
        ada_page = sessions[ADA.id]
        ada_page.reload()
        ada_page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
        status, kernels = page.evaluate(KERNELS, [base, None])  # and Cara's server answers too
        assert status == 200 and kernel in kernels
    finally:
        page.evaluate(KERNELS, [base, kernel])


def test_make_hub_says_what_to_set_up_where_a_limit_cannot_be_made():
    """Where loop devices, cgroups, the cpu controller or mount namespaces cannot be made (an unprivileged container),
    setup_hub.py's report says which limit is missing, why, and what the instructor must set up instead; where all
    are made it says nothing of them."""
    klass = {
        "student_disks": {"size": 1 << 30, "problem": None},
        "server_cgroups": {"problem": None, "cpu_problem": None},
        "private_tmp": {"problem": None},
    }
    assert setup_hub.limit_warnings(klass) == []
    klass["server_cgroups"]["cpu_problem"] = "cgroup v1's cpu hierarchy is not mounted"
    klass["private_tmp"]["problem"] = "unshare refused"
    cpu, tmp = setup_hub.limit_warnings(klass)
    assert "no CPU limit per student server (cgroup v1's cpu hierarchy is not mounted)" in cpu
    assert "unshare refused" in tmp and "/tmp, /var/tmp and /dev/shm" in tmp
    klass["private_tmp"]["problem"] = None
    klass["student_disks"]["problem"] = "mounting a loop device: permission denied"
    klass["server_cgroups"]["problem"] = "/sys/fs/cgroup is read-only"
    disks, cgroups = setup_hub.limit_warnings(klass)  # no word of the CPU where there is no cgroup at all
    assert "mounting a loop device: permission denied" in disks and "setquota" in disks and "usrquota" in disks
    assert "/sys/fs/cgroup is read-only" in cgroups and "only each process's memory is limited" in cgroups


def test_the_hub_configuration_takes_the_sites_own_settings_last(tmp_path, monkeypatch):
    """hub/jupyterhub_config.py reads the class setup_hub.py wrote, then HUB_ROOT/state/jupyterhub_site.py, where a
    site puts its university's login (here OAuth, which needs no shared password)."""
    state = tmp_path / "state"
    state.mkdir()
    klass = {
        "course_id": "c",
        "instructor": "teacher",
        "students": ["ada", "cara"],
        "course_dir": "/home/teacher/c",
        "runtime": str(tmp_path / "venv"),
        "exchange": str(tmp_path / "exchange"),
        "proxy": "chp",
        "config_dirs": {"student": "/s", "instructor": "/i"},
        "instructor_library": "/lib",
        "sandbox_problem": None,
    }
    (state / "class.json").write_text(json.dumps(klass))
    monkeypatch.setenv("HUB_ROOT", str(tmp_path))
    monkeypatch.setenv("HUB_PORT", "8123")
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT / "hub")).load_config()
    assert config.JupyterHub.authenticator_class == "pam"  # each account's own password
    (state / "jupyterhub_site.py").write_text('c.JupyterHub.authenticator_class = "generic-oauth"\n')
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT / "hub")).load_config()
    assert config.JupyterHub.authenticator_class == "generic-oauth"
    assert config.JupyterHub.bind_url == "http://127.0.0.1:8123"
    assert config.JupyterHub.subdomain_host == "http://localhost:8123"  # each user at http://<user>.localhost:8123
    monkeypatch.setenv("HUB_DOMAIN", "hub.example.edu")
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT / "hub")).load_config()
    assert config.JupyterHub.subdomain_host == "https://hub.example.edu"
    assert config.Authenticator.allowed_users == {"ada", "cara", "teacher"}
    assert config.Spawner.cmd == [str(tmp_path / "venv" / "bin" / "jupyterhub-singleuser")]
    role_path = config.Spawner.environment["JUPYTER_CONFIG_PATH"]
    assert [role_path(type("S", (), {"user": type("U", (), {"name": n})})) for n in ("ada", "teacher")] == ["/s", "/i"]


# ---------------------------------------------------------------------------------------------------------------
# each user on an origin of their own

# Cara's page: a file in her home that her server serves as an active page (JupyterLab serves what is under
# ~/.local/share/jupyter/labextensions at /user/<her>/lab/extensions/, unsandboxed). Opened by the instructor, it tries
# her server both where it was before each user had an origin of their own (/user/<instructor>/ on the page's own
# origin) and on its own origin: reading its API with her cookies, and opening her JupyterLab to reach into it.
CARAS_PAGE = """<!doctype html>
<title>Cara's page</title>
<pre id="seen">trying</pre>
<script>
(async () => {
  const targets = {"same origin": "/user/INSTRUCTOR", "her origin": "THEIRS"};
  const seen = {};
  for (const [where, base] of Object.entries(targets)) {
    try {
      const response = await fetch(base + "/api/contents", {credentials: "include"});
      seen["read her files, " + where] = "read: " + response.status + " " + (await response.text()).slice(0, 80);
    } catch (error) {
      seen["read her files, " + where] = "blocked: " + error.name;
    }
    const lab = window.open(base + "/lab", "_blank");
    const deadline = Date.now() + 90000;
    for (;;) {
      try {
        const at = lab.location.href;  // about:blank until her JupyterLab's address is reached
        if (at.includes("/lab") && lab.document.readyState === "complete") {
          const xsrf = (lab.document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
          const listed = await lab.fetch(base + "/api/contents", {headers: {"X-XSRFToken": decodeURIComponent(xsrf)}});
          seen["drive her JupyterLab, " + where] = "drove: " + listed.status;
          break;
        }
      } catch (error) {
        seen["drive her JupyterLab, " + where] = "blocked: " + error.name;
        break;
      }
      if (Date.now() > deadline) { seen["drive her JupyterLab, " + where] = "timed out"; break; }
      await new Promise(ok => setTimeout(ok, 250));
    }
    lab.close();
  }
  const frame = document.createElement("iframe");
  frame.src = "THEIRS/formgrader";
  document.body.appendChild(frame);
  await new Promise(ok => { frame.onload = ok; setTimeout(ok, 30000); });
  try {
    seen["frame her formgrader"] = "read: " + frame.contentWindow.document.body.innerText.slice(0, 80);
  } catch (error) {
    seen["frame her formgrader"] = "blocked: " + error.name;
  }
  document.getElementById("seen").textContent = JSON.stringify(seen, null, 1);
  window.hubTestSeen = seen;
})();
</script>
"""


def test_a_page_a_students_server_serves_cannot_reach_the_instructors_server(hub, sessions, browser):
    """Each user's server has an origin of its own (<user>.localhost): a page from Cara's server that the instructor
    opens, logged in, can neither read the instructor's files through her cookies nor reach into her JupyterLab, on
    the address her server had before (the same origin as every server) or on its own, nor reach into her formgrader
    in a frame; the instructor's own server still answers her."""
    cara = pwd.getpwnam(CARA.id)
    folder = Path(cara.pw_dir) / ".local" / "share" / "jupyter" / "labextensions" / "caras-page"
    folder.mkdir(parents=True, exist_ok=True)
    page_file = folder / "index.html"
    page_file.write_text(CARAS_PAGE.replace("INSTRUCTOR", INSTRUCTOR).replace("THEIRS", hub.user_url(INSTRUCTOR)))
    for path in [
        page_file,
        *(p for p in page_file.parents if p.is_relative_to(cara.pw_dir) and p != Path(cara.pw_dir)),
    ]:
        os.chown(path, cara.pw_uid, cara.pw_gid)  # hers, as if she had written it
    page = sessions[INSTRUCTOR].context.new_page()
    try:
        # the link Cara sends her, on the hub's address: the hub sends it on to Cara's server
        page.goto(f"{hub.url}/user/{CARA.id}/lab/extensions/caras-page/index.html")
        page.wait_for_function("() => window.hubTestSeen !== undefined", timeout=240_000)
        seen = page.evaluate("() => window.hubTestSeen")
        screenshot(page, "18-instructor-opens-caras-page")
        assert len(seen) == 5 and all(v.startswith("blocked") for v in seen.values()), seen
        assert page.url.startswith(f"{hub.user_url(CARA.id)}/lab/extensions/")  # it ran, on Cara's origin
        # the instructor's own server still answers her, on its own origin
        status = sessions[INSTRUCTOR].evaluate(KERNELS, [f"/user/{INSTRUCTOR}/", None])[0]
        assert status == 200
    finally:
        page.close()
        for popup in sessions[INSTRUCTOR].context.pages[1:]:
            popup.close()
        shutil.rmtree(Path(cara.pw_dir) / ".local" / "share" / "jupyter" / "labextensions", ignore_errors=True)


# code run in a new kernel of the student's server, from her JupyterLab page; returns what it printed (and its error)
RUN_AND_READ = (
    "async ([base, code, timeout]) => {"
    + NEW_KERNEL
    + """
  const out = [];
  const done = new Promise((ok, fail) => {
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.parent_header.msg_id !== "probe") return;
      if (message.msg_type === "stream") out.push(message.content.text);
      if (message.msg_type === "error") out.push(message.content.ename + ": " + message.content.evalue);
      // outputs and the reply travel on different channels: the output is complete when IOPub says idle
      if (message.msg_type === "status" && message.content.execution_state === "idle") ok();
    };
    setTimeout(() => fail(new Error("no reply in time: " + out.join(""))), timeout);
  });
  execute("probe", code);
  try { await done; } finally {
    ws.close();
    await fetch(base + "api/kernels/" + kernel.id, {method: "DELETE", headers});
  }
  return out.join("");
}
"""
)


def in_a_kernel(hub, sessions, student, code, timeout=180):
    """Run code in a new kernel of the student's server (started from their JupyterLab page); returns the JSON it
    printed last."""
    page = sessions[student.id]
    out = page.evaluate(RUN_AND_READ, [f"/user/{student.id}/", code, timeout * 1000])
    lines = out.strip().splitlines()
    assert lines, out
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise AssertionError(out) from None


def ada_still_answers(hub, sessions):
    """Ada's JupyterLab reloads and her server runs a kernel for her."""
    page = sessions[ADA.id]
    page.reload()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
    assert in_a_kernel(hub, sessions, ADA, "import json; print(json.dumps(6 * 7))") == 42


# four busy loops, left running in the background (as from a terminal: the kernel that starts them ends first)
BUSY = """
import json, subprocess, sys
loop = "import time\\nend = time.time() + 60\\nwhile time.time() < end: pass"
start = 'for i in 1 2 3 4; do "$0" -c "$1" >/dev/null 2>&1 & echo $!; done'
pids = subprocess.run(["sh", "-c", start, sys.executable, loop], capture_output=True, text=True).stdout.split()
print(json.dumps([int(p) for p in pids]))
"""


def test_a_students_busy_loops_get_her_cpu_quota_and_no_more(hub, sessions):
    """Cara's server and all it starts share one CPU quota (a core unless HUB_STUDENT_CPUS says otherwise): four busy
    loops of hers use about that much, held back by the quota, while Ada's server keeps answering."""
    cgroups = hub.klass["server_cgroups"]
    if cgroups["problem"] or cgroups["cpu_problem"]:
        pytest.skip(f"no CPU limit per student server here: {cgroups['problem'] or cgroups['cpu_problem']}")
    cara = server_cgroups.ServerCgroup.of(CARA.id)
    assert cara.limits()["cpus"] == 1.0
    assert server_cgroups.ServerCgroup.of(ADA.id).limits()["cpus"] == 1.0
    pids = in_a_kernel(hub, sessions, CARA, BUSY)
    try:
        assert set(pids) <= cara.pids()
        time.sleep(3)  # the loops have started
        throttled, used, start = cara.throttled(), cara.cpu_seconds(), time.monotonic()
        time.sleep(6)
        cores = (cara.cpu_seconds() - used) / (time.monotonic() - start)
        assert 0.3 < cores < 1.35, f"Cara's loops used {cores:.2f} cores"  # the machine is shared: generous
        # the quota held them back; on a machine whose cores are all taken the loops get less than it, unthrottled
        assert cara.throttled() > throttled or os.getloadavg()[0] > len(os.sched_getaffinity(0)), cores
        ada_still_answers(hub, sessions)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


# what a student's kernel sees of /tmp, /var/tmp and /dev/shm: writes a file in each, names what is there
TMP_PROBE = """
import json, os, sys
mark, seen = sys.argv[-1], {}
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    with open(os.path.join(folder, mark), "w") as f:
        f.write(mark)
    seen[folder] = sorted(n for n in os.listdir(folder) if n.startswith("hubtest-"))
seen["devices"] = {p: os.stat(p).st_dev for p in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"))}
print(json.dumps(seen))
"""

FILL_TMP = """
import errno, json, os
seen, chunk = {"written": 0}, b"x" * (1 << 20)
try:
    with open("/tmp/fill.bin", "wb") as f:
        while seen["written"] < FOUR_DISKS:
            f.write(chunk)
            f.flush()
            seen["written"] += len(chunk)
    seen["tmp"] = "not full"
except OSError as error:
    seen["tmp"] = errno.errorcode[error.errno]
os.unlink("/tmp/fill.bin")
try:
    with open("/dev/shm/fill.bin", "wb") as f:
        for _ in range(FOUR_SHMS):
            f.write(chunk)
            f.flush()
    seen["shm"] = "not full"
except OSError as error:
    seen["shm"] = errno.errorcode[error.errno]
seen["shm written"] = os.stat("/dev/shm/fill.bin").st_size
os.unlink("/dev/shm/fill.bin")
print(json.dumps(seen))
"""


# a command typed in a new terminal of the student's JupyterLab (the REST API and the terminal's websocket, as
# JupyterLab does); the terminal is closed once the command has finished (closing it hangs up what still runs)
IN_A_TERMINAL = """
async ([base, command]) => {
  const xsrf = decodeURIComponent((document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "");
  const headers = {"X-XSRFToken": xsrf, "Content-Type": "application/json"};
  const made = await (await fetch(base + "api/terminals", {method: "POST", headers, body: "{}"})).json();
  const ws = new WebSocket(location.origin.replace(/^http/, "ws") + base + "terminals/websocket/" + made.name);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  let seen = "";
  const finished = new Promise((ok, fail) => {
    ws.onmessage = (event) => {
      const [kind, text] = JSON.parse(event.data);
      if (kind === "stdout" && (seen = (seen + text).slice(-4000)).includes("finished-42")) ok();
    };
    setTimeout(() => fail(new Error("the command did not finish in 180 s: " + seen)), 180000);
  });
  ws.send(JSON.stringify(["stdin", command + "; echo finished-$((6 * 7))\\r"]));  // the echoed line says 6 * 7
  try { await finished; } finally {
    ws.close();
    await fetch(base + "api/terminals/" + made.name, {method: "DELETE", headers});
  }
}
"""


def test_each_persons_terminal_runs_the_class_python(hub, sessions):
    """A terminal in JupyterLab finds the class's own Python (torch, nbgrader) first, for a student and for the
    instructor, as their notebooks do: the server's PATH is kept, not reset by a login shell's /etc/profile."""
    runtime = str(Path(hub.klass["runtime"]) / "bin")
    for user in (CARA.id, INSTRUCTOR):
        home = Path(os.path.expanduser(f"~{user}"))
        said = home / "terminal-python.txt"
        check = "import torch, nbgrader, sys; print(sys.executable)"
        command = f"{{ command -v python; python -c '{check}'; command -v nbgrader; }} > {said.name} 2>&1"
        sessions[user].evaluate(IN_A_TERMINAL, [f"/user/{user}/", f"cd ~ && {command}"])
        deadline = time.monotonic() + 90
        while not (said.exists() and said.read_text().count("\n") >= 3) and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            lines = said.read_text().splitlines()
        finally:
            said.unlink(missing_ok=True)
        assert len(lines) == 3 and all(line.startswith(runtime) for line in lines), (user, lines)


OWN_SOCKETS = """
import json, os, psutil
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
listening = [c.laddr.port for c in psutil.Process().net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
pipe = getattr(app.iopub_thread, "_pipe_port", None)  # forked subprocesses' output: receives only, keyed
print(json.dumps({"transport": app.transport, "at": os.path.abspath(app.ip), "listening": listening, "pipe": pipe}))
"""


def test_a_students_kernel_listens_on_no_port_a_classmate_could_reach(hub, sessions):
    """Ada's kernel talks to her server over Unix sockets in her own home, not over TCP on the loopback every account
    shares (where any classmate could subscribe to it and read her code and outputs as she runs them). The one TCP
    port it may listen on is ipykernel's pipe for the output of processes it forks: it only receives, and drops what
    does not carry its random key."""
    seen = in_a_kernel(hub, sessions, ADA, OWN_SOCKETS)
    home = os.path.realpath(os.path.expanduser(f"~{ADA.id}"))
    assert seen["transport"] == "ipc" and seen["at"].startswith(home + os.sep), seen
    assert set(seen["listening"]) <= {seen["pipe"]}, seen


def probe_tmp(hub, sessions, student, mark=None):
    mark = mark or f"hubtest-{student.first_name.lower()}-was-here"
    code = f"import sys\nsys.argv = ['probe', {mark!r}]\n" + TMP_PROBE
    return in_a_kernel(hub, sessions, student, code)


def test_a_students_tmp_is_her_own_on_her_disk(hub, sessions):
    """Cara's server has /tmp, /var/tmp and /dev/shm of its own: what she writes there neither Ada nor the machine
    sees; her /tmp and /var/tmp are on her own disk, which bounds them (ENOSPC at its size), and her /dev/shm is a
    tmpfs of the size the class gives (ENOSPC there too); Ada keeps working meanwhile."""
    problem = hub.klass["private_tmp"]["problem"]
    if problem:
        pytest.skip(f"no private /tmp here: {problem}")
    cara, ada = probe_tmp(hub, sessions, CARA), probe_tmp(hub, sessions, ADA)
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        assert cara[folder] == ["hubtest-cara-was-here"] and ada[folder] == ["hubtest-ada-was-here"], (cara, ada)
        assert not list(Path(folder).glob("hubtest-*-was-here"))  # nor on the machine's own
    devices = cara["devices"]
    home = os.path.expanduser(f"~{CARA.id}")
    assert devices["/tmp"] == devices["/var/tmp"] == devices[home] == os.stat(home).st_dev  # her disk
    assert devices["/dev/shm"] != os.stat("/dev/shm").st_dev
    # her terminals see the same /tmp as her kernels
    said = Path(home) / "terminal-tmp.txt"
    sessions[CARA.id].evaluate(IN_A_TERMINAL, [f"/user/{CARA.id}/", f"ls /tmp /dev/shm > {said.name}"])
    deadline = time.monotonic() + 60
    while not (said.exists() and said.read_text().count("hubtest-cara-was-here") == 2) and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        assert said.read_text().count("hubtest-cara-was-here") == 2 and "hubtest-ada" not in said.read_text()
    finally:
        said.unlink(missing_ok=True)
    disk = hub.klass["student_disks"]
    if disk["problem"]:
        pytest.skip(f"no students' disks here: {disk['problem']}")
    code = FILL_TMP.replace("FOUR_DISKS", str(4 * disk["size"])).replace("FOUR_SHMS", str(4 * (STUDENT_SHM >> 20)))
    filled = in_a_kernel(hub, sessions, CARA, code, timeout=300)
    assert filled["tmp"] == "ENOSPC" and disk["size"] // 2 < filled["written"] <= disk["size"], filled
    assert filled["shm"] == "ENOSPC" and filled["shm written"] <= STUDENT_SHM, filled
    ada_still_answers(hub, sessions)


# which of the given folders a student's kernel can create a file in
WRITE_PROBE = """
import json, os, sys
writable = []
for folder in json.loads(sys.argv[-1]):
    path = os.path.join(folder, "hubtest-cara-wrote-this")
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError:
        continue
    os.unlink(path)
    writable.append(folder)
print(json.dumps(writable))
"""


def world_writable_folders():
    """Every folder of the machine that any account may write (mode o+w), /proc and /sys aside."""
    found = subprocess.run(
        ["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune"]
        + ["-o", "-type", "d", "-perm", "-0002", "-print"],
        capture_output=True,
        text=True,
    )
    return found.stdout.split("\n")[:-1]


def test_nothing_of_the_machine_is_writable_to_a_student_but_her_own_folders(hub, sessions):
    """Of every folder on the machine that any account may write (/run/lock, a 1777 folder a package made after her
    server started...), Cara's server can write only her own /tmp, /var/tmp and /dev/shm and what lies on her own
    disk (her folder of the exchange): all she writes counts against her disk or her server's memory."""
    for problem in (hub.klass["private_tmp"]["problem"], hub.klass["student_disks"]["problem"]):
        if problem:
            pytest.skip(f"no private /tmp or no students' disks here: {problem}")
    opened = Path("/var/lib/hubtest-open-folder")  # as a package might make one, after her server started
    opened.mkdir(exist_ok=True)
    opened.chmod(0o1777)
    try:
        folders = world_writable_folders()
        assert str(opened) in folders and "/tmp" in folders
        code = f"import sys\nsys.argv = ['probe', {json.dumps(folders)!r}]\n" + WRITE_PROBE
        writable = set(in_a_kernel(hub, sessions, CARA, code))
    finally:
        opened.rmdir()
    disk = os.stat(os.path.expanduser(f"~{CARA.id}")).st_dev
    others = {f for f in writable if not (os.path.exists(f) and os.stat(f).st_dev == disk)}  # hers: on her disk
    assert {"/tmp", "/var/tmp", "/dev/shm"} <= others <= {"/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"}, writable


SHARED_MEMORY = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
shmid = libc.shmget(KEY, 8 << 20, 0o1000 | 0o600)  # IPC_CREAT: a System V segment, as a hostile notebook keeps one
print(json.dumps({"shmid": shmid, "ipc": os.readlink("/proc/self/ns/ipc")}))
"""


def test_a_students_shared_memory_is_her_servers_own(hub, sessions):
    """A System V shared memory segment Cara makes is her server's own (an IPC namespace of its own): the machine
    does not list it, and it ends with her server instead of outliving it beyond her memory limit."""
    if hub.klass["private_tmp"]["problem"]:
        pytest.skip(f"no private namespaces here: {hub.klass['private_tmp']['problem']}")
    key = 0x0CA2A001
    made = in_a_kernel(hub, sessions, CARA, SHARED_MEMORY.replace("KEY", str(key)))
    assert made["shmid"] >= 0, made
    assert made["ipc"] != os.readlink("/proc/self/ns/ipc")
    listed = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    assert all(int(line.split()[0]) != key for line in listed)


def test_a_students_dev_shm_is_gone_when_her_server_stops(hub, sessions):
    """What Cara leaves in /dev/shm and /tmp lives no longer than her server: once she stops it from the hub's home
    page, no process holds her mount namespace and her /tmp is empty; her new server starts with nothing there."""
    if hub.klass["private_tmp"]["problem"]:
        pytest.skip(f"no private /tmp here: {hub.klass['private_tmp']['problem']}")
    seen = probe_tmp(hub, sessions, CARA, "hubtest-cara-left-this")
    assert "hubtest-cara-left-this" in seen["/dev/shm"]
    server = server_pid(CARA)
    namespace = os.readlink(f"/proc/{server}/ns/mnt")
    assert namespace != os.readlink("/proc/self/ns/mnt")
    page = sessions[CARA.id]
    page.goto(f"{hub.url}/hub/home")
    # the button does nothing until the page's script has bound it; the hub says when that is done
    page.wait_for_function("() => window._jupyterhub_page_loaded === true", timeout=120_000)
    page.locator("#stop").click()
    page.locator("#stop").wait_for(state="hidden", timeout=120_000)

    def holders():
        found = []
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/ns/mnt") == namespace:
                    found.append(pid)
        return found

    deadline = time.monotonic() + 60
    while holders() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert holders() == []  # her namespace, and the tmpfs of her /dev/shm, are gone
    disk = hub.root / "disks" / CARA.id
    assert not any((disk / name).exists() and any((disk / name).iterdir()) for name in ("tmp", "var-tmp"))
    page.locator("#start").click()
    page.wait_for_url(f"{hub.user_url(CARA.id)}/**", timeout=300_000)
    page.goto(f"{hub.user_url(CARA.id)}/lab")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for(timeout=120_000)
    fresh = probe_tmp(hub, sessions, CARA)
    assert fresh["/dev/shm"] == fresh["/tmp"] == ["hubtest-cara-was-here"]  # only what this probe wrote
    assert server_pid(CARA) != server
