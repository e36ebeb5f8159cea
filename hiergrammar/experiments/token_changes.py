"""What changes when a string is noised and resampled exactly: per level, and along the string.

The follow-up of the paper (Sclocchi, Favero, Levi, Wyart 2024, "Probing the latent
hierarchical structure of data via diffusion models") runs forward-backward experiments with
discrete diffusion and measures

* the probability that a symbol is unchanged, level by level, against the time ``t`` at which
  the reverse process starts; the class (the root) keeps its value up to a transition time and
  then forgets it;
* how the changes of the leaves are correlated along the string. With ``delta_i = 1`` when leaf
  ``i`` changed, ``C(r) = Cov(delta_i, delta_{i+r})`` averaged over positions ``i``, the same
  covariance grouped by the level of the two leaves' lowest common ancestor, and the
  susceptibility ``chi = sum_{r >= 1} C(r)``, which peaks near the class transition because
  changes there come in large correlated chunks (whole subtrees are redrawn).

Everything here is a numeric measurement on exact samples
(:func:`hiergrammar.sampling.exact_forward_backward`); error bars over rule draws are left to
the experiment that calls it (:func:`combine_draws`).

Examples
--------
>>> import numpy as np
>>> before = np.array([[0, 0, 0, 0], [0, 0, 0, 0]])
>>> after = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])    # leaves 0 and 1 change together
>>> cc = change_correlations(before, after, s=2)
>>> cc.C.round(4).tolist()          # C(0) = mean variance; C(1) = (1/4 + 0 + 0) / 3
[0.125, 0.0833, 0.0, 0.0]
>>> cc.C_tree.tolist()                 # by level of the common ancestor: [C(0), k=1, k=2]
[0.125, 0.125, 0.0]
>>> round(cc.chi, 4)                   # sum over r >= 1
0.0833
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hiergrammar.experiments.curves import first_crossing
from hiergrammar.processes import Process
from hiergrammar.sampling import exact_forward_backward
from hiergrammar.validation import (
    InputError,
    check_int,
    check_memory,
    check_real_array,
    make_rng,
)

__all__ = [
    "ChangeCorrelations",
    "ChangeMoments",
    "DrawSummary",
    "TokenChangeCurves",
    "change_correlations",
    "class_transition_time",
    "combine_draws",
    "lca_levels",
    "token_change_curves",
]


def _depth_of(d: int, s: int) -> int:
    """``L`` with ``s**L == d``, or an :class:`InputError`."""
    L, width = 0, 1
    while width < d:
        width *= s
        L += 1
    if width != d or d < s:
        raise InputError(f"d={d} violates d = s**L with L >= 1 (s={s}): strings are tree leaves")
    return L


def lca_levels(d: int, s: int) -> np.ndarray:
    """Level of the lowest common ancestor of every pair of leaves, ``(d, d)`` ints.

    Leaves ``i`` and ``j`` meet at the smallest ``k`` with ``i // s**k == j // s**k``
    (``k = 0`` on the diagonal, ``L`` for leaves in different halves of the root).

    Parameters
    ----------
    d : int
        Number of leaves, ``s**L``.
    s : int
        Branching factor, ``s >= 2``.

    Returns
    -------
    numpy.ndarray
        ``(d, d)`` int64 in ``[0, L]``.

    Raises
    ------
    InputError
        If ``d`` is not a power ``s**L``, ``L >= 1``.

    Examples
    --------
    >>> lca_levels(4, 2)
    array([[0, 1, 2, 2],
           [1, 0, 2, 2],
           [2, 2, 0, 1],
           [2, 2, 1, 0]])
    """
    s = check_int("s", s, 2)
    d = check_int("d", d, 2)
    L = _depth_of(d, s)
    idx = np.arange(d)
    level = np.zeros((d, d), dtype=np.int64)
    for k in range(1, L + 1):
        # Pairs still apart below level k meet at k or above.
        apart = (idx[:, None] // s ** (k - 1)) != (idx[None, :] // s ** (k - 1))
        level += apart
    return level


@dataclass(frozen=True)
class ChangeCorrelations:
    """Correlations of token changes between two batches of strings.

    Attributes
    ----------
    C : numpy.ndarray
        ``(d,)``: ``C[r] = mean_i Cov(delta_i, delta_{i+r})``, ``r = 0..d-1`` (population
        covariance over samples, ``ddof = 0``, for each pair, then averaged over the ``d - r``
        positions ``i``). ``C[0]`` is the mean variance.
    C_tree : numpy.ndarray
        ``(L + 1,)``: ``C_tree[k]``, ``k = 1..L``, the covariance averaged over the pairs whose
        lowest common ancestor is at level ``k``; ``C_tree[0] = C[0]``.
    chi : float
        Susceptibility ``sum_{r >= 1} C[r]`` (one-sided, without ``r = 0``).
    p_change : numpy.ndarray
        ``(d,)``: the fraction of samples in which each leaf changed.
    n : int
        Number of samples.
    """

    C: np.ndarray
    C_tree: np.ndarray
    chi: float
    p_change: np.ndarray
    n: int


@dataclass(frozen=True)
class ChangeMoments:
    """Sufficient statistics of the change indicators: sums add up across batches.

    Attributes
    ----------
    n : int
        Number of samples.
    total : numpy.ndarray
        ``(d,)``: ``sum_samples delta_i``.
    outer : numpy.ndarray
        ``(d, d)``: ``sum_samples delta_i delta_j``.

    Examples
    --------
    >>> a = ChangeMoments.from_strings(np.array([[0, 1]]), np.array([[0, 0]]))
    >>> b = ChangeMoments.from_strings(np.array([[0, 1]]), np.array([[1, 1]]))
    >>> (a + b).n, (a + b).total.tolist()
    (2, [1.0, 1.0])
    """

    n: int
    total: np.ndarray
    outer: np.ndarray

    @classmethod
    def from_strings(
        cls,
        x_before: np.ndarray,
        x_after: np.ndarray,
        memory_budget: int | str | None = None,
    ) -> ChangeMoments:
        """Moments of ``delta = (x_before != x_after)``.

        Parameters
        ----------
        x_before, x_after : numpy.ndarray
            ``(n, d)`` integer strings.
        memory_budget : int or str, optional
            Bound on the ``(d, d)`` table.

        Returns
        -------
        ChangeMoments

        Raises
        ------
        InputError
            For mismatched or badly shaped strings.

        Examples
        --------
        >>> ChangeMoments.from_strings(np.array([[1, 2]]), np.array([[1, 3]])).outer.tolist()
        [[0.0, 0.0], [0.0, 1.0]]
        """
        delta = _change_indicators(x_before, x_after)
        d = delta.shape[1]
        check_memory(f"the (d, d) = ({d}, {d}) change covariance", 8 * d * d, memory_budget)
        return cls(n=delta.shape[0], total=delta.sum(axis=0), outer=delta.T @ delta)

    def __add__(self, other: ChangeMoments) -> ChangeMoments:
        if self.total.shape != other.total.shape:
            raise InputError(
                f"moments of strings of length {self.total.shape[0]} and "
                f"{other.total.shape[0]} cannot be added"
            )
        return ChangeMoments(self.n + other.n, self.total + other.total, self.outer + other.outer)

    def __sub__(self, other: ChangeMoments) -> ChangeMoments:
        return ChangeMoments(self.n - other.n, self.total - other.total, self.outer - other.outer)

    def correlations(self, s: int) -> ChangeCorrelations:
        """The :class:`ChangeCorrelations` of these moments.

        Parameters
        ----------
        s : int
            Branching factor of the trees whose leaves the strings are.

        Returns
        -------
        ChangeCorrelations

        Raises
        ------
        InputError
            With no samples, or when ``d`` is not a power of ``s``.

        Examples
        --------
        >>> m = ChangeMoments.from_strings(np.zeros((2, 2), int), np.array([[1, 1], [0, 0]]))
        >>> m.correlations(s=2).chi
        0.25
        """
        s = check_int("s", s, 2)
        if self.n < 1:
            raise InputError(f"n={self.n} violates n >= 1 (no samples to correlate)")
        d = self.total.shape[0]
        levels = lca_levels(d, s)
        mean = self.total / self.n
        cov = self.outer / self.n - np.outer(mean, mean)
        C = np.array([np.diagonal(cov, r).mean() for r in range(d)])
        upper = np.triu(np.ones((d, d), dtype=bool), k=1)
        C_tree = np.empty(levels.max() + 1)
        C_tree[0] = C[0]
        for k in range(1, C_tree.size):
            C_tree[k] = cov[upper & (levels == k)].mean()
        return ChangeCorrelations(
            C=C, C_tree=C_tree, chi=float(C[1:].sum()), p_change=mean, n=self.n
        )


def _change_indicators(x_before: np.ndarray, x_after: np.ndarray) -> np.ndarray:
    before = check_real_array("x_before", x_before, ndim=2, dtype=np.int64)
    after = check_real_array("x_after", x_after, ndim=2, dtype=np.int64)
    if before.shape != after.shape:
        raise InputError(
            f"x_after must have the shape of x_before {before.shape}, got {after.shape}"
        )
    return (before != after).astype(np.float64)


def change_correlations(x_before: np.ndarray, x_after: np.ndarray, s: int) -> ChangeCorrelations:
    """Correlations of the changes ``delta_i = [x_before_i != x_after_i]`` along the string.

    Parameters
    ----------
    x_before, x_after : numpy.ndarray
        ``(n, d)`` integer strings, ``d = s**L``: before and after a forward-backward run.
    s : int
        Branching factor of the trees, ``s >= 2`` (used to group pairs by their lowest common
        ancestor).

    Returns
    -------
    ChangeCorrelations
        ``C`` ``(d,)`` indexed by distance ``r``, ``C_tree`` ``(L + 1,)`` indexed by the level
        of the lowest common ancestor (entry 0: ``C[0]``), ``chi = sum_{r >= 1} C[r]``,
        ``p_change`` ``(d,)`` and ``n``.

    Raises
    ------
    InputError
        For mismatched shapes, no samples, or ``d`` not a power of ``s``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> before = rng.integers(4, size=(1000, 8))
    >>> after = before.copy()
    >>> after[rng.random(1000) < 0.5, :4] = 9          # the left half changes as one block
    >>> cc = change_correlations(before, after, s=2)
    >>> cc.C_tree.round(2).tolist()                     # pairs inside the block covary
    [0.12, 0.12, 0.12, 0.0]
    """
    return ChangeMoments.from_strings(x_before, x_after).correlations(s)


@dataclass(frozen=True)
class TokenChangeCurves:
    """Forward-backward statistics of one grammar against time.

    Attributes
    ----------
    t : numpy.ndarray
        ``(n_t,)`` times.
    unchanged : numpy.ndarray
        ``(n_t, L + 1)``: fraction of nodes of each level whose symbol is unchanged (level
        ``L``: the class).
    unchanged_se : numpy.ndarray
        ``(n_t, L + 1)``: its standard error over samples.
    C : numpy.ndarray
        ``(n_t, d)``: ``C(r)`` at each time.
    C_tree : numpy.ndarray
        ``(n_t, L + 1)``.
    chi : numpy.ndarray
        ``(n_t,)``.
    chi_se : numpy.ndarray
        ``(n_t,)``: jackknife standard error of ``chi`` over groups of samples.
    n : int
        Samples per time.
    """

    t: np.ndarray
    unchanged: np.ndarray
    unchanged_se: np.ndarray
    C: np.ndarray
    C_tree: np.ndarray
    chi: np.ndarray
    chi_se: np.ndarray
    n: int


def _jackknife_chi(groups: Sequence[ChangeMoments], s: int) -> float:
    """Delete-one-group jackknife standard error of ``chi``."""
    g = len(groups)
    if g < 2:
        return float("nan")
    whole = groups[0]
    for moments in groups[1:]:
        whole = whole + moments
    leave_out = np.array([(whole - m).correlations(s).chi for m in groups])
    return float(np.sqrt((g - 1) / g * ((leave_out - leave_out.mean()) ** 2).sum()))


def token_change_curves(
    grammar,
    process: Process,
    t: Sequence[float] | np.ndarray,
    n: int,
    seed: int | np.random.Generator | None = 0,
    *,
    jackknife_groups: int | None = None,
    dtype: type = np.float64,
    chunk_size: int | None = None,
    memory_budget: int | str | None = None,
) -> TokenChangeCurves:
    """Draw strings, run exact forward-backward at each ``t`` and measure what changed.

    For each time, ``n`` fresh strings of the grammar go through
    :func:`~hiergrammar.sampling.exact_forward_backward`; the original and new trees give the
    per-level fraction of unchanged symbols, and the leaves give :func:`change_correlations`.

    Parameters
    ----------
    grammar : RHM
        The model (anything with ``sample``, ``rules``, ``L``, ``s``, ``v``, ``d``).
    process : Process
        The forward process.
    t : array_like
        ``(n_t,)`` times of the process's schedule.
    n : int
        Samples per time, ``n >= 2``.
    seed : int, Generator or None
        Seed of the data and of the forward-backward draws.
    jackknife_groups : int, optional
        Contiguous groups of samples for the jackknife error of ``chi``,
        ``2 <= jackknife_groups <= n`` (default ``min(10, n)``).
    dtype : np.float32 or np.float64
        Float type of BP in :func:`~hiergrammar.sampling.exact_forward_backward` (float32: about
        twice as fast, sampling probabilities exact to ~1e-6).
    chunk_size : int, optional
        Strings per chunk of :func:`~hiergrammar.sampling.exact_forward_backward`, which
        streams them (default the largest that fits the memory budget); the result does not
        depend on it.
    memory_budget : int or str, optional
        Overrides the library's memory budget (it sizes the chunks).

    Returns
    -------
    TokenChangeCurves

    Raises
    ------
    InputError
        For bad arguments.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.noise import MaskingProcess
    >>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    >>> curves = token_change_curves(rhm, MaskingProcess(v=8), [0.0, 1.0], n=200, seed=1)
    >>> curves.unchanged[0].tolist()                 # at t = 0 nothing changes
    [1.0, 1.0, 1.0, 1.0]
    >>> bool(abs(curves.unchanged[1, -1] - 1 / 4) < 0.1)   # at alpha = 0: chance, 1/n_classes
    True
    """
    n = check_int("n", n, 2)
    groups = min(10, n) if jackknife_groups is None else jackknife_groups
    groups = check_int("jackknife_groups", groups, 2, n)
    times = check_real_array("t", t, ndim=1)
    process.alpha(times)  # checks every time before any work
    rng = make_rng(seed)
    L = grammar.L
    unchanged = np.empty((times.size, L + 1))
    unchanged_se = np.empty((times.size, L + 1))
    C = np.empty((times.size, grammar.d))
    C_tree = np.empty((times.size, L + 1))
    chi = np.empty(times.size)
    chi_se = np.empty(times.size)
    edges = np.linspace(0, n, groups + 1).round().astype(int)
    for k, time in enumerate(times):
        data = grammar.sample(n, seed=int(rng.integers(2**63)))
        new = exact_forward_backward(
            grammar,
            process,
            data.x,
            float(time),
            seed=rng,
            dtype=dtype,
            memory_budget=memory_budget,
            chunk_size=chunk_size,
            keep_observation=False,
        )
        for level in range(L + 1):
            same = (data.levels[level] == new.levels[level]).mean(axis=1)  # (n,)
            unchanged[k, level] = same.mean()
            unchanged_se[k, level] = same.std(ddof=1) / np.sqrt(n)
        parts = [
            ChangeMoments.from_strings(data.x[a:b], new.x[a:b])
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        whole = parts[0]
        for part in parts[1:]:
            whole = whole + part
        corr = whole.correlations(grammar.s)
        C[k], C_tree[k], chi[k] = corr.C, corr.C_tree, corr.chi
        chi_se[k] = _jackknife_chi(parts, grammar.s)
    return TokenChangeCurves(
        t=times,
        unchanged=unchanged,
        unchanged_se=unchanged_se,
        C=C,
        C_tree=C_tree,
        chi=chi,
        chi_se=chi_se,
        n=n,
    )


@dataclass(frozen=True)
class DrawSummary:
    """Means over independent rule draws and their standard errors.

    ``mean[name]`` and ``se[name]``: arrays of the per-draw field's shape. The standard error
    is the spread of the per-draw values over ``sqrt(n_draws)``; each per-draw value carries its
    own sampling noise, so it counts both the samples and the rule draws.
    """

    mean: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    n_draws: int


def combine_draws(
    curves: Sequence[TokenChangeCurves],
    fields: Sequence[str] = ("unchanged", "C", "C_tree", "chi"),
) -> DrawSummary:
    """Average :class:`TokenChangeCurves` of independent rule draws, with standard errors.

    Parameters
    ----------
    curves : sequence of TokenChangeCurves
        One per rule draw, on the same times.
    fields : sequence of str
        Which fields to combine.

    Returns
    -------
    DrawSummary
        With one draw the standard error is the within-draw one (``unchanged_se``,
        ``chi_se``) where it exists, else NaN.

    Raises
    ------
    InputError
        With no curves or curves on different times.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.noise import UniformProcess
    >>> draws = [token_change_curves(RHM(8, 4, 2, 2, 2, seed=r), UniformProcess(8), [0.5],
    ...                              n=50, seed=r) for r in range(3)]
    >>> combine_draws(draws).mean["chi"].shape
    (1,)
    """
    if not curves:
        raise InputError("curves must hold at least one TokenChangeCurves")
    for c in curves[1:]:
        if not np.array_equal(c.t, curves[0].t):
            raise InputError("curves must share their times t")
    mean, se = {}, {}
    for name in fields:
        stack = np.stack([getattr(c, name) for c in curves])
        mean[name] = stack.mean(axis=0)
        if len(curves) > 1:
            se[name] = stack.std(axis=0, ddof=1) / np.sqrt(len(curves))
        elif hasattr(curves[0], f"{name}_se"):
            se[name] = getattr(curves[0], f"{name}_se")
        else:
            se[name] = np.full(mean[name].shape, np.nan)
    return DrawSummary(mean=mean, se=se, n_draws=len(curves))


def class_transition_time(t: np.ndarray, p_class_unchanged: np.ndarray, chance: float) -> float:
    """The time the class is forgotten: where P(class unchanged) falls half-way to chance.

    At ``t = 0`` the class is always kept (1); at ``alpha = 0`` the new class is independent of
    the old one and is unchanged with probability ``chance`` (``1 / n_classes`` for a uniform
    class prior). The transition is the first crossing of ``(1 + chance) / 2``, interpolated
    linearly between grid points.

    Parameters
    ----------
    t : numpy.ndarray
        ``(n_t,)`` increasing times.
    p_class_unchanged : numpy.ndarray
        ``(n_t,)``.
    chance : float
        Its value at ``alpha = 0``, in ``[0, 1)``.

    Returns
    -------
    float
        The crossing time, or NaN if the curve never crosses (or starts below).

    Examples
    --------
    >>> class_transition_time(np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.8, 0.0]), 0.0)
    0.6875
    """
    half = (1.0 + float(chance)) / 2.0
    return first_crossing(np.asarray(t), np.asarray(p_class_unchanged), half)
