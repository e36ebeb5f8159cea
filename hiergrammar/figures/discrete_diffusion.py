"""Figure step ``discrete_diffusion``: masked and uniform discrete diffusion on the RHM, exactly.

For RHMs with ``v = n_classes = 32``, ``m = 8``, ``s = 2``, fresh strings are noised with the
masking (absorbing) and the uniform process to a time ``t`` (linear schedule,
``alpha = 1 - t``) and resampled from the exact posterior
(:func:`hiergrammar.sampling.exact_forward_backward`): what a perfect discrete diffusion model
started at ``t`` generates. :func:`compute_discrete_diffusion` measures, on a grid of times and
for several rule draws (:mod:`hiergrammar.experiments.token_changes`, run as two sweeps of
:mod:`hiergrammar.sweep`: :func:`token_changes_config` and :func:`reconstruction_config`),

* the fraction of unchanged symbols per level of the tree, and the class transition time
  ``t*`` where the class is unchanged with probability half-way between 1 and chance;
* the correlation of token changes ``C(r)`` along the string and by tree distance, and the
  susceptibility ``chi(t) = sum_{r >= 1} C(r)`` for ``L = 3, 5, 7``;
* the accuracy and cross-entropy of the Bayes-optimal masked-token predictor
  (:mod:`hiergrammar.experiments.masked_reconstruction`).

:func:`plot_unchanged`, :func:`plot_correlations`, :func:`plot_susceptibility` and
:func:`plot_masked_reconstruction` draw them; the ``describe_*`` functions write the report's
statements from the numbers. Run it alone with
``python -m hiergrammar.figures.discrete_diffusion OUT_DIR [--quick] [--seed S]``.

Examples
--------
>>> result = compute_discrete_diffusion(EXAMPLE, seed=0)   # tiny sizes, for examples
>>> result.summary_of("masking", 2).mean["chi"].shape      # (len(t),)
(2,)
>>> t_star, se = result.transition("uniform", 2)            # class transition, SE over draws
>>> bool(0.0 < t_star < 1.0)
True
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.artifacts import ReportSection, save_figure, save_json, save_npz
from hiergrammar.experiments.masked_reconstruction import (
    MaskedReconstruction,
)
from hiergrammar.experiments.token_changes import (
    DrawSummary,
    TokenChangeCurves,
    class_transition_time,
    combine_draws,
)
from hiergrammar.sweep import grid_array, scheduler_for, sweep_frame
from hiergrammar.validation import check_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "REQUIRES",
    "EXTRA",
    "PROCESSES",
    "COMMAND",
    "DiscreteDiffusionSizes",
    "FULL",
    "QUICK",
    "EXAMPLE",
    "DiscreteDiffusionResult",
    "compute_discrete_diffusion",
    "plot_unchanged",
    "plot_correlations",
    "plot_susceptibility",
    "plot_masked_reconstruction",
    "describe_unchanged",
    "describe_correlations",
    "describe_susceptibility",
    "describe_masked_reconstruction",
    "describe_theory_marks",
    "reproduce_step",
    "main",
]

REQUIRES: tuple[str, ...] = ()
EXTRA: str | None = None

#: The processes of this step, in report order.
PROCESSES = ("masking", "uniform")

#: The command that runs this step alone (``hiergrammar reproduce`` runs it as a step too).
COMMAND = "python -m hiergrammar.figures.discrete_diffusion OUT_DIR"


@dataclass(frozen=True)
class DiscreteDiffusionSizes:
    """Sizes of the ``discrete_diffusion`` step.

    Attributes
    ----------
    v, n_classes, m, s : int
        The RHMs.
    depths : tuple of int
        Depths ``L`` of the susceptibility figure; the deepest one also gives the per-level and
        ``C(r)`` figures and the masked reconstruction.
    t : tuple of float
        Times of the linear schedule (``alpha = 1 - t``).
    t_correlations : tuple of float
        Times (members of ``t``) at which ``C(r)`` is drawn.
    n_rules : int
        Independent rule draws per depth.
    n_per_rule : int
        Samples per time and rule draw (``n_rules * n_per_rule`` per point).
    n_reconstruction : int
        Samples per time of the masked reconstruction (one rule draw, deepest ``L``).
    workers : int
        Worker processes of a local Dask cluster started for the step (1: run in this
        process); inside :func:`hiergrammar.sweep.use_scheduler` (``hiergrammar reproduce``)
        the block's scheduler is used instead.
    budget_seconds : float
        The step's time budget on two CPU cores.
    dpi : int
        Resolution of the PNG figures.
    levels_per_task : int
        Times measured by one task of the sweeps (its size).
    """

    v: int
    n_classes: int
    m: int
    s: int
    depths: tuple[int, ...]
    t: tuple[float, ...]
    t_correlations: tuple[float, ...]
    n_rules: int
    n_per_rule: int
    n_reconstruction: int
    workers: int
    budget_seconds: float
    dpi: int = 150
    levels_per_task: int = 6

    @property
    def samples_per_point(self) -> int:
        """Samples behind each point of a curve: ``n_rules * n_per_rule``."""
        return self.n_rules * self.n_per_rule


def _grid(*parts: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(float(x), 6) for x in np.concatenate(parts))


#: 22 times, dense where the curves move: the class transitions of both processes lie in
#: t ~ 0.15-0.3 and chi is back near 0 by t ~ 0.7; 4 rule draws x 2560 = 10240 samples each.
FULL = DiscreteDiffusionSizes(
    v=32,
    n_classes=32,
    m=8,
    s=2,
    depths=(3, 5, 7),
    t=_grid(np.arange(1, 20) * 0.03, [0.7, 0.85, 1.0]),
    t_correlations=(0.09, 0.18, 0.27, 0.36, 0.51),
    n_rules=4,
    n_per_rule=2560,
    n_reconstruction=2048,
    workers=2,
    budget_seconds=120,
)

#: Tiny sizes for ``--quick``: a smoke test of the whole pipeline in seconds.
QUICK = DiscreteDiffusionSizes(
    v=8,
    n_classes=4,
    m=2,
    s=2,
    depths=(2, 3),
    t=(0.1, 0.3, 0.5, 0.7, 1.0),
    t_correlations=(0.3, 0.5),
    n_rules=2,
    n_per_rule=64,
    n_reconstruction=64,
    workers=1,
    budget_seconds=8,
    dpi=72,
)

#: Sizes of the docstring examples (a fraction of a second).
EXAMPLE = DiscreteDiffusionSizes(
    v=8,
    n_classes=4,
    m=2,
    s=2,
    depths=(2,),
    t=(0.3, 1.0),
    t_correlations=(0.3,),
    n_rules=2,
    n_per_rule=20,
    n_reconstruction=20,
    workers=1,
    budget_seconds=1,
    dpi=30,
)


@dataclass
class DiscreteDiffusionResult:
    """What :func:`compute_discrete_diffusion` measured.

    Attributes
    ----------
    sizes : DiscreteDiffusionSizes
    seed : int
    t : numpy.ndarray
        ``(n_t,)``.
    draws : dict
        ``draws[process][L]``: one :class:`~hiergrammar.experiments.token_changes.
        TokenChangeCurves` per rule draw.
    reconstruction : MaskedReconstruction
        Bayes-optimal masked-token prediction at the deepest ``L``.
    timings : dict
        ``wall_seconds``, ``cpu_seconds`` (summed over workers), ``workers``.
    """

    sizes: DiscreteDiffusionSizes
    seed: int
    t: np.ndarray
    draws: dict[str, dict[int, list[TokenChangeCurves]]]
    reconstruction: MaskedReconstruction
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        z = self.sizes
        return f"v={z.v}, n_classes={z.n_classes}, m={z.m}, s={z.s}"

    @property
    def deepest(self) -> int:
        return max(self.sizes.depths)

    def summary_of(self, process: str, L: int) -> DrawSummary:
        """Means and standard errors over rule draws of one process and depth.

        Parameters
        ----------
        process : str
            ``"masking"`` or ``"uniform"``.
        L : int
            One of ``sizes.depths``.

        Returns
        -------
        DrawSummary
            ``mean`` and ``se`` of ``unchanged``, ``C``, ``C_tree`` and ``chi``.
        """
        return combine_draws(self.draws[process][L])

    def transition(self, process: str, L: int) -> tuple[float, float]:
        """Class transition time ``t*`` of the mean curve, and its standard error over rule
        draws (NaN with one draw or where a draw's curve never crosses).

        Parameters
        ----------
        process : str
            ``"masking"`` or ``"uniform"``.
        L : int
            One of ``sizes.depths``.

        Returns
        -------
        tuple of float
            ``(t*, standard error)``; see
            :func:`~hiergrammar.experiments.token_changes.class_transition_time`.
        """
        chance = 1.0 / self.sizes.n_classes
        mean = self.summary_of(process, L).mean["unchanged"][:, L]
        per_draw = np.array(
            [
                class_transition_time(self.t, c.unchanged[:, L], chance)
                for c in self.draws[process][L]
            ]
        )
        se = per_draw.std(ddof=1) / np.sqrt(per_draw.size) if per_draw.size > 1 else np.nan
        return class_transition_time(self.t, mean, chance), float(se)

    def chi_peak(self, process: str, L: int) -> dict[str, float]:
        """Where the mean ``chi(t)`` peaks.

        Parameters
        ----------
        process : str
            ``"masking"`` or ``"uniform"``.
        L : int
            One of ``sizes.depths``.

        Returns
        -------
        dict
            ``t_grid`` (the grid point of the maximum), ``t_parabola`` (the vertex of a
            parabola through it and its two neighbours), ``height`` and ``height_se``, and
            ``t_within_one_se_low`` / ``_high``: the span of times whose ``chi`` is within one
            standard error of the peak (a rough uncertainty of the location).
        """
        summary = self.summary_of(process, L)
        chi, se = summary.mean["chi"], summary.se["chi"]
        i = int(np.argmax(chi))
        vertex = float(self.t[i])
        if 0 < i < len(self.t) - 1:
            a, b, _ = np.polyfit(self.t[i - 1 : i + 2], chi[i - 1 : i + 2], 2)
            if a < 0:
                vertex = float(np.clip(-b / (2 * a), self.t[i - 1], self.t[i + 1]))
        close = self.t[chi >= chi[i] - (se[i] if np.isfinite(se[i]) else 0.0)]
        return {
            "t_grid": float(self.t[i]),
            "t_parabola": vertex,
            "height": float(chi[i]),
            "height_se": float(se[i]),
            "t_within_one_se_low": float(close.min()),
            "t_within_one_se_high": float(close.max()),
        }

    def summary(self) -> dict[str, Any]:
        """The numbers the report quotes, JSON-able."""
        z = self.sizes
        out: dict[str, Any] = {
            "params": dict(v=z.v, n_classes=z.n_classes, m=z.m, s=z.s),
            "sizes": asdict(z),
            "seed": self.seed,
            "schedule": "linear (alpha = 1 - t)",
            "command": COMMAND,
            "samples_per_point": z.samples_per_point,
            "timings": self.timings,
        }
        for process in PROCESSES:
            out[process] = {
                f"L{L}": {
                    "class_transition_t": self.transition(process, L)[0],
                    "class_transition_t_se": self.transition(process, L)[1],
                    "chi_peak": self.chi_peak(process, L),
                }
                for L in z.depths
            }
        rec = self.reconstruction
        out["masked_reconstruction"] = {
            "L": self.deepest,
            "t": rec.t,
            "accuracy": rec.accuracy,
            "cross_entropy_nats": rec.cross_entropy,
        }
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Every curve as named arrays: ``t``, ``{process}_L{L}_{quantity}`` (mean and ``_se``
        over rule draws, and ``_draws`` per draw) and ``reconstruction_*``."""
        out: dict[str, np.ndarray] = {"t": self.t}
        for process in PROCESSES:
            for L in self.sizes.depths:
                summary = self.summary_of(process, L)
                for name in ("unchanged", "C", "C_tree", "chi"):
                    out[f"{process}_L{L}_{name}"] = summary.mean[name]
                    out[f"{process}_L{L}_{name}_se"] = summary.se[name]
                draws = self.draws[process][L]
                out[f"{process}_L{L}_chi_draws"] = np.stack([c.chi for c in draws])
                out[f"{process}_L{L}_chi_jackknife_se_draws"] = np.stack([c.chi_se for c in draws])
        rec = self.reconstruction
        for name in ("accuracy", "accuracy_se", "cross_entropy", "masked_fraction"):
            out[f"reconstruction_{name}"] = getattr(rec, name)
        return out


# -- compute ---------------------------------------------------------------------------------
def token_changes_config(sizes: DiscreteDiffusionSizes, seed: int = 0) -> dict[str, Any]:
    """The token-change grid as a sweep: every depth, both processes on the linear schedule at
    ``sizes.t``, ``sizes.n_rules`` rule draws (the same grammars for both processes),
    ``sizes.n_per_rule`` strings per time and draw, float32 BP (0.25 CPU-s per block of 1024
    strings at L = 7 against 0.46 in float64, benchmarks/exact_forward_backward.py).

    >>> config = token_changes_config(QUICK)
    >>> config["grammar"]["L"], config["noise"]["process"], config["measure"]["name"]
    ([2, 3], ['masking', 'uniform'], 'token_changes')
    """
    z = sizes
    return {
        "seed": seed,
        "rule_draws": z.n_rules,
        "grammar": {"v": z.v, "n_classes": z.n_classes, "m": z.m, "s": z.s, "L": list(z.depths)},
        "noise": {
            "process": list(PROCESSES),
            "levels": list(z.t),
            "levels_per_task": z.levels_per_task,
        },
        "measure": {"name": "token_changes", "n_samples": z.n_per_rule, "dtype": "float32"},
    }


def reconstruction_config(sizes: DiscreteDiffusionSizes, seed: int = 0) -> dict[str, Any]:
    """The masked reconstruction as a sweep: the deepest ``L``, rule draw 0 (the grammar of the
    token-change sweep's draw 0), ``sizes.n_reconstruction`` strings per time.

    >>> reconstruction_config(QUICK)["grammar"]["L"]
    3
    """
    z = sizes
    return {
        "seed": seed,
        "rule_draws": [0],
        "grammar": {"v": z.v, "n_classes": z.n_classes, "m": z.m, "s": z.s, "L": max(z.depths)},
        "noise": {
            "process": "masking",
            "levels": list(z.t),
            "levels_per_task": z.levels_per_task,
        },
        "measure": {
            "name": "masked_reconstruction",
            "n_samples": z.n_reconstruction,
            "dtype": "float32",
        },
    }


def _curves(frame: Any, t: np.ndarray, n: int) -> TokenChangeCurves:
    """The :class:`TokenChangeCurves` of one process, depth and rule draw (rows of a
    ``token_changes`` sweep), on the times ``t``."""

    def along(name: str, rows: Any, axes: list[str]) -> np.ndarray:
        values, coords = grid_array(rows, name, axes)
        return values[np.searchsorted(coords[0], t)]

    leaves = frame[frame["level"] == 0]
    axes = ["noise_level", "level"]
    return TokenChangeCurves(
        t=t,
        unchanged=along("unchanged", frame, axes),
        unchanged_se=along("unchanged_se", frame, axes),
        C=along("C", leaves, ["noise_level"]),
        C_tree=along("C_tree", frame, axes),
        chi=along("chi", leaves, ["noise_level"]),
        chi_se=along("chi_se", leaves, ["noise_level"]),
        n=n,
    )


def compute_discrete_diffusion(
    sizes: DiscreteDiffusionSizes = FULL,
    seed: int = 0,
    *,
    store: str | Path | None = None,
    scheduler: Any = None,
) -> DiscreteDiffusionResult:
    """Run every forward-backward measurement of the step.

    Two sweeps (:func:`token_changes_config`, :func:`reconstruction_config`): tasks of one
    process, depth, rule draw and a few times, each with seeds derived from its parameters, so
    the result depends on neither the number of workers nor how the times are split into
    tasks. The same rule draws serve both processes.

    Parameters
    ----------
    sizes : DiscreteDiffusionSizes
        :data:`FULL`, :data:`QUICK` or your own.
    seed : int
        Seed of the rule draws, the data and the noise.
    store : str or Path, optional
        Folder of the two sweep stores (``token_changes``, ``masked_reconstruction``); default
        temporary folders.
    scheduler : optional
        Where the sweeps run (:func:`hiergrammar.sweep.run_sweep`); default the enclosing
        :func:`hiergrammar.sweep.use_scheduler` block's, else this process (``sizes.workers ==
        1``) or a local cluster of ``sizes.workers`` processes.

    Returns
    -------
    DiscreteDiffusionResult

    Examples
    --------
    >>> res = compute_discrete_diffusion(QUICK, seed=0)
    >>> sorted(res.draws), sorted(res.draws["uniform"])
    (['masking', 'uniform'], [2, 3])
    """
    seed = check_int("seed", seed, 0)
    z = sizes
    workers = check_int("workers", z.workers, 1)
    t = np.asarray(z.t, dtype=np.float64)
    store = None if store is None else Path(store)
    start = time.perf_counter()
    with scheduler_for(
        scheduler, default="serial" if workers == 1 else "local", workers=workers
    ) as shared:
        changes, ran = sweep_frame(
            token_changes_config(z, seed),
            None if store is None else store / "token_changes",
            scheduler=shared,
        )
        rec_frame, rec_ran = sweep_frame(
            reconstruction_config(z, seed),
            None if store is None else store / "masked_reconstruction",
            scheduler=shared,
        )
    wall = time.perf_counter() - start
    draws: dict[str, dict[int, list[TokenChangeCurves]]] = {p: {} for p in PROCESSES}
    for process in PROCESSES:
        for L in z.depths:
            rows = changes[(changes["process"] == process) & (changes["L"] == L)]
            draws[process][L] = [
                _curves(rows[rows["rule_draw"] == r], t, z.n_per_rule) for r in range(z.n_rules)
            ]
    rec = rec_frame.set_index("noise_level").loc[t]
    reconstruction = MaskedReconstruction(
        t=t,
        accuracy=rec["accuracy"].to_numpy(),
        accuracy_se=rec["accuracy_se"].to_numpy(),
        cross_entropy=rec["cross_entropy"].to_numpy(),
        masked_fraction=rec["masked_fraction"].to_numpy(),
        n=z.n_reconstruction,
    )
    timings = {
        "wall_seconds": wall,
        "cpu_seconds": ran.cpu_seconds + rec_ran.cpu_seconds,
        "workers": max(ran.workers or 1, rec_ran.workers or 1),
    }
    return DiscreteDiffusionResult(z, seed, t, draws, reconstruction, timings)


# -- plot ------------------------------------------------------------------------------------
#: Names of the theories of :mod:`hiergrammar.theory.discrete` in legends and the report.
_THEORY_NAMES = {
    "first_moment": "first moment",
    "determination": "determination law",
    "two_value": "two-value closure",
    "population": "population dynamics",
}


@functools.lru_cache(maxsize=16)
def _critical_times(v: int, m: int, s: int) -> dict[str, dict[str, Any]]:
    """Deep-tree critical points (``L -> infinity``) of both processes on the linear schedule,
    from :func:`hiergrammar.theory.discrete.critical_alpha`, per process its ``to_dict()``.

    Cheap by construction: the first-moment threshold is a closed form; population dynamics
    and the two-value closure are read from the stored result when it holds ``(v, m, s)``;
    otherwise the determination law (masking, a fraction of a second at small ``v``) stands
    in. Empty where the model has no transition (an InputError of the theory)."""
    from hiergrammar.theory.discrete import critical_alpha, load_stored
    from hiergrammar.validation import InputError

    try:
        params = load_stored().get("params", {})
    except FileNotFoundError:
        params = {}
    stored = (params.get("v"), params.get("m"), params.get("s")) == (v, m, s)
    out: dict[str, dict[str, Any]] = {}
    for process in PROCESSES:
        if stored:
            methods: tuple[str, ...] = ("first_moment", "two_value", "population")
        else:
            methods = (
                ("first_moment", "determination") if process == "masking" else ("first_moment",)
            )
        try:
            out[process] = critical_alpha(
                process, v, m, s, schedule="linear", methods=methods
            ).to_dict()
        except InputError:
            continue
    return out


def _theory_marks(result: DiscreteDiffusionResult) -> dict[str, dict[str, Any]]:
    """:func:`_critical_times` at the sizes of ``result``."""
    z = result.sizes
    return _critical_times(z.v, z.m, z.s)


def _mark_theory(ax: Any, mark: dict[str, Any] | None) -> None:
    """Vertical lines at the theory's deep-tree ``t*``: the best theory (dash-dot) and, when it
    differs, the first moment (dotted), each with a legend entry."""
    if not mark:
        return
    lines = [(mark["best"], "C3", "-.")]
    if mark["best"] != "first_moment":
        lines.append(("first_moment", "grey", (0, (1, 2))))
    for method, colour, style in lines:
        t = mark["t"].get(method)
        if t is None or not math.isfinite(t) or not 0.0 <= t <= 1.0:
            continue
        ax.axvline(
            t,
            color=colour,
            ls=style,
            lw=1.2,
            label=f"theory t* = {t:.3f} ({_THEORY_NAMES[method]}, L → ∞)",
        )


def _colours(name: str, k: int) -> np.ndarray:
    import matplotlib

    return matplotlib.colormaps[name](np.linspace(0.0, 0.9, k))


def plot_unchanged(result: DiscreteDiffusionResult) -> Figure:
    """P(symbol unchanged) per level vs ``t`` at the deepest ``L``, one panel per process,
    with standard errors over rule draws, the measured class transition marked (dashed) and
    the deep-tree critical time of :mod:`hiergrammar.theory.discrete` (dash-dot: the best
    available theory, population dynamics where stored; dotted: the first moment).

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per process.

    Examples
    --------
    >>> fig = plot_unchanged(compute_discrete_diffusion(EXAMPLE))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    L = result.deepest
    fig = Figure(figsize=(11, 5.6))
    axes = fig.subplots(1, len(PROCESSES), sharey=True)
    colours = _colours("plasma", L + 1)
    for ax, process in zip(axes, PROCESSES, strict=True):
        summary = result.summary_of(process, L)
        for level in range(L + 1):
            ax.errorbar(
                result.t,
                summary.mean["unchanged"][:, level],
                yerr=summary.se["unchanged"][:, level],
                color=colours[level],
                marker="o",
                ms=3,
                capsize=2,
                label="class (l = L)" if level == L else f"l = {level}",
            )
        t_star, _ = result.transition(process, L)
        if np.isfinite(t_star):
            ax.axvline(
                t_star, color="k", ls="--", lw=0.8, label=f"class transition t* = {t_star:.3f}"
            )
        _mark_theory(ax, _theory_marks(result).get(process))
        ax.axhline(1 / result.sizes.v, color="grey", ls=":", lw=0.8, label="1/v")
        ax.set_title(f"{process} noise, L = {L}")
        ax.set_xlabel("t (alpha = 1 - t)")
        ax.set_ylim(-0.02, 1.02)
        # Below the axes: inside, the legend hides the curves of the lower levels.
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    axes[0].set_ylabel("P(symbol unchanged)")
    fig.suptitle(f"Exact forward-backward on the RHM ({result.label})")
    fig.tight_layout()
    return fig


def _t_indices(result: DiscreteDiffusionResult) -> list[int]:
    """Grid indices of ``sizes.t_correlations`` (nearest grid points)."""
    return [int(np.argmin(np.abs(result.t - t))) for t in result.sizes.t_correlations]


def plot_correlations(result: DiscreteDiffusionResult) -> Figure:
    """``C(r)`` vs distance ``r`` (top, bands: standard errors over rule draws) and the
    covariance vs the level of the lowest common ancestor (bottom) at the times
    ``sizes.t_correlations``, deepest ``L``, one column per process.

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    matplotlib.figure.Figure
        A 2 x 2 grid of panels.

    Examples
    --------
    >>> fig = plot_correlations(compute_discrete_diffusion(EXAMPLE))
    >>> len(fig.axes)
    4
    """
    from matplotlib.figure import Figure

    L = result.deepest
    picks = _t_indices(result)
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(2, len(PROCESSES))
    colours = _colours("viridis", len(picks))
    r = np.arange(1, result.sizes.s**L)
    for col, process in enumerate(PROCESSES):
        summary = result.summary_of(process, L)
        top, bottom = axes[0, col], axes[1, col]
        for colour, i in zip(colours, picks, strict=True):
            label = f"t = {result.t[i]:.2f}"
            mean, se = summary.mean["C"][i, 1:], summary.se["C"][i, 1:]
            top.plot(r, mean, color=colour, lw=1, label=label)
            if np.isfinite(se).all():
                top.fill_between(r, mean - se, mean + se, color=colour, alpha=0.25, lw=0)
            bottom.errorbar(
                np.arange(1, L + 1),
                summary.mean["C_tree"][i, 1:],
                yerr=summary.se["C_tree"][i, 1:],
                color=colour,
                marker="o",
                ms=3,
                capsize=2,
                label=label,
            )
        top.set_xscale("log")
        top.axhline(0, color="grey", lw=0.6)
        bottom.axhline(0, color="grey", lw=0.6)
        top.set_title(f"{process} noise, L = {L}")
        top.set_xlabel("distance r along the string")
        top.set_ylabel("C(r) = Cov(delta_i, delta_i+r)")
        bottom.set_title(f"{process} noise: the same pairs grouped by the tree")
        bottom.set_xticks(range(1, L + 1))
        bottom.set_xlabel("level k of the lowest common ancestor")
        bottom.set_ylabel("covariance of the pairs")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle(f"Correlations of token changes ({result.label})")
    fig.tight_layout()
    return fig


def plot_susceptibility(result: DiscreteDiffusionResult) -> Figure:
    """``chi(t)`` for every depth with standard errors over rule draws (they include the
    sampling noise of each draw); dashed lines mark each depth's class transition, dash-dot
    and dotted ones the deep-tree theory's critical time (as in :func:`plot_unchanged`).

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per process.

    Examples
    --------
    >>> fig = plot_susceptibility(compute_discrete_diffusion(EXAMPLE))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    depths = sorted(result.sizes.depths)
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, len(PROCESSES), sharey=True)
    colours = _colours("viridis", len(depths))
    for ax, process in zip(axes, PROCESSES, strict=True):
        for colour, L in zip(colours, depths, strict=True):
            summary = result.summary_of(process, L)
            ax.errorbar(
                result.t,
                summary.mean["chi"],
                yerr=summary.se["chi"],
                color=colour,
                marker="o",
                ms=3,
                capsize=2,
                label=f"L = {L}",
            )
            t_star, _ = result.transition(process, L)
            if np.isfinite(t_star):
                ax.axvline(t_star, color=colour, ls="--", lw=0.9)
        _mark_theory(ax, _theory_marks(result).get(process))
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(f"{process} noise (dashed: class transition t*)")
        ax.set_xlabel("t (alpha = 1 - t)")
        # Upper right: the peaks sit at small t, where a default legend may cover them.
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("chi(t) = sum_{r>=1} C(r)")
    fig.suptitle(
        f"Susceptibility of token changes ({result.label}, "
        f"{result.sizes.samples_per_point} samples per point)"
    )
    fig.tight_layout()
    return fig


def plot_masked_reconstruction(result: DiscreteDiffusionResult) -> Figure:
    """Accuracy and cross-entropy of the Bayes-optimal masked-token predictor vs ``t``.

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    matplotlib.figure.Figure
        Accuracy (left) and cross-entropy (right).

    Examples
    --------
    >>> fig = plot_masked_reconstruction(compute_discrete_diffusion(EXAMPLE))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    rec = result.reconstruction
    fig = Figure(figsize=(11, 4.0))
    ax_acc, ax_ce = fig.subplots(1, 2)
    ax_acc.errorbar(rec.t, rec.accuracy, yerr=rec.accuracy_se, marker="o", ms=3, capsize=2)
    ax_acc.axhline(1 / result.sizes.v, color="grey", ls=":", lw=0.8, label="1/v")
    ax_acc.set_ylabel("accuracy on masked tokens")
    ax_ce.plot(rec.t, rec.cross_entropy, marker="o", ms=3)
    ax_ce.axhline(np.log(result.sizes.v), color="grey", ls=":", lw=0.8, label="log v")
    ax_ce.set_ylabel("cross-entropy on masked tokens (nats)")
    for ax in (ax_acc, ax_ce):
        ax.set_xlabel("masking time t (alpha = 1 - t)")
        ax.legend(fontsize=8)
    fig.suptitle(f"Exact BP as masked-token predictor, L = {result.deepest} ({result.label})")
    fig.tight_layout()
    return fig


# -- describe --------------------------------------------------------------------------------
def _num(x: float, fmt: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:{fmt}}"


def _drop_width(t: np.ndarray, curve: np.ndarray, chance: float) -> float:
    """Width in ``t`` of a curve's fall from 80% to 20% of the way from 1 down to ``chance``."""
    from hiergrammar.experiments.curves import first_crossing

    scaled = (np.asarray(curve) - chance) / (1.0 - chance)
    return first_crossing(t, scaled, 0.2) - first_crossing(t, scaled, 0.8)


def describe_unchanged(result: DiscreteDiffusionResult) -> str:
    """Measured statements on P(unchanged) per level: the class transition time, and how
    sharply the class and the leaves fall (80% -> 20% width).

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    str
        Markdown, every number measured.

    Examples
    --------
    >>> text = describe_unchanged(compute_discrete_diffusion(EXAMPLE))
    >>> "class transition" in text
    True
    """
    L = result.deepest
    z = result.sizes
    parts, sharper = [], []
    for process in PROCESSES:
        t_star, se = result.transition(process, L)
        unchanged = result.summary_of(process, L).mean["unchanged"]
        leaves = unchanged[:, 0]
        widths = (
            _drop_width(result.t, unchanged[:, L], 1 / z.n_classes),
            _drop_width(result.t, leaves, 1 / z.v),
        )
        sharper.append(widths[0] < widths[1])
        at_star = float(np.interp(t_star, result.t, leaves)) if np.isfinite(t_star) else np.nan
        parts.append(
            f"under {process} noise the class transition (class unchanged with probability "
            f"(1 + 1/n_classes)/2) is at t* = {_num(t_star)} ± {_num(se)}, where "
            f"{_num(100 * at_star, '.0f')}% of the leaves are unchanged; the class falls from 80% "
            f"to 20% of its range (1 down to 1/n_classes) within Δt = {_num(widths[0])}, the "
            f"leaves (1 down to 1/v) within Δt = {_num(widths[1])}"
        )
    verdict = ", ".join(
        f"{'sharper' if is_sharper else 'not sharper'} than the leaves under {process} noise"
        for process, is_sharper in zip(PROCESSES, sharper, strict=True)
    )
    return (
        f"P(symbol unchanged) per level at L = {L} (error bars: standard error over rule draws): "
        + "; ".join(parts)
        + f". The class's fall is {verdict}. "
        + describe_theory_marks(result)
    )


def describe_theory_marks(result: DiscreteDiffusionResult) -> str:
    """The deep-tree critical times marked on the figures (:mod:`hiergrammar.theory.discrete`,
    linear schedule ``t* = 1 - alpha*``) next to the measured finite-``L`` class transitions.

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    str
        Markdown, one sentence per process.

    Examples
    --------
    >>> text = describe_theory_marks(compute_discrete_diffusion(EXAMPLE))
    >>> "first moment" in text
    True
    """
    marks = _theory_marks(result)
    if not marks:
        return "The theory of hiergrammar.theory.discrete predicts no transition for this model."
    parts = []
    for process in PROCESSES:
        mark = marks.get(process)
        if not mark:
            continue
        theories = ", ".join(
            f"{_THEORY_NAMES[method]} {_num(t if t is not None else np.nan)}"
            + (f" ({mark['source'][method]})" if mark["source"][method] == "stored" else "")
            for method, t in mark["t"].items()
        )
        measured = ", ".join(
            f"L = {L}: {_num(result.transition(process, L)[0])}"
            for L in sorted(result.sizes.depths)
        )
        best = mark["t_star"] if mark["t_star"] is not None else np.nan
        parts.append(
            f"{process}: theory t* = {_num(best)}"
            f" ({_THEORY_NAMES[mark['best']]}; {theories}); measured {measured}"
        )
    return (
        "Marked on the figures, the deep-tree (L → ∞) critical times of "
        "`hiergrammar.theory.discrete` (dash-dot: the best theory available, dotted: the first "
        "moment, an effective eps that credits every leaf with the mean information): "
        + "; ".join(parts)
        + " (the measured t* is where the class curve at finite L is half-way to chance)."
    )


def describe_correlations(result: DiscreteDiffusionResult) -> str:
    """Measured statements on ``C(r)`` and on the covariance by tree distance near ``t*``.

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    str
        Markdown, every number measured.

    Examples
    --------
    >>> text = describe_correlations(compute_discrete_diffusion(EXAMPLE))
    >>> "level k =" in text
    True
    """
    L = result.deepest
    parts = []
    for process in PROCESSES:
        t_star, _ = result.transition(process, L)
        i = int(np.argmin(np.abs(result.t - t_star))) if np.isfinite(t_star) else 0
        summary = result.summary_of(process, L)
        tree = summary.mean["C_tree"][i, 1:]
        k_top = int(np.argmax(tree)) + 1
        parts.append(
            f"{process}: near t* (t = {result.t[i]:.2f}) the covariance of two leaves is largest "
            f"for pairs meeting at level k = {k_top} ({_num(tree[k_top - 1], '.4f')}) and is "
            f"{_num(tree[-1], '.4f')} for pairs meeting only at the root (k = {L}); "
            f"C(1) = {_num(summary.mean['C'][i, 1], '.4f')}"
        )
    return (
        f"Changes come in correlated blocks that follow the tree (L = {L}): "
        + "; ".join(parts)
        + ". C(r) is plotted at t = "
        + ", ".join(f"{result.t[i]:.2f}" for i in _t_indices(result))
        + "."
    )


def describe_susceptibility(result: DiscreteDiffusionResult) -> str:
    """Where ``chi(t)`` peaks for each ``L``, next to the class transition, and by how many
    standard errors the peak height changes from one depth to the next.

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    str
        Markdown, every number measured.

    Examples
    --------
    >>> text = describe_susceptibility(compute_discrete_diffusion(EXAMPLE))
    >>> "peak" in text
    True
    """
    depths = sorted(result.sizes.depths)
    parts = []
    for process in PROCESSES:
        rows = []
        heights = []
        for L in depths:
            peak = result.chi_peak(process, L)
            t_star, t_se = result.transition(process, L)
            heights.append((peak["height"], peak["height_se"]))
            rows.append(
                f"L = {L}: peak {peak['height']:.3f} ± {_num(peak['height_se'])} at "
                f"t ≈ {peak['t_parabola']:.3f} (grid {peak['t_grid']:.2f}; within one SE of the "
                f"peak for t in [{peak['t_within_one_se_low']:.2f}, "
                f"{peak['t_within_one_se_high']:.2f}]), class transition "
                f"t* = {_num(t_star)} ± {_num(t_se)}"
            )
        steps = []
        for (L_a, (a, sa)), (L_b, (b, sb)) in zip(
            zip(depths[:-1], heights[:-1], strict=True),
            zip(depths[1:], heights[1:], strict=True),
            strict=True,
        ):
            combined = float(np.hypot(sa, sb))
            sigmas = (b - a) / combined if combined > 0 else np.nan
            steps.append(f"L = {L_a} -> {L_b}: {b - a:+.3f} ({_num(sigmas, '+.1f')} SE)")
        verdict = (
            "the peak height changes by "
            + ", ".join(steps)
            + "; a step larger than +2 SE is a significant growth"
        )
        parts.append(f"**{process}**: " + "; ".join(rows) + f". Verdict: {verdict}.")
    z = result.sizes
    return (
        f"chi(t) = sum_(r>=1) C(r), {z.samples_per_point} samples per point "
        f"({z.n_rules} rule draws x {z.n_per_rule}; error bars: standard error over rule draws, "
        "which includes the sampling noise of each draw). " + " ".join(parts)
    )


def describe_masked_reconstruction(result: DiscreteDiffusionResult) -> str:
    """Measured statements on the Bayes-optimal masked-token predictor.

    Parameters
    ----------
    result : DiscreteDiffusionResult
        From :func:`compute_discrete_diffusion`.

    Returns
    -------
    str
        Markdown, every number measured.

    Examples
    --------
    >>> text = describe_masked_reconstruction(compute_discrete_diffusion(EXAMPLE))
    >>> "accuracy" in text
    True
    """
    rec = result.reconstruction
    first, last = 0, len(rec.t) - 1
    mid = int(np.argmin(np.abs(rec.t - 0.5)))
    return (
        f"Exact BP predicts masked tokens (L = {result.deepest}, {rec.n} strings per t) with "
        f"accuracy {_num(rec.accuracy[first])} at t = {rec.t[first]:.2f}, "
        f"{_num(rec.accuracy[mid])} at t = {rec.t[mid]:.2f} and {_num(rec.accuracy[last])} at "
        f"t = {rec.t[last]:.2f} (chance 1/v = {1 / result.sizes.v:.3f}); cross-entropy "
        f"{_num(rec.cross_entropy[first])}, {_num(rec.cross_entropy[mid])} and "
        f"{_num(rec.cross_entropy[last])} nats (log v = {np.log(result.sizes.v):.3f}). "
        "No masked model trained on this grammar can do better on average."
    )


# -- the step --------------------------------------------------------------------------------
def reproduce_step(
    out_dir: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    sizes: DiscreteDiffusionSizes | None = None,
) -> ReportSection:
    """Compute, plot and describe; write the figures, ``discrete_diffusion.npz`` and
    ``discrete_diffusion.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir : pathlib.Path
        Output folder (created if needed).
    seed : int
        Seed of everything random.
    quick : bool
        Use :data:`QUICK` (seconds) instead of :data:`FULL`.
    sizes : DiscreteDiffusionSizes, optional
        Explicit sizes (overrides ``quick``).

    Returns
    -------
    ReportSection

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import replace
    >>> tiny = replace(QUICK, depths=(2,), t=(0.5, 1.0), t_correlations=(0.5,), n_per_rule=16,
    ...                n_reconstruction=16, dpi=30)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     section = reproduce_step(Path(tmp), sizes=tiny)
    ...     sorted(p.name for p in section.figures)[0]
    'discrete_diffusion_chi.png'
    """
    out_dir = Path(out_dir)
    sizes = sizes if sizes is not None else (QUICK if quick else FULL)
    start = time.perf_counter()
    stores = out_dir / "sweeps" / "discrete_diffusion"
    result = compute_discrete_diffusion(sizes, seed=seed, store=stores)
    plots = {
        "unchanged": plot_unchanged,
        "correlations": plot_correlations,
        "chi": plot_susceptibility,
        "masked_reconstruction": plot_masked_reconstruction,
    }
    figures = [
        save_figure(plot(result), out_dir / f"discrete_diffusion_{name}.png", dpi=sizes.dpi)
        for name, plot in plots.items()
    ]
    result.timings["step_seconds"] = time.perf_counter() - start
    summary = result.summary()
    data = [
        save_npz(out_dir / "discrete_diffusion.npz", **result.arrays()),
        save_json(out_dir / "discrete_diffusion.json", summary),
        stores / "token_changes" / "sweep.json",
        stores / "masked_reconstruction" / "sweep.json",
    ]
    t = result.timings
    text = "\n\n".join(
        [
            f"Masked (absorbing) and uniform discrete diffusion on RHMs with {result.label}, "
            "linear schedule alpha = 1 - t: strings are noised to t and resampled from the "
            "exact posterior (exact forward-backward; what a perfect reverse process started "
            f"at t generates). {sizes.samples_per_point} samples per point. Run in "
            f"{t['step_seconds']:.0f} s ({t['cpu_seconds']:.1f} CPU-seconds in "
            f"{t['workers']} worker process(es); budget {sizes.budget_seconds:.0f} s on two "
            f"cores). Alone: `{COMMAND}`. Every measured point is in the sweep stores "
            "`sweeps/discrete_diffusion/token_changes` and `.../masked_reconstruction` (one "
            "Parquet file per task; read them with `hiergrammar.sweep.load`).",
            describe_unchanged(result),
            describe_correlations(result),
            describe_susceptibility(result),
            describe_masked_reconstruction(result),
        ]
    )
    return ReportSection(
        title="Discrete diffusion: token changes and their correlations",
        text=text,
        figures=figures,
        data=data,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m hiergrammar.figures.discrete_diffusion OUT_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    section = reproduce_step(args.out_dir, seed=args.seed, quick=args.quick)
    print(section.to_markdown(args.out_dir.resolve()))


if __name__ == "__main__":
    main()
