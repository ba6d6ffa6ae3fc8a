"""Distance expressions of range parameters (BluePyOpt's ``dist``): a string in
``{distance}`` (um from the soma) and ``{value}`` (the parameter's value), such as
``(-0.8696 + 2.087*math.exp(({distance})*0.0031))*{value}``."""

import math


def distribution_function(expression):
    """(distance, value) -> float for a BluePyOpt distance expression.

    BluePyOpt formats the numbers into the string and evaluates it; substituting
    variables gives the same doubles (it formats with %.17g). Only ``math`` is visible.
    """
    code = compile(expression.replace("{distance}", "(_distance)").replace("{value}", "(_value)"),
                   "<distribution>", "eval")
    namespace = {"__builtins__": {}, "math": math}

    def evaluate(distance, value):
        return float(eval(code, namespace, {"_distance": distance, "_value": value}))

    return evaluate


def check_distribution(expression, where):
    try:
        f = distribution_function(expression)
        for distance in (0.0, 100.0):
            result = f(distance, 1.0)
            if not math.isfinite(result):
                raise ValueError(f"gives {result} at distance {distance}")
    except Exception as err:  # any error of a user expression is a config error
        raise where.error("dist", f"expression {expression!r} does not evaluate: {type(err).__name__}: {err}") \
            from err
