"""Forward-backward sampling with a diffusers image diffusion model (docs/model.md §8).

Start from clean images ``x_0``, noise them to step ``t`` of a respaced chain of ``num_steps``
steps, and run the model's reverse chain from there back to step 0. At small ``t`` the result
is a small edit of the start image; at ``t = num_steps`` it is an unconditional sample.

Indexing of the respaced chain. ``scheduler.set_timesteps(num_steps)`` gives the descending
training timesteps ``scheduler.timesteps = [tau_{N-1}, ..., tau_0]`` (``N = num_steps``). The
respaced chain has states ``0..N``: state 0 is the clean image and state ``k >= 1`` is the
image noised to training timestep ``tau_{k-1}``, i.e. ``scheduler.timesteps[N - k]``. Going
from state ``k`` to ``k - 1`` is one ``scheduler.step`` at timestep ``tau_{k-1}``. So
``forward_backward(..., t)`` draws ``x ~ q(x_{tau_{t-1}} | x_0)`` with ``scheduler.add_noise``
at ``scheduler.timesteps[N - t]`` and calls ``scheduler.step`` exactly ``t`` times, over
``scheduler.timesteps[N - t:]``. This is guided-diffusion's convention (``q_sample`` at respaced
index ``t - 1`` followed by ``p_sample`` at indices ``t-1, ..., 0``), which the tests check
against an independent port of its respaced sampler.

``t = 0`` returns the input unchanged; ``t = N`` starts from pure noise (``N(0, I)`` times the
scheduler's ``init_noise_sigma``) and ignores the input, like an ordinary sampling run.

Randomness is per image: image ``i`` owns a ``torch.Generator`` seeded with ``seed + i`` (or
``seeds[i]``) that draws its start noise and then its noise at every reverse step, so an
image's result does not depend on the batch it is processed in.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from hiergrammar.artifacts import progress as _progress
from hiergrammar.validation import InputError, check_int, check_seed

__all__ = [
    "forward_backward",
    "forward_backward_latent",
    "image_seeds",
    "null_class_label",
    "start_timestep",
]


# --------------------------------------------------------------------------------------------
# validation helpers


def image_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """Per-image seeds: ``seed + i`` for an int, or the given sequence (length ``n``).

    Each seed is a non-negative integer (:func:`hiergrammar.validation.check_seed`).

    Examples
    --------
    >>> image_seeds(5, 3)
    [5, 6, 7]
    >>> image_seeds([9, 2], 2)
    [9, 2]
    >>> image_seeds(-1, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: seed=-1 violates seed >= 0 ...
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        first = check_seed("seed", seed, allow_generator=False)
        return [first + i for i in range(n)]
    if isinstance(seed, (str, bytes, bool)) or not hasattr(seed, "__iter__"):
        raise InputError(
            f"seed={seed!r} must be a non-negative integer or one such integer per image"
        )
    seeds = [check_seed(f"seed[{k}]", s, allow_generator=False) for k, s in enumerate(seed)]
    if len(seeds) != n:
        raise InputError(f"len(seeds)={len(seeds)} violates len(seeds) == n_images={n}")
    return seeds


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(getattr(images, "shape", ()))
        raise InputError(f"images must be a tensor of shape (n, C, H, W), got shape {shape}")
    if images.shape[0] == 0:
        raise InputError("images violates n_images >= 1")
    if not images.is_floating_point():
        raise InputError(f"images must be float in [-1, 1], got dtype {images.dtype}")


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_t(t: int, num_steps: int) -> None:
    if not _is_int(num_steps) or num_steps < 1:
        raise InputError(f"num_steps={num_steps!r} violates num_steps >= 1 (an int)")
    if not _is_int(t) or not 0 <= t <= num_steps:
        raise InputError(f"t={t!r} violates 0 <= t <= num_steps={num_steps} (an int)")


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None:
        check_int("batch_size", batch_size, low=1)


def _check_dtype(dtype: Any) -> None:
    allowed = (torch.float32, torch.bfloat16, torch.float16)
    if dtype is not None and dtype not in allowed:
        raise InputError(f"dtype={dtype!r} is not one of {[str(d) for d in allowed]} or None")


def _device(device: Any, default: torch.device) -> torch.device:
    from hiergrammar.vision.device import resolve_device

    return default if device is None else resolve_device(device)


def _prepare_timesteps(scheduler: Any, num_steps: int, t: int) -> torch.Tensor:
    """Set the scheduler's respaced timesteps; return those of the last ``t`` reverse steps."""
    scheduler.set_timesteps(num_steps)
    timesteps = scheduler.timesteps
    if len(timesteps) != num_steps:
        # Heun/KDPM2-like schedulers call the model twice per step: the chain index would lose
        # its meaning, so they are not supported.
        raise InputError(
            f"{type(scheduler).__name__} gives {len(timesteps)} timesteps for num_steps="
            f"{num_steps}; only schedulers with one model call per step are supported"
        )
    if type(scheduler).__name__ == "DDIMScheduler":
        # DDIMScheduler.step takes the previous timestep to be
        # t - num_train_timesteps // num_steps: the respaced timesteps must be evenly spaced by
        # exactly that, or the reverse step would jump to a timestep that is not in the chain.
        stride = scheduler.config.num_train_timesteps // num_steps
        gaps = set((timesteps[:-1] - timesteps[1:]).tolist())
        if gaps and gaps != {stride}:
            raise InputError(
                f"DDIMScheduler with timestep_spacing={scheduler.config.timestep_spacing!r} "
                f"gives uneven steps {sorted(gaps)} for num_steps={num_steps}, but its step() "
                f"assumes a stride of {stride}: use timestep_spacing='leading'"
            )
    if hasattr(scheduler, "set_begin_index"):
        # Schedulers that count their own steps (Euler, DPM-Solver) must start mid-chain.
        scheduler.set_begin_index(num_steps - t)
    return timesteps[num_steps - t :]


def _learned_variance(scheduler: Any) -> bool:
    return getattr(scheduler.config, "variance_type", None) in ("learned", "learned_range")


def _model_output(out: torch.Tensor, channels: int, scheduler: Any) -> torch.Tensor:
    """Keep what the scheduler uses of a model output of ``C`` or ``2C`` channels.

    Models trained with learned sigma (ADM, DiT) output ``[eps, v]``. DDPMScheduler with
    ``variance_type`` ``learned``/``learned_range`` splits and uses ``v`` itself; other
    schedulers get ``eps`` only.
    """
    if out.shape[1] == 2 * channels:
        return out if _learned_variance(scheduler) else out[:, :channels]
    if out.shape[1] != channels:
        raise InputError(
            f"model output has {out.shape[1]} channels, expected {channels} or {2 * channels}"
        )
    if _learned_variance(scheduler):
        raise InputError(
            f"scheduler has variance_type={scheduler.config.variance_type!r} but the model "
            f"outputs {channels} channels (no variance); use a fixed variance_type"
        )
    return out


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _step_accepts_generator(scheduler: Any) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


def _reverse_chain(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: Any,
    x0: torch.Tensor,
    t: int,
    num_steps: int,
    seeds: list[int],
    device: torch.device,
    desc: str,
    show_progress: bool,
) -> torch.Tensor:
    """Noise ``x0`` (float32, on ``device``) to chain state ``t`` and denoise it to state 0.

    ``denoise(x, tau)`` returns the raw model output for the float32 sample ``x`` at training
    timestep ``tau``. The chain itself stays in float32 whatever the model's dtype.
    """
    steps = _prepare_timesteps(scheduler, num_steps, t)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    # diffusers' randn_tensor with a list of generators draws image i from generator i, so the
    # start noise (and, in step(), the step noise) of an image is its own.
    from diffusers.utils.torch_utils import randn_tensor

    noise = randn_tensor(tuple(x0.shape), generator=generators, device=device, dtype=torch.float32)
    if t == num_steps:
        x = noise * float(getattr(scheduler, "init_noise_sigma", 1.0))
    else:
        tau0 = steps[:1].to(device).expand(x0.shape[0])
        x = scheduler.add_noise(x0, noise, tau0)
    step_kwargs = {"generator": generators} if _step_accepts_generator(scheduler) else {}
    channels = x0.shape[1]
    for tau in _progress(
        steps, desc=desc, total=len(steps), disable=None if show_progress else True
    ):
        inp = scheduler.scale_model_input(x, tau)
        out = denoise(inp, tau).float()
        out = _model_output(out, channels, scheduler)
        x = scheduler.step(out, tau, x, **step_kwargs).prev_sample
    return x


def _module_device_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    param = next(module.parameters())
    return param.device, param.dtype


def _batches(n: int, batch_size: int | None) -> list[slice]:
    size = n if batch_size is None else batch_size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def start_timestep(scheduler: Any, t: int, num_steps: int = 250) -> int | None:
    """Training timestep of chain state ``t`` (``None`` for ``t = 0``, the clean image).

    Examples
    --------
    >>> from diffusers import DDPMScheduler
    >>> sched = DDPMScheduler(timestep_spacing="linspace")
    >>> [start_timestep(sched, t, 250) for t in (1, 2, 250)]
    [0, 4, 999]
    """
    _check_t(t, num_steps)
    if t == 0:
        return None
    scheduler.set_timesteps(num_steps)
    return int(scheduler.timesteps[num_steps - t])


# --------------------------------------------------------------------------------------------
# pixel-space models


def forward_backward(
    model: torch.nn.Module,
    scheduler: Any,
    images: torch.Tensor,
    t: int,
    num_steps: int = 250,
    seed: int | Sequence[int] = 0,
    *,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Noise ``images`` to step ``t`` of a ``num_steps`` respaced chain and denoise them back.

    Parameters
    ----------
    model : a diffusers ``UNet2DModel`` (or any module called as ``model(x, timesteps)``
        returning an object with ``.sample``), unconditional, predicting ``(n, C, H, W)`` or
        ``(n, 2C, H, W)`` (learned variance). It is switched to eval mode (no dropout).
    scheduler : a diffusers scheduler (``DDPMScheduler`` for ancestral sampling,
        ``DDIMScheduler``, ...). Its own ``set_timesteps``/``add_noise``/``step`` are used; it
        is mutated by ``set_timesteps`` as in any diffusers pipeline.
    images : ``(n, C, H, W)`` start images in ``[-1, 1]``.
    t : chain state to noise to, ``0 <= t <= num_steps``; exactly ``t`` reverse steps are run.
    num_steps : length of the respaced chain (the paper: 250 of 1000 training steps).
    seed : int (image ``i`` uses ``seed + i``) or one seed per image.
    batch_size : images per model call (default: all at once). Results do not depend on it.
    dtype : compute dtype of the model (``torch.bfloat16``/``float16`` through autocast); the
        chain itself is kept in float32.
    device : where to run (default: the model's device).
    progress : show a tqdm bar over the reverse steps.

    Returns
    -------
    ``(n, C, H, W)`` float32 tensor in ``[-1, 1]`` on ``images.device``; ``t = 0`` returns a
    copy of ``images``; ``t = num_steps`` does not depend on ``images``.

    Raises
    ------
    InputError
        Images that are not ``(n, C, H, W)`` floats, ``t`` outside ``[0, num_steps]``, a seed
        that is not a non-negative integer (or one per image), ``device`` not available here,
        a class-conditional model, a scheduler with several model calls per step.

    Examples
    --------
    >>> from diffusers import DDPMScheduler, UNet2DModel
    >>> unet = UNet2DModel(sample_size=8, block_out_channels=(32, 32), norm_num_groups=8,
    ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    >>> x = torch.rand(2, 3, 8, 8) * 2 - 1
    >>> forward_backward(unet, DDPMScheduler(), x, t=3, num_steps=10, progress=False).shape
    torch.Size([2, 3, 8, 8])
    """
    _check_images(images)
    _check_t(t, num_steps)
    _check_batch_size(batch_size)
    _check_dtype(dtype)
    t, num_steps = int(t), int(num_steps)
    seeds = image_seeds(seed, images.shape[0])
    if t == 0:
        return images.detach().clone()
    # what UNet2DModel.forward itself tests to require class labels
    if getattr(model, "class_embedding", None) is not None:
        raise InputError("the UNet is class-conditional; forward_backward is class-unconditional")
    model_device, model_dtype = _module_device_dtype(model)
    device = _device(device, model_device)
    model.eval()

    def denoise(x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        timesteps = tau.to(device).reshape(1).expand(x.shape[0])
        with _autocast(device, dtype):
            return model(x.to(model_dtype), timesteps).sample

    out = []
    with torch.inference_mode():
        for k, sl in enumerate(_batches(images.shape[0], batch_size)):
            x0 = images[sl].to(device=device, dtype=torch.float32)
            x = _reverse_chain(
                denoise,
                scheduler,
                x0,
                t,
                num_steps,
                seeds[sl],
                device,
                f"forward-backward t={t} batch {k}",
                progress,
            )
            out.append(x.clamp(-1, 1).to(images.device))
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# latent models (DiT + VAE)


def null_class_label(transformer: torch.nn.Module) -> int:
    """The "unconditional" class index of a DiT: ``num_embeds_ada_norm`` (1000 for ImageNet).

    DiT is trained with label dropout; the dropped label is the extra last row of its class
    embedding table, which is what classifier-free guidance uses as the null class.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> null_class_label(SimpleNamespace(config=SimpleNamespace(num_embeds_ada_norm=1000)))
    1000
    """
    n = getattr(getattr(transformer, "config", None), "num_embeds_ada_norm", None)
    if n is None:
        raise InputError("transformer has no num_embeds_ada_norm: not a class-embedded DiT")
    return int(n)


def forward_backward_latent(
    transformer: torch.nn.Module,
    vae: torch.nn.Module,
    scheduler: Any,
    images: torch.Tensor,
    t: int,
    num_steps: int = 250,
    seed: int | Sequence[int] = 0,
    *,
    class_labels: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Forward-backward in the latent space of a DiT (``DiTTransformer2DModel``) and its VAE.

    The images are encoded with the VAE (posterior mean, times ``vae.config.scaling_factor``),
    the latents go through the same respaced chain as :func:`forward_backward`, and the result
    is decoded. The transformer is used class-unconditionally: every image gets the null label
    :func:`null_class_label` unless ``class_labels`` is given. The VAE runs in float32 (two
    calls per image); ``dtype`` applies to the transformer.

    ``images``: ``(n, 3, H, W)`` in ``[-1, 1]`` with ``H = W = transformer sample_size *
    vae scale factor``. Returns ``(n, 3, H, W)`` float32 in ``[-1, 1]``; ``t = 0`` returns a
    copy of the input (no VAE round trip).
    """
    _check_images(images)
    _check_t(t, num_steps)
    _check_batch_size(batch_size)
    _check_dtype(dtype)
    t, num_steps = int(t), int(num_steps)
    n = images.shape[0]
    seeds = image_seeds(seed, n)
    if t == 0:
        return images.detach().clone()
    null = null_class_label(transformer)
    if class_labels is None:
        labels = [null] * n
    elif _is_int(class_labels):  # also numpy integers, as the seeds
        labels = [int(class_labels)] * n
    else:
        labels = [check_int("class_labels[i]", c, low=0, high=null) for c in class_labels]
    if len(labels) != n or any(not 0 <= c <= null for c in labels):
        raise InputError(f"class_labels must be {n} ints in [0, {null}] ({null} = unconditional)")
    t_device, t_dtype = _module_device_dtype(transformer)
    device = _device(device, t_device)
    _, vae_dtype = _module_device_dtype(vae)
    scaling = float(vae.config.scaling_factor)
    transformer.eval()
    vae.eval()

    out = []
    with torch.inference_mode():
        for k, sl in enumerate(_batches(n, batch_size)):
            y = torch.tensor(labels[sl], device=device)

            def denoise(x: torch.Tensor, tau: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
                timesteps = tau.to(device).reshape(1).expand(x.shape[0])
                with _autocast(device, dtype):
                    return transformer(x.to(t_dtype), timestep=timesteps, class_labels=y).sample

            pixels = images[sl].to(device=device, dtype=vae_dtype)
            z0 = vae.encode(pixels).latent_dist.mode().float() * scaling
            z = _reverse_chain(
                denoise,
                scheduler,
                z0,
                t,
                num_steps,
                seeds[sl],
                device,
                f"forward-backward (latent) t={t} batch {k}",
                progress,
            )
            x = vae.decode((z / scaling).to(vae_dtype)).sample.float()
            out.append(x.clamp(-1, 1).to(images.device))
    return torch.cat(out)
