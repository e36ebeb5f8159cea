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
    phase_diagram_data,
    profiles_data,
    reproduce_step,
    spread_data,
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
    assert {p.stem for p in section.figures} == stems
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
    markdown = section.to_markdown(tmp_path)
    assert "](theory/fig06_phase_diagram.png)" in markdown
