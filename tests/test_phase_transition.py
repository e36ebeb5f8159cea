"""The phase-transition experiment: limits of P(correct symbol), and its figure step
(hiergrammar.figures.phase_transition)."""

import json

import numpy as np
import pytest

from hiergrammar.experiments.phase_transition import accuracy_vs_noise
from hiergrammar.figures.phase_transition import QUICK, reproduce_step
from hiergrammar.validation import InputError


def test_accuracy_limits_and_monotone_decay():
    v = 8
    eps = np.array([0.0, 0.3, 0.6, 1 - 1 / v])
    res = accuracy_vs_noise(
        v=v, n_classes=8, m=2, s=2, L=3, noise="eps", levels=eps, n=300, n_rules=2, seed=0
    )
    assert res.accuracy.shape == (4, 4)
    np.testing.assert_allclose(res.accuracy[0], 1.0)  # noiseless: the tree is recovered
    # No information: argmax is a uniform guess among v symbols; binomial tolerance 5 sigma
    # on the class (600 samples).
    chance_sigma = np.sqrt((1 / v) * (1 - 1 / v) / 600)
    assert abs(res.accuracy[-1, 3] - 1 / v) < 5 * chance_sigma + 0.01
    assert np.all(np.diff(res.accuracy[:, 3]) <= 0.02)


def test_diffusion_accuracy_decays_with_time():
    res = accuracy_vs_noise(
        v=8,
        n_classes=8,
        m=2,
        s=2,
        L=2,
        noise="diffusion",
        levels=np.array([0.0, 0.5, 4.0]),
        n=200,
        n_rules=2,
        seed=1,
    )
    np.testing.assert_allclose(res.accuracy[0], 1.0)
    assert res.accuracy[1, 0] < 1.0 and res.accuracy[2, 2] < 0.3


def test_unknown_noise_is_an_input_error():
    with pytest.raises(InputError, match="noise='gauss' is not one of"):
        accuracy_vs_noise(8, 8, 2, 2, 2, noise="gauss", levels=[0.1])


def test_reproduce_step_quick_writes_figures_and_data(tmp_path):
    section = reproduce_step(tmp_path, seed=0, sizes=QUICK)
    for path in section.figures + section.data:
        assert (tmp_path / path).exists() or path.exists()
    text = (tmp_path / "phase_transition.json").read_text()
    summary = json.loads(text)
    # eps* is asked of the theory; here against the s = 2 closed form (v - 2m + 1) / (v - m)
    assert summary["eps_star_mean_field"] == pytest.approx((8 - 4 + 1) / (8 - 2), abs=1e-12)
    data = np.load(tmp_path / "phase_transition.npz")
    assert data["eps_L3_accuracy"].shape == (5, 4)
    assert "Class accuracy falls through 1/2" in section.text
    # Strict JSON: at these sizes the class never falls through 1/2 on the grid, so the
    # crossings are null and listed as NaN under non_finite_values.
    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text.replace(
        '"Infinity"', ""
    )
    crossings = summary["class_accuracy_half_crossing_eps"]
    for L, value in crossings.items():
        if value is None:
            assert summary["non_finite_values"][f"/class_accuracy_half_crossing_eps/{L}"] == "NaN"
            assert f"not on this grid (L = {L})" in section.text


def test_first_crossing_interpolates_and_flags_missing_crossings():
    from hiergrammar.experiments.curves import first_crossing

    x = np.linspace(0.0, 1.0, 101)
    assert first_crossing(x, 1.0 - x, 0.5) == pytest.approx(0.5)
    assert first_crossing(x, np.where(x < 0.305, 1.0, 0.0), 0.5) == pytest.approx(0.305, abs=0.01)
    assert np.isnan(first_crossing(x, np.ones(101), 0.5))  # never falls below
    assert np.isnan(first_crossing(x, np.zeros(101), 0.5))  # starts below
