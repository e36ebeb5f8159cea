"""Exact-BP belief profiles and curve reading: closed-form limits and the input contract."""

from __future__ import annotations

import numpy as np
import pytest

from hiergrammar import InputError
from hiergrammar.bp import tree_bp
from hiergrammar.experiments.beliefs import bp_profile, bp_profile_diffusion, true_beliefs
from hiergrammar.experiments.curves import first_crossing
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM


def test_profile_limits_match_closed_forms():
    v = 8
    prof = bp_profile(v, 4, 2, 2, 2, eps=[0.0, 1 - 1 / v], n_samples=60, n_rules=2, seed=0)
    np.testing.assert_allclose(prof.accuracy[0], 1.0)  # no noise: every symbol is recovered
    np.testing.assert_allclose(prof.p[0], 1.0)
    # eps = 1 - 1/v: the leaf evidence is uniform, so the leaves' upward belief is 1/v
    np.testing.assert_allclose(prof.u[1, 0], 1 / v, atol=1e-12)
    diff = bp_profile_diffusion(v, 4, 2, 2, 2, alpha_bar=[1.0, 0.0], n_samples=20, n_rules=1)
    np.testing.assert_allclose(diff.accuracy[0], 1.0)
    np.testing.assert_allclose(diff.u[1, 0], 1 / v, atol=1e-12)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, np.random.default_rng(0)])
def test_profile_seed_is_validated_by_name(seed):
    for fn in (bp_profile, bp_profile_diffusion):
        with pytest.raises(InputError, match=r"^seed"):
            fn(8, 4, 2, 2, 2, [0.1], n_samples=4, n_rules=1, seed=seed)


@pytest.mark.parametrize(
    "levels, match",
    [
        ([np.nan], "finite"),
        ([0.1, 1.5], "violates 0 <="),
        ([[0.1]], "1-d"),
        ([0.1 + 1j], "complex"),
    ],
)
def test_profile_noise_levels_are_validated(levels, match):
    with pytest.raises(InputError, match=match):
        bp_profile(8, 4, 2, 2, 2, eps=levels, n_samples=4, n_rules=1)
    with pytest.raises(InputError, match=match):
        bp_profile_diffusion(8, 4, 2, 2, 2, alpha_bar=levels, n_samples=4, n_rules=1)


def test_true_beliefs_refuses_levels_that_do_not_match_the_result():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    data = rhm.sample(3, seed=1)
    result = tree_bp(rhm, eps_evidence(data.x, 0.2, 4))
    beliefs = true_beliefs(result, data.levels)
    np.testing.assert_allclose(
        beliefs["p"][rhm.L][:, 0], result.marginals[rhm.L][np.arange(3), 0, data.y]
    )
    with pytest.raises(InputError, match="one array per level"):
        true_beliefs(result, data.levels[:-1])
    with pytest.raises(InputError, match=r"levels\[0\] must be integers of shape"):
        true_beliefs(result, [lv[:2] for lv in data.levels])
    with pytest.raises(InputError, match=r"levels\[2\] values must lie in \[0, 2\)"):
        true_beliefs(result, [*data.levels[:-1], data.levels[-1] + 5])


def test_first_crossing_validation():
    x = np.linspace(0, 1, 5)
    assert first_crossing(x, np.array([1.0, np.nan, 0.8, 0.2, 0.1]), 0.5) == pytest.approx(0.625)
    with pytest.raises(InputError, match="same shape"):
        first_crossing(x, np.ones(4), 0.5)
    with pytest.raises(InputError, match="level"):
        first_crossing(x, np.ones(5), np.nan)
    with pytest.raises(InputError, match="complex"):
        first_crossing(x, np.ones(5) * 1j, 0.5)
    with pytest.raises(InputError, match="finite"):
        first_crossing(np.array([0.0, np.inf]), np.ones(2), 0.5)
