"""The `custom` schedule's expression language: parsed safely, evaluated with numpy.

An expression such as ``0.1 * exp(-0.05 * t)`` is parsed with Python's ``ast`` and
checked against a whitelist (numbers, the time names, + - * / **, unary minus and a few
math functions). The checked tree is compiled into nested numpy closures, so a whole
curve is one vectorised pass. Nothing is ever handed to ``eval`` or ``exec``.
"""

from __future__ import annotations

import ast
import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lrviz.params import ParamError

MAX_LENGTH = 500
MAX_DEPTH = 60  # nodes from the root to a leaf; keeps compile/eval recursion small
MAX_CONST_EXPONENT = 100.0  # `9**9**9` is refused instead of computed

VARIABLES = ("t", "epoch", "step", "epochs", "steps_per_epoch")
CONSTANTS = {"pi": math.pi, "e": math.e}
FUNCTIONS: dict[str, tuple[Callable, int | None]] = {  # name -> (numpy function, arity)
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "cos": (np.cos, 1),
    "sin": (np.sin, 1),
    "floor": (np.floor, 1),
    "abs": (np.abs, 1),
    "min": (np.minimum, None),  # two or more arguments
    "max": (np.maximum, None),
}
_BINOPS = {
    ast.Add: (np.add, "+"),
    ast.Sub: (np.subtract, "-"),
    ast.Mult: (np.multiply, "*"),
    ast.Div: (np.divide, "/"),
    ast.Pow: (np.power, "**"),
}

Env = dict  # name -> float64 array (or scalar) of the time variables
Evaluator = Callable[[Env], np.ndarray]


def _refuse(expression: str, what: str) -> ParamError:
    shown = expression if len(expression) <= 60 else expression[:57] + "..."
    return ParamError("expression", f"Argument `expression` {what}. Received: expression={shown!r}")


@dataclass(frozen=True)
class CompiledExpression:
    """A checked expression: ``evaluate(env)`` gives the LR array, ``python`` its
    scalar Python form (``math.`` functions) for the Keras snippet."""

    source: str
    evaluate: Callable[[Env], np.ndarray]
    python: str


class _Compiler:
    def __init__(self, expression: str):
        self.expression = expression

    def fail(self, what: str) -> ParamError:
        return _refuse(self.expression, what)

    def compile(self, node: ast.AST, depth: int = 0) -> tuple[Evaluator, float | None]:
        """Return (evaluator, constant value or None when it depends on time)."""
        if depth > MAX_DEPTH:
            raise self.fail(f"is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner, const = self.compile(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return inner, const
            value = None if const is None else -const
            return (lambda env: np.negative(inner(env))), value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self._binop(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise self.fail(f"may not use {_describe(node)}; allowed are numbers, "
                        f"{', '.join(VARIABLES + tuple(CONSTANTS))}, + - * / ** and "
                        f"{', '.join(FUNCTIONS)}")

    def _constant(self, node: ast.Constant) -> tuple[Evaluator, float]:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"may not use {_describe(node)}; only numbers are allowed")
        try:
            x = np.float64(float(value))
        except OverflowError:
            raise self.fail("contains a number too large to represent") from None
        return (lambda env: x), float(x)

    def _name(self, node: ast.Name) -> tuple[Evaluator, float | None]:
        name = node.id
        if name.startswith("__"):
            raise self.fail(f"may not use the name `{name}`")
        if name in CONSTANTS:
            x = np.float64(CONSTANTS[name])
            return (lambda env: x), float(x)
        if name in VARIABLES:
            return (lambda env: env[name]), None
        if name in FUNCTIONS:
            raise self.fail(f"uses the function `{name}` without calling it")
        raise self.fail(f"uses the unknown name `{name}`; known names: "
                        f"{', '.join(VARIABLES + tuple(CONSTANTS))}")

    def _binop(self, node: ast.BinOp, depth: int) -> tuple[Evaluator, float | None]:
        fn, symbol = _BINOPS[type(node.op)]
        left, lconst = self.compile(node.left, depth + 1)
        right, rconst = self.compile(node.right, depth + 1)
        if symbol == "**" and lconst is not None and rconst is not None \
                and not abs(rconst) <= MAX_CONST_EXPONENT:
            raise self.fail(f"raises a constant to a power above {MAX_CONST_EXPONENT:g} in size")
        value = None
        if lconst is not None and rconst is not None:
            with np.errstate(all="ignore"):
                value = float(fn(np.float64(lconst), np.float64(rconst)))

        def run(env: Env) -> np.ndarray:
            return fn(left(env), right(env))

        return run, value

    def _call(self, node: ast.Call, depth: int) -> tuple[Evaluator, float | None]:
        if not isinstance(node.func, ast.Name):
            raise self.fail(f"may not call {_describe(node.func)}; only "
                            f"{', '.join(FUNCTIONS)} can be called")
        name = node.func.id
        if name not in FUNCTIONS:
            if name.startswith("__"):
                raise self.fail(f"may not use the name `{name}`")
            raise self.fail(f"calls the unknown function `{name}`; known functions: "
                            f"{', '.join(FUNCTIONS)}")
        if node.keywords:
            raise self.fail(f"may not pass keyword arguments to `{name}`")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"may not unpack arguments into `{name}`")
        fn, arity = FUNCTIONS[name]
        if arity is not None and len(node.args) != arity:
            raise self.fail(f"calls `{name}` with {len(node.args)} arguments; it takes {arity}")
        if arity is None and len(node.args) < 2:
            raise self.fail(f"calls `{name}` with {len(node.args)} arguments; it takes two or more")
        compiled = [self.compile(a, depth + 1) for a in node.args]
        args = [c[0] for c in compiled]
        value = None
        if all(c[1] is not None for c in compiled):
            with np.errstate(all="ignore"):
                value = float(_apply(fn, arity, [np.float64(c[1]) for c in compiled]))

        def run(env: Env) -> np.ndarray:
            return _apply(fn, arity, [a(env) for a in args])

        return run, value


def _apply(fn: Callable, arity: int | None, values: list) -> np.ndarray:
    if arity is None:
        return functools.reduce(fn, values)
    return fn(values[0])


def _describe(node: ast.AST) -> str:
    names = {
        ast.Attribute: "attribute access (.)",
        ast.Subscript: "subscripts ([])",
        ast.Lambda: "lambda",
        ast.ListComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.Compare: "comparisons",
        ast.BoolOp: "and/or",
        ast.IfExp: "if/else",
        ast.NamedExpr: "assignment (:=)",
        ast.JoinedStr: "strings",
    }
    for kind, text in names.items():
        if isinstance(node, kind):
            return text
    if isinstance(node, ast.Constant):
        return "strings" if isinstance(node.value, (str, bytes)) else f"the value {node.value!r}"
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the operator {type(node.op).__name__}"
    return type(node).__name__


class _ToPython(ast.NodeTransformer):
    """Rewrite a checked tree for scalar Python: exp -> math.exp, pi -> math.pi."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node.args = [self.visit(a) for a in node.args]
        if node.func.id not in ("min", "max", "abs"):  # builtins work on floats as is
            node.func = ast.Attribute(ast.Name("math", ast.Load()), node.func.id, ast.Load())
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in CONSTANTS:
            return ast.Attribute(ast.Name("math", ast.Load()), node.id, ast.Load())
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Constant(float(node.value))  # float maths, as numpy does


@functools.lru_cache(maxsize=256)
def compile_expression(expression: str) -> CompiledExpression:
    """Check ``expression`` and compile it; raise ``ParamError`` for ``expression``."""
    if not isinstance(expression, str) or not expression.strip():
        raise _refuse(str(expression), "must be a formula such as 0.1 * exp(-0.05 * t)")
    if len(expression) > MAX_LENGTH:
        raise _refuse(expression, f"must be at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = getattr(exc, "msg", None) or type(exc).__name__
        raise _refuse(expression, f"is not a valid formula ({detail})") from None
    evaluator, _ = _Compiler(expression).compile(tree.body)

    def evaluate(env: Env) -> np.ndarray:
        with np.errstate(all="ignore"):  # overflow -> inf, log(-1) -> nan: checked by lr_curve
            out = evaluator(env)
        shape = np.broadcast(*[np.asarray(v) for v in env.values()]).shape
        return np.array(np.broadcast_to(np.asarray(out, dtype=np.float64), shape), dtype=np.float64)

    python = ast.unparse(_ToPython().visit(tree).body)
    return CompiledExpression(expression, evaluate, python)
