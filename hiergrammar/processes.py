"""Forward noise processes on the leaves, as objects with one interface.

Every process is built as ``Process(v, schedule=...)`` (``v``: the leaf vocabulary; a default
schedule, see :mod:`hiergrammar.schedules`) and has

* ``alpha(t)``: the weight of the clean signal, 1 at ``t = 0`` and decreasing;
* ``corrupt(x, t, seed=...)``: the observation at time ``t`` of integer leaves ``x`` ``(n, d)``;
* ``leaf_likelihood(observation, t)``: the exact ``(n, d, v)`` leaf evidence
  ``P(observation_i | x_i = b)`` that :func:`hiergrammar.bp.tree_bp` and
  :func:`hiergrammar.sampling.posterior_sample` take.

The processes:

* :class:`MaskingProcess` (absorbing): each leaf becomes ``MASK``, the integer ``v``, with
  probability ``1 - alpha``, independently. Likelihood: ``alpha`` on the kept symbol (one-hot),
  ``1 - alpha`` on every value of a masked leaf (flat).
* :class:`UniformProcess`: each leaf is resampled uniformly over the ``v`` symbols with
  probability ``1 - alpha`` (so it may come back unchanged). Likelihood:
  ``alpha [b = x_t] + (1 - alpha) / v``.
* :class:`EpsProcess`: the paper's epsilon-process. It does not move the leaves: ``corrupt``
  returns ``x`` itself, and the likelihood keeps ``1 - eps`` on the observed symbol and
  ``eps / (v - 1)`` on the others. ``alpha = 1 - eps v / (v - 1)``; with its default schedule
  ``"eps"`` the time *is* eps (``t`` in ``[0, 1]``). Its likelihood is the uniform process's
  evaluated at the clean string, with ``eps = (1 - alpha)(v - 1)/v``.
* :class:`GaussianProcess`: diffusion of the one-hot leaves,
  ``x_t = sqrt(abar) e_x + sqrt(1 - abar) eta``, an ``(n, d, v)`` float observation; the
  likelihood is the exact per-leaf posterior ``softmax(sqrt(abar) x_t / (1 - abar))``, which is
  proportional to ``P(x_t | x_0)`` leaf by leaf. ``alpha = abar``; it keeps the documented time
  conventions of :mod:`hiergrammar.noise`: ``"continuous"`` (default, ``abar = exp(-2t)``,
  ``t >= 0``) or ``"ddpm"`` (integer steps of the 250-step respaced linear-beta chain).

For the masking and uniform processes ``t`` runs over ``[0, 1]`` with ``alpha(0) = 1`` and
``alpha(1) = 0`` (default ``"linear"``; also ``"cosine"``, ``"loglinear"``, or a
:class:`~hiergrammar.schedules.DiscreteChain` of integer steps). Every process takes a scalar
``t`` or one time per sample, shape ``(n,)``.

The likelihoods are the exact transition probabilities (the Gaussian one up to a per-leaf
constant), so :func:`hiergrammar.bp.tree_bp`'s ``log_evidence`` is ``log P(observation)`` for the
masking, uniform and eps processes. One-hot rows are built by indexing, never with ``np.eye``,
and every ``(n, d, v)`` array is checked against the memory budget before it is allocated.

Examples
--------
>>> import numpy as np
>>> x = np.array([[0, 1, 2, 3]])
>>> masking = MaskingProcess(v=4)
>>> masking.corrupt(x, t=1.0, seed=0)              # alpha(1) = 0: every leaf is MASK = v
array([[4, 4, 4, 4]])
>>> masking.leaf_likelihood(np.array([[2, 4]]), t=0.25)[0]
array([[0.  , 0.  , 0.75, 0.  ],
       [0.25, 0.25, 0.25, 0.25]])
>>> UniformProcess(v=4).leaf_likelihood(np.array([[1]]), t=0.5)[0, 0]
array([0.125, 0.625, 0.125, 0.125])
>>> round(EpsProcess(v=4).alpha(0.3), 12)           # 1 - eps v / (v - 1)
0.6
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from hiergrammar.schedules import (
    ContinuousGaussianSchedule,
    Schedule,
    UnitIntervalSchedule,
    make_schedule,
)
from hiergrammar.validation import InputError, check_int, check_memory, make_rng

__all__ = [
    "EpsProcess",
    "GaussianProcess",
    "MaskingProcess",
    "Process",
    "UniformProcess",
    "check_leaves",
    "diffuse",
    "gaussian_posterior",
]

_FLOAT_DTYPES = (np.float32, np.float64)


def check_leaves(name: str, x: Any, v: int, *, allow_mask: bool = False) -> np.ndarray:
    """``x`` as an int64 ``(n, d)`` array of symbols in ``[0, v)`` (``[0, v]`` with the mask).

    Parameters
    ----------
    name : str
        The argument's name, for messages.
    x : array_like
        Integer symbols, shape ``(n, d)``.
    v : int
        Leaf vocabulary size.
    allow_mask : bool
        Accept the mask symbol ``v`` too.

    Returns
    -------
    numpy.ndarray
        ``(n, d)`` int64 (``x`` itself when it already is one).

    Raises
    ------
    InputError
        For a wrong shape, a non-integer dtype or a symbol out of range.

    Examples
    --------
    >>> check_leaves("x", [[0, 3]], v=4).dtype
    dtype('int64')
    """
    array = np.asarray(x)
    if array.ndim != 2:
        raise InputError(f"{name} must have shape (n, d) of symbols, got shape {array.shape}")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} must hold integer symbols, got dtype {array.dtype}")
    high = v if allow_mask else v - 1
    if array.size and (array.min() < 0 or array.max() > high):
        bound = f"[0, v] = [0, {v}] (v is MASK)" if allow_mask else f"[0, v) = [0, {v})"
        raise InputError(f"{name} values violate {name} in {bound}")
    return array.astype(np.int64, copy=False)


def _check_dtype(dtype: Any) -> type:
    if dtype not in _FLOAT_DTYPES:
        raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return dtype


def _evidence_bytes(n: int, d: int, v: int, dtype: type) -> int:
    return int(n) * int(d) * int(v) * np.dtype(dtype).itemsize


class Process(ABC):
    """A forward noise process on integer leaves with vocabulary ``v``.

    Parameters
    ----------
    v : int
        Leaf vocabulary size, ``v >= 2``.
    schedule : str or Schedule
        See the subclass for its default and the choices.

    Attributes
    ----------
    v : int
    schedule : Schedule
    """

    #: Schedule used when none is given.
    default_schedule: str = "linear"
    #: Short name used in reports.
    name: str = ""

    def __init__(self, v: int, schedule: str | Schedule | None = None):
        self.v = check_int("v", v, 2)
        self.schedule = self._make_schedule(self.default_schedule if schedule is None else schedule)

    def _make_schedule(self, schedule: str | Schedule) -> Schedule:
        return make_schedule(schedule)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(v={self.v}, schedule={self.schedule.name!r})"

    # -- time --------------------------------------------------------------------------------
    def alpha(self, t: float | np.ndarray) -> float | np.ndarray:
        """Weight of the clean signal at time ``t``: 1 at ``t = 0``, decreasing.

        Parameters
        ----------
        t : float or array_like
            Time(s) within the schedule's bounds.

        Returns
        -------
        float or numpy.ndarray
            Shaped like ``t``.

        Raises
        ------
        InputError
            For a time outside the schedule's bounds.

        Examples
        --------
        >>> MaskingProcess(v=8, schedule="cosine").alpha(1.0)
        0.0
        """
        return self.schedule.alpha(t)

    def _alpha_per_sample(self, t: float | np.ndarray, n: int) -> np.ndarray:
        """``alpha`` as an ``(n, 1)`` column, from a scalar ``t`` or one ``t`` per sample."""
        if np.ndim(t) > 1 or (np.ndim(t) == 1 and np.shape(t)[0] != n):
            raise InputError(f"t must be a scalar or have shape (n,) = ({n},), got {np.shape(t)}")
        alpha = np.asarray(self.alpha(t), dtype=np.float64)
        return np.broadcast_to(alpha.reshape(-1, 1), (n, 1))

    # -- the process -------------------------------------------------------------------------
    def observation_bytes(self, d: int) -> int:
        """Bytes of one string's observation (what :meth:`corrupt` returns per string of
        ``d`` leaves): one int64 symbol per leaf.

        Examples
        --------
        >>> MaskingProcess(v=8).observation_bytes(16)
        128
        """
        return 8 * int(d)

    @abstractmethod
    def corrupt(
        self, x: np.ndarray, t: float | np.ndarray, seed: int | np.random.Generator | None = 0
    ) -> np.ndarray:
        """The observation at time ``t`` of integer leaves ``x`` ``(n, d)``."""

    @abstractmethod
    def leaf_likelihood(
        self,
        observation: np.ndarray,
        t: float | np.ndarray,
        *,
        dtype: type = np.float64,
        memory_budget: int | str | None = None,
    ) -> np.ndarray:
        """The exact ``(n, d, v)`` leaf evidence of an observation at time ``t``."""


class _SymbolProcess(Process):
    """Shared checks of the processes whose observation is an ``(n, d)`` int array."""

    default_schedule = "linear"

    def _make_schedule(self, schedule: str | Schedule) -> Schedule:
        # Masking and uniform noise live on t in [0, 1] (or integer chain steps).
        made = make_schedule(schedule)
        if isinstance(made, ContinuousGaussianSchedule):
            raise InputError(
                f"schedule={made.name!r} violates the {self.name} process's time range "
                "0 <= t <= 1 (choose 'linear', 'cosine', 'loglinear' or a DiscreteChain)"
            )
        return made

    def _empty_evidence(
        self, observation: np.ndarray, dtype: type, memory_budget: int | str | None
    ) -> np.ndarray:
        n, d = observation.shape
        check_memory(
            f"the leaf likelihood (n, d, v) = ({n}, {d}, {self.v})",
            _evidence_bytes(n, d, self.v, dtype),
            memory_budget,
        )
        return np.empty((n, d, self.v), dtype=dtype)


class MaskingProcess(_SymbolProcess):
    """Absorbing (masked) discrete diffusion: a leaf becomes ``MASK = v`` w.p. ``1 - alpha``.

    Parameters
    ----------
    v : int
        Leaf vocabulary size, ``v >= 2``; the mask symbol is the integer ``v``.
    schedule : str or Schedule, default ``"linear"``
        ``"linear"``, ``"cosine"``, ``"loglinear"``, or a
        :class:`~hiergrammar.schedules.Schedule` such as a
        :class:`~hiergrammar.schedules.DiscreteChain`.

    Examples
    --------
    >>> proc = MaskingProcess(v=32)
    >>> proc.mask, proc.alpha(0.0), proc.alpha(1.0)
    (32, 1.0, 0.0)
    >>> obs = proc.corrupt(np.zeros((1000, 8), dtype=int), t=0.25, seed=0)
    >>> bool(abs((obs == 32).mean() - 0.25) < 0.05)     # a quarter of the leaves is masked
    True
    """

    name = "masking"

    @property
    def mask(self) -> int:
        """The mask symbol: the integer ``v``."""
        return self.v

    def corrupt(
        self, x: np.ndarray, t: float | np.ndarray, seed: int | np.random.Generator | None = 0
    ) -> np.ndarray:
        """Mask each leaf independently with probability ``1 - alpha(t)``.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n, d)`` integer leaves in ``[0, v)``.
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        seed : int, Generator or None
            Seed of the mask draw.

        Returns
        -------
        numpy.ndarray
            ``(n, d)`` int64: ``x`` where kept, ``v`` where masked.

        Raises
        ------
        InputError
            For bad leaves, times or seed.

        Examples
        --------
        >>> MaskingProcess(v=4).corrupt(np.array([[0, 1, 2]]), t=0.0)
        array([[0, 1, 2]])
        """
        x = check_leaves("x", x, self.v)
        alpha = self._alpha_per_sample(t, x.shape[0])
        rng = make_rng(seed)
        masked = rng.random(x.shape) >= alpha  # alpha = 1 keeps all, alpha = 0 masks all
        return np.where(masked, self.v, x)

    def leaf_likelihood(
        self,
        observation: np.ndarray,
        t: float | np.ndarray,
        *,
        dtype: type = np.float64,
        memory_budget: int | str | None = None,
    ) -> np.ndarray:
        """``P(obs_i | x_i = b)``: ``alpha [b = obs_i]`` if kept, ``1 - alpha`` if masked.

        Parameters
        ----------
        observation : numpy.ndarray
            ``(n, d)`` integers in ``[0, v]`` (``v`` = MASK).
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        dtype : np.float32 or np.float64
        memory_budget : int or str, optional
            Bound on the ``(n, d, v)`` array (default: the library's budget).

        Returns
        -------
        numpy.ndarray
            ``(n, d, v)``.

        Raises
        ------
        InputError
            For bad arguments or an array above the memory budget.

        Examples
        --------
        >>> MaskingProcess(v=3).leaf_likelihood(np.array([[1, 3]]), t=0.5)[0]
        array([[0. , 0.5, 0. ],
               [0.5, 0.5, 0.5]])
        """
        obs = check_leaves("observation", observation, self.v, allow_mask=True)
        dtype = _check_dtype(dtype)
        alpha = self._alpha_per_sample(t, obs.shape[0])
        out = self._empty_evidence(obs, dtype, memory_budget)
        masked = obs == self.v
        out[...] = ((1.0 - alpha) * masked)[..., None]
        rows, cols = np.nonzero(~masked)
        out[rows, cols, obs[rows, cols]] = np.broadcast_to(alpha, obs.shape)[rows, cols]
        return out


class UniformProcess(_SymbolProcess):
    """Uniform discrete diffusion: a leaf is resampled uniformly w.p. ``1 - alpha``.

    Parameters
    ----------
    v : int
        Leaf vocabulary size, ``v >= 2``.
    schedule : str or Schedule, default ``"linear"``
        As for :class:`MaskingProcess`.

    Examples
    --------
    >>> proc = UniformProcess(v=4)
    >>> x = np.zeros((4000, 4), dtype=int)
    >>> changed = (proc.corrupt(x, t=0.5, seed=0) != x).mean()   # (1 - alpha)(v - 1)/v
    >>> bool(abs(changed - 0.375) < 0.02)
    True
    """

    name = "uniform"

    def corrupt(
        self, x: np.ndarray, t: float | np.ndarray, seed: int | np.random.Generator | None = 0
    ) -> np.ndarray:
        """Resample each leaf uniformly over ``[0, v)`` with probability ``1 - alpha(t)``.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n, d)`` integer leaves in ``[0, v)``.
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        seed : int, Generator or None
            Seed of the draws.

        Returns
        -------
        numpy.ndarray
            ``(n, d)`` int64 in ``[0, v)``.

        Raises
        ------
        InputError
            For bad leaves, times or seed.

        Examples
        --------
        >>> UniformProcess(v=4).corrupt(np.array([[0, 1, 2]]), t=0.0)
        array([[0, 1, 2]])
        """
        x = check_leaves("x", x, self.v)
        alpha = self._alpha_per_sample(t, x.shape[0])
        rng = make_rng(seed)
        resample = rng.random(x.shape) >= alpha
        fresh = rng.integers(self.v, size=x.shape)
        return np.where(resample, fresh, x)

    def leaf_likelihood(
        self,
        observation: np.ndarray,
        t: float | np.ndarray,
        *,
        dtype: type = np.float64,
        memory_budget: int | str | None = None,
    ) -> np.ndarray:
        """``P(obs_i | x_i = b) = alpha [b = obs_i] + (1 - alpha) / v``.

        Parameters
        ----------
        observation : numpy.ndarray
            ``(n, d)`` integers in ``[0, v)``.
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        dtype : np.float32 or np.float64
        memory_budget : int or str, optional
            Bound on the ``(n, d, v)`` array.

        Returns
        -------
        numpy.ndarray
            ``(n, d, v)``; each row sums to 1.

        Raises
        ------
        InputError
            For bad arguments or an array above the memory budget.

        Examples
        --------
        >>> UniformProcess(v=2).leaf_likelihood(np.array([[0]]), t=1.0)[0, 0]
        array([0.5, 0.5])
        """
        obs = check_leaves("observation", observation, self.v)
        dtype = _check_dtype(dtype)
        alpha = self._alpha_per_sample(t, obs.shape[0])
        out = self._empty_evidence(obs, dtype, memory_budget)
        out[...] = ((1.0 - alpha) / self.v)[..., None]
        rows, cols = np.indices(obs.shape).reshape(2, -1)
        out[rows, cols, obs.ravel()] += np.broadcast_to(alpha, obs.shape).ravel()
        return out


class EpsProcess(_SymbolProcess):
    """The paper's epsilon-process (eqs. 9-10) on this interface.

    Parameters
    ----------
    v : int
        Leaf vocabulary size, ``v >= 2``.
    schedule : str or Schedule, default ``"eps"``
        ``"eps"``: the time is eps itself, ``t`` in ``[0, 1]`` (``t = 1 - 1/v`` carries no
        information; beyond it the evidence points away from the observed symbol and
        ``alpha < 0``). Any other schedule gives ``alpha(t)`` and
        ``eps = (1 - alpha)(v - 1) / v``.

    Examples
    --------
    >>> proc = EpsProcess(v=4)
    >>> x = np.array([[0, 3]])
    >>> proc.corrupt(x, t=0.3) is x                  # the process does not move the leaves
    True
    >>> proc.leaf_likelihood(x, t=0.3)[0, 0]
    array([0.7, 0.1, 0.1, 0.1])
    >>> EpsProcess(v=4, schedule="linear").eps(1.0)  # alpha = 0 <=> eps = 1 - 1/v
    0.75
    """

    default_schedule = "eps"
    name = "eps"

    def _make_schedule(self, schedule: str | Schedule) -> Schedule:
        if isinstance(schedule, str) and schedule == "eps":
            return _EpsIdentity()
        return make_schedule(schedule)

    def eps(self, t: float | np.ndarray) -> float | np.ndarray:
        """The noise level eps at time ``t``.

        Parameters
        ----------
        t : float or array_like

        Returns
        -------
        float or numpy.ndarray
            Shaped like ``t``.

        Examples
        --------
        >>> EpsProcess(v=10).eps(0.2)
        0.2
        """
        if isinstance(self.schedule, _EpsIdentity):
            checked = self.schedule.check_t(t)
            return float(checked) if np.ndim(t) == 0 else checked
        alpha = np.asarray(self.schedule.alpha(t), dtype=np.float64)
        eps = (1.0 - alpha) * (self.v - 1) / self.v
        return float(eps) if np.ndim(t) == 0 else eps

    def alpha(self, t: float | np.ndarray) -> float | np.ndarray:
        """``1 - eps v / (v - 1)``: 1 at ``eps = 0``, 0 at ``eps = 1 - 1/v``.

        Parameters
        ----------
        t : float or array_like

        Returns
        -------
        float or numpy.ndarray
            Shaped like ``t`` (negative beyond ``eps = 1 - 1/v``).

        Examples
        --------
        >>> EpsProcess(v=2).alpha(0.5)
        0.0
        """
        if not isinstance(self.schedule, _EpsIdentity):
            return self.schedule.alpha(t)
        eps = np.asarray(self.eps(t), dtype=np.float64)
        alpha = 1.0 - eps * self.v / (self.v - 1)
        return float(alpha) if np.ndim(t) == 0 else alpha

    def corrupt(
        self, x: np.ndarray, t: float | np.ndarray, seed: int | np.random.Generator | None = 0
    ) -> np.ndarray:
        """``x`` itself (after checking it): the eps-process acts on the evidence only.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n, d)`` integer leaves in ``[0, v)``.
        t : float or numpy.ndarray
            Checked, not used.
        seed : int, Generator or None
            Not used (nothing is random).

        Returns
        -------
        numpy.ndarray
            ``x``.

        Examples
        --------
        >>> EpsProcess(v=3).corrupt(np.array([[2, 0]]), t=0.5)
        array([[2, 0]])
        """
        checked = check_leaves("x", x, self.v)
        self._alpha_per_sample(t, checked.shape[0])
        return x if isinstance(x, np.ndarray) else checked

    def leaf_likelihood(
        self,
        observation: np.ndarray,
        t: float | np.ndarray,
        *,
        dtype: type = np.float64,
        memory_budget: int | str | None = None,
    ) -> np.ndarray:
        """eps evidence: ``1 - eps`` on the observed symbol, ``eps / (v - 1)`` elsewhere.

        Parameters
        ----------
        observation : numpy.ndarray
            ``(n, d)`` integers in ``[0, v)`` (the reference string).
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        dtype : np.float32 or np.float64
        memory_budget : int or str, optional
            Bound on the ``(n, d, v)`` array.

        Returns
        -------
        numpy.ndarray
            ``(n, d, v)``; each row sums to 1.

        Raises
        ------
        InputError
            For bad arguments or an array above the memory budget.

        Examples
        --------
        >>> EpsProcess(v=3).leaf_likelihood(np.array([[1]]), t=0.4)[0, 0]
        array([0.2, 0.6, 0.2])
        """
        obs = check_leaves("observation", observation, self.v)
        dtype = _check_dtype(dtype)
        n = obs.shape[0]
        if np.ndim(t) > 1 or (np.ndim(t) == 1 and np.shape(t)[0] != n):
            raise InputError(f"t must be a scalar or have shape (n,) = ({n},), got {np.shape(t)}")
        eps = np.broadcast_to(np.asarray(self.eps(t), dtype=np.float64).reshape(-1, 1), (n, 1))
        out = self._empty_evidence(obs, dtype, memory_budget)
        out[...] = (eps / (self.v - 1))[..., None]
        rows, cols = np.indices(obs.shape).reshape(2, -1)
        out[rows, cols, obs.ravel()] = np.broadcast_to(1.0 - eps, obs.shape).ravel()
        return out


class _EpsIdentity(UnitIntervalSchedule):
    """The eps-process's own clock: ``t`` is eps, in ``[0, 1]`` (``alpha`` depends on ``v``)."""

    name = "eps"

    def _alpha(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - EpsProcess.alpha owns it
        raise NotImplementedError("the eps clock's alpha depends on v: use EpsProcess.alpha")


# -- the Gaussian diffusion of one-hot leaves: one implementation, shared with hiergrammar.noise --
def diffuse(x: np.ndarray, v: int, abar: Any, rng: np.random.Generator) -> np.ndarray:
    """``x_t = sqrt(abar) e_x + sqrt(1 - abar) eta``, ``eta ~ N(0, I_v)`` per leaf, for checked
    integer leaves ``x`` ``(n, d)`` and a checked ``abar`` (a float, or ``(n, 1, 1)``).

    The one implementation behind :meth:`GaussianProcess.corrupt` and
    :func:`hiergrammar.noise.diffuse_onehot` (which checks its arguments its own way): the same
    generator state draws the same ``eta``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` integer leaves in ``[0, v)``.
    v : int
        Vocabulary size.
    abar : float or numpy.ndarray
        Noise level(s) in ``[0, 1]``: a scalar or ``(n, 1, 1)``.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        ``(n, d, v)`` float64.

    Examples
    --------
    >>> diffuse(np.array([[1]]), 3, 1.0, np.random.default_rng(0)).tolist()   # no noise
    [[[0.0, 1.0, 0.0]]]
    """
    n, d = x.shape
    out = rng.standard_normal((n, d, v))
    out *= np.sqrt(1.0 - abar)
    signal = np.broadcast_to(np.sqrt(abar), (n, 1, 1))[:, 0, 0]
    out[np.arange(n)[:, None], np.arange(d)[None, :], x] += signal[:, None]
    return out


def gaussian_posterior(x_t: np.ndarray, abar: Any) -> np.ndarray:
    """The exact per-leaf posterior ``softmax_b(sqrt(abar) x_t[b] / (1 - abar))`` (eq. 4) of
    checked real ``x_t`` ``(n, d, v)`` at a checked ``abar`` (a float, or ``(n, 1, 1)``); the
    one-hot argmax where ``abar = 1``.

    The one implementation behind :meth:`GaussianProcess.leaf_likelihood` and
    :func:`hiergrammar.noise.leaf_posterior`.

    Parameters
    ----------
    x_t : numpy.ndarray
        ``(n, d, v)`` float64, finite.
    abar : float or numpy.ndarray
        Noise level(s) in ``[0, 1]``: a scalar or ``(n, 1, 1)``.

    Returns
    -------
    numpy.ndarray
        ``(n, d, v)`` float64, each row a probability vector.

    Raises
    ------
    InputError
        When the logits ``sqrt(abar) x_t / (1 - abar)`` overflow.

    Examples
    --------
    >>> gaussian_posterior(np.array([[[0.2, 3.0, -1.0]]]), 1.0).tolist()
    [[[0.0, 1.0, 0.0]]]
    """
    from scipy.special import softmax

    n, d, _ = x_t.shape
    clean = np.broadcast_to(np.asarray(abar) >= 1.0, (n, 1, 1))[:, 0, 0]  # (n,)
    if clean.all():
        out = np.zeros(x_t.shape)
        out[np.arange(n)[:, None], np.arange(d)[None, :], x_t.argmax(-1)] = 1.0
        return out
    noisy_abar = np.where(np.asarray(abar) >= 1.0, 0.0, abar) if clean.any() else abar
    with np.errstate(over="ignore"):
        logits = np.sqrt(noisy_abar) * x_t / (1.0 - noisy_abar)
    if logits.size and not np.isfinite(logits).all():
        shown = abar if np.ndim(abar) == 0 else "per sample"
        raise InputError(
            f"x_t * sqrt(alpha_bar) / (1 - alpha_bar) overflows at alpha_bar={shown!r}: "
            "x_t is too large for this noise level"
        )
    out = softmax(logits, axis=-1)
    if clean.any():  # abar = 1: the observation is exactly the one-hot leaf
        rows = np.flatnonzero(clean)
        out[rows] = 0.0
        out[rows[:, None], np.arange(d)[None, :], x_t[rows].argmax(axis=-1)] = 1.0
    return out


class GaussianProcess(Process):
    """Diffusion of the one-hot leaves (eqs. 1-4), with the paper's time conventions.

    Parameters
    ----------
    v : int
        Leaf vocabulary size, ``v >= 2``.
    schedule : str or Schedule, default ``"continuous"``
        ``"continuous"``: ``abar = exp(-2t)``, ``t >= 0``; ``"ddpm"``: integer step ``t`` of the
        linear-beta DDPM chain respaced to 250 of 1000 steps (``t = 0`` clean); or any
        :class:`~hiergrammar.schedules.Schedule`.

    Examples
    --------
    >>> proc = GaussianProcess(v=4)
    >>> obs = proc.corrupt(np.array([[0, 3]]), t=0.1, seed=0)
    >>> obs.shape                                   # (n, d, v) noisy vectors
    (1, 2, 4)
    >>> proc.leaf_likelihood(obs, t=0.1).sum(-1).round(12).tolist()
    [[1.0, 1.0]]
    """

    default_schedule = "continuous"
    name = "gaussian"

    def observation_bytes(self, d: int) -> int:
        """Bytes of one string's observation: ``(d, v)`` float64 noisy vectors.

        Examples
        --------
        >>> GaussianProcess(v=4).observation_bytes(2)
        64
        """
        return 8 * int(d) * self.v

    def corrupt(
        self,
        x: np.ndarray,
        t: float | np.ndarray,
        seed: int | np.random.Generator | None = 0,
        *,
        memory_budget: int | str | None = None,
    ) -> np.ndarray:
        """``x_t = sqrt(abar) e_x + sqrt(1 - abar) eta``, ``eta ~ N(0, I_v)`` per leaf.

        The same seed draws the same ``eta`` as :func:`hiergrammar.noise.diffuse_onehot`.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n, d)`` integer leaves in ``[0, v)``.
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        seed : int, Generator or None
            Seed of ``eta``.
        memory_budget : int or str, optional
            Bound on the ``(n, d, v)`` observation.

        Returns
        -------
        numpy.ndarray
            ``(n, d, v)`` float64.

        Raises
        ------
        InputError
            For bad arguments or an array above the memory budget.

        Examples
        --------
        >>> GaussianProcess(v=3).corrupt(np.array([[2]]), t=0.0)[0, 0].tolist() == [0, 0, 1]
        True
        """
        x = check_leaves("x", x, self.v)
        n, d = x.shape
        abar = self._alpha_per_sample(t, n)[..., None]  # (n, 1, 1)
        check_memory(
            f"the Gaussian observation (n, d, v) = ({n}, {d}, {self.v})",
            2 * _evidence_bytes(n, d, self.v, np.float64),
            memory_budget,
        )
        return diffuse(x, self.v, abar, make_rng(seed))

    def leaf_likelihood(
        self,
        observation: np.ndarray,
        t: float | np.ndarray,
        *,
        dtype: type = np.float64,
        memory_budget: int | str | None = None,
    ) -> np.ndarray:
        """Exact per-leaf posterior ``softmax_b(sqrt(abar) x_t[b] / (1 - abar))`` (eq. 4).

        It is ``P(x_t | x_0 = e_b)`` normalised over ``b`` leaf by leaf; at ``abar = 1`` it is
        the one-hot argmax, at ``abar = 0`` uniform.

        Parameters
        ----------
        observation : numpy.ndarray
            ``(n, d, v)`` real.
        t : float or numpy.ndarray
            A time, or one per sample ``(n,)``.
        dtype : np.float32 or np.float64
        memory_budget : int or str, optional
            Bound on the ``(n, d, v)`` array.

        Returns
        -------
        numpy.ndarray
            ``(n, d, v)``; each row sums to 1.

        Raises
        ------
        InputError
            For bad arguments or an array above the memory budget.

        Examples
        --------
        >>> GaussianProcess(v=2).leaf_likelihood(np.array([[[0.3, -0.1]]]), t=0.0)[0, 0]
        array([1., 0.])
        """
        obs = np.asarray(observation)
        if obs.ndim != 3 or obs.shape[-1] != self.v:
            raise InputError(
                f"observation must have shape (n, d, v) = (n, d, {self.v}), got {obs.shape}"
            )
        if obs.dtype == bool or not np.issubdtype(obs.dtype, np.number) or np.iscomplexobj(obs):
            raise InputError(f"observation must hold real numbers, got dtype {obs.dtype}")
        if obs.size and not np.isfinite(obs).all():
            raise InputError("observation must be finite (it holds NaN or inf)")
        dtype = _check_dtype(dtype)
        n, d, _ = obs.shape
        abar = self._alpha_per_sample(t, n)[..., None]  # (n, 1, 1)
        check_memory(
            f"the leaf likelihood (n, d, v) = ({n}, {d}, {self.v})",
            2 * _evidence_bytes(n, d, self.v, np.float64),
            memory_budget,
        )
        return gaussian_posterior(obs.astype(np.float64, copy=False), abar).astype(
            dtype, copy=False
        )
