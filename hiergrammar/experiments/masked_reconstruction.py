"""The Bayes-optimal masked-token predictor: exact BP on masked strings.

A masked diffusion language model is trained to predict each masked token from the visible
ones. On a grammar the best possible prediction is the exact posterior marginal of the leaf
given the kept leaves, which tree BP computes. Its accuracy (argmax equals the true token) and
its cross-entropy (mean ``-log P(true token)`` over masked leaves, the per-token loss of a
masked model) against the masking time are the values any learned masked model can be held
against.

Examples
--------
>>> from hiergrammar import RHM
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> rec = masked_reconstruction(rhm, t=[0.2, 0.9], n=300, seed=0)
>>> rec.accuracy.shape
(2,)
>>> bool(rec.accuracy[0] > rec.accuracy[1])   # fewer visible tokens, worse predictions
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hiergrammar.bp import bp_bytes_per_set, tree_bp
from hiergrammar.grammar import Grammar
from hiergrammar.processes import MaskingProcess
from hiergrammar.schedules import Schedule
from hiergrammar.streaming import (
    STREAM_BLOCK,
    block_generators,
    chunk_ranges,
    stream_blocks,
    stream_chunk_size,
)
from hiergrammar.validation import check_int, check_real_array, make_rng

__all__ = ["MaskedReconstruction", "masked_reconstruction", "reconstruction_chunk_size"]


@dataclass(frozen=True)
class MaskedReconstruction:
    """Bayes-optimal prediction of masked leaves against the masking time.

    Attributes
    ----------
    t : numpy.ndarray
        ``(n_t,)`` times.
    accuracy : numpy.ndarray
        ``(n_t,)``: fraction of masked leaves whose BP marginal's argmax is the true token
        (NaN where nothing was masked).
    accuracy_se : numpy.ndarray
        ``(n_t,)``: its standard error over samples (per-sample accuracies, weighted by their
        number of masked leaves).
    cross_entropy : numpy.ndarray
        ``(n_t,)``: mean ``-log P(true token | visible tokens)`` over masked leaves, in nats.
    masked_fraction : numpy.ndarray
        ``(n_t,)``: fraction of leaves masked.
    n : int
        Samples per time.
    """

    t: np.ndarray
    accuracy: np.ndarray
    accuracy_se: np.ndarray
    cross_entropy: np.ndarray
    masked_fraction: np.ndarray
    n: int


def reconstruction_chunk_size(
    grammar: Grammar,
    n: int,
    *,
    dtype: type = np.float64,
    chunk_size: int | None = None,
    memory_budget: int | str | None = None,
) -> int:
    """Strings per BP call of :func:`masked_reconstruction` on ``n`` strings: the largest whose
    working set (leaf evidence, BP, the per-leaf scores) fits the memory budget, with each
    block's trees and observations held whatever the chunk.

    Parameters
    ----------
    grammar : Grammar
    n : int
        Strings.
    dtype : np.float32 or np.float64
    chunk_size : int, optional
        An explicit chunk size, checked against the budget.
    memory_budget : int or str, optional
        Overrides the library's memory budget.

    Returns
    -------
    int
        ``1 <= chunk <= STREAM_BLOCK``.

    Raises
    ------
    InputError
        When not even one string (or the given chunk) fits the budget.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> reconstruction_chunk_size(RHM(8, 4, 2, 2, 2, seed=0), 100, chunk_size=10)
    10
    """
    d, v = grammar.d, grammar.cards[0]
    return stream_chunk_size(
        "masked reconstruction",
        d * v * np.dtype(dtype).itemsize + bp_bytes_per_set(grammar, dtype) + 8 * 4 * d,
        fixed_bytes=min(STREAM_BLOCK, n) * 8 * (grammar.n_nodes + d),
        chunk_size=chunk_size,
        memory_budget=memory_budget,
    )


def masked_reconstruction(
    grammar,
    t: Sequence[float] | np.ndarray,
    n: int,
    seed: int | np.random.Generator | None = 0,
    *,
    schedule: str | Schedule = "linear",
    chunk_size: int | None = None,
    dtype: type = np.float64,
    memory_budget: int | str | None = None,
) -> MaskedReconstruction:
    """Accuracy and cross-entropy of exact BP on masked tokens, for each masking time.

    Parameters
    ----------
    grammar : RHM
        The model.
    t : array_like
        ``(n_t,)`` times of the masking schedule.
    n : int
        Strings per time, ``n >= 1``.
    seed : int, Generator or None
        Seed of the strings and of the masks. Each time streams its strings in blocks of
        :data:`~hiergrammar.streaming.STREAM_BLOCK` with their own random streams
        (:mod:`hiergrammar.streaming`).
    schedule : str or Schedule
        The masking schedule (default ``"linear"``: ``alpha = 1 - t``).
    chunk_size : int, optional
        Strings per BP call, ``>= 1``; default the largest that fits the memory budget (at
        most one block). The result does not depend on it.
    dtype : np.float32 or np.float64
        Float type of BP (float32: about twice as fast, marginals exact to ~1e-6).
    memory_budget : int or str, optional
        Overrides the library's memory budget (it sizes the chunks).

    Returns
    -------
    MaskedReconstruction

    Raises
    ------
    InputError
        For bad arguments.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rec = masked_reconstruction(RHM(8, 4, 2, 2, 2, seed=0), t=[1.0], n=100, seed=0)
    >>> float(rec.masked_fraction[0])             # alpha(1) = 0: everything is masked
    1.0
    """
    n = check_int("n", n, 1)
    times = check_real_array("t", t, ndim=1)
    process = MaskingProcess(grammar.v, schedule=schedule)
    process.alpha(times)
    rng = make_rng(seed)
    entropies = [int(e) for e in rng.integers(2**63, size=times.size)]
    chunk = reconstruction_chunk_size(
        grammar, n, dtype=dtype, chunk_size=chunk_size, memory_budget=memory_budget
    )
    accuracy = np.full(times.size, np.nan)
    accuracy_se = np.full(times.size, np.nan)
    cross_entropy = np.full(times.size, np.nan)
    masked_fraction = np.empty(times.size)
    for k, time in enumerate(times):
        hit = np.empty(n, dtype=np.int64)  # per string: masked leaves predicted right
        count = np.empty(n, dtype=np.int64)  # per string: masked leaves
        nll = 0.0
        for b, start, stop in stream_blocks(n, desc=f"masked reconstruction t={time:g}"):
            data_rng, noise_rng = block_generators(entropies[k], b, 2)
            data = grammar.sample(stop - start, seed=data_rng)
            obs = process.corrupt(data.x, float(time), seed=noise_rng)
            # per string: -log P(true token) summed over its masked leaves
            block_nll = np.empty(stop - start)
            for a, z in chunk_ranges(0, stop - start, chunk):
                evidence = process.leaf_likelihood(obs[a:z], float(time), dtype=dtype)
                marginals = tree_bp(
                    grammar, evidence, dtype=dtype, memory_budget=memory_budget
                ).marginals[0]
                truth = data.x[a:z]
                masked = obs[a:z] == process.mask
                p_true = np.take_along_axis(marginals, truth[..., None], axis=-1)[..., 0]
                right = (marginals.argmax(axis=-1) == truth) & masked
                hit[start + a : start + z] = right.sum(axis=1)
                count[start + a : start + z] = masked.sum(axis=1)
                with np.errstate(divide="ignore"):
                    loss = -np.log(p_true.astype(np.float64))
                block_nll[a:z] = np.where(masked, loss, 0.0).sum(axis=1)
            nll += float(block_nll.sum())
        total = count.sum()
        masked_fraction[k] = total / (n * grammar.d)
        if total == 0:
            continue
        accuracy[k] = hit.sum() / total
        cross_entropy[k] = nll / total
        # Ratio estimator's standard error: residuals of the per-sample hits.
        resid = hit - accuracy[k] * count
        mean_count = count.mean()
        if n > 1:
            accuracy_se[k] = np.sqrt((resid**2).sum() / (n * (n - 1))) / mean_count
    return MaskedReconstruction(
        t=times,
        accuracy=accuracy,
        accuracy_se=accuracy_se,
        cross_entropy=cross_entropy,
        masked_fraction=masked_fraction,
        n=n,
    )
