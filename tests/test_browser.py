"""A student's and an instructor's way through JupyterLab with nbgrader's extensions, in a real browser.

The student opens the release notebook (answers filled in), runs all cells, sees the graph and the plots,
presses Validate; then breaks one answer and reads the feedback. The instructor enters the manual score of
Question 6 in the formgrader, and a student reads their feedback page. Both pages typeset their formulas with
every request beyond this machine blocked. Each step leaves a screenshot in build/screenshots/.
"""

import base64
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

import nbformat
import pytest
from nbgrader.api import Gradebook

from grading.course_kit.submissions import (
    ASSIGNMENT,
    RELEASE_NOTEBOOK,
    ROOT,
    SOURCE_NOTEBOOK,
    build_submission,
    grade_id,
    solution_answers,
)
from grading.reports.class_grades import class_scores
from support.lab_browser import chromium, formgrader_submission, jupyterlab, menu, offline_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = ROOT / "build" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
CELL = {
    grade_id(cell): i
    for i, cell in enumerate(nbformat.read(str(RELEASE_NOTEBOOK), as_version=4).cells)
    if grade_id(cell)
}
SUM_NOT_PRODUCT = (
    "x = torch.tensor(2.0, requires_grad=True)\ny = torch.tensor(3.0, requires_grad=True)\n"
    "c = x ** 2\ns = x + y\nF = c + s"
)  # a wrong Question 1a, which its public check names
STUDENT = "browser-student"  # submits correct answers except Question 1b (no retain_graph=True): a hidden check fails
GRAPH_NOT_KEPT = {"q1b_answer": "F.backward()\nprint(x.grad)"}


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def cell(page, grade):
    """The notebook cell with this grade id (cells are in the page in notebook order)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(CELL[grade])


def wait_kernel_idle(page, timeout=300_000):
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle\s*$")).wait_for(timeout=timeout)


def validate(page):
    """Press Validate and return the dialog that reports its result."""
    page.locator(".validate-button").first.click()
    dialog = page.locator(".nbgrader-SuccessDialog, .nbgrader-ErrorDialog")
    dialog.wait_for(timeout=900_000)  # saves, then runs the whole notebook on the server
    return dialog


def close_dialog(dialog):
    dialog.locator("button.jp-Dialog-button").last.click()
    dialog.wait_for(state="detached")


@pytest.fixture(scope="module", autouse=True)
def autograding(autograde):
    """Autograding of one submission for the instructor's tests, started first to run alongside the student's."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        yield pool.submit(autograde, {STUDENT: build_submission({**solution_answers(), **GRAPH_NOT_KEPT})})


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def student(browser, tmp_path_factory):
    """The student's JupyterLab, the release notebook with correct answers open and all cells run."""
    home = tmp_path_factory.mktemp("student")
    shutil.copytree(RELEASE_NOTEBOOK.parent, home / ASSIGNMENT)
    nbformat.write(build_submission(solution_answers()), str(home / ASSIGNMENT / RELEASE_NOTEBOOK.name))
    with jupyterlab(home, tmp_path_factory.mktemp("student-lab")) as (url, token):
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/{ASSIGNMENT}/{RELEASE_NOTEBOOK.name}?token={token}")
        wait_kernel_idle(page)
        screenshot(page, "01-student-opens-the-notebook")
        started = time.monotonic()
        menu(page, "Run", "Run All Cells")
        page.wait_for_function(  # every code cell has run: its prompt shows an execution count
            """() => { const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                       return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
            timeout=900_000,
        )
        wait_kernel_idle(page)
        print(f"Run All took {time.monotonic() - started:.0f} s")
        yield page
        page.close()


def svg_source(image):
    """The SVG text of a rendered SVG output, shown as an <img> (data URL) or inline."""
    if image.evaluate("e => e.tagName.toLowerCase()") == "img":
        header, data = image.get_attribute("src").split(",", 1)
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), "the SVG did not render"
        return base64.b64decode(data).decode() if header.endswith(";base64") else urllib.parse.unquote(data)
    return image.evaluate("e => e.outerHTML")


def test_run_all_draws_the_graph_of_F_with_its_backward_functions(student):
    for graph, functions in (
        ("q1_graph", ["MulBackward0", "AddBackward0", "PowBackward0"]),
        ("q2_graph", ["LogBackward0", "MulBackward0", "AddBackward0"]),
    ):
        image = cell(student, graph).locator(".jp-RenderedSVG img, .jp-RenderedSVG svg").first
        image.scroll_into_view_if_needed()
        svg = svg_source(image)
        assert "<svg" in svg
        for function in functions:
            assert function in svg, f"{graph}: no node {function}"
        if graph == "q1_graph":
            screenshot(student, "02-graph-of-F")


def test_run_all_shows_values_tangents_and_gradients_on_the_students_graph(student):
    picture = cell(student, "q1_graph").locator(".jp-RenderedSVG img, .jp-RenderedSVG svg").nth(1)
    picture.scroll_into_view_if_needed()
    svg = svg_source(picture)
    for text in (
        "value 20",
        "tangent dF/dx = 24",
        "gradient dF/dx = 24 = 20 + 4",
        "gradient dF/dc = 5",
        "gradient dF/ds = 4",
        "tangent dc/dx = 4",
        "dF/dc = 5",
    ):
        assert text in svg, f"not on the picture of Question 1's graph: {text}"
    screenshot(student, "02b-backprop-on-the-graph-of-F")


def test_run_all_shows_the_reverse_sweep_checked_against_backward_and_finite_differences(student):
    test = cell(student, "q1rev_test_adjoints").locator(".jp-OutputArea-output")
    test.first.scroll_into_view_if_needed()
    assert "adjoints_F and adjoints_G give every node's adjoint" in test.first.inner_text()
    table = cell(student, "q1rev_gradient_check").locator(".jp-OutputArea-output").first.inner_text()
    for text in ("your sweep", "backward()", "finite difference", "dF/dx", "dG/dy", "48.000000", "they agree"):
        assert text in table, f"not in the gradient check's table: {text}"
    cell(student, "q1rev_gradient_check").scroll_into_view_if_needed()
    screenshot(student, "02c-reverse-sweep-by-hand-checked")


def test_run_all_draws_the_loss_and_weight_plots(student):
    for plot in ("q4_loss_plot", "q4_weights_plot"):
        image = cell(student, plot).locator(".jp-RenderedImage img")
        assert image.count() == 1, f"{plot}: no image"
        assert image.get_attribute("src").startswith("data:image/png")
        image.scroll_into_view_if_needed()
        assert image.evaluate("img => img.complete && img.naturalWidth > 100"), f"{plot} did not render"
    cell(student, "q4_loss_plot").scroll_into_view_if_needed()
    screenshot(student, "03-training-plots")


def test_question_1_figure_loads(student):
    figure = student.locator(".jp-MarkdownCell img[src*='computational_graph.svg']")
    figure.scroll_into_view_if_needed()
    student.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    screenshot(student, "04-question-1-figure")


def test_validate_reports_success_for_correct_answers(student):
    dialog = validate(student)
    assert "nbgrader-SuccessDialog" in dialog.get_attribute("class")
    assert "Success! Your notebook passes all the tests." in dialog.inner_text()
    screenshot(student, "05-validate-success")
    close_dialog(dialog)


def test_wrong_answer_shows_its_feedback_and_fails_validate(student):
    editor = cell(student, "q1a_answer").locator(".cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()
    student.keyboard.press("Control+A")
    student.keyboard.insert_text(SUM_NOT_PRODUCT)
    student.keyboard.press("Shift+Enter")  # runs the answer, moves to the test cell
    student.keyboard.press("Shift+Enter")  # runs the test cell
    output = cell(student, "q1a_test_graph").locator(".jp-OutputArea-output")
    feedback = "✗ F does not equal c multiplied by s (F = c * s, the product, not the sum)."
    output.filter(has_text=feedback).wait_for()
    wait_kernel_idle(student)
    cell(student, "q1a_answer").scroll_into_view_if_needed()
    screenshot(student, "06-wrong-answer-feedback")

    dialog = validate(student)
    assert "nbgrader-ErrorDialog" in dialog.get_attribute("class")
    text = dialog.inner_text()
    assert "The following cell failed:" in text and feedback in text
    screenshot(student, "07-validate-failure")
    close_dialog(dialog)


@pytest.fixture(scope="module")
def instructor_lab(course, autograding, tmp_path_factory):
    """The instructor's JupyterLab, (url, token), in a course where one submission was autograded."""
    scores = autograding.result()
    assert scores[STUDENT]["q1b"] == 0 and scores[STUDENT]["q6"] is None  # q6 waits for the instructor
    with jupyterlab(course, tmp_path_factory.mktemp("instructor-lab")) as lab:
        yield lab


@pytest.fixture(scope="module")
def instructor(browser, instructor_lab):
    """The instructor's JupyterLab open in the browser."""
    url, token = instructor_lab
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    page.goto(f"{url}/lab?token={token}")
    yield page
    page.close()


def test_instructor_enters_the_manual_score_of_question_6_in_the_formgrader(instructor, course):
    formgrader = formgrader_submission(instructor, ASSIGNMENT, STUDENT)
    score = formgrader.locator("input.score#q6_answer")
    score.scroll_into_view_if_needed()
    screenshot(instructor, "08-formgrader-question-6")
    score.fill("1.5")
    score.press("Tab")  # leaving the field saves the score
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    deadline = time.monotonic() + 300
    while class_scores(db_url)[STUDENT]["q6"] != 1.5 and time.monotonic() < deadline:
        time.sleep(0.5)
    screenshot(instructor, "09-formgrader-question-6-scored")
    assert class_scores(db_url)[STUDENT]["q6"] == 1.5


def hidden_test_lines(notebook=SOURCE_NOTEBOOK):
    """Lines of code found only between BEGIN and END HIDDEN TESTS in the instructor notebook."""
    hidden, public, inside = set(), set(), False
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                inside = "BEGIN" in line
            elif len(line.strip()) > 12:
                (hidden if inside else public).add(line.strip())
    return sorted(line for line in hidden - public if not any(line in p for p in public))


@pytest.fixture(scope="module")
def feedback_page(course, autograding):
    """The feedback page of STUDENT, generated as `make feedback` does (hidden tests left out)."""
    autograding.result()
    env = {k: v for k, v in os.environ.items() if k != "FEEDBACK_SHOWS_HIDDEN_TESTS"}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    subprocess.run(
        ["nbgrader", "generate_feedback", ASSIGNMENT, "--force", "--log-level=ERROR"],
        cwd=course,
        env=env,
        check=True,
        capture_output=True,
        timeout=1200,
    )
    return course / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"


def test_feedback_shows_the_failed_check_but_no_hidden_test_code(browser, course, feedback_page):
    autograded = nbformat.read(str(course / "autograded" / STUDENT / ASSIGNMENT / RELEASE_NOTEBOOK.name), 4)
    test_cell = next(c for c in autograded.cells if grade_id(c) == "q1b_test_gradients")
    message = next(o for o in test_cell.outputs if o.output_type == "error").traceback[-1]
    assert message.startswith("✗")

    page = browser.new_page(viewport=VIEWPORT)
    page.goto(feedback_page.as_uri(), wait_until="domcontentloaded")
    text = page.inner_text("body")
    assert message in text
    hidden = hidden_test_lines()
    assert hidden and [line for line in hidden if line in text] == []
    page.get_by_text(message).first.scroll_into_view_if_needed()
    screenshot(page, "10-student-feedback")
    page.close()


def markdown_with_tex(page):
    """Text of rendered markdown cells that still holds TeX delimiters (every formula typeset: none)."""
    return [text[:80] for text in page.locator(".text_cell_render").all_inner_texts() if "$" in text]


def test_feedback_page_typesets_its_formulas_offline(browser, feedback_page):
    """The student's feedback page, opened from its folder with every request beyond this machine blocked."""
    with offline_page(browser, viewport=VIEWPORT) as (page, blocked):
        page.set_default_timeout(90_000)
        page.goto(feedback_page.as_uri())
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise")  # settles when MathJax 3 has typeset the page
        assert page.evaluate("() => MathJax.version").startswith("3.")
        question_1 = page.locator(".text_cell_render", has_text="Consider the computational graph")
        assert question_1.locator("mjx-container[display='true'] svg").count() >= 3  # c = x², s = x + y, F = c · s
        assert page.locator("mjx-merror").count() == 0
        assert markdown_with_tex(page) == [] and "$$" not in page.inner_text("body")
        question_1.scroll_into_view_if_needed()
        screenshot(page, "11-feedback-formulas-offline")
        assert blocked == []


def test_formgrader_typesets_the_submissions_formulas_offline(browser, instructor_lab, course):
    """The formgrader's page of a submission (Manual Grading), every request beyond this machine blocked."""
    url, token = instructor_lab
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(RELEASE_NOTEBOOK.stem, ASSIGNMENT, STUDENT).id
    with offline_page(browser, viewport=VIEWPORT) as (page, blocked):
        page.set_default_timeout(90_000)
        failed = []  # a file the page asks for that the server lacks (a missing font or MathJax part)
        page.on("response", lambda answer: answer.status >= 400 and failed.append(f"{answer.status} {answer.url}"))
        page.goto(f"{url}/formgrader/submissions/{submission}/?token={token}")
        page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.Register")
        page.evaluate("() => new Promise(done => MathJax.Hub.Register.StartupHook('End', () => done(true)))")
        sources = page.evaluate("() => [...document.scripts].map(s => s.src).filter(src => /MathJax\\.js/.test(src))")
        assert len(sources) == 1 and sources[0].startswith(f"{url}/static/jupyter_server_mathjax/MathJax.js")
        assert page.evaluate("() => MathJax.version").startswith("2.7")
        assert page.evaluate("() => MathJax.OutputJax['HTML-CSS'].fontInUse") == "STIX-Web"  # its web font loaded
        question_1 = page.locator(".text_cell_render", has_text="Consider the computational graph")
        assert question_1.locator(".MathJax_Display").count() >= 3
        assert page.locator(".MathJax_Error, .merror").count() == 0
        assert markdown_with_tex(page) == []
        page.wait_for_function("() => jQuery(':animated').length === 0")  # the formgrader's scrolling to its box
        question_1.scroll_into_view_if_needed()
        screenshot(page, "12-formgrader-formulas-offline")
        assert blocked == [] and failed == []
