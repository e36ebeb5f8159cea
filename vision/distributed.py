"""Forward-backward over many images on several GPUs with ``accelerate``.

Each process takes a contiguous shard of the image indices
(``PartialState().split_between_processes``), runs
:func:`hiergrammar.vision.forward_backward` on its own device, and either returns its
results through ``gather_object`` (in memory) or writes its
PNGs straight into the output folder, the main process then writing the merged metadata. Seeds
are per image (``seed + global index``), so the images do not depend on the number of
processes or the batch size. Launch as ``accelerate launch --num_processes 8 -m
hiergrammar.cli vision sample ...``; without a launcher everything runs in one process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hiergrammar.artifacts import save_json, save_npz

__all__ = ["forward_backward_sharded", "process_state", "sample_image_folder", "t_folder"]


def process_state():
    """accelerate's ``PartialState`` for this process (rank, device, number of processes).

    Without CUDA (or with ``ACCELERATE_USE_CPU`` set) it is asked for CPU processes, so that
    ``torchrun --nproc_per_node K`` on a CPU machine gives a gloo group of ``K`` processes
    rather than ``K`` independent single-process runs.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def forward_backward_sharded(
    diffusion: Any,
    images: torch.Tensor,
    t: int,
    num_steps: int = 250,
    seed: int = 0,
    **kwargs: Any,
) -> torch.Tensor:
    """:meth:`DiffusionModel.forward_backward` with the images split over the processes.

    ``diffusion`` is a :class:`hiergrammar.vision.models.DiffusionModel` already on this process's
    device. ``images``: ``(n, C, H, W)`` in ``[-1, 1]``, the same on every process. Returns
    the ``(n, C, H, W)`` float32 CPU result on every process, identical to a single-process
    run (image ``i`` uses seed ``seed + i`` wherever it runs).
    """
    from accelerate.utils import gather_object

    state = process_state()
    n = images.shape[0]
    mine: list[tuple[int, np.ndarray]] = []
    with state.split_between_processes(list(range(n))) as idx:
        if idx:
            out = diffusion.forward_backward(
                images[idx], t, num_steps, seed=[seed + i for i in idx], **kwargs
            )
            mine = [(i, out[k].cpu().numpy()) for k, i in enumerate(idx)]
    gathered = dict(gather_object(mine))
    return torch.from_numpy(np.stack([gathered[i] for i in range(n)]))


def t_folder(out_dir: str | os.PathLike, t: int) -> Path:
    """Where the images of step ``t`` go: ``out_dir/t{t:03d}``."""
    return Path(out_dir) / f"t{t:03d}"


def _check_sample_args(
    ts: Sequence[int], num_steps: int, per_class: int | None, batch_size: int, seed: int
) -> list[int]:
    """Validate the arguments of :func:`sample_image_folder`; return ``ts`` as ints.

    Needs no model nor image, so that the CLI can check them before loading either.
    """
    from hiergrammar.vision.data import _check_per_class
    from hiergrammar.vision.pipeline import _check_t, _is_int

    ts = list(ts)
    if not ts:
        raise ValueError("ts must name at least one t")
    for t in ts:
        _check_t(t, num_steps)
    _check_per_class(per_class)
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} violates batch_size >= 1")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed={seed!r} violates seed >= 0")
    return [int(t) for t in ts]


def sample_image_folder(
    diffusion: Any,
    image_root: str | os.PathLike,
    ts: Sequence[int],
    out_dir: str | os.PathLike,
    *,
    per_class: int | None = None,
    num_steps: int = 250,
    seed: int = 0,
    batch_size: int = 32,
    dtype: torch.dtype | None = None,
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Forward-backward every selected image of an ImageNet-style folder at every ``t``.

    Writes, for each ``t``, ``out_dir/t{t:03d}/<class>/<stem>.png`` (the same class layout
    as the input, so the output is itself an image folder; ``t = 0`` gives the preprocessed
    start images), ``metadata.json`` (model, scheduler, ``t``, start timestep, and per image
    its index, source file, class, label, seed and output file) and ``metadata.npz``
    (``index, label, seed`` arrays); plus ``out_dir/run.json``. Returns the run summary.
    ``resume=True`` skips the batches whose PNGs already exist (an interrupted run goes on
    where it stopped; the metadata is rewritten whole).
    """
    from hiergrammar.vision.data import image_folder_dataset, iter_batches, save_png, to_uint8
    from hiergrammar.vision.pipeline import start_timestep

    ts = _check_sample_args(ts, num_steps, per_class, batch_size, seed)
    state = process_state()
    dataset = image_folder_dataset(image_root, diffusion.image_size, per_class)
    records = dataset.records
    if not records:
        raise ValueError(f"no images found under {image_root}")
    names = [(r.class_name, r.stem) for r in records]
    if len(set(names)) != len(names):
        raise ValueError("two images of one class share a file stem; their PNGs would collide")
    out_dir = Path(out_dir)

    def rel_path(i: int) -> Path:
        return Path(records[i].class_name) / f"{records[i].stem}.png"

    with state.split_between_processes(list(range(len(records)))) as mine:
        for start in range(0, len(mine), batch_size):
            idx = list(mine[start : start + batch_size])
            # with resume, a t whose PNGs all exist is skipped: they were written atomically
            # by an earlier run, and seeds per image make a re-run give the same images
            todo = [
                t
                for t in ts
                if not resume
                or not all((t_folder(out_dir, t) / rel_path(i)).is_file() for i in idx)
            ]
            if not todo:
                continue
            images, _ = next(iter_batches(dataset, idx, len(idx)))
            for t in todo:
                out = diffusion.forward_backward(
                    images,
                    t,
                    num_steps,
                    seed=[seed + i for i in idx],
                    dtype=dtype,
                    device=state.device,
                    progress=progress,
                )
                for img, i in zip(to_uint8(out), idx, strict=True):
                    save_png(t_folder(out_dir, t) / rel_path(i), img)
    summary = {
        "model": diffusion.describe(),
        "image_root": str(image_root),
        "per_class": per_class,
        "n_images": len(records),
        "ts": ts,
        "num_steps": num_steps,
        "seed": seed,
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "float32",
        "batch_size": batch_size,
        "num_processes": state.num_processes,
    }
    if state.is_main_process:
        # the per-image rows do not depend on t: every t folder gets the same list
        rows = [
            {
                "index": i,
                "source": r.path,
                "class_name": r.class_name,
                "label": r.label,
                "file": str(rel_path(i)),
                "seed": seed + i,
            }
            for i, r in enumerate(records)
        ]
        arrays = {
            key: np.array([row[key] for row in rows], dtype=np.int64)
            for key in ("index", "label", "seed")
        }
        for t in ts:
            folder = t_folder(out_dir, t)
            save_json(
                folder / "metadata.json",
                {
                    **summary,
                    "t": t,
                    "start_timestep": start_timestep(diffusion.scheduler, t, num_steps),
                    "images": rows,
                },
            )
            save_npz(folder / "metadata.npz", **arrays)
        save_json(out_dir / "run.json", summary)
    state.wait_for_everyone()
    return summary
