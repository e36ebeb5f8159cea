"""Measurements of token changes: correlations against a direct computation, curves of exact
forward-backward, and the Bayes-optimal masked-token predictor."""

import numpy as np
import pytest
from scipy.stats import binomtest

from hiergrammar import RHM, InputError
from hiergrammar.bruteforce import enumerate_trees
from hiergrammar.experiments import change_correlations
from hiergrammar.experiments.masked_reconstruction import masked_reconstruction
from hiergrammar.experiments.token_changes import (
    ChangeMoments,
    class_transition_time,
    combine_draws,
    lca_levels,
    token_change_curves,
)
from hiergrammar.noise import MaskingProcess, UniformProcess


def direct_correlations(before, after, s):
    """Pair by pair, with explicit loops: np.cov (ddof=0) of the change indicators."""
    delta = (before != after).astype(float)
    n, d = delta.shape
    cov = lambda i, j: np.cov(delta[:, i], delta[:, j], ddof=0)[0, 1]  # noqa: E731
    C = np.array([np.mean([cov(i, i + r) for i in range(d - r)]) for r in range(d)])

    def lca(i, j):
        k = 0
        while i != j:
            i, j, k = i // s, j // s, k + 1
        return k

    L = round(np.log(d) / np.log(s))
    C_tree = [C[0]]
    for k in range(1, L + 1):
        C_tree.append(
            np.mean([cov(i, j) for i in range(d) for j in range(i + 1, d) if lca(i, j) == k])
        )
    return C, np.array(C_tree), C[1:].sum()


def test_hand_made_example():
    # Two samples, four leaves: leaves 0 and 1 change together in the first sample only.
    before = np.zeros((2, 4), dtype=int)
    after = np.array([[5, 5, 0, 0], [0, 0, 0, 0]])
    cc = change_correlations(before, after, s=2)
    # delta_0 = delta_1 = (1, 0): variance 1/4, covariance 1/4; leaves 2, 3 never change.
    np.testing.assert_allclose(cc.C, [(0.25 + 0.25) / 4, 0.25 / 3, 0.0, 0.0])
    np.testing.assert_allclose(cc.C_tree, [0.125, (0.25 + 0.0) / 2, 0.0])
    assert cc.chi == pytest.approx(0.25 / 3)
    np.testing.assert_allclose(cc.p_change, [0.5, 0.5, 0, 0])
    assert cc.n == 2


@pytest.mark.parametrize("s, L", [(2, 3), (3, 2)])
def test_against_direct_computation(s, L):
    rng = np.random.default_rng(s)
    d = s**L
    before = rng.integers(3, size=(40, d))
    after = np.where(rng.random((40, d)) < 0.4, rng.integers(3, size=(40, d)), before)
    after[rng.random(40) < 0.3, : s**2] = 7  # correlated blocks
    cc = change_correlations(before, after, s=s)
    C, C_tree, chi = direct_correlations(before, after, s)
    np.testing.assert_allclose(cc.C, C, atol=1e-14)
    np.testing.assert_allclose(cc.C_tree, C_tree, atol=1e-14)
    assert cc.chi == pytest.approx(chi, abs=1e-14)


def test_moments_add_up():
    rng = np.random.default_rng(0)
    before, after = rng.integers(2, size=(2, 30, 8))
    whole = ChangeMoments.from_strings(before, after)
    parts = ChangeMoments.from_strings(before[:11], after[:11]) + ChangeMoments.from_strings(
        before[11:], after[11:]
    )
    np.testing.assert_allclose(parts.outer, whole.outer)
    np.testing.assert_allclose(parts.correlations(2).C, whole.correlations(2).C)


def test_lca_levels():
    levels = lca_levels(9, 3)
    assert levels[0, 2] == 1 and levels[2, 3] == 2 and levels[4, 4] == 0
    np.testing.assert_array_equal(levels, levels.T)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: change_correlations(np.zeros((2, 6), int), np.zeros((2, 6), int), s=2), "d = s"),
        (lambda: change_correlations(np.zeros((2, 4), int), np.zeros((3, 4), int), s=2), "shape"),
        (lambda: change_correlations(np.zeros((0, 4), int), np.zeros((0, 4), int), s=2), "n >= 1"),
        (lambda: change_correlations(np.zeros((2, 4), int), np.zeros((2, 4), int), s=1), "s >= 2"),
        (lambda: change_correlations(np.zeros(4, int), np.zeros(4, int), s=2), "2 dimensions"),
    ],
)
def test_validation(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_token_change_curves_ends():
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    n = 1000
    curves = token_change_curves(rhm, UniformProcess(8), [0.0, 0.4, 1.0], n=n, seed=0)
    np.testing.assert_array_equal(curves.unchanged[0], 1.0)
    assert curves.chi[0] == 0.0 and curves.C[0, 0] == 0.0
    # At alpha = 0 the new class is an independent uniform draw: unchanged w.p. 1/4.
    kept = round(curves.unchanged[2, 3] * n)
    assert binomtest(kept, n, 0.25).pvalue > 1e-3
    # In between, low levels keep more than the class (the hierarchy forgets from the top).
    assert curves.unchanged[1, 0] > curves.unchanged[1, 3]
    assert curves.chi_se.shape == (3,) and np.all(curves.chi_se[1:] > 0)
    again = token_change_curves(rhm, UniformProcess(8), [0.0, 0.4, 1.0], n=n, seed=0)
    np.testing.assert_array_equal(again.chi, curves.chi)


def test_combine_draws_and_transition():
    draws = [
        token_change_curves(RHM(8, 4, 2, 2, 2, seed=r), MaskingProcess(8), [0.2, 0.8], 60, seed=r)
        for r in range(3)
    ]
    summary = combine_draws(draws)
    chis = np.stack([c.chi for c in draws])
    np.testing.assert_allclose(summary.mean["chi"], chis.mean(0))
    np.testing.assert_allclose(summary.se["chi"], chis.std(0, ddof=1) / np.sqrt(3))
    single = combine_draws(draws[:1])
    np.testing.assert_allclose(single.se["chi"], draws[0].chi_se)
    t = np.array([0.0, 0.2, 0.4, 0.6])
    assert class_transition_time(t, np.array([1.0, 0.9, 0.3, 0.1]), 0.2) == pytest.approx(
        0.2 + 0.2 * (0.9 - 0.6) / (0.9 - 0.3)
    )
    with pytest.raises(InputError, match="share their times"):
        combine_draws(
            [draws[0], token_change_curves(RHM(8, 4, 2, 2, 2), MaskingProcess(8), [0.1], 4)]
        )


def test_masked_reconstruction_when_everything_is_masked():
    """At alpha = 0 BP predicts each leaf from the grammar alone: its accuracy and cross-entropy
    are the max and the entropy of the leaf's prior marginal, computed by enumerating the trees
    (within 4 standard errors)."""
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=1)
    trees = enumerate_trees(rhm)[0]  # every tree is equally likely a priori
    prior = np.stack([np.bincount(trees[:, i], minlength=4) / len(trees) for i in range(rhm.d)])
    n = 4000
    rec = masked_reconstruction(rhm, [1.0], n=n, seed=0)
    assert rec.masked_fraction[0] == 1.0
    expected_acc = prior.max(axis=1).mean()
    assert abs(rec.accuracy[0] - expected_acc) < 4 * rec.accuracy_se[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(prior * np.log(prior), axis=1).mean()
    assert rec.cross_entropy[0] == pytest.approx(entropy, abs=0.05)


def test_masked_reconstruction_improves_with_visible_tokens():
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    rec = masked_reconstruction(rhm, [0.1, 0.5, 0.9], n=400, seed=0, schedule="cosine")
    assert np.all(np.diff(rec.accuracy) < 0) and np.all(np.diff(rec.cross_entropy) > 0)
    assert np.all(np.diff(rec.masked_fraction) > 0)
    empty = masked_reconstruction(rhm, [0.0], n=10, seed=0)
    assert np.isnan(empty.accuracy[0]) and empty.masked_fraction[0] == 0.0
