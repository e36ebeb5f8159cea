"""Every UAI engine on the instance suite: errors and seconds per engine and difficulty grade.

Writes the suite (``hiergrammar instances``; ``--small`` for the subset) into a temporary
folder, runs :func:`hiergrammar.engines.uai_check.check_uai` with every engine, and prints a
table per engine and grade: the verdicts, the largest marginal error and ``|Δ log10 Z|`` over
the consistent instances the engine ran (expected failures included: their errors are the
defect's size), and the seconds (sum and largest). Then, for the engines that also run in the
in-process crosscheck, the seconds against the number of variables, which sized their cost
models in :func:`hiergrammar.engines.grammar_cost_models`.

Usage::

    python -m benchmarks.uai_engines                     # the full suite, pgmpy up to 30 s
    python -m benchmarks.uai_engines --small --no-workarounds
    python -m benchmarks.uai_engines --max-seconds 200 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections import defaultdict

from hiergrammar.engines import ENGINES, GRAMMAR_ENGINES
from hiergrammar.engines.suite import GRADES, write_suite
from hiergrammar.engines.uai_check import check_uai


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small suite only")
    parser.add_argument("--no-workarounds", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--json", default=None, help="also write the full report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HIERGRAMMAR_NO_PROGRESS", "1")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        entries = write_suite(folder, small=args.small)
        print(f"suite: {len(entries)} instances written in {time.perf_counter() - start:.1f} s")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = check_uai(
                folder, workarounds=not args.no_workarounds, max_seconds=args.max_seconds
            )
    grade = {e["name"]: e["difficulty"]["grade"] for e in entries}
    consistent = {e["name"]: e["consistent"] for e in entries}
    size = {e["name"]: e["n_variables"] for e in entries}
    cells: dict[tuple[str, int], dict] = defaultdict(
        lambda: {"verdicts": defaultdict(int), "err": None, "z": None, "sum": 0.0, "max": 0.0}
    )
    for r in report.results:
        cell = cells[(r.engine, grade[r.instance])]
        cell["verdicts"][r.verdict] += 1
        if r.verdict in ("skipped",):
            continue
        cell["sum"] += r.seconds
        cell["max"] = max(cell["max"], r.seconds)
        if consistent[r.instance] and r.max_marginal_error is not None:
            cell["err"] = max(cell["err"] or 0.0, r.max_marginal_error)
        if consistent[r.instance] and r.log10_z_error is not None:
            cell["z"] = max(cell["z"] or 0.0, r.log10_z_error)
    print(f"\nworkarounds: {not args.no_workarounds}; overall verdict: {report.verdict}\n")
    print("| engine | grade | verdicts | max Δ marginal | max Δ log10 Z | seconds (sum / max) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for engine in ENGINES:
        for g in sorted(GRADES):
            cell = cells.get((engine, g))
            if cell is None:
                continue
            verdicts = ", ".join(f"{n} {v}" for v, n in sorted(cell["verdicts"].items()))
            print(
                f"| {engine} | {g} {GRADES[g][0]} | {verdicts} | {_fmt(cell['err'])} | "
                f"{_fmt(cell['z'])} | {cell['sum']:.2f} / {cell['max']:.2f} |"
            )
    print("\nseconds against variables (engines of the in-process crosscheck):")
    for engine in GRAMMAR_ENGINES:
        points = sorted(
            (size[r.instance], r.seconds)
            for r in report.results
            if r.engine == engine and r.verdict != "skipped"
        )
        print(f"  {engine}: " + ", ".join(f"V={v}: {s:.3f} s" for v, s in points))
    failures = [
        r for r in report.results if r.verdict in ("expected_failure", "disagrees", "error")
    ]
    if failures:
        print("\nfailures:")
        for r in failures:
            print(f"  {r.instance} / {r.engine}: {r.verdict} {r.message[:140]}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.to_dict(), out, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
