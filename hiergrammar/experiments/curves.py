"""Reading numbers off measured curves, shared by the figure steps."""

from __future__ import annotations

import numpy as np


def first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First ``x`` where the (overall decreasing) curve ``y`` falls below ``level``.

    Linear interpolation between the last point at or above ``level`` and the first below it;
    ``nan`` if ``y`` never falls below ``level`` or already starts below it.

    >>> first_crossing(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.8, 0.2]), 0.5)
    1.5
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    below = np.flatnonzero(y < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(x[i - 1] + (y[i - 1] - level) * (x[i] - x[i - 1]) / (y[i - 1] - y[i]))
