"""Noise schedules: the map from a time ``t`` to ``alpha(t)``, the weight of the clean signal.

A schedule is what the noise processes of :mod:`hiergrammar.processes` share: they differ in
*how* they destroy a leaf, the schedule says *how much* is left at time ``t``. Three kinds:

* **Unit-interval schedules** (continuous ``t`` in ``[0, 1]``, ``alpha(0) = 1``,
  ``alpha(1) = 0``), the ones of discrete (masked and uniform) diffusion:

  - ``"linear"``: ``alpha(t) = 1 - t``;
  - ``"cosine"``: ``alpha(t) = 1 - cos(pi/2 (1 - t))``, the cosine masking schedule of masked
    generative models (MaskGIT's mask ratio ``cos(pi/2 r)`` read in forward time; MD4);
  - ``"loglinear"``: the log-linear schedule of masked diffusion language models (SEDD, MDLM):
    the total noise ``sigma(t) = -log(1 - (1 - eps) t)`` grows log-linearly and
    ``alpha(t) = exp(-sigma(t)) = 1 - (1 - eps) t``. With the default ``eps = 0`` it ends at
    ``alpha(1) = 0`` and its ``alpha`` equals the linear schedule's (what differs is the
    parametrisation by ``sigma``, which a learned model conditions on); MDLM's numerical guard
    ``eps = 1e-3`` stops it at ``alpha(1) = eps``.

* **Continuous Gaussian time** (``"continuous"``): ``alpha(t) = exp(-2t)`` for ``t >= 0``, the
  constant-beta diffusion of the paper's RHM figures (``abar`` in :mod:`hiergrammar.noise`).

* **Discrete chains** (:class:`DiscreteChain`): integer steps ``t = 0..num_steps`` of a chain of
  ``num_train_steps`` training steps, respaced to ``num_steps`` as ADM does (250 of 1000), with
  ``alpha(0) = 1`` (no noise). ``DiscreteChain.ddpm()`` is the linear-beta DDPM of the Gaussian
  case (``"ddpm"``); ``DiscreteChain.from_schedule("linear")`` discretises a unit-interval
  schedule, training step ``k = 1..T`` sitting at ``t = k / T``, so the chain's last step has
  ``alpha = 0``.

Examples
--------
>>> make_schedule("linear").alpha(0.25)
0.75
>>> make_schedule("cosine").alpha([0.0, 1.0]).tolist()
[1.0, 0.0]
>>> chain = DiscreteChain.from_schedule("linear", num_train_steps=1000, num_steps=250)
>>> float(chain.alpha(0)), float(chain.alpha(250))      # index 0 is clean, the last is pure noise
(1.0, 0.0)
>>> round(float(DiscreteChain.ddpm().alpha(250)), 6)      # the Gaussian DDPM chain's last abar
4e-05
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from hiergrammar.validation import InputError, check_choice, check_float, check_int

__all__ = [
    "SCHEDULES",
    "ContinuousGaussianSchedule",
    "CosineSchedule",
    "DiscreteChain",
    "LinearSchedule",
    "LogLinearSchedule",
    "Schedule",
    "UnitIntervalSchedule",
    "make_schedule",
]


def _time_array(t: float | np.ndarray) -> np.ndarray:
    """``t`` as a float64 array of any shape, refusing non-real and non-finite values."""
    array = np.asarray(t)
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise InputError(f"t must be a real number or an array of them, got {t!r}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputError("t must be finite (it holds NaN or inf)")
    return array


def _as_output(value: np.ndarray, t: float | np.ndarray) -> float | np.ndarray:
    """A Python float for scalar ``t``, else an array of ``t``'s shape."""
    return float(value) if np.ndim(t) == 0 else value


class Schedule(ABC):
    """The map ``t -> alpha(t)``: 1 at ``t = 0`` and non-increasing.

    Subclasses define :meth:`check_t` (the valid times) and :meth:`_alpha`.
    """

    #: Short name used in reports and by :func:`make_schedule`.
    name: str = ""
    #: Whether ``t`` counts integer steps of a chain.
    discrete: bool = False

    @property
    @abstractmethod
    def t_max(self) -> float:
        """The largest valid time (``inf`` when unbounded)."""

    @abstractmethod
    def check_t(self, t: float | np.ndarray) -> np.ndarray:
        """``t`` as a float64 array after checking its bounds; :class:`InputError` otherwise."""

    @abstractmethod
    def _alpha(self, t: np.ndarray) -> np.ndarray:
        """``alpha`` of checked times."""

    def alpha(self, t: float | np.ndarray) -> float | np.ndarray:
        """The weight of the clean signal at time ``t`` (scalar or array; same shape back).

        Parameters
        ----------
        t : float or array_like
            Time(s) within the schedule's bounds.

        Returns
        -------
        float or numpy.ndarray
            ``alpha(t)`` in ``[0, 1]``: a float for scalar ``t``, else an array of ``t``'s shape.

        Raises
        ------
        InputError
            If a time is outside the schedule's bounds (the message names them).

        Examples
        --------
        >>> LinearSchedule().alpha(np.array([0.0, 0.5])).tolist()
        [1.0, 0.5]
        """
        checked = self.check_t(t)
        return _as_output(np.clip(self._alpha(checked), 0.0, 1.0), t)


class UnitIntervalSchedule(Schedule):
    """A schedule on ``t`` in ``[0, 1]``."""

    @property
    def t_max(self) -> float:
        return 1.0

    def check_t(self, t: float | np.ndarray) -> np.ndarray:
        array = _time_array(t)
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            bad = array[(array < 0) | (array > 1)].flat[0]
            raise InputError(f"t={bad} violates 0 <= t <= 1 (the {self.name} schedule)")
        return array


@dataclass(frozen=True)
class LinearSchedule(UnitIntervalSchedule):
    """``alpha(t) = 1 - t`` on ``[0, 1]``.

    Examples
    --------
    >>> LinearSchedule().alpha(0.3)
    0.7
    """

    name: str = field(default="linear", init=False)

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        return 1.0 - t


@dataclass(frozen=True)
class CosineSchedule(UnitIntervalSchedule):
    """``alpha(t) = 1 - cos(pi/2 (1 - t))`` on ``[0, 1]``: the cosine masking schedule.

    It destroys tokens quickly at first (slope ``-pi/2`` at ``t = 0``) and slowly at the end.
    Computed as ``1 - sin(pi t / 2)``, which is exactly 1 at ``t = 0`` and 0 at ``t = 1``.

    Examples
    --------
    >>> round(CosineSchedule().alpha(0.5), 6)
    0.292893
    """

    name: str = field(default="cosine", init=False)

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        return 1.0 - np.sin(0.5 * np.pi * t)


@dataclass(frozen=True)
class LogLinearSchedule(UnitIntervalSchedule):
    """The log-linear schedule of SEDD and MDLM: ``sigma(t) = -log(1 - (1 - eps) t)``.

    Parameters
    ----------
    eps : float, default 0
        The end point ``alpha(1) = eps``, ``0 <= eps < 1``. MDLM trains with ``eps = 1e-3`` to
        keep ``sigma`` finite; the default 0 meets ``alpha(1) = 0``.

    Examples
    --------
    >>> LogLinearSchedule().alpha(0.25)
    0.75
    >>> round(float(LogLinearSchedule(eps=1e-3).sigma(1.0)), 4)   # -log(1e-3)
    6.9078
    """

    eps: float = 0.0
    name: str = field(default="loglinear", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", check_float("eps", self.eps, 0.0, 1.0, high_open=True))

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - self.eps) * t

    def sigma(self, t: float | np.ndarray) -> float | np.ndarray:
        """Total noise ``sigma(t) = -log alpha(t)`` (``inf`` at ``t = 1`` when ``eps = 0``).

        Parameters
        ----------
        t : float or array_like
            Time(s) in ``[0, 1]``.

        Returns
        -------
        float or numpy.ndarray
            ``sigma(t)``, shaped like ``t``.

        Examples
        --------
        >>> round(LogLinearSchedule().sigma(0.5), 6)   # log 2
        0.693147
        """
        alpha = np.asarray(self.alpha(t), dtype=np.float64)
        with np.errstate(divide="ignore"):
            return _as_output(-np.log(alpha), t)


@dataclass(frozen=True)
class ContinuousGaussianSchedule(Schedule):
    """``alpha(t) = exp(-2t)`` for ``t >= 0``: the paper's constant-beta continuous time.

    Examples
    --------
    >>> round(ContinuousGaussianSchedule().alpha(0.5), 6)   # exp(-1)
    0.367879
    """

    name: str = field(default="continuous", init=False)

    @property
    def t_max(self) -> float:
        return math.inf

    def check_t(self, t: float | np.ndarray) -> np.ndarray:
        array = _time_array(t)
        if array.size and array.min() < 0.0:
            raise InputError(f"t={array.min()} violates 0 <= t < inf (the continuous schedule)")
        return array

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        return np.exp(-2.0 * t)


def _respaced_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
    """Training timesteps (0-based) ADM's ``space_timesteps`` keeps: evenly spaced, rounded."""
    from hiergrammar.noise import respaced_timesteps

    return respaced_timesteps(num_train_steps, num_steps)


@dataclass(frozen=True, eq=False)
class DiscreteChain(Schedule):
    """A discrete chain: ``alpha`` at integer step ``t = 0..num_steps`` (``alpha(0) = 1``).

    Build it with :meth:`from_schedule` or :meth:`ddpm`. ``train_alpha[k]`` is ``alpha`` after
    training step ``k + 1`` (``k = 0..num_train_steps-1``); the chain keeps the training steps
    :func:`hiergrammar.noise.respaced_timesteps` picks, so chain step ``t >= 1`` is training step
    ``respaced[t - 1] + 1``.

    Parameters
    ----------
    train_alpha : numpy.ndarray
        ``(num_train_steps,)`` non-increasing values in ``[0, 1]``.
    num_steps : int
        Length of the respaced chain, ``1 <= num_steps <= num_train_steps``.
    name : str
        Label in reports.

    Examples
    --------
    >>> chain = DiscreteChain.from_schedule("cosine", num_train_steps=10, num_steps=5)
    >>> chain.alpha(np.arange(6)).round(3).tolist()
    [1.0, 0.844, 0.546, 0.293, 0.049, 0.0]
    """

    train_alpha: np.ndarray
    num_steps: int
    name: str = "chain"
    discrete: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        train = np.asarray(self.train_alpha, dtype=np.float64)
        if train.ndim != 1 or train.size == 0:
            raise InputError(f"train_alpha must have shape (num_train_steps,), got {train.shape}")
        if not np.isfinite(train).all() or train.min() < 0 or train.max() > 1:
            raise InputError("train_alpha violates 0 <= alpha <= 1 (finite values)")
        num_steps = check_int("num_steps", self.num_steps, 1, train.size)
        object.__setattr__(self, "train_alpha", train)
        object.__setattr__(self, "num_steps", num_steps)
        kept = train[_respaced_timesteps(train.size, num_steps)]
        object.__setattr__(self, "_table", np.concatenate([[1.0], kept]))

    @classmethod
    def from_schedule(
        cls,
        schedule: str | UnitIntervalSchedule = "linear",
        num_train_steps: int = 1000,
        num_steps: int | None = None,
    ) -> DiscreteChain:
        """Discretise a unit-interval schedule: training step ``k`` sits at ``t = k / T``.

        Parameters
        ----------
        schedule : str or UnitIntervalSchedule
            ``"linear"``, ``"cosine"``, ``"loglinear"`` or an instance.
        num_train_steps : int
            ``T >= 1``.
        num_steps : int, optional
            Respaced length (default ``T``: no respacing).

        Returns
        -------
        DiscreteChain

        Examples
        --------
        >>> DiscreteChain.from_schedule("linear", 4).alpha([0, 1, 4]).tolist()
        [1.0, 0.75, 0.0]
        """
        base = make_schedule(schedule)
        if not isinstance(base, UnitIntervalSchedule):
            raise InputError(
                f"schedule={base.name!r} is not a unit-interval schedule "
                f"(choose from {list(_UNIT_SCHEDULES)})"
            )
        T = check_int("num_train_steps", num_train_steps, 1)
        steps = T if num_steps is None else num_steps
        train = np.asarray(base.alpha(np.arange(1, T + 1) / T), dtype=np.float64)
        return cls(train_alpha=train, num_steps=steps, name=f"{base.name} chain")

    @classmethod
    def ddpm(
        cls,
        num_train_steps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        num_steps: int = 250,
    ) -> DiscreteChain:
        """The linear-beta DDPM chain of the Gaussian case, respaced (default 250 of 1000).

        ``alpha(t)`` equals :func:`hiergrammar.noise.chain_alpha_bar` ``(t, num_steps)``.

        Parameters
        ----------
        num_train_steps : int
            Training steps ``T >= 1``.
        beta_start, beta_end : float
            ``0 < beta_start <= beta_end < 1``.
        num_steps : int
            Respaced length, ``1 <= num_steps <= T``.

        Returns
        -------
        DiscreteChain

        Examples
        --------
        >>> from hiergrammar.noise import chain_alpha_bar
        >>> float(DiscreteChain.ddpm().alpha(100)) == float(chain_alpha_bar(100))
        True
        """
        T = check_int("num_train_steps", num_train_steps, 1)
        beta_start = check_float("beta_start", beta_start, 0.0, 1.0, low_open=True, high_open=True)
        beta_end = check_float("beta_end", beta_end, beta_start, 1.0, high_open=True)
        betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
        return cls(train_alpha=np.cumprod(1.0 - betas), num_steps=num_steps, name="ddpm")

    @property
    def t_max(self) -> float:
        return float(self.num_steps)

    def check_t(self, t: float | np.ndarray) -> np.ndarray:
        array = _time_array(t)
        if array.size and not np.array_equal(array, np.round(array)):
            raise InputError(f"t must be an integer step of the {self.name}, got {t!r}")
        if array.size and (array.min() < 0 or array.max() > self.num_steps):
            raise InputError(f"t violates 0 <= t <= num_steps = {self.num_steps} ({self.name})")
        return array

    def _alpha(self, t: np.ndarray) -> np.ndarray:
        return self._table[t.astype(np.int64)]


_UNIT_SCHEDULES = {
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "loglinear": LogLinearSchedule,
}

#: Names :func:`make_schedule` knows.
SCHEDULES = (*_UNIT_SCHEDULES, "continuous", "ddpm")


def make_schedule(schedule: str | Schedule) -> Schedule:
    """A schedule from its name (see :data:`SCHEDULES`), or the instance itself.

    Parameters
    ----------
    schedule : str or Schedule
        ``"linear"``, ``"cosine"``, ``"loglinear"``, ``"continuous"`` (``exp(-2t)``), ``"ddpm"``
        (:meth:`DiscreteChain.ddpm` with its defaults) or a :class:`Schedule`.

    Returns
    -------
    Schedule

    Raises
    ------
    InputError
        For an unknown name or a non-schedule object.

    Examples
    --------
    >>> make_schedule("loglinear")
    LogLinearSchedule(eps=0.0, name='loglinear')
    """
    if isinstance(schedule, Schedule):
        return schedule
    name = check_choice("schedule", schedule, SCHEDULES)
    if name in _UNIT_SCHEDULES:
        return _UNIT_SCHEDULES[name]()
    if name == "continuous":
        return ContinuousGaussianSchedule()
    return DiscreteChain.ddpm()
