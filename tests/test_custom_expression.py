"""The custom schedule's expression parser: what it allows, what it refuses, how fast."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from lrviz.params import ParamError
from lrviz.schedules import build, lr_curve
from lrviz.schedules.custom import MAX_LENGTH, compile_expression


def values(expression, **env):
    env = {k: np.asarray(v, dtype=np.float64) for k, v in env.items()}
    env.setdefault("t", np.arange(4.0))
    for name in ("epoch", "step", "epochs", "steps_per_epoch"):
        env.setdefault(name, np.float64(1.0))
    return compile_expression(expression).evaluate(env)


class TestAllowed:
    @pytest.mark.parametrize("expression,expected", [
        ("0.1", lambda t: np.full_like(t, 0.1)),
        ("0.1 * exp(-0.05 * t)", lambda t: 0.1 * np.exp(-0.05 * t)),
        ("1 / (1 + t) ** 2", lambda t: 1 / (1 + t) ** 2),
        ("-t + 5", lambda t: 5 - t),
        ("+t", lambda t: t),
        ("min(t, 2) + max(t, 1, 3)", lambda t: np.minimum(t, 2) + np.maximum(np.maximum(t, 1), 3)),
        ("sqrt(t) + log(1 + t) + cos(pi * t) + sin(t) + floor(t / 3) + abs(1 - t)",
         lambda t: np.sqrt(t) + np.log1p(t) + np.cos(np.pi * t) + np.sin(t) + np.floor(t / 3) + np.abs(1 - t)),
        ("e ** 2", lambda t: np.full_like(t, math.e ** 2)),
        ("2 ** 3 ** 2", lambda t: np.full_like(t, 512.0)),
    ])
    def test_values(self, expression, expected):
        t = np.arange(4.0)
        np.testing.assert_allclose(values(expression, t=t), expected(t))

    def test_result_is_full_float64_array(self):
        out = values("3", t=np.arange(5.0))
        assert out.dtype == np.float64 and out.shape == (5,)

    def test_variable_exponent_overflows_to_inf_not_hang(self):
        start = time.perf_counter()
        out = values("9 ** (t * 1000)", t=np.arange(3.0))
        assert time.perf_counter() - start < 1.0
        assert out[0] == 1.0 and np.isinf(out[2])

    def test_python_form_for_snippets(self):
        python = compile_expression("max(1e-3, exp(-t) * cos(pi * t))").python
        assert python == "max(0.001, math.exp(-t) * math.cos(math.pi * t))"


class TestRefused:
    @pytest.mark.parametrize("expression,fragment", [
        ("__import__('os')", "__import__"),
        ("__import__('os').system('true')", "attribute"),
        ("t.__class__", "attribute"),
        ("().__class__.__bases__[0]", "subscripts"),
        ("[t][0]", "subscripts"),
        ("import os", "not a valid formula"),
        ("lambda: 1", "lambda"),
        ("[x for x in (1, 2)]", "comprehensions"),
        ("'abc'", "strings"),
        ("exp(x=1)", "keyword"),
        ("exp(*[1])", "unpack"),
        ("foo", "unknown name `foo`"),
        ("open('x')", "unknown function `open`"),
        ("__builtins__", "__builtins__"),
        ("t if t else 1", "if/else"),
        ("t > 1", "comparisons"),
        ("t and 1", "and/or"),
        ("(y := 2)", "assignment"),
        ("exp", "without calling"),
        ("exp(1, 2)", "takes 1"),
        ("min(t)", "two or more"),
        ("True", "True"),
        ("1j", "1j"),
        ("t % 2", "Mod"),
        ("t // 2", "FloorDiv"),
        ("~1", "Invert"),
        ("9**9**9", "power"),
        ("10 ** 400.5", "power"),
        ("1" * 400, "too large"),
        ("", "formula such as"),
        ("t +", "not a valid formula"),
        ("(" * 240 + "t" + ")" * 240, "not a valid formula"),
        ("sin(" * 70 + "t" + ")" * 70, "nested"),
        ("-" * 200 + "t", "nested"),
    ])
    def test_refused_with_field_and_value(self, expression, fragment):
        with pytest.raises(ParamError) as err:
            compile_expression(expression)
        message = str(err.value)
        assert err.value.field == "expression"
        assert fragment in message, message
        assert message.startswith("Argument `expression`") and "Received: expression=" in message

    def test_huge_power_refused_quickly(self):
        start = time.perf_counter()
        with pytest.raises(ParamError):
            build("custom", {"expression": "9**9**9**9"})
        assert time.perf_counter() - start < 0.5

    def test_too_long(self):
        text = "t + " * 200 + "t"
        assert len(text) > MAX_LENGTH
        with pytest.raises(ParamError) as err:
            build("custom", {"expression": text})
        assert err.value.field == "expression" and "500" in str(err.value)

    def test_build_refuses_before_any_curve(self):
        with pytest.raises(ParamError) as err:
            build("custom", {"expression": "__import__('os').system('echo hacked')"})
        assert err.value.field == "expression"

    def test_never_uses_eval(self, monkeypatch):
        import builtins

        def boom(*args, **kwargs):
            raise AssertionError("eval/exec called")

        monkeypatch.setattr(builtins, "eval", boom)
        monkeypatch.setattr(builtins, "exec", boom)
        compile_expression.cache_clear()
        lrs = lr_curve(build("custom", {"expression": "0.2 / sqrt(1 + step)"}), 2, 3)
        np.testing.assert_allclose(lrs, 0.2 / np.sqrt(1 + np.arange(6)))
