"""The learned denoisers: a bidirectional transformer and a tree-matched U-Net.

Both networks map a noisy string ``x_t`` and a time ``tau`` in ``[0, 1]`` (the process time
divided by its largest value, ``Diffusion.tau`` of
:mod:`~hiergrammar.vision.grammar_diffusion.diffusions`) to per-leaf logits over the ``v``
clean symbols, shape ``(n, d, v)``. What ``x_t`` is depends on the diffusion family, given as
``input_kind``:

* ``"masked"``: int tokens ``(n, d)`` in ``[0, v]``, ``v`` being MASK (an embedding of ``v + 1``
  rows);
* ``"tokens"``: int tokens ``(n, d)`` in ``[0, v)`` (uniform diffusion; ``v`` rows);
* ``"vectors"``: float vectors ``(n, d, v)`` (Gaussian diffusion of one-hot leaves; a linear
  map of each leaf's vector).

:class:`GrammarTransformer` is a small pre-norm transformer encoder without attention mask:
every leaf sees every other, with a learned position embedding and the time embedding added to
every token.

:class:`TreeUNet` follows the tree (Mei 2024, "U-Nets as belief propagation"): the contracting
path applies ``L`` stride-``s`` convolutions with kernel ``s``
(:class:`~hiergrammar.vision.rhm_cnn.TreeConv1d`), so that unit ``p`` of level ``l`` sees exactly
the leaves of node ``p``'s subtree, down to one unit for the root; the expanding path applies
``L`` transposed convolutions with kernel and stride ``s`` (:class:`TreeConvTranspose1d`), each
unit of level ``l`` sending one vector to each of its ``s`` children, and adds the skip
connection of the same level. This is the computation graph of exact belief propagation on the
tree: the contracting path carries the upward messages (a node's subtree evidence), the
expanding path the downward messages (everything outside the subtree), and the skip joins the
two at every node, as a marginal multiplies ``up`` by ``down``. Each level is a tree convolution
followed by a residual point-wise MLP, with a per-level time bias.

The constructor arguments are JSON values (``config``), so trained networks are saved as module
folders (:func:`hiergrammar.vision.checkpoints.save_module`, architectures
``"grammar_transformer"`` and ``"tree_unet"``). ``seed`` fixes the initialisation without
touching torch's global random stream.

Examples
--------
>>> import torch
>>> net = TreeUNet(v=4, s=2, L=3, input_kind="masked", width=16, seed=0)
>>> x = torch.tensor([[0, 4, 2, 3, 4, 4, 1, 0]])            # 4 = MASK
>>> tuple(net(x, torch.tensor([0.5])).shape)                 # (n, d, v) logits
(1, 8, 4)
>>> tf = GrammarTransformer(v=4, d=8, input_kind="masked", width=16, depth=1, heads=2, seed=0)
>>> tuple(tf(x, torch.tensor([0.5])).shape)
(1, 8, 4)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from hiergrammar.vision.rhm_cnn import TreeConv1d
from torch import nn

from hiergrammar.validation import InputError, check_choice, check_int, check_seed

__all__ = [
    "ARCHITECTURES",
    "INPUT_KINDS",
    "GrammarTransformer",
    "TreeConvTranspose1d",
    "TreeUNet",
    "build_network",
    "time_features",
]

#: What a network reads as ``x_t`` (see the module docstring).
INPUT_KINDS = ("masked", "tokens", "vectors")

#: Architecture names, as the module folders name them.
ARCHITECTURES = ("grammar_transformer", "tree_unet")


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Initialise parameters from ``seed`` and leave torch's global stream as it was."""
    seed = check_seed("seed", seed, allow_generator=False)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def time_features(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of times ``tau`` in ``[0, 1]``, shape ``(n, dim)``.

    The DDPM embedding of ``1000 tau``: ``sin`` and ``cos`` at ``dim / 2`` frequencies spaced
    geometrically from 1 to 1/10000, so that both coarse and fine differences of ``tau`` show.

    Parameters
    ----------
    tau : torch.Tensor
        ``(n,)`` times.
    dim : int
        Even number of features.

    Returns
    -------
    torch.Tensor
        ``(n, dim)``, float32.

    Examples
    --------
    >>> time_features(torch.tensor([0.0, 1.0]), 4).shape
    torch.Size([2, 4])
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=tau.device) / half)
    angle = 1000.0 * tau.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class _TimeEmbedding(nn.Module):
    """``tau`` -> sinusoidal features -> two-layer MLP, ``(n, width)``."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        # zero at initialisation: time enters once the content is read (the masking posterior
        # does not depend on it at all)
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        return self.mlp(time_features(tau, self.width))


class _LeafInput(nn.Module):
    """``x_t`` -> ``(n, d, width)``: an embedding of tokens or a linear map of vectors."""

    def __init__(self, v: int, input_kind: str, width: int):
        super().__init__()
        self.v, self.input_kind = v, input_kind
        if input_kind == "vectors":
            self.embed: nn.Module = nn.Linear(v, width)
        else:
            self.embed = nn.Embedding(v + 1 if input_kind == "masked" else v, width)

    def forward(self, x: torch.Tensor, d: int) -> torch.Tensor:
        if self.input_kind == "vectors":
            if x.dim() != 3 or tuple(x.shape[1:]) != (d, self.v):
                raise InputError(
                    f"x must have shape (n, d, v) = (n, {d}, {self.v}), got {tuple(x.shape)}"
                )
            return self.embed(x.float())
        if x.dim() != 2 or x.shape[1] != d:
            raise InputError(f"x must have shape (n, d) = (n, {d}), got {tuple(x.shape)}")
        if x.dtype.is_floating_point:
            raise InputError(f"x must hold integer tokens, got {x.dtype}")
        return self.embed(x.long())


def _check_common(v: int, input_kind: str, width: int) -> tuple[int, str, int]:
    v = check_int("v", v, low=2)
    input_kind = check_choice("input_kind", input_kind, INPUT_KINDS)
    width = check_int("width", width, low=2)
    if width % 2:
        raise InputError(f"width={width} must be even (sin and cos time features)")
    return v, input_kind, width


def _check_tau(tau: torch.Tensor, n: int) -> torch.Tensor:
    tau = torch.as_tensor(tau)
    if tau.dim() == 0:
        tau = tau.expand(n)
    if tau.shape != (n,):
        raise InputError(
            f"tau must be a scalar or have shape (n,) = ({n},), got {tuple(tau.shape)}"
        )
    return tau


class GrammarTransformer(nn.Module):
    """A bidirectional transformer encoder on the ``d`` leaves; per-leaf logits over ``v``.

    Parameters
    ----------
    v : int
        Leaf vocabulary (the number of output logits per leaf).
    d : int
        Number of leaves ``s**L``.
    input_kind : {"masked", "tokens", "vectors"}
        What ``x_t`` is (see the module docstring).
    width : int
        Model width (even).
    depth : int
        Number of encoder layers.
    heads : int
        Attention heads (``width`` divisible by ``heads``).
    mlp_ratio : int
        Feed-forward width over model width.
    seed : int or None
        Seed of the initialisation.

    Examples
    --------
    >>> net = GrammarTransformer(v=3, d=4, input_kind="tokens", width=8, depth=1, heads=2)
    >>> net.config["depth"], sum(p.numel() for p in net.parameters()) > 0
    (1, True)
    """

    def __init__(
        self,
        v: int,
        d: int,
        input_kind: str = "masked",
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        seed: int | None = 0,
    ):
        super().__init__()
        v, input_kind, width = _check_common(v, input_kind, width)
        d = check_int("d", d, low=1)
        depth = check_int("depth", depth, low=1)
        heads = check_int("heads", heads, low=1)
        mlp_ratio = check_int("mlp_ratio", mlp_ratio, low=1)
        if width % heads:
            raise InputError(f"width={width} must be a multiple of heads={heads}")
        self.v, self.d, self.input_kind = v, d, input_kind
        self.width, self.depth, self.heads, self.mlp_ratio = width, depth, heads, mlp_ratio
        with _seeded(seed):
            self.leaf_input = _LeafInput(v, input_kind, width)
            # on the scale of the token vectors (N(0, 1)): the leaves' places are all the
            # grammar is about, they must not be drowned
            self.position = nn.Parameter(torch.randn(d, width))
            self.time = _TimeEmbedding(width)
            layer = nn.TransformerEncoderLayer(
                width,
                heads,
                dim_feedforward=mlp_ratio * width,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(width)
            self.readout = nn.Linear(width, v)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (without the seed)."""
        return {
            "v": self.v,
            "d": self.d,
            "input_kind": self.input_kind,
            "width": self.width,
            "depth": self.depth,
            "heads": self.heads,
            "mlp_ratio": self.mlp_ratio,
        }

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, d, v)`` of ``x_t`` (see ``input_kind``) at times ``tau`` ``(n,)``."""
        h = self.leaf_input(x, self.d)  # (n, d, width)
        tau = _check_tau(tau, h.shape[0]).to(h.device)
        h = h + self.position[None] + self.time(tau)[:, None, :]
        return self.readout(self.norm(self.encoder(h)))


class TreeConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d(c_in, c_out, kernel_size=s, stride=s)``, as one matrix product.

    The transpose of :class:`~hiergrammar.vision.rhm_cnn.TreeConv1d`: unit ``p`` writes the
    ``s`` positions ``p*s .. p*s+s-1`` and nothing else, so the windows do not overlap and the
    operation is a linear map of each unit followed by a reshape. Parameters and result are those
    of ``nn.ConvTranspose1d`` (checked in the tests against
    ``torch.nn.functional.conv_transpose1d``).

    Examples
    --------
    >>> up = TreeConvTranspose1d(3, 5, s=2)
    >>> tuple(up(torch.zeros(1, 3, 4)).shape)
    (1, 5, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, s: int):
        super().__init__(in_channels, out_channels, kernel_size=s, stride=s)

    def forward(self, x: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        n, c, w = x.shape
        s = self.kernel_size[0]
        # weight (c_in, c_out, s): out[n, o, p*s + k] = sum_c x[n, c, p] weight[c, o, k] + bias[o]
        out = x.transpose(1, 2) @ self.weight.reshape(c, -1)  # (n, w, c_out * s)
        out = out.reshape(n, w, self.out_channels, s).permute(0, 2, 1, 3)
        out = out.reshape(n, self.out_channels, w * s)
        return out + self.bias[None, :, None]


class _PointwiseMLP(nn.Module):
    """Residual point-wise MLP on ``(n, width, positions)``: ``h + W2 gelu(W1 h)``."""

    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Linear(width, 2 * width)
        self.outer = nn.Linear(2 * width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g = h.transpose(1, 2)
        g = self.outer(nn.functional.gelu(self.inner(g)))
        return h + g.transpose(1, 2)


class TreeUNet(nn.Module):
    """A convolutional U-Net matched to the tree of depth ``L`` and branching ``s``.

    Parameters
    ----------
    v : int
        Leaf vocabulary (output logits per leaf).
    s, L : int
        Branching factor and depth; the input has ``d = s**L`` leaves.
    input_kind : {"masked", "tokens", "vectors"}
        What ``x_t`` is (see the module docstring).
    width : int
        Channels at every level (even).
    seed : int or None
        Seed of the initialisation.

    Examples
    --------
    >>> net = TreeUNet(v=3, s=3, L=2, input_kind="vectors", width=8)
    >>> tuple(net(torch.zeros(2, 9, 3), torch.tensor([0.1, 0.9])).shape)
    (2, 9, 3)
    >>> [name for name, _ in net.down.named_children()]      # one tree convolution per level
    ['0', '1']
    """

    def __init__(
        self,
        v: int,
        s: int,
        L: int,
        input_kind: str = "masked",
        width: int = 64,
        seed: int | None = 0,
    ):
        super().__init__()
        v, input_kind, width = _check_common(v, input_kind, width)
        s, L = check_int("s", s, low=2), check_int("L", L, low=1)
        self.v, self.s, self.L, self.input_kind, self.width = v, s, L, input_kind, width
        self.d = s**L
        with _seeded(seed):
            self.leaf_input = _LeafInput(v, input_kind, width)
            self.time = _TimeEmbedding(width)
            self.leaf_mlp = _PointwiseMLP(width)
            # contracting path: level l-1 -> level l, for l = 1..L
            self.down = nn.ModuleList(TreeConv1d(width, width, s) for _ in range(L))
            self.down_mlp = nn.ModuleList(_PointwiseMLP(width) for _ in range(L))
            # expanding path: level l -> level l-1, for l = L..1 (index L - l)
            self.up = nn.ModuleList(TreeConvTranspose1d(width, width, s) for _ in range(L))
            self.skip = nn.ModuleList(nn.Linear(width, width) for _ in range(L))
            self.up_mlp = nn.ModuleList(_PointwiseMLP(width) for _ in range(L))
            # one time bias per level and direction
            self.time_bias = nn.Linear(width, 2 * L * width)
            self.norm = nn.LayerNorm(width)
            self.readout = nn.Linear(width, v)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (without the seed)."""
        return {
            "v": self.v,
            "s": self.s,
            "L": self.L,
            "input_kind": self.input_kind,
            "width": self.width,
        }

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, d, v)`` of ``x_t`` (see ``input_kind``) at times ``tau`` ``(n,)``."""
        h = self.leaf_input(x, self.d)  # (n, d, width)
        n = h.shape[0]
        tau = _check_tau(tau, n).to(h.device)
        emb = self.time(tau)  # (n, width)
        bias = self.time_bias(nn.functional.silu(emb)).reshape(n, 2 * self.L, self.width, 1)
        h = self.leaf_mlp((h + emb[:, None, :]).transpose(1, 2))  # (n, width, d)
        skips = [h]
        for level in range(1, self.L + 1):  # upward messages: the subtree below each node
            h = nn.functional.gelu(self.down[level - 1](h) + bias[:, level - 1])
            h = self.down_mlp[level - 1](h)
            skips.append(h)
        for level in range(self.L, 0, -1):  # downward messages, joined with the skip
            k = self.L - level
            skip = self.skip[k](skips[level - 1].transpose(1, 2)).transpose(1, 2)
            h = nn.functional.gelu(self.up[k](h) + skip + bias[:, self.L + k])
            h = self.up_mlp[k](h)
        return self.readout(self.norm(h.transpose(1, 2)))


def build_network(
    architecture: str,
    *,
    v: int,
    s: int,
    L: int,
    input_kind: str,
    seed: int | None = 0,
    **sizes: Any,
) -> nn.Module:
    """A denoiser network for a grammar's tree: ``architecture`` in :data:`ARCHITECTURES`.

    Parameters
    ----------
    architecture : {"grammar_transformer", "tree_unet"}
    v, s, L : int
        The grammar's leaf vocabulary, branching factor and depth.
    input_kind : {"masked", "tokens", "vectors"}
        The diffusion family's input (``Diffusion.input_kind``).
    seed : int or None
        Seed of the initialisation.
    **sizes
        Further constructor arguments (``width``, and ``depth``, ``heads``, ``mlp_ratio`` for the
        transformer).

    Returns
    -------
    torch.nn.Module
        With a ``config`` property (JSON constructor arguments).

    Raises
    ------
    InputError
        For an unknown architecture or bad sizes.

    Examples
    --------
    >>> build_network("tree_unet", v=4, s=2, L=2, input_kind="tokens", width=8).config["L"]
    2
    """
    architecture = check_choice("architecture", architecture, ARCHITECTURES)
    if architecture == "tree_unet":
        return TreeUNet(v=v, s=s, L=L, input_kind=input_kind, seed=seed, **sizes)
    return GrammarTransformer(v=v, d=s**L, input_kind=input_kind, seed=seed, **sizes)
