"""The Random Hierarchy Model: the random member of the :class:`~hiergrammar.grammar.Grammar`
family.

Conventions (``docs/model.md`` §1-2): level ``L`` is the class (the root), level 0 the input
(the leaves). Level ``l`` holds ``s**(L-l)`` symbols; the children of node ``i`` at level ``l``
are nodes ``s*i .. s*i+s-1`` at level ``l-1``. In the uniform RHM every parent symbol owns
``m`` distinct ``s``-tuples of child symbols, no tuple is owned by two parents (so every valid
input has exactly one parse), and all rules are equally likely.

Options reach the variants of the literature: per-level vocabularies and rule counts,
Zipf-distributed rule probabilities (``rule_law="zipf"``, as in the public generator
``fracagnetta/random-hierarchy-model``), and rules drawn independently per parent
(``shared_tuples=True``), which makes the grammar ambiguous.

Examples
--------
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

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from hiergrammar.grammar import Grammar, GrammarSample, ParseResult, RHMSample
from hiergrammar.validation import (
    InputError,
    check_choice,
    check_float,
    check_int,
    check_memory,
    check_seed,
)

__all__ = [
    "RHM",
    "RULE_LAWS",
    "UNIFORM_RHM",
    "GrammarSample",
    "ParseResult",
    "RHMSample",
    "check_int",
    "check_parameters",
    "zipf_probabilities",
    "refuse_models",
    "uniform_parameters",
]

#: Tuple codes are drawn as int64; larger tuple spaces are refused.
_MAX_TUPLES = 2**62

#: numpy's ``Generator.choice(replace=False)`` permutes the whole population when the draw
#: exceeds 1/50 of it (its "tail shuffle"); the memory estimate follows that rule.
_TAIL_SHUFFLE_CUTOFF = 50

RULE_LAWS = ("uniform", "zipf")


#: What the mean-field theory (:mod:`hiergrammar.theory`) and the functions built on it model.
UNIFORM_RHM = "the uniform RHM (scalar v and m, rule_law='uniform', shared_tuples=False)"


def uniform_parameters(model: Any) -> dict[str, int]:
    """The integer parameters ``v, n_classes, m, s, L`` of a uniform RHM, the only model the
    mean-field theory describes; anything else is refused with a message saying so.

    Parameters
    ----------
    model : RHM
        A uniform :class:`RHM`: scalar ``v`` and ``m``, ``rule_law="uniform"``,
        ``shared_tuples=False``.

    Returns
    -------
    dict
        ``{"v", "n_classes", "m", "s", "L"}`` as ints.

    Raises
    ------
    InputError
        For any other grammar (a weighted, per-level or ambiguous RHM, a sparse or filtered
        grammar, a plain :class:`~hiergrammar.grammar.Grammar`), naming what differs.

    Examples
    --------
    >>> uniform_parameters(RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0))
    {'v': 8, 'n_classes': 4, 'm': 2, 's': 2, 'L': 3}
    >>> uniform_parameters(RHM(8, 4, 2, 2, 3, seed=0, rule_law="zipf", zipf_a=1.0))
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: the mean-field theory models only the uniform RHM (scalar v and m, rule_law='uniform', shared_tuples=False); this RHM has rule_law='zipf'
    """  # noqa: E501
    what = f"the mean-field theory models only {UNIFORM_RHM}"
    if not isinstance(model, RHM):
        raise InputError(f"{what}; got {model!r}, which is not an RHM")
    differs = []
    if model._v_per_level or model._m_per_level:
        differs.append("per-level v or m")
    if model.rule_law != "uniform":
        differs.append(f"rule_law={model.rule_law!r}")
    if model.shared_tuples:
        differs.append("shared_tuples=True")
    if differs:
        raise InputError(f"{what}; this RHM has {', '.join(differs)}")
    return {"v": model.v, "n_classes": model.n_classes, "m": model.m, "s": model.s, "L": model.L}


def refuse_models(**parameters: Any) -> None:
    """Refuse a grammar object (or a per-level sequence) given where a uniform-RHM function
    takes an integer parameter, with a message saying that the theory models only the uniform
    RHM and how to pass one's parameters.

    Examples
    --------
    >>> refuse_models(v=32, m=8)
    >>> refuse_models(v=RHM(8, 4, 2, 2, 3, seed=0))   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: v=RHM(v=8, ...) is a grammar: the mean-field theory ...
    """
    for name, value in parameters.items():
        if isinstance(value, Grammar):
            raise InputError(
                f"{name}={value!r} is a grammar: the mean-field theory models only "
                f"{UNIFORM_RHM} and takes its integer parameters: for a uniform RHM pass "
                "rhm.v, rhm.m, ... (hiergrammar.rhm.uniform_parameters(rhm) returns them and "
                "refuses every other grammar)"
            )
        if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
            raise InputError(
                f"{name}={value!r} is a sequence: the mean-field theory models only "
                f"{UNIFORM_RHM}; per-level vocabularies or rule counts are not described"
            )


def check_parameters(
    v: int, n_classes: int, m: int, s: int, L: int | None = None
) -> tuple[int, ...]:
    """Validate the parameters of a uniform RHM; return them as ints ``(v, n_classes, m, s[, L])``.

    Bounds: ``v >= 2``, ``n_classes >= 1``, ``1 <= m <= v**(s-1)``, ``s >= 2``, ``L >= 1`` and
    ``n_classes * m <= v**s`` (rules are distinct tuples). A grammar object or a sequence in
    place of an integer is refused by :func:`refuse_models`.

    Raises
    ------
    InputError
        (a ``ValueError``) naming the violated bound.

    Examples
    --------
    >>> check_parameters(8, 4, 2, 2, 3)
    (8, 4, 2, 2, 3)
    >>> check_parameters(4, 2, 5, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: m=5 violates m <= v**(s-1) = 4: ...
    """
    refuse_models(v=v, n_classes=n_classes, m=m, s=s, L=L)
    v = check_int("v", v, 2)
    n_classes = check_int("n_classes", n_classes, 1)
    m = check_int("m", m, 1)
    s = check_int("s", s, 2)
    tuples = v**s
    if m > v ** (s - 1):
        raise InputError(
            f"m={m} violates m <= v**(s-1) = {v ** (s - 1)}: the v={v} symbols "
            f"of a level each need m distinct {s}-tuples out of v**s = {tuples}"
        )
    if n_classes * m > tuples:
        raise InputError(
            f"n_classes*m = {n_classes * m} violates n_classes*m <= v**s = "
            f"{tuples}: the classes need that many distinct {s}-tuples"
        )
    if L is None:
        return v, n_classes, m, s
    return v, n_classes, m, s, check_int("L", L, 1)


def _per_level(name: str, value: Any, L: int, low: int) -> tuple[list[int], bool]:
    """``value`` (an int or a sequence of ``L`` ints) as a list of ``L`` ints; and whether it
    was given as a sequence."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [check_int(name, value, low)] * L, False
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InputError(
            f"{name} must be an integer or a sequence of L={L} integers, got {value!r}"
        )
    if len(value) != L:
        raise InputError(f"{name} has {len(value)} entries but L={L}: give one per level")
    return [check_int(f"{name}[{i}]", x, low) for i, x in enumerate(value)], True


def zipf_probabilities(m: int, a: float) -> np.ndarray:
    """The Zipf law over ``m`` ranked rules: ``p_k ∝ (k+1)**-(1+a)``, ``k = 0..m-1``.

    This is the law of ``init_data`` in ``fracagnetta/random-hierarchy-model`` (option
    ``--zipf a``).

    Parameters
    ----------
    m : int, ``m >= 1``
    a : float, ``a >= 0``

    Returns
    -------
    float array ``(m,)`` summing to 1, decreasing.

    Examples
    --------
    >>> zipf_probabilities(3, 0.0).round(4).tolist()     # 1, 1/2, 1/3 normalised
    [0.5455, 0.2727, 0.1818]
    """
    m = check_int("m", m, 1)
    a = check_float("zipf_a", a, 0.0)
    weights = np.arange(1, m + 1, dtype=np.float64) ** -(1.0 + a)
    return weights / weights.sum()


class RHM(Grammar):
    """A Random Hierarchy Model with ``L`` levels of production rules.

    Parameters
    ----------
    v : int or sequence of ``L`` ints
        Vocabulary size of every latent and input symbol (``v >= 2``), or the vocabularies of
        levels ``0..L-1`` (``v[0]`` the leaves); the root always has ``n_classes`` symbols.
    n_classes : int
        Number of classes (root symbols), ``n_classes >= 1``.
    m : int or sequence of ``L`` ints
        Rules (synonymous ``s``-tuples) per symbol, or one count per level ``1..L``
        (``m[0]`` for level 1). Uniform scalar model: ``1 <= m <= v**(s-1)`` and
        ``n_classes * m <= v**s``; in general ``card_l * m_l <= v_{l-1}**s`` (distinct tuples),
        or ``m_l <= v_{l-1}**s`` with ``shared_tuples``.
    s : int
        Branching factor, ``s >= 2``.
    L : int
        Depth (number of production steps), ``L >= 1``.
    seed : int or None
        Seed of the rule draw (a non-negative int; ``None`` draws fresh entropy).
    rule_law : ``"uniform"`` or ``"zipf"``
        Rule probabilities: equal, or Zipf's law ``p_k ∝ (k+1)**-(1+zipf_a)`` over the ``m``
        rules of each symbol, the ranks in a random order per symbol. The rules themselves are
        those of the uniform model of the same seed.
    zipf_a : float, ``>= 0``
        The Zipf exponent (needed with ``rule_law="zipf"`` and only there).
    zipf_levels : sequence of ints, optional
        The levels that follow Zipf's law (default: all; the public generator applies it to
        one level); the others stay uniform.
    shared_tuples : bool
        Draw each parent's rules independently (distinct within a parent), so a tuple may
        belong to several parents: an ambiguous grammar.

    Attributes
    ----------
    rules : dict ``{l: int array (card_l, m_l, s)}``
        The ``m_l`` child tuples (level ``l-1`` symbols) of each parent value at level ``l``;
        ``card_L = n_classes``, otherwise ``v`` (or ``v[l]``).
    rule_probs, root_prior, cards : as for :class:`~hiergrammar.grammar.Grammar`.
    v, m : the parameters as given (ints, or tuples for per-level models; engines use
        ``cards`` and the rule shapes).
    n_classes, s, L, seed, rule_law, zipf_a, zipf_levels, shared_tuples : the parameters.
    f : ``m / v**(s-1)``, the fraction of tuples the rules of a level use (a tuple per level
        ``m_l / v_{l-1}**(s-1)`` for per-level models).

    Raises
    ------
    InputError
        naming the parameter and the violated bound (including a bad ``seed``).

    Examples
    --------
    >>> zipf = RHM(v=8, n_classes=4, m=4, s=2, L=2, seed=0, rule_law="zipf", zipf_a=1.0)
    >>> bool(np.array_equal(zipf.rules[2], RHM(8, 4, 4, 2, 2, seed=0).rules[2]))
    True
    >>> sorted(zipf.rule_probs[2][0].round(3).tolist())
    [0.044, 0.078, 0.176, 0.702]
    >>> RHM(v=[16, 8], n_classes=2, m=[3, 2], s=2, L=2, seed=0).cards
    (16, 8, 2)
    >>> RHM(v=3, n_classes=3, m=3, s=2, L=1, seed=0, shared_tuples=True).is_unambiguous
    False
    """

    def __init__(
        self,
        v: int | Sequence[int],
        n_classes: int,
        m: int | Sequence[int],
        s: int,
        L: int,
        seed: int | None = 0,
        *,
        rule_law: str = "uniform",
        zipf_a: float | None = None,
        zipf_levels: Sequence[int] | None = None,
        shared_tuples: bool = False,
    ):
        self._set_params(v, n_classes, m, s, L, seed, rule_law, zipf_a, zipf_levels, shared_tuples)
        rng = np.random.default_rng(self.seed)
        rules: dict[int, np.ndarray] = {}
        # Drawn from the root down, as the grammar is written: level L first. The scalar uniform
        # model draws exactly as earlier versions did, so a seed keeps its rules.
        for level in range(self.L, 0, -1):
            card, m_l, tuples = (
                self._level_card(level),
                self._ms[level - 1],
                self._tuple_space(level),
            )
            if self.shared_tuples:
                codes = np.stack(
                    [rng.choice(tuples, size=m_l, replace=False) for _ in range(card)]
                ).reshape(card, m_l)
            else:
                codes = rng.choice(tuples, size=card * m_l, replace=False).reshape(card, m_l)
            rules[level] = self._decode(codes, self._vs[level - 1])
        probs = None
        if self.rule_law == "zipf":
            probs = {}
            for level in range(self.L, 0, -1):
                card, m_l = rules[level].shape[:2]
                if level not in self.zipf_levels:
                    probs[level] = np.full((card, m_l), 1.0 / m_l)
                    continue
                # ranks[a, r]: the Zipf rank of symbol a's r-th rule, a random order per symbol.
                ranks = rng.permuted(np.tile(np.arange(m_l), (card, 1)), axis=1)
                probs[level] = zipf_probabilities(m_l, self.zipf_a)[ranks]
        self._setup(
            rules,
            probs,
            None,
            v=self._vs[0],
            metadata={"family": "RHM"},
            renormalise=True,
        )
        self.v = tuple(self._vs) if self._v_per_level else self._vs[0]

    # -- parameters -----------------------------------------------------------------------------
    def _set_params(
        self,
        v: Any,
        n_classes: Any,
        m: Any,
        s: Any,
        L: Any,
        seed: Any,
        rule_law: Any,
        zipf_a: Any,
        zipf_levels: Any,
        shared_tuples: Any,
    ) -> None:
        """Validate and store the constructor's parameters."""
        L = check_int("L", L, 1)
        s = check_int("s", s, 2)
        self.n_classes = check_int("n_classes", n_classes, 1)
        self.seed = check_seed("seed", seed, allow_generator=False)
        if not isinstance(shared_tuples, (bool, np.bool_)):
            raise InputError(f"shared_tuples must be True or False, got {shared_tuples!r}")
        self.shared_tuples = bool(shared_tuples)
        self.rule_law = check_choice("rule_law", rule_law, RULE_LAWS)
        if self.rule_law == "zipf":
            if zipf_a is None:
                raise InputError("rule_law='zipf' needs the exponent zipf_a (a float >= 0)")
            self.zipf_a: float | None = check_float("zipf_a", zipf_a, 0.0)
        elif zipf_a is not None or zipf_levels is not None:
            raise InputError("zipf_a and zipf_levels apply only with rule_law='zipf'")
        else:
            self.zipf_a = None
        vs, self._v_per_level = _per_level("v", v, L, 2)
        ms, self._m_per_level = _per_level("m", m, L, 1)
        if self.rule_law == "zipf":
            if zipf_levels is None:
                levels = tuple(range(1, L + 1))
            else:
                if isinstance(zipf_levels, (str, bytes)) or not isinstance(
                    zipf_levels, (Sequence, np.ndarray)
                ):
                    raise InputError(
                        f"zipf_levels must be a sequence of levels, got {zipf_levels!r}"
                    )
                levels = tuple(
                    sorted({check_int("zipf_levels entry", x, 1, L) for x in zipf_levels})
                )
            self.zipf_levels: tuple[int, ...] | None = levels
        else:
            self.zipf_levels = None
        self.s, self.L = s, L
        if not (self._v_per_level or self._m_per_level or self.shared_tuples):
            check_parameters(vs[0], self.n_classes, ms[0], s, L)
        self._vs, self._ms = vs, ms
        for level in range(1, L + 1):
            card, m_l, tuples = self._level_card(level), ms[level - 1], vs[level - 1] ** s
            if tuples > _MAX_TUPLES:
                raise InputError(
                    f"level {level}: v_{level - 1}**s = {tuples} exceeds 2**62: tuple codes would "
                    "overflow int64"
                )
            if self.shared_tuples and m_l > tuples:
                raise InputError(
                    f"m_{level} = {m_l} violates m_l <= v_{level - 1}**s = {tuples}: a symbol's "
                    "rules are distinct tuples"
                )
            if not self.shared_tuples and card * m_l > tuples:
                raise InputError(
                    f"level {level}: card_{level}*m_{level} = {card * m_l} violates card_l*m_l <= "
                    f"v_{level - 1}**s = {tuples}: the rules of a level are distinct tuples"
                )
            per_draw = m_l if self.shared_tuples else card * m_l
            permutation = 8 * tuples if per_draw > tuples // _TAIL_SHUFFLE_CUTOFF else 0
            check_memory(f"the rule draw of level {level}", 8 * card * m_l * s + permutation)
        self.m = tuple(ms) if self._m_per_level else ms[0]

    def _level_card(self, level: int) -> int:
        return self.n_classes if level == self.L else self._vs[level]

    def _tuple_space(self, level: int) -> int:
        return self._vs[level - 1] ** self.s

    def _decode(self, codes: np.ndarray, base: int) -> np.ndarray:
        """Tuple codes in ``[0, base**s)`` -> digits, shape ``codes.shape + (s,)``, first digit
        most significant."""
        powers = np.array([base ** (self.s - 1 - j) for j in range(self.s)], dtype=np.int64)
        return (codes[..., None] // powers) % base

    def _save_params(self) -> dict[str, Any]:
        """The constructor's parameters (JSON types), stored by :meth:`save`."""
        return {
            "v": list(self._vs) if self._v_per_level else self._vs[0],
            "n_classes": self.n_classes,
            "m": list(self._ms) if self._m_per_level else self._ms[0],
            "s": self.s,
            "L": self.L,
            "seed": self.seed,
            "rule_law": self.rule_law,
            "zipf_a": self.zipf_a,
            "zipf_levels": None if self.zipf_levels is None else list(self.zipf_levels),
            "shared_tuples": self.shared_tuples,
        }

    @classmethod
    def _restore(
        cls,
        params: dict[str, Any],
        rules: dict[int, np.ndarray],
        rule_probs: dict[int, np.ndarray],
        root_prior: np.ndarray,
        metadata: dict[str, Any],
    ) -> RHM:
        """An RHM from saved parameters and arrays, without redrawing the rules (the arrays
        are the record); the arrays must have the shapes the parameters imply."""
        known = {
            "v",
            "n_classes",
            "m",
            "s",
            "L",
            "seed",
            "rule_law",
            "zipf_a",
            "zipf_levels",
            "shared_tuples",
        }
        if set(params) != known:
            raise InputError(f"the RHM parameters must be {sorted(known)}, got {sorted(params)}")
        rhm = cls.__new__(cls)
        rhm._set_params(**params)
        for level in range(1, rhm.L + 1):
            expected = (rhm._level_card(level), rhm._ms[level - 1], rhm.s)
            got = np.shape(rules.get(level))
            if got != expected:
                raise InputError(
                    f"rules_{level} has shape {got} but the RHM parameters give {expected}: "
                    "inconsistent arrays"
                )
        rhm._setup(
            rules, rule_probs, root_prior, v=rhm._vs[0], metadata=metadata, renormalise=False
        )
        rhm.v = tuple(rhm._vs) if rhm._v_per_level else rhm._vs[0]
        return rhm

    # -- shape helpers --------------------------------------------------------------------------
    @property
    def f(self) -> float | tuple[float, ...]:
        """``m / v**(s-1)`` (per level ``m_l / v_{l-1}**(s-1)`` for a per-level model)."""
        fs = tuple(self._ms[i] / self._vs[i] ** (self.s - 1) for i in range(self.L))
        return fs if (self._v_per_level or self._m_per_level) else fs[0]

    def __repr__(self) -> str:
        extra = ""
        if self.rule_law != "uniform":
            extra += f", rule_law={self.rule_law!r}, zipf_a={self.zipf_a}"
            if self.zipf_levels != tuple(range(1, self.L + 1)):
                extra += f", zipf_levels={list(self.zipf_levels or ())}"
        if self.shared_tuples:
            extra += ", shared_tuples=True"
        v = list(self.v) if self._v_per_level else self.v
        m = list(self.m) if self._m_per_level else self.m
        return (
            f"RHM(v={v}, n_classes={self.n_classes}, m={m}, s={self.s}, "
            f"L={self.L}, seed={self.seed}{extra})"
        )
