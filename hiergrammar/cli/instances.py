"""``hiergrammar instances``: write the suite of UAI instances with exact answers.

Examples::

    hiergrammar instances --out uai_suite
    hiergrammar instances --out uai_small --small --json

Writes into ``--out`` one ``NAME.uai`` model per instance with ``NAME.uai.MAR`` and
``NAME.uai.PR`` (its exact marginals and log10 of its partition function), the index
``index.json`` (:mod:`hiergrammar.engines.suite` says what it holds) and the manifest
``run.json``. ``hiergrammar crosscheck --uai DIR`` then checks every engine against it.
"""

from __future__ import annotations

import argparse

from hiergrammar.cli.args import (
    add_force_argument,
    add_json_argument,
    add_out_argument,
    add_seed_argument,
    print_json,
    set_handler,
)

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``instances`` command to ``subparsers``."""
    parser = subparsers.add_parser(
        "instances",
        help="write UAI instances with exact answers, graded by difficulty",
        description="Write grammars with noisy evidence as UAI Markov networks, each with its "
        "exact marginals (.MAR) and log10 partition function (.PR), and an index.json that "
        "describes them (family, parameters, seeds, sizes, difficulty grade, flags, variable "
        "names). Check engines on them with 'hiergrammar crosscheck --uai DIR'.",
    )
    add_out_argument(parser, "folder", default="uai_instances", help="output folder")
    parser.add_argument(
        "--small",
        action="store_true",
        help="only the small subset (every grade, each instance read by pgmpy in about a second)",
    )
    add_seed_argument(parser, help="base seed of the grammars and their evidence")
    add_force_argument(parser)
    add_json_argument(parser, "the index entries")
    set_handler(parser, run)


def run(args: argparse.Namespace) -> int:
    from hiergrammar.artifacts import run_folder
    from hiergrammar.engines.suite import write_suite

    with run_folder(
        args.out,
        command="hiergrammar instances",
        parameters={"small": bool(args.small)},
        seed=args.seed,
        force=args.force,
    ) as run:
        entries = write_suite(run.path, small=args.small, seed=args.seed)
    if args.json:
        print_json({"out": str(args.out), "instances": entries})
        return 0
    header = ("instance", "grade", "vars", "factors", "largest", "log10 Z", "flags")
    rows = [
        (
            e["name"],
            f"{e['difficulty']['grade']} {e['difficulty']['label']}",
            str(e["n_variables"]),
            str(e["n_factors"]),
            str(e["largest_factor"]),
            f"{e['log10_z']:.4g}",
            ", ".join(e["flags"]),
        )
        for e in entries
    ]
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    print(f"{len(entries)} instances written to {args.out} (index.json, run.json)")
    return 0
