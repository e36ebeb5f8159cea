"""``hiergrammar vision sample`` and ``hiergrammar vision convert-adm``.

No torch at module level: torch, diffusers and accelerate are imported inside the handlers.

Examples::

    hiergrammar vision convert-adm --checkpoint 256x256_diffusion_uncond.pt --out models/adm256u
    hiergrammar vision sample --model models/adm256u --images imagenet/val --per-class 10 \\
        --t 0 50 100 150 200 250 --num-steps 250 --dtype bf16 --out results/fb
    accelerate launch --num_processes 8 -m hiergrammar.cli vision sample ...  # multi-GPU
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hiergrammar.cli.args import add_out_argument, add_seed_argument, set_handler
from hiergrammar.validation import InputError

__all__ = ["DTYPES", "register", "sample", "convert_adm", "parse_flag_value"]

#: ``--dtype`` choices: names of torch dtypes (strings, so that torch is not imported here).
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sample`` and ``convert-adm`` to the ``hiergrammar vision`` sub-commands."""
    p = subparsers.add_parser(
        "sample",
        help="forward-backward diffusion of the images of a folder at several t",
        description="Noise each start image to step t of the respaced chain and run the "
        "reverse chain back to 0; write PNGs and metadata per t. Runs on all "
        "processes of an `accelerate launch`, one shard each.",
    )
    p.add_argument(
        "--model", required=True, help="diffusers folder (save_pretrained layout) or cached hub id"
    )
    p.add_argument("--images", required=True, help="ImageNet-style folder: <class>/<image>")
    p.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="first N images (sorted by name) of each class (default: all)",
    )
    p.add_argument(
        "--t",
        type=int,
        nargs="+",
        required=True,
        help="chain states to noise to (0 = the start image, NUM_STEPS = noise)",
    )
    p.add_argument(
        "--num-steps", type=int, default=250, help="respaced chain length (default %(default)s)"
    )
    p.add_argument(
        "--scheduler",
        choices=["ddpm", "ddim"],
        default=None,
        help="sampler (default: the model's saved scheduler)",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per batch (default %(default)s)"
    )
    p.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="fp32",
        help="model compute dtype (autocast); the chain stays float32 (default %(default)s)",
    )
    add_seed_argument(p, help="image i uses seed + i")
    add_out_argument(p, "folder", required=True, help="output folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip images whose PNGs exist already (continue an interrupted run); refused "
        "if the folder's sample_request.json names other parameters",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    set_handler(p, sample)

    c = subparsers.add_parser(
        "convert-adm",
        help="convert an OpenAI guided-diffusion (ADM) .pt checkpoint to diffusers",
        description="Writes a DDPMPipeline folder (unet/, scheduler/) loadable by "
        "`vision sample --model`.",
    )
    c.add_argument("--checkpoint", required=True, help="guided-diffusion .pt state dict")
    add_out_argument(c, "folder", required=True, help="output folder")
    c.add_argument(
        "--preset",
        default="256x256_diffusion_uncond",
        help="flags of a released model (default: %(default)s); 'none' for "
        "guided-diffusion's defaults",
    )
    c.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="override a guided-diffusion flag, e.g. --set num_channels=128",
    )
    set_handler(c, convert_adm)


def parse_flag_value(text: str) -> Any:
    """The value of a ``--set FLAG=VALUE``: a bool, int or float when it reads as one, else
    the text.

    >>> parse_flag_value("True"), parse_flag_value("128"), parse_flag_value("0.1")
    (True, 128, 0.1)
    >>> parse_flag_value("16,8")
    '16,8'
    """
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def convert_adm(args: argparse.Namespace) -> int:
    """Run ``hiergrammar vision convert-adm``."""
    flags = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r} is not FLAG=VALUE")
        flags[key.strip()] = parse_flag_value(value.strip())
    from hiergrammar.vision.adm import convert_adm_checkpoint

    preset = None if args.preset.lower() == "none" else args.preset
    out = convert_adm_checkpoint(args.checkpoint, args.out, preset=preset, **flags)
    print(f"wrote diffusers pipeline to {out}")
    return 0


def sample(args: argparse.Namespace) -> int:
    """Run ``hiergrammar vision sample``."""
    import torch

    from hiergrammar.vision.distributed import (
        _check_sample_args,
        process_state,
        sample_image_folder,
    )
    from hiergrammar.vision.models import load_diffusion

    # fail before every process loads the weights
    _check_sample_args(args.t, args.num_steps, args.per_class, args.batch_size, args.seed)
    images = Path(args.images)
    if not images.is_dir():
        from hiergrammar.vision.checkpoints import MissingFileError

        error = MissingFileError if not images.exists() else InputError
        raise error(f"--images {images} is not a folder of class folders")
    state = process_state()
    diffusion = load_diffusion(args.model, scheduler=args.scheduler, device=state.device)
    summary = sample_image_folder(
        diffusion,
        args.images,
        sorted(set(args.t)),
        args.out,
        per_class=args.per_class,
        num_steps=args.num_steps,
        seed=args.seed,
        batch_size=args.batch_size,
        dtype=getattr(torch, DTYPES[args.dtype]),
        progress=not args.no_progress,
        resume=args.resume,
    )
    if state.is_main_process:
        print(
            f"wrote {summary['n_images']} images x {len(summary['ts'])} t "
            f"({summary['num_processes']} process(es)) to {args.out}"
        )
    return 0
