"""Reports: the class table and report, offline feedback and formgrader pages, the LMS connections."""
