"""nbgrader configuration of the course "Backpropagation using PyTorch"."""

import os

from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.preprocessors import CheckCellMetadata, Execute, GetGrades

from grading.coordinator.cell_metadata import CheckCellMetadataOnce
from grading.coordinator.judged_execute import SandboxedJudgedExecute
from grading.coordinator.restore_cell_flags import RestoreCellFlags
from grading.engine.limits import Limits
from grading.reports import offline_pages
from grading.reports.feedback_pages import ClearHiddenTestsOfTestCells
from grading.reports.inert_content import InertOutputs

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "backprop-pytorch"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")

# Students can delete or retype test cells; autograding puts them back from the gradebook.
c.OverwriteCells.add_missing_cells = True

# `nbgrader autograde` and the formgrader grade as `make autograde` does: each notebook runs in the sandbox, its
# hidden tests stay here, and the judge (grading/checks/judge.py) decides each test cell's points from plain data that
# the kernel answers. nbgrader's own Execute would run the hidden tests in the student's kernel, as you, unsandboxed.
# nbgrader's own lists (its traitlets' defaults), with the course's steps put in.
nbgrader_default = {
    (cls.__name__, name): cls.class_traits()[name].default()
    for cls, name in (
        (Autograde, "sanitize_preprocessors"),
        (Autograde, "autograde_preprocessors"),
        (GenerateFeedback, "preprocessors"),
    )
}
# nbgrader's check of cell metadata, its schema checked once, not on each cell (grading/coordinator/cell_metadata.py)
once = {CheckCellMetadata: CheckCellMetadataOnce}
# cell flags from the gradebook, not from the submission
c.Autograde.sanitize_preprocessors = [
    RestoreCellFlags,
    *(once.get(pp, pp) for pp in nbgrader_default["Autograde", "sanitize_preprocessors"]),
]
c.Autograde.autograde_preprocessors = [
    step
    for pp in nbgrader_default["Autograde", "autograde_preprocessors"]
    # what the submission showed is stored inert (grading/reports/inert_content.py)
    for step in ((SandboxedJudgedExecute, InertOutputs) if pp is Execute else (once.get(pp, pp),))
]

# Execution limits of one notebook. Each is declared once, in grading/engine/limits.py (class Limits); change
# one here, for example c.Sandbox.memory_bytes = 4 * 2**30. The limits: c.Execute.timeout (seconds per cell) and
# c.Sandbox.notebook_timeout (wall-clock seconds for the whole notebook), memory_bytes (address space per process; the
# whole sandbox where a cgroup is allowed), max_processes, max_output_bytes (output kept per notebook, every message
# counted), max_file_bytes (largest file a submission may write), tmpfs_bytes (each folder it can write).
c.Execute.timeout = Limits.cell_timeout
c.Execute.interrupt_on_timeout = True

# Late submissions. The due date is the assignment's, in the gradebook: the formgrader's Manage Assignments > Edit, or
# `nbgrader db assignment add backprop --duedate="2026-03-02 17:00:00 UTC"`. When a late submission is autograded
# (make autograde, nbgrader autograde or the formgrader), AssignLatePenalties takes its autograded score away; Question
# 6, scored by hand afterwards, still counts.
c.LateSubmissionPlugin.penalty_method = "zero"

# Feedback never shows hidden tests unless the instructor asks: FEEDBACK_SHOWS_HIDDEN_TESTS=1.
if os.environ.get("FEEDBACK_SHOWS_HIDDEN_TESTS") != "1":
    c.GenerateFeedback.preprocessors = [
        step
        for pp in nbgrader_default["GenerateFeedback", "preprocessors"]
        for step in ((GetGrades, ClearHiddenTestsOfTestCells) if pp is GetGrades else (pp,))
    ]

# nbgrader's HTML pages work offline (grading/reports/offline_pages.py). Its feedback and formgrade templates ignore
# HTMLExporter.mathjax_url and load MathJax from a CDN; the course's templates, found first, put in its place MathJax 3
# inlined in each feedback page and, in the formgrader, the MathJax 2 that JupyterLab serves (jupyter_server_mathjax).
# Figures of markdown cells are embedded too: a student's feedback is one HTML file. SVG outputs take alt text as
# nbconvert gives it to PNG outputs: from the output's metadata "alt", else from the cell's metadata "alt".
c.HTMLExporter.extra_template_basedirs = offline_pages.TEMPLATE_BASEDIRS
c.HTMLExporter.filters = {
    "inline_mathjax": "grading.reports.offline_pages.inline_mathjax",
    # A submission's outputs and markdown are shown inert on every page (grading/reports/inert_content.py): HTML
    # sanitized as nbconvert renders it (sanitize_html), markdown cells too (nbgrader's formgrade template renders
    # them itself), and a Content-Security-Policy in each page that runs only the page's own scripts.
    "clean_html": "grading.reports.inert_content.clean_html",
    "markdown2html": "grading.reports.inert_content.markdown2html",
    "content_security_policy": "grading.reports.inert_content.content_security_policy",
}
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.preprocessors = [InertOutputs]  # outputs and their metadata checked again as each page renders
c.HTMLExporter.embed_images = True

# ---------------------------------------------------------------------------------------------------------------------
# The LMS (grading/reports/lms.py). The roster, students.csv (id, first_name, last_name, email; optionally lms_user_id,
# the Canvas user id), is imported into the gradebook with `nbgrader db student import students.csv` (`make roster`).
# `nbgrader zip_collect backprop` takes Canvas's "Download Submissions" zip, put in build/downloaded/backprop/archive/
# (`make collect-lms ZIP=...` does it all), into submitted/<id>/backprop/: the file names' pattern is below, and the
# collector finds each file's student in the gradebook by Canvas user id or name, or, for anonymous grading, by the
# column canvas_anonymous_id of students.csv (unknown ones are skipped and named). A file Canvas marks LATE gets a
# timestamp one second after the gradebook's due date, so the late penalty above applies.
# `nbgrader export --exporter=grading.reports.lms.CanvasExport` (or MoodleExport) writes build/lms/canvas_grades.csv (or
# moodle_grades.csv) for the LMS's grade import; `make grades` writes both. A grade that is not final is never a blank
# cell (both importers would erase or invent a grade): the student is left out, or gets Moodle's '-' (README.md).
from grading.reports.lms import CANVAS_FILE_NAME  # noqa: E402

c.ZipCollectApp.downloaded_directory = os.path.join("build", "downloaded")  # build/ is never committed
c.ZipCollectApp.collector_plugin = "grading.reports.lms.CanvasCollector"
# {name}[_LATE]_{Canvas user id}_{file id}_{file name}, e.g. perfectada_LATE_12345_67890_backprop.ipynb, and
# [LATE_]anon_{anonymous id}_{file id}_{file name} under anonymous grading
c.FileNameCollectorPlugin.named_regexp = CANVAS_FILE_NAME
# The roster file whose optional column canvas_anonymous_id maps anonymous ids (anon_<id>) to students.
# c.CanvasCollector.roster_file = "students.csv"
# The Canvas assignment each nbgrader assignment fills, by "name (Canvas assignment id)"; a bare name fills the Canvas
# assignment of that name, or creates it.
# c.CanvasExport.assignment_columns = {"backprop": "backprop (12345)"}
# Students without a submission get 0 in both uploads; '' uploads no grade for them instead, so that the LMS keeps the
# one it has (they are left out of the Canvas file; Moodle's gets '-' where a row must stay for other grades).
# c.LmsExport.no_submission = ""
