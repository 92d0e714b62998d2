"""Built-in tools: ``calculator`` (safe arithmetic), ``python`` (sandboxed), ``final_answer``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from slmkit.tools.tool import Tool, tool

__all__ = [
    "NUMBER_REGEX",
    "calculator",
    "evaluate_arithmetic",
    "final_answer",
    "python_tool",
]

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name)
    for name in (
        "sqrt",
        "log",
        "log10",
        "log2",
        "exp",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "floor",
        "ceil",
        "factorial",
        "gcd",
        "degrees",
        "radians",
        "hypot",
    )
} | {"abs": abs, "round": round, "min": min, "max": max}
_CONSTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_MAX_POWER = 10_000
_MAX_DIGITS = 4300
_FUNC_NAMES = "|".join(sorted(_FUNCS, key=lambda w: (-len(w), w)))
_CONST_NAMES = "|".join(sorted(_CONSTS, key=lambda w: (-len(w), w)))
NUMBER_REGEX = r"[0-9]+(?:\.[0-9]+)?"
"""How the expression pattern spells a number: an agent that holds an expression to the
numbers of its task swaps exactly this text out (:mod:`slmkit.agents.argument_checks`)."""
_VALUE = rf"(?:{NUMBER_REGEX}|(?:{_CONST_NAMES}))"
_OP = r"(?:\*\*|//|[-+*/%^×÷])"
_NESTING = 3


def _expression_regex(depth: int) -> str:
    """Operands joined by operators; an operand is a number, a constant, a parenthesised
    expression or a function call whose arguments are expressions, nested ``depth`` deep.

    A regular expression cannot count brackets, so nesting is unrolled to a fixed depth:
    that is what keeps commas inside function calls (``max(3, 4)``) and out of the top
    level, where a small model otherwise lists numbers (``"+ 37, 2, 42, 1, 1"``).
    """
    operand = _VALUE
    if depth > 0:
        inner = _expression_regex(depth - 1)
        call = rf"(?:{_FUNC_NAMES})\( *{inner}(?:, *{inner})*\)"
        operand = rf"(?:{_VALUE}|\( *{inner}\)|{call})"
    term = rf"-? *{operand} *"
    return rf"{term}(?:{_OP} *{term})*"


EXPRESSION_PATTERN = rf"^{_expression_regex(_NESTING)}$"
"""The shape of a calculator expression: operands (numbers, constants, calls of known
functions, parentheses) joined by operators, brackets balanced up to three levels deep.

In the tool's schema it keeps a constrained model from writing prose or debris
(``"37 * 42 is 1554"``, ``", 42, "``, ``"37, 2, 42"``) into the expression: only text of
this shape can be decoded."""


def evaluate_arithmetic(expression: str) -> int | float:
    """Evaluate arithmetic without ``eval``: numbers, + - * / // % **, math functions.

    Anything else (names, attributes, calls outside the allow-list) is rejected, and huge
    powers and factorials are refused rather than allowed to eat the CPU.
    """
    expression = expression.replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from exc
    result = _eval(tree.body)
    if isinstance(result, bool) or not isinstance(result, int | float):
        raise ValueError("the expression does not evaluate to a number")
    return result


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POWER:
            raise ValueError(f"exponent {right} is too large")
        value = _BINOPS[type(node.op)](left, right)
        if isinstance(value, int) and value.bit_length() > _MAX_DIGITS * 3.33:
            raise ValueError("the result is too large")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and args and args[0] > 1000:
            raise ValueError("factorial argument is too large")
        return _FUNCS[node.func.id](*args)
    raise ValueError(f"unsupported element in expression: {ast.unparse(node)!r}")


@tool(pure=True)
def calculator(
    expression: Annotated[str, Field(min_length=1, max_length=200, pattern=EXPRESSION_PATTERN)],
) -> str:
    """Evaluate an arithmetic expression and return the result.

    Args:
        expression: arithmetic using numbers, + - * / // % ** and functions like sqrt(2)
    """
    value = evaluate_arithmetic(expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(round(value, 10) if isinstance(value, float) else value)


@tool(pure=True)
def final_answer(answer: str) -> str:
    """Give the final answer to the task and stop.

    Args:
        answer: the complete final answer
    """
    return answer


def python_tool(timeout_s: float = 10.0, memory_mb: int = 512) -> Tool:
    """A ``python`` tool that runs code in one persistent :class:`PythonSandbox`.

    The sandbox starts on first use; state persists across calls like a notebook.
    """
    from slmkit.tools.sandbox import PythonSandbox

    box: dict[str, PythonSandbox] = {}

    def python(code: str) -> str:
        """Run Python code in a sandbox and return what it printed (state persists).

        Args:
            code: Python source; print() what you want to see
        """
        if "sb" not in box:
            box["sb"] = PythonSandbox(timeout_s=timeout_s, memory_mb=memory_mb)
        result = box["sb"].run(code)
        if result.timed_out:
            raise TimeoutError(f"code ran longer than {timeout_s}s")
        if result.error:
            out = result.stdout.strip()
            raise RuntimeError((out + "\n" if out else "") + result.error)
        return result.stdout if result.stdout else "(no output)"

    return Tool.from_function(python)
