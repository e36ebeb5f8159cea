"""The three diffusion families, each on the matching process of :mod:`hiergrammar.noise`.

A family bundles what training, the denoisers and the sampler share: the forward process (so
learned and exact models see one and the same corruption, drawn by ``process.corrupt``), how
training draws times, how an observation becomes a network input, the training objective
(:mod:`~hiergrammar.vision.grammar_diffusion.objectives`) and the pure-noise observation that
generation starts from.

* :class:`MaskedDiffusion`: absorbing noise, :class:`~hiergrammar.processes.MaskingProcess`
  (``t`` in ``[0, 1]``, default ``alpha = 1 - t``); the MDLM/MD4 continuous-time ELBO; input
  tokens ``(n, d)`` with MASK ``= v``.
* :class:`UniformDiffusion`: uniform resampling, :class:`~hiergrammar.processes.UniformProcess`
  (``t`` in ``[0, 1]``); the ``x_0``-prediction cross-entropy; input tokens ``(n, d)``.
* :class:`GaussianDiffusion`: DDPM on one-hot leaves,
  :class:`~hiergrammar.processes.GaussianProcess` on the linear-beta chain of diffusers'
  ``DDPMScheduler`` (integer ``t = 1..T``; process step ``t`` is the scheduler's timestep index
  ``t - 1``, both having ``abar = prod_{k < t} (1 - beta_k)``); the ``x_0``-prediction
  cross-entropy; input vectors ``(n, d, v)``.

``config`` is JSON and :func:`make_diffusion` rebuilds a family from it (checkpoints store it).

Examples
--------
>>> import numpy as np
>>> fam = MaskedDiffusion(v=4)
>>> rng = np.random.default_rng(0)
>>> t = fam.training_times(3, rng)
>>> obs = fam.corrupt(np.zeros((3, 8), dtype=np.int64), t, rng)
>>> obs.shape, fam.network_input(obs).dtype
((3, 8), torch.int64)
>>> make_diffusion(**fam.config).config == fam.config
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from hiergrammar.vision.grammar_diffusion.objectives import (
    masked_elbo_loss,
    masked_elbo_weight,
    x0_cross_entropy_loss,
)

from hiergrammar.processes import GaussianProcess, MaskingProcess, Process, UniformProcess
from hiergrammar.schedules import DiscreteChain, UnitIntervalSchedule, make_schedule
from hiergrammar.validation import InputError, check_choice, check_float, check_int

__all__ = [
    "FAMILIES",
    "Diffusion",
    "GaussianDiffusion",
    "MaskedDiffusion",
    "UniformDiffusion",
    "make_diffusion",
]

#: Family names, as configs and the command line give them.
FAMILIES = ("masked", "uniform", "gaussian")

#: Smallest training time of the continuous families: the masked ELBO weight ``1/t`` diverges
#: at 0 (MDLM samples ``t`` in ``[1e-3, 1]`` for the same reason).
T_MIN = 1e-3


class Diffusion(ABC):
    """A diffusion family: a forward process plus what training and sampling need from it."""

    #: Family name (one of :data:`FAMILIES`).
    name: str = ""
    #: What the networks read (:data:`hiergrammar.vision.grammar_diffusion.models.INPUT_KINDS`).
    input_kind: str = ""
    process: Process

    @property
    def v(self) -> int:
        """Leaf vocabulary."""
        return self.process.v

    @property
    @abstractmethod
    def t_max(self) -> float:
        """The largest time (pure noise)."""

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON arguments of :func:`make_diffusion` that rebuild this family."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "family")
        return f"{type(self).__name__}({args})"

    @abstractmethod
    def training_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` times for one training batch."""

    def corrupt(self, x0: np.ndarray, t: np.ndarray | float, rng: np.random.Generator) -> Any:
        """The observation ``x_t`` of clean leaves ``x0`` ``(n, d)``: ``process.corrupt``.

        Parameters
        ----------
        x0 : numpy.ndarray
            ``(n, d)`` ints in ``[0, v)``.
        t : float or numpy.ndarray
            A time or one per sample.
        rng : numpy.random.Generator

        Returns
        -------
        numpy.ndarray
            ``(n, d)`` ints (``(n, d, v)`` floats for the Gaussian family).
        """
        return self.process.corrupt(x0, t, seed=rng)

    def network_input(self, observation: Any, device: Any = None) -> torch.Tensor:
        """The observation as a network input: int64 ``(n, d)`` tokens (float32 vectors
        ``(n, d, v)`` for the Gaussian family), on ``device``."""
        return torch.as_tensor(np.asarray(observation), dtype=torch.int64, device=device)

    def tau(self, t: Any) -> torch.Tensor:
        """Network time ``t / t_max`` in ``[0, 1]``, float32 ``(n,)``."""
        return (torch.as_tensor(t, dtype=torch.float64) / self.t_max).float()

    def counted_leaves(self, observation: torch.Tensor) -> torch.Tensor | None:
        """The leaves the denoising loss counts (None: all of them)."""
        return None

    def training_loss(
        self, logits: torch.Tensor, x0: torch.Tensor, observation: torch.Tensor, t: np.ndarray
    ) -> torch.Tensor:
        """The family's objective on one batch (see
        :mod:`~hiergrammar.vision.grammar_diffusion.objectives`)."""
        return x0_cross_entropy_loss(logits, x0)

    @abstractmethod
    def prior_observation(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of the pure-noise observation at ``t_max`` (where generation starts)."""

    def check_time(self, t: Any) -> float:
        """A scalar time of the process, checked."""
        if np.ndim(t) != 0:
            raise InputError(f"t must be one time (a scalar), got shape {np.shape(t)}")
        self.process.alpha(t)
        return float(t)


class _UnitIntervalDiffusion(Diffusion):
    """Families on ``t`` in ``[0, 1]`` with a continuous schedule."""

    def __init__(self, v: int, schedule: str = "linear"):
        if not isinstance(schedule, str):
            raise InputError(f"schedule must be a schedule name, got {schedule!r}")
        made = make_schedule(schedule)
        if not isinstance(made, UnitIntervalSchedule):
            raise InputError(
                f"schedule={schedule!r} is not a continuous schedule on [0, 1] "
                "(choose 'linear', 'cosine' or 'loglinear')"
            )
        self.schedule_name = schedule
        self.process = self._process(check_int("v", v, 2), made)

    @abstractmethod
    def _process(self, v: int, schedule: UnitIntervalSchedule) -> Process: ...

    @property
    def t_max(self) -> float:
        return 1.0

    @property
    def config(self) -> dict[str, Any]:
        return {"family": self.name, "v": self.v, "schedule": self.schedule_name}

    def training_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # Stratified over [T_MIN, 1] (one time per n-th of the interval, in random order): the
        # low-discrepancy sampler of MDLM/VDM, which lowers the variance of the weighted loss.
        n = check_int("n", n, 1)
        u = (rng.random() + np.arange(n)) / n
        return rng.permutation(T_MIN + (1.0 - T_MIN) * u)


class MaskedDiffusion(_UnitIntervalDiffusion):
    """Absorbing (masked) diffusion on :class:`~hiergrammar.processes.MaskingProcess`.

    Parameters
    ----------
    v : int
        Leaf vocabulary; the mask token is ``v``.
    schedule : {"linear", "cosine", "loglinear"}
        The masking schedule.

    Examples
    --------
    >>> fam = MaskedDiffusion(v=8, schedule="cosine")
    >>> fam.process, fam.mask
    (MaskingProcess(v=8, schedule='cosine'), 8)
    """

    name = "masked"
    input_kind = "masked"

    def _process(self, v: int, schedule: UnitIntervalSchedule) -> Process:
        return MaskingProcess(v, schedule=schedule)

    @property
    def mask(self) -> int:
        """The mask token ``v``."""
        return self.v

    def counted_leaves(self, observation: torch.Tensor) -> torch.Tensor:
        """The masked leaves: the loss of a masked model counts only those."""
        return observation == self.mask

    def training_loss(
        self, logits: torch.Tensor, x0: torch.Tensor, observation: torch.Tensor, t: np.ndarray
    ) -> torch.Tensor:
        weight = torch.as_tensor(masked_elbo_weight(self.process.schedule, t), dtype=torch.float32)
        return masked_elbo_loss(logits, x0, observation == self.mask, weight)

    def prior_observation(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        return np.full((n, d), self.mask, dtype=np.int64)


class UniformDiffusion(_UnitIntervalDiffusion):
    """Uniform discrete diffusion on :class:`~hiergrammar.processes.UniformProcess`.

    Parameters
    ----------
    v : int
        Leaf vocabulary.
    schedule : {"linear", "cosine", "loglinear"}

    Examples
    --------
    >>> UniformDiffusion(v=4).prior_observation(2, 3, np.random.default_rng(0)).shape
    (2, 3)
    """

    name = "uniform"
    input_kind = "tokens"

    def _process(self, v: int, schedule: UnitIntervalSchedule) -> Process:
        return UniformProcess(v, schedule=schedule)

    def prior_observation(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(self.v, size=(n, d))


class GaussianDiffusion(Diffusion):
    """DDPM on one-hot leaves: :class:`~hiergrammar.processes.GaussianProcess` on diffusers'
    linear-beta chain.

    Parameters
    ----------
    v : int
        Leaf vocabulary.
    num_train_steps : int
        Chain length ``T``; times are the integers ``1..T``.
    beta_start, beta_end : float
        The linear betas of ``DDPMScheduler`` (``0 < beta_start <= beta_end < 1``).

    Examples
    --------
    >>> fam = GaussianDiffusion(v=4, num_train_steps=50)
    >>> sched = fam.scheduler()
    >>> bool(np.allclose(sched.alphas_cumprod.numpy(), fam.process.alpha(np.arange(1, 51)),
    ...                  rtol=1e-5))             # scheduler index k is process step k + 1
    True
    """

    name = "gaussian"
    input_kind = "vectors"

    def __init__(
        self,
        v: int,
        num_train_steps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ):
        v = check_int("v", v, 2)
        self.num_train_steps = check_int("num_train_steps", num_train_steps, 1)
        self.beta_start = check_float(
            "beta_start", beta_start, 0.0, 1.0, low_open=True, high_open=True
        )
        self.beta_end = check_float("beta_end", beta_end, self.beta_start, 1.0, high_open=True)
        chain = DiscreteChain.ddpm(
            self.num_train_steps, self.beta_start, self.beta_end, num_steps=self.num_train_steps
        )
        self.process = GaussianProcess(v, schedule=chain)

    @property
    def t_max(self) -> float:
        return float(self.num_train_steps)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "v": self.v,
            "num_train_steps": self.num_train_steps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
        }

    def scheduler(self):
        """A fresh ``diffusers.DDPMScheduler`` of this chain, predicting ``x_0`` (``"sample"``).

        Returns
        -------
        diffusers.DDPMScheduler
        """
        from diffusers import DDPMScheduler

        return DDPMScheduler(
            num_train_timesteps=self.num_train_steps,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            beta_schedule="linear",
            prediction_type="sample",
            clip_sample=False,
            variance_type="fixed_small",
        )

    def training_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        n = check_int("n", n, 1)
        return rng.integers(1, self.num_train_steps + 1, size=n).astype(np.float64)

    def network_input(self, observation: Any, device: Any = None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(observation), dtype=torch.float32, device=device)

    def prior_observation(self, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n, d, self.v))

    def check_time(self, t: Any) -> float:
        t = super().check_time(t)
        if t < 1:
            raise InputError(f"t={t} violates 1 <= t <= {self.num_train_steps} (a chain step)")
        return t


def make_diffusion(family: str, **arguments: Any) -> Diffusion:
    """A diffusion family by name (``"masked"``, ``"uniform"``, ``"gaussian"``).

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    **arguments
        The family's constructor arguments (``v`` and its schedule).

    Returns
    -------
    Diffusion

    Raises
    ------
    InputError
        For an unknown family or bad arguments.

    Examples
    --------
    >>> make_diffusion("gaussian", v=4, num_train_steps=10).t_max
    10.0
    """
    family = check_choice("family", family, FAMILIES)
    cls = {"masked": MaskedDiffusion, "uniform": UniformDiffusion, "gaussian": GaussianDiffusion}
    try:
        return cls[family](**arguments)
    except TypeError as err:
        raise InputError(f"bad arguments for the {family} family: {err}") from None
