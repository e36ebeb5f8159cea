"""``hiergrammar crosscheck``: run every exact inference engine on one noisy RHM datum.

Example::

    hiergrammar crosscheck --v 4 --n-classes 2 --m 2 --s 2 --L 2 --seed 0 --eps 0.3
    hiergrammar crosscheck --v 8 --m 3 --L 3 --engines tree_bp pyagrum_lazy pgmpy_bp --json

Exit code 0 when every engine that ran agrees with the reference within ``--tol``, 1 otherwise
(an engine error counts as a disagreement; a skipped engine does not).
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    from hiergrammar.crosscheck import ENGINES, TOLERANCE

    parser = subparsers.add_parser(
        "crosscheck",
        help="compare tree BP, pgmpy, pyAgrum and brute force on one noisy datum",
        description="Sample one datum of an RHM, noise it with the eps-process, and compute "
        "the marginal of every node with every exact engine; report the largest "
        "difference to the reference (brute force where the model is tiny, else "
        "our tree BP).",
    )
    parser.add_argument("--v", type=int, default=4, help="vocabulary size (default 4)")
    parser.add_argument("--n-classes", type=int, default=2, help="number of classes (default 2)")
    parser.add_argument("--m", type=int, default=2, help="rules per symbol (default 2)")
    parser.add_argument("--s", type=int, default=2, help="branching factor (default 2)")
    parser.add_argument("--L", type=int, default=2, help="depth (default 2)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the rules, the datum and the noise (default 0)"
    )
    parser.add_argument(
        "--eps",
        type=float,
        default=0.3,
        help="eps-process noise level, 0 <= eps <= 1 (default 0.3)",
    )
    parser.add_argument(
        "--engines", nargs="+", choices=ENGINES, default=None, help="engines to run (default: all)"
    )
    parser.add_argument(
        "--max-trees",
        type=int,
        default=None,
        help="brute-force bound on the number of trees (default 200000)",
    )
    parser.add_argument(
        "--tol", type=float, default=TOLERANCE, help=f"agreement tolerance (default {TOLERANCE:g})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--marginals", action="store_true", help="with --json, include every engine's marginals"
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from hiergrammar.artifacts import to_jsonable
    from hiergrammar.crosscheck import crosscheck, format_table
    from hiergrammar.noise import eps_evidence
    from hiergrammar.rhm import RHM

    if not args.tol >= 0:
        raise ValueError(f"tol={args.tol} violates tol >= 0")
    rhm = RHM(v=args.v, n_classes=args.n_classes, m=args.m, s=args.s, L=args.L, seed=args.seed)
    datum = rhm.sample(1, seed=args.seed + 1)
    evidence = eps_evidence(datum.x, eps=args.eps, v=rhm.v)[0]  # (s**L, v)
    results = crosscheck(rhm, evidence, engines=args.engines, max_trees=args.max_trees)
    ok = all(r.agrees(args.tol) for r in results)
    if args.json:
        payload = {
            "model": {
                "v": rhm.v,
                "n_classes": rhm.n_classes,
                "m": rhm.m,
                "s": rhm.s,
                "L": rhm.L,
                "seed": args.seed,
            },
            "eps": args.eps,
            "x": datum.x[0],
            "y": int(datum.y[0]),
            "tol": args.tol,
            "agree": ok,
            "engines": [r.to_dict(with_marginals=args.marginals) for r in results],
        }
        print(json.dumps(to_jsonable(payload), indent=2))
    else:
        print(
            f"{rhm!r}, eps={args.eps}, datum class y={int(datum.y[0])}, "
            f"{rhm.d} leaves, {sum(rhm.width(l) for l in range(rhm.L + 1))} variables"
        )
        print(format_table(results, tol=args.tol))
        print("all engines agree" if ok else f"DISAGREEMENT beyond tol={args.tol:g}")
    return 0 if ok else 1
