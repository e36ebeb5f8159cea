"""Grammars as explicit graphical models: a pgmpy factor graph, a pgmpy / pyAgrum Bayesian
network, a networkx tree, and drawings of them.

Every :class:`~hiergrammar.grammar.Grammar` has these views (weighted rules, per-level
cardinalities and ambiguous grammars included); ``grammar.to_factor_graph()``,
``grammar.to_bayesian_network()``, ``grammar.to_pyagrum_bayesian_network()`` and
``grammar.to_networkx()`` call the functions here.

Variable names
--------------
Every tree node is a variable named ``"h{level}_{index}"`` (:func:`node_name`): ``"h3_0"`` is the
root of a depth-3 model, ``"h0_5"`` the sixth leaf. Level ``L`` is the class, level 0 the input,
as in the paper; the children of ``h{l}_{i}`` are ``h{l-1}_{s*i} .. h{l-1}_{s*i+s-1}``. The
Bayesian-network form adds one rule-choice variable ``"r{level}_{index}"`` (:func:`rule_name`)
per internal node, with values ``0..m_l-1``.

Two exact forms of the same distribution
----------------------------------------
* :func:`to_factor_graph`: variables ``h``, one factor per internal node,
  ``psi(a; b_1..b_s) = sum_r rule_probs[a, r] [rules[a, r] = (b_1..b_s)]`` (the probability
  that ``a`` writes these children: ``1/m`` on the RHM's rules), a root prior factor and
  optional leaf evidence factors (docs/model.md §3). The product of the factors is the
  grammar's joint distribution of the tree's symbols, so the partition function with leaf
  evidence is ``P(evidence)``, the ``log_evidence`` of :func:`hiergrammar.bp.tree_bp`. It is
  exact for ambiguous grammars too: a factor adds up every rule that writes the same children.
* :func:`to_bayesian_network`: the generative process written as a DAG. Given its parent ``a``
  the ``s`` children of a node are *jointly* drawn (one of ``a``'s tuples), which no product of
  per-child CPDs ``P(b_j | a)`` can express. A rule-choice variable ``r`` per internal node
  restores the factorisation: ``P(r | a) = rule_probs[a, r]`` (a CPD with parent ``h`` when the
  rows of ``rule_probs`` differ; a parentless one when they are equal, as in the uniform RHM),
  and each child is a deterministic CPD ``P(b_j | a, r) = [b_j == rules[l][a, r, j]]``. The
  joint of ``(h, r)`` is ``prior(y) prod_nodes rule_probs[a, r] [children = rules[a, r]]``;
  summing out ``r`` gives, node by node, ``sum_r rule_probs[a, r] [children = rules[a, r]]``,
  the factor above. So the BN's marginal over ``h`` is the grammar's distribution, also for an
  ambiguous grammar (several rule choices, even a tuple listed twice, may give the same
  children: ``r`` is then not determined by ``h``, which only the ``h``-marginal needs).

Leaf evidence is a likelihood vector per leaf (soft evidence). In the factor graph it is a unary
factor; in the BN it is passed to pgmpy as ``virtual_evidence`` (:func:`virtual_evidence_cpds`),
which pgmpy implements by adding an observed binary child ``__h0_i`` with
``P(__h0_i = 0 | h0_i) = evidence``. pyAgrum takes the same vectors as likelihood evidence.

pgmpy (which imports torch, and takes seconds to import) and pyAgrum are imported inside the
functions that need them, so importing this module stays cheap.

Examples
--------
>>> from hiergrammar.rhm import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
>>> fg = to_factor_graph(rhm)
>>> fg.check_model()
True
>>> sorted(fg.get_variable_nodes())[:3]
['h0_0', 'h0_1', 'h0_2']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar import evidence as _evidence
from hiergrammar.validation import InputError, check_memory

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx
    from pgmpy.models import DiscreteBayesianNetwork, FactorGraph

    from hiergrammar.grammar import Grammar

__all__ = [
    "MAX_FACTOR_ENTRIES",
    "node_name",
    "rule_name",
    "parse_name",
    "variable_names",
    "check_leaf_evidence",
    "check_root_prior",
    "rule_tensor",
    "to_factor_graph",
    "CPT",
    "bn_tables",
    "to_bayesian_network",
    "virtual_evidence_cpds",
    "to_pyagrum_bayesian_network",
    "tree_graph",
    "tree_layout",
    "draw_tree",
    "draw_factor_graph",
]

_NAME_RE = re.compile(r"^([hr])(\d+)_(\d+)$")

#: Largest dense rule tensor (entries of one 0/1 factor, ``card_l * card_{l-1}**s``) built.
MAX_FACTOR_ENTRIES = 1 << 24


# -- names ---------------------------------------------------------------------------------------
def node_name(level: int, index: int) -> str:
    """Name of tree node ``index`` at ``level``: ``"h{level}_{index}"``.

    Examples
    --------
    >>> node_name(3, 0), node_name(0, 5)
    ('h3_0', 'h0_5')
    """
    return f"h{int(level)}_{int(index)}"


def rule_name(level: int, index: int) -> str:
    """Name of the rule-choice variable of internal node ``(level, index)`` in the BN form.

    Examples
    --------
    >>> rule_name(2, 1)
    'r2_1'
    """
    return f"r{int(level)}_{int(index)}"


def parse_name(name: str) -> tuple[str, int, int]:
    """Inverse of :func:`node_name` / :func:`rule_name`: ``"h3_0" -> ("h", 3, 0)``.

    Examples
    --------
    >>> parse_name("r2_1")
    ('r', 2, 1)
    """
    match = _NAME_RE.match(name) if isinstance(name, str) else None
    if match is None:
        raise InputError(
            f"name={name!r} is not of the form 'h<level>_<index>' or 'r<level>_<index>'"
        )
    return match.group(1), int(match.group(2)), int(match.group(3))


def _child_names(rhm: Grammar, level: int, index: int) -> list[str]:
    """Names of the ``s`` children of node ``(level, index)``, in order."""
    return [node_name(level - 1, rhm.s * index + j) for j in range(rhm.s)]


def variable_names(rhm: Grammar) -> list[str]:
    """All tree-node names, root first, then level by level down to the leaves."""
    return [node_name(l, i) for l in range(rhm.L, -1, -1) for i in range(rhm.width(l))]


# -- input validation ----------------------------------------------------------------------------
def check_leaf_evidence(rhm: Grammar, evidence: Any, batched: bool = False) -> np.ndarray:
    """Validate leaf evidence (:func:`hiergrammar.evidence.check_leaf_evidence`).

    Parameters
    ----------
    rhm : Grammar
        The model.
    evidence : array_like
        One set, ``(s**L, v)`` or ``(1, s**L, v)``; with ``batched``, ``(n, s**L, v)`` or
        ``(s**L, v)``.
    batched : bool
        Accept ``n`` sets.

    Returns
    -------
    numpy.ndarray
        float64 ``(s**L, v)``, or ``(n, s**L, v)`` if ``batched``.

    Raises
    ------
    InputError
        On a bad shape or values; ``ZeroEvidenceError`` when a leaf's evidence is all zero.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> check_leaf_evidence(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0), np.ones((1, 2, 3))).shape
    (2, 3)
    """
    ev = _evidence.check_leaf_evidence(rhm, evidence, name="evidence", single=not batched)
    return ev if batched else ev[0]


def check_root_prior(rhm: Grammar, root_prior: Any) -> np.ndarray:
    """Validate a root prior; return it normalised, float64 ``(n_classes,)``; None -> the
    grammar's ``root_prior``.

    See :func:`hiergrammar.evidence.check_root_prior`.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> check_root_prior(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0), [2, 6]).tolist()
    [0.25, 0.75]
    """
    return _evidence.check_root_prior(rhm, root_prior)


def _dense_factor_entries(rhm: Grammar) -> int:
    """Entries of all dense rule factors of the factor graph (one per internal node)."""
    return sum(
        int(rhm.width(l)) * int(rhm.card(l)) * int(rhm.card(l - 1)) ** int(rhm.s)
        for l in range(1, rhm.L + 1)
    )


# -- rule tensors --------------------------------------------------------------------------------
def rule_tensor(rhm: Grammar, level: int) -> np.ndarray:
    """Dense rule factor of ``level``: shape ``(card_l,) + (card_{l-1},) * s``.

    ``T[a, b_1, ..., b_s] = sum_r rule_probs[a, r] [rules[a, r] = (b_1..b_s)]``: the probability
    that symbol ``a`` writes these children (``1/m`` on each rule of the uniform RHM, 0 off its
    rules).

    Parameters
    ----------
    rhm : Grammar
        The model.
    level : int
        ``1 <= level <= L``.

    Returns
    -------
    numpy.ndarray
        float64 ``(card_l,) + (card_{l-1},) * s``.

    Raises
    ------
    InputError
        On a bad level, or more than :data:`MAX_FACTOR_ENTRIES` entries.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> T = rule_tensor(rhm, 2)
    >>> T.shape, T.sum(axis=(1, 2)).tolist()    # (n_classes, v, v); each row a distribution
    ((2, 3, 3), [1.0, 1.0])
    """
    if isinstance(level, bool) or not isinstance(level, int | np.integer):
        raise InputError(f"level must be an integer, got {level!r}")
    if not 1 <= level <= rhm.L:
        raise InputError(f"level={level} violates 1 <= level <= L = {rhm.L}")
    card, child = int(rhm.card(level)), int(rhm.card(level - 1))
    entries = card * child**rhm.s
    if entries > MAX_FACTOR_ENTRIES:
        raise InputError(
            f"a dense rule factor of level {level} needs card*v**s = {entries} "
            f"entries, which exceeds MAX_FACTOR_ENTRIES = {MAX_FACTOR_ENTRIES}"
        )
    tensor = np.zeros((card,) + (child,) * rhm.s)
    rules = rhm.rules[level]  # (card, m, s)
    parents = np.repeat(np.arange(card), rules.shape[1])
    # Added, not set: a tuple listed twice among a parent's rules is drawn with the sum of
    # their probabilities.
    np.add.at(tensor, (parents,) + tuple(rules.reshape(-1, rhm.s).T), rhm.rule_probs[level].ravel())
    return tensor


# -- pgmpy factor graph --------------------------------------------------------------------------
def to_factor_graph(
    rhm: Grammar,
    evidence: np.ndarray | None = None,
    root_prior: np.ndarray | None = None,
    *,
    memory_budget: int | str | None = None,
    scale_to_one: bool = False,
) -> FactorGraph:
    """The grammar as a :class:`pgmpy.models.FactorGraph` (docs/model.md §3).

    Variables ``h{l}_{i}`` (:func:`node_name`) with cardinality ``card_l``. Factors:

    * one rule factor per internal node, ``DiscreteFactor([h{l}_{i}, h{l-1}_{s*i}, ...,
      h{l-1}_{s*i+s-1}])`` with value ``sum_r rule_probs[a, r] [children = rules[a, r]]``
      (:func:`rule_tensor`);
    * a root prior factor on ``h{L}_0`` (the grammar's ``root_prior`` by default);
    * with ``evidence`` of shape ``(s**L, v)``: one unary factor per leaf, its likelihood vector.

    The partition function is the evidence probability of
    :func:`hiergrammar.bruteforce.brute_force_marginals` and of :func:`hiergrammar.bp.tree_bp`.
    With ``scale_to_one`` every factor is divided by its maximum: no marginal changes (the
    partition function does), and the potentials stay clear of absolute tolerances such as
    the one of pgmpy's ``BeliefPropagation`` (see :mod:`hiergrammar.crosscheck`).

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> fg = to_factor_graph(rhm, evidence=rhm.sample(1).onehot()[0])
    >>> len(fg.get_factors())         # 3 rule factors + 1 prior + 4 leaf evidence factors
    8
    """
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.models import FactorGraph

    prior = check_root_prior(rhm, root_prior)
    ev = None if evidence is None else check_leaf_evidence(rhm, evidence)
    # pgmpy holds every rule factor as its own dense float64 table.
    check_memory(
        "the factor graph's dense rule factors", 8 * _dense_factor_entries(rhm), memory_budget
    )

    fg = FactorGraph()
    fg.add_nodes_from(variable_names(rhm))
    factors: list[DiscreteFactor] = []
    edges: list[tuple[Any, Any]] = []

    def add(scope: list[str], cards: list[int], values: np.ndarray) -> None:
        if scale_to_one and values.max() > 0:
            values = values / values.max()
        phi = DiscreteFactor(scope, cards, values)
        factors.append(phi)
        edges.extend((name, phi) for name in scope)

    add([node_name(rhm.L, 0)], [rhm.card(rhm.L)], prior)
    for level in range(rhm.L, 0, -1):
        tensor = rule_tensor(rhm, level)
        cards = list(tensor.shape)
        for i in range(rhm.width(level)):
            scope = [node_name(level, i)] + _child_names(rhm, level, i)
            # Each factor gets its own copy: pgmpy factors are mutable graph nodes.
            add(scope, cards, tensor.copy())
    if ev is not None:
        for i in range(rhm.d):
            add([node_name(0, i)], [rhm.cards[0]], ev[i])
    fg.add_factors(*factors)
    fg.add_nodes_from(factors)
    fg.add_edges_from(edges)
    return fg


# -- Bayesian networks ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CPT:
    """One conditional table of the BN form, library-neutral.

    ``values`` has shape ``(card, prod(parent_cards))`` with parent configurations in C order
    (first parent most significant), i.e. pgmpy's :class:`TabularCPD` layout.
    """

    name: str
    card: int
    parents: tuple[str, ...]
    parent_cards: tuple[int, ...]
    values: np.ndarray


def bn_tables(
    rhm: Grammar, root_prior: np.ndarray | None = None, *, memory_budget: int | str | None = None
) -> list[CPT]:
    """The CPTs of the rule-choice Bayesian network, parents before children.

    Root ``h{L}_0``: the prior (the grammar's by default). Rule choice ``r{l}_{i}``:
    ``P(r | a) = rule_probs[l][a, r]`` with parent ``h{l}_{i}``, or, where the rows of
    ``rule_probs[l]`` are all equal (the uniform RHM), the shared row without a parent. Child
    ``h{l-1}_{s*i+j}`` given ``(h{l}_{i}, r{l}_{i})``: deterministic, ``P(b | a, r) = [b ==
    rules[l][a, r, j]]``.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> zipf = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0, rule_law="zipf", zipf_a=1.0)
    >>> choice = bn_tables(zipf)[1]
    >>> choice.name, choice.parents, choice.values.round(2).tolist()   # P(r | h1_0)
    ('r1_0', ('h1_0',), [[0.2, 0.8], [0.8, 0.2]])
    """
    prior = check_root_prior(rhm, root_prior)
    entries = sum(
        rhm.width(l) * rhm.rules[l].shape[1] * rhm.card(l) * (rhm.s * rhm.card(l - 1) + 1)
        for l in range(1, rhm.L + 1)
    )
    check_memory("the Bayesian network's conditional tables", 8 * int(entries), memory_budget)
    tables = [CPT(node_name(rhm.L, 0), rhm.card(rhm.L), (), (), prior[:, None])]
    for level in range(rhm.L, 0, -1):
        card, child_card = rhm.card(level), rhm.card(level - 1)
        rules = rhm.rules[level]  # (card, m, s)
        probs = rhm.rule_probs[level]  # (card, m)
        m = rules.shape[1]
        shared = bool(np.all(probs == probs[:1]))  # one law for every parent symbol
        for i in range(rhm.width(level)):
            parent, choice = node_name(level, i), rule_name(level, i)
            if shared:
                tables.append(CPT(choice, m, (), (), probs[0][:, None].copy()))
            else:
                tables.append(CPT(choice, m, (parent,), (card,), probs.T.copy()))
            for j, child in enumerate(_child_names(rhm, level, i)):
                values = np.zeros((child_card, card * m))
                # column index = a * m + r (first parent most significant)
                values[rules[:, :, j].ravel(), np.arange(card * m)] = 1.0
                tables.append(CPT(child, child_card, (parent, choice), (card, m), values))
    return tables


def to_bayesian_network(
    rhm: Grammar, root_prior: np.ndarray | None = None, *, memory_budget: int | str | None = None
) -> DiscreteBayesianNetwork:
    """The grammar as a pgmpy ``DiscreteBayesianNetwork`` with rule-choice variables.

    Nodes: every ``h{l}_{i}`` and one ``r{l}_{i}`` (over ``0..m_l-1``) per internal node;
    edges ``h{l}_{i} -> h{l-1}_{s*i+j}``, ``r{l}_{i} -> h{l-1}_{s*i+j}`` and, when the rule
    probabilities depend on the parent symbol, ``h{l}_{i} -> r{l}_{i}``. CPDs are
    :func:`bn_tables`. Its marginal over the ``h`` is the grammar's distribution (see the
    module docstring). Leaf evidence goes in at query time, e.g.
    ``VariableElimination(bn).query(["h2_0"], virtual_evidence=virtual_evidence_cpds(rhm, ev))``.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> bn = to_bayesian_network(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0))
    >>> bn.check_model(), len(bn.nodes())   # 7 tree nodes + 3 rule choices
    (True, 10)
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    tables = bn_tables(rhm, root_prior, memory_budget=memory_budget)
    bn = DiscreteBayesianNetwork()
    bn.add_nodes_from(t.name for t in tables)
    bn.add_edges_from((p, t.name) for t in tables for p in t.parents)
    cpds = []
    for t in tables:
        if t.parents:
            cpds.append(
                TabularCPD(
                    t.name,
                    t.card,
                    t.values,
                    evidence=list(t.parents),
                    evidence_card=list(t.parent_cards),
                )
            )
        else:
            cpds.append(TabularCPD(t.name, t.card, t.values))
    bn.add_cpds(*cpds)
    return bn


def virtual_evidence_cpds(rhm: Grammar, evidence: np.ndarray) -> list:
    """Leaf evidence ``(s**L, v)`` as pgmpy virtual-evidence CPDs, one per leaf.

    Each likelihood vector is scaled to sum to 1 (pgmpy stores ``1 - values`` as the other
    state of its added indicator child, so values must lie in ``[0, 1]``); scaling a
    likelihood does not change any posterior.
    """
    from pgmpy.factors.discrete import TabularCPD

    ev = check_leaf_evidence(rhm, evidence)
    ev = ev / ev.sum(axis=1, keepdims=True)
    return [TabularCPD(node_name(0, i), rhm.cards[0], ev[i][:, None]) for i in range(rhm.d)]


def to_pyagrum_bayesian_network(
    rhm: Grammar, root_prior: np.ndarray | None = None, *, memory_budget: int | str | None = None
) -> Any:
    """The same rule-choice Bayesian network as a ``pyagrum.BayesNet`` (needs pyAgrum).

    Variables keep the names of :func:`to_bayesian_network`. Leaf evidence is then given as
    likelihoods, e.g. ``LazyPropagation(bn).addEvidence("h0_3", list_of_v_floats)``.
    """
    try:
        import pyagrum as gum
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "to_pyagrum_bayesian_network needs pyAgrum (pip install 'hiergrammar[engines]')"
        ) from err

    tables = bn_tables(rhm, root_prior, memory_budget=memory_budget)
    bn = gum.BayesNet("grammar")
    for t in tables:
        bn.add(gum.RangeVariable(t.name, t.name, 0, t.card - 1))
    for t in tables:
        for parent in t.parents:
            bn.addArc(parent, t.name)
    for t in tables:
        cpt = bn.cpt(t.name)
        # pyAgrum's array view orders axes by reversed cpt.names; build ours in that order.
        ours = (t.name,) + t.parents
        arr = t.values.reshape((t.card,) + t.parent_cards)
        perm = [ours.index(name) for name in cpt.names]
        cpt.fillWith(np.transpose(arr, perm).ravel(order="F").tolist())
    return bn


# -- networkx tree and drawings ------------------------------------------------------------------
def tree_graph(rhm: Grammar) -> nx.DiGraph:
    """The tree of variables as a networkx DiGraph, edges parent -> child.

    Node attributes: ``level``, ``index``, ``card``.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> g = tree_graph(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0))
    >>> g.number_of_nodes(), list(g.successors("h2_0")), g.nodes["h2_0"]["card"]
    (7, ['h1_0', 'h1_1'], 2)
    """
    import networkx as nx

    g = nx.DiGraph(s=rhm.s, L=rhm.L)
    for level in range(rhm.L, -1, -1):
        for i in range(rhm.width(level)):
            g.add_node(node_name(level, i), level=level, index=i, card=rhm.card(level))
    for level in range(rhm.L, 0, -1):
        for i in range(rhm.width(level)):
            g.add_edges_from((node_name(level, i), child) for child in _child_names(rhm, level, i))
    return g


def tree_layout(rhm: Grammar) -> dict[str, tuple[float, float]]:
    """Hierarchical positions: leaves at ``x = index``, ``y = 0``; every parent centred above
    its children at ``y = level``."""
    pos: dict[str, tuple[float, float]] = {}
    for i in range(rhm.d):
        pos[node_name(0, i)] = (float(i), 0.0)
    for level in range(1, rhm.L + 1):
        for i in range(rhm.width(level)):
            xs = [pos[child][0] for child in _child_names(rhm, level, i)]
            pos[node_name(level, i)] = (float(np.mean(xs)), float(level))
    return pos


def _node_labels(rhm: Grammar, values: Any) -> dict[str, str]:
    names = variable_names(rhm)
    if values is None:
        return {name: name for name in names}
    if hasattr(values, "levels"):  # an RHMSample / ParseResult: draw its first datum
        values = [np.asarray(lv)[0] for lv in values.levels]
    if isinstance(values, dict):
        return {name: f"{name}\n{values[name]}" if name in values else name for name in names}
    if len(values) != rhm.L + 1:
        raise InputError(f"values must hold L + 1 = {rhm.L + 1} levels, got {len(values)}")
    labels = {}
    for level in range(rhm.L + 1):
        row = np.asarray(values[level]).reshape(-1)
        if row.shape != (rhm.width(level),):
            raise InputError(
                f"values[{level}] must have shape ({rhm.width(level)},), got {row.shape}"
            )
        for i in range(rhm.width(level)):
            labels[node_name(level, i)] = f"{node_name(level, i)}\n{row[i]}"
    return labels


def draw_tree(rhm: Grammar, ax: Any = None, values: Any = None) -> Any:
    """Draw the variable tree with a hierarchical layout; returns the matplotlib Axes.

    ``values``: optional symbols to print under the names, either a sequence of ``L + 1``
    arrays (``values[l]`` of shape ``(width_l,)``), an :class:`~hiergrammar.rhm.RHMSample`
    (its first datum is drawn) or a dict name -> value.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> ax = draw_tree(rhm, values=rhm.sample(1))
    >>> len(ax.texts)                 # one label per node
    7
    >>> import matplotlib.pyplot as plt
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt
    import networkx as nx

    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.6 * rhm.d), 1.2 * (rhm.L + 1)))
    g = tree_graph(rhm)
    pos = tree_layout(rhm)
    small = g.number_of_nodes() <= 80  # labels only where they stay readable
    colors = [g.nodes[n]["level"] for n in g.nodes]
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=False, edge_color="0.6")
    nx.draw_networkx_nodes(
        g,
        pos,
        ax=ax,
        node_color=colors,
        cmap="viridis",
        node_size=500 if small else 40,
        edgecolors="k",
    )
    if small:
        nx.draw_networkx_labels(
            g,
            pos,
            labels=_node_labels(rhm, values),
            ax=ax,
            font_size=7,
            bbox={"fc": "white", "alpha": 0.7, "lw": 0},
        )
    ax.set_yticks(range(rhm.L + 1))
    ax.set_ylabel("level")
    ax.tick_params(left=True, labelleft=True)
    ax.set_title(f"tree of {rhm!r}")
    return ax


def draw_factor_graph(rhm: Grammar, ax: Any = None, evidence: bool = True) -> Any:
    """Draw the factor graph: variables as circles, factors as squares; returns the Axes.

    Rule factors sit half a level below their parent, the prior factor above the root, and
    (if ``evidence``) one evidence factor below each leaf.
    """
    import matplotlib.pyplot as plt
    import networkx as nx

    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.6 * rhm.d), 1.6 * (rhm.L + 1)))
    pos: dict[str, tuple[float, float]] = dict(tree_layout(rhm))
    variables = list(pos)
    g = nx.Graph()
    g.add_nodes_from(variables)
    factors = []
    root = node_name(rhm.L, 0)
    factors.append("prior")
    pos["prior"] = (pos[root][0], rhm.L + 0.5)
    g.add_edge("prior", root)
    for level in range(rhm.L, 0, -1):
        for i in range(rhm.width(level)):
            name = f"psi{level}_{i}"
            factors.append(name)
            pos[name] = (pos[node_name(level, i)][0], level - 0.5)
            g.add_edge(name, node_name(level, i))
            g.add_edges_from((name, child) for child in _child_names(rhm, level, i))
    if evidence:
        for i in range(rhm.d):
            name = f"e0_{i}"
            factors.append(name)
            pos[name] = (float(i), -0.5)
            g.add_edge(name, node_name(0, i))
    small = len(variables) <= 80
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color="0.6")
    nx.draw_networkx_nodes(
        g,
        pos,
        nodelist=variables,
        ax=ax,
        node_shape="o",
        node_color="white",
        edgecolors="k",
        node_size=450 if small else 40,
    )
    nx.draw_networkx_nodes(
        g,
        pos,
        nodelist=factors,
        ax=ax,
        node_shape="s",
        node_color="k",
        node_size=120 if small else 15,
    )
    if small:
        nx.draw_networkx_labels(g, pos, labels={n: n for n in variables}, ax=ax, font_size=6)
    ax.set_title(
        f"factor graph: {len(variables)} variables (circles), {len(factors)} factors (squares)"
    )
    ax.axis("off")
    return ax
