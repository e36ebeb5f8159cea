"""An independent, minimal torch port of OpenAI guided-diffusion (ADM), for tests only.

Ported from openai/guided-diffusion (MIT licence): ``guided_diffusion/unet.py`` (``UNetModel``
and its blocks, 2-D only, no gradient checkpointing, no fp16 torso) and ``nn.py``
(``timestep_embedding``, ``GroupNorm32``), plus the sampling side of
``gaussian_diffusion.py``/``respace.py`` (``space_timesteps``, the respaced betas, ``q_sample``
and ``p_sample`` with ``learned_range`` variance and ``clip_denoised``). The module and
parameter names are the original ones, so a state dict of this port is laid out exactly like an
ADM ``.pt`` checkpoint. The tests convert such a state dict with :mod:`hiergrammar.vision.adm` and
compare
the diffusers model and the diffusers scheduler path against this code.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# nn.py


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in (at least) float32.

    The original casts to float32 for its fp16 torso; float64 inputs are kept in float64
    here so that the tests can also compare the two implementations in float64.
    """

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x):
        y = x if x.dtype == torch.float64 else x.float()
        return super().forward(y).type(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """``[cos(t f_0..f_{h-1}), sin(t f_0..f_{h-1})]`` with ``f_i = max_period^(-i/h)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(
        timesteps.device
    )
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


# --------------------------------------------------------------------------------------------
# unet.py


class TimestepBlock(nn.Module):
    pass


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, self.out_channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        self.out_channels = out_channels or channels
        if use_conv:
            self.op = nn.Conv2d(channels, self.out_channels, 3, stride=2, padding=1)
        else:
            assert channels == self.out_channels
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        return self.op(x)


class ResBlock(TimestepBlock):
    def __init__(
        self,
        channels,
        emb_channels,
        dropout,
        out_channels=None,
        use_scale_shift_norm=False,
        up=False,
        down=False,
    ):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, self.out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(
                emb_channels, 2 * self.out_channels if use_scale_shift_norm else self.out_channels
            ),
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(self.out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1),
        )
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)

    def forward(self, x, emb):
        if self.updown:
            in_rest, in_conv = self.in_layers[:-1], self.in_layers[-1]
            h = in_conv(self.h_upd(in_rest(x)))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = out_rest(out_norm(h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class QKVAttentionLegacy(nn.Module):
    """Heads split before q/k/v: qkv channels laid out as (head, [q, k, v], ch)."""

    def __init__(self, n_heads):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv):
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(bs * self.n_heads, ch * 3, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v)
        return a.reshape(bs, -1, length)


class QKVAttention(nn.Module):
    """q/k/v split before heads: qkv channels laid out as ([q, k, v], head, ch)."""

    def __init__(self, n_heads):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv):
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.chunk(3, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum(
            "bct,bcs->bts",
            (q * scale).view(bs * self.n_heads, ch, length),
            (k * scale).view(bs * self.n_heads, ch, length),
        )
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v.reshape(bs * self.n_heads, ch, length))
        return a.reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1, num_head_channels=-1, use_new_attention_order=False):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.attention = (QKVAttention if use_new_attention_order else QKVAttentionLegacy)(
            self.num_heads
        )
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))
        return (x + h).reshape(b, c, *spatial)


class UNetModel(nn.Module):
    """guided-diffusion's UNetModel (2-D). Arguments as in the original."""

    def __init__(
        self,
        image_size,
        in_channels,
        model_channels,
        out_channels,
        num_res_blocks,
        attention_resolutions,
        dropout=0,
        channel_mult=(1, 2, 4, 8),
        conv_resample=True,
        num_classes=None,
        num_heads=1,
        num_head_channels=-1,
        num_heads_upsample=-1,
        use_scale_shift_norm=False,
        resblock_updown=False,
        use_new_attention_order=False,
    ):
        super().__init__()
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.model_channels = model_channels
        self.num_classes = num_classes
        ted = model_channels * 4
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, ted), nn.SiLU(), nn.Linear(ted, ted)
        )
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, ted)

        def res(ch_in, ch_out=None, **kw):
            return ResBlock(
                ch_in,
                ted,
                dropout,
                out_channels=ch_out,
                use_scale_shift_norm=use_scale_shift_norm,
                **kw,
            )

        def attn(ch, heads):
            return AttentionBlock(
                ch,
                num_heads=heads,
                num_head_channels=num_head_channels,
                use_new_attention_order=use_new_attention_order,
            )

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))]
        )
        input_block_chans = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                input_block_chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(
                    TimestepEmbedSequential(
                        res(ch, ch, down=True)
                        if resblock_updown
                        else Downsample(ch, conv_resample, out_channels=ch)
                    )
                )
                input_block_chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch), attn(ch, num_heads), res(ch))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                ich = input_block_chans.pop()
                layers = [res(ch + ich, int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(
                        res(ch, ch, up=True)
                        if resblock_updown
                        else Upsample(ch, conv_resample, out_channels=ch)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), nn.Conv2d(input_ch, out_channels, 3, padding=1)
        )

    def forward(self, x, timesteps, y=None):
        assert (y is not None) == (self.num_classes is not None)
        t_emb = timestep_embedding(timesteps, self.model_channels)
        # float32 embedding as in the original; cast only when the weights are float64
        emb = self.time_embed(t_emb.to(self.time_embed[0].weight.dtype))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        hs = []
        h = x
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (ADM zero-initialises its output convs, which would make a
    comparison vacuous): default init for conv/linear/embedding, perturbed GroupNorm affine."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.Embedding)):
            m.reset_parameters()
        elif isinstance(m, nn.GroupNorm):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))
    return model


# --------------------------------------------------------------------------------------------
# gaussian_diffusion.py / respace.py (sampling side, epsilon prediction, learned_range)


def space_timesteps(num_timesteps: int, section_counts: str) -> list[int]:
    """guided-diffusion's respacing: "250" (evenly strided, rounded) or "ddim250"."""
    if section_counts.startswith("ddim"):
        desired = int(section_counts[len("ddim") :])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == desired:
                return list(range(0, num_timesteps, stride))
        raise ValueError(section_counts)
    count = int(section_counts)
    frac_stride = (num_timesteps - 1) / (count - 1) if count > 1 else 1
    cur, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur))
        cur += frac_stride
    return sorted(set(taken))


class RespacedDiffusion:
    """Ancestral (DDPM) sampling on a respaced linear schedule, as guided-diffusion does it.

    ``learn_sigma``: the model outputs ``[eps, v]`` and the log variance is
    ``frac * log(beta_t) + (1 - frac) * log(posterior_var_clipped)`` with ``frac = (v + 1)/2``,
    both of the respaced chain. Float64 coefficients, like the original.
    """

    def __init__(
        self,
        num_timesteps: int = 1000,
        section_counts: str = "250",
        learn_sigma: bool = True,
        clip_denoised: bool = True,
    ):
        scale = 1000 / num_timesteps
        base_betas = np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)
        base_alphas_cumprod = np.cumprod(1.0 - base_betas)
        self.timestep_map = space_timesteps(num_timesteps, section_counts)
        last, betas = 1.0, []
        for i, acp in enumerate(base_alphas_cumprod):
            if i in self.timestep_map:
                betas.append(1 - acp / last)
                last = acp
        self.betas = np.array(betas)
        self.num_timesteps = len(betas)
        self.learn_sigma = learn_sigma
        self.clip_denoised = clip_denoised
        alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.posterior_variance = (
            self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
        )
        self.posterior_mean_coef1 = (
            self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        )

    def q_sample(self, x_start, index, noise):
        a = self.alphas_cumprod[index]
        return float(np.sqrt(a)) * x_start + float(np.sqrt(1.0 - a)) * noise

    def p_sample(self, model, x, index, noise):
        n, c = x.shape[:2]
        ts = torch.full((n,), self.timestep_map[index], dtype=torch.long)
        out = model(x, ts)
        if self.learn_sigma:
            eps, v = torch.split(out, c, dim=1)
            min_log = float(self.posterior_log_variance_clipped[index])
            max_log = float(np.log(self.betas[index]))
            frac = (v + 1) / 2
            log_var = frac * max_log + (1 - frac) * min_log
        else:
            eps = out
            log_var = torch.full_like(x, float(np.log(self.posterior_variance[index])))
        acp = self.alphas_cumprod[index]
        pred_xstart = float(np.sqrt(1.0 / acp)) * x - float(np.sqrt(1.0 / acp - 1)) * eps
        if self.clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean = (
            float(self.posterior_mean_coef1[index]) * pred_xstart
            + float(self.posterior_mean_coef2[index]) * x
        )
        if index == 0:
            return mean
        return mean + torch.exp(0.5 * log_var) * noise

    def forward_backward(self, model, x_start, t, seeds):
        """Noise to respaced state ``t`` (index ``t - 1``) and sample back; noise drawn per image
        from ``torch.Generator().manual_seed(seeds[i])``: start noise, then one draw per step
        at indices ``t-1 .. 1``."""
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        shape = x_start.shape[1:]

        def draw():
            return torch.stack([torch.randn(shape, generator=g) for g in gens])

        noise = draw()
        if t == self.num_timesteps:
            x = noise
        else:
            x = self.q_sample(x_start, t - 1, noise)
        for index in range(t - 1, -1, -1):
            x = self.p_sample(model, x, index, draw() if index > 0 else None)
        return x


# --------------------------------------------------------------------------------------------
# tiny configurations used by the tests


def tiny_flags(**overrides) -> dict:
    """guided-diffusion flags of a tiny ADM with every feature of the 256x256 model: learned
    sigma, scale-shift norm, resblock up/down, legacy multi-head attention at two levels."""
    flags = dict(
        image_size=8,
        num_channels=32,
        num_res_blocks=1,
        attention_resolutions="4,2",
        channel_mult="1,1,2",
        num_head_channels=16,
        learn_sigma=True,
        resblock_updown=True,
        use_scale_shift_norm=True,
    )
    flags.update(overrides)
    return flags


def build_reference(cfg: dict, seed: int = 0) -> UNetModel:
    """A randomly initialised reference ADM for an ``hiergrammar.vision.adm.adm_config`` dict."""
    model = UNetModel(
        cfg["image_size"],
        cfg["in_channels"],
        cfg["model_channels"],
        cfg["out_channels"],
        cfg["num_res_blocks"],
        cfg["attention_resolutions"],
        dropout=cfg["dropout"],
        channel_mult=cfg["channel_mult"],
        num_classes=cfg["num_classes"],
        num_heads=cfg["num_heads"],
        num_head_channels=cfg["num_head_channels"],
        num_heads_upsample=cfg["num_heads_upsample"],
        use_scale_shift_norm=cfg["use_scale_shift_norm"],
        resblock_updown=cfg["resblock_updown"],
        use_new_attention_order=cfg["use_new_attention_order"],
    )
    return randomize_(model, seed).eval()
