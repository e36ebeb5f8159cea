"""``hiergrammar reproduce``: the main job (see :mod:`hiergrammar.reproduce`)."""

from __future__ import annotations

import argparse

from hiergrammar.reproduce import STEPS, reproduce


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run the paper's figures on CPU defaults; writes PNGs, data and report.md",
    )
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds (a smoke test)")
    p.add_argument("--only", nargs="+", choices=[n for n, _ in STEPS], help="run only these steps")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    report = reproduce(args.out, seed=args.seed, quick=args.quick, only=args.only)
    print(f"wrote {report}")
    return 0
