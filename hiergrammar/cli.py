"""The ``hiergrammar`` command.

Each sub-command lives beside its code, in a module exposing ``register(subparsers)`` that adds
its parser and sets ``func`` (a callable taking the parsed ``args`` and returning an exit
code). Those modules import their heavy dependencies (torch) inside the handlers only, so
``hiergrammar theory critical`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules, in help order
COMMAND_MODULES = [
    "hiergrammar.cli_reproduce",
    "hiergrammar.crosscheck_cli",
    "hiergrammar.theory.cli",
    "hiergrammar.vision.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiergrammar",
        description="Random Hierarchy Models, exact tree BP, and the diffusion phase transition.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        # Bad input: one line naming the problem, no traceback.
        print(f"hiergrammar {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
