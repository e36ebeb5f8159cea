"""``hiergrammar crosscheck``: run every exact inference engine on one noisy RHM datum.

Examples::

    hiergrammar crosscheck --v 4 --n-classes 2 --m 2 --s 2 --L 2 --seed 0 --eps 0.3
    hiergrammar crosscheck --v 8 --m 3 --L 3 --engines tree_bp pyagrum_lazy pgmpy_bp --json
    hiergrammar crosscheck --uai uai_instances          # every engine on UAI instances
    hiergrammar crosscheck --grammar zipf.npz --eps 0.2     # any grammar saved with .save()

Exit codes: 0 when every engine that ran agrees with the reference within ``--tol`` (skipped
engines do not count); 1 when some engine's numbers differ beyond ``--tol`` (this wins over an
engine error: a numeric disagreement is the finding the command exists for); 2 for bad input
(one line; also a flag that the mode would ignore, such as ``--eps`` with ``--uai``); 3 when
an engine failed with an error. It writes no files: ``--json`` prints the
result to stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hiergrammar.cli.args import (
    add_check,
    add_float_check,
    add_int_check,
    add_json_argument,
    add_rhm_arguments,
    add_seed_argument,
    model_from_args,
    print_json,
    set_handler,
)
from hiergrammar.validation import InputError

__all__ = ["AGREE", "DISAGREE", "INPUT_ERROR", "ENGINE_ERROR", "register", "exit_code", "run"]

#: Exit codes.
AGREE, DISAGREE, INPUT_ERROR, ENGINE_ERROR = 0, 1, 2, 3

#: Defaults of ``--eps`` and ``--seed`` (the flags default to None: see ``_check_uai_flags``).
DEFAULT_EPS, DEFAULT_SEED = 0.3, 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``crosscheck`` command to ``subparsers``."""
    from hiergrammar.crosscheck import ENGINES, TOLERANCE
    from hiergrammar.engines import ENGINES as UAI_ENGINES

    parser = subparsers.add_parser(
        "crosscheck",
        help="compare tree BP, pgmpy, pyAgrum and brute force on one noisy datum",
        description="Sample one datum of an RHM (or of the grammar of --grammar FILE), noise it "
        "with the eps-process, and compute "
        "the marginal of every node with every exact engine; report the largest "
        "difference to the reference (brute force where the model is tiny, else "
        "our tree BP). Exit code 0: all agree, 1: numbers differ, 2: bad input, "
        "3: an engine failed.",
    )
    # Registered first, so that it runs first: --uai refuses the flags of one RHM datum.
    add_check(parser, _check_uai_flags)
    add_rhm_arguments(parser, grammar=True)
    add_seed_argument(parser, help="seed of the rules, the datum and the noise")
    # --seed and --eps default to None, so that --uai can tell them given; run() fills them in.
    parser.set_defaults(seed=None)
    parser.add_argument(
        "--eps",
        type=float,
        default=None,
        help=f"eps-process noise level, 0 <= eps <= 1 (default {DEFAULT_EPS})",
    )
    add_float_check(parser, "eps", "--eps", 0.0, 1.0)
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=ENGINES + tuple(e for e in UAI_ENGINES if e not in ENGINES),
        default=None,
        help="engines to run (default: all; with --uai, those of hiergrammar.engines)",
    )
    parser.add_argument(
        "--uai",
        type=Path,
        default=None,
        metavar="FILE_OR_DIR",
        help="check the engines on UAI instances (a .uai file with .MAR/.PR answers, or a "
        "folder such as 'hiergrammar instances' writes) instead of one RHM datum; the flags "
        "of the datum (RHM flags, --grammar, --eps, --seed, --max-trees, --marginals) are "
        "refused with it",
    )
    parser.add_argument(
        "--no-workarounds",
        action="store_true",
        help="with --uai, run engines without the workarounds of their known defects",
    )
    parser.add_argument(
        "--max-trees",
        type=int,
        default=None,
        help="brute-force bound on the number of trees, >= 1 (default 200000)",
    )
    add_int_check(parser, "max_trees", "--max-trees", 1)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="skip, with the reason, an engine estimated to take longer (default 30)",
    )
    add_float_check(parser, "max_seconds", "--max-seconds", 0.0, low_open=True)
    parser.add_argument(
        "--tol", type=float, default=TOLERANCE, help=f"agreement tolerance (default {TOLERANCE:g})"
    )
    add_float_check(parser, "tol", "--tol", 0.0)
    add_json_argument(parser)
    parser.add_argument(
        "--marginals", action="store_true", help="with --json, include every engine's marginals"
    )
    set_handler(parser, run)


def _check_uai_flags(args: argparse.Namespace) -> None:
    """Refuse flags that the chosen mode would ignore: with ``--uai``, those of one RHM datum
    (the RHM flags, ``--grammar``, ``--eps``, ``--seed``, ``--max-trees``, ``--marginals``)
    given explicitly; without it, ``--no-workarounds``."""
    if args.uai is None:
        if args.no_workarounds:
            raise InputError("--no-workarounds applies only with --uai FILE_OR_DIR")
        return
    given = sorted(set(getattr(args, "_rhm_given", None) or []))
    for dest, flag in (
        ("grammar", "--grammar"),
        ("eps", "--eps"),
        ("seed", "--seed"),
        ("max_trees", "--max-trees"),
    ):
        if getattr(args, dest) is not None:
            given.append(flag)
    if args.marginals:
        given.append("--marginals")
    if given:
        raise InputError(
            f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --uai: the "
            "UAI files define the models, their evidence and their answers"
        )


def exit_code(results: list, tol: float) -> int:
    """The exit code of :func:`hiergrammar.crosscheck.overall_verdict`: :data:`DISAGREE` if an
    engine that ran differs beyond ``tol``, else :data:`ENGINE_ERROR` if an engine failed, else
    :data:`AGREE`."""
    from hiergrammar.crosscheck import overall_verdict

    return {"disagreement": DISAGREE, "error": ENGINE_ERROR, "agree": AGREE}[
        overall_verdict(results, tol)
    ]


def _model_record(grammar, args: argparse.Namespace) -> dict:
    """The model in the JSON output: the RHM flags, or the grammar file and its shape."""
    if args.grammar is None:
        return {
            "v": grammar.v,
            "n_classes": grammar.n_classes,
            "m": grammar.m,
            "s": grammar.s,
            "L": grammar.L,
            "seed": args.seed,
        }
    return {
        "grammar": str(args.grammar),
        "cards": list(grammar.cards),
        "m": [grammar.n_rules(level) for level in range(1, grammar.L + 1)],
        "s": grammar.s,
        "L": grammar.L,
        "metadata": grammar.metadata,
        "seed": args.seed,
    }


def run(args: argparse.Namespace) -> int:
    if args.uai is not None:
        from hiergrammar.cli.crosscheck_uai import run_uai

        return run_uai(args)
    from hiergrammar.crosscheck import crosscheck, format_table
    from hiergrammar.noise import eps_evidence

    args.seed = DEFAULT_SEED if args.seed is None else args.seed
    args.eps = DEFAULT_EPS if args.eps is None else args.eps
    rhm = model_from_args(args, seed=args.seed)
    datum = rhm.sample(1, seed=args.seed + 1)
    evidence = eps_evidence(datum.x, eps=args.eps, v=rhm.cards[0])[0]  # (s**L, v)
    results = crosscheck(
        rhm,
        evidence,
        engines=args.engines,
        max_trees=args.max_trees,
        max_seconds=args.max_seconds,
    )
    code = exit_code(results, args.tol)
    if args.json:
        print_json(
            {
                "model": _model_record(rhm, args),
                "eps": args.eps,
                "x": datum.x[0],
                "y": int(datum.y[0]),
                "tol": args.tol,
                "agree": code == AGREE,
                "exit_code": code,
                "engines": [r.to_dict(with_marginals=args.marginals) for r in results],
            }
        )
        return code
    print(
        f"{rhm!r}, eps={args.eps}, datum class y={int(datum.y[0])}, "
        f"{rhm.d} leaves, {sum(rhm.width(l) for l in range(rhm.L + 1))} variables"
    )
    print(format_table(results, tol=args.tol))
    if code == DISAGREE:
        print(f"DISAGREEMENT beyond tol={args.tol:g}")
    elif code == ENGINE_ERROR:
        failed = [r.engine for r in results if r.status == "error"]
        print(f"ERROR: engine(s) {failed} failed (the others agree within tol={args.tol:g})")
    elif all(r.status == "skipped" for r in results):
        print("nothing compared: every requested engine was skipped")
    else:
        print("all engines agree")
    return code
