"""``hiergrammar theory …``: the mean-field theory from the command line.

* ``hiergrammar theory critical [--v 32 --m 8 --s 2] [--n-classes N] [--json]``: the critical
  noise ``eps*`` of the deep-tree transition, exactly (``17/24`` there) and as a float, with
  ``F'(1)``, ``F'(1/v)``, ``u*`` and whether a transition exists (and why not, if not).
  With ``--process masking|uniform|eps [--schedule linear] [--methods ...]``: the critical
  clean weight ``alpha*`` and time ``t*`` of that noise process by each theory of
  :mod:`hiergrammar.theory.discrete`. Its ``--json`` keys: ``process``, ``v``, ``m``, ``s``,
  ``schedule``; ``alpha`` and ``t`` (method -> value, null where a theory has no transition),
  ``source`` (method -> ``"closed form"``, ``"computed"`` or ``"stored"``), for the methods
  ``first_moment`` (effective eps), ``determination`` (masking only), ``two_value`` and
  ``population`` (both stored for v=32, m=8, s=2; otherwise the two-value closure is
  computed, ~10 s, and population dynamics only with ``--compute-population``, minutes;
  ``--recompute`` ignores the stored values);
  ``best`` (the method to quote), ``alpha_star`` and ``t_star`` (its values). The options of
  ``--process`` given without it, ``--methods determination`` for a process other than
  masking, and an ``--n-pop`` above the memory budget are refused (exit code 2).
* ``hiergrammar theory derive [--out FILE] [--format latex|markdown]``: the whole symbolic
  derivation, printed or written atomically to one file (the format defaults to LaTeX for a
  ``.tex`` path, Markdown otherwise).
* ``hiergrammar theory validate [--quick] [--json] [--out DIR]``: the mean-field profile
  against exact BP on a grid of depths and noise levels
  (:mod:`hiergrammar.theory.validate_meanfield`); prints a table (or JSON), optionally writes
  ``validate_meanfield.json`` into an output folder with its manifest ``run.json``; exit code 1
  when a deviation exceeds ``--tol``. Every flag is checked before the first depth runs.

sympy is imported inside the handlers, so building the ``hiergrammar`` parser stays fast.
"""

from __future__ import annotations

import argparse
import sys

from hiergrammar.cli.args import (
    add_check,
    add_float_check,
    add_force_argument,
    add_int_check,
    add_json_argument,
    add_out_argument,
    add_rhm_arguments,
    add_seed_argument,
    print_json,
    set_handler,
)
from hiergrammar.validation import InputError

__all__ = ["VALIDATE_GRIDS", "critical", "derive", "validate", "register"]


def critical(args: argparse.Namespace) -> int:
    if args.process is not None:
        return critical_process(args)
    from hiergrammar.theory.symbolic import critical_point

    point = critical_point(args.v, args.m, args.s, n_classes=args.n_classes)
    if args.json:
        print_json(point.to_dict())
    else:
        print(point.summary())
    return 0


#: ``theory critical`` flags that only mean something with ``--process`` (their defaults).
PROCESS_DEFAULTS = {"schedule": "linear", "n_pop": 200_000}
_PROCESS_ONLY = {
    "schedule": "--schedule",
    "methods": "--methods",
    "n_pop": "--n-pop",
    "compute_population": "--compute-population",
    "recompute": "--recompute",
}


def _check_critical(args: argparse.Namespace) -> None:
    """Refuse, before any work, what ``critical`` would otherwise ignore: ``--process``
    options without ``--process``, and ``--methods determination`` for a process other than
    masking. (The RHM flags and ``--n-pop``'s memory are checked by the library before it
    computes anything.)"""
    if args.process is None:
        given = [flag for dest, flag in _PROCESS_ONLY.items() if getattr(args, dest)]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise InputError(
                f"{', '.join(given)} {verb} --process (masking, uniform or eps): without it "
                "the command gives the mean-field eps* and uses none of them"
            )
        return
    if args.process != "masking" and "determination" in (args.methods or ()):
        raise InputError(
            f"--methods determination applies to --process masking only, not "
            f"{args.process}: the determination law follows messages that are exactly one-hot "
            "on the true symbol, which only masking's leaves (kept exactly or erased) produce"
        )


def critical_process(args: argparse.Namespace) -> int:
    from hiergrammar.theory.discrete import critical_alpha

    point = critical_alpha(
        args.process,
        args.v,
        args.m,
        args.s,
        schedule=args.schedule or PROCESS_DEFAULTS["schedule"],
        methods=args.methods,
        n_pop=args.n_pop or PROCESS_DEFAULTS["n_pop"],
        seed=args.seed,
        compute_population=args.compute_population,
        use_stored=not args.recompute,
    )
    if args.json:
        print_json(point.to_dict())
    else:
        print(point.summary())
    return 0


def derive(args: argparse.Namespace) -> int:
    from hiergrammar.artifacts import save_text
    from hiergrammar.theory.latex import render

    fmt = args.format
    if fmt is None:
        fmt = "latex" if args.out is not None and args.out.suffix == ".tex" else "markdown"
    text = render(fmt)
    if args.out is None:
        sys.stdout.write(text)
    else:
        save_text(args.out, text)
        print(f"wrote {args.out} ({fmt})")
    return 0


#: ``validate`` grids: the default run and ``--quick``.
VALIDATE_GRIDS = {
    "full": {
        "depths": (3, 4, 5, 6, 7, 8),
        "eps": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        "samples": 2400,
    },
    "quick": {"depths": (3, 4), "eps": (0.3, 0.6, 0.9), "samples": 400},
}


def _check_validate_model(args: argparse.Namespace) -> None:
    """The RHM at every depth to validate, checked before any depth runs."""
    from hiergrammar.rhm import check_parameters

    depths = args.depths or VALIDATE_GRIDS["quick" if args.quick else "full"]["depths"]
    for L in depths:
        check_parameters(args.v, args.n_classes, args.m, args.s, L)


def validate(args: argparse.Namespace) -> int:
    import numpy as np

    from hiergrammar.artifacts import run_folder, save_json
    from hiergrammar.theory.validate_meanfield import format_report, run_validation

    grid = VALIDATE_GRIDS["quick" if args.quick else "full"]
    params = {
        "v": args.v,
        "n_classes": args.n_classes,
        "m": args.m,
        "s": args.s,
        "depths": tuple(args.depths or grid["depths"]),
        "eps": tuple(args.eps or grid["eps"]),
        "n_samples": args.samples or grid["samples"],
        "n_rules": args.rules,
        "seed": args.seed,
        "dtype": np.float32 if args.float32 else np.float64,
    }
    result = run_validation(**params)
    result["tol"] = args.tol
    if args.out is not None:
        recorded = {k: v for k, v in params.items() if k not in ("seed", "dtype")}
        recorded["float32"] = args.float32
        with run_folder(
            args.out,
            command="hiergrammar theory validate",
            parameters=recorded,
            seed=args.seed,
            force=args.force,
        ) as run:
            save_json(run.path / "validate_meanfield.json", result)
    if args.json:
        print_json(result)
    else:
        print(format_report(result, args.tol))
        if args.out is not None:
            print(f"numbers written to {args.out / 'validate_meanfield.json'}")
    return 0 if result["max_dev"] <= args.tol else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``theory`` command and its sub-commands to ``subparsers``."""
    parser = subparsers.add_parser(
        "theory",
        help="mean-field theory: exact critical noise, symbolic derivation, check against BP",
        description="The annealed mean-field theory of BP on the RHM, derived with sympy.",
    )
    sub = parser.add_subparsers(dest="theory_command", metavar="THEORY_COMMAND")
    sub.required = True

    p = sub.add_parser(
        "critical",
        help="critical noise eps* of the class-recovery transition",
        description="Exact and float eps* = 1 - u* (u* the repulsive fixed point of the "
        "upward map F), F'(1) and whether a transition exists. --n-classes is only "
        "validated: it enters the root level of the map, not the fixed point.",
    )
    add_rhm_arguments(p, ("v", "n_classes", "m", "s"))
    p.add_argument(
        "--process",
        choices=("masking", "uniform", "eps"),
        default=None,
        help="instead of eps*: the critical clean weight alpha* and time t* of this noise "
        "process by each theory (first moment, determination, two-value closure, population "
        "dynamics); --json keys: process, v, m, s, schedule, alpha, t, source, best, "
        "alpha_star, t_star",
    )
    # The --process options default to None, so that given without --process they are refused.
    p.add_argument(
        "--schedule",
        choices=("linear", "cosine", "loglinear"),
        default=None,
        help="with --process: the schedule that turns alpha* into t* (default linear, t = 1 - "
        "alpha)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=("first_moment", "determination", "two_value", "population"),
        default=None,
        help="with --process: the theories to run (default all; determination applies to "
        "masking only)",
    )
    p.add_argument(
        "--n-pop",
        type=int,
        default=None,
        help="with --process: population of the two-value closure (default 200000, ~10 s; "
        "refused above the memory budget)",
    )
    add_int_check(p, "n_pop", "--n-pop", 1)
    p.add_argument(
        "--compute-population",
        action="store_true",
        help="with --process: run population dynamics when no stored value exists (minutes)",
    )
    p.add_argument(
        "--recompute",
        action="store_true",
        help="with --process: compute the two-value closure (and population dynamics, with "
        "--compute-population) instead of reading the values stored for v=32, m=8, s=2",
    )
    add_seed_argument(p)
    add_json_argument(p)
    add_check(p, _check_critical)
    set_handler(p, critical)

    p = sub.add_parser(
        "derive",
        help="print or write the symbolic derivation (LaTeX or Markdown)",
        description="The step-by-step sympy derivation of F, G, p, the fixed points and eps*.",
    )
    add_out_argument(p, "file", help="write to this file (atomically) instead of printing")
    p.add_argument(
        "--format",
        choices=("latex", "markdown"),
        default=None,
        help="output format (default: latex for a .tex --out, else markdown)",
    )
    set_handler(p, derive)

    p = sub.add_parser(
        "validate",
        help="mean-field profile against exact BP on a grid of depths and noise levels",
        description="For each depth L and noise eps, average exact-BP beliefs in the true "
        "symbol over samples, nodes and rule draws and compare the marginal with the "
        "mean-field profile. Exit code 1 when some deviation exceeds --tol.",
    )
    add_rhm_arguments(p, ("v", "n_classes", "m", "s"))
    p.add_argument("--quick", action="store_true", help="L = 3, 4; eps 0.3, 0.6, 0.9; 400 samples")
    p.add_argument(
        "--depths", type=int, nargs="+", default=None, help="each L >= 1 (default 3 .. 8)"
    )
    add_int_check(p, "depths", "--depths", 1)
    p.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=None,
        help="each 0 <= eps <= 1 (default 0.3 0.4 ... 0.9)",
    )
    add_float_check(p, "eps", "--eps", 0.0, 1.0)
    p.add_argument("--samples", type=int, default=None, help="samples per (L, eps), default 2400")
    add_int_check(p, "samples", "--samples", 1)
    p.add_argument("--rules", type=int, default=8, help="independent rule draws (default 8)")
    add_int_check(p, "rules", "--rules", 1)
    add_seed_argument(p)
    p.add_argument("--tol", type=float, default=0.02, help="largest accepted |p_MF - p_BP|")
    add_float_check(p, "tol", "--tol", 0.0)
    p.add_argument(
        "--float32", action="store_true", help="float32 BP messages: twice as fast, error ~1e-6"
    )
    add_json_argument(p, "the numbers")
    add_out_argument(p, "folder", help="also write validate_meanfield.json (and run.json) here")
    add_force_argument(p)
    add_check(p, _check_validate_model)
    set_handler(p, validate)
