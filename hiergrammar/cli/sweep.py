"""``hiergrammar sweep CONFIG --out DIR [--workers N] [--scheduler ADDRESS] [--resume]``.

Runs the sweep declared in the TOML file ``CONFIG`` (keys: :mod:`hiergrammar.sweep`) into the
store ``DIR``: on a Dask ``LocalCluster`` of ``N`` worker processes (default one per core),
started and stopped by the command, or on the existing cluster whose scheduler listens at
``ADDRESS`` (or is described by a scheduler file ``*.json``). Running it again, or with
``--resume``, computes only the tasks whose result is missing. A task that raises is run again
up to :data:`hiergrammar.sweep.DEFAULT_RETRIES` times, then recorded with its error in
``DIR/sweep.json``, and the others go on.

Exit codes: 0 every task has its result; 1 some tasks failed (listed); 2 bad input (one line);
130 interrupted (the finished tasks stay; run again to continue).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hiergrammar.cli.args import add_check, add_int_check, set_handler

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command to ``subparsers``."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of measurements (TOML) on Dask into a resumable Parquet store",
        description="Run the sweep declared in CONFIG (a TOML file: [grammar], [noise], "
        "[measure], rule_draws, seed; see docs/sweeps.md) into the store DIR: one Parquet file "
        "per task, named after its parameters, and the manifest sweep.json. Only missing tasks "
        "run, so running again resumes an interrupted sweep. A failing task is retried "
        "twice, then recorded with its error; the others go on. Read the results with "
        "hiergrammar.sweep.load(DIR).",
    )
    parser.add_argument("config", type=Path, metavar="CONFIG", help="the sweep's TOML file")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the store's folder")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local Dask cluster (default: one per core)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on an existing Dask cluster: its scheduler's address (tcp://host:8786) or "
        "scheduler file (*.json); its workers must see DIR at the same path",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep already in DIR (refused if DIR holds none)",
    )
    add_int_check(parser, "workers", "--workers", 1)

    def check(args: argparse.Namespace) -> None:
        from hiergrammar.artifacts import check_output_dir
        from hiergrammar.validation import InputError

        check_output_dir("--out", args.out)
        if args.workers is not None and args.scheduler is not None:
            raise InputError("--workers applies to the local cluster; --scheduler has its own")

    add_check(parser, check)
    set_handler(parser, run)


def run(args: argparse.Namespace) -> int:
    from hiergrammar.sweep import read_config, run_sweep

    config = read_config(args.config)
    scheduler = args.scheduler if args.scheduler is not None else "local"
    result = run_sweep(
        config, args.out, scheduler=scheduler, workers=args.workers, resume=args.resume
    )
    if result.workers:
        where = f" on {result.workers} worker(s), scheduler {result.scheduler}"
    else:
        where = "" if result.skipped == result.n_tasks else " in this process"
    print(
        f"{result.n_tasks} tasks: {result.computed} computed, {result.skipped} already there, "
        f"{len(result.failed)} failed ({result.seconds:.1f} s{where})"
    )
    for task_id, failure in list(result.failed.items())[:10]:
        print(f"  failed {task_id}: {failure['error']}")
    if len(result.failed) > 10:
        print(f"  ... and {len(result.failed) - 10} more (see {args.out / 'sweep.json'})")
    print(f"results: {args.out} (read with hiergrammar.sweep.load)")
    return 0 if result.complete else 1
