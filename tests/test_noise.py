"""Noise models: eps-process evidence, DDPM schedules, the exact leaf posterior."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from hiergrammar import InputError
from hiergrammar.noise import (
    chain_alpha_bar,
    continuous_alpha_bar,
    ddpm_alpha_bar,
    diffuse_onehot,
    diffusion_evidence,
    effective_eps,
    eps_evidence,
    leaf_posterior,
    respace,
    respaced_timesteps,
)


def test_eps_evidence_values():
    x = np.array([[0, 2], [1, 1]])
    ev = eps_evidence(x, 0.3, 3)
    assert ev.shape == (2, 2, 3)
    np.testing.assert_allclose(ev[0, 1], [0.15, 0.15, 0.7])
    np.testing.assert_allclose(ev.sum(-1), 1.0)
    per_sample = eps_evidence(x, np.array([0.0, 2 / 3]), 3)
    np.testing.assert_allclose(per_sample[0, 0], [1, 0, 0])
    np.testing.assert_allclose(per_sample[1], 1 / 3)  # no information at eps = 1 - 1/v


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.array([[0, 1]]), eps=1.5, v=3), r"0 <= eps <= 1"),
        (dict(x=np.array([[0, 3]]), eps=0.1, v=3), r"\[0, v\)"),
        (dict(x=np.array([0, 1]), eps=0.1, v=3), r"shape \(n, d\)"),
        (dict(x=np.array([[0, 1]]), eps=0.1, v=1), r"v >= 2"),
        (dict(x=np.array([[0, 1]]), eps=np.array([0.1, 0.2]), v=3), r"shape \(n,\)"),
    ],
)
def test_eps_evidence_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        eps_evidence(**kwargs)


def test_ddpm_schedule_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
    )
    np.testing.assert_allclose(ddpm_alpha_bar(), sched.alphas_cumprod.double().numpy(), rtol=1e-5)


def _adm_space_timesteps(num_timesteps, count):
    # guided_diffusion.respace.space_timesteps for a single section, as published.
    frac_stride = (num_timesteps - 1) / (count - 1)
    cur, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur))
        cur += frac_stride
    return taken


@pytest.mark.parametrize("count", [2, 10, 50, 250, 1000])
def test_respacing_matches_adm(count):
    np.testing.assert_array_equal(
        respaced_timesteps(1000, count), _adm_space_timesteps(1000, count)
    )
    abar = ddpm_alpha_bar()
    chain = respace(abar, count)
    assert chain.shape == (count,) and np.all(np.diff(chain) < 0)
    assert chain_alpha_bar(0, count) == 1.0
    assert chain_alpha_bar(count, count) == pytest.approx(abar[-1])


def test_schedule_validation():
    with pytest.raises(ValueError, match="num_steps"):
        respaced_timesteps(1000, 1001)
    with pytest.raises(ValueError, match="0 <= t"):
        continuous_alpha_bar(-1.0)
    with pytest.raises(ValueError, match="0 <= t <= num_steps"):
        chain_alpha_bar(251, 250)
    np.testing.assert_allclose(continuous_alpha_bar([0.0, 1.0]), [1.0, np.exp(-2.0)])


def test_leaf_posterior_is_bayes_rule_with_the_gaussian_likelihood():
    v, abar = 5, 0.3
    x = np.array([[0, 3, 4]])
    x_t = diffuse_onehot(x, v, abar, seed=1)
    post = leaf_posterior(x_t, abar)
    for i in range(3):
        loglik = np.array(
            [
                multivariate_normal(
                    mean=np.sqrt(abar) * np.eye(v)[mu], cov=(1 - abar) * np.eye(v)
                ).logpdf(x_t[0, i])
                for mu in range(v)
            ]
        )
        expected = np.exp(loglik - loglik.max())
        np.testing.assert_allclose(post[0, i], expected / expected.sum(), rtol=1e-10)


def test_leaf_posterior_is_calibrated():
    # For x_0 uniform, E[P(true | x_t)] = E[sum_mu P(mu | x_t)^2]; 6 standard errors.
    v, abar, n = 4, 0.2, 40000
    rng = np.random.default_rng(0)
    x = rng.integers(v, size=(n, 1))
    post = diffusion_evidence(x, v, abar, seed=1)[:, 0]
    p_true = post[np.arange(n), x[:, 0]]
    diff = p_true - (post**2).sum(-1)
    assert abs(diff.mean()) < 6 * diff.std() / np.sqrt(n)


def test_leaf_posterior_limits():
    x = np.array([[2, 0]])
    np.testing.assert_allclose(leaf_posterior(diffuse_onehot(x, 3, 1.0, seed=0), 1.0), np.eye(3)[x])
    np.testing.assert_allclose(leaf_posterior(diffuse_onehot(x, 3, 0.0, seed=0), 0.0), 1 / 3)
    with pytest.raises(ValueError, match="0 <= alpha_bar <= 1"):
        diffuse_onehot(x, 3, 1.2)


def test_diffusion_is_deterministic_for_a_seed():
    x = np.array([[0, 1, 2]])
    np.testing.assert_array_equal(
        diffuse_onehot(x, 3, 0.5, seed=7), diffuse_onehot(x, 3, 0.5, seed=7)
    )
    assert not np.array_equal(diffuse_onehot(x, 3, 0.5, seed=7), diffuse_onehot(x, 3, 0.5, seed=8))


def test_effective_eps_grows_from_zero_to_no_information():
    v = 8
    abar = continuous_alpha_bar(np.array([0.0, 0.3, 0.8, 1.5, 3.0, 50.0]))
    eps = effective_eps(v, abar, n_samples=20000, seed=0)
    assert eps[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(eps) > 0)
    assert eps[-1] == pytest.approx(1 - 1 / v, abs=0.005)


def _peak_bytes(fn, *args, **kwargs):
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def test_large_vocabulary_needs_no_v_squared_one_hot():
    # np.eye(10**6)[x] would ask for 7.28 TiB; indexing allocates the 32 MB result only.
    v = 10**6
    x = np.array([[0, 5, v - 1, 5]])
    ev, peak = _peak_bytes(eps_evidence, x, 0.3, v)
    assert ev.shape == (1, 4, v) and peak < 2 * ev.nbytes
    assert ev[0, 2, v - 1] == pytest.approx(0.7) and ev[0, 2, 0] == pytest.approx(0.3 / (v - 1))
    np.testing.assert_allclose(ev.sum(-1), 1.0)
    x_t, peak = _peak_bytes(diffuse_onehot, x, v, 0.9, seed=0)
    assert peak < 2 * x_t.nbytes
    # only the true coordinate carries the sqrt(abar) shift: its mean over leaves is visible
    assert x_t[0, np.arange(4), x[0]].mean() > 0.5
    post, peak = _peak_bytes(leaf_posterior, x_t, 1.0)
    np.testing.assert_array_equal(post.argmax(-1), x_t.argmax(-1))
    assert post.sum() == 4 and peak < 2 * post.nbytes


def test_outputs_above_the_memory_budget_are_refused_at_once():
    x = np.zeros((1, 4), dtype=int)
    for v in (10**12, 2**70):  # 2**70 would overflow an int64 size computation
        for fn, args in (
            (eps_evidence, (x, 0.3, v)),
            (diffuse_onehot, (x, v, 0.5)),
            (diffusion_evidence, (x, v, 0.5)),
        ):
            with pytest.raises(InputError, match="above the memory budget"):
                fn(*args)
    with pytest.raises(InputError, match="above the memory budget of 1.00 KiB"):
        eps_evidence(np.zeros((10, 10), dtype=int), 0.1, 8, memory_budget="1KiB")
    with pytest.raises(InputError, match="above the memory budget"):
        effective_eps(8, 0.5, n_samples=10**12)


def test_effective_eps_refuses_no_samples():
    # n_samples = 0 used to return NaN (the mean of nothing)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="n_samples"):
            effective_eps(8, 0.5, n_samples=bad)
    with pytest.raises(InputError, match="0 <= alpha_bar <= 1"):
        effective_eps(8, np.array([0.5, 1.5]))
    with pytest.raises(InputError, match="finite"):
        effective_eps(8, np.nan)


@pytest.mark.parametrize("t", [True, False, np.bool_(True), 1.5, 3.0, np.array([1.0, 2.0]), "3"])
def test_chain_alpha_bar_refuses_booleans_and_non_integers(t):
    # chain_alpha_bar(True) used to return the whole chain (boolean mask indexing)
    with pytest.raises(InputError, match="integer chain index"):
        chain_alpha_bar(t)


def test_chain_alpha_bar_range_and_arrays():
    for t in (-1, 251, np.array([0, 251])):
        with pytest.raises(InputError, match=r"0 <= t <= num_steps = 250"):
            chain_alpha_bar(t)
    chain = np.concatenate([[1.0], respace(ddpm_alpha_bar(), 250)])
    np.testing.assert_array_equal(
        chain_alpha_bar(np.array([[0, 7], [250, 3]])), chain[[[0, 7], [250, 3]]]
    )
    assert chain_alpha_bar(np.int64(7)) == chain[7]
    with pytest.raises(InputError, match="num_steps"):
        chain_alpha_bar(1, num_steps=2000)


def test_leaf_posterior_refuses_nan_inf_complex_and_overflow():
    good = diffuse_onehot(np.array([[0, 1]]), 3, 0.5, seed=0)
    for value, match in ((np.nan, "finite"), (np.inf, "finite")):
        bad = good.copy()
        bad[0, 1, 2] = value
        with pytest.raises(InputError, match=match):
            leaf_posterior(bad, 0.5)
    with pytest.raises(InputError, match="complex"):
        leaf_posterior(good + 0j, 0.5)
    with pytest.raises(InputError, match="overflows"):
        leaf_posterior(good * 1e305, 0.9999)
    with pytest.raises(InputError, match=r"shape \(n, d, v\)"):
        leaf_posterior(good[0], 0.5)
    for alpha_bar in (np.nan, 1.5, -0.1, "0.5", 1j):
        with pytest.raises(InputError, match="alpha_bar"):
            leaf_posterior(good, alpha_bar)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, [1, 2]])
def test_every_seed_is_validated_with_its_name(seed):
    x = np.array([[0, 1]])
    for fn in (
        lambda: diffuse_onehot(x, 3, 0.5, seed=seed),
        lambda: diffusion_evidence(x, 3, 0.5, seed=seed),
        lambda: effective_eps(3, 0.5, n_samples=4, seed=seed),
    ):
        with pytest.raises(InputError, match=r"^seed"):
            fn()
    # a Generator is accepted where the API takes one, and used as is
    a = diffuse_onehot(x, 3, 0.5, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a, diffuse_onehot(x, 3, 0.5, seed=5))


def test_schedule_arguments_are_checked():
    for kwargs, match in (
        (dict(num_train_steps=0), "num_train_steps"),
        (dict(num_train_steps=10.0), "num_train_steps"),
        (dict(beta_start=0.0), "betas violate"),
        (dict(beta_end=np.nan), "beta_end"),
    ):
        with pytest.raises(InputError, match=match):
            ddpm_alpha_bar(**kwargs)
    with pytest.raises(InputError, match="num_steps"):
        respaced_timesteps(1000, 2.5)
    with pytest.raises(InputError, match="0 <= t"):
        continuous_alpha_bar(np.array([0.1, -1.0]))
    with pytest.raises(InputError, match="complex"):
        continuous_alpha_bar(1j)
    with pytest.raises(InputError, match=r"eps must be finite"):
        eps_evidence(np.array([[0, 1]]), np.nan, 3)
    with pytest.raises(InputError, match="integer symbols"):
        eps_evidence(np.array([[True, False]]), 0.1, 3)
