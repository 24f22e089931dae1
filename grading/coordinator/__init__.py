"""The coordinator: grading a class (make autograde), nbgrader's steps around the execution, gradebook writes,
resume, the report of faults; and the execute step nbgrader autograde uses."""
