"""hiergrammar.Grammar: validation, sampling, parsing and interop, against enumeration of every
tree of tiny grammars (``tests/grammar_reference.py``) and chi-square tests."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from hiergrammar import RHM, Grammar, InputError
from hiergrammar import grammar as grammar_module
from tests.grammar_reference import chi_square_pvalue, enumerate_grammar, tally

#: Significance level of the chi-square tests: a correct sampler fails one with probability 1e-3.
ALPHA = 1e-3


def weighted_ambiguous() -> Grammar:
    """L=2, s=2, cards (3, 2, 2). Level 1: (0, 1) belongs to both symbols and is listed twice
    under symbol 1. Level 2: zero-probability rules that would otherwise be shared."""
    rules = {
        1: [[[0, 1], [1, 0], [2, 2]], [[0, 1], [1, 1], [0, 1]]],
        2: [[[0, 1], [1, 1], [1, 0]], [[1, 0], [0, 0], [0, 1]]],
    }
    probs = {1: [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], 2: [[0.7, 0.3, 0.0], [0.4, 0.6, 0.0]]}
    return Grammar({k: np.array(v) for k, v in rules.items()}, probs, root_prior=[0.35, 0.65])


def random_grammar(seed: int, L: int = 2, s: int = 2, max_card: int = 3, max_m: int = 3):
    """A random small grammar: random cards and rule counts per level, tuples drawn with
    replacement (so shared and repeated), Dirichlet probabilities with some zeros."""
    rng = np.random.default_rng(seed)
    cards = rng.integers(1, max_card + 1, size=L + 1)
    cards[0] = max(cards[0], 2)
    rules, probs = {}, {}
    for level in range(1, L + 1):
        m = int(rng.integers(1, max_m + 1))
        rules[level] = rng.integers(cards[level - 1], size=(cards[level], m, s))
        p = rng.dirichlet(np.ones(m), size=cards[level])
        if m > 1:
            p[rng.random(p.shape) < 0.2] = 0.0
            p[:, 0] += p.sum(axis=1) == 0  # keep every row a distribution
        probs[level] = p / p.sum(axis=1, keepdims=True)
    prior = rng.dirichlet(np.ones(cards[L]))
    return Grammar(rules, probs, prior, v=int(cards[0]))


# -- validation --------------------------------------------------------------------------------
GOOD = {1: np.array([[[0, 1], [1, 0]], [[1, 1], [0, 0]]]), 2: np.array([[[0, 1]]])}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rules=[GOOD[1]]), r"rules must be a dict keyed by the levels 1\.\.L"),
        (dict(rules={1: GOOD[1], 3: GOOD[2]}), r"keyed by the levels 1\.\.L.*\[1, 3\]"),
        (dict(rules={0: GOOD[1]}), r"keyed by the levels 1\.\.L"),
        (dict(rules={"1": GOOD[1]}), r"integer levels"),
        (dict(rules={1: GOOD[1] * 1.0}), r"rules\[1\] must hold integers, got dtype float64"),
        (dict(rules={1: GOOD[1] > 0}), r"rules\[1\] must hold integers, got dtype bool"),
        (dict(rules={1: GOOD[1][0]}), r"rules\[1\] must have shape \(card_l, m_l, s\)"),
        (dict(rules={1: np.zeros((0, 2, 2), int)}), r"card_l >= 1"),
        (dict(rules={1: np.zeros((2, 1, 1), int)}), r"s >= 2"),
        (dict(rules={1: GOOD[1], 2: np.zeros((1, 1, 3), int)}), r"inconsistent s"),
        (dict(rules={1: GOOD[1], 2: np.array([[[0, 2]]])}), r"tuple value out of range"),
        (dict(rules={1: GOOD[1], 2: np.array([[[0, 2]]])}), r"level 1 has 2 symbols"),
        (dict(rules={1: GOOD[1], 2: np.array([[[0, -1]]])}), r"value -1 .* out of range"),
        (dict(rules=GOOD, v=1), r"rules\[1\] holds the value 1 .* \[0, v\) = \[0, 1\)"),
        (dict(rules=GOOD, rule_probs={1: np.ones((2, 2)) / 2}), r"rule_probs has levels 1\.\.1"),
        (dict(rules=GOOD, rule_probs={1: np.ones((2, 3)) / 3, 2: [[1.0]]}), r"mismatched shapes"),
        (dict(rules=GOOD, rule_probs={1: [[1.5, -0.5], [0.5, 0.5]], 2: [[1]]}), r"negative prob"),
        (dict(rules=GOOD, rule_probs={1: [[0.5, 0.5], [0.5, 0.4]], 2: [[1]]}), r"row 1 sums to"),
        (dict(rules=GOOD, rule_probs={1: [[np.nan, 1], [0.5, 0.5]], 2: [[1]]}), r"finite"),
        (dict(rules=GOOD, root_prior=[0.5, 0.5]), r"root_prior has shape \(2,\).*mismatched"),
        (dict(rules={1: GOOD[1]}, root_prior=[0.5, 0.6]), r"root_prior sums to 1\.1"),
        (dict(rules={1: GOOD[1]}, root_prior=[1.5, -0.5]), r"root_prior holds a negative prob"),
    ],
)
def test_validation_names_the_violated_condition(kwargs, message):
    with pytest.raises(InputError, match=message):
        Grammar(**kwargs)


def test_attributes_and_shapes():
    g = weighted_ambiguous()
    assert g.cards == (3, 2, 2) and g.v == 3 and g.n_classes == 2 and (g.L, g.s) == (2, 2)
    assert (g.d, g.n_internal, g.n_nodes) == (4, 3, 7)
    assert [g.width(k) for k in range(3)] == [4, 2, 1] and [g.card(k) for k in range(3)] == [
        3,
        2,
        2,
    ]
    assert [g.n_rules(k) for k in (1, 2)] == [3, 3]
    assert g.n_trees == 2 * 3 * 3**2  # root symbols x rule choices of the 3 internal nodes
    for array in (*g.rules.values(), *g.rule_probs.values(), g.root_prior):
        with pytest.raises(ValueError):
            array[(0,) * array.ndim] = 0  # read-only: the parser caches tables of them
    with pytest.raises(InputError, match=r"level=3 violates 0 <= level <= L = 2"):
        g.width(3)
    with pytest.raises(InputError, match=r"level=0 violates 1 <= level <= L"):
        g.n_rules(0)


def test_rows_within_tolerance_are_renormalised():
    p = np.array([[0.25, 0.75 - 4e-7], [0.5, 0.5]], dtype=np.float32)
    g = Grammar({1: GOOD[1]}, {1: p})
    np.testing.assert_allclose(g.rule_probs[1].sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert g.rule_probs[1].dtype == np.float64


def test_leaf_vocabulary_defaults_to_the_largest_leaf_symbol():
    assert Grammar({1: np.array([[[0, 3]]])}).cards[0] == 4
    assert Grammar({1: np.array([[[0, 3]]])}, v=9).cards[0] == 9


def test_ambiguity_counts_owners_of_positive_probability():
    assert not weighted_ambiguous().is_unambiguous
    assert weighted_ambiguous().ambiguous_levels == (1,)  # level 2's shared tuples have p = 0
    repeated = Grammar({1: np.array([[[0, 1], [0, 1]], [[1, 1], [1, 0]]])})
    assert repeated.is_unambiguous  # one owner, listed twice
    assert RHM(8, 4, 2, 2, 3, seed=0).is_unambiguous


# -- sampling ----------------------------------------------------------------------------------
def test_sampler_draws_whole_trees_with_their_enumerated_probabilities():
    g = weighted_ambiguous()
    exact = enumerate_grammar(g)
    assert math.isclose(sum(exact.values()), 1.0, abs_tol=1e-12)
    n = 20000
    data = g.sample(n, seed=7)
    trees = zip(*(map(tuple, level.tolist()) for level in data.levels), strict=True)
    counts = tally(trees)
    assert set(counts) <= set(exact)  # never a tree of probability 0 (zero rules included)
    assert chi_square_pvalue(counts, exact, n) > ALPHA


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampler_matches_enumeration_on_random_grammars(seed):
    g = random_grammar(seed)
    exact = enumerate_grammar(g)
    n = 8000
    data = g.sample(n, seed=seed)
    counts = tally(zip(*(map(tuple, lv.tolist()) for lv in data.levels), strict=True))
    assert chi_square_pvalue(counts, exact, n) > ALPHA


def test_weighted_draws_follow_each_row_and_never_pick_zero_rules():
    rules = {1: np.array([[[0, 0], [0, 1], [1, 0], [1, 1]]] * 2)}
    probs = {1: np.array([[0.1, 0.0, 0.6, 0.3], [0.0, 0.5, 0.0, 0.5]])}
    g = Grammar(rules, probs)
    top = np.repeat([[0], [1]], 30000, axis=0)
    x = g.expand(top, rng=3).x
    for a in (0, 1):
        codes = x[top[:, 0] == a] @ [2, 1]
        counts = np.bincount(codes, minlength=4)
        assert np.all(counts[probs[1][a] == 0] == 0)
        keep = probs[1][a] > 0
        res = stats.chisquare(counts[keep], 30000 * probs[1][a][keep])
        assert res.pvalue > ALPHA


def test_same_seed_same_data_and_n_zero():
    g = weighted_ambiguous()
    a, b = g.sample(50, seed=4), g.sample(50, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.levels, b.levels, strict=True))
    empty = g.sample(0, seed=1)
    assert [lv.shape for lv in empty.levels] == [(0, 4), (0, 2), (0, 1)]
    assert g.expand(np.zeros((0, 2), dtype=np.int64), level=1).x.shape == (0, 4)
    assert g.tree_log_prob(empty.levels).shape == (0,)


@pytest.mark.parametrize(
    "top, message",
    [
        (np.array([[-1]]), r"top holds the symbol -1, outside \[0, cards\[2\]\) = \[0, 2\)"),
        (np.array([[2]]), r"top holds the symbol 2"),
        (np.array([[1.0]]), r"top must hold integers, got dtype float64"),
        (np.array([[1.7]]), r"top must hold integers"),
        (np.array([[True]]), r"top must hold integers, got dtype bool"),
        (np.array([0, 1]), r"top must have shape \(n, s\*\*\(L-level\)\) = \(n, 1\)"),
    ],
)
def test_expand_refuses_symbols_it_would_wrap_or_truncate(top, message):
    with pytest.raises(InputError, match=message):
        weighted_ambiguous().expand(top)


def test_seeds_are_validated():
    g = weighted_ambiguous()
    with pytest.raises(InputError, match=r"seed=1\.5 is not a valid seed"):
        g.sample(3, seed=1.5)
    with pytest.raises(InputError, match=r"rng=-1 violates rng >= 0"):
        g.expand(np.array([[0]]), rng=-1)
    with pytest.raises(InputError, match=r"n=-1 violates n >= 0"):
        g.sample(-1)


def test_size_guards_refuse_before_allocating(monkeypatch):
    deep = RHM(v=2, n_classes=2, m=1, s=2, L=28, seed=0)
    with pytest.raises(InputError, match=r"sampling n=1 trees .* above the memory budget"):
        deep.sample(1)
    small = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=0)
    with pytest.raises(InputError, match=r"above the memory budget of 1\.00 KiB"):
        small.sample(100, memory_budget="1KiB")
    monkeypatch.setenv("HIERGRAMMAR_MEMORY_BUDGET", "2KiB")
    with pytest.raises(InputError, match=r"memory budget of 2\.00 KiB"):
        small.sample(100)
    with pytest.raises(InputError, match=r"parsing n=100 strings"):
        small.parse(np.zeros((100, 8), dtype=int))
    with pytest.raises(InputError, match=r"one-hot inputs"):
        small.sample(20, memory_budget="1MiB").onehot()
    assert small.sample(100, memory_budget="1MiB").n == 100  # an explicit budget wins


# -- parsing -----------------------------------------------------------------------------------
def _parses_by_string(g):
    """{leaves: [(levels, P)]} from the enumeration of every tree."""
    out: dict = {}
    for levels, p in enumerate_grammar(g).items():
        out.setdefault(levels[0], []).append((levels, p))
    return out


@pytest.mark.parametrize(
    "make", [weighted_ambiguous, *(lambda s=s: random_grammar(s) for s in range(6))]
)
def test_parse_counts_parses_and_returns_the_most_probable(make):
    g = make()
    by_string = _parses_by_string(g)
    strings = np.array(list(itertools.product(range(g.v), repeat=g.d)))
    res = g.parse(strings)
    for i, x in enumerate(map(tuple, strings.tolist())):
        parses = by_string.get(x, [])
        assert res.valid[i] == bool(parses)
        if not parses:
            assert res.log_n_parses[i] == -np.inf and res.log_prob[i] == -np.inf
            assert all((lv[i] == -1).all() for lv in res.levels[1:]) or g.is_unambiguous
            continue
        assert math.isclose(math.exp(res.log_n_parses[i]), len(parses), rel_tol=1e-9)
        best = max(p for _, p in parses)
        assert math.isclose(math.exp(res.log_prob[i]), best, rel_tol=1e-9)
        tree = tuple(tuple(lv[i].tolist()) for lv in res.levels)
        assert math.isclose(dict(parses)[tree], best, rel_tol=1e-9)  # a maximiser, not a guess
    valid = res.valid
    np.testing.assert_allclose(
        g.tree_log_prob([lv[valid] for lv in res.levels]), res.log_prob[valid], rtol=1e-12
    )


def test_tree_log_prob_matches_enumeration():
    g = weighted_ambiguous()
    trees = enumerate_grammar(g)
    levels = [np.array([t[k] for t in trees]) for k in range(g.L + 1)]
    np.testing.assert_allclose(np.exp(g.tree_log_prob(levels)), list(trees.values()), rtol=1e-12)
    broken = [lv.copy() for lv in levels]
    broken[0][:, 0] = 2  # no level-1 rule starts with 2 except (2, 2)
    assert np.all(g.tree_log_prob(broken)[~(levels[0][:, 1] == 2)] == -np.inf)


def test_unambiguous_lookup_and_inside_pass_agree(monkeypatch):
    rhm = RHM(v=6, n_classes=3, m=3, s=2, L=3, seed=5)
    data = rhm.sample(300, seed=1)
    noise = np.random.default_rng(0).integers(6, size=(300, 8))
    x = np.concatenate([data.x, noise, np.where(np.arange(8) == 3, 0, data.x)])
    fast = rhm.parse(x)
    slow = rhm._parse_inside(x, None)
    monkeypatch.setattr(grammar_module, "_MAX_DENSE_TUPLES", 1)  # force the sorted-code table
    rhm._tables.clear()
    sorted_codes = rhm.parse(x)
    assert rhm._tables[1][0] == "sorted"
    for other in (slow, sorted_codes):
        np.testing.assert_array_equal(fast.valid, other.valid)
        np.testing.assert_array_equal(fast.log_n_parses, other.log_n_parses)
        np.testing.assert_allclose(fast.log_prob, other.log_prob, rtol=1e-12)
        for a, b in zip(fast.levels, other.levels, strict=True):
            np.testing.assert_array_equal(a[fast.valid], b[fast.valid])
    assert fast.valid[:300].all() and not fast.valid[300:].all()
    assert np.all(fast.log_prob[:300] == -np.log(3) - rhm.n_internal * np.log(3))


def test_parse_count_beyond_int64():
    # Every parent owns every tuple: each of the 255 internal nodes takes either symbol.
    L, s = 8, 2
    every = np.array(list(itertools.product(range(2), repeat=s)))
    rules = {level: np.broadcast_to(every, (2, 4, s)) for level in range(1, L + 1)}
    g = Grammar(rules)
    res = g.parse(np.zeros((2, s**L), dtype=np.int64))
    n_internal = (s**L - 1) // (s - 1)
    np.testing.assert_allclose(res.log_n_parses, n_internal * np.log(2), rtol=1e-12)
    assert res.log_n_parses[0] > np.log(np.iinfo(np.int64).max)
    # all 2**255 trees have probability (1/2) * (1/4)**255
    np.testing.assert_allclose(res.log_prob, -np.log(2) - n_internal * np.log(4), rtol=1e-12)


def test_parse_refuses_bad_input_and_takes_n_zero():
    g = weighted_ambiguous()
    with pytest.raises(InputError, match=r"x must have shape \(n, s\*\*L\) = \(n, 4\)"):
        g.parse(np.zeros((3, 5), dtype=int))
    with pytest.raises(InputError, match=r"\[0, v\) = \[0, 3\)"):
        g.parse(np.full((1, 4), 3))
    with pytest.raises(InputError, match=r"x must hold integers"):
        g.parse(np.zeros((1, 4)))
    for grammar in (g, RHM(4, 2, 2, 2, 2, seed=0)):
        res = grammar.parse(np.zeros((0, 4), dtype=np.int64))
        assert [lv.shape for lv in res.levels] == [(0, 4), (0, 2), (0, 1)]
        assert res.valid.shape == res.log_n_parses.shape == res.log_prob.shape == (0,)


def test_zero_root_prior_makes_strings_invalid():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    g = Grammar(dict(rhm.rules), root_prior=[1.0, 0.0])
    data = rhm.sample(40, seed=0)
    res = g.parse(data.x)
    np.testing.assert_array_equal(res.valid, data.y == 0)
    assert np.all(res.y[~res.valid] == -1)


# -- the root-first layout of the public generators --------------------------------------------
def _their_rules(v, n, m, s, L, seed):
    """Rules as ``sample_rules`` of fracagnetta/random-hierarchy-model lays them out: a dict
    keyed 0..L-1 from the root down, ``rules[0]`` ``(n, m, s)``, ``rules[i]`` ``(v, m, s)``,
    distinct tuples per level (drawn here with Python's random, as there)."""
    import random

    random.seed(seed)
    tuples = list(itertools.product(*[range(v) for _ in range(s)]))
    rules = {0: np.array(random.sample(tuples, n * m)).reshape(n, m, s)}
    for i in range(1, L):
        rules[i] = np.array(random.sample(tuples, v * m)).reshape(v, m, s)
    return rules


def _their_sample_trees(num_data, rules, probs, rng):
    """``sample_trees`` of the same generator, in numpy: ``trees[l]`` ``(num_data, s**l)`` from
    the root (``trees[0]``, uniform labels) down; ``probs[l]`` one ``(m,)`` vector per depth."""
    labels = rng.integers(rules[0].shape[0], size=num_data)[:, None]
    trees = {0: labels}
    for l in range(len(rules)):
        m = rules[l].shape[1]
        chosen = rng.choice(m, p=probs[l], size=labels.shape)
        labels = rules[l][labels, chosen].reshape(num_data, -1)
        trees[l + 1] = labels
    return trees


def test_from_root_first_agrees_with_the_generators_sampling_and_parsing():
    v, n, m, s, L = 3, 2, 2, 2, 2
    rules = _their_rules(v, n, m, s, L, seed=11)
    probs = {0: np.array([0.5, 0.5]), 1: np.array([0.8, 0.2])}  # one (m,) vector per depth
    g = Grammar.from_root_first(rules, [probs[0], probs[1]])
    assert g.cards == (v, v, n) and g.L == L
    for j in range(L):
        np.testing.assert_array_equal(g.rules[L - j], rules[j])
        np.testing.assert_array_equal(
            g.rule_probs[L - j], np.broadcast_to(probs[j], (g.card(L - j), m))
        )
    # Parsing their data recovers their trees (their trees[j] is our level L - j).
    theirs = _their_sample_trees(20000, rules, probs, np.random.default_rng(0))
    parsed = g.parse(theirs[L])
    assert parsed.valid.all()
    for j in range(L + 1):
        np.testing.assert_array_equal(parsed.levels[L - j], theirs[j])
    # Our sampler and theirs draw the same distribution of strings (two-sample chi-square).
    ours = g.sample(20000, seed=1).x
    keys = sorted(set(map(tuple, ours.tolist())) | set(map(tuple, theirs[L].tolist())))
    a, b = tally(map(tuple, ours.tolist())), tally(map(tuple, theirs[L].tolist()))
    table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]])
    assert table.shape[1] == n * m ** (1 + s)  # every string of the grammar, nothing else
    assert stats.chi2_contingency(table).pvalue > ALPHA


def test_from_root_first_layouts_and_round_trip():
    rules = _their_rules(4, 2, 3, 2, 3, seed=2)
    full = [np.full((2, 3), 1 / 3), np.tile([0.5, 0.3, 0.2], (4, 1)), None]
    a = Grammar.from_root_first(rules, full)
    b = Grammar.from_root_first(
        [rules[0], rules[1], rules[2]], {0: None, 1: [0.5, 0.3, 0.2], 2: None}
    )
    for level in range(1, 4):
        np.testing.assert_array_equal(a.rule_probs[level], b.rule_probs[level])
    back_rules, back_probs = a.to_root_first()
    c = Grammar.from_root_first(back_rules, back_probs)
    for level in range(1, 4):
        np.testing.assert_array_equal(c.rules[level], a.rules[level])
        np.testing.assert_array_equal(c.rule_probs[level], a.rule_probs[level])
    with pytest.raises(InputError, match=r"probs has 2 levels but rules has 3"):
        Grammar.from_root_first(rules, full[:2])
    with pytest.raises(InputError, match=r"probs\[1\] has shape \(2,\) but rules\[1\] has m = 3"):
        Grammar.from_root_first(rules, [None, [0.5, 0.5], None])
    with pytest.raises(InputError, match=r"keyed 0\.\.L-1"):
        Grammar.from_root_first({1: rules[0]})


def test_tuple_codes_beyond_int64_fall_back_to_the_inside_pass():
    # 4**32 = 2**64 tuple codes: the lookup table cannot index them, the inside pass needs none.
    rng = np.random.default_rng(0)
    rules = {1: rng.integers(4, size=(2, 3, 32))}
    g = Grammar(rules, v=4)
    assert g.is_unambiguous and g.cards[0] ** g.s > np.iinfo(np.int64).max
    data = g.sample(20, seed=0)
    res = g.parse(np.concatenate([data.x, (data.x + 1) % 4]))
    assert res.valid[:20].all() and not res.valid[20:].any()
    np.testing.assert_array_equal(res.y[:20], data.y)
    np.testing.assert_allclose(res.log_prob[:20], np.log(0.5) + np.log(1 / 3))
    assert g._tables == {}  # no table was built
