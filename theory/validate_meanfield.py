"""Check the mean-field profile against exact BP on a grid of depths and noise levels.

For each depth ``L`` and noise ``eps``, :func:`hiergrammar.experiments.beliefs.bp_profile`
averages the exact BP beliefs in the true symbol over samples, nodes and several rule draws,
and the marginal ``p_l`` is compared with the mean-field
:func:`hiergrammar.theory.meanfield.profile`. The report gives, per ``L`` and per level, the
largest ``|p_MF - p_BP|`` over eps, the eps where it occurs, the standard error of the BP mean
there (rule-to-rule spread) and the deviation in standard errors.

From the command line::

    hiergrammar theory validate            # v=32, n_c=32, m=8, s=2, L=3..8
    hiergrammar theory validate --quick    # seconds: L=3..4, fewer samples

Examples
--------
>>> result = run_validation(v=8, n_classes=8, m=2, s=2, depths=(2,), eps=(0.3,), n_samples=40,
...                         n_rules=2, seed=0)
>>> result["depths"][2]["p_bp"].shape      # (len(eps), L + 1)
(1, 3)
>>> print(format_report(result).splitlines()[-1])  # doctest: +ELLIPSIS
overall max |p_MF - p_BP| = ...
"""

from __future__ import annotations

import time

import numpy as np
from hiergrammar.theory.meanfield import _check_eps, check_parameters, critical_eps, profile

from hiergrammar.artifacts import progress
from hiergrammar.experiments.beliefs import bp_profile
from hiergrammar.validation import InputError, check_int

__all__ = ["run_validation", "format_report"]


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

    Every argument is checked before any work (a bad depth late in ``depths`` is refused
    before the first depth runs); a tqdm bar (:func:`hiergrammar.artifacts.progress`) follows
    the depths.

    Raises
    ------
    InputError
        If the RHM parameters are out of range, ``depths`` is empty or holds a depth ``< 1``,
        an ``eps`` is not a finite number in ``[0, 1]``, ``n_samples < 1``, ``n_rules < 1``, or
        ``seed`` is not a non-negative integer.
    """
    depths = tuple(check_int(f"depths[{i}]", L, 1) for i, L in enumerate(depths))
    if not depths:
        raise InputError("depths must hold at least one depth L >= 1")
    for L in depths:
        check_parameters(v, n_classes, m, s, L)
    eps_arr = np.atleast_1d(_check_eps(eps))
    if eps_arr.size == 0:
        raise InputError("eps must hold at least one noise level in [0, 1]")
    n_samples = check_int("n_samples", n_samples, 1)
    n_rules = check_int("n_rules", n_rules, 1)
    seed = check_int("seed", seed, 0)  # the depth L draws with seed + 1000 L
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
    for L in progress(depths, desc="mean field vs BP, per depth"):
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
