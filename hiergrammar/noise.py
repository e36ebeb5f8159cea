"""The paper's two noise models, as leaf evidence for :func:`hiergrammar.bp.tree_bp`.

* The **epsilon-process** (eqs. 9-10): each leaf's evidence keeps ``1 - eps`` on its reference
  value and spreads ``eps`` evenly over the ``v - 1`` others.
* **Diffusion of the one-hot inputs** (eqs. 1-4): ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eta``
  per leaf, and the exact per-leaf posterior ``P(x_0 = e_mu | x_t) = softmax_mu(sqrt(abar)
  x_t[mu] / (1 - abar))``, which is proportional to the likelihood and so is the leaf evidence.
  ``abar`` comes from continuous time (``exp(-2t)``) or from a discrete DDPM schedule, optionally
  respaced as in the paper (250 of 1000 steps).

The noise functions are shortcuts of the process objects of :mod:`hiergrammar.processes`
(re-exported here), with the same numbers: :func:`eps_evidence` is
``EpsProcess(v).leaf_likelihood``, and :func:`diffuse_onehot`, :func:`leaf_posterior` and
:func:`diffusion_evidence` run the one implementation behind ``GaussianProcess.corrupt`` and
``GaussianProcess.leaf_likelihood`` (:func:`~hiergrammar.processes.diffuse`,
:func:`~hiergrammar.processes.gaussian_posterior`), at a given ``alpha_bar`` rather than a time.
They keep their own argument checks and messages.

Every one-hot vector is written by indexing, never through ``np.eye(v)``: ``v`` may be large
(``eps_evidence`` at ``v = 10**6`` allocates its ``(n, d, v)`` result only). Outputs are checked
against the memory budget (:func:`hiergrammar.validation.check_memory`) before allocation.

Examples
--------
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
from typing import Any

import numpy as np

# One interface for every forward process (alpha, corrupt, leaf_likelihood). The classes live in
# hiergrammar.processes and hiergrammar.schedules and are re-exported here; the functions of this
# module are shortcuts of them that keep their own argument checks and messages.
from hiergrammar.processes import (  # noqa: F401
    EpsProcess,
    GaussianProcess,
    MaskingProcess,
    Process,
    UniformProcess,
    diffuse,
    gaussian_posterior,
)
from hiergrammar.schedules import DiscreteChain, make_schedule  # noqa: F401
from hiergrammar.validation import (
    InputError,
    check_float,
    check_int,
    check_memory,
    check_real_array,
    make_rng,
)

__all__ = [
    "eps_evidence",
    "continuous_alpha_bar",
    "ddpm_alpha_bar",
    "respaced_timesteps",
    "respace",
    "chain_alpha_bar",
    "diffuse_onehot",
    "leaf_posterior",
    "diffusion_evidence",
    "effective_eps",
    "Process",
    "EpsProcess",
    "GaussianProcess",
    "MaskingProcess",
    "UniformProcess",
    "DiscreteChain",
    "make_schedule",
]

#: float64 arrays of shape (n, d, v) that leaf_posterior holds at once (input, logits, softmax
#: temporaries and output).
_POSTERIOR_ARRAYS = 4


def _check_x(x: Any, v: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"x must have shape (n, d) of symbols, got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise InputError(f"x must hold integer symbols, got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() >= v):
        raise InputError(f"x values must lie in [0, v) = [0, {v})")
    return x


def _check_v(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 2:
        raise InputError(f"v={v!r} violates v >= 2 (an integer)")
    return int(v)


def _check_alpha_bar(alpha_bar: Any) -> float:
    return check_float("alpha_bar", alpha_bar, 0.0, 1.0)


def _check_alpha_bars(alpha_bar: Any, name: str = "alpha_bar") -> np.ndarray:
    """A real array of noise levels in ``[0, 1]`` (any shape)."""
    array = check_real_array(name, alpha_bar)
    if array.size and (array.min() < 0 or array.max() > 1):
        raise InputError(f"{name} violates 0 <= {name} <= 1")
    return array


def _leaf_array_bytes(n: int, d: int, v: int, arrays: int = 1) -> int:
    return int(arrays) * 8 * int(n) * int(d) * int(v)


# -- the epsilon-process ---------------------------------------------------------------------
def eps_evidence(
    x: np.ndarray,
    eps: float | np.ndarray,
    v: int,
    *,
    memory_budget: int | str | None = None,
) -> np.ndarray:
    """Leaf evidence of the epsilon-process (eqs. 9-10).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` reference symbols in ``[0, v)``.
    eps : float or numpy.ndarray
        Noise level in ``[0, 1]``; a scalar or one per sample, shape ``(n,)``.
        ``eps = 1 - 1/v`` carries no information.
    v : int
        Vocabulary size, ``v >= 2``.
    memory_budget : int or str, optional
        Overrides the memory budget for the ``(n, d, v)`` result.

    Returns
    -------
    numpy.ndarray
        ``(n, d, v)`` evidence: ``1 - eps`` on ``x``, ``eps / (v - 1)`` elsewhere.

    Raises
    ------
    InputError
        On bad symbols, ``eps`` outside ``[0, 1]`` or of the wrong shape, ``v < 2``, or a
        result above the memory budget.

    Examples
    --------
    >>> eps_evidence(np.array([[1]]), eps=0.5, v=3).tolist()
    [[[0.25, 0.5, 0.25]]]
    >>> eps_evidence(np.zeros((1, 4), dtype=int), 0.3, 10**6).shape    # 32 MB, no eye(v)
    (1, 4, 1000000)
    """
    v = _check_v(v)
    x = _check_x(x, v)
    n, d = x.shape
    eps = check_real_array("eps", eps)
    if eps.ndim > 1 or (eps.ndim == 1 and eps.shape[0] != n):
        raise InputError(f"eps must be a scalar or have shape (n,) = ({n},), got {eps.shape}")
    if not np.all((eps >= 0) & (eps <= 1)):
        raise InputError(f"eps={eps} violates 0 <= eps <= 1 (no information at 1 - 1/v)")
    check_memory("eps_evidence's (n, d, v) result", _leaf_array_bytes(n, d, v), memory_budget)
    # A shortcut of the process object: one implementation of the eps likelihood.
    return EpsProcess(v).leaf_likelihood(x, eps if eps.ndim else float(eps))


# -- schedules -------------------------------------------------------------------------------
def continuous_alpha_bar(t: float | np.ndarray) -> np.ndarray:
    """``abar(t) = exp(-2t)``: constant-beta continuous-time diffusion (the paper's RHM figures).

    Parameters
    ----------
    t : float or numpy.ndarray
        Times, ``t >= 0`` (any shape).

    Returns
    -------
    numpy.ndarray
        ``exp(-2 t)``, the shape of ``t``.

    Raises
    ------
    InputError
        On negative, NaN, infinite or complex times.

    Examples
    --------
    >>> float(continuous_alpha_bar(0.0))
    1.0
    """
    t = check_real_array("t", t)
    if t.size and t.min() < 0:
        raise InputError("t violates 0 <= t < inf")
    return np.exp(-2.0 * t)


def ddpm_alpha_bar(
    num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> np.ndarray:
    """``abar_k = prod_{j<=k} (1 - beta_j)`` of a linear-beta DDPM, shape ``(num_train_steps,)``.

    Entry ``k`` is the noise level of training timestep ``k`` (diffusers' ``alphas_cumprod``).

    Parameters
    ----------
    num_train_steps : int
        Number of training timesteps, ``>= 1``.
    beta_start, beta_end : float
        The linear schedule's ends, ``0 < beta_start <= beta_end < 1``.

    Returns
    -------
    numpy.ndarray
        ``(num_train_steps,)``, decreasing.

    Raises
    ------
    InputError
        On a bad step count or betas.

    Examples
    --------
    >>> ddpm_alpha_bar().shape
    (1000,)
    """
    num_train_steps = check_int("num_train_steps", num_train_steps, 1)
    beta_start = check_float("beta_start", beta_start)
    beta_end = check_float("beta_end", beta_end)
    if not 0 < beta_start <= beta_end < 1:
        raise InputError(f"betas violate 0 < beta_start={beta_start} <= beta_end={beta_end} < 1")
    check_memory("the DDPM schedule", 16 * num_train_steps)
    betas = np.linspace(beta_start, beta_end, num_train_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def respaced_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
    """Training timesteps kept by a respaced chain, ascending, shape ``(num_steps,)``.

    ADM's ``space_timesteps`` rule: evenly spaced from 0 to ``num_train_steps - 1``, rounded
    (250 of 1000 keeps 0, 4, 8, ..., 999).

    Parameters
    ----------
    num_train_steps : int
        Length of the training chain, ``>= 1``.
    num_steps : int
        Steps kept, ``1 <= num_steps <= num_train_steps``.

    Returns
    -------
    numpy.ndarray
        int64 ``(num_steps,)``.

    Raises
    ------
    InputError
        On counts out of range or not integers.

    Examples
    --------
    >>> respaced_timesteps(1000, 250)[:4].tolist()
    [0, 4, 8, 12]
    """
    num_train_steps = check_int("num_train_steps", num_train_steps, 1)
    num_steps = check_int("num_steps", num_steps)
    if not 1 <= num_steps <= num_train_steps:
        raise InputError(
            f"num_steps={num_steps} violates 1 <= num_steps <= num_train_steps={num_train_steps}"
        )
    if num_steps == 1:
        return np.array([num_train_steps - 1])
    stride = (num_train_steps - 1) / (num_steps - 1)
    return np.round(np.arange(num_steps) * stride).astype(np.int64)


def _check_schedule(alpha_bar: Any) -> np.ndarray:
    alpha_bar = check_real_array("alpha_bar", alpha_bar, ndim=1)
    if alpha_bar.size == 0:
        raise InputError("alpha_bar must hold at least one noise level, got an empty schedule")
    if alpha_bar.min() < 0 or alpha_bar.max() > 1:
        raise InputError("alpha_bar violates 0 <= alpha_bar <= 1")
    return alpha_bar


def respace(alpha_bar: np.ndarray, num_steps: int) -> np.ndarray:
    """``abar`` at the timesteps of a respaced chain, shape ``(num_steps,)``.

    Index ``t - 1`` of the result is the noise level after ``t`` respaced steps, so chain index
    ``t = 0`` (no noise, ``abar = 1``) is not stored; see :func:`chain_alpha_bar`.

    Parameters
    ----------
    alpha_bar : numpy.ndarray
        ``(num_train_steps,)`` noise levels in ``[0, 1]``, e.g. :func:`ddpm_alpha_bar`.
    num_steps : int
        Steps kept, ``1 <= num_steps <= num_train_steps``.

    Returns
    -------
    numpy.ndarray
        ``(num_steps,)``.

    Examples
    --------
    >>> respace(ddpm_alpha_bar(), 250).shape
    (250,)
    """
    alpha_bar = _check_schedule(alpha_bar)
    return alpha_bar[respaced_timesteps(len(alpha_bar), num_steps)]


def chain_alpha_bar(
    t: int | np.ndarray, num_steps: int = 250, alpha_bar: np.ndarray | None = None
) -> np.ndarray:
    """``abar`` at index ``t`` in ``0..num_steps`` of the respaced chain (``t = 0``: 1).

    Parameters
    ----------
    t : int or numpy.ndarray
        Chain indices: integers (not booleans) in ``0..num_steps``, a scalar or an integer
        array of any shape.
    num_steps : int
        Length of the respaced chain.
    alpha_bar : numpy.ndarray, optional
        The training schedule (default :func:`ddpm_alpha_bar`).

    Returns
    -------
    numpy.ndarray
        The noise levels, the shape of ``t`` (a numpy scalar for a scalar ``t``).

    Raises
    ------
    InputError
        On booleans, non-integers, or ``t`` outside ``0..num_steps``.

    Examples
    --------
    >>> float(chain_alpha_bar(0)), round(float(chain_alpha_bar(250)), 6)
    (1.0, 4e-05)
    >>> chain_alpha_bar(True)   # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: t must be an integer chain index ..., got True
    """
    alpha_bar = ddpm_alpha_bar() if alpha_bar is None else _check_schedule(alpha_bar)
    num_steps = check_int("num_steps", num_steps)
    t_array = np.asarray(t)
    if isinstance(t, bool) or not np.issubdtype(t_array.dtype, np.integer):
        raise InputError(
            f"t must be an integer chain index in 0..num_steps (or an array of them), got {t!r}"
        )
    if t_array.size and (t_array.min() < 0 or t_array.max() > num_steps):
        raise InputError(f"t violates 0 <= t <= num_steps = {num_steps}")
    chain = np.concatenate([[1.0], respace(alpha_bar, num_steps)])
    return chain[t_array]


# -- diffusion of one-hot inputs -------------------------------------------------------------
def diffuse_onehot(
    x: np.ndarray,
    v: int,
    alpha_bar: float,
    seed: int | np.random.Generator | None = 0,
    *,
    memory_budget: int | str | None = None,
) -> np.ndarray:
    """Forward diffusion of one-hot leaves: ``(n, d)`` symbols -> ``(n, d, v)`` noisy vectors.

    ``x_t = sqrt(abar) e_x + sqrt(1 - abar) eta`` with standard normal ``eta``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` symbols in ``[0, v)``.
    v : int
        Vocabulary size.
    alpha_bar : float
        Noise level in ``[0, 1]``.
    seed : int, numpy.random.Generator or None
        Seed of the noise.
    memory_budget : int or str, optional
        Overrides the memory budget for the ``(n, d, v)`` result.

    Returns
    -------
    numpy.ndarray
        ``(n, d, v)`` float64.

    Raises
    ------
    InputError
        On bad symbols, ``v``, ``alpha_bar`` or seed, or a result above the memory budget.

    Examples
    --------
    >>> x_t = diffuse_onehot(np.array([[0, 2]]), v=3, alpha_bar=1.0)   # no noise: one-hot
    >>> bool((x_t == np.eye(3)[[[0, 2]]]).all())
    True
    """
    v = _check_v(v)
    x = _check_x(x, v)
    alpha_bar = _check_alpha_bar(alpha_bar)
    rng = make_rng(seed, "seed")
    n, d = x.shape
    check_memory("diffuse_onehot's (n, d, v) result", _leaf_array_bytes(n, d, v), memory_budget)
    return diffuse(x, v, alpha_bar, rng)  # GaussianProcess.corrupt's implementation


def leaf_posterior(
    x_t: np.ndarray, alpha_bar: float, *, memory_budget: int | str | None = None
) -> np.ndarray:
    """Exact per-leaf posterior ``P(x_0 = e_mu | x_t)`` (eq. 4), shape ``(n, d, v)``.

    It ignores the grammar (BP adds it) and is the leaf evidence of the diffusion. At
    ``alpha_bar = 1`` it is the one-hot argmax; at ``alpha_bar = 0`` it is uniform.

    Parameters
    ----------
    x_t : numpy.ndarray
        ``(n, d, v)`` noisy one-hot vectors, real and finite.
    alpha_bar : float
        Their noise level in ``[0, 1]``.
    memory_budget : int or str, optional
        Overrides the memory budget.

    Returns
    -------
    numpy.ndarray
        ``(n, d, v)``, each row a probability vector.

    Raises
    ------
    InputError
        On a bad shape, complex, NaN or infinite ``x_t``, ``alpha_bar`` outside ``[0, 1]``, or
        logits ``sqrt(abar) x_t / (1 - abar)`` that overflow.

    Examples
    --------
    >>> leaf_posterior(np.array([[[0.2, 3.0, -1.0]]]), 1.0).tolist()
    [[[0.0, 1.0, 0.0]]]
    >>> leaf_posterior(np.array([[[0.2, 3.0, -1.0]]]), 0.0).tolist()
    [[[0.3333333333333333, 0.3333333333333333, 0.3333333333333333]]]
    """
    alpha_bar = _check_alpha_bar(alpha_bar)
    shape = np.shape(x_t)
    if len(shape) != 3:
        raise InputError(f"x_t must have shape (n, d, v), got {shape}")
    check_memory(
        "leaf_posterior on (n, d, v) inputs",
        _leaf_array_bytes(*shape, arrays=_POSTERIOR_ARRAYS),
        memory_budget,
    )
    x_t = check_real_array("x_t", x_t)
    return gaussian_posterior(x_t, alpha_bar)  # GaussianProcess.leaf_likelihood's implementation


def diffusion_evidence(
    x: np.ndarray,
    v: int,
    alpha_bar: float,
    seed: int | np.random.Generator | None = 0,
    *,
    memory_budget: int | str | None = None,
) -> np.ndarray:
    """Diffuse one-hot ``x`` to ``alpha_bar`` and return the leaf evidence, ``(n, d, v)``.

    Parameters
    ----------
    x, v, alpha_bar, seed, memory_budget
        As for :func:`diffuse_onehot`.

    Returns
    -------
    numpy.ndarray
        ``(n, d, v)``: :func:`leaf_posterior` of :func:`diffuse_onehot`.

    Raises
    ------
    InputError
        As for :func:`diffuse_onehot` and :func:`leaf_posterior`.

    Examples
    --------
    >>> diffusion_evidence(np.array([[0, 1]]), v=4, alpha_bar=0.5, seed=0).shape
    (1, 2, 4)
    """
    v = _check_v(v)
    x = _check_x(x, v)
    n, d = x.shape
    check_memory(
        "diffusion_evidence on (n, d, v) leaves",
        _leaf_array_bytes(n, d, v, arrays=_POSTERIOR_ARRAYS + 1),
        memory_budget,
    )
    x_t = diffuse_onehot(x, v, alpha_bar, seed=seed, memory_budget=memory_budget)
    return leaf_posterior(x_t, alpha_bar, memory_budget=memory_budget)


def effective_eps(
    v: int,
    alpha_bar: float | np.ndarray,
    n_samples: int = 20000,
    seed: int | np.random.Generator | None = 0,
    *,
    memory_budget: int | str | None = None,
) -> np.ndarray:
    """Effective epsilon of the diffusion (appendix C, eq. 63).

    ``eps_eff = E[1 - P(x_0 = true | x_t)]``, a Monte-Carlo mean over ``n_samples`` leaves per
    value of ``alpha_bar``. Standard error below ``0.5 / sqrt(n_samples)``.

    Parameters
    ----------
    v : int
        Vocabulary size.
    alpha_bar : float or numpy.ndarray
        Noise levels in ``[0, 1]``, any shape.
    n_samples : int
        Leaves per noise level, ``>= 1``.
    seed : int, numpy.random.Generator or None
        Seed of the noise.
    memory_budget : int or str, optional
        Overrides the memory budget for one noise level's ``(n_samples, 1, v)`` arrays.

    Returns
    -------
    numpy.ndarray
        The shape of ``alpha_bar``.

    Raises
    ------
    InputError
        On ``v < 2``, ``n_samples < 1``, noise levels outside ``[0, 1]`` or a bad seed.

    Examples
    --------
    >>> float(effective_eps(8, 1.0, n_samples=10))     # no noise: no error
    0.0
    """
    v = _check_v(v)
    n_samples = check_int("n_samples", n_samples, 1)
    alpha_bar = _check_alpha_bars(alpha_bar)
    rng = make_rng(seed, "seed")
    check_memory(
        "effective_eps per noise level (n_samples, 1, v)",
        _leaf_array_bytes(n_samples, 1, v, arrays=_POSTERIOR_ARRAYS + 1),
        memory_budget,
    )
    out = np.empty(alpha_bar.shape)
    x = np.zeros((n_samples, 1), dtype=np.int64)  # by symmetry the true symbol can be 0
    for idx, ab in np.ndenumerate(alpha_bar):
        x_t = diffuse_onehot(x, v, ab, seed=rng.integers(2**63), memory_budget=memory_budget)
        post = leaf_posterior(x_t, ab, memory_budget=memory_budget)
        out[idx] = 1.0 - post[:, 0, 0].mean()
    return out
