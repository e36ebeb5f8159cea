"""Grammar families of the literature, built as :class:`~hiergrammar.grammar.Grammar` objects
so that every engine applies to them.

* :func:`sparse_rhm`, the Sparse Random Hierarchy Model (Tomasini & Wyart 2024; public generator
  ``UmbertoTomasini/sparse_hierarchy_model``, ``dataset_creating/hierarchical_s0_bs_S.py``),
  and :func:`sparsify`, the same construction on any grammar.
* :func:`filtered_grammar`, the grammars of hierarchical filtering (Garnier-Brun, Mézard et al.
  2024; public generator ``emanuele-moscato/tree-language``,
  ``scripts/gen_filtered_hierarchical_data.py``).

Examples
--------
>>> g = sparse_rhm(v=4, n_classes=2, m=2, s=2, s0=1, L=2, seed=0)
>>> g.s, g.cards, g.d                    # patches of s0+1 = 2 slots: tuples of length 4
(4, (5, 5, 2), 16)
>>> f = filtered_grammar(q=3, L=3, sigma=1.0, k=1, seed=0)
>>> f.cards, f.is_unambiguous            # the factorised top level is ambiguous
((3, 3, 3, 3), False)
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from hiergrammar.grammar import Grammar
from hiergrammar.rhm import RHM
from hiergrammar.validation import (
    InputError,
    check_float,
    check_int,
    check_memory,
    check_real_array,
    check_seed,
    make_rng,
)

__all__ = ["filtered_grammar", "sparse_rhm", "sparsify"]


# -- the Sparse RHM --------------------------------------------------------------------------------
def sparsify(base: Grammar, s0: int) -> Grammar:
    """Make every informative symbol of ``base`` sit in a patch of ``s0 + 1`` slots.

    Each child ``k`` of a rule becomes a patch of ``s0 + 1`` slots: the child sits in one
    slot, drawn uniformly and independently per patch, and the other ``s0`` slots hold a new
    *uninformative* symbol (index ``cards[l]`` of every level ``l < L``), which expands only
    into itself. The branching becomes ``s * (s0 + 1)``; a rule ``(a -> t)`` of ``base`` with
    probability ``p`` becomes ``(s0 + 1)**s`` rules of probability ``p / (s0 + 1)**s``.

    Parameters
    ----------
    base : Grammar
        Rules ``(card_l, m_l, s)``.
    s0 : int, ``s0 >= 0``
        Uninformative slots per patch; ``s0 = 0`` returns ``base``'s arrays unchanged (no
        uninformative symbol, as in the public generator).

    Returns
    -------
    Grammar
        Rules ``(card_l + 1, m_l * (s0+1)**s, s * (s0+1))`` for ``l < L`` (the last row is the
        uninformative symbol, its tuple repeated with equal probabilities) and
        ``(card_L, m_L * (s0+1)**s, s * (s0+1))`` at the root; ``cards[l] + 1`` symbols at
        levels ``0..L-1``.

    Examples
    --------
    >>> base = Grammar({1: np.array([[[0, 1]]])})          # one symbol -> (0, 1)
    >>> g = sparsify(base, s0=1)
    >>> g.rules[1].tolist()                               # 2 is the uninformative symbol
    [[[0, 2, 1, 2], [0, 2, 2, 1], [2, 0, 1, 2], [2, 0, 2, 1]]]
    """
    if not isinstance(base, Grammar):
        raise InputError(f"base must be a hiergrammar Grammar, got {type(base).__name__}")
    s0 = check_int("s0", s0, 0)
    meta = {"family": "sparse", "s0": s0, "base": dict(base.metadata)}
    if base._save_params() is not None:
        meta["base"] = {"family": "RHM", **base._save_params()}
    if s0 == 0:
        return Grammar(
            dict(base.rules), dict(base.rule_probs), base.root_prior, v=base.v, metadata=meta
        )
    s, L, patch = base.s, base.L, s0 + 1
    S = s * patch
    # placements[p, k]: the slot of child k inside its patch, for every p in [0, patch**s).
    placements = np.array(list(itertools.product(range(patch), repeat=s)), dtype=np.int64)
    P = len(placements)
    size = sum(8 * (base.cards[l] + 1) * base.rules[l].shape[1] * P * (S + 1) for l in base.rules)
    check_memory(f"the rules of the sparse grammar (s0={s0})", size)
    rules, probs = {}, {}
    for level in range(1, L + 1):
        old, old_p = base.rules[level], base.rule_probs[level]
        card, m, _ = old.shape
        blank = base.cards[level - 1]  # the uninformative child symbol
        new = np.full((card, m, P, S), blank, dtype=np.int64)
        slots = np.arange(s) * patch + placements  # (P, s): where child k lands
        for k in range(s):
            new[:, :, np.arange(P), slots[:, k]] = old[:, :, k][:, :, None]
        new = new.reshape(card, m * P, S)
        new_p = np.repeat(old_p / P, P, axis=1)
        if level < L:  # the uninformative symbol of this level expands only into itself
            new = np.concatenate([new, np.full((1, m * P, S), blank, dtype=np.int64)])
            new_p = np.concatenate([new_p, np.full((1, m * P), 1.0 / (m * P))])
        rules[level], probs[level] = new, new_p
    return Grammar(rules, probs, base.root_prior, v=base.cards[0] + 1, metadata=meta)


def sparse_rhm(v: int, n_classes: int, m: int, s: int, s0: int, L: int, seed: int = 0) -> Grammar:
    """The Sparse Random Hierarchy Model of Tomasini & Wyart (2024).

    The rules are those of ``RHM(v, n_classes, m, s, L, seed)`` (every symbol owns ``m``
    distinct ``s``-tuples, no tuple shared), made sparse by :func:`sparsify`: each informative
    child sits at a uniformly random slot of a patch of ``s0 + 1`` slots, the others hold the
    uninformative symbol ``v``, which expands only into itself. A level's tuples have length
    ``s * (s0 + 1)`` over a vocabulary of ``v + 1``; the input has ``(s*(s0+1))**L`` leaves.

    This follows the public generator (``hierarchical_features`` and ``features_to_data`` in
    ``dataset_creating/hierarchical_s0_bs_S.py``): the uninformative symbol is ``num_features``
    (our ``v``); its rule row repeats the all-uninformative tuple; each node draws its rule
    uniformly among ``m`` and, per patch, the slot of its informative child uniformly among
    ``s0 + 1`` (``create_perms``). Parameters are named as in the paper (``v, n_c, m, s, s0,
    L``; ``n_c`` is our ``n_classes``).

    Parameters
    ----------
    v : int, ``v >= 2``
        Informative vocabulary.
    n_classes : int, ``n_classes >= 1``
    m : int
        Rules per symbol, ``1 <= m <= v**(s-1)`` and ``n_classes * m <= v**s``.
    s : int, ``s >= 2``
        Informative children per rule.
    s0 : int, ``s0 >= 0``
        Uninformative slots per patch.
    L : int, ``L >= 1``
    seed : int
        Seed of the rule draw.

    Returns
    -------
    Grammar
        Branching ``s*(s0+1)``, cards ``(v+1, ..., v+1, n_classes)`` (``v`` when ``s0 = 0``),
        ``m*(s0+1)**s`` equally likely rules per symbol; ``metadata`` records the parameters.

    Examples
    --------
    >>> g = sparse_rhm(v=3, n_classes=2, m=2, s=2, s0=1, L=1, seed=0)
    >>> g.rules[1].shape, g.d, g.is_unambiguous
    ((2, 8, 4), 4, True)
    >>> x = g.sample(4, seed=0).x
    >>> bool(((x == 3).sum(axis=1) == 2).all())   # two informative leaves, two blanks
    True
    """
    seed = check_seed("seed", seed, allow_generator=False)
    base = RHM(v, n_classes, m, s, L, seed=seed)
    grammar = sparsify(base, s0)
    grammar.metadata = {
        "family": "sparse_rhm",
        "v": base.v,
        "n_classes": base.n_classes,
        "m": base.m,
        "s": base.s,
        "s0": check_int("s0", s0, 0),
        "L": base.L,
        "seed": seed,
    }
    return grammar


# -- hierarchical filtering ------------------------------------------------------------------------
def _dense_to_rules(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair distributions ``T (card, q, q)`` -> rules ``(card, mm, 2)`` and probabilities
    ``(card, mm)``: each row keeps its pairs of positive probability (in code order), padded
    with its first pair at probability 0 up to the largest count ``mm``."""
    card, q, _ = T.shape
    flat = T.reshape(card, q * q)
    positive = flat > 0
    counts = positive.sum(axis=1)
    mm = int(counts.max())
    # Stable sort puts the positive codes first, in increasing order.
    order = np.argsort(~positive, axis=1, kind="stable")[:, :mm]
    real = np.arange(mm)[None, :] < counts[:, None]
    codes = np.where(real, order, order[:, :1])
    probs = np.where(real, np.take_along_axis(flat, codes, axis=1), 0.0)
    return np.stack([codes // q, codes % q], axis=-1), probs


def _path_marginals(M: np.ndarray, k: int) -> np.ndarray:
    """``P[p] (q, q)``: the law of depth-``k`` node ``p`` given the root, ``P[p][x0, x]``.

    Node ``p``'s path from the root is the binary expansion of ``p`` on ``k`` bits, most
    significant first, 0 for a left child (marginal ``M_L[a, b] = sum_c M[a, b, c]``), 1 for a
    right one (``M_R[a, c] = sum_b M[a, b, c]``): ``P[p] = M_{bit_1} @ ... @ M_{bit_k}``.
    """
    q = M.shape[0]
    left, right = M.sum(axis=2), M.sum(axis=1)
    paths = np.eye(q)[None]
    for _ in range(k):
        nxt = np.empty((2 * len(paths), q, q))
        nxt[0::2] = paths @ left
        nxt[1::2] = paths @ right
        paths = nxt
    return paths


def filtered_grammar(
    q: int,
    L: int,
    sigma: float,
    k: int = 0,
    seed: int = 0,
    *,
    M: Any = None,
) -> Grammar:
    """A grammar of hierarchical filtering (Garnier-Brun, Mézard et al. 2024).

    Binary trees (``s = 2``) over ``q`` symbols at every level, the root uniform. The rules of
    each parent are a part of a random partition of the ``q**2`` ordered pairs into ``q`` sets
    of ``q``, weighted by a softmax of Gaussian logits of width ``sigma``:
    ``M[a, b, c] = exp(sigma z_{abc}) / sum`` over the pairs ``(b, c)`` of ``a``. With ``k``
    factorised levels, the ``2**k`` nodes at depth ``k`` are drawn independently given the root,
    each from the composition of the left/right marginals of ``M`` along its path; below depth
    ``k`` the tree follows ``M``.

    This follows ``get_M``, ``get_P_xlevel_root`` and ``get_leaves`` of
    ``scripts/gen_filtered_hierarchical_data.py`` (``emanuele-moscato/tree-language``): pairs
    shuffled then dealt ``q`` per parent; ``M[a, b, c]`` the probability of the ordered children
    ``(b, c)`` (``b`` left); the depth-``k`` law of node ``p`` is the product of ``M_L = M.sum(2)``
    or ``M_R = M.sum(1)`` along the bits of ``p`` read from the root. Parameters are named as in
    the paper (``q``, depth ``ℓ`` -- our ``L``, ``sigma``, ``k``).

    On our tree the factorised top is represented exactly: a node at depth ``0 < j < k`` carries
    the root's symbol together with its own index, ``x0 * 2**j + i`` (``q * 2**j`` symbols, one
    rule ``u -> (2u, 2u+1)``), and the nodes at depth ``k - 1`` emit their two children
    independently from the composed marginals of their paths. That top production is
    ambiguous (many parents own every pair), so every engine applies and stays exact, and the
    root's marginal is the class posterior.

    Parameters
    ----------
    q : int, ``q >= 2``
        Vocabulary at every level.
    L : int, ``L >= 1``
        Depth; ``2**L`` leaves.
    sigma : float, ``sigma >= 0``
        Width of the Gaussian logits (0: uniform rules).
    k : int, ``0 <= k <= L``
        Number of factorised top levels (0: the plain grammar).
    seed : int
        Seed of the draw of ``M``.
    M : float array ``(q, q, q)``, optional
        A transition tensor to use instead of drawing one (e.g. the ``M`` a file of the
        public generator stores); rows ``M[a]`` must sum to 1. ``sigma`` and ``seed`` are then
        only recorded.

    Returns
    -------
    Grammar
        ``cards[L-j] = q * 2**j`` for ``0 < j < k``, else ``q``; ``metadata`` records the
        parameters.

    Raises
    ------
    InputError
        on bad parameters or an ``M`` that is not a ``(q, q, q)`` tensor of distributions.

    Examples
    --------
    >>> g = filtered_grammar(q=2, L=3, sigma=0.5, k=2, seed=1)
    >>> g.cards, [g.n_rules(l) for l in (1, 2, 3)]
    ((2, 2, 4, 2), [2, 4, 1])
    >>> g.rules[3].tolist()                   # the root's symbol and the node's index
    [[[0, 1]], [[2, 3]]]
    """
    q = check_int("q", q, 2)
    L = check_int("L", L, 1)
    sigma = check_float("sigma", sigma, 0.0)
    k = check_int("k", k, 0, L)
    seed = check_seed("seed", seed, allow_generator=False)
    given = M is not None
    if not given:
        rng = make_rng(seed)
        pairs = rng.permutation(q * q).reshape(q, q)  # parent a owns the codes pairs[a]
        logits = sigma * rng.standard_normal((q, q))
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        M = np.zeros((q, q * q))
        np.put_along_axis(M, pairs, weights, axis=1)
        M = M.reshape(q, q, q)
    else:
        M = check_real_array("M", M, shape=(q, q, q), nonnegative=True)
        sums = M.reshape(q, -1).sum(axis=1)
        if np.any(np.abs(sums - 1.0) > 1e-6):
            raise InputError(f"M[a] must sum to 1 over the pairs (b, c); sums {sums.round(6)}")
        M = M / sums[:, None, None]
    check_memory(f"the factorised top of a filtered grammar (q={q}, k={k})", 8 * q**3 * 2**k * 3)
    bottom_rules, bottom_probs = _dense_to_rules(M)
    rules: dict[int, np.ndarray] = {}
    probs: dict[int, np.ndarray] = {}
    for level in range(1, L + 1):
        depth = L - level  # depth of the parents
        if depth >= k:
            rules[level], probs[level] = bottom_rules, bottom_probs
        elif depth == k - 1:
            paths = _path_marginals(M, k)  # (2**k, q, q)
            n_nodes = 2**depth
            # Parent u = x0 * 2**depth + i emits (b, c) ~ P[2i][x0, b] * P[2i+1][x0, c].
            left = paths[0::2].transpose(1, 0, 2)  # (q, n_nodes, q)
            right = paths[1::2].transpose(1, 0, 2)
            T = left[..., :, None] * right[..., None, :]  # (q, n_nodes, q, q)
            rules[level], probs[level] = _dense_to_rules(T.reshape(q * n_nodes, q, q))
        else:
            card = q * 2**depth
            rules[level] = np.stack([2 * np.arange(card), 2 * np.arange(card) + 1], axis=1)[
                :, None, :
            ]
            probs[level] = np.ones((card, 1))
    metadata = {
        "family": "filtered_grammar",
        "q": q,
        "L": L,
        "sigma": sigma,
        "k": k,
        "seed": seed,
        "M": "given" if given else "drawn",
    }
    return Grammar(rules, probs, None, v=q, metadata=metadata)
