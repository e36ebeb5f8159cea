"""Streaming over many samples: fixed blocks of random streams, chunks sized by the memory budget.

Work that starts from integer strings (noise them, run BP, draw trees, reduce) never needs all
``(n, d, v)`` likelihoods at once. It runs block by block and, inside a block, chunk by chunk:

* a **block** is a fixed run of :data:`STREAM_BLOCK` samples (``b*STREAM_BLOCK ..
  (b+1)*STREAM_BLOCK - 1``). Block ``b`` draws every random number of its samples from its own
  generators, spawned from the seed and ``b`` (:func:`block_generators`), in the same order
  whatever the chunks: results depend on the seed and the data only;
* a **chunk** is what is held in memory at once (the likelihoods, the BP messages). Its size
  is the largest whose working set fits the memory budget of :mod:`hiergrammar.validation`,
  at most one block (:func:`stream_chunk_size`); ``chunk_size=`` overrides it.

Reductions are summed per block (in sample order) and then over blocks, so they are
bit-identical for every chunk size.

Examples
--------
>>> chunk = stream_chunk_size("a toy stream", bytes_per_sample=1000, memory_budget="100KiB")
>>> chunk
102
>>> [(b, start, stop) for b, start, stop in stream_blocks(2500, desc="toy")]
[(0, 0, 1024), (1, 1024, 2048), (2, 2048, 2500)]
>>> list(chunk_ranges(0, 250, chunk))
[(0, 102), (102, 204), (204, 250)]
>>> noise, draws = block_generators(7, 0, 2)
>>> float(noise.random()) == float(block_generators(7, 0, 2)[0].random())
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from hiergrammar.artifacts import progress
from hiergrammar.validation import (
    InputError,
    check_int,
    check_memory,
    check_seed,
)
from hiergrammar.validation import memory_budget as resolve_budget

__all__ = [
    "STREAM_BLOCK",
    "block_generators",
    "chunk_ranges",
    "stream_blocks",
    "stream_chunk_size",
    "stream_entropy",
]

#: Samples per random stream. Fixed: changing it changes every seeded streamed result.
STREAM_BLOCK = 1024


def stream_entropy(seed: int | np.random.Generator | None, name: str = "seed") -> int:
    """The integer entropy the block generators are spawned from.

    Parameters
    ----------
    seed : int, numpy.random.Generator or None
        A non-negative int (used as is), a Generator (one 63-bit integer is drawn from it) or
        None (fresh entropy from the operating system).
    name : str
        The argument's name in error messages.

    Returns
    -------
    int
        The entropy.

    Raises
    ------
    InputError
        On a bad seed.

    Examples
    --------
    >>> stream_entropy(5)
    5
    >>> stream_entropy(np.random.default_rng(0)) == stream_entropy(np.random.default_rng(0))
    True
    """
    seed = check_seed(name, seed)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    return seed


def block_generators(
    entropy: int | Sequence[int], block: int, count: int
) -> tuple[np.random.Generator, ...]:
    """``count`` independent generators of block ``block`` of a stream.

    Parameters
    ----------
    entropy : int or sequence of int
        The stream's entropy (:func:`stream_entropy`, or several integers that name a
        condition of an experiment).
    block : int
        The block's index, ``>= 0``.
    count : int
        How many generators (e.g. one for the data, one for the noise, one for the draws).

    Returns
    -------
    tuple of numpy.random.Generator

    Examples
    --------
    >>> a, b = block_generators(3, 1, 2)
    >>> bool(a.random() != b.random())
    True
    """
    children = np.random.SeedSequence(entropy, spawn_key=(int(block),)).spawn(int(count))
    return tuple(np.random.default_rng(child) for child in children)


def stream_chunk_size(
    what: str,
    bytes_per_sample: float,
    *,
    fixed_bytes: float = 0,
    chunk_size: int | None = None,
    memory_budget: int | str | None = None,
) -> int:
    """Samples per chunk: the most whose working set fits the memory budget, at most a block.

    The working set of a chunk of ``k`` samples is ``fixed_bytes + k * bytes_per_sample``
    (``fixed_bytes``: what one block holds whatever the chunk, e.g. its strings and its noisy
    observation).

    Parameters
    ----------
    what : str
        What is streamed (for the error message).
    bytes_per_sample : float
        Working memory per sample of a chunk, ``> 0``.
    fixed_bytes : float
        Working memory of a block that does not depend on the chunk size.
    chunk_size : int, optional
        An explicit chunk size, ``>= 1`` (larger than :data:`STREAM_BLOCK` counts as one
        block); its working set must fit the budget too.
    memory_budget : int or str, optional
        Overrides the library's memory budget (``$HIERGRAMMAR_MEMORY_BUDGET``, default 4 GiB).

    Returns
    -------
    int
        The chunk size, ``1 <= chunk <= STREAM_BLOCK``.

    Raises
    ------
    InputError
        On a bad ``chunk_size``, or when not even one sample (or the given chunk) fits the
        budget: the message names the bound.

    Examples
    --------
    >>> stream_chunk_size("BP", 1000, memory_budget="1GiB")      # capped at one block
    1024
    >>> stream_chunk_size("BP", 1000, chunk_size=7)
    7
    >>> stream_chunk_size("BP", 10**6, memory_budget=10**5)      # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: BP: one sample would need 976.56 KiB, above the memory ...
    """
    per_sample = float(bytes_per_sample)
    if not per_sample > 0:
        raise InputError(f"bytes_per_sample={bytes_per_sample!r} violates bytes_per_sample > 0")
    if chunk_size is not None:
        chunk = min(check_int("chunk_size", chunk_size, 1), STREAM_BLOCK)
        check_memory(
            f"{what}: a chunk of chunk_size={chunk} samples",
            fixed_bytes + chunk * per_sample,
            memory_budget,
        )
        return chunk
    check_memory(f"{what}: one sample", fixed_bytes + per_sample, memory_budget)
    budget = resolve_budget(memory_budget)
    return int(max(1, min(STREAM_BLOCK, (budget - fixed_bytes) // per_sample)))


def stream_blocks(
    n: int, desc: str, *, disable: bool | None = None
) -> Iterator[tuple[int, int, int]]:
    """The blocks of ``n`` samples, ``(index, start, stop)``, with a progress bar.

    Parameters
    ----------
    n : int
        Number of samples, ``>= 0``.
    desc : str
        The progress bar's label (the bar appears for two blocks or more, see
        :func:`hiergrammar.artifacts.progress`).
    disable : bool, optional
        As for :func:`hiergrammar.artifacts.progress`.

    Yields
    ------
    tuple of int
        ``(block index, first sample, one past the last sample)``.

    Examples
    --------
    >>> list(stream_blocks(3, desc="toy"))
    [(0, 0, 3)]
    """
    total = -(-int(n) // STREAM_BLOCK)
    starts = range(0, int(n), STREAM_BLOCK)
    if total < 2:
        disable = True
    for b, start in enumerate(progress(starts, desc=desc, total=total, disable=disable)):
        yield b, start, min(start + STREAM_BLOCK, int(n))


def chunk_ranges(start: int, stop: int, chunk: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive ranges of at most ``chunk`` samples.

    Parameters
    ----------
    start, stop : int
        The samples of a block.
    chunk : int
        The chunk size, ``>= 1``.

    Yields
    ------
    tuple of int
        ``(first sample, one past the last sample)`` of each chunk.

    Examples
    --------
    >>> list(chunk_ranges(10, 15, 2))
    [(10, 12), (12, 14), (14, 15)]
    """
    for a in range(start, stop, chunk):
        yield a, min(a + chunk, stop)
