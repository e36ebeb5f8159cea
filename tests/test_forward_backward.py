"""Exact forward-backward under every noise process: against brute-force tree posteriors, the
masking invariant, independence at alpha = 0, and block-wise random streams."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import chi2, chi2_contingency

from hiergrammar import RHM, InputError, ZeroEvidenceError
from hiergrammar.bp import tree_bp
from hiergrammar.bruteforce import brute_force_marginals, enumerate_trees
from hiergrammar.noise import (
    DiscreteChain,
    EpsProcess,
    GaussianProcess,
    MaskingProcess,
    UniformProcess,
)
from hiergrammar.sampling import (
    FORWARD_BACKWARD_BLOCK,
    ForwardBackwardResult,
    exact_forward_backward,
)

V = 3


def direct_log_likelihood(process, obs, x0, t):
    """log P(obs | leaves x0) from the definition of each process, not from the classes.

    ``obs``: one observation (``(d,)`` ints or ``(d, v)`` floats); ``x0``: ``(T, d)`` candidate
    leaves. Returns ``(T,)``; constants common to all candidates may be dropped.
    """
    alpha = process.alpha(t)
    with np.errstate(divide="ignore"):
        if isinstance(process, MaskingProcess):
            masked = obs == process.v
            per_leaf = np.where(masked, 1 - alpha, alpha * (x0 == obs))
            return np.log(per_leaf).sum(axis=1)
        if isinstance(process, UniformProcess):
            return np.log(alpha * (x0 == obs) + (1 - alpha) / process.v).sum(axis=1)
        if isinstance(process, EpsProcess):
            eps = process.eps(t)
            return np.log(np.where(x0 == obs, 1 - eps, eps / (process.v - 1))).sum(axis=1)
    # Gaussian: x_t ~ N(sqrt(abar) e_{x0}, (1 - abar) I) per leaf.
    mean = np.sqrt(alpha) * (x0[..., None] == np.arange(process.v))  # (T, d, v)
    return -((obs[None] - mean) ** 2).sum(axis=(1, 2)) / (2 * (1 - alpha))


def tree_index(levels, trees):
    """Index in ``trees`` (enumerate_trees output) of each drawn tree."""
    keys = {tuple(k): i for i, k in enumerate(np.concatenate(trees, axis=1))}
    return np.array([keys[tuple(k)] for k in np.concatenate(levels, axis=1)])


def generalised_pearson_pvalue(drawn, posteriors):
    """Test that draw i came from the distribution posteriors[i] (rows over T outcomes).

    O - E, with O the outcome counts and E = sum_i p_i, has covariance
    sum_i (diag p_i - p_i p_i^T); (O - E)^T Cov^+ (O - E) is chi-square with rank(Cov) degrees
    of freedom for many independent draws.
    """
    T = posteriors.shape[1]
    observed = np.bincount(drawn, minlength=T).astype(float)
    expected = posteriors.sum(axis=0)
    cov = np.diag(expected) - posteriors.T @ posteriors
    diff = observed - expected
    rank = np.linalg.matrix_rank(cov, tol=1e-9)
    stat = diff @ np.linalg.pinv(cov, rcond=1e-9, hermitian=True) @ diff
    return chi2.sf(stat, rank)


@pytest.fixture(scope="module")
def tiny():
    rhm = RHM(v=V, n_classes=2, m=2, s=2, L=2, seed=0)
    return rhm, enumerate_trees(rhm)


PROCESSES = [
    (MaskingProcess(V), 0.5),
    (MaskingProcess(V, schedule="cosine"), 0.3),
    (UniformProcess(V), 0.6),
    (UniformProcess(V, schedule=DiscreteChain.from_schedule("linear", 100, 20)), 10),
    (EpsProcess(V), 0.4),
    (GaussianProcess(V), 0.3),
]


@pytest.mark.parametrize("process, t", PROCESSES, ids=lambda p: repr(p))
def test_samples_follow_the_brute_force_tree_posterior(tiny, process, t):
    """Each draw comes from P(tree | x_t) computed by enumerating all 16 trees with the process's
    likelihood written from its definition (generalised Pearson test, p > 1e-3)."""
    rhm, trees = tiny
    n = 3000
    x = np.repeat(rhm.sample(3, seed=1).x, n // 3, axis=0)
    result = exact_forward_backward(rhm, process, x, t, seed=5)
    assert isinstance(result, ForwardBackwardResult)
    log_w = np.stack(
        [direct_log_likelihood(process, obs, trees[0], t) for obs in result.observation]
    )
    posteriors = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))  # uniform tree prior
    drawn = tree_index(result.levels, trees)
    assert np.all(posteriors[np.arange(n), drawn] > 0)  # never an impossible tree
    assert generalised_pearson_pvalue(drawn, posteriors) > 1e-3


@pytest.mark.parametrize("process, t", PROCESSES, ids=lambda p: repr(p))
def test_bp_marginals_with_the_process_likelihood_match_brute_force(tiny, process, t):
    """Per-node posterior marginals: tree BP on leaf_likelihood vs enumeration on the direct
    likelihood, to 1e-10 (the likelihood is exact up to per-leaf constants)."""
    rhm, trees = tiny
    x = rhm.sample(6, seed=2).x
    obs = process.corrupt(x, t, seed=3)
    bp = tree_bp(rhm, process.leaf_likelihood(obs, t))
    for k in range(len(x)):
        log_w = direct_log_likelihood(process, obs[k], trees[0], t)
        w = np.exp(log_w - logsumexp(log_w))
        for level in range(rhm.L + 1):
            exact = np.zeros((rhm.width(level), rhm.card(level)))
            for i in range(rhm.width(level)):
                exact[i] = np.bincount(trees[level][:, i], weights=w, minlength=rhm.card(level))
            np.testing.assert_allclose(bp.marginals[level][k], exact, atol=1e-10)


def test_log_evidence_is_the_probability_of_the_observation(tiny):
    """With the exact masking likelihood, BP's log-evidence is log P(x_t) (brute force)."""
    rhm, _ = tiny
    proc = MaskingProcess(V)
    obs = proc.corrupt(rhm.sample(4, seed=0).x, 0.4, seed=0)
    ev = proc.leaf_likelihood(obs, 0.4)
    np.testing.assert_allclose(
        tree_bp(rhm, ev).log_evidence, brute_force_marginals(rhm, ev).log_evidence, atol=1e-10
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_masking_never_changes_kept_leaves(dtype):
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=4, seed=3)
    data = rhm.sample(600, seed=0)
    t = np.random.default_rng(0).random(600)  # one time per sample
    res = exact_forward_backward(rhm, MaskingProcess(8), data.x, t, seed=1, dtype=dtype)
    kept = res.observation != 8
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_array_equal(res.x[kept], data.x[kept])
    parsed = rhm.parse(res.x)
    assert parsed.valid.all()
    for level in range(rhm.L + 1):
        np.testing.assert_array_equal(parsed.levels[level], res.levels[level])


@pytest.mark.parametrize(
    "process, t",
    [(MaskingProcess(8), 1.0), (UniformProcess(8, schedule="cosine"), 1.0), (EpsProcess(8), 7 / 8)],
    ids=["masking", "uniform", "eps"],
)
def test_alpha_zero_forgets_the_input(process, t):
    """At alpha = 0 the output is independent of the input: chi-square tests of independence
    of (input class, output class) and of (input leaf 0, output leaf 0), p > 1e-3; the same
    tests reject at small t (p < 1e-6), so they have power."""
    assert process.alpha(t) == pytest.approx(0.0)
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=4)
    data = rhm.sample(4000, seed=0)

    def pvalues(time):
        res = exact_forward_backward(rhm, process, data.x, time, seed=2)
        out = []
        for before, after, k in ((data.y, res.y, 4), (data.x[:, 0], res.x[:, 0], 8)):
            table = np.zeros((k, k))
            np.add.at(table, (before, after), 1)
            out.append(chi2_contingency(table[table.sum(1) > 0][:, table.sum(0) > 0]).pvalue)
        return out

    assert min(pvalues(t)) > 1e-3
    assert max(pvalues(0.1)) < 1e-6


def test_blocks_have_their_own_streams():
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    x = rhm.sample(2 * FORWARD_BACKWARD_BLOCK + 10, seed=0).x
    proc = UniformProcess(8)
    whole = exact_forward_backward(rhm, proc, x, 0.5, seed=3)
    first = exact_forward_backward(rhm, proc, x[:FORWARD_BACKWARD_BLOCK], 0.5, seed=3)
    two = exact_forward_backward(rhm, proc, x[: 2 * FORWARD_BACKWARD_BLOCK], 0.5, seed=3)
    np.testing.assert_array_equal(whole.x[:FORWARD_BACKWARD_BLOCK], first.x)
    np.testing.assert_array_equal(whole.x[: 2 * FORWARD_BACKWARD_BLOCK], two.x)
    np.testing.assert_array_equal(whole.observation[:FORWARD_BACKWARD_BLOCK], first.observation)
    again = exact_forward_backward(rhm, proc, x, 0.5, seed=3)
    np.testing.assert_array_equal(again.x, whole.x)
    other = exact_forward_backward(rhm, proc, x, 0.5, seed=4)
    assert not np.array_equal(other.x, whole.x)


def test_zero_evidence_names_the_sample():
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    x = rhm.sample(FORWARD_BACKWARD_BLOCK + 20, seed=0).x
    bad = FORWARD_BACKWARD_BLOCK + 7
    while rhm.parse(x[bad : bad + 1]).valid[0]:
        x[bad, 0] = (x[bad, 0] + 1) % 8
    with pytest.raises(ZeroEvidenceError) as err:
        exact_forward_backward(rhm, MaskingProcess(8), x, 0.0)
    assert bad in err.value.samples


def test_gaussian_observation_and_empty_input():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    x = rhm.sample(5, seed=0).x
    res = exact_forward_backward(rhm, GaussianProcess(4, schedule="ddpm"), x, 100, seed=0)
    assert res.observation.shape == (5, 4, 4) and res.t == 100
    empty = exact_forward_backward(rhm, MaskingProcess(4), x[:0], 0.5)
    assert empty.x.shape == (0, 4) and empty.y.shape == (0,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(process=MaskingProcess(5)),
            r"process.v=5 violates process.v == grammar.cards\[0\] = 4",
        ),
        (dict(x=np.zeros((2, 3), int)), r"\(n, d\) = \(n, 4\)"),
        (dict(x=np.full((2, 4), 4)), r"\[0, v\) = \[0, 4\)"),
        (dict(t=1.5), r"0 <= t <= 1"),
        (dict(t=np.ones(3) / 2), r"shape \(n,\)"),
        (dict(seed=-2), r"seed >= 0"),
        (dict(process="masking"), r"must be a hiergrammar.processes.Process"),
        (dict(dtype=np.float16), r"float32 or np.float64"),
        (dict(memory_budget=100), r"memory budget"),
    ],
)
def test_validation(kwargs, match):
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    args = dict(grammar=rhm, process=MaskingProcess(4), x=np.zeros((2, 4), int), t=0.5)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        exact_forward_backward(**args)
