"""What the course needs beyond nbgrader: submissions built from answers, sandboxed class grading, reports."""
