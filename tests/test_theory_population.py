"""Tests of population dynamics (hiergrammar.theory.population), its BP step
(hiergrammar.bp.factor_messages) and its validation script (theory/validate_population.py).

Independent evidence: the batched BP step against tree_bp on one-level RHMs (another engine,
exact to rounding); the rule tables' membership frequencies against the hypergeometric
probabilities of the symbolic derivation, and the ordered draw without replacement against a
chi-square test; the population means against exact BP averaged over many rule draws (exact
in law at L = 1, and at L = 3 up to the sharing of a level's rules, which the population
redraws per factor; tolerance: 4 combined standard errors, the population's from independent
replicas); closed-form limits (noiseless, uninformative); a local
Gaussian-diffusion process against exact BP under the same diffusion.
"""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from hiergrammar.theory import population, validate_population
from hiergrammar.theory.population import _distinct, draw_tables, profile
from hiergrammar.theory.validate_population import ks_distance
from scipy import stats

from hiergrammar import RHM
from hiergrammar.bp import factor_messages, tree_bp
from hiergrammar.experiments.beliefs import bp_profile, bp_profile_diffusion
from hiergrammar.noise import diffuse_onehot, leaf_posterior
from hiergrammar.validation import InputError

KINDS = ("u", "d", "p", "accuracy")


# -- the BP step ---------------------------------------------------------------------------------
@pytest.mark.parametrize("v,n_classes,m,s", [(5, 3, 2, 2), (4, 4, 3, 3), (3, 2, 2, 4)])
def test_factor_messages_equal_tree_bp_on_one_level(v, n_classes, m, s):
    """Factors with their own tables: each against tree_bp on an L = 1 RHM with that table."""
    rng = np.random.default_rng(v * 10 + s)
    n = 6
    rhms = [RHM(v, n_classes, m, s, 1, seed=int(i)) for i in rng.integers(1000, size=n)]
    tables = np.stack([r.rules[1] for r in rhms])  # (n, K, m, s)
    leaves = rng.dirichlet(np.ones(v), size=(n, s))
    prior = rng.dirichlet(np.ones(n_classes), size=n)
    up, down = factor_messages(tables, leaves, prior)
    for i, rhm in enumerate(rhms):
        exact = tree_bp(rhm, leaves[i : i + 1], root_prior=prior[i])
        np.testing.assert_allclose(up[i], exact.up[1][0, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(down[i], exact.down[0][0], rtol=1e-12, atol=1e-15)
    up_only, none = factor_messages(tables, leaves)
    assert none is None and np.array_equal(up_only, up)


def test_factor_messages_validation():
    tables = np.zeros((2, 3, 2, 2), dtype=np.int64)
    with pytest.raises(InputError, match="child_up must have shape"):
        factor_messages(tables, np.ones((2, 3, 4)))
    with pytest.raises(InputError, match="rules entries must lie in"):
        factor_messages(tables + 4, np.ones((2, 2, 4)))
    with pytest.raises(InputError, match="parent_down must have shape"):
        factor_messages(tables, np.ones((2, 2, 4)), np.ones((2, 2)))


# -- random local configurations ------------------------------------------------------------------
@pytest.mark.parametrize("population_size,k", [(5, 2), (6, 3), (200, 3)])
def test_distinct_is_a_uniform_ordered_draw(population_size, k):
    """Dense (Fisher-Yates) and sparse (rejection) paths: chi-square on the first two entries
    (every ordered pair of distinct values equally likely), no repeats in a row."""
    rng = np.random.default_rng(population_size)
    n = 60000 if population_size < 50 else 5000
    draws = _distinct(rng, n, k, population_size)
    assert draws.shape == (n, k)
    assert all(len(set(row)) == k for row in draws[:500].tolist())
    if population_size < 50:
        pairs = draws[:, 0] * population_size + draws[:, 1]
        counts = np.bincount(pairs, minlength=population_size**2).reshape(
            population_size, population_size
        )
        assert np.trace(counts) == 0
        observed = counts[~np.eye(population_size, dtype=bool)]
        assert stats.chisquare(observed).pvalue > 1e-3
    else:  # each value equally likely in each position
        for j in range(k):
            counts = np.bincount(draws[:, j], minlength=population_size)
            assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("v,K,m,s", [(4, 4, 2, 2), (16, 2, 3, 2)])  # dense and sparse paths
def test_tables_follow_the_rhm_draw_given_the_true_rule(v, K, m, s):
    """Canonical tables: (0, ..., 0) is parent 0's rule, all K m tuples distinct, and a fixed
    non-true tuple belongs to parent 0 / parent 1 with the hypergeometric probabilities of the
    RHM draw given the true rule (scipy's hypergeometric mean: m - 1, resp. m, draws of the
    v**s - 1 other tuples, one of them marked)."""
    n = 40000
    tables = draw_tables(n, K, m, s, v, seed=1)
    assert tables.shape == (n, K, m, s)
    assert np.all(tables[:, 0, 0] == 0)
    codes = (tables.astype(np.int64) @ (v ** np.arange(s - 1, -1, -1))).reshape(n, K * m)
    assert all(len(set(row)) == K * m for row in codes[:300].tolist())
    target = 1  # the tuple (0, ..., 0, 1)
    own_true = (codes[:, :m] == target).any(axis=1).mean()
    own_other = (codes[:, m : 2 * m] == target).any(axis=1).mean()
    p_true = stats.hypergeom(v**s - 1, 1, m - 1).mean()
    p_other = stats.hypergeom(v**s - 1, 1, m).mean()
    for freq, p in ((own_true, p_true), (own_other, p_other)):
        assert abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-12, (freq, p)


# -- population dynamics against exact BP ----------------------------------------------------------
def _assert_close_to_bp(pop, bp, factor=4.0):
    """|PD - BP| within ``factor`` combined standard errors; the population's is its replica
    spread, floored at twice the naive std / sqrt(n_pop) (few replicas give a rough spread)."""
    for kind in KINDS:
        pd_val = getattr(pop, kind)
        samples = {"u": pop.samples_u, "d": pop.samples_d, "p": pop.samples_p}.get(kind)
        naive = (
            samples.std(axis=-1) / np.sqrt(pop.n_pop)
            if samples is not None
            else np.sqrt(pd_val * (1 - pd_val) / pop.n_pop)
        )
        pd_se = np.maximum(getattr(pop, f"{kind}_se"), 2 * naive)
        tol = factor * np.sqrt(getattr(bp, f"{kind}_se") ** 2 + pd_se**2) + 1e-9
        dev = np.abs(pd_val - getattr(bp, kind))
        assert np.all(dev <= tol), (kind, dev.round(5), tol.round(5))


def test_population_matches_exact_bp_one_level():
    """At L = 1 there is one factor: population dynamics is exact in law."""
    eps = [0.2, 0.6]
    pop = profile(6, 4, 2, 2, 1, eps, n_pop=20000, seed=4)
    bp = bp_profile(6, 4, 2, 2, 1, eps, n_samples=12000, n_rules=200, seed=2)
    _assert_close_to_bp(pop, bp)


def test_population_matches_exact_bp_three_levels():
    """v = 8, L = 3, averaged over 100 rule draws: every kind, level and eps."""
    eps = [0.3, 0.6]
    pop = profile(8, 8, 2, 2, 3, eps, n_pop=20000, seed=5)
    bp = bp_profile(8, 8, 2, 2, 3, eps, n_samples=10000, n_rules=100, seed=3)
    _assert_close_to_bp(pop, bp)
    assert np.abs(pop.d - bp.d).max() < 0.01  # the goal, downward included


class _GaussianStandIn:
    """A minimal noise process (the interface of hiergrammar's processes): Gaussian diffusion
    of one-hot leaves with alpha_bar = exp(-2 t)."""

    def __init__(self, v: int):
        self.v = v

    def corrupt(self, x, t, seed=None):
        return diffuse_onehot(x, self.v, float(np.exp(-2 * t)), seed=seed)

    def leaf_likelihood(self, observation, t):
        return leaf_posterior(observation, float(np.exp(-2 * t)))


def test_population_with_a_process_matches_exact_bp_under_it():
    v, t = 6, np.array([0.4, 0.9])
    pop = profile(v, 4, 2, 2, 2, t, n_pop=20000, seed=6, process=_GaussianStandIn(v))
    bp = bp_profile_diffusion(v, 4, 2, 2, 2, np.exp(-2 * t), n_samples=12000, n_rules=120, seed=4)
    _assert_close_to_bp(pop, bp)
    assert pop.samples_u[0, 0].std() > 0.05  # the leaves really are random


# -- limits, determinism, histograms ------------------------------------------------------------
def test_noiseless_limit_is_certain():
    pop = profile(8, 4, 2, 2, 3, 0.0, n_pop=500, seed=0)
    for kind in ("u", "p", "accuracy"):
        np.testing.assert_array_equal(getattr(pop, kind), 1.0)
    assert pop.d[3] == pytest.approx(1 / 4) and np.all(pop.d[:3] < 1)
    assert np.all(pop.samples_p == 1.0)


def test_uninformative_noise_gives_flat_upward_beliefs():
    """At eps = 1 - 1/v every upward message is flat, so a marginal is the downward message
    (the grammar's prior on the node), and the class marginal is the flat prior."""
    v, n_classes = 8, 4
    pop = profile(v, n_classes, 2, 2, 3, 1 - 1 / v, n_pop=500, seed=0)
    cards = np.array([v, v, v, n_classes])
    np.testing.assert_allclose(pop.u, 1 / cards, rtol=1e-12)
    np.testing.assert_allclose(pop.samples_u, np.broadcast_to((1 / cards)[:, None], (4, 500)), 1e-6)
    np.testing.assert_allclose(pop.samples_p, pop.samples_d, rtol=1e-6)
    assert pop.p[3] == pytest.approx(1 / n_classes) and pop.accuracy[3] == pytest.approx(0.25)


def test_same_seed_same_result_and_curves_share_draws():
    a = profile(8, 8, 2, 2, 3, [0.3, 0.5], n_pop=400, seed=11)
    b = profile(8, 8, 2, 2, 3, [0.3, 0.5], n_pop=400, seed=11)
    c = profile(8, 8, 2, 2, 3, [0.3, 0.5], n_pop=400, seed=12)
    for kind in ("u", "d", "p", "accuracy", "samples_p", "hist_d"):
        np.testing.assert_array_equal(getattr(a, kind), getattr(b, kind))
    assert not np.array_equal(a.samples_p, c.samples_p)
    # Every eps uses the same draws: the scalar run equals the matching row.
    single = profile(8, 8, 2, 2, 3, 0.5, n_pop=400, seed=11)
    np.testing.assert_array_equal(single.samples_u, a.samples_u[1])
    gen = profile(8, 8, 2, 2, 3, 0.5, n_pop=400, seed=np.random.default_rng(3))
    assert gen.u.shape == (4,)


def test_replica_standard_errors_measure_the_spread_of_independent_runs():
    """The replica standard error against the spread of 12 independent runs: the variance
    ratio is F(11, 36)-distributed, inside [0.2, 5] with probability > 0.999 per level."""
    runs = [profile(16, 16, 3, 2, 4, 0.6, n_pop=2000, seed=40 + i) for i in range(12)]
    spread = np.std([r.u for r in runs], axis=0, ddof=1)[1:]
    claimed = np.sqrt(np.mean([r.u_se**2 for r in runs], axis=0))[1:]
    ratio = (spread / claimed) ** 2
    assert np.all((ratio > 0.2) & (ratio < 5)), ratio
    one = profile(16, 16, 3, 2, 4, 0.6, n_pop=2000, seed=1, n_replicas=1)
    assert one.n_replicas == 1 and np.all(one.u_se[1:] > 0)


def test_histograms_are_densities_of_the_samples():
    pop = profile(8, 8, 2, 2, 3, [0.4, 0.7], n_pop=1000, seed=2, n_bins=20)
    widths = np.diff(pop.bin_edges)
    for kind in "udp":
        hist, samples = getattr(pop, f"hist_{kind}"), getattr(pop, f"samples_{kind}")
        assert hist.shape == (2, 4, 20) and samples.shape == (2, 4, 1000)
        np.testing.assert_allclose((hist * widths).sum(-1), 1.0)
        expected = np.histogram(samples[1, 2], bins=pop.bin_edges, density=True)[0]
        np.testing.assert_allclose(hist[1, 2], expected)
        np.testing.assert_allclose(getattr(pop, kind), samples.mean(-1), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=1.5), "eps=1.5 violates"),
        (dict(eps=[[0.1]]), "eps must be a scalar or a 1-d array"),
        (dict(eps=0.1, n_pop=0), "n_pop=0 violates"),
        (dict(eps=0.1, seed=-1), "seed=-1"),
        (dict(eps=0.1, process=object()), "process must have v"),
        (dict(eps=0.1, process=_GaussianStandIn(5)), "process.v = 5 must equal v = 8"),
        (dict(eps=-0.1, process=_GaussianStandIn(8)), "violates"),
        (dict(eps=0.1, n_pop=10**9), "memory budget"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        profile(8, 8, 2, 2, 3, **kwargs)
    with pytest.raises(ValueError, match="m=3 violates"):
        profile(2, 2, 3, 2, 3, 0.1)


def test_impossible_evidence_raises_instead_of_nan():
    """eps = 1 says every leaf is certainly not its true symbol: some members then carry no
    consistent tree, which is reported (a ZeroEvidenceError is an InputError), never NaN."""
    from hiergrammar.validation import ZeroEvidenceError

    with pytest.raises(ZeroEvidenceError, match="zero probability"):
        profile(4, 2, 1, 2, 3, 1.0, n_pop=200)


def test_to_dict_is_json_ready():
    pop = profile(8, 8, 2, 2, 2, [0.2, 0.6], n_pop=400, seed=1, n_bins=10)
    data = json.loads(json.dumps(pop.to_dict()))
    assert np.allclose(data["p"], pop.p) and np.allclose(data["hist_d"], pop.hist_d)
    assert "samples_u" not in data
    assert np.allclose(pop.to_dict(samples=True)["samples_u"], pop.samples_u)


# -- the validation script ------------------------------------------------------------------------
def test_ks_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.3, 1, size=500)
    assert ks_distance(a, b, resolution=0) == pytest.approx(stats.ks_2samp(a, b).statistic)
    # One atom computed in two precisions is one atom.
    assert ks_distance(np.full(5, 0.7), np.full(3, np.float32(0.7))) == 0.0


def test_validation_script_writes_the_comparison(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    result = validate_population.run_validation(
        v=8,
        n_classes=8,
        m=2,
        depths=(2,),
        eps=(0.3, 0.6),
        n_pop=3000,
        n_samples=600,
        n_rules=6,
        ks_samples=60,
        ks_rules=2,
    )
    res = result["depths"]["2"]
    for kind in KINDS:
        assert np.shape(res[f"{kind}_pd"]) == (2, 3)
        assert res["pd_vs_bp"][kind]["max"] < 0.05
    assert np.all(np.asarray(res["ks_p"]) <= 1) and result["summary"]["pd_max_d"] < 0.05
    rechecked = validate_population.recheck_worst(
        result, per_kind=1, n_rules=6, samples_per_rule=50, pop_factor=1, min_dev=0.0
    )
    assert [r["kind"] for r in rechecked] == list(KINDS)
    for r in rechecked:
        i, level = [0.3, 0.6].index(r["eps"]), r["level"]
        pd_grid = np.asarray(res[f"{r['kind']}_pd"])[i, level]
        bp_grid = np.asarray(res[f"{r['kind']}_bp"])[i, level]
        assert r["grid_dev"] == pytest.approx(abs(pd_grid - bp_grid))
        assert r["se"] >= 0 and abs(r["dev"]) < 0.05
    out = tmp_path / "v.json"
    monkeypatch.setattr(
        validate_population,
        "run_validation",
        lambda seed, **kw: result,  # the run above; main only adds the writing
    )
    assert validate_population.main(["--quick", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["params"]["v"] == 8


def test_docstring_examples_run():
    import hiergrammar.bp

    for module in (population, validate_population, hiergrammar.bp):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_stored_validation_is_what_the_code_computes():
    """The stored comparison (theory/data/validate_population.json): its population numbers
    at L = 3 and the first eps are recomputed here (every eps shares the draws, so one eps is
    the matching row), and its mean-field numbers too; its summary is what its arrays say."""
    from hiergrammar.theory import meanfield

    stored = validate_population.load_stored()
    params, res = stored["params"], stored["depths"]["3"]
    pop = profile(
        params["v"],
        params["n_classes"],
        params["m"],
        params["s"],
        3,
        params["eps"][0],
        n_pop=params["n_pop"],
        seed=params["seed"] + 3,
    )
    for kind in KINDS:
        np.testing.assert_allclose(np.asarray(res[f"{kind}_pd"])[0], getattr(pop, kind), 1e-12)
    mf = meanfield.profile(
        params["v"], params["n_classes"], params["m"], params["s"], 3, params["eps"][0]
    )
    np.testing.assert_allclose(np.asarray(res["d_mf"])[0], mf.d, rtol=1e-12)
    for kind in KINDS:
        worst = max(
            np.abs(np.asarray(r[f"{kind}_pd"]) - np.asarray(r[f"{kind}_bp"])).max()
            for r in stored["depths"].values()
        )
        assert stored["summary"][f"pd_max_{kind}"] == pytest.approx(worst)
