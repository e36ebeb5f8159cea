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
    add_device_argument,
    add_int_check,
    add_out_argument,
    add_rhm_arguments,
    add_seed_argument,
    model_from_args,
    set_handler,
)

__all__ = ["FAMILIES", "ARCHITECTURES", "RHM_DEFAULTS", "register", "train_grammar"]

#: Families and architectures, as strings (no torch needed to build the parser).
FAMILIES = ("masked", "uniform", "gaussian")
ARCHITECTURES = ("tree_unet", "grammar_transformer")
#: This command's defaults of the shared RHM flags: a grammar small enough to train on a CPU.
RHM_DEFAULTS = {"v": 8, "n_classes": 8, "m": 2, "s": 2, "L": 3}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-grammar`` to the ``hiergrammar vision`` sub-commands."""
    p = subparsers.add_parser(
        "train-grammar",
        help="train a diffusion model on grammar strings; compare it with exact BP",
        description="Train a masked, uniform or Gaussian diffusion model (tree U-Net or "
        "transformer) on strings of an RHM or a grammar file, with resumable safetensors "
        "checkpoints; --evaluate measures it against the exact (BP) denoiser.",
    )
    g = p.add_argument_group("grammar and data")
    add_rhm_arguments(g, grammar=True, defaults=RHM_DEFAULTS)
    add_seed_argument(g, 0, "seed of the RHM's rules", flag="--grammar-seed")
    g.add_argument("--n-train", type=int, default=1024, help="training strings P")
    add_seed_argument(g, 1, "seed of the training strings", flag="--data-seed")
    add_int_check(p, "n_train", "--n-train", 1)
    m = p.add_argument_group("model")
    m.add_argument("--family", choices=FAMILIES, default="masked")
    m.add_argument(
        "--schedule",
        default="linear",
        help="masked/uniform schedule: linear, cosine or loglinear (default %(default)s)",
    )
    m.add_argument("--num-train-steps", type=int, default=1000, help="Gaussian chain length T")
    m.add_argument("--architecture", choices=ARCHITECTURES, default="tree_unet")
    m.add_argument("--width", type=int, default=64)
    m.add_argument("--depth", type=int, default=2, help="transformer layers")
    m.add_argument("--heads", type=int, default=4, help="transformer attention heads")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--warmup-steps", type=int, default=100)
    t.add_argument("--weight-decay", type=float, default=0.0)
    add_seed_argument(t, 0, "seed of the weights and of training")
    t.add_argument("--checkpoint-every", type=int, default=0, help="0: at the end only")
    t.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    add_device_argument(
        t, help="cpu or cuda (default: accelerate's choice, the GPU of each launched process)"
    )
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: up to 2)")
    add_int_check(p, "threads", "--threads", 1)
    e = p.add_argument_group("evaluation against the exact denoiser")
    e.add_argument("--evaluate", action="store_true", help="write OUT/evaluation.json")
    e.add_argument(
        "--t",
        type=float,
        nargs="+",
        default=None,
        help="times (default 0.1..1.0; Gaussian: 10 chain steps up to T)",
    )
    e.add_argument("--n-test", type=int, default=2000)
    e.add_argument("--n-forward-backward", type=int, default=500)
    e.add_argument("--n-generate", type=int, default=1000)
    e.add_argument("--reverse-steps", type=int, default=None, help="sampler steps")
    e.add_argument("--bp-backend", choices=("auto", "numpy", "numba", "torch"), default="auto")
    add_out_argument(p, "folder", required=True, help="checkpoint and output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    set_handler(p, train_grammar)


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
    from hiergrammar.vision.grammar_diffusion.train import TrainingConfig, train_denoiser

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
