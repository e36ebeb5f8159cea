"""Sweeps: grids of measurements on Dask, resumable, into a columnar store.

A sweep is a grid (grammar parameters or grammar files x noise processes and levels x rule
draws x data draws) and one measurement. It is declared in a TOML file or as the same
structure in Python (a dict), run by :func:`run_sweep` or ``hiergrammar sweep CONFIG --out
DIR``, and read back by :func:`load` as one pandas DataFrame in long form.

The config
----------
.. code-block:: toml

    seed = 0              # seed of everything random (a non-negative integer; default 0)
    rule_draws = 4        # independent rule draws of each RHM: a count (draws 0..3) or a
                          # list of draw numbers, e.g. [4, 5]; default 1
    data_draws = 1        # independent data draws per grammar: a count or a list; default 1

    [grammar]             # one table, or [[grammar]] tables: the grid is the union
    v = 16                # vocabulary; a list of ints makes a grid axis
    n_classes = 16        # default: v
    m = [2, 4, 6]         # rules per symbol: this list is a grid axis
    s = 2                 # branching factor
    L = [3, 5]            # depth
    # rule_law = "zipf", zipf_a = 1.0, zipf_levels = [[1, 2]], shared_tuples = true: the
    # other parameters of hiergrammar.RHM. A value that is itself a list (a per-level v or
    # m, zipf_levels) is written as a list inside the axis: m = [[3, 2]].
    # file = "grammar.npz"  # instead of the RHM parameters: a grammar saved with
    #                       # Grammar.save (a list of files makes an axis; paths are relative
    #                       # to the config's folder; rule_draws must then be 1)

    [noise]               # one table, or [[noise]] tables: the grid is the union
    process = "eps"       # "eps" (t is eps), "masking", "uniform" or "gaussian"
                          # (hiergrammar.processes); a list makes a grid axis
    levels = [0.1, 0.5, 0.8]      # noise levels: times of the process's schedule; or a
                                  # range {start = 0.0, stop = 0.9, num = 10} (ends included)
    schedule = "linear"   # optional: the process's schedule (default: the process's own)
    levels_per_task = 5   # optional: levels measured by one task (default: all of them)

    [measure]
    name = "beliefs"      # a registered measurement (see hiergrammar.sweep.measurements),
                          # or any function as "package.module:function"
    n_samples = 200       # strings per task and noise level
    dtype = "float32"     # every other key is passed to the measurement as a keyword

Every key is checked before any work (:class:`~hiergrammar.validation.InputError` naming the
key). ``[grammar]`` and ``[noise]`` lists are grid axes; the grid is their product, times the
rule draws and data draws; ``[[grammar]]`` and ``[[noise]]`` tables add up. The Python form
is the same dict (``{"grammar": {...}, "noise": {...}, "measure": {...}, "seed": 0}``), given
to :func:`run_sweep` or :func:`parse_config`.

Tasks and the store
-------------------
A task is one grammar point, one rule draw, one data draw, one noise process and a group of its
levels: sized to seconds (``n_samples`` and ``levels_per_task`` set its size). Its result is
one Parquet file whose name is a readable prefix and the SHA-256 of the task's parameters
(``v16-c16-m4-s2-L3-eps-r0-d0-<20 hex>.parquet``), written atomically by whichever process
ran it. Seeds come from the parameters too (:mod:`hiergrammar.sweep.config`), so a task's file
is the same whichever worker ran it, in a first run or a resumed one, and running the sweep
again computes only the missing tasks. The store (:mod:`hiergrammar.sweep.store`) has its own
manifest ``sweep.json`` (the config, the grid's digest, each run's counts and seconds, and the
failed tasks with their errors) and ``grid.parquet`` (one row per task).

Where it runs
-------------
A Dask ``LocalCluster`` on this machine by default (one worker process per core, started and
stopped by the sweep), an existing Dask cluster (``scheduler="tcp://host:8786"``; see
``docs/sweeps.md`` for starting one with dask-jobqueue or on Kubernetes), or this process
(``scheduler="serial"``). See :mod:`hiergrammar.sweep.execution`.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> config = {
...     "seed": 1, "rule_draws": 2,
...     "grammar": {"v": 8, "m": [2, 3], "s": 2, "L": 2},
...     "noise": {"process": "eps", "levels": [0.0, 0.7]},
...     "measure": {"name": "beliefs", "n_samples": 30},
... }
>>> folder = Path(tempfile.mkdtemp()) / "store"
>>> result = run_sweep(config, folder, scheduler="serial", progress=False)
>>> result.computed                          # 2 values of m x 2 rule draws
4
>>> frame = load(folder)                     # 4 tasks x 2 noise levels x 3 tree levels
>>> frame.shape[0], sorted(frame["m"].unique().tolist())
(24, [2, 3])
>>> clean = frame[frame["noise_level"] == 0.0]
>>> float(clean["accuracy"].min())           # no noise: every symbol recovered
1.0
"""

from hiergrammar.sweep.analysis import grid_array, mean_over_draws, profile_from_frame
from hiergrammar.sweep.config import SweepConfig, Task, parse_config, read_config
from hiergrammar.sweep.execution import (
    DEFAULT_RETRIES,
    SweepFailed,
    SweepResult,
    check_sizes,
    current_scheduler,
    run_sweep,
    scheduler_for,
    sweep_frame,
    use_scheduler,
)
from hiergrammar.sweep.measurements import (
    get_measurement,
    measurements,
    register_measurement,
    unregister_measurement,
)
from hiergrammar.sweep.store import load, read_store_manifest

__all__ = [
    "DEFAULT_RETRIES",
    "SweepConfig",
    "SweepFailed",
    "SweepResult",
    "Task",
    "check_sizes",
    "current_scheduler",
    "get_measurement",
    "grid_array",
    "load",
    "mean_over_draws",
    "measurements",
    "parse_config",
    "profile_from_frame",
    "read_config",
    "read_store_manifest",
    "register_measurement",
    "run_sweep",
    "scheduler_for",
    "sweep_frame",
    "unregister_measurement",
    "use_scheduler",
]
