"""Check the mean-field profile against exact BP on a grid of depths and noise levels.

For each depth ``L`` and noise ``eps``, :func:`hiergrammar.theory.meanfield.bp_profile` averages
the exact
BP beliefs in the true symbol over samples, nodes and several rule draws, and the marginal
``p_l`` is compared with the mean-field :func:`hiergrammar.theory.meanfield.profile`. The report
gives, per
``L`` and per level, the largest ``|p_MF - p_BP|`` over eps, the eps where it occurs, the
standard error of the BP mean there (rule-to-rule spread) and the deviation in standard errors.

Run::

    python -m hiergrammar.theory.validate_meanfield            # v=32, n_c=32, m=8, s=2, L=3..8
    python -m hiergrammar.theory.validate_meanfield --quick    # seconds: L=3..4, fewer samples

It prints a table and writes the numbers as JSON (``--json``). The exit code is 1 when some
deviation exceeds ``--tol`` (0.02 by default).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from hiergrammar.theory.meanfield import bp_profile, critical_eps, profile

from hiergrammar.artifacts import save_json


def run_validation(
    v: int = 32,
    n_classes: int = 32,
    m: int = 8,
    s: int = 2,
    depths: tuple[int, ...] = (3, 4, 5, 6, 7, 8),
    eps: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    n_samples: int = 2400,
    n_rules: int = 8,
    seed: int = 0,
    dtype: type = np.float64,
) -> dict:
    """Mean-field vs exact BP on every ``(L, eps)`` of the grid.

    Returns a JSON-ready dict: parameters, and per ``L`` the arrays (shape ``(len(eps), L+1)``)
    ``p_mf``, ``p_bp``, ``p_se``, ``u_mf``, ``u_bp``, ``d_mf``, ``d_bp``, ``accuracy`` and the
    summary ``max_dev`` (largest ``|p_MF - p_BP|``), ``max_dev_per_level`` ``(L+1,)``,
    ``argmax_eps_per_level``, ``se_at_max_per_level``, ``seconds``.
    """
    eps_arr = np.asarray(eps, dtype=np.float64)
    out: dict = {
        "params": {
            "v": v,
            "n_classes": n_classes,
            "m": m,
            "s": s,
            "depths": list(depths),
            "eps": eps_arr,
            "n_samples": n_samples,
            "n_rules": n_rules,
            "seed": seed,
            "eps_star": critical_eps(v, m, s),
            "dtype": np.dtype(dtype).name,
        },
        "depths": {},
    }
    for L in depths:
        start = time.perf_counter()
        mf = profile(v, n_classes, m, s, L, eps_arr)
        bp = bp_profile(
            v,
            n_classes,
            m,
            s,
            L,
            eps_arr,
            n_samples=n_samples,
            n_rules=n_rules,
            seed=seed + 1000 * L,
            dtype=dtype,
        )
        dev = np.abs(mf.p - bp.p)  # (len(eps), L+1)
        # Near eps* the class curve is steep (slope ~ -14 at L=7), so a tiny horizontal offset
        # is a large vertical one: also express the deviation as the eps shift that maps the
        # MF curve onto the BP value, (p_BP - p_MF) / (dp_MF/deps).
        h = 1e-5
        slope = (
            profile(v, n_classes, m, s, L, np.minimum(eps_arr + h, 1.0)).p
            - profile(v, n_classes, m, s, L, np.maximum(eps_arr - h, 0.0)).p
        ) / (2 * h)
        shift = np.where(np.abs(slope) > 1e-3, (bp.p - mf.p) / np.where(slope == 0, 1, slope), 0.0)
        print(
            f"L={L}: max |p_MF - p_BP| = {dev.max():.4f} ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        where = dev.argmax(axis=0)
        levels = np.arange(L + 1)
        se_at = bp.p_se[where, levels]
        out["depths"][L] = {
            "p_mf": mf.p,
            "p_bp": bp.p,
            "p_se": bp.p_se,
            "u_mf": mf.u,
            "u_bp": bp.u,
            "u_se": bp.u_se,
            "d_mf": mf.d,
            "d_bp": bp.d,
            "d_se": bp.d_se,
            "accuracy": bp.accuracy,
            "accuracy_se": bp.accuracy_se,
            "max_dev": float(dev.max()),
            "max_dev_per_level": dev.max(axis=0),
            "argmax_eps_per_level": eps_arr[where],
            "se_at_max_per_level": se_at,
            "z_at_max_per_level": dev.max(axis=0) / np.maximum(se_at, 1e-12),
            "eps_shift": -shift,
            "eps_shift_at_max_per_level": -shift[where, levels],
            "max_dev_u": float(np.abs(mf.u - bp.u).max()),
            "max_dev_d": float(np.abs(mf.d - bp.d).max()),
            "n_per_rule": bp.n_per_rule,
            "seconds": time.perf_counter() - start,
        }
    out["max_dev"] = max(r["max_dev"] for r in out["depths"].values())
    return out


def format_report(result: dict, tol: float = 0.02) -> str:
    """The validation as a plain-text table (one block per depth)."""
    par = result["params"]
    lines = [
        f"Mean-field vs exact BP: v={par['v']}, n_c={par['n_classes']}, m={par['m']}, "
        f"s={par['s']}; eps in {np.round(par['eps'], 3).tolist()}; eps*={par['eps_star']:.4f}",
        f"{par['n_samples']} samples per (L, eps) over {par['n_rules']} rule draws "
        f"({par['dtype']} BP); se = spread of the per-draw means / sqrt(n_rules); eps-shift = "
        "how far (in eps) the BP value sits from the MF curve, (p_BP - p_MF) / |dp_MF/deps|",
        "",
    ]
    for L, r in result["depths"].items():
        lines.append(
            f"L={L}: max |p_MF - p_BP| = {r['max_dev']:.4f}   "
            f"(max |u| dev {r['max_dev_u']:.4f}, max |d| dev {r['max_dev_d']:.4f}; "
            f"{r['seconds']:.0f} s)"
        )
        lines.append("  level   max|dev|   at eps    se     dev/se   eps-shift")
        for level in range(L + 1):
            name = "class" if level == L else ("input" if level == 0 else "")
            lines.append(
                f"  {level:>2} {name:<5} {r['max_dev_per_level'][level]:.4f}    "
                f"{r['argmax_eps_per_level'][level]:.2f}    "
                f"{r['se_at_max_per_level'][level]:.4f}  "
                f"{r['z_at_max_per_level'][level]:6.1f}   "
                f"{r['eps_shift_at_max_per_level'][level]:+.4f}"
            )
        lines.append("")
    verdict = "PASS" if result["max_dev"] <= tol else "FAIL"
    lines.append(
        f"overall max |p_MF - p_BP| = {result['max_dev']:.4f}  (target <= {tol}): {verdict}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hiergrammar.theory.validate_meanfield", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="L=3,4, eps 0.3/0.6/0.9, 400 samples (a few seconds)"
    )
    parser.add_argument("--depths", type=int, nargs="+", default=None, help="default 3..8")
    parser.add_argument(
        "--eps", type=float, nargs="+", default=None, help="default 0.3 0.4 ... 0.9"
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="samples per (L, eps), default 2400"
    )
    parser.add_argument("--rules", type=int, default=8, help="independent rule draws")
    parser.add_argument("--v", type=int, default=32)
    parser.add_argument("--n-classes", type=int, default=32)
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--s", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=0.02)
    parser.add_argument(
        "--float32", action="store_true", help="float32 BP messages: twice as fast, error ~1e-6"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("results/validate_meanfield.json"),
        help="where to write the numbers",
    )
    args = parser.parse_args(argv)
    depths = args.depths or ([3, 4] if args.quick else [3, 4, 5, 6, 7, 8])
    eps = args.eps or ([0.3, 0.6, 0.9] if args.quick else [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    samples = args.samples or (400 if args.quick else 2400)
    try:
        result = run_validation(
            args.v,
            args.n_classes,
            args.m,
            args.s,
            tuple(depths),
            tuple(eps),
            samples,
            args.rules,
            args.seed,
            np.float32 if args.float32 else np.float64,
        )
    except ValueError as err:
        print(f"validate_meanfield: error: {err}", file=sys.stderr)
        return 2
    result["tol"] = args.tol
    save_json(args.json, result)
    print(format_report(result, args.tol))
    print(f"numbers written to {args.json}")
    return 0 if result["max_dev"] <= args.tol else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
