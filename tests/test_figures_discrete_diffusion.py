"""The discrete_diffusion figure step: files, measured statements, seeds and workers."""

import json
from dataclasses import replace

import numpy as np
import pytest

from hiergrammar.figures.discrete_diffusion import (
    FULL,
    QUICK,
    compute_discrete_diffusion,
    reproduce_step,
)


def test_quick_step_writes_figures_data_and_statements(tmp_path):
    section = reproduce_step(tmp_path, quick=True)
    for path in [*section.figures, *section.data]:
        assert path.exists() and path.stat().st_size > 0
    assert {p.name for p in section.figures} == {
        "discrete_diffusion_unchanged.png",
        "discrete_diffusion_correlations.png",
        "discrete_diffusion_chi.png",
        "discrete_diffusion_masked_reconstruction.png",
    }
    summary = json.loads((tmp_path / "discrete_diffusion.json").read_text())
    for process in ("masking", "uniform"):
        for L in QUICK.depths:
            peak = summary[process][f"L{L}"]["chi_peak"]
            assert peak["t_grid"] in QUICK.t
    arrays = np.load(tmp_path / "discrete_diffusion.npz")
    L = max(QUICK.depths)
    assert arrays[f"masking_L{L}_C"].shape == (len(QUICK.t), 2**L)
    assert arrays[f"uniform_L{L}_chi_draws"].shape == (QUICK.n_rules, len(QUICK.t))
    # The statements quote measured numbers: the peak of every depth and the transition.
    assert "class transition" in section.text and "Verdict" in section.text
    for L in QUICK.depths:
        assert f"L = {L}: peak" in section.text
    markdown = section.to_markdown(tmp_path)
    assert "discrete_diffusion_chi.png" in markdown


def test_measurements_are_consistent_and_seeded():
    a = compute_discrete_diffusion(QUICK, seed=1)
    b = compute_discrete_diffusion(QUICK, seed=1)
    L = max(QUICK.depths)
    np.testing.assert_array_equal(
        a.summary_of("masking", L).mean["chi"], b.summary_of("masking", L).mean["chi"]
    )
    for process in ("masking", "uniform"):
        unchanged = a.summary_of(process, L).mean["unchanged"]
        # At alpha = 0 the class is kept with probability about 1 / n_classes.
        assert abs(unchanged[-1, L] - 1 / QUICK.n_classes) < 0.2
        assert np.all(unchanged[0] > unchanged[-1])
        chi = a.summary_of(process, L).mean["chi"]
        C = a.summary_of(process, L).mean["C"]
        np.testing.assert_allclose(chi, C[:, 1:].sum(axis=1))
    assert a.reconstruction.accuracy[0] > a.reconstruction.accuracy[-1]


def test_full_sizes_meet_the_issue():
    assert FULL.samples_per_point >= 10_000
    assert 18 <= len(FULL.t) <= 24 and FULL.depths == (3, 5, 7)
    assert (FULL.v, FULL.n_classes, FULL.m, FULL.s) == (32, 32, 8, 2)
    assert set(FULL.t_correlations) <= set(FULL.t)
    assert FULL.budget_seconds <= 180  # the issue: 3 minutes on two cores at most


@pytest.mark.slow
def test_result_does_not_depend_on_the_number_of_workers():
    one = compute_discrete_diffusion(replace(QUICK, depths=(2,), workers=1), seed=3)
    two = compute_discrete_diffusion(replace(QUICK, depths=(2,), workers=2), seed=3)
    for process in ("masking", "uniform"):
        np.testing.assert_array_equal(
            one.summary_of(process, 2).mean["C"], two.summary_of(process, 2).mean["C"]
        )
    np.testing.assert_array_equal(one.reconstruction.accuracy, two.reconstruction.accuracy)
