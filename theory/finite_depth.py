"""Finite-depth scaling of the class transition: mean-field predictions and exact-BP measurements.

At finite depth ``L`` the class curve (the mean belief in the true class against ``eps``) is
smooth; it sharpens and moves towards ``eps*`` as ``L`` grows. The derivation
(:func:`hiergrammar.theory.symbolic.derivation`, section "Finite-depth scaling") gives:

* ``lambda = F'(u*)``, the factor by which a deviation from the repulsive fixed point grows per
  level (``2 (v-m)(m-1)(v+1) / (m (v-1)**2)`` for ``s = 2``, about 1.442 at ``v=32, m=8``);
* Koenigs' linearising coordinate ``psi`` (``psi(F(u)) = lambda psi(u)``), whose second
  coefficient is ``c2 = -F''(u*) / (2 lambda (lambda - 1))``, so that exactly
  ``u_L = Phi(lambda**L psi(1 - eps))`` with ``Phi = psi**-1`` the Poincare function;
* hence a fixed level of the class belief is crossed at
  ``eps(L) = eps* - Z lambda**-L + c2 Z**2 lambda**-2L + O(lambda**-3L)``, and the width between
  two levels is ``W_L = (Z_hi - Z_lo) lambda**-L (1 + O(lambda**-L))``: ``ln W_L`` falls by
  ``ln lambda`` per level.

:func:`scaling_prediction` evaluates these numbers (``Z`` needs ``Phi``, computed by iterating
``F`` from a tiny deviation); :func:`meanfield_crossings` solves the finite-``L`` mean-field
curve exactly; :func:`measure_class_transition` measures the crossings and widths with exact BP,
per rule draw, on a fine ``eps`` grid that follows each draw's own transition. Levels are of the
*normalised* class belief ``q = (p_L - 1/n_c) / (1 - 1/n_c)`` (and of the normalised accuracy).

Run::

    python -m hiergrammar.theory.finite_depth            # L = 3..12, 8 rule draws each
    python -m hiergrammar.theory.finite_depth --quick    # about a minute: L = 3..6

It writes a JSON (``--out``, default ``finite_depth.json``) with the per-draw curves, crossings
and widths, the predictions, and the fitted exponent next to ``ln lambda``. The stored result
(:data:`STORED_RESULT`, read by :func:`load_stored`; :func:`scaling_figure_data` turns it into
the series of the width-against-depth figure) was made with::

    python -m hiergrammar.theory.finite_depth --n-rules 6 --max-depth 14 --out A.json
    python -m hiergrammar.theory.finite_depth --add-to A.json --population-depths 8 12 14 \
        --out theory/data/finite_depth.json

(the second command reanalyses the stored curves and adds population dynamics).

Examples
--------
>>> pred = scaling_prediction(32, 8, 2)
>>> round(pred.lam, 4), round(pred.eps_star, 4)
(1.4422, 0.7083)
>>> w = [pred.width(L) for L in (10, 11)]
>>> round(float(w[0] / w[1]), 2)       # the width shrinks by about lambda per level
1.45
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hiergrammar.theory import meanfield
from scipy.optimize import brentq

from hiergrammar.artifacts import progress, save_json
from hiergrammar.bp import upward_pass
from hiergrammar.rhm import RHM, RHMSample, check_parameters
from hiergrammar.validation import check_float, check_int, check_seed

__all__ = [
    "LEVELS",
    "STORED_RESULT",
    "ScalingPrediction",
    "class_curve_point",
    "crossings",
    "draw_instance",
    "fit_exponent",
    "load_stored",
    "main",
    "mean_curve",
    "meanfield_crossings",
    "measure_class_transition",
    "poincare_function",
    "population_transition",
    "run_finite_depth",
    "scaling_figure_data",
    "scaling_prediction",
    "successive_depth_crossings",
    "summarise",
]

#: Levels of the normalised class belief at which crossings are measured; the width is taken
#: between the first and the last.
LEVELS = (0.25, 0.5, 0.75)


# -- predictions --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _constants(v: int, m: int, s: int) -> tuple[float, float, float, float]:
    """``(eps*, u*, lambda, c2)`` from :func:`hiergrammar.theory.symbolic.scaling_constants`."""
    from hiergrammar.theory.symbolic import scaling_constants

    k = scaling_constants(v, m, s)
    return k.point.eps_star_float, k.point.u_star_float, k.lam_float, k.c2_float


def poincare_function(z: np.ndarray | float, v: int, m: int, s: int) -> np.ndarray:
    """The Poincare function ``Phi = psi**-1`` of the internal upward map, elementwise.

    ``Phi(lambda z) = F(Phi(z))``, ``Phi(0) = u*``, ``Phi'(0) = 1``: the mean-field belief at
    depth ``L`` is ``Phi(lambda**L psi(u_0))``. Computed as ``F**n(u* + w - c2 w**2)`` with
    ``w = z lambda**-n`` below ``1e-5``.

    Parameters
    ----------
    z : array of real numbers (any shape).
    v, m, s : the RHM's parameters (with a transition).

    Returns
    -------
    ``Phi(z)``, same shape, in ``(1/v, 1)``.

    Examples
    --------
    >>> phi = poincare_function([-100.0, 0.0, 100.0], 32, 8, 2)
    >>> [round(float(x), 4) for x in phi]          # about 1/v, u* = 7/24, 1
    [0.0313, 0.2917, 1.0]
    """
    eps_star, u_star, lam, c2 = _constants(v, m, s)
    z = np.asarray(z, dtype=np.float64)
    biggest = float(np.max(np.abs(z))) if z.size else 0.0
    n = max(0, math.ceil(math.log(max(biggest, 1e-300) / 1e-5) / math.log(lam)))
    w = z * lam ** (-n)
    u = np.clip(u_star + w - c2 * w**2, 1.0 / v, 1.0)
    for _ in range(n):
        u = meanfield.upward_map(u, v, m, s)
    return u


@dataclass(frozen=True)
class ScalingPrediction:
    """Leading-order (and next-order) finite-depth scaling of the class transition.

    ``lam = F'(u*)``, ``c2`` (Koenigs), ``eps_star``; ``Z[level]`` solves
    ``q(F_K(Phi(Z / lam))) = level`` for each level of the normalised class belief ``q``
    (``K = n_classes`` at the root). ``width_prefactor = Z[hi] - Z[lo]``.
    """

    v: int
    m: int
    s: int
    n_classes: int
    eps_star: float
    lam: float
    c2: float
    Z: dict[float, float] = field(default_factory=dict)

    @property
    def width_prefactor(self) -> float:
        levels = sorted(self.Z)
        return self.Z[levels[-1]] - self.Z[levels[0]]

    def crossing(self, L: int | np.ndarray, level: float = 0.5, order: int = 2) -> np.ndarray:
        """``eps`` where the normalised class belief crosses ``level`` at depth ``L``:
        ``eps* - Z lam**-L`` (+ ``c2 Z**2 lam**-2L`` for ``order=2``)."""
        w = self.Z[level] * self.lam ** (-np.asarray(L, dtype=np.float64))
        return self.eps_star - w + (self.c2 * w**2 if order >= 2 else 0.0)

    def width(self, L: int | np.ndarray, order: int = 2) -> np.ndarray:
        """Width in ``eps`` between the lowest and highest levels of ``Z`` at depth ``L``."""
        levels = sorted(self.Z)
        return self.crossing(L, levels[0], order) - self.crossing(L, levels[-1], order)


def _normalised(belief: np.ndarray, n_classes: int) -> np.ndarray:
    return (belief - 1.0 / n_classes) / (1.0 - 1.0 / n_classes)


def scaling_prediction(
    v: int, m: int, s: int, n_classes: int | None = None, levels: Sequence[float] = LEVELS
) -> ScalingPrediction:
    """The finite-depth scaling constants of the mean-field class transition.

    Parameters
    ----------
    v, m, s : the RHM's parameters (they must have a transition).
    n_classes : root cardinality (default ``v``); enters the last step of the map only.
    levels : levels of the normalised class belief, in ``(0, 1)``.

    Returns
    -------
    :class:`ScalingPrediction`.

    Raises
    ------
    InputError
        when the parameters have no transition, or a level is outside ``(0, 1)``.

    Examples
    --------
    >>> pred = scaling_prediction(32, 8, 2)
    >>> round(pred.width_prefactor, 3), round(float(pred.crossing(12)), 4)
    (0.556, 0.7057)
    """
    n_classes = v if n_classes is None else n_classes
    check_parameters(v, n_classes, m, s)
    eps_star, u_star, lam, c2 = _constants(v, m, s)

    def q_of(z: float) -> float:
        u = poincare_function(z / lam, v, m, s)
        return float(_normalised(meanfield.upward_map(u, v, m, s, K=n_classes), n_classes))

    Z = {}
    for level in levels:
        level = check_float("level", level, 0.0, 1.0, low_open=True, high_open=True)
        low, high = -1.0, 1.0
        while q_of(low) > level:
            low *= 2
        while q_of(high) < level:
            high *= 2
        Z[level] = brentq(lambda z, y=level: q_of(z) - y, low, high, xtol=1e-12)
    return ScalingPrediction(v, m, s, n_classes, eps_star, lam, c2, Z)


def meanfield_crossings(
    v: int, n_classes: int, m: int, s: int, L: int, levels: Sequence[float] = LEVELS
) -> dict[float, float]:
    """Exact finite-``L`` mean-field crossings: ``eps`` where the normalised ``u_L`` crosses
    each level (root finding on :func:`hiergrammar.theory.meanfield.profile`).

    Examples
    --------
    >>> c = meanfield_crossings(32, 32, 8, 2, L=12)
    >>> round(c[0.25] - c[0.75], 4)      # the width at L = 12
    0.0069
    """
    check_parameters(v, n_classes, m, s, L)

    def q_minus(eps: float, level: float) -> float:
        u = meanfield.profile(v, n_classes, m, s, L, eps).u[L]
        return float(_normalised(u, n_classes)) - level

    top = 1.0 - 1.0 / v
    return {lv: brentq(q_minus, 0.0, top, args=(lv,), xtol=1e-12) for lv in levels}


# -- measurements -------------------------------------------------------------------------------
def _decreasing_fit(y: np.ndarray) -> np.ndarray:
    """Least-squares non-increasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for value in y:
        blocks.append([float(value), 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean2, w2 = blocks.pop()
            mean1, w1 = blocks.pop()
            blocks.append([(mean1 * w1 + mean2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([np.full(int(w), mean) for mean, w in blocks])


def crossings(eps: np.ndarray, q: np.ndarray, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Where a decreasing curve ``q(eps)`` crosses each level: the non-increasing
    least-squares fit of ``q``, interpolated by a monotone cubic (PCHIP); NaN where the grid
    does not reach the level. Linear interpolation would widen a sigmoid measured on a grid
    of a few points per width (by 7% on average at 1.7 points per width, as at L = 14 with
    steps of 0.002); the cubic keeps the average below 1% (one grid: within 3%).

    Examples
    --------
    >>> crossings(np.array([0.0, 0.1, 0.2]), np.array([1.0, 0.5, 0.0]), [0.25, 0.75]).round(6)
    array([0.15, 0.05])
    """
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(eps)
    x, y = np.asarray(eps, dtype=np.float64)[order], _decreasing_fit(np.asarray(q)[order])
    curve = PchipInterpolator(x, y) if x.size > 1 else None
    out = np.full(len(levels), np.nan)
    for i, level in enumerate(levels):
        below = np.flatnonzero(y < level)
        if below.size == 0 or below[0] == 0:
            continue
        j = below[0]
        out[i] = brentq(lambda e, y0=level: float(curve(e)) - y0, x[j - 1], x[j], xtol=1e-12)
    return out


def class_curve_point(
    rhm: RHM, x: np.ndarray, y: np.ndarray, eps: float, batch: int = 64
) -> tuple[float, float]:
    """Normalised mean class belief and normalised accuracy of exact BP at one ``eps``.

    ``x``: ``(n, s**L)`` leaves, ``y``: ``(n,)`` classes; the leaves get epsilon-process
    evidence (float32) and the upward pass runs ``batch`` samples at a time.

    Examples
    --------
    >>> rhm = RHM(8, 8, 2, 2, 3, seed=0)
    >>> data = rhm.sample(100, seed=1)
    >>> class_curve_point(rhm, data.x, data.y, eps=0.0)       # noiseless: certain
    (1.0, 1.0)
    """
    v, n = rhm.v, x.shape[0]
    belief, correct = 0.0, 0.0
    for start in range(0, n, batch):
        xb = x[start : start + batch]
        evidence = np.full((*xb.shape, v), eps / (v - 1), dtype=np.float32)
        np.put_along_axis(evidence, xb[..., None], np.float32(1.0 - eps), axis=-1)
        root = upward_pass(rhm, evidence, dtype=np.float32).root_marginal[:, 0, :]
        yb = y[start : start + batch]
        belief += float(root[np.arange(len(yb)), yb].sum())
        correct += float((root.argmax(axis=-1) == yb).sum())
    return (
        float(_normalised(belief / n, rhm.n_classes)),
        float(_normalised(correct / n, rhm.n_classes)),
    )


def draw_instance(
    v: int, n_classes: int, m: int, s: int, L: int, n_samples: int, seed: int, r: int
) -> tuple[RHM, RHMSample]:
    """Rule draw ``r`` of :func:`measure_class_transition` with this ``seed``: the RHM and the
    ``n_samples`` data reused at every ``eps`` (so a stored curve can be recomputed)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(r + 1)[r])
    rhm = RHM(v, n_classes, m, s, L, seed=int(rng.integers(2**63)))
    return rhm, rhm.sample(n_samples, seed=int(rng.integers(2**63)))


def measure_class_transition(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    n_rules: int = 8,
    n_samples: int = 256,
    seed: int = 0,
    step: float = 0.002,
    stop: tuple[float, float] = (0.9, 0.1),
    max_points: int = 400,
) -> dict:
    """Exact-BP class curves per rule draw on a fine ``eps`` grid around each draw's transition.

    For each of ``n_rules`` RHMs, ``n_samples`` data are drawn once and reused at every ``eps``
    (so each draw's curve is smooth in ``eps``). The grid has spacing ``step``; it starts at the
    mean-field half-level crossing, walks to the draw's own half-level crossing and extends
    until both normalised curves (class belief and accuracy) are above ``stop[0]`` on the left
    and below ``stop[1]`` on the right.

    Returns
    -------
    dict with, per draw, ``eps`` (sorted grid), ``q_belief`` and ``q_accuracy`` (the
    normalised curves), and arrays ``crossings_belief`` / ``crossings_accuracy`` of shape
    ``(n_rules, len(LEVELS))`` and ``width_belief`` / ``width_accuracy`` ``(n_rules,)``.

    Examples
    --------
    >>> got = measure_class_transition(8, 8, 2, 2, L=3, n_rules=2, n_samples=50, step=0.01)
    >>> got["crossings_belief"].shape, bool(np.all(got["width_belief"] > 0))
    ((2, 3), True)
    """
    check_parameters(v, n_classes, m, s, L)
    n_rules = check_int("n_rules", n_rules, 1)
    n_samples = check_int("n_samples", n_samples, 1)
    step = check_float("step", step, 0.0, 0.5, low_open=True)
    max_points = check_int("max_points", max_points, 3)
    top = 1.0 - 1.0 / v
    k_top = int(math.floor(top / step + 1e-9))
    start = meanfield_crossings(v, n_classes, m, s, L, levels=(0.5,))[0.5]
    seed = check_seed("seed", seed, allow_generator=False)
    batch = max(1, 2**16 // s**L)
    draws = []
    for r in progress(range(n_rules), desc=f"BP class curves L={L}", total=n_rules):
        rhm, data = draw_instance(v, n_classes, m, s, L, n_samples, seed, r)
        cache: dict[int, tuple[float, float]] = {}

        def at(k: int, rhm: RHM = rhm, data=data, cache=cache) -> tuple[float, float]:
            k = min(max(k, 0), k_top)
            if k not in cache:
                if len(cache) >= max_points:
                    raise RuntimeError(f"more than max_points={max_points} eps values needed")
                cache[k] = class_curve_point(rhm, data.x, data.y, k * step, batch)
            return cache[k]

        k = int(round(start / step))
        jump = max(1, int(round(0.01 / step)))
        # Walk (in jumps of about 0.01) to bracket the draw's half-level crossing...
        if min(at(k)) > 0.5:
            while min(at(k)) > 0.5 and k < k_top:
                k += jump
            low, high = k - jump, k
        else:
            while max(at(k)) <= 0.5 and k > 0:
                k -= jump
            low, high = k, k + jump
        for j in range(max(low, 0), min(high, k_top) + 1):  # ...fill it at full resolution...
            at(j)
        left, right = max(low, 0), min(high, k_top)
        while min(at(left)) < stop[0] and left > 0:  # ...and extend to the plateaus.
            left -= 1
            at(left)
        while max(at(right)) > stop[1] and right < k_top:
            right += 1
            at(right)
        ks = np.array(sorted(cache))
        eps = ks * step
        q_b = np.array([cache[j][0] for j in ks])
        q_a = np.array([cache[j][1] for j in ks])
        draws.append({"eps": eps, "q_belief": q_b, "q_accuracy": q_a})
    out: dict = {"draws": draws}
    for name in ("belief", "accuracy"):
        cross = np.array([crossings(d["eps"], d[f"q_{name}"]) for d in draws])
        out[f"crossings_{name}"] = cross
        out[f"width_{name}"] = cross[:, 0] - cross[:, -1]
    return out


def fit_exponent(depths: np.ndarray, widths: np.ndarray, se: np.ndarray | None = None) -> dict:
    """Weighted least-squares fit ``ln W_L = a - L ln Lambda``; returns ``{"lam_fit",
    "log_lam_fit", "log_lam_se", "intercept"}``.

    Examples
    --------
    >>> fit = fit_exponent(np.arange(5), 0.3 * 1.5 ** -np.arange(5.0))
    >>> round(fit["lam_fit"], 6)
    1.5
    """
    depths = np.asarray(depths, dtype=np.float64)
    logw = np.log(np.asarray(widths, dtype=np.float64))
    if se is None:
        weights = np.ones_like(logw)
    else:
        rel = np.asarray(se, dtype=np.float64) / np.asarray(widths, dtype=np.float64)
        weights = 1.0 / np.maximum(rel, 1e-6) ** 2
    X = np.stack([np.ones_like(depths), -depths], axis=1)
    W = np.diag(weights)
    cov = np.linalg.inv(X.T @ W @ X)
    a, b = cov @ X.T @ W @ logw
    resid = logw - X @ np.array([a, b])
    dof = max(len(depths) - 2, 1)
    # Scale the covariance by the residual variance when weights are relative (se given) so the
    # error bar reflects the scatter of the points about the line, not only their error bars.
    scale = (
        max(1.0, float(resid @ W @ resid) / dof) if se is not None else float(resid @ resid) / dof
    )
    return {
        "lam_fit": float(math.exp(b)),
        "log_lam_fit": float(b),
        "log_lam_se": float(math.sqrt(cov[1, 1] * scale)),
        "intercept": float(a),
    }


def run_finite_depth(
    v: int = 32,
    n_classes: int = 32,
    m: int = 8,
    s: int = 2,
    depths: Sequence[int] = tuple(range(3, 13)),
    n_rules: int = 8,
    n_samples: int | None = None,
    step: float = 0.002,
    fit_from: int = 6,
    seed: int = 0,
) -> dict:
    """Predictions and exact-BP measurements of the class transition's width and position.

    ``n_samples`` per ``eps`` point and draw defaults to ``clip(2**18 / s**L, 256, 2000)``.
    The grid spacing at depth ``L`` is ``step``, or a thirtieth of the mean-field width where
    that is coarser (rounded down to 0.001): shallow trees have wide transitions.
    Returns a JSON-ready dict: ``params``, ``prediction`` (``lam``, ``c2``, ``Z``, per-depth
    asymptotic and exact mean-field crossings and widths), ``bp`` (per depth: per-draw
    crossings and widths, their means and standard errors, the spread of the half-level
    crossing across draws, and the curves), and ``fit`` (the fitted exponents against
    ``ln lambda``).
    """
    pred = scaling_prediction(v, m, s, n_classes)
    out: dict = {
        "params": {
            "v": v,
            "n_classes": n_classes,
            "m": m,
            "s": s,
            "depths": list(depths),
            "n_rules": n_rules,
            "n_samples": n_samples,
            "step": step,
            "levels": list(LEVELS),
            "fit_from": fit_from,
            "seed": seed,
        },
        "prediction": {
            "eps_star": pred.eps_star,
            "lam": pred.lam,
            "log_lam": math.log(pred.lam),
            "c2": pred.c2,
            "Z": {str(k): z for k, z in pred.Z.items()},
            "width_prefactor": pred.width_prefactor,
        },
        "bp": {},
    }
    rows = {"asymptotic_width_1": [], "asymptotic_width_2": [], "mf_width": []}
    rows.update({"asymptotic_half_2": [], "mf_half": []})
    for L in depths:
        mf = meanfield_crossings(v, n_classes, m, s, L)
        rows["asymptotic_width_1"].append(float(pred.width(L, order=1)))
        rows["asymptotic_width_2"].append(float(pred.width(L, order=2)))
        rows["mf_width"].append(mf[LEVELS[0]] - mf[LEVELS[-1]])
        rows["asymptotic_half_2"].append(float(pred.crossing(L, 0.5)))
        rows["mf_half"].append(mf[0.5])
    out["prediction"].update(rows)
    for i, L in enumerate(depths):
        start = time.perf_counter()
        n = n_samples or int(np.clip(2**18 // s**L, 256, 2000))
        step_L = max(step, math.floor(rows["mf_width"][i] / 30 * 1000) / 1000)
        got = measure_class_transition(
            v, n_classes, m, s, L, n_rules=n_rules, n_samples=n, seed=seed + L, step=step_L
        )
        res: dict = {"n_samples": n, "step": step_L, "draws": got["draws"]}
        _summarise_depth(res)
        res["seconds"] = time.perf_counter() - start
        out["bp"][str(L)] = res
        print(
            f"L={L}: width(belief) = {res['width_belief_mean']:.4f} +- "
            f"{res['width_belief_se']:.4f} (MF {rows['mf_width'][list(depths).index(L)]:.4f}), "
            f"half-level crossing {res['half_belief_mean']:.4f} (spread over draws "
            f"{res['half_belief_spread']:.4f}), width(accuracy) {res['width_accuracy_mean']:.4f}"
            f" ({res['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return summarise(out)


def _summarise_depth(res: dict) -> None:
    """Per-draw crossings and widths of one depth from its curves, and their statistics."""
    draws = res["draws"]
    for name in ("belief", "accuracy"):
        cross = np.array([crossings(d["eps"], d[f"q_{name}"]) for d in draws])
        width = cross[:, 0] - cross[:, -1]
        res[f"crossings_{name}"] = cross
        res[f"width_{name}"] = width
        res[f"width_{name}_mean"] = float(np.mean(width))
        res[f"width_{name}_se"] = float(np.std(width, ddof=1) / np.sqrt(len(width)))
        res[f"half_{name}_mean"] = float(np.mean(cross[:, 1]))
        res[f"half_{name}_spread"] = float(np.std(cross[:, 1], ddof=1))


def summarise(result: dict) -> dict:
    """(Re)compute, from the stored curves of a :func:`run_finite_depth` result, every
    crossing, width, mean and fit (in place; returned): a change of the analysis needs no
    new BP run."""
    depths = [int(L) for L in result["params"]["depths"]]
    for L in depths:
        _summarise_depth(result["bp"][str(L)])
    pred = result["prediction"]
    fit: dict = {"predicted_log_lam": pred["log_lam"], "predicted_lam": pred["lam"]}
    used = [L for L in depths if L >= result["params"]["fit_from"]]
    if len(used) >= 2:
        for name in ("belief", "accuracy"):
            widths = [result["bp"][str(L)][f"width_{name}_mean"] for L in used]
            ses = [result["bp"][str(L)][f"width_{name}_se"] for L in used]
            fit[name] = fit_exponent(np.array(used), np.array(widths), np.array(ses))
        fit["meanfield_exact"] = fit_exponent(
            np.array(used), np.array([pred["mf_width"][depths.index(L)] for L in used])
        )
    fit["depths_used"] = used
    result["fit"] = fit
    return result


def mean_curve(draws: list[dict], key: str = "q_belief", step: float = 0.0005) -> tuple:
    """The draw-averaged curve of :func:`measure_class_transition`'s ``draws``, on a common
    grid of spacing ``step`` covering the range every draw measured (linear interpolation of
    each draw's curve). Returns ``(eps, q)``, 1-d arrays (empty when the ranges do not meet).

    Examples
    --------
    >>> draws = [{"eps": np.array([0.0, 1.0]), "q": np.array([1.0, 0.0])},
    ...          {"eps": np.array([0.5, 1.0]), "q": np.array([1.0, 0.0])}]
    >>> eps, q = mean_curve(draws, "q", step=0.25)
    >>> eps.tolist(), q.tolist()
    ([0.5, 0.75, 1.0], [0.75, 0.375, 0.0])
    """
    low = max(float(np.min(d["eps"])) for d in draws)
    high = min(float(np.max(d["eps"])) for d in draws)
    if high < low:
        return np.zeros(0), np.zeros(0)
    grid = low + step * np.arange(int(math.floor((high - low) / step + 1e-9)) + 1)
    curves = [np.interp(grid, np.asarray(d["eps"]), np.asarray(d[key])) for d in draws]
    return grid, np.mean(curves, axis=0)


def successive_depth_crossings(result: dict, key: str = "q_belief") -> dict[str, float | None]:
    """Where the draw-averaged class curves of successive depths cross (``"L/L+1"`` -> eps,
    None when they do not cross inside both measured ranges). In the mean field they cross
    exactly at ``eps*`` for every ``L`` (step ``depth_crossing_s2`` of the derivation).
    """
    depths = [int(L) for L in result["params"]["depths"]]
    out: dict[str, float | None] = {}
    for a, b in zip(depths[:-1], depths[1:], strict=True):
        ea, qa = mean_curve(result["bp"][str(a)]["draws"], key)
        eb, qb = mean_curve(result["bp"][str(b)]["draws"], key)
        low, high = (
            max(ea.min(initial=1), eb.min(initial=1)),
            min(ea.max(initial=0), eb.max(initial=0)),
        )
        out[f"{a}/{b}"] = None
        if high <= low:
            continue
        grid = np.linspace(low, high, 2001)
        gap = np.interp(grid, eb, qb) - np.interp(grid, ea, qa)
        change = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
        if change.size:
            i = change[0]
            out[f"{a}/{b}"] = float(
                grid[i] - gap[i] * (grid[i + 1] - grid[i]) / (gap[i + 1] - gap[i])
            )
    return out


def population_transition(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    n_pop: int = 20000,
    step: float = 0.001,
    margin: float = 0.012,
    seed: int = 3,
) -> dict:
    """The class transition of population dynamics (:func:`hiergrammar.theory.population.profile`)
    at depth ``L``: the ensemble-averaged curve, to compare with the draw-averaged BP curve
    (:func:`mean_curve`), whose width includes the spread of the crossing across rule draws.

    The grid runs from ``margin`` below the mean-field 0.75-level crossing to ``margin``
    above the 0.25-level one, with spacing ``step``. Returns ``{"eps", "q_belief",
    "q_accuracy", "crossings_belief", "crossings_accuracy", "width_belief",
    "width_accuracy"}``.

    Examples
    --------
    >>> got = population_transition(8, 8, 2, 2, 3, n_pop=800, step=0.02, margin=0.1)
    >>> bool(got["width_belief"] > 0)
    True
    """
    from hiergrammar.theory import population

    mf = meanfield_crossings(v, n_classes, m, s, L)
    top = 1.0 - 1.0 / v
    eps = np.arange(max(mf[LEVELS[-1]] - margin, 0.0), min(mf[LEVELS[0]] + margin, top), step)
    pop = population.profile(v, n_classes, m, s, L, eps, n_pop=n_pop, seed=seed)
    out: dict = {"eps": eps}
    for name, values in (("belief", pop.p[:, L]), ("accuracy", pop.accuracy[:, L])):
        q = _normalised(values, n_classes)
        cross = crossings(eps, q)
        out.update({f"q_{name}": q, f"crossings_{name}": cross})
        out[f"width_{name}"] = float(cross[0] - cross[-1])
    return out


#: Where the result of the full run is stored with the package (``python -m
#: hiergrammar.theory.finite_depth --out`` this path to refresh it).
STORED_RESULT = Path(__file__).resolve().parent / "data" / "finite_depth.json"


def load_stored(path: str | Path | None = None) -> dict:
    """The stored result of :func:`run_finite_depth` (plain JSON; nothing is unpickled).

    Examples
    --------
    >>> stored = load_stored()
    >>> stored["params"]["depths"][-1] >= 12
    True
    """
    return json.loads(Path(path or STORED_RESULT).read_text(encoding="utf-8"))


def scaling_figure_data(result: dict) -> dict:
    """The series of the finite-depth scaling figure (class-transition width against depth),
    from a result of :func:`run_finite_depth` (the stored one, or a cheap rerun).

    Returns a JSON-ready dict: ``depths``; ``bp_width_{belief,accuracy}`` (mean over rule
    draws) with ``*_se`` and ``bp_width_{belief,accuracy}_draws`` (per draw);
    ``mf_width`` (exact finite-depth mean field), ``asymptotic_width`` (second order);
    ``predicted_line``: slope ``-ln lambda`` through the BP belief width at the deepest
    depth; ``fitted_line_belief``: the fit of the BP widths; ``lam``, ``lam_fit_belief``,
    ``lam_fit_accuracy``; and the half-level crossings ``bp_half_belief`` (mean),
    ``bp_half_belief_spread`` (across draws), ``mf_half``, ``eps_star``, and
    ``successive_depth_crossings`` (:func:`successive_depth_crossings`).

    Examples
    --------
    >>> data = scaling_figure_data(load_stored())
    >>> len(data["depths"]) == len(data["bp_width_belief"]) == len(data["predicted_line"])
    True
    """
    depths = [int(L) for L in result["params"]["depths"]]
    bp = [result["bp"][str(L)] for L in depths]
    pred = result["prediction"]
    out: dict = {"depths": depths, "lam": pred["lam"], "eps_star": pred["eps_star"]}
    for name in ("belief", "accuracy"):
        out[f"bp_width_{name}"] = [r[f"width_{name}_mean"] for r in bp]
        out[f"bp_width_{name}_se"] = [r[f"width_{name}_se"] for r in bp]
        out[f"bp_width_{name}_draws"] = [list(map(float, r[f"width_{name}"])) for r in bp]
        fit = result.get("fit", {}).get(name)
        out[f"lam_fit_{name}"] = fit["lam_fit"] if fit else None
        if fit:
            out[f"fitted_line_{name}"] = [
                math.exp(fit["intercept"] - L * fit["log_lam_fit"]) for L in depths
            ]
    out["mf_width"] = pred["mf_width"]
    out["asymptotic_width"] = pred["asymptotic_width_2"]
    anchor = out["bp_width_belief"][-1]
    out["predicted_line"] = [anchor * pred["lam"] ** (depths[-1] - L) for L in depths]
    out["bp_half_belief"] = [r["half_belief_mean"] for r in bp]
    out["bp_half_belief_spread"] = [r["half_belief_spread"] for r in bp]
    out["mf_half"] = pred["mf_half"]
    out["successive_depth_crossings"] = successive_depth_crossings(result)
    return out


def _add_population(
    result: dict, depths: Sequence[int], seed: int, n_pop: int = 20000, step: float = 0.001
) -> None:
    """Population-dynamics transitions at ``depths``, next to the draw-averaged BP curve."""
    p = result["params"]
    pop = result.setdefault("population", {})
    for L in depths:
        got = population_transition(
            p["v"], p["n_classes"], p["m"], p["s"], L, n_pop=n_pop, step=step, seed=seed + L
        )
        got.update(n_pop=n_pop, step=step)
        if str(L) in result.get("bp", {}):
            eps, q = mean_curve(result["bp"][str(L)]["draws"])
            cross = crossings(eps, q)
            got["bp_mean_curve_crossings_belief"] = cross
            got["bp_mean_curve_width_belief"] = float(cross[0] - cross[-1])
        pop[str(L)] = got
        print(
            f"L={L}: population width(belief) = {got['width_belief']:.4f}, BP draw-averaged "
            f"curve {got.get('bp_mean_curve_width_belief', float('nan')):.4f}",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hiergrammar.theory.finite_depth",
        description="Finite-depth scaling of the class transition: predictions and exact BP.",
    )
    parser.add_argument("--quick", action="store_true", help="L = 3..6, 4 draws, step 0.005")
    parser.add_argument("--out", type=Path, default=Path("finite_depth.json"))
    parser.add_argument("--max-depth", type=int, default=12)
    parser.add_argument("--n-rules", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--population-depths",
        type=int,
        nargs="*",
        default=None,
        help="also run population dynamics at these depths (ensemble-averaged class curve)",
    )
    parser.add_argument(
        "--add-to",
        type=Path,
        default=None,
        help="skip the BP run: reanalyse this earlier result's curves (crossings, widths, "
        "fits) and add the --population-depths results to it",
    )
    parser.add_argument("--population-size", type=int, default=20000)
    parser.add_argument("--population-step", type=float, default=0.001)
    args = parser.parse_args(argv)
    pop_args = (args.population_depths or [], args.seed, args.population_size, args.population_step)
    if args.add_to is not None:
        result = summarise(json.loads(args.add_to.read_text(encoding="utf-8")))
        _add_population(result, *pop_args)
        save_json(args.out, result)
        print(f"wrote {args.out}")
        return 0
    if args.quick:
        kwargs = dict(depths=tuple(range(3, 7)), n_rules=4, n_samples=200, step=0.005, fit_from=3)
    else:
        kwargs = dict(depths=tuple(range(3, args.max_depth + 1)), n_rules=args.n_rules)
    start = time.perf_counter()
    result = run_finite_depth(seed=args.seed, **kwargs)
    _add_population(result, *pop_args)
    result["params"]["quick"] = args.quick
    result["params"]["seconds"] = time.perf_counter() - start
    save_json(args.out, result)
    fit = result["fit"]
    print(
        f"predicted: lambda = F'(u*) = {fit['predicted_lam']:.4f}, ln lambda = "
        f"{fit['predicted_log_lam']:.4f} per level (L >= {fit['depths_used'][0]})"
    )
    for name in ("belief", "accuracy", "meanfield_exact"):
        if name in fit:
            f = fit[name]
            print(
                f"fitted ({name}): Lambda = {f['lam_fit']:.4f}, ln Lambda = "
                f"{f['log_lam_fit']:.4f} +- {f['log_lam_se']:.4f}"
            )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
