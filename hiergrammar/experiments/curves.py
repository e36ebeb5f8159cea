"""Reading numbers off measured curves, shared by the figure steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from hiergrammar.validation import InputError, check_float, check_real_array

__all__ = ["first_crossing"]


def first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First ``x`` where the (overall decreasing) curve ``y`` falls below ``level``.

    Linear interpolation between the last point at or above ``level`` and the first below it.

    Parameters
    ----------
    x : numpy.ndarray
        ``(k,)`` finite abscissae.
    y : numpy.ndarray
        ``(k,)`` real values; NaN entries count as not below ``level``.
    level : float
        The level, a finite number.

    Returns
    -------
    float
        The crossing, or ``nan`` if ``y`` never falls below ``level`` or already starts below
        it.

    Raises
    ------
    InputError
        On shapes that are not two equal 1-d arrays, complex values, or a non-finite ``x`` or
        ``level``.

    Examples
    --------
    >>> first_crossing(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.8, 0.2]), 0.5)
    1.5
    """
    x = check_real_array("x", x, ndim=1)
    y = _real_curve("y", y)
    level = check_float("level", level)
    if y.shape != x.shape:
        raise InputError(f"x and y must have the same shape (k,), got {x.shape} and {y.shape}")
    below = np.flatnonzero(y < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(x[i - 1] + (y[i - 1] - level) * (x[i] - x[i - 1]) / (y[i - 1] - y[i]))


def _real_curve(name: str, value: Any) -> np.ndarray:
    """A real 1-d float array in which NaN marks a missing point (complex refused)."""
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise InputError(f"{name} must be real, got complex values (dtype {array.dtype})")
    if array.ndim != 1:
        raise InputError(f"{name} must have 1 dimension, got shape {array.shape}")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must hold real numbers ({err})") from None
