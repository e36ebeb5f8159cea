"""Figure step ``theory``: the mean-field theory against exact BP (the paper's Figs. 6, 7, 11-15).

* Fig. 6, :func:`phase_diagram_data`: class reconstruction by exact BP in the ``(f, eps)``
  plane for ``s = 2`` and ``s = 3`` at increasing depth, with the mean-field critical line
  ``eps*(f)`` (at the chosen ``v`` and for ``v -> infinity``).
* Figs. 7 and 12-14, :func:`profiles_data`: upward, downward and marginal beliefs in the true
  symbol per level vs eps, mean-field lines over BP points, and the argmax accuracy.
* Fig. 11, :func:`spread_data`: the distribution over nodes of the BP beliefs in the true
  symbol per level, around the mean-field value.
* Population dynamics, :func:`population_data` (:mod:`hiergrammar.theory.population`): the
  law of BP's messages over the RHM ensemble, a third curve beside mean field and BP in Figs.
  7, 12-14 and a third distribution in Fig. 11, with a KS distance per level
  (:func:`spread_ks`).
* Finite-depth scaling, :func:`finite_depth_data` and :func:`plot_finite_depth`: the width of
  the class transition against ``L`` from the stored exact-BP run of
  :mod:`hiergrammar.theory.finite_depth` (not recomputed), with the slope predicted by
  ``F'(u*)`` and the fitted one.
* Fig. 15, :func:`diffusion_data`: the effective eps of the diffusion vs time, and the BP
  beliefs of the diffused inputs vs ``eps_eff`` over the epsilon-process curves.

:func:`compute_theory` runs them all at the sizes of a :class:`TheorySizes` (:data:`FULL` or
:data:`QUICK`), the ``plot_*`` functions draw them (each returns a matplotlib ``Figure``),
:func:`describe_theory` writes the report text, and :func:`reproduce_step` writes each PNG with
its data (NPZ and JSON) into ``theory/`` of the output folder.

The exact-BP grids run as sweeps (:mod:`hiergrammar.sweep`, the ``beliefs`` measurement):
Fig. 6's phase diagram (:func:`phase_diagram_config`, both panels in one sweep) and the
mean-field validation grid of Figs. 7, 12-15 (the profiles vs eps and the diffusion times);
:func:`reproduce_step` keeps their stores in ``sweeps/theory/`` of the output folder. The
theory comes from :mod:`hiergrammar.theory.meanfield`.

Examples
--------
>>> data = profiles_data(v=8, n_classes=8, m=2, s=2, L=2, eps=[0.2, 0.6], n_samples=20,
...                      n_rules=1, seed=0)
>>> data["bp_p"].shape, data["mf_p"].shape      # (len(eps), L+1), (len(eps_dense), L+1)
((2, 3), (200, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.artifacts import ReportSection, save_figure, save_json, save_npz
from hiergrammar.experiments.beliefs import BPProfile, true_beliefs
from hiergrammar.experiments.curves import first_crossing
from hiergrammar.sweep import (
    grid_array,
    mean_over_draws,
    profile_from_frame,
    scheduler_for,
    sweep_frame,
)
from hiergrammar.theory.meanfield import critical_eps, critical_line, profile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "REQUIRES",
    "EXTRA",
    "phase_diagram_data",
    "plot_phase_diagram",
    "profiles_data",
    "plot_profiles",
    "spread_data",
    "plot_spread",
    "population_data",
    "ks_distance",
    "spread_ks",
    "finite_depth_data",
    "plot_finite_depth",
    "times_for_eps_eff",
    "diffusion_data",
    "plot_diffusion",
    "PhaseDiagramPanel",
    "TheorySizes",
    "FULL",
    "QUICK",
    "TheoryResult",
    "compute_theory",
    "describe_theory",
    "reproduce_step",
]

REQUIRES: tuple[str, ...] = ()
EXTRA: str | None = None

# float32 BP: about twice as fast, and its ~1e-6 error is far below every sampling error here.
_DTYPE = np.float32

#: Noise values one task of the profile and diffusion sweeps measures: tasks of about a second
#: at the FULL sizes, enough of them to keep two workers busy.
_LEVELS_PER_TASK = 5


def _beliefs_sweep(
    grammars: list[dict[str, Any]],
    process: str,
    levels: Sequence[float],
    n_samples: int,
    n_rules: int,
    seed: int,
    levels_per_task: int | None = None,
) -> dict[str, Any]:
    """A ``beliefs`` sweep over ``grammars`` (``[[grammar]]`` tables) and ``n_rules`` rule
    draws, ``n_samples`` strings per noise level over all draws (as ``bp_profile`` counts)."""
    noise: dict[str, Any] = {"process": process, "levels": [float(x) for x in levels]}
    if levels_per_task is not None:
        noise["levels_per_task"] = levels_per_task
    return {
        "seed": seed,
        "rule_draws": n_rules,
        "grammar": grammars,
        "noise": noise,
        "measure": {
            "name": "beliefs",
            "n_samples": max(1, n_samples // n_rules),
            "dtype": "float32",
        },
    }


def _profile(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    process: str,
    levels: np.ndarray,
    n_samples: int,
    n_rules: int,
    seed: int,
    store: str | Path | None,
    scheduler: Any,
) -> BPProfile:
    """Exact-BP profile of one RHM (``n_rules`` rule draws) under ``process`` at ``levels``."""
    grammar = {"v": v, "n_classes": n_classes, "m": m, "s": s, "L": L}
    config = _beliefs_sweep([grammar], process, levels, n_samples, n_rules, seed, _LEVELS_PER_TASK)
    frame, _ = sweep_frame(config, store, scheduler=scheduler)
    return profile_from_frame(frame, max(1, n_samples // n_rules), levels)


def _figure(**kwargs: Any) -> Figure:
    """A matplotlib Figure of its own: no pyplot state, no backend switch."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _level_colors(L: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(level / max(L, 1)) for level in range(L + 1)]


def _level_name(level: int, L: int) -> str:
    if level == L:
        return f"l={level} (class)"
    return f"l={level} (input)" if level == 0 else f"l={level}"


# -- Fig. 6: phase diagram ------------------------------------------------------------------------
def phase_diagram_config(
    panels: Sequence[PhaseDiagramPanel],
    eps: Sequence[float],
    n_samples: int = 64,
    n_rules: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Fig. 6's grid as one sweep: a ``[[grammar]]`` table per panel (``n_classes = v``, every
    ``m`` of its ``f`` axis, every depth), the eps-process at ``eps``, ``n_rules`` rule draws
    and ``n_samples`` strings per point over all draws.

    >>> config = phase_diagram_config(QUICK.panels, QUICK.phase_eps, 8, 1)
    >>> [(g["s"], g["m"], g["L"]) for g in config["grammar"]]
    [(2, [1, 2, 4], [2, 3]), (3, [1, 4], [2])]
    """
    grammars = [
        {"v": p.v, "n_classes": p.v, "m": list(p.ms), "s": p.s, "L": list(p.depths)} for p in panels
    ]
    return _beliefs_sweep(grammars, "eps", eps, n_samples, n_rules, seed)


def phase_diagram_panel(
    frame: Any, s: int, v: int, ms: Sequence[int], eps: Sequence[float], depths: Sequence[int]
) -> dict[str, np.ndarray]:
    """One panel of Fig. 6 from the frame of a :func:`phase_diagram_config` sweep (the arrays
    of :func:`phase_diagram_data`)."""
    ms = np.asarray(ms, dtype=np.int64)
    eps = np.asarray(eps, dtype=np.float64)
    depths = np.asarray(depths, dtype=np.int64)
    rows = frame[(frame["s"] == s) & (frame["v"] == v) & (frame["level"] == frame["L"])]
    means = mean_over_draws(rows, ["accuracy", "p"], by=["L", "m", "noise_level"])
    out = {}
    for key, name in (
        ("accuracy", "accuracy"),
        ("accuracy_se", "accuracy_se"),
        ("belief", "p"),
        ("belief_se", "p_se"),
    ):
        values, (Ls, m_axis, e_axis) = grid_array(means, name, ["L", "m", "noise_level"])
        pick = np.ix_(
            np.searchsorted(Ls, depths), np.searchsorted(m_axis, ms), np.searchsorted(e_axis, eps)
        )
        out[key] = values[pick]
    f = ms / float(v) ** (s - 1)
    f_line = np.linspace(1.0 / v ** (s - 1), min(1.0, 1.1 * f.max()), 300)
    return {
        "s": np.array(s),
        "v": np.array(v),
        "m": ms,
        "f": f,
        "eps": eps,
        "depths": depths,
        **out,
        "eps_star": np.array([critical_eps(v, int(m), s) for m in ms]),
        "f_line": f_line,
        "eps_line_v": critical_line(f_line, s, v=v),
        "eps_line_inf": critical_line(f_line, s),
    }


def phase_diagram_data(
    s: int,
    v: int,
    ms: Sequence[int],
    eps: Sequence[float],
    depths: Sequence[int],
    n_samples: int = 64,
    n_rules: int = 2,
    seed: int = 0,
    *,
    store: str | Path | None = None,
    scheduler: Any = None,
) -> dict[str, np.ndarray]:
    """Class reconstruction by exact BP on a ``(f, eps)`` grid, for ``n_classes = v``.

    One sweep (:func:`phase_diagram_config`) into ``store`` (default a temporary folder), on
    ``scheduler`` (default the enclosing :func:`hiergrammar.sweep.use_scheduler` block's, else
    this process).

    Returns arrays: ``f`` ``(len(ms),)``, ``eps`` ``(len(eps),)``, ``depths``; ``belief``
    and ``accuracy`` of shape ``(len(depths), len(ms), len(eps))`` (mean BP marginal of the true
    class, the paper's probability of reconstruction, and the argmax accuracy of the class),
    with ``belief_se`` and ``accuracy_se``; ``eps_star`` ``(len(ms),)`` (the
    mean-field threshold at this ``v``); ``f_line``, ``eps_line_v`` and ``eps_line_inf``: the
    critical line on a dense ``f`` axis at this ``v`` and for ``v -> infinity``.
    """
    panel = PhaseDiagramPanel(s, v, tuple(int(m) for m in ms), tuple(int(L) for L in depths), 0)
    config = phase_diagram_config([panel], eps, n_samples, n_rules, seed)
    frame, _ = sweep_frame(config, store, scheduler=scheduler)
    return phase_diagram_panel(frame, s, v, ms, eps, depths)


def _edges(x: np.ndarray) -> np.ndarray:
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def plot_phase_diagram(panels: Sequence[dict[str, np.ndarray]], curve_m: Sequence[int]) -> Figure:
    """One row per ``s``: heat maps of the BP marginal of the true class per depth, then that
    marginal (solid) and the argmax accuracy (dashed) vs eps at the fixed
    ``f = curve_m[row] / v**(s-1)`` for every depth."""
    ncols = max(len(p["depths"]) for p in panels) + 1
    fig = _figure(figsize=(3.6 * ncols, 3.4 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), ncols, squeeze=False)
    for row, (data, m_fixed) in enumerate(zip(panels, curve_m, strict=True)):
        s, v = int(data["s"]), int(data["v"])
        fe, ee = _edges(data["f"]), _edges(data["eps"])
        for i, L in enumerate(data["depths"]):
            ax = axes[row, i]
            mesh = ax.pcolormesh(
                fe, ee, data["belief"][i].T, vmin=1.0 / v, vmax=1.0, cmap="magma", shading="flat"
            )
            ax.plot(
                data["f_line"], data["eps_line_v"], color="cyan", lw=1.8, label=f"MF eps*(f), v={v}"
            )
            ax.plot(
                data["f_line"],
                data["eps_line_inf"],
                color="white",
                lw=1.4,
                ls="--",
                label="MF eps*(f), v→∞",
            )
            ax.set_xlim(fe[0], fe[-1])
            ax.set_ylim(ee[0], ee[-1])
            ax.set_title(f"s={s}, v=n_c={v}, L={L}")
            ax.set_xlabel("f = m / v^(s-1)")
            ax.set_ylabel("eps")
            if i == 0:
                ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
        fig.colorbar(
            mesh, ax=axes[row, len(data["depths"]) - 1], label="P(true class | evidence), exact BP"
        )
        ax = axes[row, -1]
        j = int(np.flatnonzero(data["m"] == m_fixed)[0])
        colors = _level_colors(len(data["depths"]) - 1)
        for i, L in enumerate(data["depths"]):
            ax.errorbar(
                data["eps"],
                data["belief"][i, j],
                yerr=data["belief_se"][i, j],
                color=colors[i],
                marker="o",
                ms=3,
                lw=1.2,
                capsize=2,
                label=f"L={L}",
            )
            ax.plot(data["eps"], data["accuracy"][i, j], color=colors[i], lw=1.0, ls="--")
        ax.axvline(
            data["eps_star"][j], color="k", ls=":", label=f"MF eps*={data['eps_star'][j]:.2f}"
        )
        ax.axhline(1.0 / v, color="gray", lw=0.8, ls="--")
        ax.set_title(f"s={s}, f={data['f'][j]:.3g} (m={m_fixed})")
        ax.set_xlabel("eps")
        ax.plot([], [], color="gray", ls="--", lw=1.0, label="argmax accuracy")
        ax.set_ylabel("P(true class | evidence)")
        ax.legend(fontsize=7)
    for ax in axes.ravel():
        if not ax.has_data():
            ax.set_visible(False)
    fig.suptitle(
        "Fig. 6: probability of reconstructing the class (BP marginal of the true "
        "class) in the (f, eps) plane; the transition sharpens with depth L"
    )
    return fig


# -- Figs. 7, 12-14: beliefs per level ------------------------------------------------------------
def profiles_data(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: Sequence[float],
    n_samples: int = 600,
    n_rules: int = 4,
    seed: int = 0,
    n_dense: int = 200,
    *,
    store: str | Path | None = None,
    scheduler: Any = None,
) -> dict[str, np.ndarray]:
    """Mean-field and exact-BP beliefs per level vs eps.

    The BP side is a sweep (``n_rules`` rule draws, ``n_samples`` strings per eps over all
    draws) into ``store`` (default a temporary folder), on ``scheduler`` (default the enclosing
    :func:`hiergrammar.sweep.use_scheduler` block's, else this process).

    Returns ``eps`` ``(E,)`` and ``bp_u``, ``bp_d``, ``bp_p``, ``bp_accuracy`` with their
    ``*_se``, each ``(E, L+1)``; ``eps_dense`` ``(n_dense,)`` and ``mf_u``, ``mf_d``, ``mf_p``
    ``(n_dense, L+1)``; ``mf_at_bp_p`` ``(E, L+1)``: the mean-field marginal at the BP points.
    """
    eps = np.asarray(eps, dtype=np.float64)
    dense = np.linspace(0.0, 1.0 - 1.0 / v, n_dense)
    mf = profile(v, n_classes, m, s, L, dense)
    bp = _profile(v, n_classes, m, s, L, "eps", eps, n_samples, n_rules, seed, store, scheduler)
    out = {
        "eps": eps,
        "eps_dense": dense,
        "mf_u": mf.u,
        "mf_d": mf.d,
        "mf_p": mf.p,
        "mf_at_bp_p": profile(v, n_classes, m, s, L, eps).p,
        "params": np.array([v, n_classes, m, s, L]),
    }
    for key in ("u", "d", "p", "accuracy"):
        out[f"bp_{key}"] = getattr(bp, key)
        out[f"bp_{key}_se"] = getattr(bp, f"{key}_se")
    return out


def plot_profiles(data: dict[str, np.ndarray]) -> Figure:
    """Four panels: upward ``u``, downward ``d``, marginal ``p`` (MF lines, BP points) and the
    argmax accuracy of BP (the eps-process keeps the true symbol the most likely one at every
    leaf, so low levels stay at 1 until eps = 1 - 1/v; the mean field has no argmax analogue).
    When ``data`` holds population dynamics (``pd_u``, ``pd_d``, ``pd_p``, ``pd_accuracy`` at
    ``eps``, as :func:`compute_theory` adds them) they are a third curve in every panel
    (dashed, open squares)."""
    v, n_classes, m, s, L = (int(x) for x in data["params"])
    colors = _level_colors(L)
    fig = _figure(figsize=(17, 4.2), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = [
        ("u", "upward belief in the true symbol", "mf_u", "bp_u"),
        ("d", "downward belief in the true symbol", "mf_d", "bp_d"),
        ("p", "marginal belief in the true symbol", "mf_p", "bp_p"),
        ("accuracy", "P(correct symbol) = P(argmax = true)", "mf_p", "bp_accuracy"),
    ]
    for ax, (key, label, mf_key, bp_key) in zip(axes, panels, strict=True):
        for level in range(L + 1):
            if key != "accuracy":
                ax.plot(data["eps_dense"], data[mf_key][:, level], color=colors[level], lw=1.3)
            if f"pd_{key}" in data:
                ax.plot(
                    data["eps"],
                    data[f"pd_{key}"][:, level],
                    color=colors[level],
                    lw=1.1,
                    ls="--",
                    marker="s",
                    ms=2.5,
                    mfc="none",
                )
            ax.errorbar(
                data["eps"],
                data[bp_key][:, level],
                yerr=data[f"{bp_key}_se"][:, level],
                color=colors[level],
                marker="o",
                ms=3.5,
                ls="-" if key == "accuracy" else "none",
                lw=0.8,
                capsize=2,
                label=_level_name(level, L),
            )
        ax.axvline(critical_eps(v, m, s), color="k", ls=":", lw=1)
        ax.set_xlabel("eps")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(
            {
                "u": "upward (Fig. 12)",
                "d": "downward (Fig. 13)",
                "p": "marginal (Figs. 7, 14)",
                "accuracy": "argmax accuracy (no MF analogue)",
            }[key]
        )
    title = "points: exact BP\nlines: mean field"
    if "pd_u" in data:
        title += "\ndashed squares: population dyn."
    axes[0].legend(fontsize=7, title=title, title_fontsize=7)
    fig.suptitle(
        f"Beliefs per level vs eps: v={v}, n_c={n_classes}, m={m}, s={s}, L={L} "
        f"(dotted: MF eps*={critical_eps(v, m, s):.3f})"
    )
    return fig


# -- Fig. 11: spread of BP messages ---------------------------------------------------------------
def spread_data(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: Sequence[float],
    n_samples: int = 100,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """BP beliefs in the true symbol of every node, one rule draw, for a few eps.

    Returns keys ``"{q}_e{i}_l{level}"`` (``q`` in u, d, p; ``i`` the eps index) holding the
    ``n_samples * width_level`` node values, ``mf_{q}`` ``(len(eps), L+1)`` and ``eps``.
    """
    from hiergrammar.bp import tree_bp
    from hiergrammar.noise import eps_evidence
    from hiergrammar.rhm import RHM

    eps = np.asarray(eps, dtype=np.float64)
    rhm = RHM(v, n_classes, m, s, L, seed=seed)
    mf = profile(v, n_classes, m, s, L, eps)
    out: dict[str, np.ndarray] = {
        "eps": eps,
        "mf_u": mf.u,
        "mf_d": mf.d,
        "mf_p": mf.p,
        "params": np.array([v, n_classes, m, s, L]),
    }
    for i, e in enumerate(eps):
        data = rhm.sample(n_samples, seed=seed + 1 + i)
        result = tree_bp(rhm, eps_evidence(data.x, float(e), v), dtype=_DTYPE)
        beliefs = true_beliefs(result, data.levels)
        for q in ("u", "d", "p"):
            for level in range(L + 1):
                out[f"{q}_e{i}_l{level}"] = beliefs[q][level].ravel().astype(np.float64)
    return out


def plot_spread(data: dict[str, np.ndarray]) -> Figure:
    """Violin plots per level of the BP upward and downward beliefs, MF values as red bars.

    When ``data`` holds population dynamics (``pd_samples_u``, ``pd_samples_d`` of shape
    ``(len(eps), L+1, n_pop)``, and ``ks_u``, ``ks_d`` from :func:`spread_ks`), their
    violins stand to the right of BP's and the KS distance of each level is written above."""
    v, n_classes, m, s, L = (int(x) for x in data["params"])
    eps = data["eps"]
    fig = _figure(figsize=(4.2 * len(eps), 6.6), layout="constrained")
    axes = fig.subplots(2, len(eps), squeeze=False, sharey=True)
    for row, (q, name) in enumerate([("u", "upward"), ("d", "downward")]):
        for i, e in enumerate(eps):
            ax = axes[row, i]
            values = [data[f"{q}_e{i}_l{level}"] for level in range(L + 1)]
            with_pd = f"pd_samples_{q}" in data
            shift, width = (0.2, 0.42) if with_pd else (0.0, 0.85)
            parts = ax.violinplot(
                values,
                positions=np.arange(L + 1) - shift,
                widths=width,
                showmeans=True,
                showextrema=False,
            )
            for body in parts["bodies"]:
                body.set_alpha(0.45)
            if with_pd:
                pd_parts = ax.violinplot(
                    list(data[f"pd_samples_{q}"][i]),
                    positions=np.arange(L + 1) + shift,
                    widths=width,
                    showmeans=True,
                    showextrema=False,
                )
                for body in pd_parts["bodies"]:
                    body.set_facecolor("C2")
                    body.set_alpha(0.45)
                pd_parts["cmeans"].set_color("C2")
                if f"ks_{q}" in data:
                    for level in range(L + 1):
                        ax.text(
                            level,
                            1.0,
                            f"{data[f'ks_{q}'][i, level]:.2f}",
                            ha="center",
                            va="top",
                            fontsize=6,
                        )
            ax.scatter(
                np.arange(L + 1),
                data[f"mf_{q}"][i],
                color="red",
                marker="_",
                s=500,
                lw=2.5,
                zorder=3,
                label="mean field",
            )
            ax.set_xticks(np.arange(L + 1))
            ax.set_xlabel("level l (0 = input, L = class)")
            ax.set_ylabel(f"BP {name} belief in the true symbol")
            ax.set_title(f"{name}, eps={e:.2f}")
            ax.set_ylim(-0.02, 1.06)
            if row == 0 and i == 0:
                if "pd_samples_u" in data:
                    ax.fill_between([], [], color="C0", alpha=0.45, label="exact BP (left)")
                    ax.fill_between([], [], color="C2", alpha=0.45, label="population dyn. (right)")
                ax.legend(loc="lower left", fontsize=8)
    pd_note = (
        "\ngreen: population dynamics over the RHM ensemble; numbers on top: KS distance to BP"
        if "pd_samples_u" in data
        else ""
    )
    fig.suptitle(
        f"Fig. 11: spread of BP messages over nodes (v={v}, n_c={n_classes}, m={m}, "
        f"s={s}, L={L}, one rule draw); blue line = BP mean, red = mean field{pd_note}"
    )
    return fig


# -- population dynamics beside mean field and BP (Figs. 7, 11-14) --------------------------------
def population_data(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: Sequence[float],
    n_pop: int = 8000,
    seed: int = 0,
    n_replicas: int = 4,
    n_bins: int = 50,
) -> dict[str, np.ndarray]:
    """Population dynamics (:func:`hiergrammar.theory.population.profile`) of the eps-process
    at ``eps``: the law of BP's messages over the RHM ensemble, level by level.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM.
    eps : sequence of float
        Noise values, each in ``[0, 1]``.
    n_pop : int
        Members per level, all ``n_replicas`` replicas together.
    seed : int
        Seed of the rule tables, children and leaf noise (the same draws at every ``eps``).
    n_replicas : int
        Independent populations; their spread gives the standard errors.
    n_bins : int
        Bins of the histograms on ``[0, 1]``.

    Returns
    -------
    dict
        ``eps`` ``(E,)``; ``pd_u``, ``pd_d``, ``pd_p``, ``pd_accuracy`` and their ``*_se``
        ``(E, L+1)``; histograms ``pd_hist_u``, ``pd_hist_d``, ``pd_hist_p``
        ``(E, L+1, n_bins)`` on ``pd_bin_edges`` ``(n_bins+1,)``; the members' beliefs in the
        true symbol ``pd_samples_u``, ``pd_samples_d``, ``pd_samples_p`` ``(E, L+1, n_pop)``
        (float32); ``pd_n_pop``.

    Raises
    ------
    InputError
        On parameters out of range (as :func:`hiergrammar.theory.population.profile`).

    Examples
    --------
    >>> pd = population_data(8, 8, 2, 2, 2, [0.1, 0.5], n_pop=400)
    >>> pd["pd_p"].shape, pd["pd_samples_u"].shape, pd["pd_hist_d"].shape
    ((2, 3), (2, 3, 400), (2, 3, 50))
    """
    from hiergrammar.theory.population import profile as population_profile

    eps = np.asarray(eps, dtype=np.float64)
    pop = population_profile(
        v, n_classes, m, s, L, eps, n_pop=n_pop, seed=seed, n_replicas=n_replicas, n_bins=n_bins
    )
    out: dict[str, np.ndarray] = {"eps": eps, "pd_bin_edges": pop.bin_edges}
    for key in ("u", "d", "p", "accuracy"):
        out[f"pd_{key}"] = getattr(pop, key)
        out[f"pd_{key}_se"] = getattr(pop, f"{key}_se")
    for q in ("u", "d", "p"):
        out[f"pd_hist_{q}"] = getattr(pop, f"hist_{q}")
        out[f"pd_samples_{q}"] = getattr(pop, f"samples_{q}")
    out["pd_n_pop"] = np.array(pop.n_pop)
    return out


def _rows(pop: dict[str, np.ndarray], eps: np.ndarray, keys: Sequence[str]) -> dict[str, Any]:
    """The rows of ``pop`` (a :func:`population_data` dict) at the values ``eps``."""
    index = [int(np.argmin(np.abs(pop["eps"] - e))) for e in eps]
    if not np.allclose(pop["eps"][index], eps):
        raise ValueError("population_data was not computed at every requested eps")
    return {k: pop[k][index] for k in keys}


def ks_distance(a: np.ndarray, b: np.ndarray, decimals: int = 5) -> float:
    """Two-sample Kolmogorov-Smirnov distance ``sup_x |F_a(x) - F_b(x)|`` between the empirical
    laws of ``a`` and ``b`` (1-d, any lengths), after rounding both to ``decimals`` (so that
    float32 and float64 copies of one point mass, e.g. the leaves' ``1 - eps``, coincide).

    Parameters
    ----------
    a, b : numpy.ndarray
        Samples, shapes ``(n_a,)`` and ``(n_b,)``, both non-empty.
    decimals : int
        Rounding before the comparison.

    Returns
    -------
    float
        In ``[0, 1]``.

    Raises
    ------
    InputError
        On an empty sample.

    Examples
    --------
    >>> ks_distance(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.3, 0.4]))
    0.0
    >>> ks_distance(np.zeros(3), np.ones(5))
    1.0
    """
    from scipy.stats import ks_2samp

    from hiergrammar.validation import InputError

    a = np.round(np.asarray(a, dtype=np.float64).ravel(), decimals)
    b = np.round(np.asarray(b, dtype=np.float64).ravel(), decimals)
    if a.size == 0 or b.size == 0:
        raise InputError(f"ks_distance needs two non-empty samples, got {a.size} and {b.size}")
    # The statistic only: the asymptotic method skips the exact p-value's cost.
    return float(ks_2samp(a, b, method="asymp").statistic)


def spread_ks(spread: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """KS distance per eps and level between the population-dynamics members
    (``pd_samples_{q}``) and the BP node values (``{q}_e{i}_l{level}``) of a
    :func:`spread_data` dict that :func:`compute_theory` extended with population dynamics.

    Returns ``ks_u``, ``ks_d``, ``ks_p`` of shape ``(len(eps), L+1)`` and ``n_bp``
    ``(L+1,)``, the BP values behind each level (``n_samples * width``).
    """
    L = int(spread["params"][4])
    n_eps = len(spread["eps"])
    out: dict[str, np.ndarray] = {}
    for q in ("u", "d", "p"):
        out[f"ks_{q}"] = np.array(
            [
                [
                    ks_distance(spread[f"pd_samples_{q}"][i, level], spread[f"{q}_e{i}_l{level}"])
                    for level in range(L + 1)
                ]
                for i in range(n_eps)
            ]
        )
    out["n_bp"] = np.array([spread[f"u_e0_l{level}"].size for level in range(L + 1)])
    return out


# -- Fig. 15: diffusion vs the epsilon-process ----------------------------------------------------
def times_for_eps_eff(
    v: int, targets: Sequence[float], n_leaves: int = 4000, seed: int = 0
) -> np.ndarray:
    """Continuous diffusion times whose effective eps are about ``targets`` (each in
    ``(0, 1 - 1/v)``), by inverting a Monte-Carlo ``eps_eff(t)`` on a dense log grid.

    >>> times_for_eps_eff(32, [0.2, 0.7], n_leaves=500).round(2).tolist()
    [0.05, 0.12]
    """
    from hiergrammar.noise import continuous_alpha_bar, effective_eps

    grid = np.geomspace(1e-3, 5.0, 120)
    curve = np.maximum.accumulate(effective_eps(v, continuous_alpha_bar(grid), n_leaves, seed=seed))
    return np.interp(np.asarray(targets, dtype=np.float64), curve, grid)


def diffusion_data(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    t: Sequence[float],
    n_samples: int = 400,
    n_rules: int = 4,
    seed: int = 0,
    t_dense: Sequence[float] | None = None,
    n_leaves: int = 4000,
    *,
    store: str | Path | None = None,
    scheduler: Any = None,
) -> dict[str, np.ndarray]:
    """Exact BP on diffused one-hot inputs at continuous times ``t`` (``abar = exp(-2t)``).

    The BP side is a sweep of the ``gaussian`` process (as :func:`profiles_data`'s, into
    ``store`` on ``scheduler``).

    Returns ``t`` ``(T,)``, ``eps_eff`` ``(T,)`` (``1 - u_0`` measured on the same leaves),
    ``bp_p``, ``bp_accuracy`` and their ``*_se`` ``(T, L+1)``, ``mf_p`` ``(T, L+1)`` (the
    mean field at ``eps_eff``), and ``t_dense`` with ``eps_eff_dense``
    (:func:`hiergrammar.noise.effective_eps`, ``n_leaves`` leaves per time).
    """
    from hiergrammar.noise import continuous_alpha_bar, effective_eps

    t = np.asarray(t, dtype=np.float64)
    t_dense = (
        np.geomspace(max(t.min() / 3, 1e-3), 3 * t.max(), 60)
        if t_dense is None
        else np.asarray(t_dense, dtype=np.float64)
    )
    bp = _profile(v, n_classes, m, s, L, "gaussian", t, n_samples, n_rules, seed, store, scheduler)
    eps_eff = np.clip(1.0 - bp.u[:, 0], 0.0, 1.0)
    return {
        "t": t,
        "eps_eff": eps_eff,
        "bp_p": bp.p,
        "bp_p_se": bp.p_se,
        "bp_accuracy": bp.accuracy,
        "bp_accuracy_se": bp.accuracy_se,
        "mf_p": profile(v, n_classes, m, s, L, eps_eff).p,
        "t_dense": t_dense,
        "eps_eff_dense": effective_eps(v, continuous_alpha_bar(t_dense), n_leaves, seed=seed),
        "params": np.array([v, n_classes, m, s, L]),
    }


def plot_diffusion(diff: dict[str, np.ndarray], eps_proc: dict[str, np.ndarray]) -> Figure:
    """Left: ``eps_eff(t)``. Middle: marginal belief vs ``eps_eff`` (diffusion points) over the
    epsilon-process (BP dashed, MF solid). Right: the same for the argmax accuracy (BP only)."""
    v, n_classes, m, s, L = (int(x) for x in diff["params"])
    colors = _level_colors(L)
    fig = _figure(figsize=(15, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    ax = axes[0]
    ax.plot(
        diff["t_dense"],
        diff["eps_eff_dense"],
        color="k",
        lw=1.4,
        label="E[1 - P(x_0 = true | x_t)]",
    )
    ax.plot(diff["t"], diff["eps_eff"], "o", color="C1", ms=4, label="measured in the BP runs")
    ax.axhline(1 - 1 / v, color="gray", ls="--", lw=0.8, label="1 - 1/v (no information)")
    ax.set_xscale("log")
    ax.set_xlabel("diffusion time t  (abar = exp(-2t))")
    ax.set_ylabel("eps_eff")
    ax.set_title(f"effective eps of the diffusion, v={v}")
    ax.legend(fontsize=8)
    for ax, (key, label) in zip(
        axes[1:],
        [("p", "marginal belief in the true symbol"), ("accuracy", "P(correct symbol)")],
        strict=True,
    ):
        for level in range(L + 1):
            if key == "p":  # the theory has no argmax analogue
                ax.plot(
                    eps_proc["eps_dense"],
                    eps_proc["mf_p"][:, level],
                    color=colors[level],
                    lw=1.0,
                    alpha=0.8,
                )
            ax.plot(
                eps_proc["eps"],
                eps_proc[f"bp_{key}"][:, level],
                color=colors[level],
                lw=1.0,
                ls="--",
            )
            ax.errorbar(
                diff["eps_eff"],
                diff[f"bp_{key}"][:, level],
                yerr=diff[f"bp_{key}_se"][:, level],
                color=colors[level],
                marker="o",
                ms=4,
                ls="none",
                capsize=2,
                label=_level_name(level, L),
            )
        ax.set_xlabel("eps_eff (diffusion) / eps (eps-process)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{label.split(' in ')[0]}: diffusion vs eps-process")
    axes[1].legend(
        fontsize=7,
        title="points: diffusion (BP)\ndashed: eps-process (BP)\nsolid: mean field",
        title_fontsize=7,
    )
    fig.suptitle(
        f"Fig. 15: diffusion mapped onto the eps-process (v={v}, n_c={n_classes}, "
        f"m={m}, s={s}, L={L})"
    )
    return fig


# -- finite-depth scaling of the class transition -------------------------------------------------
def finite_depth_data(result: dict | None = None) -> dict[str, Any]:
    """The class-transition width against depth ``L`` from a finite-depth run
    (:func:`hiergrammar.theory.finite_depth.run_finite_depth`): by default the stored result
    (:func:`hiergrammar.theory.finite_depth.load_stored`, exact BP up to ``L = 14``, computed
    once by a script; nothing is recomputed here).

    Parameters
    ----------
    result : dict, optional
        A result of ``run_finite_depth`` (default the stored one).

    Returns
    -------
    dict
        JSON-ready: the keys of :func:`hiergrammar.theory.finite_depth.scaling_figure_data`
        (``depths``, ``bp_width_belief`` with ``*_se`` and ``*_draws``, ``predicted_line``
        with slope ``-ln lambda``, ``fitted_line_belief``, ``mf_width``, ``lam``,
        ``lam_fit_belief``, ``lam_fit_accuracy``, ``bp_half_belief``, ``mf_half``,
        ``eps_star``, ...), plus ``params`` (``v``, ``n_classes``, ``m``, ``s``, ``n_rules``),
        ``fit_depths`` (the depths of the fit), ``log_lam_fit_se`` and the population-dynamics
        widths ``pd_depths``, ``pd_width_belief`` (empty where the run has none).

    Examples
    --------
    >>> data = finite_depth_data()
    >>> round(data["lam"], 3), data["depths"][-1] >= 12
    (1.442, True)
    """
    from hiergrammar.theory.finite_depth import load_stored, scaling_figure_data

    result = load_stored() if result is None else result
    out = scaling_figure_data(result)
    params = result["params"]
    out["params"] = {k: params[k] for k in ("v", "n_classes", "m", "s", "n_rules")}
    fit = result.get("fit", {})
    out["fit_depths"] = [int(L) for L in fit.get("depths_used", [])]
    out["log_lam_fit_se"] = fit.get("belief", {}).get("log_lam_se")
    population = result.get("population", {})
    pd_depths = sorted(int(L) for L in population)
    out["pd_depths"] = pd_depths
    out["pd_width_belief"] = [float(population[str(L)]["width_belief"]) for L in pd_depths]
    return out


def plot_finite_depth(data: dict[str, Any]) -> Figure:
    """Left: width of the class transition (between the levels 0.25 and 0.75 of the normalised
    class belief) against ``L`` on a log scale: exact BP per rule draw (small dots) and their
    mean with standard errors, the exact finite-depth mean field, the predicted slope
    ``-ln F'(u*)`` (anchored at the deepest BP point) and the fitted one, and population
    dynamics where the run has it. Right: the half-level crossing against ``L`` drifting
    towards ``eps*``.

    Examples
    --------
    >>> fig = plot_finite_depth(finite_depth_data())
    >>> len(fig.axes), fig.axes[0].get_yscale()
    (2, 'log')
    """
    depths = np.asarray(data["depths"])
    fig = _figure(figsize=(11, 4.2), layout="constrained")
    ax, ax_half = fig.subplots(1, 2)
    for L, draws in zip(depths, data["bp_width_belief_draws"], strict=True):
        ax.plot(np.full(len(draws), L), draws, ".", color="C0", ms=3, alpha=0.4)
    ax.errorbar(
        depths,
        data["bp_width_belief"],
        yerr=data["bp_width_belief_se"],
        color="C0",
        marker="o",
        ms=4,
        ls="none",
        capsize=2,
        label=f"exact BP ({data['params']['n_rules']} rule draws; dots: each)",
    )
    ax.plot(depths, data["mf_width"], color="k", lw=1.0, label="mean field, exact finite L")
    ax.plot(
        depths,
        data["predicted_line"],
        color="C3",
        ls="--",
        lw=1.4,
        label=f"predicted slope: lambda = F'(u*) = {data['lam']:.3f}",
    )
    if "fitted_line_belief" in data:
        ax.plot(
            depths,
            data["fitted_line_belief"],
            color="C1",
            ls=":",
            lw=1.6,
            label=f"fit to BP (L >= {min(data['fit_depths'], default=depths[0])}): "
            f"lambda = {data['lam_fit_belief']:.3f}",
        )
    if data.get("pd_depths"):
        ax.plot(
            data["pd_depths"],
            data["pd_width_belief"],
            "s",
            color="C2",
            mfc="none",
            ms=6,
            label="population dynamics",
        )
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel("width of the class transition in eps")
    ax.set_title("width shrinks by lambda per level")
    ax.legend(fontsize=7)
    ax_half.errorbar(
        depths,
        data["bp_half_belief"],
        yerr=data["bp_half_belief_spread"],
        color="C0",
        marker="o",
        ms=4,
        capsize=2,
        label="exact BP (bars: spread of draws)",
    )
    ax_half.plot(depths, data["mf_half"], color="k", lw=1.0, label="mean field, exact finite L")
    ax_half.axhline(
        data["eps_star"], color="k", ls=":", lw=1, label=f"eps* = {data['eps_star']:.4f}"
    )
    ax_half.set_xlabel("depth L")
    ax_half.set_ylabel("eps where the normalised class belief is 1/2")
    ax_half.set_title("the crossing drifts towards eps*")
    ax_half.legend(fontsize=7)
    p = data["params"]
    fig.suptitle(
        f"Finite-depth scaling of the class transition (v={p['v']}, n_c={p['n_classes']}, "
        f"m={p['m']}, s={p['s']}; stored exact-BP run)"
    )
    return fig


# -- sizes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseDiagramPanel:
    """One row of Fig. 6: branching ``s``, ``v = n_classes``, the ``m`` values of the ``f``
    axis, the depths, and the ``m`` of the fixed-``f`` curves (one of ``ms``)."""

    s: int
    v: int
    ms: tuple[int, ...]
    depths: tuple[int, ...]
    fixed_m: int


@dataclass(frozen=True)
class TheorySizes:
    """Sizes of the ``theory`` step.

    The model of Figs. 7, 11-15 is ``v = n_classes``, ``m``, ``s``, ``L``.
    ``profile_eps`` / ``profile_samples``: Figs. 7, 12-14, over ``n_rules`` rule draws.
    ``spread_eps`` / ``spread_samples``: Fig. 11 (one rule draw).
    ``diffusion_eps_eff``: Fig. 15's times, chosen so that the effective eps hits these values
    (:func:`times_for_eps_eff`), or ``diffusion_t``: the times themselves;
    ``diffusion_samples``, ``diffusion_leaves`` (Monte-Carlo leaves of ``eps_eff(t)``).
    ``panels``, ``phase_eps``, ``phase_samples``, ``phase_rules``: Fig. 6.
    ``dpi`` of the PNGs; ``budget_seconds``: the step's time budget on two CPU cores.
    ``population_size``: members per level of the population dynamics beside mean field and
    BP (Figs. 7, 11-14; run at ``profile_eps`` and ``spread_eps``), in
    ``population_replicas`` independent replicas.
    """

    v: int
    m: int
    s: int
    L: int
    n_rules: int
    profile_eps: tuple[float, ...]
    profile_samples: int
    spread_eps: tuple[float, ...]
    spread_samples: int
    diffusion_eps_eff: tuple[float, ...] | None
    diffusion_t: tuple[float, ...] | None
    diffusion_samples: int
    diffusion_leaves: int
    panels: tuple[PhaseDiagramPanel, ...]
    phase_eps: tuple[float, ...]
    phase_samples: int
    phase_rules: int
    dpi: int
    budget_seconds: float
    population_size: int = 8000
    population_replicas: int = 4


FULL = TheorySizes(
    v=32,
    m=8,
    s=2,
    L=5,
    n_rules=4,
    profile_eps=tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist()),
    profile_samples=480,
    spread_eps=(0.3, 0.6, 0.75),
    spread_samples=100,
    # Times spread evenly in eps_eff, with extra points around the class transition.
    diffusion_eps_eff=(0.05, 0.15, 0.25, 0.33, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9),
    diffusion_t=None,
    diffusion_samples=400,
    diffusion_leaves=4000,
    panels=(
        PhaseDiagramPanel(2, 16, (1, 2, 3, 4, 5, 6, 7, 8, 10, 12), (2, 4, 6), 4),
        PhaseDiagramPanel(3, 8, (1, 2, 4, 8, 12, 16, 20, 24, 32), (2, 3, 4), 8),
    ),
    phase_eps=tuple(np.round(np.arange(0.0, 0.91, 0.075), 3).tolist()),
    phase_samples=80,
    phase_rules=2,
    dpi=130,
    budget_seconds=90,
)

#: Tiny sizes for ``--quick``: small, fast PNGs too.
QUICK = TheorySizes(
    v=32,
    m=8,
    s=2,
    L=3,
    n_rules=2,
    profile_eps=(0.3, 0.6, 0.8),
    profile_samples=40,
    spread_eps=(0.3, 0.6, 0.75),
    spread_samples=10,
    diffusion_eps_eff=None,
    diffusion_t=(0.03, 0.1),
    diffusion_samples=20,
    diffusion_leaves=500,
    panels=(
        PhaseDiagramPanel(2, 8, (1, 2, 4), (2, 3), 2),
        PhaseDiagramPanel(3, 4, (1, 4), (2,), 1),
    ),
    phase_eps=(0.2, 0.5, 0.8),
    phase_samples=8,
    phase_rules=1,
    dpi=72,
    budget_seconds=12,
    population_size=2000,
)


# -- compute, describe, reproduce -----------------------------------------------------------------
def _around(
    eps: np.ndarray, values: np.ndarray, eps_star: float, gap: float = 0.05
) -> tuple[float, float, float, float]:
    """``(eps_lo, value_lo, eps_hi, value_hi)`` at the grid points just outside
    ``[eps* - gap, eps* + gap]`` (nan where the grid ends)."""
    lo, hi = np.flatnonzero(eps <= eps_star - gap), np.flatnonzero(eps >= eps_star + gap)
    i, k = (lo[-1] if lo.size else None), (hi[0] if hi.size else None)
    return (
        float(eps[i]) if i is not None else np.nan,
        float(values[i]) if i is not None else np.nan,
        float(eps[k]) if k is not None else np.nan,
        float(values[k]) if k is not None else np.nan,
    )


@dataclass
class TheoryResult:
    """What :func:`compute_theory` measured: per figure its data arrays (``*_data``, saved as
    NPZ) and the numbers the report quotes (``*_summary``, saved as JSON)."""

    sizes: TheorySizes
    seed: int
    profiles_data: dict[str, np.ndarray]
    profiles_summary: dict[str, Any]
    spread_data: dict[str, np.ndarray]
    spread_summary: dict[str, Any]
    diffusion_data: dict[str, np.ndarray]
    diffusion_summary: dict[str, Any]
    phase_panels: list[dict[str, np.ndarray]]
    phase_summary: dict[str, Any]
    finite_depth_data: dict[str, Any] = field(default_factory=dict)
    finite_depth_summary: dict[str, Any] = field(default_factory=dict)

    @property
    def phase_data(self) -> dict[str, np.ndarray]:
        """The Fig. 6 panels as one flat dict ``s{s}_{key}``."""
        return {f"s{p['s']}_{k}": val for p in self.phase_panels for k, val in p.items()}


def compute_theory(
    sizes: TheorySizes,
    seed: int = 0,
    *,
    store: str | Path | None = None,
    scheduler: Any = None,
) -> TheoryResult:
    """Run the measurements of Figs. 7/12-14, 11, 15 and 6 at ``sizes``.

    Parameters
    ----------
    sizes : TheorySizes
        :data:`FULL`, :data:`QUICK` or your own.
    seed : int
        Seed of every rule draw, sample and noise.
    store : str or Path, optional
        Folder of the step's sweep stores (``profiles``, ``diffusion``, ``phase_diagram``);
        default temporary folders.
    scheduler : optional
        Where the sweeps run (:func:`hiergrammar.sweep.run_sweep`); default the enclosing
        :func:`hiergrammar.sweep.use_scheduler` block's, else this process.

    Returns
    -------
    TheoryResult
    """
    with scheduler_for(scheduler) as shared:
        return _compute_theory(sizes, seed, None if store is None else Path(store), shared)


def _compute_theory(sizes: TheorySizes, seed: int, store: Path | None, shared: Any) -> TheoryResult:
    z = sizes
    v, m, s, L, rules = z.v, z.m, z.s, z.L, z.n_rules

    def where(name: str) -> Path | None:
        return None if store is None else store / name

    # Figs. 7, 12-14
    prof_eps = np.asarray(z.profile_eps, dtype=np.float64)
    prof = profiles_data(
        v,
        v,
        m,
        s,
        L,
        prof_eps,
        n_samples=z.profile_samples,
        n_rules=rules,
        seed=seed,
        store=where("profiles"),
        scheduler=shared,
    )
    # Population dynamics, once for the eps of Figs. 7, 12-14 and of Fig. 11.
    spread_eps = np.asarray(z.spread_eps, dtype=np.float64)
    pop = population_data(
        v,
        v,
        m,
        s,
        L,
        np.union1d(prof_eps, spread_eps),
        n_pop=z.population_size,
        seed=seed,
        n_replicas=z.population_replicas,
    )
    pd_means = [f"pd_{k}{e}" for k in ("u", "d", "p", "accuracy") for e in ("", "_se")]
    prof.update(_rows(pop, prof_eps, pd_means))
    dev = np.abs(prof["mf_at_bp_p"] - prof["bp_p"])
    mf_at_bp = profile(v, v, m, s, L, prof_eps)
    pd_dev = {q: np.abs(prof[f"pd_{q}"] - prof[f"bp_{q}"]) for q in ("u", "d", "p", "accuracy")}
    worst = np.unravel_index(dev.argmax(), dev.shape)
    pd_worst = np.unravel_index(pd_dev["p"].argmax(), pd_dev["p"].shape)
    prof_summary = {
        "params": {
            "v": v,
            "n_classes": v,
            "m": m,
            "s": s,
            "L": L,
            "n_samples": z.profile_samples,
            "n_rules": rules,
        },
        "eps_star": critical_eps(v, m, s),
        "max_abs_p_mf_minus_bp": float(dev.max()),
        "at_eps": float(prof_eps[worst[0]]),
        "at_level": int(worst[1]),
        "se_there": float(prof["bp_p_se"][worst]),
        "max_abs_u_mf_minus_bp": float(np.abs(mf_at_bp.u - prof["bp_u"]).max()),
        "max_abs_d_mf_minus_bp": float(np.abs(mf_at_bp.d - prof["bp_d"]).max()),
        "population": {
            "n_pop": z.population_size,
            "n_replicas": z.population_replicas,
            **{f"max_abs_{q}_pd_minus_bp": float(d.max()) for q, d in pd_dev.items()},
            "at_eps_p": float(prof_eps[pd_worst[0]]),
            "at_level_p": int(pd_worst[1]),
            "max_pd_se_p": float(prof["pd_p_se"].max()),
            "bp_se_at_worst_p": float(prof["bp_p_se"][pd_worst]),
            "max_bp_se": {q: float(prof[f"bp_{q}_se"].max()) for q in ("u", "d", "p")},
            # Where the population is closer to BP than the mean field, point by point.
            "fraction_of_points_pd_closer_than_mf": {
                q: float(np.mean(pd_dev[q] < np.abs(getattr(mf_at_bp, q) - prof[f"bp_{q}"])))
                for q in ("u", "d", "p")
            },
        },
    }

    # Fig. 11
    spread = spread_data(v, v, m, s, L, spread_eps, n_samples=z.spread_samples, seed=seed)
    pd_hists = [f"pd_{k}_{q}" for k in ("hist", "samples") for q in ("u", "d", "p")]
    spread.update(_rows(pop, spread_eps, pd_hists))
    spread["pd_bin_edges"] = pop["pd_bin_edges"]
    ks = spread_ks(spread)
    spread.update(ks)
    spread_summary = {
        "eps": spread_eps,
        "levels": L + 1,
        "ks_population_vs_bp": {
            "what": "two-sample KS distance per eps and level between the population-dynamics "
            "members (ensemble) and the BP node values (one rule draw)",
            "n_pop": z.population_size,
            "n_bp_per_level": ks["n_bp"].tolist(),
            **{
                f"eps={e}": {q: ks[f"ks_{q}"][i].tolist() for q in ("u", "d", "p")}
                for i, e in enumerate(spread_eps)
            },
        },
        "stats": {
            f"eps={e}": {
                q: {
                    "bp_mean": [float(spread[f"{q}_e{i}_l{lv}"].mean()) for lv in range(L + 1)],
                    "bp_std": [float(spread[f"{q}_e{i}_l{lv}"].std()) for lv in range(L + 1)],
                    "mf": spread[f"mf_{q}"][i],
                    "pd_mean": spread[f"pd_samples_{q}"][i].mean(axis=-1).tolist(),
                }
                for q in ("u", "d", "p")
            }
            for i, e in enumerate(spread_eps)
        },
    }

    # Fig. 15
    if z.diffusion_t is not None:
        diff_t = np.asarray(z.diffusion_t, dtype=np.float64)
    else:
        diff_t = times_for_eps_eff(v, z.diffusion_eps_eff, seed=seed)
    diff = diffusion_data(
        v,
        v,
        m,
        s,
        L,
        diff_t,
        n_samples=z.diffusion_samples,
        n_rules=rules,
        seed=seed,
        n_leaves=z.diffusion_leaves,
        store=where("diffusion"),
        scheduler=shared,
    )
    # Where the class (l = L) and input (l = 0) marginals fall through 1/2: diffusion (vs
    # eps_eff), eps-process BP and mean field (vs eps).
    half = {}
    for name, lv in (("class", L), ("input", 0)):
        half[name] = {
            "diffusion_bp": first_crossing(diff["eps_eff"], diff["bp_p"][:, lv], 0.5),
            "eps_process_bp": first_crossing(prof["eps"], prof["bp_p"][:, lv], 0.5),
            "eps_process_mf": first_crossing(prof["eps_dense"], prof["mf_p"][:, lv], 0.5),
        }
    eps_curve = np.stack(
        [np.interp(diff["eps_eff"], prof["eps"], prof["bp_p"][:, lv]) for lv in range(L + 1)],
        axis=1,
    )
    inside = (diff["eps_eff"] >= prof["eps"].min()) & (diff["eps_eff"] <= prof["eps"].max())
    diff_summary = {
        "t": diff["t"],
        "eps_eff": diff["eps_eff"],
        "marginal_half_crossing": half,
        "max_abs_p_diffusion_minus_eps_process_bp": float(
            np.abs(eps_curve - diff["bp_p"])[inside].max()
        )
        if inside.any()
        else None,
        "max_abs_p_diffusion_minus_mf_at_eps_eff": float(np.abs(diff["mf_p"] - diff["bp_p"]).max()),
    }

    # Fig. 6: both panels in one sweep
    pd_eps = np.asarray(z.phase_eps, dtype=np.float64)
    config = phase_diagram_config(z.panels, pd_eps, z.phase_samples, z.phase_rules, seed)
    pd_frame, _ = sweep_frame(config, where("phase_diagram"), scheduler=shared)
    panels, pd_summary = [], {}
    for panel in z.panels:
        data = phase_diagram_panel(pd_frame, panel.s, panel.v, panel.ms, pd_eps, panel.depths)
        panels.append(data)
        j = panel.ms.index(panel.fixed_m)
        star = float(data["eps_star"][j])
        norm = (data["belief"][:, j] - 1.0 / panel.v) / (1.0 - 1.0 / panel.v)
        pd_summary[f"s={panel.s}"] = {
            "v": panel.v,
            "m": list(panel.ms),
            "depths": list(panel.depths),
            "n_samples": z.phase_samples,
            "fixed_m": panel.fixed_m,
            "fixed_f": panel.fixed_m / panel.v ** (panel.s - 1),
            "eps_star_at_fixed_f": star,
            "class_marginal_around_eps_star": {
                int(L_): dict(
                    zip(
                        ("eps_below", "p_below", "eps_above", "p_above"),
                        _around(pd_eps, data["belief"][i, j], star),
                        strict=True,
                    )
                )
                for i, L_ in enumerate(panel.depths)
            },
            "half_crossing_of_normalised_class_marginal": {
                int(L_): first_crossing(pd_eps, norm[i], 0.5) for i, L_ in enumerate(panel.depths)
            },
        }
    # Finite-depth scaling: the stored exact-BP run, read, not recomputed.
    depth = finite_depth_data()
    widths = dict(zip(depth["depths"], depth["bp_width_belief"], strict=True))
    depth_summary = {
        "source": "hiergrammar/theory/data/finite_depth.json (python -m "
        "hiergrammar.theory.finite_depth; see that module)",
        "params": depth["params"],
        "depths": depth["depths"],
        "lam_predicted": depth["lam"],
        "lam_fit_belief": depth["lam_fit_belief"],
        "lam_fit_accuracy": depth["lam_fit_accuracy"],
        "log_lam_fit_se": depth["log_lam_fit_se"],
        "fit_depths": depth["fit_depths"],
        "bp_width_belief": widths,
        "mf_width": dict(zip(depth["depths"], depth["mf_width"], strict=True)),
        "pd_width_belief": dict(zip(depth["pd_depths"], depth["pd_width_belief"], strict=True)),
        "eps_star": depth["eps_star"],
        "bp_half_belief": dict(zip(depth["depths"], depth["bp_half_belief"], strict=True)),
    }
    return TheoryResult(
        sizes,
        seed,
        prof,
        prof_summary,
        spread,
        spread_summary,
        diff,
        diff_summary,
        panels,
        pd_summary,
        depth,
        depth_summary,
    )


def describe_theory(result: TheoryResult) -> str:
    """The report's Markdown, computed from the measured numbers."""
    z = result.sizes
    prof_summary, diff, half = (
        result.profiles_summary,
        result.diffusion_data,
        result.diffusion_summary["marginal_half_crossing"],
    )

    def fmt(x: float | None) -> str:
        return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"

    pd_lines = []
    for key, sm in result.phase_summary.items():
        around = sm["class_marginal_around_eps_star"]
        first = next(iter(around.values()))
        cells = ", ".join(
            f"L={L_}: {fmt(a['p_below'])} / {fmt(a['p_above'])}" for L_, a in around.items()
        )
        pd_lines.append(
            f"  - {key}, v = n_c = {sm['v']}, f = {sm['fixed_f']:.3g} (MF eps* = "
            f"{sm['eps_star_at_fixed_f']:.3f}): P(true class) at eps = "
            f"{fmt(first['eps_below'])} / {fmt(first['eps_above'])}: {cells}"
        )
    pd_text = "\n".join(pd_lines)
    rules, t = z.n_rules, diff["t"]
    pop = prof_summary["population"]
    closer = pop["fraction_of_points_pd_closer_than_mf"]
    ks = result.spread_summary["ks_population_vs_bp"]
    ks_lines = "\n".join(
        f"  - eps = {e}: KS per level l = 0..{z.L}, upward "
        + ", ".join(f"{x:.2f}" for x in ks[f"eps={e}"]["u"])
        + "; downward "
        + ", ".join(f"{x:.2f}" for x in ks[f"eps={e}"]["d"])
        + "; marginal "
        + ", ".join(f"{x:.2f}" for x in ks[f"eps={e}"]["p"])
        for e in result.spread_summary["eps"]
    )
    n_bp = ks["n_bp_per_level"]
    depth = result.finite_depth_summary
    depth_text = ""
    if depth:
        w = depth["bp_width_belief"]
        Ls = depth["depths"]
        depth_text = f"""
* **Finite-depth scaling** (`finite_depth_scaling`): from the stored exact-BP run
  ({depth["params"]["n_rules"]} rule draws per depth, L = {Ls[0]}..{Ls[-1]}, v =
  {depth["params"]["v"]}, m = {depth["params"]["m"]}, s = {depth["params"]["s"]}; not
  recomputed here), the width of the class transition falls from {w[Ls[0]]:.4f} at L =
  {Ls[0]} to {w[Ls[-1]]:.4f} at L = {Ls[-1]}. Predicted: it shrinks by lambda = F'(u*) =
  {depth["lam_predicted"]:.4f} per level; a fit of the BP widths over L =
  {depth["fit_depths"][0]}..{depth["fit_depths"][-1]} gives {depth["lam_fit_belief"]:.4f}
  (ln lambda standard error {depth["log_lam_fit_se"]:.4f}; argmax-accuracy widths
  {depth["lam_fit_accuracy"]:.4f}). The half-level crossing moves from
  {depth["bp_half_belief"][Ls[0]]:.4f} to {depth["bp_half_belief"][Ls[-1]]:.4f} towards
  eps* = {depth["eps_star"]:.4f}."""
    return f"""
Mean-field theory (`hiergrammar.theory.meanfield`, closed forms of docs/model.md) against
exact BP (`hiergrammar.bp.tree_bp`, float32 messages) for v = n_c = {z.v}, m = {z.m},
s = {z.s}, L = {z.L}. BP values are beliefs in the true symbol averaged over the nodes of a
level, {z.profile_samples} samples per noise value and {rules} independent rule draws; error
bars are the spread of the per-draw means over sqrt({rules}).

* **Figs. 7, 12-14** (`fig07_beliefs_per_level`): over {len(z.profile_eps)} eps values and all
  levels, max |p_MF - p_BP| = {prof_summary["max_abs_p_mf_minus_bp"]:.4f} (at eps =
  {prof_summary["at_eps"]}, level {prof_summary["at_level"]}, BP standard error
  {prof_summary["se_there"]:.4f}). Upward beliefs agree to
  {prof_summary["max_abs_u_mf_minus_bp"]:.4f}; downward beliefs only to
  {prof_summary["max_abs_d_mf_minus_bp"]:.4f} (BP's downward messages fluctuate strongly at
  small eps, as the paper notes). MF threshold eps* = {prof_summary["eps_star"]:.4f}. The
  argmax accuracy stays 1 at low levels up to eps close to 1 - 1/v: under the eps-process
  the true symbol is always the most likely one at each leaf.
* **Population dynamics** (`hiergrammar.theory.population`, {pop["n_pop"]} members per level
  in {pop["n_replicas"]} replicas; the dashed curves of `fig07_beliefs_per_level`): max
  |PD - BP| = {pop["max_abs_u_pd_minus_bp"]:.4f} upward, {pop["max_abs_d_pd_minus_bp"]:.4f}
  downward, {pop["max_abs_p_pd_minus_bp"]:.4f} marginal (at eps = {pop["at_eps_p"]}, level
  {pop["at_level_p"]}, where BP's standard error is {pop["bp_se_at_worst_p"]:.4f}; largest
  PD standard error {pop["max_pd_se_p"]:.4f}) and
  {pop["max_abs_accuracy_pd_minus_bp"]:.4f} for the argmax accuracy, which the mean field
  cannot give. It is closer to BP than the mean field at {100 * closer["u"]:.0f}% of the
  points upward, {100 * closer["d"]:.0f}% downward and {100 * closer["p"]:.0f}% marginal;
  where both are within BP's standard errors (largest {pop["max_bp_se"]["u"]:.4f} upward,
  {pop["max_bp_se"]["d"]:.4f} downward) these fractions are decided by BP's noise. Downward,
  the largest deviation is {pop["max_abs_d_pd_minus_bp"]:.4f} for population dynamics against
  {prof_summary["max_abs_d_mf_minus_bp"]:.4f} for the mean field.
* **Fig. 11** (`fig11_message_spread`): single-node BP beliefs (one rule draw,
  {z.spread_samples} samples, eps = {list(z.spread_eps)}) spread around the mean-field value;
  the upward ones are centred on it, the downward ones are broad and bimodal at low eps.
  Population dynamics (green violins) gives the whole law; two-sample KS distance to the BP
  node values ({n_bp[0]} values at the input down to {n_bp[-1]} at the class, so a KS of
  about {1.36 / np.sqrt(n_bp[-1]):.2f} at the class is within sampling noise at 95%):
{ks_lines}
* **Fig. 15** (`fig15_diffusion_effective_eps`): eps_eff(t) (abar = exp(-2t), v = {z.v}) goes
  from {diff["eps_eff"][0]:.3f} at t = {t[0]:.3g} to {diff["eps_eff"][-1]:.3f} at
  t = {t[-1]:.3g}. Against eps_eff the diffusion's curves have the eps-process shape
  (class sharpest, low levels smoothest) but are shifted to lower noise: the class marginal
  falls through 1/2 at eps_eff =
  {fmt(half["class"]["diffusion_bp"])} (diffusion) vs eps = {fmt(half["class"]["eps_process_bp"])}
  (eps-process, BP) and {fmt(half["class"]["eps_process_mf"])} (mean field); the input marginal
  at {fmt(half["input"]["diffusion_bp"])} vs {fmt(half["input"]["eps_process_bp"])}. At equal
  eps_eff, diffusion leaves are less informative than eps-process leaves (the true symbol is
  not always the most likely one), so the mapping is qualitative.
* **Fig. 6** (`fig06_phase_diagram`): BP marginal of the true class in the (f, eps) plane with
  the MF critical line eps*(f) at the chosen v (solid) and for v -> infinity (dashed). At a
  fixed f the class transition sharpens with L (values just below / above eps* +- 0.05):
{pd_text}{depth_text}
"""


def reproduce_step(out_dir: Path, *, seed: int = 0, sizes: TheorySizes = FULL) -> ReportSection:
    """Compute, plot and describe Figs. 6, 7/12-14, 11 and 15 and the finite-depth scaling;
    write each figure's PNG, NPZ and JSON (the scaling figure: JSON only) into
    ``out_dir / "theory"``, from the sweep stores in ``out_dir / "sweeps" / "theory"``."""
    stores = Path(out_dir) / "sweeps" / "theory"
    out_dir = Path(out_dir) / "theory"
    result = compute_theory(sizes, seed=seed, store=stores)
    figures: list[Path] = []
    files: list[Path] = []
    for stem, fig, data, summary in (
        (
            "fig07_beliefs_per_level",
            plot_profiles(result.profiles_data),
            result.profiles_data,
            result.profiles_summary,
        ),
        (
            "fig11_message_spread",
            plot_spread(result.spread_data),
            result.spread_data,
            result.spread_summary,
        ),
        (
            "fig15_diffusion_effective_eps",
            plot_diffusion(result.diffusion_data, result.profiles_data),
            result.diffusion_data,
            result.diffusion_summary,
        ),
        (
            "fig06_phase_diagram",
            plot_phase_diagram(result.phase_panels, [p.fixed_m for p in sizes.panels]),
            result.phase_data,
            result.phase_summary,
        ),
    ):
        figures.append(save_figure(fig, out_dir / f"{stem}.png", dpi=sizes.dpi))
        files.append(save_npz(out_dir / f"{stem}.npz", **data))
        files.append(save_json(out_dir / f"{stem}.json", summary))
    figures.append(
        save_figure(
            plot_finite_depth(result.finite_depth_data),
            out_dir / "finite_depth_scaling.png",
            dpi=sizes.dpi,
        )
    )
    files.append(
        save_json(
            out_dir / "finite_depth_scaling.json",
            {"summary": result.finite_depth_summary, "data": result.finite_depth_data},
        )
    )
    files += [stores / name / "sweep.json" for name in ("profiles", "diffusion", "phase_diagram")]
    return ReportSection(
        title="Mean-field theory and population dynamics vs exact BP (Figs. 6, 7, 11-15), "
        "finite-depth scaling",
        text=describe_theory(result)
        + "\nThe exact-BP points come from the sweep stores `sweeps/theory/profiles`, "
        "`sweeps/theory/diffusion` and `sweeps/theory/phase_diagram` (one Parquet file per "
        "task; read them with `hiergrammar.sweep.load`).\n",
        figures=figures,
        data=files,
    )
