"""OpenAI guided-diffusion (ADM) checkpoints as diffusers ``UNet2DModel`` + scheduler.

ADM (Dhariwal & Nichol 2021, ``guided_diffusion/unet.py:UNetModel``) and diffusers'
``UNet2DModel`` are the same architecture up to naming, given the right config:

* timestep embedding ``[cos, sin]`` with frequencies ``10000^(-i/half)``:
  ``flip_sin_to_cos=True, freq_shift=0``, MLP ``model_channels -> 4 model_channels``;
* ``GroupNorm(32, eps=1e-5)`` everywhere, also in the mid-block attention
  (``attn_norm_num_groups=32``; diffusers would drop that norm for ``scale_shift`` otherwise);
* ``use_scale_shift_norm`` -> ``resnet_time_scale_shift="scale_shift"``
  (``norm(h) * (1 + scale) + shift``);
* ``resblock_updown`` -> ``ResnetDownsampleBlock2D``/``ResnetUpsampleBlock2D`` and
  ``downsample_type = upsample_type = "resnet"`` (a residual block resampling both branches:
  average pooling / nearest upsampling); otherwise strided / nearest+conv resampling;
* ``num_head_channels`` -> ``attention_head_dim`` (diffusers' per-head width); attention at the
  levels whose downsampling rate is in ``attention_resolutions``, and always in the mid block;
* the fused ``qkv`` 1x1 convolution is split into ``to_q``/``to_k``/``to_v``: with
  ``QKVAttentionLegacy`` (the default, ``use_new_attention_order=False``) its output channels
  are laid out ``(head, [q, k, v], head_dim)``, with ``QKVAttention`` ``([q, k, v], head,
  head_dim)``; the scaling ``q k / sqrt(head_dim)`` is the same;
* ``learn_sigma`` -> ``out_channels = 2 * in_channels`` and a ``DDPMScheduler`` with
  ``variance_type="learned_range"``; guided-diffusion's respacing ``"N"`` is
  ``timestep_spacing="linspace"`` and ``"ddimN"`` is ``"leading"``.

What does not map (``unet2d_config_from_adm`` raises :class:`~hiergrammar.InputError`):
``channel_mult[0] != 1`` (the 512x512 models' 0.5): diffusers ties the sinusoid width to
``block_out_channels[0]`` whereas ADM uses ``model_channels``; a fixed ``num_heads``
(``num_head_channels=-1``) whose head width differs between attention levels (the 128x128
model): diffusers has one ``attention_head_dim``; ``num_heads_upsample != num_heads``;
``conv_resample=False`` without ``resblock_updown``. The tests check the mapping numerically
against a port of the original.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hiergrammar.validation import InputError, check_choice, check_float, check_int

__all__ = [
    "ADM_PRESETS",
    "adm_config",
    "adm_scheduler",
    "adm_to_diffusers",
    "convert_adm_checkpoint",
    "convert_adm_state_dict",
    "load_adm_config",
    "unet2d_config_from_adm",
]

#: guided-diffusion's ``model_and_diffusion_defaults()`` (the flags of its scripts).
_ADM_DEFAULTS: dict[str, Any] = dict(
    image_size=64,
    num_channels=128,
    num_res_blocks=2,
    num_heads=4,
    num_heads_upsample=-1,
    num_head_channels=-1,
    attention_resolutions="16,8",
    channel_mult="",
    dropout=0.0,
    class_cond=False,
    use_scale_shift_norm=True,
    resblock_updown=False,
    use_new_attention_order=False,
    learn_sigma=False,
    diffusion_steps=1000,
    noise_schedule="linear",
    in_channels=3,
)

#: Flags of the released checkpoints that map onto ``UNet2DModel`` (from guided-diffusion's
#: README). ``256x256_diffusion_uncond`` is the class-unconditional ImageNet model of the paper.
ADM_PRESETS: dict[str, dict[str, Any]] = {
    "256x256_diffusion_uncond": dict(
        attention_resolutions="32,16,8",
        class_cond=False,
        diffusion_steps=1000,
        image_size=256,
        learn_sigma=True,
        noise_schedule="linear",
        num_channels=256,
        num_head_channels=64,
        num_res_blocks=2,
        resblock_updown=True,
        use_scale_shift_norm=True,
    ),
    "256x256_diffusion": dict(
        attention_resolutions="32,16,8",
        class_cond=True,
        diffusion_steps=1000,
        image_size=256,
        learn_sigma=True,
        noise_schedule="linear",
        num_channels=256,
        num_head_channels=64,
        num_res_blocks=2,
        resblock_updown=True,
        use_scale_shift_norm=True,
    ),
    "64x64_diffusion": dict(
        attention_resolutions="32,16,8",
        class_cond=True,
        diffusion_steps=1000,
        dropout=0.1,
        image_size=64,
        learn_sigma=True,
        noise_schedule="cosine",
        num_channels=192,
        num_head_channels=64,
        num_res_blocks=3,
        resblock_updown=True,
        use_new_attention_order=True,
        use_scale_shift_norm=True,
    ),
    "lsun_bedroom": dict(
        attention_resolutions="32,16,8",
        class_cond=False,
        diffusion_steps=1000,
        dropout=0.1,
        image_size=256,
        learn_sigma=True,
        noise_schedule="linear",
        num_channels=256,
        num_head_channels=64,
        num_res_blocks=2,
        resblock_updown=True,
        use_scale_shift_norm=True,
    ),
}


def adm_config(preset: str | None = None, **flags: Any) -> dict[str, Any]:
    """Resolve guided-diffusion flags into ``UNetModel`` arguments plus diffusion settings.

    ``preset`` is a key of :data:`ADM_PRESETS`; ``flags`` (guided-diffusion's script flag
    names, e.g. ``num_channels=256``) override it; missing flags take guided-diffusion's
    defaults. Returns a plain dict: ``image_size, in_channels, model_channels, out_channels,
    num_res_blocks, attention_resolutions`` (tuple of downsampling rates), ``channel_mult``,
    ``num_classes, num_heads, num_head_channels, num_heads_upsample, use_scale_shift_norm,
    resblock_updown, use_new_attention_order, conv_resample, dropout`` and ``learn_sigma,
    diffusion_steps, noise_schedule``.

    >>> cfg = adm_config("256x256_diffusion_uncond")
    >>> cfg["channel_mult"], cfg["attention_resolutions"], cfg["out_channels"]
    ((1, 1, 2, 2, 4, 4), (8, 16, 32), 6)
    """
    if preset is not None and preset not in ADM_PRESETS:
        raise InputError(f"preset={preset!r} is not one of {sorted(ADM_PRESETS)}")
    unknown = sorted(set(flags) - set(_ADM_DEFAULTS))
    if unknown:
        raise InputError(f"unknown ADM flag(s) {unknown}; known: {sorted(_ADM_DEFAULTS)}")
    f = {**_ADM_DEFAULTS, **(ADM_PRESETS[preset] if preset else {}), **flags}
    for key in ("image_size", "num_channels", "num_res_blocks", "diffusion_steps", "in_channels"):
        check_int(key, f[key], low=1)
    check_int("num_heads", f["num_heads"], low=1)
    for key in ("num_heads_upsample", "num_head_channels"):  # -1: not set
        if check_int(key, f[key], low=-1) == 0:
            raise InputError(f"{key}=0 violates {key} >= 1 (or -1 for unset)")
    check_float("dropout", f["dropout"], 0.0, 1.0, high_open=True)
    for key in _BOOL_FLAGS:
        if not isinstance(f[key], bool):
            raise InputError(f"{key}={f[key]!r} must be true or false")
    size = int(f["image_size"])
    if f["channel_mult"] in ("", None):
        by_size = {
            512: (0.5, 1, 1, 2, 2, 4, 4),
            256: (1, 1, 2, 2, 4, 4),
            128: (1, 1, 2, 3, 4),
            64: (1, 2, 3, 4),
        }
        if size not in by_size:
            raise InputError(f"image_size={size} has no default channel_mult; pass channel_mult")
        mult = by_size[size]
    else:
        mult = _number_list("channel_mult", f["channel_mult"])
        if not mult or any(m <= 0 for m in mult):
            raise InputError(f"channel_mult={f['channel_mult']!r} must be positive numbers")
    res = _number_list("attention_resolutions", f["attention_resolutions"])
    if any(not float(r).is_integer() for r in res):
        raise InputError(f"attention_resolutions={res} must be integers")
    res = [int(r) for r in res]
    if any(r <= 0 or size % r for r in res):
        raise InputError(f"attention_resolutions={res} must divide image_size={size}")
    check_choice("noise_schedule", f["noise_schedule"], ("linear", "cosine"))
    in_ch = int(f["in_channels"])
    return dict(
        image_size=size,
        in_channels=in_ch,
        model_channels=int(f["num_channels"]),
        out_channels=2 * in_ch if f["learn_sigma"] else in_ch,
        num_res_blocks=int(f["num_res_blocks"]),
        attention_resolutions=tuple(sorted(size // r for r in res)),
        channel_mult=mult,
        num_classes=1000 if f["class_cond"] else None,
        num_heads=int(f["num_heads"]),
        num_head_channels=int(f["num_head_channels"]),
        num_heads_upsample=int(f["num_heads_upsample"]),
        use_scale_shift_norm=bool(f["use_scale_shift_norm"]),
        resblock_updown=bool(f["resblock_updown"]),
        use_new_attention_order=bool(f["use_new_attention_order"]),
        conv_resample=True,
        dropout=float(f["dropout"]),
        learn_sigma=bool(f["learn_sigma"]),
        diffusion_steps=int(f["diffusion_steps"]),
        noise_schedule=f["noise_schedule"],
    )


_BOOL_FLAGS = (
    "class_cond",
    "use_scale_shift_norm",
    "resblock_updown",
    "use_new_attention_order",
    "learn_sigma",
)


def _number_list(name: str, value: Any) -> tuple[int | float, ...]:
    """``"1,1,2"`` or a sequence of numbers as a tuple of ints (floats where fractional)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        numbers = [float(x) for x in items if not isinstance(x, str) or x.strip()]
    except (TypeError, ValueError):
        raise InputError(f"{name}={value!r} must be comma-separated numbers") from None
    return tuple(int(x) if x.is_integer() else x for x in numbers)


def _level_channels(cfg: dict[str, Any]) -> list[int]:
    return [int(m * cfg["model_channels"]) for m in cfg["channel_mult"]]


def _heads(cfg: dict[str, Any], channels: int, upsample: bool = False) -> int:
    if cfg["num_head_channels"] != -1:
        if channels % cfg["num_head_channels"]:
            raise InputError(
                f"num_head_channels={cfg['num_head_channels']} does not divide "
                f"the {channels} channels of an attention layer"
            )
        return channels // cfg["num_head_channels"]
    if upsample and cfg["num_heads_upsample"] != -1:
        return cfg["num_heads_upsample"]
    return cfg["num_heads"]


def _attention_levels(cfg: dict[str, Any]) -> list[bool]:
    return [2**level in cfg["attention_resolutions"] for level in range(len(cfg["channel_mult"]))]


def unet2d_config_from_adm(cfg: dict[str, Any]) -> dict[str, Any]:
    """``UNet2DModel`` keyword arguments equivalent to an :func:`adm_config`.

    Raises ``ValueError`` naming the feature that has no ``UNet2DModel`` equivalent.
    """
    mult = cfg["channel_mult"]
    if mult[0] != 1:
        raise InputError(
            f"channel_mult[0]={mult[0]} violates channel_mult[0] == 1: UNet2DModel sizes the "
            "sinusoidal timestep embedding by block_out_channels[0], ADM by model_channels"
        )
    if not cfg["conv_resample"] and not cfg["resblock_updown"]:
        raise InputError(
            "conv_resample=False without resblock_updown has no UNet2DModel "
            "equivalent (its Downsample2D/Upsample2D always convolve)"
        )
    chans = _level_channels(cfg)
    if any(c % 32 for c in chans):
        raise InputError(f"level channels {chans} must be multiples of 32 (GroupNorm(32))")
    attn = _attention_levels(cfg)
    # every attention layer of the model, with its heads: down/up at attention levels, the mid
    head_dims = set()
    for ch, has in zip(chans, attn, strict=True):
        if has:
            for up in (False, True):
                head_dims.add(ch / _heads(cfg, ch, up))
    head_dims.add(chans[-1] / _heads(cfg, chans[-1]))  # the mid block uses num_heads
    if len(head_dims) != 1 or not float(next(iter(head_dims))).is_integer():
        raise InputError(
            f"attention head widths {sorted(head_dims)} differ between layers (num_heads="
            f"{cfg['num_heads']}, num_heads_upsample={cfg['num_heads_upsample']}, "
            f"num_head_channels={cfg['num_head_channels']}): UNet2DModel has a single "
            "attention_head_dim"
        )
    updown = cfg["resblock_updown"]
    down = [
        "AttnDownBlock2D" if a else ("ResnetDownsampleBlock2D" if updown else "DownBlock2D")
        for a in attn
    ]
    up = [
        "AttnUpBlock2D" if a else ("ResnetUpsampleBlock2D" if updown else "UpBlock2D")
        for a in reversed(attn)
    ]
    return dict(
        sample_size=cfg["image_size"],
        in_channels=cfg["in_channels"],
        out_channels=cfg["out_channels"],
        center_input_sample=False,
        time_embedding_type="positional",
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(chans),
        layers_per_block=cfg["num_res_blocks"],
        mid_block_scale_factor=1,
        downsample_padding=1,
        downsample_type="resnet" if updown else "conv",
        upsample_type="resnet" if updown else "conv",
        dropout=cfg["dropout"],
        act_fn="silu",
        attention_head_dim=int(next(iter(head_dims))),
        norm_num_groups=32,
        attn_norm_num_groups=32,
        norm_eps=1e-5,
        resnet_time_scale_shift="scale_shift" if cfg["use_scale_shift_norm"] else "default",
        add_attention=True,
        class_embed_type=None,
        num_class_embeds=cfg["num_classes"],
    )


# --------------------------------------------------------------------------------------------
# state dict


def _module_map(cfg: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(adm_prefix, diffusers_prefix, kind)`` for every parametrised ADM module, in ADM's
    construction order (``kind``: plain, res, attn)."""
    m: list[tuple[str, str, str]] = [
        ("time_embed.0", "time_embedding.linear_1", "plain"),
        ("time_embed.2", "time_embedding.linear_2", "plain"),
        ("input_blocks.0.0", "conv_in", "plain"),
    ]
    if cfg["num_classes"] is not None:
        m.append(("label_emb", "class_embedding", "plain"))
    attn = _attention_levels(cfg)
    n_levels, nrb = len(cfg["channel_mult"]), cfg["num_res_blocks"]
    updown = cfg["resblock_updown"]  # resampling ResBlocks, else a plain conv resampler
    k = 1
    for level in range(n_levels):
        for j in range(nrb):
            m.append((f"input_blocks.{k}.0", f"down_blocks.{level}.resnets.{j}", "res"))
            if attn[level]:
                m.append((f"input_blocks.{k}.1", f"down_blocks.{level}.attentions.{j}", "attn"))
            k += 1
        if level != n_levels - 1:
            src, dst = f"input_blocks.{k}.0", f"down_blocks.{level}.downsamplers.0"
            m.append((src, dst, "res") if updown else (f"{src}.op", f"{dst}.conv", "plain"))
            k += 1
    m += [
        ("middle_block.0", "mid_block.resnets.0", "res"),
        ("middle_block.1", "mid_block.attentions.0", "attn"),
        ("middle_block.2", "mid_block.resnets.1", "res"),
    ]
    k = 0
    for u, level in enumerate(reversed(range(n_levels))):
        for i in range(nrb + 1):
            m.append((f"output_blocks.{k}.0", f"up_blocks.{u}.resnets.{i}", "res"))
            sub = 1
            if attn[level]:
                m.append((f"output_blocks.{k}.1", f"up_blocks.{u}.attentions.{i}", "attn"))
                sub = 2
            if level and i == nrb:
                src, dst = f"output_blocks.{k}.{sub}", f"up_blocks.{u}.upsamplers.0"
                m.append((src, dst, "res") if updown else (f"{src}.conv", f"{dst}.conv", "plain"))
            k += 1
    m += [("out.0", "conv_norm_out", "plain"), ("out.2", "conv_out", "plain")]
    return m


_RES_PARTS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def convert_adm_state_dict(state_dict: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Rename/reshape an ADM ``UNetModel`` state dict into ``UNet2DModel``'s (float32).

    Every ADM key must be used exactly once; unknown or missing keys raise
    :class:`~hiergrammar.InputError`.
    """
    import torch

    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    head_dim = unet2d_config_from_adm(cfg)["attention_head_dim"]  # one width for all layers
    out: dict[str, Any] = {}
    used: set[str] = set()

    def take(key: str) -> Any:
        if key not in sd:
            raise InputError(f"ADM state dict lacks {key!r} (does the config match?)")
        used.add(key)
        return sd[key].detach().to(torch.float32)

    for src, dst, kind in _module_map(cfg):
        if kind == "plain":
            for p in ("weight",) if src == "label_emb" else ("weight", "bias"):
                out[f"{dst}.{p}"] = take(f"{src}.{p}")
        elif kind == "res":
            for a, b in _RES_PARTS.items():
                for p in ("weight", "bias"):
                    if f"{src}.{a}.{p}" in sd:
                        out[f"{dst}.{b}.{p}"] = take(f"{src}.{a}.{p}")
        else:  # attention
            out[f"{dst}.group_norm.weight"] = take(f"{src}.norm.weight")
            out[f"{dst}.group_norm.bias"] = take(f"{src}.norm.bias")
            w = take(f"{src}.qkv.weight")[..., 0]  # (3C, C) from a 1x1 Conv1d
            b = take(f"{src}.qkv.bias")
            c = w.shape[1]
            if tuple(w.shape) != (3 * c, c) or c % head_dim or tuple(b.shape) != (3 * c,):
                raise InputError(
                    f"{src}.qkv has shape {tuple(w.shape)}, not (3C, C) with C a multiple of "
                    f"the head width {head_dim} (does the config match?)"
                )
            heads = c // head_dim
            if cfg["use_new_attention_order"]:
                w4, b3 = w.reshape(3, heads, head_dim, c), b.reshape(3, heads, head_dim)
            else:  # legacy: heads first, then q/k/v
                w4 = w.reshape(heads, 3, head_dim, c).transpose(0, 1)
                b3 = b.reshape(heads, 3, head_dim).transpose(0, 1)
            for j, name in enumerate(("to_q", "to_k", "to_v")):
                out[f"{dst}.{name}.weight"] = w4[j].reshape(c, c).contiguous()
                out[f"{dst}.{name}.bias"] = b3[j].reshape(c).contiguous()
            out[f"{dst}.to_out.0.weight"] = take(f"{src}.proj_out.weight")[..., 0]
            out[f"{dst}.to_out.0.bias"] = take(f"{src}.proj_out.bias")
    left = sorted(set(sd) - used)
    if left:
        raise InputError(f"ADM state dict has {len(left)} unmapped keys, e.g. {left[:5]}")
    return out


def adm_to_diffusers(state_dict: dict[str, Any], cfg: dict[str, Any]):
    """A ``UNet2DModel`` (eval mode, float32) holding an ADM state dict's weights."""
    from diffusers import UNet2DModel

    model = UNet2DModel(**unet2d_config_from_adm(cfg))
    converted = convert_adm_state_dict(state_dict, cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    if missing or extra:
        raise InputError(
            f"converted keys do not match UNet2DModel: missing {missing[:5]}, "
            f"unexpected {extra[:5]}"
        )
    for k, v in converted.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise InputError(f"{k}: shape {tuple(v.shape)} != {tuple(expected[k].shape)}")
    model.load_state_dict(converted, strict=True)
    return model.eval()


def adm_scheduler(cfg: dict[str, Any], kind: str = "ddpm"):
    """The diffusers scheduler of an ADM diffusion (``kind``: ``ddpm`` or ``ddim``).

    ``ddpm``: ``DDPMScheduler`` with ``learned_range`` (or ``fixed_large``, guided-diffusion's
    default without learned sigma) variance, ``clip_sample`` (``clip_denoised=True``) and
    ``timestep_spacing="linspace"``, which reproduces guided-diffusion's respacing ``"N"``
    (``round(i (T-1)/(N-1))``). ``ddim``: ``DDIMScheduler`` with ``timestep_spacing="leading"``
    (guided-diffusion's ``"ddimN"``: ``range(0, T, T // N)``) and ``set_alpha_to_one``.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    steps = cfg["diffusion_steps"]
    if cfg["noise_schedule"] == "linear":
        scale = 1000 / steps  # guided-diffusion rescales the linear schedule to keep its ends
        betas = dict(beta_schedule="linear", beta_start=scale * 1e-4, beta_end=scale * 0.02)
    else:
        betas = dict(beta_schedule="squaredcos_cap_v2")
    common = dict(
        num_train_timesteps=steps,
        clip_sample=True,
        clip_sample_range=1.0,
        prediction_type="epsilon",
        **betas,
    )
    if kind == "ddpm":
        var = "learned_range" if cfg["learn_sigma"] else "fixed_large"
        return DDPMScheduler(variance_type=var, timestep_spacing="linspace", **common)
    if kind == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, timestep_spacing="leading", **common)
    raise InputError(f"kind={kind!r} is not 'ddpm' or 'ddim'")


def convert_adm_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    preset: str | None = "256x256_diffusion_uncond",
    **flags: Any,
) -> Path:
    """Convert a guided-diffusion ``.pt`` state dict into a diffusers pipeline folder.

    Writes ``out_dir`` in ``DDPMPipeline.save_pretrained`` layout (``model_index.json``,
    ``unet/``, ``scheduler/``, safetensors weights) plus ``adm_config.json`` (the resolved
    ADM configuration), and returns ``out_dir``. Load it with
    :func:`hiergrammar.vision.models.load_diffusion` or ``DDPMPipeline.from_pretrained``.

    The checkpoint is read without unpickling Python objects (a state dict read with
    ``torch.load(weights_only=True)``, or safetensors); a file that holds anything else, is
    corrupt, or does not match the configuration raises :class:`~hiergrammar.InputError`
    naming it, before anything is written.

    Examples
    --------
    ``convert_adm_checkpoint("256x256_diffusion_uncond.pt", "models/adm256u")`` converts the
    paper's model. A missing file is refused at once:

    >>> try:
    ...     convert_adm_checkpoint("/nowhere/adm.pt", "/tmp/never-written")
    ... except FileNotFoundError as err:
    ...     print(err)
    ADM checkpoint /nowhere/adm.pt does not exist
    """
    from diffusers import DDPMPipeline
    from hiergrammar.vision.checkpoints import check_input_file, load_state_dict

    from hiergrammar.artifacts import save_json

    checkpoint = check_input_file(checkpoint, "ADM checkpoint")
    cfg = adm_config(preset, **flags)
    state_dict = load_state_dict(checkpoint, "ADM checkpoint")
    try:
        unet = adm_to_diffusers(state_dict, cfg)
    except InputError as err:
        raise InputError(
            f"ADM checkpoint {checkpoint} does not fit the configuration (preset={preset!r}, "
            f"flags {flags}): {err}"
        ) from None
    out_dir = Path(out_dir)
    DDPMPipeline(unet=unet, scheduler=adm_scheduler(cfg, "ddpm")).save_pretrained(out_dir)
    save_json(out_dir / "adm_config.json", {"source": checkpoint.name, "preset": preset, **cfg})
    return out_dir


def load_adm_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read back the ``adm_config.json`` written by :func:`convert_adm_checkpoint`.

    Examples
    --------
    >>> import json, tempfile
    >>> path = tempfile.mkdtemp() + "/adm_config.json"
    >>> _ = open(path, "w").write(json.dumps(adm_config("256x256_diffusion_uncond")))
    >>> load_adm_config(path)["channel_mult"]
    (1, 1, 2, 2, 4, 4)
    """
    from hiergrammar.vision.checkpoints import check_input_file

    path = check_input_file(path, "ADM config")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        cfg["channel_mult"] = tuple(cfg["channel_mult"])
        cfg["attention_resolutions"] = tuple(cfg["attention_resolutions"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{path} is not an ADM config written by convert-adm ({err!r})") from None
    return cfg
