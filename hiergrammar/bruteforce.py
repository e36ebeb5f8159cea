"""Exact posteriors of tiny RHMs by enumerating every tree: the independent ground truth.

A tree is a class ``y`` and one rule choice at each of the ``N = (s**L - 1) / (s - 1)``
internal nodes, so there are ``n_classes * m**N`` trees (``card_L * prod_l m_l**width_l`` when
the number of rules ``m_l`` varies with the level). The generative probability of a tree is
``prior(y) * m**-N``; given leaf evidence ``e`` (a likelihood vector per leaf) its weight is

    w(tree) = prior(y) * m**-N * prod_i e_i(x_i)

The evidence probability is ``sum_tree w(tree)`` and the marginal of node ``h`` is
``P(h = a | e) = sum_{tree: h = a} w(tree) / sum_tree w(tree)``. Nothing here shares code with
the message-passing engines: no messages, no rule tensors, only the grammar's rules applied
top-down. Evidence follows the contract of :mod:`hiergrammar.evidence`; evidence that no tree
can produce gives ``log_evidence = -inf`` and NaN marginals (the ground truth reports it, it
does not refuse it).

Tree counts grow as ``m**N``: at ``L = 14`` the count has thousands of digits, more than Python
converts to text by default, so messages give huge counts as powers of ten
(:func:`describe_tree_count`) and bounds are compared on ``log10`` first.

Examples
--------
>>> from hiergrammar.rhm import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
>>> res = brute_force_marginals(rhm, rhm.sample(4, seed=1).onehot())
>>> res.n_trees, [mg.shape for mg in res.marginals]   # (n, width_l, card_l) per level
(16, [(4, 4, 3), (4, 2, 3), (4, 1, 2)])
>>> bool((res.marginals[2].max(axis=-1) == 1).all())   # noiseless input: class is certain
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from hiergrammar.evidence import check_leaf_evidence, check_root_prior
from hiergrammar.validation import InputError, check_int, check_memory

__all__ = [
    "MAX_TREES",
    "BruteForceResult",
    "brute_force_marginals",
    "describe_tree_count",
    "enumerate_trees",
    "log10_n_trees",
    "n_trees",
]

#: Default bound on the number of trees enumerated.
MAX_TREES = 200_000

#: Counts with fewer digits than this are written out in full in messages.
_EXACT_DIGITS = 15


@dataclass(frozen=True)
class BruteForceResult:
    """Exact posteriors by enumeration.

    ``marginals[l]``: float64 ``(n, width_l, card_l)``, ``P(h_i^(l) = a | evidence)``, rows sum
    to 1 (NaN where the evidence has probability 0). ``log_evidence``: ``(n,)``, the natural log
    of ``sum_tree prior(y) m**-N prod_i e_i(x_i)`` (``-inf`` where it is 0). ``n_trees``: how
    many trees were enumerated.
    """

    marginals: list[np.ndarray]
    log_evidence: np.ndarray
    n_trees: int


def _rules_per_node(model: Any) -> list[int]:
    """``m`` of every internal node, top-down and left to right (the enumeration's order)."""
    return [
        int(model.rules[level].shape[1])
        for level in range(model.L, 0, -1)
        for _ in range(model.width(level))
    ]


def _rule_counts(model: Any) -> dict[int, int]:
    """``{m: number of internal nodes with m rules}``."""
    counts: dict[int, int] = {}
    for level in range(1, model.L + 1):
        m = int(model.rules[level].shape[1])
        counts[m] = counts.get(m, 0) + int(model.width(level))
    return counts


def n_trees(rhm: Any) -> int:
    """The number of distinct trees, ``n_classes * m**N`` (``N`` internal nodes), exactly.

    Parameters
    ----------
    rhm : RHM or any grammar
        The model.

    Returns
    -------
    int
        A Python int (it may have thousands of digits: see :func:`log10_n_trees`).

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> n_trees(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0))     # 2 * 2**3
    16
    """
    total = int(rhm.card(rhm.L))
    for m, count in _rule_counts(rhm).items():
        total *= m**count
    return total


def log10_n_trees(rhm: Any) -> float:
    """``log10`` of :func:`n_trees`, computed without the exact count (cheap at any depth).

    Parameters
    ----------
    rhm : RHM or any grammar
        The model.

    Returns
    -------
    float
        ``log10(n_classes) + N * log10(m)``.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> round(log10_n_trees(RHM(v=4, n_classes=2, m=2, s=2, L=14, seed=0)), 1)
    4932.1
    """
    return math.log10(rhm.card(rhm.L)) + sum(
        count * math.log10(m) for m, count in _rule_counts(rhm).items()
    )


def describe_tree_count(rhm: Any) -> str:
    """The tree count as text: the formula, and the number in full or as a power of ten.

    Never converts a huge int to text (Python refuses above 4300 digits by default).

    Parameters
    ----------
    rhm : RHM or any grammar
        The model.

    Returns
    -------
    str

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> describe_tree_count(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0))
    'n_classes*m**N = 2*2**3 = 16 trees'
    >>> describe_tree_count(RHM(v=4, n_classes=2, m=2, s=2, L=14, seed=0))
    'n_classes*m**N = 2*2**16383 = about 10**4932.1 trees'
    """
    counts = _rule_counts(rhm)
    powers = "*".join(f"{m}**{count}" for m, count in sorted(counts.items()))
    formula = f"n_classes*m**N = {rhm.card(rhm.L)}*{powers or 1}"
    log10 = log10_n_trees(rhm)
    if log10 < _EXACT_DIGITS:
        return f"{formula} = {n_trees(rhm)} trees"
    return f"{formula} = about 10**{log10:.1f} trees"


def _check_tree_bound(rhm: Any, max_trees: Any) -> int:
    """The exact tree count, or an InputError when it exceeds ``max_trees``."""
    bound = check_int("max_trees", max_trees, low=1)
    # Compare on log10 first: the exact count of a deep model is a huge integer.
    if log10_n_trees(rhm) > math.log10(bound) + 1 or n_trees(rhm) > bound:
        raise InputError(
            f"{describe_tree_count(rhm)} violates n_trees <= max_trees = {bound}; "
            "brute force is for tiny models only"
        )
    return n_trees(rhm)


def _enumeration_bytes(rhm: Any, total: int) -> int:
    """Bytes of the enumeration's tables: codes, rule choices and every level's symbols."""
    nodes = sum(int(rhm.width(level)) for level in range(rhm.L + 1))
    n_internal = nodes - int(rhm.d)
    return 8 * total * (4 + n_internal + nodes)


def enumerate_trees(
    rhm: Any, max_trees: int = MAX_TREES, *, memory_budget: int | str | None = None
) -> list[np.ndarray]:
    """Every tree of the grammar: ``levels[l]`` of shape ``(T, width_l)``, ``T = n_trees``.

    Parameters
    ----------
    rhm : RHM or any grammar
        The model.
    max_trees : int
        Refuse models with more trees than this.
    memory_budget : int or str, optional
        Overrides the memory budget for the tables.

    Returns
    -------
    list of numpy.ndarray
        int64 ``(T, width_l)`` per level ``l = 0..L``; tree ``t`` has class ``t // (T /
        n_classes)``.

    Raises
    ------
    InputError
        When ``T > max_trees``, ``max_trees`` is not a positive int, or the tables would exceed
        the memory budget.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> levels = enumerate_trees(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0))
    >>> [lv.shape for lv in levels]
    [(4, 2), (4, 1)]
    """
    total = _check_tree_bound(rhm, max_trees)
    check_memory(f"enumerating {total} trees", _enumeration_bytes(rhm, total), memory_budget)
    return _enumerate(rhm, total)


def _enumerate(rhm: Any, total: int) -> list[np.ndarray]:
    radix = np.array(_rules_per_node(rhm), dtype=np.int64)
    per_class = total // int(rhm.card(rhm.L))
    # Tree t: class t // per_class; rule choice of internal node k (top-down, left to right)
    # is digit k of t % per_class in the mixed radix of the nodes' rule counts (base m).
    place = np.cumprod(np.concatenate([[1], radix[:-1]])).astype(np.int64)
    codes = np.arange(total, dtype=np.int64)
    y = codes // per_class
    rest = codes % per_class
    choices = (rest[:, None] // place) % radix
    levels: list[np.ndarray] = [np.empty(0)] * (rhm.L + 1)
    levels[rhm.L] = y[:, None]
    offset = 0
    for level in range(rhm.L, 0, -1):
        width = rhm.width(level)
        pick = choices[:, offset : offset + width]
        offset += width
        children = rhm.rules[level][levels[level], pick]  # (T, width, s)
        levels[level - 1] = children.reshape(total, width * rhm.s)
    return levels


def brute_force_marginals(
    rhm: Any,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    max_trees: int = MAX_TREES,
    *,
    memory_budget: int | str | None = None,
) -> BruteForceResult:
    """Marginals of every node and the log evidence by enumerating all trees.

    Parameters
    ----------
    rhm : RHM or any grammar
        The model.
    leaf_evidence : array_like
        ``(n, s**L, v)``, or ``(s**L, v)`` for one set (:mod:`hiergrammar.evidence`);
        ``n = 0`` gives empty results.
    root_prior : array_like, optional
        ``(n_classes,)`` or ``(n, n_classes)``; uniform if None.
    max_trees : int
        Refuse models with more than this many trees (``n_classes * m**N``).
    memory_budget : int or str, optional
        Overrides the memory budget.

    Returns
    -------
    BruteForceResult
        ``marginals`` (list over levels of ``(n, width_l, card_l)``), ``log_evidence``
        ``(n,)`` (``-inf`` with NaN marginals where no tree fits) and ``n_trees``.

    Raises
    ------
    InputError
        On bad evidence or prior, too many trees, or an estimate above the memory budget.
    ZeroEvidenceError
        When a leaf's evidence is zero for every value.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> res = brute_force_marginals(rhm, np.ones((2, 3)))       # uniform evidence: log P = 0
    >>> float(res.log_evidence[0]), res.marginals[1].tolist()
    (0.0, [[[0.5, 0.5]]])
    """
    total = _check_tree_bound(rhm, max_trees)
    nodes = sum(int(rhm.width(l)) * int(rhm.card(l)) for l in range(rhm.L + 1))
    widths = sum(int(rhm.width(l)) for l in range(rhm.L + 1))
    # Per set: log evidence, marginals, and the (T, d) gathered log evidence with the
    # (T * width) weights of the widest level; fixed: the enumeration and its flat indices.
    per_set = 8 * (rhm.d * rhm.v + nodes)
    work = 8 * total * (rhm.d + 2 + 2 * max(int(rhm.width(l)) for l in range(rhm.L + 1)))
    base = _enumeration_bytes(rhm, total) + 8 * total * widths + work
    ev = check_leaf_evidence(
        rhm,
        leaf_evidence,
        bytes_per_set=per_set,
        base_bytes=base,
        what=f"brute force over {total} trees",
        memory_budget=memory_budget,
    )
    n = ev.shape[0]
    shared_prior = root_prior is None or np.ndim(root_prior) == 1
    prior = check_root_prior(rhm, root_prior, n)  # (n, card_L), normalised
    levels = _enumerate(rhm, total)
    n_choices = sum(m_count * np.log(m) for m, m_count in _rule_counts(rhm).items())

    with np.errstate(divide="ignore"):
        log_ev = np.log(ev)  # (n, d, v); zeros -> -inf
        log_prior = np.log(prior)  # (n, card_L)
    # What does not depend on the evidence set, computed once: each tree's log generative
    # probability (T,) and, per level, its flat (node, value) indices (T * width_l,) that
    # bincount accumulates the tree weights on.
    classes = levels[rhm.L][:, 0]
    log_p_tree = log_prior[0][classes] - n_choices if n else None
    flat = [
        ((np.arange(rhm.width(l)) * rhm.card(l))[None, :] + levels[l]).ravel()
        for l in range(rhm.L + 1)
    ]
    leaf_idx = np.arange(rhm.d)
    marginals = [np.zeros((n, rhm.width(l), rhm.card(l))) for l in range(rhm.L + 1)]
    log_evidence = np.empty(n)
    for k in range(n):
        if not shared_prior:
            log_p_tree = log_prior[k][classes] - n_choices
        # (T,) log weights of all trees for evidence set k
        logw = log_p_tree + log_ev[k][leaf_idx, levels[0]].sum(axis=1)
        log_z = logsumexp(logw) if np.isfinite(logw).any() else -np.inf
        log_evidence[k] = log_z
        if not np.isfinite(log_z):
            for mg in marginals:
                mg[k] = np.nan
            continue
        w = np.exp(logw - log_z)
        for level, mg in enumerate(marginals):
            width, card = mg.shape[1:]
            acc = np.bincount(flat[level], weights=np.repeat(w, width), minlength=width * card)
            mg[k] = acc.reshape(width, card)
    return BruteForceResult(marginals=marginals, log_evidence=log_evidence, n_trees=total)
