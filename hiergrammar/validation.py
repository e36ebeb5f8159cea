"""One input contract for the whole library: the error type, and the checks every entry point
uses.

Every public function and command validates its arguments once, here, and reports a violation
as an :class:`InputError` (a :class:`ValueError`) whose message names the argument and the bound
it violates. The command line prints an ``InputError`` as one line and exits with code 2; any
other exception is a bug and keeps its traceback.

Seeds
-----
A seed argument accepts a non-negative integer, ``None`` (fresh entropy) or, where documented, a
:class:`numpy.random.Generator` (used as is). :func:`check_seed` enforces it and
:func:`make_rng` turns any of them into a generator.

Memory budget
-------------
Functions that allocate large arrays estimate their size first and refuse, with the estimate
and the limit, anything above the budget (:func:`check_memory`). The budget is one setting:
``memory_budget=`` where a function takes it, else the environment variable
``HIERGRAMMAR_MEMORY_BUDGET`` (bytes, or a number with a unit such as ``512MiB`` or ``8GB``),
else 4 GiB.

Examples
--------
>>> check_int("L", 3, low=1)
3
>>> check_int("L", 0, low=1)
Traceback (most recent call last):
    ...
hiergrammar.validation.InputError: L=0 violates L >= 1
>>> parse_bytes("1.5 KiB")
1536
>>> check_seed("seed", -1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
hiergrammar.validation.InputError: seed=-1 violates seed >= 0 (a seed is a non-negative ...)
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "InputError",
    "ZeroEvidenceError",
    "check_choice",
    "check_float",
    "check_int",
    "check_memory",
    "check_probability_vector",
    "check_real_array",
    "check_seed",
    "format_bytes",
    "make_rng",
    "memory_budget",
    "parse_bytes",
]

#: The default memory budget, in bytes (4 GiB).
DEFAULT_MEMORY_BUDGET = 4 * 1024**3

#: The environment variable that overrides the default budget.
MEMORY_BUDGET_ENV = "HIERGRAMMAR_MEMORY_BUDGET"


class InputError(ValueError):
    """An argument violates a documented bound: the message names the argument and the bound.

    A subclass of :class:`ValueError`, so ``except ValueError`` keeps working.
    """


class ZeroEvidenceError(InputError):
    """Evidence that no tree of the grammar can produce (zero partition function).

    ``samples`` holds the indices of the offending evidence sets; ``reason``, when given, says
    what makes them impossible (e.g. a leaf whose evidence is zero for every value).
    """

    def __init__(self, samples: Sequence[int] | np.ndarray, reason: str | None = None):
        self.samples = np.asarray(samples)
        self.reason = reason
        shown = self.samples[:10].tolist()
        more = f" and {len(self.samples) - 10} more" if len(self.samples) > 10 else ""
        why = reason or "no tree is consistent with it (partition function 0)"
        super().__init__(
            f"the evidence of sample(s) {shown}{more} has zero probability under the grammar: {why}"
        )

    def __reduce__(self):  # keep the exception picklable (multiprocessing, Dask)
        return (type(self), (self.samples, self.reason))


# -- scalars --------------------------------------------------------------------------------------
def _bounds_text(name: str, low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{low} {'<' if low_open else '<='} ")
    parts.append(name)
    if high is not None:
        parts.append(f" {'<' if high_open else '<='} {high}")
    return "".join(parts)


def check_int(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """``value`` as a Python ``int``, or an :class:`InputError` naming ``name`` and the bound.

    Booleans, floats (even ``3.0``) and strings are refused; numpy integers are accepted.

    >>> check_int("n", np.int64(4), low=0)
    4
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        if high is None:
            raise InputError(f"{name}={value} violates {name} >= {low}")
        raise InputError(f"{name}={value} violates {low} <= {name} <= {high}")
    if high is not None and value > high:
        if low is None:
            raise InputError(f"{name}={value} violates {name} <= {high}")
        raise InputError(f"{name}={value} violates {low} <= {name} <= {high}")
    return value


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite Python ``float`` within the bounds, else an :class:`InputError`.

    NaN, infinities, complex numbers, booleans and strings are refused.

    >>> check_float("eps", 0.25, 0.0, 1.0)
    0.25
    >>> check_float("eps", float("nan"), 0.0, 1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: eps=nan violates 0.0 <= eps <= 1.0 (it must be ...)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    bounds = _bounds_text(name, low, high, low_open, high_open)
    if not math.isfinite(value):
        raise InputError(f"{name}={value} violates {bounds} (it must be a finite number)")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise InputError(f"{name}={value} violates {bounds}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else an :class:`InputError` listing them.

    >>> check_choice("noise", "eps", ["eps", "diffusion"])
    'eps'
    """
    if isinstance(value, str) or value is None or isinstance(value, numbers.Number):
        if value in choices:
            return value
    raise InputError(f"{name}={value!r} is not one of {list(choices)}")


# -- seeds ----------------------------------------------------------------------------------------
_SEED_RULE = "a seed is a non-negative integer, None, or a numpy Generator"


def check_seed(
    name: str, seed: Any, *, allow_generator: bool = True
) -> int | None | np.random.Generator:
    """Validate a seed: a non-negative integer, ``None``, or (if allowed) a ``Generator``.

    Returns the seed as a Python ``int``, ``None``, or the generator itself.

    >>> check_seed("seed", np.uint32(7))
    7
    >>> check_seed("seed", 1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: seed=1.5 is not a valid seed (a seed is ...)
    """
    if seed is None:
        return None
    if isinstance(seed, np.random.Generator):
        if allow_generator:
            return seed
        raise InputError(f"{name} must be a non-negative integer or None, got a Generator")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(f"{name}={seed!r} is not a valid seed ({_SEED_RULE})")
    if seed < 0:
        raise InputError(f"{name}={seed} violates {name} >= 0 ({_SEED_RULE})")
    return int(seed)


def make_rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """A :class:`numpy.random.Generator` from a validated seed (a Generator is returned as is).

    >>> make_rng(0).integers(10, size=3).tolist() == make_rng(0).integers(10, size=3).tolist()
    True
    """
    seed = check_seed(name, seed)
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# -- arrays ---------------------------------------------------------------------------------------
def check_real_array(
    name: str,
    value: Any,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: tuple[int | None, ...] | None = None,
    nonnegative: bool = False,
    dtype: Any = np.float64,
) -> np.ndarray:
    """``value`` as a finite real array of ``dtype``, else an :class:`InputError`.

    ``shape`` may hold ``None`` for a free axis. Complex input is refused (casting would drop
    the imaginary part), and so are NaN, infinities and, with ``nonnegative``, negative entries.

    >>> check_real_array("x", [[1, 2]], shape=(None, 2)).shape
    (1, 2)
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nested lists, unconvertible objects
        raise InputError(f"{name} must be an array of real numbers ({err})") from None
    if array.dtype == object:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be an array of real numbers ({err})") from None
    if np.iscomplexobj(array):
        raise InputError(f"{name} must be real, got complex values (dtype {array.dtype})")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{name} must hold numbers, got dtype {array.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            raise InputError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {array.shape}"
            )
    if shape is not None:
        expected = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        if array.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, array.shape, strict=False)
        ):
            raise InputError(f"{name} must have shape {expected}, got {array.shape}")
    with np.errstate(over="ignore"):
        array = array.astype(dtype, copy=False)
    if array.size:
        if not np.isfinite(array).all():
            raise InputError(f"{name} must be finite (it holds NaN or inf)")
        if nonnegative and array.min() < 0:
            raise InputError(f"{name} must be non-negative (min {array.min():.3g})")
    return array


def check_probability_vector(name: str, value: Any, size: int, atol: float = 1e-6) -> np.ndarray:
    """A length-``size`` probability vector (non-negative, summing to 1 within ``atol``).

    >>> check_probability_vector("p", [0.25, 0.75], 2).tolist()
    [0.25, 0.75]
    """
    p = check_real_array(name, value, shape=(size,), nonnegative=True)
    total = float(p.sum())
    if abs(total - 1.0) > atol:
        raise InputError(f"{name} must sum to 1, got sum {total:.6g}")
    return p


# -- memory ---------------------------------------------------------------------------------------
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_bytes(text: str | int | float) -> int:
    """A size in bytes from ``4294967296``, ``"4GiB"``, ``"512 MB"``, ``"1.5e9"``...

    Decimal units (kB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB) of 1024.

    >>> parse_bytes("4GiB"), parse_bytes("2 GB"), parse_bytes(100)
    (4294967296, 2000000000, 100)
    """
    if isinstance(text, bool):
        raise InputError(f"memory size must be a number of bytes, got {text!r}")
    if isinstance(text, numbers.Real):
        value = float(text)
        unit = ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
        if match is None or match.group(2).lower() not in _UNITS:
            raise InputError(
                f"memory size {text!r} is not a number of bytes with an optional unit "
                "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    total = value * _UNITS[unit]
    if not math.isfinite(total) or total <= 0:
        raise InputError(f"memory size {text!r} violates size > 0")
    return int(total)


def format_bytes(n: float) -> str:
    """``n`` bytes in a readable binary unit.

    >>> format_bytes(3 * 1024**3)
    '3.00 GiB'
    """
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def memory_budget(override: int | str | None = None) -> int:
    """The memory budget in bytes: ``override``, else ``$HIERGRAMMAR_MEMORY_BUDGET``, else 4 GiB.

    >>> memory_budget("1GiB")
    1073741824
    """
    if override is not None:
        return parse_bytes(override)
    env = os.environ.get(MEMORY_BUDGET_ENV)
    if env:
        try:
            return parse_bytes(env)
        except InputError as err:
            raise InputError(f"${MEMORY_BUDGET_ENV}: {err}") from None
    return DEFAULT_MEMORY_BUDGET


def check_memory(what: str, n_bytes: float, budget: int | str | None = None) -> int:
    """Refuse an allocation estimated at ``n_bytes`` above the budget; return the budget.

    ``what`` says what would be allocated; the message gives the estimate, the limit and how to
    raise it. Estimates are computed with Python integers, so they never overflow.

    >>> check_memory("a tiny table", 1024)
    4294967296
    >>> check_memory("the leaf evidence (n, d, v)", 8 * 10**12)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: the leaf evidence (n, d, v) would need 7.28 TiB, above ...
    """
    limit = memory_budget(budget)
    if n_bytes > limit:
        raise InputError(
            f"{what} would need {format_bytes(n_bytes)}, above the memory budget of "
            f"{format_bytes(limit)} (set memory_budget= or ${MEMORY_BUDGET_ENV} to raise it)"
        )
    return limit
