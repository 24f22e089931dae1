"""The engine (grading/engine/) is the bottom layer: it imports nothing of the coordinator, the judge or the reports."""

import ast
from pathlib import Path

import grading.engine

ABOVE = ("grading.coordinator", "grading.checks", "grading.reports", "grading.course_kit")


def test_the_engine_imports_nothing_above_it():
    found = []
    for path in Path(grading.engine.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.name}: {name}" for name in names if name.startswith(ABOVE)]
    assert found == []
