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
    assert FULL.budget_seconds <= 180  # the step's ceiling: 3 minutes on two cores


@pytest.mark.slow
def test_result_does_not_depend_on_the_number_of_workers():
    one = compute_discrete_diffusion(replace(QUICK, depths=(2,), workers=1), seed=3)
    two = compute_discrete_diffusion(replace(QUICK, depths=(2,), workers=2), seed=3)
    for process in ("masking", "uniform"):
        np.testing.assert_array_equal(
            one.summary_of(process, 2).mean["C"], two.summary_of(process, 2).mean["C"]
        )
    np.testing.assert_array_equal(one.reconstruction.accuracy, two.reconstruction.accuracy)


def _vertical_lines(ax):
    """``{label: x}`` of the vertical lines of ``ax`` (axvline draws x = [x, x])."""
    return {
        line.get_label(): float(line.get_xdata()[0])
        for line in ax.lines
        if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]
    }


def test_figures_mark_the_theory_critical_times():
    from hiergrammar.theory.discrete import critical_alpha, first_moment_critical_alpha

    from hiergrammar.figures.discrete_diffusion import (
        EXAMPLE,
        _critical_times,
        describe_theory_marks,
        plot_susceptibility,
        plot_unchanged,
    )

    result = compute_discrete_diffusion(EXAMPLE, seed=0)
    z = EXAMPLE
    masking = critical_alpha("masking", z.v, z.m, z.s, methods=("first_moment", "determination"))
    # the linear schedule: t* = 1 - alpha*; the first moment in closed form
    t_first = 1 - first_moment_critical_alpha("masking", z.v, z.m, z.s)
    t_det = 1 - masking.alpha["determination"]
    uniform_first = 1 - first_moment_critical_alpha("uniform", z.v, z.m, z.s)
    for fig in (plot_unchanged(result), plot_susceptibility(result)):
        for ax, expected in zip(fig.axes, ([t_det, t_first], [uniform_first]), strict=True):
            marks = {
                label: x for label, x in _vertical_lines(ax).items() if label.startswith("theory")
            }
            assert sorted(marks.values()) == pytest.approx(sorted(expected), abs=1e-9)
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert set(marks) <= set(legend)
    text = describe_theory_marks(result)
    assert f"theory t* = {t_det:.3f} (determination law" in text
    assert f"first moment {uniform_first:.3f}" in text
    # At the figures' own parameters the marks are the stored population-dynamics values.
    stored = _critical_times(32, 8, 2)
    for process in ("masking", "uniform"):
        theory = critical_alpha(process, 32, 8, 2, methods=("population",))
        assert stored[process]["best"] == "population"
        assert stored[process]["t_star"] == pytest.approx(1 - theory.alpha["population"])
