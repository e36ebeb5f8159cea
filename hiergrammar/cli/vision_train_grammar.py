"""``hiergrammar vision train-grammar``: train a diffusion model on a grammar's strings.

Draws ``--n-train`` strings from an RHM (the shared RHM flags ``--v --n-classes --m --s --L``,
here with the defaults ``v = n_classes = 8, m = 2, s = 2, L = 3``, and ``--grammar-seed``) or a
grammar file (``--grammar``, the format of :mod:`hiergrammar.grammar_io`), trains one denoiser
(``--family``, ``--architecture``) with checkpoints in ``--out`` (safetensors + JSON,
:mod:`~hiergrammar.vision.grammar_diffusion.checkpointing`), and with ``--evaluate`` measures it
against the exact denoiser (``evaluation.json``:
:func:`~hiergrammar.vision.grammar_diffusion.measure.compare_with_exact`). ``--resume``
continues an interrupted run. Under ``accelerate launch`` every process trains its share of
each batch; process 0 writes the files.

No torch at module level: the parser builds without it.

Examples
--------
.. code-block:: shell

    hiergrammar vision train-grammar --v 8 --n-classes 8 --m 2 --L 3 --family masked \\
        --architecture tree_unet --n-train 1024 --steps 2000 --out runs/masked --evaluate
    accelerate launch --multi_gpu --num_processes 8 -m hiergrammar.cli vision train-grammar \\
        --v 32 --n-classes 32 --m 8 --L 5 --family masked --architecture tree_unet \\
        --width 512 --n-train 1000000 --steps 100000 --batch-size 4096 --lr 1e-3 \\
        --checkpoint-every 5000 --out runs/masked_L5 --resume --evaluate --bp-backend torch

>>> parser = argparse.ArgumentParser()
>>> register(parser.add_subparsers())
>>> args = parser.parse_args(["train-grammar", "--out", "runs/x", "--steps", "10"])
>>> args.family, args.architecture, args.steps, args.L
('masked', 'tree_unet', 10, 3)
"""

from __future__ import annotations

import argparse
import math

from hiergrammar.cli.args import (
    add_check,
    add_device_argument,
    add_float_check,
    add_int_check,
    add_out_argument,
    add_rhm_arguments,
    add_seed_argument,
    model_from_args,
    set_handler,
)
from hiergrammar.validation import InputError, check_float

__all__ = [
    "FAMILIES",
    "ARCHITECTURES",
    "RHM_DEFAULTS",
    "LR_RANGE",
    "WEIGHT_DECAY_RANGE",
    "SCHEDULES",
    "register",
    "train_grammar",
]

#: Families and architectures, as strings (no torch needed to build the parser).
FAMILIES = ("masked", "uniform", "gaussian")
ARCHITECTURES = ("tree_unet", "grammar_transformer")
#: This command's defaults of the shared RHM flags: a grammar small enough to train on a CPU.
RHM_DEFAULTS = {"v": 8, "n_classes": 8, "m": 2, "s": 2, "L": 3}


#: The documented ranges of the optimiser flags (checked at parse time, before any work): a
#: peak learning rate above 1 makes AdamW's steps as large as the weights themselves.
LR_RANGE = (0.0, 1.0)
WEIGHT_DECAY_RANGE = (0.0, 1.0)
#: The continuous schedules of the masked and uniform families.
SCHEDULES = ("linear", "cosine", "loglinear")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-grammar`` to the ``hiergrammar vision`` sub-commands."""
    p = subparsers.add_parser(
        "train-grammar",
        help="train a diffusion model on grammar strings; compare it with exact BP",
        description="Train a masked, uniform or Gaussian diffusion model (tree U-Net or "
        "transformer) on strings of an RHM or a grammar file, with resumable safetensors "
        "checkpoints; --evaluate measures it against the exact (BP) denoiser. Every flag is "
        "checked before any work.",
    )
    g = p.add_argument_group("grammar and data")
    add_rhm_arguments(g, grammar=True, defaults=RHM_DEFAULTS)
    add_seed_argument(g, 0, "seed of the RHM's rules", flag="--grammar-seed")
    g.add_argument(
        "--n-train", type=int, default=1024, help="training strings P, >= 1 (default %(default)s)"
    )
    add_seed_argument(g, 1, "seed of the training strings", flag="--data-seed")
    m = p.add_argument_group("model")
    m.add_argument(
        "--family",
        choices=FAMILIES,
        default="masked",
        help="diffusion family (default %(default)s)",
    )
    m.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="linear",
        help="schedule of the masked and uniform families (default %(default)s)",
    )
    m.add_argument(
        "--num-train-steps",
        type=int,
        default=1000,
        help="Gaussian chain length T, >= 1 (default %(default)s)",
    )
    m.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        default="tree_unet",
        help="denoiser network (default %(default)s)",
    )
    m.add_argument(
        "--width",
        type=int,
        default=64,
        help="channels, even and >= 2; a multiple of --heads for the transformer "
        "(default %(default)s)",
    )
    m.add_argument(
        "--depth", type=int, default=2, help="transformer layers, >= 1 (default %(default)s)"
    )
    m.add_argument(
        "--heads",
        type=int,
        default=4,
        help="transformer attention heads, >= 1 (default %(default)s)",
    )
    t = p.add_argument_group("training")
    t.add_argument(
        "--steps", type=int, default=2000, help="optimiser steps, >= 1 (default %(default)s)"
    )
    t.add_argument(
        "--batch-size", type=int, default=128, help="strings per step, >= 1 (default %(default)s)"
    )
    t.add_argument(
        "--lr",
        type=float,
        default=2e-3,
        help=f"peak AdamW learning rate, {LR_RANGE[0]:g} < LR <= {LR_RANGE[1]:g} "
        "(default %(default)s)",
    )
    t.add_argument(
        "--warmup-steps",
        type=int,
        default=100,
        help="linear warm-up of the learning rate, >= 0 steps (default %(default)s)",
    )
    t.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help=f"AdamW's decoupled weight decay, {WEIGHT_DECAY_RANGE[0]:g} <= WEIGHT_DECAY <= "
        f"{WEIGHT_DECAY_RANGE[1]:g} (default %(default)s)",
    )
    add_seed_argument(t, 0, "seed of the weights and of training")
    t.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="save a checkpoint every this many steps, >= 0; 0: at the end only "
        "(default %(default)s)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --out (refused if --out holds none)",
    )
    add_device_argument(
        t, help="cpu or cuda (default: accelerate's choice, the GPU of each launched process)"
    )
    t.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads, >= 1 (default: up to 2)"
    )
    e = p.add_argument_group("evaluation against the exact denoiser")
    e.add_argument("--evaluate", action="store_true", help="write OUT/evaluation.json")
    e.add_argument(
        "--t",
        type=float,
        nargs="+",
        default=None,
        help="times, in [0, 1] (Gaussian: chain steps 1..T) (default 0.1..1.0; Gaussian: 10 "
        "chain steps up to T)",
    )
    e.add_argument(
        "--n-test",
        type=int,
        default=2000,
        help="held-out strings of the loss curves, >= 2 (default %(default)s)",
    )
    e.add_argument(
        "--n-forward-backward",
        type=int,
        default=500,
        help="strings sent forward and back per time, >= 1 (default %(default)s)",
    )
    e.add_argument(
        "--n-generate",
        type=int,
        default=1000,
        help="strings generated from noise, >= 1 (default %(default)s)",
    )
    e.add_argument(
        "--reverse-steps",
        type=int,
        default=None,
        help="reverse-process (sampler) steps, >= 1 (default: the family's own)",
    )
    e.add_argument(
        "--bp-backend",
        choices=("auto", "numpy", "numba", "torch"),
        default="auto",
        help="backend of the exact (BP) denoiser (default %(default)s)",
    )
    add_out_argument(p, "folder", required=True, help="checkpoint and output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for dest, flag, low in _INT_FLAGS:
        add_int_check(p, dest, flag, low)
    add_float_check(p, "lr", "--lr", *LR_RANGE, low_open=True)
    add_float_check(p, "weight_decay", "--weight-decay", *WEIGHT_DECAY_RANGE)
    add_check(p, _check_network)
    add_check(p, _check_times)
    add_check(p, _check_resume)
    set_handler(p, train_grammar)


#: Integer flags and their lower bounds: (dest, flag, low).
_INT_FLAGS = (
    ("n_train", "--n-train", 1),
    ("num_train_steps", "--num-train-steps", 1),
    ("width", "--width", 2),
    ("depth", "--depth", 1),
    ("heads", "--heads", 1),
    ("steps", "--steps", 1),
    ("batch_size", "--batch-size", 1),
    ("warmup_steps", "--warmup-steps", 0),
    ("checkpoint_every", "--checkpoint-every", 0),
    ("threads", "--threads", 1),
    ("n_test", "--n-test", 2),
    ("n_forward_backward", "--n-forward-backward", 1),
    ("n_generate", "--n-generate", 1),
    ("reverse_steps", "--reverse-steps", 1),
)


def _check_network(args: argparse.Namespace) -> None:
    """The network's size constraints beyond the bounds (the library's, named by flag)."""
    if args.width % 2:
        raise InputError(f"--width={args.width} must be even (sin and cos time features)")
    if args.architecture == "grammar_transformer" and args.width % args.heads:
        raise InputError(
            f"--width={args.width} must be a multiple of --heads={args.heads} "
            "(the transformer splits the channels among its heads)"
        )


def _check_times(args: argparse.Namespace) -> None:
    """Every ``--t`` a time of the family: in ``[0, 1]``, or a chain step ``1..T``."""
    for time in args.t or ():
        if args.family != "gaussian":
            check_float("--t", time, 0.0, 1.0)
        elif not math.isfinite(time) or not float(time).is_integer():
            raise InputError(
                f"--t={time} is not a chain step of the Gaussian family (an integer 1..T, "
                f"T = --num-train-steps = {args.num_train_steps})"
            )
        else:
            check_float("--t", time, 1, args.num_train_steps)


def _check_resume(args: argparse.Namespace) -> None:
    """``--resume`` needs a checkpoint in ``--out``; without it, ``--out`` must hold none."""
    from hiergrammar.vision.grammar_diffusion.checkpointing import read_checkpoint

    checkpoint = read_checkpoint(args.out) if args.out.is_dir() else None
    if args.resume and checkpoint is None:
        raise InputError(
            f"nothing to resume in {str(args.out)!r}: it holds no checkpoint; drop --resume "
            "to start a new run"
        )
    if not args.resume and checkpoint is not None:
        raise InputError(
            f"{str(args.out)!r} holds a checkpoint (step {checkpoint.step}): pass --resume to "
            "continue it, or choose another --out"
        )


def _family(args: argparse.Namespace, v: int):
    from hiergrammar.vision.grammar_diffusion.diffusions import make_diffusion

    if args.family == "gaussian":
        return make_diffusion("gaussian", v=v, num_train_steps=args.num_train_steps)
    return make_diffusion(args.family, v=v, schedule=args.schedule)


def train_grammar(args: argparse.Namespace) -> int:
    """Run ``hiergrammar vision train-grammar``."""
    import numpy as np

    from hiergrammar.artifacts import save_json
    from hiergrammar.grammar_io import save_grammar
    from hiergrammar.vision.grammar_diffusion.measure import compare_with_exact
    from hiergrammar.vision.grammar_diffusion.models import build_network
    from hiergrammar.vision.grammar_diffusion.train import (
        TrainingConfig,
        TrainingDivergedError,
        train_denoiser,
    )

    out = args.out
    grammar = model_from_args(args, seed=args.grammar_seed)
    family = _family(args, grammar.v)
    x_train = grammar.sample(args.n_train, seed=args.data_seed).x
    sizes = {"width": args.width}
    if args.architecture == "grammar_transformer":
        sizes.update(depth=args.depth, heads=args.heads)
    network = build_network(
        args.architecture,
        v=grammar.v,
        s=grammar.s,
        L=grammar.L,
        input_kind=family.input_kind,
        seed=args.seed,
        **sizes,
    )
    config = TrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    if args.t is not None:
        times = np.asarray(args.t, dtype=float)
    elif family.name == "gaussian":
        times = np.unique(np.linspace(family.t_max / 10, family.t_max, 10).round())
    else:
        times = np.round(np.arange(1, 11) / 10, 6)
    for time in times:  # before training: a bad time fails now, not after hours
        family.check_time(float(time))
    try:
        result = train_denoiser(
            network,
            family,
            x_train,
            config,
            checkpoint_dir=out,
            resume=args.resume,
            device=args.device,
            num_threads=args.threads,
            show_progress=False if args.no_progress else None,
        )
    except TrainingDivergedError as err:
        loss = "NaN" if math.isnan(err.loss) else err.loss
        raise InputError(
            f"training diverged at step {err.step} (the loss became {loss} at learning rate "
            f"{err.lr:g}); choose a smaller --lr than {args.lr:g}"
        ) from err
    from accelerate.state import PartialState

    if not PartialState().is_main_process:
        return 0
    save_grammar(grammar, out / "grammar.npz")
    print(
        f"trained {args.architecture} ({family.name}) for {result.steps_done} steps in "
        f"{result.seconds:.0f} s; final loss {np.mean(result.losses[-50:]):.4f}; "
        f"checkpoint {result.checkpoint}"
    )
    if args.evaluate:
        from hiergrammar.vision.rhm_cnn import torch_threads

        with torch_threads(args.threads):
            evaluation = compare_with_exact(
                grammar,
                result.denoiser(),
                x_train,
                times,
                n_test=args.n_test,
                n_forward_backward=args.n_forward_backward,
                n_generate=args.n_generate,
                steps=args.reverse_steps,
                seed=args.seed,
                bp_backend=args.bp_backend,
            )
        evaluation["training"] = {
            "seconds": result.seconds,
            "steps": result.steps_done,
            "final_loss": float(np.mean(result.losses[-max(1, len(result.losses) // 10) :])),
        }
        path = save_json(out / "evaluation.json", evaluation)
        pairs = zip(evaluation["t"], evaluation["gap"]["learned"], strict=True)
        gaps = ", ".join(f"t={t:g}: {g:.3f}" for t, g in pairs)
        print(f"loss gap to the exact denoiser (nats per counted leaf): {gaps}")
        print(
            f"t* exact {_time(evaluation['t_star']['exact'])}, learned "
            f"{_time(evaluation['t_star']['learned'])}; generated strings valid "
            f"{evaluation['generation']['learned']['valid']:.3f}, copied "
            f"{evaluation['generation']['learned']['copied']:.3f}; wrote {path}"
        )
    return 0


def _time(t_star: float | None) -> str:
    """A transition time for the summary line: NaN (or null read back) means the class curve
    never crossed its midpoint within the measured times."""
    if t_star is None or not math.isfinite(t_star):
        return "not reached in the measured times"
    return f"{t_star:.3f}"
