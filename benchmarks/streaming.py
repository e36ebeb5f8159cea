"""Streamed exact forward-backward on many strings: time and peak memory.

The target of the streaming work: exact forward-backward
(:func:`hiergrammar.sampling.exact_forward_backward`) of 5x10^5 strings of an RHM with
``v = n_classes = 32``, ``m = 8``, ``s = 2``, ``L = 6`` in under 2 GB of peak memory. The
strings are drawn first (in blocks, only the leaves kept), then noised and resampled in one
call, which streams them chunk by chunk. It prints the wall and CPU time, strings per second,
the chunk size the memory budget gave, the peak resident set size of the process
(``resource.getrusage().ru_maxrss``, before and after the run) and, unless
``--no-tracemalloc``, the peak of the Python and numpy allocations during the call
(``tracemalloc``; the numba kernel's own scratch is not traced)::

    python benchmarks/streaming.py                       # n = 500000, L = 6, masking, t = 0.5
    python benchmarks/streaming.py --n 100000 --dtype float32 --memory-budget 1GiB
    python benchmarks/streaming.py --json

The inputs (``n * d`` int64 leaves) and the outputs (every level of the new trees and the
observation) are part of the peak; ``--no-observation`` drops the returned observation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hiergrammar import RHM  # noqa: E402
from hiergrammar.processes import EpsProcess, MaskingProcess, UniformProcess  # noqa: E402
from hiergrammar.sampling import exact_forward_backward  # noqa: E402
from hiergrammar.validation import format_bytes  # noqa: E402

PROCESSES = {"masking": MaskingProcess, "uniform": UniformProcess, "eps": EpsProcess}


def peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kib) * (1 if sys.platform == "darwin" else 1024)


def strings(rhm: RHM, n: int, seed: int) -> np.ndarray:
    """``n`` strings of ``rhm``, drawn in pieces so that only the leaves are ever held whole."""
    x = np.empty((n, rhm.d), dtype=np.int64)
    piece = 65536
    for k, start in enumerate(range(0, n, piece)):
        stop = min(start + piece, n)
        x[start:stop] = rhm.sample(stop - start, seed=seed + k).x
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500_000, help="strings (default 5e5)")
    parser.add_argument("--L", type=int, default=6)
    parser.add_argument("--v", type=int, default=32)
    parser.add_argument("--n-classes", type=int, default=32)
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--s", type=int, default=2)
    parser.add_argument("--process", choices=sorted(PROCESSES), default="masking")
    parser.add_argument("--t", type=float, default=0.5)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--backend", default=None, help="numpy, numba or torch (default: fastest)")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--memory-budget", default=None, help="e.g. 1GiB (default: the library's)")
    parser.add_argument("--no-observation", action="store_true")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    rhm = RHM(args.v, args.n_classes, args.m, args.s, args.L, seed=args.seed)
    process = PROCESSES[args.process](args.v)
    x = strings(rhm, args.n, args.seed + 1)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    kwargs = dict(
        dtype=dtype,
        backend=args.backend,
        chunk_size=args.chunk_size,
        memory_budget=args.memory_budget,
        keep_observation=not args.no_observation,
    )
    # Compile the kernels and warm the caches outside the measurement.
    exact_forward_backward(rhm, process, x[:64], args.t, seed=args.seed, **kwargs)
    rss_before = peak_rss()
    if not args.no_tracemalloc:
        tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    result = exact_forward_backward(rhm, process, x, args.t, seed=args.seed, **kwargs)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    traced = None
    if not args.no_tracemalloc:
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_after = peak_rss()
    out = {
        "n": args.n,
        "L": args.L,
        "v": args.v,
        "n_classes": args.n_classes,
        "m": args.m,
        "s": args.s,
        "process": args.process,
        "t": args.t,
        "dtype": args.dtype,
        "backend": args.backend,
        "chunk_size": result.chunk_size,
        "memory_budget": args.memory_budget or os.environ.get("HIERGRAMMAR_MEMORY_BUDGET"),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "samples_per_s": round(args.n / wall),
        "us_per_sample": round(1e6 * wall / args.n, 2),
        "peak_rss_bytes_before_call": rss_before,
        "peak_rss_bytes": rss_after,
        "tracemalloc_peak_bytes": traced,
        "valid_fraction": float(rhm.parse(result.x[:10000]).valid.mean()),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"exact forward-backward: n={args.n} L={args.L} v={args.v} n_classes={args.n_classes} "
        f"m={args.m} s={args.s} {args.process} t={args.t} {args.dtype} "
        f"backend={args.backend or 'default'}"
    )
    print(f"  chunk size        {result.chunk_size} strings")
    print(f"  wall time         {wall:.1f} s  (CPU {cpu:.1f} s)")
    print(
        f"  throughput        {args.n / wall:,.0f} strings/s  ({1e6 * wall / args.n:.1f} us each)"
    )
    print(
        f"  peak RSS          {format_bytes(rss_after)}  "
        f"(before the call: {format_bytes(rss_before)}; target < 2 GB)"
    )
    if traced is not None:
        print(f"  tracemalloc peak  {format_bytes(traced)}  (Python and numpy allocations)")
    print(f"  valid strings     {out['valid_fraction']:.4f} of the first 10^4")


if __name__ == "__main__":
    main()
