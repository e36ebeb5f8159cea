"""Exact posteriors of tiny grammars by enumerating every derivation: the independent ground truth.

A derivation is a root symbol ``y`` and one rule choice at each of the ``N = (s**L - 1) / (s -
1)`` internal nodes, so there are ``card_L * prod_l m_l**width_l`` of them (``n_classes *
m**N`` for the RHM). Its generative probability is the root prior times the probability of
every chosen rule,

    log P(derivation) = log prior(y) + sum_nodes log rule_probs[l][a, r],

(``prior(y) m**-N`` for the uniform RHM); given leaf evidence ``e`` (a likelihood vector per leaf)
its weight is ``w = P(derivation) * prod_i e_i(x_i)``. Derivations through a rule of probability
0 are dropped. The evidence probability is ``sum w`` and the marginal of node ``h`` is ``P(h = a |
e) = sum_{h = a} w / sum w``. In an ambiguous grammar several derivations (rules of several
parents, or a tuple listed twice) may write the same tree: their weights add up, which is exactly
the tree's probability (:meth:`~hiergrammar.grammar.Grammar.tree_log_prob`), so marginals and the
evidence probability are those of the grammar. Nothing here shares code with the
message-passing engines: no messages, no rule tensors, only the grammar's rules applied top-down.
Evidence follows the contract of :mod:`hiergrammar.evidence`; evidence that no tree can produce
gives ``log_evidence = -inf`` and NaN marginals (the ground truth reports it, it does not refuse
it).

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
from hiergrammar.grammar import Grammar, check_grammar
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
    of ``sum_derivations P(derivation) prod_i e_i(x_i)`` (``-inf`` where it is 0). ``n_trees``:
    how many derivations were enumerated (those through rules of probability 0 included).
    """

    marginals: list[np.ndarray]
    log_evidence: np.ndarray
    n_trees: int


def _rules_per_node(model: Grammar) -> list[int]:
    """``m`` of every internal node, top-down and left to right (the enumeration's order)."""
    return [
        int(model.rules[level].shape[1])
        for level in range(model.L, 0, -1)
        for _ in range(model.width(level))
    ]


def _rule_counts(model: Grammar) -> dict[int, int]:
    """``{m: number of internal nodes with m rules}``."""
    counts: dict[int, int] = {}
    for level in range(1, model.L + 1):
        m = int(model.rules[level].shape[1])
        counts[m] = counts.get(m, 0) + int(model.width(level))
    return counts


def n_trees(rhm: Grammar) -> int:
    """The number of distinct trees, ``n_classes * m**N`` (``N`` internal nodes), exactly.

    Parameters
    ----------
    rhm : Grammar
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


def log10_n_trees(rhm: Grammar) -> float:
    """``log10`` of :func:`n_trees`, computed without the exact count (cheap at any depth).

    Parameters
    ----------
    rhm : Grammar
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


def describe_tree_count(rhm: Grammar) -> str:
    """The tree count as text: the formula, and the number in full or as a power of ten.

    Never converts a huge int to text (Python refuses above 4300 digits by default).

    Parameters
    ----------
    rhm : Grammar
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


def _check_tree_bound(rhm: Grammar, max_trees: Any) -> int:
    """The exact tree count, or an InputError when it exceeds ``max_trees``."""
    bound = check_int("max_trees", max_trees, low=1)
    # Compare on log10 first: the exact count of a deep model is a huge integer.
    if log10_n_trees(rhm) > math.log10(bound) + 1 or n_trees(rhm) > bound:
        raise InputError(
            f"{describe_tree_count(rhm)} violates n_trees <= max_trees = {bound}; "
            "brute force is for tiny models only"
        )
    return n_trees(rhm)


def _enumeration_bytes(rhm: Grammar, total: int) -> int:
    """Bytes of the enumeration's tables: codes, rule choices and every level's symbols."""
    nodes = sum(int(rhm.width(level)) for level in range(rhm.L + 1))
    n_internal = nodes - int(rhm.d)
    return 8 * total * (4 + n_internal + nodes)


def enumerate_trees(
    rhm: Grammar,
    max_trees: int = MAX_TREES,
    *,
    memory_budget: int | str | None = None,
    with_log_prob: bool = False,
) -> list[np.ndarray] | tuple[list[np.ndarray], np.ndarray]:
    """Every derivation of the grammar: ``levels[l]`` of shape ``(T, width_l)``, ``T =
    n_trees``.

    Parameters
    ----------
    rhm : Grammar
        The model.
    max_trees : int
        Refuse models with more derivations than this.
    memory_budget : int or str, optional
        Overrides the memory budget for the tables.
    with_log_prob : bool
        Also return each derivation's ``log P`` ``(T,)``: the root prior plus the log
        probability of every chosen rule (``-inf`` through a rule of probability 0).

    Returns
    -------
    list of numpy.ndarray, or (list, numpy.ndarray)
        int64 ``(T, width_l)`` per level ``l = 0..L``; derivation ``t`` has class ``t // (T /
        n_classes)``. An ambiguous grammar can list one tree several times.

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
    >>> _, log_p = enumerate_trees(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0), with_log_prob=True)
    >>> np.exp(log_p).tolist()                     # prior 1/2 times rule 1/2
    [0.25, 0.25, 0.25, 0.25]
    """
    rhm = check_grammar(rhm, "rhm")
    total = _check_tree_bound(rhm, max_trees)
    check_memory(f"enumerating {total} trees", _enumeration_bytes(rhm, total), memory_budget)
    levels, log_rules = _enumerate(rhm, total)
    if not with_log_prob:
        return levels
    with np.errstate(divide="ignore"):
        log_prior = np.log(rhm.root_prior)
    return levels, log_prior[levels[rhm.L][:, 0]] + log_rules


def _enumerate(rhm: Grammar, total: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Every derivation's levels, and the sum of the log probabilities of its rules ``(T,)``."""
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
    log_rules = np.zeros(total)
    offset = 0
    for level in range(rhm.L, 0, -1):
        width = rhm.width(level)
        pick = choices[:, offset : offset + width]
        offset += width
        parents = levels[level]
        with np.errstate(divide="ignore"):
            log_rules += np.log(rhm.rule_probs[level][parents, pick]).sum(axis=1)
        children = rhm.rules[level][parents, pick]  # (T, width, s)
        levels[level - 1] = children.reshape(total, width * rhm.s)
    return levels, log_rules


def brute_force_marginals(
    rhm: Grammar,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    max_trees: int = MAX_TREES,
    *,
    memory_budget: int | str | None = None,
) -> BruteForceResult:
    """Marginals of every node and the log evidence by enumerating all trees.

    Parameters
    ----------
    rhm : Grammar
        The model.
    leaf_evidence : array_like
        ``(n, s**L, v)``, or ``(s**L, v)`` for one set (:mod:`hiergrammar.evidence`);
        ``n = 0`` gives empty results.
    root_prior : array_like, optional
        ``(n_classes,)`` or ``(n, n_classes)``; the grammar's ``root_prior`` if None.
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
    rhm = check_grammar(rhm, "rhm")
    total = _check_tree_bound(rhm, max_trees)
    nodes = sum(int(rhm.width(l)) * int(rhm.card(l)) for l in range(rhm.L + 1))
    widths = sum(int(rhm.width(l)) for l in range(rhm.L + 1))
    # Per set: log evidence, marginals, and the (T, d) gathered log evidence with the
    # (T * width) weights of the widest level; fixed: the enumeration and its flat indices.
    per_set = 8 * (rhm.d * rhm.cards[0] + nodes)
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
    levels, log_rules = _enumerate(rhm, total)
    # Derivations through a rule of probability 0 weigh nothing: drop them once.
    possible = np.isfinite(log_rules)
    if not possible.all():
        levels = [lv[possible] for lv in levels]
        log_rules = log_rules[possible]

    with np.errstate(divide="ignore"):
        log_ev = np.log(ev)  # (n, d, v); zeros -> -inf
        log_prior = np.log(prior)  # (n, card_L)
    # What does not depend on the evidence set, computed once: each derivation's log generative
    # probability (T,) and, per level, its flat (node, value) indices (T * width_l,) that
    # bincount accumulates the weights on.
    classes = levels[rhm.L][:, 0]
    log_p_tree = log_prior[0][classes] + log_rules if n else None
    flat = [
        ((np.arange(rhm.width(l)) * rhm.card(l))[None, :] + levels[l]).ravel()
        for l in range(rhm.L + 1)
    ]
    leaf_idx = np.arange(rhm.d)
    marginals = [np.zeros((n, rhm.width(l), rhm.card(l))) for l in range(rhm.L + 1)]
    log_evidence = np.empty(n)
    for k in range(n):
        if not shared_prior:
            log_p_tree = log_prior[k][classes] + log_rules
        # (T,) log weights of all derivations for evidence set k
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
