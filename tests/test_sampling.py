"""Exact posterior sampling: the one-pass sampler against exact tree probabilities and
against the clamp-and-rerun reference."""

from collections import Counter

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

from hiergrammar import RHM, InputError
from hiergrammar.bruteforce import enumerate_trees
from hiergrammar.noise import eps_evidence
from hiergrammar.sampling import posterior_sample, posterior_sample_reference


def exact_tree_posterior(rhm, evidence, prior):
    """P(tree | evidence) of every tree, by enumeration (keys: all levels' symbols, 0..L)."""
    levels = enumerate_trees(rhm)
    weight = prior[levels[rhm.L][:, 0]] * np.prod(evidence[np.arange(rhm.d), levels[0]], axis=1)
    keys = np.concatenate(levels, axis=1)
    return {tuple(k): w / weight.sum() for k, w in zip(keys, weight, strict=True)}


def tree_keys(sample):
    return [tuple(row) for row in np.concatenate(sample.levels, axis=1)]


@pytest.fixture(scope="module")
def setup():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    x = rhm.sample(1, seed=0).x
    evidence = eps_evidence(x, 0.5, 3)
    prior = np.array([0.3, 0.7])
    return rhm, evidence, prior


def test_fast_sampler_matches_exact_tree_probabilities(setup):
    rhm, evidence, prior = setup
    n = 20000
    draws = posterior_sample(rhm, np.repeat(evidence, n, axis=0), prior, seed=1)
    exact = exact_tree_posterior(rhm, evidence[0], prior)
    counts = Counter(tree_keys(draws))
    assert set(counts) <= set(exact)
    keys = sorted(exact)
    observed = np.array([counts[k] for k in keys])
    expected = np.array([exact[k] for k in keys]) * n
    assert chisquare(observed, expected).pvalue > 1e-3


def test_fast_sampler_agrees_with_clamp_and_rerun_reference(setup):
    rhm, evidence, prior = setup
    n = 3000
    fast = Counter(tree_keys(posterior_sample(rhm, np.repeat(evidence, n, 0), prior, seed=2)))
    slow = Counter(
        tree_keys(posterior_sample_reference(rhm, np.repeat(evidence, n, 0), prior, seed=3))
    )
    keys = sorted(set(fast) | set(slow))
    table = np.array([[fast[k] for k in keys], [slow[k] for k in keys]])
    assert chi2_contingency(table).pvalue > 1e-3


def test_draws_are_valid_trees_and_noiseless_evidence_is_reproduced():
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=4, seed=1)
    data = rhm.sample(100, seed=0)
    noisy = posterior_sample(rhm, eps_evidence(data.x, 0.7, 8), seed=0)
    parsed = rhm.parse(noisy.x)
    assert parsed.valid.all()
    for level in range(rhm.L + 1):
        np.testing.assert_array_equal(parsed.levels[level], noisy.levels[level])
    clean = posterior_sample(rhm, eps_evidence(data.x, 0.0, 8), seed=0)
    for level in range(rhm.L + 1):
        np.testing.assert_array_equal(clean.levels[level], data.levels[level])


def test_seed_determinism():
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=3, seed=1)
    ev = eps_evidence(rhm.sample(10, seed=0).x, 0.5, 8)
    a, b = posterior_sample(rhm, ev, seed=4), posterior_sample(rhm, ev, seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_seeds_are_validated_with_the_argument_name(seed):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    ev = np.ones((2, rhm.d, rhm.v))
    for sampler in (posterior_sample, posterior_sample_reference):
        with pytest.raises(InputError, match=r"^seed"):
            sampler(rhm, ev, seed=seed)


def test_a_generator_seed_is_used_as_is():
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=3, seed=1)
    ev = eps_evidence(rhm.sample(10, seed=0).x, 0.5, 8)
    a = posterior_sample(rhm, ev, seed=np.random.default_rng(4))
    assert np.array_equal(a.x, posterior_sample(rhm, ev, seed=4).x)


def test_float32_sampler_on_evidence_beyond_float32_range_matches_exact_probabilities(setup):
    # Evidence times 1e60 overflows float32; each leaf is rescaled before the cast, so the
    # float32 sampler still draws from the exact posterior (chi-square, p > 1e-3).
    rhm, evidence, prior = setup
    n = 20000
    draws = posterior_sample(
        rhm, np.repeat(evidence * 1e60, n, axis=0), prior, seed=5, dtype=np.float32
    )
    exact = exact_tree_posterior(rhm, evidence[0], prior)
    counts = Counter(tree_keys(draws))
    assert set(counts) <= set(exact)
    keys = sorted(exact)
    observed = np.array([counts[k] for k in keys])
    expected = np.array([exact[k] for k in keys]) * n
    assert chisquare(observed, expected).pvalue > 1e-3


def test_sampler_memory_guard():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    ev = np.ones((100, rhm.d, rhm.v))
    for sampler in (posterior_sample, posterior_sample_reference):
        with pytest.raises(InputError, match=r"^posterior_sample.* above the memory budget"):
            sampler(rhm, ev, memory_budget="4KiB")
