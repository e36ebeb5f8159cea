"""Tests of the theory figure step (hiergrammar.figures.theory): data builders and the quick
reproduce step."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hiergrammar.theory.meanfield import critical_eps, profile

from hiergrammar.artifacts import ReportSection
from hiergrammar.figures.theory import (
    QUICK,
    _around,
    diffusion_data,
    finite_depth_data,
    ks_distance,
    phase_diagram_data,
    plot_finite_depth,
    plot_profiles,
    plot_spread,
    population_data,
    profiles_data,
    reproduce_step,
    spread_data,
    spread_ks,
)
from hiergrammar.noise import continuous_alpha_bar, effective_eps


def test_phase_diagram_data_limits_and_critical_line():
    v, eps = 8, np.array([0.0, 1 - 1 / 8])
    data = phase_diagram_data(2, v, [2, 3], eps, [2, 3], n_samples=60, n_rules=1, seed=1)
    assert data["accuracy"].shape == (2, 2, 2)
    # Noiseless leaves: BP recovers the class exactly; uninformative leaves: only chance
    # (argmax of a flat posterior is the first class, right for about 1/v of the data).
    np.testing.assert_allclose(data["accuracy"][:, :, 0], 1.0)
    assert np.all(np.abs(data["accuracy"][:, :, 1] - 1 / v) < 4 * np.sqrt(1 / v / 60) + 0.02)
    np.testing.assert_allclose(data["eps_star"], [critical_eps(v, 2, 2), critical_eps(v, 3, 2)])
    # The dense line at this v passes through the integer-m thresholds.
    line = np.interp(data["f"], data["f_line"], data["eps_line_v"])
    np.testing.assert_allclose(line, data["eps_star"], atol=5e-3)


def test_profiles_data_matches_meanfield_and_bp():
    eps = np.array([0.2, 0.7])
    data = profiles_data(16, 16, 3, 2, 3, eps, n_samples=80, n_rules=2, seed=0, n_dense=50)
    np.testing.assert_allclose(data["mf_at_bp_p"], profile(16, 16, 3, 2, 3, eps).p)
    assert data["bp_p"].shape == data["bp_d_se"].shape == (2, 4)
    assert data["mf_u"].shape == (50, 4)
    np.testing.assert_allclose(data["bp_u"][:, 0], 1 - eps, atol=1e-6)  # leaf evidence itself
    again = profiles_data(16, 16, 3, 2, 3, eps, n_samples=80, n_rules=2, seed=0, n_dense=50)
    np.testing.assert_array_equal(data["bp_p"], again["bp_p"])


def test_spread_data_means_near_meanfield():
    data = spread_data(32, 32, 8, 2, 3, [0.3], n_samples=60, seed=0)
    assert data["u_e0_l0"].shape == (60 * 8,)
    np.testing.assert_allclose(data["u_e0_l0"], 0.7, atol=1e-6)
    # Node means of one rule draw follow the theory to a few percent at low noise.
    for level in range(1, 4):
        assert abs(data[f"u_e0_l{level}"].mean() - data["mf_u"][0, level]) < 0.03


def test_diffusion_effective_eps_matches_noise_module():
    t = np.array([0.02, 0.06, 0.15])
    data = diffusion_data(
        16, 16, 3, 2, 2, t, n_samples=200, n_rules=2, seed=0, t_dense=t, n_leaves=20000
    )
    assert np.all(np.diff(data["eps_eff"]) > 0)
    # 1 - u_0 measured on the BP leaves (800 leaves per t) vs an independent Monte Carlo.
    reference = effective_eps(16, continuous_alpha_bar(t), 20000, seed=9)
    np.testing.assert_allclose(data["eps_eff"], reference, atol=0.03)
    np.testing.assert_allclose(data["eps_eff_dense"], reference, atol=0.015)
    np.testing.assert_allclose(data["mf_p"], profile(16, 16, 3, 2, 2, data["eps_eff"]).p)


def test_around():
    # first_crossing itself is tested in tests/test_phase_transition.py
    eps = np.linspace(0, 1, 101)
    smooth = 1.0 - eps
    lo_eps, lo_val, hi_eps, hi_val = _around(eps, smooth, 0.5, gap=0.1)
    assert (lo_eps, hi_eps) == pytest.approx((0.4, 0.6))
    assert (lo_val, hi_val) == pytest.approx((0.6, 0.4))
    assert np.isnan(_around(eps, smooth, 0.95, gap=0.1)[2])


def test_population_data_matches_bp_on_a_tiny_rhm():
    """Population dynamics against exact BP (8 rule draws): within 4 combined standard errors
    plus 0.01 for every level and kind; exact where the leaves and the root fix the value."""
    v, m, L, eps = 16, 3, 3, np.array([0.2, 0.5, 0.7])
    pd = population_data(v, v, m, 2, L, eps, n_pop=4000, seed=0)
    bp = profiles_data(v, v, m, 2, L, eps, n_samples=400, n_rules=8, seed=1, n_dense=20)
    for key in ("pd_u", "pd_d", "pd_p", "pd_accuracy", "pd_p_se"):
        assert pd[key].shape == (3, L + 1)
    assert pd["pd_samples_d"].shape == (3, L + 1, 4000)
    assert pd["pd_hist_p"].shape == (3, L + 1, len(pd["pd_bin_edges"]) - 1)
    np.testing.assert_allclose(pd["pd_u"][:, 0], 1 - eps, atol=1e-6)  # the leaf evidence
    np.testing.assert_allclose(pd["pd_d"][:, L], 1 / v, atol=1e-6)  # the class prior
    for q in ("u", "d", "p", "accuracy"):
        se = np.hypot(pd[f"pd_{q}_se"], bp[f"bp_{q}_se"])
        assert np.all(np.abs(pd[f"pd_{q}"] - bp[f"bp_{q}"]) <= 4 * se + 0.01), q


def test_ks_distance_against_scipy_and_point_masses():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    a, b = rng.random(300), rng.random(170) ** 1.5
    assert ks_distance(a, b, decimals=12) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    # float32 and float64 copies of one value are one point mass
    assert ks_distance(np.full(5, np.float32(0.7)), np.full(9, 0.7)) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        ks_distance(np.array([]), a)


def test_spread_with_population_dynamics_plots_and_ks():
    v, m, L, eps = 8, 2, 2, [0.3, 0.6]
    spread = spread_data(v, v, m, 2, L, eps, n_samples=30, seed=0)
    pd = population_data(v, v, m, 2, L, eps, n_pop=1000, seed=0)
    spread.update({k: pd[k] for k in ("pd_samples_u", "pd_samples_d", "pd_samples_p")})
    ks = spread_ks(spread)
    assert ks["ks_u"].shape == ks["ks_d"].shape == (2, L + 1)
    np.testing.assert_array_equal(ks["n_bp"], [30 * 4, 30 * 2, 30])
    # Leaves carry the same evidence in both, the root the same prior: KS exactly 0 there.
    np.testing.assert_array_equal(ks["ks_u"][:, 0], 0.0)
    np.testing.assert_array_equal(ks["ks_d"][:, L], 0.0)
    assert np.all((ks["ks_p"] >= 0) & (ks["ks_p"] <= 1))
    spread.update(ks)
    fig = plot_spread(spread)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert f"{ks['ks_d'][0, 0]:.2f}" in texts and len(texts) == 2 * 2 * (L + 1)
    legend = fig.axes[0].get_legend().get_texts()
    assert "population dyn. (right)" in [t.get_text() for t in legend]


def test_profiles_plot_draws_population_curves():
    v, m, L, eps = 8, 2, 2, np.array([0.2, 0.6])
    data = profiles_data(v, v, m, 2, L, eps, n_samples=20, n_rules=1, seed=0, n_dense=10)
    before = [len(ax.lines) for ax in plot_profiles(data).axes]
    pd = population_data(v, v, m, 2, L, eps, n_pop=400, seed=0)
    data.update({k: pd[k] for k in ("pd_u", "pd_d", "pd_p", "pd_accuracy")})
    fig = plot_profiles(data)
    after = [len(ax.lines) for ax in fig.axes]
    assert [a - b for a, b in zip(after, before, strict=True)] == [L + 1] * 4
    dashed = [ln for ln in fig.axes[2].lines if ln.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[L].get_ydata(), pd["pd_p"][:, L])


def test_finite_depth_data_from_the_stored_run():
    from hiergrammar.theory.finite_depth import load_stored

    data = finite_depth_data()
    stored = load_stored()
    v, m = data["params"]["v"], data["params"]["m"]
    assert (v, m, data["params"]["s"]) == (32, 8, 2) and data["depths"][-1] >= 12
    # lambda = F'(u*) in closed form for s = 2 (the derivation's, typed independently)
    assert data["lam"] == pytest.approx(2 * (v - m) * (m - 1) * (v + 1) / (m * (v - 1) ** 2))
    depths, predicted = np.array(data["depths"]), np.array(data["predicted_line"])
    np.testing.assert_allclose(-np.diff(np.log(predicted)), np.log(data["lam"]))
    # the BP points are the stored draws' means, untouched
    deepest = str(depths[-1])
    assert data["bp_width_belief"][-1] == pytest.approx(
        np.mean(stored["bp"][deepest]["width_belief"])
    )
    fitted = np.array(data["fitted_line_belief"])
    np.testing.assert_allclose(-np.diff(np.log(fitted)), np.log(data["lam_fit_belief"]))
    assert abs(data["lam_fit_belief"] - data["lam"]) < 0.05  # the measured scaling
    assert data["pd_depths"] == sorted(int(L) for L in stored.get("population", {}))
    fig = plot_finite_depth(data)
    assert fig.axes[0].get_yscale() == "log"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"{data['lam']:.3f}" in t for t in labels)
    assert any(f"{data['lam_fit_belief']:.3f}" in t for t in labels)


@pytest.mark.slow
def test_reproduce_step_quick_writes_figures_and_data(tmp_path):
    import matplotlib.image

    section = reproduce_step(tmp_path, seed=0, sizes=QUICK)
    assert isinstance(section, ReportSection)
    stems = {
        "fig06_phase_diagram",
        "fig07_beliefs_per_level",
        "fig11_message_spread",
        "fig15_diffusion_effective_eps",
    }
    assert {p.stem for p in section.figures} == stems | {"finite_depth_scaling"}
    for fig in section.figures:
        assert fig.exists() and fig.suffix == ".png"
        image = matplotlib.image.imread(fig)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert image.std() > 0.05  # not a blank canvas
    for stem in stems:
        with np.load(tmp_path / "theory" / f"{stem}.npz") as npz:
            assert len(npz.files) > 3
        summary = json.loads((tmp_path / "theory" / f"{stem}.json").read_text())
        assert summary
    summary = json.loads((tmp_path / "theory" / "fig07_beliefs_per_level.json").read_text())
    assert 0 <= summary["max_abs_p_mf_minus_bp"] < 0.2
    assert f"{summary['max_abs_p_mf_minus_bp']:.4f}" in section.text
    pd = summary["population"]
    assert pd["n_pop"] == QUICK.population_size
    assert 0 <= pd["max_abs_p_pd_minus_bp"] < 0.1
    assert f"{pd['max_abs_d_pd_minus_bp']:.4f}" in section.text
    spread = json.loads((tmp_path / "theory" / "fig11_message_spread.json").read_text())
    ks = spread["ks_population_vs_bp"]
    assert len(ks[f"eps={QUICK.spread_eps[0]}"]["d"]) == QUICK.L + 1
    with np.load(tmp_path / "theory" / "fig07_beliefs_per_level.npz") as npz:
        assert npz["pd_p"].shape == npz["bp_p"].shape
    depth = json.loads((tmp_path / "theory" / "finite_depth_scaling.json").read_text())
    assert depth["summary"]["lam_predicted"] == pytest.approx(1.4422, abs=1e-4)
    assert f"{depth['summary']['lam_fit_belief']:.4f}" in section.text
    markdown = section.to_markdown(tmp_path)
    assert "](theory/fig06_phase_diagram.png)" in markdown
    assert "](theory/finite_depth_scaling.png)" in markdown
