"""Class transitions of the discrete (masking and uniform) noise processes: theories of BP.

The mean-field theory of :mod:`hiergrammar.theory.symbolic` follows the epsilon-process, whose
leaf messages are all alike: ``1 - eps`` on the true symbol, ``eps / (v - 1)`` on each other.
The leaf messages of the masking and uniform processes (:mod:`hiergrammar.processes`, time
``t``, clean weight ``alpha = alpha(t)``) are random:

* masking: one-hot on the true symbol (kept, probability ``alpha``) or flat (masked);
* uniform: ``w0 = alpha + (1 - alpha)/v`` on the *observed* symbol and ``beta = (1 - alpha)/v``
  on each other one; the observed symbol is the true one with probability ``w0`` (the
  message is a calibrated posterior), a wrong one otherwise.

Here are four theories of the deep-tree class transition of BP under such leaves, from the
crudest to the exact one, and the critical clean weight ``alpha*`` (and time ``t*``) each
predicts; :mod:`hiergrammar.theory.discrete_symbolic` derives their closed-form parts with
sympy and :mod:`hiergrammar.theory.validate_discrete` holds them against exact BP.

1. **First moment** (:func:`first_moment_belief`): the annealed mean field with the mean leaf
   belief in the true symbol, ``u0 = alpha + (1 - alpha)/v`` (masking, the same as the
   eps-process at that ``alpha``) or ``w0**2 + (v - 1) beta**2`` (uniform): an *effective
   eps* ``1 - u0``. Closed form: ``alpha*`` solves ``u0(alpha) = u*``. It averages the ratio
   of BP's sums over rules *and leaves*, so it credits every leaf with the mean information,
   and is far off for both processes.
2. **Determination law** (masking only, :func:`determination_profile`): with masking, BP's
   upward message at a node vanishes exactly on the values that cannot produce the kept
   leaves below it; its support is the true value and ``k`` others. The law of ``k`` obeys a
   closed recursion, exact on the tree ensemble (fresh rules per factor): a parent's box of
   compatible tuples holds ``N = prod_i (1 + k_i) - 1`` tuples besides the true one, and the
   number of other parents owning one of them has the law :func:`determination_kernel`. The
   node is *determined* (its message one-hot on the truth) when ``k = 0``. Its deep-tree
   threshold ``alpha*_det`` bounds the class transition from one side: a determined root is
   a recovered class, but an undetermined one may still be recovered by the weights.
3. **Two-value closure** (:func:`two_value_profile`): every message is two-valued, ``u`` on
   the true symbol and ``(1 - u)/(v - 1)`` on each other, as in the mean field, but ``u`` is a
   random variable: the leaves keep their law, a parent's ``u`` is the annealed map
   ``F_K(prod_i u_i)`` of its children's (rules averaged per factor, children not). Exact at
   the leaves for masking; for uniform it spreads a wrongly centred leaf's weight over the
   ``v - 1`` wrong values, so it misses that a wrong centre can be adopted by a parent.
4. **Population dynamics** (:func:`population_critical_alpha`): the exact recursion for the
   law of the whole message on the tree ensemble (:mod:`hiergrammar.theory.population`),
   upward only, iterated deep; numerical.

:func:`critical_alpha` gathers them for one process; :func:`time_at_alpha` converts a clean
weight into the time of a schedule (``t = 1 - alpha`` for the linear one).

Domain: ``v >= 2``, ``s >= 2``, ``1 <= m <= v**(s-1)`` and ``n_classes * m <= v**s`` (an RHM);
the deep-tree thresholds use the internal map (``K = v``). A transition needs ``F'(1) =
s m (v - 1)/(v**s - 1) < 1`` (the recovered state is then attractive in every theory above;
:func:`hiergrammar.theory.discrete_symbolic.derivation` shows it) and ``m >= 2`` (with
``m = 1`` a single kept leaf per subtree determines it). The determination kernel is computed
for ``v**s`` up to :data:`MAX_TUPLES`.

Examples
--------
>>> crit = critical_alpha("masking", v=32, m=8, s=2, methods=("first_moment", "determination"))
>>> round(crit.alpha["first_moment"], 4), round(crit.t["first_moment"], 4)   # 25/93
(0.2688, 0.7312)
>>> round(crit.t["determination"], 3)      # the masked fraction beyond which roots stay open
0.252
>>> round(effective_eps("uniform", v=32, alpha=0.8), 6)   # (v-1)(1-alpha**2)/v
0.34875
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.rhm import check_parameters as _check_rhm
from hiergrammar.validation import (
    InputError,
    check_choice,
    check_float,
    check_int,
    check_memory,
    check_seed,
)

__all__ = [
    "PROCESSES",
    "METHODS",
    "MAX_TUPLES",
    "LeafLaw",
    "leaf_law",
    "first_moment_belief",
    "effective_eps",
    "first_moment_critical_alpha",
    "determination_kernel",
    "determination_step",
    "DeterminationProfile",
    "determination_profile",
    "determination_critical_alpha",
    "TwoValueProfile",
    "two_value_profile",
    "two_value_critical_alpha",
    "population_recovered",
    "UpwardProfile",
    "population_upward_profile",
    "population_critical_alpha",
    "time_at_alpha",
    "DiscreteCriticalPoint",
    "load_stored",
    "critical_alpha",
    "critical_marks",
]

#: Processes with a leaf law here (``"eps"``: the epsilon-process at ``eps = (1-alpha)(v-1)/v``).
PROCESSES = ("masking", "uniform", "eps")
#: Theories of the critical point, crudest first (see the module docstring).
METHODS = ("first_moment", "determination", "two_value", "population")
#: Largest tuple space ``v**s`` for which the determination kernel is built.
MAX_TUPLES = 1 << 16

_DATA = Path(__file__).resolve().parent / "data" / "discrete.json"


# -- leaves ----------------------------------------------------------------------------------
def _check_process(process: str) -> str:
    return check_choice("process", process, PROCESSES)


def _check_alpha(alpha: float) -> float:
    return check_float("alpha", alpha, 0.0, 1.0)


@dataclass(frozen=True)
class LeafLaw:
    """The law of a leaf's upward belief in its true symbol: ``values`` with ``weights``.

    For masking and the eps-process every leaf message is two-valued (true symbol, the
    others alike); for the uniform process a wrongly centred leaf puts ``w0`` on one wrong
    symbol, which ``values`` (the belief in the truth, ``beta``) does not record.
    """

    values: np.ndarray
    weights: np.ndarray

    @property
    def mean(self) -> float:
        """The first moment, ``sum(values * weights)``."""
        return float(np.dot(self.values, self.weights))


def leaf_law(process: str, v: int, alpha: float) -> LeafLaw:
    """The law of the leaf belief in the true symbol at clean weight ``alpha``.

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``.
    v : vocabulary size, ``v >= 2``.
    alpha : the clean weight, ``0 <= alpha <= 1`` (a schedule's ``alpha(t)``).

    Returns
    -------
    LeafLaw
        masking: ``1`` w.p. ``alpha``, ``1/v`` otherwise; uniform: ``w0`` w.p. ``w0`` and
        ``beta`` otherwise (``w0 = alpha + beta``, ``beta = (1 - alpha)/v``); eps: ``w0``
        surely (``eps = 1 - w0 = (1 - alpha)(v - 1)/v``).

    Raises
    ------
    InputError
        For an unknown process or ``v``, ``alpha`` out of range.

    Examples
    --------
    >>> law = leaf_law("uniform", v=4, alpha=0.6)
    >>> law.values.tolist(), law.weights.tolist()
    ([0.7, 0.1], [0.7, 0.30000000000000004])
    """
    process, v, alpha = _check_process(process), check_int("v", v, 2), _check_alpha(alpha)
    beta = (1.0 - alpha) / v
    w0 = alpha + beta
    if process == "masking":
        return LeafLaw(np.array([1.0, 1.0 / v]), np.array([alpha, 1.0 - alpha]))
    if process == "uniform":
        return LeafLaw(np.array([w0, beta]), np.array([w0, 1.0 - w0]))
    return LeafLaw(np.array([w0]), np.array([1.0]))


def first_moment_belief(process: str, v: int, alpha: float) -> float:
    """Mean leaf belief in the true symbol, ``u0``: what the first-moment map starts from.

    Parameters
    ----------
    process, v, alpha : as for :func:`leaf_law`.

    Returns
    -------
    float

    Raises
    ------
    InputError
        As for :func:`leaf_law`.

    Examples
    --------
    >>> first_moment_belief("masking", 32, 0.5) == first_moment_belief("eps", 32, 0.5)
    True
    """
    return leaf_law(process, v, alpha).mean


def effective_eps(process: str, v: int, alpha: float) -> float:
    """The first-moment effective eps, ``1 - u0``: ``(v-1)(1-alpha)/v`` for masking and the
    eps-process, ``(v-1)(1-alpha**2)/v`` for the uniform process.

    Parameters
    ----------
    process, v, alpha : as for :func:`leaf_law`.

    Returns
    -------
    float

    Raises
    ------
    InputError
        As for :func:`leaf_law`.

    Examples
    --------
    >>> round(effective_eps("masking", 32, 0.75), 6)
    0.242188
    """
    return 1.0 - first_moment_belief(process, v, alpha)


def _check_model(v: int, m: int, s: int, n_classes: int | None = None) -> tuple[int, int, int]:
    v, m, s = check_int("v", v, 2), check_int("m", m, 1), check_int("s", s, 2)
    _check_rhm(v, v if n_classes is None else n_classes, m, s)
    return v, m, s


def first_moment_critical_alpha(process: str, v: int, m: int, s: int) -> float:
    """``alpha*`` of the first-moment map: ``u0(alpha*) = u*``, the mean-field repulsive fixed
    point (:func:`hiergrammar.theory.symbolic.critical_point`). masking and eps:
    ``(v u* - 1)/(v - 1)``; uniform: its square root. Without a mean-field transition
    ``u* = 1`` (any noise destroys the class: ``alpha* = 1``) or ``1/v`` (``alpha* = 0``).

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``.
    v, m, s : the RHM.

    Returns
    -------
    float

    Raises
    ------
    InputError
        On an unknown process or parameters out of range.

    Examples
    --------
    >>> round(first_moment_critical_alpha("uniform", 32, 8, 2) ** 2, 6)   # 25/93
    0.268817
    """
    from hiergrammar.theory.discrete_symbolic import first_moment_alpha_star

    process = _check_process(process)
    v, m, s = _check_model(v, m, s)
    value = first_moment_alpha_star(process, v, m, s)
    return math.nan if value is None else value


# -- determination law (masking) -------------------------------------------------------------
def determination_kernel(
    v: int, K: int, m: int, s: int, memory_budget: int | str | None = None
) -> np.ndarray:
    """Law of the number ``k'`` of wrong parents compatible with a box of tuples.

    A level's rules are ``K m`` distinct ``s``-tuples of ``[0, v)``, ``m`` per parent value,
    drawn uniformly given that the true parent owns the true tuple. A *box* of ``N`` non-true
    tuples (fixed before the draw, e.g. the product of the children's supports without the
    true tuple) contains tuples of ``k'`` of the ``K - 1`` wrong parents. Computed by adding
    the box's tuples one at a time: the state is the number of wrong parents hit and the
    number of the box's tuples they own, which fixes where the next tuple can fall (all
    probabilities positive: stable in floating point, unlike the inclusion-exclusion closed
    form that :mod:`hiergrammar.theory.discrete_symbolic` derives and the tests compare).

    Parameters
    ----------
    v, K, m, s : child vocabulary, parent cardinality, rules per parent, branching factor;
        ``K m <= v**s <= MAX_TUPLES``.
    memory_budget : bytes or text (see :func:`hiergrammar.validation.check_memory`).

    Returns
    -------
    numpy.ndarray
        ``(v**s, K)``: row ``N`` is the law of ``k'`` for a box of ``N`` non-true tuples.

    Raises
    ------
    InputError
        On parameters out of range or a tuple space above :data:`MAX_TUPLES`.

    Examples
    --------
    >>> T = determination_kernel(v=4, K=4, m=2, s=2)
    >>> T.shape, T[0].tolist(), round(float(T[1, 1]), 6)    # one tuple: a wrong parent's w.p. 6/15
    ((16, 4), [1.0, 0.0, 0.0, 0.0], 0.4)
    >>> bool(np.allclose(T.sum(1), 1)), T[15].tolist()    # the whole space: every wrong parent
    (True, [0.0, 0.0, 0.0, 1.0])
    """
    v, K, m, s = (
        check_int("v", v, 2),
        check_int("K", K, 1),
        check_int("m", m, 1),
        check_int("s", s, 1),
    )
    tuples = v**s
    if tuples > MAX_TUPLES:
        raise InputError(f"v**s = {tuples} violates v**s <= {MAX_TUPLES} (determination kernel)")
    if K * m > tuples:
        raise InputError(f"K*m = {K * m} violates K*m <= v**s = {tuples}")
    return _kernel(v, K, m, s, memory_budget)


@functools.lru_cache(maxsize=8)
def _kernel(v: int, K: int, m: int, s: int, memory_budget: int | str | None) -> np.ndarray:
    tuples = v**s
    owned = (K - 1) * m  # tuples of the wrong parents
    rest = tuples - 1 - owned  # the true parent's other tuples and the unused ones
    check_memory(
        "the determination kernel and its state",
        8 * (tuples * K + 4 * K * (owned + 1)),
        memory_budget,
    )
    hit = np.arange(K)[:, None]  # wrong parents hit so far
    inside = np.arange(owned + 1)[None, :]  # box tuples they own
    state = np.zeros((K, owned + 1))
    state[0, 0] = 1.0
    out = np.zeros((tuples, K))
    out[0, 0] = 1.0
    for n in range(tuples - 1):  # n tuples of the box placed; place one more
        left = tuples - 1 - n
        new_parent = (K - 1 - hit) * m / left
        same_parent = np.clip(hit * m - inside, 0, None) / left
        elsewhere = np.clip(rest - (n - inside), 0, None) / left
        nxt = state * elsewhere
        nxt[:, 1:] += (state * same_parent)[:, :-1]
        nxt[1:, 1:] += (state * new_parent)[:-1, :-1]
        state = nxt
        out[n + 1] = state.sum(axis=1)
    out /= out.sum(axis=1, keepdims=True)
    out.setflags(write=False)
    return out


def _box_law(law: np.ndarray, s: int, tuples: int) -> np.ndarray:
    """Law of ``prod_i (1 + k_i) - 1`` for ``s`` independent children with law ``law``."""
    sizes = np.arange(1, law.size + 1)
    box = np.zeros(tuples + 1)
    box[1] = 1.0
    for _ in range(s):
        nxt = np.zeros(tuples + 1)
        have = np.flatnonzero(box)
        products = have[:, None] * sizes[None, :]
        keep = products <= tuples
        np.add.at(nxt, products[keep], (box[have][:, None] * law[None, :])[keep])
        box = nxt
    return box[1:]


def determination_step(law: np.ndarray, v: int, K: int, m: int, s: int) -> np.ndarray:
    """One level of the determination law: the law of ``k`` of every child to the law of the
    parent's ``k'``.

    Parameters
    ----------
    law : ``(v,)`` probabilities of ``k = 0..v-1`` wrong values in a child's support.
    v, K, m, s : child vocabulary, parent cardinality, rules per parent, branching factor.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` law of the parent's ``k'``.

    Raises
    ------
    InputError
        As for :func:`determination_kernel`.

    Examples
    --------
    >>> law = np.zeros(4); law[0] = 1.0
    >>> determination_step(law, v=4, K=4, m=2, s=2).tolist()   # determined children
    [1.0, 0.0, 0.0, 0.0]
    """
    law = np.asarray(law, dtype=np.float64)
    kernel = determination_kernel(v, K, m, s)
    out = _box_law(law, s, v**s) @ kernel
    return out / out.sum()


@dataclass(frozen=True)
class DeterminationProfile:
    """Per level ``l = 0..L``: ``law[l]`` the law of the number ``k`` of wrong values in the
    support of the upward message (length ``card_l``, zero-padded to ``max(v, n_classes)``),
    ``determined[l] = law[l][0]``, and ``support_belief[l] = E[1 / (1 + k)]``, the belief in
    the truth if the message were flat on its support (it is not: the weights favour the
    truth, so this is a lower bound on average)."""

    law: np.ndarray
    determined: np.ndarray
    support_belief: np.ndarray


def determination_profile(
    v: int, n_classes: int, m: int, s: int, L: int, alpha: float
) -> DeterminationProfile:
    """The law of the support of BP's upward messages under masking, level by level.

    Parameters
    ----------
    v, n_classes, m, s, L : the RHM.
    alpha : the masking process's clean weight (kept fraction), ``0 <= alpha <= 1``.

    Returns
    -------
    DeterminationProfile
        ``law`` ``(L+1, max(v, n_classes))``, ``determined`` and ``support_belief`` ``(L+1,)``.

    Raises
    ------
    InputError
        On parameters out of range or a tuple space above :data:`MAX_TUPLES`.

    Examples
    --------
    >>> prof = determination_profile(32, 32, 8, 2, L=3, alpha=0.8)
    >>> round(float(prof.determined[0]), 6), round(float(prof.determined[1]), 4)
    (0.8, 0.6401)
    """
    _check_model(v, m, s, n_classes)
    L, alpha = check_int("L", L, 1), _check_alpha(alpha)
    width = max(v, n_classes)
    law = np.zeros(v)
    law[0], law[v - 1] = alpha, law[v - 1] + 1.0 - alpha
    laws = [law]
    for level in range(1, L + 1):
        K = n_classes if level == L else v
        laws.append(determination_step(laws[-1], v, K, m, s))
    padded = np.zeros((L + 1, width))
    for level, law in enumerate(laws):
        padded[level, : law.size] = law
    sizes = np.arange(1, width + 1)
    return DeterminationProfile(
        law=padded, determined=padded[:, 0].copy(), support_belief=(padded / sizes).sum(axis=1)
    )


def _deep_determined(alpha: float, v: int, m: int, s: int, max_levels: int) -> bool:
    law = np.zeros(v)
    law[0], law[v - 1] = alpha, law[v - 1] + 1.0 - alpha
    for _ in range(max_levels):
        law = determination_step(law, v, v, m, s)
        if law[0] > 1.0 - 1e-9:
            return True
        if law[0] < 1e-12:
            return False
    return bool(law[0] > 0.5)


def determination_critical_alpha(
    v: int, m: int, s: int, tol: float = 1e-6, max_levels: int = 2000
) -> float:
    """Smallest kept fraction ``alpha`` for which a deep root is determined (masking).

    Bisection on the deep-tree limit of the determination law (the internal map, ``K = v``):
    above ``alpha*_det`` the probability that the root is determined tends to 1, below it to
    0.

    Parameters
    ----------
    v, m, s : the RHM.
    tol : width of the final bisection interval.
    max_levels : levels iterated at most per trial ``alpha``.

    Returns
    -------
    float
        ``alpha*_det``; ``nan`` when not even ``alpha = 1 - 1e-9`` is determined deep down
        (``F'(1) >= 1``).

    Raises
    ------
    InputError
        On parameters out of range or a tuple space above :data:`MAX_TUPLES`.

    Examples
    --------
    >>> round(1 - determination_critical_alpha(32, 8, 2, tol=1e-4), 3)
    0.252
    """
    v, m, s = _check_model(v, m, s)
    tol = check_float("tol", tol, 0.0, low_open=True)
    determination_kernel(v, v, m, s)  # validates the size once
    if not _deep_determined(1.0 - 1e-9, v, m, s, max_levels):
        return math.nan
    low, high = 0.0, 1.0
    while high - low > tol:
        mid = 0.5 * (low + high)
        if _deep_determined(mid, v, m, s, max_levels):
            high = mid
        else:
            low = mid
    return 0.5 * (low + high)


# -- two-value closure -----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _upward_of_x() -> Callable[..., np.ndarray]:
    """numpy ``F_K(x; v, m, s, K)``: the derived annealed map of the true-tuple weight."""
    import sympy as sp
    from hiergrammar.theory.symbolic import Sym, _core_derivation

    expr = _core_derivation()["F_K"].expr
    return sp.lambdify((Sym.x, Sym.v, Sym.m, Sym.s, Sym.K), expr, modules="numpy")


def _leaf_population(process: str, v: int, alpha: float, uniforms: np.ndarray) -> np.ndarray:
    """Leaf beliefs drawn from :func:`leaf_law` by inverse transform of fixed uniforms (the
    same uniforms for every ``alpha``: populations at nearby ``alpha`` are coupled)."""
    law = leaf_law(process, v, alpha)
    cut = np.cumsum(law.weights)[:-1]
    return law.values[np.searchsorted(cut, uniforms, side="right")]


def _two_value_levels(
    process: str,
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    alpha: float,
    n_pop: int,
    seed: int,
    stop: bool = False,
    keep: bool = True,
) -> list[np.ndarray]:
    """Populations of ``u`` per level (only the last one with ``keep=False``); the children's
    indices come from ``seed`` alone."""
    rng = np.random.default_rng([seed, 0])
    u = _leaf_population(process, v, alpha, rng.random(n_pop))
    F = _upward_of_x()
    levels = [u]
    for level in range(1, L + 1):
        K = n_classes if level == L else v
        kids = np.random.default_rng([seed, level]).integers(n_pop, size=(n_pop, s))
        u = F(np.prod(u[kids], axis=1), v, m, s, K)
        levels = [*levels, u] if keep else [u]
        if stop:
            mean = u.mean()
            if mean > 1.0 - 1e-10 or mean < (1.0 + 1e-7) / v:
                break
    return levels


def _check_two_value_memory(n_pop: int, s: int, kept_levels: int) -> None:
    """Refuse (:func:`~hiergrammar.validation.check_memory`) a two-value population whose
    arrays would exceed the memory budget: ``kept_levels`` populations of ``n_pop`` floats, the
    leaves' uniforms, the children's indices and beliefs ``(n_pop, s)`` and the map's
    temporaries (about four more populations)."""
    n_bytes = 8 * n_pop * (kept_levels + 2 * s + 6)
    check_memory(f"the two-value populations (n_pop={n_pop} members, s={s})", n_bytes)


@dataclass(frozen=True)
class TwoValueProfile:
    """Per level ``l = 0..L``: ``u`` the mean upward belief in the true symbol and ``samples``
    ``(L+1, n_pop)`` the populations. (No class accuracy: a two-valued message's argmax is
    the truth whenever ``u > 1/v``, which says nothing about the competition it hides.)"""

    u: np.ndarray
    samples: np.ndarray


def two_value_profile(
    process: str,
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    alpha: float,
    n_pop: int = 100_000,
    seed: int = 0,
) -> TwoValueProfile:
    """The two-value closure: a population of scalar beliefs, ``u' = F_K(prod_i u_i)``.

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"`` (the leaf law, :func:`leaf_law`).
    v, n_classes, m, s, L : the RHM.
    alpha : clean weight of the leaves.
    n_pop : members per level.
    seed : seed of the children's draws and of the leaves.

    Returns
    -------
    TwoValueProfile
        ``u`` ``(L+1,)``, ``samples`` ``(L+1, n_pop)``.

    Raises
    ------
    InputError
        On parameters out of range.

    Examples
    --------
    >>> from hiergrammar.theory.meanfield import profile
    >>> eps = two_value_profile("eps", 32, 32, 8, 2, L=4, alpha=0.5, n_pop=10)
    >>> mf = profile(32, 32, 8, 2, 4, eps=effective_eps("eps", 32, 0.5))
    >>> bool(np.allclose(eps.u, mf.u))          # one-point leaf law: the mean field itself
    True
    """
    process = _check_process(process)
    _check_model(v, m, s, n_classes)
    L, alpha = check_int("L", L, 1), _check_alpha(alpha)
    n_pop = check_int("n_pop", n_pop, 1)
    check_memory("the two-value populations", 8 * n_pop * (L + 1 + 2 * s))
    seed = check_seed("seed", seed, allow_generator=False)
    seed = 0 if seed is None else seed
    levels = _two_value_levels(process, v, n_classes, m, s, L, alpha, n_pop, seed)
    samples = np.stack(levels)
    return TwoValueProfile(u=samples.mean(axis=1), samples=samples)


def _bisect(
    recovered: Callable[[float], bool], tol: float, bracket: tuple[float, float] = (0.0, 1.0)
) -> float:
    """Smallest ``alpha`` in ``bracket`` with ``recovered(alpha)`` (assumed monotone); ``nan``
    when even the top of the bracket is not recovered, the bottom when it already is."""
    low, high = bracket
    if not recovered(high):
        return math.nan
    if low > 0.0 and recovered(low):
        return low
    while high - low > tol:
        mid = 0.5 * (low + high)
        if recovered(mid):
            high = mid
        else:
            low = mid
    return 0.5 * (low + high)


def two_value_critical_alpha(
    process: str,
    v: int,
    m: int,
    s: int,
    n_pop: int = 200_000,
    seed: int = 0,
    tol: float = 1e-4,
    max_levels: int = 400,
) -> float:
    """Deep-tree threshold of the two-value closure: the smallest ``alpha`` whose population
    of beliefs tends to 1 (rather than to the uninformative ``1/v``) under the internal map.

    The population at every ``alpha`` uses the same random numbers, so the answer is a
    deterministic function of ``seed``; its spread over seeds is its statistical error.

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``.
    v, m, s : the RHM.
    n_pop : members of the population (about 0.002 of spread in ``alpha*`` at ``2e5``).
    seed : a non-negative int.
    tol : width of the final bisection interval.
    max_levels : levels iterated at most per trial ``alpha``.

    Returns
    -------
    float
        ``alpha*`` (``nan`` if even ``alpha = 1`` is lost).

    Raises
    ------
    InputError
        On bad arguments, or a population above the memory budget
        (:func:`~hiergrammar.validation.check_memory`), refused before it is allocated.

    Examples
    --------
    >>> from hiergrammar.theory.symbolic import critical_point
    >>> a = two_value_critical_alpha("eps", 32, 8, 2, n_pop=4, tol=1e-6)
    >>> eps_star = critical_point(32, 8, 2).eps_star_float     # 17/24
    >>> abs(effective_eps("eps", 32, a) - eps_star) < 1e-5
    True
    """
    process = _check_process(process)
    v, m, s = _check_model(v, m, s)
    n_pop = check_int("n_pop", n_pop, 1)
    tol = check_float("tol", tol, 0.0, low_open=True)
    max_levels = check_int("max_levels", max_levels, 1)
    seed = check_seed("seed", seed, allow_generator=False) or 0
    _check_two_value_memory(n_pop, s, kept_levels=1)

    def recovered(alpha: float) -> bool:
        levels = _two_value_levels(
            process, v, v, m, s, max_levels, alpha, n_pop, seed, stop=True, keep=False
        )
        return bool(levels[-1].mean() > 0.5 * (1.0 + 1.0 / v))

    return _bisect(recovered, tol)


# -- population dynamics (exact on the tree ensemble) ----------------------------------------
def _process(process: str, v: int) -> Any:
    from hiergrammar.processes import EpsProcess, MaskingProcess, UniformProcess

    if process == "eps":
        return EpsProcess(v)
    return {"masking": MaskingProcess, "uniform": UniformProcess}[process](v, schedule="linear")


def population_recovered(
    process: str,
    v: int,
    m: int,
    s: int,
    alpha: float,
    levels: int = 60,
    n_pop: int = 20000,
    seed: int = 0,
) -> float:
    """Mean upward belief in the true symbol after ``levels`` levels of (upward) population
    dynamics with the internal map, leaves of the process at clean weight ``alpha``; it stops
    early once the population has settled at 1 or ``1/v``.

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``.
    v, m, s : the RHM.
    alpha : clean weight of the leaves.
    levels : levels at most.
    n_pop : members.
    seed : a non-negative int.

    Returns
    -------
    float

    Raises
    ------
    InputError
        On bad arguments.

    Examples
    --------
    >>> round(population_recovered("masking", 8, 2, 2, alpha=1.0, levels=3, n_pop=50), 6)
    1.0
    """
    from hiergrammar.theory.population import upward_populations

    process = _check_process(process)
    v, m, s = _check_model(v, m, s)
    alpha = _check_alpha(alpha)
    levels = check_int("levels", levels, 1)
    # The linear schedule (alpha = 1 - t) gives the process's time; the eps-process runs on
    # its own clock, eps = (1 - alpha)(v - 1)/v.
    proc = _process(process, v)
    t = (1.0 - alpha) * (v - 1) / v if process == "eps" else 1.0 - alpha

    def settled(up: np.ndarray) -> bool:  # at a fixed point: 1 (recovered) or 1/v (lost)
        mean = up[:, 0].mean()
        return bool(mean > 1.0 - 1e-9 or mean < (1.0 + 1e-6) / v)

    root = upward_populations(
        v, v, m, s, levels, t, n_pop=n_pop, seed=seed, process=proc, stop=settled
    )
    return float(root[:, 0].mean())


@dataclass(frozen=True)
class UpwardProfile:
    """Upward beliefs per level ``l = 0..L`` (shape ``(L+1,)`` each, with standard errors):
    ``u`` the mean belief in the true symbol, ``accuracy`` the probability that the upward
    message's argmax is the true symbol (ties shared), ``determined`` the fraction of messages
    supported on the true symbol alone (exact zeros elsewhere; masking's determination)."""

    u: np.ndarray
    accuracy: np.ndarray
    determined: np.ndarray
    u_se: np.ndarray
    accuracy_se: np.ndarray
    determined_se: np.ndarray


def _upward_summary(message: np.ndarray) -> tuple[float, float, float]:
    """Mean belief in value 0, tie-shared accuracy of value 0, fraction supported on 0 alone,
    for ``(n, card)`` normalised messages in the canonical frame."""
    best = message.max(axis=1)
    ties = (message == best[:, None]).sum(axis=1)
    accuracy = ((message[:, 0] == best) / ties).mean()
    determined = ((message[:, 1:] == 0).all(axis=1) & (message[:, 0] > 0)).mean()
    return float(message[:, 0].mean()), float(accuracy), float(determined)


def population_upward_profile(
    process: str,
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    alpha: float,
    n_pop: int = 20000,
    n_replicas: int = 4,
    seed: int = 0,
) -> UpwardProfile:
    """Population dynamics, upward only: the exact law of BP's upward messages on the tree
    ensemble (:mod:`hiergrammar.theory.population`), summarised per level.

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``; the leaves at clean weight ``alpha``
        (linear schedule; the eps-process at ``eps = (1 - alpha)(v - 1)/v``).
    v, n_classes, m, s, L : the RHM.
    n_pop : members per level, all replicas together; ``n_replicas`` independent populations
        give the standard errors.
    seed : a non-negative int.

    Returns
    -------
    UpwardProfile

    Raises
    ------
    InputError
        On bad arguments.

    Examples
    --------
    >>> prof = population_upward_profile("masking", 8, 8, 2, 2, L=2, alpha=1.0, n_pop=40)
    >>> prof.u.tolist(), prof.determined.tolist()
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    """
    from hiergrammar.theory.population import _upward_levels

    process = _check_process(process)
    _check_model(v, m, s, n_classes)
    L, alpha = check_int("L", L, 1), _check_alpha(alpha)
    n_replicas = check_int("n_replicas", n_replicas, 1)
    n_pop = check_int("n_pop", n_pop, n_replicas)
    seed = check_seed("seed", seed, allow_generator=False) or 0
    per = n_pop // n_replicas
    check_memory(
        "the upward populations", per * (8 * (2 * v + v * s + 2 * max(v, n_classes)) + v * m * s)
    )
    proc = _process(process, v)
    t = (1.0 - alpha) * (v - 1) / v if process == "eps" else 1.0 - alpha
    stats = np.empty((n_replicas, L + 1, 3))
    for r in range(n_replicas):
        rng = np.random.default_rng([seed, r])
        for level, (up, _, _) in enumerate(
            _upward_levels(v, n_classes, m, s, L, t, per, proc, rng)
        ):
            stats[r, level] = _upward_summary(up)
    mean = stats.mean(axis=0)
    se = stats.std(axis=0, ddof=1) / np.sqrt(n_replicas) if n_replicas > 1 else 0.0 * mean
    return UpwardProfile(
        u=mean[:, 0],
        accuracy=mean[:, 1],
        determined=mean[:, 2],
        u_se=se[:, 0],
        accuracy_se=se[:, 1],
        determined_se=se[:, 2],
    )


def population_critical_alpha(
    process: str,
    v: int,
    m: int,
    s: int,
    levels: int = 60,
    n_pop: int = 20000,
    seed: int = 0,
    tol: float = 2e-3,
    bracket: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Deep-tree threshold of population dynamics: bisection on whether the mean upward
    belief after ``levels`` levels exceeds ``(1 + 1/v)/2``, within ``bracket`` of ``alpha``.
    Slow (seconds to a minute per point); :mod:`hiergrammar.theory.validate_discrete` stores
    it for the figures' parameters. A finite population near the threshold drifts to either
    fixed point by chance: the spread over seeds is the error of the result.

    Parameters
    ----------
    process, v, m, s, levels, n_pop, seed : as for :func:`population_recovered`.
    tol : width of the final bisection interval.
    bracket : ``(low, high)`` range of ``alpha`` searched.

    Returns
    -------
    float
        ``alpha*`` (``nan`` if ``high`` is lost; ``low`` if already recovered).

    Raises
    ------
    InputError
        On bad arguments.

    Examples
    --------
    >>> a = population_critical_alpha("masking", 8, 2, 2, levels=20, n_pop=400, tol=0.05)
    >>> 0.0 < a < 1.0
    True
    """
    tol = check_float("tol", tol, 0.0, low_open=True)
    low = check_float("bracket[0]", bracket[0], 0.0, 1.0)
    high = check_float("bracket[1]", bracket[1], low, 1.0)
    return _bisect(
        lambda a: (
            population_recovered(process, v, m, s, a, levels, n_pop, seed) > 0.5 * (1.0 + 1.0 / v)
        ),
        tol,
        (low, high),
    )


# -- times and the gathered critical points --------------------------------------------------
def time_at_alpha(schedule: Any, alpha: float) -> float:
    """The time ``t`` at which ``schedule.alpha(t) = alpha``.

    Parameters
    ----------
    schedule : a schedule name (``"linear"``, ``"cosine"``, ...) or a
        :class:`hiergrammar.schedules.Schedule`; for a discrete chain, the (fractional) step,
        interpolated linearly between the chain's integer steps.
    alpha : ``0 <= alpha <= 1``; ``nan`` passes through.

    Returns
    -------
    float

    Raises
    ------
    InputError
        On an unknown schedule or ``alpha`` out of range.

    Examples
    --------
    >>> time_at_alpha("linear", 0.25), round(time_at_alpha("cosine", 0.5), 6)
    (0.75, 0.333333)
    """
    from scipy.optimize import brentq

    from hiergrammar.schedules import make_schedule

    sched = make_schedule(schedule)
    if alpha is None or (isinstance(alpha, float) and math.isnan(alpha)):
        return math.nan
    alpha = _check_alpha(alpha)
    if sched.discrete:
        steps = np.arange(int(sched.t_max) + 1)
        values = np.asarray(sched.alpha(steps), dtype=np.float64)
        # alpha is non-increasing in the step: interpolate on the reversed arrays.
        return float(np.interp(alpha, values[::-1], steps[::-1].astype(float)))
    high = sched.t_max
    if not math.isfinite(high):
        high = 1.0
        while sched.alpha(high) > alpha:
            high *= 2.0
    if sched.alpha(0.0) <= alpha:
        return 0.0
    if sched.alpha(high) >= alpha:
        return float(high)
    return float(brentq(lambda t: sched.alpha(t) - alpha, 0.0, high, xtol=1e-12))


@dataclass(frozen=True)
class DiscreteCriticalPoint:
    """The critical clean weight of one process by each theory, and the schedule's times.

    ``alpha[method]``, ``t[method]`` (``nan`` where a theory has no transition or does not
    apply, e.g. determination for the uniform process), ``source[method]``: ``"closed form"``,
    ``"computed"`` or ``"stored"`` (population dynamics read from ``theory/data``).
    ``best``: the method to quote (population dynamics when available, else the two-value
    closure); ``alpha_star``/``t_star``: its values.
    """

    process: str
    v: int
    m: int
    s: int
    schedule: str
    alpha: dict[str, float] = field(default_factory=dict)
    t: dict[str, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> str:
        for method in ("population", "two_value", "determination", "first_moment"):
            if method in self.alpha and not math.isnan(self.alpha[method]):
                return method
        return "first_moment"

    @property
    def alpha_star(self) -> float:
        return self.alpha.get(self.best, math.nan)

    @property
    def t_star(self) -> float:
        return self.t.get(self.best, math.nan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, ``best``, ``alpha_star``, ``t_star`` (NaN as None)."""

        def clean(d: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if math.isnan(x) else x) for k, x in d.items()}

        return {
            "process": self.process,
            "v": self.v,
            "m": self.m,
            "s": self.s,
            "schedule": self.schedule,
            "alpha": clean(self.alpha),
            "t": clean(self.t),
            "source": dict(self.source),
            "best": self.best,
            "alpha_star": None if math.isnan(self.alpha_star) else self.alpha_star,
            "t_star": None if math.isnan(self.t_star) else self.t_star,
        }

    def summary(self) -> str:
        """A few lines (what ``hiergrammar theory critical --process`` prints)."""
        names = {
            "first_moment": "first moment (effective eps)",
            "determination": "determination law",
            "two_value": "two-value closure",
            "population": "population dynamics",
        }
        lines = [
            f"{self.process} process, v={self.v}, m={self.m}, s={self.s}, "
            f"schedule {self.schedule}: critical clean weight alpha* and time t*"
        ]
        for method in METHODS:
            if method not in self.alpha:
                continue
            a, t = self.alpha[method], self.t[method]
            shown = (
                "no transition / not applicable"
                if math.isnan(a)
                else (f"alpha* = {a:.4f}   t* = {t:.4f}")
            )
            lines.append(f"  {names[method]:<30s} {shown}  [{self.source[method]}]")
        lines.append(f"best: {names[self.best]} (t* = {self.t_star:.4f})")
        return "\n".join(lines)


def load_stored(path: str | Path | None = None) -> dict:
    """The stored result of :mod:`hiergrammar.theory.validate_discrete` (plain JSON).

    Parameters
    ----------
    path : a JSON file (default ``theory/data/discrete.json``).

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        When the file is missing.

    Examples
    --------
    >>> load_stored()["params"]["v"]
    32
    """
    with open(_DATA if path is None else path, encoding="utf-8") as handle:
        return json.load(handle)


def _stored_critical(process: str, v: int, m: int, s: int, method: str) -> float | None:
    """A deep-tree ``alpha*`` stored by :mod:`hiergrammar.theory.validate_discrete` for these
    parameters, or None."""
    try:
        stored = load_stored()
    except FileNotFoundError:
        return None
    params = stored.get("params", {})
    if (params.get("v"), params.get("m"), params.get("s")) != (v, m, s):
        return None
    value = stored.get("critical", {}).get(process, {}).get(method)
    return None if value is None else float(value)


def critical_alpha(
    process: str,
    v: int = 32,
    m: int = 8,
    s: int = 2,
    schedule: Any = "linear",
    methods: Sequence[str] | None = None,
    n_pop: int = 200_000,
    seed: int = 0,
    compute_population: bool = False,
    use_stored: bool = True,
) -> DiscreteCriticalPoint:
    """Critical clean weight ``alpha*`` and time ``t*`` of a discrete process, by each theory.

    The data builder a figure step calls to mark the critical points: ``.t_star`` is the best
    prediction, ``.t[method]`` each theory's.

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``.
    v, m, s : the RHM (the deep-tree thresholds do not depend on ``n_classes``).
    schedule : schedule name or object converting ``alpha*`` into ``t*`` (``"linear"``:
        ``t* = 1 - alpha*``).
    methods : subset of :data:`METHODS` (default: all; ``"determination"`` is masking only).
    n_pop, seed : the two-value closure's population (``two_value_critical_alpha``).
    compute_population : run population dynamics when no stored value exists for
        ``(v, m, s)`` (minutes); otherwise it is omitted.
    use_stored : read the two-value closure's and population dynamics' thresholds from
        ``theory/data/discrete.json`` when it holds ``(v, m, s)`` (fast; what a figure step
        wants); False computes the two-value closure (about ten seconds at ``n_pop = 2e5``).

    Returns
    -------
    DiscreteCriticalPoint

    Raises
    ------
    InputError
        On an unknown process, method or schedule, or parameters out of range, or (before
        any method runs) a two-value population ``n_pop`` above the memory budget when the
        closure is to be computed.

    Examples
    --------
    >>> c = critical_alpha("eps", 32, 8, 2, schedule="linear", methods=["first_moment"])
    >>> round(effective_eps("eps", 32, c.alpha_star), 6)      # eps* = 17/24
    0.708333
    """
    from hiergrammar.schedules import make_schedule

    process = _check_process(process)
    v, m, s = _check_model(v, m, s)
    sched = make_schedule(schedule)
    chosen = list(METHODS if methods is None else methods)
    for method in chosen:
        check_choice("method", method, METHODS)
    n_pop = check_int("n_pop", n_pop, 1)
    seed = check_seed("seed", seed, allow_generator=False)
    if "two_value" in chosen and (
        not use_stored or _stored_critical(process, v, m, s, "two_value") is None
    ):
        _check_two_value_memory(n_pop, s, kept_levels=1)  # before any method runs
    alpha: dict[str, float] = {}
    source: dict[str, str] = {}
    for method in chosen:
        if method == "first_moment":
            alpha[method], source[method] = (
                first_moment_critical_alpha(process, v, m, s),
                ("closed form"),
            )
        elif method == "determination":
            if process != "masking":
                continue
            alpha[method] = determination_critical_alpha(v, m, s, tol=1e-5)
            source[method] = "computed"
        elif method == "two_value":
            stored = _stored_critical(process, v, m, s, method) if use_stored else None
            if stored is not None:
                alpha[method], source[method] = stored, "stored"
            else:
                alpha[method] = two_value_critical_alpha(process, v, m, s, n_pop=n_pop, seed=seed)
                source[method] = "computed"
        else:
            stored = _stored_critical(process, v, m, s, method) if use_stored else None
            if stored is not None:
                alpha[method], source[method] = stored, "stored"
            elif compute_population:
                alpha[method] = population_critical_alpha(process, v, m, s, seed=seed)
                source[method] = "computed"
    times = {k: time_at_alpha(sched, a) for k, a in alpha.items()}
    return DiscreteCriticalPoint(
        process=process,
        v=v,
        m=m,
        s=s,
        schedule=sched.name,
        alpha=alpha,
        t=times,
        source=source,
    )


def critical_marks(
    v: int = 32,
    m: int = 8,
    s: int = 2,
    schedule: Any = "linear",
    processes: Sequence[str] = ("masking", "uniform"),
) -> dict[str, dict[str, Any]]:
    """What a figure step needs to mark the predicted transitions: per process, the
    :meth:`DiscreteCriticalPoint.to_dict` of :func:`critical_alpha` (stored thresholds where
    they exist, so it takes about a second at the figures' parameters).

    Parameters
    ----------
    v, m, s : the RHM.
    schedule : schedule name or object (see :func:`time_at_alpha`).
    processes : the processes to mark.

    Returns
    -------
    dict
        ``{process: {"t_star": ..., "t": {method: ...}, "best": ..., ...}}``.

    Raises
    ------
    InputError
        As for :func:`critical_alpha`.

    Examples
    --------
    >>> marks = critical_marks()
    >>> sorted(marks), marks["masking"]["best"]
    (['masking', 'uniform'], 'population')
    """
    return {
        process: critical_alpha(process, v, m, s, schedule=schedule).to_dict()
        for process in processes
    }
