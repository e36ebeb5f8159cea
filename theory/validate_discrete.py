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
    python -m hiergrammar.theory.validate_discrete --refine-from discrete.json --out discrete.json

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

__all__ = [
    "PROCESSES",
    "T_GRID",
    "KINDS",
    "STORED_RESULT",
    "half_crossing",
    "successive_crossing",
    "bp_upward_curves",
    "run_validation",
    "REFINE_BRACKETS",
    "refine_population",
    "summarise",
    "format_summary",
    "load_stored",
    "main",
]

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
    interpolated.

    Parameters
    ----------
    t : ``(k,)`` increasing times.
    curve : ``(k,)`` values (NaN: missing).
    chance : the curve's value without information.

    Returns
    -------
    float
        ``nan`` if the curve never falls below the level or starts below it.

    Raises
    ------
    InputError
        On shapes that are not two equal 1-d arrays.

    Examples
    --------
    >>> half_crossing(np.array([0.0, 1.0]), np.array([1.0, 0.0]), chance=0.5)
    0.25
    """
    from hiergrammar.experiments.curves import first_crossing

    return first_crossing(np.asarray(t), np.asarray(curve), 0.5 * (1.0 + chance))


def successive_crossing(t: np.ndarray, shallow: np.ndarray, deep: np.ndarray) -> float:
    """Where the deeper curve falls below the shallower one for the first time after having
    been above it (the crossing of two class curves), linearly interpolated.

    Parameters
    ----------
    t : ``(k,)`` increasing times.
    shallow, deep : ``(k,)`` the two curves.

    Returns
    -------
    float
        ``nan`` if the curves do not cross on the grid.

    Examples
    --------
    >>> successive_crossing(np.array([0.0, 1.0]), np.array([0.5, 0.5]), np.array([0.75, 0.25]))
    0.5
    """
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

    Parameters
    ----------
    process : ``"masking"`` or ``"uniform"`` (linear schedule).
    v, n_classes, m, s, L : the RHM.
    t : times.
    n_per_rule : samples per rule draw (the same data at every time).
    n_rules : independent rule draws.
    seed : a non-negative int.
    batch : samples per BP call.
    dtype : message dtype.

    Returns
    -------
    dict
        ``{"u", "accuracy", "determined"}`` -> ``(n_rules, len(t), L+1)`` arrays.

    Raises
    ------
    InputError
        On bad arguments.

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
    # The two-valued messages of the closures put u on the truth and (1 - u)/(v - 1) on each
    # other value, so their argmax is the truth whenever u > 1/v: no class accuracy; they
    # are compared on u only.
    tv = {"u": np.zeros(shape)}
    fm = {"u": np.zeros(shape)}
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
        tv["u"][i] = two.u
        mf = meanfield.profile(v, n_classes, m, s, L, discrete.effective_eps(process, v, alpha))
        fm["u"][i] = mf.u
        if process == "masking":
            law = discrete.determination_profile(v, n_classes, m, s, L, alpha)
            det["determined"][i], det["support_belief"][i] = law.determined, law.support_belief
    out["population"] = {**pd, **{f"{k}_se": a for k, a in pd_se.items()}}
    out["two_value"] = tv
    out["first_moment"] = fm
    if process == "masking":
        out["determination"] = det
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

    Parameters
    ----------
    v, n_classes, m, s : the RHM.
    depths, t : the grid (linear schedule).
    n_per_rule, n_rules : BP's samples per rule draw and rule draws.
    n_pop, n_two_value : population sizes of the finite-depth theories.
    critical_n_pop, critical_two_value_pop : population sizes of the deep-tree thresholds.
    seed : a non-negative int.
    processes : which processes.

    Returns
    -------
    dict

    Examples
    --------
    >>> small = dict(depths=(2,), t=(0.2,), n_per_rule=4, n_rules=2, n_pop=40, n_two_value=40)
    >>> res = run_validation(8, 8, 2, 2, processes=("uniform",), critical_n_pop=40,
    ...                      critical_two_value_pop=40, **small)
    >>> sorted(res["processes"]["uniform"]["depths"]["2"]["theories"])
    ['first_moment', 'population', 'two_value']

    Notes
    -----
    The result is a JSON-ready dict: ``params``; ``critical[process][method]``: the deep-tree
    ``alpha*`` of each theory; ``processes[process]["depths"][str(L)]``: ``bp`` (means and
    ``*_se`` over rule draws, ``(len(t), L+1)``) and ``theories`` (per theory the same kinds);
    ``summary``: :func:`summarise`.
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
            per_depth[str(L)] = {
                "bp": bp,
                "theories": theories,
                "seconds": time.perf_counter() - start,
            }
            half = half_crossing(t_arr, bp["accuracy"][:, -1], chance)
            print(
                f"{process} L={L}: BP root accuracy half-way at t = {half:.4f} "
                f"({per_depth[str(L)]['seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        out["processes"][process] = {"depths": per_depth}
    out["summary"] = summarise(out)
    return out


#: Brackets in ``t`` of :func:`refine_population` (around the first, smaller-population
#: estimate) for the figures' parameters.
REFINE_BRACKETS = {"masking": (0.24, 0.31), "uniform": (0.13, 0.19)}


def refine_population(
    result: dict,
    n_pop: int = 60000,
    seeds: Sequence[int] = (1, 2),
    brackets: dict[str, tuple[float, float]] | None = None,
    levels: int = 100,
    tol: float = 2e-3,
) -> dict:
    """Population dynamics' deep-tree thresholds again, with a larger population and several
    seeds (a population of ``2e4`` loses the class a little early by chance near the
    threshold): each run is added to ``result["critical"][process]["population_runs"]`` and
    ``"population"`` becomes the mean over the runs of the largest population.

    Parameters
    ----------
    result : what :func:`run_validation` returns (changed in place and returned).
    n_pop : members per population.
    seeds : one bisection per seed.
    brackets : per process, the ``(t_low, t_high)`` searched (default
        :data:`REFINE_BRACKETS`).
    levels, tol : as for :func:`hiergrammar.theory.discrete.population_critical_alpha`.

    Returns
    -------
    dict
        ``result``.

    Examples
    --------
    >>> res = {"params": {"v": 8, "m": 2, "s": 2}, "critical": {"masking": {}}}
    >>> out = refine_population(res, n_pop=200, seeds=(1,), brackets={"masking": (0.0, 0.5)},
    ...                         levels=20, tol=0.1)
    >>> [run["n_pop"] for run in out["critical"]["masking"]["population_runs"]]
    [200]
    """
    brackets = REFINE_BRACKETS if brackets is None else brackets
    v, m, s = (result["params"][k] for k in ("v", "m", "s"))
    for process, crit in result["critical"].items():
        if process not in brackets:
            continue
        t_low, t_high = brackets[process]
        runs = crit.setdefault("population_runs", [])
        if not runs and crit.get("population") is not None:
            n_first = result["params"].get("critical_n_pop")
            runs.append(
                {
                    "n_pop": n_first,
                    "seed": result["params"].get("seed"),
                    "alpha": crit["population"],
                }
            )
        for seed in seeds:
            start = time.perf_counter()
            alpha = discrete.population_critical_alpha(
                process,
                v,
                m,
                s,
                levels=levels,
                n_pop=n_pop,
                seed=seed,
                tol=tol,
                bracket=(1.0 - t_high, 1.0 - t_low),
            )
            runs.append(
                {
                    "n_pop": n_pop,
                    "seed": seed,
                    "alpha": alpha,
                    "seconds": time.perf_counter() - start,
                }
            )
            print(
                f"{process}: population t* = {1 - alpha:.4f} (n_pop {n_pop}, seed {seed})",
                file=sys.stderr,
                flush=True,
            )
        largest = max(run["n_pop"] or 0 for run in runs)
        crit["population"] = float(
            np.mean([run["alpha"] for run in runs if run["n_pop"] == largest])
        )
    return result


def _curve(values: object) -> np.ndarray:
    """A stored curve as a float array (JSON null -> NaN)."""
    return np.array(values, dtype=np.float64)


def summarise(result: dict) -> dict:
    """The numbers the report quotes, recomputed from the stored curves (so a stored result
    can be re-summarised): per process

    * ``t_star``: each theory's deep-tree ``t*``;
    * ``t_half[kind][source][L]``: where the root's curve (``kind`` = ``accuracy``, or ``u``:
      the mean belief in the true class, which is the probability that exact
      forward-backward resampling keeps the class, the discrete-diffusion figures' measure)
      falls half-way from 1 to chance, for BP and every theory;
    * ``successive[kind][source]["La-Lb"]``: where the root curves of successive depths cross;
    * ``max_dev[theory][kind]``: the largest ``|theory - BP|`` over depths, times and levels
      (``root_accuracy``, ``root_u``: at the root only), with ``where`` and BP's standard
      error there (``max_dev_at``).

    Parameters
    ----------
    result : what :func:`run_validation` returns, or :func:`load_stored`.

    Returns
    -------
    dict
        ``{process: entry}``.

    Examples
    --------
    >>> sorted(summarise(load_stored())["uniform"])
    ['max_dev', 'max_dev_at', 'successive', 't_half', 't_star']
    """
    t = _curve(result["params"]["t"])
    chance = 1.0 / result["params"]["n_classes"]
    summary: dict = {}
    for process, res in result["processes"].items():
        depths = sorted(res["depths"], key=int)
        theory_names = list(res["depths"][depths[0]]["theories"])
        entry: dict = {
            "t_star": {
                k: (None if a is None else 1.0 - a)
                for k, a in result["critical"][process].items()
                if not isinstance(a, list)
            },
            "t_half": {},
            "successive": {},
            "max_dev": {},
            "max_dev_at": {},
        }
        for kind in ("accuracy", "u"):
            sources = {"bp": [_curve(res["depths"][L]["bp"][kind]) for L in depths]}
            for name in theory_names:
                if kind in res["depths"][depths[0]]["theories"][name]:
                    sources[name] = [
                        _curve(res["depths"][L]["theories"][name][kind]) for L in depths
                    ]
            entry["t_half"][kind] = {
                name: {
                    L: half_crossing(t, c[:, -1], chance) for L, c in zip(depths, cs, strict=True)
                }
                for name, cs in sources.items()
            }
            entry["successive"][kind] = {
                name: {
                    f"{a}-{b}": successive_crossing(t, ca[:, -1], cb[:, -1])
                    for (a, ca), (b, cb) in zip(
                        zip(depths[:-1], cs[:-1], strict=True),
                        zip(depths[1:], cs[1:], strict=True),
                        strict=True,
                    )
                }
                for name, cs in sources.items()
            }
        for name in theory_names:
            entry["max_dev"][name], entry["max_dev_at"][name] = {}, {}
            for kind in KINDS:
                if kind not in res["depths"][depths[0]]["theories"][name]:
                    continue
                best = (-1.0, None)
                root_best = -1.0
                for L in depths:
                    bp = _curve(res["depths"][L]["bp"][kind])
                    se = _curve(res["depths"][L]["bp"][f"{kind}_se"])
                    dev = np.abs(_curve(res["depths"][L]["theories"][name][kind]) - bp)
                    i, level = np.unravel_index(int(np.nanargmax(dev)), dev.shape)
                    if dev[i, level] > best[0]:
                        best = (
                            float(dev[i, level]),
                            {
                                "L": int(L),
                                "t": float(t[i]),
                                "level": int(level),
                                "bp_se": float(se[i, level]),
                            },
                        )
                    root_best = max(root_best, float(np.nanmax(dev[:, -1])))
                entry["max_dev"][name][kind] = best[0]
                entry["max_dev"][name][f"root_{kind}"] = root_best
                entry["max_dev_at"][name][kind] = best[1]
        summary[process] = entry
    return summary


def format_summary(summary: dict) -> str:
    """The summary as text (what the script prints).

    Parameters
    ----------
    summary : what :func:`summarise` returns.

    Returns
    -------
    str

    Examples
    --------
    >>> format_summary(load_stored()["summary"]).splitlines()[0]
    'masking:'
    """
    lines = []
    for process, entry in summary.items():
        lines.append(f"{process}:")
        lines.append(
            "  deep-tree t*: "
            + ", ".join(f"{k} {x:.4f}" for k, x in entry["t_star"].items() if x is not None)
        )
        for kind in ("accuracy", "u"):
            for name in ("bp", "population", "two_value"):
                half = entry["t_half"][kind].get(name)
                if half:
                    lines.append(
                        f"  {name} half-way crossing of the root {kind} per L: "
                        + ", ".join(f"{L}: {x:.4f}" for L, x in half.items())
                    )
            lines.append(
                f"  BP successive-depth crossings of the root {kind}: "
                + ", ".join(f"{k}: {x:.4f}" for k, x in entry["successive"][kind]["bp"].items())
            )
        for name, devs in entry["max_dev"].items():
            lines.append(
                f"  max |{name} - BP|: " + ", ".join(f"{k} {x:.4f}" for k, x in devs.items())
            )
    return "\n".join(lines)


def load_stored(path: str | Path | None = None) -> dict:
    """The stored result of :func:`run_validation` (plain JSON; nothing is unpickled).

    Parameters
    ----------
    path : a JSON file (default: :data:`STORED_RESULT`).

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        When the file is missing.

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
    parser.add_argument(
        "--refine-from",
        type=Path,
        default=None,
        help="skip the grid: rerun population dynamics' deep thresholds of this earlier result "
        "with 6e4 members and two seeds (about 15 minutes each on two cores), re-summarise it "
        "and write it to --out",
    )
    args = parser.parse_args(argv)
    if args.refine_from is not None:
        result = load_stored(args.refine_from)
        refine_population(result)
        result["summary"] = summarise(result)
        save_json(args.out, result)
        print(format_summary(result["summary"]))
        print(f"wrote {args.out}")
        return 0
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
    print(format_summary(result["summary"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
