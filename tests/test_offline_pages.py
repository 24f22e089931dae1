"""nbgrader's pages offline (grading/reports/offline_pages.py), rendered in-process with the course's configuration on
a small notebook: the feedback page inlines MathJax and embeds its figures, the formgrader's page loads the MathJax that
JupyterLab serves, and SVG outputs take alt text from their cell as PNG outputs do. tests/test_feedback.py checks
real feedback pages; the browser tests check that both pages typeset their formulas with the network blocked."""

import base64
import urllib.parse
from pathlib import Path

import jupyter_server_mathjax
import nbformat
import nbgrader
import pytest
from nbconvert.exporters import HTMLExporter
from traitlets.config.loader import PyFileConfigLoader

from grading.course_kit.submissions import ROOT
from grading.reports import offline_pages
from support.html_page import PLACEHOLDER, Page, external

# where nbgrader's feedback page finds bootstrap.min.css (nbgrader's GenerateFeedback adds it the same way)
BOOTSTRAP_CSS = Path(nbgrader.__file__).parent / "server_extensions/formgrader/static/node_modules/bootstrap/dist/css"
# what JupyterLab serves at <base_url>/static/jupyter_server_mathjax/
MATHJAX_2 = Path(jupyter_server_mathjax.__file__).parent / "static"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()  # what an image/png output holds: base64


def notebook(alt=None):
    """A markdown cell with formulas and a figure file, and a code cell whose outputs are an SVG and a PNG."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_markdown_cell(
            'Let $F = c \\cdot s$.\n\n$$\nc = x^2\n$$\n\n<img src="images/figure.svg" alt="a figure"/>'
        )
    )
    code = nbformat.v4.new_code_cell(
        "display(graph)\nplt.show()",
        outputs=[
            nbformat.v4.new_output("display_data", {"image/svg+xml": SVG, "text/plain": "<graph>"}),
            nbformat.v4.new_output("display_data", {"image/png": PNG, "text/plain": "<Figure>"}),
        ],
    )
    if alt is not None:
        code.metadata["alt"] = alt
    nb.cells.append(code)
    return nb


def render(template, nb, folder, **resources):
    """nb as nbgrader's page `template` (feedback or formgrade) renders it with the course's nbgrader_config.py."""
    (folder / "images").mkdir(exist_ok=True)
    (folder / "images" / "figure.svg").write_text(SVG)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_paths = [str(BOOTSTRAP_CSS)]
    html, _ = HTMLExporter(config=config).from_notebook_node(
        nb, resources={"metadata": {"path": str(folder)}, **resources}
    )
    return html


def feedback_page(nb, folder):
    return render(
        "feedback", nb, folder, nbgrader={"notebook": "backprop", "score": 1.0, "max_score": 2.0, "late_penalty": 0}
    )


def formgrade_page(nb, folder):
    return render(
        "formgrade",
        nb,
        folder,
        assignment_id="backprop",
        notebook_id="backprop",
        submission_id="abc",
        index=0,
        total=1,
        base_url="/user/instructor",
    )


def test_feedback_page_inlines_mathjax_and_embeds_its_figures(tmp_path):
    page = Page(feedback_page(notebook(), tmp_path))
    assert [ref for ref in page.references() if external(ref[2])] == []
    assert [attrs["src"] for tag, attrs in page.elements if tag == "script" and attrs.get("src")] == []
    mathjax = offline_pages.inline_mathjax(offline_pages.MATHJAX_COMPONENT)
    assert any(mathjax in script for script in page.scripts)  # the installed package's code, whole
    assert offline_pages.mathjax_version().startswith("3.")
    # one file: nothing but anchors within the page and data URIs (the markdown figure is embedded)
    assert [ref for ref in page.references() if not ref[2].startswith(("#", "data:"))] == []
    assert "data:image/svg+xml;base64," in next(img["src"] for img in page.images() if img.get("alt") == "a figure")


def test_formgrader_page_loads_the_mathjax_that_jupyterlab_serves(tmp_path):
    page = Page(formgrade_page(notebook(), tmp_path))
    sources = [attrs["src"] for tag, attrs in page.elements if tag == "script" and attrs.get("src")]
    assert [src for src in sources if external(src)] == []
    grading_page = "http://127.0.0.1:8888/user/instructor/formgrader/submissions/abc/"  # nbgrader adds the final /
    mathjax = [urllib.parse.urlsplit(urllib.parse.urljoin(grading_page, src)) for src in sources if "MathJax" in src]
    assert len(mathjax) == 1
    path, query = mathjax[0].path, urllib.parse.parse_qs(mathjax[0].query)
    prefix = "/user/instructor/static/jupyter_server_mathjax/"  # jupyter_server_mathjax's files, under the base URL
    assert path.startswith(prefix) and (MATHJAX_2 / path[len(prefix) :]).is_file()
    for config in query["config"][0].split(","):
        assert (MATHJAX_2 / "config" / f"{config}.js").is_file(), config
    assert (MATHJAX_2 / "fonts" / "HTML-CSS" / "STIX-Web" / "woff").is_dir()  # the web font the page asks for
    assert any('webFont: "STIX-Web"' in script for script in page.scripts)


@pytest.mark.parametrize("render_page", [feedback_page, formgrade_page], ids=["feedback", "formgrader"])
def test_svg_and_png_outputs_take_alt_text_from_their_cell(render_page, tmp_path):
    alt = 'Graph of F: x and y feed "MulBackward0" & more'
    images = Page(render_page(notebook(alt=alt), tmp_path)).images()
    outputs = [
        img
        for img in images
        if img["src"].startswith(("data:image/svg+xml", "data:image/png")) and img.get("alt") != "a figure"
    ]
    assert len(outputs) == 2 and [img["alt"] for img in outputs] == [alt, alt]
    # without it, nbconvert puts its placeholder (and warns "Alternative text is missing on 2 image(s)")
    images = Page(render_page(notebook(), tmp_path)).images()
    assert [img["alt"] for img in images if img.get("alt") != "a figure"] == [PLACEHOLDER, PLACEHOLDER]


def test_inlined_mathjax_cannot_end_its_script_element(tmp_path, monkeypatch):
    (tmp_path / "es5").mkdir()
    (tmp_path / "es5" / "x.js").write_text('var a = "</SCRIPT><b>", b = /<!--.*?-->/g;')
    monkeypatch.setattr(offline_pages, "MATHJAX", tmp_path)
    assert offline_pages.inline_mathjax("es5/x.js") == 'var a = "<\\/SCRIPT><b>", b = /<\\x21--.*?-->/g;'
    with pytest.raises(FileNotFoundError, match="make setup"):
        offline_pages.inline_mathjax("es5/missing.js")
