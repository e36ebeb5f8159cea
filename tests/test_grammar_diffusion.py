"""Families, denoisers and reverse process of ``hiergrammar.vision.grammar_diffusion``.

Independent evidence used: enumeration of every tree of a tiny grammar (exact posteriors of the
leaves and of whole strings, with the grammar's own ``tree_log_prob``), torch's
``conv_transpose1d``, base-``s`` arithmetic for receptive fields, the exact identity "masked
ELBO of the exact posterior = -log P(x_0)", chi-square tests of sampled strings against the
enumerated posterior, and diffusers' own ``DDPMScheduler`` alphas.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser, LearnedDenoiser
from hiergrammar.vision.grammar_diffusion.diffusions import (
    GaussianDiffusion,
    MaskedDiffusion,
    UniformDiffusion,
    make_diffusion,
)
from hiergrammar.vision.grammar_diffusion.measure import denoising_losses, generation_stats
from hiergrammar.vision.grammar_diffusion.models import (
    GrammarTransformer,
    TreeConvTranspose1d,
    TreeUNet,
    build_network,
)
from hiergrammar.vision.grammar_diffusion.objectives import (
    alpha_derivative,
    masked_elbo_weight,
)
from hiergrammar.vision.grammar_diffusion.sampler import generate, inverse_alpha, reverse_process
from scipy import stats

from hiergrammar import RHM, InputError
from hiergrammar.bruteforce import enumerate_trees
from hiergrammar.schedules import make_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


def _families(v: int) -> list:
    return [MaskedDiffusion(v), UniformDiffusion(v), GaussianDiffusion(v, num_train_steps=40)]


def _string_posterior(grammar, likelihood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every string of the grammar and ``P(x_0 = string | x_t)`` for one observation, by
    enumerating trees. ``likelihood``: ``(d, v)``."""
    levels = enumerate_trees(grammar)
    weight = np.exp(grammar.tree_log_prob(levels))
    weight = weight * np.prod(likelihood[np.arange(grammar.d), levels[0]], axis=1)
    strings, inverse = np.unique(levels[0], axis=0, return_inverse=True)
    posterior = np.bincount(inverse.ravel(), weights=weight, minlength=len(strings))
    return strings, posterior / posterior.sum()


def _leaf_posterior(grammar, likelihood: np.ndarray) -> np.ndarray:
    """``(d, v)`` brute-force leaf marginals of one observation."""
    strings, posterior = _string_posterior(grammar, likelihood)
    out = np.zeros((grammar.d, grammar.v))
    for i in range(grammar.d):
        np.add.at(out[i], strings[:, i], posterior)
    return out


# -- models ----------------------------------------------------------------------------------
def test_tree_conv_transpose_is_conv_transpose1d():
    layer = TreeConvTranspose1d(3, 5, s=3)
    x = torch.randn(4, 3, 7, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.conv_transpose1d(x, layer.weight, layer.bias, stride=3)
    torch.testing.assert_close(layer(x), expected)


def test_unet_contracting_path_sees_exactly_the_subtree():
    """Unit p of level l of the down path depends on leaves p*s**l .. (p+1)*s**l - 1 only."""
    s, L = 2, 4
    net = TreeUNet(v=5, s=s, L=L, input_kind="tokens", width=8, seed=1).eval()
    recorded = {}
    hooks = [
        net.down_mlp[level - 1].register_forward_hook(
            lambda _m, _i, out, level=level: recorded.__setitem__(level, out.detach())
        )
        for level in range(1, L + 1)
    ]
    x = torch.randint(5, (1, s**L), generator=torch.Generator().manual_seed(0))
    net(x, torch.tensor([0.3]))
    before = dict(recorded)
    leaf = 5
    x2 = x.clone()
    x2[0, leaf] = (x2[0, leaf] + 1) % 5
    net(x2, torch.tensor([0.3]))
    for level in range(1, L + 1):
        changed = (recorded[level] != before[level]).any(dim=1)[0]  # (width_l,)
        expected = torch.zeros_like(changed)
        expected[leaf // s**level] = True
        assert torch.equal(changed, expected), level
    for hook in hooks:
        hook.remove()
    # ... while every output leaf depends on every input leaf (the root joins them)
    out = net(x, torch.tensor([0.3]))
    out2 = net(x2, torch.tensor([0.3]))
    assert (out != out2).any(dim=-1).all()


@pytest.mark.parametrize("architecture", ["grammar_transformer", "tree_unet"])
@pytest.mark.parametrize("input_kind", ["masked", "tokens", "vectors"])
def test_networks_give_per_leaf_logits_for_every_input(architecture, input_kind):
    net = build_network(architecture, v=4, s=2, L=3, input_kind=input_kind, width=8, seed=0)
    if input_kind == "vectors":
        x = torch.randn(3, 8, 4)
    else:
        x = torch.randint(5 if input_kind == "masked" else 4, (3, 8))
    assert net(x, torch.tensor([0.0, 0.5, 1.0])).shape == (3, 8, 4)
    again = build_network(architecture, v=4, s=2, L=3, input_kind=input_kind, width=8, seed=0)
    torch.testing.assert_close(again(x, torch.tensor(0.5)), net(x, torch.tensor(0.5)))
    with pytest.raises(InputError, match="x must have shape"):
        net(x[:, :5], torch.tensor(0.5))


def test_network_seed_does_not_touch_the_global_stream():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    GrammarTransformer(v=3, d=4, width=8, depth=1, heads=2, seed=5)
    TreeUNet(v=3, s=2, L=2, width=8, seed=5)
    torch.testing.assert_close(torch.rand(3), expected)


def test_bad_network_arguments_are_refused():
    with pytest.raises(InputError, match="input_kind"):
        TreeUNet(v=3, s=2, L=2, input_kind="pixels")
    with pytest.raises(InputError, match="multiple of heads"):
        GrammarTransformer(v=3, d=4, width=10, heads=4)
    with pytest.raises(InputError, match="architecture"):
        build_network("mlp", v=3, s=2, L=2, input_kind="masked")


# -- families and objectives -----------------------------------------------------------------
def test_family_configs_rebuild_the_family():
    for fam in [*_families(6), MaskedDiffusion(6, schedule="cosine")]:
        assert make_diffusion(**fam.config).config == fam.config
    with pytest.raises(InputError, match="continuous schedule"):
        MaskedDiffusion(6, schedule="ddpm")
    with pytest.raises(InputError, match="family"):
        make_diffusion("absorbing", v=4)


def test_gaussian_family_is_diffusers_ddpm_chain():
    fam = GaussianDiffusion(v=5, num_train_steps=300, beta_start=2e-4, beta_end=0.03)
    sched = fam.scheduler()
    np.testing.assert_allclose(
        sched.alphas_cumprod.double().numpy(), fam.process.alpha(np.arange(1, 301)), rtol=2e-5
    )
    assert sched.config.prediction_type == "sample"


@pytest.mark.parametrize("schedule", ["linear", "cosine", "loglinear"])
def test_alpha_derivative_and_inverse(schedule):
    sched = make_schedule(schedule)
    t = np.linspace(0.05, 0.95, 7)
    h = 1e-6
    numeric = (np.asarray(sched.alpha(t + h)) - np.asarray(sched.alpha(t - h))) / (2 * h)
    np.testing.assert_allclose(alpha_derivative(sched, t), numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(inverse_alpha(sched, np.asarray(sched.alpha(t))), t, atol=1e-9)


def test_masked_elbo_of_the_exact_denoiser_is_minus_log_likelihood():
    """For absorbing diffusion the ELBO is tight at the true posterior: the weighted
    cross-entropy of the exact denoiser, averaged over t, equals -log P(x_0)."""
    rhm = RHM(v=6, n_classes=3, m=2, s=2, L=2, seed=4)
    fam = MaskedDiffusion(6, schedule="cosine")
    exact = ExactDenoiser(rhm, fam)
    data = rhm.sample(3, seed=0)
    n = 6000
    rng = np.random.default_rng(1)
    for x in data.x:
        x0 = np.repeat(x[None], n, axis=0)
        t = fam.training_times(n, rng)
        obs = fam.corrupt(x0, t, rng)
        x_t = fam.network_input(obs)
        log_p = torch.log_softmax(exact(x_t, torch.as_tensor(t)).double(), -1)
        nll = -log_p.gather(-1, torch.as_tensor(x0)[..., None])[..., 0]
        nll = torch.where(x_t == fam.mask, nll, torch.zeros_like(nll)).sum(1).numpy()
        per_t = masked_elbo_weight(fam.process.schedule, t) * nll
        truth = -rhm.parse(x[None]).log_prob[0]  # an RHM's strings have one tree each
        estimate, se = per_t.mean(), per_t.std(ddof=1) / np.sqrt(n)
        assert abs(estimate - truth) < 4 * se + 1e-3, (estimate, se, truth)


# -- the exact denoiser ----------------------------------------------------------------------
@pytest.mark.parametrize("family", ["masked", "uniform", "gaussian"])
def test_exact_denoiser_is_the_brute_force_posterior(family):
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=2)
    fam = {f.name: f for f in _families(4)}[family]
    exact = ExactDenoiser(rhm, fam)
    rng = np.random.default_rng(3)
    x0 = rhm.sample(5, seed=1).x
    t = (
        np.array([0.3, 0.5, 0.7, 0.9, 0.2])
        if family != "gaussian"
        else np.array([5, 10, 20, 30, 40])
    )
    obs = fam.corrupt(x0, t, rng)
    p = exact(fam.network_input(obs), torch.as_tensor(t, dtype=torch.float64)).softmax(-1)
    likelihood = fam.process.leaf_likelihood(obs, t)
    for k in range(len(x0)):
        np.testing.assert_allclose(
            p[k].double().numpy(), _leaf_posterior(rhm, likelihood[k]), atol=1e-6
        )


def test_exact_denoiser_weighted_grammar_and_torch_backend():
    """Unequal rule probabilities: the kernels' BP against enumeration; numpy is refused."""
    rhm = RHM(v=4, n_classes=2, m=3, s=2, L=2, seed=5, rule_law="zipf", zipf_a=1.5)
    fam = MaskedDiffusion(4)
    with pytest.raises(InputError, match="equally likely rules"):
        ExactDenoiser(rhm, fam, backend="numpy")
    exact = ExactDenoiser(rhm, fam, backend="torch", device="cpu")
    x0 = rhm.sample(4, seed=0).x
    t = np.full(4, 0.6)
    obs = fam.corrupt(x0, t, np.random.default_rng(0))
    p = exact(fam.network_input(obs), torch.as_tensor(t)).softmax(-1)
    likelihood = fam.process.leaf_likelihood(obs, t)
    for k in range(4):
        np.testing.assert_allclose(
            p[k].double().numpy(), _leaf_posterior(rhm, likelihood[k]), atol=1e-6
        )
    uniform = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=5)
    a = ExactDenoiser(uniform, fam, backend="numpy")
    b = ExactDenoiser(uniform, fam, backend="torch")
    x_t = fam.network_input(fam.corrupt(uniform.sample(6, seed=1).x, 0.5, np.random.default_rng(1)))
    torch.testing.assert_close(a(x_t, torch.tensor(0.5)), b(x_t, torch.tensor(0.5)))


def test_exact_denoiser_answers_impossible_observations_with_the_likelihood():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    fam = MaskedDiffusion(4)
    strings = {tuple(x) for x in enumerate_trees(rhm)[0]}
    impossible = next(
        (a, b)
        for a in range(4)
        for b in range(4)
        if not any(x[0] == a and x[1] == b for x in strings)
    )
    x_t = torch.tensor([[impossible[0], impossible[1], 4, 4], [4, 4, 4, 4]])
    exact = ExactDenoiser(rhm, fam)
    p = exact(x_t, torch.tensor(0.5)).softmax(-1)
    torch.testing.assert_close(p[0, 2], torch.full((4,), 0.25))
    assert exact.impossible == 1
    assert p[0, 0, impossible[0]] == 1 and torch.isfinite(p).all()
    strict = ExactDenoiser(rhm, fam, strict=True)
    with pytest.raises(InputError, match=r"sample\(s\) \[0\]"):
        strict(x_t, torch.tensor(0.5))


def test_exact_denoiser_checks_its_arguments():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    with pytest.raises(InputError, match="diffusion.v=5"):
        ExactDenoiser(rhm, MaskedDiffusion(5))
    with pytest.raises(InputError, match="backend"):
        ExactDenoiser(rhm, MaskedDiffusion(4), backend="jax")


def test_learned_denoiser_copies_kept_leaves():
    fam = MaskedDiffusion(4)
    net = TreeUNet(v=4, s=2, L=2, input_kind="masked", width=8, seed=0)
    den = LearnedDenoiser(net, fam)
    x_t = torch.tensor([[4, 1, 4, 3], [4, 4, 4, 4]])
    p = den(x_t, torch.tensor([0.5, 1.0])).softmax(-1)
    assert p[0, 1, 1] == 1 and p[0, 3, 3] == 1
    raw = net(x_t, torch.tensor([0.5, 1.0])).softmax(-1)
    torch.testing.assert_close(p[1], raw[1].detach())
    with pytest.raises(InputError, match="reads 'masked' inputs"):
        LearnedDenoiser(net, UniformDiffusion(4))


# -- the reverse process ---------------------------------------------------------------------
def _chi_square_p(strings: np.ndarray, draws: np.ndarray, posterior: np.ndarray) -> float:
    codes = {tuple(s): k for k, s in enumerate(strings)}
    index = np.array([codes.get(tuple(x), -1) for x in draws])
    assert (index >= 0).all(), "a draw is not a string of the grammar"
    observed = np.bincount(index, minlength=len(strings))
    keep = posterior > 0
    return float(stats.chisquare(observed[keep], posterior[keep] * len(draws)).pvalue)


def test_masked_reverse_with_the_exact_denoiser_samples_the_exact_posterior():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=2)
    fam = MaskedDiffusion(4)
    exact = ExactDenoiser(rhm, fam)
    x0 = rhm.sample(1, seed=3).x
    obs = np.where(np.array([[True, False, True, True]]), fam.mask, x0)
    n = 3000
    draws = reverse_process(exact, np.repeat(obs, n, axis=0), 0.6, seed=4)
    strings, posterior = _string_posterior(rhm, fam.process.leaf_likelihood(obs, 0.6)[0])
    assert _chi_square_p(strings, draws, posterior) > 1e-3
    assert (draws[:, 1] == x0[0, 1]).all()  # kept leaves stay


def test_uniform_reverse_with_the_exact_denoiser_approaches_the_exact_posterior():
    """Factorised ancestral steps are exact only as the steps shrink: with 200 steps the
    distribution of reversed strings is within 0.04 total variation of the exact posterior (the
    sampling noise of 3000 draws over the few strings is about 0.02)."""
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=2)
    fam = UniformDiffusion(4)
    exact = ExactDenoiser(rhm, fam)
    x0 = rhm.sample(1, seed=3).x
    obs = fam.corrupt(x0, 0.5, np.random.default_rng(0))
    n = 3000
    draws = reverse_process(exact, np.repeat(obs, n, axis=0), 0.5, steps=200, seed=5)
    strings, posterior = _string_posterior(rhm, fam.process.leaf_likelihood(obs, 0.5)[0])
    codes = {tuple(s): k for k, s in enumerate(strings)}
    index = np.array([codes.get(tuple(x), len(strings)) for x in draws])
    freq = np.bincount(index, minlength=len(strings) + 1) / n
    tv = 0.5 * (np.abs(freq[:-1] - posterior).sum() + freq[-1])
    assert tv < 0.04, tv


def test_gaussian_reverse_with_the_exact_denoiser_stays_in_the_language():
    rhm = RHM(v=6, n_classes=3, m=2, s=2, L=2, seed=1)
    fam = GaussianDiffusion(6, num_train_steps=60)
    exact = ExactDenoiser(rhm, fam)
    generated = generate(exact, 300, seed=2)
    assert rhm.parse(generated).valid.mean() > 0.97
    x0 = rhm.sample(300, seed=3).x
    obs = fam.corrupt(x0, 5, np.random.default_rng(4))  # abar(5) ~ 0.99: nearly clean
    back = reverse_process(exact, obs, 5, seed=5)
    assert (back == x0).mean() > 0.98


def test_same_seed_same_strings_and_learned_runs_the_same_steps():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    for fam in _families(4):
        net = build_network("tree_unet", v=4, s=2, L=2, input_kind=fam.input_kind, width=8)
        den = LearnedDenoiser(net, fam)
        a = generate(den, 20, seed=7, steps=10)
        b = generate(den, 20, seed=7, steps=10)
        assert np.array_equal(a, b) and a.shape == (20, 4) and a.min() >= 0 and a.max() < 4
        exact = generate(ExactDenoiser(rhm, fam), 20, seed=7, steps=10)
        assert exact.shape == (20, 4)


def test_masked_grid_sampler_reveals_everything():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=0)
    fam = MaskedDiffusion(4)
    out = generate(ExactDenoiser(rhm, fam), 50, seed=1, steps=500)
    assert (out < 4).all() and rhm.parse(out).valid.mean() > 0.9


def test_reverse_process_checks_its_arguments():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    exact = ExactDenoiser(rhm, MaskedDiffusion(4))
    with pytest.raises(InputError, match="t=1.5 violates"):
        reverse_process(exact, np.zeros((1, 4), dtype=int), 1.5)
    with pytest.raises(InputError, match="observation"):
        reverse_process(exact, np.full((1, 4), 7), 0.5)
    gauss = ExactDenoiser(rhm, GaussianDiffusion(4, num_train_steps=10))
    with pytest.raises(InputError, match="steps"):
        reverse_process(gauss, np.zeros((1, 4, 4)), 3, steps=0)
    with pytest.raises(InputError, match="t=0.0 violates 1 <= t"):
        reverse_process(gauss, np.zeros((1, 4, 4)), 0)


# -- measurements ----------------------------------------------------------------------------
def test_losses_gap_and_generation_stats():
    rhm = RHM(v=6, n_classes=3, m=2, s=2, L=2, seed=0)
    fam = MaskedDiffusion(6)
    exact = ExactDenoiser(rhm, fam)
    untrained = LearnedDenoiser(TreeUNet(6, 2, 2, "masked", width=8, seed=0), fam)
    held = rhm.sample(400, seed=1).x
    res = denoising_losses({"exact": exact, "net": untrained}, held, [0.3, 1.0], seed=2)
    assert (res.gap["net"] > 5 * res.gap_se["net"]).all()  # an untrained net is far worse
    np.testing.assert_allclose(res.counted_fraction, [0.3, 1.0], atol=0.03)
    # at t = 1 nothing is seen: the exact loss is the mean entropy of each leaf's marginal
    sample = rhm.sample(40000, seed=3).x
    marginal = np.stack([np.bincount(sample[:, i], minlength=6) for i in range(4)]) / len(sample)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(marginal * np.log(marginal), axis=1).mean()
    assert abs(res.loss["exact"][1] - entropy) < 4 * res.loss_se["exact"][1] + 0.01
    train = rhm.sample(30, seed=4).x
    stats_ = generation_stats(rhm, np.concatenate([train[:10], held[:10]]), train)
    assert stats_.valid == 1.0 and stats_.copied >= 0.5
