"""Figure step ``learned_vs_exact``: trained masked diffusion models against exact BP.

On a small RHM, masked (absorbing) diffusion models are trained with the continuous-time ELBO
of masked diffusion language models, with two architectures -- a tree-matched U-Net and a small
bidirectional transformer (:mod:`hiergrammar.vision.grammar_diffusion.models`) -- on training
sets of several sizes ``P``. They are held against the exact denoiser (BP marginals of the
leaves), the Bayes-optimal one, run by the same sampler on the same corrupted strings:

* the per-leaf cross-entropy over masked leaves of held-out strings vs ``t``, and each model's
  gap to the exact one (:func:`~hiergrammar.vision.grammar_diffusion.measure.denoising_losses`);
* forward-backward from held-out strings: the fraction of reversed strings the grammar accepts,
  the per-level fraction unchanged on the accepted ones and the class transition time ``t*``
  (:func:`~hiergrammar.vision.grammar_diffusion.measure.forward_backward_curves`);
* generation from the all-MASK string: the fraction accepted (per level) and the fraction
  copied from the training set, vs ``P``, next to the exact generator's copy rate (the chance
  that a fresh string of the grammar is in the training set).

The models at the largest ``P`` give the loss and forward-backward curves.
:func:`compute_learned_vs_exact`, the ``plot_*`` and :func:`describe_learned_vs_exact` keep
computation, figures and report text apart; ``learned_vs_exact.json`` holds every number. Run it
alone with ``python -m hiergrammar.figures.learned_vs_exact OUT_DIR [--quick] [--seed S]``.

Why ``v = n_classes = 8, m = 2, s = 2, L = 3`` in :data:`FULL`: the models must learn the rules
in seconds on two cores, and memorisation must be visible: the language has
``8 * 2**7 = 1024`` strings, so training sets of 64 to 1024 strings run from a few per cent of
it to most of it. The price is sharpness: with ``L = 3`` the class forgets its value over a
broad crossover (exact ``P(class unchanged)`` falls from 0.95 at ``t = 0.2`` to 0.2 at
``t = 0.9``), where deeper trees (``L = 5, 7`` in the ``discrete_diffusion`` step) show a
steeper drop. Larger grammars and longer training: ``hiergrammar vision train-grammar`` (see the
README), on GPUs.

Cost of :data:`FULL` (measured): about 20 CPU-seconds of training per model (six models: two
architectures, three ``P``), run in two processes, and 5 CPU-seconds of measurements: about
75 s on two idle cores, within the 120 s budget. 1200 steps leave the transformer far from
converged (in a longer run on another draw of the rules -- width 64, 4000 steps, 2000 strings
-- its gap fell from about 0.3 to 0.15-0.18 nats per masked leaf); the U-Net is close to BP
already. :data:`QUICK`: about 7 CPU-seconds, most of it importing torch and drawing.

Needs torch, diffusers and accelerate (the ``vision`` extra); this module imports them inside
the compute function only.

Examples
--------
>>> QUICK.L, FULL.L, FULL.budget_seconds >= QUICK.budget_seconds
(2, 3, True)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.artifacts import ReportSection, progress, save_figure, save_json

__all__ = [
    "REQUIRES",
    "EXTRA",
    "MODELS",
    "COMMAND",
    "LearnedVsExactSizes",
    "FULL",
    "QUICK",
    "LearnedVsExactResult",
    "compute_learned_vs_exact",
    "plot_loss_gap",
    "plot_unchanged",
    "plot_generation",
    "describe_learned_vs_exact",
    "reproduce_step",
    "main",
]

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REQUIRES: tuple[str, ...] = ("torch",)
EXTRA: str | None = "vision"

#: The learned models, by report name -> architecture.
MODELS = {"tree_unet": "tree_unet", "transformer": "grammar_transformer"}

#: The command that runs this step alone.
COMMAND = "python -m hiergrammar.figures.learned_vs_exact OUT_DIR"


@dataclass(frozen=True)
class LearnedVsExactSizes:
    """Sizes of the ``learned_vs_exact`` step.

    Attributes
    ----------
    v, n_classes, m, s, L : int
        The RHM.
    P : tuple of int
        Training-set sizes (increasing); the largest trains the models of the loss and
        forward-backward curves.
    steps, batch_size : int
        Optimiser steps and strings per step, the same for every model.
    lr : float
        Peak learning rate (AdamW, warm-up then cosine decay).
    unet_width : int
        Channels of the tree U-Net.
    transformer_width, transformer_depth, transformer_heads : int
        The transformer.
    t : tuple of float
        Times of the loss and forward-backward curves (linear schedule ``alpha = 1 - t``).
    n_test : int
        Held-out strings of the loss.
    n_forward_backward : int
        Held-out strings per time of forward-backward.
    n_generate : int
        Strings generated per model.
    workers : int
        Training processes (1: train in this process).
    threads : int
        torch CPU threads per training process.
    budget_seconds : float
        The step's time budget on two CPU cores.
    dpi : int
        Resolution of the PNG figures.
    """

    v: int
    n_classes: int
    m: int
    s: int
    L: int
    P: tuple[int, ...]
    steps: int
    batch_size: int
    lr: float
    unet_width: int
    transformer_width: int
    transformer_depth: int
    transformer_heads: int
    t: tuple[float, ...]
    n_test: int
    n_forward_backward: int
    n_generate: int
    workers: int
    threads: int
    budget_seconds: float
    dpi: int = 150


FULL = LearnedVsExactSizes(
    v=8,
    n_classes=8,
    m=2,
    s=2,
    L=3,
    P=(64, 256, 1024),
    steps=1200,
    batch_size=128,
    lr=3e-3,
    unet_width=32,
    transformer_width=32,
    transformer_depth=2,
    transformer_heads=4,
    t=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    n_test=4000,
    n_forward_backward=1000,
    n_generate=1000,
    workers=2,
    threads=1,
    budget_seconds=150,
)

#: Tiny sizes for ``--quick``: barely trained models, every key still written.
QUICK = LearnedVsExactSizes(
    v=6,
    n_classes=4,
    m=2,
    s=2,
    L=2,
    P=(16, 32, 64),
    steps=40,
    batch_size=32,
    lr=3e-3,
    unet_width=16,
    transformer_width=16,
    transformer_depth=1,
    transformer_heads=2,
    t=(0.25, 0.5, 0.75, 1.0),
    n_test=400,
    n_forward_backward=100,
    n_generate=100,
    workers=1,
    threads=1,
    budget_seconds=10,
    dpi=72,
)


@dataclass
class LearnedVsExactResult:
    """What :func:`compute_learned_vs_exact` measured.

    Attributes
    ----------
    sizes : LearnedVsExactSizes
    seed : int
    grammar : str
        The RHM's repr.
    losses : DenoisingLosses
        Models ``"exact"``, ``"tree_unet"``, ``"transformer"`` (largest ``P``).
    forward_backward : ForwardBackwardCurves
        The same models.
    generation : dict
        ``generation[model][k]``: the ``GenerationStats``
        (:mod:`hiergrammar.vision.grammar_diffusion.measure`) of the model trained on ``P[k]``
        (``"exact"``: the exact generator against the training set of ``P[k]``).
    training : dict
        ``training[model][k]``: ``seconds`` and ``final_loss`` (mean of the last 10% of steps)
        of the model trained on ``P[k]``.
    timings : dict
        ``train_wall_seconds``, ``train_cpu_seconds`` (summed over the models),
        ``measure_seconds``, ``measure_cpu_seconds``.
    """

    sizes: LearnedVsExactSizes
    seed: int
    grammar: str
    losses: Any
    forward_backward: Any
    generation: dict[str, list[Any]]
    training: dict[str, list[dict[str, float]]]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return list(MODELS)

    def summary(self) -> dict[str, Any]:
        """Every number, JSON-able (the headline keys first: gaps, transition times)."""
        z, loss, fb = self.sizes, self.losses, self.forward_backward
        levels = [str(level) for level in range(z.L + 1)]

        def per_level(array: np.ndarray) -> dict[str, list[float]]:
            return {lv: array[:, int(lv)].tolist() for lv in levels}

        largest = len(z.P) - 1
        return {
            "t": list(loss.t),
            "loss_exact": loss.loss["exact"].tolist(),
            "loss_learned": {m: loss.loss[m].tolist() for m in self.models},
            "p_unchanged_exact": per_level(fb.unchanged["exact"]),
            "p_unchanged_learned": {m: per_level(fb.unchanged[m]) for m in self.models},
            "valid_fraction": {m: self.generation[m][largest].valid for m in self.models},
            "valid_vs_P": {m: [g.valid for g in self.generation[m]] for m in self.models},
            "P": list(z.P),
            "loss_gap": {m: loss.gap[m].tolist() for m in self.models},
            "loss_gap_se": {m: loss.gap_se[m].tolist() for m in self.models},
            "loss_se": {m: loss.loss_se[m].tolist() for m in ["exact", *self.models]},
            "masked_fraction": loss.counted_fraction.tolist(),
            "accepted_fraction": {m: fb.accepted[m].tolist() for m in ["exact", *self.models]},
            "class_changed": {m: fb.class_changed(m).tolist() for m in ["exact", *self.models]},
            "t_star": dict(fb.t_star),
            "chance": fb.chance,
            "copied_vs_P": {
                m: [g.copied for g in self.generation[m]] for m in ["exact", *self.models]
            },
            "generation": {
                m: [g.summary() for g in self.generation[m]] for m in ["exact", *self.models]
            },
            "training": self.training,
            "reverse_steps": "one leaf per step (continuous-time limit, at most d calls)",
            "grammar": self.grammar,
            "sizes": dataclasses.asdict(z),
            "seed": self.seed,
            "timings": self.timings,
            "command": COMMAND,
        }


# -- compute ---------------------------------------------------------------------------------
def _seeds(seed: int) -> dict[str, int]:
    names = ("grammar", "pool", "test", "losses", "forward_backward", "generate", "train")
    states = np.random.SeedSequence(seed).generate_state(len(names))
    return {name: int(s) for name, s in zip(names, states, strict=True)}


def _grammar(z: LearnedVsExactSizes, seeds: dict[str, int]):
    from hiergrammar.rhm import RHM

    return RHM(z.v, z.n_classes, z.m, z.s, z.L, seed=seeds["grammar"])


def _network_sizes(z: LearnedVsExactSizes, architecture: str) -> dict[str, int]:
    if architecture == "tree_unet":
        return {"width": z.unet_width}
    return {
        "width": z.transformer_width,
        "depth": z.transformer_depth,
        "heads": z.transformer_heads,
    }


def _train_job(job: tuple) -> tuple[str, int, str, list[float], float, float]:
    """Train one model (in this process or a worker); return where its checkpoint is."""
    z_dict, seed, name, k, folder = job
    from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
    from hiergrammar.vision.grammar_diffusion.models import build_network
    from hiergrammar.vision.grammar_diffusion.train import TrainingConfig, train_denoiser

    z = LearnedVsExactSizes(**{**z_dict, "P": tuple(z_dict["P"]), "t": tuple(z_dict["t"])})
    seeds = _seeds(seed)
    rhm = _grammar(z, seeds)
    x_train = rhm.sample(max(z.P), seed=seeds["pool"]).x[: z.P[k]]
    architecture = MODELS[name]
    network = build_network(
        architecture,
        v=z.v,
        s=z.s,
        L=z.L,
        input_kind="masked",
        seed=seeds["train"] + k,
        **_network_sizes(z, architecture),
    )
    config = TrainingConfig(
        steps=z.steps,
        batch_size=z.batch_size,
        lr=z.lr,
        warmup_steps=max(1, z.steps // 12),
        seed=seeds["train"] + 100 + k,
    )
    cpu = time.process_time()
    result = train_denoiser(
        network,
        MaskedDiffusion(z.v),
        x_train,
        config,
        checkpoint_dir=folder,
        num_threads=z.threads,
        show_progress=False,
    )
    cpu = time.process_time() - cpu
    return name, k, str(result.checkpoint), result.losses, result.seconds, cpu


def _run_jobs(jobs: list[tuple], workers: int) -> list[tuple]:
    if workers == 1:
        return [_train_job(job) for job in progress(jobs, desc="learned_vs_exact: training")]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Fresh interpreters ("spawn"): no torch threads or other state of the parent inherited.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_train_job, job) for job in jobs]
        done = as_completed(futures)
        return [f.result() for f in progress(done, "learned_vs_exact: training", len(jobs))]


def compute_learned_vs_exact(sizes: LearnedVsExactSizes, seed: int = 0) -> LearnedVsExactResult:
    """Train the masked models of ``sizes`` and measure them against the exact denoiser.

    Parameters
    ----------
    sizes : LearnedVsExactSizes
        :data:`FULL`, :data:`QUICK` or your own.
    seed : int
        Seed of the rules, the data, the training and every measurement.

    Returns
    -------
    LearnedVsExactResult
    """
    from hiergrammar.vision.grammar_diffusion.checkpointing import load_trained_denoiser
    from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser
    from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
    from hiergrammar.vision.grammar_diffusion.measure import (
        denoising_losses,
        forward_backward_curves,
        generation_stats,
    )
    from hiergrammar.vision.grammar_diffusion.sampler import generate
    from hiergrammar.vision.rhm_cnn import torch_threads

    z = sizes
    seeds = _seeds(seed)
    rhm = _grammar(z, seeds)
    pool = rhm.sample(max(z.P), seed=seeds["pool"]).x
    test = rhm.sample(z.n_test, seed=seeds["test"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="learned_vs_exact-") as tmp:
        jobs = [
            (dataclasses.asdict(z), seed, name, k, str(Path(tmp) / f"{name}-{k}"))
            for name in MODELS
            for k in range(len(z.P))
        ]
        trained = {
            (name, k): (path, losses, secs, cpu)
            for name, k, path, losses, secs, cpu in _run_jobs(jobs, z.workers)
        }
        denoisers = {
            key: load_trained_denoiser(Path(entry[0]).parent) for key, entry in trained.items()
        }
    train_seconds = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    family = MaskedDiffusion(z.v)
    exact = ExactDenoiser(rhm, family)
    largest = len(z.P) - 1
    main = {"exact": exact, **{name: denoisers[(name, largest)] for name in MODELS}}
    generation: dict[str, list[Any]] = {}
    with torch_threads(z.threads):
        losses = denoising_losses(main, test.x, z.t, seed=seeds["losses"])
        fb_data = rhm.sample(z.n_forward_backward, seed=seeds["forward_backward"])
        fb = forward_backward_curves(rhm, main, fb_data, z.t, seed=seeds["forward_backward"] + 1)
        exact_strings = generate(exact, z.n_generate, seed=seeds["generate"])
        generation["exact"] = [generation_stats(rhm, exact_strings, pool[:P]) for P in z.P]
        for name in MODELS:
            generation[name] = [
                generation_stats(
                    rhm,
                    generate(denoisers[(name, k)], z.n_generate, seed=seeds["generate"]),
                    pool[:P],
                )
                for k, P in enumerate(z.P)
            ]
    tail = max(1, z.steps // 10)
    training = {
        name: [
            {
                "P": P,
                "seconds": float(trained[(name, k)][2]),
                "cpu_seconds": float(trained[(name, k)][3]),
                "final_loss": float(np.mean(trained[(name, k)][1][-tail:])),
            }
            for k, P in enumerate(z.P)
        ]
        for name in MODELS
    }
    return LearnedVsExactResult(
        sizes=z,
        seed=seed,
        grammar=repr(rhm),
        losses=losses,
        forward_backward=fb,
        generation=generation,
        training=training,
        timings={
            "train_wall_seconds": train_seconds,
            "train_cpu_seconds": float(sum(entry[3] for entry in trained.values())),
            "measure_seconds": time.perf_counter() - start,
            "measure_cpu_seconds": time.process_time() - cpu_start,
        },
    )


# -- plots -----------------------------------------------------------------------------------
_STYLE = {
    "exact": {"color": "black", "ls": "-", "marker": "o", "label": "exact (BP)"},
    "tree_unet": {"color": "tab:blue", "ls": "--", "marker": "s", "label": "tree U-Net"},
    "transformer": {"color": "tab:orange", "ls": ":", "marker": "^", "label": "transformer"},
}


def plot_loss_gap(result: LearnedVsExactResult) -> Figure:
    """Two panels: (a) per-leaf cross-entropy over masked leaves vs ``t``, exact and learned;
    (b) the gap learned minus exact with two standard errors (paired). Returns a ``Figure``."""
    from matplotlib.figure import Figure

    loss = result.losses
    t = np.asarray(loss.t)
    fig = Figure(figsize=(10, 4))
    ax0, ax1 = fig.subplots(1, 2)
    for name in ["exact", *result.models]:
        style = _STYLE[name]
        ax0.errorbar(t, loss.loss[name], yerr=2 * loss.loss_se[name], ms=4, capsize=2, **style)
    ax0.set_ylabel("cross-entropy per masked leaf (nats)")
    ax0.set_title("(a) denoising loss on held-out strings")
    for name in result.models:
        ax1.errorbar(t, loss.gap[name], yerr=2 * loss.gap_se[name], ms=4, capsize=2, **_STYLE[name])
    ax1.axhline(0.0, color="black", lw=0.8)
    ax1.set_ylabel("learned - exact (nats per masked leaf)")
    ax1.set_title("(b) gap to the Bayes-optimal denoiser (±2 SE)")
    for ax in (ax0, ax1):
        ax.set_xlabel("masking time t (alpha = 1 - t)")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8)
    z = result.sizes
    fig.suptitle(f"{result.grammar}; masked diffusion, P = {z.P[-1]}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_unchanged(result: LearnedVsExactResult) -> Figure:
    """Forward-backward: (a) per-level fraction unchanged on accepted strings, exact (solid)
    and learned (dashed, dotted), leaves to class; (b) fraction accepted by the grammar.
    Returns a ``Figure``."""
    import matplotlib
    from matplotlib.figure import Figure

    fb = result.forward_backward
    t = np.asarray(fb.t)
    L = result.sizes.L
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, L + 1))
    fig = Figure(figsize=(11, 4.2))
    ax0, ax1 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    for name in ["exact", *result.models]:
        style = _STYLE[name]
        for level in range(L + 1):
            label = f"{style['label']}, level {level}" + (" (class)" if level == L else "")
            ax0.plot(
                t,
                fb.unchanged[name][:, level],
                color=colours[level],
                ls=style["ls"],
                marker=style["marker"],
                ms=3,
                lw=2.2 if level == L else 1.2,
                label=label if name == "exact" or level in (0, L) else None,
            )
    ax0.axhline(fb.chance, color="crimson", lw=0.8, ls=":", label="class chance")
    for name in ["exact", *result.models]:
        if np.isfinite(fb.t_star[name]):
            ax0.axvline(fb.t_star[name], color=_STYLE[name]["color"], lw=0.8, ls=_STYLE[name]["ls"])
    ax0.set_ylabel("fraction unchanged (accepted strings)")
    ax0.set_title("(a) forward-backward: symbols kept per level; vertical lines: t*")
    ax0.legend(fontsize=6.5, ncol=2, loc="lower left")
    for name in ["exact", *result.models]:
        ax1.plot(t, fb.accepted[name], ms=4, **_STYLE[name])
    ax1.set_ylabel("fraction accepted by the grammar")
    ax1.set_title("(b) reversed strings in the language")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(fontsize=8)
    for ax in (ax0, ax1):
        ax.set_xlabel("masking time t of the forward process")
        ax.grid(alpha=0.25)
    fig.suptitle(f"{result.grammar}; {fb.n} held-out strings per t", fontsize=9)
    fig.tight_layout()
    return fig


def plot_generation(result: LearnedVsExactResult) -> Figure:
    """Generation vs training-set size ``P``: (a) fraction accepted by the grammar; (b)
    fraction copied from the training set, with the exact generator's copy rate. Returns a
    ``Figure``."""
    from matplotlib.figure import Figure

    P = np.asarray(result.sizes.P)
    fig = Figure(figsize=(10, 4))
    ax0, ax1 = fig.subplots(1, 2)
    for name in ["exact", *result.models]:
        stats = result.generation[name]
        style = dict(_STYLE[name])
        if name == "exact":
            style["label"] = "exact generator (= fresh grammar strings)"
        ax0.plot(P, [g.valid for g in stats], ms=5, **style)
        ax1.plot(P, [g.copied for g in stats], ms=5, **style)
    ax0.set_ylabel("fraction accepted by the grammar")
    ax0.set_title("(a) validity of generated strings")
    ax0.set_ylim(-0.02, 1.02)
    ax1.set_ylabel("fraction identical to a training string")
    ax1.set_title("(b) memorisation")
    ax1.set_ylim(-0.02, 1.02)
    for ax in (ax0, ax1):
        ax.set_xscale("log")
        ax.set_xticks(P, [str(p) for p in P])
        ax.set_xlabel("training-set size P")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8)
    z = result.sizes
    fig.suptitle(
        f"{result.grammar}; {z.steps} steps of batch {z.batch_size} for every P; "
        f"{z.n_generate} strings generated per model",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


# -- report ----------------------------------------------------------------------------------
def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, spec)


def describe_learned_vs_exact(result: LearnedVsExactResult) -> str:
    """The report's Markdown, computed from the numbers (no claim is hard-coded)."""
    z, loss, fb = result.sizes, result.losses, result.forward_backward
    t = np.asarray(loss.t)
    lines = [
        f"{result.grammar}: masked (absorbing) diffusion, linear schedule "
        f"alpha = 1 - t, MDLM continuous-time ELBO. Models: tree U-Net (width "
        f"{z.unet_width}) and transformer (width {z.transformer_width}, {z.transformer_depth} "
        f"layers, {z.transformer_heads} heads), {z.steps} AdamW steps of {z.batch_size} strings "
        f"on training sets of P = {', '.join(map(str, z.P))} strings. Training took "
        + "; ".join(
            f"{name} "
            + ", ".join(f"{r['cpu_seconds']:.0f}" for r in result.training[name])
            + " CPU-seconds"
            for name in result.models
        )
        + f" ({result.timings['train_wall_seconds']:.0f} s of wall time in {z.workers} "
        f"process(es); measurements {result.timings['measure_seconds']:.0f} s, "
        f"{result.timings['measure_cpu_seconds']:.0f} CPU-seconds). Reverse process: one leaf "
        "per step (the continuous-time limit), the same sampler and the same corrupted strings "
        "for the exact and the learned denoisers.",
        "",
    ]
    # -- loss
    parts = []
    for name in result.models:
        gap, se = loss.gap[name], loss.gap_se[name]
        below = np.flatnonzero(gap + 2 * se < 0)
        worst = int(np.nanargmax(gap))
        parts.append(
            f"{name}: gap {_fmt(np.nanmin(gap))} to {_fmt(np.nanmax(gap))} nats per masked leaf "
            f"(largest at t = {t[worst]:.2f}: learned {_fmt(loss.loss[name][worst])} vs exact "
            f"{_fmt(loss.loss['exact'][worst])})"
            + (
                "; the exact loss is at most the learned one at every t within 2 paired "
                "standard errors"
                if below.size == 0
                else f"; below the exact loss beyond 2 SE at t = {t[below].round(2).tolist()}"
            )
        )
    lines.append(
        f"**Denoising loss** (held-out, {loss.n} strings per t, P = {z.P[-1]}): "
        + "; ".join(parts)
        + "."
    )
    lines.append("")
    # -- forward-backward
    star = ", ".join(f"{name} {_fmt(fb.t_star[name])}" for name in ["exact", *result.models])
    accepted = "; ".join(
        f"{name} {_fmt(np.min(fb.accepted[name]), '.2f')} (worst, at t = "
        f"{t[int(np.argmin(fb.accepted[name]))]:.2f})"
        for name in result.models
    )
    i_mid = (
        int(np.argmin(np.abs(t - fb.t_star["exact"])))
        if np.isfinite(fb.t_star["exact"])
        else len(t) // 2
    )
    levels = "; ".join(
        f"{name}: "
        + ", ".join(f"{_fmt(fb.unchanged[name][i_mid, lv], '.2f')}" for lv in range(z.L + 1))
        for name in ["exact", *result.models]
    )
    lines.append(
        f"**Forward-backward** ({fb.n} held-out strings per t): class transition time t* "
        f"(where the class of the accepted strings is unchanged half-way between 1 and chance "
        f"{fb.chance:.3f}): {star}. The exact "
        f"reverse process always lands in the language; fraction accepted for the learned "
        f"models: {accepted}. Fraction unchanged per level (leaves to class) at t = "
        f"{t[i_mid]:.2f}: {levels}."
    )
    lines.append("")
    # -- generation
    gen = []
    for name in ["exact", *result.models]:
        stats = result.generation[name]
        gen.append(
            f"{name}: valid "
            + ", ".join(_fmt(g.valid, ".2f") for g in stats)
            + "; copied "
            + ", ".join(_fmt(g.copied, ".2f") for g in stats)
        )
    per_level = "; ".join(
        f"{name} " + ", ".join(_fmt(x, ".2f") for x in result.generation[name][-1].valid_per_level)
        for name in result.models
    )
    lines.append(
        f"**Generation** ({z.n_generate} strings per model, for P = "
        f"{', '.join(map(str, z.P))}): " + "; ".join(gen) + ". The exact generator draws fresh "
        "strings of the grammar, so its copy rate is the chance that a string is in the "
        "training set; a model above it reproduces its training strings. Valid up to level "
        f"0..{z.L} at the largest P: {per_level}."
    )
    lines.append("")
    lines.append("**Learned vs exact, in short**: " + " ".join(_verdicts(result)))
    return "\n".join(lines)


def _verdicts(result: LearnedVsExactResult) -> list[str]:
    """One measured sentence per model: loss gap, t*, language, memorisation."""
    z, loss, fb = result.sizes, result.losses, result.forward_backward
    exact_copies = [g.copied for g in result.generation["exact"]]
    out = []
    for name in result.models:
        stats = result.generation[name]
        # copies beyond the exact generator's rate by more than 2 binomial standard errors
        excess = [
            P
            for P, g, base in zip(z.P, stats, exact_copies, strict=True)
            if g.copied - base
            > 2 * np.sqrt(max(base * (1 - base), 1e-12) / g.n + g.copied * (1 - g.copied) / g.n)
        ]
        shift = fb.t_star[name] - fb.t_star["exact"]
        out.append(
            f"{name}: largest loss gap {_fmt(np.nanmax(loss.gap[name]))} nats per masked leaf "
            f"(mean {_fmt(np.nanmean(loss.gap[name]))}); class transition "
            f"{'later' if shift > 0 else 'earlier'} than the exact one by {_fmt(abs(shift))}; "
            f"reversed strings outside the language up to "
            f"{_fmt(1 - np.min(fb.accepted[name]), '.2f')} of them; generated strings valid "
            f"{_fmt(stats[-1].valid, '.2f')} at P = {z.P[-1]}; "
            + (
                f"copies its training set beyond the exact rate at P = {excess}."
                if excess
                else "never copies its training set beyond the exact rate."
            )
        )
    return out


# -- the step --------------------------------------------------------------------------------
def reproduce_step(
    out_dir: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    sizes: LearnedVsExactSizes | None = None,
) -> ReportSection:
    """Compute, plot and describe; write three figures and ``learned_vs_exact.json``.

    Parameters
    ----------
    out_dir : pathlib.Path
        Output folder.
    seed : int
        Seed of everything random.
    quick : bool
        Use :data:`QUICK` instead of :data:`FULL`.
    sizes : LearnedVsExactSizes, optional
        Explicit sizes (overrides ``quick``).

    Returns
    -------
    ReportSection
    """
    out_dir = Path(out_dir)
    sizes = sizes if sizes is not None else (QUICK if quick else FULL)
    start = time.perf_counter()
    result = compute_learned_vs_exact(sizes, seed=seed)
    plots = {"loss": plot_loss_gap, "unchanged": plot_unchanged, "generation": plot_generation}
    figures = [
        save_figure(plot(result), out_dir / f"learned_vs_exact_{name}.png", dpi=sizes.dpi)
        for name, plot in plots.items()
    ]
    result.timings["step_seconds"] = time.perf_counter() - start
    data = [save_json(out_dir / "learned_vs_exact.json", result.summary())]
    text = (
        describe_learned_vs_exact(result)
        + f"\n\nStep time {result.timings['step_seconds']:.0f} s (budget "
        f"{sizes.budget_seconds:.0f} s on two cores). Alone: `{COMMAND}`."
    )
    return ReportSection(
        title="Learned diffusion models vs the exact denoiser (masked diffusion)",
        text=text,
        figures=figures,
        data=data,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m hiergrammar.figures.learned_vs_exact OUT_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    section = reproduce_step(args.out_dir, seed=args.seed, quick=args.quick)
    print(section.to_markdown(args.out_dir.resolve()))


if __name__ == "__main__":
    main()
