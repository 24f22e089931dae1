"""The judge: the hidden checks run here, in trusted grading code, never in the student's kernel.

A check (grading/checks/backprop_checks.py) is a plain function of a `student`. It draws its points from
`student.rng`, asks the student's kernel its questions once with `student.ask(requests)`
(grading/checks/kernel_questions.py says what can be asked), and judges the plain data that comes back: it raises
Feedback with one sentence, or returns the sentence that says it passed. The same function runs in three places:

- grading, in two halves: before execution `questions_for(nb, seed)` runs every check with a Recorder, which
  keeps the requests and stops the check, so that the worker can ask them in the sandbox right after each test
  cell (as `probe_code(requests)`); after execution `judge_notebook(nb, answers, seed)` runs every check again
  with the same seed and the kernel's answers, and writes each test cell's graded output;
- in the instructor notebook, whose hidden test blocks call `check(NotebookStudent(globals()))`, which asks in
  the same process through the same parser.

Expected values, tolerances and the checks themselves never leave this process; a kernel's answer is parsed
from length-capped JSON into numbers, strings, booleans, lists and dicts, and nothing else.
"""

import copy
import importlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from nbformat import from_dict

from grading.engine.execution_outcome import STOPPED_CELL_ERRORS, ExecutionOutcome

from . import kernel_questions
from .answer_data import Feedback, NotebookStudent, Student, Unanswered, parse_answers  # noqa: F401 (NotebookStudent: for the notebook)
from .questions import PUBLIC_CHECK_CALL

HIDDEN = re.compile(r"^[ \t]*#+[ \t]*BEGIN HIDDEN TESTS.*?^[ \t]*#+[ \t]*END HIDDEN TESTS[ \t]*$\n?", re.M | re.S)
_SOURCE = None


class _Asked(Exception):
    """Raised by Recorder.ask to stop a check once its questions are known."""

    def __init__(self, requests):
        super().__init__("asked")
        self.requests = requests


class Recorder(Student):
    """Keeps a check's requests and stops it there."""

    def _answers(self, requests):
        json.dumps(requests, allow_nan=False)  # plain data only, or fail loudly here rather than in a kernel
        raise _Asked(requests)


class Answered(Student):
    """Gives a check the answers the kernel printed (or the reason there are none)."""

    def __init__(self, seed, grade_id, answer_text, why_missing=None):
        super().__init__(seed, grade_id)
        self.answer_text, self.why_missing = answer_text, why_missing

    def _answers(self, requests):
        if self.answer_text is None:
            raise Unanswered(self.why_missing or "your notebook did not answer the grader's questions")
        return parse_answers(self.answer_text, len(requests))


def kernel_questions_source():
    global _SOURCE
    if _SOURCE is None:
        with open(kernel_questions.__file__, encoding="utf-8") as f:
            _SOURCE = f.read()
    return _SOURCE


PROBE_MODULE = "__judge_kernel_questions__"  # where probe_setup leaves kernel_questions in the kernel (sys.modules)


def probe_setup():
    """Source of the cell run once in a kernel before its first probe: kernel_questions, run as a module of its own
    (with Python's builtins, so that names the notebook defined, json, len, print, ..., change nothing), kept in
    sys.modules for the probes. Sent once per kernel, not with each probe: its text is most of what a probe costs."""
    return (
        "import builtins as __judge_builtins\n"
        "__judge_module = __judge_builtins.__import__('types').ModuleType('kernel_questions')\n"
        "__judge_module.__builtins__ = __judge_builtins\n"  # not whatever the notebook calls __builtins__
        f"__judge_builtins.exec({kernel_questions_source()!r}, __judge_module.__dict__)\n"
        f"__judge_builtins.__import__('sys').modules[{PROBE_MODULE!r}] = __judge_module\n"
        "del __judge_builtins, __judge_module\n"
    )


def probe_code(requests, nonce):
    """Source of the cell that asks a kernel `requests`, through the kernel_questions that probe_setup left there."""
    return (
        "import builtins as __judge_builtins\n"
        f"__judge_builtins.__import__('sys').modules[{PROBE_MODULE!r}].print_answer("
        f"__judge_builtins.globals(), {json.dumps(requests)!r}, {nonce!r})\n"
        "del __judge_builtins\n"
    )


def answer_in(text, nonce):
    """The JSON text a probe printed between its markers after its nonce, or None."""
    if not isinstance(text, str):
        return None
    begin = kernel_questions.BEGIN + nonce
    start = text.find(begin)
    if start < 0:
        return None
    start += len(begin)
    end = text.find(kernel_questions.END, start)
    return None if end < 0 else text[start:end]


def grade_id(cell):
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def judged_cells(nb, checks):
    """The test cells of nb that a check in `checks` (grade id -> function) judges, in order. (Cells are read as
    dicts: nbgrader adds the cells a student deleted as plain dicts.)"""
    return [
        cell
        for cell in nb["cells"]
        if cell.get("cell_type") == "code" and grade_id(cell) in checks and cell["metadata"]["nbgrader"].get("grade")
    ]


def questions_for(nb, seed, checks):
    """grade id -> the requests its check asks, drawn with seed; the checks' code and expected values stay here."""
    questions = {}
    for cell in judged_cells(nb, checks):
        gid = grade_id(cell)
        try:
            checks[gid](Recorder(seed, gid))
        except _Asked as asked:
            questions[gid] = asked.requests
        else:
            raise RuntimeError(f"the check of {gid} asked the kernel nothing")
    return questions


def as_executed(nb, checks):
    """A copy of nb to execute, all the sandbox (and Dask) may see: its judged test cells lost their hidden tests,
    and the call of their public check, which the judge's check of the same question supersedes (its imports stay,
    so that the notebook's names are those of a student's Run All)."""
    nb = copy.deepcopy(nb)
    for cell in judged_cells(nb, checks):
        cell["source"] = PUBLIC_CHECK_CALL.sub("", HIDDEN.sub("", cell["source"]))
    return nb


def run_check(check, student):
    """(passed, sentence) of one check; a check that fails on the data itself gives a sentence too."""
    try:
        return True, check(student)
    except Feedback as feedback:
        return False, str(feedback)
    except Unanswered as missing:
        return False, f"The grader could not check this question: {missing}."
    except Exception as error:  # noqa: BLE001 - data a check did not foresee costs the question, not the class
        return False, (
            f"The grader could not check this question: your notebook's answer could not be read "
            f"({type(error).__name__})."
        )


def judge_notebook(nb, answers, seed, checks, why_missing=None):
    """Write each judged test cell's graded output from its check's verdict on `answers` (grade id -> text).

    The kernel's own outputs in those cells are kept only as printed text (nbgrader reads errors, stderr and
    results to score; none of those may come from the kernel); the judge's output follows. Returns
    {grade id: (passed, sentence)}."""
    why_missing = why_missing or {}
    verdicts = {}
    for cell in judged_cells(nb, checks):
        gid = grade_id(cell)
        passed, sentence = run_check(checks[gid], Answered(seed, gid, answers.get(gid), why_missing.get(gid)))
        kept = [
            out for out in cell.get("outputs", []) if out.get("output_type") == "stream" and out.get("name") == "stdout"
        ]
        verdict: dict[str, Any]
        if passed:
            verdict = {"output_type": "stream", "name": "stdout", "text": f"\u2713 {sentence}\n"}
        else:
            verdict = {
                "output_type": "error",
                "ename": "Feedback",
                "evalue": sentence,
                "traceback": [f"\u2717 {sentence}"],
            }
        cell["outputs"] = kept + [from_dict(verdict)]
        verdicts[gid] = (passed, sentence)
    return verdicts


def load_checks(assignment):
    """grade id -> check of an assignment, from its declared questions (grading/checks/<assignment>_questions.py),
    or {} if it declares none."""
    try:
        module = importlib.import_module(f"{__package__}.{assignment}_questions")
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.{assignment}_questions":
            raise
        return {}
    return module.CHECKS


@dataclass
class Judgement:
    """One submission's judging: its seed, the probes the worker asks, and the test cells' full sources."""

    checks: dict
    seed: str = field(default_factory=lambda: os.urandom(16).hex())
    probes: dict = field(default_factory=dict)  # grade id -> probe cell source (what the worker may see)
    probe_setup: str = ""  # run once in the kernel before the first probe (probe_setup())
    nonces: dict = field(default_factory=dict)  # grade id -> the nonce its answer must carry
    sources: dict = field(default_factory=dict)  # grade id -> the test cell's source with its hidden tests

    @classmethod
    def prepare(cls, nb, assignment):
        """(Judgement, the notebook to execute: as_executed(nb))."""
        judgement = cls(load_checks(assignment))
        judgement.sources = {grade_id(cell): cell["source"] for cell in judged_cells(nb, judgement.checks)}
        for gid, requests in questions_for(nb, judgement.seed, judgement.checks).items():
            judgement.nonces[gid] = os.urandom(12).hex()
            judgement.probes[gid] = probe_code(requests, judgement.nonces[gid])
        judgement.probe_setup = probe_setup() if judgement.probes else ""
        return judgement, as_executed(nb, judgement.checks)

    def apply(self, nb, outcome: ExecutionOutcome):
        """Write the judged test cells' graded outputs into the executed nb, and put their sources back;
        returns {grade id: (passed, sentence)}."""
        printed = outcome.answers
        answers = {gid: answer_in(printed.get(gid), nonce) for gid, nonce in self.nonces.items()}
        why = {gid: _why_missing(gid, nb, outcome) for gid in self.probes if answers.get(gid) is None}
        verdicts = judge_notebook(nb, answers, self.seed, self.checks, why)
        for cell in judged_cells(nb, self.checks):
            cell["source"] = self.sources.get(grade_id(cell), cell["source"])
        return verdicts


def _why_missing(gid, nb, outcome: ExecutionOutcome):
    """Why the kernel gave no answer to the probe after test cell gid, in words for the student."""
    cell = next((c for c in nb["cells"] if grade_id(c) == gid), None)
    stopped = [
        o
        for o in (cell.get("outputs", []) if cell else [])
        if o.get("output_type") == "error" and o.get("ename") in STOPPED_CELL_ERRORS
    ]
    if stopped:
        # the test cell itself runs only imports: this is mostly a stop while the grader asked (a probe's call)
        return f"the notebook stopped before it answered the grader ({stopped[0].get('evalue') or stopped[0]['ename']})"
    if gid not in outcome.answers:
        return "the test cell did not run"
    if kernel_questions.BEGIN in (outcome.answers[gid] or ""):
        return "the answer your notebook printed was not the one the grader asked for"
    return "your notebook did not answer the grader's questions: a function ran too long, or code changed how cells run"
