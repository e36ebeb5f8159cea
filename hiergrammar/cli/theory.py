"""``hiergrammar theory …``: the symbolic mean-field theory from the command line.

* ``hiergrammar theory critical --v 32 --m 8 --s 2 [--n-classes N] [--json]``: the critical
  noise ``eps*`` of the deep-tree transition, exactly (``17/24`` there) and as a float, with
  ``F'(1)``, ``F'(1/v)``, ``u*`` and whether a transition exists (and why not, if not).
* ``hiergrammar theory derive [--out PATH] [--format latex|markdown]``: the whole symbolic
  derivation, printed or written atomically (the format defaults to LaTeX for a ``.tex``
  path, Markdown otherwise).

sympy is imported inside the handlers, so building the ``hiergrammar`` parser stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _critical(args: argparse.Namespace) -> int:
    from hiergrammar.theory.symbolic import critical_point

    point = critical_point(args.v, args.m, args.s, n_classes=args.n_classes)
    if args.json:
        print(json.dumps(point.to_dict()))
    else:
        print(point.summary())
    return 0


def _derive(args: argparse.Namespace) -> int:
    from hiergrammar.theory.latex import render

    fmt = args.format
    if fmt is None:
        fmt = "latex" if args.out is not None and args.out.suffix == ".tex" else "markdown"
    text = render(fmt)
    if args.out is None:
        sys.stdout.write(text)
    else:
        from hiergrammar.artifacts import save_text

        save_text(args.out, text)
        print(f"wrote {args.out} ({fmt})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``theory`` command and its sub-commands to ``subparsers``."""
    parser = subparsers.add_parser(
        "theory",
        help="mean-field theory: symbolic derivation and exact critical noise",
        description="The annealed mean-field theory of BP on the RHM, derived with sympy.",
    )
    sub = parser.add_subparsers(dest="theory_command", metavar="THEORY_COMMAND")
    sub.required = True

    critical = sub.add_parser(
        "critical",
        help="critical noise eps* of the class-recovery transition",
        description="Exact and float eps* = 1 - u* (u* the repulsive fixed point of the "
        "upward map F), F'(1) and whether a transition exists.",
    )
    critical.add_argument("--v", type=int, required=True, help="vocabulary size (>= 2)")
    critical.add_argument(
        "--m", type=int, required=True, help="rules per symbol (1 <= m <= v**(s-1))"
    )
    critical.add_argument("--s", type=int, required=True, help="branching factor (>= 2)")
    critical.add_argument(
        "--n-classes",
        type=int,
        default=None,
        help="number of classes (only validated: it enters the root "
        "level of the map, not the fixed point)",
    )
    critical.add_argument("--json", action="store_true", help="print one JSON object")
    critical.set_defaults(func=_critical)

    derive = sub.add_parser(
        "derive",
        help="print or write the symbolic derivation (LaTeX or Markdown)",
        description="The step-by-step sympy derivation of F, G, p, the fixed points and eps*.",
    )
    derive.add_argument(
        "--out", type=Path, default=None, help="write to this file (atomically) instead of printing"
    )
    derive.add_argument(
        "--format",
        choices=("latex", "markdown"),
        default=None,
        help="output format (default: latex for a .tex --out, else markdown)",
    )
    derive.set_defaults(func=_derive)
