"""Grammars as pgmpy / pyAgrum / networkx graphs: structure and tables checked against the
grammar's rules directly, and the distributions against brute-force enumeration (uniform RHMs,
and weighted, ambiguous grammars with tuples listed twice)."""

from __future__ import annotations

import itertools
import warnings

import networkx as nx
import numpy as np
import pytest

from hiergrammar import Grammar, graphs
from hiergrammar.bruteforce import brute_force_marginals
from hiergrammar.rhm import RHM


@pytest.fixture(scope="module")
def rhm() -> RHM:
    return RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=3)


@pytest.fixture(scope="module")
def rhm3() -> RHM:
    # s = 3 so that argument order inside the factors matters
    return RHM(v=3, n_classes=2, m=3, s=3, L=1, seed=5)


def _rule_weights(grammar, level: int) -> dict[tuple[int, ...], float]:
    """(a, b_1..b_s) -> the probability that a writes these children, summed over its rules."""
    out: dict[tuple[int, ...], float] = {}
    for a in range(grammar.card(level)):
        for t, p in zip(grammar.rules[level][a], grammar.rule_probs[level][a], strict=True):
            key = (a, *map(int, t))
            out[key] = out.get(key, 0.0) + float(p)
    return out


@pytest.fixture(scope="module")
def weighted() -> Grammar:
    """Weighted and ambiguous: (0, 1) belongs to both level-1 symbols, and symbol 1 lists
    (1, 1) twice; the root's rule laws differ by symbol."""
    return Grammar(
        {
            1: np.array([[[0, 1], [1, 0]], [[0, 1], [1, 1]], [[1, 1], [1, 1]]]),
            2: np.array([[[0, 2], [1, 1], [2, 0]], [[2, 2], [0, 1], [0, 0]]]),
        },
        rule_probs={
            1: [[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]],
            2: [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]],
        },
        root_prior=[0.4, 0.6],
        v=2,
    )


def test_names_round_trip():
    assert graphs.node_name(3, 0) == "h3_0"
    assert graphs.node_name(0, 5) == "h0_5"
    assert graphs.parse_name("h0_5") == ("h", 0, 5)
    assert graphs.parse_name(graphs.rule_name(2, 7)) == ("r", 2, 7)
    with pytest.raises(ValueError, match="not of the form"):
        graphs.parse_name("x1_2")


@pytest.mark.parametrize("fixture", ["rhm", "rhm3", "weighted"])
def test_factor_graph_checks_and_factor_values_are_rule_probabilities(fixture, request):
    rhm = request.getfixturevalue(fixture)
    ev = np.random.default_rng(0).uniform(0.1, 1.0, (rhm.d, rhm.cards[0]))
    fg = graphs.to_factor_graph(rhm, evidence=ev)
    assert fg.check_model()
    names = set(graphs.variable_names(rhm))
    assert set(fg.get_variable_nodes()) == names
    cards = fg.get_cardinality()
    for name in names:
        _, level, _ = graphs.parse_name(name)
        assert cards[name] == rhm.card(level)
    n_internal = sum(rhm.width(l) for l in range(1, rhm.L + 1))
    assert len(fg.get_factors()) == n_internal + 1 + rhm.d

    seen_rule_factors = 0
    for phi in fg.get_factors():
        scope = phi.scope()
        kinds = [graphs.parse_name(x) for x in scope]
        if len(scope) == 1 and kinds[0][1] == 0 and rhm.L > 0:
            np.testing.assert_array_equal(phi.values, ev[kinds[0][2]])  # leaf evidence
        elif len(scope) == 1:
            np.testing.assert_allclose(phi.values, rhm.root_prior)
        else:
            seen_rule_factors += 1
            _, level, i = kinds[0]
            # the children, in order, of node (level, i)
            assert [k[1:] for k in kinds[1:]] == [(level - 1, rhm.s * i + j) for j in range(rhm.s)]
            weights = _rule_weights(rhm, level)
            for idx in itertools.product(*(range(c) for c in phi.cardinality)):
                assert phi.values[idx] == pytest.approx(weights.get(idx, 0.0), abs=1e-15), idx
            # every factor node is linked to exactly its scope
            assert set(fg.neighbors(phi)) == set(scope)
    assert seen_rule_factors == n_internal


@pytest.mark.parametrize("fixture", ["rhm", "weighted"])
def test_factor_graph_partition_function_is_the_evidence_probability(fixture, request):
    # Z of the factor graph = P(evidence) under the (weighted) grammar, from enumeration.
    rhm = request.getfixturevalue(fixture)
    ev = np.random.default_rng(1).uniform(0.0, 1.0, (rhm.d, rhm.cards[0]))
    prior = np.array([0.3, 0.7])
    fg = graphs.to_factor_graph(rhm, evidence=ev, root_prior=prior)
    z = fg.get_partition_function()
    bf = brute_force_marginals(rhm, ev, root_prior=prior)
    assert np.log(z) == pytest.approx(bf.log_evidence[0], abs=1e-12)


def test_bayesian_network_cpds(rhm3):
    rhm = rhm3
    bn = graphs.to_bayesian_network(rhm, root_prior=np.array([1.0, 3.0]))
    assert bn.check_model()
    n_internal = sum(rhm.width(l) for l in range(1, rhm.L + 1))
    assert len(bn.nodes()) == sum(rhm.width(l) for l in range(rhm.L + 1)) + n_internal
    for cpd in bn.get_cpds():
        table = cpd.get_values()  # (card, prod parent cards)
        np.testing.assert_allclose(table.sum(axis=0), 1.0, atol=1e-15)
        kind, level, i = graphs.parse_name(cpd.variable)
        if kind == "r":
            np.testing.assert_allclose(table[:, 0], 1.0 / rhm.m)
        elif level == rhm.L:
            np.testing.assert_allclose(table[:, 0], [0.25, 0.75])
        else:
            parent = i // rhm.s
            assert cpd.variables[1:] == [
                graphs.node_name(level + 1, parent),
                graphs.rule_name(level + 1, parent),
            ]
            # deterministic: child value = position (i % s) of rule r of parent value a
            for a in range(rhm.card(level + 1)):
                for r in range(rhm.m):
                    col = cpd.reduce(
                        [
                            (graphs.node_name(level + 1, parent), a),
                            (graphs.rule_name(level + 1, parent), r),
                        ],
                        inplace=False,
                    ).values
                    expect = np.zeros(rhm.card(level))
                    expect[rhm.rules[level + 1][a, r, i % rhm.s]] = 1.0
                    np.testing.assert_array_equal(col, expect)


@pytest.mark.parametrize("fixture", ["rhm", "weighted"])
def test_bayesian_network_with_virtual_evidence_matches_brute_force(fixture, request):
    # For the ambiguous grammar the rule choice is not determined by the symbols; the BN's
    # marginal over them is still the grammar's distribution.
    from pgmpy.inference import VariableElimination

    rhm = request.getfixturevalue(fixture)
    rng = np.random.default_rng(2)
    ev = rng.uniform(0.0, 3.0, (rhm.d, rhm.cards[0]))
    bf = brute_force_marginals(rhm, ev)
    bn = graphs.to_bayesian_network(rhm)
    virtual = graphs.virtual_evidence_cpds(rhm, ev)
    for cpd in virtual:
        np.testing.assert_allclose(cpd.get_values().sum(), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for level in range(rhm.L + 1):
            for i in range(rhm.width(level)):
                q = VariableElimination(bn).query(
                    [graphs.node_name(level, i)], virtual_evidence=virtual, show_progress=False
                )
                np.testing.assert_allclose(q.values, bf.marginals[level][0, i], atol=1e-12)


def test_weighted_bayesian_network_rule_choice_depends_on_the_parent(weighted):
    bn = weighted.to_bayesian_network()
    assert bn.check_model()
    assert set(bn.get_parents("r2_0")) == {"h2_0"}
    np.testing.assert_allclose(bn.get_cpds("r2_0").get_values(), weighted.rule_probs[2].T)
    assert set(bn.get_parents("r1_1")) == {"h1_1"}
    # the uniform RHM keeps parentless rule choices with the shared row
    uniform = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0).to_bayesian_network()
    assert uniform.get_parents("r1_0") == []


@pytest.mark.parametrize("fixture", ["rhm3", "weighted"])
def test_pyagrum_bayesian_network_tables(fixture, request):
    pytest.importorskip("pyagrum")
    rhm3 = request.getfixturevalue(fixture)
    bn = graphs.to_pyagrum_bayesian_network(rhm3)
    tables = graphs.bn_tables(rhm3)
    assert bn.size() == len(tables)
    for t in tables:
        cpt = bn.cpt(t.name)
        arr = t.values.reshape((t.card,) + t.parent_cards)
        for idx in np.ndindex(*arr.shape):
            inst = {t.name: idx[0], **{p: idx[k + 1] for k, p in enumerate(t.parents)}}
            assert cpt[inst] == arr[idx]


def test_tree_graph_structure(rhm3):
    for model in (rhm3, RHM(v=4, n_classes=3, m=2, s=2, L=3, seed=0)):
        g = graphs.tree_graph(model)
        n_nodes = sum(model.width(l) for l in range(model.L + 1))
        assert g.number_of_nodes() == n_nodes
        assert nx.is_arborescence(g)
        root = graphs.node_name(model.L, 0)
        assert g.in_degree(root) == 0
        assert nx.shortest_path_length(g, root, graphs.node_name(0, model.d - 1)) == model.L
        for name, data in g.nodes(data=True):
            assert graphs.parse_name(name) == ("h", data["level"], data["index"])
            assert data["card"] == model.card(data["level"])
            children = list(g.successors(name))
            if data["level"] == 0:
                assert children == []
            else:
                assert children == [
                    graphs.node_name(data["level"] - 1, model.s * data["index"] + j)
                    for j in range(model.s)
                ]
        assert model.to_networkx().edges == g.edges


def test_drawings(rhm, tmp_path):
    from hiergrammar.artifacts import save_figure

    data = rhm.sample(1, seed=0)
    ax = graphs.draw_tree(rhm, values=data)
    labels = {t.get_text() for t in ax.texts}
    assert f"h{rhm.L}_0\n{int(data.y[0])}" in labels
    assert len(ax.texts) == sum(rhm.width(l) for l in range(rhm.L + 1))
    save_figure(ax.figure, tmp_path / "tree.png")
    assert (tmp_path / "tree.png").stat().st_size > 0

    ax = graphs.draw_factor_graph(rhm)
    markers = [
        len(c.get_offsets())
        for c in ax.collections
        if hasattr(c, "get_offsets") and len(c.get_offsets())
    ]
    n_var = sum(rhm.width(l) for l in range(rhm.L + 1))
    n_fac = 1 + sum(rhm.width(l) for l in range(1, rhm.L + 1)) + rhm.d
    assert n_var in markers and n_fac in markers
    save_figure(ax.figure, tmp_path / "fg.png")


def test_validation(rhm):
    with pytest.raises(ValueError, match=r"shape \(s\*\*L, v\)"):
        graphs.to_factor_graph(rhm, evidence=np.ones((rhm.d + 1, rhm.v)))
    with pytest.raises(ValueError, match="evidence >= 0"):
        graphs.to_factor_graph(rhm, evidence=-np.ones((rhm.d, rhm.v)))
    bad = np.ones((rhm.d, rhm.v))
    bad[1] = 0
    with pytest.raises(ValueError, match="sum over values > 0"):
        graphs.check_leaf_evidence(rhm, bad)
    with pytest.raises(ValueError, match="root_prior must have shape"):
        graphs.to_bayesian_network(rhm, root_prior=np.ones(rhm.n_classes + 1))
    with pytest.raises(ValueError, match="root_prior violates"):
        graphs.to_bayesian_network(rhm, root_prior=np.zeros(rhm.n_classes))
    with pytest.raises(ValueError, match="1 <= level <= L"):
        graphs.rule_tensor(rhm, 0)
    big = RHM(v=300, n_classes=2, m=2, s=3, L=1, seed=0)
    with pytest.raises(ValueError, match="MAX_FACTOR_ENTRIES"):
        graphs.rule_tensor(big, 1)
