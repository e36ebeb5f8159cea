"""The ``hiergrammar`` command.

Each sub-command lives in a thin module of this package exposing ``register(subparsers)``
(``hiergrammar.cli.reproduce``, ``.crosscheck``, ``.instances``, ``.theory``, ``.sweep``,
``.teach``, and the ``vision`` group :mod:`hiergrammar.cli.vision` with its ``vision_*``
modules). Shared flags and their checks are in :mod:`hiergrammar.cli.args`. Command modules
import their heavy dependencies (sympy, torch) inside the handlers, so that building the parser
stays fast.

Errors: an :class:`~hiergrammar.validation.InputError` (bad input, detected before any work
where possible) is printed as one line and exits with code 2; any other exception is a bug and
shows its traceback. ``Ctrl-C`` exits with code 130.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from hiergrammar import __version__
from hiergrammar.cli import crosscheck, instances, reproduce, sweep, teach, theory, vision
from hiergrammar.validation import InputError

__all__ = ["COMMANDS", "OneLineErrorParser", "build_parser", "main"]

#: The sub-command modules, in help order.
COMMANDS = (reproduce, crosscheck, instances, theory, sweep, teach, vision)


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other bad input: ``PROG: error:
    MESSAGE (see PROG --help)`` and exit code 2, without argparse's usage block. Sub-command
    parsers inherit the class (argparse builds them with the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``hiergrammar`` parser with every sub-command."""
    parser = OneLineErrorParser(
        prog="hiergrammar",
        description="Random Hierarchy Models, exact tree BP, and the diffusion phase transition.",
    )
    parser.add_argument("--version", action="version", version=f"hiergrammar {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``hiergrammar`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.command_prog  # every command's set_handler records its full name
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
