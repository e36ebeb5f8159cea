"""Check the theories of the discrete processes' transitions against exact BP.

For the masking and uniform processes (linear schedule, ``alpha = 1 - t``) and each depth
``L`` of a grid:

* exact BP (:func:`hiergrammar.bp.upward_pass`, the upward half of
  :func:`hiergrammar.bp.tree_bp`, which gives the root's marginal) on ``n_rules`` independent
  RHMs, fresh data noised by the process and its exact leaf likelihood: per level the mean
  upward belief in the true symbol ``u``, the probability that the upward message's argmax is
  the true symbol ``accuracy`` (ties shared; at the root the class accuracy), and the
  fraction of determined messages (supported on the true symbol alone: masking's evidence
  is exactly zero off the kept symbol, and products keep the zeros exact);
* the theories of :mod:`hiergrammar.theory.discrete` on the same grid: population dynamics
  (upward), the two-value closure, the determination law (masking) and the first-moment map
  (the mean field at the effective eps);
* the critical points: each theory's deep-tree ``t*``, the BP class curves' crossings of the
  half-way level ``(1 + 1/n_classes)/2`` at every ``L``, and the crossings of the class
  curves of successive depths (which, for a sharp transition, close in on ``t*``).

Run::

    python -m hiergrammar.theory.validate_discrete                # v=32, m=8, s=2, L=3..9
    python -m hiergrammar.theory.validate_discrete --quick        # a minute

It prints a summary and writes JSON (``--out``, default ``discrete.json``); the stored copy
``theory/data/discrete.json`` is what :func:`hiergrammar.theory.discrete.critical_alpha` reads
for population dynamics (``"critical"``) and what the derivation pages quote.

Examples
--------
>>> t = np.array([0.1, 0.2, 0.3, 0.4])
>>> half_crossing(t, np.array([1.0, 0.9, 0.4, 0.1]), chance=0.0)     # where it passes 1/2
0.28
>>> successive_crossing(t, np.array([1.0, 0.8, 0.4, 0.2]), np.array([1.0, 0.9, 0.3, 0.1]))
0.25
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hiergrammar.theory import discrete, meanfield

from hiergrammar.artifacts import progress, save_json
from hiergrammar.bp import upward_pass
from hiergrammar.processes import MaskingProcess, UniformProcess
from hiergrammar.rhm import RHM
from hiergrammar.validation import check_int, check_seed

PROCESSES = ("masking", "uniform")
#: Times of the full run: dense where the class curves of both processes fall (uniform near
#: 0.15-0.25, masking near 0.22-0.33).
T_GRID = (
    0.05,
    0.10,
    0.13,
    0.15,
    0.17,
    0.19,
    0.21,
    0.23,
    0.25,
    0.27,
    0.29,
    0.31,
    0.33,
    0.36,
    0.40,
    0.45,
)
KINDS = ("u", "accuracy", "determined")
#: Where the full run's result is stored with the package.
STORED_RESULT = Path(__file__).resolve().parent / "data" / "discrete.json"


def half_crossing(t: np.ndarray, curve: np.ndarray, chance: float) -> float:
    """First ``t`` where a decreasing curve falls below ``(1 + chance)/2``, linearly
    interpolated (``nan`` if it never does)."""
    from hiergrammar.experiments.curves import first_crossing

    return first_crossing(np.asarray(t), np.asarray(curve), 0.5 * (1.0 + chance))


def successive_crossing(t: np.ndarray, shallow: np.ndarray, deep: np.ndarray) -> float:
    """Where the deeper curve falls below the shallower one for the first time after having
    been above it (the crossing of two class curves), linearly interpolated; ``nan`` if the
    curves do not cross on the grid."""
    diff = np.asarray(deep, dtype=np.float64) - np.asarray(shallow, dtype=np.float64)
    above = np.flatnonzero(diff > 0)
    if above.size == 0:
        return math.nan
    after = np.flatnonzero(diff[above[0] :] < 0)
    if after.size == 0:
        return math.nan
    j = above[0] + after[0]
    i = j - 1
    return float(t[i] + diff[i] * (t[j] - t[i]) / (diff[i] - diff[j]))


def _process(name: str, v: int) -> MaskingProcess | UniformProcess:
    return MaskingProcess(v) if name == "masking" else UniformProcess(v)


def bp_upward_curves(
    process: str,
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    t: Sequence[float],
    n_per_rule: int,
    n_rules: int,
    seed: int = 0,
    batch: int = 128,
    dtype: type = np.float32,
) -> dict[str, np.ndarray]:
    """Exact-BP upward summaries per rule draw: ``{kind: (n_rules, len(t), L+1)}`` for
    ``kind`` in ``u``, ``accuracy``, ``determined`` (see the module docstring). float32
    messages keep masking's exact zeros (the supports agree with float64 at L = 9; the
    tests compare them) and are four times faster.

    Examples
    --------
    >>> got = bp_upward_curves("masking", 8, 8, 2, 2, 2, [0.0, 1.0], n_per_rule=5, n_rules=2)
    >>> got["determined"][:, 0].tolist(), got["u"][:, 1].round(6).tolist()   # clean / all masked
    ([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[0.125, 0.125, 0.125], [0.125, 0.125, 0.125]])
    """
    n_per_rule, n_rules = check_int("n_per_rule", n_per_rule, 1), check_int("n_rules", n_rules, 1)
    seeds = np.random.SeedSequence(check_seed("seed", seed, allow_generator=False)).spawn(n_rules)
    proc = _process(process, v)
    out = {k: np.zeros((n_rules, len(t), L + 1)) for k in KINDS}
    for r in range(n_rules):
        rng = np.random.default_rng(seeds[r])
        rhm = RHM(v, n_classes, m, s, L, seed=int(rng.integers(2**63)))
        data = rhm.sample(n_per_rule, seed=int(rng.integers(2**63)))
        for c, time_ in enumerate(t):
            noise_seed = int(rng.integers(2**63))
            for start in range(0, n_per_rule, batch):
                sl = slice(start, start + batch)
                noise = np.random.default_rng([noise_seed, start])
                obs = proc.corrupt(data.x[sl], float(time_), seed=noise)
                evidence = proc.leaf_likelihood(obs, float(time_), dtype=dtype)
                res = upward_pass(rhm, evidence, dtype=dtype)
                for level in range(L + 1):
                    up = res.up[level]  # (n, width, card)
                    truth = data.levels[level][sl][..., None]
                    on_truth = np.take_along_axis(up, truth, axis=-1)[..., 0]
                    best = up.max(axis=-1)
                    ties = (up == best[..., None]).sum(axis=-1)
                    support = (up > 0).sum(axis=-1)
                    weight = on_truth.shape[0] / n_per_rule
                    out["u"][r, c, level] += weight * on_truth.mean()
                    out["accuracy"][r, c, level] += weight * ((on_truth == best) / ties).mean()
                    out["determined"][r, c, level] += weight * (support == 1).mean()
    return out


def _theories(
    process: str,
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    t: np.ndarray,
    n_pop: int,
    n_two_value: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Every theory's per-level ``u``, ``accuracy`` (and ``determined``) on the grid."""
    shape = (t.size, L + 1)
    out: dict[str, dict[str, np.ndarray]] = {}
    pd = {k: np.zeros(shape) for k in ("u", "accuracy", "determined")}
    pd_se = {k: np.zeros(shape) for k in ("u", "accuracy", "determined")}
    tv = {k: np.zeros(shape) for k in ("u", "accuracy")}
    fm = {k: np.zeros(shape) for k in ("u", "accuracy")}
    det = {k: np.zeros(shape) for k in ("determined", "support_belief")}
    for i, time_ in enumerate(progress(t, desc=f"theories {process} L={L}", total=t.size)):
        alpha = 1.0 - float(time_)
        prof = discrete.population_upward_profile(
            process, v, n_classes, m, s, L, alpha, n_pop=n_pop, seed=seed + i
        )
        for k in pd:
            pd[k][i] = getattr(prof, k)
            pd_se[k][i] = getattr(prof, f"{k}_se")
        two = discrete.two_value_profile(
            process, v, n_classes, m, s, L, alpha, n_pop=n_two_value, seed=seed
        )
        tv["u"][i], tv["accuracy"][i] = two.u, two.accuracy
        mf = meanfield.profile(v, n_classes, m, s, L, discrete.effective_eps(process, v, alpha))
        fm["u"][i] = mf.u
        cards = np.array([v] * L + [n_classes])
        # A two-valued message's argmax is the truth iff u > (1 - u)/(card - 1).
        fm["accuracy"][i] = (mf.u > (1.0 - mf.u) / (cards - 1)).astype(float)
        if process == "masking":
            law = discrete.determination_profile(v, n_classes, m, s, L, alpha)
            det["determined"][i], det["support_belief"][i] = law.determined, law.support_belief
    out["population"] = {**pd, **{f"{k}_se": a for k, a in pd_se.items()}}
    out["two_value"] = tv
    out["first_moment"] = fm
    if process == "masking":
        out["determination"] = det
    return out


def _deviations(bp: dict[str, np.ndarray], theories: dict) -> dict:
    """Largest ``|theory - BP|`` over the grid and the levels, per theory and kind, with where
    it occurs (``t`` index, level) and BP's standard error there."""
    out: dict = {}
    for name, curves in theories.items():
        out[name] = {}
        for kind in KINDS:
            if kind not in curves:
                continue
            dev = np.abs(np.asarray(curves[kind]) - bp[kind])
            i, level = np.unravel_index(int(np.argmax(dev)), dev.shape)
            out[name][kind] = {
                "max": float(dev[i, level]),
                "t_index": int(i),
                "level": int(level),
                "bp_se": float(bp[f"{kind}_se"][i, level]),
                "root_max": float(dev[:, -1].max()),
            }
    return out


def run_validation(
    v: int = 32,
    n_classes: int = 32,
    m: int = 8,
    s: int = 2,
    depths: Sequence[int] = (3, 4, 5, 6, 7, 8, 9),
    t: Sequence[float] = T_GRID,
    n_per_rule: int = 512,
    n_rules: int = 8,
    n_pop: int = 40000,
    n_two_value: int = 100_000,
    critical_n_pop: int = 20000,
    critical_two_value_pop: int = 400_000,
    seed: int = 0,
    processes: Sequence[str] = PROCESSES,
) -> dict:
    """Theories vs exact BP on every ``(process, L, t)`` of the grid, and the critical points.

    Returns a JSON-ready dict: ``params``; ``critical[process][method]``: the deep-tree
    ``alpha*`` of each theory; ``processes[process]["depths"][str(L)]``: ``bp`` (means and
    ``*_se`` over rule draws, ``(len(t), L+1)``), ``theories`` (per theory the same kinds),
    ``deviations`` (:func:`_deviations`), ``t_half`` (per curve the half-way crossing of the
    root accuracy); ``processes[process]["successive"]``: crossings of the BP root-accuracy
    curves of successive depths; ``summary``: the numbers the report quotes.
    """
    t_arr = np.asarray(t, dtype=np.float64)
    out: dict = {
        "params": {
            "v": v,
            "n_classes": n_classes,
            "m": m,
            "s": s,
            "depths": list(depths),
            "t": t_arr,
            "schedule": "linear",
            "n_per_rule": n_per_rule,
            "bp_dtype": "float32",
            "n_rules": n_rules,
            "n_pop": n_pop,
            "n_two_value": n_two_value,
            "critical_n_pop": critical_n_pop,
            "critical_two_value_pop": critical_two_value_pop,
            "seed": seed,
        },
        "critical": {},
        "processes": {},
    }
    chance = 1.0 / n_classes
    for process in processes:
        start = time.perf_counter()
        crit: dict[str, float | None] = {
            "first_moment": discrete.first_moment_critical_alpha(process, v, m, s),
            "two_value": discrete.two_value_critical_alpha(
                process, v, m, s, n_pop=critical_two_value_pop, seed=seed
            ),
            "population": discrete.population_critical_alpha(
                process, v, m, s, n_pop=critical_n_pop, seed=seed, tol=1e-3
            ),
        }
        if process == "masking":
            crit["determination"] = discrete.determination_critical_alpha(v, m, s, tol=1e-6)
        out["critical"][process] = crit
        print(
            f"{process}: deep-tree t* "
            + ", ".join(f"{k} {1 - a:.4f}" for k, a in crit.items() if a is not None)
            + f" ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        per_depth: dict = {}
        for L in depths:
            start = time.perf_counter()
            raw = bp_upward_curves(
                process, v, n_classes, m, s, L, t_arr, n_per_rule, n_rules, seed=seed + 1000 * L
            )
            bp: dict[str, np.ndarray] = {}
            for kind, a in raw.items():
                bp[kind] = a.mean(axis=0)
                bp[f"{kind}_se"] = (
                    a.std(axis=0, ddof=1) / np.sqrt(n_rules) if n_rules > 1 else 0.0 * a[0]
                )
            theories = _theories(
                process, v, n_classes, m, s, L, t_arr, n_pop, n_two_value, seed + 7 * L
            )
            t_half = {"bp": half_crossing(t_arr, bp["accuracy"][:, -1], chance)}
            for name, curves in theories.items():
                if "accuracy" in curves:
                    t_half[name] = half_crossing(t_arr, curves["accuracy"][:, -1], chance)
            per_depth[str(L)] = {
                "bp": bp,
                "theories": theories,
                "deviations": _deviations(bp, theories),
                "t_half": t_half,
                "seconds": time.perf_counter() - start,
            }
            dev = per_depth[str(L)]["deviations"]
            print(
                f"{process} L={L}: BP t_half {t_half['bp']:.4f}; max |theory - BP| of u: "
                + ", ".join(f"{k} {d['u']['max']:.3f}" for k, d in dev.items() if "u" in d)
                + f" ({per_depth[str(L)]['seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        successive = {}
        for a, b in zip(depths[:-1], depths[1:], strict=True):
            successive[f"{a}-{b}"] = successive_crossing(
                t_arr,
                per_depth[str(a)]["bp"]["accuracy"][:, -1],
                per_depth[str(b)]["bp"]["accuracy"][:, -1],
            )
        out["processes"][process] = {"depths": per_depth, "successive": successive}
    out["summary"] = summarise(out)
    return out


def summarise(result: dict) -> dict:
    """The numbers the report quotes: per process the deep-tree ``t*`` of each theory, the BP
    half-way crossings and successive-depth crossings, and the largest deviations of each
    theory from BP (``u`` over all levels, root accuracy)."""
    summary: dict = {}
    for process, res in result["processes"].items():
        crit = result["critical"][process]
        entry: dict = {
            "t_star": {k: (None if a is None else 1.0 - a) for k, a in crit.items()},
            "bp_t_half": {L: d["t_half"]["bp"] for L, d in res["depths"].items()},
            "bp_successive": res["successive"],
            "theory_t_half": {
                name: {L: d["t_half"].get(name) for L, d in res["depths"].items()}
                for name in next(iter(res["depths"].values()))["t_half"]
                if name != "bp"
            },
            "max_dev": {},
        }
        for name in next(iter(res["depths"].values()))["deviations"]:
            devs = [d["deviations"][name] for d in res["depths"].values()]
            entry["max_dev"][name] = {
                kind: max(x[kind]["max"] for x in devs) for kind in KINDS if kind in devs[0]
            }
            if "accuracy" in devs[0]:
                entry["max_dev"][name]["root_accuracy"] = max(
                    x["accuracy"]["root_max"] for x in devs
                )
        summary[process] = entry
    return summary


def load_stored(path: str | Path | None = None) -> dict:
    """The stored result of :func:`run_validation` (plain JSON; nothing is unpickled).

    Examples
    --------
    >>> sorted(load_stored()["critical"])
    ['masking', 'uniform']
    """
    return discrete.load_stored(path or STORED_RESULT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hiergrammar.theory.validate_discrete",
        description="Theories of the masking and uniform transitions vs exact BP (writes JSON).",
    )
    parser.add_argument("--quick", action="store_true", help="L=3..4, a coarse grid, few samples")
    parser.add_argument("--out", type=Path, default=Path("discrete.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kwargs: dict = {}
    if args.quick:
        kwargs = dict(
            depths=(3, 4),
            t=(0.1, 0.2, 0.3, 0.4),
            n_per_rule=64,
            n_rules=2,
            n_pop=2000,
            n_two_value=5000,
            critical_n_pop=2000,
            critical_two_value_pop=5000,
        )
    start = time.perf_counter()
    result = run_validation(seed=args.seed, **kwargs)
    result["params"]["quick"] = args.quick
    result["params"]["seconds"] = time.perf_counter() - start
    save_json(args.out, result)
    for process, entry in result["summary"].items():
        print(f"{process}:")
        print("  deep-tree t*: " + ", ".join(f"{k} {x:.4f}" for k, x in entry["t_star"].items()))
        print(
            "  BP half-way crossing per L: "
            + ", ".join(f"{L}: {x:.4f}" for L, x in entry["bp_t_half"].items())
        )
        print(
            "  BP successive-depth crossings: "
            + ", ".join(f"{k}: {x:.4f}" for k, x in entry["bp_successive"].items())
        )
        for name, devs in entry["max_dev"].items():
            print(f"  max |{name} - BP|: " + ", ".join(f"{k} {x:.4f}" for k, x in devs.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
