"""The evidence contract shared by every inference engine.

Every engine (:func:`~hiergrammar.bp.tree_bp`, :func:`~hiergrammar.bp.upward_pass`,
:func:`~hiergrammar.bruteforce.brute_force_marginals`, :func:`~hiergrammar.crosscheck.crosscheck`,
:func:`~hiergrammar.sampling.posterior_sample`, :func:`~hiergrammar.sampling.
posterior_sample_reference`, and the pgmpy / pyAgrum views of :mod:`hiergrammar.graphs`) checks
its evidence here, so the same bad input gives the same message everywhere.

Leaf evidence
-------------
A likelihood vector per leaf: ``leaf_evidence[k, i, x] = P(observation_i | h_i^(0) = x)`` for
evidence set ``k``. Accepted shapes:

* ``(n, d, v)``: ``n`` evidence sets (``n = 0`` is valid and gives empty results);
* ``(d, v)``: one evidence set (``n = 1``);

with ``d = model.d`` leaves (``s**L``) and ``v = model.cards[0]`` values (the leaf vocabulary: for
an RHM with per-level vocabularies ``model.v`` is a tuple, ``cards[0]`` its first entry). Engines
that take exactly one set (crosscheck, the pgmpy / pyAgrum views) accept ``(d, v)`` or ``(1, d, v)``
and refuse ``n != 1``. The values must be real (complex input is refused: casting would drop the
imaginary part), finite and non-negative; they need not be normalised, and any positive scale is
allowed (engines rescale each leaf before computing, and put the scale back into the log-evidence).
A leaf whose evidence is zero for every value makes the evidence impossible and raises
:class:`~hiergrammar.validation.ZeroEvidenceError` naming the evidence set(s). Evidence that is
positive at every leaf but that no tree of the grammar can produce raises ``ZeroEvidenceError`` from
the message-passing engines, and from crosscheck before any engine runs; brute force, the ground
truth, reports it as ``log_evidence = -inf`` with NaN marginals.

Root prior
----------
``root_prior`` is ``None`` (the grammar's own ``model.root_prior``, uniform unless the grammar
sets one), ``(card_L,)`` (shared by all sets) or ``(n, card_L)`` (one per set), with
``card_L = model.card(model.L)`` the number of classes. A prior given to an engine overrides
the grammar's for that call. Real, finite, non-negative, with a positive sum for every set; it
is normalised here.

Memory
------
Engines pass ``bytes_per_set``, their working memory per evidence set; the total is checked
against the memory budget (:func:`~hiergrammar.validation.check_memory`) after the shape is
known and before anything is converted or allocated.

The model
---------
Only the attributes ``model.d``, ``model.cards``, ``model.L``, ``model.card(level)`` and
``model.root_prior`` are read (every :class:`~hiergrammar.grammar.Grammar` has them).

Examples
--------
>>> from hiergrammar import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
>>> check_leaf_evidence(rhm, np.ones((4, 3))).shape      # one set -> (1, d, v)
(1, 4, 3)
>>> check_leaf_evidence(rhm, np.ones((5, 4, 2)))   # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
hiergrammar.validation.InputError: leaf_evidence must have shape (n, s**L, v) = (n, 4, 3), ...
>>> ev = np.ones((2, 4, 3))
>>> ev[1, 2] = 0.0
>>> check_leaf_evidence(rhm, ev)   # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
hiergrammar.validation.ZeroEvidenceError: the evidence of sample(s) [1] has zero probability ...
>>> check_root_prior(rhm, [1.0, 3.0], n=2).tolist()
[[0.25, 0.75], [0.25, 0.75]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hiergrammar.validation import (
    InputError,
    ZeroEvidenceError,
    check_memory,
    check_real_array,
)

__all__ = ["check_leaf_evidence", "check_root_prior", "leaf_card", "rescale_by_powers_of_two"]


def leaf_card(model: Any) -> int:
    """The leaf vocabulary ``cards[0]`` of a grammar (``model.v`` for objects without
    ``cards``).

    Parameters
    ----------
    model : Grammar
        The grammar.

    Returns
    -------
    int

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> leaf_card(RHM(v=[6, 4], n_classes=2, m=2, s=2, L=2, seed=0))   # rhm.v == (6, 4)
    6
    """
    cards = getattr(model, "cards", None)
    return int(cards[0]) if cards is not None else int(model.v)


def _shape_text(model: Any, single: bool, n: int | None = None) -> str:
    d, v = model.d, leaf_card(model)
    n_text = "n" if n is None else str(n)
    if single:
        return f"shape (s**L, v) = ({d}, {v}), or (1, s**L, v) = (1, {d}, {v}), for one set"
    return f"shape (n, s**L, v) = ({n_text}, {d}, {v}), or shape (s**L, v) = ({d}, {v}) for one set"


def check_leaf_evidence(
    model: Any,
    leaf_evidence: Any,
    *,
    name: str = "leaf_evidence",
    single: bool = False,
    bytes_per_set: int = 0,
    base_bytes: int = 0,
    what: str = "",
    memory_budget: int | str | None = None,
    values: bool = True,
) -> np.ndarray:
    """Validate leaf evidence against the contract above; return it as float64 ``(n, d, v)``.

    Parameters
    ----------
    model : Any
        The grammar (reads ``model.d`` and ``model.cards[0]``).
    leaf_evidence : array_like
        ``(n, d, v)``, or ``(d, v)`` for one set.
    name : str
        The argument's name in messages.
    single : bool
        Require exactly one evidence set (``(d, v)`` or ``(1, d, v)``).
    bytes_per_set : int
        The caller's working memory per evidence set, in bytes; ``base_bytes + n *
        bytes_per_set`` is checked against the memory budget before any conversion.
    base_bytes : int
        The caller's working memory that does not depend on ``n`` (e.g. tree tables).
    what : str
        What would be allocated, for the memory message (e.g. ``"tree_bp"``).
    memory_budget : int or str, optional
        Overrides the memory budget (see :func:`~hiergrammar.validation.memory_budget`).
    values : bool
        Check the values too (default). With False only the shape (and the memory estimate)
        is checked and the array is returned as given, ``(n, d, v)``, without a scan or copy.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, d, v)`` (a view of the input where no conversion is needed).

    Raises
    ------
    InputError
        On a wrong shape, complex, NaN, infinite or negative values, ``n != 1`` with
        ``single``, or an estimate above the memory budget.
    ZeroEvidenceError
        When a leaf's evidence is zero for every value; ``samples`` names the sets.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> check_leaf_evidence(rhm, np.ones((0, 2, 3))).shape
    (0, 2, 3)
    >>> check_leaf_evidence(rhm, np.ones((2, 2, 3)), single=True)   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: leaf_evidence must be one evidence set: ...
    """
    d, v = model.d, leaf_card(model)
    try:
        array = np.asarray(leaf_evidence)
    except (TypeError, ValueError) as err:  # ragged nested lists, unconvertible objects
        raise InputError(f"{name} must be an array of real numbers ({err})") from None
    given = array.shape
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (d, v):
        raise InputError(f"{name} must have {_shape_text(model, False)}; got {given}")
    n = array.shape[0]
    if single and n != 1:
        raise InputError(
            f"{name} must be one evidence set: {_shape_text(model, True)}; got {n} sets "
            f"(shape {given})"
        )
    if bytes_per_set or base_bytes:
        check_memory(
            f"{what or 'the computation'} on n={n} evidence sets of shape (d, v) = ({d}, {v})",
            int(base_bytes) + n * int(bytes_per_set),
            memory_budget,
        )
    if not values:
        return array
    ev = check_real_array(name, array)
    if ev.size:
        lowest = ev.min()
        if lowest < 0:
            raise InputError(
                f"{name} violates evidence >= 0: it must be non-negative (min {lowest:.3g})"
            )
        dead = ev.max(axis=-1) <= 0  # (n, d): leaves with zero evidence for every value
        if dead.any():
            samples = np.flatnonzero(dead.any(axis=1))
            first = int(samples[0])
            leaves = np.flatnonzero(dead[first])
            raise ZeroEvidenceError(
                samples,
                reason=(
                    f"{name} violates sum over values > 0 at every leaf: it is zero for every "
                    f"value at leaf/leaves {leaves[:10].tolist()} of sample {first}"
                ),
            )
    return ev


def check_root_prior(
    model: Any, root_prior: Any, n: int | None = None, *, name: str = "root_prior"
) -> np.ndarray:
    """Validate a root prior; return it normalised, float64.

    Parameters
    ----------
    model : Any
        The grammar (reads ``model.L`` and ``model.card(model.L)``).
    root_prior : array_like or None
        ``None`` (the grammar's ``root_prior``; uniform for a model without one), ``(card_L,)``
        or ``(n, card_L)``.
    n : int, optional
        The number of evidence sets. With ``n`` the result is ``(n, card_L)`` (a shared prior
        is repeated); without it only ``(card_L,)`` is accepted and returned.
    name : str
        The argument's name in messages.

    Returns
    -------
    numpy.ndarray
        ``(n, card_L)``, or ``(card_L,)`` when ``n`` is None; every row sums to 1.

    Raises
    ------
    InputError
        On a wrong shape, complex, NaN, infinite or negative values, or a zero sum.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> check_root_prior(rhm, None).tolist()
    [0.5, 0.5]
    >>> check_root_prior(rhm, [[1, 0], [0, 0]], n=2)   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: root_prior violates sum > 0: ... sample(s) [1])
    """
    card = model.card(model.L)
    if root_prior is None:
        own = getattr(model, "root_prior", None)
        prior = np.full(card, 1.0 / card) if own is None else np.array(own, dtype=np.float64)
        return prior if n is None else np.broadcast_to(prior, (n, card)).copy()
    try:
        array = np.asarray(root_prior)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be an array of real numbers ({err})") from None
    shared_ok = array.shape == (card,)
    batched_ok = n is not None and array.shape == (n, card)
    if not (shared_ok or batched_ok):
        expected = f"(card_L,) = ({card},)"
        if n is not None:
            expected += f" or (n, card_L) = ({n}, {card})"
        raise InputError(f"{name} must have shape {expected}; got {array.shape}")
    prior = check_real_array(name, array)
    if prior.size and prior.min() < 0:
        raise InputError(
            f"{name} violates root_prior >= 0: it must be non-negative (min {prior.min():.3g})"
        )
    total = prior.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        bad = np.flatnonzero(np.atleast_1d(total[..., 0] <= 0))
        raise InputError(
            f"{name} violates sum > 0: it must have a positive sum for every evidence set "
            f"(zero for sample(s) {bad[:10].tolist()})"
        )
    prior = prior / total
    if n is not None and prior.ndim == 1:
        prior = np.broadcast_to(prior, (n, card)).copy()
    return prior


def rescale_by_powers_of_two(array: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Scale each slice along ``axis`` by a power of two that brings its maximum into [0.5, 1).

    Each slice is multiplied by ``2**-e``, with ``e`` the exponent of its maximum
    (``max = f * 2**e``, ``0.5 <= f < 1``), so its largest entry lands in ``[0.5, 1)``. A power
    of two scales exactly (no rounding), so normalised results do not change, while the scaled
    values fit float32 whatever the input's range. All-zero slices are left as they are.

    Parameters
    ----------
    array : numpy.ndarray
        Non-negative floats.
    axis : int
        The axis along which each slice is scaled.

    Returns
    -------
    scaled : numpy.ndarray
        Same shape as ``array``.
    exponents : numpy.ndarray
        int ``array.shape`` without ``axis``: ``array = scaled * 2**exponents``.

    Examples
    --------
    >>> scaled, e = rescale_by_powers_of_two(np.array([[1e40, 3e39], [0.25, 0.0]]))
    >>> scaled.max(axis=-1).tolist(), e.tolist()
    ([0.9183549615799121, 0.5], [133, -1])
    """
    if array.size == 0:
        shape = list(array.shape)
        del shape[axis]
        return array, np.zeros(shape, dtype=np.int64)
    _, exponents = np.frexp(array.max(axis=axis))
    exponents = exponents.astype(np.int64)
    if not exponents.any():
        return array, exponents
    return np.ldexp(array, -np.expand_dims(exponents, axis)), exponents
