"""Streaming: work that starts from integer strings runs block by block and chunk by chunk.

Checked here: results are bit-identical for every chunk size (smaller than a block, not
dividing it, a whole block); streamed results equal a plain all-at-once computation written
in the test; the memory budget sets the chunk size and bounds the allocations (tracemalloc);
an impossible budget and bad chunk sizes are refused with the bound named.
"""

import tracemalloc

import numpy as np
import pytest

from hiergrammar import RHM, InputError
from hiergrammar.bp import tree_bp
from hiergrammar.experiments.beliefs import bp_profile, bp_profile_diffusion, true_beliefs
from hiergrammar.experiments.masked_reconstruction import masked_reconstruction
from hiergrammar.experiments.token_changes import token_change_curves
from hiergrammar.processes import GaussianProcess, MaskingProcess, UniformProcess
from hiergrammar.sampling import (
    exact_forward_backward,
    forward_backward_bytes_per_sample,
    posterior_sample,
)
from hiergrammar.streaming import STREAM_BLOCK, stream_chunk_size
from hiergrammar.sweep.measurements import beliefs as beliefs_measurement
from hiergrammar.validation import MEMORY_BUDGET_ENV

N = STREAM_BLOCK + 76  # two blocks, the second partial
CHUNKS = (7, 64, None)  # 7 and 64 do not divide the second block; None: a whole block


@pytest.fixture(scope="module")
def rhm():
    return RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)


@pytest.fixture(scope="module")
def strings(rhm):
    return rhm.sample(N, seed=1).x


def same_levels(a, b):
    return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "process, t",
    [(MaskingProcess(8), 0.5), (UniformProcess(8), 0.4), (GaussianProcess(8), 0.3)],
    ids=["masking", "uniform", "gaussian"],
)
def test_forward_backward_does_not_depend_on_the_chunk_size(rhm, strings, backend, process, t):
    runs = [
        exact_forward_backward(rhm, process, strings, t, seed=3, backend=backend, chunk_size=chunk)
        for chunk in CHUNKS
    ]
    assert [r.chunk_size for r in runs] == [7, 64, STREAM_BLOCK]
    for other in runs[1:]:
        assert same_levels(runs[0].levels, other.levels)
        np.testing.assert_array_equal(runs[0].observation, other.observation)
    assert rhm.parse(runs[0].x).valid.all()


def test_forward_backward_equals_one_call_per_block(rhm, strings):
    """The streamed result (chunks of 7) against a plain loop written here: per block, noise the
    block and draw all its trees with one posterior_sample call on its whole likelihood."""
    process, t, seed = UniformProcess(8), 0.5, 11
    streamed = exact_forward_backward(rhm, process, strings, t, seed=seed, chunk_size=7)
    levels = [[] for _ in range(rhm.L + 1)]
    for b, start in enumerate(range(0, N, STREAM_BLOCK)):
        noise_seq, draw_seq = np.random.SeedSequence(seed, spawn_key=(b,)).spawn(2)
        block = strings[start : start + STREAM_BLOCK]
        obs = process.corrupt(block, t, seed=np.random.default_rng(noise_seq))
        trees = posterior_sample(
            rhm, process.leaf_likelihood(obs, t), seed=np.random.default_rng(draw_seq)
        )
        for level, values in enumerate(trees.levels):
            levels[level].append(np.asarray(values))
    assert same_levels(streamed.levels, [np.concatenate(parts) for parts in levels])


def test_numpy_and_numba_draws_read_the_same_numbers(rhm, strings):
    """Both backends read one row of uniform numbers per sample in the same places: with
    float64 weights they draw the same trees (a flip would need round-off at a boundary)."""
    args = (rhm, MaskingProcess(8), strings, 0.6)
    numpy_draws = exact_forward_backward(*args, seed=4, backend="numpy", chunk_size=64)
    numba_draws = exact_forward_backward(*args, seed=4, backend="numba")
    assert np.mean(numpy_draws.x == numba_draws.x) > 0.999


def test_memory_budget_sets_the_chunk_size_and_keeps_the_result(rhm, strings, monkeypatch):
    process = MaskingProcess(8)
    whole = exact_forward_backward(rhm, process, strings, 0.5, seed=2)
    per_sample = forward_backward_bytes_per_sample(rhm)
    fixed = STREAM_BLOCK * 2 * 8 * rhm.d  # a block's strings and observation
    monkeypatch.setenv(MEMORY_BUDGET_ENV, str(fixed + 5 * per_sample))
    tight = exact_forward_backward(rhm, process, strings, 0.5, seed=2)
    assert tight.chunk_size == 5
    assert same_levels(whole.levels, tight.levels)
    monkeypatch.setenv(MEMORY_BUDGET_ENV, str(fixed + per_sample // 2))
    with pytest.raises(InputError, match=r"one sample would need .* above the memory budget"):
        exact_forward_backward(rhm, process, strings, 0.5, seed=2)
    with pytest.raises(InputError, match=r"chunk_size=64 samples would need .* memory budget"):
        exact_forward_backward(
            rhm, process, strings, 0.5, seed=2, chunk_size=64, memory_budget=fixed
        )


def test_streamed_allocations_stay_within_the_budget():
    """tracemalloc's peak during a streamed run (numpy backend, whose allocations it traces)
    stays below the budget plus the returned arrays, far below the (n, d, v) likelihood."""
    rhm = RHM(v=16, n_classes=8, m=4, s=2, L=4, seed=0)
    n = 3 * STREAM_BLOCK
    x = rhm.sample(n, seed=1).x
    budget = STREAM_BLOCK * 2 * 8 * rhm.d + 32 * forward_backward_bytes_per_sample(rhm)
    exact_forward_backward(rhm, MaskingProcess(16), x[:8], 0.5, backend="numpy")  # warm up
    tracemalloc.start()
    try:
        res = exact_forward_backward(
            rhm, MaskingProcess(16), x, 0.5, backend="numpy", memory_budget=budget
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    outputs = sum(values.nbytes for values in res.levels) + res.observation.nbytes
    assert res.chunk_size == 32
    assert peak <= budget + outputs
    assert peak < n * rhm.d * rhm.v * 8 / 2  # half the all-at-once float64 likelihood


@pytest.mark.parametrize("bad", [0, -3, 2.5, "64", True])
def test_bad_chunk_size_is_refused(rhm, strings, bad):
    with pytest.raises(InputError, match="chunk_size"):
        exact_forward_backward(rhm, MaskingProcess(8), strings[:10], 0.5, chunk_size=bad)
    with pytest.raises(InputError, match="chunk_size"):
        beliefs_measurement(rhm, MaskingProcess(8), 0.5, n_samples=10, seed=0, chunk_size=bad)
    with pytest.raises(InputError, match="chunk_size"):
        stream_chunk_size("toy", 100, chunk_size=bad)


def test_beliefs_do_not_depend_on_the_chunk_size():
    runs = [
        bp_profile(8, 4, 2, 2, 3, [0.2, 0.6], n_samples=N, n_rules=1, seed=0, chunk_size=c)
        for c in CHUNKS
    ]
    runs += [
        bp_profile_diffusion(8, 4, 2, 2, 3, [0.5], n_samples=N, n_rules=1, seed=0, chunk_size=c)
        for c in CHUNKS[:2]
    ]
    for other in (runs[1], runs[2]):
        for key in ("u", "d", "p", "accuracy", "u_se", "accuracy_se"):
            np.testing.assert_array_equal(getattr(runs[0], key), getattr(other, key))
    np.testing.assert_array_equal(runs[3].p, runs[4].p)


def test_beliefs_measurement_equals_an_all_at_once_computation(rhm):
    """The sweep's streamed beliefs against one tree_bp call on all the strings at once (the
    strings and noise drawn here block by block from the documented streams)."""
    process, t, seed = UniformProcess(8), 0.3, 5
    streamed = beliefs_measurement(rhm, process, t, n_samples=N, seed=seed, chunk_size=7)
    levels, observations = [], []
    for b, start in enumerate(range(0, N, STREAM_BLOCK)):
        data_seq, noise_seq = np.random.SeedSequence(seed, spawn_key=(b,)).spawn(2)
        data = rhm.sample(min(STREAM_BLOCK, N - start), seed=np.random.default_rng(data_seq))
        observations.append(process.corrupt(data.x, t, seed=np.random.default_rng(noise_seq)))
        levels.append(data.levels)
    truth = [np.concatenate([lv[level] for lv in levels]) for level in range(rhm.L + 1)]
    result = tree_bp(rhm, process.leaf_likelihood(np.concatenate(observations), t))
    found = true_beliefs(result, truth)
    for key, name in (("u", "u"), ("d", "d"), ("p", "p"), ("correct", "accuracy")):
        expected = [values.mean() for values in found[key]]
        np.testing.assert_allclose(streamed[name], expected, rtol=1e-12, atol=1e-14)


def test_masked_reconstruction_streams_exactly():
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=2)
    runs = [masked_reconstruction(rhm, [0.3, 0.8], n=N, seed=1, chunk_size=c) for c in CHUNKS]
    for other in runs[1:]:
        for key in ("accuracy", "accuracy_se", "cross_entropy", "masked_fraction"):
            np.testing.assert_array_equal(getattr(runs[0], key), getattr(other, key))
    # all at once: the same strings and masks (documented streams), one BP call
    entropy = int(np.random.default_rng(1).integers(2**63, size=2)[1])
    process = MaskingProcess(8)
    x, obs = [], []
    for b, start in enumerate(range(0, N, STREAM_BLOCK)):
        data_seq, noise_seq = np.random.SeedSequence(entropy, spawn_key=(b,)).spawn(2)
        data = rhm.sample(min(STREAM_BLOCK, N - start), seed=np.random.default_rng(data_seq))
        x.append(data.x)
        obs.append(process.corrupt(data.x, 0.8, seed=np.random.default_rng(noise_seq)))
    x, obs = np.concatenate(x), np.concatenate(obs)
    marginals = tree_bp(rhm, process.leaf_likelihood(obs, 0.8)).marginals[0]
    masked = obs == process.mask
    accuracy = ((marginals.argmax(axis=-1) == x) & masked).sum() / masked.sum()
    p_true = np.take_along_axis(marginals, x[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(runs[0].accuracy[1], accuracy, rtol=1e-12)
    np.testing.assert_allclose(runs[0].cross_entropy[1], -np.log(p_true[masked]).mean(), rtol=1e-10)


def test_token_changes_do_not_depend_on_the_chunk_size(rhm):
    runs = [
        token_change_curves(rhm, MaskingProcess(8), [0.5], n=N, seed=3, chunk_size=c)
        for c in (13, None)
    ]
    for key in ("unchanged", "C", "C_tree", "chi", "chi_se"):
        np.testing.assert_array_equal(getattr(runs[0], key), getattr(runs[1], key))
