"""The Sparse RHM and the filtered grammars: our exact tree distribution (enumerated from the
arrays, ``tests/grammar_reference.py``) equals the public generators' definitions, computed here
independently from their procedures; our sampler passes chi-square tests against them."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats

from hiergrammar import RHM, Grammar, InputError, filtered_grammar, sparse_rhm
from hiergrammar.families import sparsify
from tests.grammar_reference import (
    chi_square_pvalue,
    enumerate_grammar,
    joint_root_leaves,
    tally,
)

ALPHA = 1e-3


def _product_law(parts):
    """Law of the concatenation of independent leaf blocks (dicts block -> prob)."""
    out = {(): 1.0}
    for part in parts:
        nxt: dict = defaultdict(float)
        for head, p in out.items():
            for tail, q in part.items():
                nxt[head + tail] += p * q
        out = dict(nxt)
    return out


# -- the Sparse RHM ------------------------------------------------------------------------------
def sparse_definition(features, v, m, s, s0, L, n_classes):
    """``P(class, leaves)`` following ``hierarchical_s0_bs_S.py``: the canonical layout of a
    rule puts ``s0`` uninformative symbols ``v`` before each informative child (``add_spec``);
    each node then draws a rule uniformly among ``m`` and, per patch, a slot ``i`` uniformly in
    ``0..s0``, swapping slots ``i`` and ``s0`` of the patch (``create_perms``); the
    uninformative symbol expands into itself. ``features[depth]`` are the canonical rules,
    root first."""
    spec, patch = v, s0 + 1
    swaps = list(itertools.product(range(patch), repeat=s))

    def canonical(t):
        out = []
        for child in t:
            out += [spec] * s0 + [int(child)]
        return out

    def arrange(layout, choice):
        out = list(layout)
        for k, i in enumerate(choice):
            a, b = k * patch + i, k * patch + s0
            out[a], out[b] = out[b], out[a]
        return out

    def law(symbol, depth):
        if depth == L:
            return {(symbol,): 1.0}
        if symbol == spec and depth > 0:
            return _product_law([law(spec, depth + 1)] * (s * patch))
        total: dict = defaultdict(float)
        for r in range(m):
            layout = canonical(features[depth][symbol][r])
            for choice in swaps:
                children = arrange(layout, choice)
                for leaves, p in _product_law([law(c, depth + 1) for c in children]).items():
                    total[leaves] += p / (m * len(swaps))
        return dict(total)

    return {(c, x): p / n_classes for c in range(n_classes) for x, p in law(c, 0).items()}


@pytest.mark.parametrize(
    "params",
    [
        dict(v=2, n_classes=2, m=1, s=2, s0=1, L=2, seed=3),
        dict(v=3, n_classes=2, m=2, s=2, s0=1, L=1, seed=0),
        dict(v=3, n_classes=3, m=1, s=2, s0=2, L=1, seed=5),
    ],
)
def test_sparse_rhm_tree_distribution_equals_the_generators_definition(params):
    g = sparse_rhm(**params)
    seed = params.pop("seed")
    s0 = params.pop("s0")
    base = RHM(**{k: params[k] for k in ("v", "n_classes", "m", "s", "L")}, seed=seed)
    features = [base.rules[base.L - depth] for depth in range(base.L)]  # root first
    expected = sparse_definition(features, s0=s0, **params)
    ours = joint_root_leaves(enumerate_grammar(g))
    assert set(ours) == set(expected)
    for key, p in expected.items():
        assert math.isclose(ours[key], p, rel_tol=1e-12)
    v, s, L = params["v"], params["s"], params["L"]
    assert g.s == s * (s0 + 1) and g.d == (s * (s0 + 1)) ** L
    assert g.cards == (v + 1,) * L + (params["n_classes"],) and g.is_unambiguous
    assert g.metadata["family"] == "sparse_rhm" and g.metadata["s0"] == s0


def test_sparse_rhm_sampler_matches_the_definition():
    g = sparse_rhm(v=3, n_classes=2, m=2, s=2, s0=1, L=1, seed=0)
    base = RHM(3, 2, 2, 2, 1, seed=0)
    expected = sparse_definition([base.rules[1]], 3, 2, 2, 1, 1, 2)
    n = 20000
    data = g.sample(n, seed=2)
    counts = tally(zip(data.y.tolist(), map(tuple, data.x.tolist()), strict=True))
    assert chi_square_pvalue(counts, expected, n) > ALPHA
    parsed = g.parse(data.x)
    assert parsed.valid.all() and np.array_equal(parsed.y, data.y)


def test_uninformative_symbol_expands_only_into_itself():
    g = sparse_rhm(v=4, n_classes=2, m=2, s=2, s0=2, L=3, seed=1)
    for level in (1, 2):
        assert np.all(g.rules[level][-1] == g.cards[level - 1] - 1)
        informative = g.rules[level][:-1]
        blanks = (informative == g.cards[level - 1] - 1).reshape(*informative.shape[:2], 2, 3)
        assert np.all(blanks.sum(axis=-1) == 2)  # one informative child per patch of 3 slots
    data = g.sample(100, seed=0)
    assert np.all((data.x == 4).sum(axis=1) >= 27 * 2 * 3 - 27)  # blanks dominate the input


def test_sparsify_keeps_weights_and_s0_zero_is_the_base():
    base = RHM(v=4, n_classes=2, m=3, s=2, L=2, seed=0, rule_law="zipf", zipf_a=1.0)
    same = sparsify(base, 0)
    assert same.cards == base.cards and same.s == 2
    for level in (1, 2):
        np.testing.assert_array_equal(same.rules[level], base.rules[level])
    g = sparsify(base, 1)
    # Rule r of symbol a becomes 4 placements, each of probability p / 4.
    np.testing.assert_allclose(g.rule_probs[2][:, ::4] * 4, base.rule_probs[2])
    assert g.metadata["base"]["rule_law"] == "zipf"
    with pytest.raises(InputError, match=r"s0=-1 violates s0 >= 0"):
        sparsify(base, -1)


# -- the filtered grammars -----------------------------------------------------------------------
def their_get_M(q, sigma, rng):
    """``get_M`` of gen_filtered_hierarchical_data.py: shuffle the q**2 ordered pairs, deal q to
    each parent, Gaussian logits of width sigma on the owned pairs, softmax per parent."""
    pairs = np.array([(i, j) for i in range(q) for j in range(q)])
    rng.shuffle(pairs)
    M = np.zeros((q, q, q))
    for a in range(q):
        logits = np.full((q, q), -np.inf)
        for b, c in pairs[a * q : (a + 1) * q]:
            logits[b, c] = sigma * rng.standard_normal()
        e = np.exp(logits - logits.max())
        M[a] = e / e.sum()
    return M


def their_P_xlevel_root(M, level):
    """``get_P_xlevel_root``: for depth-``level`` node ``i``, the product of M_L (bit 0) or M_R
    (bit 1) over the binary digits of ``2**level + i`` after the leading 1."""
    q = M.shape[0]
    ML, MR = M.sum(axis=2), M.sum(axis=1)
    probs = np.empty((q, q, 2**level))
    for i in range(2**level):
        P = np.eye(q)
        for bit in bin(2**level + i)[3:]:
            P = P @ (ML if bit == "0" else MR)
        probs[:, :, i] = P
    return probs


def filtered_definition(M, L, k):
    """``P(root, leaves)`` of ``gen_tree``/``get_leaves``: uniform root; the 2**k depth-k nodes
    drawn independently from ``probs[x0, :, i]``; then ordered pairs ``(b, c) ~ M[a]``."""
    q = M.shape[0]
    probs = their_P_xlevel_root(M, k)

    def law(a, depth):  # leaves below a node of this depth with symbol a
        if depth == L:
            return {(a,): 1.0}
        out: dict = defaultdict(float)
        for b, c in itertools.product(range(q), repeat=2):
            if M[a, b, c] > 0:
                for leaves, p in _product_law([law(b, depth + 1), law(c, depth + 1)]).items():
                    out[leaves] += M[a, b, c] * p
        return dict(out)

    joint: dict = defaultdict(float)
    for x0 in range(q):
        node_laws = []
        for i in range(2**k):
            mix: dict = defaultdict(float)
            for z in range(q):
                if probs[x0, z, i] > 0:
                    for leaves, p in law(z, k).items():
                        mix[leaves] += probs[x0, z, i] * p
            node_laws.append(mix)
        for leaves, p in _product_law(node_laws).items():
            joint[(x0, leaves)] += p / q
    return dict(joint)


@pytest.mark.parametrize(
    "q, L, k", [(2, 3, 0), (2, 3, 1), (2, 3, 2), (2, 3, 3), (3, 2, 1), (3, 2, 2)]
)
def test_filtered_grammar_equals_the_generators_definition(q, L, k):
    M = their_get_M(q, 1.3, np.random.default_rng(10 * L + k))
    g = filtered_grammar(q, L, sigma=1.3, k=k, M=M)
    expected = filtered_definition(M, L, k)
    ours = joint_root_leaves(enumerate_grammar(g))
    keys = {key for key, p in expected.items() if p > 1e-300}
    assert set(ours) == keys
    for key in keys:
        assert math.isclose(ours[key], expected[key], rel_tol=1e-10)
    assert g.cards[L] == q and g.cards[0] == q and g.s == 2
    assert g.is_unambiguous or k > 0  # below the factorised top, M is a partition
    assert all(g.cards[L - j] == q * 2**j for j in range(1, k))


def test_filtered_sampler_and_parser_match_the_definition():
    M = their_get_M(3, 1.0, np.random.default_rng(1))
    g = filtered_grammar(3, 2, sigma=1.0, k=1, M=M)
    expected = filtered_definition(M, 2, 1)
    n = 20000
    data = g.sample(n, seed=5)
    counts = tally(zip(data.y.tolist(), map(tuple, data.x.tolist()), strict=True))
    assert chi_square_pvalue(counts, expected, n) > ALPHA
    # Parse counts equal the number of trees per string in the enumeration.
    trees_per_string = defaultdict(int)
    for levels in enumerate_grammar(g):
        trees_per_string[levels[0]] += 1
    strings = np.array(sorted(trees_per_string))
    res = g.parse(strings)
    np.testing.assert_allclose(
        np.exp(res.log_n_parses), [trees_per_string[tuple(x)] for x in strings.tolist()]
    )


def test_filtered_draw_follows_get_M():
    q, sigma, draws = 4, 0.8, 200
    owners = np.zeros((q, q * q))
    variances = []
    for seed in range(draws):
        g = filtered_grammar(q, 1, sigma=sigma, seed=seed)
        rules, probs = g.rules[1], g.rule_probs[1]  # (q, q, 2), (q, q)
        codes = rules[..., 0] * q + rules[..., 1]
        assert sorted(codes.ravel().tolist()) == list(range(q * q))  # a partition of the pairs
        for a in range(q):
            owners[a, codes[a]] += 1
        logp = np.log(probs)
        variances += (
            ((logp - logp.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / (q - 1)
        ).tolist()
    # Each pair goes to each parent with probability 1/q (chi-square per pair, pooled).
    stat = (((owners - draws / q) ** 2) / (draws / q)).sum()
    assert stats.chi2.sf(stat, df=(q - 1) * q * q) > ALPHA
    # Log-weights are Gaussian logits of width sigma: the unbiased per-row variance is sigma**2.
    se = sigma**2 * np.sqrt(2 / ((q - 1) * len(variances)))
    assert abs(np.mean(variances) - sigma**2) < 5 * se
    uniform = filtered_grammar(q, 2, sigma=0.0, seed=0)
    np.testing.assert_allclose(uniform.rule_probs[1], 1 / q)


def test_filtered_grammar_structure_and_errors():
    g = filtered_grammar(q=2, L=4, sigma=0.5, k=3, seed=1)
    assert g.cards == (2, 2, 8, 4, 2)
    np.testing.assert_array_equal(g.rules[4][:, 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(g.rules[3][:, 0], 2 * np.arange(4)[:, None] + [0, 1])
    assert g.metadata == {
        "family": "filtered_grammar",
        "q": 2,
        "L": 4,
        "sigma": 0.5,
        "k": 3,
        "seed": 1,
        "M": "drawn",
    }
    data = g.sample(50, seed=0)
    np.testing.assert_array_equal(data.levels[3][:, 0] // 2, data.y)  # carries the root's symbol
    with pytest.raises(InputError, match=r"k=3 violates 0 <= k <= 2"):
        filtered_grammar(2, 2, 1.0, k=3)
    with pytest.raises(InputError, match=r"M must have shape \(2, 2, 2\)"):
        filtered_grammar(2, 2, 1.0, M=np.ones((3, 3, 3)) / 9)
    with pytest.raises(InputError, match=r"M\[a\] must sum to 1"):
        filtered_grammar(2, 2, 1.0, M=np.ones((2, 2, 2)))
    with pytest.raises(InputError, match=r"sigma=-1\.0 violates 0\.0 <= sigma"):
        filtered_grammar(2, 2, -1.0)
    dense = np.full((2, 2, 2), 0.25)  # every parent owns every pair: an ambiguous grammar
    assert not filtered_grammar(2, 2, 0.0, M=dense).is_unambiguous
    assert isinstance(g, Grammar)
