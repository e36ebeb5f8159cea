"""Throughput of exact forward-backward (:func:`hiergrammar.sampling.exact_forward_backward`).

One block is ``FORWARD_BACKWARD_BLOCK = 1024`` strings of an RHM with ``v = n_classes = 32``,
``m = 8``, ``s = 2`` (the ``discrete_diffusion`` step's grammar), noised at ``t = 0.3`` and
resampled. For each depth, process and float type it prints CPU seconds and wall seconds per
block (best of ``--repeats``), strings per CPU-second, the float64 / float32 ratio, and the CPU
time the full ``discrete_diffusion`` step needs at that speed::

    python benchmarks/exact_forward_backward.py              # L = 3, 5, 7
    python benchmarks/exact_forward_backward.py --depths 7 --repeats 5

CPU seconds (``time.process_time``) are what a quiet core would take; wall seconds also count
waiting for a busy machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hiergrammar import RHM  # noqa: E402
from hiergrammar.figures.discrete_diffusion import FULL  # noqa: E402
from hiergrammar.noise import MaskingProcess, UniformProcess  # noqa: E402
from hiergrammar.sampling import FORWARD_BACKWARD_BLOCK, exact_forward_backward  # noqa: E402


def time_block(rhm: RHM, process, dtype: type, repeats: int) -> tuple[float, float]:
    """Best (CPU seconds, wall seconds) of one block of forward-backward."""
    x = rhm.sample(FORWARD_BACKWARD_BLOCK, seed=0).x
    best_cpu, best_wall = np.inf, np.inf
    for r in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        exact_forward_backward(rhm, process, x, 0.3, seed=r, dtype=dtype)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    per_block_cpu: dict[tuple[int, str], float] = {}
    for L in args.depths:
        rhm = RHM(32, 32, 8, 2, L, seed=0)
        for process in (MaskingProcess(32), UniformProcess(32)):
            timings = {}
            for dtype in (np.float32, np.float64):
                cpu, wall = time_block(rhm, process, dtype, args.repeats)
                timings[dtype.__name__] = (cpu, wall)
                rows.append(
                    {
                        "L": L,
                        "process": process.name,
                        "dtype": dtype.__name__,
                        "cpu_s_per_block": round(cpu, 4),
                        "wall_s_per_block": round(wall, 4),
                        "strings_per_cpu_s": round(FORWARD_BACKWARD_BLOCK / cpu),
                    }
                )
            per_block_cpu[(L, process.name)] = timings["float32"][0]
            ratio = timings["float64"][0] / timings["float32"][0]
            rows.append({"L": L, "process": process.name, "cpu_ratio_float64_float32": ratio})
    # The full step runs every depth, both processes and every time on float32.
    blocks = len(FULL.t) * FULL.n_rules * FULL.n_per_rule / FORWARD_BACKWARD_BLOCK
    estimate = sum(
        per_block_cpu.get((L, p), np.nan) * blocks
        for L in FULL.depths
        for p in ("masking", "uniform")
    )
    print(json.dumps({"rows": rows, "full_step_token_change_cpu_s_estimate": estimate}, indent=1))


if __name__ == "__main__":
    main()
