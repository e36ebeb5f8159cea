"""Tests of the symbolic mean-field derivation (hiergrammar.theory.symbolic) and its documents.

Independent evidence: every derived identity is checked symbolically *and* numerically at
random parameters; the maps against the exact annealed average of one-level BP messages,
enumerated over every rule draw of tiny grammars (exact, so the tolerance is rounding only)
and sampled for a larger one (tolerance: 5 standard errors); slopes against finite
differences; large-v limits against the expressions at v = 10**6; fixed points and eps*
against plain iteration of the map, scipy root finding and the numeric hiergrammar.theory.meanfield
(another engine); the hypergeometric ingredient against the enumerated draws; the documents
against a fresh rendering.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hiergrammar.theory import symbolic
from hiergrammar.theory.latex import DOC_NAMES, render
from hiergrammar.theory.symbolic import (
    EXACT_MAX_S,
    Sym,
    check_parameters,
    critical_point,
    derivation,
    fixed_point_polynomial,
    reference_checks,
    upward_map_function,
)

ROOT = Path(__file__).resolve().parents[1]
S = Sym


@pytest.fixture(scope="module")
def deriv():
    return derivation()


def _num(expr: sp.Expr, **values) -> float:
    return float(expr.subs({getattr(S, k): v for k, v in values.items()}))


def _random_params(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
    out = []
    while len(out) < n:
        s = int(rng.integers(2, 5))
        v = int(rng.integers(2, 12))
        m = int(rng.integers(1, v ** (s - 1) + 1))
        out.append((v, m, s))
    return out


# -- structure -------------------------------------------------------------------------------
def test_derivation_is_an_ordered_list_of_named_steps(deriv):
    names = deriv.names()
    assert len(names) == len(set(names)) == len(deriv)
    titles = [sec.title for sec in deriv.sections]
    assert len(titles) == len(set(titles))
    assert {step.section for step in deriv} == set(titles)
    # Reading order: ingredients before what is built from them.
    for before, after in [
        ("coordinate_mass", "F_K"),
        ("p_true_parent", "c"),
        ("F_K", "F"),
        ("F_of_u", "F_prime_at_1"),
        ("R", "u_star_s2"),
    ]:
        assert names.index(before) < names.index(after)
    assert deriv["F"].expr.free_symbols == {S.x, S.v, S.m, S.s}
    with pytest.raises(KeyError, match="no step named 'nope'"):
        deriv["nope"]
    # The fast core used by critical_point is the same derivation's beginning.
    core = symbolic._core_derivation()
    for step in core:
        assert deriv[step.name].expr == step.expr


def test_ingredients_are_derived_not_typed(deriv):
    # Normalised messages: every mass simplifies to one (from an unsimplified sum).
    for name in ("coordinate_mass", "parent_mass", "tuple_mass", "sibling_mass"):
        assert deriv[name].raw is not None and deriv[name].expr == 1
    # The hypergeometric step starts from sympy.stats' binomial ratio.
    assert deriv["p_true_parent"].raw.has(sp.binomial)
    # c does not depend on the parent's cardinality K (it cancels).
    assert deriv["c"].raw.has(S.K) and not deriv["c"].expr.has(S.K)


def test_hypergeometric_membership_matches_enumerated_draws(deriv):
    """P(a given non-true tuple is one of a*'s / another parent's rules), counted exactly
    over every rule draw of a tiny grammar."""
    v, s, m, K = 2, 3, 2, 3
    draws, coords = _all_rule_draws(v, s, m, K)
    n_tuples = v**s
    own_true = own_other = total = 0
    for a_star, j in itertools.product(range(K), range(m)):
        t_star = draws[:, a_star, j]
        t = (t_star + 1) % n_tuples  # a fixed non-true tuple relative to t*
        own_true += (draws[:, a_star, :] == t[:, None]).any(-1).sum()
        a_other = (a_star + 1) % K
        own_other += (draws[:, a_other, :] == t[:, None]).any(-1).sum()
        total += len(draws)
    values = dict(v=v, s=s, m=m)
    assert own_true / total == pytest.approx(_num(deriv["p_true_parent"].expr, **values), abs=1e-12)
    assert own_other / total == pytest.approx(
        _num(deriv["p_other_parent"].expr, **values), abs=1e-12
    )


# -- the maps against brute-force annealed averages of one BP step ---------------------------
def _all_rule_draws(v: int, s: int, m: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Every assignment of K disjoint m-sets of the v**s tuples to the K parents.

    Returns draws (n_draws, K, m) of tuple indices and coords (v**s, s)."""
    coords = np.array(list(itertools.product(range(v), repeat=s)))

    def assign(available: tuple[int, ...], k: int):
        if k == K:
            yield ()
            return
        for chosen in itertools.combinations(available, m):
            rest = tuple(t for t in available if t not in chosen)
            for tail in assign(rest, k + 1):
                yield (chosen, *tail)

    draws = np.array(list(assign(tuple(range(v**s)), 0)))
    return draws, coords


def _weights(coords: np.ndarray, u: float, v: int, positions: slice) -> np.ndarray:
    """W[t*, t] = prod over the given positions of the mean-field upward messages of t's
    symbols when the true tuple is t* (u on the true symbol, (1-u)/(v-1) elsewhere)."""
    same = coords[:, None, positions] == coords[None, :, positions]
    return np.where(same, u, (1 - u) / (v - 1)).prod(-1)


def _annealed_up(draws, coords, v, K, u):
    """Per (draw, a*, t*): the one-step BP upward numerators; returns the true parent's and
    the sum over all parents, shape (n_draws * K * m,) each."""
    W = _weights(coords, u, v, slice(None))
    true, total = [], []
    m = draws.shape[2]
    for a_star, j in itertools.product(range(K), range(m)):
        t_star = draws[:, a_star, j]
        nu = W[t_star[:, None, None], draws].sum(-1)  # (n, K): sum over each parent's rules
        true.append(nu[:, a_star])
        total.append(nu.sum(1))
    return np.concatenate(true), np.concatenate(total)


def _annealed_down(draws, coords, v, K, u, d):
    """Per (draw, a*, t*): the one-step BP downward numerators into child 0 (parent message
    d on a*, (1-d)/(K-1) elsewhere; siblings' messages as in _weights); returns the true
    child value's numerator and the sum over all child values."""
    W = _weights(coords, u, v, slice(1, None))
    true, total = [], []
    m = draws.shape[2]
    for a_star, j in itertools.product(range(K), range(m)):
        t_star = draws[:, a_star, j]
        parent = np.full(K, (1 - d) / (K - 1))
        parent[a_star] = d
        contrib = parent[None, :, None] * W[t_star[:, None, None], draws]  # (n, K, m)
        first = coords[draws, 0] == coords[t_star, 0][:, None, None]
        true.append((contrib * first).sum((1, 2)))
        total.append(contrib.sum((1, 2)))
    return np.concatenate(true), np.concatenate(total)


@pytest.mark.parametrize(
    "v,s,m,K", [(3, 2, 2, 3), (3, 2, 2, 2), (3, 2, 3, 3), (2, 3, 2, 2), (2, 3, 3, 2)]
)
def test_maps_equal_exact_annealed_average_of_one_bp_step(deriv, v, s, m, K):
    """Over every rule draw, E[numerator]/E[normaliser] of one BP step equals the derived
    F_K and G exactly (the annealed, ratio-of-means approximation is exact for one step)."""
    draws, coords = _all_rule_draws(v, s, m, K)
    F = deriv["F_K"].expr.subs(S.x, S.u**S.s)
    G = deriv["G"].expr
    for u in (0.2, 0.55, 0.9):
        true, total = _annealed_up(draws, coords, v, K, u)
        assert true.sum() / total.sum() == pytest.approx(
            _num(F, u=u, v=v, s=s, m=m, K=K), rel=1e-12
        )
        for d in (0.15, 0.7):
            true, total = _annealed_down(draws, coords, v, K, u, d)
            assert true.sum() / total.sum() == pytest.approx(
                _num(G, u=u, d=d, v=v, s=s, m=m), rel=1e-12
            )


def test_maps_match_sampled_annealed_average_larger_grammar(deriv):
    """v=4, s=3, m=3, K=4 (64 tuples): 20000 random rule draws; the ratio of sample means is
    within 5 delta-method standard errors of the derived maps."""
    v, s, m, K, n = 4, 3, 3, 4, 20000
    rng = np.random.default_rng(7)
    draws = np.array([rng.permutation(v**s)[: K * m].reshape(K, m) for _ in range(n)])
    coords = np.array(list(itertools.product(range(v), repeat=s)))
    F = deriv["F_K"].expr.subs(S.x, S.u**S.s)

    def within(true, total, target):
        ratio = true.mean() / total.mean()
        se = np.std(true - ratio * total) / np.sqrt(true.size) / total.mean()
        assert abs(ratio - target) < 5 * se + 1e-12, (ratio, target, se)
        return se

    u, d = 0.6, 0.5
    se = within(*_annealed_up(draws, coords, v, K, u), _num(F, u=u, v=v, s=s, m=m, K=K))
    assert se < 0.01  # the test has power
    within(
        *_annealed_down(draws, coords, v, K, u, d), _num(deriv["G"].expr, u=u, d=d, v=v, s=s, m=m)
    )


def test_marginal_matches_direct_product_of_messages(deriv):
    rng = np.random.default_rng(3)
    for _ in range(20):
        K = int(rng.integers(2, 40))
        u, d = rng.uniform(0.01, 0.99, 2)
        up = np.full(K, (1 - u) / (K - 1))
        down = np.full(K, (1 - d) / (K - 1))
        up[0], down[0] = u, d
        direct = (up * down)[0] / (up * down).sum()
        assert _num(deriv["p"].expr, u=u, d=d, K=K) == pytest.approx(direct, rel=1e-12)


def test_reference_closed_forms_hold_symbolically_and_numerically(deriv):
    checks = reference_checks()
    assert len(checks) >= 10 and all(c.holds for c in checks), [c.name for c in checks]
    rng = np.random.default_rng(11)
    for check in checks:
        for _ in range(5):
            values = {
                S.v: int(rng.integers(3, 40)),
                S.s: int(rng.integers(2, 5)),
                S.u: rng.uniform(0.05, 0.95),
                S.d: rng.uniform(0.05, 0.95),
                S.x: rng.uniform(0.05, 0.95),
                S.f: rng.uniform(0.05, 0.45),
                S.K: int(rng.integers(2, 40)),
            }
            values[S.m] = int(rng.integers(2, values[S.v]))
            a, b = float(check.derived.subs(values)), float(check.reference.subs(values))
            assert a == pytest.approx(b, rel=1e-10), check.name


def test_lambdified_maps_agree_with_numeric_meanfield_module():
    meanfield = pytest.importorskip("hiergrammar.theory.meanfield")
    rng = np.random.default_rng(5)
    F, G, p = (
        upward_map_function(),
        symbolic.downward_map_function(),
        symbolic.marginal_function(),
    )
    for v, m, s in _random_params(rng, 15):
        K = int(rng.integers(2, 30))
        u, d = rng.uniform(0.01, 0.99, 2)
        assert F(u, v, m, s, K) == pytest.approx(meanfield.upward_map(u, v, m, s, K=K), rel=1e-10)
        assert G(d, u, v, m, s) == pytest.approx(meanfield.downward_map(d, u, v, m, s), rel=1e-10)
        assert p(u, d, K) == pytest.approx(meanfield.marginal(u, d, K), rel=1e-10)


# -- fixed points ------------------------------------------------------------------------------
def test_fixed_points_and_slopes_symbolic(deriv):
    v, m, s = S.v, S.m, S.s
    assert deriv["F_at_1"].expr == 1
    assert sp.simplify(deriv["F_at_1_over_v"].expr - 1 / v) == 0
    assert sp.simplify(deriv["F_prime_at_1"].expr - s * m * (v - 1) / (v**s - 1)) == 0
    assert sp.simplify(deriv["F_prime_at_1_large_v"].expr - s * S.f) == 0
    assert sp.simplify(deriv["critical_m"].expr * s * (v - 1) - (v**s - 1)) == 0


def test_fixed_points_and_slopes_numeric():
    F = upward_map_function()
    rng = np.random.default_rng(1)
    h = 1e-6
    for v, m, s in _random_params(rng, 25):
        assert F(1.0, v, m, s, v) == pytest.approx(1.0, abs=1e-13)
        assert F(1.0 / v, v, m, s, v) == pytest.approx(1.0 / v, rel=1e-11)
        cp = critical_point(v, m, s)
        slope1 = (F(1.0, v, m, s, v) - F(1.0 - h, v, m, s, v)) / h
        assert slope1 == pytest.approx(cp.fprime_1_float, rel=1e-4, abs=1e-9)
        slope_v = (F(1 / v + h, v, m, s, v) - F(1 / v - h, v, m, s, v)) / (2 * h)
        assert slope_v == pytest.approx(cp.fprime_inv_v_float, rel=1e-5)


@pytest.mark.parametrize("s", [2, 3, 4, 5, 6])
def test_fixed_point_polynomial_factorisation(deriv, s):
    """For concrete s, dividing the numerator of F(u) - u by (u-1)(vu-1) leaves exactly the
    series R(u) = sum_k (v^k - m) u^k, with no remainder (symbolic in v, m)."""
    u, v = S.u, S.v
    P = sp.Poly(sp.expand(deriv["fixed_point_numerator"].expr.subs(S.s, s)), u)
    quotient, remainder = sp.div(P, sp.Poly((u - 1) * (v * u - 1), u))
    assert remainder.is_zero
    series = deriv["R_series"].expr.subs(S.s, s).doit()
    assert sp.expand(-quotient.as_expr() - series) == 0
    closed = deriv["R"].expr.subs(S.s, s)
    assert sp.simplify(closed - series) == 0


def test_R_signs_follow_the_slopes_numerically(deriv):
    rng = np.random.default_rng(2)
    for v, m, s in _random_params(rng, 40):
        poly = fixed_point_polynomial(v, m, s)
        cp = critical_point(v, m, s)
        assert np.sign(float(poly.eval(1))) == np.sign(1 - cp.fprime_1_float)
        assert np.sign(float(poly.eval(sp.Rational(1, v)))) == np.sign(cp.fprime_inv_v_float - 1)
        # Descartes: at most one positive root, hence at most one interior fixed point.
        positive = [r for r in sp.Poly(poly).real_roots() if r > 0]
        assert len(positive) <= 1
        assert cp.transition == (cp.fprime_1_float < 1 and cp.fprime_inv_v_float < 1)
        assert cp.transition == any(sp.Rational(1, v) < r < 1 for r in positive)


def test_large_v_limits_numerically(deriv):
    """The derived limits against the finite-v expressions at v = 10**6 (m = f v^(s-1))."""
    big = 10**6
    for s, f, u, x in [(2, 0.2, 0.6, 0.3), (3, 0.1, 0.4, 0.7), (4, 0.05, 0.8, 0.5)]:
        finite = {S.v: big, S.m: f * big ** (s - 1), S.s: s, S.u: u, S.x: x}
        limit = {S.f: f, S.s: s, S.u: u, S.x: x}
        for finite_name, limit_name, scale in [
            ("F_prime_at_1", "F_prime_at_1_large_v", 1),
            ("F_prime_at_1_over_v", "F_prime_at_1_over_v_large_v", 1),
            ("F", "F_large_v", 1),
            ("R", "R_large_v", sp.Integer(big) ** (s - 1)),
        ]:
            a = float(deriv[finite_name].expr.subs(finite) / scale)
            b = float(deriv[limit_name].expr.subs(limit))
            assert a == pytest.approx(b, rel=1e-4, abs=1e-5), (finite_name, s)
    for s in (2, 3):
        f = 0.15
        a = float(deriv[f"u_star_s{s}"].expr.subs({S.v: big, S.m: f * big ** (s - 1)}))
        b = float(deriv[f"u_star_s{s}_large_v"].expr.subs(S.f, f))
        assert a == pytest.approx(b, rel=1e-4)
        assert float(deriv[f"eps_star_s{s}_large_v"].expr.subs(S.f, 1 / s)) == pytest.approx(
            0, abs=1e-12
        )


# -- closed forms and critical points ----------------------------------------------------------
def _iterate(F, u0, v, m, s, n=3000):
    u = u0
    for _ in range(n):
        u = F(u, v, m, s, v)
    return u


@pytest.mark.parametrize("s", [2, 3])
def test_closed_form_u_star_is_the_repulsive_fixed_point(deriv, s):
    F = upward_map_function()
    rng = np.random.default_rng(10 + s)
    u_expr = deriv[f"u_star_s{s}"].expr
    tested = 0
    while tested < 8:
        v = int(rng.integers(4, 60))
        m = int(rng.integers(s, v ** (s - 1)))
        cp = critical_point(v, m, s)
        if not cp.transition:
            continue
        tested += 1
        u_star = float(u_expr.subs({S.v: v, S.m: m}))
        assert u_star == pytest.approx(cp.u_star_float, rel=1e-12)
        assert float(deriv[f"eps_star_s{s}"].expr.subs({S.v: v, S.m: m})) == pytest.approx(
            cp.eps_star_float, rel=1e-12
        )
        assert F(u_star, v, m, s, v) == pytest.approx(u_star, rel=1e-10)
        h = 1e-7
        assert (F(u_star + h, v, m, s, v) - F(u_star - h, v, m, s, v)) / (2 * h) > 1
        gap = 1e-3 * (1 - u_star)
        assert _iterate(F, u_star + gap, v, m, s) == pytest.approx(1.0, abs=1e-9)
        assert _iterate(F, u_star - gap, v, m, s) == pytest.approx(1 / v, rel=1e-6)


def test_s2_existence_conditions(deriv):
    """u* < 1 iff 2m < v + 1 and u* > 1/v iff m >= 2, for every small (v, m)."""
    one_minus_slope = deriv["one_minus_slope_s2"].expr
    above = deriv["u_star_minus_1_over_v_s2"].expr
    for v in range(2, 30):
        for m in range(1, v + 1):
            cp = critical_point(v, m, 2)
            if m < v:
                assert (float(one_minus_slope.subs({S.v: v, S.m: m})) > 0) == (2 * m < v + 1)
                assert (float(above.subs({S.v: v, S.m: m})) > 0) == (m >= 2)
            assert cp.transition == (2 <= m and 2 * m < v + 1)
            if cp.transition:
                assert cp.eps_star == sp.Rational(v - 2 * m + 1, v - m)


def test_critical_point_known_value_and_fields():
    cp = critical_point(32, 8, 2, n_classes=32)
    assert cp.eps_star == sp.Rational(17, 24) and cp.u_star == sp.Rational(7, 24)
    assert cp.fprime_1 == sp.Rational(16, 33)
    assert cp.eps_star_float == pytest.approx(17 / 24, rel=1e-15)
    assert cp.transition and cp.regime == "transition" and cp.method == "rational"
    data = cp.to_dict()
    assert data["eps_star"] == "17/24" and data["fprime_1"] == "16/33"
    assert "17/24" in cp.summary() and "n_classes = 32" in cp.explanation


@pytest.mark.parametrize(
    "v,m,s,regime,method",
    [
        (32, 20, 2, "always_lost", "none"),
        (32, 1, 2, "always_recovered", "none"),
        (8, 3, 3, "transition", "radicals"),
        (5, 4, 4, "transition", "algebraic"),
        (3, 2, 6, "always_recovered", "none"),
        (4, 30, 5, "transition", "algebraic"),
    ],
)
def test_critical_point_regimes_match_iteration_and_meanfield(v, m, s, regime, method):
    meanfield = pytest.importorskip("hiergrammar.theory.meanfield")
    cp = critical_point(v, m, s)
    assert (cp.regime, cp.method) == (regime, method)
    assert cp.eps_star_float == pytest.approx(meanfield.critical_eps(v, m, s), abs=1e-9)
    assert cp.explanation
    F = upward_map_function()
    if regime == "always_lost":
        assert "F'(1)" in cp.explanation and cp.eps_star == 0
        assert _iterate(F, 0.999, v, m, s) == pytest.approx(1 / v, rel=1e-6)
    elif regime == "always_recovered":
        assert cp.eps_star == 1 - sp.Rational(1, v)
        assert _iterate(F, 1 / v + 1e-3, v, m, s) == pytest.approx(1.0, abs=1e-9)
    else:
        # Exact: eps* is a root of R(1 - eps); numerically the fixed point of F.
        poly = fixed_point_polynomial(v, m, s)
        assert abs(float(poly.eval(1 - cp.eps_star.evalf(50)))) < 1e-30
        u_star = cp.u_star_float
        assert F(u_star, v, m, s, v) == pytest.approx(u_star, rel=1e-12)
        assert _iterate(F, u_star + 1e-3, v, m, s) == pytest.approx(1.0, abs=1e-9)
        assert _iterate(F, u_star - 1e-3, v, m, s) == pytest.approx(1 / v, rel=1e-6)


def test_numeric_root_path_agrees_with_exact(monkeypatch):
    from scipy.optimize import brentq

    exact = critical_point(6, 40, 4)
    monkeypatch.setattr(symbolic, "EXACT_MAX_S", 3)
    numeric = critical_point(6, 40, 4)
    assert exact.method == "algebraic" and numeric.method == "numeric"
    assert numeric.eps_star_float == pytest.approx(exact.eps_star_float, abs=1e-13)
    # Beyond EXACT_MAX_S for real: the root against scipy on F(u) - u.
    s = EXACT_MAX_S + 1
    cp = critical_point(2, 100, s)
    assert cp.method == "numeric" and cp.transition
    F = upward_map_function()
    root = brentq(lambda z: F(z, 2, 100, s, 2) - z, 0.5 + 1e-6, 1 - 1e-9, xtol=1e-15)
    assert cp.u_star_float == pytest.approx(root, abs=1e-10)


@pytest.mark.parametrize(
    "args,message",
    [
        ((1, 1, 2), "v=1 violates v >= 2"),
        ((4, 1, 1), "s=1 violates s >= 2"),
        ((4, 0, 2), r"m=0 violates 1 <= m <= v\*\*\(s-1\) = 4"),
        ((4, 5, 2), r"m=5 violates 1 <= m <= v\*\*\(s-1\) = 4"),
        ((4.0, 2, 2), "v must be an integer"),
        ((4, 2, 2, 0), "n_classes=0 violates n_classes >= 1"),
        ((4, 2, 2, 9), r"n_classes\*m = 18 violates n_classes\*m <= v\*\*s = 16"),
    ],
)
def test_parameter_validation(args, message):
    with pytest.raises(ValueError, match=message):
        check_parameters(*args)
    with pytest.raises(ValueError, match=message):
        critical_point(*args)


# -- documents ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["latex", "markdown"])
def test_committed_documents_are_regenerated_identically(fmt):
    path = ROOT / "docs" / DOC_NAMES[fmt]
    assert path.read_text(encoding="utf-8") == render(fmt), (
        f"{path} is stale: regenerate with `python -m hiergrammar.theory.latex docs`"
    )


def test_documents_contain_every_step_and_check(deriv):
    for fmt in ("latex", "markdown"):
        text = render(fmt)
        for step in deriv:
            assert sp.latex(step.expr) in text, (fmt, step.name)
        assert "FAILS" not in text and "**NO**" not in text
    assert render("latex").startswith("%") and r"\end{document}" in render("latex")
    with pytest.raises(ValueError, match="format='html' violates"):
        render("html")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_document_compiles(tmp_path):
    (tmp_path / "d.tex").write_text(render("latex"), encoding="utf-8")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "d.pdf").stat().st_size > 10_000


def test_docstring_examples_run():
    import doctest

    import hiergrammar.theory.latex

    for module in (symbolic, hiergrammar.theory.latex):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
