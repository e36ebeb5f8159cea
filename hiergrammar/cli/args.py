"""Argument helpers shared by every ``hiergrammar`` command: one declaration, one meaning.

* The RHM flags ``--v --n-classes --m --s --L`` are declared here once, with one set of
  defaults (:data:`RHM_DEFAULTS`, the paper's model ``v = n_classes = 32, m = 8, s = 2`` at a
  depth ``L = 2`` small enough for brute force); their bounds are checked by the library.
  Beside them, ``--grammar FILE`` reads any grammar saved with ``Grammar.save``
  (:func:`hiergrammar.load_grammar`): a Zipf, per-level or shared-tuple RHM, a Sparse RHM, a
  filtered grammar. It excludes the RHM flags given explicitly (the file defines the grammar);
  :func:`model_from_args` returns whichever the user chose. Commands that model only the
  uniform RHM (the mean-field theory) offer the flag too and refuse it with the reason.
* ``--seed`` is a non-negative integer (:func:`hiergrammar.validation.check_seed`).
* ``--out`` is always a path, checked before any work (:func:`add_out_argument`): a folder
  that is an existing file, a file that is an existing folder, or an unwritable location is
  refused at once.
* ``--json`` always means "print JSON to stdout" (strict JSON, see
  :func:`hiergrammar.artifacts.dumps_json`).
* ``--force`` lets a command replace the outputs of another run in its ``--out`` folder.

Checks that need more than a type run after parsing and before the command's work: a helper
registers them on the parser and :func:`set_handler` runs them; a violation is an
:class:`~hiergrammar.validation.InputError`, which :func:`hiergrammar.cli.main` prints as one
line with exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hiergrammar.artifacts import check_output_dir, check_output_file, dumps_json
from hiergrammar.validation import InputError, check_float, check_int, check_seed

__all__ = [
    "RHM_DEFAULTS",
    "add_check",
    "run_checks",
    "set_handler",
    "add_rhm_arguments",
    "model_from_args",
    "add_seed_argument",
    "add_out_argument",
    "add_device_argument",
    "add_force_argument",
    "add_json_argument",
    "add_int_check",
    "add_float_check",
    "print_json",
]

Check = Callable[[argparse.Namespace], None]
Handler = Callable[[argparse.Namespace], int | None]

#: The one set of defaults of the RHM flags.
RHM_DEFAULTS: dict[str, int] = {"v": 32, "n_classes": 32, "m": 8, "s": 2, "L": 2}

_RHM_HELP = {
    "v": "vocabulary size, v >= 2",
    "n_classes": "number of classes, 2 <= n_classes and n_classes * m <= v**s",
    "m": "rules per symbol, 1 <= m <= v**(s-1)",
    "s": "branching factor, s >= 2",
    "L": "depth, L >= 1 (the root is level L, the leaves level 0)",
}
_RHM_FLAGS = {"v": "--v", "n_classes": "--n-classes", "m": "--m", "s": "--s", "L": "--L"}


def add_check(parser: argparse.ArgumentParser, check: Check) -> None:
    """Run ``check(args)`` after parsing, before the command's work (see :func:`set_handler`)."""
    checks = list(parser.get_default("_checks") or [])
    checks.append(check)
    parser.set_defaults(_checks=checks)


def run_checks(args: argparse.Namespace) -> None:
    """Run the checks registered on the parser that produced ``args``."""
    for check in getattr(args, "_checks", None) or []:
        check(args)


def set_handler(parser: argparse.ArgumentParser, handler: Handler) -> None:
    """Make ``handler(args)`` the command of ``parser``: ``args.func`` runs the registered
    checks first, then the handler, and returns its exit code."""

    def func(args: argparse.Namespace) -> int:
        run_checks(args)
        return int(handler(args) or 0)

    func.__name__ = func.__qualname__ = getattr(handler, "__name__", "handler")
    # The full name (``hiergrammar theory critical``) prefixes this command's error lines, as
    # argparse's own errors for it do.
    parser.set_defaults(func=func, command_prog=parser.prog)


class _RHMFlag(argparse.Action):
    """Store an RHM flag's value and remember that the user gave it (``args._rhm_given``), so
    that ``--grammar`` can refuse flags given explicitly but not their defaults."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = list(getattr(namespace, "_rhm_given", None) or [])
        namespace._rhm_given = [*given, option_string]


def add_rhm_arguments(
    parser: argparse.ArgumentParser,
    names: Sequence[str] = ("v", "n_classes", "m", "s", "L"),
    *,
    grammar: bool = False,
    defaults: Mapping[str, int] | None = None,
) -> None:
    """Add the RHM flags ``names`` (from ``v, n_classes, m, s, L``) and ``--grammar FILE``.

    The values land in ``args.v``, ``args.n_classes``, ``args.m``, ``args.s`` and ``args.L``;
    the library checks their bounds (an :class:`~hiergrammar.validation.InputError`). Their
    defaults are :data:`RHM_DEFAULTS`, except those that ``defaults`` (flag dest -> default,
    e.g. ``{"L": 3}``) replaces for a command that needs another model by default; each flag's
    help shows the default it has. With ``grammar=True`` the command takes any grammar file
    (``args.grammar``, loaded by the checks into ``args.grammar_model``; see
    :func:`model_from_args`); otherwise the command models only the uniform RHM and
    ``--grammar`` is refused with that reason.

    Raises
    ------
    ValueError
        If ``names`` or ``defaults`` name a flag that is not an RHM flag, or ``defaults`` names
        one that ``names`` leaves out (a programming error, not bad input).
    """
    unknown = sorted(set(names) - set(RHM_DEFAULTS))
    if unknown:
        raise ValueError(f"names {unknown} are not RHM flags (one of {list(RHM_DEFAULTS)})")
    chosen = {**RHM_DEFAULTS}
    if defaults is not None:
        stray = sorted(set(defaults) - set(names))
        if stray:
            raise ValueError(f"defaults {stray} name no flag of names={list(names)}")
        chosen.update(defaults)
    for name in names:
        parser.add_argument(
            _RHM_FLAGS[name],
            dest=name,
            type=int,
            default=chosen[name],
            action=_RHMFlag,
            metavar=name.upper() if name != "L" else "L",
            help=f"{_RHM_HELP[name]} (default {chosen[name]})",
        )
    flags = " ".join(_RHM_FLAGS[name] for name in names)
    parser.add_argument(
        "--grammar",
        type=Path,
        default=None,
        metavar="FILE",
        help=(
            f"a grammar file (Grammar.save, hiergrammar.load_grammar) instead of {flags}"
            if grammar
            else "not taken here: this command models only the uniform RHM; give " + flags
        ),
    )

    def check(args: argparse.Namespace) -> None:
        args.grammar_model = None
        if args.grammar is None:
            return
        if not grammar:
            raise InputError(
                f"--grammar is not taken by this command: it models only {_UNIFORM_RHM}; give "
                f"its parameters with {flags}"
            )
        given = getattr(args, "_rhm_given", None) or []
        if given:
            raise InputError(
                f"--grammar FILE and the RHM flags ({', '.join(sorted(set(given)))}) are "
                "mutually exclusive: the file defines the grammar"
            )
        from hiergrammar.grammar_io import load_grammar

        args.grammar_model = load_grammar(args.grammar)

    add_check(parser, check)


#: What the commands without ``--grammar`` model (as :data:`hiergrammar.rhm.UNIFORM_RHM`).
_UNIFORM_RHM = "the uniform RHM (scalar v and m, rule_law='uniform', shared_tuples=False)"


def model_from_args(args: argparse.Namespace, seed: int | None = None) -> Any:
    """The grammar a command runs on: the ``--grammar`` file's, else ``RHM(v, n_classes, m, s,
    L, seed)`` from the RHM flags (the library checks their bounds)."""
    loaded = getattr(args, "grammar_model", None)
    if loaded is not None:
        return loaded
    from hiergrammar.rhm import RHM

    return RHM(v=args.v, n_classes=args.n_classes, m=args.m, s=args.s, L=args.L, seed=seed)


def add_seed_argument(
    parser: argparse.ArgumentParser,
    default: int = 0,
    help: str = "seed of every random draw",
    *,
    flag: str = "--seed",
) -> None:
    """Add ``--seed`` (or another seed flag ``flag``, e.g. ``--data-seed``): a non-negative
    integer (default ``default``), checked after parsing with the message of every seed."""
    action = parser.add_argument(
        flag, type=int, default=default, metavar="N", help=f"{help} (default {default})"
    )
    add_check(
        parser,
        lambda args: check_seed(flag, getattr(args, action.dest), allow_generator=False),
    )


def add_out_argument(
    parser: argparse.ArgumentParser,
    kind: str,
    default: str | None = None,
    help: str = "",
    *,
    required: bool = False,
) -> None:
    """Add ``--out PATH``; ``kind`` is ``"folder"`` or ``"file"``. The path is checked before
    any work (:func:`hiergrammar.artifacts.check_output_dir` / ``check_output_file``);
    ``required=True`` makes argparse ask for it."""
    if kind not in ("folder", "file"):
        raise ValueError(f"kind={kind!r} is not 'folder' or 'file'")
    parser.add_argument(
        "--out",
        type=Path,
        required=required,
        default=None if default is None else Path(default),
        metavar="DIR" if kind == "folder" else "FILE",
        help=help + (f" (default {default})" if default is not None else ""),
    )
    checker = check_output_dir if kind == "folder" else check_output_file

    def check(args: argparse.Namespace) -> None:
        if args.out is not None:
            checker("--out", args.out)

    add_check(parser, check)


def add_device_argument(
    parser: argparse.ArgumentParser,
    help: str = "cpu, cuda, cuda:N or mps (default: cuda if available)",
) -> None:
    """Add ``--device NAME`` (default None, the command's own choice).

    A given name is checked after parsing, before any work, by
    :func:`hiergrammar.vision.device.resolve_device` (torch is imported then, not when the
    parser is built): ``--device banana``, or ``cuda`` on a machine without CUDA, is a one-line
    error. ``args.device`` keeps the string the user gave.
    """
    parser.add_argument("--device", default=None, metavar="NAME", help=help)

    def check(args: argparse.Namespace) -> None:
        if args.device is not None:
            from hiergrammar.vision.device import resolve_device

            resolve_device(args.device, "--device")

    add_check(parser, check)


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: delete the outputs of another run in ``--out`` first."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="if --out holds the outputs of a run with other parameters, delete them first",
    )


def add_json_argument(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """Add ``--json``: print ``what`` as JSON to stdout instead of text."""
    parser.add_argument(
        "--json", action="store_true", help=f"print {what} as JSON to stdout instead of text"
    )


def _values(value: Any) -> list:
    """The values of a flag: a list for ``nargs`` flags, else the one value."""
    return list(value) if isinstance(value, list | tuple) else [value]


def add_int_check(parser: argparse.ArgumentParser, dest: str, flag: str, low: int) -> None:
    """Check after parsing that ``args.<dest>`` (if not None) is an integer ``>= low`` (every
    value of an ``nargs`` flag)."""

    def check(args: argparse.Namespace) -> None:
        value = getattr(args, dest)
        if value is not None:
            for item in _values(value):
                check_int(flag, item, low=low)

    add_check(parser, check)


def add_float_check(
    parser: argparse.ArgumentParser,
    dest: str,
    flag: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Check after parsing that ``args.<dest>`` (if not None) is a finite number in bounds
    (every value of an ``nargs`` flag)."""

    def check(args: argparse.Namespace) -> None:
        value = getattr(args, dest)
        if value is not None:
            for item in _values(value):
                check_float(flag, item, low, high, low_open=low_open, high_open=high_open)

    add_check(parser, check)


def print_json(data: Any) -> None:
    """Print ``data`` as strict JSON (one indented document) to stdout."""
    print(dumps_json(data))
