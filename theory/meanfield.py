"""Numeric mean-field (annealed) theory of BP on the RHM, and its exact-BP counterpart.

The mean-field theory (docs/model.md §6, paper section 5 and appendix B) averages the BP messages
over the random rules and keeps two values per level: the belief in the true symbol and the
common belief in each other symbol. Level ``l`` is then described by three numbers:

* ``u_l``, the upward belief in the true value: ``u_0 = 1 - eps`` and ``u_{l+1} = F(u_l)``
  (:func:`upward_map`, with the parent cardinality ``K = n_classes`` at the root, ``v``
  elsewhere);
* ``d_l``, the downward belief: ``d_L = 1 / n_classes`` (uniform prior over classes) and
  ``d_{l-1} = G(d_l, u_{l-1})`` (:func:`downward_map`);
* ``p_l``, the marginal belief: ``u d / (u d + (1 - u)(1 - d) / (K_l - 1))``
  (:func:`marginal`, ``K_l`` the cardinality of level ``l``).

The closed forms are typed in here; :mod:`hiergrammar.theory.symbolic` derives them independently.
The phase transition sits at the repulsive fixed point ``u*`` of ``F`` (:func:`upward_fixed_point`,
:func:`critical_eps`, :func:`critical_line`).

:func:`hiergrammar.experiments.beliefs.bp_profile` and ``bp_profile_diffusion`` (in the core)
measure the same three quantities (and the argmax accuracy) with exact BP, averaged over
samples, nodes and several rule draws, with standard errors, so that the theory can be checked
against them.

Examples
--------
>>> prof = profile(v=32, n_classes=32, m=8, s=2, L=5, eps=0.3)
>>> prof.u.shape, round(float(prof.u[0]), 3)      # (L+1,), level 0 is the input
((6,), 0.7)
>>> round(critical_eps(v=32, m=8, s=2), 4)         # (v - 2m + 1) / (v - m)
0.7083
>>> profile(32, 32, 8, 2, 5, eps=[0.3, 0.9]).p.shape   # (len(eps), L+1)
(2, 6)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hiergrammar.rhm import check_int
from hiergrammar.rhm import check_parameters as _check_rhm_parameters
from hiergrammar.validation import InputError, check_float

__all__ = [
    "check_parameters",
    "upward_map",
    "downward_map",
    "marginal",
    "MeanFieldProfile",
    "profile",
    "slope_at_one",
    "upward_fixed_point",
    "critical_eps",
    "large_v_upward_map",
    "critical_line",
]

ArrayLike = float | Sequence[float] | np.ndarray


# -- validation ------------------------------------------------------------------------------
def check_parameters(v: int, n_classes: int, m: int, s: int, L: int | None = None) -> None:
    """Raise ValueError unless the parameters define an RHM (the bounds of
    :func:`hiergrammar.rhm.check_parameters`)."""
    _check_rhm_parameters(v, n_classes, m, s, L)


def _check_eps(eps: ArrayLike, name: str = "eps") -> np.ndarray:
    """``eps`` as a float64 array (a scalar or 1-d) with every entry finite and in ``[0, 1]``,
    else an :class:`~hiergrammar.validation.InputError` naming ``name`` (the first bad entry,
    ``name[i]`` for an array) and the bound."""
    try:
        array = np.asarray(eps)
    except (TypeError, ValueError) as err:  # ragged nested lists
        raise InputError(f"{name} must be a number or a 1-d array of numbers ({err})") from None
    if array.ndim > 1:
        raise InputError(f"{name} must be a scalar or a 1-d array, got shape {array.shape}")
    if array.ndim == 0:
        return np.asarray(check_float(name, array.item(), 0.0, 1.0))
    for i, value in enumerate(array.tolist()):
        check_float(f"{name}[{i}]", value, 0.0, 1.0)
    return array.astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray, fallback: float | np.ndarray) -> np.ndarray:
    """``num / den`` with ``fallback`` where ``den == 0`` (degenerate corners such as ``m = 1``
    with a certain parent, where both beliefs are exactly 0 or 1)."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.array(np.broadcast_to(fallback, num.shape), dtype=np.float64)
    ok = den != 0
    out[ok] = num[ok] / den[ok]
    return out


# -- the maps ----------------------------------------------------------------------------------
def upward_map(u: ArrayLike, v: int, m: int | float, s: int, K: int | None = None) -> np.ndarray:
    """Mean-field upward map ``F(u)`` (eqs. 11, 37-41), elementwise on ``u`` (any shape).

    ``F(u) = (x + A (1 - x)) / (x + B (1 - x))`` with ``x = u**s``, ``A = (m-1)/(v**s-1)``,
    ``B = (K m - 1)/(v**s - 1)``; ``K`` is the parent's cardinality (``v`` by default,
    ``n_classes`` at the root). ``m`` may be real (a point on a continuous ``f`` axis).

    >>> float(upward_map(1.0, 32, 8, 2)), round(float(upward_map(1 / 32, 32, 8, 2)), 6)
    (1.0, 0.03125)
    """
    K = v if K is None else K
    u = np.asarray(u, dtype=np.float64)
    x = u**s
    tuples = float(v) ** s - 1.0
    A = (m - 1.0) / tuples
    B = (K * m - 1.0) / tuples
    return (x + A * (1.0 - x)) / (x + B * (1.0 - x))


def downward_map(d: ArrayLike, u: ArrayLike, v: int, m: int | float, s: int) -> np.ndarray:
    """Mean-field downward map ``G(d, u)`` (eqs. 46-54, 57-59), elementwise (broadcasting).

    ``d``: downward belief of the parent in its true value; ``u``: upward belief of each
    sibling (same level as the child). With ``c = (m - d)/(v**s - 1)`` (the mean parent weight
    per sampled tuple other than the true one; it does not depend on the parent's cardinality,
    because the parent's downward message sums to 1 over its ``K m`` rules)::

        G = (d u**(s-1) + (1 - u**(s-1)) c) / (d u**(s-1) + (1 - u**(s-1)) c + (v - 1) c)

    The child's cardinality is always ``v``.

    >>> round(float(downward_map(1 / 32, 1.0, 32, 8, 2)), 4)   # noiseless siblings, flat root
    0.1146
    """
    d = np.asarray(d, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    c = (m - d) / (float(v) ** s - 1.0)
    w = u ** (s - 1)
    true = d * w + (1.0 - w) * c
    # den = 0 only when c = 0 (m = 1 and a certain parent) and d*w = 0: the child is then the
    # parent's single rule, hence certain.
    return _ratio(true, true + (v - 1) * c, 1.0)


def marginal(u: ArrayLike, d: ArrayLike, K: int) -> np.ndarray:
    """Marginal belief in the true value (eq. 62): ``u d / (u d + (1-u)(1-d)/(K-1))``.

    ``K`` is the cardinality of the level (``n_classes`` at the root, ``v`` elsewhere); for
    ``K = 1`` the value is certain.
    """
    u = np.asarray(u, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    true = u * d
    others = (1.0 - u) * (1.0 - d) / (K - 1) if K > 1 else np.zeros_like(true)
    # den = 0 only for contradictory certainties (u = 0, d = 1 or u = 1, d = 0): BP itself
    # would report zero evidence there; return the downward belief.
    return _ratio(true, true + others, d)


@dataclass(frozen=True)
class MeanFieldProfile:
    """Mean-field beliefs in the true symbol per level (index ``l = 0..L``, 0 = input).

    ``u``, ``d``, ``p``: shape ``(L+1,)`` for a scalar eps, ``(len(eps), L+1)`` for an array.
    """

    u: np.ndarray
    d: np.ndarray
    p: np.ndarray


def profile(v: int, n_classes: int, m: int, s: int, L: int, eps: ArrayLike) -> MeanFieldProfile:
    """Mean-field upward, downward and marginal beliefs at every level of an RHM.

    Parameters
    ----------
    v, n_classes, m, s, L : the RHM's parameters (validated as :class:`hiergrammar.rhm.RHM`).
    eps : noise of the epsilon-process, scalar or 1-d array, ``0 <= eps <= 1``.

    Returns
    -------
    :class:`MeanFieldProfile` with ``u``, ``d``, ``p`` of shape ``(L+1,)`` (scalar eps) or
    ``(len(eps), L+1)``.

    >>> prof = profile(16, 16, 4, 2, 3, eps=0.0)   # noiseless: every level is certain
    >>> prof.p.tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    check_parameters(v, n_classes, m, s, L)
    eps = _check_eps(eps)
    scalar = eps.ndim == 0
    eps = np.atleast_1d(eps)
    u = np.empty((eps.size, L + 1))
    d = np.empty_like(u)
    u[:, 0] = 1.0 - eps
    for level in range(1, L + 1):
        K = n_classes if level == L else v
        u[:, level] = upward_map(u[:, level - 1], v, m, s, K=K)
    d[:, L] = 1.0 / n_classes
    for level in range(L, 0, -1):
        d[:, level - 1] = downward_map(d[:, level], u[:, level - 1], v, m, s)
    p = np.empty_like(u)
    for level in range(L + 1):
        p[:, level] = marginal(u[:, level], d[:, level], n_classes if level == L else v)
    if scalar:
        u, d, p = u[0], d[0], p[0]
    return MeanFieldProfile(u=u, d=d, p=p)


# -- fixed points and the transition ------------------------------------------------------------
def slope_at_one(v: int, m: int | float, s: int) -> float:
    """``F'(1) = s m (v - 1) / (v**s - 1)`` (eq. 42-45; ``-> s f`` at large ``v``). The
    noiseless fixed point ``u = 1`` is attractive iff it is below 1."""
    return s * m * (v - 1) / (float(v) ** s - 1.0)


def _interior_roots(coeffs: np.ndarray, low: float, high: float) -> np.ndarray:
    roots = np.roots(coeffs)
    real = roots[np.abs(roots.imag) < 1e-9].real
    return np.sort(real[(real > low + 1e-9) & (real < high - 1e-12)])


def upward_fixed_point(v: int, m: int | float, s: int) -> float:
    """The repulsive fixed point ``u*`` of the internal upward map (``K = v``).

    ``F(u) = u`` with ``F(1) = 1`` and ``F(1/v) = 1/v`` removed is the polynomial
    ``u**s + (1 + u + ... + u**(s-1)) (A - B u) = 0`` (degree ``s``); ``u*`` is its smallest
    root in ``(1/v, 1)``, the edge of the basin of the uninformative fixed point ``1/v``.
    Without such a root, ``u*`` is ``1/v`` itself when ``F'(1) < 1`` (e.g. ``m = 1``: the
    uninformative point is repulsive and any ``eps < 1 - 1/v`` is recovered), and 1.0 when
    ``F'(1) >= 1`` (any noise destroys the class).

    >>> round(upward_fixed_point(32, 8, 2), 6) == round(7 / 24, 6)   # (m-1)/(v-m) for s=2
    True
    """
    tuples = float(v) ** s - 1.0
    A, B = (m - 1.0) / tuples, (v * m - 1.0) / tuples
    # Coefficients in increasing powers: u**s + sum_{k<s} u**k * (A - B u).
    poly = np.zeros(s + 1)
    poly[s] += 1.0
    for k in range(s):
        poly[k] += A
        poly[k + 1] -= B
    # Divide out the known root 1/v before solving (it would be a near-double root otherwise).
    quotient, _ = np.polydiv(poly[::-1], np.array([1.0, -1.0 / v]))
    roots = _interior_roots(quotient, 1.0 / v, 1.0)
    if roots.size:
        return float(roots[0])
    return 1.0 / v if slope_at_one(v, m, s) < 1 else 1.0


def critical_eps(v: int, m: int, s: int) -> float:
    """``eps* = 1 - u*``: for ``eps < eps*`` the class is recovered as ``L -> infinity``.

    For ``s = 2``, ``eps* = (v - 2m + 1) / (v - m)`` when ``2 <= m`` and ``2m < v + 1``; 0
    when no recovery phase exists (``F'(1) >= 1``); ``1 - 1/v`` when the uninformative point
    is itself repulsive (``m = 1``, where that closed form would pick the root ``u = 0``).
    """
    check_parameters(v, 1, m, s)
    return 1.0 - upward_fixed_point(v, m, s)


def large_v_upward_map(u: ArrayLike, f: float, s: int) -> np.ndarray:
    """The ``v -> infinity`` limit of :func:`upward_map`: ``u**s / (u**s + f (1 - u**s))``."""
    x = np.asarray(u, dtype=np.float64) ** s
    return x / (x + f * (1.0 - x))


def critical_line(f: ArrayLike, s: int, v: int | None = None) -> np.ndarray:
    """Critical noise ``eps*(f)`` on a continuous axis ``f = m / v**(s-1)``.

    ``v = None`` gives the large-``v`` limit, where ``u*`` solves ``u**(s-1) = f (1 + u + ...
    + u**(s-1))`` (``u* = f / (1 - f)`` for ``s = 2``); otherwise ``m = f v**(s-1)`` is taken
    as real in the finite-``v`` map. ``eps* = 0`` where no recovery phase exists
    (``f >= 1/s`` at large ``v``). Shape of ``f``.

    >>> critical_line([0.2, 0.6], s=2).round(4).tolist()
    [0.75, 0.0]
    """
    f = np.asarray(f, dtype=np.float64)
    if np.any(f <= 0) or np.any(f > 1):
        raise ValueError(f"f={f} violates 0 < f <= 1")
    s = check_int("s", s, 2)
    out = np.empty(f.shape)
    for idx, fi in np.ndenumerate(f):
        if v is None:
            # u**(s-1) - f * sum_{k<s} u**k, in decreasing powers.
            coeffs = -fi * np.ones(s)
            coeffs[0] += 1.0
            roots = _interior_roots(coeffs, 0.0, 1.0)
            out[idx] = 1.0 - (roots[0] if roots.size else 1.0)
        else:
            out[idx] = 1.0 - upward_fixed_point(v, fi * float(v) ** (s - 1), s)
    return out
