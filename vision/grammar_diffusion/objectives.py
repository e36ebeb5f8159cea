"""Training objectives of the three diffusion families, and the denoising cross-entropy.

Every learned denoiser outputs per-leaf logits over the ``v`` clean symbols, a factorised model
``p_theta(x_0 | x_t) = prod_i p_theta(x_0,i | x_t)``. The objectives:

* **Masked (absorbing) diffusion**: the continuous-time negative ELBO of masked diffusion
  language models (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024), :func:`masked_elbo_loss`::

      L = E_t [ w(t) sum_{i masked in x_t} -log p_theta(x_0,i | x_t) ],
      w(t) = -alpha'(t) / (1 - alpha(t))

  (``w = 1/t`` for the linear schedule ``alpha = 1 - t``). Kept leaves carry no loss: the
  denoiser copies them (carry-over unmasking). We report it per leaf (divided by ``d``).
* **Uniform discrete diffusion** and **Gaussian diffusion of one-hot leaves**: the simplified
  ``x_0``-prediction cross-entropy, :func:`x0_cross_entropy_loss`::

      L = E_t E_{x_t} [ (1/d) sum_i -log p_theta(x_0,i | x_t) ]

  with ``t`` uniform over the process's times. Why this one rather than the D3PM ELBO (or, for
  the Gaussian case, the noise-prediction MSE): for every ``t`` it is a proper scoring rule whose
  minimiser over all functions of ``x_t`` is the exact per-leaf posterior ``P(x_0,i | x_t)`` --
  precisely what the exact denoiser of
  :class:`~hiergrammar.vision.grammar_diffusion.denoisers.ExactDenoiser` computes and what the
  reverse samplers consume. The D3PM ELBO weighs the times differently (its per-``t`` terms have
  the same minimiser, so an unconstrained model reaches the same optimum) and adds variance; the
  Gaussian noise-prediction MSE is minimised by the posterior *mean* of the one-hot vector, which
  is the softmax of these logits. Its value at a given ``t`` is directly the denoising loss we
  compare with the exact one (Austin et al. 2021 use this term as an auxiliary loss;
  Dieleman et al. 2022 train continuous diffusion of categorical data with it alone).

:func:`denoising_cross_entropy` is the measurement of section 3: per-sample mean of
``-log p(x_0,i | x_t)`` over the leaves that count (the masked ones for the masking process).

Examples
--------
>>> import torch
>>> logits = torch.zeros(2, 4, 3)                      # uniform predictions, v = 3
>>> x0 = torch.zeros(2, 4, dtype=torch.long)
>>> round(float(x0_cross_entropy_loss(logits, x0)), 4)  # log 3
1.0986
"""

from __future__ import annotations

import numpy as np
import torch

from hiergrammar.schedules import (
    CosineSchedule,
    LinearSchedule,
    LogLinearSchedule,
    Schedule,
    UnitIntervalSchedule,
)
from hiergrammar.validation import InputError

__all__ = [
    "alpha_derivative",
    "denoising_cross_entropy",
    "masked_elbo_loss",
    "masked_elbo_weight",
    "x0_cross_entropy_loss",
]


def alpha_derivative(schedule: Schedule, t: np.ndarray) -> np.ndarray:
    """``d alpha / dt`` of a unit-interval schedule at times ``t``.

    Closed forms for the linear, log-linear and cosine schedules; a central finite difference
    (step ``1e-5``, one-sided at the ends) for any other :class:`UnitIntervalSchedule`.

    Parameters
    ----------
    schedule : Schedule
        A unit-interval schedule (the masking process's).
    t : numpy.ndarray
        Times in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        ``alpha'(t)``, shaped like ``t`` (non-positive).

    Raises
    ------
    InputError
        For a schedule that is not on ``[0, 1]`` (a discrete chain has no derivative).

    Examples
    --------
    >>> alpha_derivative(LinearSchedule(), np.array([0.2, 0.9])).tolist()
    [-1.0, -1.0]
    >>> round(float(alpha_derivative(CosineSchedule(), np.array([0.0]))[0]), 6)   # -pi/2
    -1.570796
    """
    if not isinstance(schedule, UnitIntervalSchedule):
        raise InputError(
            f"the masked diffusion objective needs a continuous schedule on [0, 1], got "
            f"{schedule.name!r} (choose 'linear', 'cosine' or 'loglinear')"
        )
    t = schedule.check_t(t)
    if isinstance(schedule, LinearSchedule):
        return -np.ones_like(t)
    if isinstance(schedule, LogLinearSchedule):
        return np.full_like(t, -(1.0 - schedule.eps))
    if isinstance(schedule, CosineSchedule):
        return -0.5 * np.pi * np.cos(0.5 * np.pi * t)
    h = 1e-5
    lo, hi = np.clip(t - h, 0.0, 1.0), np.clip(t + h, 0.0, 1.0)
    return (np.asarray(schedule.alpha(hi)) - np.asarray(schedule.alpha(lo))) / (hi - lo)


def masked_elbo_weight(schedule: Schedule, t: np.ndarray) -> np.ndarray:
    """The ELBO weight ``w(t) = -alpha'(t) / (1 - alpha(t))`` of masked diffusion.

    Parameters
    ----------
    schedule : Schedule
        The masking process's unit-interval schedule.
    t : numpy.ndarray
        Times in ``(0, 1]`` (``w`` diverges at ``t = 0``, where nothing is masked).

    Returns
    -------
    numpy.ndarray
        ``w(t) >= 0``, shaped like ``t``.

    Raises
    ------
    InputError
        For ``t = 0`` or a schedule that is not on ``[0, 1]``.

    Examples
    --------
    >>> masked_elbo_weight(LinearSchedule(), np.array([0.5, 1.0])).tolist()   # 1 / t
    [2.0, 1.0]
    """
    t = np.asarray(t, dtype=np.float64)
    slope = alpha_derivative(schedule, t)
    masked = 1.0 - np.asarray(schedule.alpha(t), dtype=np.float64)
    if np.any(masked <= 0):
        raise InputError("t must be > 0 for the masked ELBO weight (alpha(t) < 1)")
    return -slope / masked


def _check_logits(logits: torch.Tensor, x0: torch.Tensor) -> None:
    if logits.dim() != 3 or x0.shape != logits.shape[:2]:
        raise InputError(
            f"logits (n, d, v) and x0 (n, d) do not match: {tuple(logits.shape)} and "
            f"{tuple(x0.shape)}"
        )


def _leaf_nll(logits: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """``-log softmax(logits)[x0]`` per leaf, ``(n, d)``."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -log_p.gather(-1, x0.long()[..., None])[..., 0]


def masked_elbo_loss(
    logits: torch.Tensor, x0: torch.Tensor, masked: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """The continuous-time masked diffusion loss of a batch, per leaf.

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, d, v)`` predictions ``p_theta(x_0 | x_t)``.
    x0 : torch.Tensor
        ``(n, d)`` clean symbols.
    masked : torch.Tensor
        ``(n, d)`` bool, the masked leaves of ``x_t``.
    weight : torch.Tensor
        ``(n,)`` ELBO weights ``w(t)`` (:func:`masked_elbo_weight`).

    Returns
    -------
    torch.Tensor
        The scalar ``mean_n [ w(t) sum_{i masked} -log p(x_0,i | x_t) ] / d``.

    Raises
    ------
    InputError
        For mismatched shapes.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 4)
    >>> loss = masked_elbo_loss(logits, torch.tensor([[1, 2]]), torch.tensor([[True, False]]),
    ...                         torch.tensor([2.0]))
    >>> round(float(loss), 4)        # 2 * log 4 / 2
    1.3863
    """
    _check_logits(logits, x0)
    nll = _leaf_nll(logits, x0) * masked.to(logits.device)
    per_sample = nll.sum(dim=1) * weight.to(nll.device, nll.dtype)
    return per_sample.mean() / x0.shape[1]


def x0_cross_entropy_loss(logits: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Mean per-leaf cross-entropy ``-log p_theta(x_0,i | x_t)`` of a batch.

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, d, v)``.
    x0 : torch.Tensor
        ``(n, d)`` clean symbols.

    Returns
    -------
    torch.Tensor
        Scalar.

    Raises
    ------
    InputError
        For mismatched shapes.

    Examples
    --------
    >>> round(float(x0_cross_entropy_loss(torch.zeros(1, 1, 2), torch.tensor([[0]]))), 4)
    0.6931
    """
    _check_logits(logits, x0)
    return _leaf_nll(logits, x0).mean()


def denoising_cross_entropy(
    logits: torch.Tensor, x0: torch.Tensor, counted: torch.Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample sums of ``-log p(x_0,i | x_t)`` over the counted leaves, and their counts.

    The exact posterior never gives the true symbol probability 0, so the exact denoiser's
    values are finite; a learned model's are finite as long as its logits are.

    Parameters
    ----------
    logits : torch.Tensor
        ``(n, d, v)``; entries may be ``-inf`` (the exact posterior's impossible symbols).
    x0 : torch.Tensor
        ``(n, d)`` true clean symbols.
    counted : torch.Tensor, optional
        ``(n, d)`` bool, the leaves that count (the masked ones for the masking process);
        default all.

    Returns
    -------
    tuple of numpy.ndarray
        ``(nll_sum, count)``, each ``(n,)`` float64: the mean over all counted leaves of a set
        is ``nll_sum.sum() / count.sum()``.

    Raises
    ------
    InputError
        For mismatched shapes.

    Examples
    --------
    >>> s, c = denoising_cross_entropy(torch.zeros(1, 2, 2), torch.tensor([[0, 1]]),
    ...                                torch.tensor([[True, False]]))
    >>> s.round(4).tolist(), c.tolist()
    ([0.6931], [1.0])
    """
    _check_logits(logits, x0)
    log_p = torch.log_softmax(logits.double(), dim=-1)
    nll = -log_p.gather(-1, x0.long().to(log_p.device)[..., None])[..., 0]
    if counted is None:
        counted = torch.ones_like(nll, dtype=torch.bool)
    counted = counted.to(nll.device)
    nll = torch.where(counted, nll, torch.zeros_like(nll))
    return nll.sum(dim=1).cpu().numpy(), counted.sum(dim=1).double().cpu().numpy()
