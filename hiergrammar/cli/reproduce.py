"""``hiergrammar reproduce``: the main job (see :mod:`hiergrammar.reproduce`)."""

from __future__ import annotations

import argparse

from hiergrammar.cli.args import (
    add_force_argument,
    add_out_argument,
    add_seed_argument,
    set_handler,
)
from hiergrammar.reproduce import STEP_NAMES

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` command to ``subparsers``."""
    parser = subparsers.add_parser(
        "reproduce",
        help="run the paper's figures on CPU; writes PNGs, data, report.md and run.json",
        description="Run every figure step into one output folder: PNG figures, the data "
        "behind them (NPZ, JSON), report.md and the manifest run.json (written last: every "
        "file with its SHA-256). A step whose optional extra is missing is skipped with the "
        "install hint.",
    )
    add_out_argument(parser, "folder", default="results", help="output folder")
    add_seed_argument(parser)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, under a minute")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="STEP",
        help=f"run only these steps, from {', '.join(STEP_NAMES)}",
    )
    add_force_argument(parser)
    set_handler(parser, run)


def run(args: argparse.Namespace) -> int:
    from hiergrammar.artifacts import read_manifest
    from hiergrammar.reproduce import reproduce

    report = reproduce(args.out, seed=args.seed, quick=args.quick, only=args.only, force=args.force)
    manifest = read_manifest(report.parent) or {}
    steps = manifest.get("steps", {})
    if manifest.get("kernel_preparation_seconds") is not None:
        seconds = manifest["kernel_preparation_seconds"]
        print(f"BP kernels: {seconds:.1f} s to compile (once per installation) or load")
    for name, info in steps.items():
        if info["status"] == "skipped":
            print(f"{name}: skipped: {info['reason']}")
        else:
            print(
                f"{name}: {info['seconds']:.1f} s (budget {info['budget']:.0f} s, {info['status']})"
            )
    print(f"wrote {report} and {report.parent / 'run.json'}")
    return 0
