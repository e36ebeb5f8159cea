"""Probabilistic grammars on a fixed tree: the model every engine of the library takes.

A :class:`Grammar` generates data on the tree of depth ``L`` and branching ``s`` of
``docs/model.md``: level ``L`` is the root (the class), level 0 the leaves (the input); level
``l`` holds ``s**(L-l)`` nodes and the children of node ``i`` are nodes ``s*i .. s*i+s-1`` of
level ``l-1``. A root symbol is drawn from ``root_prior``; then every node of level ``l``
with symbol ``a`` picks its ``r``-th rule with probability ``rule_probs[l][a, r]`` and its
children take the symbols of the tuple ``rules[l][a, r]``. Levels may have different
cardinalities ``cards[l]`` and different numbers of rules ``m_l``.

A tuple may be listed by several parents (an *ambiguous* grammar): a string then has several
parses. Every exact engine stays exact, since the tree itself is fixed; only parsing changes
(:meth:`Grammar.parse` counts the parses and returns the most probable one). The uniform Random
Hierarchy Model (:class:`hiergrammar.rhm.RHM`) is the member whose rules are distinct random
tuples, all equally likely.

Examples
--------
>>> import numpy as np
>>> rules = {1: np.array([[[0, 1], [1, 0]], [[1, 1], [0, 1]]]),   # (card_1, m_1, s) = (2, 2, 2)
...          2: np.array([[[0, 1]], [[1, 0]], [[1, 1]]])}           # (card_2, m_2, s) = (3, 1, 2)
>>> g = Grammar(rules, rule_probs={1: [[0.9, 0.1], [0.5, 0.5]], 2: np.ones((3, 1))})
>>> g.cards, g.L, g.s, g.d, g.is_unambiguous       # (0, 1) is owned by both level-1 symbols
((2, 2, 3), 2, 2, 4, False)
>>> data = g.sample(3, seed=0)
>>> data.x.shape, data.y.shape
((3, 4), (3,))
>>> bool(g.parse(data.x).valid.all())
True
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.validation import (
    InputError,
    check_int,
    check_memory,
    check_real_array,
    make_rng,
)

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx
    from pgmpy.models import DiscreteBayesianNetwork, FactorGraph

__all__ = ["Grammar", "GrammarSample", "ParseResult", "RHMSample", "check_grammar"]

#: Largest tuple space ``card**s`` for which the parser keeps a dense lookup table (the table
#: costs 16 bytes per tuple); larger spaces use sorted codes and a binary search.
_MAX_DENSE_TUPLES = 1 << 20

#: Rows of ``rule_probs`` and ``root_prior`` must sum to 1 within this tolerance; they are then
#: renormalised exactly, so float32 or rounded inputs are accepted.
_PROB_ATOL = 1e-6

#: Working-set size (bytes) of one chunk of the vectorised draws and of the parse DP.
_CHUNK_BYTES = 32 * 1024**2

#: Largest code of a tuple that fits the int64 arithmetic of the fast parser.
_MAX_CODE = 2**63 - 1


# -- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GrammarSample:
    """Data drawn from (or parsed by) a grammar.

    ``levels[l]`` is an int64 array of shape ``(n, s**(L-l))`` for ``l = 0..L``: the symbols
    of level ``l`` of each datum's tree; ``levels[L]`` has shape ``(n, 1)`` (the class).
    ``v`` is the leaf vocabulary size ``cards[0]``.

    Examples
    --------
    >>> sample = GrammarSample(levels=(np.array([[0, 1]]), np.array([[2]])), v=2)
    >>> sample.x.tolist(), sample.y.tolist(), sample.n, sample.L
    ([[0, 1]], [2], 1, 1)
    """

    levels: tuple[np.ndarray, ...]
    v: int

    @property
    def L(self) -> int:
        return len(self.levels) - 1

    @property
    def n(self) -> int:
        return self.levels[0].shape[0]

    @property
    def x(self) -> np.ndarray:
        """Input strings, shape ``(n, s**L)``, values in ``[0, v)``."""
        return self.levels[0]

    @property
    def y(self) -> np.ndarray:
        """Classes (root symbols), shape ``(n,)``."""
        return self.levels[-1][:, 0]

    def onehot(
        self, dtype: type = np.float64, memory_budget: int | str | None = None
    ) -> np.ndarray:
        """One-hot inputs, shape ``(n, s**L, v)``.

        Raises
        ------
        InputError
            if the array would exceed the memory budget (see
            :func:`hiergrammar.validation.check_memory`).

        Examples
        --------
        >>> GrammarSample(levels=(np.array([[1, 0]]), np.array([[0]])), v=2).onehot().tolist()
        [[[0.0, 1.0], [1.0, 0.0]]]
        """
        n, d = self.x.shape
        check_memory(
            f"the one-hot inputs (n, d, v) = ({n}, {d}, {self.v})",
            n * d * self.v * np.dtype(dtype).itemsize,
            memory_budget,
        )
        out = np.zeros((n, d, self.v), dtype=dtype)
        np.put_along_axis(out, self.x[..., None], 1, axis=-1)
        return out


#: The historical name of :class:`GrammarSample` (samples of an RHM).
RHMSample = GrammarSample


@dataclass(frozen=True)
class ParseResult:
    """The parses of input strings.

    Attributes
    ----------
    levels : tuple of int64 arrays, ``levels[l]`` of shape ``(n, s**(L-l))``
        The parse: the unique one of an unambiguous grammar, the most probable one (max-product
        under ``rule_probs`` and ``root_prior``) of an ambiguous grammar. ``-1`` marks nodes
        without a parse: for an unambiguous grammar, from the first level where no rule matches
        upwards; for an ambiguous grammar, every latent node of an invalid string.
    valid : bool array ``(n,)``
        True where the string has at least one parse of positive probability.
    log_n_parses : float array ``(n,)``
        Natural log of the number of distinct trees of positive probability that produce the
        string (``-inf`` for none, 0 for exactly one). A float, since counts overflow int64.
    log_prob : float array ``(n,)``
        ``log P(tree)`` of the returned parse (``-inf`` for invalid strings).
    """

    levels: tuple[np.ndarray, ...]
    valid: np.ndarray
    log_n_parses: np.ndarray | None = field(default=None)
    log_prob: np.ndarray | None = field(default=None)

    @property
    def y(self) -> np.ndarray:
        """The parsed class, shape ``(n,)`` (``-1`` where there is no parse)."""
        return self.levels[-1][:, 0]


# -- helpers ---------------------------------------------------------------------------------------
def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True, order="C")
    array.setflags(write=False)
    return array


def _as_int_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an int64 array; floats, booleans and ragged input are refused."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise InputError(f"{name} must be a rectangular integer array ({err})") from None
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} must hold integers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.unsignedinteger) and array.size and array.max() > _MAX_CODE:
        raise InputError(f"{name} holds a value above the int64 range")
    return array.astype(np.int64, copy=False)


def _level_keys(name: str, mapping: Any, what: str) -> int:
    """Check that ``mapping`` is a dict keyed by exactly ``1..L``; return ``L``."""
    if not isinstance(mapping, Mapping):
        raise InputError(
            f"{name} must be a dict keyed by the levels 1..L ({what}), got {type(mapping).__name__}"
        )
    keys = list(mapping.keys())
    if any(isinstance(k, bool) or not isinstance(k, numbers.Integral) for k in keys):
        raise InputError(f"{name} must be keyed by the integer levels 1..L, got keys {keys!r}")
    ordered = sorted(int(k) for k in keys)
    if not ordered or ordered != list(range(1, len(ordered) + 1)):
        raise InputError(f"{name} must be keyed by the levels 1..L with L >= 1, got keys {ordered}")
    return len(ordered)


def _tuple_codes(tuples: np.ndarray, base: int) -> np.ndarray:
    """Mixed-radix codes of tuples ``(..., s)`` over ``[0, base)``, first digit most
    significant. The caller checks that ``base**s`` fits int64."""
    s = tuples.shape[-1]
    powers = np.array([base ** (s - 1 - j) for j in range(s)], dtype=np.int64)
    return tuples @ powers


def _chunks(total: int, bytes_per_item: int) -> tuple[range, int]:
    """Start indices and size of chunks of ``total`` items that each fit :data:`_CHUNK_BYTES`."""
    step = max(1, _CHUNK_BYTES // max(1, bytes_per_item))
    return range(0, total, step), step


# -- the model -------------------------------------------------------------------------------------
class Grammar:
    """A probabilistic grammar of fixed depth ``L`` and branching ``s``.

    Parameters
    ----------
    rules : dict ``{l: int array (card_l, m_l, s)}`` for ``l = 1..L``
        ``rules[l][a, r]`` is the ``r``-th child tuple (symbols of level ``l-1``) of symbol
        ``a`` of level ``l``; ``card_l`` is the number of symbols of level ``l``. Tuple values at
        level ``l >= 2`` must lie in ``[0, card_{l-1})``. A tuple may appear under several
        parents (an ambiguous grammar) and several times under one parent (its probabilities
        add up).
    rule_probs : dict ``{l: float array (card_l, m_l)}``, optional
        Row ``a`` is the distribution of symbol ``a``'s rules: non-negative, summing to 1
        (within 1e-6; rows are renormalised). Uniform when omitted.
    root_prior : float array ``(cards[L],)``, optional
        The distribution of the root symbol; uniform when omitted. It is the grammar's default;
        a ``root_prior`` given to an engine overrides it for that call.
    v : int, optional
        The leaf vocabulary ``cards[0]``; by default one more than the largest leaf symbol in
        ``rules[1]``.
    metadata : dict, optional
        JSON-compatible facts about the grammar's origin (family, parameters), kept by
        :meth:`save`.

    Attributes
    ----------
    rules, rule_probs : dicts of read-only arrays, as above (int64 and float64).
    root_prior : read-only float64 array ``(cards[L],)``.
    cards : tuple of ints
        Cardinalities of levels ``0..L``: ``cards[0] = v``, ``cards[l] = rules[l].shape[0]``.
    L, s : int
        Depth and branching factor.
    v : int
        Leaf vocabulary ``cards[0]`` (for an :class:`~hiergrammar.rhm.RHM` built with per-level
        vocabularies, ``rhm.v`` holds them as given; ``cards[0]`` is then the leaf vocabulary).
    n_classes : int
        Number of root symbols ``cards[L]``.
    metadata : dict

    Raises
    ------
    InputError
        naming the violated condition: levels not keyed ``1..L``, a non-integer rule array or
        one not of shape ``(card_l, m_l, s)``, an inconsistent ``s``, a tuple value out of
        range, mismatched shapes of ``rule_probs`` or ``root_prior``, a negative probability,
        a row not summing to 1.

    Examples
    --------
    >>> g = Grammar({1: np.array([[[0, 1], [1, 0]]])}, rule_probs={1: [[0.25, 0.75]]})
    >>> g.cards, g.n_classes, g.v
    ((2, 1), 1, 2)
    >>> g.parse(np.array([[1, 0]])).log_prob.round(4).tolist()   # log 0.75
    [-0.2877]
    >>> Grammar({1: np.array([[[0, 2]]])}, v=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: rules[1] holds the value 2 at [0, 0, 1], outside ...
    """

    def __init__(
        self,
        rules: Mapping[int, Any],
        rule_probs: Mapping[int, Any] | None = None,
        root_prior: Any = None,
        *,
        v: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ):
        self._setup(rules, rule_probs, root_prior, v=v, metadata=metadata, renormalise=True)

    # -- construction and validation ------------------------------------------------------------
    def _setup(
        self,
        rules: Mapping[int, Any],
        rule_probs: Mapping[int, Any] | None,
        root_prior: Any,
        *,
        v: int | None,
        metadata: Mapping[str, Any] | None,
        renormalise: bool,
    ) -> None:
        """Validate and store the arrays. ``renormalise=False`` keeps the probabilities bit for
        bit (files written by :meth:`save` hold normalised rows already)."""
        L = _level_keys("rules", rules, "an int array (card_l, m_l, s) per level")
        arrays: dict[int, np.ndarray] = {}
        s = None
        for level in range(1, L + 1):
            array = _as_int_array(f"rules[{level}]", rules[level])
            if array.ndim != 3:
                raise InputError(
                    f"rules[{level}] must have shape (card_l, m_l, s), got shape {array.shape}"
                )
            if array.shape[0] < 1 or array.shape[1] < 1:
                raise InputError(
                    f"rules[{level}] has shape {array.shape}: every level needs card_l >= 1 "
                    "symbols and m_l >= 1 rules per symbol"
                )
            if s is None:
                s = array.shape[2]
                if s < 2:
                    raise InputError(f"rules[1] has tuples of length s={s}, violating s >= 2")
            elif array.shape[2] != s:
                raise InputError(
                    f"inconsistent s: rules[{level}] has tuples of length {array.shape[2]} "
                    f"but rules[1] has s={s}"
                )
            arrays[level] = array
        assert s is not None
        if v is None:
            v = max(int(arrays[1].max()) + 1, 1)
        v = check_int("v", v, 1)
        cards = [v] + [arrays[level].shape[0] for level in range(1, L + 1)]
        for level in range(1, L + 1):
            array, card = arrays[level], cards[level - 1]
            bound = "v" if level == 1 else f"card_{level - 1}"
            if array.min() < 0 or array.max() >= card:
                bad = tuple(
                    int(i) for i in np.argwhere((array < 0) | (array >= card))[0]
                )  # first offender
                raise InputError(
                    f"rules[{level}] holds the value {int(array[bad])} at {list(bad)}, outside "
                    f"[0, {bound}) = [0, {card}): a tuple value out of range"
                    + ("" if level == 1 else f" (level {level - 1} has {card} symbols)")
                )

        probs: dict[int, np.ndarray] = {}
        if rule_probs is not None:
            _level_keys("rule_probs", rule_probs, "a float array (card_l, m_l) per level")
            if len(rule_probs) != L:
                raise InputError(
                    f"rule_probs has levels 1..{len(rule_probs)} but rules has levels 1..{L}: "
                    "mismatched shapes"
                )
        for level in range(1, L + 1):
            card, m = arrays[level].shape[:2]
            if rule_probs is None:
                probs[level] = np.full((card, m), 1.0 / m)
                continue
            p = check_real_array(f"rule_probs[{level}]", rule_probs[level], ndim=(0, 1, 2, 3))
            if p.shape != (card, m):
                raise InputError(
                    f"rule_probs[{level}] has shape {p.shape} but rules[{level}] has shape "
                    f"{arrays[level].shape}: mismatched shapes (rule_probs[l] must be "
                    f"(card_l, m_l) = ({card}, {m}))"
                )
            probs[level] = self._check_rows(f"rule_probs[{level}]", p, renormalise)

        if root_prior is None:
            prior = np.full(cards[L], 1.0 / cards[L])
        else:
            prior = check_real_array("root_prior", root_prior, ndim=(0, 1, 2))
            if prior.shape != (cards[L],):
                raise InputError(
                    f"root_prior has shape {prior.shape} but level L={L} has "
                    f"{cards[L]} symbols: mismatched shapes (root_prior must be (cards[L],))"
                )
            prior = self._check_rows("root_prior", prior[None], renormalise)[0]

        self.rules: dict[int, np.ndarray] = {k: _read_only(a) for k, a in arrays.items()}
        self.rule_probs: dict[int, np.ndarray] = {k: _read_only(p) for k, p in probs.items()}
        self.root_prior: np.ndarray = _read_only(prior)
        self.cards: tuple[int, ...] = tuple(int(c) for c in cards)
        self.L: int = L
        self.s: int = int(s)
        self.v = self.cards[0]
        self.n_classes: int = self.cards[L]
        self.metadata: dict[str, Any] = dict(metadata or {})
        # Levels whose rules are all equally likely draw integers (the RHM's historical stream).
        self._uniform_levels = frozenset(
            level for level, p in self.rule_probs.items() if np.all(p == p.flat[0])
        )
        self._uniform_root = bool(np.all(self.root_prior == self.root_prior[0]))
        self._tables: dict[int, tuple] = {}
        self._dedup: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._unambiguous: bool | None = None

    @staticmethod
    def _check_rows(name: str, p: np.ndarray, renormalise: bool) -> np.ndarray:
        """Rows of ``p`` (2-D) must be non-negative and sum to 1; renormalise them exactly."""
        if p.size and p.min() < 0:
            row, col = (int(i) for i in np.argwhere(p < 0)[0])
            where = f"entry {col}" if name == "root_prior" else f"[{row}, {col}]"
            raise InputError(f"{name} holds a negative probability {p[row, col]:.6g} at {where}")
        sums = p.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > _PROB_ATOL)
        if bad.size:
            row = int(bad[0])
            label = "" if name == "root_prior" else f" row {row}"
            raise InputError(
                f"{name}{label} sums to {sums[row]:.10g}, not 1: each row must sum to 1 "
                f"(within {_PROB_ATOL:g})"
            )
        if not renormalise:
            return p
        return p / sums[:, None]

    # -- shape helpers --------------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Input dimension ``s**L`` (number of leaves)."""
        return self.s**self.L

    @property
    def n_nodes(self) -> int:
        """Number of nodes of the tree, leaves included: ``(s**(L+1) - 1) / (s - 1)``."""
        return (self.s ** (self.L + 1) - 1) // (self.s - 1)

    @property
    def n_trees(self) -> int:
        """Number of derivations (root symbol and one rule per internal node),
        ``cards[L] * prod_l m_l**width(l)``: the size of a brute-force enumeration."""
        total = self.cards[self.L]
        for level in range(1, self.L + 1):
            total *= self.rules[level].shape[1] ** self.width(level)
        return total

    @property
    def n_internal(self) -> int:
        """Number of internal nodes (one rule choice each): ``(s**L - 1) / (s - 1)``."""
        return (self.d - 1) // (self.s - 1)

    def card(self, level: int) -> int:
        """Number of symbols at ``level`` (``cards[level]``).

        Examples
        --------
        >>> Grammar({1: np.array([[[0, 1]], [[1, 1]]])}).card(1)
        2
        """
        self._check_level(level)
        return self.cards[level]

    def width(self, level: int) -> int:
        """Number of nodes at ``level``: ``s**(L-level)``.

        Examples
        --------
        >>> Grammar({1: np.array([[[0, 1, 1]]])}).width(0)
        3
        """
        self._check_level(level)
        return self.s ** (self.L - level)

    def n_rules(self, level: int) -> int:
        """Number of rules ``m_l`` of each symbol of ``level`` (``1 <= level <= L``).

        Examples
        --------
        >>> Grammar({1: np.array([[[0, 1], [1, 0]]])}).n_rules(1)
        2
        """
        if isinstance(level, bool) or not isinstance(level, numbers.Integral):
            raise InputError(f"level must be an integer, got {level!r}")
        if not 1 <= level <= self.L:
            raise InputError(f"level={level} violates 1 <= level <= L = {self.L}")
        return int(self.rules[level].shape[1])

    def _check_level(self, level: int) -> None:
        if isinstance(level, bool) or not isinstance(level, numbers.Integral):
            raise InputError(f"level must be an integer, got {level!r}")
        if not 0 <= level <= self.L:
            raise InputError(f"level={level} violates 0 <= level <= L = {self.L}")

    def __repr__(self) -> str:
        ms = tuple(self.rules[level].shape[1] for level in range(1, self.L + 1))
        return f"Grammar(L={self.L}, s={self.s}, cards={self.cards}, m={ms})"

    # -- structure ------------------------------------------------------------------------------
    def _distinct_rules(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct (parent, tuple) pairs of positive probability at ``level``, padded:
        tuples ``(card, mm, s)`` and their log-probabilities ``(card, mm)`` (``-inf`` pads).

        A tuple listed twice under one parent is one production whose probability is the sum.
        """
        if level not in self._dedup:
            rules, probs = self.rules[level], self.rule_probs[level]
            card, m, s = rules.shape
            parents = np.repeat(np.arange(card), m)
            flat = rules.reshape(-1, s)
            keep = probs.ravel() > 0
            keys = np.column_stack([parents[keep], flat[keep]])
            unique, inverse = np.unique(keys, axis=0, return_inverse=True)
            summed = np.bincount(
                inverse.ravel(), weights=probs.ravel()[keep], minlength=len(unique)
            )
            owner = unique[:, 0]
            counts = np.bincount(owner, minlength=card)
            mm = int(counts.max())
            slot = np.arange(len(unique)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[owner]
            tuples = np.zeros((card, mm, s), dtype=np.int64)
            logp = np.full((card, mm), -np.inf)
            tuples[owner, slot] = unique[:, 1:]
            with np.errstate(divide="ignore"):
                logp[owner, slot] = np.log(summed)
            self._dedup[level] = (tuples, logp)
        return self._dedup[level]

    @property
    def is_unambiguous(self) -> bool:
        """Whether every tuple of positive probability has a single parent symbol, so that each
        string has at most one parse. Rules of probability 0 do not count.

        Examples
        --------
        >>> shared = {1: np.array([[[0, 1]], [[0, 1]]])}   # both symbols own (0, 1)
        >>> Grammar(shared).is_unambiguous
        False
        >>> Grammar(shared, rule_probs=None).ambiguous_levels
        (1,)
        """
        return not self.ambiguous_levels

    @property
    def ambiguous_levels(self) -> tuple[int, ...]:
        """The levels where some tuple of positive probability has several parent symbols."""
        if self._unambiguous is None:
            found = []
            for level in range(1, self.L + 1):
                tuples, logp = self._distinct_rules(level)
                flat = tuples[np.isfinite(logp)]
                if len(np.unique(flat, axis=0)) < len(flat):
                    found.append(level)
            self._ambiguous = tuple(found)
            self._unambiguous = not found
        return self._ambiguous

    # -- generation -----------------------------------------------------------------------------
    def _sample_bytes(self, n: int) -> int:
        """Bytes of the int64 levels of ``n`` trees, plus one leaf-sized temporary."""
        return 8 * n * (self.n_nodes + self.d)

    def sample(
        self, n: int, seed: Any = 0, *, memory_budget: int | str | None = None
    ) -> GrammarSample:
        """Draw ``n`` trees: a root from ``root_prior``, then a rule at every node from
        ``rule_probs``.

        Parameters
        ----------
        n : int
            Number of data, ``n >= 0``.
        seed : int, None or numpy Generator
            Seed of the draw (a non-negative int; same seed, same data).
        memory_budget : int or str, optional
            Refuse draws whose arrays would exceed it (default ``$HIERGRAMMAR_MEMORY_BUDGET``
            or 4 GiB).

        Returns
        -------
        GrammarSample
            ``levels[l]`` of shape ``(n, s**(L-l))``; ``x`` ``(n, s**L)``, ``y`` ``(n,)``.

        Raises
        ------
        InputError
            on a bad ``n`` or seed, or an estimated size above the memory budget.

        Notes
        -----
        Levels whose rules are equally likely (and a uniform root) draw integers, as the RHM
        always has, so a uniform RHM gives the same data for the same seed as earlier versions;
        weighted levels draw by inverting the rules' cumulative distribution.

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1], [1, 0]]])}, rule_probs={1: [[1.0, 0.0]]})
        >>> g.sample(2, seed=0).x.tolist()                   # the rule of probability 0 never
        [[0, 1], [0, 1]]
        >>> g.sample(0).x.shape
        (0, 2)
        """
        n = check_int("n", n, 0)
        rng = make_rng(seed, "seed")
        check_memory(
            f"sampling n={n} trees of {self.d} leaves", self._sample_bytes(n), memory_budget
        )
        if self._uniform_root:
            top = rng.integers(self.n_classes, size=(n, 1))
        else:
            cdf = np.cumsum(self.root_prior)[:-1]
            top = np.searchsorted(cdf, rng.random((n, 1)), side="right")
        return self._expand(np.asarray(top, dtype=np.int64), rng, self.L)

    def expand(
        self,
        top: Any,
        rng: Any = None,
        level: int | None = None,
        *,
        memory_budget: int | str | None = None,
    ) -> GrammarSample:
        """Generate the levels below given symbols at ``level`` (default ``L``).

        Parameters
        ----------
        top : int array ``(n, s**(L-level))``
            Symbols of ``level``, in ``[0, cards[level])``; ``n = 0`` is allowed.
        rng : int, None or numpy Generator
            Seed of the rule draws.
        level : int, optional
            The level of ``top``, ``0 <= level <= L``; default ``L`` (the root).
        memory_budget : int or str, optional
            As for :meth:`sample`.

        Returns
        -------
        GrammarSample
            ``levels[k]`` for ``k <= level`` drawn; levels above ``level`` are filled with -1.

        Raises
        ------
        InputError
            if ``top`` is not an integer array of that shape (floats are refused, never
            truncated), holds a symbol outside ``[0, cards[level])`` (negative symbols are
            refused, never wrapped around), or on a bad seed or memory estimate.

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1]], [[1, 1]]])})
        >>> g.expand(np.array([[1], [0]]), rng=0).x.tolist()
        [[1, 1], [0, 1]]
        >>> g.expand(np.array([[-1]]))
        Traceback (most recent call last):
            ...
        hiergrammar.validation.InputError: top holds the symbol -1, outside [0, cards[1]) = [0, 2)
        """
        level = self.L if level is None else level
        self._check_level(level)
        rng = make_rng(rng, "rng")
        top = _as_int_array("top", top)
        width = self.width(level)
        if top.ndim != 2 or top.shape[1] != width:
            raise InputError(
                f"top must have shape (n, s**(L-level)) = (n, {width}), got {top.shape}"
            )
        if top.size and (top.min() < 0 or top.max() >= self.cards[level]):
            bad = int(top.min()) if top.min() < 0 else int(top.max())
            raise InputError(
                f"top holds the symbol {bad}, outside [0, cards[{level}]) = "
                f"[0, {self.cards[level]})"
            )
        check_memory(
            f"expanding n={top.shape[0]} subtrees from level {level}",
            self._sample_bytes(top.shape[0]),
            memory_budget,
        )
        return self._expand(top, rng, level)

    def _expand(self, top: np.ndarray, rng: np.random.Generator, level: int) -> GrammarSample:
        n = top.shape[0]
        levels: list[np.ndarray] = [
            np.full((n, self.width(k)), -1, dtype=np.int64) for k in range(self.L + 1)
        ]
        levels[level] = top
        for k in range(level, 0, -1):
            parents = levels[k]
            choice = self._draw_rules(k, parents, rng)
            levels[k - 1] = self.rules[k][parents, choice].reshape(n, self.width(k - 1))
        return GrammarSample(levels=tuple(levels), v=self.cards[0])

    def _draw_rules(self, level: int, parents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A rule index per parent symbol, drawn from ``rule_probs[level]``: integers for
        uniform levels, else the inverse of each row's cumulative distribution (chunked)."""
        m = self.rules[level].shape[1]
        if level in self._uniform_levels:
            return rng.integers(m, size=parents.shape)
        u = rng.random(parents.shape)
        cdf = np.cumsum(self.rule_probs[level], axis=1)[:, :-1]  # (card, m-1)
        flat_p, flat_u = parents.ravel(), u.ravel()
        choice = np.empty(flat_p.shape, dtype=np.int64)
        starts, step = _chunks(flat_p.size, 8 * max(1, m))
        for start in starts:
            part = slice(start, start + step)
            # rule r is drawn iff cdf[r-1] <= u < cdf[r]: count the boundaries at or below u.
            choice[part] = (flat_u[part, None] >= cdf[flat_p[part]]).sum(axis=1)
        return choice.reshape(parents.shape)

    def tree_log_prob(self, levels: Sequence[np.ndarray]) -> np.ndarray:
        """``log P(tree)`` of complete trees under the grammar (root prior times rule
        probabilities; a tuple listed twice under one parent counts with its summed probability).

        Parameters
        ----------
        levels : sequence of int arrays, ``levels[l]`` of shape ``(n, s**(L-l))`` for
            ``l = 0..L`` (e.g. :attr:`GrammarSample.levels`).

        Returns
        -------
        float array ``(n,)``; ``-inf`` where some node's children are not a rule of positive
        probability of its symbol (or the root has prior 0).

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1], [1, 0]]])}, rule_probs={1: [[0.25, 0.75]]})
        >>> np.exp(g.tree_log_prob(g.sample(2, seed=0).levels)).round(2).tolist()
        [0.75, 0.75]
        """
        if len(levels) != self.L + 1:
            raise InputError(f"levels must hold L+1 = {self.L + 1} arrays, got {len(levels)}")
        arrays = [_as_int_array(f"levels[{k}]", a) for k, a in enumerate(levels)]
        n = arrays[0].shape[0] if arrays[0].ndim == 2 else -1
        for k, a in enumerate(arrays):
            if a.shape != (n, self.width(k)):
                raise InputError(
                    f"levels[{k}] must have shape (n, s**(L-l)) = (n, {self.width(k)}), "
                    f"got {a.shape}"
                )
            if a.size and (a.min() < 0 or a.max() >= self.cards[k]):
                raise InputError(f"levels[{k}] must hold symbols in [0, {self.cards[k]})")
        with np.errstate(divide="ignore"):
            total = np.log(self.root_prior[arrays[self.L][:, 0]])
        for level in range(1, self.L + 1):
            rules, probs = self.rules[level], self.rule_probs[level]
            m = rules.shape[1]
            parents = arrays[level].ravel()
            children = arrays[level - 1].reshape(-1, self.s)
            p = np.empty(parents.shape)
            starts, step = _chunks(parents.size, 8 * m * (self.s + 1))
            for start in starts:
                part = slice(start, start + step)
                match = (rules[parents[part]] == children[part, None, :]).all(axis=-1)
                p[part] = (match * probs[parents[part]]).sum(axis=1)
            with np.errstate(divide="ignore"):
                total = total + np.log(p).reshape(n, self.width(level)).sum(axis=1)
        return total

    # -- parsing --------------------------------------------------------------------------------
    def parse(self, x: Any, *, memory_budget: int | str | None = None) -> ParseResult:
        """Parse input strings: their latent trees, classes and numbers of parses.

        Parameters
        ----------
        x : int array ``(n, s**L)`` or ``(s**L,)``
            Strings over ``[0, cards[0])``; ``n = 0`` is allowed.
        memory_budget : int or str, optional
            As for :meth:`sample`.

        Returns
        -------
        ParseResult
            ``levels`` (the unique parse, or the most probable one of an ambiguous grammar),
            ``valid`` ``(n,)``, ``log_n_parses`` ``(n,)``, ``log_prob`` ``(n,)``.

        Raises
        ------
        InputError
            on a badly shaped or non-integer ``x``, symbols out of range, or an estimated size
            above the memory budget.

        Notes
        -----
        An unambiguous grammar is parsed bottom-up by looking each tuple up (a dense table
        when ``cards[l-1]**s <= 2**20``, else sorted codes and a binary search). An ambiguous
        grammar, or one whose tuple codes overflow int64, is parsed by an inside pass on the
        fixed tree that keeps, per node and symbol, the count of subtrees and the best
        subtree's log-probability (max-product), then backtracks from the best root; ties go
        to the lowest tuple.

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1]], [[0, 1]], [[1, 1]]])},
        ...             root_prior=[0.2, 0.5, 0.3])             # (0, 1) has two parses
        >>> res = g.parse(np.array([[0, 1], [1, 1], [1, 0]]))
        >>> res.y.tolist(), res.valid.tolist(), np.exp(res.log_n_parses).round(6).tolist()
        ([1, 2, -1], [True, True, False], [2.0, 1.0, 0.0])
        """
        x = _as_int_array("x", x)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.d:
            raise InputError(f"x must have shape (n, s**L) = (n, {self.d}), got {x.shape}")
        if x.size and (x.min() < 0 or x.max() >= self.cards[0]):
            raise InputError(f"x values must lie in [0, v) = [0, {self.cards[0]})")
        n = x.shape[0]
        check_memory(
            f"parsing n={n} strings of {self.d} leaves",
            2 * self._sample_bytes(n),
            memory_budget,
        )
        if self.is_unambiguous and all(
            self.cards[level - 1] ** self.s <= _MAX_CODE for level in range(1, self.L + 1)
        ):
            return self._parse_lookup(x)
        return self._parse_inside(x, memory_budget)

    def _lookup_table(self, level: int) -> tuple:
        """Tuple -> (owner, log-prob) at ``level``: ``("dense", owners, logp)`` indexed by
        code, or ``("sorted", codes, owners, logp)``."""
        if level not in self._tables:
            tuples, logp = self._distinct_rules(level)
            keep = np.isfinite(logp)
            owners = np.broadcast_to(np.arange(tuples.shape[0])[:, None], keep.shape)[keep]
            base = self.cards[level - 1]
            codes = _tuple_codes(tuples[keep], base)
            if base**self.s <= _MAX_DENSE_TUPLES:
                owner_table = np.full(base**self.s, -1, dtype=np.int64)
                logp_table = np.full(base**self.s, -np.inf)
                owner_table[codes] = owners
                logp_table[codes] = logp[keep]
                self._tables[level] = ("dense", owner_table, logp_table)
            else:
                order = np.argsort(codes)
                self._tables[level] = ("sorted", codes[order], owners[order], logp[keep][order])
        return self._tables[level]

    def _parse_lookup(self, x: np.ndarray) -> ParseResult:
        n = x.shape[0]
        levels = [x]
        log_prob = np.zeros(n)
        for level in range(1, self.L + 1):
            children = levels[-1].reshape(n, self.width(level), self.s)
            bad = (children < 0).any(axis=-1)
            codes = _tuple_codes(np.maximum(children, 0), self.cards[level - 1])
            table = self._lookup_table(level)
            if table[0] == "dense":
                parents, logp = table[1][codes], table[2][codes]
            else:
                _, sorted_codes, owners, logps = table
                pos = np.minimum(np.searchsorted(sorted_codes, codes), len(sorted_codes) - 1)
                found = sorted_codes[pos] == codes
                parents = np.where(found, owners[pos], -1)
                logp = np.where(found, logps[pos], -np.inf)
            parents = np.where(bad, -1, parents)
            log_prob += np.where(parents >= 0, logp, -np.inf).sum(axis=1)
            levels.append(parents)
        root = levels[-1][:, 0]
        with np.errstate(divide="ignore"):
            log_prob += np.where(root >= 0, np.log(self.root_prior[np.maximum(root, 0)]), -np.inf)
        valid = np.isfinite(log_prob)
        levels[-1] = np.where(valid[:, None], levels[-1], -1)
        log_prob = np.where(valid, log_prob, -np.inf)
        return ParseResult(
            levels=tuple(levels),
            valid=valid,
            log_n_parses=np.where(valid, 0.0, -np.inf),
            log_prob=log_prob,
        )

    def _parse_inside(self, x: np.ndarray, memory_budget: int | str | None) -> ParseResult:
        """Count and max-product inside pass on the fixed tree, chunked over the strings."""
        n = x.shape[0]
        per_string = 8 * self.d * self.cards[0] * 2
        for level in range(1, self.L + 1):
            tuples, _ = self._distinct_rules(level)
            card, mm, _ = tuples.shape
            per_string = max(per_string, 8 * self.width(level) * card * mm * 4)
        check_memory(f"the parse tables of one string ({self.d} leaves)", per_string, memory_budget)
        levels = [x] + [
            np.full((n, self.width(k)), -1, dtype=np.int64) for k in range(1, self.L + 1)
        ]
        log_n = np.full(n, -np.inf)
        log_prob = np.full(n, -np.inf)
        starts, step = _chunks(n, per_string)
        for start in starts:
            part = slice(start, start + step)
            chunk = self._inside_chunk(x[part])
            for k in range(1, self.L + 1):
                levels[k][part] = chunk[0][k]
            log_n[part], log_prob[part] = chunk[1], chunk[2]
        return ParseResult(
            levels=tuple(levels), valid=np.isfinite(log_prob), log_n_parses=log_n, log_prob=log_prob
        )

    def _inside_chunk(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """The inside pass on value-first arrays ``(card, width, n)`` (as in
        :mod:`hiergrammar.bp`: gathering whole rows at rule entries is contiguous).

        Counts are kept linear, scaled per node to a maximum of 1 with the log of the scale
        carried separately (no overflow, no exp/log per entry); best scores are log-probs.
        """
        n, s = x.shape[0], self.s
        leaf = np.zeros((self.cards[0], self.d, n))
        leaf[x.T, np.arange(self.d)[:, None], np.arange(n)[None, :]] = 1.0
        count, log_scale = leaf, np.zeros((self.d, n))
        with np.errstate(divide="ignore"):
            best = np.log(leaf)
        argbest: dict[int, np.ndarray] = {}
        for level in range(1, self.L + 1):
            tuples, logp = self._distinct_rules(level)  # (card, mm, s), (card, mm)
            card, mm, _ = tuples.shape
            w = self.width(level)
            child_count = count.reshape(-1, w, s, n)
            child_best = best.reshape(-1, w, s, n)
            real = np.isfinite(logp).reshape(card * mm, 1, 1)
            raw = np.where(real, child_count[:, :, 0][tuples[:, :, 0].ravel()], 0.0)
            score = child_best[:, :, 0][tuples[:, :, 0].ravel()] + logp.reshape(-1, 1, 1)
            for j in range(1, s):
                raw *= child_count[:, :, j][tuples[:, :, j].ravel()]
                score += child_best[:, :, j][tuples[:, :, j].ravel()]
            raw = raw.reshape(card, mm, w, n).sum(axis=1)  # (card, w, n)
            top = raw.max(axis=0)  # (w, n)
            log_scale = log_scale.reshape(w, s, n).sum(axis=1)
            with np.errstate(divide="ignore"):
                log_scale += np.log(top)
            count = raw / np.where(top > 0, top, 1.0)
            score = score.reshape(card, mm, w, n)
            argbest[level] = score.argmax(axis=1)  # (card, w, n)
            best = np.take_along_axis(score, argbest[level][:, None], axis=1)[:, 0]
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.root_prior)[:, None]
            total = (count[:, 0] * (self.root_prior > 0)[:, None]).sum(axis=0)
            log_n = np.log(total) + log_scale[0]
        root_score = best[:, 0] + log_prior  # (card_L, n)
        root = root_score.argmax(axis=0)
        log_prob = root_score[root, np.arange(n)]
        valid = np.isfinite(log_prob)
        levels: list[np.ndarray] = [x] * (self.L + 1)
        levels[self.L] = np.where(valid, root, -1)[:, None]
        samples = np.arange(n)[:, None]
        for level in range(self.L, 0, -1):
            tuples, _ = self._distinct_rules(level)
            parents = np.maximum(levels[level], 0)  # (n, w)
            nodes = np.arange(self.width(level))[None, :]
            pick = argbest[level][parents, nodes, samples]
            children = tuples[parents, pick].reshape(n, self.width(level - 1))
            levels[level - 1] = np.where(valid[:, None], children, -1)
        levels[0] = x
        log_n = np.where(valid, log_n, -np.inf)
        return levels, log_n, log_prob

    # -- exchange -------------------------------------------------------------------------------
    @classmethod
    def from_root_first(
        cls,
        rules: Sequence[Any] | Mapping[int, Any],
        probs: Sequence[Any] | Mapping[int, Any] | None = None,
        *,
        root_prior: Any = None,
        v: int | None = None,
    ) -> Grammar:
        """A grammar from rule tensors ordered from the root down.

        This is the layout of the public RHM generators (``sample_rules`` of
        ``fracagnetta/random-hierarchy-model``, ``sample_hierarchical_rules`` of
        ``pcsl-epfl/hierarchy-learning``): ``rules[0]`` holds the root's rules
        ``(n_classes, m, s)``, ``rules[j]`` those of depth ``j``, and row ``a`` the rules of
        symbol ``a``. Our level ``l`` is their depth ``L - l``.

        Parameters
        ----------
        rules : list (or dict keyed ``0..L-1``) of int arrays ``(card, m, s)``
            Torch tensors on the CPU are accepted (they convert to numpy).
        probs : list or dict of arrays, optional
            Per depth, either ``(card, m)`` or one ``(m,)`` vector shared by all symbols of the
            depth (as ``sample_trees`` of the former generator stores them). Uniform when
            omitted or ``None`` for a depth.
        root_prior : float array ``(n_classes,)``, optional
        v : int, optional
            Leaf vocabulary (default: one more than the largest leaf symbol).

        Returns
        -------
        Grammar

        Examples
        --------
        >>> root_rules = np.array([[[0, 1], [1, 0]], [[1, 1], [0, 0]]])   # depth 0: (2, 2, 2)
        >>> leaf_rules = np.array([[[2, 0], [0, 2]], [[1, 2], [2, 1]]])   # depth 1: (2, 2, 2)
        >>> g = Grammar.from_root_first([root_rules, leaf_rules], probs=[None, [0.7, 0.3]])
        >>> g.cards, g.rule_probs[1].tolist()
        ((3, 2, 2), [[0.7, 0.3], [0.7, 0.3]])
        >>> [r.shape for r in g.to_root_first()[0]]
        [(2, 2, 2), (2, 2, 2)]
        """
        rules_list = cls._root_first_list("rules", rules, None)
        L = len(rules_list)
        ours = {L - j: _as_int_array(f"rules[{j}]", r) for j, r in enumerate(rules_list)}
        probs_list = cls._root_first_list("probs", probs, L) if probs is not None else None
        our_probs = None
        if probs_list is not None:
            our_probs = {}
            for j, p in enumerate(probs_list):
                shape = ours[L - j].shape[:2] if ours[L - j].ndim == 3 else None
                if p is None:
                    if shape is None:
                        continue  # Grammar reports the badly shaped rules
                    our_probs[L - j] = np.full(shape, 1.0 / shape[1])
                    continue
                p = check_real_array(f"probs[{j}]", p, ndim=(1, 2))
                if p.ndim == 1 and shape is not None:
                    if p.shape[0] != shape[1]:
                        raise InputError(
                            f"probs[{j}] has shape {p.shape} but rules[{j}] has m = {shape[1]} "
                            "rules per symbol: mismatched shapes"
                        )
                    p = np.broadcast_to(p, shape)
                our_probs[L - j] = p
        return cls(ours, our_probs, root_prior, v=v)

    @staticmethod
    def _root_first_list(name: str, value: Any, length: int | None) -> list[Any]:
        if isinstance(value, Mapping):
            keys = sorted(value.keys())
            if keys != list(range(len(keys))):
                raise InputError(f"{name} as a dict must be keyed 0..L-1 (root first), got {keys}")
            value = [value[k] for k in keys]
        elif isinstance(value, np.ndarray) and value.ndim >= 1:
            value = list(value)  # a stacked array: one entry per depth
        elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InputError(
                f"{name} must be a list of per-depth arrays ordered from the root down, "
                f"got {type(value).__name__}"
            )
        value = list(value)
        if not value:
            raise InputError(f"{name} must hold at least one level")
        if length is not None and len(value) != length:
            raise InputError(
                f"{name} has {len(value)} levels but rules has {length}: mismatched shapes"
            )
        return value

    def to_root_first(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The rules and their probabilities ordered from the root down (depth ``j`` is our
        level ``L - j``), the layout of :meth:`from_root_first`.

        Returns
        -------
        (rules, probs) : lists of ``L`` arrays ``(card, m, s)`` and ``(card, m)``.

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1]]]), 2: np.array([[[0, 0]], [[0, 0]]])})
        >>> [r.shape for r in g.to_root_first()[0]]
        [(2, 1, 2), (1, 1, 2)]
        """
        depths = range(self.L, 0, -1)
        return (
            [np.array(self.rules[level]) for level in depths],
            [np.array(self.rule_probs[level]) for level in depths],
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the grammar to ``path`` in the versioned format of
        :mod:`hiergrammar.grammar_io` (one ``.npz`` of arrays and a JSON header; no pickle),
        atomically. :func:`hiergrammar.load_grammar` reads it back exactly.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from hiergrammar import load_grammar
        >>> g = Grammar({1: np.array([[[0, 1], [1, 0]]])}, rule_probs={1: [[0.25, 0.75]]})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     g.save(pathlib.Path(tmp) / "g.npz")
        ...     back = load_grammar(pathlib.Path(tmp) / "g.npz")
        >>> back.rule_probs[1].tolist(), back.cards
        ([[0.25, 0.75]], (2, 1))
        """
        from hiergrammar.grammar_io import save_grammar

        save_grammar(self, path)

    def to_uai(self, path: str | os.PathLike, evidence: Any = None, **options: Any) -> Any:
        """Write the grammar with one set of soft leaf evidence as a UAI instance with its
        exact answers (``path``, ``path + ".MAR"``, ``path + ".PR"``); see
        :func:`hiergrammar.uai.to_uai`, which takes the ``options``.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> g = Grammar({1: np.array([[[0, 1], [1, 0]]])}, rule_probs={1: [[0.25, 0.75]]})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     files = g.to_uai(pathlib.Path(tmp) / "g.uai", evidence=[[1.0, 0.0], [0.0, 1.0]])
        ...     log10_z = float(files.pr.read_text().split()[1])
        >>> round(log10_z, 9), round(float(np.log10(0.25)), 9)   # P(x = (0, 1)) = 0.25
        (-0.602059991, -0.602059991)
        """
        from hiergrammar.uai import to_uai

        return to_uai(self, path, evidence, **options)

    def _save_params(self) -> dict[str, Any] | None:
        """Constructor parameters restored by the loader (``None``: a plain grammar)."""
        return None

    # -- graphical-model views (implemented in hiergrammar.graphs) ------------------------------
    def to_factor_graph(
        self,
        evidence: np.ndarray | None = None,
        root_prior: np.ndarray | None = None,
        *,
        memory_budget: int | str | None = None,
    ) -> FactorGraph:
        """The grammar as a :class:`pgmpy.models.FactorGraph`: one factor per internal node
        holding the probability that its symbol writes the children (see
        :func:`hiergrammar.graphs.to_factor_graph`).

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1], [1, 1]]])}, rule_probs={1: [[0.25, 0.75]]})
        >>> g.to_factor_graph().get_factors()[1].values.tolist()   # the rule factor of h1_0
        [[[0.0, 0.25], [0.0, 0.75]]]
        """
        from hiergrammar.graphs import to_factor_graph

        return to_factor_graph(
            self, evidence=evidence, root_prior=root_prior, memory_budget=memory_budget
        )

    def to_bayesian_network(
        self, root_prior: np.ndarray | None = None, *, memory_budget: int | str | None = None
    ) -> DiscreteBayesianNetwork:
        """The grammar as a pgmpy ``DiscreteBayesianNetwork`` with one rule-choice variable per
        internal node (see :func:`hiergrammar.graphs.to_bayesian_network`).

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1], [1, 1]]])}, rule_probs={1: [[0.25, 0.75]]})
        >>> sorted(g.to_bayesian_network().nodes())
        ['h0_0', 'h0_1', 'h1_0', 'r1_0']
        """
        from hiergrammar.graphs import to_bayesian_network

        return to_bayesian_network(self, root_prior=root_prior, memory_budget=memory_budget)

    def to_pyagrum_bayesian_network(
        self, root_prior: np.ndarray | None = None, *, memory_budget: int | str | None = None
    ) -> Any:
        """The same rule-choice Bayesian network as a ``pyagrum.BayesNet`` (needs pyAgrum; see
        :func:`hiergrammar.graphs.to_pyagrum_bayesian_network`).

        Examples
        --------
        >>> g = Grammar({1: np.array([[[0, 1], [1, 1]]])})
        >>> g.to_pyagrum_bayesian_network().size()   # doctest: +SKIP
        4
        """
        from hiergrammar.graphs import to_pyagrum_bayesian_network

        return to_pyagrum_bayesian_network(self, root_prior=root_prior, memory_budget=memory_budget)

    def to_networkx(self) -> nx.DiGraph:
        """The tree of variables as a networkx DiGraph, edges parent -> child (see
        :func:`hiergrammar.graphs.tree_graph`).

        Examples
        --------
        >>> Grammar({1: np.array([[[0, 1]]])}).to_networkx().number_of_nodes()
        3
        """
        from hiergrammar.graphs import tree_graph

        return tree_graph(self)


def check_grammar(grammar: Any, name: str = "grammar") -> Grammar:
    """``grammar`` itself if it is a :class:`Grammar` (an RHM, a family constructor's result, a
    loaded file), else an :class:`~hiergrammar.validation.InputError` naming the argument.

    Parameters
    ----------
    grammar : Any
        The object an engine was given.
    name : str
        The argument's name, for the message.

    Returns
    -------
    Grammar

    Raises
    ------
    InputError
        For anything that is not a Grammar.

    Examples
    --------
    >>> check_grammar({1: [[[0, 1]]]})   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: grammar must be a hiergrammar.Grammar ..., got dict
    """
    if not isinstance(grammar, Grammar):
        raise InputError(
            f"{name} must be a hiergrammar.Grammar (an RHM, sparse_rhm(...), "
            f"filtered_grammar(...), load_grammar(path) or Grammar(rules, rule_probs, "
            f"root_prior)), got {type(grammar).__name__}"
        )
    return grammar
