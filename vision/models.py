"""Loading diffusers image diffusion models from disk, never from the network.

A model is a folder in ``save_pretrained`` layout, or a hub repository id already in the
local hub cache (looked up with ``local_files_only=True``; nothing is downloaded). Two kinds:

* pixel space: ``unet/`` (``UNet2DModel``) + ``scheduler/`` (``DDPMPipeline`` layout, what
  :func:`hiergrammar.vision.adm.convert_adm_checkpoint` writes), or a bare ``UNet2DModel`` folder
  (``config.json`` + weights) with an optional ``scheduler_config.json`` beside it;
* latent: ``transformer/`` (``DiTTransformer2DModel`` or the older ``Transformer2DModel``
  layout of ``facebook/DiT-XL-2-256``) + ``vae/`` (``AutoencoderKL``) + ``scheduler/``
  (``DiTPipeline`` layout).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["DiffusionModel", "load_diffusion", "make_scheduler", "resolve_model_dir"]

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
        """JSON-able summary (for metadata files)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "model_class": type(self.model).__name__,
            "image_size": self.image_size,
            "scheduler_class": type(self.scheduler).__name__,
            "scheduler_config": dict(self.scheduler.config),
        }


def resolve_model_dir(name_or_path: str | os.PathLike, cache_dir: str | None = None) -> Path:
    """A local folder for ``name_or_path``: the folder itself, or the cached hub snapshot.

    Raises ``FileNotFoundError`` when it is neither (nothing is downloaded).
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    text = str(name_or_path)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/")):
        raise FileNotFoundError(f"model {text!r} is not a folder nor a hub id 'org/name'")
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, OSError) as err:
        raise FileNotFoundError(
            f"model {text!r} is not a folder and not in the local hub cache "
            f"({cache_dir or 'default cache'}); nothing is downloaded: download it beforehand"
        ) from err


def _class_name(folder: Path, config: str = "config.json") -> str | None:
    """The ``_class_name`` that a diffusers config file in ``folder`` names, if it exists."""
    cfg = folder / config
    if not cfg.is_file():
        return None
    return json.loads(cfg.read_text()).get("_class_name")


def make_scheduler(kind: str, config: Any | None = None):
    """A ``DDPMScheduler`` (``kind="ddpm"``) or ``DDIMScheduler`` (``"ddim"``).

    From ``config`` (another scheduler's config: same betas) when given, else diffusers'
    defaults (linear betas 1e-4..0.02 over 1000 steps). DDIM gets
    ``timestep_spacing="leading"``, the only spacing its ``step`` follows exactly.
    """
    import diffusers

    if kind not in _SCHEDULER_KINDS:
        raise ValueError(f"scheduler={kind!r} is not one of {sorted(_SCHEDULER_KINDS)}")
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

    Example: ``load_diffusion("models/adm256u", device="cuda")``.
    """
    import diffusers

    root = resolve_model_dir(name_or_path, cache_dir)
    kw: dict[str, Any] = {"local_files_only": True}
    if torch_dtype is not None:
        kw["torch_dtype"] = torch_dtype
    vae = None
    if (root / "model_index.json").is_file():
        index = json.loads((root / "model_index.json").read_text())
        if "unet" in index:
            kind, sub = "unet", "unet"
        elif "transformer" in index and "vae" in index:
            kind, sub = "latent", "transformer"
        else:
            raise ValueError(
                f"{root}/model_index.json has neither 'unet' nor 'transformer' + 'vae' components"
            )
        model_dir = root / sub
        sched_dir = root / "scheduler"
    elif _class_name(root) is not None:
        kind, model_dir, sched_dir = "unet", root, root
    else:
        raise FileNotFoundError(f"{root} has no model_index.json nor config.json")
    cls_name = _class_name(model_dir)
    allowed = _UNET_CLASSES if kind == "unet" else _TRANSFORMER_CLASSES
    if cls_name not in allowed:
        raise ValueError(f"{model_dir} holds a {cls_name}, expected one of {sorted(allowed)}")
    model = getattr(diffusers, cls_name).from_pretrained(model_dir, **kw)
    if kind == "latent":
        vae_cls = _class_name(root / "vae")
        if vae_cls != "AutoencoderKL":
            raise ValueError(f"{root / 'vae'} holds a {vae_cls}, expected AutoencoderKL")
        vae = diffusers.AutoencoderKL.from_pretrained(root / "vae", **kw).to(device).eval()
    saved = None
    sched_cls = _class_name(sched_dir, "scheduler_config.json")
    if sched_cls is not None:
        saved = getattr(diffusers, sched_cls).from_pretrained(sched_dir, local_files_only=True)
    if scheduler is None:
        if saved is None:
            raise FileNotFoundError(
                f"no scheduler_config.json under {root}; pass scheduler='ddpm' or 'ddim'"
            )
        sched = saved
    elif isinstance(scheduler, str):
        sched = make_scheduler(scheduler, saved.config if saved is not None else None)
    else:
        sched = scheduler
    return DiffusionModel(
        kind=kind, model=model.to(device).eval(), scheduler=sched, vae=vae, name=str(name_or_path)
    )
