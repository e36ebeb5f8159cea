"""The numba and torch kernels against independent evidence.

* On the RHM: the numpy reference :func:`hiergrammar.bp.tree_bp` (messages, marginals,
  log-evidence) to 1e-12 in float64 and 1e-5 in float32.
* On weighted, ambiguous and per-level-cardinality grammars (which the reference does not take
  yet): brute-force enumeration, written here, of every derivation of a tiny tree.
* Posterior sampling: a chi-square test of the draws against the enumerated tree posterior, and
  exact agreement of the two backends' draws from one seed.
"""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from hiergrammar import RHM, InputError, ZeroEvidenceError, kernels
from hiergrammar import bp as reference
from hiergrammar.kernels import layout, numba_bp
from hiergrammar.noise import eps_evidence

torch = pytest.importorskip("torch")
from hiergrammar.kernels import torch_bp  # noqa: E402 - after the torch check

BACKENDS = ["numba", "torch"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Tiny torch workloads run on one thread (see conftest)."""


def entry(backend, name):
    return kernels.entry(backend, name)


def as_numpy(x):
    if x is None:
        return None
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def cards_of(rhm):
    return [rhm.card(level) for level in range(rhm.L + 1)]


# -- brute force ----------------------------------------------------------------------------------
def enumerate_trees(rules, probs, cards, leaf_ev, prior, node_ev=None):
    """Every derivation of the tree: root value, then one rule per internal node.

    Returns the marginals per level ``(width_l, card_l)``, ``log sum P(derivation) *
    evidence`` and the posterior of each tree (tuple of all level values; derivations that
    write the same values add up)."""
    L = len(cards) - 1
    s = rules[1].shape[2]
    widths = [s ** (L - level) for level in range(L + 1)]
    internal = [(level, i) for level in range(L, 0, -1) for i in range(widths[level])]
    marg = [np.zeros((widths[level], cards[level])) for level in range(L + 1)]
    trees: dict[tuple, float] = {}
    total = 0.0
    choices = [range(rules[level].shape[1]) for level, _ in internal]
    for c in range(cards[L]):
        for choice in itertools.product(*choices):
            pick = dict(zip(internal, choice, strict=True))
            values = {L: [c]}
            weight = prior[c]
            for level in range(L, 0, -1):
                children = []
                for i, a in enumerate(values[level]):
                    j = pick[(level, i)]
                    weight *= probs[level][a, j]
                    children.extend(int(x) for x in rules[level][a, j])
                values[level - 1] = children
            weight *= np.prod([leaf_ev[i, x] for i, x in enumerate(values[0])])
            for level, ev in (node_ev or {}).items():
                weight *= np.prod([ev[i, x] for i, x in enumerate(values[level])])
            if weight == 0:
                continue
            total += weight
            for level in range(L + 1):
                marg[level][np.arange(widths[level]), values[level]] += weight
            key = tuple(tuple(values[level]) for level in range(L + 1))
            trees[key] = trees.get(key, 0.0) + weight
    return (
        [m / total for m in marg],
        math.log(total),
        {key: w / total for key, w in trees.items()},
    )


def random_grammar(rng, cards, ms, s):
    """Random weighted rules: tuples drawn with repetition, so tuples are shared by several
    parents (and may repeat under one parent): an ambiguous grammar."""
    rules, probs = {}, {}
    for level in range(1, len(cards)):
        K, m = cards[level], ms[level - 1]
        rules[level] = rng.integers(0, cards[level - 1], size=(K, m, s))
        probs[level] = rng.dirichlet(np.ones(m), size=K)
    return rules, probs


GRAMMARS = [  # (cards of levels 0..L, rules per symbol of levels 1..L, s)
    ((3, 2, 2), (3, 2), 2),
    ((2, 3, 2), (2, 3), 3),
    ((3, 4, 2, 3), (2, 2, 2), 2),
    ((4, 1), (5,), 2),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(len(GRAMMARS)))
def test_weighted_ambiguous_grammars_match_enumeration(backend, case):
    cards, ms, s = GRAMMARS[case]
    rng = np.random.default_rng(case)
    rules, probs = random_grammar(rng, cards, ms, s)
    L = len(cards) - 1
    d = s**L
    n = 3
    leaf_ev = rng.random((n, d, cards[0])) + 0.05
    prior = rng.random((n, cards[L])) + 0.1
    node_level = 1 if L > 1 else 0
    node_ev = {node_level: rng.random((n, s ** (L - node_level), cards[node_level])) + 0.2}
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        res = entry(backend, "tree_bp")(
            rules, probs, cards, leaf_ev, prior, node_ev, dtype, device="cpu"
        )
        up = entry(backend, "upward_pass")(rules, probs, cards, leaf_ev, prior, node_ev, dtype)
        for k in range(n):
            marg, log_z, _ = enumerate_trees(
                rules,
                probs,
                cards,
                leaf_ev[k],
                prior[k] / prior[k].sum(),
                {node_level: node_ev[node_level][k]},
            )
            for level in range(L + 1):
                np.testing.assert_allclose(as_numpy(res.marginals[level])[k], marg[level], atol=tol)
            assert as_numpy(res.log_evidence)[k] == pytest.approx(log_z, rel=tol, abs=tol)
            assert as_numpy(up.log_evidence)[k] == pytest.approx(log_z, rel=tol, abs=tol)
            np.testing.assert_allclose(as_numpy(up.root_marginal)[k, 0], marg[L][0], atol=tol)


RHMS = [
    dict(v=8, n_classes=4, m=3, s=2, L=4),
    dict(v=5, n_classes=3, m=2, s=3, L=3),
    dict(v=32, n_classes=32, m=8, s=2, L=3),
]


def _close(actual, expected, tol):
    np.testing.assert_allclose(as_numpy(actual), expected, atol=tol, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("params", RHMS, ids=lambda p: "s{s}L{L}v{v}".format(**p))
def test_rhm_matches_numpy_reference(backend, params):
    rhm = RHM(**params, seed=3)
    rng = np.random.default_rng(1)
    n = 40  # more than one block of lanes, and a partial block
    x = rhm.sample(n, seed=2).x
    ev = eps_evidence(x, 0.5, rhm.v) * (rng.random((n, rhm.d, rhm.v)) + 0.5)
    prior = rng.random((n, rhm.n_classes)) + 0.1
    node_ev = {1: rng.random((n, rhm.width(1), rhm.v)) + 0.5}
    ref = reference.tree_bp(rhm, ev, prior, node_ev)
    ref_up = reference.upward_pass(rhm, ev, prior, node_ev)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        evidence = ev.astype(dtype)  # float32 evidence also takes the float32 input path
        res = entry(backend, "tree_bp")(
            rhm.rules, None, cards_of(rhm), evidence, prior, node_ev, dtype
        )
        for name in ("up", "down", "marginals"):
            for level in range(rhm.L + 1):
                _close(getattr(res, name)[level], getattr(ref, name)[level], tol)
        np.testing.assert_allclose(as_numpy(res.log_evidence), ref.log_evidence, rtol=tol)
        up = entry(backend, "upward_pass")(
            rhm.rules, None, cards_of(rhm), evidence, prior, node_ev, dtype
        )
        for level in range(rhm.L + 1):
            _close(up.up[level], ref_up.up[level], tol)
        _close(up.root_marginal, ref_up.root_marginal, tol)
        np.testing.assert_allclose(as_numpy(up.log_evidence), ref_up.log_evidence, rtol=tol)


@pytest.mark.parametrize("n", [1, 5, 9, 13, 17, 33, 70])
def test_numba_every_lane_count_matches_reference(n):
    """Batch sizes that give blocks of 4 to 32 lanes, full and partial (the kernel's vector
    paths of one, two and four vectors, and its scalar edges)."""
    rhm = RHM(v=9, n_classes=3, m=3, s=2, L=3, seed=5)
    ev = eps_evidence(rhm.sample(n, seed=1).x, 0.4, rhm.v)
    ref = reference.tree_bp(rhm, ev)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        res = numba_bp.tree_bp(rhm.rules, None, cards_of(rhm), ev.astype(dtype), dtype=dtype)
        for name in ("up", "down", "marginals"):
            for level in range(rhm.L + 1):
                _close(getattr(res, name)[level], getattr(ref, name)[level], tol)
        np.testing.assert_allclose(res.log_evidence, ref.log_evidence, rtol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_evidence_and_message_dtypes(backend):
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=3, seed=0)
    ev = eps_evidence(rhm.sample(20, seed=1).x, 0.3, rhm.v)  # float64
    ref = reference.tree_bp(rhm, ev)
    res = entry(backend, "tree_bp")(rhm.rules, None, cards_of(rhm), ev, dtype=np.float32)
    assert as_numpy(res.marginals[0]).dtype == np.float32
    for level in range(rhm.L + 1):
        _close(res.marginals[level], ref.marginals[level], 1e-5)
    np.testing.assert_allclose(as_numpy(res.log_evidence), ref.log_evidence, rtol=1e-5)
    # and float32 evidence with float64 messages: exact to 1e-12 on the rounded evidence
    ev32 = ev.astype(np.float32)
    ref = reference.tree_bp(rhm, ev32.astype(np.float64))
    res = entry(backend, "tree_bp")(rhm.rules, None, cards_of(rhm), ev32, dtype=np.float64)
    for level in range(rhm.L + 1):
        _close(res.marginals[level], ref.marginals[level], 1e-12)
    np.testing.assert_allclose(as_numpy(res.log_evidence), ref.log_evidence, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_any_evidence_scale(backend, dtype):
    """Per-leaf scales across the whole range of the evidence's float type (float64: 2**-1060,
    subnormal, to 2**1020; float32: subnormal to near overflow) leave the marginals alone and
    shift the log-evidence by the logs of the scales.

    The evidence takes values with one significant bit and the scales are powers of two, so
    the scaled evidence is exact even where it is subnormal. 20 sets: full 8-lane tiles."""
    rhm = RHM(v=6, n_classes=3, m=2, s=2, L=3, seed=1)
    rng = np.random.default_rng(0)
    n = 20
    ev = rng.choice([0.125, 0.25, 0.5, 1.0], size=(n, rhm.d, rhm.v))
    if dtype == np.float64:
        exponents = rng.choice([-1060, -1000, -300, 0, 300, 1000, 1020], size=(n, rhm.d))
    else:
        exponents = rng.choice([-140, -126, -60, 0, 60, 124], size=(n, rhm.d))
    scales = np.ldexp(1.0, exponents)
    scaled = (ev * scales[..., None]).astype(dtype)
    assert (scaled > 0).all() and np.isfinite(scaled).all()
    base = entry(backend, "tree_bp")(rhm.rules, None, cards_of(rhm), ev, dtype=np.float64)
    res = entry(backend, "tree_bp")(rhm.rules, None, cards_of(rhm), scaled, dtype=dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for level in range(rhm.L + 1):
        _close(res.marginals[level], as_numpy(base.marginals[level]), tol)
    expected = as_numpy(base.log_evidence) + exponents.sum(axis=1) * np.log(2.0)
    np.testing.assert_allclose(as_numpy(res.log_evidence), expected, rtol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_and_single_set(backend):
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    res = entry(backend, "tree_bp")(rhm.rules, None, cards_of(rhm), np.ones((0, 4, 4)))
    assert [tuple(m.shape) for m in res.marginals] == [(0, 4, 4), (0, 2, 4), (0, 1, 2)]
    assert tuple(res.log_evidence.shape) == (0,)
    draw = entry(backend, "posterior_sample")(rhm.rules, None, cards_of(rhm), np.ones((0, 4, 4)))
    assert tuple(draw.x.shape) == (0, 4)
    one = rhm.sample(1, seed=3)
    res = entry(backend, "tree_bp")(rhm.rules, None, cards_of(rhm), one.onehot()[0])
    assert tuple(res.marginals[2].shape) == (1, 1, 2)
    assert int(as_numpy(res.marginals[2])[0, 0].argmax()) == one.y[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_evidence_is_refused(backend):
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    run = entry(backend, "tree_bp")
    good = eps_evidence(rhm.sample(3, seed=1).x, 0.2, 4)
    for value in (np.nan, np.inf, -0.5):
        bad = good.copy()
        bad[1, 2, 3] = value
        with pytest.raises(InputError, match="leaf_evidence"):
            run(rhm.rules, None, cards_of(rhm), bad)
    zero = good.copy()
    zero[2, 1] = 0.0  # a leaf no value can explain
    with pytest.raises(ZeroEvidenceError) as err:
        run(rhm.rules, None, cards_of(rhm), zero)
    assert err.value.samples.tolist() == [2]
    # positive evidence that no tree produces: a leaf pair outside every rule's tuples
    used = {tuple(t) for t in rhm.rules[1].reshape(-1, 2).tolist()}
    pair = next(p for p in itertools.product(range(4), repeat=2) if p not in used)
    onehot = np.full((1, 4, 4), 0.0)
    onehot[0, [0, 1], list(pair)] = 1.0
    onehot[0, 2:, :] = 1.0
    with pytest.raises(ZeroEvidenceError):
        run(rhm.rules, None, cards_of(rhm), onehot)
    with pytest.raises(InputError, match="shape"):
        run(rhm.rules, None, cards_of(rhm), good[:, :3])
    with pytest.raises(InputError, match="dtype"):
        run(rhm.rules, None, cards_of(rhm), good, dtype=np.float16)
    with pytest.raises(InputError, match="root_prior"):
        run(rhm.rules, None, cards_of(rhm), good, root_prior=[1.0, -1.0])


def test_grammar_arrays_are_checked():
    rules = {1: np.array([[[0, 1]], [[1, 2]]])}
    with pytest.raises(InputError, match="outside"):
        layout.flatten_grammar(rules, None, (2, 2))
    with pytest.raises(InputError, match="keyed"):
        layout.flatten_grammar({2: rules[1]}, None, (3, 2))
    with pytest.raises(InputError, match="rule_probs"):
        layout.flatten_grammar(rules, {1: np.array([[0.5], [-0.5]])}, (3, 2))
    with pytest.raises(InputError, match="shape"):
        layout.flatten_grammar(rules, None, (3, 3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_levels_and_messages_select_outputs(backend):
    rhm = RHM(v=6, n_classes=3, m=2, s=2, L=3, seed=2)
    ev = eps_evidence(rhm.sample(7, seed=1).x, 0.3, rhm.v)
    run = entry(backend, "tree_bp")
    full = run(rhm.rules, None, cards_of(rhm), ev)
    part = run(rhm.rules, None, cards_of(rhm), ev, levels=[1, 3], messages=False)
    assert part.marginals[0] is None and part.marginals[2] is None
    assert all(x is None for x in part.up) and all(x is None for x in part.down)
    for level in (1, 3):
        np.testing.assert_array_equal(
            as_numpy(part.marginals[level]), as_numpy(full.marginals[level])
        )
    np.testing.assert_array_equal(as_numpy(part.log_evidence), as_numpy(full.log_evidence))


def test_numba_results_do_not_depend_on_threads():
    numba = pytest.importorskip("numba")
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=4, seed=0)
    ev = eps_evidence(rhm.sample(100, seed=1).x, 0.3, rhm.v)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = numba_bp.tree_bp(rhm.rules, None, cards_of(rhm), ev)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = numba_bp.tree_bp(rhm.rules, None, cards_of(rhm), ev)
    finally:
        numba.set_num_threads(before)
    for level in range(rhm.L + 1):
        np.testing.assert_array_equal(one.marginals[level], two.marginals[level])
    np.testing.assert_array_equal(one.log_evidence, two.log_evidence)


def test_deep_tree_float32_stays_finite():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=12, seed=0)
    data = rhm.sample(3, seed=1)
    ev = eps_evidence(data.x, 0.2, rhm.v)
    ref = reference.tree_bp(rhm, ev, dtype=np.float32)
    res = numba_bp.tree_bp(rhm.rules, None, cards_of(rhm), ev.astype(np.float32), dtype="float32")
    assert (res.log_evidence < -745).all()  # exp() of it underflows even float64
    np.testing.assert_allclose(res.log_evidence, ref.log_evidence, rtol=1e-5)
    for level in (0, 6, 12):
        np.testing.assert_allclose(res.marginals[level], ref.marginals[level], atol=1e-4)


# -- posterior sampling ---------------------------------------------------------------------------
def _tree_keys(draw):
    levels = [as_numpy(x) for x in draw.levels]
    return [tuple(tuple(lv[k].tolist()) for lv in levels) for k in range(levels[0].shape[0])]


def test_posterior_draws_follow_enumerated_tree_posterior():
    """Chi-square goodness of fit of 20000 draws (numba) against the exact posterior over
    trees of a weighted, ambiguous grammar; cells with expected count < 5 are pooled. The test
    fails with probability 1e-3 for an exact sampler (fixed seeds: deterministic)."""
    cards, ms, s = (3, 2, 2), (3, 2), 2
    rng = np.random.default_rng(11)
    rules, probs = random_grammar(rng, cards, ms, s)
    leaf_ev = rng.random((4, 3)) + 0.1
    prior = np.array([0.3, 0.7])
    _, _, posterior = enumerate_trees(rules, probs, cards, leaf_ev, prior)
    n = 20000
    draw = numba_bp.posterior_sample(
        rules, probs, cards, np.broadcast_to(leaf_ev, (n, 4, 3)), prior, seed=5
    )
    counts: dict[tuple, int] = {}
    for key in _tree_keys(draw):
        assert key in posterior, f"drew a tree of zero posterior probability: {key}"
        counts[key] = counts.get(key, 0) + 1
    keys = sorted(posterior, key=posterior.get, reverse=True)
    expected = np.array([posterior[k] * n for k in keys])
    observed = np.array([counts.get(k, 0) for k in keys])
    small = expected < 5
    if small.any():
        expected = np.append(expected[~small], expected[small].sum())
        observed = np.append(observed[~small], observed[small].sum())
    assert len(expected) > 10
    p_value = stats.chisquare(observed, expected).pvalue
    assert p_value > 1e-3, p_value


def test_backends_draw_the_same_trees_and_batches_split_freely():
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=4, seed=0)
    ev = eps_evidence(rhm.sample(50, seed=1).x, 0.4, rhm.v)
    a = numba_bp.posterior_sample(rhm.rules, None, cards_of(rhm), ev, seed=7)
    b = torch_bp.posterior_sample(rhm.rules, None, cards_of(rhm), ev, seed=7)
    for x, y in zip(a.levels, b.levels, strict=True):
        np.testing.assert_array_equal(x, as_numpy(y))
    assert rhm.parse(a.x).valid.all()
    gen = np.random.default_rng(7)
    halves = [
        numba_bp.posterior_sample(rhm.rules, None, cards_of(rhm), part, seed=gen)
        for part in (ev[:23], ev[23:])
    ]
    for level in range(rhm.L + 1):
        joined = np.concatenate([h.levels[level] for h in halves])
        np.testing.assert_array_equal(joined, a.levels[level])


def test_posterior_draws_match_marginals_on_rhm():
    """Empirical node marginals of 4000 draws against BP marginals: within 5 standard errors
    at every node and value (a Bonferroni bound over the cells, false alarm below 1e-3)."""
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=4)
    ev = eps_evidence(rhm.sample(1, seed=1).x, 0.6, rhm.v)
    n = 4000
    many = np.broadcast_to(ev, (n, *ev.shape[1:]))
    draw = numba_bp.posterior_sample(rhm.rules, None, cards_of(rhm), many, seed=3)
    marg = reference.tree_bp(rhm, ev).marginals
    for level in range(rhm.L + 1):
        values = draw.levels[level]
        for i in range(rhm.width(level)):
            freq = np.bincount(values[:, i], minlength=rhm.card(level)) / n
            p = marg[level][0, i]
            se = np.sqrt(p * (1 - p) / n) + 1e-12
            assert (np.abs(freq - p) <= 5 * se + 1e-9).all()


# -- the package ----------------------------------------------------------------------------------
def test_backend_registry():
    assert kernels.available("numpy")
    assert kernels.available("numba")
    assert kernels.available("torch")
    assert kernels.default_backend() == "numba"
    assert kernels.default_backend("cuda") == "torch"
    with pytest.raises(InputError):
        kernels.entry("numpy", "tree_bp")
    with pytest.raises(InputError):
        kernels.entry("numba", "marginals")
    with pytest.raises(InputError, match="CPU"):
        numba_bp.tree_bp({1: np.array([[[0, 1]]])}, None, (2, 1), np.ones((1, 2, 2)), device="cuda")


def test_torch_backend_refuses_an_absent_accelerator_in_one_line():
    args = ({1: np.array([[[0, 1]]])}, None, (2, 1), np.ones((1, 2, 2)))
    with pytest.raises(InputError, match="not a torch device"):
        torch_bp.tree_bp(*args, device="banana")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            torch_bp.tree_bp(*args, device="cuda")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        with pytest.raises(InputError, match=f"cuda index < {count}"):
            torch_bp.tree_bp(*args, device=f"cuda:{count}")


@pytest.mark.parametrize("module", [kernels, layout, numba_bp, torch_bp])
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


@pytest.mark.gpu
def test_torch_cuda_matches_reference():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    rhm = RHM(v=16, n_classes=8, m=4, s=2, L=4, seed=0)
    ev = eps_evidence(rhm.sample(300, seed=1).x, 0.3, rhm.v)
    ref = reference.tree_bp(rhm, ev)
    res = torch_bp.tree_bp(rhm.rules, None, cards_of(rhm), ev, dtype=np.float32, device="cuda")
    assert res.marginals[0].device.type == "cuda"
    for level in range(rhm.L + 1):
        _close(res.marginals[level], ref.marginals[level], 1e-5)
    np.testing.assert_allclose(as_numpy(res.log_evidence), ref.log_evidence, rtol=1e-5)
    draw = torch_bp.posterior_sample(rhm.rules, None, cards_of(rhm), ev, device="cuda")
    assert rhm.parse(as_numpy(draw.x)).valid.all()
