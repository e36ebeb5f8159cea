"""Tests of the finite-depth scaling: its symbolic steps (section "Finite-depth scaling" of
hiergrammar.theory.symbolic), the slope F'(u*) in ``theory critical``, the numerics of
hiergrammar.theory.finite_depth and its BP measurement.

Independent evidence: every derived slope and curvature against finite differences of the
numeric mean-field map (hiergrammar.theory.meanfield, another engine); Koenigs' coefficient
against the expansion of the Poincare function built by plain iteration; the predicted
crossings and widths against the exact finite-depth mean-field curve solved by root finding,
with the error shrinking at the predicted order; the measured class curve against tree_bp in
float64; exact rationals for the v = 10**12 critical point.
"""

from __future__ import annotations

import doctest
import json
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hiergrammar.theory import finite_depth, meanfield
from hiergrammar.theory.finite_depth import (
    LEVELS,
    crossings,
    fit_exponent,
    meanfield_crossings,
    poincare_function,
    scaling_prediction,
)
from hiergrammar.theory.symbolic import (
    ScalingSym,
    Sym,
    critical_point,
    derivation,
    scaling_constants,
)
from scipy.optimize import brentq

from hiergrammar import RHM
from hiergrammar.bp import tree_bp
from hiergrammar.cli import main as cli_main
from hiergrammar.noise import eps_evidence
from hiergrammar.validation import InputError

S, T = Sym, ScalingSym


@pytest.fixture(scope="module")
def deriv():
    return derivation()


def _transitions(s: int, n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        v = int(rng.integers(4, 60))
        m = int(rng.integers(2, v ** (s - 1)))
        if critical_point(v, m, s).transition:
            out.append((v, m))
    return out


def _slope(v, m, s, u, h=1e-6):
    return (meanfield.upward_map(u + h, v, m, s) - meanfield.upward_map(u - h, v, m, s)) / (2 * h)


def _curvature(v, m, s, u, h=1e-4):
    F = meanfield.upward_map
    return (F(u + h, v, m, s) - 2 * F(u, v, m, s) + F(u - h, v, m, s)) / h**2


# -- the slope at u* --------------------------------------------------------------------------
@pytest.mark.parametrize("s", [2, 3, 4])
def test_fixed_point_form_of_the_slope_is_the_slope_at_u_star(deriv, s):
    form = deriv["F_prime_fixed_point"].expr
    for v, m in _transitions(s, 6, seed=s):
        cp = critical_point(v, m, s)
        lam = float(form.subs({S.v: v, S.m: m, S.s: s, S.u: cp.u_star_float}))
        assert lam == pytest.approx(_slope(v, m, s, cp.u_star_float), rel=1e-6)
        assert cp.fprime_ustar_float == pytest.approx(lam, rel=1e-12)
        assert lam > 1  # u* is repulsive
    # An identity in u: F'(u) (u / F(u))**2, so it differs from F'(u) away from fixed points.
    u = sp.Rational(2, 5)
    values = {S.v: 7, S.m: 3, S.s: 2}
    direct = (deriv["F_prime"].expr * (S.u / deriv["F_of_u"].expr) ** 2).subs(values).subs(S.u, u)
    assert sp.simplify(form.subs(values).subs(S.u, u) - direct) == 0


def test_lambda_closed_form_s2(deriv):
    lam = deriv["lambda_s2"].expr
    assert lam.subs({S.v: 32, S.m: 8}) == sp.Rational(1386, 961)
    for v, m in _transitions(2, 10, seed=7):
        u_star = (m - 1) / (v - m)
        assert float(lam.subs({S.v: v, S.m: m})) == pytest.approx(_slope(v, m, 2, u_star), 1e-6)
    # lambda - 1 > 0 exactly where the transition exists (and 0 on both of its edges).
    sign = deriv["lambda_minus_1_s2"].expr
    for v in range(3, 16):
        for m in range(1, v):
            if 2 * m == v + 1 or m * (v + 1) == 2 * v:
                assert sign.subs({S.v: v, S.m: m}) == 0
            else:
                positive = bool(sign.subs({S.v: v, S.m: m}) > 0)
                assert positive == critical_point(v, m, 2).transition, (v, m)


def test_lambda_large_v_limits(deriv):
    big = 10**6
    for s, f in [(2, 0.2), (3, 0.05), (4, 0.02)]:
        # u* of the limiting map, u**(s-1) = f (1 + u + ... + u**(s-1)), and of v = 10**6.
        u_inf = brentq(lambda z, s=s, f=f: z ** (s - 1) - f * sum(z**k for k in range(s)), 1e-6, 1)
        m = f * big ** (s - 1)
        u_big = brentq(
            lambda z, s=s, m=m: float(meanfield.upward_map(z, big, m, s)) - z, 1e-3, 1 - 1e-9
        )
        limit = float(deriv["lambda_large_v_fixed_point"].expr.subs({S.s: s, S.u: u_inf}))
        assert float(deriv["lambda_large_v"].expr.subs({S.s: s, S.f: f, S.u: u_inf})) == (
            pytest.approx(limit, rel=1e-9)
        )
        assert float(_slope(big, m, s, u_big, h=1e-7)) == pytest.approx(limit, rel=1e-3)
    assert sp.simplify(deriv["lambda_s2_large_v"].expr - 2 * (1 - S.f)) == 0


def test_second_derivative_and_koenigs_coefficient(deriv):
    for s in (2, 3):
        for v, m in _transitions(s, 4, seed=20 + s):
            u = critical_point(v, m, s).u_star_float
            second = float(deriv["F_second"].expr.subs({S.v: v, S.m: m, S.s: s, S.u: u}))
            assert second == pytest.approx(_curvature(v, m, s, u), rel=1e-4, abs=1e-6)
    k = scaling_constants(32, 8, 2)
    assert k.F2 == deriv["F_second_s2"].expr.subs({S.v: 32, S.m: 8})
    assert deriv["koenigs_c2"].expr.subs({T.F2: k.F2, T.lam: k.lam}) == k.c2
    # Phi(z) = u* + z - c2 z**2 + O(z**3), with Phi built by plain iteration from a linear start.
    u_star, lam = float(k.point.u_star), k.lam_float
    zs = np.array([0.02, 0.01, 0.005])
    ratios = []
    for z in zs:
        u = u_star + z * lam**-30
        for _ in range(30):
            u = meanfield.upward_map(u, 32, 8, 2)
        ratios.append((u - u_star - z) / z**2)
    intercept = np.polyfit(zs, ratios, 1)[1]
    assert intercept == pytest.approx(-k.c2_float, abs=2e-3)


# -- linear growth, width, crossing ------------------------------------------------------------
def test_linear_growth_and_window(deriv):
    growth = deriv["linear_growth"].expr
    assert sp.simplify(growth.subs(T.level, T.level + 1) - T.lam * growth) == 0
    assert growth.subs(T.level, 0) == T.delta0
    assert sp.simplify(deriv["leaf_deviation"].expr - (T.eps_star - S.eps)) == 0
    assert sp.simplify(deriv["window_width"].expr - 2 * T.Delta * T.lam ** (-T.L)) == 0
    assert sp.simplify(deriv["width_exponent"].expr + sp.log(T.lam)) == 0
    # Numerically: a small deviation at the leaves grows by lambda per level.
    k = scaling_constants(32, 8, 2)
    eps_star, gap = float(k.point.eps_star), 1e-7
    u = meanfield.profile(32, 32, 8, 2, 10, eps_star - gap).u
    assert (u[9] - float(k.point.u_star)) / gap == pytest.approx(k.lam_float**9, rel=1e-3)


def test_crossing_drift_matches_exact_meanfield_to_the_predicted_order(deriv):
    pred = scaling_prediction(32, 8, 2)
    crossing = deriv["crossing_drift"].expr
    errors1, errors2 = [], []
    for L in (8, 10, 12):
        exact = meanfield_crossings(32, 32, 8, 2, L)
        for level in LEVELS:
            value = {T.Z: pred.Z[level], T.lam: pred.lam, T.c2: pred.c2, T.L: L}
            from_step = pred.eps_star + float(crossing.subs(value))
            assert from_step == pytest.approx(float(pred.crossing(L, level)), abs=1e-14)
        errors1.append(abs(exact[0.5] - pred.crossing(L, 0.5, order=1)))
        errors2.append(abs(exact[0.5] - pred.crossing(L, 0.5, order=2)))
    errors1, errors2 = np.array(errors1), np.array(errors2)
    # The first-order error falls as lambda**-2L, the second-order one as lambda**-3L.
    assert np.all(errors2 < errors1 / 5)
    np.testing.assert_allclose(errors1[:-1] / errors1[1:], pred.lam**4, rtol=0.1)
    np.testing.assert_allclose(errors2[:-1] / errors2[1:], pred.lam**6, rtol=0.1)
    widths = [pred.width(L) for L in (12, 13)]
    exact_w = [meanfield_crossings(32, 32, 8, 2, L) for L in (12, 13)]
    for w, e in zip(widths, exact_w, strict=True):
        assert w == pytest.approx(e[0.25] - e[0.75], rel=1e-3)
    second = deriv["width_second_order"].expr.subs(
        {T.Z_hi: pred.Z[0.75], T.Z_lo: pred.Z[0.25], T.lam: pred.lam, T.c2: pred.c2, T.L: 12}
    )
    assert float(second) == pytest.approx(float(pred.width(12)), rel=1e-12)


def test_curves_of_successive_depths_cross_at_eps_star(deriv):
    assert deriv["depth_crossing_s2"].expr == sp.FiniteSet(1, 1 / S.v, (S.m - 1) / (S.v - S.m))
    for L in (3, 5, 8):

        def gap(eps, L=L):
            u_l = meanfield.profile(32, 32, 8, 2, L, eps).u[L]
            return u_l - meanfield.profile(32, 32, 8, 2, L + 1, eps).u[L + 1]

        assert brentq(gap, 0.6, 0.8, xtol=1e-14) == pytest.approx(17 / 24, abs=1e-9)


def test_poincare_function_solves_the_functional_equation():
    k = scaling_constants(32, 8, 2)
    lam, u_star = k.lam_float, float(k.point.u_star)
    z = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(
        poincare_function(lam * z, 32, 8, 2),
        meanfield.upward_map(poincare_function(z, 32, 8, 2), 32, 8, 2),
        atol=1e-10,
    )
    assert float(poincare_function(0.0, 32, 8, 2)) == pytest.approx(u_star, abs=1e-12)
    slope = (poincare_function(1e-6, 32, 8, 2) - poincare_function(-1e-6, 32, 8, 2)) / 2e-6
    assert float(slope) == pytest.approx(1.0, rel=1e-6)


def test_no_transition_no_scaling():
    with pytest.raises(InputError, match="no class transition"):
        scaling_constants(32, 20, 2)
    with pytest.raises(InputError, match="no class transition"):
        scaling_prediction(32, 1, 2)
    with pytest.raises(InputError, match="level"):
        scaling_prediction(32, 8, 2, levels=(1.5,))


# -- theory critical ---------------------------------------------------------------------------
def _cli(argv: list[str]) -> int:
    return cli_main(argv)


def test_critical_prints_the_slope_at_u_star(capsys):
    assert _cli(["theory", "critical", "--v", "32", "--m", "8", "--s", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    lam = Fraction(2 * (32 - 8) * (8 - 1) * 33, 8 * 31**2)
    assert data["fprime_ustar"] == f"{lam.numerator}/{lam.denominator}"
    assert data["fprime_ustar_float"] == pytest.approx(float(lam), rel=1e-15)
    assert "fprime_1" in data
    _cli(["theory", "critical", "--v", "32", "--m", "8", "--s", "2"])
    assert "F'(u*)  = 1386/961 ~ 1.44225" in capsys.readouterr().out
    _cli(["theory", "critical", "--v", "32", "--m", "20", "--s", "2", "--json"])
    assert json.loads(capsys.readouterr().out)["fprime_ustar"] is None


@pytest.mark.parametrize("m,u_star", [(1, Fraction(1, 10**12)), (2, Fraction(1, 10**12 - 2))])
def test_critical_point_at_huge_v_has_no_cancellation(capsys, m, u_star):
    cp = critical_point(10**12, m, 2)
    assert cp.u_star == sp.Rational(u_star.numerator, u_star.denominator)
    assert cp.u_star_float == float(u_star)  # correctly rounded, not 9.99978e-13
    assert cp.eps_star_float == float(1 - u_star)
    _cli(["theory", "critical", "--v", str(10**12), "--m", str(m), "--s", "2"])
    assert f"~ {float(u_star):.10g}" in capsys.readouterr().out


def test_slope_for_radical_algebraic_and_numeric_roots():
    for v, m, s, method in [(8, 3, 3, "radicals"), (5, 4, 4, "algebraic"), (2, 100, 17, "numeric")]:
        cp = critical_point(v, m, s)
        assert cp.method == method
        u = cp.u_star_float
        assert cp.fprime_ustar_float == pytest.approx(_slope(v, m, s, u, h=1e-7), rel=1e-5)


# -- measurements ------------------------------------------------------------------------------
def test_crossings_use_a_monotone_fit():
    eps = np.array([0.0, 0.1, 0.2, 0.3])
    q = np.array([1.0, 0.6, 0.7, 0.2])  # one violation, pooled to 0.65, 0.65
    np.testing.assert_allclose(finite_depth._decreasing_fit(q), [1.0, 0.65, 0.65, 0.2])
    got = crossings(eps, q, levels=(0.8, 0.4))
    assert 0.0 < got[0] < 0.1 and 0.2 < got[1] < 0.3  # inside the bracketing intervals
    assert np.isnan(crossings(eps, q, levels=(1.5,))[0])
    # A straight line is crossed where the line says.
    line = crossings(eps, 1 - eps / 0.3, levels=(0.25, 0.5))
    np.testing.assert_allclose(line, [0.225, 0.15], atol=1e-10)


def test_crossings_on_a_coarse_grid_keep_the_width():
    """The exact mean-field curve at L = 14 (width 0.0033) sampled every 0.002, at 8 grid
    offsets: the widths from the grid are within 4% of the one root finding gives on the curve
    itself, and within 1.5% on average (linear interpolation: 7% too wide on average)."""
    exact = meanfield_crossings(32, 32, 8, 2, 14)
    width = exact[0.25] - exact[0.75]
    ratios = []
    for offset in np.arange(8) * 0.00025:
        eps = np.arange(0.69 + offset, 0.72, 0.002)
        q = (meanfield.profile(32, 32, 8, 2, 14, eps).u[:, 14] - 1 / 32) / (31 / 32)
        got = crossings(eps, q)
        ratios.append((got[0] - got[2]) / width)
    assert np.all(np.abs(np.array(ratios) - 1) < 0.04) and abs(np.mean(ratios) - 1) < 0.015


def test_fit_exponent_recovers_a_slope():
    rng = np.random.default_rng(0)
    depths = np.arange(4, 12)
    widths = 0.7 * 1.4 ** -depths.astype(float) * np.exp(rng.normal(0, 0.01, depths.size))
    fit = fit_exponent(depths, widths, se=0.01 * widths)
    assert fit["lam_fit"] == pytest.approx(1.4, rel=0.01)
    assert abs(fit["log_lam_fit"] - np.log(1.4)) < 4 * fit["log_lam_se"]


def test_class_curve_point_equals_tree_bp(monkeypatch):
    rhm = RHM(8, 4, 2, 2, 3, seed=3)
    data = rhm.sample(40, seed=4)
    q_belief, q_acc = finite_depth.class_curve_point(rhm, data.x, data.y, 0.45, batch=16)
    root = tree_bp(rhm, eps_evidence(data.x, 0.45, 8)).marginals[3][:, 0, :]
    belief = root[np.arange(40), data.y].mean()
    accuracy = (root.argmax(-1) == data.y).mean()
    assert q_belief == pytest.approx((belief - 0.25) / 0.75, abs=1e-6)
    assert q_acc == pytest.approx((accuracy - 0.25) / 0.75, abs=1e-12)


def test_measure_class_transition_brackets_every_draw(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    got = finite_depth.measure_class_transition(8, 8, 2, 2, 4, n_rules=3, n_samples=80, step=0.01)
    for draw, cross in zip(got["draws"], got["crossings_belief"], strict=True):
        steps = np.diff(draw["eps"])
        np.testing.assert_allclose(steps, 0.01, atol=1e-12)  # a regular grid
        assert draw["q_belief"][0] >= 0.9 and draw["q_belief"][-1] <= 0.1
        assert cross[2] < cross[1] < cross[0]  # the 0.75, 0.5, 0.25 levels in order
    assert np.all(got["width_belief"] > 0)
    # At v = 8 the argmax keeps finding the class up to eps = 1 - 1/v: no accuracy crossing
    # inside the grid is reported as NaN, never as a made-up number.
    for draw, width in zip(got["draws"], got["width_accuracy"], strict=True):
        assert width > 0 or (np.isnan(width) and draw["eps"][-1] == pytest.approx(0.87))


def test_run_finite_depth_writes_json(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    result = finite_depth.run_finite_depth(
        v=8, n_classes=8, m=2, depths=(3, 4), n_rules=2, n_samples=60, step=0.01, fit_from=3
    )
    assert result["prediction"]["lam"] == pytest.approx(critical_point(8, 2, 2).fprime_ustar_float)
    assert set(result["bp"]) == {"3", "4"} and "belief" in result["fit"]
    out = tmp_path / "f.json"
    monkeypatch.setattr(finite_depth, "run_finite_depth", lambda seed, **kw: result)
    assert finite_depth.main(["--quick", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["params"]["quick"] is True
    # Population dynamics added to a stored result: its curve against the BP one.
    more = tmp_path / "g.json"
    argv = ["--add-to", str(out), "--out", str(more), "--population-depths", "3"]
    argv += ["--population-size", "2000", "--population-step", "0.01"]
    assert finite_depth.main(argv) == 0
    pop = json.loads(more.read_text())["population"]["3"]
    bp_width = pop["bp_mean_curve_width_belief"]
    assert pop["width_belief"] == pytest.approx(bp_width, rel=0.25)  # 2 draws, 60 samples


def test_docstring_examples_run(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    result = doctest.testmod(finite_depth, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_stored_scaling_result_is_what_the_code_computes():
    """The stored run (theory/data/finite_depth.json): its predictions are recomputed, one BP
    point of one rule draw is recomputed from the same seed, and the figure data follow."""
    stored = finite_depth.load_stored()
    params = stored["params"]
    v, n_classes, m, s = params["v"], params["n_classes"], params["m"], params["s"]
    pred = scaling_prediction(v, m, s, n_classes)
    assert stored["prediction"]["lam"] == pytest.approx(pred.lam, rel=1e-12)
    assert stored["prediction"]["width_prefactor"] == pytest.approx(pred.width_prefactor, 1e-9)
    L = params["depths"][0]
    first = meanfield_crossings(v, n_classes, m, s, L)
    assert stored["prediction"]["mf_width"][0] == pytest.approx(first[0.25] - first[0.75])
    res = stored["bp"][str(L)]
    draw = res["draws"][1]
    rhm, data = finite_depth.draw_instance(
        v, n_classes, m, s, L, res["n_samples"], params["seed"] + L, 1
    )
    q = finite_depth.class_curve_point(rhm, data.x, data.y, draw["eps"][0], batch=4096)
    assert q == pytest.approx((draw["q_belief"][0], draw["q_accuracy"][0]), abs=1e-6)
    figure = finite_depth.scaling_figure_data(stored)
    assert figure["depths"] == params["depths"] and figure["depths"][-1] >= 12
    assert figure["bp_width_belief"][0] == pytest.approx(np.mean(res["width_belief"]))
    assert set(figure["successive_depth_crossings"]) == {
        f"{a}/{b}" for a, b in zip(params["depths"][:-1], params["depths"][1:], strict=True)
    }
