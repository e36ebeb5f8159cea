"""Running one task where it lands (this process or a Dask worker) and writing its Parquet file.

:func:`execute_task` builds the task's grammar and noise process, calls the measurement once
per noise level, turns what it returns into rows (see :mod:`hiergrammar.sweep.measurements`)
and writes them as one Parquet file, atomically: to a temporary sibling first, then
:func:`os.replace` onto the file name derived from the task's parameters. A task run twice (a
retry, a worker lost after writing) therefore replaces its file with the same rows and never
leaves a duplicate; a task whose file exists already is not run again.

The file holds only what the task's parameters determine (no timings, no host names), so its
bytes are the same whichever worker wrote it, in a first run or a resumed one.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.validation import InputError

__all__ = ["execute_or_refuse", "execute_task", "result_table", "write_atomically"]

#: Columns a measurement may not return (they describe the grid).
_RESERVED = ("task", "noise_level", "process", "schedule", "rule_draw", "data_draw", "file")


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary sibling of ``path`` (a name
    :func:`hiergrammar.artifacts.remove_temporary_files` recognises), then move it onto
    ``path``. Not recorded in a run's manifest: a store records its files when a sweep ends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 2**-32 per attempt
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _rows(result: Mapping[str, Any], where: str) -> tuple[int, dict[str, Any]]:
    """``(number of rows, columns)`` of one call's result (see the measurement contract)."""
    if not isinstance(result, Mapping) or not result:
        raise InputError(f"{where} must return a non-empty mapping of quantities, got {result!r}")
    columns: dict[str, Any] = {}
    for key in result:
        if not isinstance(key, str) or key in _RESERVED:
            raise InputError(f"{where} returned the key {key!r}; reserved: {list(_RESERVED)}")
    if "level" in result:
        level = np.asarray(result["level"])
        if level.ndim != 1 or not np.issubdtype(level.dtype, np.integer):
            raise InputError(
                f"{where}: 'level' must be 1-d integers, got {level.dtype} {level.shape}"
            )
        n = level.size
    else:
        n = 1
    for key, value in result.items():
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            if array.ndim == 0 and isinstance(value, str):
                columns[key] = [value] * n
                continue
            raise InputError(f"{where}: {key!r} is not a number, a string or a numeric array")
        if "level" not in result:
            columns[key] = array[None] if array.ndim else np.full(1, array[()])
        elif array.ndim == 0:
            columns[key] = np.full(n, array[()])
        elif array.shape[0] == n:
            columns[key] = array
        else:
            raise InputError(
                f"{where}: {key!r} has shape {array.shape}; with {n} levels give a scalar or "
                f"an array of first axis {n}"
            )
    return n, columns


def _arrow_column(values: Any):
    import pyarrow as pa

    if isinstance(values, list):
        return pa.array(values)
    array = np.ascontiguousarray(values)
    if array.ndim == 1:
        return pa.array(array)
    width = int(np.prod(array.shape[1:]))
    flat = pa.array(array.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def result_table(task: Any, measured: list[tuple[float, int, dict[str, Any]]]):
    """The Arrow table of a task: its grid columns, ``noise_level``, the measured columns and
    ``task``, one block of rows per noise level."""
    import pyarrow as pa

    total = sum(n for _, n, _ in measured)
    names: list[str] = []
    for _, _, cols in measured:
        names += [k for k in cols if k not in names]
    for _, _, cols in measured:
        if list(cols) != names:
            raise InputError(
                f"measurement {task.measure.name!r} returned other quantities at another noise "
                f"level: {sorted(cols)} vs {sorted(names)}"
            )
    data: dict[str, Any] = {}
    for key, value in task.columns().items():
        data[key] = pa.array([value] * total)
    data["noise_level"] = pa.array(np.concatenate([np.full(n, t) for t, n, _ in measured]))
    order = (["level"] if "level" in names else []) + [k for k in names if k != "level"]
    for key in order:
        parts = [cols[key] for _, _, cols in measured]
        if isinstance(parts[0], list):
            data[key] = _arrow_column([x for part in parts for x in part])
        else:
            try:
                data[key] = _arrow_column(np.concatenate(parts))
            except ValueError:
                raise InputError(
                    f"measurement {task.measure.name!r}: {key!r} changes its shape between "
                    "noise levels"
                ) from None
    data["task"] = pa.array([task.id] * total)
    return pa.table(data)


def execute_task(
    task: Any,
    path: str,
    store_root: str,
    func: Callable[..., Mapping[str, Any]],
) -> dict[str, Any]:
    """Run ``task`` and write its rows to ``path`` (skipped if that file exists).

    Parameters
    ----------
    task : Task
        From :meth:`hiergrammar.sweep.config.SweepConfig.tasks`.
    path : str
        Its file (absolute, inside the store).
    store_root : str
        The store's folder (grammar files are read from its copies).
    func : callable
        The measurement function.

    Returns
    -------
    dict
        ``task`` (id), ``rows``, ``reused`` (the file existed), ``seconds`` and
        ``cpu_seconds`` spent here, ``pid``.
    """
    start, cpu = time.perf_counter(), time.process_time()
    target = Path(path)
    if target.exists():
        return {
            "task": task.id,
            "rows": None,
            "reused": True,
            "seconds": 0.0,
            "cpu_seconds": 0.0,
            "pid": os.getpid(),
        }
    import pyarrow.parquet as pq

    from hiergrammar.sweep.config import make_process

    grammar = task.grammar.build(task.rule_seed, store_root)
    process = make_process(task.process, int(grammar.cards[0]), task.schedule)
    measured = []
    for t, seed in zip(task.levels, task.data_seeds, strict=True):
        result = func(
            grammar,
            process,
            t,
            n_samples=task.measure.n_samples,
            seed=seed,
            **task.measure.options,
        )
        n, cols = _rows(result, f"measurement {task.measure.name!r}")
        measured.append((t, n, cols))
    table = result_table(task, measured)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_atomically(target, buffer.getvalue())
    return {
        "task": task.id,
        "rows": table.num_rows,
        "reused": False,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "pid": os.getpid(),
    }


def execute_or_refuse(
    task: Any,
    path: str,
    store_root: str,
    func: Callable[..., Mapping[str, Any]],
) -> dict[str, Any]:
    """:func:`execute_task`, returning an :class:`InputError` instead of raising it.

    An input out of its bounds fails the same way on every attempt, so a Dask worker reports
    it as a result (``{"task", "refused": "InputError: ...", "traceback"}``): it is not
    retried, and the worker logs no traceback for it. Any other exception propagates (and is
    retried).
    """
    try:
        return execute_task(task, path, store_root, func)
    except InputError as err:
        return {
            "task": task.id,
            "refused": f"InputError: {err}",
            "traceback": traceback.format_exc(),
        }
