"""The phase transition of class reconstruction: P(correct symbol) per level vs noise.

The measurement behind the paper's Figs. 5 and 7 (exact BP side; the figure step is
:mod:`hiergrammar.figures.phase_transition`). Noise held-out data of an RHM with the
epsilon-process or with the diffusion of one-hot inputs, run exact BP, and measure per level the
probability that the BP marginal's most likely symbol is the true one ("P(correct symbol)"),
averaged over nodes, samples and independent rule draws. As ``L`` grows the class curve
sharpens into a step at the mean-field threshold ``eps*``, while low levels degrade smoothly.

Examples
--------
>>> curves = accuracy_vs_noise(v=8, n_classes=8, m=2, s=2, L=3, noise="eps",
...                            levels=[0.1, 0.8], n=50, n_rules=1, seed=0)
>>> curves.accuracy.shape          # (noise values, L + 1 levels)
(2, 4)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from hiergrammar.experiments.beliefs import BPProfile, bp_profile, bp_profile_diffusion
from hiergrammar.noise import continuous_alpha_bar
from hiergrammar.validation import check_choice

__all__ = ["accuracy_vs_noise"]

Noise = Literal["eps", "diffusion"]


def accuracy_vs_noise(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    noise: Noise,
    levels: np.ndarray,
    n: int = 200,
    n_rules: int = 3,
    seed: int = 0,
) -> BPProfile:
    """P(correct symbol) per level of exact BP, for each noise level.

    Float32 BP: its ~1e-6 error is far below the sampling noise.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM (see :class:`hiergrammar.rhm.RHM`); ``n_rules`` of them are drawn.
    noise : {"eps", "diffusion"}
        ``"eps"``: ``levels`` are epsilon values of the epsilon-process; ``"diffusion"``:
        continuous diffusion times ``t`` (``abar = exp(-2t)``) of one-hot inputs.
    levels : array_like, shape ``(k,)``
        The noise values.
    n : int
        Samples per rule draw.
    n_rules : int
        Independent rule draws.
    seed : int
        Seed of the rules, the samples and the noise.

    Returns
    -------
    BPProfile
        ``accuracy`` and ``accuracy_se`` of shape ``(k, L + 1)``, and the beliefs ``u``,
        ``d``, ``p`` (see :class:`~hiergrammar.experiments.beliefs.BPProfile`).

    Raises
    ------
    InputError
        If ``noise`` is not one of the two processes, or a size or seed is out of bounds.
    """
    check_choice("noise", noise, ("eps", "diffusion"))
    levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    kwargs = dict(n_samples=n * n_rules, n_rules=n_rules, seed=seed, dtype=np.float32)
    if noise == "eps":
        return bp_profile(v, n_classes, m, s, L, levels, **kwargs)
    return bp_profile_diffusion(v, n_classes, m, s, L, continuous_alpha_bar(levels), **kwargs)
