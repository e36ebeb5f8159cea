"""The RHM: rule draws, validation, sampling and parsing."""

import itertools

import numpy as np
import pytest

from hiergrammar import RHM


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
