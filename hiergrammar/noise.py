"""The paper's two noise models, as leaf evidence for :func:`hiergrammar.bp.tree_bp`.

* The **epsilon-process** (eqs. 9-10): each leaf's evidence keeps ``1 - eps`` on its reference
  value and spreads ``eps`` evenly over the ``v - 1`` others.
* **Diffusion of the one-hot inputs** (eqs. 1-4): ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eta``
  per leaf, and the exact per-leaf posterior ``P(x_0 = e_mu | x_t) = softmax_mu(sqrt(abar)
  x_t[mu] / (1 - abar))``, which is proportional to the likelihood and so is the leaf evidence.
  ``abar`` comes from continuous time (``exp(-2t)``) or from a discrete DDPM schedule, optionally
  respaced as in the paper (250 of 1000 steps).

Example
-------
>>> import numpy as np
>>> x = np.array([[0, 1, 2, 3]])
>>> eps_evidence(x, eps=0.3, v=4)[0, 0]
array([0.7, 0.1, 0.1, 0.1])
>>> abar = ddpm_alpha_bar()          # (1000,) linear beta 1e-4..0.02
>>> chain = respace(abar, 250)       # (250,) the respaced chain
>>> post = leaf_posterior(diffuse_onehot(x, v=4, alpha_bar=chain[99], seed=0), chain[99])
>>> post.shape
(1, 4, 4)
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import softmax


def _check_x(x: np.ndarray, v: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d) of symbols, got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"x must hold integer symbols, got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() >= v):
        raise ValueError(f"x values must lie in [0, v) = [0, {v})")
    return x


def _check_v(v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 2:
        raise ValueError(f"v={v!r} violates v >= 2 (an integer)")
    return int(v)


def _check_alpha_bar(alpha_bar: float) -> float:
    alpha_bar = float(alpha_bar)
    if not 0.0 <= alpha_bar <= 1.0:
        raise ValueError(f"alpha_bar={alpha_bar} violates 0 <= alpha_bar <= 1")
    return alpha_bar


# -- the epsilon-process ---------------------------------------------------------------------
def eps_evidence(x: np.ndarray, eps: float | np.ndarray, v: int) -> np.ndarray:
    """Leaf evidence of the epsilon-process (eqs. 9-10).

    Parameters
    ----------
    x : ``(n, d)`` reference symbols in ``[0, v)``.
    eps : noise level in ``[0, 1]``; a scalar or one per sample, shape ``(n,)``.
        ``eps = 1 - 1/v`` carries no information.
    v : vocabulary size.

    Returns
    -------
    ``(n, d, v)`` evidence: ``1 - eps`` on ``x``, ``eps / (v - 1)`` elsewhere.
    """
    v = _check_v(v)
    x = _check_x(x, v)
    eps = np.asarray(eps, dtype=np.float64)
    if eps.ndim > 1 or (eps.ndim == 1 and eps.shape[0] != x.shape[0]):
        raise ValueError(f"eps must be a scalar or have shape (n,) = ({x.shape[0]},)")
    if not np.all((eps >= 0) & (eps <= 1)):
        raise ValueError(f"eps={eps} violates 0 <= eps <= 1 (no information at 1 - 1/v)")
    eps = eps.reshape(-1, 1, 1) if eps.ndim else eps
    onehot = np.eye(v)[x]
    return onehot * (1.0 - eps) + (1.0 - onehot) * (eps / (v - 1))


# -- schedules -------------------------------------------------------------------------------
def continuous_alpha_bar(t: float | np.ndarray) -> np.ndarray:
    """``abar(t) = exp(-2t)``: constant-beta continuous-time diffusion (the paper's RHM figures)."""
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("t violates 0 <= t < inf")
    return np.exp(-2.0 * t)


def ddpm_alpha_bar(
    num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> np.ndarray:
    """``abar_k = prod_{j<=k} (1 - beta_j)`` of a linear-beta DDPM, shape ``(num_train_steps,)``.

    Entry ``k`` is the noise level of training timestep ``k`` (diffusers' ``alphas_cumprod``).
    """
    if num_train_steps < 1:
        raise ValueError(f"num_train_steps={num_train_steps} violates num_train_steps >= 1")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"betas violate 0 < beta_start={beta_start} <= beta_end={beta_end} < 1")
    betas = np.linspace(beta_start, beta_end, num_train_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def respaced_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
    """Training timesteps kept by a respaced chain, ascending, shape ``(num_steps,)``.

    ADM's ``space_timesteps`` rule: evenly spaced from 0 to ``num_train_steps - 1``, rounded
    (250 of 1000 keeps 0, 4, 8, ..., 999).
    """
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(
            f"num_steps={num_steps} violates 1 <= num_steps <= num_train_steps={num_train_steps}"
        )
    if num_steps == 1:
        return np.array([num_train_steps - 1])
    stride = (num_train_steps - 1) / (num_steps - 1)
    return np.round(np.arange(num_steps) * stride).astype(np.int64)


def respace(alpha_bar: np.ndarray, num_steps: int) -> np.ndarray:
    """``abar`` at the timesteps of a respaced chain, shape ``(num_steps,)``.

    Index ``t - 1`` of the result is the noise level after ``t`` respaced steps, so chain index
    ``t = 0`` (no noise, ``abar = 1``) is not stored; see :func:`chain_alpha_bar`.
    """
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    return alpha_bar[respaced_timesteps(len(alpha_bar), num_steps)]


def chain_alpha_bar(
    t: int | np.ndarray, num_steps: int = 250, alpha_bar: np.ndarray | None = None
) -> np.ndarray:
    """``abar`` at index ``t`` in ``0..num_steps`` of the respaced chain (``t = 0``: 1)."""
    alpha_bar = ddpm_alpha_bar() if alpha_bar is None else alpha_bar
    t = np.asarray(t)
    if np.any(t < 0) or np.any(t > num_steps):
        raise ValueError(f"t violates 0 <= t <= num_steps = {num_steps}")
    chain = np.concatenate([[1.0], respace(alpha_bar, num_steps)])
    return chain[t]


# -- diffusion of one-hot inputs -------------------------------------------------------------
def diffuse_onehot(x: np.ndarray, v: int, alpha_bar: float, seed: int | None = 0) -> np.ndarray:
    """Forward diffusion of one-hot leaves: ``(n, d)`` symbols -> ``(n, d, v)`` noisy vectors."""
    v = _check_v(v)
    x = _check_x(x, v)
    alpha_bar = _check_alpha_bar(alpha_bar)
    rng = np.random.default_rng(seed)
    eta = rng.standard_normal((*x.shape, v))
    return np.sqrt(alpha_bar) * np.eye(v)[x] + np.sqrt(1.0 - alpha_bar) * eta


def leaf_posterior(x_t: np.ndarray, alpha_bar: float) -> np.ndarray:
    """Exact per-leaf posterior ``P(x_0 = e_mu | x_t)`` (eq. 4), shape ``(n, d, v)``.

    It ignores the grammar (BP adds it) and is the leaf evidence of the diffusion. At
    ``alpha_bar = 1`` it is the one-hot argmax; at ``alpha_bar = 0`` it is uniform.
    """
    alpha_bar = _check_alpha_bar(alpha_bar)
    x_t = np.asarray(x_t, dtype=np.float64)
    if x_t.ndim != 3:
        raise ValueError(f"x_t must have shape (n, d, v), got {x_t.shape}")
    if alpha_bar == 1.0:
        return np.eye(x_t.shape[-1])[x_t.argmax(-1)]
    return softmax(np.sqrt(alpha_bar) * x_t / (1.0 - alpha_bar), axis=-1)


def diffusion_evidence(x: np.ndarray, v: int, alpha_bar: float, seed: int | None = 0) -> np.ndarray:
    """Diffuse one-hot ``x`` to ``alpha_bar`` and return the leaf evidence, ``(n, d, v)``."""
    return leaf_posterior(diffuse_onehot(x, v, alpha_bar, seed=seed), alpha_bar)


def effective_eps(
    v: int, alpha_bar: float | np.ndarray, n_samples: int = 20000, seed: int | None = 0
) -> np.ndarray:
    """Effective epsilon of the diffusion (appendix C, eq. 63).

    ``eps_eff = E[1 - P(x_0 = true | x_t)]``, a Monte-Carlo mean over ``n_samples`` leaves per
    value of ``alpha_bar`` (scalar or array; the result has its shape). Standard error below
    ``0.5 / sqrt(n_samples)``.
    """
    v = _check_v(v)
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    out = np.empty(alpha_bar.shape)
    rng = np.random.default_rng(seed)
    x = np.zeros((n_samples, 1), dtype=np.int64)  # by symmetry the true symbol can be 0
    for idx, ab in np.ndenumerate(alpha_bar):
        post = leaf_posterior(diffuse_onehot(x, v, ab, seed=rng.integers(2**63)), ab)
        out[idx] = 1.0 - post[:, 0, 0].mean()
    return out


# -- the processes as objects -----------------------------------------------------------------
# One interface for every forward process (alpha, corrupt, leaf_likelihood). The classes live
# in hiergrammar.processes and hiergrammar.schedules and are re-exported here: the functions
# above become thin shortcuts of them.
from hiergrammar.processes import (  # noqa: E402, F401
    EpsProcess,
    GaussianProcess,
    MaskingProcess,
    Process,
    UniformProcess,
)
from hiergrammar.schedules import DiscreteChain, make_schedule  # noqa: E402, F401
