"""``hiergrammar teach``: write the interactive belief-propagation page (:mod:`hiergrammar.teach`).

Examples::

    hiergrammar teach --out bp.html                         # 7 variables, 8 noise levels
    hiergrammar teach --out bp.html --seed 3 --eps 0.1 0.3 0.5
    hiergrammar teach --out deep.html --v 3 --n-classes 2 --m 2 --L 3

The page is one self-contained HTML file (open it in any browser, no server or network);
``--out`` is written atomically. ``--eps`` and ``--initial-eps`` both take
``[0, 1 - 1/v]`` (:func:`~hiergrammar.teach.max_eps`: a leaf is redrawn with probability
``eps v / (v - 1)``, which reaches 1 there), checked before any work. The grammar flags are
the shared RHM flags with a tiny default
(``v = 4, n_classes = 2, m = 2, s = 2, L = 2``); the drawing allows at most
:data:`~hiergrammar.teach.MAX_LEAVES` leaves and :data:`~hiergrammar.teach.MAX_CARD` values per
variable.
"""

from __future__ import annotations

import argparse

from hiergrammar.cli.args import (
    add_check,
    add_out_argument,
    add_rhm_arguments,
    add_seed_argument,
    set_handler,
)

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``teach`` command to ``subparsers``."""
    from hiergrammar.teach import DEFAULT_EPS, TEACH_DEFAULTS

    parser = subparsers.add_parser(
        "teach",
        help="write an interactive page that steps through BP on a tiny tree (one HTML file)",
        description="Write one self-contained HTML page (no server, no network) that draws a "
        "tiny grammar's factor graph and its noisy leaves, and steps through the upward and "
        "downward passes of belief propagation one message at a time, with a slider over the "
        "noise eps. Every number is computed by the library and embedded in the page.",
    )
    add_out_argument(parser, "file", help="the HTML file to write (required)")
    # The shared flags default to the paper's model; a page needs a tiny one.
    add_rhm_arguments(parser, defaults=TEACH_DEFAULTS)
    add_seed_argument(parser, help="seed of the rules (seed), the datum (+1) and the noise (+2)")
    parser.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=None,
        metavar="EPS",
        help="the slider's noise levels, 1 to 50, each in [0, 1 - 1/v]: a leaf is redrawn "
        "with probability eps v/(v-1), which reaches 1 (no information) at 1 - 1/v "
        f"(default {' '.join(map(str, DEFAULT_EPS))}, those up to 1 - 1/v)",
    )
    parser.add_argument(
        "--initial-eps",
        type=float,
        default=None,
        metavar="EPS",
        help="the noise level shown first, in [0, 1 - 1/v] as --eps (the nearest grid point; "
        "default the grid's middle)",
    )
    add_check(parser, _check_eps_flags)
    set_handler(parser, run)


def _check_eps_flags(args: argparse.Namespace) -> None:
    """``--eps`` and ``--initial-eps`` in ``[0, 1 - 1/v]``, named by their flags, before any
    work (a ``--v`` below 2 is left to the RHM's own check)."""
    from hiergrammar.teach import check_eps_grid, check_initial_eps

    if isinstance(args.v, int) and args.v >= 2:
        if args.eps is not None:  # None: the library's default grid
            check_eps_grid(args.eps, args.v, "--eps")
        check_initial_eps(args.initial_eps, args.v, "--initial-eps")


def run(args: argparse.Namespace) -> int:
    from hiergrammar.teach import write_page
    from hiergrammar.validation import InputError

    if args.out is None:
        raise InputError("--out is required: the HTML file to write")
    path = write_page(
        args.out,
        v=args.v,
        n_classes=args.n_classes,
        m=args.m,
        s=args.s,
        L=args.L,
        seed=args.seed,
        eps=args.eps,
        initial_eps=args.initial_eps,
    )
    print(f"wrote {path}: open it in a browser")
    return 0
