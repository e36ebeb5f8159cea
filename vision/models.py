"""Loading diffusers image diffusion models from disk, never from the network.

A model is a folder in ``save_pretrained`` layout, or a hub repository id already in the
local hub cache (looked up with ``local_files_only=True``; nothing is downloaded). Two kinds:

* pixel space: ``unet/`` (``UNet2DModel``) + ``scheduler/`` (``DDPMPipeline`` layout, what
  :func:`hiergrammar.vision.adm.convert_adm_checkpoint` writes), or a bare ``UNet2DModel`` folder
  (``config.json`` + weights) with an optional ``scheduler_config.json`` beside it;
* latent: ``transformer/`` (``DiTTransformer2DModel`` or the older ``Transformer2DModel``
  layout of ``facebook/DiT-XL-2-256``) + ``vae/`` (``AutoencoderKL``) + ``scheduler/``
  (``DiTPipeline`` layout).

Weights are read as safetensors (``diffusion_pytorch_model.safetensors``, possibly sharded).
A component that only has a ``diffusion_pytorch_model.bin`` is first checked with
:func:`hiergrammar.vision.checkpoints.load_state_dict` (tensors only, nothing unpickled) and
then loaded by diffusers, which reads ``.bin`` files with ``torch.load(weights_only=True)``.
Class names read from the config files are checked against the classes allowed here before
anything is built. Every problem with the folder raises :class:`hiergrammar.InputError` naming
the file.

Examples
--------
>>> import tempfile
>>> from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
>>> unet = UNet2DModel(sample_size=8, block_out_channels=(32, 32), norm_num_groups=8,
...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
>>> folder = tempfile.mkdtemp()
>>> DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(folder)
>>> model = load_diffusion(folder, scheduler="ddim")
>>> model.kind, model.image_size, type(model.scheduler).__name__
('unet', 8, 'DDIMScheduler')
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hiergrammar.vision.checkpoints import MissingFileError, load_state_dict

from hiergrammar.artifacts import read_json_object
from hiergrammar.validation import InputError, check_choice

__all__ = [
    "DiffusionModel",
    "load_diffusion",
    "make_scheduler",
    "resolve_model_dir",
    "weights_fingerprint",
]

_UNET_CLASSES = {"UNet2DModel"}
_TRANSFORMER_CLASSES = {"DiTTransformer2DModel", "Transformer2DModel"}
_SCHEDULER_KINDS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler"}


@dataclass
class DiffusionModel:
    """A loaded model: ``kind`` is ``"unet"`` (pixels) or ``"latent"`` (DiT + VAE)."""

    kind: str
    model: torch.nn.Module
    scheduler: Any
    vae: torch.nn.Module | None = None
    name: str = ""

    @property
    def image_size(self) -> int:
        """Side of the square images the model works on, in pixels."""
        size = self.model.config.sample_size
        size = size[0] if isinstance(size, (list, tuple)) else size
        if self.kind == "latent":
            return int(size) * 2 ** (len(self.vae.config.block_out_channels) - 1)
        return int(size)

    @property
    def channels(self) -> int:
        """Image channels (3 for RGB)."""
        if self.kind == "latent":
            return int(self.vae.config.in_channels)
        return int(self.model.config.in_channels)

    def forward_backward(
        self,
        images: torch.Tensor,
        t: int,
        num_steps: int = 250,
        seed: int | Sequence[int] = 0,
        **kwargs: Any,
    ) -> torch.Tensor:
        """:func:`hiergrammar.vision.forward_backward` or its latent sibling, whichever fits."""
        from hiergrammar.vision.pipeline import forward_backward, forward_backward_latent

        if self.kind == "latent":
            return forward_backward_latent(
                self.model, self.vae, self.scheduler, images, t, num_steps, seed, **kwargs
            )
        return forward_backward(self.model, self.scheduler, images, t, num_steps, seed, **kwargs)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (for metadata files): what determines the images it makes.

        ``weights`` is :func:`weights_fingerprint` of the network (and of the VAE).
        """
        modules = [self.model] if self.vae is None else [self.model, self.vae]
        return {
            "name": self.name,
            "kind": self.kind,
            "model_class": type(self.model).__name__,
            "image_size": self.image_size,
            "model_config": _jsonable(dict(getattr(self.model, "config", {}))),
            "weights": weights_fingerprint(*modules),
            "scheduler_class": type(self.scheduler).__name__,
            "scheduler_config": _jsonable(dict(self.scheduler.config)),
        }


def _jsonable(value: Any) -> Any:
    """Configs as JSON values (tuples become lists, other objects their ``str``)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def weights_fingerprint(*modules: torch.nn.Module, samples: int = 256) -> str:
    """A short hash of modules' weights: tensor names, shapes, dtypes and sampled values.

    Up to ``samples`` evenly spaced values of each tensor are hashed, so that the fingerprint
    of a large model costs little; two different trainings or initialisations differ in it.

    Examples
    --------
    >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    >>> fa, fb = weights_fingerprint(a), weights_fingerprint(b)
    >>> len(fa), fa == weights_fingerprint(a), fa == fb
    (16, True, False)
    """
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        for name, tensor in module.state_dict().items():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // samples)
            values = flat[::step][:samples].to("cpu", torch.float64).numpy()
            digest.update(f"{index}:{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()[:16]


def resolve_model_dir(name_or_path: str | os.PathLike, cache_dir: str | None = None) -> Path:
    """A local folder for ``name_or_path``: the folder itself, or the cached hub snapshot.

    Raises :class:`~hiergrammar.vision.checkpoints.MissingFileError` (an ``InputError`` and a
    ``FileNotFoundError``) when it is neither (nothing is downloaded).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> resolve_model_dir(folder) == Path(folder)
    True
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    text = str(name_or_path)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/")):
        raise MissingFileError(f"model {text!r} is not a folder nor a hub id 'org/name'")
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, OSError) as err:
        raise MissingFileError(
            f"model {text!r} is not a folder and not in the local hub cache "
            f"({cache_dir or 'default cache'}); nothing is downloaded: download it beforehand"
        ) from err


def _class_name(folder: Path, config: str = "config.json") -> str | None:
    """The ``_class_name`` that a diffusers config file in ``folder`` names, if it exists."""
    cfg = folder / config
    if not cfg.is_file():
        return None
    return read_json_object(cfg).get("_class_name")


_SAFETENSORS_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
)
_BIN_WEIGHTS = "diffusion_pytorch_model.bin"


def _load_component(cls: Any, folder: Path, torch_dtype: torch.dtype | None) -> Any:
    """``cls.from_pretrained(folder)`` reading safetensors, or a ``.bin`` checked to hold only
    tensors; every failure as an :class:`InputError` naming the folder."""
    from safetensors import SafetensorError

    kw: dict[str, Any] = {"local_files_only": True}
    if torch_dtype is not None:
        kw["torch_dtype"] = torch_dtype
    if any((folder / name).is_file() for name in _SAFETENSORS_WEIGHTS):
        kw["use_safetensors"] = True
    elif (folder / _BIN_WEIGHTS).is_file():
        # refuse a pickle of Python objects with a clear message before diffusers reads it
        # (diffusers reads .bin with torch.load(weights_only=True) too)
        load_state_dict(folder / _BIN_WEIGHTS, f"{cls.__name__} weights")
        kw["use_safetensors"] = False
    else:
        raise InputError(
            f"{folder} has no {cls.__name__} weights ({_SAFETENSORS_WEIGHTS[0]} or {_BIN_WEIGHTS})"
        )
    try:
        return cls.from_pretrained(folder, **kw)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{folder}: cannot load the {cls.__name__} weights: {reason}") from None


def _scheduler_class(name: str, where: Path) -> Any:
    """The diffusers scheduler class ``name``, refusing anything that is not a scheduler."""
    import diffusers

    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise InputError(f"{where} names {name!r}, which is not a diffusers scheduler class")
    return cls


def make_scheduler(kind: str, config: Any | None = None):
    """A ``DDPMScheduler`` (``kind="ddpm"``) or ``DDIMScheduler`` (``"ddim"``).

    From ``config`` (another scheduler's config: same betas) when given, else diffusers'
    defaults (linear betas 1e-4..0.02 over 1000 steps). DDIM gets
    ``timestep_spacing="leading"``, the only spacing its ``step`` follows exactly.

    Examples
    --------
    >>> sched = make_scheduler("ddim")
    >>> type(sched).__name__, sched.config.timestep_spacing
    ('DDIMScheduler', 'leading')
    """
    import diffusers

    check_choice("scheduler", kind, sorted(_SCHEDULER_KINDS))
    cls = getattr(diffusers, _SCHEDULER_KINDS[kind])
    extra = {"timestep_spacing": "leading"} if kind == "ddim" else {}
    if config is None:
        return cls(**extra)
    return cls.from_config(config, **extra)


def load_diffusion(
    name_or_path: str | os.PathLike,
    *,
    scheduler: str | Any | None = None,
    device: str | torch.device = "cpu",
    torch_dtype: torch.dtype | None = None,
    cache_dir: str | None = None,
) -> DiffusionModel:
    """Load a pixel-space UNet or a latent DiT (+ VAE) with its scheduler, offline.

    Parameters
    ----------
    name_or_path : a folder (see the module docstring) or a hub id in the local cache.
    scheduler : ``None`` (the saved scheduler), ``"ddpm"``/``"ddim"`` (that class with the
        saved betas), or a scheduler object.
    device : where to put the weights.
    torch_dtype : weight dtype (default float32); for mixed precision prefer the ``dtype``
        argument of :func:`hiergrammar.vision.forward_backward` (autocast) and keep float32 weights.
    cache_dir : hub cache folder (default: the usual ``HF_HUB_CACHE``).

    Raises
    ------
    InputError
        Naming the file: no such folder or cached hub id (a ``MissingFileError``), config files
        that are not JSON or name classes not allowed here, weights that are missing, corrupt,
        hold Python objects, or do not fit the config; ``device`` not available here.

    Examples
    --------
    See the module docstring (a tiny model saved and loaded back).
    """
    import diffusers
    from hiergrammar.vision.device import resolve_device

    target = resolve_device(device)
    if isinstance(scheduler, str):
        check_choice("scheduler", scheduler, sorted(_SCHEDULER_KINDS))
    root = resolve_model_dir(name_or_path, cache_dir)
    vae = None
    if (root / "model_index.json").is_file():
        index = read_json_object(root / "model_index.json")
        if "unet" in index:
            kind, sub = "unet", "unet"
        elif "transformer" in index and "vae" in index:
            kind, sub = "latent", "transformer"
        else:
            raise InputError(
                f"{root}/model_index.json has neither 'unet' nor 'transformer' + 'vae' components"
            )
        model_dir = root / sub
        sched_dir = root / "scheduler"
    elif _class_name(root) is not None:
        kind, model_dir, sched_dir = "unet", root, root
    else:
        raise InputError(f"{root} has no model_index.json nor config.json")
    cls_name = _class_name(model_dir)
    allowed = _UNET_CLASSES if kind == "unet" else _TRANSFORMER_CLASSES
    if cls_name not in allowed:
        raise InputError(f"{model_dir} holds a {cls_name}, expected one of {sorted(allowed)}")
    model = _load_component(getattr(diffusers, cls_name), model_dir, torch_dtype)
    if kind == "latent":
        vae_cls = _class_name(root / "vae")
        if vae_cls != "AutoencoderKL":
            raise InputError(f"{root / 'vae'} holds a {vae_cls}, expected AutoencoderKL")
        vae = _load_component(diffusers.AutoencoderKL, root / "vae", torch_dtype)
        vae = vae.to(target).eval()
    saved = None
    sched_cls = _class_name(sched_dir, "scheduler_config.json")
    if sched_cls is not None:
        where = sched_dir / "scheduler_config.json"
        try:
            saved = _scheduler_class(sched_cls, where).from_pretrained(
                sched_dir, local_files_only=True
            )
        except (OSError, ValueError, TypeError) as err:
            raise InputError(f"{where}: cannot build the scheduler ({err})") from None
    if scheduler is None:
        if saved is None:
            raise InputError(
                f"no scheduler_config.json under {root}; pass scheduler='ddpm' or 'ddim'"
            )
        sched = saved
    elif isinstance(scheduler, str):
        sched = make_scheduler(scheduler, saved.config if saved is not None else None)
    else:
        sched = scheduler
    return DiffusionModel(
        kind=kind, model=model.to(target).eval(), scheduler=sched, vae=vae, name=str(name_or_path)
    )
