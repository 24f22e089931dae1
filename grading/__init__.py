"""What the course needs beyond nbgrader: submissions built from answers, sandboxed class grading, reports."""

import sys

# nbformat validates notebooks with jsonschema, which imports rfc3987_syntax where it is installed (jupyter_server's
# requirements bring it) to check the "iri" string format; that import compiles some thirty grammars, about a second
# of CPU in every process that reads a notebook (python-jsonschema/jsonschema#1428). No notebook schema uses that
# format, so the course's processes go without it: jsonschema then simply does not check "iri" strings.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
