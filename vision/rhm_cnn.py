"""A CNN whose architecture matches the RHM tree, trained to classify RHM data (paper Fig. 8).

RHM inputs are strings of ``d = s**L`` symbols in ``[0, v)``. As images they are one-hot vectors
with ``v`` channels, scaled to ``[-1, 1]`` (the range of a diffusion model's data), laid out

* ``layout="1d"``: a 1-D image, shape ``(n, v, d)``; leaf ``i`` is position ``i``;
* ``layout="2d"``: a 2-D image, shape ``(n, v, H, W)`` with ``H = s**(L//2)``,
  ``W = s**(L - L//2)``, in the k-d-tree order of :func:`leaf_grid`: the ``s`` children of a
  node sit side by side, alternately along the width and the height, so that every subtree of
  level ``l`` fills an aligned ``s**(l//2) x s**(l - l//2)`` block of pixels. A 2-D CNN with
  kernels ``(1, s)``, ``(s, 1)``, ``(1, s)``, ... and equal strides matches the tree there.

:func:`encode` maps symbols to images, :func:`decode` maps images back (argmax over channels),
and :func:`leaf_values` returns an image's ``(n, d, v)`` per-leaf channel values, the layout the
noise and BP functions of :mod:`hiergrammar` use.

:class:`TreeCNN` is the classifier: ``L`` layers ``Conv1d(kernel s, stride s) + ReLU``, so that
unit ``p`` of layer ``l`` sees exactly the leaves ``p*s**l .. (p+1)*s**l - 1`` (the subtree of
node ``p`` at level ``l``), then a linear read-out of the ``width`` channels of the last layer
(length 1) to the class logits. Its modules are named ``conv1, relu1, ..., convL, reluL,
flatten, readout``; :attr:`TreeCNN.probe_layers` lists the post-activations and the logits.

Trained models are saved as a module folder (``config.json`` naming the architecture
``tree_cnn`` and its arguments, ``model.safetensors`` holding the weights; see
:mod:`hiergrammar.vision.checkpoints`) with :func:`save_tree_cnn` and rebuilt with
:func:`load_tree_cnn`; ``hiergrammar vision probe --classifier FOLDER`` reads such a folder.

Examples
--------
>>> from hiergrammar import RHM
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> data = rhm.sample(6, seed=1)
>>> images = encode(data.x, v=8)             # (n, v, d) in {-1, 1}
>>> tuple(images.shape)
(6, 8, 8)
>>> bool((decode(images) == data.x).all())
True
>>> model = TreeCNN(v=8, n_classes=4, s=2, L=3, width=32, seed=0)
>>> tuple(model(images).shape), model.probe_layers
((6, 4), ['relu1', 'relu2', 'relu3', 'readout'])
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hiergrammar.artifacts import progress
from hiergrammar.rhm import RHM, RHMSample
from hiergrammar.validation import InputError, check_choice, check_float, check_int, check_seed

__all__ = [
    "leaf_grid",
    "encode",
    "leaf_values",
    "decode",
    "TreeConv1d",
    "TreeCNN",
    "save_tree_cnn",
    "load_tree_cnn",
    "torch_threads",
    "predict",
    "accuracy",
    "TrainResult",
    "train_tree_cnn",
]

_LAYOUTS = ("1d", "2d")


# --------------------------------------------------------------------------------------------
# RHM strings <-> images


def _check_layout(layout: str) -> str:
    return check_choice("layout", layout, _LAYOUTS)


def _depth(d: int, s: int) -> int:
    """``L`` with ``s**L == d``, or InputError."""
    s = check_int("s", s, low=2)
    L, size = 0, 1
    while size < d:
        size *= s
        L += 1
    if size != d or L < 1:
        raise InputError(f"d={d} is not a power s**L of s={s} with L >= 1")
    return L


def leaf_grid(s: int, L: int) -> np.ndarray:
    """Leaf index at every pixel of the 2-D layout, shape ``(s**(L//2), s**(L - L//2))``.

    Write leaf ``i`` in base ``s`` as digits ``i_0`` (least significant: position among its
    siblings), ``i_1``, ...; digit ``j`` is the child index at level ``j + 1``. Even digits build
    the column and odd digits the row, each least significant first, so that the subtree of a
    level-``l`` node is an aligned block of ``s**(l//2)`` rows and ``s**(l - l//2)`` columns.

    >>> leaf_grid(2, 3)
    array([[0, 1, 4, 5],
           [2, 3, 6, 7]])
    """
    s, L = check_int("s", s, low=2), check_int("L", L, low=1)
    leaves = np.arange(s**L)
    row = np.zeros_like(leaves)
    col = np.zeros_like(leaves)
    for j in range(L):
        digit = (leaves // s**j) % s
        if j % 2 == 0:
            col += digit * s ** (j // 2)
        else:
            row += digit * s ** (j // 2)
    grid = np.empty((s ** (L // 2), s ** (L - L // 2)), dtype=np.int64)
    grid[row, col] = leaves
    return grid


def encode(
    x: np.ndarray,
    v: int,
    *,
    layout: str = "1d",
    s: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """RHM strings -> one-hot images in ``{-1, 1}`` (``2 * onehot - 1``).

    Parameters
    ----------
    x : ``(n, d)`` symbols in ``[0, v)`` (e.g. ``RHMSample.x``).
    v : vocabulary size (the number of channels).
    layout : ``"1d"`` -> ``(n, v, d)``; ``"2d"`` -> ``(n, v, H, W)`` in the order of
        :func:`leaf_grid` (needs ``s``, with ``d = s**L``).
    s : branching factor, needed for ``layout="2d"`` only.

    >>> encode(np.array([[0, 2]]), v=3)[0]
    tensor([[ 1., -1.],
            [-1., -1.],
            [-1.,  1.]])
    """
    _check_layout(layout)
    v = check_int("v", v, low=1)
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise InputError(f"x must be an integer array of shape (n, d), got {x.dtype} {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= v):
        raise InputError(f"x values must lie in [0, v) = [0, {v}), got [{x.min()}, {x.max()}]")
    onehot = torch.nn.functional.one_hot(torch.as_tensor(x, dtype=torch.int64), v)
    images = (2 * onehot - 1).to(dtype)  # (n, d, v)
    if layout == "1d":
        return images.permute(0, 2, 1).contiguous()
    if s is None:
        raise InputError("layout='2d' needs the branching factor s")
    grid = torch.as_tensor(leaf_grid(s, _depth(x.shape[1], s)))
    return images[:, grid].permute(0, 3, 1, 2).contiguous()  # (n, H, W, v) -> (n, v, H, W)


def leaf_values(
    images: torch.Tensor | np.ndarray, *, layout: str = "1d", s: int | None = None
) -> np.ndarray:
    """Images -> per-leaf channel values, shape ``(n, d, v)`` (float64): the inverse of
    :func:`encode` before any argmax. ``(values + 1) / 2`` is the ``{0, 1}`` one-hot scale of
    :mod:`hiergrammar.noise` for clean images.

    Examples
    --------
    >>> leaf_values(encode(np.array([[1, 0]]), v=2))[0].tolist()
    [[-1.0, 1.0], [1.0, -1.0]]
    """
    _check_layout(layout)
    images = torch.as_tensor(images).detach().to("cpu", torch.float64)
    if layout == "1d":
        if images.dim() != 3:
            raise InputError(f"a 1d image batch has shape (n, v, d), got {tuple(images.shape)}")
        return images.permute(0, 2, 1).numpy()
    if images.dim() != 4:
        raise InputError(f"a 2d image batch has shape (n, v, H, W), got {tuple(images.shape)}")
    if s is None:
        raise InputError("layout='2d' needs the branching factor s")
    n, v, H, W = images.shape
    grid = leaf_grid(s, _depth(H * W, s))
    if grid.shape != (H, W):
        raise InputError(f"image size {(H, W)} is not the 2d layout {grid.shape} of s={s}")
    out = np.empty((n, H * W, v))
    out[:, grid.ravel()] = images.permute(0, 2, 3, 1).reshape(n, H * W, v).numpy()
    return out


def decode(
    images: torch.Tensor | np.ndarray, *, layout: str = "1d", s: int | None = None
) -> np.ndarray:
    """Images -> RHM strings ``(n, d)`` (int64): the channel with the largest value per leaf.

    Exact inverse of :func:`encode`; on generated (noisy) images it rounds to the nearest
    one-hot vector. The strings need not be valid for the grammar (check with ``rhm.parse``).

    Examples
    --------
    >>> x = np.array([[0, 1, 3, 2]])
    >>> decode(encode(x, v=4, layout="2d", s=2), layout="2d", s=2).tolist()
    [[0, 1, 3, 2]]
    """
    return leaf_values(images, layout=layout, s=s).argmax(axis=-1)


# --------------------------------------------------------------------------------------------
# The tree-matched CNN


class TreeConv1d(nn.Conv1d):
    """``nn.Conv1d(c_in, c_out, kernel_size=s, stride=s)``, computed as one matrix product.

    With kernel equal to stride the windows do not overlap, so the convolution is a reshape of
    ``(n, c_in, d)`` into ``(n, d/s, c_in*s)`` and a linear map; on CPU this is 2-3 times faster
    than the generic convolution kernel. Parameters, their layout and the result are those of
    ``nn.Conv1d`` (checked in the tests against ``torch.nn.functional.conv1d``).
    """

    def __init__(self, in_channels: int, out_channels: int, s: int):
        super().__init__(in_channels, out_channels, kernel_size=s, stride=s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d = x.shape
        s = self.kernel_size[0]
        if d % s:
            raise InputError(f"input length {d} is not a multiple of the kernel size {s}")
        windows = x.reshape(n, c, d // s, s).permute(0, 2, 1, 3).reshape(n, d // s, c * s)
        out = nn.functional.linear(windows, self.weight.reshape(self.out_channels, -1), self.bias)
        return out.transpose(1, 2)  # (n, c_out, d/s)


class TreeCNN(nn.Sequential):
    """``L`` layers of ``Conv1d(kernel s, stride s) + ReLU`` and a linear read-out.

    Input ``(n, v, s**L)`` (see :func:`encode`), output ``(n, n_classes)`` logits. Layer ``l``
    (modules ``conv{l}``, ``relu{l}``) has ``width`` channels and ``s**(L-l)`` positions; its
    unit ``p`` depends on leaves ``p*s**l .. (p+1)*s**l - 1`` only. ``seed`` (a non-negative
    int, or None for fresh entropy) fixes the initialisation (PyTorch's default one).

    Examples
    --------
    >>> model = TreeCNN(v=3, n_classes=2, s=2, L=2, width=4, seed=0)
    >>> [name for name, _ in model.named_children()]
    ['conv1', 'relu1', 'conv2', 'relu2', 'flatten', 'readout']
    >>> model.config
    {'v': 3, 'n_classes': 2, 's': 2, 'L': 2, 'width': 4}
    """

    def __init__(
        self, v: int, n_classes: int, s: int, L: int, width: int = 256, seed: int | None = 0
    ):
        v, n_classes = check_int("v", v, low=2), check_int("n_classes", n_classes, low=1)
        s, L, width = (
            check_int("s", s, low=2),
            check_int("L", L, low=1),
            check_int("width", width, low=1),
        )
        seed = check_seed("seed", seed, allow_generator=False)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            channels = v
            for level in range(1, L + 1):
                modules[f"conv{level}"] = TreeConv1d(channels, width, s)
                modules[f"relu{level}"] = nn.ReLU()
                channels = width
            modules["flatten"] = nn.Flatten()
            modules["readout"] = nn.Linear(width, n_classes)
            super().__init__(modules)
        finally:
            torch.random.set_rng_state(generator_state)  # leave the global stream untouched
        self.v, self.n_classes, self.s, self.L, self.width = v, n_classes, s, L, width

    @property
    def config(self) -> dict[str, int]:
        """The constructor arguments that rebuild this architecture (without the seed)."""
        return {
            "v": self.v,
            "n_classes": self.n_classes,
            "s": self.s,
            "L": self.L,
            "width": self.width,
        }

    @property
    def probe_layers(self) -> list[str]:
        """Post-activations ``relu1 .. reluL`` (input to class) and the logits ``readout``."""
        return [f"relu{level}" for level in range(1, self.L + 1)] + ["readout"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.v, self.s**self.L)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise InputError(
                f"input must have shape (n, v, s**L) = (n, {expected[0]}, "
                f"{expected[1]}), got {tuple(x.shape)}"
            )
        return super().forward(x)


def save_tree_cnn(model: TreeCNN, folder: str | os.PathLike) -> Path:
    """Save a :class:`TreeCNN` as a module folder; return the folder.

    The folder holds ``config.json`` (``{"format": "hiergrammar.module", "format_version": 1,
    "architecture": "tree_cnn", "arguments": {"v", "n_classes", "s", "L", "width"}}``) and
    ``model.safetensors`` (the state dict). Nothing in it is pickled.

    Examples
    --------
    >>> import tempfile
    >>> model = TreeCNN(v=4, n_classes=2, s=2, L=2, width=8, seed=0)
    >>> folder = save_tree_cnn(model, tempfile.mkdtemp() + "/cnn")
    >>> again = load_tree_cnn(folder)
    >>> x = encode(np.array([[0, 1, 2, 3]]), v=4)
    >>> bool(torch.equal(again(x), model(x))), again.config == model.config
    (True, True)
    """
    from hiergrammar.vision.checkpoints import save_module

    if not isinstance(model, TreeCNN):
        raise InputError(f"model must be a TreeCNN, got {type(model).__name__}")
    return save_module(model, folder, "tree_cnn", model.config)


def load_tree_cnn(folder: str | os.PathLike, device: str | torch.device | None = "cpu") -> TreeCNN:
    """Rebuild the :class:`TreeCNN` saved by :func:`save_tree_cnn` in ``folder`` (eval mode).

    Raises :class:`~hiergrammar.InputError` naming the file when the folder is missing, holds
    another architecture, a newer config version, or weights that are corrupt or do not fit.
    See :func:`save_tree_cnn` for an example.
    """
    from hiergrammar.vision.checkpoints import load_module

    return load_module(folder, architecture="tree_cnn", device=device)


# --------------------------------------------------------------------------------------------
# Training


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (None: ``min(2, cpu count)``), then
    restore the previous setting.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    n = min(2, os.cpu_count() or 1) if n is None else check_int("num_threads", n, low=1)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, v: int, batch_size: int = 4096) -> np.ndarray:
    """Predicted classes ``(n,)`` of RHM strings ``x`` ``(n, d)``.

    Examples
    --------
    >>> model = TreeCNN(v=4, n_classes=3, s=2, L=1, width=4, seed=0)
    >>> predict(model, np.array([[0, 1], [2, 3]]), v=4).shape
    (2,)
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    model.eval()
    out = [
        model(encode(x[lo : lo + batch_size], v)).argmax(1) for lo in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, data: RHMSample, batch_size: int = 4096) -> float:
    """Fraction of ``data`` whose predicted class is its true class."""
    return float((predict(model, data.x, data.v, batch_size) == data.y).mean())


@dataclass
class TrainResult:
    """A trained :class:`TreeCNN` and how it got there.

    ``loss``: mean training loss of each epoch; ``test_accuracy`` on ``n_test`` fresh samples.
    """

    model: TreeCNN
    train_accuracy: float
    test_accuracy: float
    n_train: int
    n_test: int
    epochs: int
    seconds: float
    loss: list[float] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def train_tree_cnn(
    rhm: RHM,
    *,
    n_train: int = 40000,
    n_test: int = 10000,
    width: int = 256,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int | None = 0,
    num_threads: int | None = None,
    desc: str = "train CNN",
) -> TrainResult:
    """Train a :class:`TreeCNN` on fresh RHM samples with Adam and a cosine learning-rate decay.

    The training set (``n_train`` samples), the test set (``n_test``) and the initialisation and
    batch order are all drawn from ``seed``; with the same seed and ``num_threads`` the result
    is bit-for-bit the same on CPU. Train and test samples are drawn independently, so a test
    string may also appear in the training set; at the default sizes (``m**((d-1)/(s-1))``
    strings per class, ~1e9 for ``v=16, m=4, s=2, L=4``) that essentially never happens.

    >>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=2, seed=0)
    >>> res = train_tree_cnn(rhm, n_train=512, n_test=256, width=32, epochs=20, seed=0)
    >>> res.test_accuracy > 0.9
    True
    """
    for name, value, low in (
        ("n_train", n_train, 1),
        ("n_test", n_test, 1),
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
    ):
        check_int(name, value, low)
    check_int("width", width, low=1)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    seed = check_seed("seed", seed, allow_generator=False)
    seeds = np.random.SeedSequence(seed).generate_state(4)
    train = rhm.sample(n_train, seed=int(seeds[0]))
    test = rhm.sample(n_test, seed=int(seeds[1]))
    start = time.perf_counter()
    with torch_threads(num_threads):
        model = TreeCNN(rhm.v, rhm.n_classes, rhm.s, rhm.L, width=width, seed=int(seeds[2]))
        inputs, labels = encode(train.x, rhm.v), torch.as_tensor(train.y)
        generator = torch.Generator().manual_seed(int(seeds[3]))
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        steps_per_epoch = -(-n_train // batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=epochs * steps_per_epoch
        )
        losses = []
        for _ in progress(range(epochs), desc=desc, total=epochs):
            model.train()
            order = torch.randperm(n_train, generator=generator)
            total = 0.0
            for lo in range(0, n_train, batch_size):
                idx = order[lo : lo + batch_size]
                loss = nn.functional.cross_entropy(model(inputs[idx]), labels[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(idx)
            losses.append(total / n_train)
        train_acc = accuracy(model, train)
        test_acc = accuracy(model, test)
    return TrainResult(
        model=model,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        n_train=n_train,
        n_test=n_test,
        epochs=epochs,
        seconds=time.perf_counter() - start,
        loss=losses,
        config={
            "width": width,
            "batch_size": batch_size,
            "lr": lr,
            "epochs": epochs,
            "optimiser": "Adam + cosine decay",
            "seed": seed,
        },
    )
