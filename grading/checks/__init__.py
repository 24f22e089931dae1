"""The checks and the judge: hidden checks run outside the student's kernel on plain data it answers; the public
checks, shipped beside the notebook, share their helpers."""
