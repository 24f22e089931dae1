# Backpropagation using PyTorch: an nbgrader course. `make demo` grades a demo class; `make test` runs the tests.
SHELL := /bin/bash
ASSIGNMENT := backprop
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# MathJax that feedback pages inline, so that they typeset their formulas offline (grading/reports/offline_pages.py): npm's
# package, pinned, installed in the virtual environment ($(VENV)/lib/node_modules/mathjax)
MATHJAX_VERSION := 3.2.2
MATHJAX := $(VENV)/.mathjax-$(MATHJAX_VERSION)
SYSTEM_PACKAGES := graphviz:dot bubblewrap:bwrap npm:npm
# optional: the sandboxed kernels' malloc (c.Sandbox.allocator; without it they grade with the C library's, slower),
# and the fonts the graphs name (Helvetica, Arial: Liberation Sans has their metrics; DejaVu Sans is a fifth wider)
OPTIONAL_PACKAGES := libjemalloc2 fonts-liberation
# make test also drives JupyterLab in Debian's Chromium
test: SYSTEM_PACKAGES += chromium:chromium

.PHONY: demo test lint test-quick catalogue setup constraints system-packages figures release autograde feedback grades report lab clean

## demo: build what is missing, grade a demo class (its roster, students.csv, imported first), write feedback,
## grades.csv and the LMS uploads, print the class table
demo: release
	python -m grading.course_kit.demo_class
	$(MAKE) --no-print-directory roster
	$(MAKE) --no-print-directory autograde FORCE=1
	$(MAKE) --no-print-directory feedback grades
	python -m grading.reports.class_grades
	$(MAKE) --no-print-directory report

# the tests run in TEST_PROCESSES processes (pytest-xdist), each test module whole in one of them
TEST_PROCESSES ?= 2
PYTEST := python -m pytest -q -n $(TEST_PROCESSES) --dist loadscope --no-loadscope-reorder

## test: lint, then the whole test suite (slow tests included); prints its 15 slowest tests
test: lint release system-packages
	$(PYTEST) --durations=15 tests

## lint: ruff (formatting and lint rules) and mypy (grading/) over the Python code; settings in pyproject.toml
lint: setup
	ruff format --check --quiet .
	ruff check --quiet .
	mypy

## test-quick: the fast tests only
test-quick: release
	$(PYTEST) -m "not slow" tests

## catalogue: grade the synthetic submissions of grading/course_kit/submission_catalogue.py and print
## "correct accepted A/B; wrong caught C/D; collateral E" (and any submission graded wrongly)
catalogue: release
	python tests/support/catalogue_report.py

setup: $(VENV)/.installed $(MATHJAX) system-packages

# the course's own package (grading/) is installed too, so that nbgrader, Dask and the instructor notebook import it
# requirements.txt names what the course uses; constraints.txt pins every package at the version tested
$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

## constraints: after changing requirements.txt, install it into .venv without the old pins, then write constraints.txt:
## every package requirements.txt brings (resolved afresh, nothing else .venv holds) at the version .venv has
constraints:
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip freeze --all --exclude-editable --disable-pip-version-check > $(VENV)/constraints-freeze.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --dry-run --ignore-installed \
	  --report $(VENV)/constraints-report.json -r requirements.txt -c $(VENV)/constraints-freeze.txt
	{ echo "# Every package that requirements.txt brings, at the exact version tested. grading/ uses private APIs of"; \
	  echo "# jupyter_client and nbclient, so make setup installs with: pip install -r requirements.txt -c constraints.txt"; \
	  echo "# Written by make constraints (run it after changing requirements.txt): requirements.txt resolved afresh"; \
	  echo "# against the versions pip freeze lists in .venv; local version labels are dropped (torch==2.13.0 matches"; \
	  echo "# the CPU build 2.13.0+cpu)."; \
	  $(VENV)/bin/python -c 'import json, sys; found = [i["metadata"] for i in json.load(open(sys.argv[1]))["install"]]; \
	    found.sort(key=lambda m: m["name"].lower()); \
	    print("\n".join("%s==%s" % (m["name"], m["version"].split("+")[0]) for m in found))' \
	    $(VENV)/constraints-report.json; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -f $(VENV)/constraints-freeze.txt $(VENV)/constraints-report.json

# MathJax for feedback pages (MATHJAX_VERSION above)
$(MATHJAX): | $(VENV)/.installed system-packages
	npm install --global --prefix $(VENV) --ignore-scripts --no-audit --no-fund --silent mathjax@$(MATHJAX_VERSION)
	rm -f $(VENV)/.mathjax-*
	touch $@

## system-packages: Debian packages the course needs (installed when running as root)
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair#*:}" >/dev/null || missing="$$missing $${pair%%:*}"; done; \
	optional=""; for package in $(OPTIONAL_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q "ok installed" || optional="$$optional $$package"; done; \
	if [ -n "$$missing$$optional" ] && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing$$missing$$optional"; apt-get update -qq; \
	  if [ -n "$$optional" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$optional \
	    || echo "Could not install$$optional: grading goes on without it, slower"; fi; \
	  if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; fi; \
	elif [ -n "$$missing" ]; then echo "Missing Debian packages. Install them with: sudo apt-get install -y$$missing$$optional"; exit 1; \
	elif [ -n "$$optional" ]; then echo "Optional: sudo apt-get install -y$$optional (grading is faster with it)"; fi

## figures: draw the figures from their Graphviz sources
figures: $(patsubst %.dot,%.svg,$(wildcard images/*.dot))

images/%.svg: images/%.dot | system-packages
	dot -Tsvg $< -o $@

## release: the student version, generated from source/ by nbgrader, with its figures; first the test cells and points
## of the instructor notebook are written from the questions' declarations (grading/checks/backprop_questions.py)
release: setup figures
	python -m grading.course_kit.question_cells
	nbgrader generate_assignment $(ASSIGNMENT) --force --log-level=WARN
	mkdir -p release/$(ASSIGNMENT)/images
	cp images/*.svg release/$(ASSIGNMENT)/images/

## autograde: grade every submission in submitted/, each executed in a bubblewrap sandbox, WORKERS at a time
## (default: the number of cores); FORCE=1 regrades students already graded; UNSAFE_NO_SANDBOX=1 grades
## without the sandbox (only where bubblewrap cannot run; student code then runs as you)
## DASK=tcp://host:8786 executes on that Dask cluster's workers, each in its own sandbox (README: Grading on several machines)
autograde: setup figures
	python -m grading.coordinator.autograde_class $(ASSIGNMENT) $(if $(WORKERS),--workers $(WORKERS)) \
	  $(if $(FORCE),--force) $(if $(UNSAFE_NO_SANDBOX),--unsafe-no-sandbox) $(if $(DASK),--dask $(DASK))

## feedback: per-student feedback HTML (hidden tests left out) in feedback/; a student whose page nbgrader cannot
## write is named at the end, with why and what to do, and the others' pages are written (exit status 0 unless
## nbgrader stopped for a reason of its own: grading/reports/feedback_pages.py)
feedback: figures | $(MATHJAX)
	python -m grading.reports.feedback_pages $(ASSIGNMENT) --force --log-level=WARN

## grades: grades.csv from the gradebook (every student of the roster, 0 without a submission), and the grade uploads
## for Canvas and Moodle (grading/reports/lms.py): build/lms/canvas_grades.csv, build/lms/moodle_grades.csv
grades:
	nbgrader export --log-level=WARN
	nbgrader export --exporter=grading.reports.lms.CanvasExport --log-level=WARN
	nbgrader export --exporter=grading.reports.lms.MoodleExport --log-level=WARN
	@echo "wrote grades.csv, build/lms/canvas_grades.csv and build/lms/moodle_grades.csv"

.PHONY: roster collect-lms
## roster: import students.csv (id, first_name, last_name, email; optionally lms_user_id) into the gradebook, so that
## grades and the report list every student, those who submitted nothing too
roster:
	nbgrader db student import students.csv --log-level=WARN

## collect-lms: ZIP=path/to/submissions.zip: Canvas's "Download Submissions" zip into submitted/<id>/backprop/
## (nbgrader zip_collect, after the roster's import; a student's earlier submission is replaced); files that match no
## student are skipped and named; build/downloaded/backprop/collected.csv says what became of each file
collect-lms:
	@test -n "$(ZIP)" && test -f "$(ZIP)" || { echo "usage: make collect-lms ZIP=path/to/submissions.zip"; exit 2; }
	$(MAKE) --no-print-directory roster
	rm -rf build/downloaded/$(ASSIGNMENT)
	mkdir -p build/downloaded/$(ASSIGNMENT)/archive
	cp "$(ZIP)" build/downloaded/$(ASSIGNMENT)/archive/
	nbgrader zip_collect $(ASSIGNMENT) --force --log-level=WARN
	@echo "collected into submitted/; each file and what became of it: build/downloaded/$(ASSIGNMENT)/collected.csv"

## report: build/report/: grades.csv (student x question), report.html with charts (also as PNG)
report:
	python -m grading.reports.class_report

## lab: JupyterLab with nbgrader's extensions (Validate, formgrader, assignment list) on 127.0.0.1, in the course
lab: setup
	jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root)

## hub: JupyterHub on 127.0.0.1:$(HUB_PORT) serving the class of students.csv and an instructor, each user a Unix
## account with JupyterLab on an origin of their own, <user>.$(HUB_DOMAIN) (run as root: makes the accounts, the
## instructor's course directory and nbgrader's exchange under $(HUB_ROOT), then serves until Ctrl-C; README: The class
## on JupyterHub)
HUB_ROOT ?= /srv/backprop-hub
HUB_PORT ?= 8000
HUB_INSTRUCTOR ?= instructor
# the hub's domain: localhost (http://localhost:$(HUB_PORT), users at http://<user>.localhost:$(HUB_PORT)), or the
# site's own (https://$(HUB_DOMAIN), users at https://<user>.$(HUB_DOMAIN): wildcard DNS and TLS certificate needed)
HUB_DOMAIN ?= localhost
HUB_URL = $(if $(filter localhost,$(HUB_DOMAIN)),http://localhost:$(HUB_PORT),https://$(HUB_DOMAIN))
HUB_INSTRUCTOR_URL = $(if $(filter localhost,$(HUB_DOMAIN)),http://$(HUB_INSTRUCTOR).localhost:$(HUB_PORT),https://$(HUB_INSTRUCTOR).$(HUB_DOMAIN))
.PHONY: hub
# the hub's proxy runs on Node.js; as root (the hub runs as root), patchelf, with which hub/setup_hub.py copies a
# Python that other accounts cannot reach
hub test: SYSTEM_PACKAGES += nodejs:node $(if $(filter 0,$(shell id -u)),patchelf:patchelf)
hub: setup figures
	python hub/setup_hub.py --hub-root $(HUB_ROOT) --roster students.csv --instructor $(HUB_INSTRUCTOR)
	@echo "[hub] open $(HUB_URL)/ (the formgrader: $(HUB_INSTRUCTOR_URL)/user/$(HUB_INSTRUCTOR)/formgrader)"
	HUB_ROOT=$(HUB_ROOT) HUB_PORT=$(HUB_PORT) HUB_DOMAIN=$(HUB_DOMAIN) jupyterhub -f hub/jupyterhub_config.py

clean:
	rm -rf submitted autograded feedback gradebook.db grades.csv build
