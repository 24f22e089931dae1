"""A submission that shows active content everywhere a student can put it, for the tests of inert pages.

Each payload, if a page ever ran its script or loaded what it names, asks the page's server for `/pwned/<name>`; a
script also tries what an attacker in the instructor's browser would: open a terminal and write a file through
JupyterLab's API, give itself full marks through the formgrader's. The tests watch every request the page makes and
then check the server: no terminal, no file, no grade changed.

The payloads are shown as HTML outputs, markdown outputs, SVG, JavaScript, LaTeX and widget outputs, in the student's
own markdown cells and in the written answer of Question 6 (a graded markdown cell, rendered by the formgrader's own
template); HTML in printed text and in an error message must appear as text.
"""

from __future__ import annotations

import json

from .submissions import build_submission, solution_answers

BEACON = "/pwned/"
# the script every active payload would run: a request the test sees, then the attacks
SCRIPT = (
    "fetch(`/pwned/{name}`);"
    "var x=(document.cookie.match(/_xsrf=([^;]+)/)||[])[1];"
    "var h={{'X-XSRFToken':x,'Content-Type':'application/json'}};"
    "fetch(`/api/terminals`,{{method:`POST`,headers:h}});"
    "fetch(`/api/contents/pwned-{name}.txt`,{{method:`PUT`,headers:h,"
    "body:JSON.stringify({{type:`file`,format:`text`,content:`pwned`}})}});"
    "fetch(`/formgrader/api/grade/all`,{{method:`PUT`,headers:h,body:`{{}}`}});"
)


def script(name: str) -> str:
    return SCRIPT.format(name=name)


def html_payloads(where: str) -> dict[str, str]:
    """name -> HTML that would run script or load a URL if shown raw; names carry `where` they are shown."""
    n = {kind: f"{where}-{kind}" for kind in HTML_KINDS}
    return {
        n["script-tag"]: f"<script>{script(n['script-tag'])}</script>",
        n["img-onerror"]: f'<img src="x" onerror="{script(n["img-onerror"])}">',
        n["svg-onload"]: f'<svg onload="{script(n["svg-onload"])}"><circle r="2"/></svg>',
        n["body-onload"]: f'<body onload="{script(n["body-onload"])}">body</body>',
        n["details-ontoggle"]: f'<details open ontoggle="{script(n["details-ontoggle"])}">d</details>',
        n["iframe-srcdoc"]: f'<iframe srcdoc="&lt;script&gt;{script(n["iframe-srcdoc"])}&lt;/script&gt;"></iframe>',
        n["iframe-src"]: f'<iframe src="{BEACON}{n["iframe-src"]}"></iframe>',
        n["object-data"]: f'<object data="{BEACON}{n["object-data"]}"></object>',
        n["embed-src"]: f'<embed src="{BEACON}{n["embed-src"]}">',
        n["meta-refresh"]: f'<meta http-equiv="refresh" content="0;url={BEACON}{n["meta-refresh"]}">',
        n["javascript-link"]: f'<a class="pwned-link" href="javascript:{script(n["javascript-link"])}">link</a>',
        n["css-url"]: f'<div style="background-image:url({BEACON}{n["css-url"]})">styled</div>',
        n["css-import"]: f"<style>@import url({BEACON}{n['css-import']});</style>",
        n["link-stylesheet"]: f'<link rel="stylesheet" href="{BEACON}{n["link-stylesheet"]}">',
        n["img-src"]: f'<img src="{BEACON}{n["img-src"]}">',
        n["base-href"]: f'<base href="{BEACON}{n["base-href"]}/">',
        n["form-action"]: f'<form action="{BEACON}{n["form-action"]}"><button class="pwned-link">go</button></form>',
        n["mxss"]: f'<math><mtext><table><mglyph><style><img src=x onerror="{script(n["mxss"])}">',
    }


HTML_KINDS = [
    "script-tag",
    "img-onerror",
    "svg-onload",
    "body-onload",
    "details-ontoggle",
    "iframe-srcdoc",
    "iframe-src",
    "object-data",
    "embed-src",
    "meta-refresh",
    "javascript-link",
    "css-url",
    "css-import",
    "link-stylesheet",
    "img-src",
    "base-href",
    "form-action",
    "mxss",
]

SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="20" '
    'onload="{on}"><script>{script}</script><rect width="40" height="20" fill="green" onclick="{on}"/>'
    '<foreignObject width="10" height="10"><body xmlns="http://www.w3.org/1999/xhtml" onload="{on}"/></foreignObject>'
    '<image href="{beacon}svg-image" width="5" height="5"/><a xlink:href="javascript:{on}"><text y="15">svg</text></a>'
    "</svg>"
)
PRINTED = "<b>printed-html</b><script>never</script>"  # what a student prints is shown as text


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def displayed_outputs() -> list[tuple[dict, dict]]:
    """(data, metadata) of every output the displays cell shows: each payload in each kind of output, and metadata
    that nbconvert would write into a page (a width written unquoted, `filenames` written as an image's src)."""
    html, markdown = html_payloads("html-output"), html_payloads("markdown-output")
    svg_script = script("svg-output")
    svg = SVG.format(on=svg_script.replace('"', "&quot;"), script=svg_script, beacon=BEACON)
    attributes = f"1 onerror={script('width-metadata').replace(' ', '')} data-toggle=modal data-remote=backprop.ipynb"
    return [
        ({"text/html": "".join(html.values()), "text/plain": "html"}, {}),
        ({"text/markdown": "Some *markdown* output.\n\n" + "\n\n".join(markdown.values()), "text/plain": "md"}, {}),
        ({"image/svg+xml": svg, "text/plain": "svg"}, {}),
        ({"application/javascript": script("javascript-output"), "text/plain": "js"}, {}),
        ({"text/latex": r"$\href{javascript:" + script("latex-output") + r"}{x^2}$", "text/plain": "latex"}, {}),
        ({"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2}, "text/plain": "w"}, {}),
        ({"text/html": f'<table class="dataframe"><tr><th>a</th></tr><tr><td>{PRINTED[:3]}1</td></tr></table>'}, {}),
        ({"image/png": PNG, "text/plain": "width"}, {"image/png": {"width": attributes, "height": attributes}}),
        ({"image/png": PNG, "text/plain": "filenames"}, {"filenames": {"image/png": f"{BEACON}filenames-metadata"}}),
    ]


def displays_cell() -> str:
    """A code cell that shows every payload in every kind of output."""
    lines = ["from IPython.display import display"]
    lines += [
        f"display({json.dumps(data)}, raw=True, metadata={json.dumps(meta)})" for data, meta in displayed_outputs()
    ]
    lines += [f"print({PRINTED!r})"]
    return "\n".join(lines)


def markdown_cell_payloads() -> str:
    return "My own notes, with $F = c \\cdot s$.\n\n" + "\n\n".join(html_payloads("markdown-cell").values())


def q6_payloads() -> str:
    return "Forward mode wins for few inputs.\n\n" + "\n\n".join(html_payloads("q6-answer").values())


def active_content_submission():
    """Correct answers, with every payload shown: in a new code cell of displays, in a new markdown cell of the
    student's, and in Question 6's written answer."""
    import nbformat

    answers = solution_answers()
    answers["q6_answer"] = q6_payloads()
    nb = build_submission(answers)
    first = next(i for i, cell in enumerate(nb.cells) if cell.metadata.get("nbgrader", {}).get("solution"))
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(displays_cell()))
    nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(markdown_cell_payloads()))
    return nb


def payload_names() -> list[str]:
    """Every name a payload would report, if any ran or loaded."""
    names = [
        name
        for where in ("html-output", "markdown-output", "markdown-cell", "q6-answer")
        for name in html_payloads(where)
    ]
    return names + ["svg-output", "javascript-output", "latex-output", "width-metadata", "filenames-metadata"]
