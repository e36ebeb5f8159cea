"""Exact, batched sum-product belief propagation on the RHM tree (docs/model.md §4).

The RHM's factor graph is a tree whose factors join a parent with its ``s`` children and hold
1 exactly on the parent's ``m`` rules. Summing over a factor therefore only visits the ``m`` rules
of each parent value, never the ``v**s`` tuples: the upward message into a parent is a gather of
the children's messages at the rule entries, a product over the ``s`` positions and a sum over
the ``m`` rules; the downward message into a child scatters the same rule weights back onto the
child's values, which we write as one matrix product with a 0/1 scatter matrix.

Every message is normalised after each step (raw products underflow after a few levels, and in
deep trees such as ``s=2, L=12`` after one), and the log normalisers are summed to give the exact
log-evidence.

Evidence follows the contract of :mod:`hiergrammar.evidence`: ``(n, d, v)`` or ``(d, v)`` (one
set), real, finite, non-negative, any scale. Each leaf's evidence is rescaled by a power of two
before it is cast to the message dtype (the scale goes back into the log-evidence), so float32
messages work for evidence of any magnitude.

Only ``model.d``, ``model.v``, ``model.L``, ``model.s``, ``model.card(level)``,
``model.width(level)`` and ``model.rules[level]`` (``(card_l, m_l, s)`` child tuples) are read.

Examples
--------
>>> from hiergrammar import RHM
>>> from hiergrammar.noise import eps_evidence
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> data = rhm.sample(10, seed=1)
>>> result = tree_bp(rhm, eps_evidence(data.x, eps=0.1, v=8))
>>> result.marginals[3].shape      # (n, width_L = 1, n_classes)
(10, 1, 4)
>>> bool((result.marginals[3][:, 0].argmax(-1) == data.y).mean() > 0.5)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import csr_array

from hiergrammar.evidence import check_leaf_evidence, check_root_prior, rescale_by_powers_of_two
from hiergrammar.validation import InputError, ZeroEvidenceError, check_int, check_real_array

__all__ = [
    "BPResult",
    "UpwardResult",
    "ZeroEvidenceError",
    "bp_bytes_per_set",
    "flops_per_sample",
    "scatter_matrices",
    "tree_bp",
    "upward_pass",
]

#: Any grammar with the attributes the engines read (``RHM`` today).
Model = Any


@dataclass(frozen=True)
class BPResult:
    """Messages and marginals of :func:`tree_bp`, as lists indexed by level ``l = 0..L``.

    Each entry has shape ``(n, width_l, card_l)`` and sums to 1 over the last axis.

    ``up[l]``: message a node of level ``l`` sends to the factor above it (its subtree's
    evidence, including any node evidence at ``l``); ``up[0]`` is the normalised leaf evidence.
    ``down[l]``: message the factor above sends into the node; ``down[L]`` is the root prior.
    ``marginals[l]``: ``P(h_i^(l) | evidence) ∝ up[l] * down[l]``.
    ``log_evidence``: shape ``(n,)``, ``log sum_trees P(tree) * prod(evidence)`` with the
    evidence taken as given (unnormalised) and ``P(tree) = prior(class) * m**-(internal
    nodes)``, the generative model's probability (each symbol picks one of its ``m`` rules
    uniformly). With one-hot evidence it is ``log P(x)``. The 0/1 factor graph's partition
    function is larger by the constant ``m**(internal nodes)``.
    """

    up: list[np.ndarray]
    down: list[np.ndarray]
    marginals: list[np.ndarray]
    log_evidence: np.ndarray


def _normalise(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise value-first arrays ``(card, w, n)`` over axis 0; return (normalised, sums).

    Zero sums stay zero (the caller reports them)."""
    total = raw.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    return raw / safe, total


def scatter_matrices(rules: np.ndarray, v: int, dtype: type = np.float64) -> list[csr_array]:
    """Sparse 0/1 matrices ``S_i``, shape ``(v, K*m)``, ``S_i[b, k*m + j] = [rules[k, j, i] == b]``.

    ``S_i @ W``, with ``W`` of shape ``(K*m, ...)`` holding one weight per rule, adds each rule's
    weight onto the value its ``i``-th child takes: the sum over a factor in the downward message.

    Parameters
    ----------
    rules : numpy.ndarray
        ``(K, m, s)`` child tuples of a level (``model.rules[level]``).
    v : int
        Cardinality of the children's level.
    dtype : type
        Float type of the entries.

    Returns
    -------
    list of scipy.sparse.csr_array
        ``s`` matrices of shape ``(v, K*m)``.

    Examples
    --------
    >>> S = scatter_matrices(np.array([[[0, 1]], [[1, 1]]]), v=2)
    >>> S[1].toarray().tolist()      # both rules put their second child on value 1
    [[0.0, 0.0], [1.0, 1.0]]
    """
    K, m, s = rules.shape
    columns = np.arange(K * m)
    ones = np.ones(K * m, dtype=dtype)
    return [
        csr_array((ones, (rules[:, :, i].ravel(), columns)), shape=(v, K * m)) for i in range(s)
    ]


def _product_of_others(factors: list[np.ndarray]) -> list[np.ndarray]:
    """For each ``i``, the product of all factors but ``i`` (prefix/suffix products; no
    division, so zeros are safe)."""
    s = len(factors)
    if s == 2:
        return [factors[1], factors[0]]
    prefix = [np.ones_like(factors[0])]
    for f in factors[:-1]:
        prefix.append(prefix[-1] * f)
    out = [None] * s
    suffix = np.ones_like(factors[0])
    for i in range(s - 1, -1, -1):
        out[i] = prefix[i] * suffix
        suffix = suffix * factors[i]
    return out


def _log_rule_choices(model: Model) -> float:
    """``log`` of the number of rule-choice combinations, ``sum_l width_l * log(m_l)``: the
    0/1 rule factors count each tree once, while the grammar picks each rule with prob 1/m."""
    counts: dict[int, int] = {}
    for level in range(1, model.L + 1):
        m = int(model.rules[level].shape[1])
        counts[m] = counts.get(m, 0) + model.width(level)
    return float(sum(count * np.log(m) for m, count in counts.items()))


def _check_dtype(dtype: Any) -> type:
    try:
        kind = None if dtype is None else np.dtype(dtype).type  # np.dtype(None) is float64
    except TypeError:
        kind = None
    if kind not in (np.float32, np.float64):
        raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return kind


def bp_bytes_per_set(
    model: Model, dtype: Any = np.float64, downward: bool = True, node_levels: Any = ()
) -> int:
    """Working memory of :func:`tree_bp` (or, with ``downward=False``, :func:`upward_pass`) per
    evidence set, in bytes: the size guard's estimate.

    It counts the float64 copies of the evidence made by validation and rescaling, the
    value-first input, every level's messages (up; down and marginals with ``downward``), the
    children's messages gathered at the rule entries, and the largest per-level temporaries.

    Parameters
    ----------
    model : Model
        The grammar.
    dtype : type
        Message dtype, ``np.float32`` or ``np.float64``.
    downward : bool
        Count the downward pass and the marginals.
    node_levels : iterable of int
        Levels that carry node evidence.

    Returns
    -------
    int
        Bytes per evidence set (a Python int: never overflows).

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> bp_bytes_per_set(RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)) > 8 * 8 * 8
    True
    """
    b = np.dtype(_check_dtype(dtype)).itemsize
    d, v, s = int(model.d), int(model.v), int(model.s)
    total = d * v * (8 + 8 + b)  # validated float64, rescaled float64, value-first copy
    nodes = sum(int(model.width(l)) * int(model.card(l)) for l in range(model.L + 1))
    total += nodes * b * (3 if downward else 1)  # up (+ down, marginals)
    largest = 0
    for level in range(1, model.L + 1):
        K, m, _ = (int(x) for x in model.rules[level].shape)
        w = int(model.width(level))
        entries = K * m * w
        total += s * entries * b  # gathered children messages (kept for the downward pass)
        step = 2 * entries * b  # product and its reshaped sum
        if downward:
            step += (s + 1) * entries * b + 2 * int(model.card(level - 1)) * w * s * b
        largest = max(largest, step)
    for level in node_levels:
        total += int(model.width(level)) * int(model.card(level)) * (8 + 8 + b)
    return total + largest


def _value_first_inputs(
    model: Model,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    downward: bool,
    memory_budget: int | str | None,
    what: str,
    extra_bytes_per_set: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Validate the inputs and return them value-first: leaf evidence ``(v, d, n)`` (times any
    level-0 node evidence), the normalised prior ``(card_L, 1, n)``, the other node evidence
    ``{level: (card, width, n)}``, and the log of the scales taken out of them, ``(n,)``.

    Internally every array is "value-first", (card, width, n): the sample axis is last and
    contiguous, so gathers at rule entries copy whole rows, the sum over a parent's m rules is a
    contiguous reduction, and the downward scatter is one sparse-times-dense product.
    """
    dtype = _check_dtype(dtype)
    if node_evidence is not None and not isinstance(node_evidence, Mapping):
        raise InputError(
            "node_evidence must be a dict {level: (n, width_l, card_l) array}, "
            f"got {type(node_evidence).__name__}"
        )
    node_evidence = {} if node_evidence is None else node_evidence
    levels = [check_int("node_evidence level", level, 0, model.L) for level in node_evidence]
    per_set = bp_bytes_per_set(model, dtype, downward=downward, node_levels=levels)
    per_set += extra_bytes_per_set
    ev = check_leaf_evidence(
        model, leaf_evidence, bytes_per_set=per_set, what=what, memory_budget=memory_budget
    )
    n = ev.shape[0]
    prior = check_root_prior(model, root_prior, n)  # (n, card_L), rows sum to 1
    unary: dict[int, np.ndarray] = {}
    for level, (key, array) in zip(levels, node_evidence.items(), strict=True):
        name = f"node_evidence[{key!r}]"
        shape = (model.width(level), model.card(level))
        checked = check_real_array(name, array, nonnegative=True)
        if checked.ndim == 2:
            checked = checked[None]
        if checked.shape != (n, *shape):
            raise InputError(
                f"{name} must have shape (n, width_l, card_l) = ({n}, {shape[0]}, {shape[1]}), "
                f"or {shape} for one set; got {np.shape(array)}"
            )
        unary[level] = checked
    if 0 in unary:
        ev = ev * unary.pop(0)
    # Powers of two scale exactly: float64 results do not move, and float32 messages can hold
    # evidence of any magnitude. The exponents go back into the log-evidence.
    ev, exponents = rescale_by_powers_of_two(ev)
    log_scale = exponents.sum(axis=1)
    for level in unary:
        unary[level], node_exponents = rescale_by_powers_of_two(unary[level])
        log_scale = log_scale + node_exponents.sum(axis=1)

    def value_first(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.transpose(2, 1, 0), dtype=dtype)

    leaves = value_first(ev)
    unary = {level: value_first(array) for level, array in unary.items()}
    return leaves, value_first(prior[:, None, :]), unary, log_scale * math.log(2.0)


def _upward(
    model: Model,
    leaves: np.ndarray,
    prior: np.ndarray,
    unary: dict[int, np.ndarray],
    keep_factors: bool = True,
) -> tuple[list[np.ndarray], list[list[np.ndarray]], np.ndarray]:
    """Upward pass on value-first arrays: the normalised messages ``up[l]`` ``(card, w, n)``,
    the children's messages at the rule entries ``factors[l][i]`` ``(K*m, w, n)`` (reused by
    the downward pass; empty lists unless ``keep_factors``), and the log-evidence ``(n,)`` of
    the evidence as given to it."""
    L, s = model.L, model.s
    n = leaves.shape[-1]
    log_z = np.zeros(n)
    up: list[np.ndarray] = []
    factors: list[list[np.ndarray]] = [[]]
    raw = leaves
    for level in range(L + 1):
        if level > 0:
            rules = model.rules[level]
            K, m, _ = rules.shape
            w = model.width(level)
            child_up = up[level - 1].reshape(model.card(level - 1), w, s, n)
            gathered = [child_up[:, :, i, :][rules[:, :, i].ravel()] for i in range(s)]
            factors.append(gathered if keep_factors else [])
            product = gathered[0] * gathered[1]
            for g in gathered[2:]:
                product *= g
            raw = product.reshape(K, m, w, n).sum(axis=1)  # (K, w, n)
            if level in unary:
                raw *= unary[level]
        message, total = _normalise(raw)
        dead = (total <= 0).any(axis=0)
        if dead.any():
            raise ZeroEvidenceError(np.flatnonzero(dead), _zero_reason(level, raw.dtype))
        log_z += np.log(total.astype(np.float64)).sum(axis=0)
        up.append(message)
    root_total = (up[L] * prior).sum(axis=0)[0]
    if np.any(root_total <= 0):
        raise ZeroEvidenceError(np.flatnonzero(root_total <= 0), _zero_reason(L, prior.dtype))
    log_z += np.log(root_total.astype(np.float64))
    # The 0/1 rule factors count each tree once; the grammar picks each rule with prob 1/m.
    log_z -= _log_rule_choices(model)
    return up, factors, log_z


def _zero_reason(level: int, dtype: np.dtype) -> str:
    """Why the upward pass found a zero: usually no tree fits; in rare cases, underflow."""
    return (
        f"the upward pass sums to 0 at level {level}: no tree is consistent with it (or every "
        f"consistent tree is below {np.finfo(dtype).tiny:.0e} relative to the best partial "
        f"fit at some node, beyond {np.dtype(dtype).name} messages)"
    )


def _public(a: np.ndarray) -> np.ndarray:
    """Value-first ``(card, w, n)`` -> the public ``(n, w, card)`` layout (a view)."""
    return a.transpose(2, 1, 0)


@dataclass(frozen=True)
class UpwardResult:
    """What :func:`upward_pass` computes: ``up[l]`` (as in :class:`BPResult`), the root's
    marginal ``(n, 1, card_L)``, and ``log_evidence`` ``(n,)``."""

    up: list[np.ndarray]
    root_marginal: np.ndarray
    log_evidence: np.ndarray


def upward_pass(
    rhm: Model,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    node_evidence: dict[int, np.ndarray] | None = None,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
) -> UpwardResult:
    """The upward half of :func:`tree_bp`: enough for the root's marginal, the log-evidence and
    posterior sampling, at about half the cost.

    Parameters
    ----------
    rhm, leaf_evidence, root_prior, node_evidence, dtype, memory_budget
        As for :func:`tree_bp`.

    Returns
    -------
    UpwardResult
        ``up`` (list over levels of ``(n, width_l, card_l)``), ``root_marginal``
        ``(n, 1, card_L)`` and ``log_evidence`` ``(n,)``.

    Raises
    ------
    InputError, ZeroEvidenceError
        As for :func:`tree_bp`.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> res = upward_pass(rhm, rhm.sample(3, seed=1).onehot())
    >>> res.root_marginal.shape, res.log_evidence.shape
    ((3, 1, 2), (3,))
    """
    return _upward_result(
        rhm, leaf_evidence, root_prior, node_evidence, dtype, memory_budget, "upward_pass"
    )


def _upward_result(
    model: Model,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    memory_budget: int | str | None,
    what: str,
    extra_bytes_per_set: int = 0,
) -> UpwardResult:
    """:func:`upward_pass` for callers that allocate more per set afterwards (posterior
    sampling): ``extra_bytes_per_set`` joins the memory estimate."""
    leaves, prior, unary, log_scale = _value_first_inputs(
        model,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        False,
        memory_budget,
        what,
        extra_bytes_per_set,
    )
    up, _, log_z = _upward(model, leaves, prior, unary, keep_factors=False)
    root_marginal = _normalise(up[model.L] * prior)[0]  # up[L] already holds node evidence
    return UpwardResult(
        up=[_public(a) for a in up],
        root_marginal=_public(root_marginal),
        log_evidence=log_z + log_scale,
    )


def tree_bp(
    rhm: Model,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    node_evidence: dict[int, np.ndarray] | None = None,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
) -> BPResult:
    """Exact marginals of every node of the RHM tree, for ``n`` evidence sets at once.

    Parameters
    ----------
    rhm : RHM or any grammar with the attributes listed in the module docstring
        The model.
    leaf_evidence : array_like
        ``(n, s**L, v)``, or ``(s**L, v)`` for one set: non-negative likelihoods
        ``P(obs_i | h_i^(0) = x)`` (any scale; see :mod:`hiergrammar.evidence`). ``n = 0``
        gives empty results.
    root_prior : array_like, optional
        ``(card_L,)`` or ``(n, card_L)``; uniform if None.
    node_evidence : dict, optional
        ``{level: (n, width_l, card_l)}`` extra unary factors on any level (a one-hot row
        clamps a node; level 0 multiplies the leaf evidence).
    dtype : type
        Float type of the messages. ``np.float32`` is about twice as fast and accurate to
        ~1e-6, enough for experiments; keep the default ``np.float64`` for cross-checks.
    memory_budget : int or str, optional
        Overrides the memory budget (:func:`hiergrammar.validation.memory_budget`); the
        estimate is :func:`bp_bytes_per_set` times ``n``.

    Returns
    -------
    BPResult
        ``up``, ``down``, ``marginals`` (lists over levels of ``(n, width_l, card_l)`` arrays)
        and ``log_evidence`` ``(n,)``.

    Raises
    ------
    InputError
        On badly shaped, complex, NaN, infinite or negative evidence or prior, a bad dtype, or
        an estimate above the memory budget.
    ZeroEvidenceError
        (an InputError) naming the samples whose evidence no tree can produce.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> ev = rhm.sample(1, seed=1).onehot()[0]          # (s**L, v): one evidence set
    >>> res = tree_bp(rhm, ev * 1e-60, dtype=np.float32)  # any scale, even in float32
    >>> res.marginals[0].shape, bool(np.isfinite(res.log_evidence).all())
    ((1, 4, 4), True)
    >>> tree_bp(rhm, np.zeros((0, 4, 4))).log_evidence.shape
    (0,)
    """
    leaves, prior, unary, log_scale = _value_first_inputs(
        rhm, leaf_evidence, root_prior, node_evidence, dtype, True, memory_budget, "tree_bp"
    )
    dtype = leaves.dtype
    s = rhm.s
    up, factors, log_z = _upward(rhm, leaves, prior, unary)
    n = leaves.shape[-1]

    # -- downward pass: root to leaves -----------------------------------------------------
    down: list[np.ndarray] = [prior] * (rhm.L + 1)
    for level in range(rhm.L, 0, -1):
        rules = rhm.rules[level]
        K, m, _ = rules.shape
        w = rhm.width(level)
        child_card = rhm.card(level - 1)
        # What the parent sends into its factor: everything but the factor's own message.
        parent_out = down[level] * unary[level] if level in unary else down[level]
        others = _product_of_others(factors[level])
        children = np.empty((child_card, w, s, n), dtype=dtype)
        for i, scatter in enumerate(scatter_matrices(rules, child_card, dtype)):
            weight = others[i].reshape(K, m, w, n) * parent_out[:, None]
            children[:, :, i, :] = (scatter @ weight.reshape(K * m, w * n)).reshape(
                child_card, w, n
            )
        down[level - 1], _ = _normalise(children.reshape(child_card, w * s, n))

    marginals = [_normalise(u * d)[0] for u, d in zip(up, down, strict=True)]
    return BPResult(
        up=[_public(a) for a in up],
        down=[_public(a) for a in down],
        marginals=[_public(a) for a in marginals],
        log_evidence=log_z + log_scale,
    )


def flops_per_sample(rhm: Model) -> int:
    """Multiply-adds of one :func:`tree_bp` call per sample (upward + downward passes).

    Upward, per parent node and rule entry (``K*m`` of them): ``s - 1`` multiplies for the
    product over the children and one add for the sum over rules. Downward, per child position
    and rule entry: ``s - 1`` multiplies (parent weight times the other children) and one add
    for the sparse scatter. This is what the rules strictly need; normalisations, the marginals
    and, for ``s > 2``, the prefix/suffix products are not counted.

    Parameters
    ----------
    rhm : Model
        The grammar.

    Returns
    -------
    int
        Multiply-adds per evidence set.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> flops_per_sample(RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0))  # 4 rules: 8 up, 16 down
    24
    """
    total = 0
    for level in range(1, rhm.L + 1):
        K, m, s = rhm.rules[level].shape
        w = rhm.width(level)
        up = w * K * m * s
        down = w * s * K * m * s
        total += up + down
    return int(total)


def factor_messages(
    rules: np.ndarray, child_up: np.ndarray, parent_down: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One sum-product step through ``n`` independent factors, each with its own rule table.

    The step :func:`tree_bp` takes at every factor, for factors that do not share their rules
    (as in population dynamics, where every factor draws fresh rules). The upward message into
    parent value ``a`` sums, over ``a``'s ``m`` rules, the product of the children's messages
    at the rule's entries; the downward message into child ``i`` with value ``b`` sums, over
    the rules whose ``i``-th entry is ``b``, the parent's weight times the other children's
    messages.

    Parameters
    ----------
    rules : ``(n, K, m, s)`` integers in ``[0, v)``: factor ``k``'s parent value ``a`` owns
        the ``m`` child tuples ``rules[k, a]``.
    child_up : ``(n, s, v)`` upward messages of the ``s`` children of each factor.
    parent_down : ``(n, K)`` message the parent sends into the factor (its downward message
        times any node evidence), or None for the upward step only.

    Returns
    -------
    up : ``(n, K)`` upward messages into the parents, normalised (a zero row stays zero: no
        rule is consistent with the children's messages).
    down : ``(n, s, v)`` downward messages into the children, normalised, or None when
        ``parent_down`` is None.

    Raises
    ------
    InputError
        on mismatched shapes or rule entries outside ``[0, v)``.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=4, n_classes=3, m=2, s=2, L=1, seed=0)
    >>> leaves = np.random.default_rng(1).dirichlet(np.ones(4), size=(5, 2))   # (n, s, v)
    >>> up, down = factor_messages(np.broadcast_to(rhm.rules[1], (5, 3, 2, 2)), leaves,
    ...                            np.full((5, 3), 1 / 3))
    >>> exact = tree_bp(rhm, leaves)
    >>> bool(np.allclose(up, exact.up[1][:, 0]) and np.allclose(down, exact.down[0]))
    True
    """
    from hiergrammar.validation import InputError

    rules = np.asarray(rules)
    child_up = np.asarray(child_up, dtype=np.float64)
    if rules.ndim != 4 or not np.issubdtype(rules.dtype, np.integer):
        raise InputError(f"rules must be an integer array (n, K, m, s), got {rules.shape}")
    n, K, m, s = rules.shape
    if child_up.ndim != 3 or child_up.shape[:2] != (n, s):
        raise InputError(
            f"child_up must have shape (n, s, v) = ({n}, {s}, v), got {child_up.shape}"
        )
    v = child_up.shape[2]
    if rules.size and (rules.min() < 0 or rules.max() >= v):
        raise InputError(f"rules entries must lie in [0, v) = [0, {v})")
    flat = rules.reshape(n, K * m, s)
    gathered = [
        np.take_along_axis(child_up[:, i, :], flat[:, :, i].astype(np.intp), axis=1)
        for i in range(s)
    ]  # each (n, K*m): child i's message at every rule's i-th entry
    product = gathered[0] * gathered[1]
    for g in gathered[2:]:
        product *= g
    up = _normalise(product.reshape(n, K, m).sum(axis=2).T)[0].T
    if parent_down is None:
        return up, None
    parent_down = np.asarray(parent_down, dtype=np.float64)
    if parent_down.shape != (n, K):
        raise InputError(
            f"parent_down must have shape (n, K) = ({n}, {K}), got {parent_down.shape}"
        )
    offsets = (v * np.arange(n))[:, None]
    down = np.empty((n, s, v))
    for i, others in enumerate(_product_of_others(gathered)):
        # Scatter each rule's weight onto the value of its i-th entry (a sparse sum per factor).
        index = (flat[:, :, i] + offsets).ravel()
        weight = (others.reshape(n, K, m) * parent_down[:, :, None]).ravel()
        down[:, i, :] = np.bincount(index, weight, minlength=n * v).reshape(n, v)
    down = _normalise(down.transpose(2, 1, 0))[0].transpose(2, 1, 0)
    return up, down
