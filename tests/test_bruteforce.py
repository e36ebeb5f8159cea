"""Brute-force enumeration: the tree set checked against the grammar's own parser and counting
formula, the posteriors against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from hiergrammar import InputError, ZeroEvidenceError
from hiergrammar.bruteforce import (
    brute_force_marginals,
    describe_tree_count,
    enumerate_trees,
    log10_n_trees,
    n_trees,
)
from hiergrammar.rhm import RHM


@pytest.mark.parametrize(
    "params",
    [
        dict(v=3, n_classes=2, m=2, s=2, L=2),
        dict(v=3, n_classes=3, m=3, s=2, L=2),
        dict(v=2, n_classes=1, m=2, s=3, L=1),
        dict(v=4, n_classes=2, m=1, s=2, L=3),
    ],
)
def test_enumeration_is_every_tree_once(params):
    rhm = RHM(**params, seed=1)
    levels = enumerate_trees(rhm)
    total = levels[0].shape[0]
    # paper §2: m**((s**L - 1)/(s - 1)) distinct data per class
    assert total == n_trees(rhm) == rhm.n_classes * rhm.m ** ((rhm.s**rhm.L - 1) // (rhm.s - 1))
    # rules are disjoint, so distinct trees give distinct strings, each parsing to its tree
    assert len({tuple(x) for x in levels[0]}) == total
    parsed = rhm.parse(levels[0])
    assert parsed.valid.all()
    for level in range(rhm.L + 1):
        np.testing.assert_array_equal(parsed.levels[level], levels[level])
    # every class appears equally often
    np.testing.assert_array_equal(
        np.bincount(levels[rhm.L][:, 0]), np.full(rhm.n_classes, total // rhm.n_classes)
    )


def test_depth_one_closed_form():
    # L = 1: P(y | e) ∝ prior(y) * sum_r prod_j e_j(rules[y, r, j])
    rhm = RHM(v=4, n_classes=3, m=3, s=2, L=1, seed=2)
    rng = np.random.default_rng(0)
    ev = rng.uniform(0, 1, (2, rhm.d, rhm.v))
    prior = np.array([0.5, 0.2, 0.3])
    res = brute_force_marginals(rhm, ev, root_prior=prior)
    rules = rhm.rules[1]  # (n_c, m, s)
    for k in range(2):
        like = np.prod([ev[k, j][rules[:, :, j]] for j in range(rhm.s)], axis=0)  # (n_c, m)
        joint = prior * like.mean(axis=1)
        np.testing.assert_allclose(res.marginals[1][k, 0], joint / joint.sum(), rtol=1e-12)
        assert res.log_evidence[k] == pytest.approx(np.log(joint.sum()), abs=1e-12)
        # leaf 0's marginal: weight of each rule, scattered on its first symbol
        w = prior[:, None] * like / rhm.m
        leaf0 = np.bincount(rules[:, :, 0].ravel(), weights=w.ravel(), minlength=rhm.v)
        np.testing.assert_allclose(res.marginals[0][k, 0], leaf0 / leaf0.sum(), rtol=1e-12)


def test_uniform_evidence_gives_the_prior_and_zero_log_evidence():
    rhm = RHM(v=3, n_classes=3, m=2, s=2, L=2, seed=0)
    prior = np.array([0.1, 0.6, 0.3])
    res = brute_force_marginals(rhm, np.full((rhm.d, rhm.v), 1.0), root_prior=prior)
    np.testing.assert_allclose(res.marginals[rhm.L][0, 0], prior, rtol=1e-12)
    assert res.log_evidence[0] == pytest.approx(0.0, abs=1e-12)
    for mg in res.marginals:
        np.testing.assert_allclose(mg.sum(axis=-1), 1.0, rtol=1e-12)


def test_onehot_evidence_recovers_the_tree():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=4)
    data = rhm.sample(6, seed=3)
    res = brute_force_marginals(rhm, data.onehot())
    n_internal = (rhm.d - 1) // (rhm.s - 1)
    for level in range(rhm.L + 1):
        np.testing.assert_array_equal(res.marginals[level].argmax(-1), data.levels[level])
        np.testing.assert_allclose(res.marginals[level].max(-1), 1.0)
    # exactly one tree: P = prior(y) * m**-N
    np.testing.assert_allclose(res.log_evidence, np.log(0.5) - n_internal * np.log(rhm.m))


def test_impossible_evidence_gives_nan_and_minus_inf():
    rhm = RHM(v=3, n_classes=2, m=1, s=2, L=1, seed=0)
    used = {tuple(t) for t in rhm.rules[1].reshape(-1, 2)}
    bad = next((a, b) for a in range(3) for b in range(3) if (a, b) not in used)
    ev = np.eye(3)[list(bad)][None]
    res = brute_force_marginals(rhm, ev)
    assert res.log_evidence[0] == -np.inf
    assert np.isnan(res.marginals[1]).all()


def test_batched_equals_one_at_a_time():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=5)
    ev = np.random.default_rng(7).uniform(0, 1, (3, rhm.d, rhm.v))
    batched = brute_force_marginals(rhm, ev)
    for k in range(3):
        single = brute_force_marginals(rhm, ev[k])
        for a, b in zip(batched.marginals, single.marginals, strict=True):
            np.testing.assert_array_equal(a[k], b[0])
        assert batched.log_evidence[k] == single.log_evidence[0]


def test_bound_on_tree_count():
    rhm = RHM(v=8, n_classes=4, m=4, s=2, L=3, seed=0)  # 4 * 4**7 = 65536 trees
    with pytest.raises(ValueError, match="max_trees = 1000"):
        brute_force_marginals(rhm, np.ones((rhm.d, rhm.v)), max_trees=1000)
    with pytest.raises(ValueError, match=r"shape \(n, s\*\*L, v\)"):
        brute_force_marginals(rhm, np.ones((rhm.d, rhm.v + 1)))


def test_deep_model_counts_are_written_as_powers_and_refused_quickly():
    # At L=14 the count 2 * 2**16383 has 4933 digits, beyond Python's int-to-str limit (4300).
    import time

    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=14, seed=0)
    assert describe_tree_count(rhm) == "n_classes*m**N = 2*2**16383 = about 10**4932.1 trees"
    assert log10_n_trees(rhm) == pytest.approx(np.log10(2) * 16384)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"about 10\*\*4932.1 trees violates n_trees <= max_trees"):
        brute_force_marginals(rhm, np.ones((rhm.d, rhm.v)))
    with pytest.raises(InputError, match=r"10\*\*"):
        enumerate_trees(rhm, max_trees=10**6)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_max_trees_must_be_a_positive_integer(bad):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    with pytest.raises(InputError, match="max_trees"):
        brute_force_marginals(rhm, np.ones((rhm.d, rhm.v)), max_trees=bad)


def test_enumeration_memory_guard():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=0)  # 256 trees
    with pytest.raises(InputError, match=r"enumerating 256 trees would need .* memory budget"):
        enumerate_trees(rhm, memory_budget="1KiB")
    with pytest.raises(InputError, match=r"brute force over 256 trees .* memory budget"):
        brute_force_marginals(rhm, np.ones((rhm.d, rhm.v)), memory_budget="8KiB")
    assert brute_force_marginals(rhm, np.ones((rhm.d, rhm.v))).n_trees == 256


def test_zero_leaf_is_zero_evidence_but_impossible_strings_are_reported():
    # A leaf with zero evidence for every value is bad input (as in every engine); evidence that
    # no tree produces is a result of the ground truth (-inf, NaN), see the test above.
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    ev = np.ones((3, rhm.d, rhm.v))
    ev[2, 1] = 0.0
    with pytest.raises(ZeroEvidenceError, match=r"sample\(s\) \[2\]"):
        brute_force_marginals(rhm, ev)
