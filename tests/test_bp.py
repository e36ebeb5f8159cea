"""Exact tree BP against brute-force enumeration written here from the definitions."""

import itertools

import numpy as np
import pytest

from hiergrammar import RHM, InputError
from hiergrammar.bp import ZeroEvidenceError, tree_bp, upward_pass
from hiergrammar.noise import eps_evidence


def enumerate_trees(rhm, leaf_evidence, prior, node_evidence=None):
    """Marginals per level and log-evidence of one evidence set, summing over every tree."""
    internal = [(l, i) for l in range(rhm.L, 0, -1) for i in range(rhm.width(l))]
    marg = [np.zeros((rhm.width(l), rhm.card(l))) for l in range(rhm.L + 1)]
    total = 0.0
    for c in range(rhm.n_classes):
        for choice in itertools.product(range(rhm.m), repeat=len(internal)):
            pick = dict(zip(internal, choice, strict=True))
            lev = {rhm.L: np.array([c])}
            for l in range(rhm.L, 0, -1):
                lev[l - 1] = np.concatenate(
                    [rhm.rules[l][lev[l][i], pick[(l, i)]] for i in range(rhm.width(l))]
                )
            w = prior[c] * np.prod(leaf_evidence[np.arange(rhm.d), lev[0]])
            for l, ev in (node_evidence or {}).items():
                w *= np.prod(ev[np.arange(rhm.width(l)), lev[l]])
            total += w
            for l in range(rhm.L + 1):
                marg[l][np.arange(rhm.width(l)), lev[l]] += w
    # each internal node picks one of its m rules with probability 1/m
    return [x / total for x in marg], np.log(total) - len(internal) * np.log(rhm.m)


CASES = [
    dict(v=3, n_classes=2, m=2, s=2, L=2),
    dict(v=3, n_classes=3, m=2, s=3, L=2),
    dict(v=4, n_classes=2, m=1, s=2, L=3),
    dict(v=2, n_classes=2, m=2, s=2, L=2),
]


@pytest.mark.parametrize("params", CASES)
def test_marginals_and_log_evidence_match_enumeration(params):
    rng = np.random.default_rng(0)
    rhm = RHM(**params, seed=4)
    x = rhm.sample(3, seed=1).x
    evidence = rng.random((3, rhm.d, rhm.v)) * eps_evidence(x, 0.4, rhm.v) * 3.0
    prior = rng.random(rhm.n_classes) + 0.1
    result = tree_bp(rhm, evidence, prior)
    for k in range(3):
        marg, log_z = enumerate_trees(rhm, evidence[k], prior / prior.sum())
        for l in range(rhm.L + 1):
            np.testing.assert_allclose(result.marginals[l][k], marg[l], atol=1e-12)
        assert result.log_evidence[k] == pytest.approx(log_z, abs=1e-10)


def test_node_evidence_clamps_internal_nodes():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    x = rhm.sample(1, seed=1).x
    evidence = eps_evidence(x, 0.5, 3)
    node_ev = {1: np.array([[[0.2, 1.0, 0.5], [1.0, 1.0, 0.1]]])}
    result = tree_bp(rhm, evidence, node_evidence=node_ev)
    marg, log_z = enumerate_trees(rhm, evidence[0], np.full(2, 0.5), {1: node_ev[1][0]})
    for l in range(3):
        np.testing.assert_allclose(result.marginals[l][0], marg[l], atol=1e-12)
    assert result.log_evidence[0] == pytest.approx(log_z)


def test_messages_are_normalised_and_consistent():
    rhm = RHM(v=8, n_classes=4, m=3, s=2, L=4, seed=1)
    x = rhm.sample(20, seed=2).x
    result = tree_bp(rhm, eps_evidence(x, 0.6, 8))
    for l in range(rhm.L + 1):
        for arr in (result.up[l], result.down[l], result.marginals[l]):
            assert arr.shape == (20, rhm.width(l), rhm.card(l))
            np.testing.assert_allclose(arr.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(result.down[rhm.L], 0.25)
    # Noiseless evidence: every marginal is the one-hot true tree.
    clean = tree_bp(rhm, eps_evidence(x, 0.0, 8))
    truth = rhm.sample(20, seed=2).levels
    for l in range(rhm.L + 1):
        np.testing.assert_allclose(clean.marginals[l], np.eye(rhm.card(l))[truth[l]], atol=1e-12)


def test_log_evidence_sums_to_one_over_all_inputs():
    # With one-hot evidence, exp(log_evidence) is P(x); summed over all v**d strings it is 1.
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    strings = np.array(list(itertools.product(range(3), repeat=4)))
    onehot = np.eye(3)[strings]
    total = 0.0
    valid = rhm.parse(strings).valid
    with pytest.raises(ZeroEvidenceError):
        tree_bp(rhm, onehot[~valid][:2])
    result = tree_bp(rhm, onehot[valid])
    total = np.exp(result.log_evidence).sum()
    assert total == pytest.approx(1.0, abs=1e-12)
    # Each valid string has probability 1/(n_classes * m**(internal nodes)).
    np.testing.assert_allclose(np.exp(result.log_evidence), 1 / (2 * 2**3))


def test_deep_tree_has_no_underflow():
    rhm = RHM(v=32, n_classes=32, m=8, s=2, L=12, seed=0)
    x = rhm.sample(2, seed=0).x
    result = tree_bp(rhm, eps_evidence(x, 0.7, 32))
    assert np.all(np.isfinite(result.log_evidence)) and np.all(result.log_evidence < -1000)
    for marg in result.marginals:
        assert np.all(np.isfinite(marg))
        np.testing.assert_allclose(marg.sum(-1), 1.0, atol=1e-10)


def test_zero_evidence_names_the_samples():
    rhm = RHM(v=4, n_classes=2, m=1, s=2, L=2, seed=0)
    data = rhm.sample(5, seed=0)
    evidence = np.eye(4)[data.x]
    evidence[3] = np.eye(4)[(data.x[3] + np.array([1, 0, 0, 0])) % 4]
    if rhm.parse(np.argmax(evidence, -1)).valid[3]:
        pytest.skip("perturbed string happens to be valid")
    with pytest.raises(ZeroEvidenceError, match=r"sample\(s\) \[3\]"):
        tree_bp(rhm, evidence)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((2, 4, 4)), r"shape \(n, 4, 4\)"),
        (np.ones((4, 4)), r"shape \(n, s\*\*L, v\)"),
        (-np.ones((2, 4, 3)), "non-negative"),
        (np.full((2, 4, 3), np.nan), "finite"),
    ],
)
def test_bad_evidence_is_a_clear_error(bad, match):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    if bad.shape == (2, 4, 4):
        match = r"shape \(n, s\*\*L, v\) = \(n, 4, 3\).*got \(2, 4, 4\)"
    with pytest.raises(ValueError, match=match):
        tree_bp(rhm, bad)


def test_bad_prior_is_a_clear_error():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    ev = np.ones((1, 4, 3))
    with pytest.raises(ValueError, match="root_prior must have shape"):
        tree_bp(rhm, ev, root_prior=np.ones(3))
    with pytest.raises(ValueError, match="positive sum"):
        tree_bp(rhm, ev, root_prior=np.zeros(2))


def test_upward_pass_is_the_upward_half_of_tree_bp():
    rhm = RHM(v=6, n_classes=3, m=2, s=3, L=2, seed=2)
    x = rhm.sample(7, seed=0).x
    evidence = eps_evidence(x, 0.5, 6)
    prior = np.array([0.2, 0.3, 0.5])
    clamp = {1: np.random.default_rng(0).random((7, 3, 6))}
    full = tree_bp(rhm, evidence, prior, node_evidence=clamp)
    half = upward_pass(rhm, evidence, prior, node_evidence=clamp)
    for a, b in zip(full.up, half.up, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(half.root_marginal, full.marginals[rhm.L], atol=1e-15)
    np.testing.assert_array_equal(half.log_evidence, full.log_evidence)


@pytest.mark.parametrize("scale", [1e-46, 1e-50, 1e40, 1e300])
def test_float32_handles_evidence_of_any_scale(scale):
    # Scaling every leaf by c multiplies P(evidence) by c**d and changes no marginal. Before
    # each leaf was rescaled by a power of two, float32 gave NaN above its range (3.4e38) and
    # ZeroEvidenceError below ~1e-45, where float64 gave a finite log Z.
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    x = rhm.sample(6, seed=1).x
    ev = eps_evidence(x, 0.2, 4)
    base = tree_bp(rhm, ev)
    expected = base.log_evidence + rhm.d * np.log(scale)
    for dtype in (np.float64, np.float32):
        res = tree_bp(rhm, ev * scale, dtype=dtype)
        up = upward_pass(rhm, ev * scale, dtype=dtype)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(res.log_evidence, expected, rtol=tol)
        np.testing.assert_allclose(up.log_evidence, expected, rtol=tol)
        for a, b in zip(res.marginals, base.marginals, strict=True):
            np.testing.assert_allclose(a, b, atol=10 * tol)


def test_float32_one_hot_evidence_below_float32_range_matches_closed_form():
    # One-hot evidence times 1e-46: P = c**d / (n_classes * m**N) for every valid string.
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    data = rhm.sample(3, seed=2)
    closed = rhm.d * np.log(1e-46) - np.log(rhm.n_classes) - rhm.n_internal * np.log(rhm.m)
    for dtype in (np.float64, np.float32):
        res = tree_bp(rhm, data.onehot() * 1e-46, dtype=dtype)
        np.testing.assert_allclose(res.log_evidence, closed, rtol=1e-6)
        np.testing.assert_array_equal(res.marginals[rhm.L][:, 0].argmax(-1), data.y)


def test_node_evidence_of_any_scale_and_its_validation():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    evidence = eps_evidence(rhm.sample(1, seed=1).x, 0.5, 3)
    node_ev = {1: np.array([[[0.2, 1.0, 0.5], [1.0, 1.0, 0.1]]])}
    base = tree_bp(rhm, evidence, node_evidence=node_ev)
    big = tree_bp(rhm, evidence, node_evidence={1: node_ev[1] * 1e200}, dtype=np.float32)
    assert big.log_evidence[0] == pytest.approx(base.log_evidence[0] + 2 * np.log(1e200), 1e-6)
    np.testing.assert_allclose(big.marginals[0], base.marginals[0], atol=1e-6)
    with pytest.raises(InputError, match=r"node_evidence\[1\] must have shape"):
        tree_bp(rhm, evidence, node_evidence={1: np.ones((1, 3, 3))})
    with pytest.raises(InputError, match=r"node_evidence level=3 violates 0 <= "):
        tree_bp(rhm, evidence, node_evidence={3: np.ones((1, 1, 2))})
    with pytest.raises(InputError, match=r"node_evidence\[1\] must be non-negative"):
        tree_bp(rhm, evidence, node_evidence={1: -np.ones((1, 2, 3))})
    with pytest.raises(InputError, match="must be a dict"):
        tree_bp(rhm, evidence, node_evidence=[np.ones((1, 2, 3))])


@pytest.mark.parametrize("dtype", [np.float16, np.int64, "banana", None])
def test_bad_dtype_is_refused(dtype):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    with pytest.raises(InputError, match="dtype must be np.float32 or np.float64"):
        tree_bp(rhm, np.ones((2, 3)), dtype=dtype)


def test_complex_evidence_is_refused_not_truncated():
    # numpy would cast complex evidence to float64 with only a ComplexWarning.
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    ev = np.ones((1, 2, 3), dtype=complex)
    for engine in (tree_bp, upward_pass):
        with pytest.raises(InputError, match="complex"):
            engine(rhm, ev)


def test_bp_memory_estimate_covers_what_tree_bp_allocates():
    # The size guard's estimate must not undercount: measure the peak with tracemalloc.
    import tracemalloc

    from hiergrammar.bp import bp_bytes_per_set

    rhm = RHM(v=16, n_classes=4, m=3, s=2, L=5, seed=0)
    ev = eps_evidence(rhm.sample(200, seed=0).x, 0.3, 16)
    for dtype in (np.float64, np.float32):
        tracemalloc.start()
        tree_bp(rhm, ev, dtype=dtype)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        estimate = 200 * bp_bytes_per_set(rhm, dtype)
        assert peak <= estimate, (dtype, peak, estimate)
        assert estimate <= 4 * peak  # and is not absurdly loose


# -- backends -------------------------------------------------------------------------------------
def test_default_backend_is_the_fastest_available_on_the_cpu():
    from hiergrammar import kernels
    from hiergrammar.bp import resolve_backend

    expected = "numba" if kernels.available("numba") else "numpy"
    assert resolve_backend(None) == expected == resolve_backend(None, device="cpu")
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=3, seed=0)
    ev = eps_evidence(rhm.sample(50, seed=1).x, 0.4, 4)
    ref = tree_bp(rhm, ev, backend="numpy")
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        res = tree_bp(rhm, ev, dtype=dtype)  # the default backend
        for a, b in zip(res.marginals, ref.marginals, strict=True):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, atol=tol)
        np.testing.assert_allclose(res.log_evidence, ref.log_evidence, rtol=tol)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backend="jax"), r"backend='jax' is not one of \['numpy', 'numba', 'torch'\]"),
        (dict(backend="numpy", device="cuda"), r"device='cuda' needs backend='torch'"),
        (dict(backend="numba", device="cuda:1"), r"device='cuda:1' needs backend='torch'"),
    ],
)
def test_bad_backends_and_devices_are_refused(kwargs, match):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    for engine in (tree_bp, upward_pass):
        with pytest.raises(InputError, match=match):
            engine(rhm, np.ones((2, 3)), **kwargs)


def test_a_default_numba_backend_that_fails_to_compile_falls_back_to_numpy(monkeypatch):
    numba_errors = pytest.importorskip("numba.core.errors")
    from hiergrammar import bp, kernels

    if not kernels.available("numba"):
        pytest.skip("numba is not the default backend here")

    def broken(backend, name):
        def kernel(*args, **kwargs):
            raise numba_errors.TypingError("no compiler today")

        return kernel

    monkeypatch.setattr(bp, "_NUMBA_FAILURE", [])
    monkeypatch.setattr(kernels, "entry", broken)
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    ev = eps_evidence(rhm.sample(4, seed=1).x, 0.3, 3)
    with pytest.warns(RuntimeWarning, match="falls back to backend='numpy'"):
        res = tree_bp(rhm, ev)
    ref = tree_bp(rhm, ev, backend="numpy")
    np.testing.assert_array_equal(res.log_evidence, ref.log_evidence)
    assert bp.resolve_backend(None) == "numpy"  # once per process
    # an explicit backend="numba" is not silently replaced
    with pytest.raises(numba_errors.TypingError):
        tree_bp(rhm, ev, backend="numba")


def test_zero_evidence_from_a_kernel_names_the_level_as_the_reference_does():
    rhm = RHM(v=4, n_classes=2, m=1, s=2, L=2, seed=0)
    strings = np.array(list(itertools.product(range(4), repeat=4)))
    valid = rhm.parse(strings).valid
    # samples 1 and 3 are impossible: the kernel's indices must map back to the batch
    batch = np.stack([strings[valid][0], strings[~valid][0], strings[valid][1], strings[~valid][1]])
    ev = np.eye(4)[batch] + 0.0
    messages = set()
    for backend in ("numpy", "numba"):
        with pytest.raises(ZeroEvidenceError, match=r"sample\(s\) \[1, 3\].* at level \d") as info:
            tree_bp(rhm, ev, backend=backend)
        messages.add(str(info.value))
    assert len(messages) == 1, messages


def test_the_environment_names_the_default_backend(monkeypatch):
    from hiergrammar.bp import resolve_backend

    monkeypatch.setenv("HIERGRAMMAR_BACKEND", "numpy")
    assert resolve_backend(None) == "numpy"
    assert resolve_backend("numba") == "numba"  # an explicit backend wins
    monkeypatch.setenv("HIERGRAMMAR_BACKEND", "fortran")
    with pytest.raises(InputError, match=r"\$HIERGRAMMAR_BACKEND='fortran' is not one of"):
        resolve_backend(None)
