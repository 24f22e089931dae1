"""What a submission shows is data: its outputs and markdown reach no one's browser as active content.

A submission's outputs and markdown cells are the student's. Shown raw, a `<script>`, an `onerror` handler or a
`javascript:` link would run with the rights of whoever looks: the instructor's formgrader login, or a student's
feedback page. Three layers keep them inert:

- `InertOutputs` (an nbgrader preprocessor, after execution in `c.Autograde.autograde_preprocessors`, and in
  `c.HTMLExporter.preprocessors`): the autograded notebook is stored without active outputs, and pages render none.
  Mime types that run code (JavaScript, widgets, anything unknown) are dropped; HTML is sanitized; SVG keeps only
  drawing elements; markdown outputs become sanitized HTML; output metadata keeps only numeric sizes and alt text
  (nbconvert writes sizes into attributes unquoted, and `filenames` as an image's address).
- `clean_html` and `markdown2html` (filters of nbconvert's HTMLExporter, `c.HTMLExporter.filters`): every page
  nbconvert renders for the course (the formgrader's grading page, feedback) sanitizes HTML outputs and markdown
  cells once more as it renders them, markdown cells included, which stay as the student wrote them in the notebook.
- `content_security_policy` (used by the course's page templates): a Content-Security-Policy in each such page that
  runs only the page's own scripts, in case anything ever got past the sanitizer.

The sanitizer is nh3 (the Ammonia HTML sanitizer): an allow-list of tags and attributes, no `style`, no event
handlers, links to http(s), mailto and the page's own anchors only, images only from data: URLs or beside the
notebook.
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from typing import Any

import jinja2
import nh3
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbgrader.preprocessors import NbGraderPreprocessor

# outputs shown as they are: text, LaTeX (typeset by MathJax, whose links the pages' policy keeps inert) and pictures
PLAIN_MIME_TYPES = frozenset({"text/plain", "text/latex", "image/png", "image/jpeg", "image/gif", "application/json"})
# ids (of headings) are prefixed, so that no id a student writes can stand for one of the page's
ID_PREFIX = "md-"
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*\Z")
_SAFE_LINK = re.compile(r"(https?:|mailto:|#)", re.IGNORECASE)
# an image beside the notebook (a figure the formgrader serves from the submission's folder): a relative path, no ".."
_SUBMISSION_FILE = re.compile(r"(?![a-zA-Z][a-zA-Z0-9+.-]*:)(?!\.\./)(?!.*/\.\./)[^/\\\s][^\\\s]*\Z")

HTML_TAGS = frozenset(nh3.ALLOWED_TAGS) - {"area", "map"}
GENERIC_ATTRIBUTES = {"class", "title", "lang", "dir", "align"}
HTML_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()},
    **{f"h{level}": {"id"} for level in range(1, 7)},
    "*": GENERIC_ATTRIBUTES,
}

# what an SVG picture needs to draw (graphviz's, matplotlib's): shapes, text, groups, gradients, clips, markers
SVG_TAGS = frozenset(
    "svg g defs symbol use title desc path rect circle ellipse line polyline polygon text tspan textPath "
    "linearGradient radialGradient stop clipPath mask marker pattern image".split()
)
SVG_ATTRIBUTES = frozenset(
    "id class width height viewBox preserveAspectRatio x y x1 y1 x2 y2 cx cy r rx ry d points transform "
    "fill fill-opacity fill-rule stroke stroke-width stroke-opacity stroke-dasharray stroke-dashoffset "
    "stroke-linecap stroke-linejoin stroke-miterlimit opacity font-family font-size font-weight font-style "
    "text-anchor dominant-baseline alignment-baseline baseline-shift dx dy rotate textLength lengthAdjust "
    "offset stop-color stop-opacity gradientUnits gradientTransform spreadMethod fx fy clip-path clip-rule "
    "clipPathUnits mask maskUnits maskContentUnits markerWidth markerHeight markerUnits refX refY orient "
    "marker-start marker-mid marker-end patternUnits patternContentUnits patternTransform visibility display "
    "version xmlns href xlink:href xmlns:xlink".split()
)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: links only to the web, mail or the page's own anchors; images only from data:."""
    if attribute == "id":
        return ID_PREFIX + value
    if attribute in ("href", "xlink:href"):
        value = value.strip()
        if tag in ("use", "textPath", "linearGradient", "radialGradient", "pattern"):
            return value if value.startswith("#") else None  # a reference inside the picture itself
        if tag == "image":
            return value if _DATA_IMAGE.match(value) else None
        if not _SAFE_LINK.match(value):
            return None
        return "#" + ID_PREFIX + value[1:] if value.startswith("#") else value
    if attribute == "src":
        return value if tag == "img" and (_DATA_IMAGE.match(value.strip()) or _SUBMISSION_FILE.match(value)) else None
    if attribute in ("fill", "stroke", "clip-path", "mask", "marker-start", "marker-mid", "marker-end"):
        # url() may name only something inside the picture
        urls = re.findall(r"url\(\s*['\"]?([^)'\"]*)", value)
        return value if all(u.strip().startswith("#") for u in urls) else None
    return value


_TEX_LINK = re.compile(r"\\(href|url)(\s*)\{([^}]*)\}")


def safe_tex_links(tex: str) -> str:
    """TeX whose \\href and \\url links (which MathJax turns into links) go only to the web, mail or an anchor."""
    return _TEX_LINK.sub(lambda m: m.group(0) if _SAFE_LINK.match(m.group(3).strip()) else f"\\{m[1]}{m[2]}{{#}}", tex)


def sanitize_html(html: str) -> str:
    """HTML without scripts, event handlers, styles, frames, forms or outside resources; text and tables kept."""
    return safe_tex_links(_clean_html(html))


def _clean_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(HTML_TAGS),
        attributes=HTML_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def sanitize_svg(svg: str) -> str | None:
    """An SVG picture with only what draws it (no script, handler, foreign content or outside reference), or None
    when what is left is not a well-formed picture."""
    cleaned = nh3.clean(
        svg,
        tags=set(SVG_TAGS),
        attributes={"*": set(SVG_ATTRIBUTES)},
        attribute_filter=_keep_attribute,
        url_schemes={"data"},
        link_rel=None,
        strip_comments=True,
    )
    cleaned = cleaned.replace("&nbsp;", "&#160;")  # HTML serialisation; the picture is XML
    # nh3 prefixes ids (above) but not what refers to them inside the picture: take the prefix away again
    cleaned = cleaned.replace(f'id="{ID_PREFIX}', 'id="')
    cleaned = re.sub(r'(href|url\(\s*["\']?)#' + ID_PREFIX, r"\1#", cleaned)
    try:
        root = ElementTree.fromstring(cleaned)
    except ElementTree.ParseError:
        return None
    return cleaned if root.tag.rsplit("}", 1)[-1] == "svg" else None


def markdown_to_safe_html(source: str) -> str:
    """A markdown output as sanitized HTML (formulas stay as text, for MathJax)."""
    return sanitize_html(markdown2html_mistune(source))


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def inert_output(output: Any) -> tuple[Any, list[str]]:
    """One output made inert in place; what was dropped or changed, by mime type."""
    changes: list[str] = []
    data = output.get("data")
    if output.get("output_type") not in ("display_data", "execute_result") or not isinstance(data, dict):
        return output, changes
    for mime in list(data):
        if mime == "text/latex":
            data[mime] = safe_tex_links(_text(data[mime]))
            continue
        if mime in PLAIN_MIME_TYPES:
            continue
        if mime == "text/html":
            data[mime] = sanitize_html(_text(data[mime]))
        elif mime == "text/markdown":
            data["text/html"] = markdown_to_safe_html(_text(data.pop(mime)))
        elif mime == "image/svg+xml":
            picture = sanitize_svg(_text(data[mime]))
            if picture is None:
                del data[mime]
            else:
                data[mime] = picture
        else:
            del data[mime]
        changes.append(mime)
    if not data:
        data["text/plain"] = "[an output that could only run code was removed]"
    if "metadata" in output:
        output["metadata"] = inert_metadata(output["metadata"], data)
    return output, changes


def _dimension(value: Any) -> int | float | None:
    """A width or height as a number (nbconvert writes it into an attribute unquoted), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and 0 <= value < 1e6:
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,6}(\.\d{1,3})?", value.strip()):
        return float(value)
    return None


def _picture_metadata(metadata: Any) -> dict[str, Any]:
    """What nbconvert reads of an output's (or one mime type's) metadata, checked: numeric width and height, text
    alt, the image flags; never `filenames` (it would become an image's src) or anything else."""
    kept: dict[str, Any] = {}
    if not isinstance(metadata, dict):
        return kept
    for key in ("width", "height"):
        if (number := _dimension(metadata.get(key))) is not None:
            kept[key] = number
    if isinstance(metadata.get("alt"), str):
        kept["alt"] = metadata["alt"][:1000]
    for flag in ("unconfined", "needs_background", "isolated"):
        if isinstance(metadata.get(flag), bool | str) and len(str(metadata[flag])) < 20:
            kept[flag] = metadata[flag]
    return kept


def inert_metadata(metadata: Any, data: dict[str, Any]) -> dict[str, Any]:
    """An output's metadata reduced to what pictures need, for the mime types the output still has."""
    kept = _picture_metadata(metadata)
    if isinstance(metadata, dict):
        for mime in data:
            if (picture := _picture_metadata(metadata.get(mime))) and mime.startswith("image/"):
                kept[mime] = picture
    return kept


class InertOutputs(NbGraderPreprocessor):
    """Outputs made inert: in the autograded notebook as it is stored, and again in every page nbconvert renders for
    the course (c.HTMLExporter.preprocessors), so that an output's metadata never reaches a page's attributes
    unchecked (see the module's docstring)."""

    def preprocess_cell(self, cell: Any, resources: dict[str, Any], index: int) -> tuple[Any, dict[str, Any]]:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                inert_output(output)
        if "attachments" in cell:
            for name, bundle in list(cell.attachments.items()):
                kept = {m: v for m, v in bundle.items() if m in PLAIN_MIME_TYPES or m == "image/svg+xml"}
                if "image/svg+xml" in kept:
                    picture = sanitize_svg(base64.b64decode(_text(kept["image/svg+xml"])).decode(errors="replace"))
                    if picture is None:
                        del kept["image/svg+xml"]
                    else:
                        kept["image/svg+xml"] = base64.b64encode(picture.encode()).decode()
                if kept:
                    cell.attachments[name] = kept
                else:  # nothing left to show: an empty bundle would stop nbconvert from rendering the page
                    del cell.attachments[name]
        return cell, resources


# --- nbconvert's pages -----------------------------------------------------------------------------------------------

_MARKDOWN = HTMLExporter(embed_images=True)  # the course's setting (nbgrader_config.py: c.HTMLExporter.embed_images)


def clean_html(html: Any) -> str:
    """nbconvert's clean_html filter (HTML outputs, raw cells, highlighted code), with the course's sanitizer."""
    return sanitize_html(_text(html))


@jinja2.pass_context
def markdown2html(context: Any, source: str) -> str:
    """nbconvert's markdown2html filter (images embedded, attachments), its HTML sanitized: nbgrader's formgrade
    template renders markdown cells without nbconvert's own sanitizing."""
    return sanitize_html(_MARKDOWN.markdown2html(context, source))


class _InlineScripts(HTMLParser):
    """The inline scripts and event handlers of a piece of HTML the page's template wrote itself."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sources += [value or "" for name, value in attrs if name.startswith("on")]
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._script = []

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.sources.append("".join(self._script))
            self._script = None


def script_hashes(html: str) -> list[str]:
    """CSP hash sources of the inline scripts and handlers in html (the page's own, written by its template)."""
    parser = _InlineScripts()
    parser.feed(str(html))
    digests = {base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in parser.sources}
    return sorted(f"'sha256-{d}'" for d in digests)


def content_security_policy(nonce: str, own_html: str = "", *, same_origin: bool = False) -> str:
    """The policy of a page showing a submission: scripts only with the page's nonce (and what they load) or the
    page's own inline scripts and handlers in own_html; no frames, plugins, forms or outside resources.
    same_origin: the page may load styles and fonts from its server and call its API (the formgrader)."""
    own = "'self' " if same_origin else ""
    connect = "'self'" if same_origin else "'none'"
    scripts = " ".join([f"'nonce-{nonce}'", "'strict-dynamic'", "'unsafe-hashes'", *script_hashes(own_html)])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {own}'unsafe-inline'",
            f"font-src {own}data:",
            f"img-src {own}data:",
            f"connect-src {connect}",
            "object-src 'none'",
            "frame-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
