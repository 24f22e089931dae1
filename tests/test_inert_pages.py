"""A submission full of active content, graded by each grader, opened in a real browser as the instructor and the
student would: the formgrader's grading page through JupyterLab (Nbgrader > Formgrader > Manual Grading > the student)
and the student's feedback page. After each page has been open a few seconds: no payload ran or loaded anything (every
request of the page is watched), no terminal exists, no file was written, no grade changed, and what the student
legitimately showed (formulas, tables, pictures, the written answer) is there. The payloads are those of
grading/course_kit/active_content_catalogue.py; tests/test_inert_content.py checks the same layers in-process."""

import json
import sys
import time
import urllib.request

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import run
from grading.course_kit.active_content_catalogue import BEACON, PRINTED, active_content_submission
from grading.course_kit.course_copy import copy_course
from grading.course_kit.submissions import ASSIGNMENT, ROOT, build_submission, solution_answers, write_submission
from grading.reports.class_grades import class_scores
from support.lab_browser import chromium, formgrader_submission, jupyterlab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = ROOT / "build" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
HOSTILE, HONEST = "active-content", "honest-student"
GRADERS = ["make-autograde", "nbgrader-autograde"]
OPEN_SECONDS = 4  # how long each page stays open before the checks


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def grader_command(grader, course):
    """What `make autograde`, or nbgrader's own `nbgrader autograde`, runs in course."""
    if grader == "make-autograde":
        return [sys.executable, "-m", "grading.coordinator.autograde_class", ASSIGNMENT, "--course", course, "--force"]
    return ["nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=ERROR"]


@pytest.fixture(scope="module", params=GRADERS)
def graded(request, tmp_path_factory):
    """(grader, course) where HOSTILE and HONEST were graded by that grader, and feedback generated."""
    course = copy_course(tmp_path_factory.mktemp(request.param), fresh_release=True)
    write_submission(course, HOSTILE, active_content_submission())
    write_submission(course, HONEST, build_submission(solution_answers()))
    run(grader_command(request.param, course), cwd=course)
    run(["nbgrader", "generate_feedback", ASSIGNMENT, "--force", "--log-level=ERROR"], cwd=course)
    return request.param, course


def _blocked_by_policy(message):
    """A Content-Security-Policy violation that matters here: a script of the page's own refused (the page would not
    work), or a payload's (the sanitizer let it through, and only the policy stopped it)."""
    return "Content Security Policy" in message and ("script-src" in message or BEACON in message)


def watched(page):
    """Every URL the page (and its frames) asks for, and every Content-Security-Policy violation it reports."""
    requests, violations = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: _blocked_by_policy(m.text) and violations.append(m.text[:300]))
    return requests, violations


def test_autograded_notebook_keeps_no_active_output(graded):
    _, course = graded
    nb = nbformat.read(str(course / "autograded" / HOSTILE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    shown = json.dumps([{m: v for m, v in o.get("data", {}).items() if m != "text/plain"} for o in outputs]).lower()
    assert outputs and "application/javascript" not in shown and "widget-view" not in shown
    for active in ("<script", "onerror", "onload", "javascript:", BEACON, "<iframe", "<object", "<embed"):
        assert active not in shown, active


def test_honest_and_hostile_students_are_both_graded_in_full(graded):
    _, course = graded
    scores = class_scores(f"sqlite:///{course / 'gradebook.db'}")
    honest = {q: s for q, s in scores[HONEST].items() if q != "q6"}
    assert all(s > 0 for s in honest.values()) and scores[HOSTILE] == scores[HONEST]  # q6 waits for a person


def test_formgrader_shows_the_submission_inert(browser, graded):
    grader, course = graded
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    before = class_scores(db_url)
    with Gradebook(db_url) as gradebook:
        comments_before = [c.comment for c in gradebook.find_submission(ASSIGNMENT, HOSTILE).notebooks[0].comments]
    with jupyterlab(course, course.parent / f"{grader}-lab") as (url, token):
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(90_000)
        requests, violations = watched(page)
        page.goto(f"{url}/lab?token={token}")
        formgrader = formgrader_submission(page, ASSIGNMENT, HOSTILE)
        answer = formgrader.locator(".text_cell_render", has_text="Forward mode wins for few inputs")
        answer.wait_for()
        time.sleep(OPEN_SECONDS)
        for link in formgrader.locator("a.pwned-link:visible, button.pwned-link:visible").all():
            link.click(timeout=30_000, no_wait_after=True)  # a link or form left without its target does nothing
        time.sleep(1)
        formgrader.locator("input.score#q6_answer").scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"inert-formgrader-{grader}.png"))
        # what the student legitimately showed is there: a table, pictures, typeset formulas, the written answer
        assert formgrader.locator("table.dataframe").count() >= 1
        assert formgrader.locator(".output_svg img, .output_png img").count() >= 2
        assert formgrader.locator(".MathJax_Display").count() >= 3
        assert PRINTED in formgrader.locator("body").inner_text()
        with urllib.request.urlopen(f"{url}/api/terminals?token={token}") as answer_:
            terminals = json.load(answer_)
        page.close()
    assert [u for u in requests if BEACON in u] == []
    assert violations == []  # the page's own scripts all run under its policy; the payloads were removed before it
    assert terminals == []
    assert list(course.rglob("pwned-*")) == []
    assert class_scores(db_url) == before
    with Gradebook(db_url) as gradebook:
        assert [c.comment for c in gradebook.find_submission(ASSIGNMENT, HOSTILE).notebooks[0].comments] == (
            comments_before
        )


def test_feedback_page_shows_the_submission_inert(browser, graded):
    grader, course = graded
    feedback = course / "feedback" / HOSTILE / ASSIGNMENT / f"{ASSIGNMENT}.html"
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(90_000)
    requests, violations = watched(page)
    page.goto(feedback.as_uri())
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("() => MathJax.startup.promise")
    time.sleep(OPEN_SECONDS)
    for link in page.locator("a.pwned-link:visible, button.pwned-link:visible").all():
        link.click(timeout=30_000, no_wait_after=True)
    time.sleep(1)
    page.get_by_text("Forward mode wins for few inputs").scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"inert-feedback-{grader}.png"))
    assert page.locator("mjx-container").count() >= 3 and page.locator("table.dataframe").count() >= 1
    assert PRINTED in page.locator("body").inner_text()
    page.close()
    assert [u for u in requests if BEACON in u] == []
    assert violations == []
