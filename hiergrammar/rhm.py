"""The Random Hierarchy Model: a random context-free grammar of fixed depth.

Conventions (``docs`` and ``docs/model.md`` §1-2): level ``L`` is the class (the root), level 0
the input (the leaves). Level ``l`` holds ``s**(L-l)`` symbols; the children of node ``i`` at
level ``l`` are nodes ``s*i .. s*i+s-1`` at level ``l-1``. Every parent symbol owns ``m``
distinct ``s``-tuples of child symbols, and no tuple is owned by two parents, so every valid
input has exactly one parse.

Example
-------
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> rhm.rules[3].shape          # (n_classes, m, s): class -> its m child pairs
(4, 2, 2)
>>> data = rhm.sample(5, seed=1)
>>> data.x.shape, data.y.shape  # (n, s**L) leaves, (n,) classes
((5, 8), (5,))
>>> bool((rhm.parse(data.x).y == data.y).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hiergrammar.validation import check_int

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx
    from pgmpy.models import DiscreteBayesianNetwork, FactorGraph

#: Largest tuple space ``v**s`` for which the parser keeps a dense lookup table.
_MAX_DENSE_TUPLES = 1 << 26


def check_parameters(
    v: int, n_classes: int, m: int, s: int, L: int | None = None
) -> tuple[int, ...]:
    """Validate RHM parameters; return them as ints ``(v, n_classes, m, s[, L])``.

    Bounds: ``v >= 2``, ``n_classes >= 1``, ``1 <= m <= v**(s-1)``, ``s >= 2``, ``L >= 1`` and
    ``n_classes * m <= v**s`` (rules are distinct tuples). A violation raises ``ValueError``
    naming the bound.
    """
    v = check_int("v", v, 2)
    n_classes = check_int("n_classes", n_classes, 1)
    m = check_int("m", m, 1)
    s = check_int("s", s, 2)
    tuples = v**s
    if m > v ** (s - 1):
        raise ValueError(
            f"m={m} violates m <= v**(s-1) = {v ** (s - 1)}: the v={v} symbols "
            f"of a level each need m distinct {s}-tuples out of v**s = {tuples}"
        )
    if n_classes * m > tuples:
        raise ValueError(
            f"n_classes*m = {n_classes * m} violates n_classes*m <= v**s = "
            f"{tuples}: the classes need that many distinct {s}-tuples"
        )
    if L is None:
        return v, n_classes, m, s
    return v, n_classes, m, s, check_int("L", L, 1)


@dataclass(frozen=True)
class RHMSample:
    """Data drawn from (or parsed by) an RHM.

    ``levels[l]`` is an int array of shape ``(n, s**(L-l))`` for ``l = 0..L``: the symbols of
    level ``l`` of each datum's tree. ``levels[L]`` has shape ``(n, 1)`` (the class).
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
        """Classes, shape ``(n,)``."""
        return self.levels[-1][:, 0]

    def onehot(self, dtype: type = np.float64) -> np.ndarray:
        """One-hot inputs, shape ``(n, s**L, v)``."""
        return np.eye(self.v, dtype=dtype)[self.x]


@dataclass(frozen=True)
class ParseResult:
    """The parse of input strings.

    ``levels[l]``: shape ``(n, s**(L-l))``, the unique latent symbols, ``-1`` where a string
    cannot be produced. ``valid``: shape ``(n,)``, True where the grammar produces the string.
    ``y``: shape ``(n,)``, the class (``-1`` for invalid strings).
    """

    levels: tuple[np.ndarray, ...]
    valid: np.ndarray

    @property
    def y(self) -> np.ndarray:
        return self.levels[-1][:, 0]


class RHM:
    """A Random Hierarchy Model with ``L`` levels of production rules.

    Parameters
    ----------
    v : vocabulary size of every latent and input symbol, ``v >= 2``.
    n_classes : number of classes (root symbols), ``n_classes >= 1``.
    m : rules (synonymous ``s``-tuples) per symbol, ``1 <= m <= v**(s-1)``.
    s : branching factor, ``s >= 2``.
    L : depth (number of production steps), ``L >= 1``.
    seed : seed of the rule draw.

    Attributes
    ----------
    rules : dict mapping level ``l = 1..L`` to an int array of shape ``(card_l, m, s)``:
        the ``m`` child tuples (level ``l-1`` symbols) of each parent value at level ``l``.
        ``card_L = n_classes``, otherwise ``v``.
    f : ``m / v**(s-1)``, the fraction of tuples the rules of a level use.
    """

    def __init__(self, v: int, n_classes: int, m: int, s: int, L: int, seed: int = 0):
        self.v, self.n_classes, self.m, self.s, self.L = check_parameters(v, n_classes, m, s, L)
        self.seed = seed
        tuples = self.v**self.s
        rng = np.random.default_rng(seed)
        self.rules: dict[int, np.ndarray] = {}
        # Drawn from the root down, as the grammar is written: level L first.
        for level in range(self.L, 0, -1):
            card = self.card(level)
            codes = rng.choice(tuples, size=card * self.m, replace=False).reshape(card, self.m)
            self.rules[level] = self._decode(codes)
        self._lookup: dict[int, np.ndarray] = {}

    # -- shape helpers ---------------------------------------------------------------------
    @property
    def f(self) -> float:
        return self.m / self.v ** (self.s - 1)

    @property
    def d(self) -> int:
        """Input dimension ``s**L``."""
        return self.s**self.L

    @property
    def n_internal(self) -> int:
        """Number of internal nodes (one rule choice each): ``(s**L - 1) / (s - 1)``."""
        return (self.d - 1) // (self.s - 1)

    def card(self, level: int) -> int:
        """Cardinality of the symbols at ``level``: ``n_classes`` at ``L``, else ``v``."""
        self._check_level(level)
        return self.n_classes if level == self.L else self.v

    def width(self, level: int) -> int:
        """Number of nodes at ``level``: ``s**(L-level)``."""
        self._check_level(level)
        return self.s ** (self.L - level)

    def _check_level(self, level: int) -> None:
        if not 0 <= level <= self.L:
            raise ValueError(f"level={level} violates 0 <= level <= L = {self.L}")

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        """Tuple codes in ``[0, v**s)`` -> digits, shape ``codes.shape + (s,)``, first digit
        most significant."""
        powers = self.v ** np.arange(self.s - 1, -1, -1)
        return (codes[..., None] // powers) % self.v

    def _encode(self, tuples: np.ndarray) -> np.ndarray:
        powers = self.v ** np.arange(self.s - 1, -1, -1)
        return tuples @ powers

    def __repr__(self) -> str:
        return (
            f"RHM(v={self.v}, n_classes={self.n_classes}, m={self.m}, s={self.s}, "
            f"L={self.L}, seed={self.seed})"
        )

    # -- generation and parsing ------------------------------------------------------------
    def sample(self, n: int, seed: int | None = 0) -> RHMSample:
        """Draw ``n`` data: a uniform class, then a uniform rule at every node.

        Returns an :class:`RHMSample` (``levels[l]`` of shape ``(n, s**(L-l))``).
        """
        n = check_int("n", n, 0)
        rng = np.random.default_rng(seed)
        top = rng.integers(self.n_classes, size=(n, 1))
        return self.expand(top, rng=rng)

    def expand(
        self,
        top: np.ndarray,
        rng: np.random.Generator | int | None = None,
        level: int | None = None,
    ) -> RHMSample:
        """Generate the levels below given symbols at ``level`` (default ``L``).

        ``top``: shape ``(n, s**(L-level))``. Levels above ``level`` are filled with ``-1``.
        """
        level = self.L if level is None else level
        self._check_level(level)
        rng = np.random.default_rng(rng)
        top = np.asarray(top, dtype=np.int64)
        n = top.shape[0]
        if top.shape != (n, self.width(level)):
            raise ValueError(f"top must have shape (n, {self.width(level)}), got {top.shape}")
        levels: list[np.ndarray] = [
            np.full((n, self.width(k)), -1, dtype=np.int64) for k in range(self.L + 1)
        ]
        levels[level] = top
        for k in range(level, 0, -1):
            parents = levels[k]
            choice = rng.integers(self.m, size=parents.shape)
            levels[k - 1] = self.rules[k][parents, choice].reshape(n, -1)
        return RHMSample(levels=tuple(levels), v=self.v)

    def _tuple_lookup(self, level: int) -> np.ndarray:
        """Dense table: tuple code -> owning parent at ``level``, or -1."""
        if level not in self._lookup:
            if self.v**self.s > _MAX_DENSE_TUPLES:
                raise ValueError(
                    f"v**s = {self.v**self.s} exceeds {_MAX_DENSE_TUPLES}, "
                    "too large for the parser's lookup table"
                )
            table = np.full(self.v**self.s, -1, dtype=np.int64)
            codes = self._encode(self.rules[level])  # (card, m)
            table[codes] = np.arange(self.card(level))[:, None]
            self._lookup[level] = table
        return self._lookup[level]

    def parse(self, x: np.ndarray) -> ParseResult:
        """Recover the unique latent tree and class of each input string.

        ``x``: int array of shape ``(n, s**L)`` (or ``(s**L,)`` for one string), values in
        ``[0, v)``. Strings the grammar cannot produce get ``valid = False`` and ``-1`` from
        the first level where no rule matches.
        """
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, s**L) = (n, {self.d}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"x must hold integers, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= self.v):
            raise ValueError(f"x values must lie in [0, v) = [0, {self.v})")
        levels = [x.astype(np.int64)]
        for level in range(1, self.L + 1):
            children = levels[-1].reshape(x.shape[0], -1, self.s)
            bad = (children < 0).any(axis=-1)
            parents = self._tuple_lookup(level)[self._encode(np.maximum(children, 0))]
            parents[bad] = -1
            levels.append(parents)
        valid = levels[-1][:, 0] >= 0
        return ParseResult(levels=tuple(levels), valid=valid)

    # -- graph views (implemented in hiergrammar.graphs) ----------------------------------
    def to_factor_graph(
        self, evidence: np.ndarray | None = None, root_prior: np.ndarray | None = None
    ) -> FactorGraph:
        """The RHM as a :class:`pgmpy.models.FactorGraph` (see :mod:`hiergrammar.graphs`)."""
        from hiergrammar.graphs import to_factor_graph

        return to_factor_graph(self, evidence=evidence, root_prior=root_prior)

    def to_bayesian_network(self, root_prior: np.ndarray | None = None) -> DiscreteBayesianNetwork:
        """The RHM as a pgmpy discrete Bayesian network (see :mod:`hiergrammar.graphs`)."""
        from hiergrammar.graphs import to_bayesian_network

        return to_bayesian_network(self, root_prior=root_prior)

    def to_networkx(self) -> nx.DiGraph:
        """The tree of variables as a networkx DiGraph (see :mod:`hiergrammar.graphs`)."""
        from hiergrammar.graphs import tree_graph

        return tree_graph(self)
