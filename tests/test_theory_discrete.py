"""Tests of the theories of the discrete processes (hiergrammar.theory.discrete and
hiergrammar.theory.discrete_symbolic): one test (at least) per derivation step.

Independent evidence: the leaf laws against the processes themselves (their corrupt and
leaf_likelihood, sampled; tolerances of 5 standard errors); the determination kernel against
every rule draw of tiny grammars (exact rationals) and against the derived inclusion-exclusion
sum; the determination law against exact BP supports and against population dynamics (the
full messages of another engine, exact zeros counted); the two-value closure against closed-form
expectations and, for the eps-process, the mean field; slopes against finite differences and
eigenvalues; critical points against plain iteration on both sides; times against closed-form
inverses of the schedules; the stored validation against a recomputation of its summary.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hiergrammar.theory import discrete, discrete_symbolic
from hiergrammar.theory.discrete import (
    critical_alpha,
    determination_critical_alpha,
    determination_kernel,
    determination_profile,
    effective_eps,
    first_moment_belief,
    first_moment_critical_alpha,
    leaf_law,
    population_upward_profile,
    time_at_alpha,
    two_value_critical_alpha,
    two_value_profile,
)
from hiergrammar.theory.discrete_symbolic import DSym
from hiergrammar.theory.meanfield import profile as meanfield_profile
from hiergrammar.theory.meanfield import slope_at_one, upward_fixed_point
from hiergrammar.theory.symbolic import Sym

from hiergrammar import RHM
from hiergrammar.bp import upward_pass
from hiergrammar.processes import MaskingProcess, UniformProcess
from hiergrammar.validation import InputError

S, D = Sym, DSym


@pytest.fixture(scope="module")
def deriv():
    return discrete_symbolic.derivation()


def _num(expr: sp.Expr, **values) -> float:
    table = {}
    for key, value in values.items():
        table[getattr(D, key, None) or getattr(S, key)] = value
    return float(sp.N(expr.subs(table).doit()))


def _sampled_leaf_beliefs(proc, v: int, t: float, n: int = 40000, seed: int = 0):
    """Normalised leaf messages of the process itself, and the true symbols."""
    rng = np.random.default_rng(seed)
    x = rng.integers(v, size=(n, 1))
    obs = proc.corrupt(x, t, seed=seed + 1)
    ev = proc.leaf_likelihood(obs, t)[:, 0, :]
    ev = ev / ev.sum(axis=1, keepdims=True)
    return ev, x[:, 0], obs[:, 0]


# -- leaf laws and the first moment ----------------------------------------------------------
@pytest.mark.parametrize("process", ["masking", "uniform"])
@pytest.mark.parametrize("t", [0.2, 0.6])
def test_leaf_law_matches_the_process(deriv, process, t):
    """Steps masking_leaf_mean, uniform_beta, uniform_w0, uniform_centre_correct,
    uniform_leaf_mean_raw, uniform_leaf_mean: against the processes' own leaves."""
    v, alpha = 6, 1.0 - t
    proc = MaskingProcess(v) if process == "masking" else UniformProcess(v)
    ev, x, obs = _sampled_leaf_beliefs(proc, v, t)
    on_truth = ev[np.arange(x.size), x]
    law = leaf_law(process, v, alpha)
    values, counts = np.unique(np.round(on_truth, 12), return_counts=True)
    np.testing.assert_allclose(np.sort(values), np.sort(law.values), atol=1e-12)
    freq = dict(zip(values.tolist(), (counts / x.size).tolist(), strict=True))
    for value, weight in zip(law.values, law.weights, strict=True):
        se = math.sqrt(weight * (1 - weight) / x.size)
        assert abs(freq[round(value, 12)] - weight) < 5 * se + 1e-12
    mean_step = "masking_leaf_mean" if process == "masking" else "uniform_leaf_mean"
    mean = _num(deriv[mean_step].expr, v=v, alpha=alpha)
    assert mean == pytest.approx(first_moment_belief(process, v, alpha), abs=1e-12)
    assert abs(on_truth.mean() - mean) < 5 * on_truth.std() / math.sqrt(x.size)
    if process == "uniform":
        beta, w0 = (_num(deriv[n].expr, v=v, alpha=alpha) for n in ("uniform_beta", "uniform_w0"))
        assert ev[np.arange(x.size), obs] == pytest.approx(w0)  # the centre
        assert np.sort(ev, axis=1)[:, 0] == pytest.approx(beta)  # every other symbol
        correct = (obs == x).mean()  # the centre is right with probability w0 (calibration)
        assert _num(deriv["uniform_centre_correct"].expr, v=v, alpha=alpha) == w0
        assert abs(correct - w0) < 5 * math.sqrt(w0 * (1 - w0) / x.size)
        raw = deriv["uniform_leaf_mean_raw"].expr.subs({D.w0: w0, D.beta: beta})
        assert float(raw) == pytest.approx(mean, abs=1e-12)


def test_effective_eps_steps(deriv):
    """Steps masking_eps_eff and uniform_eps_eff: against EpsProcess's eps(t) on the linear
    schedule and against 1 - u0."""
    from hiergrammar.processes import EpsProcess

    v = 32
    eps_clock = EpsProcess(v, schedule="linear")
    for alpha in (0.0, 0.3, 0.9, 1.0):
        masking = _num(deriv["masking_eps_eff"].expr, v=v, alpha=alpha)
        assert masking == pytest.approx(eps_clock.eps(1.0 - alpha), abs=1e-12)
        assert masking == pytest.approx(effective_eps("masking", v, alpha), abs=1e-12)
        uniform = _num(deriv["uniform_eps_eff"].expr, v=v, alpha=alpha)
        assert uniform == pytest.approx(1 - first_moment_belief("uniform", v, alpha), abs=1e-12)
        assert uniform == pytest.approx(eps_clock.eps(1.0 - alpha**2), abs=1e-12)


@pytest.mark.parametrize("v,m,s", [(32, 8, 2), (16, 3, 2), (8, 3, 3)])
def test_first_moment_critical_alpha_separates_the_basins(deriv, v, m, s):
    """Steps alpha_star_first_moment_masking and alpha_star_first_moment_uniform: the mean
    field started from u0(alpha) recovers the class just above alpha* and loses it just
    below (iteration)."""
    for process in ("masking", "uniform", "eps"):
        a_star = first_moment_critical_alpha(process, v, m, s)
        name = "uniform" if process == "uniform" else "masking"
        u_star = upward_fixed_point(v, m, s)
        expr = deriv[f"alpha_star_first_moment_{name}"].expr
        assert _num(expr, v=v, u_star=u_star) == pytest.approx(a_star, abs=1e-9)
        for alpha, recovered in ((a_star + 1e-3, True), (a_star - 1e-3, False)):
            prof = meanfield_profile(v, v, m, s, 400, effective_eps(process, v, alpha))
            assert (prof.u[-1] > 0.5) == recovered, (process, alpha)


def test_first_moment_closed_form_s2(deriv):
    """Step alpha_star_first_moment_masking_s2 against eps* = (v - 2m + 1)/(v - m) converted
    by hand with fractions; and the exact values quoted in the documents."""
    for v, m in ((32, 8), (16, 3), (100, 17)):
        eps = Fraction(v - 2 * m + 1, v - m)
        alpha = 1 - eps * v / (v - 1)
        got = deriv["alpha_star_first_moment_masking_s2"].expr.subs({S.v: v, S.m: m})
        assert sp.Rational(got) == sp.Rational(alpha.numerator, alpha.denominator)
    assert discrete_symbolic.first_moment_alpha_star_exact("masking", 32, 8, 2) == sp.Rational(
        25, 93
    )
    assert discrete_symbolic.first_moment_alpha_star_exact("uniform", 32, 8, 2) == sp.sqrt(
        sp.Rational(25, 93)
    )


# -- determination kernel --------------------------------------------------------------------
def _enumerated_kernel(v: int, s: int, K: int, m: int) -> np.ndarray:
    """T(k' | N), exactly (Fractions), over every rule draw in which parent 0 owns tuple 0,
    and every box of N non-true tuples."""
    tuples = v**s
    others = range(1, tuples)
    out = [[Fraction(0)] * K for _ in range(tuples)]
    draws = 0
    counts = [[0] * K for _ in range(tuples)]
    boxes = {n: list(itertools.combinations(others, n)) for n in range(tuples)}

    def assign(parent: int, free: tuple[int, ...], owner: dict[int, int]) -> None:
        nonlocal draws
        if parent == K:
            draws += 1
            for n, box_list in boxes.items():
                for box in box_list:
                    hit = len({owner[t] for t in box if owner.get(t, 0) != 0})
                    counts[n][hit] += 1
            return
        need = m - 1 if parent == 0 else m
        for chosen in itertools.combinations(free, need):
            rest = tuple(t for t in free if t not in chosen)
            assign(parent + 1, rest, {**owner, **{t: parent for t in chosen}})

    assign(0, tuple(others), {0: 0})
    for n in range(tuples):
        total = sum(counts[n])
        out[n] = [Fraction(c, total) for c in counts[n]]
    return np.array(out, dtype=object)


@pytest.mark.parametrize("v,s,K,m", [(2, 3, 2, 2), (3, 2, 3, 2), (2, 3, 3, 2)])
def test_kernel_equals_enumeration_and_derived_sum(deriv, v, s, K, m):
    """Steps rest_tuples, kernel_generating_function, kernel_coefficient, kernel: the derived
    law equals the count over every rule draw; so does the numeric kernel."""
    exact = _enumerated_kernel(v, s, K, m)
    numeric = determination_kernel(v, K, m, s)
    R = _num(deriv["rest_tuples"].expr, v=v, s=s, K=K, m=m)
    assert R == v**s - 1 - (K - 1) * m
    gf = deriv["kernel_generating_function"].expr
    for N in range(v**s):
        for kp in range(K):
            values = {S.v: v, S.s: s, S.K: K, S.m: m, D.N: N, D.kp: kp, D.R: int(R)}
            coeff = sp.Poly(gf.subs(values), D.z).coeff_monomial(D.z**N)
            assert deriv["kernel_coefficient"].expr.subs(values).doit() == coeff
            derived = sp.Rational(deriv["kernel"].expr.subs(values).doit())
            assert derived == sp.Rational(exact[N, kp].numerator, exact[N, kp].denominator)
            assert numeric[N, kp] == pytest.approx(float(exact[N, kp]), abs=1e-13)


def test_kernel_corners(deriv):
    """Steps kernel_none, kernel_one_tuple, kernel_diagonal against the numeric kernel at the
    figures' parameters (another algorithm: tuples added one at a time)."""
    v, m, s = 32, 8, 2
    T = determination_kernel(v, v, m, s)
    values = {"v": v, "m": m, "s": s, "K": v}
    for N in (0, 1, 5, 31, 200):
        assert T[N, 0] == pytest.approx(_num(deriv["kernel_none"].expr, N=N, **values), rel=1e-9)
    assert T[1, 1] == pytest.approx(_num(deriv["kernel_one_tuple"].expr, **values), rel=1e-12)
    for k in (1, 2, 3, 6):
        assert T[k, k] == pytest.approx(
            _num(deriv["kernel_diagonal"].expr, k=k, **values), rel=1e-9
        )
        assert T[k, k] <= T[1, 1] ** k + 1e-15
    assert np.allclose(T.sum(axis=1), 1.0) and T.min() >= 0
    # k' <= N: a box of N tuples hits at most N wrong parents.
    for N in range(v):
        assert T[N, N + 1 :].sum() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("v,m,s", [(32, 8, 2), (8, 3, 2), (4, 3, 3)])
def test_determination_rate_is_the_top_eigenvalue_and_F_prime(deriv, v, m, s):
    """Steps determination_rate, determination_rate_is_slope: the largest eigenvalue of the
    linearised law s T(k'|k) (k, k' >= 1) equals s T(1|1) and the mean field's F'(1)."""
    T = determination_kernel(v, v, m, s)
    lin = s * T[1:v, 1:v]  # rows k (a child with k wrong values), columns k'
    top = max(abs(np.linalg.eigvals(lin)))
    rate = _num(deriv["determination_rate"].expr, v=v, m=m, s=s)
    assert top == pytest.approx(rate, rel=1e-9)
    assert rate == pytest.approx(slope_at_one(v, m, s), rel=1e-12)
    assert deriv["determination_rate_is_slope"].expr == 0


def test_naive_closure_and_its_failure(deriv):
    """Steps naive_closure_one_flat, naive_closure, naive_closure_slope_s2: against the numeric
    kernel and a finite difference; and exact BP refutes it: the determined fraction grows
    with depth at t = 0.2 (v=32, m=8, s=2), where the naive closure predicts it shrinks."""
    v, m, s = 32, 8, 2
    T = determination_kernel(v, v, m, s)
    values = {"v": v, "m": m, "s": s}
    assert _num(deriv["naive_closure_one_flat"].expr, **values) == pytest.approx(T[v - 1, 0])
    q = 0.9
    naive = _num(deriv["naive_closure"].expr, q=q, **values)
    assert naive == pytest.approx(q**2 + 2 * q * (1 - q) * T[v - 1, 0] + (1 - q) ** 2 * T[-1, 0])
    slope = _num(deriv["naive_closure_slope_s2"].expr, **values)
    h = 1e-6
    fd = (
        _num(deriv["naive_closure"].expr, q=1.0, **values)
        - _num(deriv["naive_closure"].expr, q=1.0 - h, **values)
    ) / h
    assert slope == pytest.approx(fd, rel=1e-4) and slope > 1.99
    # BP: P(root determined) at L = 3 and L = 6, t = 0.2, three rule draws.
    proc = MaskingProcess(v)
    det = {}
    for L in (3, 6):
        hits = []
        for r in range(3):
            rhm = RHM(v, v, m, s, L, seed=10 + r)
            data = rhm.sample(300, seed=20 + r)
            obs = proc.corrupt(data.x, 0.2, seed=30 + r)
            root = upward_pass(rhm, proc.leaf_likelihood(obs, 0.2)).up[L][:, 0]
            hits.append(((root > 0).sum(axis=1) == 1).mean())
        det[L] = np.mean(hits)
    assert det[6] > det[3] + 0.05, det
    prof = determination_profile(v, v, m, s, 6, 0.8)  # the exact law agrees with BP
    assert abs(prof.determined[3] - det[3]) < 0.05 and abs(prof.determined[6] - det[6]) < 0.05


# -- determination law vs exact BP and population dynamics -----------------------------------
def test_determination_law_matches_exact_bp_supports():
    """The law of the support size at every level against exact BP (float64 zeros) on three
    RHMs; tolerance: 5 standard errors of the per-draw spread, plus 0.01 for the coupling of
    nodes through a level's shared rules (the law assumes fresh rules per factor)."""
    v, m, s, L = 32, 8, 2, 4
    proc = MaskingProcess(v)
    for t in (0.15, 0.35):
        law = determination_profile(v, v, m, s, L, 1.0 - t)
        per_draw = []
        for r in range(4):
            rhm = RHM(v, v, m, s, L, seed=100 + r)
            data = rhm.sample(400, seed=200 + r)
            res = upward_pass(rhm, proc.leaf_likelihood(proc.corrupt(data.x, t, seed=r), t))
            per_draw.append(
                [((res.up[level] > 0).sum(axis=-1) == 1).mean() for level in range(L + 1)]
            )
        per_draw = np.array(per_draw)
        mean, se = per_draw.mean(0), per_draw.std(0, ddof=1) / 2
        assert np.all(np.abs(mean - law.determined) < 5 * se + 0.01), (t, mean, law.determined)


def test_determination_law_matches_population_dynamics():
    """Population dynamics keeps the whole message; its exact zeros give the support, whose
    size must follow the determination law (same ensemble): determined fraction per level.
    Tolerance: 4 standard errors (8 replicas) plus 0.003 (the bias of a finite population
    whose members share ancestors). v = 8 keeps the population cheap; its alpha*_det = 0.15."""
    v, m, s, L = 8, 2, 2, 5
    for alpha in (0.6, 0.7):
        law = determination_profile(v, v, m, s, L, alpha)
        pop = population_upward_profile(
            "masking", v, v, m, s, L, alpha, n_pop=80000, n_replicas=8, seed=1
        )
        dev = np.abs(pop.determined - law.determined)
        assert np.all(dev < 4 * pop.determined_se + 0.003), (alpha, pop.determined, law)


def test_determination_critical_alpha_separates_the_basins():
    """Deep iteration of the law on both sides of alpha*_det, and below every determined
    alpha the support belief is smaller (a lower bound on the class transition time)."""
    v, m, s = 32, 8, 2
    a_star = determination_critical_alpha(v, m, s, tol=1e-6)
    assert 0.74 < a_star < 0.76
    high = determination_profile(v, v, m, s, 300, a_star + 2e-3)
    low = determination_profile(v, v, m, s, 300, a_star - 2e-3)
    assert high.determined[-1] > 0.99 and low.determined[-1] < 0.01
    assert low.law[-1, v - 1] > 0.99  # beyond: the support fills up (all values possible)
    # m = 1: one kept leaf determines its parent.
    assert determination_profile(8, 8, 1, 2, 3, 0.3).determined[-1] > 0.3
    with pytest.raises(InputError, match="v\\*\\*s"):
        determination_kernel(300, 300, 2, 2)


# -- two-value closure -----------------------------------------------------------------------
def test_two_value_closure_first_level_and_eps_limit(deriv):
    """Level 1 of the closure against its closed-form expectation over the children's leaf
    laws; for the eps-process (one-point law) the closure is the mean field exactly."""
    F = discrete._upward_of_x()
    v, m, s = 32, 8, 2
    for process in ("masking", "uniform"):
        law = leaf_law(process, v, 0.7)
        expected = sum(
            law.weights[i] * law.weights[j] * F(law.values[i] * law.values[j], v, m, s, v)
            for i in range(2)
            for j in range(2)
        )
        got = two_value_profile(process, v, v, m, s, 2, 0.7, n_pop=200_000, seed=1)
        assert abs(got.u[1] - expected) < 5 * got.samples[1].std() / math.sqrt(200_000)
    for K in (32, 4):
        tv = two_value_profile("eps", 32, K, 8, 2, 5, 0.4, n_pop=3)
        mf = meanfield_profile(32, K, 8, 2, 5, effective_eps("eps", 32, 0.4))
        np.testing.assert_allclose(tv.u, mf.u, rtol=1e-12)


def test_two_value_rate_steps(deriv):
    """Steps two_value_slope_x, two_value_slope_is_kernel, two_value_rate: a finite
    difference of the derived map, and equality with T(1|1) and F'(1)."""
    F = discrete._upward_of_x()
    for v, m, s, K in ((32, 8, 2, 32), (8, 3, 3, 5)):
        h = 1e-7
        fd = (F(1.0, v, m, s, K) - F(1.0 - h, v, m, s, K)) / h
        assert fd == pytest.approx(_num(deriv["two_value_slope_x"].expr, v=v, m=m, s=s, K=K))
        assert fd == pytest.approx(determination_kernel(v, K, m, s)[1, 1], rel=1e-5)
        rate = _num(deriv["two_value_rate"].expr, v=v, m=m, s=s)
        assert rate == pytest.approx(slope_at_one(v, m, s))
    assert deriv["two_value_slope_is_kernel"].expr == 0


def test_two_value_critical_alpha():
    """The eps-process's two-value threshold is the mean field's eps*; masking and uniform
    sit on either side of their deep iteration (same seed: the same populations)."""
    a = two_value_critical_alpha("eps", 32, 8, 2, n_pop=2, tol=1e-7)
    assert effective_eps("eps", 32, a) == pytest.approx(17 / 24, abs=1e-6)
    for process in ("masking", "uniform"):
        a = two_value_critical_alpha(process, 32, 8, 2, n_pop=20000, seed=2, tol=1e-3)
        for alpha, recovered in ((a + 3e-3, True), (a - 3e-3, False)):
            levels = discrete._two_value_levels(process, 32, 32, 8, 2, 300, alpha, 20000, 2, True)
            assert (levels[-1].mean() > 0.5) == recovered


# -- uniform leaves' centres ---------------------------------------------------------------
def test_uniform_centre_steps(deriv):
    """Steps uniform_centre_ratio, uniform_wrong_centre_adopted(_large_v): the ratio of the
    process's own likelihoods; the adoption probability over sampled rule tables."""
    from hiergrammar.theory.population import draw_tables

    v, alpha = 10, 0.6
    ev = UniformProcess(v).leaf_likelihood(np.array([[3]]), 1 - alpha)[0, 0]
    assert ev[3] / ev[0] == pytest.approx(
        _num(deriv["uniform_centre_ratio"].expr, v=v, alpha=alpha)
    )
    v, m, s, n = 8, 3, 2, 20000
    tables = draw_tables(n, v, m, s, v, seed=0)
    # A tuple of centres with one wrong coordinate, (1, 0): owned by a wrong parent?
    owned = ((tables[:, 1:, :, 0] == 1) & (tables[:, 1:, :, 1] == 0)).any(axis=(1, 2)).mean()
    p = _num(deriv["uniform_wrong_centre_adopted"].expr, v=v, m=m, s=s, K=v)
    assert abs(owned - p) < 5 * math.sqrt(p * (1 - p) / n)
    limit = deriv["uniform_wrong_centre_adopted_large_v"].expr
    far = deriv["uniform_wrong_centre_adopted"].expr.subs({S.K: S.v, S.s: 2})
    assert float(far.subs({S.v: 10**6, S.m: sp.Rational(1, 4) * 10**6})) == pytest.approx(
        float(limit.subs(S.f, sp.Rational(1, 4))), rel=1e-5
    )


def test_box_size_step(deriv):
    """Step box_size: the product of the children's supports, minus the true tuple, for
    concrete k's (what determination_step convolves)."""
    expr = deriv["box_size"].expr
    k = sp.IndexedBase("k")
    value = expr.subs(S.s, 3).doit().subs({k[1]: 2, k[2]: 0, k[3]: 4})
    assert value == 3 * 1 * 5 - 1
    law = np.zeros(4)
    law[1] = 1.0  # every child: one wrong value; box = 2*2 - 1 = 3 non-true tuples
    T = determination_kernel(4, 4, 2, 2)
    np.testing.assert_allclose(discrete.determination_step(law, 4, 4, 2, 2), T[3])


# -- population dynamics, times and the gathered critical points -----------------------------
def test_population_upward_profile_matches_exact_bp():
    """Population dynamics (upward) against exact BP at L = 3 for both processes."""
    v, m, s, L, t = 32, 8, 2, 3, 0.25
    for process, proc in (("masking", MaskingProcess(v)), ("uniform", UniformProcess(v))):
        pop = population_upward_profile(process, v, v, m, s, L, 1 - t, n_pop=16000, seed=1)
        per_draw = []
        for r in range(4):
            rhm = RHM(v, v, m, s, L, seed=300 + r)
            data = rhm.sample(500, seed=400 + r)
            res = upward_pass(rhm, proc.leaf_likelihood(proc.corrupt(data.x, t, seed=r), t))
            root = res.up[L][:, 0]
            per_draw.append(root[np.arange(data.y.size), data.y].mean())
        bp, se = np.mean(per_draw), np.std(per_draw, ddof=1) / 2
        assert abs(pop.u[-1] - bp) < 5 * math.hypot(se, pop.u_se[-1]) + 0.01, (process, bp, pop.u)


def test_time_at_alpha_inverts_the_schedules():
    from hiergrammar.schedules import DiscreteChain

    assert time_at_alpha("linear", 0.3) == pytest.approx(0.7)
    for alpha in (0.1, 0.5, 0.9):
        # cosine: alpha = 1 - sin(pi t / 2)  =>  t = 2 arcsin(1 - alpha) / pi
        expected = 2 * math.asin(1 - alpha) / math.pi
        assert time_at_alpha("cosine", alpha) == pytest.approx(expected, abs=1e-10)
    chain = DiscreteChain.from_schedule("linear", num_train_steps=100, num_steps=100)
    assert time_at_alpha(chain, 0.25) == pytest.approx(75.0)
    assert math.isnan(time_at_alpha("linear", math.nan))


def test_critical_alpha_gathers_the_theories():
    crit = critical_alpha(
        "masking", 32, 8, 2, schedule="cosine", methods=["first_moment", "determination"]
    )
    assert crit.source == {"first_moment": "closed form", "determination": "computed"}
    assert crit.alpha["first_moment"] == pytest.approx(25 / 93)
    assert crit.t["determination"] == pytest.approx(
        2 * math.asin(1 - crit.alpha["determination"]) / math.pi
    )
    assert crit.best == "determination"
    data = crit.to_dict()
    assert set(data) == {
        "process", "v", "m", "s", "schedule", "alpha", "t", "source", "best",
        "alpha_star", "t_star",
    }  # fmt: skip
    assert "determination law" in crit.summary()
    uniform = critical_alpha("uniform", 32, 8, 2, methods=["determination", "first_moment"])
    assert "determination" not in uniform.alpha  # masking only
    with pytest.raises(InputError, match="process"):
        critical_alpha("gaussian")
    with pytest.raises(InputError, match="method"):
        critical_alpha("masking", methods=["guess"])
    with pytest.raises(InputError):
        critical_alpha("masking", 4, 5, 2)  # m > v**(s-1)


def test_stored_critical_points_are_read_or_recomputed():
    """The figure's parameters read the stored thresholds; use_stored=False recomputes the
    two-value closure (a smaller population: within 0.01 of the stored 4e5 one); other
    parameters compute it and omit population dynamics."""
    stored = discrete.load_stored()
    crit = critical_alpha("uniform", 32, 8, 2, methods=["population", "two_value"])
    assert crit.source == {"population": "stored", "two_value": "stored"}
    for method in ("population", "two_value"):
        assert crit.alpha[method] == stored["critical"]["uniform"][method]
    assert crit.best == "population" and crit.t_star == pytest.approx(1 - crit.alpha_star)
    fresh = critical_alpha(
        "uniform", 32, 8, 2, methods=["two_value"], n_pop=40000, use_stored=False
    )
    assert fresh.source["two_value"] == "computed"
    assert abs(fresh.alpha["two_value"] - crit.alpha["two_value"]) < 0.01
    other = critical_alpha("uniform", 16, 3, 2, methods=["population", "two_value"], n_pop=2000)
    assert "population" not in other.alpha and other.source["two_value"] == "computed"


def test_docstring_examples_run():
    import doctest

    from hiergrammar.theory import validate_discrete

    for module in (discrete, discrete_symbolic, validate_discrete):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_every_step_has_a_test_and_is_in_the_documents(deriv):
    """Each step of the derivation is named by a test of this file, and both derivation
    pages show its result."""
    from pathlib import Path

    from hiergrammar.theory.latex import render

    source = Path(__file__).read_text(encoding="utf-8")
    tests = source.split("def test_every_step_has_a_test")[0]
    missing = [step.name for step in deriv if step.name not in tests]
    assert missing == []
    for fmt in ("latex", "markdown"):
        text = render(fmt)
        for step in deriv:
            assert sp.latex(step.expr) in text, (fmt, step.name)
        assert "Critical points of the discrete processes" in text


# -- the validation script and its stored result ---------------------------------------------
def _same(a, b) -> bool:
    """Equal JSON-like values, with None and NaN alike (JSON stores NaN as null)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    nan_a = a is None or (isinstance(a, float) and math.isnan(a))
    nan_b = b is None or (isinstance(b, float) and math.isnan(b))
    if nan_a or nan_b:
        return nan_a and nan_b
    return a == b


def test_stored_validation_summary_is_recomputed_from_its_curves():
    from hiergrammar.theory.validate_discrete import format_summary, load_stored, summarise

    stored = load_stored()
    assert _same(summarise(stored), stored["summary"])
    assert "masking:" in format_summary(stored["summary"])


def test_stored_validation_relations():
    """Relations between independently computed numbers of the stored run: the determination
    threshold is a lower bound; population dynamics follows BP within its statistics (the
    root curves' standardised differences are O(1)); the two-value threshold is near the
    population's; the first moment misses by far; BP's half-way crossings of the mean class
    belief lie between the determination bound and the first moment, and the shallowest ones
    are the discrete-diffusion figure's (masking 0.264-0.269, uniform 0.161-0.178 at
    L = 3..7, measured there by exact forward-backward resampling on other rule draws)."""
    from hiergrammar.theory.validate_discrete import load_stored

    stored = load_stored()
    figure = {"masking": (0.255, 0.28), "uniform": (0.15, 0.19)}
    for process, entry in stored["summary"].items():
        t_star = entry["t_star"]
        assert t_star.get("determination", 0) <= min(t_star["population"], t_star["two_value"])
        assert abs(t_star["two_value"] - t_star["population"]) < 0.015
        assert t_star["first_moment"] > t_star["population"] + 0.2
        half = entry["t_half"]["u"]["bp"]
        low, high = figure[process]
        for L in ("3", "4", "5", "6", "7"):
            assert low < half[L] < high, (process, L, half[L])
        assert entry["max_dev"]["first_moment"]["u"] > 0.5
        z = []
        for res in stored["processes"][process]["depths"].values():
            bp, pop = res["bp"], res["theories"]["population"]
            diff = np.array(pop["u"])[:, -1] - np.array(bp["u"])[:, -1]
            se = np.hypot(np.array(pop["u_se"])[:, -1], np.array(bp["u_se"])[:, -1])
            z.extend((diff / np.maximum(se, 1e-4)).tolist())
        assert abs(np.mean(z)) < 0.5 and np.mean(np.square(z)) < 4.0, (process, np.mean(z))


def test_bp_upward_curves_float32_supports_and_tree_bp():
    """The validation's BP: float32 keeps masking's supports (the same zeros as float64), and
    its root beliefs are tree_bp's root marginals (uniform prior)."""
    from hiergrammar.theory.validate_discrete import bp_upward_curves

    from hiergrammar.bp import tree_bp

    args = ("masking", 8, 8, 2, 2, 4, [0.3])
    single = bp_upward_curves(*args, n_per_rule=60, n_rules=1, seed=4, dtype=np.float32)
    double = bp_upward_curves(*args, n_per_rule=60, n_rules=1, seed=4, dtype=np.float64)
    np.testing.assert_array_equal(single["determined"], double["determined"])
    np.testing.assert_allclose(single["u"], double["u"], atol=1e-5)
    # The same draw by hand through tree_bp.
    seeds = np.random.SeedSequence(4).spawn(1)
    rng = np.random.default_rng(seeds[0])
    rhm = RHM(8, 8, 2, 2, 4, seed=int(rng.integers(2**63)))
    data = rhm.sample(60, seed=int(rng.integers(2**63)))
    noise = np.random.default_rng([int(rng.integers(2**63)), 0])
    proc = MaskingProcess(8)
    root = tree_bp(rhm, proc.leaf_likelihood(proc.corrupt(data.x, 0.3, seed=noise), 0.3))
    u_root = root.marginals[4][np.arange(60), 0, data.y].mean()
    assert double["u"][0, 0, -1] == pytest.approx(u_root, abs=1e-12)


def test_run_validation_smoke():
    """The whole script on a tiny model: every key, and its summary recomputes."""
    from hiergrammar.theory.validate_discrete import run_validation, summarise

    result = run_validation(
        v=8,
        n_classes=8,
        m=2,
        s=2,
        depths=(2, 3),
        t=(0.1, 0.5, 0.9),
        n_per_rule=16,
        n_rules=2,
        n_pop=400,
        n_two_value=400,
        critical_n_pop=200,
        critical_two_value_pop=400,
    )
    assert set(result["critical"]) == {"masking", "uniform"}
    assert "determination" in result["critical"]["masking"]
    theories = result["processes"]["uniform"]["depths"]["3"]["theories"]
    assert set(theories) == {"population", "two_value", "first_moment"}
    assert _same(summarise(result), result["summary"])
