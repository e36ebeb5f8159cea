"""``hiergrammar vision probe`` and ``hiergrammar vision plot``: the paper's Fig. 2 (right) / 16.

``probe`` loads a classifier (a paper model with local weights, or a module folder -- an
architecture name plus safetensors weights, such as the RHM CNN saved by
:func:`hiergrammar.vision.rhm_cnn.save_tree_cnn`; nothing is unpickled), the start images
and one folder of generated images per inversion time ``t``, and writes
``probe_<classifier>.json`` and ``.npz``: per layer mean / std / sem of the cosine similarity
per ``t``, top-1 agreement per ``t``, and (NPZ) every per-image value.

``plot`` turns one or several such files into the figure (one panel per file).

Image sets: the ``t{t:03d}`` folders written by ``hiergrammar vision sample`` (PNG per image
under ``<class>/``, ``metadata.json`` with ``t``, ``num_steps`` and per image its file and
label; ``t000`` holds the start images as the sampler saw them), any other folder of images
(PNG/JPEG, read recursively in sorted path order), or an ``.npz`` file with an ``images`` array
``(n, H, W, 3)``/``(n, 3, H, W)``, uint8 or float in ``[-1, 1]``. Generated images pair with
start images by file name when both sets have the same names, else by order. The inversion
time of a set is taken from ``--t``, else from ``t`` in its ``metadata.json`` (or the NPZ's
``t`` array), else the set's position. Every image of a folder is checked before the probe
starts (:func:`hiergrammar.vision.data.check_image`): a file that is not an image or is
truncated is refused with its path, and nothing is written.

Examples
--------
Paper Fig. 2, right:

.. code-block:: shell

    hiergrammar vision probe --classifier convnext_base --start results/fb/t000 \\
        --generated results/fb/t* --out results/probe
    hiergrammar vision plot --data results/probe/probe_convnext_base.json \\
        --out results/probe/fig2_right.png

No torch at module level: the parser builds without it. An image set in Python:

>>> import tempfile
>>> from PIL import Image
>>> folder = Path(tempfile.mkdtemp())
>>> Image.new("RGB", (4, 4), (255, 0, 0)).save(folder / "a.png")
>>> images = ImageSet(folder, progress=False)
>>> len(images), tuple(images[0].shape), images.keys
(1, (3, 4, 4), ['a.png'])
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.validation import InputError, check_float, check_int

__all__ = ["IMAGE_SUFFIXES", "METADATA_NAMES", "ImageSet", "run_probe", "register"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
METADATA_NAMES = ("metadata.json", "meta.json")


# --------------------------------------------------------------------------------------------
# Image sets


class ImageSet:
    """Lazy, indexable set of images: ``set[i]`` is a ``(3, H, W)`` uint8 (or float) tensor.

    ``path`` is a folder or an ``.npz`` file. A folder written by ``hiergrammar vision sample``
    (``t{t:03d}/metadata.json`` listing ``images[k]["file"]`` by global index, PNGs under
    ``<class>/``) is read in the metadata's order; any other folder is read recursively in
    sorted relative-path order. ``keys`` are the relative file paths (or indices for an NPZ),
    used to pair a generated set with the start set.
    """

    def __init__(self, path: str | os.PathLike, *, verify: bool = True, progress: bool = True):
        from hiergrammar.vision.checkpoints import MissingFileError

        self.path = Path(path)
        self.metadata: dict[str, Any] = {}
        self._files: list[Path] | None = None
        self._array: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        if self.path.is_dir():
            for name in METADATA_NAMES:
                if (self.path / name).is_file():
                    self.metadata = _read_metadata(self.path / name)
                    break
            listed = self.metadata.get("images")
            if (
                isinstance(listed, list)
                and listed
                and all(isinstance(r, dict) and "file" in r for r in listed)
            ):
                self._files = [self._listed_file(r["file"]) for r in listed]
                if all("label" in r for r in listed):
                    self.labels = np.array(
                        [check_int("label", r["label"], low=0) for r in listed], dtype=np.int64
                    )
                absent = [f for f in self._files if not f.is_file()]
                if absent:
                    raise MissingFileError(
                        f"{len(absent)} images listed in {self.path}'s "
                        f"metadata are missing, e.g. {absent[0]}"
                    )
            else:
                self._files = sorted(
                    p
                    for p in self.path.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                )
            if not self._files:
                raise InputError(f"image folder {self.path} holds no {'/'.join(IMAGE_SUFFIXES)}")
            if verify:
                from hiergrammar.vision.data import find_unreadable_images, refuse_unreadable

                bad = find_unreadable_images(
                    self._files, desc=f"checking {self.path.name}", progress=progress
                )
                refuse_unreadable(bad, len(self._files), f"the image set {self.path}")
            self.keys = [str(f.relative_to(self.path)) for f in self._files]
        elif self.path.is_file() and self.path.suffix == ".npz":
            self._read_npz()
            self.keys = [str(i) for i in range(len(self._array))]
        elif not self.path.exists():
            raise MissingFileError(f"image set {self.path} does not exist")
        else:
            raise InputError(f"image set {self.path} must be a folder of images or an .npz file")
        self._order: list[int] | None = None

    def _listed_file(self, name: Any) -> Path:
        """A file named by the metadata, which must lie inside the set's folder."""
        if not isinstance(name, str) or not name:
            raise InputError(f"{self.path}'s metadata lists a file {name!r} that is not a path")
        file = self.path / name
        if not file.resolve().is_relative_to(self.path.resolve()):
            raise InputError(f"{self.path}'s metadata lists {name!r}, outside the folder")
        return file

    def _read_npz(self) -> None:
        import zipfile

        try:
            with np.load(self.path, allow_pickle=False) as npz:
                if "images" not in npz.files:
                    raise InputError(f"{self.path} has no 'images' array (keys: {npz.files})")
                self._array = _channels_first(npz["images"], str(self.path))
                self.metadata = {
                    k: npz[k].tolist() for k in npz.files if k != "images" and npz[k].size < 1000
                }
                if "label" in npz.files and len(npz["label"]) == len(self._array):
                    self.labels = np.asarray(npz["label"], dtype=np.int64)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, InputError):
                raise
            # e.g. object arrays, which would need unpickling, or a damaged archive
            raise InputError(f"{self.path} is not a readable .npz of arrays ({err})") from None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> Any:
        import torch

        if self._order is not None:
            i = self._order[i]
        if self._array is not None:
            return torch.from_numpy(np.ascontiguousarray(self._array[i]))
        from hiergrammar.vision.data import read_rgb  # names the file if it cannot be read

        array = read_rgb(self._files[i])
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def pair_with(self, start: ImageSet) -> None:
        """Reorder this set to pair item by item with ``start``.

        Same file names (the sampler's layout): paired by name. Otherwise the sets must have
        equal sizes and are paired in order.
        """
        if self.keys == start.keys:
            return
        if sorted(self.keys) == sorted(start.keys):
            position = {key: k for k, key in enumerate(self.keys)}
            self._order = [position[key] for key in start.keys]
            self.keys = list(start.keys)
            return
        if len(self) != len(start):
            raise InputError(
                f"{self.path} has {len(self)} images but {start.path} has "
                f"{len(start)}; each generated image must pair with a start image"
            )

    @property
    def t(self) -> float | None:
        value = self.metadata.get("t")
        if isinstance(value, (list, tuple)):  # an NPZ holding one t per image
            value = value[0] if len(set(value)) == 1 else None
        return None if value is None else float(value)

    def subset(self, limit: int | None) -> ImageSet | _Subset:
        return self if limit is None or limit >= len(self) else _Subset(self, limit)


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


class _Subset:
    def __init__(self, base: ImageSet, n: int):
        self.base, self.n, self.metadata = base, n, base.metadata

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.base[i]


def _channels_first(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = np.moveaxis(images, -1, 1)
    if images.ndim < 2:
        raise InputError(f"{where}: images must have shape (n, ...), got {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"{where}: images must be uint8 or float in [-1, 1], got {images.dtype}")
    return images


def _float_pm1(images: Any) -> Any:
    """uint8 images -> float in [-1, 1]; floats pass through (input of custom modules)."""
    import torch
    from hiergrammar.vision.data import from_uint8

    return from_uint8(images) if images.dtype == torch.uint8 else images


# --------------------------------------------------------------------------------------------
# The probe as a function (what the CLI handler runs)


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
    """Probe ``model`` on start vs each generated set, write ``probe_<name>.json/.npz``.

    ``generated[k]`` is the set obtained at inversion time ``t[k]``, paired item by item with
    ``start``. Statistics come from ``stats_images`` (default: ``start``). ``labels``
    ``(n,)``, the true classes of the start images when known, add the classifier's top-1
    accuracy on the start images (a check that the right weights were loaded) and on each
    generated set. Returns the JSON dict (lists of floats), with the written paths under
    ``"files"``.
    """
    from hiergrammar.vision.probes import activation_stats, probe_similarity

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


# --------------------------------------------------------------------------------------------
# CLI


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``probe`` and ``plot`` to the ``hiergrammar vision`` sub-commands."""
    p = sub.add_parser(
        "probe",
        help="cosine similarity of classifier activations, start vs generated images",
        description="Hook a classifier's layers, standardise each unit with the start set's "
        "mean and variance, and compare start and generated images layer by layer "
        "(paper Fig. 2 right, Fig. 16). Writes probe_<classifier>.json/.npz.",
    )
    p.add_argument(
        "--classifier",
        default="convnext_base",
        help="convnext_base, resnet50, wide_resnet50_2, resnet152, or a module folder "
        "(config.json naming the architecture + model.safetensors, e.g. written by "
        "hiergrammar.vision.rhm_cnn.save_tree_cnn) (default: convnext_base)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="state dict (.pth, read with weights_only=True) or safetensors file of the "
        "torchvision classifier (default: torchvision's cache, "
        "torch.hub.get_dir()/checkpoints/<file>); never downloaded",
    )
    p.add_argument("--start", required=True, help="folder (or .npz) of the start images")
    p.add_argument(
        "--generated",
        required=True,
        nargs="+",
        help="folders (or .npz) of generated images, one per inversion time t",
    )
    p.add_argument(
        "--t",
        type=float,
        nargs="+",
        default=None,
        help="inversion time of each --generated set (default: from metadata.json)",
    )
    p.add_argument(
        "--t-label",
        default=None,
        help="x-axis label for the plot (default: from the sampler's metadata)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--layers",
        default=None,
        help="comma-separated layer names to hook (default: the paper's list, or a "
        "custom module's direct children)",
    )
    p.add_argument(
        "--logits-layer",
        default=None,
        help="layer drawn as logits (default: the last layer of the list)",
    )
    p.add_argument(
        "--stats-set",
        default=None,
        help="folder (or .npz) of images for the per-unit statistics "
        "(default: the start images, as in the paper)",
    )
    p.add_argument(
        "--per",
        choices=["unit", "channel"],
        default="unit",
        help="standardise each element (unit) or each channel (default: unit)",
    )
    p.add_argument(
        "--min-rel-std",
        type=float,
        default=1e-6,
        help="drop units with std <= this x the layer's RMS activation",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="background processes decoding the images of each set (default: 2; "
        "0 decodes in the main process)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N image pairs")
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N, mps (default: cuda if available)"
    )
    p.set_defaults(func=_probe_handler)

    q = sub.add_parser(
        "plot",
        help="figure of similarity vs t from probe data files",
        description="One panel per probe data file (JSON or NPZ): cosine "
        "similarity vs t, one curve per layer coloured by depth, "
        "logits in red, top-1 agreement dashed.",
    )
    q.add_argument("--data", required=True, nargs="+", help="probe_<classifier>.json/.npz files")
    q.add_argument("--out", required=True, help="output PNG")
    q.add_argument(
        "--band",
        choices=["none", "sem", "std"],
        default="none",
        help="shaded band around each curve (default: none)",
    )
    q.add_argument("--cmap", default="viridis", help="matplotlib colormap for depth")
    q.add_argument("--no-top1", action="store_true", help="do not draw top-1 agreement")
    q.set_defaults(func=_plot_handler)


def _resolve_t(args: argparse.Namespace, sets: Sequence[ImageSet]) -> list[float]:
    if args.t is not None:
        if len(args.t) != len(sets):
            raise InputError(f"--t has {len(args.t)} values for {len(sets)} --generated sets")
        return list(args.t)
    from_meta = [s.t for s in sets]
    if all(x is not None for x in from_meta):
        return [float(x) for x in from_meta]
    return [float(k) for k in range(len(sets))]


def _check_probe_args(args: argparse.Namespace) -> Any:
    """Check the arguments that need no file; return the device. Runs before any loading."""
    from hiergrammar.vision.device import resolve_device

    device = resolve_device(args.device, "--device")
    check_int("--batch-size", args.batch_size, low=1)
    check_int("--workers", args.workers, low=0)
    if args.limit is not None:
        check_int("--limit", args.limit, low=2)
    check_float("--min-rel-std", args.min_rel_std, 0.0, 1.0, high_open=True)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    return device


def _probe_handler(args: argparse.Namespace) -> int:
    from hiergrammar.vision import classifiers as clf

    device = _check_probe_args(args)
    if args.classifier in clf.CLASSIFIERS:
        model, preprocess = clf.load_classifier(args.classifier, args.weights, device)
        name = args.classifier
        layers = clf.classifier_layers(name)
    else:
        path = Path(args.classifier)
        if not path.exists():
            raise InputError(
                f"--classifier={args.classifier!r} is neither one of "
                f"{clf.classifier_names()} nor an existing module folder"
            )
        if args.weights is not None:
            raise InputError(
                "--weights applies to the paper classifiers; a module folder holds its own weights"
            )
        model, preprocess = clf.load_module_folder(path, device), _float_pm1
        name = path.name
        layers = getattr(model, "probe_layers", None) or clf.default_layers(model)
    if args.layers:
        layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    logits = args.logits_layer or layers[-1]
    if logits not in layers:
        raise InputError(f"--logits-layer={logits!r} is not among the hooked layers")

    start = ImageSet(args.start)
    generated = [ImageSet(g) for g in args.generated]
    t = _resolve_t(args, generated)
    for g in generated:
        g.pair_with(start)
    t_label = args.t_label
    if t_label is None:
        steps = {g.metadata.get("num_steps") for g in generated} - {None}
        t_label = (
            f"inversion time t (of {steps.pop()} respaced steps)"
            if len(steps) == 1
            else "inversion time t"
        )
    labels = start.labels
    if labels is not None and args.limit is not None:
        labels = labels[: args.limit]
    stats_set = ImageSet(args.stats_set) if args.stats_set else None
    data = run_probe(
        model,
        start.subset(args.limit),
        [g.subset(args.limit) for g in generated],
        t,
        layers,
        args.out,
        name=name,
        logits_layer=logits,
        preprocess=preprocess,
        stats_images=stats_set,
        batch_size=args.batch_size,
        per=args.per,
        min_rel_std=args.min_rel_std,
        t_label=t_label,
        labels=labels,
        num_workers=args.workers,
    )
    mean = np.asarray(data["similarity_mean"])
    j = data["layers"].index(logits)
    for k, tk in enumerate(data["t"]):
        agree = data["top1_agreement"]
        agree_txt = "" if agree is None else f", top-1 agreement {agree[k]:.3f}"
        print(
            f"t={tk:g}: similarity first layer {mean[k, 0]:.3f}, {logits} {mean[k, j]:.3f}"
            f"{agree_txt}"
        )
    if data["top1_accuracy_start"] is not None:
        print(
            f"top-1 accuracy of {name} on the start images: "
            f"{data['top1_accuracy_start']:.3f} (labels: sorted class-folder index from "
            "the sampler's metadata; meaningful for the 1000 ImageNet synset folders)"
        )
    print("wrote " + ", ".join(data["files"]))
    return 0


def _plot_handler(args: argparse.Namespace) -> int:
    from hiergrammar.vision.plots import plot_probe_files

    out = plot_probe_files(
        args.data, args.out, band=args.band, cmap=args.cmap, show_top1=not args.no_top1
    )
    print(f"wrote {out}")
    return 0
