"""Figure step ``phase_transition``: P(correct symbol) per level vs noise (the paper's Figs. 5, 7).

For RHMs of several depths, :func:`compute_phase_transition` measures with exact BP how often
the most likely symbol of every level is the true one, under the epsilon-process and under the
diffusion of one-hot inputs (the ``beliefs`` measurement of :mod:`hiergrammar.sweep`, one sweep
over depths x noise x rule draws, see :func:`sweep_config`); the mean-field threshold ``eps*``
comes from :mod:`hiergrammar.theory`. :func:`plot_phase_transition` draws one of the two
noises, :func:`describe_phase_transition` writes the report text from the numbers.
:func:`reproduce_step` keeps the sweep's store in ``sweeps/phase_transition`` of the output
folder.

Examples
--------
>>> tiny = PhaseTransitionSizes(v=8, n_classes=8, m=2, s=2, depths=(2,), n=10, n_rules=1,
...                             eps=(0.0, 0.8), t=(0.0, 1.0), budget_seconds=5)
>>> result = compute_phase_transition(tiny, seed=0)
>>> result.eps_profiles[2].accuracy.shape      # (len(eps), L + 1)
(2, 3)
>>> round(result.eps_star, 4)                   # (v - 2m + 1) / (v - m) for s = 2
0.8333
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.artifacts import ReportSection, save_figure, save_json, save_npz
from hiergrammar.experiments.beliefs import BPProfile
from hiergrammar.experiments.curves import first_crossing
from hiergrammar.sweep import profile_from_frame, sweep_frame

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "REQUIRES",
    "EXTRA",
    "PhaseTransitionSizes",
    "FULL",
    "QUICK",
    "PhaseTransitionResult",
    "mean_field_eps_star",
    "compute_phase_transition",
    "plot_phase_transition",
    "describe_phase_transition",
    "reproduce_step",
]

REQUIRES: tuple[str, ...] = ()
EXTRA: str | None = None


@dataclass(frozen=True)
class PhaseTransitionSizes:
    """Sizes of the ``phase_transition`` step.

    ``v, n_classes, m, s``: the RHMs; ``depths``: their depths ``L``; ``n`` samples for each of
    ``n_rules`` rule draws per point; ``eps``: epsilon values; ``t``: diffusion times;
    ``budget_seconds``: the step's time budget on two CPU cores; ``levels_per_task``: noise
    values measured by one task of the sweep (its size).
    """

    v: int
    n_classes: int
    m: int
    s: int
    depths: tuple[int, ...]
    n: int
    n_rules: int
    eps: tuple[float, ...]
    t: tuple[float, ...]
    budget_seconds: float
    levels_per_task: int = 8


def _grid(*parts: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(x), 6) for x in np.concatenate(parts))


#: Points are spent where the curves move: the class drops near eps* ~ 0.7, and at v = 32 the
#: diffusion has erased most leaf information by t ~ 0.3 (eps_eff ~ 0.9).
FULL = PhaseTransitionSizes(
    v=32,
    n_classes=32,
    m=8,
    s=2,
    depths=(3, 5, 7),
    n=300,
    n_rules=3,
    eps=_grid(np.linspace(0.0, 0.5, 5)[:-1], np.linspace(0.5, 0.96, 20)),
    t=_grid(np.linspace(0.0, 0.4, 24)),
    budget_seconds=60,
)

#: Tiny sizes for ``--quick`` (a smoke test of the whole pipeline).
QUICK = PhaseTransitionSizes(
    v=8,
    n_classes=8,
    m=2,
    s=2,
    depths=(2, 3),
    n=30,
    n_rules=2,
    eps=_grid(np.linspace(0.0, 0.85, 5)),
    t=_grid(np.linspace(0.0, 0.5, 5)),
    budget_seconds=5,
)


@dataclass
class PhaseTransitionResult:
    """What :func:`compute_phase_transition` measured.

    ``eps_profiles[L]`` / ``t_profiles[L]``: the :class:`~hiergrammar.experiments.beliefs.
    BPProfile` of depth ``L`` (``accuracy`` of shape ``(len(eps), L + 1)`` resp.
    ``(len(t), L + 1)``); ``eps_star``: the mean-field threshold (None without a transition);
    ``summary``: the numbers the report quotes (JSON-able; NaN where a curve never crosses).
    """

    sizes: PhaseTransitionSizes
    seed: int
    eps: np.ndarray
    t: np.ndarray
    eps_profiles: dict[int, BPProfile]
    t_profiles: dict[int, BPProfile]
    eps_star: float | None
    summary: dict[str, Any]

    @property
    def label(self) -> str:
        z = self.sizes
        return f"v={z.v}, n_classes={z.n_classes}, m={z.m}, s={z.s}"

    def arrays(self) -> dict[str, np.ndarray]:
        """Every curve as named arrays: ``eps``, ``t`` and ``{eps,t}_L{L}_{quantity}``."""
        out = {"eps": self.eps, "t": self.t}
        for L in self.sizes.depths:
            for name, res in (("eps", self.eps_profiles[L]), ("t", self.t_profiles[L])):
                for key in ("accuracy", "accuracy_se", "u", "d", "p"):
                    out[f"{name}_L{L}_{key}"] = getattr(res, key)
        return out


def mean_field_eps_star(v: int, m: int, s: int) -> float | None:
    """The mean-field threshold ``eps*`` from :mod:`hiergrammar.theory.meanfield`, or None when
    there is no transition (``eps*`` at an end point of ``[0, 1 - 1/v]``).

    >>> abs(mean_field_eps_star(32, 8, 2) - 17 / 24) < 1e-12    # (v - 2m + 1) / (v - m)
    True
    >>> mean_field_eps_star(32, 20, 2) is None    # F'(1) >= 1: the class is always lost
    True
    """
    from hiergrammar.theory.meanfield import critical_eps

    value = float(critical_eps(v, m, s))
    return value if 0.0 < value < 1.0 - 1.0 / v - 1e-12 else None


def sweep_config(sizes: PhaseTransitionSizes, seed: int = 0) -> dict[str, Any]:
    """The step's grid as a sweep (:mod:`hiergrammar.sweep`): every depth, the eps-process at
    ``sizes.eps`` and the diffusion at ``sizes.t``, ``sizes.n_rules`` rule draws, ``sizes.n``
    strings per point and draw, float32 BP (its ~1e-6 error is far below the sampling noise).

    >>> config = sweep_config(QUICK)
    >>> config["grammar"]["L"], [n["process"] for n in config["noise"]]
    ([2, 3], ['eps', 'gaussian'])
    """
    z = sizes
    return {
        "seed": seed,
        "rule_draws": z.n_rules,
        "grammar": {"v": z.v, "n_classes": z.n_classes, "m": z.m, "s": z.s, "L": list(z.depths)},
        "noise": [
            {"process": "eps", "levels": list(z.eps), "levels_per_task": z.levels_per_task},
            {"process": "gaussian", "levels": list(z.t), "levels_per_task": z.levels_per_task},
        ],
        "measure": {"name": "beliefs", "n_samples": z.n, "dtype": "float32"},
    }


def compute_phase_transition(
    sizes: PhaseTransitionSizes,
    seed: int = 0,
    *,
    store: str | Path | None = None,
    scheduler: Any = None,
) -> PhaseTransitionResult:
    """Measure P(correct symbol) per level vs eps and vs diffusion time for every depth.

    Parameters
    ----------
    sizes : PhaseTransitionSizes
        :data:`FULL`, :data:`QUICK` or your own.
    seed : int
        Seed of the sweep (rule draws, data and noise derive from it and their parameters).
    store : str or Path, optional
        Folder of the sweep's store (default: a temporary one).
    scheduler : optional
        Where the sweep runs (:func:`hiergrammar.sweep.run_sweep`); default the enclosing
        :func:`hiergrammar.sweep.use_scheduler` block's, else this process.

    Returns
    -------
    PhaseTransitionResult
    """
    z = sizes
    params = dict(v=z.v, n_classes=z.n_classes, m=z.m, s=z.s)
    eps, t = np.asarray(z.eps, dtype=np.float64), np.asarray(z.t, dtype=np.float64)
    frame, _ = sweep_frame(sweep_config(z, seed), store, scheduler=scheduler)

    def profile(L: int, process: str, levels: np.ndarray) -> BPProfile:
        part = frame[(frame["L"] == L) & (frame["process"] == process)]
        return profile_from_frame(part, z.n, levels)

    by_eps = {L: profile(L, "eps", eps) for L in z.depths}
    by_t = {L: profile(L, "gaussian", t) for L in z.depths}
    eps_star = mean_field_eps_star(z.v, z.m, z.s)
    deepest = z.depths[-1]

    def class_curve(profiles: dict[int, BPProfile], L: int) -> np.ndarray:
        return profiles[L].accuracy[:, L]

    # Where each depth's class accuracy falls through 1/2, and the width of its drop.
    crossing = {L: first_crossing(eps, class_curve(by_eps, L), 0.5) for L in z.depths}
    width = {
        L: first_crossing(eps, class_curve(by_eps, L), 0.2)
        - first_crossing(eps, class_curve(by_eps, L), 0.8)
        for L in z.depths
    }
    t_half = first_crossing(t, class_curve(by_t, deepest), 0.5)
    # Low levels where the class is at 1/2: they are still largely recovered there.
    low_at_half_eps = float(np.interp(crossing[deepest], eps, by_eps[deepest].accuracy[:, 0]))
    low_at_half_t = float(np.interp(t_half, t, by_t[deepest].accuracy[:, 0]))
    summary = {
        "params": params,
        "depths": list(z.depths),
        "samples_per_rule_draw": z.n,
        "rule_draws": z.n_rules,
        "seed": seed,
        "eps_star_mean_field": eps_star,
        "class_accuracy_half_crossing_eps": crossing,
        "class_accuracy_drop_width_eps_0.8_to_0.2": width,
        "input_accuracy_where_class_is_half": {"eps": low_at_half_eps, "diffusion": low_at_half_t},
        "class_accuracy_half_crossing_t": t_half,
    }
    return PhaseTransitionResult(z, seed, eps, t, by_eps, by_t, eps_star, summary)


def plot_phase_transition(result: PhaseTransitionResult, noise: str = "eps") -> Figure:
    """Two panels: the class accuracy of every depth, and every level of the deepest model,
    vs ``noise`` (``"eps"`` or ``"diffusion"``). Returns a matplotlib ``Figure``."""
    import matplotlib
    from matplotlib.figure import Figure

    if noise == "eps":
        x, profiles, eps_star = result.eps, result.eps_profiles, result.eps_star
        xlabel, title = "noise eps (epsilon-process)", f"Exact BP on the RHM ({result.label})"
    elif noise == "diffusion":
        x, profiles, eps_star = result.t, result.t_profiles, None
        xlabel = "diffusion time t (abar = exp(-2t))"
        title = f"Exact BP after diffusing one-hot inputs ({result.label})"
    else:
        raise ValueError(f"noise={noise!r} is not one of ['eps', 'diffusion']")
    chance = 1.0 / result.sizes.v
    depths = sorted(profiles)
    deepest = depths[-1]
    fig = Figure(figsize=(11, 4.2))
    ax_class, ax_levels = fig.subplots(1, 2)
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(depths)))
    for colour, L in zip(colours, depths, strict=True):
        acc, sem = profiles[L].accuracy[:, L], profiles[L].accuracy_se[:, L]
        ax_class.errorbar(
            x, acc, yerr=sem, color=colour, marker="o", ms=3, label=f"L = {L}", capsize=2
        )
    level_colours = matplotlib.colormaps["plasma"](np.linspace(0, 0.9, deepest + 1))
    for level in range(deepest + 1):
        ax_levels.plot(
            x,
            profiles[deepest].accuracy[:, level],
            marker="o",
            ms=3,
            color=level_colours[level],
            label="class (l = L)" if level == deepest else f"l = {level}",
        )
    for ax in (ax_class, ax_levels):
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
        if eps_star is not None:
            ax.axvline(eps_star, color="k", lw=0.8, ls="--", label="mean-field eps*")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("P(correct symbol)")
        ax.set_ylim(-0.02, 1.02)
    ax_class.set_title("class reconstruction sharpens with depth")
    ax_levels.set_title(f"every level, L = {deepest}")
    ax_class.legend(fontsize=8)
    ax_levels.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def describe_phase_transition(result: PhaseTransitionResult) -> str:
    """The report's Markdown, computed from the measured curves."""
    z, sm = result.sizes, result.summary
    depths, deepest = list(z.depths), z.depths[-1]
    crossing = sm["class_accuracy_half_crossing_eps"]
    width = sm["class_accuracy_drop_width_eps_0.8_to_0.2"]
    low = sm["input_accuracy_where_class_is_half"]
    t_half = sm["class_accuracy_half_crossing_t"]

    def finite(x: float | None) -> bool:
        return x is not None and bool(np.isfinite(x))

    def per_depth(values: dict[int, float]) -> str:
        return ", ".join(
            (f"{values[L]:.3f}" if finite(values[L]) else "not on this grid") + f" (L = {L})"
            for L in depths
        )

    star = (
        f"; mean-field eps* = {result.eps_star:.3f} (hiergrammar.theory)"
        if result.eps_star is not None
        else "; no mean-field transition at these parameters"
    )
    parts = [
        f"Exact BP on RHMs with {result.label}, depths L = {depths}, {z.n} samples for each of "
        f"{z.n_rules} rule draws per point (error bars: standard error across rule draws). "
        f"Class accuracy falls through 1/2 at eps ≈ {per_depth(crossing)}{star}. Width of the "
        f"drop from 0.8 to 0.2: {per_depth(width)}."
    ]
    if finite(crossing[deepest]):
        parts.append(
            f"At L = {deepest}, where the class accuracy is 1/2 the input symbols are still "
            f"recovered with accuracy {low['eps']:.2f}."
        )
    diffusion = (
        f"at L = {deepest} the class accuracy is 1/2 at t ≈ {t_half:.3f}, where the input "
        f"accuracy is {low['diffusion']:.2f}"
        if finite(t_half)
        else f"at L = {deepest} the class accuracy stays above 1/2 on this grid"
    )
    parts.append(
        "The second figure repeats this for the diffusion of one-hot inputs (the paper's "
        f"Fig. 5): {diffusion}; low levels decay smoothly, the class curve sharpens with L and "
        "crosses them."
    )
    return " ".join(parts)


def reproduce_step(
    out_dir: Path, *, seed: int = 0, sizes: PhaseTransitionSizes = FULL
) -> ReportSection:
    """Compute, plot and describe; write ``phase_transition_{eps,diffusion}.png``,
    ``phase_transition.npz`` and ``phase_transition.json`` into ``out_dir``, from the sweep
    store ``out_dir / "sweeps" / "phase_transition"``."""
    out_dir = Path(out_dir)
    store = out_dir / "sweeps" / "phase_transition"
    result = compute_phase_transition(sizes, seed=seed, store=store)
    fig_eps = save_figure(
        plot_phase_transition(result, "eps"), out_dir / "phase_transition_eps.png"
    )
    fig_t = save_figure(
        plot_phase_transition(result, "diffusion"), out_dir / "phase_transition_diffusion.png"
    )
    npz = save_npz(out_dir / "phase_transition.npz", **result.arrays())
    js = save_json(out_dir / "phase_transition.json", result.summary)
    return ReportSection(
        title="Phase transition of class reconstruction (Figs. 5, 7)",
        text=describe_phase_transition(result)
        + " Every measured point is in the sweep store `sweeps/phase_transition` (one Parquet "
        "file per task; read it with `hiergrammar.sweep.load`).",
        figures=[fig_eps, fig_t],
        data=[npz, js, store / "sweep.json"],
    )
