"""Calibrate the crosscheck's per-engine cost model on this machine.

:func:`hiergrammar.crosscheck.crosscheck` skips an engine whose estimated time exceeds
``max_seconds``; the estimate is linear in a few sizes of the model
(:func:`hiergrammar.crosscheck.cost_features`) with coefficients in
:data:`hiergrammar.crosscheck.COST_MODELS`. This script times every engine on ladders of
models (each ladder grows ``L`` until a run exceeds ``--limit`` seconds), fits the coefficients
(non-negative least squares on relative error, the features of ``COST_MODELS``; times are the
process's CPU seconds, robust to a busy machine), and prints,
per engine, the fitted constants and the ratio estimate / measured time for both the fitted and
the shipped constants (median and worst).

Usage::

    python -m benchmarks.crosscheck_cost_model                 # every engine, --limit 10
    python -m benchmarks.crosscheck_cost_model --engines pgmpy_ve --limit 5 --json ve.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
from scipy.optimize import nnls

from hiergrammar import crosscheck as cc
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM

#: Ladders (v, n_classes, m, s) and the depths tried, smallest first.
LADDERS = [
    ((3, 2, 2, 2), range(1, 11)),
    ((8, 4, 3, 2), range(1, 9)),
    ((4, 2, 2, 3), range(1, 6)),
    ((16, 4, 4, 2), range(1, 7)),
    ((32, 8, 4, 2), range(1, 5)),
    ((64, 8, 4, 2), range(1, 4)),
    ((2, 2, 1, 2), range(2, 10)),
]

#: Tree BP is fast: it needs larger models for a timing above the noise.
TREE_BP_LADDERS = [
    ((2, 2, 2, 2), range(8, 19)),
    ((256, 16, 8, 2), range(1, 6)),
    ((6, 3, 3, 3), range(3, 10)),
]


def measure(engine: str, limit: float) -> list[dict]:
    rows = []
    for (v, n_classes, m, s), depths in TREE_BP_LADDERS if engine == "tree_bp" else LADDERS:
        for L in depths:
            rhm = RHM(v=v, n_classes=n_classes, m=m, s=s, L=L, seed=0)
            ev = eps_evidence(rhm.sample(1, seed=1).x, 0.3, v)[0]
            prior = np.full(n_classes, 1.0 / n_classes)
            # CPU seconds of this process: on a shared machine wall time mostly measures the
            # neighbours (the engines are single-threaded, so on a quiet machine both agree).
            start = time.process_time()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cc.RUNNERS[engine](rhm, ev, prior)
            except cc.EngineSkipped:
                break
            except Exception as err:  # an engine that fails at this size ends its ladder
                print(f"{engine:13s} {rhm!r:50s} failed: {type(err).__name__}", file=sys.stderr)
                break
            seconds = time.process_time() - start
            row = {"model": repr(rhm), "seconds": seconds, "features": cc.cost_features(rhm)}
            rows.append(row)
            print(f"{engine:13s} {row['model']:50s} {seconds:9.4f} s", file=sys.stderr)
            if seconds > limit:
                break
    return rows


def fit(engine: str, rows: list[dict]) -> dict[str, float]:
    names = [k for k in cc.COST_MODELS[engine] if k != "intercept"]
    t = np.array([r["seconds"] for r in rows])
    A = np.array([[1.0] + [r["features"][k] for k in names] for r in rows])
    coef, _ = nnls(A / t[:, None], np.ones(len(t)))
    return dict(zip(["intercept", *names], (float(c) for c in coef), strict=True))


def ratios(model: dict[str, float], rows: list[dict]) -> np.ndarray:
    est = np.array(
        [
            model.get("intercept", 0.0)
            + sum(c * r["features"][k] for k, c in model.items() if k != "intercept")
            for r in rows
        ]
    )
    return est / np.array([r["seconds"] for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=list(cc.ENGINES), choices=cc.ENGINES)
    parser.add_argument("--limit", type=float, default=10.0, help="stop a ladder past this")
    parser.add_argument("--json", default=None, help="write the timings and fits here")
    args = parser.parse_args(argv)
    import pgmpy.inference  # noqa: F401  (import time is not the engines' time)

    report = {}
    for engine in args.engines:
        rows = measure(engine, args.limit)
        if len(rows) < 2:
            print(f"{engine}: too few runs to fit")
            continue
        fitted = fit(engine, rows)
        shipped, refit = ratios(cc.COST_MODELS[engine], rows), ratios(fitted, rows)
        # Ratios on runs above 0.5 s: the ones a skip decision is about.
        slow = np.array([r["seconds"] > 0.5 for r in rows])
        pick = slow if slow.any() else np.ones_like(slow)
        print(f"{engine}: fitted {json.dumps({k: float(f'{c:.3g}') for k, c in fitted.items()})}")
        for label, r in (("shipped", shipped[pick]), ("fitted", refit[pick])):
            print(
                f"  {label:8s} estimate/measured (runs > 0.5 s): median {np.median(r):.2f}, "
                f"min {r.min():.2f}, max {r.max():.2f}"
            )
        report[engine] = {"rows": rows, "fitted": fitted}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
