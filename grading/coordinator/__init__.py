"""The coordinator: grading a class (make autograde), nbgrader's steps around the execution, gradebook writes,
resume, the report of faults; and the execute step nbgrader autograde uses."""

import sys

# nbformat imports jsonschema, which builds a grammar for its "iri" format checks as it is imported: about 1.4
# core-seconds in each process, the coordinator and each of its workers (they import this package first). Nothing
# here checks a format (nbformat and nbgrader validate without a format checker), so the grammar is left out
# (jsonschema then has no "iri" check). A process that imported it already keeps it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
