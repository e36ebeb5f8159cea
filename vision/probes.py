"""Hidden-representation probe: how much of a classifier's activations survives forward-backward.

The protocol of the paper (section 2.3, Fig. 2 right, Fig. 8, Fig. 16; docs/model.md §8): hook a
list of layers of a trained classifier; measure the mean and variance of every unit over the
start set (the validation images); for each start image and the image generated from it,
standardise each hooked activation per unit, flatten it, and take the cosine similarity of the
two vectors; average over images. The logits also give top-1 class agreement.

Everything here works on any ``torch.nn.Module`` with named submodules and any input shape
(ImageNet classifiers on ``(n, 3, H, W)`` images, a small CNN on one-hot RHM data ``(n, v, d)``).
Inputs are torch tensors (or numpy arrays, or indexable datasets yielding one item per index);
results are numpy arrays and plain dicts of floats.

*Units.* ``per="unit"`` (default, the paper's "standardised per unit"): every element of the
activation (channel x position) has its own mean and variance. ``per="channel"``: one mean and
variance per channel (axis 1), pooled over the batch and all positions.

*Zero variance.* A unit whose standard deviation over the start set is below
``min_rel_std`` times the layer's RMS activation (exactly constant units, e.g. dead ReLUs, and
units constant up to float32 round-off) carries no information about which image it saw; it is
*dropped*: its standardised value is set to 0 for both images, so it adds nothing to the dot
product or to the norms. :class:`ProbeResult` reports how many units were dropped per layer.
If every unit of a layer is dropped, or an image's standardised vector is exactly zero, the
cosine is undefined and reported as NaN (summaries ignore NaNs and count them).

*Numerics.* Moments are accumulated in float64 with Chan's parallel update of Welford's
algorithm (one merge per batch), so the statistics of a large set need memory for two arrays
per layer only; standardisation and dot products are done in float64.

Examples
--------
>>> import torch
>>> from hiergrammar.vision.probes import probe_similarity
>>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
>>> x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
>>> res = probe_similarity(net, x, [x], layers=["1", "2"])
>>> res.similarity.shape  # (n_sets, n_layers, n_images)
(1, 2, 50)
>>> bool(abs(res.similarity - 1).max() < 1e-12), float(res.top1_agreement[0])
(True, 1.0)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hiergrammar.artifacts import progress
from hiergrammar.validation import InputError, check_int

__all__ = [
    "resolve_layers",
    "LayerRecorder",
    "iter_batches",
    "RunningMoments",
    "LayerStats",
    "activation_stats",
    "Standardiser",
    "cosine_similarity",
    "ProbeResult",
    "probe_similarity",
    "run_probe",
]

Images = Any  # torch.Tensor (n, ...), np.ndarray (n, ...), or a sequence of items (...)
Preprocess = Callable[[torch.Tensor], torch.Tensor]

_PER = ("unit", "channel")


# --------------------------------------------------------------------------------------------
# Hooks


def resolve_layers(model: torch.nn.Module, layers: Sequence[str]) -> dict[str, torch.nn.Module]:
    """Map each layer name to its submodule; unknown names raise an ``InputError`` with hints.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> list(resolve_layers(net, ["1"]))
    ['1']
    """
    if isinstance(layers, str):
        raise InputError("layers must be a list of names, not a single string")
    if len(layers) == 0:
        raise InputError("layers is empty: give at least one layer name")
    if len(set(layers)) != len(layers):
        dup = sorted({name for name in layers if list(layers).count(name) > 1})
        raise InputError(f"layers contains duplicates: {dup}")
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules or name == ""]
    if missing:
        candidates = [name for name in modules if name]
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
            hints.append(f"{name!r} (close: {', '.join(close) if close else 'none'})")
        raise InputError(
            f"unknown layer name(s) for {type(model).__name__}: "
            + "; ".join(hints)
            + f". The model has {len(candidates)} named submodules, e.g. {candidates[:8]}"
        )
    return {name: modules[name] for name in layers}


class LayerRecorder:
    """Context manager recording the outputs of named submodules with forward hooks.

    All names are resolved when the recorder is created (unknown names raise an ``InputError``
    listing close matches). Inside the ``with`` block, each forward pass of ``model`` stores
    the output of every hooked layer in ``recorder.activations[name]`` (shape ``(n, ...)``,
    detached); the hooks are removed on exit, even after an error. A module called several
    times in one forward pass (e.g. the ``relu`` shared by the three convolutions of a
    torchvision bottleneck) keeps its last call's output.

    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    >>> with LayerRecorder(net, ["0", "1"]) as rec:
    ...     out = net(torch.zeros(2, 4))
    >>> sorted(rec.activations), tuple(rec.activations["1"].shape)
    (['0', '1'], (2, 3))
    """

    def __init__(self, model: torch.nn.Module, layers: Sequence[str]):
        self.model = model
        self.layers = list(layers)
        self.modules = resolve_layers(model, self.layers)
        self.activations: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, (tuple, list)):  # e.g. modules returning (out, state)
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a tensor")
            self.activations[name] = output.detach()

        return hook

    def __enter__(self) -> LayerRecorder:
        self.activations = {}
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pop(self) -> dict[str, torch.Tensor]:
        """Return the activations of the last forward pass and forget them."""
        missing = [name for name in self.layers if name not in self.activations]
        if missing:
            raise RuntimeError(f"layers {missing} were not called during the forward pass")
        acts, self.activations = self.activations, {}
        return {name: acts[name] for name in self.layers}


# --------------------------------------------------------------------------------------------
# Batching


def _n_items(images: Images) -> int:
    return int(images.shape[0]) if hasattr(images, "shape") else len(images)


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def iter_batches(images: Images, batch_size: int, num_workers: int = 0) -> Iterator[torch.Tensor]:
    """Yield consecutive batches ``(b, ...)`` of a tensor, array or sequence of items.

    For a sequence (e.g. a lazy folder of PNGs), ``num_workers > 0`` loads the items in that
    many background processes (``torch.utils.data.DataLoader``, order preserved).
    """
    check_int("batch_size", batch_size, low=1)
    check_int("num_workers", num_workers, low=0)
    n = _n_items(images)
    if num_workers > 0 and not hasattr(images, "shape"):
        loader = torch.utils.data.DataLoader(
            images, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_stack
        )
        yield from loader
        return
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        if hasattr(images, "shape"):
            yield _as_tensor(images[lo:hi])
        else:
            yield torch.stack([_as_tensor(images[i]) for i in range(lo, hi)])


def _stack(items: list[Any]) -> torch.Tensor:
    return torch.stack([_as_tensor(x) for x in items])


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _prepare(
    batch: torch.Tensor,
    preprocess: Preprocess | None,
    device: torch.device,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    batch = batch.to(device)
    if preprocess is not None:
        batch = preprocess(batch)
    elif not batch.is_floating_point():
        raise InputError(
            f"images have dtype {batch.dtype}; pass a preprocess function mapping them to floats"
        )
    if dtype is not None and batch.is_floating_point():
        batch = batch.to(dtype)
    return batch


def _param_dtype(model: torch.nn.Module) -> torch.dtype | None:
    for tensor in model.parameters():
        return tensor.dtype
    return None


# --------------------------------------------------------------------------------------------
# Streaming moments


class RunningMoments:
    """Per-unit mean and variance of a stream of batches (Welford/Chan, float64).

    ``update(x)`` takes a batch ``(b, *unit_shape)`` (``per="unit"``) or ``(b, C, *spatial)``
    (``per="channel"``: all positions of a channel are samples of the same unit). Merging a
    batch with Chan's formula keeps the result as accurate as a two-pass computation.

    >>> rm = RunningMoments()
    >>> rm.update(torch.tensor([[1.0], [2.0]])); rm.update(torch.tensor([[3.0], [6.0]]))
    >>> rm.mean.tolist(), rm.var().tolist(), rm.count
    ([3.0], [3.5], 4)
    """

    def __init__(self, per: str = "unit"):
        if per not in _PER:
            raise InputError(f"per={per!r} is not one of {_PER}")
        self.per = per
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def _samples(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to(torch.float64)
        if self.per == "channel" and x.dim() > 2:
            # (b, C, *spatial) -> (b * prod(spatial), C): every position is one sample
            x = x.movedim(1, -1).reshape(-1, x.shape[1])
        return x

    def update(self, x: torch.Tensor) -> None:
        x = self._samples(x)
        nb = x.shape[0]
        if nb == 0:
            return
        mean_b = x.mean(dim=0)
        m2_b = ((x - mean_b) ** 2).sum(dim=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = nb, mean_b, m2_b
            return
        if mean_b.shape != self.mean.shape:
            raise InputError(
                f"unit shape changed from {tuple(self.mean.shape)} to "
                f"{tuple(mean_b.shape)}: all images must have the same size"
            )
        n = self.count + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * nb / n)
        self.count = n

    def var(self, ddof: int = 0) -> torch.Tensor:
        if self.m2 is None or self.count - ddof <= 0:
            raise InputError(f"variance needs more than {ddof} samples, got {self.count}")
        return self.m2 / (self.count - ddof)


@dataclass
class LayerStats:
    """Mean and (population) variance of one layer's units over a set of images.

    ``mean`` and ``var`` have the activation's shape without the batch axis (``per="unit"``),
    or ``(C, 1, ..., 1)`` (``per="channel"``), so they broadcast against an activation.
    """

    mean: np.ndarray
    var: np.ndarray
    count: int
    per: str

    @property
    def n_units(self) -> int:
        return int(self.mean.size)


def activation_stats(
    model: torch.nn.Module,
    images: Images,
    layers: Sequence[str],
    *,
    preprocess: Preprocess | None = None,
    batch_size: int = 32,
    per: str = "unit",
    num_workers: int = 0,
    desc: str = "activation stats",
) -> dict[str, LayerStats]:
    """Per-unit mean and variance of every hooked layer over ``images`` (streaming).

    ``images``: ``(n, ...)`` model inputs (before ``preprocess``), ``n >= 2``. Returns
    ``{layer: LayerStats}``; ``mean``/``var`` are float64 numpy arrays of shape
    ``activation.shape[1:]`` (``per="unit"``) or ``(C, 1, ..., 1)`` (``per="channel"``).
    """
    if per not in _PER:
        raise InputError(f"per={per!r} is not one of {_PER}")
    n = _n_items(images)
    if n < 2:
        raise InputError(f"activation statistics need n >= 2 images, got n={n}")
    device, dtype = _model_device(model), _param_dtype(model)
    moments = {name: RunningMoments(per) for name in layers}
    shapes: dict[str, tuple[int, ...]] = {}
    n_batches = -(-n // batch_size)
    with torch.no_grad(), LayerRecorder(model, layers) as rec:
        batches = iter_batches(images, batch_size, num_workers)
        for batch in progress(batches, desc=desc, total=n_batches):
            model(_prepare(batch, preprocess, device, dtype))
            for name, act in rec.pop().items():
                shapes[name] = tuple(act.shape[1:])
                moments[name].update(act)
    out = {}
    for name, mom in moments.items():
        mean, var = mom.mean.cpu().numpy(), mom.var().cpu().numpy()
        if per == "channel" and len(shapes[name]) > 1:
            broadcast = (shapes[name][0],) + (1,) * (len(shapes[name]) - 1)
            mean, var = mean.reshape(broadcast), var.reshape(broadcast)
        out[name] = LayerStats(mean=mean, var=var, count=mom.count, per=per)
    return out


# --------------------------------------------------------------------------------------------
# Standardisation and cosine similarity


class Standardiser:
    """``(act - mean) / std`` per unit, flattened, with near-constant units dropped (set to 0).

    A unit is dropped when ``std <= min_rel_std * rms`` where ``rms`` is the layer's root mean
    square activation over the start set (``sqrt(mean(var + mean**2))``); with float32
    activations (relative precision ~6e-8) the default ``1e-6`` only catches units that are
    constant up to round-off.
    """

    def __init__(
        self, stats: LayerStats, device: torch.device | str = "cpu", min_rel_std: float = 1e-6
    ):
        if not 0 <= min_rel_std < 1:
            raise InputError(f"min_rel_std={min_rel_std} violates 0 <= min_rel_std < 1")
        mean = torch.as_tensor(stats.mean, dtype=torch.float64)
        std = torch.as_tensor(stats.var, dtype=torch.float64).clamp_min(0).sqrt()
        rms = float(torch.sqrt(torch.mean(std**2 + mean**2)))
        keep = std > min_rel_std * rms
        self.n_units = int(stats.mean.size)
        self.n_dropped = int((~keep).sum())
        self.mean = mean.to(device)
        self.inv_std = torch.where(keep, 1.0 / torch.where(keep, std, 1.0), 0.0).to(device)

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        """``(n, ...)`` activation -> ``(n, n_features)`` float64 standardised, flattened."""
        # One contiguous float64 buffer, filled in place: the subtraction upcasts ``act``
        # exactly, and flattening stays a view even when ``act`` is a transposed layout.
        z = torch.empty(act.shape, dtype=torch.float64, device=act.device)
        torch.sub(act, self.mean, out=z)
        return z.mul_(self.inv_std).view(z.shape[0], -1)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of ``(n, k)`` tensors in float64; NaN where a row is all zeros.

    >>> cosine_similarity(torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
    ...                   torch.tensor([[1.0, 1.0], [1.0, 0.0]])).tolist()[0]
    0.7071067811865475
    """
    a, b = a.to(torch.float64).flatten(1), b.to(torch.float64).flatten(1)
    return _cosine(a, a.norm(dim=1), b)


def _cosine(a: torch.Tensor, a_norm: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`cosine_similarity` of float64 ``(n, k)`` rows given ``a``'s row norms ``(n,)``
    (the probe computes them once per start batch, not once per generated set)."""
    norms = a_norm * b.norm(dim=1)
    dots = (a * b).sum(dim=1)
    return torch.where(norms > 0, dots / torch.where(norms > 0, norms, 1.0), torch.nan)


def _top1(output: Any) -> torch.Tensor | None:
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, torch.Tensor) and output.dim() == 2:
        return output.argmax(dim=1)
    return None  # the model's output is not (n, classes) logits: no class agreement


@dataclass
class ProbeResult:
    """Per-image similarities of every hooked layer, for one or several generated sets.

    ``similarity``: ``(n_sets, n_layers, n_images)`` cosine of standardised activations
    (NaN where undefined). ``top1_start``: ``(n_images,)`` predicted class of each start image;
    ``top1_generated``: ``(n_sets, n_images)``; both ``None`` when the model output is not
    ``(n, classes)``. ``n_dropped[layer]`` units were dropped as (near-)constant, out of
    ``n_units[layer]``.
    """

    layers: list[str]
    similarity: np.ndarray
    top1_start: np.ndarray | None
    top1_generated: np.ndarray | None
    n_units: dict[str, int] = field(default_factory=dict)
    n_dropped: dict[str, int] = field(default_factory=dict)
    per: str = "unit"

    @property
    def top1_agreement(self) -> np.ndarray | None:
        """``(n_sets,)`` fraction of images whose generated image keeps the start's class."""
        if self.top1_start is None or self.top1_generated is None:
            return None
        return (self.top1_generated == self.top1_start[None, :]).mean(axis=1)

    def similarity_mean(self) -> np.ndarray:
        """``(n_sets, n_layers)`` mean over images (NaNs ignored)."""
        return _nan_stat(np.nanmean, self.similarity)

    def similarity_std(self) -> np.ndarray:
        """``(n_sets, n_layers)`` standard deviation over images (NaNs ignored)."""
        return _nan_stat(np.nanstd, self.similarity)

    def similarity_sem(self) -> np.ndarray:
        """``(n_sets, n_layers)`` standard error of the mean over images."""
        counts = np.sum(~np.isnan(self.similarity), axis=2)
        return self.similarity_std() / np.sqrt(np.maximum(counts, 1))

    def summary(self) -> list[dict[str, Any]]:
        """One plain dict of floats per generated set: per-layer mean/std/sem, top-1 agreement."""
        mean, std, sem = self.similarity_mean(), self.similarity_std(), self.similarity_sem()
        n_nan = np.isnan(self.similarity).sum(axis=2)
        agree = self.top1_agreement
        out = []
        for k in range(self.similarity.shape[0]):
            out.append(
                {
                    "similarity": {
                        name: {
                            "mean": float(mean[k, j]),
                            "std": float(std[k, j]),
                            "sem": float(sem[k, j]),
                            "n_nan": int(n_nan[k, j]),
                        }
                        for j, name in enumerate(self.layers)
                    },
                    "top1_agreement": None if agree is None else float(agree[k]),
                }
            )
        return out


def _nan_stat(fn: Callable[..., np.ndarray], x: np.ndarray) -> np.ndarray:
    out = np.full(x.shape[:2], np.nan)
    ok = ~np.all(np.isnan(x), axis=2)  # avoid numpy's "mean of empty slice" warnings
    out[ok] = fn(x[ok], axis=-1)
    return out


def probe_similarity(
    model: torch.nn.Module,
    start: Images,
    generated: Sequence[Images],
    layers: Sequence[str],
    *,
    stats: dict[str, LayerStats] | None = None,
    preprocess: Preprocess | None = None,
    batch_size: int = 32,
    per: str = "unit",
    min_rel_std: float = 1e-6,
    num_workers: int = 0,
    desc: str = "probe",
) -> ProbeResult:
    """Cosine similarity of standardised activations, start vs each generated set.

    ``start``: ``(n, ...)`` model inputs (before ``preprocess``); ``generated``: a list of
    sets, each ``(n, ...)`` and paired item by item with ``start`` (e.g. one set per inversion
    time ``t``). ``stats`` (from :func:`activation_stats`) defaults to the statistics of
    ``start`` itself, as in the paper. The model runs once per batch of start images and once
    per batch of each generated set. Returns a :class:`ProbeResult` with ``similarity`` of
    shape ``(len(generated), len(layers), n)``.
    """
    if isinstance(generated, torch.Tensor) or isinstance(generated, np.ndarray):
        raise InputError("generated must be a list of image sets (one per t), not one array")
    n = _n_items(start)
    for k, gen in enumerate(generated):
        if _n_items(gen) != n:
            raise InputError(
                f"generated set {k} has {_n_items(gen)} images, start has {n}: "
                "each generated image must pair with one start image"
            )
    layers = list(layers)
    resolve_layers(model, layers)  # fail early, before the statistics pass
    if stats is None:
        stats = activation_stats(
            model,
            start,
            layers,
            preprocess=preprocess,
            batch_size=batch_size,
            per=per,
            num_workers=num_workers,
            desc=f"{desc}: start stats",
        )
    missing = [name for name in layers if name not in stats]
    if missing:
        raise InputError(f"stats lack layers {missing}")
    device, dtype = _model_device(model), _param_dtype(model)
    standardise = {name: Standardiser(stats[name], device, min_rel_std) for name in layers}
    n_sets = len(generated)
    sim = np.full((n_sets, len(layers), n), np.nan)
    top1_start = np.zeros(n, dtype=np.int64)
    top1_gen = np.zeros((n_sets, n), dtype=np.int64)
    has_top1 = True
    batches = [iter_batches(x, batch_size, num_workers) for x in [start, *generated]]
    n_batches = -(-n // batch_size)
    lo = 0
    with torch.no_grad(), LayerRecorder(model, layers) as rec:
        for group in progress(zip(*batches, strict=True), desc=desc, total=n_batches):
            start_batch, gen_batches = group[0], group[1:]
            hi = lo + start_batch.shape[0]
            out = model(_prepare(start_batch, preprocess, device, dtype))
            z_start = {name: standardise[name](act) for name, act in rec.pop().items()}
            start_norm = {name: z.norm(dim=1) for name, z in z_start.items()}
            t1 = _top1(out)
            has_top1 = has_top1 and t1 is not None
            if has_top1:
                top1_start[lo:hi] = t1.cpu().numpy()
            for k, gen_batch in enumerate(gen_batches):
                if gen_batch.shape != start_batch.shape:
                    raise InputError(
                        f"generated set {k} images have shape "
                        f"{tuple(gen_batch.shape[1:])}, start images "
                        f"{tuple(start_batch.shape[1:])}"
                    )
                out = model(_prepare(gen_batch, preprocess, device, dtype))
                for j, (name, act) in enumerate(rec.pop().items()):
                    cos = _cosine(z_start[name], start_norm[name], standardise[name](act))
                    sim[k, j, lo:hi] = cos.cpu().numpy()
                t1 = _top1(out)
                has_top1 = has_top1 and t1 is not None
                if has_top1:
                    top1_gen[k, lo:hi] = t1.cpu().numpy()
            lo = hi
    return ProbeResult(
        layers=layers,
        similarity=sim,
        top1_start=top1_start if has_top1 else None,
        top1_generated=top1_gen if has_top1 else None,
        n_units={name: s.n_units for name, s in standardise.items()},
        n_dropped={name: s.n_dropped for name, s in standardise.items()},
        per=per,
    )


def run_probe(
    model: Any,
    start: Any,
    generated: Sequence[Any],
    t: Sequence[float],
    layers: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    name: str,
    logits_layer: str | None,
    preprocess: Any = None,
    stats_images: Any = None,
    batch_size: int = 32,
    per: str = "unit",
    min_rel_std: float = 1e-6,
    t_label: str = "inversion time t",
    labels: Any = None,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Probe ``model`` on start vs each generated set; write ``probe_<name>.json`` and ``.npz``.

    The protocol of :func:`probe_similarity`, with the statistics of :func:`activation_stats`,
    as one run that writes its files (atomically) into ``out_dir``. ``generated[k]`` is the set
    obtained at inversion time ``t[k]``, paired item by item with ``start``.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (or any module with named submodules).
    start : images
        ``(n, ...)`` tensor, array or indexable set (e.g.
        :class:`~hiergrammar.vision.image_sets.ImageSet`).
    generated : sequence of images
        One set of ``n`` images per inversion time.
    t : sequence of float
        The inversion time of each generated set (``len(generated)`` values).
    layers : sequence of str
        Names of the hooked submodules.
    out_dir : str or os.PathLike
        Folder of the two files.
    name : str
        The classifier's name (in the file names and the data).
    logits_layer : str or None
        The layer drawn as logits by :mod:`hiergrammar.vision.plots`.
    preprocess, batch_size, per, min_rel_std, num_workers
        As in :func:`probe_similarity`.
    stats_images : images, optional
        The set of the per-unit statistics (default ``start``).
    t_label : str
        The x-axis label of the plot.
    labels : array of int, optional
        ``(n,)`` true classes of the start images: adds the classifier's top-1 accuracy on the
        start images (a check that the right weights were loaded) and on each generated set.

    Returns
    -------
    dict
        The JSON data (per layer and ``t``: ``similarity_mean``/``_std``/``_sem`` of shape
        ``(n_t, n_layers)``, ``top1_agreement`` ``(n_t,)`` or None, ...) with the written paths
        under ``"files"``.

    Raises
    ------
    InputError
        If ``t`` and ``generated`` differ in length or ``labels`` has the wrong shape.

    Examples
    --------
    >>> import tempfile
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    >>> data = run_probe(net, x, [x, -x], [0.0, 1.0], ["1", "2"], tempfile.mkdtemp(),
    ...                  name="toy", logits_layer="2")
    >>> np.round(data["similarity_mean"][0], 6).tolist(), len(data["files"])
    ([1.0, 1.0], 2)
    """
    from hiergrammar.artifacts import save_json, save_npz

    if len(t) != len(generated):
        raise InputError(f"{len(t)} values of t for {len(generated)} generated sets")
    stats_images = start if stats_images is None else stats_images
    stats = activation_stats(
        model,
        stats_images,
        layers,
        preprocess=preprocess,
        batch_size=batch_size,
        per=per,
        num_workers=num_workers,
        desc=f"{name}: stats",
    )
    result = probe_similarity(
        model,
        start,
        generated,
        layers,
        stats=stats,
        preprocess=preprocess,
        batch_size=batch_size,
        per=per,
        min_rel_std=min_rel_std,
        num_workers=num_workers,
        desc=f"{name}: probe",
    )
    agree = result.top1_agreement
    acc_start = acc_generated = None
    if labels is not None and result.top1_start is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(start),):
            raise InputError(f"labels has shape {labels.shape}, expected ({len(start)},)")
        acc_start = float(np.mean(result.top1_start == labels))
        acc_generated = np.mean(result.top1_generated == labels[None, :], axis=1)
    data = {
        "classifier": name,
        "layers": list(layers),
        "logits_layer": logits_layer,
        "t": [float(x) for x in t],
        "t_label": t_label,
        "n_images": len(start),
        "n_stats_images": len(stats_images),
        "per": per,
        "min_rel_std": min_rel_std,
        "similarity_mean": result.similarity_mean(),
        "similarity_std": result.similarity_std(),
        "similarity_sem": result.similarity_sem(),
        "similarity_n_nan": np.isnan(result.similarity).sum(axis=2),
        "top1_agreement": agree,
        "top1_accuracy_start": acc_start,
        "top1_accuracy_generated": acc_generated,
        "n_units": result.n_units,
        "n_dropped_units": result.n_dropped,
    }
    out_dir = Path(out_dir)
    json_path = save_json(out_dir / f"probe_{name}.json", data)
    npz_path = save_npz(
        out_dir / f"probe_{name}.npz",
        classifier=np.array(name),
        layers=np.array(list(layers)),
        logits_layer=np.array(logits_layer or ""),
        t=np.asarray(t, dtype=float),
        t_label=np.array(t_label),
        similarity=result.similarity,  # (n_t, n_layers, n_images)
        **{key: data[key] for key in ("similarity_mean", "similarity_std", "similarity_sem")},
        top1_agreement=np.array([]) if agree is None else agree,
        top1_start=np.array([]) if result.top1_start is None else result.top1_start,
        top1_generated=(np.array([]) if result.top1_generated is None else result.top1_generated),
        n_images=np.array(len(start)),
        top1_accuracy_generated=np.array([]) if acc_generated is None else acc_generated,
    )
    data["files"] = [str(json_path), str(npz_path)]
    return data
