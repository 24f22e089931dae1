"""nbgrader's HTML pages without the network: the feedback page and the formgrader's grading page typeset their
formulas with MathJax from this machine, and the figures of a feedback page travel inside it.

nbgrader's `feedback` and `formgrade` templates call nbconvert's `mathjax()` macro without a URL, so the page gets
the macro's default, a CDN, whatever `HTMLExporter.mathjax_url` says. nbgrader_config.py puts TEMPLATE_BASEDIRS in
`HTMLExporter.extra_template_basedirs`, where the course's `mathjax.html.j2` is found before nbconvert's:

- `feedback/`: MathJax 3 inlined in the page (the `inline_mathjax` filter below), from npm's `mathjax` package that
  `make setup` installs in the virtual environment; a student's feedback is one HTML file that typesets offline;
- `formgrade/`: MathJax 2 (the formgrader's script uses MathJax 2's API), served by JupyterLab itself through the
  jupyter_server_mathjax extension (requirements.txt);
- `classic/base.html.j2`: SVG outputs get alt text as nbconvert gives it to PNG and JPEG outputs.
"""

import re
import sys
from pathlib import Path

import markupsafe
import nbgrader

TEMPLATES = Path(__file__).with_name("page_templates")
# nbgrader's own templates (feedback, formgrade) stay on the path: its converters add them only when this is unset
NBGRADER_TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
TEMPLATE_BASEDIRS = [str(TEMPLATES), str(NBGRADER_TEMPLATES)]

# npm install --global --prefix .venv mathjax@<version> (the Makefile) puts the package here
MATHJAX = Path(sys.prefix) / "lib" / "node_modules" / "mathjax"
# what feedback/mathjax.html.j2 inlines: TeX input with every TeX extension, SVG output (glyphs as paths: no font
# files to fetch), in one file
MATHJAX_COMPONENT = "es5/tex-svg-full.js"


def mathjax_version() -> str:
    """The version of the MathJax that feedback pages inline ("" when it is missing)."""
    package = MATHJAX / "package.json"
    match = re.search(r'"version"\s*:\s*"([^"]+)"', package.read_text()) if package.exists() else None
    return match.group(1) if match else ""


def inline_mathjax(component: str) -> markupsafe.Markup:
    """A MathJax component's code, fit for the inside of a <script> element (a Jinja filter of the feedback page)."""
    path = MATHJAX / component
    if not path.is_file():
        raise FileNotFoundError(f"MathJax is missing ({path}): `make setup` installs it")
    code = path.read_text(encoding="utf-8")
    # In a <script> element "</script" would end it and "<!--" changes how the rest is parsed; the escapes below mean
    # the same characters inside a JavaScript string or regular expression, the only places they occur.
    code = re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE).replace("<!--", "<\\x21--")
    return markupsafe.Markup(code)  # noqa: S704 - the package's code, not user input
