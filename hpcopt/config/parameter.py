"""A free or frozen model parameter, as every problem kind gives it."""

import math
from dataclasses import dataclass

from . import fields


@dataclass(frozen=True)
class Parameter:
    """A model parameter: free in [lower, upper], or frozen at ``value``."""

    name: str
    lower: float = math.nan
    upper: float = math.nan
    value: float = math.nan

    @property
    def free(self):
        return math.isnan(self.value)


def parse_table(params, where):
    """The Parameters of {name: [low, high] (free) or value (frozen)} (``where``: that
    field); at least one must be free."""
    if not isinstance(params, dict) or not params:
        raise where.error(None, f"expected an object {{name: [low, high] or value}}, found {fields.show(params)}")
    parameters = []
    for name, spec in params.items():
        if isinstance(spec, list):
            if len(spec) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
                raise where.error(name, f"expected bounds [low, high] or a frozen value, found {fields.show(spec)}")
            if not all(map(fields.finite, spec)):
                raise where.error(name, f"bounds and their span must be finite, found {fields.show(spec)}")
            lower, upper = float(spec[0]), float(spec[1])
            if not math.isfinite(upper - lower):
                raise where.error(name, f"bounds and their span must be finite, found {fields.show(spec)}")
            if lower >= upper:
                raise where.error(name, f"lower bound {spec[0]} must be below upper bound {spec[1]}")
            parameters.append(Parameter(name, lower, upper))
        else:
            parameters.append(Parameter(name, value=fields.number(params, where, name)))
    if not any(p.free for p in parameters):
        raise where.error(None, "no free parameter: give at least one as [low, high]")
    return tuple(parameters)
