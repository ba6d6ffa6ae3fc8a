"""Distance expressions of range parameters (BluePyOpt's ``dist``): a string in
``{distance}`` (um from the soma) and ``{value}`` (the parameter's value), such as
``(-0.8696 + 2.087*math.exp(({distance})*0.0031))*{value}``.

They are data, never code: an expression is parsed (Python's own parser, nothing
run) and only this grammar is accepted, then evaluated by a small tree of closures:
numbers, ``{distance}``, ``{value}``, + - * / ** %, unary + and -, parentheses,
``math.pi``, ``math.e``, and calls of the ``math`` functions in ``FUNCTIONS`` (plus
``abs``, ``min`` and ``max``). A run file or config from elsewhere cannot make
hpcopt run anything through one. Each operation is the one Python's ``eval`` would
do, so the doubles are the ones BluePyOpt computes.
"""

import ast
import math
import operator

FUNCTIONS = {name: getattr(math, name) for name in (
    "exp", "expm1", "log", "log10", "log1p", "log2", "sqrt", "pow", "fabs", "floor", "ceil",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "erf", "erfc", "hypot")}
BUILTINS = {"abs": abs, "min": min, "max": max}
CONSTANTS = {"pi": math.pi, "e": math.e}
BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.Pow: operator.pow, ast.Mod: operator.mod}
UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
VARIABLES = {"_distance": 0, "_value": 1}
MAX_LENGTH = 2000  # characters: an expression is a formula, not a program


class ExpressionError(ValueError):
    """An expression outside the grammar (the message says what is not allowed)."""


def distribution_function(expression):
    """(distance, value) -> float for a BluePyOpt distance expression (ExpressionError
    if it is not one)."""
    if not isinstance(expression, str) or len(expression) > MAX_LENGTH:
        raise ExpressionError(f"expected a formula of at most {MAX_LENGTH} characters")
    text = expression.replace("{distance}", "(_distance)").replace("{value}", "(_value)")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"not a formula: {err.msg}") from None
    node = _compile(tree.body)

    def evaluate(distance, value):
        return float(node((distance, value)))

    return evaluate


def _compile(node):
    """A function of (distance, value) computing ``node``, or ExpressionError."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = float(node.value)  # as a double: 9**9**9 overflows at once instead of growing without end
        return lambda variables: value
    if isinstance(node, ast.Name) and node.id in VARIABLES:
        index = VARIABLES[node.id]
        return lambda variables: variables[index]
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        apply, left, right = BINARY[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda variables: apply(left(variables), right(variables))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        apply, operand = UNARY[type(node.op)], _compile(node.operand)
        return lambda variables: apply(operand(variables))
    if _is_math(node) and node.attr in CONSTANTS:
        value = CONSTANTS[node.attr]
        return lambda variables: value
    if isinstance(node, ast.Call) and not node.keywords:
        function = _function(node.func)
        arguments = [_compile(a) for a in node.args]
        return lambda variables: function(*(a(variables) for a in arguments))
    raise ExpressionError(f"not allowed: {_describe(node)} (allowed: numbers, {{distance}}, {{value}}, "
                          "+ - * / ** %, math functions and math.pi, math.e, abs, min, max)")


def _is_math(node):
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math"


def _function(node):
    if _is_math(node) and node.attr in FUNCTIONS:
        return FUNCTIONS[node.attr]
    if isinstance(node, ast.Name) and node.id in BUILTINS:
        return BUILTINS[node.id]
    raise ExpressionError(f"not allowed: a call of {_describe(node)}")


def _describe(node):
    try:
        text = ast.unparse(node)
    except Exception:  # an unusual node: its type says enough
        text = type(node).__name__
    text = text.replace("(_distance)", "{distance}").replace("_distance", "{distance}")
    text = text.replace("(_value)", "{value}").replace("_value", "{value}")
    return repr(text if len(text) <= 60 else text[:57] + "...")


def check_distribution(expression, where):
    try:
        f = distribution_function(expression)
        for distance in (0.0, 100.0):
            result = f(distance, 1.0)
            if not math.isfinite(result):
                raise ValueError(f"gives {result} at distance {distance}")
    except ExpressionError as err:
        raise where.error("dist", f"expression {expression!r} does not evaluate: {err}") from None
    except Exception as err:  # any error of a user expression is a config error
        raise where.error("dist", f"expression {expression!r} does not evaluate: {type(err).__name__}: {err}") \
            from err
