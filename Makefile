# Backpropagation using PyTorch: an nbgrader course. `make demo` grades a demo class; `make test` runs the tests.
SHELL := /bin/bash
ASSIGNMENT := backprop
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
SYSTEM_PACKAGES := graphviz:dot bubblewrap:bwrap

.PHONY: demo test test-quick setup system-packages figures release autograde feedback grades clean

## demo: build what is missing, grade a demo class, write feedback and grades.csv, print the class table
demo: release
	python -m grading.demo_class
	nbgrader autograde $(ASSIGNMENT) --force --log-level=WARN
	$(MAKE) --no-print-directory feedback grades
	python -m grading.class_grades

## test: the whole test suite (slow tests included)
test: release
	python -m pytest -q tests

## test-quick: the fast tests only
test-quick: release
	python -m pytest -q -m "not slow" tests

setup: $(VENV)/.installed system-packages

$(VENV)/.installed: requirements.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

## system-packages: Debian packages the course needs (installed when running as root)
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair#*:}" >/dev/null || missing="$$missing $${pair%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	  else echo "Missing Debian packages. Install them with: sudo apt-get install -y$$missing"; exit 1; fi; fi

## figures: draw the figures from their Graphviz sources
figures: $(patsubst %.dot,%.svg,$(wildcard images/*.dot))

images/%.svg: images/%.dot | system-packages
	dot -Tsvg $< -o $@

## release: the student version, generated from source/ by nbgrader, with its figures
release: setup figures
	nbgrader generate_assignment $(ASSIGNMENT) --force --log-level=WARN
	mkdir -p release/$(ASSIGNMENT)/images
	cp images/*.svg release/$(ASSIGNMENT)/images/

## feedback: per-student feedback HTML (hidden tests left out) in feedback/
feedback:
	nbgrader generate_feedback $(ASSIGNMENT) --force --log-level=WARN

## grades: grades.csv from the gradebook
grades:
	nbgrader export --log-level=WARN

clean:
	rm -rf submitted autograded feedback gradebook.db grades.csv build
