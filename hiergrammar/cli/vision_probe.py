"""``hiergrammar vision probe`` and ``hiergrammar vision plot``: the paper's Fig. 2 (right) / 16.

``probe`` loads a classifier (a paper model with local weights, or a module folder -- an
architecture name plus safetensors weights, such as the RHM CNN saved by
:func:`hiergrammar.vision.rhm_cnn.save_tree_cnn`; nothing is unpickled), the start images
and one folder of generated images per inversion time ``t``
(:class:`hiergrammar.vision.image_sets.ImageSet`), and writes ``probe_<classifier>.json`` and
``.npz`` (:func:`hiergrammar.vision.probes.run_probe`): per layer mean / std / sem of the
cosine similarity per ``t``, top-1 agreement per ``t``, and (NPZ) every per-image value.

``plot`` turns one or several such files into the figure (one panel per file).

The inversion time of a set is taken from ``--t``, else from ``t`` in its ``metadata.json``
(or the NPZ's ``t`` array), else the set's position. Every image of a folder is checked before
the probe starts: a file that is not an image or is truncated is refused with its path, and
nothing is written.

No torch at module level: the parser builds without it.

Examples
--------
Paper Fig. 2, right:

.. code-block:: shell

    hiergrammar vision probe --classifier convnext_base --start results/fb/t000 \\
        --generated results/fb/t* --out results/probe
    hiergrammar vision plot --data results/probe/probe_convnext_base.json \\
        --out results/probe/fig2_right.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hiergrammar.cli.args import (
    add_device_argument,
    add_float_check,
    add_int_check,
    add_out_argument,
    set_handler,
)
from hiergrammar.validation import InputError

__all__ = ["register", "probe", "plot", "resolve_t"]


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
    add_out_argument(p, "folder", required=True, help="output folder")
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
        help="drop units with std <= this x the layer's RMS activation, 0 <= MIN_REL_STD < 1 "
        "(default %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per batch (default %(default)s)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="background processes decoding the images of each set (default: 2; "
        "0 decodes in the main process)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N image pairs")
    add_device_argument(p, help="cpu, cuda, cuda:N, mps (default: cuda if available)")
    add_int_check(p, "batch_size", "--batch-size", 1)
    add_int_check(p, "workers", "--workers", 0)
    add_int_check(p, "limit", "--limit", 2)
    add_float_check(p, "min_rel_std", "--min-rel-std", 0.0, 1.0, high_open=True)
    set_handler(p, probe)

    q = sub.add_parser(
        "plot",
        help="figure of similarity vs t from probe data files",
        description="One panel per probe data file (JSON or NPZ): cosine "
        "similarity vs t, one curve per layer coloured by depth, "
        "logits in red, top-1 agreement dashed.",
    )
    q.add_argument("--data", required=True, nargs="+", help="probe_<classifier>.json/.npz files")
    add_out_argument(q, "file", required=True, help="output PNG")
    q.add_argument(
        "--band",
        choices=["none", "sem", "std"],
        default="none",
        help="shaded band around each curve (default: none)",
    )
    q.add_argument(
        "--cmap", default="viridis", help="matplotlib colormap for depth (default %(default)s)"
    )
    q.add_argument("--no-top1", action="store_true", help="do not draw top-1 agreement")
    set_handler(q, plot)


def resolve_t(args: argparse.Namespace, sets: Sequence[Any]) -> list[float]:
    """The inversion time of each generated set: ``--t``, else every set's metadata ``t``,
    else the sets' positions ``0, 1, ...``."""
    if args.t is not None:
        if len(args.t) != len(sets):
            raise InputError(f"--t has {len(args.t)} values for {len(sets)} --generated sets")
        return list(args.t)
    from_meta = [s.t for s in sets]
    if all(x is not None for x in from_meta):
        return [float(x) for x in from_meta]
    return [float(k) for k in range(len(sets))]


def probe(args: argparse.Namespace) -> int:
    """Run ``hiergrammar vision probe``."""
    import numpy as np

    from hiergrammar.vision import classifiers as clf
    from hiergrammar.vision.device import resolve_device
    from hiergrammar.vision.image_sets import ImageSet, float_pm1
    from hiergrammar.vision.probes import run_probe

    device = resolve_device(args.device, "--device")
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
        model, preprocess = clf.load_module_folder(path, device), float_pm1
        name = path.name
        layers = getattr(model, "probe_layers", None) or clf.default_layers(model)
    if args.layers:
        layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    logits = args.logits_layer or layers[-1]
    if logits not in layers:
        raise InputError(f"--logits-layer={logits!r} is not among the hooked layers")

    start = ImageSet(args.start)
    generated = [ImageSet(g) for g in args.generated]
    t = resolve_t(args, generated)
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


def plot(args: argparse.Namespace) -> int:
    """Run ``hiergrammar vision plot``."""
    from hiergrammar.vision.plots import plot_probe_files

    out = plot_probe_files(
        args.data, args.out, band=args.band, cmap=args.cmap, show_top1=not args.no_top1
    )
    print(f"wrote {out}")
    return 0
