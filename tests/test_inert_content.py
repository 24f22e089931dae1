"""What a submission shows stays inert (grading/reports/inert_content.py), checked in-process: the sanitizer on every
payload of grading/course_kit/active_content_catalogue.py, the autograded notebook's outputs, and the formgrader's and
feedback pages as nbconvert renders them with the course's configuration. tests/test_inert_pages.py opens the same
submission, graded, in a real browser."""

import re
import subprocess

import nbformat
import pytest

from grading.course_kit.active_content_catalogue import (
    BEACON,
    PRINTED,
    active_content_submission,
    displayed_outputs,
    displays_cell,
    html_payloads,
)
from grading.reports.inert_content import (
    InertOutputs,
    content_security_policy,
    safe_tex_links,
    sanitize_html,
    sanitize_svg,
)
from support.html_page import Page
from test_offline_pages import feedback_page, formgrade_page

ACTIVE_TAGS = {"script", "iframe", "object", "embed", "meta", "base", "form", "link", "style", "frame", "svg", "math"}


def active_parts(html, allowed_scripts=()):
    """What in html could run script or load a URL: active tags, handlers, javascript: links, the payloads' beacon."""
    page = Page(html)
    found = []
    for tag, attrs in page.elements:
        if tag in ACTIVE_TAGS and (tag, attrs.get("src"), attrs.get("nonce")) not in allowed_scripts:
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                found.append(f"{tag} {name}")
            if value and ("javascript:" in value.lower() or BEACON in value):
                found.append(f"{tag} {name}={value[:40]}")
    return found


@pytest.mark.parametrize("name, payload", sorted(html_payloads("output").items()))
def test_sanitized_html_keeps_no_script_handler_frame_or_outside_resource(name, payload):
    assert active_parts(sanitize_html(payload)) == []


def test_sanitized_html_keeps_what_students_legitimately_show():
    shown = (
        '<table class="dataframe"><tr><th>w</th></tr><tr><td>0.4</td></tr></table>'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="plot"><h2 id="Q1">Question 1</h2>'
        '<a href="#Q1">up</a> <a href="https://pytorch.org/docs">docs</a> <b>bold</b> <code>F.backward()</code>'
    )
    cleaned = sanitize_html(shown)
    for kept in ('class="dataframe"', "<td>0.4</td>", 'src="data:image/png;base64,iVBORw0KGgo="', 'alt="plot"'):
        assert kept in cleaned
    assert 'id="md-Q1"' in cleaned and 'href="#md-Q1"' in cleaned  # anchors work, and name none of the page's
    assert 'href="https://pytorch.org/docs"' in cleaned and "<code>F.backward()</code>" in cleaned
    figures = '<img src="images/graph.svg"><img src="../../api/x"><img src="/pwned/a"><img src="//e.com/x">'
    assert sanitize_html(figures) == '<img src="images/graph.svg"><img><img><img>'  # only beside the notebook


def test_tex_links_go_only_to_the_web_mail_or_an_anchor():
    tex = r"$\href{javascript:alert(1)}{x}$ $\url{ JaVaScript:x}$ $\href{https://pytorch.org}{docs}$ $\href {#q1}{up}$"
    assert safe_tex_links(tex) == r"$\href{#}{x}$ $\url{#}$ $\href{https://pytorch.org}{docs}$ $\href {#q1}{up}$"


def test_svg_pictures_keep_their_drawing_and_lose_scripts_handlers_and_outside_references():
    graph = subprocess.run(
        ["dot", "-Tsvg"], input=b'digraph { x -> "c = x**2" [label="2x"]; edge [arrowhead=vee] }', capture_output=True
    ).stdout.decode()
    cleaned = sanitize_svg(graph)
    assert cleaned is not None and cleaned.count("<text") == graph.count("<text") and "c = x**2" in cleaned
    hostile = (
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
        '<rect fill="url(#g)" onclick="x"/><use href="https://example.com/a.svg#b"/><image href="/pwned/i"/>'
        '<foreignObject><body onload="x"/></foreignObject><animate attributeName="href" to="javascript:x"/></svg>'
    )
    cleaned = sanitize_svg(hostile)
    assert cleaned is not None and 'fill="url(#g)"' in cleaned
    for gone in ("script", "onload", "onclick", "example.com", "/pwned/", "foreignObject", "animate", "alert"):
        assert gone not in cleaned
    assert sanitize_svg("<svg><unclosed") is None or "unclosed" not in sanitize_svg("<svg><unclosed")


def executed_displays():
    """The displays cell of the active-content submission with the outputs a kernel gives it."""
    cell = nbformat.v4.new_code_cell(displays_cell())
    cell.outputs = [nbformat.v4.new_output("display_data", data=d, metadata=m) for d, m in displayed_outputs()]
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=PRINTED + "\n"))
    return cell


def test_autograded_notebooks_are_stored_without_active_outputs():
    cell = executed_displays()
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb, _ = InertOutputs().preprocess(nb, {})
    kinds = [sorted(o.get("data", {})) for o in nb.cells[0].outputs]
    assert all("application/javascript" not in k and not any("widget" in m for m in k) for k in kinds)
    assert ["text/html", "text/plain"] in kinds  # markdown output: sanitized HTML beside its text
    for output in nb.cells[0].outputs:
        for mime, value in output.get("data", {}).items():
            if mime in ("text/html", "image/svg+xml"):
                assert active_parts(value.replace("<svg", "<picture")) == [], mime
    svg = next(o.data["image/svg+xml"] for o in nb.cells[0].outputs if "image/svg+xml" in o.get("data", {}))
    assert 'fill="green"' in svg  # the drawing itself stays
    assert nb.cells[0].outputs[-1].text == PRINTED + "\n"  # printed text is text
    metadata = [o.metadata for o in nb.cells[0].outputs if "image/png" in o.get("data", {})]
    assert metadata == [{}, {}]  # a width that is not a number, and `filenames`, are gone


def page_scripts(html):
    """(tag, src, nonce) of each script element of a page; the CSP's nonce."""
    page = Page(html)
    metas = [a for t, a in page.elements if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert len(metas) == 1, "one Content-Security-Policy"
    nonce = re.search(r"'nonce-([0-9a-f]+)'", metas[0]["content"]).group(1)
    return nonce, metas[0]["content"]


@pytest.mark.parametrize("render", [feedback_page, formgrade_page], ids=["feedback", "formgrade"])
def test_pages_render_a_submissions_active_content_inert_even_when_stored_raw(render, tmp_path):
    nb = active_content_submission()
    index = next(i for i, c in enumerate(nb.cells) if c.source == displays_cell())
    nb.cells[index] = executed_displays()  # outputs as the kernel sent them, not made inert: the page's own layer
    for cell in nb.cells:  # scores, as the feedback page reads them from the gradebook
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader["score"] = 0
    html = render(nb, tmp_path)
    nonce, policy = page_scripts(html)
    body = html[re.search(r'<div[^>]* id="notebook"', html).start() :]
    # the notebook's part of the page: only the page's own MathJax scripts, and no payload at all
    own = {("script", None, nonce)} | {("script", s, nonce) for s in re.findall(r'<script src="([^"]+)" nonce', html)}
    found = [p for p in active_parts(body, own) if not p.startswith("span onclick")]  # the formgrader's name toggle
    assert found == []
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "&lt;b&gt;printed-html&lt;/b&gt;" in html  # printed HTML is shown as text
    assert 'class="dataframe"' in html


def test_the_policy_allows_only_nonce_scripts_and_the_pages_own_inline_code():
    own = '<span onclick="toggle_name(true);"></span><script>\n  $(".x").tooltip();\n  </script>'
    policy = content_security_policy("abc", own, same_origin=True)
    script_src = next(p for p in policy.split("; ") if p.startswith("script-src"))
    assert "'nonce-abc'" in script_src and script_src.count("'sha256-") == 2 and "'self'" not in script_src
    assert (
        "img-src 'self' data:" in policy
        and "img-src data:" in content_security_policy("abc")
        and "frame-src 'none'" in policy
        and "connect-src 'self'" in policy
    )
    assert "connect-src 'none'" in content_security_policy("abc")
