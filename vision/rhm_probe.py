"""The measurements of the paper's Fig. 8: a tree-matched CNN's representations under BP
resampling.

Protocol (paper section 5, "Experiment on CNN's activations"; docs/model.md):

1. Train a :class:`~hiergrammar.vision.rhm_cnn.TreeCNN` on RHM samples (``L`` layers,
   kernel = stride = ``s``) to high test accuracy.
2. Take held-out inputs ``x``. For each noise level ``eps`` of the epsilon-process, give BP the
   leaf evidence :func:`hiergrammar.noise.eps_evidence` and draw new inputs from the exact
   posterior with :func:`hiergrammar.sampling.posterior_sample` (forward-backward resampling,
   :func:`eps_resample`).
3. Probe the CNN with :func:`hiergrammar.vision.probes.probe_similarity`: each layer's
   post-activations (``relu1 .. reluL``) and the logits (``readout``) are standardised per unit
   over the held-out set and compared between original and resampled input by cosine
   similarity. The class is compared too: the CNN's prediction on the resampled input and the
   resampled tree's root against the original class (:func:`probe_rhm`,
   :func:`probe_eps_grid`).

Expected (paper Figs. 7-8): low layers decay smoothly with ``eps``; the read-out drops sharply
near the mean-field critical noise ``eps*`` (:func:`critical_eps`, from
:mod:`hiergrammar.theory`); around it the curves invert, the low layers keeping more of their
similarity than the read-out. The figure step (training sizes, plot, report text) is
:mod:`hiergrammar.figures.cnn_probe`.

:func:`probe_rhm` takes the generated inputs as plain symbol strings ``(n, d)``, so the same
probe serves any generator: BP resampling here, or a diffusion model trained on RHM images
(decode its ``(n, v, H, W)`` output with :func:`hiergrammar.vision.rhm_cnn.decode` first).

Examples
--------
>>> from hiergrammar import RHM
>>> from hiergrammar.vision.rhm_cnn import TreeCNN
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> model = TreeCNN(8, 4, 2, 3, width=16, seed=0)
>>> start = rhm.sample(64, seed=1).x
>>> res = probe_eps_grid(model, rhm, start, eps_grid=[0.0, 0.5], seed=0)
>>> res.similarity_mean.shape         # (n_eps, n_layers): relu1..relu3, readout
(2, 4)
>>> bool(abs(res.similarity_mean[0] - 1).max() < 1e-9)   # eps = 0 resamples the input itself
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hiergrammar.theory.meanfield import critical_eps as meanfield_critical_eps
from hiergrammar.vision.probes import probe_similarity
from hiergrammar.vision.rhm_cnn import encode

from hiergrammar.artifacts import progress
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM, RHMSample
from hiergrammar.sampling import posterior_sample

__all__ = ["eps_resample", "critical_eps", "RHMProbe", "probe_rhm", "probe_eps_grid"]

# --------------------------------------------------------------------------------------------
# Forward-backward resampling


def eps_resample(rhm: RHM, x: np.ndarray, eps: float, seed: int | None = 0) -> RHMSample:
    """Forward-backward resampling of ``x`` ``(n, s**L)`` at noise ``eps`` of the epsilon-process.

    The leaf evidence keeps ``1 - eps`` on each observed symbol (eqs. 9-10) and BP draws new
    trees exactly from ``P(tree | evidence)``. ``eps = 0`` returns the inputs' own trees;
    ``eps = 1 - 1/v`` draws fresh, independent samples of the RHM.

    >>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    >>> x = rhm.sample(5, seed=1).x
    >>> bool((eps_resample(rhm, x, 0.0, seed=2).x == x).all())
    True
    """
    eps = float(eps)
    if not 0.0 <= eps <= 1.0 - 1.0 / rhm.v:
        raise ValueError(f"eps={eps} violates 0 <= eps <= 1 - 1/v = {1 - 1 / rhm.v:.6g}")
    return posterior_sample(rhm, eps_evidence(x, eps, rhm.v), seed=seed)


def critical_eps(v: int, m: int, s: int, *, exact: bool = True) -> tuple[float | None, str]:
    """The mean-field critical noise ``eps*`` of the class transition and where it came from.

    ``exact=True`` uses :func:`hiergrammar.theory.symbolic.critical_point` (sympy; a few seconds),
    ``exact=False`` the numeric :func:`hiergrammar.theory.meanfield.critical_eps`. Returns
    ``(None, reason)`` when there is no transition (``eps*`` at an end point).

    >>> critical_eps(16, 4, 2, exact=False)[0]
    0.75
    """
    if exact:
        from hiergrammar.theory.symbolic import critical_point  # sympy: only when asked for

        point = critical_point(v, m, s)
        if not point.transition:
            return None, f"hiergrammar.theory.symbolic: no transition ({point.regime})"
        return (
            point.eps_star_float,
            f"hiergrammar.theory.symbolic.critical_point: eps* = {point.eps_star}",
        )
    value = float(meanfield_critical_eps(v, m, s))
    if not 0.0 < value < 1.0 - 1.0 / v:
        return None, "hiergrammar.theory.meanfield: no transition"
    return value, "hiergrammar.theory.meanfield.critical_eps"


# --------------------------------------------------------------------------------------------
# The probe


@dataclass
class RHMProbe:
    """CNN similarity and class/latent agreement between start inputs and generated sets.

    Shapes: ``n_sets`` generated sets (e.g. one per ``eps``), ``n_layers`` probed layers,
    ``L + 1`` levels.

    ``similarity_mean``, ``similarity_sem``: ``(n_sets, n_layers)`` mean and standard error over
    inputs of the cosine similarity of standardised activations
    (:mod:`hiergrammar.vision.probes`).
    ``cnn_class_agreement``: ``(n_sets,)`` fraction of generated inputs the CNN assigns to the
    start input's true class. ``cnn_top1_agreement``: CNN prediction on generated == on start.
    ``class_agreement``: the generated input's own class (its parse by the grammar) == the
    start's class. ``level_kept``: ``(n_sets, L + 1)`` fraction of level-``l`` symbols of the
    generated tree equal to the start's (``l = 0``: leaves, ``l = L``: class).
    ``valid_fraction``: ``(n_sets,)`` fraction of generated strings the grammar can produce
    (1 for BP samples; invalid strings count as changed at the levels where parsing fails).
    """

    layers: list[str]
    similarity_mean: np.ndarray
    similarity_sem: np.ndarray
    cnn_class_agreement: np.ndarray
    cnn_top1_agreement: np.ndarray
    class_agreement: np.ndarray
    level_kept: np.ndarray
    valid_fraction: np.ndarray
    n_dropped: dict[str, int]
    n_units: dict[str, int]
    eps: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric fields as named arrays (for :func:`hiergrammar.artifacts.save_npz`)."""
        out = {
            name: np.asarray(getattr(self, name))
            for name in (
                "similarity_mean",
                "similarity_sem",
                "cnn_class_agreement",
                "cnn_top1_agreement",
                "class_agreement",
                "level_kept",
                "valid_fraction",
            )
        }
        out["layers"] = np.array(self.layers)
        if self.eps is not None:
            out["eps"] = np.asarray(self.eps)
        return out


def probe_rhm(
    model: torch.nn.Module,
    rhm: RHM,
    start_x: np.ndarray,
    generated_x: Sequence[np.ndarray],
    *,
    layers: Sequence[str] | None = None,
    to_input: Callable[[np.ndarray], torch.Tensor] | None = None,
    batch_size: int = 1000,
) -> RHMProbe:
    """Compare a classifier's representations of RHM start inputs and generated inputs.

    Parameters
    ----------
    model : a classifier returning ``(n, n_classes)`` logits.
    rhm : the grammar (to parse every string into its tree and class).
    start_x : ``(n, s**L)`` valid start strings; their per-unit statistics standardise the
        activations, as in the paper's ImageNet protocol.
    generated_x : list of ``(n, s**L)`` strings, paired row by row with ``start_x``.
    layers : module names to hook; default ``model.probe_layers``.
    to_input : strings -> model input; default :func:`~hiergrammar.vision.rhm_cnn.encode`
        (``(n, v, d)`` in ``{-1, 1}``). For a model on 2-D RHM images pass
        ``lambda x: encode(x, v, layout="2d", s=s)``.
    """
    start_x = np.asarray(start_x)
    if layers is None:
        layers = getattr(model, "probe_layers", None)
        if layers is None:
            raise ValueError("layers is None and the model has no probe_layers attribute")
    if to_input is None:

        def to_input(x: np.ndarray) -> torch.Tensor:
            return encode(x, rhm.v)

    start_tree = rhm.parse(start_x)
    if not start_tree.valid.all():
        raise ValueError(
            f"{int((~start_tree.valid).sum())} start strings are not produced by "
            "the grammar; the probe needs valid start inputs"
        )
    model.eval()
    result = probe_similarity(
        model,
        to_input(start_x),
        [to_input(g) for g in generated_x],
        list(layers),
        batch_size=batch_size,
        desc="probe CNN",
    )
    y = start_tree.y
    n_sets = len(generated_x)
    kept = np.zeros((n_sets, rhm.L + 1))
    valid = np.zeros(n_sets)
    for k, gen in enumerate(generated_x):
        tree = rhm.parse(np.asarray(gen))
        valid[k] = tree.valid.mean()
        for level in range(rhm.L + 1):
            kept[k, level] = (tree.levels[level] == start_tree.levels[level]).mean()
    return RHMProbe(
        layers=list(layers),
        similarity_mean=result.similarity_mean(),
        similarity_sem=result.similarity_sem(),
        cnn_class_agreement=(result.top1_generated == y[None, :]).mean(axis=1),
        cnn_top1_agreement=result.top1_agreement,
        class_agreement=kept[:, rhm.L].copy(),
        level_kept=kept,
        valid_fraction=valid,
        n_dropped=dict(result.n_dropped),
        n_units=dict(result.n_units),
    )


def probe_eps_grid(
    model: torch.nn.Module,
    rhm: RHM,
    start_x: np.ndarray,
    eps_grid: Sequence[float],
    *,
    seed: int = 0,
    **kwargs: Any,
) -> RHMProbe:
    """Resample ``start_x`` at every ``eps`` (:func:`eps_resample`) and :func:`probe_rhm` them.

    Each ``eps`` gets its own seed from ``seed``. Returns an :class:`RHMProbe` whose sets are
    the ``eps`` values (``result.eps``).
    """
    eps_grid = np.asarray(eps_grid, dtype=np.float64)
    if eps_grid.ndim != 1 or eps_grid.size == 0:
        raise ValueError("eps_grid must be a non-empty 1-D sequence")
    seeds = np.random.SeedSequence(seed).generate_state(len(eps_grid))
    generated = [
        eps_resample(rhm, start_x, eps, seed=int(k)).x
        for eps, k in progress(
            zip(eps_grid, seeds, strict=True), desc="BP resampling", total=len(eps_grid)
        )
    ]
    result = probe_rhm(model, rhm, start_x, generated, **kwargs)
    result.eps = eps_grid
    return result
