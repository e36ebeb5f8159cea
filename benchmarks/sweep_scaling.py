"""Sweep benchmark: the same grid on 1 and 2 local Dask workers, the scheduling overhead per
task, and the time to resume a finished sweep.

    python -m benchmarks.sweep_scaling            # about 2-3 minutes on two quiet cores
    python -m benchmarks.sweep_scaling --tiny     # a smoke test (seconds)

Prints, for a grid of exact-BP tasks (``beliefs`` on RHMs with v = 16, L = 5..7):

* the wall time in this process without Dask (``scheduler="serial"``), on a LocalCluster of 1
  worker and of 2 workers (clusters started and warmed up before the clock starts; their
  start-up time is printed apart), and the speedup 1 -> 2 workers (target >= 1.7x on two
  cores);
* the scheduling overhead per task, in ms: on one worker, wall time minus the seconds the tasks
  spent measuring and writing, per task; and the same for no-op tasks (a measurement that
  returns a constant), against the same no-op tasks run in this process;
* the time to resume a finished sweep (nothing to compute: open the store, list its files),
  for this grid and for a grid of 4,000 finished tasks.

The machine's load average is printed with every figure, and the share of a core each worker
got: on a shared machine the numbers move with them (with the kernel's autogroup scheduling,
the processes of one login session share that session's share of the cores, so two workers
cannot beat one while another login's job keeps a core busy).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from hiergrammar.kernels.numba_bp import compile_kernels
from hiergrammar.sweep import register_measurement, run_sweep


def noop(grammar, process, t, *, n_samples, seed):
    """A measurement that costs nothing: one row, a constant."""
    return {"value": 1.0}


register_measurement("benchmark_noop", noop, replace=True)


def grid(tiny: bool) -> dict:
    if tiny:
        return {
            "seed": 0,
            "rule_draws": 2,
            "grammar": {"v": 8, "m": [2, 3], "s": 2, "L": [3, 4]},
            "noise": {"process": "eps", "levels": [0.2, 0.5, 0.8], "levels_per_task": 3},
            "measure": {"name": "beliefs", "n_samples": 50, "dtype": "float32"},
        }
    return {
        "seed": 0,
        "rule_draws": 4,
        "grammar": {"v": 16, "m": [3, 6], "s": 2, "L": [5, 6, 7]},
        "noise": {
            "process": "eps",
            "levels": {"start": 0.1, "stop": 0.9, "num": 8},
            "levels_per_task": 4,
        },
        "measure": {"name": "beliefs", "n_samples": 400, "dtype": "float32"},
    }


def noop_grid(n_tasks: int) -> dict:
    """``n_tasks`` no-op tasks: one per rule draw of a tiny RHM."""
    return {
        "seed": 0,
        "rule_draws": n_tasks,
        "grammar": {"v": 4, "m": 2, "s": 2, "L": 1},
        "noise": {"process": "eps", "levels": [0.5]},
        "measure": {"name": "benchmark_noop", "n_samples": 1},
    }


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f})"


def local_cluster(workers: int):
    """The library's own local cluster (hiergrammar.sweep.execution), started now."""
    from hiergrammar.sweep.execution import SharedScheduler

    start = time.perf_counter()
    shared = SharedScheduler("local", workers)
    client = shared.client()
    return shared, client, time.perf_counter() - start


def timed(config: dict, folder: Path, scheduler) -> tuple[float, object]:
    start = time.perf_counter()
    result = run_sweep(config, folder, scheduler=scheduler, progress=False)
    assert result.complete, result.failed
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a smoke test of a few seconds")
    args = parser.parse_args(argv)
    config = grid(args.tiny)
    n_noop = 40 if args.tiny else 400
    n_resume = 200 if args.tiny else 4000
    print(f"cores: {os.cpu_count()}; {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        compile_kernels((np.float32,))  # here too: every side starts with the kernels loaded
        serial_wall, serial = timed(config, root / "serial", "serial")
        n = serial.n_tasks
        print(
            f"grid: {n} tasks; in this process (no Dask): {serial_wall:.2f} s wall, "
            f"{serial.compute_seconds:.2f} s in the tasks, {serial.cpu_seconds:.2f} CPU-s "
            f"({load()})"
        )
        noop_serial, _ = timed(noop_grid(n_noop), root / "noop-serial", "serial")
        walls = {}
        for workers in (1, 2):
            shared, client, started = local_cluster(workers)
            try:
                warm = noop_grid(4 * workers)  # import hiergrammar in every worker first
                warm["seed"] = 99
                timed(warm, root / f"warm-{workers}", client)
                # ... and load the BP kernels from numba's cache (about 0.6 s per process,
                # once): a cost per worker, like its start-up, not per task.
                client.run(compile_kernels, (np.float32,))
                wall, result = timed(config, root / f"dask-{workers}", client)
                walls[workers] = wall
                share = result.cpu_seconds / max(result.compute_seconds, 1e-9)
                line = (
                    f"LocalCluster {workers} worker(s): started in {started:.2f} s; grid "
                    f"{wall:.2f} s wall, {result.compute_seconds:.2f} s in the tasks, of which "
                    f"{result.cpu_seconds:.2f} CPU-s (each worker got {share:.0%} of a core; "
                    f"{load()})"
                )
                print(line)
                if workers == 1:
                    per_task = (wall - result.compute_seconds) / n * 1e3
                    noop_wall, _ = timed(noop_grid(n_noop), root / "noop-dask", client)
                    noop_ms = (noop_wall - noop_serial) / n_noop * 1e3
                    print(
                        f"scheduling overhead per task (1 worker): {per_task:.1f} ms on the grid "
                        f"(wall - task seconds); {noop_ms:.1f} ms for {n_noop} no-op tasks "
                        f"({noop_wall / n_noop * 1e3:.1f} ms each on Dask vs "
                        f"{noop_serial / n_noop * 1e3:.1f} ms each in this process) ({load()})"
                    )
            finally:
                shared.close()
        print(f"speedup 1 -> 2 workers: {walls[1] / walls[2]:.2f}x (target >= 1.7x)")
        resume_wall, resumed = timed(config, root / "dask-2", "local")
        assert resumed.computed == 0
        print(f"resume of the finished grid ({n} tasks): {resume_wall * 1e3:.0f} ms")
        timed(noop_grid(n_resume), root / "many", "serial")
        many_wall, _ = timed(noop_grid(n_resume), root / "many", "local")
        print(f"resume of a finished grid of {n_resume} tasks: {many_wall * 1e3:.0f} ms ({load()})")


if __name__ == "__main__":
    main()
