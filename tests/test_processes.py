"""Noise processes as objects: schedules, the forward draws against their own likelihoods, and
agreement with the functional noise models of hiergrammar.noise."""

import numpy as np
import pytest
from scipy.stats import binomtest, chisquare, multivariate_normal

from hiergrammar import InputError
from hiergrammar.noise import (
    DiscreteChain,
    EpsProcess,
    GaussianProcess,
    MaskingProcess,
    UniformProcess,
    chain_alpha_bar,
    diffuse_onehot,
    diffusion_evidence,
    eps_evidence,
    leaf_posterior,
    make_schedule,
    respaced_timesteps,
)
from hiergrammar.schedules import LogLinearSchedule

UNIT = ["linear", "cosine", "loglinear"]


# -- schedules -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", UNIT)
def test_unit_schedules_run_from_one_to_zero_and_decrease(name):
    schedule = make_schedule(name)
    assert schedule.alpha(0.0) == 1.0 and schedule.alpha(1.0) == 0.0
    alpha = schedule.alpha(np.linspace(0, 1, 101))
    assert np.all(np.diff(alpha) < 0)


def test_schedule_formulas():
    t = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(make_schedule("linear").alpha(t), 1 - t)
    np.testing.assert_allclose(make_schedule("cosine").alpha(t), 1 - np.cos(np.pi / 2 * (1 - t)))
    mdlm = LogLinearSchedule(eps=1e-3)
    sigma = -np.log(1 - (1 - 1e-3) * t)  # MDLM: alpha = exp(-sigma)
    np.testing.assert_allclose(mdlm.alpha(t), np.exp(-sigma))
    np.testing.assert_allclose(mdlm.sigma(t), -np.log1p(-(1 - 1e-3) * t))
    np.testing.assert_allclose(make_schedule("continuous").alpha(t), np.exp(-2 * t))


def test_discrete_chains():
    ddpm = DiscreteChain.ddpm()
    steps = np.arange(251)
    np.testing.assert_allclose(ddpm.alpha(steps), chain_alpha_bar(steps))
    chain = DiscreteChain.from_schedule("cosine", num_train_steps=1000, num_steps=50)
    kept = respaced_timesteps(1000, 50)
    expected = np.concatenate([[1.0], 1 - np.cos(np.pi / 2 * (1 - (kept + 1) / 1000))])
    np.testing.assert_allclose(chain.alpha(np.arange(51)), expected, atol=1e-15)
    assert chain.alpha(50) == 0.0
    with pytest.raises(InputError, match="integer step"):
        chain.alpha(1.5)
    with pytest.raises(InputError, match="0 <= t <= num_steps = 50"):
        chain.alpha(51)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_schedule("linear").alpha(1.5), r"0 <= t <= 1"),
        (lambda: make_schedule("cosine").alpha(-0.1), r"0 <= t <= 1"),
        (lambda: make_schedule("linear").alpha(np.nan), r"finite"),
        (lambda: make_schedule("continuous").alpha(-1.0), r"0 <= t < inf"),
        (lambda: make_schedule("quadratic"), r"not one of"),
        (lambda: LogLinearSchedule(eps=1.0), r"0.0 <= eps < 1.0"),
        (lambda: MaskingProcess(8, schedule="continuous"), r"0 <= t <= 1"),
        (lambda: MaskingProcess(1), r"v >= 2"),
        (lambda: DiscreteChain.ddpm(num_steps=2000), r"num_steps <= 1000"),
    ],
)
def test_schedule_and_process_validation(call, match):
    with pytest.raises(InputError, match=match):
        call()


# -- corrupt against leaf_likelihood ---------------------------------------------------------
@pytest.mark.parametrize("process_cls", [MaskingProcess, UniformProcess])
@pytest.mark.parametrize("t", [0.2, 0.7])
def test_corrupt_draws_follow_the_likelihood(process_cls, t):
    """For each clean symbol b, the observed symbols are distributed as P(obs | b), which the
    likelihood gives as a function of obs (chi-square goodness of fit, p > 1e-3)."""
    v, n = 5, 20000
    proc = process_cls(v)
    symbols = np.arange(v + 1) if process_cls is MaskingProcess else np.arange(v)
    table = proc.leaf_likelihood(symbols[None, :], t)[0]  # (n_obs, v): P(obs | b)
    np.testing.assert_allclose(table.sum(axis=0), 1.0)  # a distribution over observations
    for b in range(v):
        obs = proc.corrupt(np.full((n, 1), b), t, seed=b)[:, 0]
        counts = np.bincount(obs, minlength=symbols.size)
        possible = table[:, b] > 0
        assert counts[~possible].sum() == 0  # impossible observations never occur
        assert chisquare(counts[possible], table[possible, b] * n).pvalue > 1e-3


def test_masking_keeps_unmasked_leaves_and_masks_at_rate():
    proc = MaskingProcess(8, schedule="cosine")
    x = np.random.default_rng(0).integers(8, size=(2000, 16))
    obs = proc.corrupt(x, 0.4, seed=1)
    kept = obs != 8
    np.testing.assert_array_equal(obs[kept], x[kept])
    assert binomtest(int((~kept).sum()), kept.size, 1 - proc.alpha(0.4)).pvalue > 1e-3
    per_sample = proc.corrupt(x[:2], np.array([0.0, 1.0]), seed=0)
    np.testing.assert_array_equal(per_sample[0], x[0])
    assert (per_sample[1] == 8).all()


def test_uniform_resampled_leaves_are_uniform():
    proc = UniformProcess(6)
    obs = proc.corrupt(np.zeros((30000, 1), dtype=int), 1.0, seed=3)[:, 0]
    assert chisquare(np.bincount(obs, minlength=6)).pvalue > 1e-3


def test_eps_process_is_the_eps_evidence():
    x = np.array([[0, 2, 1], [1, 1, 0]])
    proc = EpsProcess(3)
    assert proc.corrupt(x, 0.4) is x
    # eps_evidence is a shortcut of the process: equal, not merely close
    np.testing.assert_array_equal(proc.leaf_likelihood(x, 0.4), eps_evidence(x, 0.4, 3))
    per = proc.leaf_likelihood(x, np.array([0.1, 0.5]))
    np.testing.assert_array_equal(per, eps_evidence(x, np.array([0.1, 0.5]), 3))
    # and still the paper's formula, written out here
    expected = np.where(np.eye(3, dtype=bool)[x], 0.6, 0.2)
    np.testing.assert_allclose(eps_evidence(x, 0.4, 3), expected, rtol=1e-15)
    assert proc.alpha(2 / 3) == pytest.approx(0.0)
    # Under a unit schedule it is the uniform process's likelihood at the clean string.
    linear = EpsProcess(3, schedule="linear")
    np.testing.assert_allclose(
        linear.leaf_likelihood(x, 0.3), UniformProcess(3).leaf_likelihood(x, 0.3)
    )


def test_gaussian_process_matches_the_functional_noise_model():
    x = np.random.default_rng(1).integers(4, size=(5, 6))
    proc = GaussianProcess(4)
    abar = float(np.exp(-2 * 0.3))
    obs = proc.corrupt(x, 0.3, seed=7)
    # one implementation: the functions and the process give the same numbers exactly
    np.testing.assert_array_equal(obs, diffuse_onehot(x, 4, abar, seed=7))
    np.testing.assert_array_equal(proc.leaf_likelihood(obs, 0.3), leaf_posterior(obs, abar))
    np.testing.assert_array_equal(
        proc.leaf_likelihood(proc.corrupt(x, 0.3, seed=8), 0.3),
        diffusion_evidence(x, 4, abar, seed=8),
    )
    # per-sample times, one clean: each row is the function at its own noise level
    t = np.array([0.0, 0.1, 0.3, 0.5, 2.0])
    lik = proc.leaf_likelihood(obs, t)
    for k, tk in enumerate(t):
        np.testing.assert_array_equal(lik[k], leaf_posterior(obs[k : k + 1], np.exp(-2 * tk))[0])
    ddpm = GaussianProcess(4, schedule="ddpm")
    np.testing.assert_allclose(ddpm.alpha(100), chain_alpha_bar(100))
    clean = proc.leaf_likelihood(proc.corrupt(x, 0.0, seed=0), 0.0)
    np.testing.assert_array_equal(clean.argmax(-1), x)
    assert set(np.unique(clean)) == {0.0, 1.0}


def test_gaussian_likelihood_is_proportional_to_the_density():
    """softmax(sqrt(abar) x_t / (1 - abar)) against the Gaussian density of x_t given e_b."""
    v, abar = 3, 0.6
    obs = GaussianProcess(v).corrupt(np.array([[1]]), 0.2, seed=0)
    lik = GaussianProcess(v).leaf_likelihood(obs, -np.log(abar) / 2)[0, 0]
    density = np.array(
        [
            multivariate_normal(np.sqrt(abar) * np.eye(v)[b], (1 - abar) * np.eye(v)).pdf(obs[0, 0])
            for b in range(v)
        ]
    )
    np.testing.assert_allclose(lik, density / density.sum(), rtol=1e-10)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: MaskingProcess(4).corrupt(np.array([[0, 4]]), 0.5), r"\[0, v\) = \[0, 4\)"),
        (lambda: MaskingProcess(4).leaf_likelihood(np.array([[5]]), 0.5), r"\[0, 4\]"),
        (lambda: UniformProcess(4).leaf_likelihood(np.array([[4]]), 0.5), r"\[0, 4\)"),
        (lambda: UniformProcess(4).corrupt(np.array([0, 1]), 0.5), r"shape \(n, d\)"),
        (lambda: UniformProcess(4).corrupt(np.array([[0.5]]), 0.5), r"integer symbols"),
        (lambda: UniformProcess(4).corrupt(np.array([[0, 1]]), np.ones(3) / 2), r"\(n,\)"),
        (lambda: UniformProcess(4).corrupt(np.array([[0]]), 0.5, seed=-1), r"seed >= 0"),
        (
            lambda: UniformProcess(4).leaf_likelihood(np.array([[0]]), 0.5, dtype=np.int32),
            r"float32 or np.float64",
        ),
        (
            lambda: GaussianProcess(4).leaf_likelihood(np.zeros((1, 2, 3)), 0.5),
            r"\(n, d, 4\)",
        ),
        (lambda: EpsProcess(4).leaf_likelihood(np.array([[0]]), 1.5), r"0 <= t <= 1"),
    ],
)
def test_process_validation(call, match):
    with pytest.raises(InputError, match=match):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: MaskingProcess(32).leaf_likelihood(
            np.zeros((100, 64), int), 0.5, memory_budget=1e5
        ),
        lambda: GaussianProcess(32).corrupt(np.zeros((100, 64), int), 0.5, memory_budget=1e5),
    ],
)
def test_memory_guard(call):
    with pytest.raises(InputError, match="memory budget"):
        call()


def test_float32_likelihood():
    obs = np.array([[0, 8, 3]])
    lik = MaskingProcess(8).leaf_likelihood(obs, 0.3, dtype=np.float32)
    assert lik.dtype == np.float32
    np.testing.assert_allclose(lik, MaskingProcess(8).leaf_likelihood(obs, 0.3), rtol=1e-6)
