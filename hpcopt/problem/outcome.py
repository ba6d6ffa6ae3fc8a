"""What one evaluation produced.

An evaluation never raises for a bad parameter set: an exception inside the
model, a missing or non-finite objective is a *failed* Outcome that scores the
penalty on every objective; a simulation past its budget is a *timeout*. The run
goes on.
"""

from dataclasses import dataclass

import numpy as np

OK, FAILED, TIMEOUT = 0, 1, 2
STATUS_NAMES = {OK: "ok", FAILED: "failed", TIMEOUT: "timeout"}


@dataclass
class Outcome:
    """What one evaluation produced.

    objectives: (m,) scores (penalty values when not OK); status: OK, FAILED or
    TIMEOUT; error: one line saying why it failed ("" when OK).
    """

    objectives: np.ndarray
    status: int = OK
    error: str = ""
    features: np.ndarray = None  # (k,) mean of each feature's values, NaN where missing
    raw: dict = None  # {feature: list of values or None}, for `hpcopt evaluate`
