"""Grammars as UAI instances with exact answers, and a reader of our own.

The UAI format (the conventions of the UAI 2014 inference competition) is the text format every
inference engine reads. :func:`to_uai` writes a grammar with one evidence set as

* ``path``: a ``MARKOV`` network over the tree's variables, numbered in the order of
  :func:`hiergrammar.graphs.variable_names` (root first, then each level from left to right,
  down to the leaves; variable ``k`` is named ``h{l}_{i}``). Its factors are the root prior on
  variable 0, one rule factor per internal node over the node and its ``s`` children with
  ``psi(a; b_1..b_s) = sum of the probabilities of a's rules equal to (b_1..b_s)``, and, with
  evidence, one unary factor per leaf holding its likelihood vector (soft evidence; a ``.evid``
  file can only hold hard evidence, so none is written). With probability-weighted factors the
  partition function is ``Z = P(evidence)``;
* ``path + ".MAR"``: every variable's exact posterior marginal;
* ``path + ".PR"``: ``log10 Z``.

The answers come from exact belief propagation on the grammar (the numba kernel of
:mod:`hiergrammar.kernels`); :func:`solve_tree` recomputes them from the file alone.

Layout of the model file
------------------------
``MARKOV``, the number of variables, their cardinalities, the number of factors, one scope line
per factor (its size, then its variables), then per factor a blank line, its number of entries
and its table, one line per run of the last scope variable: the last variable of the scope
changes fastest, as the format prescribes. Two choices make the files readable by every engine
we tried:

* numbers are written in positional notation (``0.000012``, never ``1.2e-05``) with the
  shortest digits that read back to the same float64: pgmpy's reader (1.1) parses no exponent;
* by default each scope lists its variables in *decreasing* index order (the children from
  right to left, then the parent): the format allows any order, and pyAgrum's reader (3.3) reads
  a table right only in that order (``docs/engine_findings.md``). ``scope_order="ascending"``
  writes the parent first.

Inconsistent evidence
---------------------
Evidence of probability zero (no tree produces it) has ``Z = 0``: the ``.PR`` file holds
``-inf`` and the ``.MAR`` file keeps its layout (the number of variables, each cardinality) with
every probability written ``nan``, since ``P(x | e)`` is undefined when ``P(e) = 0``.
:func:`read_solution` returns such a solution with ``consistent = False``.

Examples
--------
>>> import tempfile, pathlib
>>> from hiergrammar import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
>>> ev = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]])        # (d, v) soft evidence
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.uai"
>>> files = to_uai(rhm, path, evidence=ev)
>>> print(path.read_text().splitlines()[:6])
['MARKOV', '3', '2 3 3', '4', '1 0', '3 2 1 0']
>>> model, solution = read_uai(path), read_solution(path)
>>> model.n_variables, [t.shape for t in model.tables]
(3, [(2,), (3, 3, 2), (3,), (3,)])
>>> check = solve_tree(model)
>>> bool(abs(check.log10_z - solution.log10_z) < 1e-12), solution.consistent
(True, True)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.validation import InputError, ZeroEvidenceError, check_choice, check_memory

__all__ = [
    "NETWORK_TYPES",
    "SCOPE_ORDERS",
    "UAIFiles",
    "UAIModel",
    "UAISolution",
    "exact_solution",
    "format_number",
    "grammar_model",
    "read_evidence",
    "read_solution",
    "read_uai",
    "solve_tree",
    "to_uai",
    "write_solution",
    "write_uai",
]

#: The network types of the format (a Bayesian network's factors are its conditional tables).
NETWORK_TYPES = ("MARKOV", "BAYES")

#: How a factor's scope lists its variables: decreasing index (default) or parent first.
SCOPE_ORDERS = ("descending", "ascending")

#: Largest number of table entries :func:`grammar_model` writes (all factors together).
MAX_ENTRIES = 20_000_000


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UAIModel:
    """A discrete model as a UAI file holds it.

    Attributes
    ----------
    cards : tuple of int
        Cardinality of each variable, ``(n_variables,)``.
    scopes : tuple of tuples of int
        The variables of each factor, in the order of its table's axes.
    tables : tuple of float64 arrays
        ``tables[k]`` has shape ``tuple(cards[i] for i in scopes[k])``: non-negative, finite.
    network : str
        ``"MARKOV"`` or ``"BAYES"``.

    Examples
    --------
    >>> m = UAIModel((2, 3), ((0,), (1, 0)), (np.array([0.5, 0.5]), np.ones((3, 2))))
    >>> m.n_variables, m.n_factors, m.max_card, m.largest_factor, m.n_entries
    (2, 2, 3, 6, 8)
    """

    cards: tuple[int, ...]
    scopes: tuple[tuple[int, ...], ...]
    tables: tuple[np.ndarray, ...]
    network: str = "MARKOV"

    @property
    def n_variables(self) -> int:
        return len(self.cards)

    @property
    def n_factors(self) -> int:
        return len(self.scopes)

    @property
    def max_card(self) -> int:
        return max(self.cards, default=0)

    @property
    def largest_factor(self) -> int:
        """Entries of the largest table."""
        return max((t.size for t in self.tables), default=0)

    @property
    def n_entries(self) -> int:
        """Entries of all tables together."""
        return sum(t.size for t in self.tables)


@dataclass(frozen=True)
class UAISolution:
    """Exact (or claimed) answers for a UAI model.

    Attributes
    ----------
    marginals : tuple of float64 arrays
        ``marginals[k]`` ``(cards[k],)``, the posterior of variable ``k``; all NaN when the
        evidence is inconsistent.
    log10_z : float
        ``log10`` of the partition function (``-inf`` for inconsistent evidence).

    Examples
    --------
    >>> UAISolution((np.array([0.5, 0.5]),), -0.3).consistent
    True
    """

    marginals: tuple[np.ndarray, ...]
    log10_z: float

    @property
    def consistent(self) -> bool:
        """False when ``Z = 0``: the evidence has probability zero."""
        return self.log10_z > -math.inf


@dataclass(frozen=True)
class UAIFiles:
    """The paths :func:`to_uai` wrote: the model, ``.MAR`` and ``.PR``."""

    uai: Path
    mar: Path
    pr: Path


# -- numbers ---------------------------------------------------------------------------------------
def format_number(x: float) -> str:
    """``x`` in positional notation with the shortest digits that read back to the same
    float64 (readers without exponent support, such as pgmpy's, parse it).

    Examples
    --------
    >>> format_number(0.5), format_number(1.0), format_number(1.25e-7), format_number(0.0)
    ('0.5', '1', '0.000000125', '0')
    >>> float(format_number(1 / 3)) == 1 / 3
    True
    """
    return np.format_float_positional(float(x), unique=True, trim="-")


def _join(values: np.ndarray) -> str:
    return " ".join(format_number(x) for x in values.ravel().tolist())


# -- grammar -> model ------------------------------------------------------------------------------
def _rule_table(grammar: Any, level: int) -> np.ndarray:
    """``(card_l,) + (card_{l-1},) * s``: the summed probabilities of each parent's rules that
    produce each tuple (a tuple listed twice under one parent adds up)."""
    rules = np.asarray(grammar.rules[level])
    card, m, s = rules.shape
    weights = getattr(grammar, "rule_probs", None)  # a grammar without them: uniform rules
    probs = np.full((card, m), 1.0 / m) if weights is None else np.asarray(weights[level], float)
    table = np.zeros((card,) + (int(grammar.card(level - 1)),) * s)
    parents = np.repeat(np.arange(card), m)
    np.add.at(table, (parents,) + tuple(rules.reshape(-1, s).T), probs.reshape(-1))
    return table


def _check_evidence(grammar: Any, evidence: Any, root_prior: Any) -> tuple[Any, np.ndarray]:
    from hiergrammar.evidence import check_leaf_evidence, check_root_prior

    ev = None if evidence is None else check_leaf_evidence(grammar, evidence, single=True)[0]
    if root_prior is None:
        root_prior = getattr(grammar, "root_prior", None)
    return ev, check_root_prior(grammar, root_prior)


def grammar_model(
    grammar: Any,
    evidence: Any = None,
    root_prior: Any = None,
    *,
    scope_order: str = "descending",
    memory_budget: int | str | None = None,
) -> UAIModel:
    """The grammar's tree as a UAI Markov network (see the module docstring).

    Parameters
    ----------
    grammar : Grammar
        Any :class:`~hiergrammar.grammar.Grammar` (weighted, ambiguous, per-level
        cardinalities).
    evidence : array_like, optional
        One set of soft leaf evidence, ``(d, v)`` or ``(1, d, v)``
        (:mod:`hiergrammar.evidence`); one unary factor per leaf.
    root_prior : array_like, optional
        ``(cards[L],)``; the grammar's own ``root_prior`` if None.
    scope_order : {"descending", "ascending"}
        Variables of a rule factor in decreasing index order (children right to left, then the
        parent) or parent first.
    memory_budget : int or str, optional
        Overrides the memory budget for the tables.

    Returns
    -------
    UAIModel
        Factors: the root prior, the rule factors in variable order of their parent, then the
        leaf evidence.

    Raises
    ------
    InputError
        On bad evidence or prior, more than :data:`MAX_ENTRIES` table entries, or a memory
        estimate above the budget.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> model = grammar_model(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0))
    >>> model.cards, model.scopes[:3]
    ((2, 3, 3, 3, 3, 3, 3), ((0,), (2, 1, 0), (4, 3, 1)))
    >>> float(model.tables[1].sum())           # two rules of probability 1/2 per class
    2.0
    """
    from hiergrammar import graphs

    scope_order = check_choice("scope_order", scope_order, SCOPE_ORDERS)
    ev, prior = _check_evidence(grammar, evidence, root_prior)
    L, s = int(grammar.L), int(grammar.s)
    entries = sum(
        int(grammar.width(l)) * int(grammar.card(l)) * int(grammar.card(l - 1)) ** s
        for l in range(1, L + 1)
    )
    if entries > MAX_ENTRIES:
        raise InputError(
            f"the UAI file would hold {entries} rule-table entries, above MAX_ENTRIES = "
            f"{MAX_ENTRIES}: choose a smaller grammar (cards, s or L)"
        )
    check_memory("the UAI model's tables", 8 * 2 * entries, memory_budget)
    names = graphs.variable_names(grammar)
    number = {name: k for k, name in enumerate(names)}
    cards = tuple(int(grammar.card(graphs.parse_name(name)[1])) for name in names)
    scopes: list[tuple[int, ...]] = [(0,)]
    tables: list[np.ndarray] = [np.array(prior, dtype=np.float64)]
    for level in range(L, 0, -1):
        table = _rule_table(grammar, level)
        if scope_order == "descending":
            table = np.ascontiguousarray(table.transpose(tuple(range(s, -1, -1))))
        table.setflags(write=False)  # shared by every node of the level
        for i in range(int(grammar.width(level))):
            scope = (number[graphs.node_name(level, i)],) + tuple(
                number[graphs.node_name(level - 1, s * i + j)] for j in range(s)
            )
            scopes.append(scope[::-1] if scope_order == "descending" else scope)
            tables.append(table)
    if ev is not None:
        for i in range(int(grammar.d)):
            scopes.append((number[graphs.node_name(0, i)],))
            tables.append(ev[i].copy())
    return UAIModel(cards, tuple(scopes), tuple(tables))


# -- writing ---------------------------------------------------------------------------------------
def _model_text(model: UAIModel) -> str:
    lines = [model.network, str(model.n_variables), " ".join(map(str, model.cards))]
    lines.append(str(model.n_factors))
    lines.extend(f"{len(sc)} " + " ".join(map(str, sc)) for sc in model.scopes)
    for table in model.tables:
        lines.append("")
        lines.append(str(table.size))
        rows = table.reshape(-1, table.shape[-1]) if table.ndim else table.reshape(1, 1)
        lines.extend(_join(row) for row in rows)
    return "\n".join(lines) + "\n"


def write_uai(path: str | os.PathLike, model: UAIModel) -> Path:
    """Write ``model`` to ``path`` in the UAI format, atomically (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
    model : UAIModel

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "two.uai"
    >>> _ = write_uai(path, UAIModel((2,), ((0,),), (np.array([0.25, 0.75]),)))
    >>> path.read_text().split()
    ['MARKOV', '1', '2', '1', '1', '0', '2', '0.25', '0.75']
    """
    from hiergrammar.artifacts import save_text

    return save_text(path, _model_text(model))


def _solution_texts(solution: UAISolution) -> tuple[str, str]:
    parts = [str(len(solution.marginals))]
    for mg in solution.marginals:
        parts.append(str(mg.size))
        parts.extend("nan" if math.isnan(x) else repr(float(x)) for x in mg.tolist())
    log10_z = solution.log10_z
    pr = "-inf" if log10_z == -math.inf else repr(float(log10_z))
    return "MAR\n" + " ".join(parts) + "\n", f"PR\n{pr}\n"


def write_solution(path: str | os.PathLike, solution: UAISolution) -> tuple[Path, Path]:
    """Write ``path + ".MAR"`` and ``path + ".PR"`` (UAI result format, one solution each;
    full float64 precision; ``nan`` / ``-inf`` for inconsistent evidence).

    Parameters
    ----------
    path : str or os.PathLike
        The model file's path.
    solution : UAISolution

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The ``.MAR`` and ``.PR`` paths.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.uai"
    >>> mar, pr = write_solution(path, UAISolution((np.array([0.25, 0.75]),), -1.5))
    >>> mar.read_text(), pr.read_text()
    ('MAR\\n1 2 0.25 0.75\\n', 'PR\\n-1.5\\n')
    """
    from hiergrammar.artifacts import save_text

    mar_text, pr_text = _solution_texts(solution)
    base = os.fspath(path)
    return save_text(base + ".MAR", mar_text), save_text(base + ".PR", pr_text)


# -- exact answers ---------------------------------------------------------------------------------
def exact_solution(grammar: Any, evidence: Any = None, root_prior: Any = None) -> UAISolution:
    """Exact marginals of every variable and ``log10 Z`` by tree belief propagation.

    Parameters
    ----------
    grammar : Grammar
    evidence : array_like, optional
        ``(d, v)`` or ``(1, d, v)``; none means no evidence (``Z = 1``).
    root_prior : array_like, optional
        ``(cards[L],)``; the grammar's own if None.

    Returns
    -------
    UAISolution
        Marginals in the order of :func:`hiergrammar.graphs.variable_names`; for evidence no
        tree produces, NaN marginals and ``log10_z = -inf``.

    Raises
    ------
    InputError
        On bad evidence or prior (a leaf whose evidence is zero for every value is refused by
        the evidence contract).

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> sol = exact_solution(rhm, np.ones((2, 3)))       # flat evidence: P(e) = 1
    >>> round(sol.log10_z, 12), [mg.shape for mg in sol.marginals]
    (0.0, [(2,), (3,), (3,)])
    """
    from hiergrammar import kernels

    ev, prior = _check_evidence(grammar, evidence, root_prior)
    if ev is None:
        ev = np.ones((int(grammar.d), int(grammar.card(0))))
    widths = [int(grammar.width(l)) for l in range(int(grammar.L) + 1)]
    cards = tuple(int(grammar.card(l)) for l in range(int(grammar.L) + 1))
    try:
        # When hiergrammar.bp.tree_bp takes weighted grammars, this one line becomes
        # ``result = tree_bp(grammar, ev[None], prior)``.
        result = kernels.entry("numba", "tree_bp")(
            grammar.rules, getattr(grammar, "rule_probs", None), cards, ev[None], prior
        )
    except ZeroEvidenceError:
        nan = tuple(
            np.full(int(grammar.card(l)), np.nan)
            for l in range(int(grammar.L), -1, -1)
            for _ in range(widths[l])
        )
        return UAISolution(nan, -math.inf)
    marginals = tuple(
        np.array(result.marginals[l][0, i], dtype=np.float64)
        for l in range(int(grammar.L), -1, -1)
        for i in range(widths[l])
    )
    return UAISolution(marginals, float(result.log_evidence[0]) / math.log(10.0))


def to_uai(
    grammar: Any,
    path: str | os.PathLike,
    evidence: Any = None,
    *,
    root_prior: Any = None,
    scope_order: str = "descending",
) -> UAIFiles:
    """Write the grammar with one evidence set as a UAI instance with its exact answers.

    Parameters
    ----------
    grammar : Grammar
    path : str or os.PathLike
        The model file; the answers go to ``path + ".MAR"`` and ``path + ".PR"``.
    evidence : array_like, optional
        Soft leaf evidence ``(d, v)`` or ``(1, d, v)``, written as unary factors.
    root_prior : array_like, optional
        ``(cards[L],)``; the grammar's own if None.
    scope_order : {"descending", "ascending"}
        See :func:`grammar_model`.

    Returns
    -------
    UAIFiles
        The three paths.

    Raises
    ------
    InputError
        As :func:`grammar_model`, or for an output path that is a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from hiergrammar import RHM
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rhm.uai"
    >>> files = to_uai(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0), path)
    >>> files.pr.read_text()                       # no evidence: Z = 1
    'PR\\n0.0\\n'
    """
    from hiergrammar.artifacts import check_output_file

    path = check_output_file("path", path)
    model = grammar_model(grammar, evidence, root_prior, scope_order=scope_order)
    solution = exact_solution(grammar, evidence, root_prior)
    write_uai(path, model)
    mar, pr = write_solution(path, solution)
    return UAIFiles(Path(path), mar, pr)


# -- reading ---------------------------------------------------------------------------------------
class _Tokens:
    """Whitespace-separated tokens of a text file with their line numbers; lines whose first
    token starts with ``c`` or ``#`` are comments (UAI 2016; pgmpy writes ``#`` comments)."""

    def __init__(self, path: Path, text: str, comments: bool = True):
        self.path = path
        self.items: list[str] = []
        self.lines: list[int] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if "#" in line:
                line = line[: line.index("#")]
            words = line.split()
            if comments and words and words[0].startswith("c"):
                continue  # no token of the format starts with "c"
            self.items.extend(words)
            self.lines.extend([number] * len(words))
        self.pos = 0

    def error(self, message: str, line: int | None = None) -> InputError:
        if line is None:
            line = self.lines[self.pos] if self.pos < len(self.lines) else self._last_line()
        return InputError(f"path={str(self.path)!r}, line {line}: {message}")

    def _last_line(self) -> int:
        return self.lines[-1] if self.lines else 1

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            raise self.error(f"the file ends where {what} should be")
        token = self.items[self.pos]
        self.pos += 1
        return token

    def integer(self, what: str, low: int, high: int | None = None) -> int:
        token = self.next(what)
        try:
            value = int(token)
        except ValueError:
            self.pos -= 1
            raise self.error(f"{what} must be an integer, got {token!r}") from None
        if value < low or (high is not None and value > high):
            self.pos -= 1
            bound = f"{low} <= {what}" + (f" <= {high}" if high is not None else "")
            raise self.error(f"{what} = {value} violates {bound}")
        return value

    def numbers(self, count: int, what: str) -> np.ndarray:
        start = self.pos
        if start + count > len(self.items):
            self.pos = len(self.items)
            raise self.error(
                f"the file ends inside {what}: {count} entries expected, "
                f"{len(self.items) - start} found"
            )
        try:
            values = np.array(self.items[start : start + count], dtype=np.float64)
        except ValueError:
            for offset, token in enumerate(self.items[start : start + count]):
                try:
                    float(token)
                except ValueError:
                    self.pos = start + offset
                    raise self.error(f"{what} holds {token!r}, not a number") from None
            raise  # pragma: no cover - numpy refused what float() accepts
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            self.pos = start + int(np.argmax(bad))
            raise self.error(
                f"{what} holds {self.items[self.pos]!r}: entries must be finite and >= 0"
            )
        self.pos = start + count
        return values

    def at_end(self) -> bool:
        return self.pos >= len(self.items)


def _read_text(path: str | os.PathLike, what: str) -> tuple[Path, str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"path={str(path)!r}: no such {what} file")
    check_memory(f"reading {path.name}", 80 * path.stat().st_size)
    try:
        return path, path.read_text()
    except UnicodeDecodeError as err:
        raise InputError(f"path={str(path)!r} is not a text {what} file ({err})") from None


def read_uai(path: str | os.PathLike) -> UAIModel:
    """Read a UAI model file (``MARKOV`` or ``BAYES``), checking it as it goes.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    UAIModel
        Tables shaped by their scopes, last scope variable fastest.

    Raises
    ------
    InputError
        Naming the file and the line: an unknown network type, a count or cardinality that is
        not a positive integer, a scope variable out of range or repeated, a table whose entry
        count differs from the product of its scope's cardinalities, an entry that is not a
        finite non-negative number, a file that ends early or holds extra tokens.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bad.uai"
    >>> _ = path.write_text("MARKOV\\n2\\n2 2\\n1\\n2 0 1\\n\\n3\\n0.1 0.2 0.3\\n")
    >>> read_uai(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: path=...bad.uai', line 7: factor 0 has 3 entries, but ...
    """
    path, text = _read_text(path, "UAI model")
    tokens = _Tokens(path, text)
    network = tokens.next("the network type")
    if network.upper() not in NETWORK_TYPES:
        tokens.pos -= 1
        raise tokens.error(
            f"the network type must be one of {list(NETWORK_TYPES)}, got {network!r}"
        )
    n = tokens.integer("the number of variables", 1)
    cards = tuple(tokens.integer(f"the cardinality of variable {k}", 1) for k in range(n))
    n_factors = tokens.integer("the number of factors", 0)
    scopes = []
    for f in range(n_factors):
        size = tokens.integer(f"the scope size of factor {f}", 0, n)
        line = tokens.lines[tokens.pos - 1]
        scope = tuple(tokens.integer(f"a variable of factor {f}", 0, n - 1) for _ in range(size))
        if len(set(scope)) != len(scope):
            raise tokens.error(f"the scope of factor {f} repeats a variable: {list(scope)}", line)
        scopes.append(scope)
    total = sum(math.prod(cards[i] for i in sc) for sc in scopes)
    check_memory(f"the tables of {path.name}", 8 * total)
    tables = []
    for f, scope in enumerate(scopes):
        shape = tuple(cards[i] for i in scope)
        expected = math.prod(shape)
        line = tokens.lines[tokens.pos] if not tokens.at_end() else None
        count = tokens.integer(f"the entry count of factor {f}", 0)
        if count != expected:
            raise tokens.error(
                f"factor {f} has {count} entries, but its scope {list(scope)} has "
                f"{' * '.join(map(str, shape)) or '1'} = {expected} configurations",
                line,
            )
        table = tokens.numbers(count, f"the table of factor {f}").reshape(shape)
        table.setflags(write=False)
        tables.append(table)
    if not tokens.at_end():
        raise tokens.error(f"unexpected {tokens.items[tokens.pos]!r} after the last table")
    return UAIModel(cards, tuple(scopes), tuple(tables), network.upper())


def _solution_block(tokens: _Tokens, task: str) -> int:
    """Position the tokens at the last solution of ``task`` (``-BEGIN-`` starts another)."""
    head = tokens.next("the task line")
    if head.upper() != task:
        tokens.pos -= 1
        raise tokens.error(f"the first line must be {task!r}, got {head!r}")
    starts = [tokens.pos] + [i + 1 for i, t in enumerate(tokens.items) if t == "-BEGIN-"]
    tokens.pos = starts[-1]
    return tokens.pos


def read_solution(path: str | os.PathLike, cards: Sequence[int] | None = None) -> UAISolution:
    """Read ``path + ".MAR"`` and ``path + ".PR"`` (the last solution of each).

    Parameters
    ----------
    path : str or os.PathLike
        The model file's path.
    cards : sequence of int, optional
        The model's cardinalities, to check the marginals against.

    Returns
    -------
    UAISolution
        ``consistent`` is False when the ``.PR`` file holds ``-inf``.

    Raises
    ------
    InputError
        Naming the file and the line: a missing file, a wrong task line, counts or
        cardinalities that do not match, a probability that is not a number in ``[0, 1]``
        (``nan`` only for inconsistent evidence), extra tokens.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.uai"
    >>> _ = write_solution(path, UAISolution((np.full(2, np.nan),), -math.inf))
    >>> read_solution(path).consistent
    False
    """
    base = os.fspath(path)
    pr_path, pr_text = _read_text(base + ".PR", "PR solution")
    tokens = _Tokens(pr_path, pr_text, comments=False)
    _solution_block(tokens, "PR")
    token = tokens.next("log10 Z")
    try:
        log10_z = float(token)
    except ValueError:
        tokens.pos -= 1
        raise tokens.error(f"log10 Z must be a number, got {token!r}") from None
    if math.isnan(log10_z) or log10_z == math.inf:
        tokens.pos -= 1
        raise tokens.error(f"log10 Z must be finite or -inf, got {token!r}")
    if not tokens.at_end():
        raise tokens.error(f"unexpected {tokens.items[tokens.pos]!r} after log10 Z")

    mar_path, mar_text = _read_text(base + ".MAR", "MAR solution")
    tokens = _Tokens(mar_path, mar_text, comments=False)
    _solution_block(tokens, "MAR")
    n = tokens.integer("the number of variables", 1)
    if cards is not None and n != len(cards):
        tokens.pos -= 1
        raise tokens.error(f"{n} variables, but the model has {len(cards)}")
    consistent = log10_z > -math.inf
    marginals = []
    for k in range(n):
        card = tokens.integer(f"the cardinality of variable {k}", 1)
        if cards is not None and card != cards[k]:
            tokens.pos -= 1
            raise tokens.error(f"variable {k} has cardinality {card}, the model {cards[k]}")
        start = tokens.pos
        words = tokens.items[start : start + card]
        if len(words) < card:
            tokens.pos = len(tokens.items)
            raise tokens.error(f"the file ends inside the marginal of variable {k}")
        try:
            values = np.array(words, dtype=np.float64)
        except ValueError:
            raise tokens.error(f"the marginal of variable {k} holds a non-number") from None
        if consistent:
            if not (np.all(np.isfinite(values)) and np.all(values >= 0) and np.all(values <= 1)):
                raise tokens.error(f"the marginal of variable {k} holds a value outside [0, 1]")
        elif not np.all(np.isnan(values)):
            raise tokens.error(
                f"log10 Z = -inf (inconsistent evidence), but the marginal of variable {k} "
                "is not all nan"
            )
        tokens.pos = start + card
        values.setflags(write=False)
        marginals.append(values)
    if not tokens.at_end():
        raise tokens.error(f"unexpected {tokens.items[tokens.pos]!r} after the last marginal")
    return UAISolution(tuple(marginals), log10_z)


def read_evidence(path: str | os.PathLike, n_variables: int | None = None) -> dict[int, int]:
    """Read a UAI ``.evid`` file (hard evidence): ``{variable: value}``.

    Both layouts are read: ``n var val ...`` (2014) and a leading sample count ``1 n var val
    ...`` (2010-2012).

    Parameters
    ----------
    path : str or os.PathLike
    n_variables : int, optional
        The model's number of variables, to check the indices against.

    Returns
    -------
    dict

    Raises
    ------
    InputError
        Naming the file and the line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.uai.evid"
    >>> _ = path.write_text("2 0 1 3 0\\n")
    >>> read_evidence(path)
    {0: 1, 3: 0}
    """
    path, text = _read_text(path, "evidence")
    tokens = _Tokens(path, text, comments=False)
    if tokens.at_end():
        return {}
    high = None if n_variables is None else n_variables - 1
    count = tokens.integer("the number of evidence variables", 0)
    if len(tokens.items) - tokens.pos != 2 * count and count == 1:
        count = tokens.integer("the number of evidence variables", 0)  # the old sample count
    out: dict[int, int] = {}
    for _ in range(count):
        var = tokens.integer("an evidence variable", 0, high)
        out[var] = tokens.integer(f"the value of variable {var}", 0)
    if not tokens.at_end():
        raise tokens.error(f"unexpected {tokens.items[tokens.pos]!r} after the evidence")
    return out


# -- exact inference on a tree-structured file -----------------------------------------------------
def _forest_order(model: UAIModel) -> list[tuple[int, int | None]]:
    """Variables in breadth-first order per connected component: ``(variable, parent factor)``;
    raises InputError if the factor graph has a cycle."""
    factors_of: list[list[int]] = [[] for _ in range(model.n_variables)]
    for f, scope in enumerate(model.scopes):
        for v in scope:
            factors_of[v].append(f)
    seen_var = [False] * model.n_variables
    seen_factor = [False] * model.n_factors
    order: list[tuple[int, int | None]] = []
    for root in range(model.n_variables):
        if seen_var[root]:
            continue
        seen_var[root] = True
        queue = [(root, None)]
        head = 0
        while head < len(queue):
            v, parent = queue[head]
            head += 1
            order.append((v, parent))
            for f in factors_of[v]:
                if f == parent:
                    continue
                if seen_factor[f]:
                    raise InputError(
                        f"the factor graph has a cycle through factor {f} and variable {v}: "
                        "solve_tree needs a tree-structured model"
                    )
                seen_factor[f] = True
                for w in model.scopes[f]:
                    if w == v:
                        continue
                    if seen_var[w]:
                        raise InputError(
                            f"the factor graph has a cycle through factor {f} and variable {w}: "
                            "solve_tree needs a tree-structured model"
                        )
                    seen_var[w] = True
                    queue.append((w, f))
    return order


def _contract(table: np.ndarray, messages: dict[int, np.ndarray], keep: int) -> np.ndarray:
    """Sum ``table`` times the given messages (by axis) over every axis but ``keep``."""
    operands: list[Any] = [table, list(range(table.ndim))]
    for axis, msg in messages.items():
        operands += [msg, [axis]]
    return np.einsum(*operands, [keep])


def _normalised(x: np.ndarray) -> tuple[np.ndarray, float]:
    total = float(x.sum())
    if not total > 0:
        return x, -math.inf
    return x / total, math.log(total)


def solve_tree(model: UAIModel) -> UAISolution:
    """Exact marginals and ``log10 Z`` of a tree-structured model by sum-product.

    Independent of the grammar code: it reads only the model (e.g. from :func:`read_uai`).
    Messages are normalised at every step, their log scales summed, so nothing underflows.

    Parameters
    ----------
    model : UAIModel
        A model whose factor graph is a forest (no cycle).

    Returns
    -------
    UAISolution
        NaN marginals and ``-inf`` when ``Z = 0``.

    Raises
    ------
    InputError
        If the factor graph has a cycle.

    Examples
    --------
    >>> tables = (np.array([0.3, 0.7]), np.array([[1.0, 0.0], [0.5, 0.5]]))
    >>> sol = solve_tree(UAIModel((2, 2), ((0,), (0, 1)), tables))
    >>> sol.marginals[1].round(12).tolist(), round(10**sol.log10_z, 12)
    ([0.65, 0.35], 1.0)
    """
    order = _forest_order(model)
    position = {v: k for k, (v, _) in enumerate(order)}
    unary_of: list[list[int]] = [[] for _ in range(model.n_variables)]
    below: list[list[int]] = [[] for _ in range(model.n_variables)]  # factors hanging under v
    log_z = 0.0
    for f, scope in enumerate(model.scopes):
        if len(scope) == 0:  # a constant factor
            value = float(model.tables[f])
            log_z += math.log(value) if value > 0 else -math.inf
        elif len(scope) == 1:
            unary_of[scope[0]].append(f)
        else:  # the variable reached first is the factor's top; the others hang below it
            below[min(scope, key=position.__getitem__)].append(f)

    def own(v: int) -> np.ndarray:
        out = np.ones(model.cards[v])
        for f in unary_of[v]:
            out = out * model.tables[f]
        return out

    # upward: up[v] is the normalised message from v's subtree into the factor above v
    up: dict[int, np.ndarray] = {}
    to_top: dict[int, np.ndarray] = {}
    for v, _ in reversed(order):
        belief = own(v)
        for f in below[v]:
            scope = model.scopes[f]
            msgs = {a: up[w] for a, w in enumerate(scope) if w != v}
            msg, log_scale = _normalised(_contract(model.tables[f], msgs, scope.index(v)))
            log_z += log_scale
            to_top[f] = msg
            belief = belief * msg
        up[v], log_scale = _normalised(belief)
        log_z += log_scale
    if not log_z > -math.inf:
        return UAISolution(tuple(np.full(c, np.nan) for c in model.cards), -math.inf)

    # downward: down[v] is the normalised message into v from the factor above it
    down = {v: np.ones(model.cards[v]) for v, parent in order if parent is None}
    marginals: list[np.ndarray] = [np.empty(0)] * model.n_variables
    for v, _ in order:
        inside = own(v) * down[v]
        full = inside
        for f in below[v]:
            full = full * to_top[f]
        marginals[v] = _normalised(full)[0]
        for f in below[v]:
            scope = model.scopes[f]
            out = inside  # everything v receives except f's own message
            for g in below[v]:
                if g != f:
                    out = out * to_top[g]
            out = _normalised(out)[0]
            for axis, w in enumerate(scope):
                if w == v:
                    continue
                msgs = {scope.index(v): out}
                msgs.update({a: up[u] for a, u in enumerate(scope) if u not in (v, w)})
                down[w] = _normalised(_contract(model.tables[f], msgs, axis))[0]
    return UAISolution(tuple(marginals), log_z / math.log(10.0))
