"""``hiergrammar crosscheck --uai FILE_OR_DIR``: every available engine on UAI instances (the
library part is :mod:`hiergrammar.engines.uai_check`; the flags are declared in
:mod:`hiergrammar.cli.crosscheck`).

Exit codes as ``crosscheck``: 0 when every engine that ran agrees with the exact answers within
``--tol`` (skips and the expected failures of known defects do not count), 1 when an engine's
numbers differ, 2 for bad input (a missing or malformed file), 3 when an engine failed.
"""

from __future__ import annotations

import argparse

__all__ = ["run_uai"]


def run_uai(args: argparse.Namespace) -> int:
    """Run the UAI check described by ``args``; print a table or JSON; return the exit code."""
    from hiergrammar.cli.args import print_json
    from hiergrammar.cli.crosscheck import AGREE, DISAGREE, ENGINE_ERROR
    from hiergrammar.engines.uai_check import check_uai, format_report

    report = check_uai(
        args.uai,
        engines=args.engines,
        tol=args.tol,
        workarounds=not args.no_workarounds,
        max_seconds=args.max_seconds,
    )
    code = {"agree": AGREE, "disagreement": DISAGREE, "error": ENGINE_ERROR}[report.verdict]
    if args.json:
        print_json({"uai": str(args.uai), "exit_code": code, **report.to_dict()})
        return code
    print(format_report(report))
    counts: dict[str, int] = {}
    for r in report.results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    print(f"{len(report.instances)} instance(s), {len(report.engines)} engine(s): {summary}")
    if code == DISAGREE:
        print(f"DISAGREEMENT beyond tol={args.tol:g}")
    elif code == ENGINE_ERROR:
        print("ERROR: some engine failed (not a known defect)")
    else:
        print("all engines agree (skips and expected failures of known defects aside)")
    return code
