"""One reverse process for every denoiser: learned and exact models run the very same steps.

:func:`reverse_process` starts from an observation ``x_t`` at time ``t`` and returns clean
strings; :func:`generate` starts from the pure-noise observation. The family of the denoiser
chooses the steps; every random draw comes from one seeded numpy generator (the Gaussian
family's DDPM noise from a torch generator seeded by it), so the same seed gives the same
strings and two denoisers differ only through their logits.

* **Masked** (absorbing). With ``steps=None`` (the default) the reverse process runs in
  continuous time, one leaf per step: each masked leaf ``i`` is revealed at its own time
  ``tau_i``, drawn from the reverse process's law ``P(tau_i <= s) = (alpha(s) - alpha(t)) /
  (1 - alpha(t))``, leaves are revealed from the latest ``tau`` to the earliest, and each is
  drawn from ``p(x_0,i | x_{tau_i})`` given the leaves revealed before. This is the limit of
  infinitely many small ancestral steps, reached with one denoiser call per masked leaf (at most
  ``d`` calls). With the exact denoiser it is the chain rule of ``P(x_0 | x_t)``, so it samples
  the exact reverse process (a test compares it with
  :func:`hiergrammar.sampling.posterior_sample`). With ``steps=N`` it is MDLM's ancestral
  sampler on the grid ``t_k = t (1 - k/N)``: a masked leaf is revealed between ``t_k`` and
  ``t_{k+1}`` with probability ``(alpha(t_{k+1}) - alpha(t_k)) / (1 - alpha(t_k))``, its value
  drawn from ``p(x_0,i | x_{t_k})``; leaves revealed in the same step are drawn independently,
  which is exact only when no two share a step (as ``N`` grows).
* **Uniform**. Ancestral steps on the grid ``t_k = t (1 - k/N)`` (default ``N = 100``): each
  leaf moves independently with ``p(x_s,i | x_t) = sum_b q(x_s,i | x_t,i, x_0,i = b)
  p(x_0,i = b | x_t)``, where ``q`` is the uniform process's exact two-time posterior. The last
  step (to ``s = 0``) draws ``x_0,i`` from the denoiser. Exact for the exact denoiser as
  ``N -> infinity``; the true reverse kernel of a finite step couples the leaves.
* **Gaussian**. DDPM ancestral steps with diffusers' ``DDPMScheduler`` (``x_0``-prediction):
  the predicted ``x_0`` is the denoiser's posterior mean of the one-hot leaf,
  ``softmax(logits)``, the scheduler draws ``x_{s}`` from the Gaussian ``q(x_s | x_t, x_0)``
  with that mean plugged in, on ``N`` chain steps from ``t`` down (default every step); the last
  step draws ``x_0,i`` from the denoiser. With the exact denoiser the mean of each step is the
  exact reverse mean, and the process is exact in the small-step limit.

Examples
--------
>>> import numpy as np
>>> from hiergrammar import RHM
>>> from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
>>> from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> exact = ExactDenoiser(rhm, MaskedDiffusion(v=8))
>>> new = generate(exact, 200, seed=1)                  # from the all-MASK string
>>> bool(rhm.parse(new).valid.all())                    # every draw is in the language
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hiergrammar.vision.grammar_diffusion.denoisers import Denoiser
from hiergrammar.vision.grammar_diffusion.diffusions import (
    GaussianDiffusion,
    MaskedDiffusion,
    UniformDiffusion,
)

from hiergrammar.schedules import (
    CosineSchedule,
    LinearSchedule,
    LogLinearSchedule,
    Schedule,
)
from hiergrammar.validation import InputError, check_int, make_rng

__all__ = ["DEFAULT_UNIFORM_STEPS", "generate", "inverse_alpha", "reverse_process"]

#: Steps of the uniform family's reverse process when none are given.
DEFAULT_UNIFORM_STEPS = 100


def inverse_alpha(schedule: Schedule, a: np.ndarray) -> np.ndarray:
    """The time ``t`` with ``alpha(t) = a`` of a decreasing unit-interval schedule.

    Closed forms for the linear, log-linear and cosine schedules; bisection (60 halvings) for
    any other.

    Parameters
    ----------
    schedule : Schedule
        A unit-interval schedule.
    a : numpy.ndarray
        Values in ``[alpha(1), 1]``.

    Returns
    -------
    numpy.ndarray
        Times in ``[0, 1]``, shaped like ``a``.

    Examples
    --------
    >>> inverse_alpha(LinearSchedule(), np.array([1.0, 0.25])).tolist()
    [0.0, 0.75]
    >>> t = inverse_alpha(CosineSchedule(), np.array([0.3]))
    >>> round(float(CosineSchedule().alpha(t)[0]), 9)
    0.3
    """
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0)
    if isinstance(schedule, LinearSchedule):
        return 1.0 - a
    if isinstance(schedule, LogLinearSchedule):
        return np.clip((1.0 - a) / (1.0 - schedule.eps), 0.0, 1.0)
    if isinstance(schedule, CosineSchedule):
        return np.arcsin(1.0 - a) * 2.0 / np.pi
    lo, hi = np.zeros_like(a), np.ones_like(a)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = np.asarray(schedule.alpha(mid)) > a  # alpha decreases: the root is later
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi)


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


def _draw(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``p`` ``(..., v)`` (rows sum to 1)."""
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(p.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((cdf <= u).sum(axis=-1), p.shape[-1] - 1)


def _masked_continuous(
    denoiser: Denoiser, x: np.ndarray, t: float, rng: np.random.Generator
) -> np.ndarray:
    fam = denoiser.diffusion
    mask = fam.mask
    masked = x == mask
    n, d = x.shape
    alpha_t = float(fam.process.alpha(t))
    reveal_alpha = alpha_t + rng.random((n, d)) * (1.0 - alpha_t)
    reveal_t = inverse_alpha(fam.process.schedule, reveal_alpha)
    order = np.argsort(np.where(masked, -reveal_t, np.inf), axis=1, kind="stable")
    counts = masked.sum(axis=1)
    x = x.copy()
    for j in range(int(counts.max()) if n else 0):
        rows = np.flatnonzero(counts > j)
        pos = order[rows, j]
        logits = denoiser(_input(denoiser, x[rows]), torch.as_tensor(reveal_t[rows, pos]))
        p = _probabilities(logits[torch.arange(len(rows)), torch.as_tensor(pos)])
        x[rows, pos] = _draw(p, rng)
    return x


def _masked_grid(
    denoiser: Denoiser, x: np.ndarray, t: float, steps: int, rng: np.random.Generator
) -> np.ndarray:
    fam = denoiser.diffusion
    grid = t * (1.0 - np.arange(steps + 1) / steps)
    alphas = np.asarray(fam.process.alpha(grid), dtype=np.float64)
    x = x.copy()
    for k in range(steps):
        masked = x == fam.mask
        if not masked.any():
            break
        if alphas[k] >= 1.0:
            continue
        reveal = (alphas[k + 1] - alphas[k]) / (1.0 - alphas[k])
        revealed = masked & (rng.random(x.shape) < reveal)
        rows = np.flatnonzero(revealed.any(axis=1))
        if rows.size == 0:
            continue
        logits = denoiser(_input(denoiser, x[rows]), torch.full((rows.size,), grid[k]))
        draws = _draw(_probabilities(logits), rng)  # (r, d)
        sub = revealed[rows]
        x[rows] = np.where(sub, draws, x[rows])
    return x


def _uniform_grid(
    denoiser: Denoiser, x: np.ndarray, t: float, steps: int, rng: np.random.Generator
) -> np.ndarray:
    fam = denoiser.diffusion
    v = fam.v
    grid = t * (1.0 - np.arange(steps + 1) / steps)
    alphas = np.asarray(fam.process.alpha(grid), dtype=np.float64)
    x = x.copy()
    n = x.shape[0]
    for k in range(steps):
        pi = _probabilities(denoiser(_input(denoiser, x), torch.full((n,), grid[k])))
        if k == steps - 1 or alphas[k + 1] >= 1.0:
            return _draw(pi, rng)
        a_t, a_s = alphas[k], alphas[k + 1]
        a_ts = a_t / a_s  # alpha_{t|s}: x_t keeps x_s with this weight, else resamples
        current = np.zeros_like(pi)
        np.put_along_axis(current, x[..., None], 1.0, axis=-1)
        # q(x_t = k | x_0 = b) = a_t [b = k] + (1 - a_t)/v; w_b = p(b | x_t) / q(x_t | b)
        w = pi / (a_t * current + (1.0 - a_t) / v)
        forward = a_ts * current + (1.0 - a_ts) / v  # q(x_t | x_s = j), over j
        p = forward * (a_s * w + (1.0 - a_s) / v * w.sum(axis=-1, keepdims=True))
        x = _draw(p / p.sum(axis=-1, keepdims=True), rng)
    return x


def _gaussian_chain(
    denoiser: Denoiser, x: np.ndarray, t: float, steps: int, rng: np.random.Generator
) -> np.ndarray:
    fam = denoiser.diffusion
    start = int(round(t)) - 1  # the scheduler's index of process step t
    indices = np.unique(np.round(np.linspace(start, 0, steps)).astype(np.int64))[::-1]
    scheduler = fam.scheduler()
    scheduler.set_timesteps(timesteps=[int(k) for k in indices])
    generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
    sample = torch.as_tensor(x, dtype=torch.float32)
    n = sample.shape[0]
    for i, k in enumerate(indices):
        logits = denoiser(sample.to(denoiser.device), torch.full((n,), float(k + 1))).cpu()
        if i == len(indices) - 1:
            return _draw(_probabilities(logits), rng)
        x0_mean = torch.softmax(logits.double(), dim=-1).float()
        sample = scheduler.step(x0_mean, int(k), sample, generator=generator).prev_sample
    raise AssertionError("unreachable: the chain ends at index 0")


def _input(denoiser: Denoiser, observation: np.ndarray) -> torch.Tensor:
    return denoiser.diffusion.network_input(observation, device=denoiser.device)


def reverse_process(
    denoiser: Denoiser,
    observation: Any,
    t: float,
    *,
    steps: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Run the reverse process of ``denoiser``'s family from ``x_t`` at time ``t`` to ``x_0``.

    Parameters
    ----------
    denoiser : Denoiser
        A :class:`~hiergrammar.vision.grammar_diffusion.denoisers.LearnedDenoiser` or
        :class:`~hiergrammar.vision.grammar_diffusion.denoisers.ExactDenoiser`.
    observation : numpy.ndarray
        ``x_t``: ``(n, d)`` ints (MASK ``= v`` for the masking family) or ``(n, d, v)`` floats
        (Gaussian family), e.g. from ``denoiser.diffusion.corrupt``.
    t : float
        Its time (a chain step ``1..T`` for the Gaussian family).
    steps : int, optional
        Reverse steps (see the module docstring): masked, None = one leaf per step (exact limit)
        or a grid of ``steps``; uniform, default :data:`DEFAULT_UNIFORM_STEPS`; Gaussian,
        default (and at most) every chain step from ``t`` down.
    seed : int, Generator or None
        Seed of every draw.

    Returns
    -------
    numpy.ndarray
        ``(n, d)`` int64 clean strings.

    Raises
    ------
    InputError
        For a bad time, step count or observation.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.vision.grammar_diffusion.diffusions import UniformDiffusion
    >>> from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> fam = UniformDiffusion(v=4)
    >>> x0 = rhm.sample(50, seed=1).x
    >>> x_t = fam.corrupt(x0, 0.3, np.random.default_rng(2))
    >>> out = reverse_process(ExactDenoiser(rhm, fam), x_t, 0.3, steps=20, seed=3)
    >>> out.shape, bool((out == x0).mean() > 0.5)
    ((50, 4), True)
    """
    if not isinstance(denoiser, Denoiser):
        raise InputError(f"denoiser must be a Denoiser, got {type(denoiser).__name__}")
    fam = denoiser.diffusion
    t = fam.check_time(t)
    rng = make_rng(seed)
    obs = np.asarray(observation)
    if isinstance(fam, GaussianDiffusion):
        if obs.ndim != 3 or obs.shape[-1] != fam.v or not np.issubdtype(obs.dtype, np.floating):
            raise InputError(f"observation must be (n, d, v={fam.v}) floats, got {obs.shape}")
        # a chain of t steps has no more than t: more is every step
        steps = int(round(t)) if steps is None else min(check_int("steps", steps, 1), round(t))
        return _gaussian_chain(denoiser, obs, t, steps, rng)
    from hiergrammar.processes import check_leaves

    obs = check_leaves("observation", obs, fam.v, allow_mask=isinstance(fam, MaskedDiffusion))
    if isinstance(fam, MaskedDiffusion):
        if steps is None:
            return _masked_continuous(denoiser, obs, t, rng)
        return _masked_grid(denoiser, obs, t, check_int("steps", steps, 1), rng)
    if isinstance(fam, UniformDiffusion):
        steps = DEFAULT_UNIFORM_STEPS if steps is None else check_int("steps", steps, 1)
        return _uniform_grid(denoiser, obs, t, steps, rng)
    raise InputError(f"no reverse process for the {fam.name} family")


def generate(
    denoiser: Denoiser,
    n: int,
    *,
    steps: int | None = None,
    seed: int | np.random.Generator | None = 0,
    d: int | None = None,
) -> np.ndarray:
    """Draw ``n`` strings: the reverse process from the pure-noise observation at ``t_max``.

    Parameters
    ----------
    denoiser : Denoiser
    n : int
        Number of strings.
    steps : int, optional
        As for :func:`reverse_process`.
    seed : int, Generator or None
    d : int, optional
        String length (default: the exact denoiser's grammar, or the network's ``d``).

    Returns
    -------
    numpy.ndarray
        ``(n, d)`` int64.

    Raises
    ------
    InputError
        For bad arguments.

    Examples
    --------
    See the module docstring.
    """
    n = check_int("n", n, 0)
    if d is None:
        source = getattr(denoiser, "grammar", None) or getattr(denoiser, "network", None)
        d = getattr(source, "d", None)
        if d is None:
            raise InputError("d is needed: the denoiser does not say how long its strings are")
    d = check_int("d", d, 1)
    rng = make_rng(seed)
    fam = denoiser.diffusion
    prior = fam.prior_observation(n, d, rng)
    return reverse_process(denoiser, prior, fam.t_max, steps=steps, seed=rng)
