"""Tampering submissions, each named by the trick in it: code that attacks the grader rather than answering.

BLANK (and STATED, below): student -> answers put on the BLANK release (grade id of an answer cell -> its source):
the trick alone, in one or a few answer cells, every other answer as released. None of them answers a question
honestly, so each must score 0 on every autograded question, under `make autograde` and under `nbgrader autograde`.

ON_SOLUTION: student -> (answers on top of the solution, its twin); TWINS: twin -> answers on top of the solution,
the same submission without the trick. The trick should cost nothing, or gain nothing: each scores what its twin
scores. "perfect" (the solution itself) is also the class's honest student, whose grading no tamper may stop.

METADATA: nbgrader metadata a tamper edited besides its code. FAMILIES says which kind of trick each student plays
(the eight kinds of the issue's item "a tamper catalogue in the suite"); HIDDEN_TEXT holds text only the hidden
checks have, which no output of any autograded notebook, nor any feedback page, may show.

A few tricks forge the judge's answers with answers "copied from a correct run": `forged_answers()` makes them, in
this process, by asking the solution's own objects the judge's questions, as a student would copy them from a run
of a correct notebook. They are put into the code where it says __FORGED__.
"""

import contextlib
import functools
import io
from textwrap import dedent

from grading.checks.backprop_questions import AUTOGRADED  # noqa: F401 (the tests read it from here)
from grading.course_kit.submissions import build_submission, solution_answers


def answers(**cells):
    """grade id -> dedented code, from keyword arguments named like the answer cells (q1a=... -> q1a_answer)."""
    return {f"{key}_answer": dedent(code).strip() + "\n" for key, code in cells.items()}


# What several tricks share: which copied answer goes with which probe, found by the requests the probe states.
PICK_FORGED = """
    BEGIN, END = "\\u27e6judge-answer\\u27e7", "\\u27e6/judge-answer\\u27e7"
    FORGED = __FORGED__  # the answers a correct notebook printed, by the request that tells its question apart


    def forged_for(requests_text):
        for op, text in FORGED.items():
            if f'"op": "{op}"' in requests_text:
                return text
        return None


    def requests_in(code):
        asked = [line for line in (code or "").splitlines() if ".print_answer(" in line]
        return asked[0] if asked else ""
"""

BLANK = {
    # --- 1. IPython's input and AST transformers -------------------------------------------------------------------
    "input-transformer-post-turns-every-cell-into-pass": answers(
        q1a="""
        get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])
    """
    ),
    "input-transformer-cleanup-turns-every-cell-into-pass": answers(
        q1a="""
        get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])
    """
    ),
    "ast-transformer-empties-every-module": answers(
        q1a="""
        import ast


        class EmptyEveryCell(ast.NodeTransformer):
            def visit_Module(self, node):
                node.body = [ast.Pass()]
                return ast.fix_missing_locations(node)


        get_ipython().ast_transformers.append(EmptyEveryCell())
    """
    ),
    # --- 2. the shell's and the kernel's execute path ----------------------------------------------------------------
    "run-cell-and-run-cell-async-replaced-on-the-class": answers(
        q1a="""
        from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell


        def run_nothing(self, raw_cell, store_history=False, silent=False, shell_futures=True, cell_id=None, **kw):
            return ExecutionResult(ExecutionInfo(raw_cell, store_history, silent, shell_futures, cell_id))


        async def run_nothing_async(self, raw_cell, store_history=False, silent=False, shell_futures=True, **kw):
            return run_nothing(self, raw_cell, store_history, silent, shell_futures)


        InteractiveShell.run_cell = run_nothing
        InteractiveShell.run_cell_async = run_nothing_async
    """
    ),
    "run-cell-replaced-on-the-instance-skips-checks": answers(
        q1a="""
        from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult

        shell = get_ipython()
        real_run_cell, real_run_cell_async = shell.run_cell, shell.run_cell_async


        def is_a_check(raw_cell):
            return "Feedback" in raw_cell or "print_answer" in raw_cell


        def run_cell(raw_cell, *args, **kwargs):
            if is_a_check(raw_cell):
                print("\\u2713 Public checks passed")
                return ExecutionResult(ExecutionInfo(raw_cell, False, False, True, None))
            return real_run_cell(raw_cell, *args, **kwargs)


        async def run_cell_async(raw_cell, *args, **kwargs):
            if is_a_check(raw_cell):
                return run_cell(raw_cell)
            return await real_run_cell_async(raw_cell, *args, **kwargs)


        shell.run_cell, shell.run_cell_async = run_cell, run_cell_async
    """
    ),
    "kernel-do-execute-replies-ok-without-running": answers(
        q1a="""
        kernel = get_ipython().kernel


        async def do_execute(code, silent, store_history=True, user_expressions=None, allow_stdin=False, **kw):
            print("\\u2713 all checks passed")
            return {"status": "ok", "execution_count": kernel.execution_count, "payload": [], "user_expressions": {}}


        kernel.do_execute = do_execute
    """
    ),
    "pre-run-cell-hook-prints-and-displays-pass-lines": answers(
        q1a="""
        from IPython.display import display


        def claim_success(info):
            print("\\u2713 x, y, c, s and F build the graph of F = x\\u00b2(x + y), with the right values and "
                  "gradients.")
            display({"text/plain": "\\u2713 passed"}, raw=True)


        get_ipython().events.register("pre_run_cell", claim_success)
        get_ipython().events.register("post_run_cell", lambda result: claim_success(None))
    """
    ),
    "custom-exc-swallows-every-error": answers(
        q1a="""
        def swallow(shell, etype, value, tb, tb_offset=None):
            print("\\u2713 passed")
            return []


        get_ipython().set_custom_exc((BaseException,), swallow)
    """
    ),
    # --- 3. the kernel's messages and the order of outputs -----------------------------------------------------------
    "interactivity-all-and-displayhook-show-pass-lines": answers(
        q1a="""
        import sys

        get_ipython().ast_node_interactivity = "all"
        sys.displayhook = lambda value: print("\\u2713 passed")
        get_ipython().displayhook.write_format_data = lambda *a, **k: print("\\u2713 passed")
        "\\u2713 passed"
    """
    ),
    "prints-the-judges-pass-lines-and-answer-markers": answers(
        q1a='print("\\u2713 x, y, c, s and F build the graph of F = x\\u00b2(x + y), with the right values and "\n'
        '      "gradients.")',
        q1b='print("\\u2713 One backward pass on F filled x.grad and y.grad, and the graph of F was kept.")',
        q2="FORGED = __FORGED__  # what a correct notebook answered, between the judge's markers\n"
        'print("\\u27e6judge-answer\\u27e7" + FORGED["reaches"] + "\\u27e6/judge-answer\\u27e7")',
        q3='print("\\u2713 sgd_step returns the mean squared error and takes one gradient step in place, twice in a "\n'
        '      "row.")',
        q5='print("\\u2713 train_model trains the model with a torch.optim optimizer on data the notebook never "\n'
        '      "shows.")',
    ),
    "forged-judge-answers-copied-from-a-correct-run": answers(
        q1a=PICK_FORGED
        + """

    def forge(info):
        text = forged_for(requests_in(info.raw_cell))
        if text is not None:
            print(BEGIN + text + END)


    get_ipython().events.register("pre_run_cell", forge)
    """
    ),
    "session-send-rewrites-replies-and-answers": answers(
        q1a=PICK_FORGED
        + """

    session = get_ipython().kernel.session
    real_send = session.send
    running = {"code": ""}
    get_ipython().events.register("pre_run_cell", lambda info: running.update(code=info.raw_cell))


    def send(stream, msg_or_type, content=None, parent=None, *args, **kwargs):
        kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type.get("msg_type")
        code = running["code"]
        if kind == "error":
            kind, content = "stream", {"name": "stdout", "text": "\\u2713 passed\\n"}
            msg_or_type = kind
        if kind == "execute_reply" and isinstance(content, dict) and content.get("status") == "error":
            content = {"status": "ok", "execution_count": content.get("execution_count"), "payload": [],
                       "user_expressions": {}}
        if kind == "stream" and not isinstance(msg_or_type, str) and BEGIN in msg_or_type["content"].get("text", ""):
            text = forged_for(requests_in(code))  # a stream comes as a whole message
            if text is not None:
                msg_or_type["content"] = {"name": "stdout", "text": BEGIN + text + END + "\\n"}
        return real_send(stream, msg_or_type, content, parent, *args, **kwargs)


    session.send = send
    """
    ),
    "display-pub-publishes-pass-lines-and-judge-markers": answers(
        q1a=PICK_FORGED
        + """

    shell = get_ipython()


    def publish(info):
        text = forged_for(requests_in(info.raw_cell)) or "[]"
        shell.display_pub.publish(data={"text/plain": BEGIN + text + END})
        shell.display_pub.publish(data={"text/plain": "\\u2713 passed"})


    shell.events.register("pre_run_cell", publish)
    """
    ),
    # --- 4. builtins ---------------------------------------------------------------------------------------------
    "builtins-compile-turns-every-cell-into-pass": answers(
        q1a="""
        import builtins

        real_compile = builtins.compile
        builtins.compile = lambda source, filename, mode, *args, **kwargs: real_compile(
            "pass", filename, "exec" if mode == "single" else mode, *args, **kwargs)
    """
    ),
    "builtins-exec-build-class-and-print-replaced": answers(
        q1a="""
        import builtins

        real_print, real_build_class = builtins.print, builtins.__build_class__


        def build_class(body, name, *bases, **kwargs):
            if name == "Feedback":
                return real_build_class(body, name, Warning, **kwargs)  # "raise Feedback(...)" fails differently
            return real_build_class(body, name, *bases, **kwargs)


        builtins.__build_class__ = build_class
        builtins.print = lambda *args, **kwargs: real_print("\\u2713 passed")
        builtins.exec = lambda *args, **kwargs: print("\\u2713 passed")
    """
    ),
    "forged-judge-answers-computed-from-the-questions": answers(
        q1a=PICK_FORGED
        + """

    import ast
    import json

    import numpy as np


    def tensor(values, shape, **state):
        return {"type": "tensor", "shape": shape, "dtype": "float32", "values": [float(v) for v in values],
                "requires_grad": True, "is_leaf": True, "grad_fn": None, "grad": None, "is_parameter": False,
                "stepped_by_optimizer": False, **state}


    def number(value):
        return {"type": "number", "value": float(value)}


    def listed(items):
        return {"type": "list", "length": len(items), "items": items}


    def called(result, refs=None):
        return {"result": result, "error": None, "reverse_mode": False, "refs": refs or {}}


    def oracle(requests):
        refs, out = {}, []
        for r in requests:
            if r["op"] == "describe":
                out.append({"value": number({"learning_rate": 0.5, "steps": 1000}[r["name"]])})
                continue
            f, args = r["function"], r["args"]
            if f == "dF_dx_forward":
                x0, y0 = args
                out.append(called(number(3 * x0 * x0 + 2 * x0 * y0)))
            elif f == "grad_forward":
                x0, y0 = args
                out.append(called(listed([number(1 / x0 + 2 * x0 * y0), number(x0 * x0 + 2 * y0)])))
            elif f == "sgd_step":
                w = np.array(args[0]["tensor"]) if "tensor" in args[0] else refs["w"]
                rows, targets, lr = np.array(args[1]["tensor"]), np.array(args[2]["tensor"]), args[3]
                error = rows @ w - targets
                refs["w"] = w - lr * 2 * rows.T @ error / len(error)
                out.append(called(number((error ** 2).mean()), {"w": tensor(refs["w"].ravel(), [2, 1])}))
            else:  # train_sgd, train_model: the least-squares weights of the data they are given
                rows, targets = np.array(args[0]["tensor"]), np.array(args[1]["tensor"])
                best = np.linalg.lstsq(rows, targets, rcond=None)[0].ravel()
                if f == "train_sgd":
                    start = np.array(args[2]["tensor"]).ravel()
                    path = [listed([number(v) for v in start + (best - start) * k / 99]) for k in range(100)]
                    losses = listed([number(1 / (k + 1)) for k in range(100)])
                    out.append(called(listed([losses, listed(path)]), {"w": tensor(best, [2, 1])}))
                else:
                    weight = tensor(best, [1, 2], is_parameter=True, stepped_by_optimizer=True)
                    out.append(called({"type": "module", "class": "Linear", "in_features": 2, "out_features": 1,
                                       "weight": weight, "bias": None}))
        return json.dumps(out)


    def forge(info):
        line = requests_in(info.raw_cell)
        if line:
            requests_json, _nonce = ast.literal_eval(line[line.index("globals(), ") + 10:line.rindex(")")])
            requests = json.loads(requests_json)
            text = forged_for(line) or oracle(requests)
            print(BEGIN + text + END)


    get_ipython().events.register("pre_run_cell", forge)
    """
    ),
    # --- 5. trace and profile functions ----------------------------------------------------------------------------
    "settrace-rewrites-the-locals-of-the-questions": answers(
        q1a="""
        import sys

        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c, s, F = torch.tensor(4.0), torch.tensor(5.0), torch.tensor(20.0)


        def rewrite(frame, event, arg):
            if event == "return" and isinstance(arg, dict) and arg.get("type") == "tensor":
                arg["grad_fn"] = arg["grad_fn"] or "MulBackward0"
            if event == "line" and "tried" in frame.f_locals:
                frame.f_locals["tried"] = []  # reverse mode "never used"
            return rewrite


        sys.settrace(rewrite)
    """
    ),
    "setprofile-turns-errors-into-results": answers(
        q1a="""
        import sys


        def rewrite(frame, event, arg):
            if event == "return" and isinstance(arg, dict) and "error" in arg and "reverse_mode" in arg:
                arg.update(error=None, reverse_mode=False, result={"type": "number", "value": 24.0})


        sys.setprofile(rewrite)
    """
    ),
    # --- 6. lying objects and patched torch ----------------------------------------------------------------------
    "objects-and-float-subclasses-that-agree-with-everything": answers(
        q1a="""
        class Agreeable:
            __class__ = torch.Tensor  # isinstance(Agreeable(), torch.Tensor) says yes
            requires_grad = is_leaf = True
            shape, dtype, grad, grad_fn = (), torch.float32, None, "MulBackward0"

            def __eq__(self, other):
                return True

            __le__ = __ge__ = __eq__
            __hash__ = object.__hash__

            def __float__(self):
                return 2.0

            def numel(self):
                return 1

            def __getattr__(self, name):
                return lambda *args, **kwargs: self


        class Right(float):
            def __eq__(self, other):
                return True

            __le__ = __ge__ = __lt__ = __gt__ = __eq__
            __hash__ = float.__hash__


        x, y, c, s, F = Agreeable(), Right(3.0), Right(4.0), Right(5.0), Right(20.0)
        dF_dx_forward = grad_forward = lambda x0, y0: Right(0.0)
        sgd_step = train_model = lambda *args: Agreeable()
        learning_rate, steps = Right(0.5), Right(1000)
    """
    ),
    "tensor-tolist-comparisons-and-allclose-patched": answers(
        q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = s = F = torch.tensor(0.0)
        torch.Tensor.tolist = lambda self: [2.0] * self.numel()
        torch.Tensor.__eq__ = torch.Tensor.__le__ = torch.Tensor.__ge__ = lambda self, other: True
        torch.allclose = torch.isclose = lambda *args, **kwargs: True
        torch.equal = lambda *args, **kwargs: True
    """
    ),
    "stated-values-typed-in-through-a-zero-graph": answers(
        q1a="""
            x = torch.tensor(2.0, requires_grad=True)
            y = torch.tensor(3.0, requires_grad=True)
            c = x * 0 + 4.0
            s = x * 0 + 5.0
            F = x * 0 + y * 0 + 20.0
        """,
        q1b="""
            x.grad, y.grad = torch.tensor(24.0), torch.tensor(4.0)
        """,
        q2="""
            x = torch.tensor(2.0, requires_grad=True)
            y = torch.tensor(3.0, requires_grad=True)
            a = x * 0 + 0.6931471805599453
            b = x * 0 + y * 0 + 12.0
            c = y * 0 + 9.0
            F = a + b + c
            x.grad, y.grad = torch.tensor(12.5), torch.tensor(10.0)
        """,
    ),
    # --- 7. copying hidden code into outputs -------------------------------------------------------------------------
    "pre-run-cell-hook-prints-the-source-of-every-cell": answers(
        q1a="""
        seen = []


        def show_previous(info):
            if seen:
                print("previous cell:", seen[-1])
            seen.append(info.raw_cell)
            print("this cell:", info.raw_cell)


        get_ipython().events.register("pre_run_cell", show_previous)
        get_ipython().events.register("post_run_cell", lambda result: print("ran:", result.info.raw_cell))
    """
    ),
    "input-transformer-logs-lines-and-history-is-printed": answers(
        q1a="""
            lines_seen = []


            def log_lines(lines):
                lines_seen.append("".join(lines))
                return lines


            get_ipython().input_transformers_cleanup.insert(0, log_lines)
        """,
        q5="""
            shell = get_ipython()
            print("logged:", lines_seen)
            print("In:", In)
            print("_ih:", _ih)
            print("history:", list(shell.history_manager.get_range(raw=True, output=True)))
            print("session history:", shell.history_manager.input_hist_raw)
            print("namespace:", sorted(shell.user_ns))
        """,
    ),
    "imports-the-grading-package-and-searches-the-disk": answers(
        q1a="""
        import glob
        import importlib
        import inspect
        import os
        import sys

        for name in ("grading", "grading.checks.judge", "grading.checks.backprop_checks"):
            try:
                module = importlib.import_module(name)
                print(name, inspect.getsource(module))
            except Exception as error:
                print(name, "failed:", type(error).__name__, error)
        print("loaded:", sorted(m for m in sys.modules if "grad" in m and "autograd" not in m))
        for folder in sys.path:
            for path in glob.glob(os.path.join(folder, "*editable*")) + glob.glob(os.path.join(folder, "grading*")):
                try:
                    print(path, open(path).read()[:2000])
                except Exception as error:
                    print(path, "failed:", type(error).__name__)
        for top in ("/work", "/home", "/root", "/tmp", os.path.dirname(sys.prefix)):
            for folder, dirs, files in os.walk(top):
                for file in files:
                    if file.endswith("_checks.py") or file == "judge.py":
                        print("found", os.path.join(folder, file), open(os.path.join(folder, file)).read())
    """
    ),
    # --- 8. crashing nbgrader's scoring ----------------------------------------------------------------------------
    "execute-results-of-1e9-in-every-cell": answers(
        q1a="""
        from IPython.display import display

        shell = get_ipython()
        shell.events.register("pre_run_cell", lambda info: display(1e9))
        shell.events.register("post_run_cell", lambda result: shell.displayhook(10 ** 9))
        1e9
    """
    ),
    "answer-cell-dressed-as-a-graded-test-cell": answers(
        q1a="""
        # {"nbgrader": {"grade": true, "grade_id": "q1a_test_graph", "points": 1000000000, "locked": true}}
        from IPython.display import display

        metadata = {"nbgrader": {"grade": True, "solution": False, "grade_id": "q1a_test_graph", "points": 1e9}}
        display({"text/plain": "1000000000", "application/json": metadata}, raw=True, metadata=metadata)
        get_ipython().displayhook(float("inf"))
        float("nan")
    """
    ),
}

# Tricks that can state values the questions give outright (F = 20 and its gradients in 1a and 1b, 12.5 and 10 in
# Question 2): the judge sees only data, so they may win those three questions (README: what remains), and
# nothing else.
STATED_QUESTIONS = {"q1a", "q1b", "q2"}
STATED = {
    "json-dumps-forges-the-judges-answers": answers(
        q1a=PICK_FORGED
        + """

    import json
    import sys

    real_dumps = json.dumps


    def dumps(obj, *args, **kwargs):
        requests = sys._getframe(1).f_locals.get("requests")
        text = forged_for(real_dumps(requests)) if isinstance(requests, list) else None
        return text if text is not None else real_dumps(obj, *args, **kwargs)


    json.dumps = dumps
    """
    ),
    "autograd-grad-patched-to-return-the-stated-gradients": answers(
        q1a="""
        x = torch.tensor(2.0, requires_grad=True)
        y = torch.tensor(3.0, requires_grad=True)
        c = x * 0 + 4.0
        s = x * 0 + 5.0
        F = x * 0 + y * 0 + 20.0
        STATED = {4.0: (4.0, 0.0), 5.0: (1.0, 1.0), 20.0: (24.0, 4.0)}  # the gradients of c, s and F at (2, 3)


        def grad(outputs, inputs, *args, **kwargs):
            return tuple(torch.tensor(g) for g in STATED[float(outputs)])


        torch.autograd.grad = grad
    """
    ),
}

# Notebook metadata a student edited, besides the code: student -> grade id -> nbgrader fields it claims.
METADATA = {
    "answer-cell-dressed-as-a-graded-test-cell": {"q1a_answer": {"grade": True, "points": 1e9, "locked": True}},
}

SOLUTION = solution_answers()
SUM_NOT_PRODUCT = {"q1a_answer": SOLUTION["q1a_answer"].replace("F = c * s", "F = c + s")}
Q1FWD_BY_BACKWARD = """
    def dF_dx_forward(x0, y0):
        x = torch.tensor(float(x0), requires_grad=True)
        F = x ** 2 * (x + y0)
        F.backward()
        return x.grad.item()
"""

TWINS = {  # untampered submissions, on top of the solution
    "perfect": {},
    "q1a-sum-not-product": SUM_NOT_PRODUCT,
    "q1fwd-by-backward": answers(q1fwd=Q1FWD_BY_BACKWARD),
}

ON_SOLUTION = {  # student -> (answers on top of the solution, its twin)
    "perfect-with-pass-line-hooks-and-interactivity-all": (
        {
            "q1a_answer": SOLUTION["q1a_answer"]
            + dedent("""
        get_ipython().ast_node_interactivity = "all"
        get_ipython().events.register("pre_run_cell", lambda info: print("\\u2713 passed"))
        get_ipython().events.register("post_run_cell", lambda result: print("\\u2713 passed"))
        x
    """)
        },
        "perfect",
    ),
    "q1a-sum-not-product-with-fake-pass-lines-and-swallowed-errors": (
        {
            "q1a_answer": SUM_NOT_PRODUCT["q1a_answer"]
            + dedent("""
        print("\\u2713 x, y, c, s and F build the graph of F = x\\u00b2(x + y), with the right values and "
              "gradients.")
        get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: print("\\u2713 passed"))
        get_ipython().events.register("post_run_cell", lambda result: print("\\u2713 passed"))
    """)
        },
        "q1a-sum-not-product",
    ),
    "q1fwd-by-backward-on-a-fresh-autograd-engine": (
        answers(
            q1fwd="""
        def dF_dx_forward(x0, y0):
            torch.autograd.Variable._execution_engine = torch._C._ImperativeEngine()  # one that does not count
            x = torch.tensor(float(x0), requires_grad=True)
            F = x ** 2 * (x + y0)
            F.backward()
            return x.grad.item()
    """
        ),
        "q1fwd-by-backward",
    ),
}

FAMILIES = {
    "IPython input and AST transformers": [
        "input-transformer-post-turns-every-cell-into-pass",
        "input-transformer-cleanup-turns-every-cell-into-pass",
        "ast-transformer-empties-every-module",
    ],
    "the shell's and kernel's execute path": [
        "run-cell-and-run-cell-async-replaced-on-the-class",
        "run-cell-replaced-on-the-instance-skips-checks",
        "kernel-do-execute-replies-ok-without-running",
        "pre-run-cell-hook-prints-and-displays-pass-lines",
        "custom-exc-swallows-every-error",
        "q1a-sum-not-product-with-fake-pass-lines-and-swallowed-errors",
    ],
    "the kernel's messages and output order": [
        "interactivity-all-and-displayhook-show-pass-lines",
        "prints-the-judges-pass-lines-and-answer-markers",
        "forged-judge-answers-copied-from-a-correct-run",
        "session-send-rewrites-replies-and-answers",
        "display-pub-publishes-pass-lines-and-judge-markers",
        "perfect-with-pass-line-hooks-and-interactivity-all",
    ],
    "builtins": [
        "builtins-compile-turns-every-cell-into-pass",
        "builtins-exec-build-class-and-print-replaced",
        "json-dumps-forges-the-judges-answers",
        "forged-judge-answers-computed-from-the-questions",
    ],
    "trace functions": ["settrace-rewrites-the-locals-of-the-questions", "setprofile-turns-errors-into-results"],
    "lying objects and patched torch": [
        "objects-and-float-subclasses-that-agree-with-everything",
        "tensor-tolist-comparisons-and-allclose-patched",
        "autograd-grad-patched-to-return-the-stated-gradients",
        "stated-values-typed-in-through-a-zero-graph",
        "q1fwd-by-backward-on-a-fresh-autograd-engine",
    ],
    "copying hidden code into outputs": [
        "pre-run-cell-hook-prints-the-source-of-every-cell",
        "input-transformer-logs-lines-and-history-is-printed",
        "imports-the-grading-package-and-searches-the-disk",
    ],
    "crashing nbgrader's scoring": [
        "execute-results-of-1e9-in-every-cell",
        "answer-cell-dressed-as-a-graded-test-cell",
        "perfect",
    ],
}

# Text that only the hidden checks hold (grading/checks/backprop_checks.py, grading/checks/judge.py, the hidden test
# blocks).
HIDDEN_TEXT = [
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
    "from grading.checks.backprop_checks import",
    "NotebookStudent",
    "check_q1fwd",
    "check_q5",
    "least_squares",
    "fresh_targets",
    "exact_adjoints",
    "start_like_the_notebook",
    "NOTEBOOK_START",
    "_scalar_tensor",
    "_mse_step",
    "MAX_STEPS",
    "questions_for",
    "judge_notebook",
    "{name} should hold {want}.",
]


@functools.cache
def forged_answers():
    """op that tells a question apart -> the JSON a correct notebook's kernel answers to that question's probe, for
    the questions whose requests never change (1a, 1b, 2): the solution's cells run here, in order, and asked."""
    from grading.checks import kernel_questions
    from grading.checks.backprop_questions import CHECKS
    from grading.checks.judge import questions_for

    requests = questions_for(build_submission({}), "any seed", CHECKS)
    namespace: dict = {}
    forged = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec("import math\nimport numpy as np\nimport torch", namespace)
        for cell, gid, op in (
            ("q1a_answer", "q1a_test_graph", "count_backward"),
            ("q1b_answer", "q1b_test_gradients", "backward_count"),
            ("q2_answer", "q2_test_gradients", "reaches"),
        ):
            exec(SOLUTION[cell], namespace)
            forged[op] = kernel_questions.answer(namespace, requests[gid])
    return forged


def _filled(code):
    return code.replace("__FORGED__", repr(forged_answers())) if "__FORGED__" in code else code


def _notebook(answers_):
    return build_submission({gid: _filled(code) for gid, code in answers_.items()})


def submissions():
    """student -> notebook: every BLANK tamper, every ON_SOLUTION tamper and its twin."""
    notebooks = {name: _notebook(cells) for name, cells in {**BLANK, **STATED}.items()}
    for name, cells in TWINS.items():
        notebooks[name] = _notebook({**SOLUTION, **cells})
    for name, (cells, _) in ON_SOLUTION.items():
        notebooks[name] = _notebook({**SOLUTION, **cells})
    for name, edits in METADATA.items():
        for cell in notebooks[name].cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") in edits:
                cell.metadata.nbgrader.update(edits[cell.metadata.nbgrader.grade_id])
    return notebooks


def _check_catalogue():
    named = [n for names in FAMILIES.values() for n in names]
    assert len(named) == len(set(named)), "a student in two families"
    assert set(named) - {"perfect"} == set(BLANK) | set(STATED) | set(ON_SOLUTION), "every tamper in one family"
    assert all(twin in TWINS for _, twin in ON_SOLUTION.values())


_check_catalogue()
