"""Figure step ``cnn_probe``: a tree CNN's representations under BP resampling (paper Fig. 8).

:func:`compute_cnn_probe` trains a :class:`~hiergrammar.vision.rhm_cnn.TreeCNN` on RHM samples
and probes it with :func:`hiergrammar.vision.rhm_probe.probe_eps_grid` (exact BP resampling at
every eps of a grid); :func:`plot_cnn_probe` draws the similarities and the resampling itself,
:func:`describe_cnn_probe` writes the report text from the curves. Needs torch (the ``vision``
extra); this module imports it inside :func:`compute_cnn_probe` only.

Why ``v=6, m=2, L=7`` in :data:`FULL` (f = 1/3, eps* = 3/4): the paper's effects need depth. At
``v=16, m=4, L=4`` the resampled class is kept *less* often than a leaf at every eps and the CNN
read-out lies just below layer 1 everywhere (measured: no inversion), while at ``L=7`` the class
is the more robust at moderate eps and drops sharply near eps*. Small ``v`` and ``m`` keep the
CNN's sample complexity (~ n_c m**L = 768) low enough to reach 100% test accuracy in ~15 s on 2
cores. Other sizes: ``dataclasses.replace(FULL, v=16, n_classes=16, m=4, L=4, width=256,
n_train=60000)``.

One torch thread: these convolutions are small, and on a busy two-core machine a second
intra-op thread made the quick training 15 to 30 times slower (measured: 3-7 s with one
thread, 87-114 s with two, at a load average of 10), while on an idle machine it gains little.

Examples
--------
>>> QUICK.L, FULL.L, FULL.budget_seconds >= QUICK.budget_seconds
(4, 7, True)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.artifacts import ReportSection, save_figure, save_json, save_npz
from hiergrammar.experiments.curves import first_crossing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hiergrammar.vision.rhm_probe import RHMProbe

__all__ = [
    "REQUIRES",
    "EXTRA",
    "CNNProbeSizes",
    "FULL",
    "QUICK",
    "CNNProbeResult",
    "compute_cnn_probe",
    "plot_cnn_probe",
    "describe_cnn_probe",
    "reproduce_step",
]

REQUIRES: tuple[str, ...] = ("torch",)
EXTRA: str | None = "vision"


@dataclass(frozen=True)
class CNNProbeSizes:
    """Sizes of the ``cnn_probe`` step.

    The RHM ``v, n_classes, m, s, L``; the CNN's ``width`` and its training (``n_train``,
    ``n_test`` samples, ``epochs``, ``batch_size``, Adam's ``lr``); the probe (``n_probe``
    held-out inputs, ``n_eps`` noise values from 0 to ``1 - 1/v``); ``exact_theory``: eps* from
    sympy (seconds) rather than numerically; ``threads``: torch's CPU threads for training and
    probing (the result is deterministic for a given seed and thread count);
    ``budget_seconds``: the step's time budget on two CPU cores.
    """

    v: int
    n_classes: int
    m: int
    s: int
    L: int
    width: int
    n_train: int
    n_test: int
    epochs: int
    batch_size: int
    lr: float
    n_probe: int
    n_eps: int
    exact_theory: bool
    threads: int
    budget_seconds: float


FULL = CNNProbeSizes(
    v=6,
    n_classes=6,
    m=2,
    s=2,
    L=7,
    width=128,
    n_train=20000,
    n_test=10000,
    epochs=3,
    batch_size=128,
    lr=2e-3,
    n_probe=2000,
    n_eps=25,
    exact_theory=True,
    threads=1,
    budget_seconds=60,
)

#: Tiny sizes for ``--quick``.
QUICK = CNNProbeSizes(
    v=6,
    n_classes=6,
    m=2,
    s=2,
    L=4,
    width=64,
    n_train=4000,
    n_test=1000,
    epochs=5,
    batch_size=64,
    lr=3e-3,
    n_probe=200,
    n_eps=6,
    exact_theory=False,
    threads=1,
    budget_seconds=12,
)


@dataclass
class CNNProbeResult:
    """What :func:`compute_cnn_probe` measured: the trained CNN's accuracies and per-epoch
    loss, the probe (:class:`~hiergrammar.vision.rhm_probe.RHMProbe`, its sets are the eps
    values), the mean-field ``eps_star`` (None without a transition) and where it came from,
    and the seconds spent training and probing."""

    sizes: CNNProbeSizes
    seed: int
    rhm: str
    test_accuracy: float
    train_accuracy: float
    train_loss_per_epoch: list[float]
    probe: RHMProbe
    eps_star: float | None
    eps_source: str
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-able."""
        p = self.probe
        return {
            "config": dataclasses.asdict(self.sizes),
            "seed": self.seed,
            "rhm": self.rhm,
            "test_accuracy": self.test_accuracy,
            "train_accuracy": self.train_accuracy,
            "train_loss_per_epoch": self.train_loss_per_epoch,
            "seconds": self.seconds,
            "eps_star": self.eps_star,
            "eps_star_source": self.eps_source,
            "eps": p.eps,
            "layers": p.layers,
            "similarity_mean": p.similarity_mean,
            "similarity_sem": p.similarity_sem,
            "cnn_class_agreement": p.cnn_class_agreement,
            "cnn_top1_agreement": p.cnn_top1_agreement,
            "class_agreement_bp": p.class_agreement,
            "level_kept": p.level_kept,
            "valid_fraction": p.valid_fraction,
            "units": p.n_units,
            "units_dropped_as_constant": p.n_dropped,
        }


def compute_cnn_probe(sizes: CNNProbeSizes, seed: int = 0) -> CNNProbeResult:
    """Train the tree CNN of ``sizes`` and probe it under BP resampling.

    Parameters
    ----------
    sizes : CNNProbeSizes
        :data:`FULL`, :data:`QUICK` or your own.
    seed : int
        Seed of the rules, the training, the held-out inputs and the resampling.

    Returns
    -------
    CNNProbeResult
    """
    from hiergrammar.rhm import RHM
    from hiergrammar.vision.rhm_cnn import torch_threads, train_tree_cnn
    from hiergrammar.vision.rhm_probe import critical_eps, probe_eps_grid

    z = sizes
    seeds = np.random.SeedSequence(seed).generate_state(4)
    rhm = RHM(z.v, z.n_classes, z.m, z.s, z.L, seed=int(seeds[0]))
    trained = train_tree_cnn(
        rhm,
        n_train=z.n_train,
        n_test=z.n_test,
        width=z.width,
        epochs=z.epochs,
        batch_size=z.batch_size,
        lr=z.lr,
        seed=int(seeds[1]),
        num_threads=z.threads,
    )
    start = time.perf_counter()
    eps_grid = np.linspace(0.0, 1.0 - 1.0 / rhm.v, z.n_eps)
    held_out = rhm.sample(z.n_probe, seed=int(seeds[2])).x
    with torch_threads(z.threads):
        probe = probe_eps_grid(trained.model, rhm, held_out, eps_grid, seed=int(seeds[3]))
    probe_seconds = time.perf_counter() - start
    eps_star, eps_source = critical_eps(rhm.v, rhm.m, rhm.s, exact=z.exact_theory)
    return CNNProbeResult(
        sizes=z,
        seed=seed,
        rhm=repr(rhm),
        test_accuracy=float(trained.test_accuracy),
        train_accuracy=float(trained.train_accuracy),
        train_loss_per_epoch=[float(x) for x in trained.loss],
        probe=probe,
        eps_star=eps_star,
        eps_source=eps_source,
        seconds={"train": float(trained.seconds), "probe": probe_seconds},
    )


def plot_cnn_probe(result: CNNProbeResult) -> Figure:
    """Two panels: (a) CNN similarity per layer vs ``eps``; (b) the BP resampling itself,
    fraction of symbols kept per level, with the CNN's class agreement. Returns a matplotlib
    ``Figure``."""
    import matplotlib
    from matplotlib.figure import Figure

    probe, z, eps_star = result.probe, result.sizes, result.eps_star
    n_classes = z.n_classes
    title = (
        f"RHM v={z.v}, n_c={z.n_classes}, m={z.m}, s={z.s}, L={z.L}; tree CNN width "
        f"{z.width}, test accuracy {100 * result.test_accuracy:.2f}%"
    )
    eps = np.asarray(probe.eps)
    n_hidden = len(probe.layers) - 1
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, n_hidden))
    fig = Figure(figsize=(11, 4.2))
    ax0, ax1 = fig.subplots(1, 2, sharex=True)
    for j, name in enumerate(probe.layers):
        mean, sem = probe.similarity_mean[:, j], probe.similarity_sem[:, j]
        if j < n_hidden:
            style = {
                "color": colours[j],
                "lw": 1.6,
                "marker": "o",
                "ms": 3,
                "label": f"layer {j + 1} ({name})",
            }
        else:
            style = {
                "color": "crimson",
                "lw": 2.8,
                "marker": "s",
                "ms": 4,
                "label": f"read-out ({name}, logits)",
            }
        ax0.plot(eps, mean, **style)
        ax0.fill_between(eps, mean - sem, mean + sem, color=style["color"], alpha=0.2, lw=0)
    ax0.set_ylabel("cosine similarity of standardised activations")
    ax0.set_title("(a) CNN representations: original vs BP-resampled input")
    L = probe.level_kept.shape[1] - 1
    level_colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, max(L, 1)))
    for level in range(L + 1):
        if level == 0:
            style = {"color": "0.5", "lw": 1.2, "ls": "--", "label": "leaves (input)"}
        elif level < L:
            style = {"color": level_colours[level - 1], "lw": 1.6, "label": f"level {level}"}
        else:
            style = {"color": "crimson", "lw": 2.8, "label": f"class (level {L})"}
        ax1.plot(eps, probe.level_kept[:, level], marker="o", ms=3, **style)
    ax1.plot(
        eps,
        probe.cnn_class_agreement,
        color="black",
        lw=0,
        marker="x",
        ms=6,
        label="CNN prediction = original class",
    )
    ax1.axhline(1.0 / n_classes, color="crimson", lw=0.8, ls=":", label="chance 1/n_c")
    ax1.set_ylabel("fraction unchanged by the resampling")
    ax1.set_title("(b) BP resampling: symbols kept per level")
    for ax in (ax0, ax1):
        if eps_star is not None:
            ax.axvline(eps_star, color="k", lw=1, ls="--")
            ax.annotate(
                rf"$\epsilon^* = {eps_star:.3g}$",
                (eps_star, 0.97),
                xycoords=("data", "axes fraction"),
                xytext=(-4, 0),
                textcoords="offset points",
                rotation=90,
                ha="right",
                va="top",
                fontsize=8,
            )
        ax.axhline(0.0, color="0.8", lw=0.6)
        ax.set_xlabel(r"noise $\epsilon$ of the forward process")
        ax.set_xlim(eps[0], eps[-1])
        ax.legend(fontsize=7.5, loc="lower left", framealpha=0.85)
        ax.grid(alpha=0.25)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0)
    fig.tight_layout()
    return fig


def _ranges(eps: np.ndarray, mask: np.ndarray) -> str:
    """``mask`` over the grid as readable eps ranges, e.g. ``"0.06-0.61, 0.83"``."""
    parts, k = [], 0
    while k < len(eps):
        if not mask[k]:
            k += 1
            continue
        j = k
        while j + 1 < len(eps) and mask[j + 1]:
            j += 1
        parts.append(f"{eps[k]:.2f}" if j == k else f"{eps[k]:.2f}-{eps[j]:.2f}")
        k = j + 1
    return ", ".join(parts) if parts else "none"


def describe_cnn_probe(result: CNNProbeResult) -> str:
    """The report's Markdown, computed from the measured curves (no claim is hard-coded)."""
    cfg = dataclasses.asdict(result.sizes)
    test_acc, eps_star, eps_source = result.test_accuracy, result.eps_star, result.eps_source
    seconds = result.seconds
    probe = result.probe
    eps, sim, sem, names = probe.eps, probe.similarity_mean, probe.similarity_sem, probe.layers
    first, read = sim[:, 0], sim[:, -1]
    halves = [first_crossing(eps, sim[:, j], 0.5) for j in range(len(names))]
    half_txt = ", ".join(
        f"{name} " + (f">{eps[-1]:.2f}" if np.isnan(h) else f"{h:.2f}")
        for name, h in zip(names, halves, strict=True)
    )
    slopes = -np.diff(sim, axis=0) / np.diff(eps)[:, None]  # (n_eps - 1, n_layers)
    k_read = int(np.argmax(slopes[:, -1]))
    mid_read = 0.5 * (eps[k_read] + eps[k_read + 1])
    # "Above"/"below" only where the gap exceeds twice its standard error.
    gap_err = 2.0 * np.hypot(sem[:, 0], sem[:, -1])
    above = (read > first + gap_err) & (eps > 0)
    below = (read < first - gap_err) & (eps > 0)
    # Panel (b): class vs leaves, with binomial standard errors (n inputs, n*d leaves).
    kept, n, d = probe.level_kept, cfg["n_probe"], cfg["s"] ** cfg["L"]
    kept_err = 2.0 * np.hypot(
        np.sqrt(kept[:, -1] * (1 - kept[:, -1]) / n),
        np.sqrt(kept[:, 0] * (1 - kept[:, 0]) / (n * d)),
    )
    class_above = (kept[:, -1] > kept[:, 0] + kept_err) & (eps > 0)
    class_below = (kept[:, -1] < kept[:, 0] - kept_err) & (eps > 0)
    if class_above.any() and class_below.any():
        tree_txt = (
            f"more often at eps in {_ranges(eps, class_above)} and less often at eps in "
            f"{_ranges(eps, class_below)}"
        )
    elif class_below.any():
        tree_txt = (
            f"never significantly more often, and less often at eps in "
            f"{_ranges(eps, class_below)}: the latent tree shows no inversion here"
        )
    elif class_above.any():
        tree_txt = f"more often at eps in {_ranges(eps, class_above)}, never significantly less"
    else:
        tree_txt = "about as often at every eps"
    chance = 1.0 / cfg["n_classes"]
    i_star = int(np.argmin(np.abs(eps - eps_star))) if eps_star is not None else None
    star = (
        f"the mean-field critical noise eps* = {eps_star:.4g} ({eps_source}; dashed line)"
        if eps_star is not None
        else f"no mean-field eps* ({eps_source})"
    )
    if above.any() and below.any() and np.nonzero(above)[0][0] < np.nonzero(below)[0][-1]:
        inversion = (
            "The curves invert: the read-out lies above layer 1 at eps in "
            f"{_ranges(eps, above)} (by up to {np.max((read - first)[above]):.3f}) and "
            f"below it at eps in {_ranges(eps, below)} (by up to "
            f"{np.max((first - read)[below]):.3f}; differences beyond 2 standard errors)."
        )
    elif above.any():
        inversion = (
            "The read-out lies above layer 1 at eps in "
            f"{_ranges(eps, above)} and never significantly below it: the curves meet "
            "near the transition but do not clearly invert on this grid."
        )
    else:
        inversion = (
            "The read-out never lies significantly above layer 1"
            + (f" (below it at eps in {_ranges(eps, below)})" if below.any() else "")
            + ": no inversion is seen."
        )
    lines = [
        f"RHM v={cfg['v']}, n_c={cfg['n_classes']}, m={cfg['m']}, s={cfg['s']}, L={cfg['L']} "
        f"(d = {cfg['s'] ** cfg['L']} leaves). CNN: {cfg['L']} layers Conv1d(kernel "
        f"{cfg['s']}, stride {cfg['s']}) + ReLU, {cfg['width']} channels, linear read-out; "
        f"trained with Adam (lr {cfg['lr']}, cosine decay, batch {cfg['batch_size']}) for "
        f"{cfg['epochs']} epochs on {cfg['n_train']} samples in {seconds['train']:.0f} s. "
        f"**Test accuracy {100 * test_acc:.2f}%** on {cfg['n_test']} fresh samples.",
        "",
        f"Forward-backward: {cfg['n_probe']} held-out inputs, eps-process evidence at "
        f"{len(eps)} values of eps in [0, {eps[-1]:.4g}], exact BP posterior sampling; cosine "
        "similarity of each layer's post-activations (standardised per unit over the held-out "
        "set, hiergrammar.vision.probes) between original and resampled input "
        f"({seconds['probe']:.0f} s). "
        f"Panel (b) shows the resampling itself (fraction of symbols kept per level) and "
        f"{star}.",
        "",
        f"What the curves show: the mean similarity falls below 0.5 at eps = {half_txt}. "
        f"At eps = {eps[len(eps) // 3]:.2f}, layer 1 keeps {first[len(eps) // 3]:.3f} and the "
        f"read-out {read[len(eps) // 3]:.3f}. The read-out's steepest fall is "
        f"{slopes[k_read, -1]:.2f} per unit eps, between eps = {eps[k_read]:.2f} and "
        f"{eps[k_read + 1]:.2f}"
        + (f", centred {abs(mid_read - eps_star):.2f} from eps*" if eps_star is not None else "")
        + f"; layer 1's steepest is {slopes[:, 0].max():.2f}. {inversion} "
        f"At eps = {eps[-1]:.3g} (no information) the similarities are "
        f"{', '.join(f'{x:.3f}' for x in sim[-1])}: the resampled inputs are independent draws.",
        "",
        "In panel (b), compared with a leaf keeping its symbol, the resampled class equals the "
        f"original one {tree_txt} (beyond 2 binomial standard errors).",
        "",
        f"Class agreement with the original class (chance {chance:.3f}): BP-sampled class "
        f"{probe.class_agreement[0]:.3f} -> {probe.class_agreement[-1]:.3f}, CNN prediction "
        f"{probe.cnn_class_agreement[0]:.3f} -> {probe.cnn_class_agreement[-1]:.3f} from eps = 0 "
        f"to eps = {eps[-1]:.3g}"
        + (
            f"; at eps = {eps[i_star]:.2f}, nearest eps*: {probe.class_agreement[i_star]:.3f} "
            f"(BP), {probe.cnn_class_agreement[i_star]:.3f} (CNN)."
            if i_star is not None
            else "."
        ),
        f"L = {cfg['L']} is finite, so the class transition is a steep crossover rather than a "
        "jump; the mean-field eps* is its L -> infinity limit.",
    ]
    return "\n".join(lines)


def reproduce_step(out_dir: Path, *, seed: int = 0, sizes: CNNProbeSizes = FULL) -> ReportSection:
    """Compute, plot and describe; write ``cnn_probe.png``, ``cnn_probe.npz`` and
    ``cnn_probe.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    result = compute_cnn_probe(sizes, seed=seed)
    fig_path = save_figure(plot_cnn_probe(result), out_dir / "cnn_probe.png")
    npz_path = save_npz(
        out_dir / "cnn_probe.npz",
        **result.probe.arrays(),
        eps_star=np.array(np.nan if result.eps_star is None else result.eps_star),
    )
    json_path = save_json(out_dir / "cnn_probe.json", result.summary())
    return ReportSection(
        title="CNN probe on RHM data (paper Fig. 8)",
        text=describe_cnn_probe(result),
        figures=[fig_path],
        data=[npz_path, json_path],
    )
