"""Weights from files, loaded without running anything the file holds.

A pickle can name any Python callable, and unpickling calls it: a planted ``.pt`` file runs its
payload the moment it is loaded. So nothing here unpickles Python objects. Weights are read as

* **safetensors** (recognised by content: an 8-byte header length, then a JSON header), or
* a **PyTorch state dict** (``torch.save(model.state_dict(), path)``), read with
  ``torch.load(weights_only=True)``, which accepts tensors, plain containers and numbers only.

A model is rebuilt from an *architecture name* plus its weights, never unpickled whole. A
*module folder* stores one:

.. code-block:: text

    <folder>/config.json        {"format": "hiergrammar.module", "format_version": 1,
                                 "architecture": "tree_cnn",
                                 "arguments": {"v": 8, "n_classes": 4, ...}}
    <folder>/model.safetensors  the state dict (tensor names as in model.state_dict())

``architecture`` is a name in a registry written in code (:func:`register_architecture`;
built in: ``tree_cnn``, :class:`hiergrammar.vision.rhm_cnn.TreeCNN`), and ``arguments`` are
the JSON keyword arguments of its constructor. :func:`save_module` writes a folder (weights
first, the config last, both atomically) after checking that the architecture rebuilt from the
config has the model's tensor names and shapes; :func:`load_module` rebuilds the model and
loads the weights. A config whose ``format_version`` is newer than :data:`FORMAT_VERSION` is
refused.

Every problem with a file (missing, a directory, empty, truncated, corrupt, holding Python
objects, tensors that do not fit the architecture) raises :class:`hiergrammar.InputError`
naming the file and what is wrong.

Examples
--------
>>> import tempfile, torch
>>> from hiergrammar.vision.rhm_cnn import TreeCNN
>>> model = TreeCNN(v=4, n_classes=2, s=2, L=2, width=8, seed=0)
>>> folder = save_module(model, tempfile.mkdtemp() + "/cnn", "tree_cnn", model.config)
>>> sorted(p.name for p in folder.iterdir())
['config.json', 'model.safetensors']
>>> again = load_module(folder)
>>> x = torch.zeros(1, 4, 4)
>>> bool(torch.equal(again(x), model(x)))
True
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hiergrammar.validation import InputError

if TYPE_CHECKING:  # torch is imported inside the functions
    import torch

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "MissingFileError",
    "architecture_names",
    "check_input_file",
    "load_module",
    "load_state_dict",
    "load_weights",
    "read_module_config",
    "register_architecture",
    "save_module",
]

#: ``format`` of a module folder's ``config.json``.
FORMAT = "hiergrammar.module"
#: The newest ``format_version`` this code reads (and the one it writes).
FORMAT_VERSION = 1
#: File names inside a module folder.
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class MissingFileError(InputError, FileNotFoundError):
    """A file or folder the caller named does not exist.

    Both an :class:`~hiergrammar.InputError` (the command line reports it in one line) and a
    :class:`FileNotFoundError`.
    """


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is an existing, non-empty file.

    Otherwise an :class:`~hiergrammar.InputError` naming ``path`` and ``what`` it should be
    (:class:`MissingFileError` when it does not exist).

    Examples
    --------
    >>> try:
    ...     check_input_file("/nonexistent/w.pt", "weights file")
    ... except InputError as err:
    ...     print(err)
    weights file /nonexistent/w.pt does not exist
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)")
    return path


# -- state dicts ----------------------------------------------------------------------------------
def _is_safetensors(path: Path) -> bool:
    """Whether the file starts like safetensors: a little-endian u64 length, then ``{``."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _refused_global(message: str) -> str | None:
    """The Python name a refused pickle asked for, from torch's weights-only message."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


def _torch_load(path: Path, what: str) -> Any:
    import torch

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": we report instead
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        name = _refused_global(str(err))
        named = f" (it asks for {name})" if name else ""
        raise InputError(
            f"{what} {path} holds Python objects, not only tensors{named}: it is refused, because "
            "loading it would run code from the file. Save the weights alone: as safetensors, or "
            "with torch.save(model.state_dict(), path)"
        ) from None
    except EOFError:
        raise InputError(f"{what} {path} ends too early: the file is truncated") from None
    except Exception as err:  # noqa: BLE001 - any failure to decode the file is the file's fault
        # torch reports a damaged zip archive as RuntimeError, a non-pickle as KeyError, a cut
        # pickle as struct.error...
        raise InputError(
            f"{what} {path} is neither safetensors nor a readable PyTorch state dict "
            f"(damaged, truncated or another format: {type(err).__name__})"
        ) from None


def load_state_dict(
    path: str | os.PathLike, what: str = "weights file", *, safetensors_only: bool = False
) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, ``{name: tensor}`` on the CPU, without unpickling objects.

    Parameters
    ----------
    path : a safetensors file, or a state dict saved with ``torch.save`` (read with
        ``weights_only=True``).
    what : what the file is, for the messages (``"weights file"``, ``"ADM checkpoint"``...).
    safetensors_only : refuse anything but safetensors (module folders).

    Returns
    -------
    dict mapping each tensor name to its tensor.

    Raises
    ------
    InputError
        Naming the file: missing (:class:`MissingFileError`), a directory, empty, truncated,
        corrupt, holding Python objects other than tensors, or not a flat mapping of names to
        tensors.

    Examples
    --------
    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/w.pt"
    >>> torch.save({"weight": torch.ones(2, 3)}, path)
    >>> {k: tuple(v.shape) for k, v in load_state_dict(path).items()}
    {'weight': (2, 3)}
    """
    import torch

    path = check_input_file(path, what)
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise InputError(f"{what} {path} is not a valid safetensors file ({err})") from None
    elif safetensors_only:
        with open(path, "rb") as handle:
            head = handle.read(2)
        pickled = head[:1] == b"\x80" or head == b"PK"  # a pickle, or torch's zip of one
        kind = (
            "a PyTorch pickle (Python objects), which is never loaded here"
            if pickled
            else ("another format")
        )
        raise InputError(f"{what} {path} is not a safetensors file: it is {kind}")
    else:
        state = _torch_load(path, what)
    if not isinstance(state, Mapping):
        raise InputError(
            f"{what} {path} holds a {type(state).__name__}, not a state dict (a mapping of "
            "tensor names to tensors)"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        nested = [k for k in bad if isinstance(state[k], Mapping)]
        hint = f"; the weights may be under the key {nested[0]!r}" if nested else ""
        raise InputError(
            f"{what} {path} is not a flat state dict: {len(bad)} entries are not tensors "
            f"(e.g. {bad[0]!r}: {type(state[bad[0]]).__name__}){hint}"
        )
    return dict(state)


def load_weights(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str | os.PathLike,
    architecture: str | None = None,
) -> torch.nn.Module:
    """Load ``state`` into ``model`` if every tensor name and shape fits; return ``model``.

    ``source`` (the file the weights came from) and ``architecture`` (default: the model's class
    name) go into the message. A missing, unexpected or differently shaped tensor raises
    :class:`~hiergrammar.InputError` listing them; the model is then left untouched.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> load_weights(net, {"weight": torch.zeros(2, 3)}, "w.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: w.pt does not fit the architecture Linear: 1 missing ...
    """
    architecture = architecture or type(model).__name__
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        (k, tuple(state[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
    if shapes:
        k, got, want = shapes[0]
        problems.append(
            f"{len(shapes)} tensors of another shape (e.g. {k}: {got} in the file, "
            f"{want} in the model)"
        )
    if problems:
        raise InputError(
            f"{source} does not fit the architecture {architecture}: " + "; ".join(problems)
        )
    model.load_state_dict(dict(state), strict=True)
    return model


# -- architectures --------------------------------------------------------------------------------
#: name -> builder: a callable, or "module:attribute" imported on first use. Only code fills it.
_REGISTRY: dict[str, Callable[..., Any] | str] = {
    "tree_cnn": "hiergrammar.vision.rhm_cnn:TreeCNN",
    "grammar_transformer": "hiergrammar.vision.grammar_diffusion.models:GrammarTransformer",
    "tree_unet": "hiergrammar.vision.grammar_diffusion.models:TreeUNet",
}


def register_architecture(name: str, builder: Callable[..., torch.nn.Module]) -> None:
    """Make ``builder(**arguments)`` loadable from module folders under ``name``.

    Registration is in code only: a folder can name an architecture but never supply one.
    Re-registering a name with another builder raises :class:`~hiergrammar.InputError`.

    Examples
    --------
    >>> import torch
    >>> register_architecture("doc_linear", torch.nn.Linear)
    >>> "doc_linear" in architecture_names()
    True
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
        raise InputError(f"architecture name {name!r} must be an identifier-like string")
    if not callable(builder):
        raise InputError(f"builder of architecture {name!r} must be callable")
    if _REGISTRY.get(name, builder) is not builder:
        raise InputError(f"architecture {name!r} is already registered with another builder")
    _REGISTRY[name] = builder


def architecture_names() -> list[str]:
    """The architectures a module folder may name, sorted.

    Examples
    --------
    >>> "tree_cnn" in architecture_names()
    True
    """
    return sorted(_REGISTRY)


def _builder(name: str) -> Callable[..., Any]:
    builder = _REGISTRY[name]
    if isinstance(builder, str):
        module, _, attribute = builder.partition(":")
        builder = getattr(importlib.import_module(module), attribute)
        _REGISTRY[name] = builder
    return builder


def _build(architecture: str, arguments: Mapping[str, Any], where: str) -> torch.nn.Module:
    import torch

    if architecture not in _REGISTRY:
        raise InputError(
            f"{where}: architecture {architecture!r} is not one of {architecture_names()} "
            "(register it with hiergrammar.vision.checkpoints.register_architecture)"
        )
    try:
        model = _builder(architecture)(**arguments)
    except (TypeError, ValueError) as err:  # unknown or out-of-range constructor arguments
        raise InputError(
            f"{where}: architecture {architecture!r} cannot be built from the arguments "
            f"{dict(arguments)}: {err}"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{where}: architecture {architecture!r} did not build a torch module")
    return model


# -- module folders -------------------------------------------------------------------------------
def save_module(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    architecture: str,
    arguments: Mapping[str, Any],
) -> Path:
    """Write ``model`` as a module folder (``config.json`` + ``model.safetensors``); return it.

    Parameters
    ----------
    model : the module to save; its ``state_dict()`` is written (tensors only).
    folder : the folder, created if needed; its two files are replaced atomically.
    architecture : a registered architecture name (:func:`architecture_names`).
    arguments : JSON keyword arguments with which the architecture rebuilds ``model``.

    Raises
    ------
    InputError
        An unknown architecture, arguments that are not JSON, or arguments whose rebuilt
        model has other tensor names or shapes than ``model``.

    Examples
    --------
    >>> import tempfile, json
    >>> from hiergrammar.vision.rhm_cnn import TreeCNN
    >>> net = TreeCNN(v=4, n_classes=2, s=2, L=1, width=4)
    >>> folder = save_module(net, tempfile.mkdtemp(), "tree_cnn", net.config)
    >>> json.loads((folder / "config.json").read_text())["architecture"]
    'tree_cnn'
    """
    from safetensors.torch import save as safetensors_bytes

    from hiergrammar.artifacts import atomic_open, save_json

    arguments = dict(arguments)
    try:
        json.dumps(arguments, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"arguments of architecture {architecture!r} must be JSON: {err}"
        ) from None
    # the config must rebuild this very model: check names and shapes before writing anything
    rebuilt = _build(architecture, arguments, "save_module")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    load_weights(rebuilt, state, f"the state of {type(model).__name__}", architecture)
    folder = Path(folder)
    with atomic_open(folder / WEIGHTS_NAME, "wb") as handle:
        handle.write(safetensors_bytes(state, metadata={"architecture": architecture}))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "arguments": arguments,
    }
    save_json(folder / CONFIG_NAME, config)  # last: a folder with a config is complete
    return folder


def read_module_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The checked ``config.json`` of a module folder (see the module docstring).

    Examples
    --------
    >>> try:
    ...     read_module_config("/nonexistent")
    ... except FileNotFoundError as err:  # a MissingFileError, also an InputError
    ...     print(err)
    module folder /nonexistent does not exist
    """
    folder = Path(folder)
    if not folder.exists():
        raise MissingFileError(f"module folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(
            f"{folder} is a file, not a module folder: a model is loaded from a folder holding "
            f"{CONFIG_NAME} (its architecture) and {WEIGHTS_NAME} (its weights); whole pickled "
            "modules are not loaded, because unpickling runs code from the file"
        )
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise InputError(f"module folder {folder} has no {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise InputError(f"{path} is not a module config (its 'format' must be {FORMAT!r})")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{path}: format_version={version!r} must be a positive integer")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path} has format_version {version}, newer than the {FORMAT_VERSION} this version "
            "of hiergrammar reads: upgrade hiergrammar"
        )
    if not isinstance(config.get("architecture"), str):
        raise InputError(f"{path}: 'architecture' must be a string")
    if not isinstance(config.get("arguments", {}), dict):
        raise InputError(f"{path}: 'arguments' must be a JSON object")
    config.setdefault("arguments", {})
    return config


def load_module(
    folder: str | os.PathLike,
    architecture: str | None = None,
    device: str | torch.device | None = "cpu",
) -> torch.nn.Module:
    """Rebuild the model of a module folder and load its weights; eval mode, on ``device``.

    Parameters
    ----------
    folder : written by :func:`save_module` (or :func:`hiergrammar.vision.rhm_cnn.save_tree_cnn`).
    architecture : if given, the folder must hold this architecture.
    device : where to put the model (checked by :func:`hiergrammar.vision.device.resolve_device`;
        ``None``: CUDA if available, else CPU).

    Raises
    ------
    InputError
        Naming the file: no folder, a bad or newer config, an unknown architecture, weights
        that are missing, corrupt or do not fit the architecture.

    Examples
    --------
    See the module docstring.
    """
    from hiergrammar.vision.device import resolve_device

    target = resolve_device(device)
    config = read_module_config(folder)
    where = str(Path(folder) / CONFIG_NAME)
    if architecture is not None and config["architecture"] != architecture:
        raise InputError(
            f"{where} holds a {config['architecture']!r} model, not a {architecture!r} one"
        )
    model = _build(config["architecture"], config["arguments"], where)
    weights = Path(folder) / WEIGHTS_NAME
    state = load_state_dict(weights, "weights file", safetensors_only=True)
    load_weights(model, state, weights, config["architecture"])
    return model.to(target).eval()
