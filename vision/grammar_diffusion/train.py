"""Train a denoiser network on strings of a grammar: seeded, resumable, multi-GPU by accelerate.

:func:`train_denoiser` runs ``config.steps`` optimiser steps of AdamW on the family's objective
(:meth:`~hiergrammar.vision.grammar_diffusion.diffusions.Diffusion.training_loss`). Step ``k``
draws its batch (indices into the training strings, with replacement), its times and its
corruption from ``numpy.random.default_rng([seed, k])`` alone, and the learning rate is a
function of ``k`` (linear warm-up, cosine decay), so training is reproducible and a run resumed
from a checkpoint continues exactly as the uninterrupted run would (a test compares the weights).

Multi-GPU: the work runs through ``accelerate``. Under ``accelerate launch`` every process
draws the same batch and keeps its share (rows ``rank::world``); gradients are averaged across
processes, so the update is the one of the whole batch. Without a launcher it is one process on
the CPU (or one GPU with ``device="cuda"``). Process 0 writes the checkpoints.

Checkpoints (``checkpoint_dir``): see :mod:`~hiergrammar.vision.grammar_diffusion.checkpointing`
(safetensors weights and optimizer state, JSON state). ``resume=True`` continues from the newest
one when the folder has one (after checking that family, network, data and training settings are
those of the checkpoint; ``steps`` may grow); a folder holding a checkpoint is refused without
``resume``.

Examples
--------
>>> from hiergrammar import RHM
>>> from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
>>> from hiergrammar.vision.grammar_diffusion.models import TreeUNet
>>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
>>> net = TreeUNet(v=4, s=2, L=2, input_kind="masked", width=16, seed=0)
>>> result = train_denoiser(net, MaskedDiffusion(v=4), rhm.sample(64, seed=1).x,
...                         TrainingConfig(steps=20, batch_size=16, seed=0), num_threads=1)
>>> len(result.losses), result.steps_done
(20, 20)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hiergrammar.vision.grammar_diffusion.checkpointing import (
    data_digest,
    read_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from hiergrammar.vision.grammar_diffusion.diffusions import Diffusion
from torch import nn

from hiergrammar.artifacts import progress
from hiergrammar.validation import InputError, check_float, check_int, check_seed

__all__ = [
    "TrainingConfig",
    "TrainingResult",
    "TrainingDivergedError",
    "architecture_of",
    "train_denoiser",
]

#: Training settings a resumed run may change (the others must match the checkpoint).
_RESUMABLE_CHANGES = ("steps", "checkpoint_every")


class TrainingDivergedError(InputError, FloatingPointError):
    """The training loss became NaN or infinite: the settings (most often a learning rate too
    large for the network) make the optimiser diverge.

    An :class:`~hiergrammar.validation.InputError` (the command line prints it as one line and
    exits with code 2) and a :class:`FloatingPointError`. ``step`` is the 0-based step whose
    loss was not finite, ``loss`` that loss and ``lr`` the learning rate of that step.

    Examples
    --------
    >>> err = TrainingDivergedError(step=3, loss=float("nan"), lr=0.5)
    >>> err.step, isinstance(err, FloatingPointError)
    (3, True)
    >>> print(err)  # doctest: +ELLIPSIS
    training diverged at step 3 (the loss became nan at learning rate 0.5); lower the ...
    """

    def __init__(self, step: int, loss: float, lr: float):
        self.step, self.loss, self.lr = int(step), float(loss), float(lr)
        super().__init__(
            f"training diverged at step {self.step} (the loss became {self.loss} at learning "
            f"rate {self.lr:g}); lower the learning rate"
        )


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings.

    Attributes
    ----------
    steps : int
        Optimiser steps in all.
    batch_size : int
        Strings per step (over all processes).
    lr : float
        Peak learning rate of AdamW.
    warmup_steps : int
        Linear warm-up from 0 to ``lr``.
    final_lr_fraction : float
        The cosine decay ends at ``lr * final_lr_fraction``.
    weight_decay : float
        AdamW's decoupled weight decay.
    grad_clip : float
        Clip the gradient norm to this (0: no clipping).
    seed : int
        Seed of every draw of training.
    checkpoint_every : int
        Save every this many steps (0: only at the end); needs ``checkpoint_dir``.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, None, low_open=True)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_float("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("grad_clip", self.grad_clip, 0.0)
        check_seed("seed", self.seed, allow_generator=False)
        if self.seed is None:
            raise InputError("seed must be a non-negative integer (training is reproducible)")
        check_int("checkpoint_every", self.checkpoint_every, 0)

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based).

        Examples
        --------
        >>> c = TrainingConfig(steps=100, lr=1.0, warmup_steps=10, final_lr_fraction=0.0)
        >>> c.lr_at(0), c.lr_at(9), round(c.lr_at(55), 6)
        (0.1, 1.0, 0.5)
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress_ = min(1.0, (step - self.warmup_steps) / span)
        low = self.final_lr_fraction
        return self.lr * (low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress_)))


@dataclass
class TrainingResult:
    """What :func:`train_denoiser` returns.

    Attributes
    ----------
    network : torch.nn.Module
        The trained network (unwrapped from accelerate), in eval mode.
    diffusion : Diffusion
    config : TrainingConfig
    losses : list of float
        The training loss of every step, from step 0 (a resumed run includes the steps before).
    steps_done : int
    seconds : float
        Wall-clock seconds of this call's training steps.
    checkpoint : pathlib.Path or None
        The last step folder written.
    """

    network: nn.Module
    diffusion: Diffusion
    config: TrainingConfig
    losses: list[float] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0
    checkpoint: Path | None = None

    def denoiser(self):
        """The trained network as a
        :class:`~hiergrammar.vision.grammar_diffusion.denoisers.LearnedDenoiser`."""
        from hiergrammar.vision.grammar_diffusion.denoisers import LearnedDenoiser

        return LearnedDenoiser(self.network, self.diffusion)


def architecture_of(network: nn.Module) -> str:
    """The registered architecture name of a network of
    :mod:`~hiergrammar.vision.grammar_diffusion.models`.

    Examples
    --------
    >>> from hiergrammar.vision.grammar_diffusion.models import TreeUNet
    >>> architecture_of(TreeUNet(v=3, s=2, L=1, width=4))
    'tree_unet'
    """
    from hiergrammar.vision.grammar_diffusion.models import GrammarTransformer, TreeUNet

    if isinstance(network, TreeUNet):
        return "tree_unet"
    if isinstance(network, GrammarTransformer):
        return "grammar_transformer"
    raise InputError(
        f"network must be a GrammarTransformer or TreeUNet, got {type(network).__name__}"
    )


def _check_resume(state: dict[str, Any], expected: dict[str, Any], folder: Path) -> None:
    """Refuse to resume a checkpoint of another family, network, data or training setting."""
    problems = []
    for key in ("diffusion", "architecture", "network", "data"):
        if state.get(key) != expected[key]:
            problems.append(f"{key}: checkpoint {state.get(key)!r}, now {expected[key]!r}")
    saved = {k: v for k, v in state.get("training", {}).items() if k not in _RESUMABLE_CHANGES}
    now = {k: v for k, v in expected["training"].items() if k not in _RESUMABLE_CHANGES}
    if saved != now:
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        problems.append(f"training settings {changed} differ")
    if problems:
        raise InputError(
            f"cannot resume from {folder}: it was written for another run ("
            + "; ".join(problems)
            + ")"
        )
    if state["step"] > expected["training"]["steps"]:
        raise InputError(
            f"cannot resume from {folder}: it is at step {state['step']}, past "
            f"steps={expected['training']['steps']}"
        )


def _accelerator(device: str | torch.device | None):
    from accelerate import Accelerator

    if device is None:
        return Accelerator()
    from hiergrammar.vision.device import resolve_device

    return Accelerator(cpu=resolve_device(device).type == "cpu")


def train_denoiser(
    network: nn.Module,
    diffusion: Diffusion,
    x_train: np.ndarray,
    config: TrainingConfig = TrainingConfig(),
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device | None = "cpu",
    num_threads: int | None = None,
    show_progress: bool | None = None,
    accelerator: Any = None,
    until: int | None = None,
) -> TrainingResult:
    """Train ``network`` as a denoiser of ``diffusion`` on the strings ``x_train``.

    Parameters
    ----------
    network : torch.nn.Module
        A :class:`~hiergrammar.vision.grammar_diffusion.models.GrammarTransformer` or
        :class:`~hiergrammar.vision.grammar_diffusion.models.TreeUNet` built for the family's
        ``input_kind``. It is trained in place.
    diffusion : Diffusion
        The family (process and objective).
    x_train : numpy.ndarray
        ``(P, d)`` training strings in ``[0, v)``.
    config : TrainingConfig
    checkpoint_dir : str or os.PathLike, optional
        Where to save checkpoints (every ``config.checkpoint_every`` steps and at the end).
    resume : bool
        Continue from the newest checkpoint of ``checkpoint_dir`` if it has one.
    device : str, torch.device or None
        ``"cpu"`` (default), ``"cuda"``, or None to let accelerate choose (what
        ``accelerate launch`` configured).
    num_threads : int, optional
        torch CPU threads during training (default ``min(2, cpu count)``).
    show_progress : bool, optional
        Progress bar (default: on a terminal, see :func:`hiergrammar.artifacts.progress`).
    accelerator : accelerate.Accelerator, optional
        Use this one instead of building one from ``device``.
    until : int, optional
        Stop after this many steps in all (``<= config.steps``), writing a checkpoint there if
        ``checkpoint_dir`` is given: a run to be continued later with ``resume=True`` (the
        learning-rate schedule is that of ``config.steps``).

    Returns
    -------
    TrainingResult

    Raises
    ------
    InputError
        For bad strings, a network for another input, a checkpoint folder of another run, or a
        folder holding a checkpoint without ``resume``.
    TrainingDivergedError
        If the training loss becomes NaN or infinite (an ``InputError`` too): the
        checkpoints written before that step stay.
    """
    from hiergrammar.vision.rhm_cnn import torch_threads

    from hiergrammar.processes import check_leaves

    if not isinstance(diffusion, Diffusion):
        raise InputError(f"diffusion must be a Diffusion, got {type(diffusion).__name__}")
    if not isinstance(config, TrainingConfig):
        raise InputError(f"config must be a TrainingConfig, got {type(config).__name__}")
    architecture = architecture_of(network)
    if network.input_kind != diffusion.input_kind:
        raise InputError(
            f"the network reads {network.input_kind!r} inputs but the {diffusion.name} family "
            f"gives {diffusion.input_kind!r}"
        )
    x_train = check_leaves("x_train", x_train, diffusion.v)
    if x_train.shape[0] == 0 or x_train.shape[1] != network.d:
        raise InputError(
            f"x_train must have shape (P, d) = (P >= 1, {network.d}), got {x_train.shape}"
        )
    expected = {
        "diffusion": diffusion.config,
        "architecture": architecture,
        "network": network.config,
        "data": {"n_train": int(x_train.shape[0]), "sha256": data_digest(x_train)},
        "training": dataclasses.asdict(config),
    }
    stop = config.steps if until is None else check_int("until", until, 1, config.steps)
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    checkpoint = read_checkpoint(folder) if folder is not None else None
    if checkpoint is not None and not resume:
        raise InputError(
            f"{folder} holds a checkpoint (step {checkpoint.step}): pass resume=True "
            "(--resume) to continue it, or choose another folder"
        )
    if resume and folder is None:
        raise InputError("resume=True needs a checkpoint_dir")

    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    start, losses = 0, []
    if checkpoint is not None:
        _check_resume(checkpoint.state, expected, checkpoint.folder)
        from hiergrammar.vision.checkpoints import load_weights

        load_weights(network, checkpoint.network_state(), checkpoint.folder, architecture)
        restore_optimizer(optimizer, checkpoint.optimizer_tensors(), checkpoint.state["optimizer"])
        start, losses = checkpoint.step, [float(x) for x in checkpoint.state["losses"]]

    accelerator = accelerator if accelerator is not None else _accelerator(device)
    model, opt = accelerator.prepare(network, optimizer)
    rank, world = accelerator.process_index, accelerator.num_processes
    target = accelerator.device
    x_all = torch.as_tensor(x_train)
    last_saved: Path | None = checkpoint.folder if checkpoint is not None else None
    began = time.perf_counter()
    with torch_threads(num_threads):
        model.train()
        steps = progress(
            range(start, stop),
            desc=f"train {architecture} ({diffusion.name})",
            total=max(0, stop - start),
            disable=None if show_progress is None else not show_progress,
        )
        for step in steps:
            rng = np.random.default_rng([config.seed, step])
            index = rng.integers(x_train.shape[0], size=config.batch_size)
            t = diffusion.training_times(config.batch_size, rng)
            observation = diffusion.corrupt(x_train[index], t, rng)
            mine = slice(rank, None, world)
            x0 = x_all[index[mine]].to(target)
            x_t = diffusion.network_input(observation[mine], device=target)
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step)
            logits = model(x_t, diffusion.tau(t[mine]).to(target))
            loss = diffusion.training_loss(logits, x0, x_t, t[mine])
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if config.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            value = float(accelerator.reduce(loss.detach(), reduction="mean"))
            if not math.isfinite(value):
                raise TrainingDivergedError(step, value, config.lr_at(step))
            losses.append(value)
            if hasattr(steps, "set_postfix") and step % 50 == 0:
                steps.set_postfix(loss=f"{value:.4f}")
            done = step + 1
            due = config.checkpoint_every and done % config.checkpoint_every == 0
            if folder is not None and (due or done == stop):
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    state = dict(expected, step=done, losses=losses)
                    last_saved = save_checkpoint(
                        folder,
                        network=accelerator.unwrap_model(model),
                        architecture=architecture,
                        optimizer=optimizer,
                        state=state,
                    )
    seconds = time.perf_counter() - began
    trained = accelerator.unwrap_model(model)
    trained.eval()
    return TrainingResult(
        network=trained,
        diffusion=diffusion,
        config=config,
        losses=losses,
        steps_done=max(stop, start),
        seconds=seconds,
        checkpoint=last_saved,
    )
