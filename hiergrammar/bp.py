"""Exact, batched sum-product belief propagation on a grammar's tree (docs/model.md §4).

The factor graph of a :class:`~hiergrammar.grammar.Grammar` is a tree whose factors join a
parent with its ``s`` children: ``psi(a; b_1..b_s) = sum_r rule_probs[a, r] [rules[a, r] =
(b_1..b_s)]``. Summing over a factor therefore only visits the ``m`` rules of each parent value,
never the ``card**s`` tuples: the upward message into a parent is a gather of the children's
messages at the rule entries, a product over the ``s`` positions and a sum over the ``m`` rules
weighted by their probabilities (one batched matrix product); the downward message into a
child scatters the same weighted rule entries back onto the child's values, written as one
sparse matrix product whose entries are the rule probabilities. Several rules may share a tuple
(an ambiguous grammar): the tree is fixed, so BP stays exact. Levels may have different
cardinalities (``grammar.cards``) and different numbers of rules.

Every message is normalised after each step (raw products underflow after a few levels, and in
deep trees such as ``s=2, L=12`` after one), and the log normalisers are summed to give the exact
log-evidence ``log P(evidence)`` under the weighted grammar.

Evidence follows the contract of :mod:`hiergrammar.evidence`: ``(n, d, v)`` or ``(d, v)`` (one
set), real, finite, non-negative, any scale, with ``v = grammar.cards[0]``. Each leaf's evidence
is rescaled by a power of two before it is cast to the message dtype (the scale goes back into
the log-evidence), so float32 messages work for evidence of any magnitude.

Backends
--------
:func:`tree_bp`, :func:`upward_pass` (and :func:`hiergrammar.sampling.posterior_sample`) take
``backend=None | "numpy" | "numba" | "torch"`` and ``device``:

* ``"numpy"``: the code of this module, the reference every other backend is tested against;
* ``"numba"``: the fused CPU kernel of :mod:`hiergrammar.kernels.numba_bp` (several times
  faster; compiled on its first call per message dtype after installation, about 15-30 s,
  then loaded from numba's disk cache in under a second). Its threads follow numba's setting:
  ``numba.set_num_threads(k)`` or the environment variable ``NUMBA_NUM_THREADS`` (all cores by
  default);
* ``"torch"``: :mod:`hiergrammar.kernels.torch_bp` on ``device`` (``"cpu"``, ``"cuda"``, ...),
  returning torch tensors on that device (torch's own thread setting on the CPU,
  ``torch.set_num_threads``);
* ``None`` (default): ``"torch"`` for a non-CPU ``device``, else the fastest backend available
  on the CPU: ``"numba"``, or ``"numpy"`` where numba cannot be imported or cannot compile the
  kernel (a ``RuntimeWarning`` says so once). The environment variable ``HIERGRAMMAR_BACKEND``
  (``numpy``, ``numba`` or ``torch``) names the CPU default instead.

Every backend gives the same results to rounding (1e-12 in float64, 1e-5 in float32) and the
same error messages for bad input: the messages of :mod:`hiergrammar.evidence` and of this
module (a kernel's refusal is re-checked here with the reference's checks).

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
>>> zipf = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0, rule_law="zipf", zipf_a=1.0)
>>> ev = eps_evidence(data.x, eps=0.1, v=8)
>>> a = tree_bp(zipf, ev, backend="numpy").log_evidence
>>> b = tree_bp(zipf, ev, backend="numba").log_evidence
>>> bool(np.allclose(a, b, rtol=0, atol=1e-10))
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import csr_array

from hiergrammar.evidence import (
    check_leaf_evidence,
    check_root_prior,
    leaf_card,
    rescale_by_powers_of_two,
)
from hiergrammar.grammar import Grammar, check_grammar
from hiergrammar.validation import (
    InputError,
    ZeroEvidenceError,
    check_choice,
    check_int,
    check_real_array,
)

__all__ = [
    "BPResult",
    "UpwardResult",
    "ZeroEvidenceError",
    "bp_bytes_per_set",
    "flops_per_sample",
    "resolve_backend",
    "scatter_matrices",
    "tree_bp",
    "upward_pass",
]


@dataclass(frozen=True)
class BPResult:
    """Messages and marginals of :func:`tree_bp`, as lists indexed by level ``l = 0..L``.

    Each entry has shape ``(n, width_l, card_l)`` and sums to 1 over the last axis (numpy
    arrays; torch tensors on the device with ``backend="torch"``).

    ``up[l]``: message a node of level ``l`` sends to the factor above it (its subtree's
    evidence, including any node evidence at ``l``); ``up[0]`` is the normalised leaf evidence.
    ``down[l]``: message the factor above sends into the node; ``down[L]`` is the root prior.
    ``marginals[l]``: ``P(h_i^(l) | evidence) ∝ up[l] * down[l]``.
    ``log_evidence``: shape ``(n,)``, ``log sum_trees P(tree) * prod(evidence)`` with the
    evidence taken as given (unnormalised) and ``P(tree)`` the grammar's probability of the
    tree: the root prior times, at every internal node, the probability of the rule it used
    (``1/m`` per node for the uniform RHM; summed over the rules that give the same children
    in an ambiguous grammar). With one-hot evidence it is ``log P(x)``; it is also the log
    partition function of :func:`hiergrammar.graphs.to_factor_graph` with the evidence.
    """

    up: list[Any]
    down: list[Any]
    marginals: list[Any]
    log_evidence: Any


# -- backends ------------------------------------------------------------------------------------
#: Why the default backend fell back from numba to numpy in this process (empty: it did not).
_NUMBA_FAILURE: list[str] = []


def resolve_backend(backend: str | None, device: Any = None) -> str:
    """The backend that runs for ``backend`` and ``device`` (see the module docstring).

    Parameters
    ----------
    backend : {None, "numpy", "numba", "torch"}
        None picks ``"torch"`` for a non-CPU ``device``, else the fastest one available on the
        CPU (``"numba"``, else ``"numpy"``).
    device : None, str or torch.device
        Where the results live: None or ``"cpu"`` for numpy arrays; any torch device with
        ``"torch"``.

    Returns
    -------
    str

    Raises
    ------
    InputError
        For an unknown backend, a backend that is not available here (numba that does not
        import or compile, torch that is not installed), or a device the backend cannot use.

    Examples
    --------
    >>> resolve_backend("numpy")
    'numpy'
    >>> resolve_backend(None) in ("numba", "numpy")
    True
    >>> resolve_backend("numpy", device="cuda")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: device='cuda' needs backend='torch' ...
    """
    from hiergrammar import kernels

    cpu = device is None or str(device).split(":")[0] == "cpu"
    if backend is None:
        name = kernels.default_backend(device)
        if name == "numba" and _NUMBA_FAILURE:
            name = "numpy"
    else:
        name = check_choice("backend", backend, kernels.BACKENDS)
        if name != "torch" and not cpu:
            raise InputError(
                f"device={device!r} needs backend='torch' (backend={name!r} runs on the CPU "
                "and returns numpy arrays)"
            )
    if name != "numpy" and not kernels.available(name):
        what = {"numba": "numba does not import or cannot compile here", "torch": "needs torch"}
        raise InputError(
            f"backend={name!r} is not available: {what[name]} "
            f"(pip install {'numba' if name == 'numba' else 'torch'}; backend='numpy' always runs)"
        )
    return name


def _run(
    name: str,
    backend: str | None,
    device: Any,
    reference: Callable[[], Any],
    kernel: Callable[[Callable, Any], Any],
    canonical: Callable[[InputError], None],
) -> Any:
    """Run computation ``name`` on the chosen backend: ``reference()`` for numpy, else
    ``kernel(entry, device)`` (the device only for torch). A kernel's :class:`InputError` goes
    through ``canonical`` first, which raises the reference's error for the same input (so messages
    do not depend on the backend); a default numba backend that fails to compile falls back to
    numpy, once per process, with a ``RuntimeWarning``."""
    from hiergrammar import kernels

    chosen = resolve_backend(backend, device)
    if chosen == "numpy":
        return reference()
    try:
        return kernel(kernels.entry(chosen, name), device if chosen == "torch" else None)
    except InputError as err:
        canonical(err)
        raise
    except Exception as err:
        canonical(InputError(str(err)))  # input a kernel chokes on: the reference's message
        if backend is not None or chosen != "numba" or not type(err).__module__.startswith("numba"):
            raise
        _NUMBA_FAILURE.append(f"{type(err).__name__}: {err}")
        warnings.warn(
            f"the numba kernel failed to compile ({type(err).__name__}); hiergrammar's BP "
            "falls back to backend='numpy' in this process",
            RuntimeWarning,
            stacklevel=3,
        )
        return reference()


def _normalise(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise value-first arrays ``(card, w, n)`` over axis 0; return (normalised, sums).

    Zero sums stay zero (the caller reports them)."""
    total = raw.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    return raw / safe, total


def scatter_matrices(
    rules: np.ndarray, v: int, dtype: type = np.float64, weights: np.ndarray | None = None
) -> list[csr_array]:
    """Sparse matrices ``S_i``, shape ``(v, K*m)``, ``S_i[b, k*m + j] = w[k, j] [rules[k, j, i]
    == b]`` with ``w`` the rule weights (1 when ``weights`` is None).

    ``S_i @ W``, with ``W`` of shape ``(K*m, ...)`` holding one number per rule, adds each rule's
    number times its weight onto the value its ``i``-th child takes: the sum over a factor in
    the downward message.

    Parameters
    ----------
    rules : numpy.ndarray
        ``(K, m, s)`` child tuples of a level (``grammar.rules[level]``).
    v : int
        Cardinality of the children's level.
    dtype : type
        Float type of the entries.
    weights : numpy.ndarray, optional
        ``(K, m)`` rule weights (``grammar.rule_probs[level]``).

    Returns
    -------
    list of scipy.sparse.csr_array
        ``s`` matrices of shape ``(v, K*m)``.

    Examples
    --------
    >>> S = scatter_matrices(np.array([[[0, 1]], [[1, 1]]]), v=2)
    >>> S[1].toarray().tolist()      # both rules put their second child on value 1
    [[0.0, 0.0], [1.0, 1.0]]
    >>> S = scatter_matrices(np.array([[[0, 1], [1, 1]]]), v=2, weights=np.array([[0.3, 0.7]]))
    >>> S[0].toarray().tolist()
    [[0.3, 0.0], [0.0, 0.7]]
    """
    K, m, s = rules.shape
    columns = np.arange(K * m)
    values = (
        np.ones(K * m, dtype=dtype)
        if weights is None
        else np.asarray(weights, dtype=dtype).reshape(K * m)
    )
    return [
        csr_array((values, (rules[:, :, i].ravel(), columns)), shape=(v, K * m)) for i in range(s)
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


def _check_dtype(dtype: Any) -> type:
    try:
        kind = None if dtype is None else np.dtype(dtype).type  # np.dtype(None) is float64
    except TypeError:
        kind = None
    if kind not in (np.float32, np.float64):
        raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return kind


def bp_bytes_per_set(
    grammar: Grammar, dtype: Any = np.float64, downward: bool = True, node_levels: Any = ()
) -> int:
    """Working memory of the numpy :func:`tree_bp` (or, with ``downward=False``,
    :func:`upward_pass`) per evidence set, in bytes: the size guard's estimate.

    It counts the float64 copies of the evidence made by validation and rescaling, the
    value-first input, every level's messages (up; down and marginals with ``downward``), the
    children's messages gathered at the rule entries, and the largest per-level temporaries.
    (The numba and torch backends need less and check their own estimates.)

    Parameters
    ----------
    grammar : Grammar
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
    d, v, s = int(grammar.d), leaf_card(grammar), int(grammar.s)
    total = d * v * (8 + 8 + b)  # validated float64, rescaled float64, value-first copy
    nodes = sum(int(grammar.width(l)) * int(grammar.card(l)) for l in range(grammar.L + 1))
    total += nodes * b * (3 if downward else 1)  # up (+ down, marginals)
    largest = 0
    for level in range(1, grammar.L + 1):
        K, m, _ = (int(x) for x in grammar.rules[level].shape)
        w = int(grammar.width(level))
        entries = K * m * w
        total += s * entries * b  # gathered children messages (kept for the downward pass)
        step = 2 * entries * b  # product and its weighted sum
        if downward:
            step += (s + 1) * entries * b + 2 * int(grammar.card(level - 1)) * w * s * b
        largest = max(largest, step)
    for level in node_levels:
        total += int(grammar.width(level)) * int(grammar.card(level)) * (8 + 8 + b)
    return total + largest


def _check_inputs(
    grammar: Grammar,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    downward: bool,
    memory_budget: int | str | None,
    what: str,
    extra_bytes_per_set: int = 0,
    *,
    memory: bool = True,
    values: bool = True,
) -> tuple[type, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """The reference's checks, in their order: the dtype, ``node_evidence``'s type and levels,
    the memory estimate (unless ``memory=False``), the leaf evidence, the root prior (None: the
    grammar's), the node evidence arrays. Returns ``(dtype, evidence (n, d, v), prior (n,
    card_L), {level: (n, width_l, card_l)})``, all float64 and checked. With ``values=False``
    only the shapes before the memory estimate are checked (and the rest is not returned)."""
    dtype = _check_dtype(dtype)
    if node_evidence is not None and not isinstance(node_evidence, Mapping):
        raise InputError(
            "node_evidence must be a dict {level: (n, width_l, card_l) array}, "
            f"got {type(node_evidence).__name__}"
        )
    node_evidence = {} if node_evidence is None else node_evidence
    levels = [check_int("node_evidence level", level, 0, grammar.L) for level in node_evidence]
    per_set = 0
    if memory:
        per_set = bp_bytes_per_set(grammar, dtype, downward=downward, node_levels=levels)
        per_set += extra_bytes_per_set
    ev = check_leaf_evidence(
        grammar,
        leaf_evidence,
        bytes_per_set=per_set,
        what=what,
        memory_budget=memory_budget,
        values=values,
    )
    if not values:
        return dtype, ev, np.empty(0), {}
    n = ev.shape[0]
    prior = check_root_prior(grammar, root_prior, n)  # (n, card_L), rows sum to 1
    unary: dict[int, np.ndarray] = {}
    for level, (key, array) in zip(levels, node_evidence.items(), strict=True):
        name = f"node_evidence[{key!r}]"
        shape = (grammar.width(level), grammar.card(level))
        checked = check_real_array(name, array, nonnegative=True)
        if checked.ndim == 2:
            checked = checked[None]
        if checked.shape != (n, *shape):
            raise InputError(
                f"{name} must have shape (n, width_l, card_l) = ({n}, {shape[0]}, {shape[1]}), "
                f"or {shape} for one set; got {np.shape(array)}"
            )
        unary[level] = checked
    return dtype, ev, prior, unary


def _value_first(
    ev: np.ndarray, prior: np.ndarray, unary: dict[int, np.ndarray], dtype: type
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Checked inputs -> value-first arrays: leaf evidence ``(v, d, n)`` (times any level-0
    node evidence), the prior ``(card_L, 1, n)``, the other node evidence ``{level: (card,
    width, n)}``, and the log of the scales taken out of them, ``(n,)``.

    Internally every array is "value-first", (card, width, n): the sample axis is last and
    contiguous, so gathers at rule entries copy whole rows, the weighted sum over a parent's
    m rules is one batched matrix product, and the downward scatter is one sparse-times-dense
    product.
    """
    unary = dict(unary)
    if 0 in unary:
        ev = ev * unary.pop(0)
    # Powers of two scale exactly: float64 results do not move, and float32 messages can hold
    # evidence of any magnitude. The exponents go back into the log-evidence.
    ev, exponents = rescale_by_powers_of_two(ev)
    log_scale = exponents.sum(axis=1)
    for level in unary:
        unary[level], node_exponents = rescale_by_powers_of_two(unary[level])
        log_scale = log_scale + node_exponents.sum(axis=1)

    def transposed(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.transpose(2, 1, 0), dtype=dtype)

    leaves = transposed(ev)
    unary = {level: transposed(array) for level, array in unary.items()}
    return leaves, transposed(prior[:, None, :]), unary, log_scale * math.log(2.0)


def _upward(
    grammar: Grammar,
    leaves: np.ndarray,
    prior: np.ndarray,
    unary: dict[int, np.ndarray],
    keep_factors: bool = True,
) -> tuple[list[np.ndarray], list[list[np.ndarray]], np.ndarray]:
    """Upward pass on value-first arrays: the normalised messages ``up[l]`` ``(card, w, n)``,
    the children's messages at the rule entries ``factors[l][i]`` ``(K*m, w, n)`` (reused by
    the downward pass; empty lists unless ``keep_factors``), and the log-evidence ``(n,)`` of
    the evidence as given to it."""
    L, s = grammar.L, grammar.s
    n = leaves.shape[-1]
    log_z = np.zeros(n)
    up: list[np.ndarray] = []
    factors: list[list[np.ndarray]] = [[]]
    raw = leaves
    for level in range(L + 1):
        if level > 0:
            rules = grammar.rules[level]
            K, m, _ = rules.shape
            w = grammar.width(level)
            child_up = up[level - 1].reshape(grammar.card(level - 1), w, s, n)
            gathered = [child_up[:, :, i, :][rules[:, :, i].ravel()] for i in range(s)]
            factors.append(gathered if keep_factors else [])
            product = gathered[0] * gathered[1]
            for g in gathered[2:]:
                product *= g
            # The sum over each parent's rules weighted by their probabilities: one batched
            # (1, m) @ (m, w*n) product per parent value, as fast as the plain sum.
            weights = grammar.rule_probs[level].astype(leaves.dtype, copy=False)[:, None, :]
            raw = np.matmul(weights, product.reshape(K, m, w * n)).reshape(K, w, n)
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


def _reference_error(
    grammar: Grammar,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    what: str,
    err: InputError,
) -> None:
    """Raise the numpy reference's error for inputs a kernel refused with ``err``, so that the
    message does not depend on the backend; return when the reference accepts them (then the
    kernel's own error stands, e.g. its memory estimate)."""
    if "above the memory budget" in str(err):
        # The kernel's own (smaller) estimate stands; the reference checks what comes before
        # its estimate (the dtype, node evidence keys, the evidence's shape), never the values
        # of an array too large to scan.
        _check_inputs(
            grammar,
            leaf_evidence,
            root_prior,
            node_evidence,
            dtype,
            False,
            None,
            what,
            memory=False,
            values=False,
        )
        return
    _, ev, prior, unary = _check_inputs(
        grammar, leaf_evidence, root_prior, node_evidence, dtype, False, None, what, memory=False
    )
    samples = np.asarray(getattr(err, "samples", []), dtype=np.int64)
    if not isinstance(err, ZeroEvidenceError) or samples.size == 0:
        return
    # The kernel found no tree for these samples: the reference says where (its level).
    try:
        _upward(
            grammar, *_value_first(ev[samples], prior[samples], _rows(unary, samples), dtype)[:3]
        )
    except ZeroEvidenceError as ref:
        raise ZeroEvidenceError(samples[np.asarray(ref.samples)], ref.reason) from None


def _rows(unary: dict[int, np.ndarray], samples: np.ndarray) -> dict[int, np.ndarray]:
    return {level: array[samples] for level, array in unary.items()}


def _canonical(
    grammar: Grammar,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    what: str,
) -> Callable[[InputError], None]:
    def canonical(err: InputError) -> None:
        _reference_error(grammar, leaf_evidence, root_prior, node_evidence, dtype, what, err)

    return canonical


@dataclass(frozen=True)
class UpwardResult:
    """What :func:`upward_pass` computes: ``up[l]`` (as in :class:`BPResult`), the root's
    marginal ``(n, 1, card_L)``, and ``log_evidence`` ``(n,)``."""

    up: list[Any]
    root_marginal: Any
    log_evidence: Any


def upward_pass(
    grammar: Grammar,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    node_evidence: dict[int, np.ndarray] | None = None,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
    backend: str | None = None,
    device: Any = None,
) -> UpwardResult:
    """The upward half of :func:`tree_bp`: enough for the root's marginal, the log-evidence and
    posterior sampling, at about half the cost.

    Parameters
    ----------
    grammar, leaf_evidence, root_prior, node_evidence, dtype, memory_budget, backend, device
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
    grammar = check_grammar(grammar)
    _check_dtype(dtype)  # None is float64 to numpy, refused here whichever backend runs
    return _run(
        "upward_pass",
        backend,
        device,
        lambda: _upward_result(
            grammar, leaf_evidence, root_prior, node_evidence, dtype, memory_budget, "upward_pass"
        ),
        lambda fn, device: fn(
            grammar.rules,
            grammar.rule_probs,
            grammar.cards,
            leaf_evidence,
            grammar.root_prior if root_prior is None else root_prior,
            node_evidence,
            dtype,
            memory_budget=memory_budget,
            device=device,
        ),
        _canonical(grammar, leaf_evidence, root_prior, node_evidence, dtype, "upward_pass"),
    )


def _upward_result(
    grammar: Grammar,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    memory_budget: int | str | None,
    what: str,
    extra_bytes_per_set: int = 0,
) -> UpwardResult:
    """The numpy :func:`upward_pass`, for callers that allocate more per set afterwards
    (posterior sampling): ``extra_bytes_per_set`` joins the memory estimate."""
    dtype, ev, prior, unary = _check_inputs(
        grammar,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        False,
        memory_budget,
        what,
        extra_bytes_per_set,
    )
    leaves, prior, unary, log_scale = _value_first(ev, prior, unary, dtype)
    up, _, log_z = _upward(grammar, leaves, prior, unary, keep_factors=False)
    root_marginal = _normalise(up[grammar.L] * prior)[0]  # up[L] already holds node evidence
    return UpwardResult(
        up=[_public(a) for a in up],
        root_marginal=_public(root_marginal),
        log_evidence=log_z + log_scale,
    )


def tree_bp(
    grammar: Grammar,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    node_evidence: dict[int, np.ndarray] | None = None,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
    backend: str | None = None,
    device: Any = None,
) -> BPResult:
    """Exact marginals of every node of the grammar's tree, for ``n`` evidence sets at once.

    Parameters
    ----------
    grammar : Grammar
        Any :class:`~hiergrammar.grammar.Grammar`: an :class:`~hiergrammar.rhm.RHM` (uniform,
        Zipf, per-level, shared tuples), :func:`~hiergrammar.families.sparse_rhm`,
        :func:`~hiergrammar.families.filtered_grammar`, or ``Grammar(rules, rule_probs,
        root_prior)``.
    leaf_evidence : array_like
        ``(n, s**L, v)``, or ``(s**L, v)`` for one set, with ``v = grammar.cards[0]``:
        non-negative likelihoods ``P(obs_i | h_i^(0) = x)`` (any scale; see
        :mod:`hiergrammar.evidence`). ``n = 0`` gives empty results.
    root_prior : array_like, optional
        ``(card_L,)`` or ``(n, card_L)``; the grammar's ``root_prior`` if None.
    node_evidence : dict, optional
        ``{level: (n, width_l, card_l)}`` extra unary factors on any level (a one-hot row
        clamps a node; level 0 multiplies the leaf evidence).
    dtype : type
        Float type of the messages. ``np.float32`` is about twice as fast and accurate to
        ~1e-6, enough for experiments; keep the default ``np.float64`` for cross-checks.
    memory_budget : int or str, optional
        Overrides the memory budget (:func:`hiergrammar.validation.memory_budget`); the numpy
        estimate is :func:`bp_bytes_per_set` times ``n``.
    backend : {None, "numpy", "numba", "torch"}
        Who computes (see the module docstring); None: the fastest available for ``device``.
    device : None, str or torch.device
        With ``backend="torch"`` (or None), the torch device of the results.

    Returns
    -------
    BPResult
        ``up``, ``down``, ``marginals`` (lists over levels of ``(n, width_l, card_l)`` arrays)
        and ``log_evidence`` ``(n,)``.

    Raises
    ------
    InputError
        On a model that is not a Grammar, badly shaped, complex, NaN, infinite or negative
        evidence or prior, a bad dtype, backend or device, or an estimate above the memory
        budget.
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
    >>> float(np.exp(tree_bp(rhm, ev, backend="numpy").log_evidence[0]))  # 1/(2 * 2**3)
    0.0625
    """
    grammar = check_grammar(grammar)
    _check_dtype(dtype)  # None is float64 to numpy, refused here whichever backend runs
    return _run(
        "tree_bp",
        backend,
        device,
        lambda: _tree_bp_numpy(
            grammar, leaf_evidence, root_prior, node_evidence, dtype, memory_budget
        ),
        lambda fn, device: fn(
            grammar.rules,
            grammar.rule_probs,
            grammar.cards,
            leaf_evidence,
            grammar.root_prior if root_prior is None else root_prior,
            node_evidence,
            dtype,
            memory_budget=memory_budget,
            device=device,
        ),
        _canonical(grammar, leaf_evidence, root_prior, node_evidence, dtype, "tree_bp"),
    )


def _tree_bp_numpy(
    grammar: Grammar,
    leaf_evidence: Any,
    root_prior: Any,
    node_evidence: Mapping[int, Any] | None,
    dtype: Any,
    memory_budget: int | str | None,
) -> BPResult:
    """The reference: :func:`tree_bp` in numpy."""
    dtype, ev, prior, unary = _check_inputs(
        grammar, leaf_evidence, root_prior, node_evidence, dtype, True, memory_budget, "tree_bp"
    )
    leaves, prior, unary, log_scale = _value_first(ev, prior, unary, dtype)
    s = grammar.s
    up, factors, log_z = _upward(grammar, leaves, prior, unary)
    n = leaves.shape[-1]

    # -- downward pass: root to leaves -----------------------------------------------------
    down: list[np.ndarray] = [prior] * (grammar.L + 1)
    for level in range(grammar.L, 0, -1):
        rules = grammar.rules[level]
        K, m, _ = rules.shape
        w = grammar.width(level)
        child_card = grammar.card(level - 1)
        # What the parent sends into its factor: everything but the factor's own message.
        parent_out = down[level] * unary[level] if level in unary else down[level]
        others = _product_of_others(factors[level])
        children = np.empty((child_card, w, s, n), dtype=dtype)
        # The rule probabilities sit in the scatter matrices: no extra pass over the entries.
        scatters = scatter_matrices(rules, child_card, dtype, grammar.rule_probs[level])
        for i, scatter in enumerate(scatters):
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


def flops_per_sample(grammar: Grammar) -> int:
    """Multiply-adds of one :func:`tree_bp` call per sample (upward + downward passes).

    Upward, per parent node and rule entry (``K*m`` of them): ``s - 1`` multiplies for the
    product over the children and one multiply-add for the weighted sum over rules. Downward,
    per child position and rule entry: ``s - 1`` multiplies (parent weight times the other
    children) and one multiply-add for the weighted scatter. This is what the rules strictly
    need; normalisations, the marginals and, for ``s > 2``, the prefix/suffix products are not
    counted.

    Parameters
    ----------
    grammar : Grammar
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
    for level in range(1, grammar.L + 1):
        K, m, s = grammar.rules[level].shape
        w = grammar.width(level)
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
