"""The custom expression cannot run code or read files, and refuses hostile input quickly.

``tests/test_custom_expression.py`` covers the language itself; here the expressions are
attacks. Beyond "a ParamError naming `expression`", these tests watch the interpreter
with an audit hook: while hostile expressions are parsed, compiled and evaluated, no file
is opened, nothing is imported or exec'd and no process is started. Each refusal must
come within 0.5 s (a bound against hangs such as ``9**9**9``, not a benchmark), and
nesting 1000 deep must never let a ``RecursionError`` escape.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from lrviz.params import ParamError
from lrviz.schedules import build, custom, lr_curve
from lrviz.schedules.custom import compile_expression
from lrviz.settings import REPO_ROOT

QUICK_S = 0.5

HOSTILE = {
    "attribute on a tuple": "().__class__",
    "subclass walk": "().__class__.__bases__[0].__subclasses__()",
    "attribute on a variable": "t.__class__.__mro__",
    "plain attribute": "t.real",
    "__import__": "__import__('os')",
    "__import__ system": "__import__('os').system('touch /tmp/lrviz-pwned')",
    "fullwidth dunder (NFKC makes it __import__)": "__ｉｍｐｏｒｔ__('os')",
    "import statement": "import os",
    "from import": "from os import system",
    "builtins": "__builtins__",
    "dunder name": "__loader__",
    "open": "open('/etc/passwd')",
    "exec": "exec('1')",
    "eval": "eval('1')",
    "compile": "compile('1', '', 'eval')",
    "getattr": "getattr(t, '__class__')",
    "globals": "globals()",
    "breakpoint": "breakpoint()",
    "lambda": "lambda: 1",
    "lambda called": "(lambda: 1)()",
    "list comprehension": "[x for x in (1, 2)]",
    "generator": "sum(x for x in (1, 2))",
    "set comprehension": "{x for x in (1, 2)}",
    "dict comprehension": "{x: x for x in (1, 2)}",
    "subscript": "t[0]",
    "subscript of a literal": "[1][0]",
    "slice": "t[::2]",
    "string": "'abc'",
    "bytes": "b'abc'",
    "f-string": "f'{t}'",
    "f-string with a call": "f'{__import__(\"os\").getcwd()}'",
    "walrus": "(x := 1)",
    "statement separator": "t; __import__('os')",
    "newline": "t\n__import__('os')",
    "null byte": "t\x00",
    "await": "await t",
    "yield": "(yield 1)",
    "starred": "max(*[t, 1])",
    "keyword argument": "max(t, key=abs)",
    "huge exponent": "9**9**9",
    "power tower": "2**2**2**2**2**2",
    "ten tower": "10**10**10",
    "tower of five": "9**9**9**9**9",
    "big float power": "1e10 ** 1e10",
    "negative huge power": "(-9) ** -999",
}


@pytest.fixture
def audit():
    """Events the interpreter reports while ``audit.watch`` is on (sys.addaudithook can
    never be removed, so the hook stays installed but idle outside the block)."""

    class Audit:
        on = False
        events: list[tuple[str, str]] = []

        def watch(self):
            outer = self

            class _Block:
                def __enter__(self):
                    outer.on = True

                def __exit__(self, *exc):
                    outer.on = False

            return _Block()

    state = Audit()
    dangerous = ("open", "exec", "import", "os.system", "os.exec", "os.posix_spawn",
                 "subprocess.Popen", "socket.connect", "ctypes", "builtins.input", "os.remove")

    def hook(event: str, args: tuple) -> None:
        if state.on and event.startswith(dangerous):
            state.events.append((event, repr(args)[:120]))

    sys.addaudithook(hook)
    return state


def _refused_quickly(expression: str) -> ParamError:
    compile_expression.cache_clear()  # time the real work, not a cache hit
    start = time.perf_counter()
    with pytest.raises(ParamError) as err:
        # build checks the expression; lr_curve evaluates it (refuses non-finite results)
        lr_curve(build("custom", {"expression": expression}), 3, 4)
    elapsed = time.perf_counter() - start
    assert elapsed < QUICK_S, f"{expression[:40]!r} took {elapsed:.2f} s to refuse"
    return err.value


@pytest.mark.parametrize("expression", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_expression_is_refused_quickly_by_name(expression, audit):
    with audit.watch():
        err = _refused_quickly(expression)
    assert err.field == "expression"
    message = str(err)
    assert message.startswith("Argument `expression`") and "Received: expression=" in message
    assert len(message) < 400
    assert not audit.events, audit.events


@pytest.mark.parametrize("depth", [1000, 10_000])
@pytest.mark.parametrize("shape", ["parens", "unary", "calls", "powers", "sums"])
def test_deep_nesting_is_refused_without_recursion_error(shape, depth, monkeypatch, audit):
    text = {
        "parens": "(" * depth + "t" + ")" * depth,
        "unary": "-" * depth + "t",
        "calls": "exp(" * depth + "t" + ")" * depth,
        "powers": "t**" * depth + "t",
        "sums": "(t+" * depth + "t" + ")" * depth,
    }[shape]
    with audit.watch():
        _refused_quickly(text)  # the 500-character limit stops these first
        # Lift that limit: the parser's and the compiler's own depth guards must hold too.
        monkeypatch.setattr(custom, "MAX_LENGTH", 10**7)
        compile_expression.cache_clear()
        start = time.perf_counter()
        with pytest.raises(ParamError) as err:  # a RecursionError would fail the test here
            compile_expression(text)
        assert time.perf_counter() - start < QUICK_S
    assert err.value.field == "expression"
    assert "nested" in str(err.value) or "not a valid formula" in str(err.value), str(err.value)
    assert not audit.events, audit.events


def test_accepted_expressions_run_without_any_dangerous_event(audit):
    with audit.watch():
        for expression in ("0.1 * exp(-0.05 * t)", "max(1e-4, 0.1 * cos(pi * t / epochs))",
                           "0.1 / sqrt(1 + step)", "0.1 * 0.5 ** floor(epoch / 2)"):
            compile_expression.cache_clear()
            curve = lr_curve(build("custom", {"expression": expression}), 4, 5)
            assert np.isfinite(curve).all() and (curve > 0).all()
    assert not audit.events, audit.events


def test_overflowing_results_are_refused_not_trained():
    # A variable exponent cannot be bounded up front: it overflows to inf in numpy (fast),
    # and lr_curve refuses the non-finite LR by name before anything trains.
    err = _refused_quickly("9 ** (t * 1000)")
    assert "positive, finite learning rate" in str(err) and "inf" in str(err)


def test_cli_cannot_be_made_to_run_a_command(tmp_path):
    canary = tmp_path / "pwned"
    attacks = [f"__import__('os').system('touch {canary}')",
               f"open('{canary}', 'w')",
               f"().__class__.__base__.__subclasses__()[0]('{canary}')"]
    for attack in attacks:
        proc = subprocess.run([sys.executable, "-m", "lrviz", "curve", "custom", "--set",
                               f"expression={attack}", "--epochs", "2", "--steps-per-epoch", "2"],
                              capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith("error: Argument `expression`") and proc.stderr.count("\n") == 1
    assert not canary.exists()


def test_the_audit_hook_would_see_an_open_and_an_import(audit, tmp_path):
    # Guards the tests above against passing vacuously.
    with audit.watch():
        (tmp_path / "x").write_text("1")
        __import__("importlib").import_module("json")
    assert any(event == "open" for event, _ in audit.events)
