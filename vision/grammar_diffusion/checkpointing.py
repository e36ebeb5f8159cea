"""Training checkpoints of grammar denoisers: safetensors and JSON, nothing pickled.

A checkpoint folder holds one complete training state per saved step and a pointer to the
newest:

.. code-block:: text

    <folder>/latest.json                {"format": "hiergrammar.training", "format_version": 1,
                                         "step": 1200, "folder": "step-00001200"}
    <folder>/step-00001200/network/     a module folder (config.json + model.safetensors, see
                                         hiergrammar.vision.checkpoints), architecture
                                         "grammar_transformer" or "tree_unet"
    <folder>/step-00001200/optimizer.safetensors
                                        every tensor of the optimizer's state, named
                                        "state.<parameter index>.<name>" (Adam: step, exp_avg,
                                        exp_avg_sq)
    <folder>/step-00001200/state.json   step, the diffusion family's config, the training
                                        config, a digest of the training strings, the loss of
                                        every step so far, the optimizer's parameter groups and
                                        any non-tensor state

A step folder is written completely (``state.json`` last) before ``latest.json`` is replaced
atomically to point at it, and older step folders are removed afterwards; an interrupted save
leaves the previous checkpoint in force. The random draws of training step ``k`` depend on
``(seed, k)`` only (see :mod:`~hiergrammar.vision.grammar_diffusion.train`), so weights,
optimizer state and step are everything needed to continue exactly where training stopped.

:func:`load_trained_denoiser` rebuilds the trained network and its family as a
:class:`~hiergrammar.vision.grammar_diffusion.denoisers.LearnedDenoiser`.

Examples
--------
>>> import tempfile, torch
>>> net = torch.nn.Linear(2, 2)
>>> opt = torch.optim.Adam(net.parameters())
>>> net(torch.ones(1, 2)).sum().backward(); opt.step()
>>> tensors, meta = optimizer_to_tensors(opt)
>>> sorted(tensors)[:3]
['state.0.exp_avg', 'state.0.exp_avg_sq', 'state.0.step']
>>> fresh = torch.optim.Adam(net.parameters())
>>> restore_optimizer(fresh, tensors, meta)
>>> a, b = fresh.state_dict()["state"][0], opt.state_dict()["state"][0]
>>> bool(torch.equal(a["exp_avg"], b["exp_avg"]))
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hiergrammar.artifacts import atomic_open, save_json
from hiergrammar.validation import InputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TrainingCheckpoint",
    "data_digest",
    "load_trained_denoiser",
    "optimizer_to_tensors",
    "read_checkpoint",
    "restore_optimizer",
    "save_checkpoint",
]

FORMAT = "hiergrammar.training"
FORMAT_VERSION = 1
LATEST_NAME = "latest.json"
STATE_NAME = "state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
NETWORK_FOLDER = "network"
_STEP_FOLDER = re.compile(r"step-\d{8}")


def data_digest(x: np.ndarray) -> str:
    """SHA-256 of training strings (shape and int64 values): resuming checks the data.

    Examples
    --------
    >>> data_digest(np.zeros((2, 4), dtype=int)) == data_digest(np.zeros((2, 4), dtype=np.int32))
    True
    """
    array = np.ascontiguousarray(np.asarray(x, dtype=np.int64))
    digest = hashlib.sha256(json.dumps(list(array.shape)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise InputError(f"optimizer state value {value!r} is neither a tensor nor JSON")


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state as named tensors plus JSON metadata (no pickle).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer

    Returns
    -------
    tuple
        ``(tensors, meta)``: ``tensors["state.<i>.<name>"]`` (CPU, contiguous) and ``meta`` with
        ``param_groups`` and the non-tensor ``scalars`` of the per-parameter state.

    Raises
    ------
    InputError
        For a state value that is neither a tensor nor JSON.
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            key = f"state.{index}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars[key] = _jsonable(value)
    groups = [_jsonable(group) for group in state["param_groups"]]
    tuples = {
        name
        for group in state["param_groups"]
        for name, value in group.items()
        if isinstance(value, tuple)
    }
    return tensors, {"param_groups": groups, "scalars": scalars, "tuples": sorted(tuples)}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Load the state written by :func:`optimizer_to_tensors` into ``optimizer``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Built over the same parameters, in the same order.
    tensors, meta
        As returned by :func:`optimizer_to_tensors` (or read from a checkpoint).

    Raises
    ------
    InputError
        If the names do not fit (another optimizer or another model).
    """
    per_param: dict[int, dict[str, Any]] = {}
    for source in (tensors, meta.get("scalars", {})):
        for key, value in source.items():
            match = re.fullmatch(r"state\.(\d+)\.(\w+)", key)
            if match is None:
                raise InputError(f"optimizer state entry {key!r} is not 'state.<index>.<name>'")
            per_param.setdefault(int(match.group(1)), {})[match.group(2)] = value
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        for name in meta.get("tuples", []):
            if isinstance(group.get(name), list):
                group[name] = tuple(group[name])
        groups.append(group)
    try:
        optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise InputError(f"the optimizer state does not fit this optimizer: {err}") from None


@dataclass(frozen=True)
class TrainingCheckpoint:
    """The newest checkpoint of a folder: its step folder and its ``state.json``."""

    folder: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def optimizer_tensors(self) -> dict[str, torch.Tensor]:
        """The optimizer's tensors (safetensors only)."""
        from hiergrammar.vision.checkpoints import load_state_dict

        return load_state_dict(
            self.folder / OPTIMIZER_NAME, "optimizer state", safetensors_only=True
        )

    def network_state(self) -> dict[str, torch.Tensor]:
        """The network's weights (safetensors only)."""
        from hiergrammar.vision.checkpoints import WEIGHTS_NAME, load_state_dict

        path = self.folder / NETWORK_FOLDER / WEIGHTS_NAME
        return load_state_dict(path, "weights file", safetensors_only=True)


def save_checkpoint(
    folder: str | os.PathLike,
    *,
    network: torch.nn.Module,
    architecture: str,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write one training state into ``folder`` and point ``latest.json`` at it.

    Parameters
    ----------
    folder : str or os.PathLike
        The checkpoint folder (created if needed).
    network : torch.nn.Module
        The network (unwrapped), with a ``config`` property.
    architecture : str
        Its registered architecture name (``"grammar_transformer"``, ``"tree_unet"``).
    optimizer : torch.optim.Optimizer
    state : dict
        JSON training state; must hold ``"step"``.

    Returns
    -------
    pathlib.Path
        The step folder written.

    Raises
    ------
    InputError
        For a state that is not JSON or an architecture that does not fit the network.
    """
    from hiergrammar.vision.checkpoints import save_module
    from safetensors.torch import save as safetensors_bytes

    folder = Path(folder)
    step = int(state["step"])
    name = f"step-{step:08d}"
    target = folder / name
    if target.exists():  # a leftover of an interrupted save of this very step
        shutil.rmtree(target)
    save_module(network, target / NETWORK_FOLDER, architecture, network.config)
    tensors, meta = optimizer_to_tensors(optimizer)
    with atomic_open(target / OPTIMIZER_NAME, "wb") as handle:
        handle.write(safetensors_bytes(tensors, metadata={"format": FORMAT}))
    full = dict(state, optimizer=meta, format=FORMAT, format_version=FORMAT_VERSION)
    save_json(target / STATE_NAME, full)
    save_json(
        folder / LATEST_NAME,
        {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "folder": name},
    )
    for other in folder.iterdir():
        if other.is_dir() and _STEP_FOLDER.fullmatch(other.name) and other.name != name:
            shutil.rmtree(other, ignore_errors=True)
    return target


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} {path} is missing") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{what} {path} is not a training checkpoint (format {FORMAT!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"{what} {path}: format_version={version!r} must be a positive integer")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{what} {path} has format_version {version}, newer than the {FORMAT_VERSION} this "
            "version of hiergrammar reads: upgrade hiergrammar"
        )
    return data


def read_checkpoint(folder: str | os.PathLike) -> TrainingCheckpoint | None:
    """The newest checkpoint in ``folder``, or None when it holds none.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    TrainingCheckpoint or None

    Raises
    ------
    InputError
        For a damaged pointer or state file, or a pointer to a missing step folder.
    """
    folder = Path(folder)
    latest = folder / LATEST_NAME
    if not latest.is_file():
        return None
    pointer = _read_json(latest, "checkpoint pointer")
    name = pointer.get("folder")
    if not isinstance(name, str) or not _STEP_FOLDER.fullmatch(name):
        raise InputError(f"checkpoint pointer {latest}: 'folder' must be 'step-NNNNNNNN'")
    state = _read_json(folder / name / STATE_NAME, "training state")
    if state.get("step") != pointer.get("step"):
        raise InputError(f"{folder / name / STATE_NAME} does not hold the step {latest} names")
    return TrainingCheckpoint(folder=folder / name, state=state)


def load_trained_denoiser(folder: str | os.PathLike, device: Any = "cpu"):
    """The trained denoiser of a checkpoint folder (its newest step).

    Parameters
    ----------
    folder : str or os.PathLike
        A folder written by :func:`~hiergrammar.vision.grammar_diffusion.train.train_denoiser`
        (or a step folder inside it).
    device : str or torch.device
        Where to put the network.

    Returns
    -------
    LearnedDenoiser
        The network in eval mode and its diffusion family.

    Raises
    ------
    InputError
        If the folder holds no checkpoint or a damaged one.
    """
    from hiergrammar.vision.checkpoints import load_module
    from hiergrammar.vision.grammar_diffusion.denoisers import LearnedDenoiser
    from hiergrammar.vision.grammar_diffusion.diffusions import make_diffusion

    folder = Path(folder)
    checkpoint = read_checkpoint(folder)
    if checkpoint is None:
        if (folder / STATE_NAME).is_file():
            checkpoint = TrainingCheckpoint(folder, _read_json(folder / STATE_NAME, "state"))
        else:
            raise InputError(f"{folder} holds no training checkpoint ({LATEST_NAME} is missing)")
    network = load_module(checkpoint.folder / NETWORK_FOLDER, device=device)
    diffusion = make_diffusion(**checkpoint.state["diffusion"])
    return LearnedDenoiser(network, diffusion)
