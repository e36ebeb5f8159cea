"""One evidence contract for every engine: the same shapes are accepted, the same bad input
gives the same message, and n = 0 gives empty results of the right shapes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hiergrammar import InputError, ZeroEvidenceError
from hiergrammar import crosscheck as cc
from hiergrammar.bp import tree_bp, upward_pass
from hiergrammar.bruteforce import brute_force_marginals
from hiergrammar.evidence import check_leaf_evidence, check_root_prior, rescale_by_powers_of_two
from hiergrammar.rhm import RHM
from hiergrammar.sampling import posterior_sample, posterior_sample_reference

RHM_ARGS = dict(v=3, n_classes=2, m=2, s=2, L=2, seed=0)


@pytest.fixture(scope="module")
def rhm() -> RHM:
    return RHM(**RHM_ARGS)


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


#: The backends of tree_bp, upward_pass and posterior_sample checked here (numba and torch
#: must give the numpy reference's messages).
BACKENDS = ["numpy", "numba"] + (["torch"] if _has_torch() else [])

#: Every engine, called on (evidence, root prior); crosscheck runs its cheapest engine.
ENGINES = {
    "tree_bp": lambda rhm, ev, prior: tree_bp(rhm, ev, prior),
    "upward_pass": lambda rhm, ev, prior: upward_pass(rhm, ev, prior),
    **{
        f"{name}[{backend}]": (
            lambda rhm, ev, prior, fn=fn, backend=backend: fn(rhm, ev, prior, backend=backend)
        )
        for backend in BACKENDS
        for name, fn in (
            ("tree_bp", tree_bp),
            ("upward_pass", upward_pass),
            ("posterior_sample", posterior_sample),
        )
    },
    "brute_force": lambda rhm, ev, prior: brute_force_marginals(rhm, ev, prior),
    "posterior_sample": lambda rhm, ev, prior: posterior_sample(rhm, ev, prior, seed=0),
    "posterior_sample_reference": lambda rhm, ev, prior: posterior_sample_reference(
        rhm, ev, prior, seed=0
    ),
    "crosscheck": lambda rhm, ev, prior: cc.crosscheck(rhm, ev, prior, engines="tree_bp"),
}


def _good(rhm: RHM) -> np.ndarray:
    return rhm.sample(1, seed=1).onehot()[0] * 0.8 + 0.1  # (d, v)


def _bad_cases(rhm: RHM) -> dict[str, tuple[np.ndarray, object, type, str]]:
    """name -> (evidence, root prior, error type, a regex the message must match)."""
    good = _good(rhm)
    nan, neg, zero_leaf = good.copy(), good.copy(), good.copy()
    nan[1, 2] = np.nan
    neg[0, 0] = -0.5
    zero_leaf[2] = 0.0
    inf = good.copy()
    inf[3, 1] = np.inf
    return {
        "wrong v": (np.ones((rhm.d, rhm.v + 1)), None, InputError, r"shape \(n, s\*\*L, v\)"),
        "wrong d": (np.ones((1, rhm.d + 1, rhm.v)), None, InputError, r"got \(1, 5, 3\)"),
        "4-d": (np.ones((1, 1, rhm.d, rhm.v)), None, InputError, r"got \(1, 1, 4, 3\)"),
        "complex": (good + 1j, None, InputError, "complex"),
        "nan": (nan, None, InputError, "finite"),
        "inf": (inf, None, InputError, "finite"),
        "negative": (neg, None, InputError, r"evidence >= 0"),
        "zero leaf": (zero_leaf, None, ZeroEvidenceError, r"sample\(s\) \[0\].*leaf.* \[2\]"),
        "ragged": ([[1.0, 2.0], [1.0]], None, InputError, "real numbers"),
        "strings": (np.full((rhm.d, rhm.v), "a"), None, InputError, "numbers"),
        "prior shape": (good, np.ones(3), InputError, r"root_prior must have shape"),
        "prior negative": (good, np.array([1.0, -1.0]), InputError, r"root_prior >= 0"),
        "prior zero": (good, np.zeros(2), InputError, r"root_prior violates sum > 0"),
        "prior nan": (good, np.array([np.nan, 1.0]), InputError, "finite"),
        "prior complex": (good, np.array([1.0, 1j]), InputError, "complex"),
    }


CASE_NAMES = list(_bad_cases(RHM(**RHM_ARGS)))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_every_engine_gives_the_same_message_for_the_same_bad_input(rhm, case):
    ev, prior, error, pattern = _bad_cases(rhm)[case]
    messages = {}
    for name, engine in ENGINES.items():
        with pytest.raises(error) as info:
            engine(rhm, ev, prior)
        assert type(info.value) is error, (name, info.value)
        assert re.search(pattern, str(info.value)), (name, str(info.value))
        messages[name] = str(info.value)
    assert len(set(messages.values())) == 1, messages


def test_one_set_as_2d_equals_the_batched_form(rhm):
    ev = _good(rhm)
    prior = np.array([0.3, 0.7])
    a, b = tree_bp(rhm, ev, prior), tree_bp(rhm, ev[None], prior[None])
    for x, y in zip(a.marginals, b.marginals, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.log_evidence, b.log_evidence)
    bf_2d, bf_3d = brute_force_marginals(rhm, ev, prior), brute_force_marginals(rhm, ev[None])
    assert bf_2d.marginals[0].shape == bf_3d.marginals[0].shape == (1, rhm.d, rhm.v)
    # brute force is the independent check of BP on the 2-d form too
    for x, y in zip(a.marginals, bf_2d.marginals, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-12)
    for sampler in (posterior_sample, posterior_sample_reference):
        np.testing.assert_array_equal(
            sampler(rhm, ev, prior, seed=3).x, sampler(rhm, ev[None], prior, seed=3).x
        )
    assert [r.status for r in cc.crosscheck(rhm, ev[None], prior[None], engines="tree_bp")] == [
        "ok"
    ]


def test_per_set_root_prior_equals_one_call_per_set(rhm):
    ev = np.stack([_good(rhm), np.full((rhm.d, rhm.v), 0.5)])
    priors = np.array([[0.9, 0.1], [0.2, 0.8]])
    batched = brute_force_marginals(rhm, ev, priors)
    bp = tree_bp(rhm, ev, priors)
    for k in range(2):
        single = brute_force_marginals(rhm, ev[k], priors[k])
        for x, y, z in zip(batched.marginals, single.marginals, bp.marginals, strict=True):
            np.testing.assert_allclose(x[k], y[0], atol=1e-15)
            np.testing.assert_allclose(z[k], y[0], atol=1e-12)
        assert batched.log_evidence[k] == pytest.approx(single.log_evidence[0], abs=1e-12)


def test_crosscheck_takes_exactly_one_set(rhm):
    with pytest.raises(InputError, match=r"one evidence set.*got 2 sets"):
        cc.crosscheck(rhm, np.ones((2, rhm.d, rhm.v)))
    with pytest.raises(InputError, match=r"one evidence set.*got 0 sets"):
        cc.crosscheck(rhm, np.ones((0, rhm.d, rhm.v)))
    with pytest.raises(InputError, match=r"root_prior must have shape"):
        cc.crosscheck(rhm, _good(rhm), np.ones((2, 2)))


@pytest.mark.parametrize(
    "params", [dict(v=3, n_classes=2, m=2, s=2, L=2), dict(v=4, n_classes=3, m=2, s=3, L=1)]
)
def test_zero_evidence_sets_give_empty_results(params):
    rhm = RHM(**params, seed=2)
    empty = np.zeros((0, rhm.d, rhm.v))
    bp = tree_bp(rhm, empty)
    up = upward_pass(rhm, empty)
    bf = brute_force_marginals(rhm, empty)
    for level in range(rhm.L + 1):
        shape = (0, rhm.width(level), rhm.card(level))
        assert bp.marginals[level].shape == bp.up[level].shape == bp.down[level].shape == shape
        assert up.up[level].shape == bf.marginals[level].shape == shape
    assert bp.log_evidence.shape == up.log_evidence.shape == bf.log_evidence.shape == (0,)
    assert up.root_marginal.shape == (0, 1, rhm.card(rhm.L))
    for sampler in (posterior_sample, posterior_sample_reference):
        draw = sampler(rhm, empty, seed=0)
        assert [lv.shape for lv in draw.levels] == [(0, rhm.width(l)) for l in range(rhm.L + 1)]
    # a per-set prior of n = 0 rows is the matching shape
    assert tree_bp(rhm, empty, np.zeros((0, rhm.card(rhm.L)))).log_evidence.shape == (0,)


def test_zero_evidence_error_names_every_bad_sample_and_pickles(rhm):
    import pickle

    ev = np.ones((5, rhm.d, rhm.v))
    ev[1, 0] = 0.0
    ev[3, 2] = 0.0
    with pytest.raises(ZeroEvidenceError) as info:
        tree_bp(rhm, ev)
    np.testing.assert_array_equal(info.value.samples, [1, 3])
    clone = pickle.loads(pickle.dumps(info.value))
    assert str(clone) == str(info.value)


def test_root_prior_is_normalised_and_shared_or_per_set(rhm):
    np.testing.assert_allclose(check_root_prior(rhm, [1.0, 3.0]), [0.25, 0.75])
    np.testing.assert_allclose(check_root_prior(rhm, None, n=2), [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(InputError, match=r"\(card_L,\) = \(2,\); got \(2, 2\)"):
        check_root_prior(rhm, np.ones((2, 2)))  # no n: only the shared form


def test_memory_guard_refuses_before_allocating(rhm, monkeypatch):
    ev = np.ones((1000, rhm.d, rhm.v))
    with pytest.raises(InputError, match=r"tree_bp on n=1000 .* above the memory budget of"):
        tree_bp(rhm, ev, memory_budget="64KiB")
    monkeypatch.setenv("HIERGRAMMAR_MEMORY_BUDGET", "64KiB")
    for engine in ("tree_bp", "upward_pass", "brute_force", "posterior_sample"):
        with pytest.raises(InputError, match="memory budget"):
            ENGINES[engine](rhm, ev, None)
    monkeypatch.setenv("HIERGRAMMAR_MEMORY_BUDGET", "1GiB")
    assert tree_bp(rhm, ev).log_evidence.shape == (1000,)
    # the estimate grows with n: a broadcast view costs nothing to pass in, but is refused
    huge = np.broadcast_to(_good(rhm), (10**8, rhm.d, rhm.v))
    for backend in BACKENDS:  # refused before any copy of the evidence, by every backend
        for engine in (tree_bp, upward_pass, posterior_sample):
            with pytest.raises(InputError, match=r"n=100000000 .* would need \d+\.\d+ GiB"):
                engine(rhm, huge, backend=backend)


def test_rescale_by_powers_of_two_is_exact():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 4, 5)) * 10.0 ** rng.integers(-300, 300, size=(3, 4, 1))
    x[0, 0] = 0.0
    scaled, exponents = rescale_by_powers_of_two(x)
    np.testing.assert_array_equal(np.ldexp(scaled, exponents[..., None]), x)
    peaks = scaled.max(axis=-1)
    assert np.all((peaks >= 0.5) & (peaks < 1) | (peaks == 0))


def test_leaf_evidence_keeps_float64_input_without_copy(rhm):
    ev = np.ones((2, rhm.d, rhm.v))
    assert np.shares_memory(check_leaf_evidence(rhm, ev), ev)
