"""Exact posteriors of tiny RHMs by enumerating every tree: the independent ground truth.

A tree is a class ``y`` and one rule choice at each of the ``N = (s**L - 1) / (s - 1)``
internal nodes, so there are ``n_classes * m**N`` trees. The generative probability of a tree
is ``prior(y) * m**-N``; given leaf evidence ``e`` (a likelihood vector per leaf) its weight is

    w(tree) = prior(y) * m**-N * prod_i e_i(x_i)

The evidence probability is ``sum_tree w(tree)`` and the marginal of node ``h`` is
``P(h = a | e) = sum_{tree: h = a} w(tree) / sum_tree w(tree)``. Nothing here shares code with
the message-passing engines: no messages, no rule tensors, only the grammar's rules applied
top-down.

Example
-------
>>> from hiergrammar.rhm import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
>>> res = brute_force_marginals(rhm, rhm.sample(4, seed=1).onehot())
>>> res.n_trees, [mg.shape for mg in res.marginals]   # (n, width_l, card_l) per level
(16, [(4, 4, 3), (4, 2, 3), (4, 1, 2)])
>>> bool((res.marginals[2].max(axis=-1) == 1).all())   # noiseless input: class is certain
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from hiergrammar.graphs import check_leaf_evidence, check_root_prior
from hiergrammar.rhm import RHM

#: Default bound on the number of trees enumerated.
MAX_TREES = 200_000


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


def n_trees(rhm: RHM) -> int:
    """``n_classes * m**N``, the number of distinct trees (``N`` internal nodes)."""
    return rhm.n_classes * rhm.m**rhm.n_internal


def enumerate_trees(rhm: RHM, max_trees: int = MAX_TREES) -> list[np.ndarray]:
    """Every tree of the grammar: ``levels[l]`` of shape ``(T, width_l)``, ``T = n_trees``.

    Raises ValueError when ``T > max_trees``.
    """
    total = n_trees(rhm)
    if total > max_trees:
        raise ValueError(
            f"n_classes*m**N = {total} trees violates n_trees <= max_trees = "
            f"{max_trees}; brute force is for tiny models only"
        )
    n_internal = rhm.n_internal
    per_class = rhm.m**n_internal
    # Tree t: class t // per_class; rule choice of internal node k (top-down, left to right)
    # is digit k of t % per_class in base m.
    codes = np.arange(total, dtype=np.int64)
    y = codes // per_class
    rest = codes % per_class
    choices = (rest[:, None] // rhm.m ** np.arange(n_internal, dtype=np.int64)) % rhm.m
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
    rhm: RHM,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    max_trees: int = MAX_TREES,
) -> BruteForceResult:
    """Marginals of every node and the log evidence by enumerating all trees.

    ``leaf_evidence``: non-negative ``(n, s**L, v)`` (or ``(s**L, v)`` for one set).
    ``root_prior``: ``(n_classes,)``, default uniform. Raises ValueError if the model has more
    than ``max_trees`` trees (``n_classes * m**N``).
    """
    ev = check_leaf_evidence(rhm, leaf_evidence, batched=True)
    prior = check_root_prior(rhm, root_prior)
    levels = enumerate_trees(rhm, max_trees)
    total = levels[0].shape[0]
    n = ev.shape[0]

    with np.errstate(divide="ignore"):
        log_ev = np.log(ev)  # (n, d, v); zeros -> -inf
        log_prior = np.log(prior)
    # What does not depend on the evidence set, computed once: each tree's log generative
    # probability (T,) and, per level, its flat (node, value) indices (T * width_l,) that
    # bincount accumulates the tree weights on.
    log_p_tree = log_prior[levels[rhm.L][:, 0]] - rhm.n_internal * np.log(rhm.m)
    flat = [
        ((np.arange(rhm.width(l)) * rhm.card(l))[None, :] + levels[l]).ravel()
        for l in range(rhm.L + 1)
    ]
    leaf_idx = np.arange(rhm.d)
    marginals = [np.zeros((n, rhm.width(l), rhm.card(l))) for l in range(rhm.L + 1)]
    log_evidence = np.empty(n)
    for k in range(n):
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
