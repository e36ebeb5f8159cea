"""Check population dynamics (and the mean field beside it) against exact BP on RHM instances.

For each depth ``L`` and noise ``eps`` of the epsilon-process:

* exact BP (:func:`hiergrammar.experiments.beliefs.bp_profile`) averaged over samples, nodes and
  ``n_rules`` independent rule draws gives the mean upward, downward and marginal beliefs in the
  true symbol and the accuracy per level, with standard errors from the rule-to-rule spread;
* :func:`hiergrammar.theory.population.profile` gives the same four numbers from population
  dynamics, and :func:`hiergrammar.theory.meanfield.profile` the mean-field ``u, d, p``;
* the distributions of the beliefs are compared as a Kolmogorov-Smirnov distance per level
  between the population and the BP beliefs of every node (pooled over samples and rule
  draws), next to the KS distance between two halves of the BP rule draws (the floor set by
  finite samples and by rule-to-rule differences).

Run::

    python -m hiergrammar.theory.validate_population            # v=32, n_c=32, m=8, s=2, L=3..8
    python -m hiergrammar.theory.validate_population --quick    # a minute: L=3..4, fewer samples

It prints a summary and writes everything as JSON (``--out``, default
``validate_population.json``).

Examples
--------
>>> a, b = np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.9])
>>> round(ks_distance(a, b), 6), ks_distance(a, a)
(0.333333, 0.0)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hiergrammar.theory import meanfield, population

from hiergrammar.artifacts import progress, save_json
from hiergrammar.bp import tree_bp
from hiergrammar.experiments.beliefs import bp_profile, true_beliefs
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM
from hiergrammar.validation import check_int, check_seed

__all__ = [
    "KINDS",
    "STORED_RESULT",
    "bp_belief_samples",
    "ks_distance",
    "load_stored",
    "main",
    "recheck_worst",
    "run_validation",
    "summarise",
]

KINDS = ("u", "d", "p", "accuracy")


def ks_distance(a: np.ndarray, b: np.ndarray, resolution: float = 1e-6) -> float:
    """Two-sample Kolmogorov-Smirnov distance ``sup_x |F_a(x) - F_b(x)|``.

    Values are first rounded to multiples of ``resolution``, so that one atom computed in two
    precisions (e.g. ``1 - eps`` at every leaf, in float32 and in float64) is one atom; both
    empirical distribution functions are then evaluated at every observed value (ties handled).

    Parameters
    ----------
    a, b : 1-d samples (any length >= 1).
    resolution : rounding grid (0 for none).

    Returns
    -------
    The distance, in ``[0, 1]``.

    Examples
    --------
    >>> ks_distance(np.zeros(5), np.ones(3))
    1.0
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("ks_distance needs two non-empty samples")
    if resolution > 0:
        a, b = np.round(a / resolution), np.round(b / resolution)
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(fa - fb).max())


def bp_belief_samples(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: float,
    n_samples: int,
    n_rules: int,
    seed: int = 0,
    max_nodes: int = 200_000,
    dtype: type = np.float32,
) -> dict[str, list[list[np.ndarray]]]:
    """Exact-BP beliefs in the true symbol of every node, per rule draw and level.

    ``n_samples`` data per rule draw are drawn from each of ``n_rules`` RHMs, noised by the
    epsilon-process and passed through :func:`hiergrammar.bp.tree_bp`. Returns
    ``{"u", "d", "p"}`` -> ``[draw][level]`` -> 1-d float32 array of node beliefs (at most
    ``max_nodes`` per draw and level, a random subset beyond).

    Examples
    --------
    >>> got = bp_belief_samples(8, 8, 2, 2, 2, eps=0.2, n_samples=10, n_rules=2)
    >>> len(got["u"]), [a.size for a in got["u"][0]]     # draws; nodes per level (10 * 4, 2, 1)
    (2, [40, 20, 10])
    """
    n_samples = check_int("n_samples", n_samples, 1)
    n_rules = check_int("n_rules", n_rules, 1)
    seeds = np.random.SeedSequence(check_seed("seed", seed)).spawn(n_rules)
    out: dict[str, list[list[np.ndarray]]] = {k: [] for k in ("u", "d", "p")}
    for r in range(n_rules):
        rng = np.random.default_rng(seeds[r])
        rhm = RHM(v, n_classes, m, s, L, seed=int(rng.integers(2**63)))
        data = rhm.sample(n_samples, seed=int(rng.integers(2**63)))
        beliefs = true_beliefs(tree_bp(rhm, eps_evidence(data.x, eps, v), dtype=dtype), data.levels)
        for k in out:
            per_level = []
            for level_beliefs in beliefs[k]:
                flat = level_beliefs.ravel().astype(np.float32)
                if flat.size > max_nodes:
                    flat = rng.choice(flat, size=max_nodes, replace=False)
                per_level.append(flat)
            out[k].append(per_level)
    return out


#: Differences and standard errors below this are float32 rounding (BP runs in float32):
#: a deviation in standard errors is reported as 0 there.
_RESOLUTION = 1e-5


def _summary(dev: np.ndarray, se: np.ndarray, eps: np.ndarray) -> dict:
    """Largest ``|dev|`` per level over eps, where it occurs, the standard error of the
    difference there (``se``: BP's, combined with the population's where it has one) and
    the deviation in standard errors (0 where both are at rounding level)."""
    dev, se = np.asarray(dev, dtype=np.float64), np.asarray(se, dtype=np.float64)
    where = np.abs(dev).argmax(axis=0)
    levels = np.arange(dev.shape[1])
    worst = np.abs(dev)[where, levels]
    se_at = se[where, levels]
    z = np.where(worst > _RESOLUTION, worst / np.maximum(se_at, _RESOLUTION), 0.0)
    return {
        "max_per_level": worst,
        "eps_at_max": np.asarray(eps)[where],
        "se_at_max": se_at,
        "z_at_max": z,
        "max": float(worst.max()),
    }


def _summarise_depth(res: dict, eps: np.ndarray) -> None:
    """The summaries ``pd_vs_bp`` / ``mf_vs_bp`` of one depth, from its arrays (in place)."""

    def arr(key: str) -> np.ndarray:
        return np.asarray(res[key], dtype=np.float64)

    res["pd_vs_bp"] = {
        k: _summary(
            arr(f"{k}_pd") - arr(f"{k}_bp"), np.hypot(arr(f"{k}_se"), arr(f"{k}_pd_se")), eps
        )
        for k in KINDS
    }
    res["mf_vs_bp"] = {
        k: _summary(arr(f"{k}_mf") - arr(f"{k}_bp"), arr(f"{k}_se"), eps) for k in ("u", "d", "p")
    }


def summarise(result: dict) -> dict:
    """(Re)compute the per-depth summaries and the overall ``summary`` of a
    :func:`run_validation` result from its arrays (in place; returned)."""
    eps = np.asarray(result["params"]["eps"], dtype=np.float64)
    for res in result["depths"].values():
        _summarise_depth(res, eps)
    result["summary"] = _overall(result)
    return result


def run_validation(
    v: int = 32,
    n_classes: int = 32,
    m: int = 8,
    s: int = 2,
    depths: Sequence[int] = (3, 4, 5, 6, 7, 8),
    eps: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9),
    n_pop: int = 40000,
    n_samples: int = 6400,
    n_rules: int = 32,
    ks_samples: int = 400,
    ks_rules: int = 8,
    seed: int = 0,
) -> dict:
    """Population dynamics and mean field vs exact BP on every ``(L, eps)`` of the grid.

    Returns a JSON-ready dict: ``params``; per ``L`` (key ``str(L)``) the arrays of shape
    ``(len(eps), L+1)`` ``{kind}_bp``, ``{kind}_se`` (BP), ``{kind}_pd`` (population),
    ``{kind}_pd_se`` (its standard error, from replicas), ``{kind}_mf`` (mean field; no
    accuracy) for ``kind`` in ``u, d, p, accuracy``, the KS
    distances ``ks_{u,d,p}`` and their floors ``ks_floor_{u,d,p}``, and the summaries
    ``pd_vs_bp`` / ``mf_vs_bp`` (per kind: largest deviation per level over eps, where, the
    standard error of the difference there); ``summary`` gathers the largest deviations over
    all depths.
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
            "n_pop": n_pop,
            "n_samples": n_samples,
            "n_rules": n_rules,
            "ks_samples": ks_samples,
            "ks_rules": ks_rules,
            "seed": seed,
            "eps_star": meanfield.critical_eps(v, m, s),
        },
        "depths": {},
    }
    for L in depths:
        start = time.perf_counter()
        pd = population.profile(v, n_classes, m, s, L, eps_arr, n_pop=n_pop, seed=seed + L)
        t_pd = time.perf_counter() - start
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
            dtype=np.float32,
        )
        mf = meanfield.profile(v, n_classes, m, s, L, eps_arr)
        res: dict = {"seconds_population": t_pd}
        for kind in KINDS:
            res[f"{kind}_bp"] = getattr(bp, kind)
            res[f"{kind}_se"] = getattr(bp, f"{kind}_se")
            res[f"{kind}_pd"] = getattr(pd, kind)
            res[f"{kind}_pd_se"] = getattr(pd, f"{kind}_se")
            if kind != "accuracy":
                res[f"{kind}_mf"] = getattr(mf, kind)
        _summarise_depth(res, eps_arr)
        ks = {k: np.zeros((eps_arr.size, L + 1)) for k in ("u", "d", "p")}
        floor = {k: np.zeros((eps_arr.size, L + 1)) for k in ("u", "d", "p")}
        half = ks_rules // 2
        for i, e in enumerate(progress(eps_arr, desc=f"KS L={L}", total=eps_arr.size)):
            beliefs = bp_belief_samples(
                v, n_classes, m, s, L, float(e), ks_samples, ks_rules, seed=seed + 7 * L + i
            )
            pops = {"u": pd.samples_u[i], "d": pd.samples_d[i], "p": pd.samples_p[i]}
            for k in ks:
                for level in range(L + 1):
                    draws = [b[level] for b in beliefs[k]]
                    ks[k][i, level] = ks_distance(pops[k][level], np.concatenate(draws))
                    if half:
                        floor[k][i, level] = ks_distance(
                            np.concatenate(draws[:half]), np.concatenate(draws[half:])
                        )
        for k in ks:
            res[f"ks_{k}"] = ks[k]
            res[f"ks_floor_{k}"] = floor[k]
        res["seconds"] = time.perf_counter() - start
        out["depths"][str(L)] = res
        print(
            f"L={L}: max |PD-BP| "
            + ", ".join(f"{k}={res['pd_vs_bp'][k]['max']:.4f}" for k in KINDS)
            + "; max |MF-BP| "
            + ", ".join(f"{k}={res['mf_vs_bp'][k]['max']:.4f}" for k in ("u", "d", "p"))
            + f"; max KS(PD,BP) p={ks['p'].max():.3f} (floor {floor['p'].max():.3f})"
            + f" ({res['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return summarise(out)


def _overall(out: dict) -> dict:
    """Largest deviations over every depth, and where population dynamics beats the mean field.

    A point ``(L, eps, level)`` counts as *decided* when the two theories' distances to BP
    differ by more than two standard errors (BP's and the population's combined); among
    decided points we count which is closer.
    """
    summary: dict = {}
    for k in KINDS:
        worst = max((res["pd_vs_bp"][k]["max"], int(L)) for L, res in out["depths"].items())
        summary[f"pd_max_{k}"] = worst[0]
        summary[f"pd_max_{k}_at_L"] = int(worst[1])
    for k in ("u", "d", "p"):
        summary[f"mf_max_{k}"] = max(res["mf_vs_bp"][k]["max"] for res in out["depths"].values())
        pd_better = mf_better = undecided = 0
        mf_closer: list[dict] = []
        for L, res in out["depths"].items():
            pd_dev = np.abs(np.asarray(res[f"{k}_pd"]) - res[f"{k}_bp"])
            mf_dev = np.abs(np.asarray(res[f"{k}_mf"]) - res[f"{k}_bp"])
            se = np.hypot(res[f"{k}_se"], res[f"{k}_pd_se"])
            decided = np.abs(pd_dev - mf_dev) > 2 * se + 1e-9
            pd_better += int((decided & (pd_dev < mf_dev)).sum())
            mf_better += int((decided & (mf_dev < pd_dev)).sum())
            undecided += int((~decided).sum())
            for i, level in zip(*np.nonzero(decided & (mf_dev < pd_dev)), strict=True):
                mf_closer.append(
                    {
                        "L": int(L),
                        "eps": float(out["params"]["eps"][i]),
                        "level": int(level),
                        "pd_dev": float(pd_dev[i, level]),
                        "mf_dev": float(mf_dev[i, level]),
                        "se": float(se[i, level]),
                    }
                )
        summary[f"{k}_points_pd_closer"] = pd_better
        summary[f"{k}_points_mf_closer"] = mf_better
        summary[f"{k}_points_undecided"] = undecided
        summary[f"{k}_where_mf_closer"] = mf_closer
    for k in ("u", "d", "p"):
        summary[f"ks_max_{k}"] = max(float(np.max(r[f"ks_{k}"])) for r in out["depths"].values())
        summary[f"ks_floor_max_{k}"] = max(
            float(np.max(r[f"ks_floor_{k}"])) for r in out["depths"].values()
        )
    return summary


def recheck_worst(
    result: dict,
    per_kind: int = 2,
    n_rules: int = 256,
    samples_per_rule: int = 200,
    pop_factor: int = 4,
    seed: int = 1,
    min_dev: float = 0.005,
) -> list[dict]:
    """Re-measure the largest population-vs-BP deviations of a :func:`run_validation` result
    with more statistics.

    On a grid the largest of many deviations is inflated by noise: for the ``per_kind``
    largest ``|PD - BP|`` of each kind (among points where it is at least ``min_dev``), exact BP
    is rerun with ``n_rules`` new rule draws (``samples_per_rule`` data each) and population
    dynamics with ``pop_factor`` times the population (8 replicas), at that ``(L, eps)``
    only.

    Returns
    -------
    A list of dicts: ``kind``, ``L``, ``eps``, ``level``, the grid's ``grid_dev`` and
    ``grid_se``, and the recheck's ``pd``, ``bp``, ``dev``, ``se`` (of the difference) and
    ``z``.
    """
    params = result["params"]
    v, n_classes, m, s = params["v"], params["n_classes"], params["m"], params["s"]
    eps = np.asarray(params["eps"], dtype=np.float64)
    candidates = []
    for kind in KINDS:
        rows = []
        for L, res in result["depths"].items():
            dev = np.abs(np.asarray(res[f"{kind}_pd"]) - np.asarray(res[f"{kind}_bp"]))
            se = np.hypot(res[f"{kind}_se"], res[f"{kind}_pd_se"])
            for i, level in zip(*np.nonzero(dev >= min_dev), strict=True):
                rows.append((dev[i, level], int(L), i, int(level), se[i, level]))
        rows.sort(reverse=True)
        candidates += [(kind, *row) for row in rows[:per_kind]]
    out = []
    for j, (kind, dev, L, i, level, se) in enumerate(candidates):
        e = float(eps[i])
        bp = bp_profile(
            v,
            n_classes,
            m,
            s,
            L,
            [e],
            n_samples=n_rules * samples_per_rule,
            n_rules=n_rules,
            seed=seed * 100_003 + j,
            dtype=np.float32,
        )
        pd = population.profile(
            v,
            n_classes,
            m,
            s,
            L,
            e,
            n_pop=pop_factor * params["n_pop"],
            n_replicas=8,
            seed=seed * 100_019 + j,
        )
        new_dev = float(getattr(pd, kind)[level] - getattr(bp, kind)[0, level])
        new_se = float(
            np.hypot(getattr(pd, f"{kind}_se")[level], getattr(bp, f"{kind}_se")[0, level])
        )
        out.append(
            {
                "kind": kind,
                "L": L,
                "eps": e,
                "level": level,
                "grid_dev": float(dev),
                "grid_se": float(se),
                "pd": float(getattr(pd, kind)[level]),
                "bp": float(getattr(bp, kind)[0, level]),
                "dev": new_dev,
                "se": new_se,
                "z": new_dev / max(new_se, 1e-12),
            }
        )
        print(
            f"recheck {kind} L={L} eps={e} level={level}: grid |PD-BP| = {dev:.4f} +- {se:.4f}"
            f" -> {abs(new_dev):.4f} +- {new_se:.4f}",
            file=sys.stderr,
            flush=True,
        )
    return out


#: Where the result of the full run is stored with the package (``python -m
#: hiergrammar.theory.validate_population --out`` this path to refresh it).
STORED_RESULT = Path(__file__).resolve().parent / "data" / "validate_population.json"


def load_stored(path: str | Path | None = None) -> dict:
    """The stored result of :func:`run_validation` (plain JSON; nothing is unpickled).

    Examples
    --------
    >>> stored = load_stored()
    >>> stored["params"]["depths"]
    [3, 4, 5, 6, 7, 8]
    """
    return json.loads(Path(path or STORED_RESULT).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hiergrammar.theory.validate_population",
        description="Population dynamics and mean field vs exact BP (writes a JSON).",
    )
    parser.add_argument("--quick", action="store_true", help="L=3..4, few eps, small samples")
    parser.add_argument("--out", type=Path, default=Path("validate_population.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recheck-from",
        type=Path,
        default=None,
        help="skip the grid: recheck the largest deviations of this earlier result with more "
        "statistics, add them to it as 'recheck' and write it to --out",
    )
    parser.add_argument(
        "--recheck-per-kind",
        type=int,
        default=None,
        help="how many of the largest deviations of each kind to recheck (default 4; 1 quick)",
    )
    args = parser.parse_args(argv)
    if args.recheck_from is not None:
        result = json.loads(args.recheck_from.read_text(encoding="utf-8"))
        per_kind, n_rules = (1, 32) if args.quick else (4, 256)
        per_kind = args.recheck_per_kind or per_kind
        summarise(result)
        result["recheck"] = recheck_worst(result, per_kind=per_kind, n_rules=n_rules)
        save_json(args.out, result)
        print(f"wrote {args.out}")
        return 0
    if args.quick:
        kwargs = dict(
            depths=(3, 4),
            eps=(0.3, 0.6, 0.7, 0.9),
            n_pop=5000,
            n_samples=800,
            n_rules=8,
            ks_samples=100,
            ks_rules=4,
        )
    else:
        kwargs = {}
    start = time.perf_counter()
    result = run_validation(seed=args.seed, **kwargs)
    result["params"]["quick"] = args.quick
    result["params"]["seconds"] = time.perf_counter() - start
    save_json(args.out, result)
    summary = result["summary"]
    print(
        "largest |PD - BP|: "
        + ", ".join(
            f"{k} {summary[f'pd_max_{k}']:.4f} (L={summary[f'pd_max_{k}_at_L']})" for k in KINDS
        )
    )
    print("largest |MF - BP|: " + ", ".join(f"{k} {summary[f'mf_max_{k}']:.4f}" for k in "udp"))
    for k in "udp":
        print(
            f"{k}: PD closer at {summary[f'{k}_points_pd_closer']} points, MF closer at "
            f"{summary[f'{k}_points_mf_closer']}, undecided {summary[f'{k}_points_undecided']}; "
            f"max KS {summary[f'ks_max_{k}']:.3f} (BP half-vs-half floor "
            f"{summary[f'ks_floor_max_{k}']:.3f})"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
