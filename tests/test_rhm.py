"""The RHM: rule draws, validation, sampling and parsing."""

import itertools

import numpy as np
import pytest
from scipy import stats

from hiergrammar import RHM, Grammar, InputError
from hiergrammar.rhm import check_parameters, zipf_probabilities


@pytest.mark.parametrize(
    "params",
    [
        dict(v=4, n_classes=2, m=2, s=2, L=2),
        dict(v=8, n_classes=8, m=3, s=2, L=3),
        dict(v=3, n_classes=3, m=3, s=3, L=2),
    ],
)
def test_rules_are_disjoint_tuples_of_the_right_shape(params):
    rhm = RHM(**params, seed=1)
    for level in range(1, rhm.L + 1):
        rules = rhm.rules[level]
        assert rules.shape == (rhm.card(level), rhm.m, rhm.s)
        assert rules.min() >= 0 and rules.max() < rhm.v
        tuples = [tuple(t) for t in rules.reshape(-1, rhm.s)]
        assert len(set(tuples)) == len(tuples), "a tuple is owned twice"


def test_rule_draw_is_uniform_over_tuples():
    # Each of the v**s tuples is used by a level with probability K*m / v**s.
    v, s, m, K = 3, 2, 2, 3
    counts = np.zeros(v**s)
    draws = 3000
    for seed in range(draws):
        codes = RHM(v, K, m, s, 1, seed=seed).rules[1].reshape(-1, s) @ np.array([v, 1])
        counts[codes] += 1
    expected = draws * K * m / v**s
    # Binomial standard deviation; 5 sigma.
    sigma = np.sqrt(draws * (K * m / v**s) * (1 - K * m / v**s))
    assert np.all(np.abs(counts - expected) < 5 * sigma)


def test_seed_determinism():
    a, b = RHM(8, 4, 2, 2, 3, seed=5), RHM(8, 4, 2, 2, 3, seed=5)
    assert all(np.array_equal(a.rules[l], b.rules[l]) for l in range(1, 4))
    assert np.array_equal(a.sample(20, seed=1).x, b.sample(20, seed=1).x)
    assert not np.array_equal(a.sample(20, seed=1).x, a.sample(20, seed=2).x)


@pytest.mark.parametrize(
    "kwargs, bound",
    [
        (dict(v=4, n_classes=2, m=5, s=2, L=2), r"m <= v\*\*\(s-1\)"),
        (dict(v=4, n_classes=5, m=4, s=2, L=2), r"n_classes\*m <= v\*\*s"),
        (dict(v=4, n_classes=2, m=2, s=1, L=2), r"s >= 2"),
        (dict(v=4, n_classes=2, m=2, s=2, L=0), r"L >= 1"),
        (dict(v=1, n_classes=1, m=1, s=2, L=1), r"v >= 2"),
        (dict(v=4, n_classes=0, m=1, s=2, L=1), r"n_classes >= 1"),
        (dict(v=4, n_classes=2, m=0, s=2, L=1), r"m >= 1"),
        (dict(v=4.5, n_classes=2, m=1, s=2, L=1), r"v must be an integer"),
    ],
)
def test_invalid_parameters_name_the_bound(kwargs, bound):
    with pytest.raises(ValueError, match=bound):
        RHM(**kwargs)


def test_sample_levels_follow_the_rules():
    rhm = RHM(v=6, n_classes=3, m=2, s=3, L=2, seed=3)
    data = rhm.sample(50, seed=0)
    assert data.x.shape == (50, 9) and data.y.shape == (50,)
    for level in range(rhm.L + 1):
        assert data.levels[level].shape == (50, rhm.width(level))
    for level in range(1, rhm.L + 1):
        children = data.levels[level - 1].reshape(50, -1, rhm.s)
        for k, i in itertools.product(range(50), range(rhm.width(level))):
            parent = data.levels[level][k, i]
            assert any((children[k, i] == t).all() for t in rhm.rules[level][parent])
    onehot = data.onehot()
    assert onehot.shape == (50, 9, 6) and np.array_equal(onehot.argmax(-1), data.x)


def test_class_and_rule_choices_are_uniform():
    rhm = RHM(v=4, n_classes=4, m=2, s=2, L=1, seed=0)
    data = rhm.sample(20000, seed=0)
    # chi-square tests: classes uniform, then the 8 (class, rule) strings uniform.
    counts = np.bincount(data.y, minlength=4)
    expected = 20000 / 4
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 16.3  # 99.9% quantile of chi2 with 3 dof
    codes = data.x @ np.array([4, 1])
    rule_codes = rhm.rules[1].reshape(-1, 2) @ np.array([4, 1])
    tuple_counts = np.array([(codes == c).sum() for c in rule_codes])
    assert tuple_counts.sum() == 20000
    chi2 = ((tuple_counts - 2500) ** 2 / 2500).sum()
    assert chi2 < 24.3  # 99.9% quantile with 7 dof


def test_number_of_distinct_data_matches_the_closed_form():
    # m**((s**L - 1)/(s - 1)) distinct strings per class.
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    data = rhm.sample(20000, seed=0)
    for c in range(2):
        distinct = {tuple(x) for x in data.x[data.y == c]}
        assert len(distinct) == 2**3


def test_parse_recovers_the_tree_and_flags_invalid_strings():
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=2)
    data = rhm.sample(200, seed=1)
    parsed = rhm.parse(data.x)
    assert parsed.valid.all()
    for level in range(rhm.L + 1):
        assert np.array_equal(parsed.levels[level], data.levels[level])
    # Random strings are almost all invalid; a string is valid iff brute force finds a tree.
    rng = np.random.default_rng(0)
    x = rng.integers(8, size=(300, 8))
    parsed = rhm.parse(x)
    valid_set = {tuple(t) for t in rhm.sample(50000, seed=3).x}
    # every string of the grammar appears in 50000 draws with overwhelming probability
    # (4 classes * 2**7 = 512 strings)
    assert len(valid_set) == 512
    assert np.array_equal(parsed.valid, np.array([tuple(t) in valid_set for t in x]))
    assert np.all(parsed.y[~parsed.valid] == -1)


def test_parse_rejects_bad_input():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    with pytest.raises(ValueError, match=r"shape \(n, s\*\*L\)"):
        rhm.parse(np.zeros((3, 5), dtype=int))
    with pytest.raises(ValueError, match=r"\[0, v\)"):
        rhm.parse(np.full((1, 4), 4))


# -- backward compatibility ----------------------------------------------------------------------
def legacy_rules(v, n_classes, m, s, L, seed):
    """The rule draw of earlier versions, re-implemented: from the root down, ``card*m``
    distinct tuple codes out of ``v**s`` (``Generator.choice`` without replacement), the first
    digit most significant."""
    rng = np.random.default_rng(seed)
    out = {}
    for level in range(L, 0, -1):
        card = n_classes if level == L else v
        codes = rng.choice(v**s, size=card * m, replace=False)
        digits = np.stack(np.unravel_index(codes, (v,) * s), axis=-1)
        out[level] = digits.reshape(card, m, s)
    return out


def legacy_sample(rules, n_classes, m, L, n, seed):
    """The sampler of earlier versions: uniform classes, then a uniform rule per node."""
    rng = np.random.default_rng(seed)
    level = rng.integers(n_classes, size=(n, 1))
    levels = [level]
    for k in range(L, 0, -1):
        choice = rng.integers(m, size=level.shape)
        level = rules[k][level, choice].reshape(n, -1)
        levels.append(level)
    return levels[::-1]


@pytest.mark.parametrize(
    "params",
    [
        dict(v=8, n_classes=4, m=2, s=2, L=3, seed=0),
        dict(v=32, n_classes=32, m=8, s=2, L=4, seed=12),
        dict(v=5, n_classes=3, m=4, s=3, L=2, seed=3),
    ],
)
def test_same_parameters_and_seed_give_the_rules_and_data_of_earlier_versions(params):
    rhm = RHM(**params)
    expected = legacy_rules(**params)
    for level in range(1, rhm.L + 1):
        np.testing.assert_array_equal(rhm.rules[level], expected[level])
    old = legacy_sample(expected, rhm.n_classes, rhm.m, rhm.L, 50, seed=9)
    new = rhm.sample(50, seed=9)
    for a, b in zip(old, new.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(rhm, Grammar) and rhm.cards == (rhm.v,) * rhm.L + (rhm.n_classes,)
    assert np.all(rhm.rule_probs[1] == 1 / rhm.m) and np.all(rhm.root_prior == 1 / rhm.n_classes)


def test_check_parameters_still_validates_the_uniform_model():
    assert check_parameters(8, 4, 2, 2, 3) == (8, 4, 2, 2, 3)
    with pytest.raises(InputError, match=r"m=5 violates m <= v\*\*\(s-1\)"):
        check_parameters(4, 2, 5, 2)


# -- defects of earlier versions ------------------------------------------------------------------
def test_expand_refuses_negative_and_float_symbols():
    rhm = RHM(v=4, n_classes=4, m=2, s=2, L=2, seed=0)
    with pytest.raises(InputError, match=r"top holds the symbol -1"):
        rhm.expand(np.array([[-1]]))
    with pytest.raises(InputError, match=r"top must hold integers, got dtype float64"):
        rhm.expand(np.array([[2.7]]))
    with pytest.raises(InputError, match=r"top holds the symbol 4"):
        rhm.expand(np.array([[1, 4]]), level=1)


def test_n_zero_samples_and_parses():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=0)
    data = rhm.sample(0)
    assert data.x.shape == (0, 8) and data.y.shape == (0,) and data.onehot().shape == (0, 8, 4)
    parsed = rhm.parse(np.zeros((0, 8), dtype=np.int64))
    assert parsed.valid.shape == (0,) and parsed.levels[-1].shape == (0, 1)


@pytest.mark.parametrize(
    "seed, message",
    [
        (1.5, r"seed=1\.5 is not a valid seed"),
        (-1, r"seed=-1 violates seed >= 0"),
        ("0", r"seed='0' is not a valid seed"),
        (np.random.default_rng(0), r"seed must be a non-negative integer or None"),
    ],
)
def test_bad_seeds_are_refused_by_name(seed, message):
    with pytest.raises(InputError, match=message):
        RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=seed)


def test_tuple_spaces_beyond_int64_are_refused():
    with pytest.raises(InputError, match=r"exceeds 2\*\*62: tuple codes would overflow int64"):
        RHM(v=2**32, n_classes=1, m=1, s=2, L=1)


# -- per-level vocabularies and rule counts --------------------------------------------------------
def test_per_level_vocabularies_and_rule_counts():
    rhm = RHM(v=[16, 8, 6], n_classes=3, m=[3, 2, 4], s=2, L=3, seed=1)
    assert rhm.cards == (16, 8, 6, 3) and rhm.v == (16, 8, 6) and rhm.m == (3, 2, 4)
    assert rhm.f == (3 / 16, 2 / 8, 4 / 6)
    for level, (card, m, child) in {1: (8, 3, 16), 2: (6, 2, 8), 3: (3, 4, 6)}.items():
        rules = rhm.rules[level]
        assert rules.shape == (card, m, 2) and rules.min() >= 0 and rules.max() < child
        assert len({tuple(t) for t in rules.reshape(-1, 2)}) == card * m
    data = rhm.sample(200, seed=0)
    parsed = rhm.parse(data.x)
    assert parsed.valid.all() and np.array_equal(parsed.y, data.y)
    assert data.onehot().shape == (200, 8, 16)
    constant = RHM(v=[5, 5, 5], n_classes=3, m=[2, 2, 2], s=2, L=3, seed=4)
    scalar = RHM(v=5, n_classes=3, m=2, s=2, L=3, seed=4)
    assert all(np.array_equal(constant.rules[l], scalar.rules[l]) for l in (1, 2, 3))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(v=[4, 4], m=2, L=3), r"v has 2 entries but L=3"),
        (
            dict(v=[4, 2, 4], m=3, L=3),
            r"level 2: card_2\*m_2 = 12 violates card_l\*m_l <= v_1\*\*s = 4",
        ),
        (dict(v=4, m=[1, 0, 1], L=3), r"m\[1\]=0 violates m\[1\] >= 1"),
        (dict(v=[4, 1, 4], m=1, L=3), r"v\[1\]=1 violates v\[1\] >= 2"),
        (dict(v="44", m=1, L=3), r"v must be an integer or a sequence"),
    ],
)
def test_per_level_bounds_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        RHM(n_classes=2, s=2, seed=0, **kwargs)


# -- Zipf rule probabilities -----------------------------------------------------------------------
def test_zipf_law_fills_rule_probs_in_a_random_order_per_symbol():
    assert np.allclose(zipf_probabilities(3, 0.0), np.array([6, 3, 2]) / 11)
    params = dict(v=50, n_classes=2, m=4, s=2, L=3, seed=8)
    zipf = RHM(**params, rule_law="zipf", zipf_a=0.5)
    uniform = RHM(**params)
    law = np.arange(1, 5) ** -1.5 / (np.arange(1, 5) ** -1.5).sum()
    top_positions = []
    for level in range(1, 4):
        np.testing.assert_array_equal(zipf.rules[level], uniform.rules[level])
        probs = zipf.rule_probs[level]
        np.testing.assert_allclose(np.sort(probs, axis=1), np.tile(np.sort(law), (len(probs), 1)))
        top_positions += probs.argmax(axis=1).tolist()
    # The most likely rule sits at a uniformly random index (chi-square, 3 dof).
    counts = np.bincount(top_positions, minlength=4)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert zipf.is_unambiguous


def test_zipf_sampling_follows_the_rule_probabilities():
    rhm = RHM(v=6, n_classes=2, m=3, s=2, L=1, seed=2, rule_law="zipf", zipf_a=1.0)
    data = rhm.sample(30000, seed=3)
    for c in range(2):
        x = data.x[data.y == c]
        counts = [(x == t).all(axis=1).sum() for t in rhm.rules[1][c]]
        assert stats.chisquare(counts, len(x) * rhm.rule_probs[1][c]).pvalue > 1e-3


def test_zipf_levels_and_option_errors():
    rhm = RHM(v=8, n_classes=2, m=4, s=2, L=2, seed=0, rule_law="zipf", zipf_a=1.0, zipf_levels=[1])
    assert np.all(rhm.rule_probs[2] == 0.25) and not np.all(rhm.rule_probs[1] == 0.25)
    assert "zipf_levels=[1]" in repr(rhm)
    with pytest.raises(InputError, match=r"rule_law='zipf' needs the exponent zipf_a"):
        RHM(8, 2, 4, 2, 2, rule_law="zipf")
    with pytest.raises(InputError, match=r"zipf_a and zipf_levels apply only"):
        RHM(8, 2, 4, 2, 2, zipf_a=1.0)
    with pytest.raises(InputError, match=r"rule_law='pareto' is not one of"):
        RHM(8, 2, 4, 2, 2, rule_law="pareto")
    with pytest.raises(
        InputError, match=r"zipf_levels entry=3 violates 1 <= zipf_levels entry <= 2"
    ):
        RHM(8, 2, 4, 2, 2, rule_law="zipf", zipf_a=1.0, zipf_levels=[3])


# -- shared tuples ---------------------------------------------------------------------------------
def test_shared_tuples_draw_each_parents_rules_independently():
    # v=3, s=2: 9 tuples; each of 3 classes draws 3 of them. Independent draws share on average
    # 3 * 3 / 9 = 1 tuple between two parents (hypergeometric, variance 1/2); disjoint ones 0.
    draws = 1500
    overlaps = []
    usage = np.zeros((3, 9))
    for seed in range(draws):
        rules = RHM(3, 3, 3, 2, 1, seed=seed, shared_tuples=True).rules[1]
        codes = rules @ np.array([3, 1])  # (3, 3)
        assert all(len(set(row)) == 3 for row in codes.tolist())  # distinct within a parent
        overlaps.append(len(set(codes[0]) & set(codes[1])))
        for a in range(3):
            usage[a, codes[a]] += 1
    assert abs(np.mean(overlaps) - 1.0) < 5 * np.sqrt(0.5 / draws)
    sigma = np.sqrt(draws * (1 / 3) * (2 / 3))
    assert np.all(np.abs(usage - draws / 3) < 5 * sigma)  # each tuple equally likely


def test_shared_tuple_rhm_is_ambiguous_and_parses_every_sample():
    rhm = RHM(v=4, n_classes=4, m=4, s=2, L=3, seed=0, shared_tuples=True)
    assert not rhm.is_unambiguous and "shared_tuples=True" in repr(rhm)
    data = rhm.sample(300, seed=1)
    parsed = rhm.parse(data.x)
    assert parsed.valid.all() and np.all(parsed.log_n_parses >= 0)
    assert np.any(parsed.log_n_parses > 0)
    assert np.all(parsed.log_prob >= rhm.tree_log_prob(data.levels) - 1e-12)  # max-product
    with pytest.raises(InputError, match=r"m_1 = 17 violates m_l <= v_0\*\*s = 16"):
        RHM(v=4, n_classes=2, m=17, s=2, L=1, shared_tuples=True)


# -- the theory models the uniform RHM only --------------------------------------------------------
def test_uniform_parameters_accept_only_the_uniform_rhm():
    from hiergrammar import filtered_grammar
    from hiergrammar.rhm import uniform_parameters

    assert uniform_parameters(RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)) == dict(
        v=8, n_classes=4, m=2, s=2, L=3
    )
    refused = {
        "zipf": (RHM(8, 4, 2, 2, 3, seed=0, rule_law="zipf", zipf_a=1.0), "rule_law='zipf'"),
        "shared": (RHM(8, 4, 2, 2, 3, seed=0, shared_tuples=True), "shared_tuples=True"),
        "per-level": (RHM([8, 6, 5], 4, 2, 2, 3, seed=0), "per-level v or m"),
        "filtered": (filtered_grammar(q=3, L=2, sigma=1.0, seed=0), "not an RHM"),
    }
    for model, reason in refused.values():
        with pytest.raises(InputError, match=rf"models only the uniform RHM .*{reason}"):
            uniform_parameters(model)


def test_theory_functions_refuse_models_with_a_clear_message():
    from hiergrammar.theory.meanfield import critical_eps, profile
    from hiergrammar.theory.symbolic import critical_point

    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0, rule_law="zipf", zipf_a=1.0)
    per_level = RHM(v=[8, 8, 8], n_classes=4, m=[2, 3, 2], s=2, L=3, seed=0)
    calls = [
        lambda: critical_eps(rhm, 2, 2),
        lambda: critical_point(rhm, 2, 2),
        lambda: profile(8, 4, per_level.m, 2, 3, [0.3]),
        lambda: critical_eps(per_level.v, 2, 2),
    ]
    for call in calls:
        with pytest.raises(InputError, match=r"models only the uniform RHM \(scalar v and m"):
            call()
