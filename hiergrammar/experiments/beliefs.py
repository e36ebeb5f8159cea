"""Exact-BP beliefs in the true symbol, per level, averaged over samples and rule draws.

What the mean-field theory (:mod:`hiergrammar.theory.meanfield`) predicts and what the figures
plot: for
each noise condition (an eps of the epsilon-process, or a diffusion noise level), draw data from
several independent RHMs, noise them, run exact BP and record, per level, the upward, downward
and marginal beliefs in the true symbol and whether the marginal's argmax is the true symbol
("P(correct symbol)"), with standard errors across rule draws.

Examples
--------
>>> bp = bp_profile(8, 4, 2, 2, 2, eps=[0.1, 0.5], n_samples=40, n_rules=2, seed=0)
>>> bp.accuracy.shape      # (len(eps), L + 1)
(2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hiergrammar.artifacts import progress
from hiergrammar.bp import BPResult, tree_bp
from hiergrammar.noise import diffusion_evidence, eps_evidence
from hiergrammar.rhm import RHM, check_parameters
from hiergrammar.validation import InputError, check_int, check_real_array, check_seed

__all__ = ["true_beliefs", "BPProfile", "bp_profile", "bp_profile_diffusion"]

ArrayLike = float | Sequence[float] | np.ndarray


def true_beliefs(result: BPResult, levels: Sequence[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """BP beliefs in the true symbol of every node.

    Parameters
    ----------
    result : BPResult
        What :func:`hiergrammar.bp.tree_bp` returned for ``n`` evidence sets.
    levels : sequence of numpy.ndarray
        The true symbols per level (``RHMSample.levels``), ``(n, width_l)`` integers each.

    Returns
    -------
    dict
        ``{"u", "d", "p"}`` -> lists over levels of ``(n, width_l)`` arrays (upward, downward
        and marginal belief in the true symbol), plus ``"correct"``: whether the marginal's
        argmax is the true symbol, ``(n, width_l)`` booleans.

    Raises
    ------
    InputError
        When ``levels`` does not match ``result`` (number of levels, shapes, symbol range).

    Examples
    --------
    >>> from hiergrammar.noise import eps_evidence
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> data = rhm.sample(3, seed=1)
    >>> beliefs = true_beliefs(tree_bp(rhm, eps_evidence(data.x, 0.0, 4)), data.levels)
    >>> [float(p.min()) for p in beliefs["p"]]       # noiseless: certain of every symbol
    [1.0, 1.0, 1.0]
    """
    if len(levels) != len(result.marginals):
        raise InputError(
            f"levels must hold one array per level, {len(result.marginals)}, got {len(levels)}"
        )
    out: dict[str, list[np.ndarray]] = {"u": [], "d": [], "p": [], "correct": []}
    for level, truth in enumerate(levels):
        truth = np.asarray(truth)
        n, width, card = result.marginals[level].shape
        if truth.shape != (n, width) or not np.issubdtype(truth.dtype, np.integer):
            raise InputError(
                f"levels[{level}] must be integers of shape (n, width_l) = ({n}, {width}), "
                f"got {truth.dtype} {truth.shape}"
            )
        if truth.size and (truth.min() < 0 or truth.max() >= card):
            raise InputError(f"levels[{level}] values must lie in [0, {card})")
        idx = truth[..., None]
        out["u"].append(np.take_along_axis(result.up[level], idx, axis=-1)[..., 0])
        out["d"].append(np.take_along_axis(result.down[level], idx, axis=-1)[..., 0])
        out["p"].append(np.take_along_axis(result.marginals[level], idx, axis=-1)[..., 0])
        out["correct"].append(result.marginals[level].argmax(axis=-1) == truth)
    return out


@dataclass(frozen=True)
class BPProfile:
    """Exact-BP beliefs in the true symbol, averaged over samples, nodes and rule draws.

    ``u``, ``d``, ``p``: mean upward, downward and marginal belief in the true symbol;
    ``accuracy``: fraction of nodes whose marginal argmax is the true symbol. Each has shape
    ``(n_conditions, L+1)`` (a condition is one eps, or one diffusion noise level), and a
    standard error ``*_se`` of the same shape: the spread of the per-rule-draw means over
    ``sqrt(n_rules)`` (it counts the rule-to-rule fluctuations the annealed theory averages
    over); with a single rule draw, the spread of per-sample node averages over ``sqrt(n)``.
    ``n_per_rule``: samples per condition and rule draw.
    """

    u: np.ndarray
    d: np.ndarray
    p: np.ndarray
    accuracy: np.ndarray
    u_se: np.ndarray
    d_se: np.ndarray
    p_se: np.ndarray
    accuracy_se: np.ndarray
    n_rules: int
    n_per_rule: int


def _bp_profile(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    n_conditions: int,
    make_evidence: Callable[[np.ndarray, int, int], np.ndarray],
    n_samples: int,
    n_rules: int,
    seed: int | None,
    batch: int | None,
    dtype: type,
    desc: str,
) -> BPProfile:
    """Shared loop: for each rule draw, sample data, build evidence per condition, run BP."""
    check_parameters(v, n_classes, m, s, L)
    seed = check_seed("seed", seed, allow_generator=False)
    n_rules = check_int("n_rules", n_rules, 1)
    per_rule = max(1, check_int("n_samples", n_samples, 1) // n_rules)
    # About 64k leaves per BP call keeps the (batch, width, v) message arrays cache-friendly.
    batch = max(16, 65536 // s**L) if batch is None else check_int("batch", batch, 1)
    keys = ("u", "d", "p", "correct")
    # sums[key][r, c, l]: per rule draw r and condition c, the sum over samples of the
    # node-averaged value at level l, and of its square (for the one-draw standard error).
    sums = {k: np.zeros((n_rules, n_conditions, L + 1)) for k in keys}
    squares = {k: np.zeros((n_rules, n_conditions, L + 1)) for k in keys}
    seeds = np.random.SeedSequence(seed).spawn(n_rules)
    jobs = [(r, c) for r in range(n_rules) for c in range(n_conditions)]
    rhm, current = None, -1
    for r, c in progress(jobs, desc=desc, total=len(jobs)):
        if r != current:  # jobs run draw by draw: one rule draw alive at a time
            rhm = RHM(v, n_classes, m, s, L, seed=int(seeds[r].generate_state(1)[0]))
            current = r
        cond_seed = np.random.SeedSequence([int(seeds[r].generate_state(1)[0]), c, 1])
        rng = np.random.default_rng(cond_seed)
        for start in range(0, per_rule, batch):
            size = min(batch, per_rule - start)
            data = rhm.sample(size, seed=int(rng.integers(2**63)))
            evidence = make_evidence(data.x, c, int(rng.integers(2**63)))
            beliefs = true_beliefs(tree_bp(rhm, evidence, dtype=dtype), data.levels)
            for k in keys:
                node_mean = np.stack([b.mean(axis=1) for b in beliefs[k]], axis=1)  # (size, L+1)
                sums[k][r, c] += node_mean.sum(axis=0)
                squares[k][r, c] += (node_mean**2).sum(axis=0)
    means, ses = {}, {}
    for k in keys:
        per_draw = sums[k] / per_rule  # (R, C, L+1)
        means[k] = per_draw.mean(axis=0)
        if n_rules > 1:
            ses[k] = per_draw.std(axis=0, ddof=1) / np.sqrt(n_rules)
        else:
            var = squares[k][0] / per_rule - per_draw[0] ** 2
            ses[k] = np.sqrt(np.maximum(var, 0.0) * per_rule / max(per_rule - 1, 1) / per_rule)
    return BPProfile(
        u=means["u"],
        d=means["d"],
        p=means["p"],
        accuracy=means["correct"],
        u_se=ses["u"],
        d_se=ses["d"],
        p_se=ses["p"],
        accuracy_se=ses["correct"],
        n_rules=n_rules,
        n_per_rule=per_rule,
    )


def bp_profile(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: ArrayLike,
    *,
    n_samples: int = 1000,
    n_rules: int = 4,
    seed: int | None = 0,
    batch: int | None = None,
    dtype: type = np.float64,
) -> BPProfile:
    """Exact-BP beliefs under the epsilon-process (the measured counterpart of the mean-field
    profile of :mod:`hiergrammar.theory.meanfield`).

    For each of ``n_rules`` independent rule draws and each eps, ``n_samples // n_rules`` data
    are drawn, their leaves get the evidence of eqs. 9-10, and exact BP gives the beliefs in
    the true symbol of every node; these are averaged over nodes of a level, samples and rule
    draws.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM's parameters.
    eps : float or sequence of float
        Noise levels in ``[0, 1]``, a scalar or 1-d.
    n_samples : int
        Samples per eps over all rule draws, ``>= 1``.
    n_rules : int
        Independent rule draws, ``>= 1``.
    seed : int or None
        Seed of the rule draws, data and noise.
    batch : int, optional
        Samples per BP call (default: about 64k leaves).
    dtype : type
        BP message dtype; ``np.float32`` halves the BP cost (error ~1e-6, far below the
        sampling noise).

    Returns
    -------
    BPProfile
        Arrays of shape ``(len(eps), L+1)``.

    Raises
    ------
    InputError
        On bad parameters, noise levels or seed.

    Examples
    --------
    >>> bp = bp_profile(8, 4, 2, 2, 2, eps=[0.1, 0.5], n_samples=40, n_rules=2, seed=0)
    >>> bp.p.shape
    (2, 3)
    """
    eps = np.atleast_1d(check_real_array("eps", eps))
    if eps.ndim != 1 or not np.all((eps >= 0) & (eps <= 1)):
        raise InputError(f"eps={eps} violates 0 <= eps <= 1 (a scalar or 1-d array)")

    def make(x: np.ndarray, c: int, _seed: int) -> np.ndarray:
        return eps_evidence(x, float(eps[c]), v)

    return _bp_profile(
        v,
        n_classes,
        m,
        s,
        L,
        eps.size,
        make,
        n_samples,
        n_rules,
        seed,
        batch,
        dtype,
        desc=f"BP eps-process L={L}",
    )


def bp_profile_diffusion(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    alpha_bar: ArrayLike,
    *,
    n_samples: int = 1000,
    n_rules: int = 4,
    seed: int | None = 0,
    batch: int | None = None,
    dtype: type = np.float64,
) -> BPProfile:
    """Exact-BP beliefs when the leaves are diffused one-hot vectors (eqs. 1-4).

    Like :func:`bp_profile`, with the leaf evidence ``P(x_0 | x_t)`` of a forward diffusion to
    each ``alpha_bar``. ``1 - u[:, 0]`` is then the effective eps (eq. 63) of that noise
    level, measured on the same leaves.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM's parameters.
    alpha_bar : float or sequence of float
        Noise levels in ``[0, 1]``, a scalar or 1-d.
    n_samples, n_rules, seed, batch, dtype
        As for :func:`bp_profile`.

    Returns
    -------
    BPProfile
        Arrays of shape ``(len(alpha_bar), L+1)``.

    Raises
    ------
    InputError
        On bad parameters, noise levels or seed.

    Examples
    --------
    >>> bp = bp_profile_diffusion(8, 4, 2, 2, 2, alpha_bar=[1.0, 0.1], n_samples=20, n_rules=1)
    >>> bp.accuracy.shape, float(bp.accuracy[0].min())   # alpha_bar = 1: no noise, all right
    ((2, 3), 1.0)
    """
    alpha_bar = np.atleast_1d(check_real_array("alpha_bar", alpha_bar))
    if alpha_bar.ndim != 1 or np.any((alpha_bar < 0) | (alpha_bar > 1)):
        raise InputError("alpha_bar violates 0 <= alpha_bar <= 1 (a scalar or 1-d array)")

    def make(x: np.ndarray, c: int, noise_seed: int) -> np.ndarray:
        return diffusion_evidence(x, v, float(alpha_bar[c]), seed=noise_seed)

    return _bp_profile(
        v,
        n_classes,
        m,
        s,
        L,
        alpha_bar.size,
        make,
        n_samples,
        n_rules,
        seed,
        batch,
        dtype,
        desc=f"BP diffusion L={L}",
    )
