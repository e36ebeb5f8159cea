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

from hiergrammar.artifacts import save_json, save_npz, write_manifest
from hiergrammar.validation import InputError, check_seed

__all__ = [
    "REQUEST_NAME",
    "compare_requests",
    "forward_backward_sharded",
    "process_state",
    "sample_image_folder",
    "t_folder",
]

#: The file, in the output folder, that records what determines the images of a run.
REQUEST_NAME = "sample_request.json"


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
    from hiergrammar.vision.pipeline import _check_images

    _check_images(images)
    check_seed("seed", seed, allow_generator=False)
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
    """Where the images of step ``t`` go: ``out_dir/t{t:03d}``.

    Examples
    --------
    >>> t_folder("out", 50).as_posix()
    'out/t050'
    """
    return Path(out_dir) / f"t{t:03d}"


def _check_sample_args(
    ts: Sequence[int], num_steps: int, per_class: int | None, batch_size: int, seed: int
) -> list[int]:
    """Validate the arguments of :func:`sample_image_folder`; return ``ts`` as ints.

    Needs no model nor image, so that the CLI can check them before loading either.
    """
    from hiergrammar.vision.data import _check_per_class
    from hiergrammar.vision.pipeline import _check_t, _is_int

    if isinstance(ts, (str, bytes)) or not hasattr(ts, "__iter__"):
        raise InputError(f"ts={ts!r} must be a list of chain states t")
    ts = list(ts)
    if not ts:
        raise InputError("ts must name at least one t")
    for t in ts:
        _check_t(t, num_steps)
    _check_per_class(per_class)
    if not _is_int(batch_size) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r} violates batch_size >= 1")
    check_seed("seed", seed, allow_generator=False)
    if seed is None:
        raise InputError("seed must be a non-negative integer (image i uses seed + i), not None")
    return [int(t) for t in ts]


# --------------------------------------------------------------------------------------------
# what determines the images of a run, and the check before resuming


def _public(config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers config without its bookkeeping keys (``_class_name``, versions...)."""
    return {k: v for k, v in config.items() if not str(k).startswith("_")}


def _images_digest(records: Sequence[Any]) -> str:
    """A hash of the selected images: class, file name, label and size of each, in order."""
    import hashlib

    digest = hashlib.sha256()
    for r in records:
        size = os.stat(r.path).st_size
        digest.update(f"{r.class_name}/{Path(r.path).name}:{r.label}:{size}\n".encode())
    return digest.hexdigest()[:16]


def _sample_request(
    diffusion: Any,
    records: Sequence[Any],
    ts: list[int],
    num_steps: int,
    seed: int,
    per_class: int | None,
    dtype: torch.dtype | None,
) -> dict[str, Any]:
    """Everything that changes the images of :func:`sample_image_folder`, as JSON values."""
    import json

    model = diffusion.describe()
    request = {
        "model": {
            "kind": model["kind"],
            "model_class": model["model_class"],
            "model_config": _public(model.get("model_config", {})),
            "weights": model.get("weights"),
            "image_size": model["image_size"],
        },
        "scheduler": {
            "class": model["scheduler_class"],
            "config": _public(model["scheduler_config"]),
        },
        "seed": seed,
        "num_steps": num_steps,
        "ts": ts,
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "float32",
        "images": {
            "per_class": per_class,
            "n_images": len(records),
            "files": _images_digest(records),
        },
    }
    from hiergrammar.artifacts import to_jsonable

    return json.loads(json.dumps(to_jsonable(request)))  # the form it has once saved


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def compare_requests(saved: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """The fields in which two run requests differ, as ``"field: saved -> requested"``.

    Examples
    --------
    >>> for line in compare_requests({"seed": 0, "scheduler": {"class": "DDPMScheduler"}},
    ...                              {"seed": 7, "scheduler": {"class": "DDIMScheduler"}}):
    ...     print(line)
    seed: 0 saved, 7 requested
    scheduler.class: 'DDPMScheduler' saved, 'DDIMScheduler' requested
    """
    a, b = _flatten(saved), _flatten(requested)
    missing = object()
    differences = []
    for key in sorted(set(a) | set(b), key=lambda k: (k.count("."), k)):
        left, right = a.get(key, missing), b.get(key, missing)
        if left != right:
            show = [("absent" if x is missing else repr(x)) for x in (left, right)]
            show = [x if len(x) <= 60 else x[:57] + "..." for x in show]
            differences.append(f"{key}: {show[0]} saved, {show[1]} requested")
    return differences


def _existing_pngs(out_dir: Path, ts: Sequence[int]) -> bool:
    return any(
        folder.is_dir() and next(folder.rglob("*.png"), None) is not None
        for folder in [t_folder(out_dir, t) for t in ts] + sorted(out_dir.glob("t[0-9]*"))
    )


def _check_output_folder(out_dir: Path, request: dict[str, Any], resume: bool) -> None:
    """Refuse to write into a folder whose images were made with another request."""
    import json

    path = out_dir / REQUEST_NAME
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{path} is not valid JSON ({err}); remove {out_dir}") from None
        differences = compare_requests(saved, request)
        if differences:
            what = "--resume: " if resume else ""
            raise InputError(
                f"{what}{out_dir} holds images made with other parameters "
                f"({len(differences)} differ): " + "; ".join(differences[:8]) + ". Nothing was "
                "written: use another output folder, or remove this one to start afresh"
            )
    elif out_dir.is_dir() and _existing_pngs(out_dir, request["ts"]):
        raise InputError(
            f"{out_dir} holds images but no {REQUEST_NAME}: they cannot be checked against this "
            "run's parameters, and would mix with its images. Use another output folder, or "
            "remove this one"
        )


def _refuse_unreadable_images(
    state: Any, records: Sequence[Any], root: Any, progress: bool = True
) -> None:
    """Decode every selected image (each process its share); refuse, on every process, the
    run if any cannot be read, before anything is written."""
    from accelerate.utils import gather_object
    from hiergrammar.vision.data import find_unreadable_images, refuse_unreadable

    with state.split_between_processes(list(range(len(records)))) as mine:
        bad = find_unreadable_images([records[i].path for i in mine], progress=progress)
    bad = sorted(gather_object(bad)) if state.num_processes > 1 else bad
    refuse_unreadable([tuple(b) for b in bad], len(records), f"the image folder {root}")


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
    (``index, label, seed`` arrays); plus the manifest ``out_dir/run.json`` (every file with
    its SHA-256, :func:`hiergrammar.artifacts.write_manifest`). Returns the run summary.

    Before the first image, ``out_dir/sample_request.json`` records everything that determines
    the images: the model (class, config, a fingerprint of its weights), the scheduler (class
    and config), ``seed``, ``num_steps``, ``ts``, ``dtype`` and the selected images (a hash of
    their names, labels and sizes). A folder whose request differs, or that holds images but no
    request, is refused with the differing fields named, before anything is written.
    ``resume=True`` then skips the batches whose PNGs already exist (an interrupted run goes on
    where it stopped, to the same images; the metadata is rewritten whole).

    Every selected image is decoded first: a file that is not an image or is truncated is
    refused with its path before anything is written.

    Raises
    ------
    InputError
        Bad arguments, unreadable images, or an output folder made with other parameters.
    """
    from hiergrammar.vision.data import image_folder_dataset, iter_batches, save_png, to_uint8
    from hiergrammar.vision.pipeline import _check_dtype, start_timestep

    ts = _check_sample_args(ts, num_steps, per_class, batch_size, seed)
    _check_dtype(dtype)
    state = process_state()
    dataset = image_folder_dataset(image_root, diffusion.image_size, per_class, verify=False)
    records = dataset.records
    if not records:
        raise InputError(f"no images found under {image_root}")
    names = [(r.class_name, r.stem) for r in records]
    if len(set(names)) != len(names):
        raise InputError("two images of one class share a file stem; their PNGs would collide")
    _refuse_unreadable_images(state, records, image_root, progress)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output folder {out_dir} is a file")
    request = _sample_request(diffusion, records, ts, num_steps, seed, per_class, dtype)
    _check_output_folder(out_dir, request, resume)  # on every process, before any write
    state.wait_for_everyone()
    if state.is_main_process:
        save_json(out_dir / REQUEST_NAME, request)
    state.wait_for_everyone()

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
        "model": {**diffusion.describe(), "name": diffusion.name},
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
        write_manifest(
            out_dir,
            command="hiergrammar vision sample",
            parameters=request,
            seed=seed,
            extra={"summary": summary},
        )
    state.wait_for_everyone()
    return summary
