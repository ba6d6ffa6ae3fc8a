"""A free or frozen model parameter, as every problem kind gives it."""

import math
from dataclasses import dataclass


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
