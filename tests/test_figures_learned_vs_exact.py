"""The learned_vs_exact figure step: files, keys, and the exact denoiser as a lower bound.

Independent evidence: Gibbs' inequality -- the exact posterior minimises the expected
cross-entropy, so on held-out data no trained model's loss lies below it beyond the sampling
error (two paired standard errors here, at every ``t > 0``); and the exact reverse process
never leaves the language.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hiergrammar.figures.learned_vs_exact import FULL, MODELS, QUICK, reproduce_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


@pytest.mark.slow
def test_quick_step_writes_every_key_and_the_exact_loss_is_a_lower_bound(tmp_path):
    section = reproduce_step(tmp_path, quick=True, seed=3)
    for path in [*section.figures, *section.data]:
        assert path.exists() and path.stat().st_size > 0
    assert {p.name for p in section.figures} == {
        "learned_vs_exact_loss.png",
        "learned_vs_exact_unchanged.png",
        "learned_vs_exact_generation.png",
    }
    data = json.loads((tmp_path / "learned_vs_exact.json").read_text())
    n_t, levels = len(QUICK.t), [str(lv) for lv in range(QUICK.L + 1)]
    assert data["t"] == list(QUICK.t) and data["P"] == list(QUICK.P) and len(QUICK.P) >= 3
    assert len(data["loss_exact"]) == n_t
    assert set(data["loss_learned"]) == set(MODELS) == set(data["valid_fraction"])
    assert sorted(data["p_unchanged_exact"]) == levels
    for name in MODELS:
        assert len(data["loss_learned"][name]) == n_t
        assert sorted(data["p_unchanged_learned"][name]) == levels
        assert len(data["valid_vs_P"][name]) == len(QUICK.P)
        assert data["valid_fraction"][name] == data["valid_vs_P"][name][-1]
        # the exact denoiser is the Bayes posterior: never beaten beyond the sampling error
        gap = np.asarray(data["loss_gap"][name])
        se = np.asarray(data["loss_gap_se"][name])
        assert (gap + 2 * se >= 0).all(), (name, gap, se)
        np.testing.assert_allclose(
            gap, np.asarray(data["loss_learned"][name]) - data["loss_exact"], atol=1e-9
        )
    assert data["accepted_fraction"]["exact"] == [1.0] * n_t
    assert all(g["valid"] == 1.0 for g in data["generation"]["exact"])
    # the same exact strings against nested training sets: copies can only grow with P
    assert np.all(np.diff(data["copied_vs_P"]["exact"]) >= 0)
    # the report quotes the measured numbers
    assert "t*" in section.text and "exact" in section.text
    assert f"{data['t_star']['exact']:.3f}" in section.text


def test_sizes_keep_the_step_small():
    assert FULL.budget_seconds <= 150 and QUICK.budget_seconds <= 15
    for sizes in (FULL, QUICK):
        assert len(sizes.P) >= 3 and list(sizes.P) == sorted(set(sizes.P))
        assert all(0 < t <= 1 for t in sizes.t)
