"""Tests of the numeric mean-field theory (hiergrammar.theory.meanfield).

Independent evidence used: closed forms of the fixed points (docs/model.md §6), a finite-
difference derivative, the annealed averages of exact BP messages over many random rule draws
(the mean-field maps are exactly the ratio of rule-averaged unnormalised messages), and exact BP
averaged over samples and rule draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from hiergrammar.theory.meanfield import (
    critical_eps,
    critical_line,
    downward_map,
    large_v_upward_map,
    marginal,
    profile,
    slope_at_one,
    upward_fixed_point,
    upward_map,
)

from hiergrammar.bp import tree_bp
from hiergrammar.experiments.beliefs import bp_profile
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM


# -- closed forms and fixed points ---------------------------------------------------------------
@pytest.mark.parametrize("v,m,s", [(32, 8, 2), (16, 3, 2), (8, 5, 3), (5, 20, 3), (4, 2, 4)])
def test_upward_map_fixed_points(v, m, s):
    assert upward_map(1.0, v, m, s) == pytest.approx(1.0, abs=1e-14)
    assert upward_map(1.0 / v, v, m, s) == pytest.approx(1.0 / v, rel=1e-12)
    # At the root, K = n_classes: u = 1 stays fixed whatever K is.
    assert upward_map(1.0, v, m, s, K=3) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("v,m,s", [(32, 8, 2), (16, 3, 2), (8, 5, 3), (50, 4, 2)])
def test_slope_at_one_matches_finite_difference(v, m, s):
    h = 1e-6
    numeric = (upward_map(1.0, v, m, s) - upward_map(1.0 - h, v, m, s)) / h
    assert numeric == pytest.approx(slope_at_one(v, m, s), rel=1e-4)


@pytest.mark.parametrize("v,m", [(32, 8), (16, 2), (16, 8), (100, 17), (9, 4)])
def test_s2_fixed_point_closed_form(v, m):
    u_star = upward_fixed_point(v, m, 2)
    assert u_star == pytest.approx((m - 1) / (v - m), rel=1e-10)
    assert upward_map(u_star, v, m, 2) == pytest.approx(u_star, rel=1e-10)
    assert critical_eps(v, m, 2) == pytest.approx((v - 2 * m + 1) / (v - m), rel=1e-10)


@pytest.mark.parametrize("v,m,s", [(8, 8, 3), (16, 20, 3), (6, 20, 4)])
def test_general_s_fixed_point_is_repulsive_boundary(v, m, s):
    assert slope_at_one(v, m, s) < 1
    u_star = upward_fixed_point(v, m, s)
    assert 1.0 / v < u_star < 1.0
    assert upward_map(u_star, v, m, s) == pytest.approx(u_star, rel=1e-9)
    # Repulsive: iterating from just below falls to 1/v, from just above climbs to 1.
    below, above = u_star - 1e-3, u_star + 1e-3
    for _ in range(2000):
        below, above = upward_map(below, v, m, s), upward_map(above, v, m, s)
    assert below == pytest.approx(1.0 / v, abs=1e-6)
    assert above == pytest.approx(1.0, abs=1e-6)


def test_no_recovery_phase_when_slope_exceeds_one():
    # s=2: 2m > v + 1 -> F'(1) > 1, every u < 1 flows to 1/v.
    v, m = 16, 12
    assert slope_at_one(v, m, 2) > 1
    assert critical_eps(v, m, 2) == 0.0
    # m = 1: 1/v itself is repulsive, any eps < 1 - 1/v is recovered.
    assert critical_eps(v, 1, 2) == pytest.approx(1 - 1 / v)
    u = 1 / v + 1e-3
    for _ in range(500):
        u = upward_map(u, v, 1, 2)
    assert u == pytest.approx(1.0, abs=1e-9)


def test_large_v_limit():
    f = np.array([0.05, 0.2, 0.4, 0.49])
    assert critical_line(f, 2) == pytest.approx((1 - 2 * f) / (1 - f), rel=1e-10)
    assert critical_line(np.array([0.5, 0.7]), 2) == pytest.approx([0.0, 0.0], abs=1e-9)
    # s=3: u* solves u**2 = f (1 + u + u**2); recovery iff f < 1/3.
    f3 = np.array([0.1, 0.3])
    u3 = 1 - critical_line(f3, 3)
    assert u3**2 == pytest.approx(f3 * (1 + u3 + u3**2), rel=1e-10)
    assert critical_line(np.array([0.34]), 3)[0] == 0.0
    # The finite-v map and line converge to the limits.
    v = 4000
    u = np.linspace(0.05, 0.95, 7)
    assert upward_map(u, v, 0.2 * v, 2) == pytest.approx(large_v_upward_map(u, 0.2, 2), abs=1e-3)
    assert critical_line(f, 2, v=v) == pytest.approx(critical_line(f, 2), abs=1e-3)


def test_matches_symbolic_module_if_present():
    """The sympy derivation (hiergrammar.theory.symbolic) and these typed-in closed forms agree on
    eps*."""
    symbolic = pytest.importorskip("hiergrammar.theory.symbolic")
    for v, m, s in [
        (32, 8, 2),
        (16, 3, 2),
        (64, 20, 2),
        (16, 1, 2),
        (16, 12, 2),
        (8, 8, 3),
        (8, 2, 3),
        (6, 20, 4),
    ]:
        point = symbolic.critical_point(v, m, s)
        assert point.eps_star_float == pytest.approx(critical_eps(v, m, s), abs=1e-9)


# -- profile ------------------------------------------------------------------------------------
def test_profile_shapes_scalar_and_array():
    scalar = profile(32, 32, 8, 2, 5, 0.4)
    assert scalar.u.shape == scalar.d.shape == scalar.p.shape == (6,)
    array = profile(32, 32, 8, 2, 5, [0.1, 0.4, 0.7])
    assert array.u.shape == array.d.shape == array.p.shape == (3, 6)
    np.testing.assert_allclose(array.p[1], scalar.p)
    assert profile(32, 32, 8, 2, 5, np.array([0.4])).p.shape == (1, 6)


def test_profile_boundary_values():
    v, n_c, m, s, L = 16, 4, 3, 2, 4
    prof = profile(v, n_c, m, s, L, np.array([0.0, 1 - 1 / v]))
    np.testing.assert_allclose(prof.u[0], 1.0)
    np.testing.assert_allclose(prof.p[0], 1.0)
    # Uninformative leaves: upward beliefs stay at chance (F(1/v) = 1/v) below the root; the
    # marginals keep the prior's preference for the symbols the rules use, so p >= 1/v.
    np.testing.assert_allclose(prof.u[1, :L], 1 / v, rtol=1e-12)
    assert np.all(prof.p[1, :L] >= 1 / v)
    assert prof.d[0, L] == prof.d[1, L] == pytest.approx(1 / n_c)
    # At the root the marginal equals the upward belief (uniform prior).
    mid = profile(v, n_c, m, s, L, np.linspace(0, 0.9, 10))
    np.testing.assert_allclose(mid.p[:, L], mid.u[:, L], rtol=1e-12)


def test_profile_follows_the_maps_with_the_right_cardinalities():
    v, n_c, m, s, L, eps = 16, 5, 3, 2, 3, 0.35
    prof = profile(v, n_c, m, s, L, eps)
    u = [1 - eps]
    for level in range(1, L + 1):
        u.append(float(upward_map(u[-1], v, m, s, K=n_c if level == L else v)))
    d = [1 / n_c]
    for level in range(L, 0, -1):
        d.insert(0, float(downward_map(d[0], u[level - 1], v, m, s)))
    p = [float(marginal(u[k], d[k], n_c if k == L else v)) for k in range(L + 1)]
    np.testing.assert_allclose(prof.u, u, rtol=1e-12)
    np.testing.assert_allclose(prof.d, d, rtol=1e-12)
    np.testing.assert_allclose(prof.p, p, rtol=1e-12)


@pytest.mark.parametrize("v,n_c,m,s,L", [(32, 32, 8, 2, 6), (8, 3, 10, 3, 4), (16, 16, 1, 2, 3)])
def test_profile_monotone_in_eps(v, n_c, m, s, L):
    eps = np.linspace(0, 1 - 1 / v, 60)
    prof = profile(v, n_c, m, s, L, eps)
    for arr in (prof.u, prof.d, prof.p):
        assert np.all(np.diff(arr, axis=0) <= 1e-12), "beliefs must not grow with the noise"
        assert np.all((arr >= 0) & (arr <= 1))
    # F is increasing in u, G in d and in u.
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(upward_map(grid, v, m, s)) > 0)
    assert np.all(np.diff(downward_map(grid, 0.7, v, m, s)) >= 0)
    assert np.all(np.diff(downward_map(0.5, grid, v, m, s)) >= 0)


def test_class_transition_sharpens_with_depth():
    v, m = 32, 8
    eps_star = critical_eps(v, m, 2)
    below, above = eps_star - 0.03, eps_star + 0.03
    deep = profile(v, v, m, 2, 40, [below, above]).p[:, -1]
    shallow = profile(v, v, m, 2, 3, [below, above]).p[:, -1]
    assert deep[0] > 0.99 and deep[1] < 1.5 / v
    assert shallow[0] - shallow[1] < deep[0] - deep[1]


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(v=1), "v=1 violates v >= 2"),
        (dict(v=8.5), "v must be an integer"),
        (dict(n_classes=0), "n_classes=0 violates"),
        (dict(m=0), "m=0 violates m >= 1"),
        (dict(m=9), "m <= v\\*\\*\\(s-1\\)"),
        (dict(n_classes=9, m=8), "n_classes\\*m"),
        (dict(s=1), "s=1 violates s >= 2"),
        (dict(L=0), "L=0 violates L >= 1"),
        (dict(eps=1.2), r"eps=1.2 violates 0.0 <= eps <= 1.0"),
        (dict(eps=[0.1, -0.1]), r"eps\[1\]=-0.1 violates 0.0 <= eps\[1\] <= 1.0"),
        (dict(eps=np.nan), r"eps=nan violates 0.0 <= eps <= 1.0 \(it must be a finite"),
    ],
)
def test_profile_validation(kwargs, match):
    params = dict(v=8, n_classes=8, m=2, s=2, L=3, eps=0.2) | kwargs
    with pytest.raises(ValueError, match=match):
        profile(**params)
    if "eps" not in kwargs:  # the same bounds as the RHM itself
        rhm_params = {k: val for k, val in params.items() if k != "eps"}
        with pytest.raises(ValueError):
            RHM(**rhm_params)


# -- the maps are annealed averages of exact BP messages -------------------------------------------
def _jackknife_ratio(true: np.ndarray, other: np.ndarray, K: int) -> tuple[float, float]:
    """Ratio E[true] / (E[true] + (K-1) E[other]) over draws, and its jackknife error."""

    def ratio(t, o):
        return t / (t + (K - 1) * o)

    n = len(true)
    full = ratio(true.mean(), other.mean())
    loo = ratio((true.sum() - true) / (n - 1), (other.sum() - other) / (n - 1))
    return full, float(np.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum()))


@pytest.mark.parametrize("v,K,m,s", [(6, 4, 3, 2), (4, 3, 3, 3)])
def test_upward_map_is_annealed_bp_average(v, K, m, s):
    """F(u) = E[nu(true)] / (E[nu(true)] + (K-1) E[nu(other)]), expectations over rule draws,
    with nu the exact unnormalised upward message of a one-level RHM (from tree_bp)."""
    eps, draws, n = 0.3, 300, 24
    true, other = np.empty(draws), np.empty(draws)
    for r in range(draws):
        rhm = RHM(v, K, m, s, 1, seed=r)
        data = rhm.sample(n, seed=10_000 + r)
        res = tree_bp(rhm, eps_evidence(data.x, eps, v))
        # Unnormalised: up[1] * sum_a nu(a), and log_evidence = log(sum_a nu(a) / K).
        nu = res.up[1][:, 0, :] * (K * np.exp(res.log_evidence))[:, None]
        nu_true = nu[np.arange(n), data.y]
        true[r] = nu_true.mean()
        other[r] = ((nu.sum(axis=1) - nu_true) / (K - 1)).mean()
    estimate, se = _jackknife_ratio(true, other, K)
    assert estimate == pytest.approx(float(upward_map(1 - eps, v, m, s, K=K)), abs=4 * se + 1e-4)
    # Power: the wrong parent cardinality at the root is rejected by the same test.
    wrong = float(upward_map(1 - eps, v, m, s, K=v))
    assert abs(estimate - wrong) > 4 * se


@pytest.mark.parametrize("v,K,m,s", [(6, 4, 3, 2), (4, 3, 3, 3)])
def test_downward_map_is_annealed_bp_average(v, K, m, s):
    """G(d, u) is the same ratio for the unnormalised downward message into a child whose
    parent has downward belief d and whose siblings have upward belief u."""
    d, u, draws, n = 0.6, 0.7, 300, 24
    true, other = np.empty(draws), np.empty(draws)
    for r in range(draws):
        rhm = RHM(v, K, m, s, 1, seed=r)
        data = rhm.sample(n, seed=10_000 + r)
        prior = np.full((n, K), (1 - d) / (K - 1))
        prior[np.arange(n), data.y] = d
        evidence = eps_evidence(data.x, 1 - u, v)
        res = tree_bp(rhm, evidence, root_prior=prior)
        # Child 0: log_evidence = log sum_x e_0(x) nu_0(x) and down[0] = nu_0 / N.
        down0, e0 = res.down[0][:, 0, :], evidence[:, 0, :]
        nu = down0 * (np.exp(res.log_evidence) / (e0 * down0).sum(axis=1))[:, None]
        nu_true = nu[np.arange(n), data.x[:, 0]]
        true[r] = nu_true.mean()
        other[r] = ((nu.sum(axis=1) - nu_true) / (v - 1)).mean()
    estimate, se = _jackknife_ratio(true, other, v)
    assert estimate == pytest.approx(float(downward_map(d, u, v, m, s)), abs=4 * se + 1e-4)


# -- agreement with exact BP averaged over samples and rule draws ------------------------------
@pytest.mark.slow
def test_profile_agrees_with_exact_bp():
    """docs/model.md §6: |p_MF - p_BP| <= 0.02 at every level for v=n_c=32, m=8, s=2, eps in
    [0.3, 0.9] (here L=3 and L=4 on a coarse eps grid); the BP standard errors are required to be
    well below the tolerance so that the check has power."""
    eps = np.array([0.3, 0.55, 0.7, 0.9])
    for L in (3, 4):
        mf = profile(32, 32, 8, 2, L, eps)
        bp = bp_profile(32, 32, 8, 2, L, eps, n_samples=480, n_rules=6, seed=L, dtype=np.float32)
        assert bp.p.shape == (4, L + 1)
        assert bp.p_se.max() < 0.008
        np.testing.assert_allclose(bp.p, mf.p, atol=0.02)
        np.testing.assert_allclose(bp.u, mf.u, atol=0.02)
        # At the input, u_0 = 1 - eps exactly and the argmax is right whenever it can be.
        np.testing.assert_allclose(bp.u[:, 0], 1 - eps, atol=1e-6)


def test_profile_with_fewer_classes_agrees_with_bp_at_the_root():
    """n_c != v: the root's K = n_c enters F at the last step and p at the root; with K = v
    instead, the class belief would be far off."""
    v, n_c, m, L, eps = 16, 4, 4, 2, np.array([0.5, 0.7])
    bp = bp_profile(v, n_c, m, 2, L, eps, n_samples=600, n_rules=6, seed=3, dtype=np.float32)
    mf = profile(v, n_c, m, 2, L, eps)
    np.testing.assert_allclose(bp.p[:, L], mf.p[:, L], atol=max(0.02, 4 * bp.p_se.max()))
    wrong_root = upward_map(mf.u[:, L - 1], v, m, 2, K=v)
    assert np.abs(wrong_root - bp.p[:, L]).max() > 0.1


def test_bp_profile_is_deterministic_and_validates():
    a = bp_profile(8, 4, 2, 2, 2, [0.2, 0.6], n_samples=20, n_rules=2, seed=5)
    b = bp_profile(8, 4, 2, 2, 2, [0.2, 0.6], n_samples=20, n_rules=2, seed=5)
    np.testing.assert_array_equal(a.p, b.p)
    assert a.n_per_rule == 10 and a.n_rules == 2
    with pytest.raises(ValueError, match="n_rules=0 violates"):
        bp_profile(8, 4, 2, 2, 2, 0.2, n_rules=0)
    with pytest.raises(ValueError, match="eps"):
        bp_profile(8, 4, 2, 2, 2, 1.5)
