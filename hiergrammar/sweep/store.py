"""The sweep store: one folder, one Parquet file per task, its own manifest, and :func:`load`.

Layout of a store ``DIR``::

    DIR/sweep.json        the manifest (format, the checked config, the grid's digest and size,
                          layout, every run's counts and seconds, failed tasks with their error)
    DIR/grid.parquet      one row per task, in grid order: task id, its file, its parameters
    DIR/tasks/NAME.parquet            one file per finished task (grids above 10,000 tasks
    DIR/tasks/ab/NAME.parquet         spread them over 256 sub-folders by the id's first byte)
    DIR/grammars/SHA.npz  copies of the grammar files the config names (workers read these)

A file ``NAME`` is ``<readable prefix>-<20 hex digits of the task's SHA-256>.parquet``: present
means finished. Only the process that drives the sweep writes ``sweep.json`` and
``grid.parquet``; workers write task files and nothing else, each atomically. Run one driver
per store at a time.

Examples
--------
>>> import tempfile
>>> from hiergrammar.sweep import run_sweep
>>> folder = Path(tempfile.mkdtemp()) / "store"
>>> config = {"rule_draws": 2, "grammar": {"v": 8, "m": 2, "s": 2, "L": 2},
...           "noise": {"process": "eps", "levels": [0.0, 0.5]},
...           "measure": {"name": "beliefs", "n_samples": 20}}
>>> result = run_sweep(config, folder, scheduler="serial", progress=False)
>>> frame = load(folder)
>>> frame.shape[0], frame.columns[:8].tolist()     # 2 draws x 2 levels x 3 tree levels
(12, ['v', 'n_classes', 'm', 's', 'L', 'process', 'rule_draw', 'data_draw'])
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hiergrammar.artifacts import is_temporary_name, remove_temporary_files
from hiergrammar.sweep.config import FORMAT_NAME, FORMAT_VERSION, SweepConfig, Task, canonical_json
from hiergrammar.sweep.tasks import write_atomically
from hiergrammar.validation import InputError

__all__ = [
    "GRID_NAME",
    "MANIFEST_NAME",
    "Store",
    "load",
    "read_store_manifest",
]

#: The store's manifest.
MANIFEST_NAME = "sweep.json"

#: The grid: one row per task.
GRID_NAME = "grid.parquet"

#: Folder of the task files.
TASKS_DIR = "tasks"

#: Grids with more tasks than this spread their files over 256 sub-folders.
SHARD_ABOVE = 10_000


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_store_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The store manifest ``sweep.json`` of ``folder``; None if there is none.

    Raises
    ------
    InputError
        If the file exists but is not a sweep store's manifest.

    Examples
    --------
    >>> import tempfile
    >>> read_store_manifest(tempfile.mkdtemp()) is None
    True
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise InputError(f"{path} is not a readable sweep manifest: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise InputError(f"{path} is not a hiergrammar sweep manifest")
    if data.get("version", 0) > FORMAT_VERSION:
        raise InputError(
            f"{path} has store version {data.get('version')}; this hiergrammar reads up to "
            f"{FORMAT_VERSION}"
        )
    return data


class Store:
    """An opened store: its folder, manifest and layout. Use :meth:`open`."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = root
        self.manifest = manifest

    # -- layout ---------------------------------------------------------------------------------
    @property
    def shard_chars(self) -> int:
        return int(self.manifest["layout"]["shard_chars"])

    def relative_path(self, task_id: str, name: str) -> str:
        """A task file's path relative to the store."""
        if self.shard_chars:
            return f"{TASKS_DIR}/{task_id[: self.shard_chars]}/{name}"
        return f"{TASKS_DIR}/{name}"

    def task_path(self, task: Task) -> Path:
        return self.root / self.relative_path(task.id, task.name)

    def present(self, *, clean: bool = False) -> set[str]:
        """Relative paths of the task files on disk: one listing of the task folders.

        ``clean=True`` also removes the temporary files a killed writer left there (call it
        only when no task of this store is running).
        """
        found = set()
        base = self.root / TASKS_DIR
        if not base.is_dir():
            return found
        folders = [base]
        if self.shard_chars:
            folders = [entry for entry in base.iterdir() if entry.is_dir()]
        for folder in folders:
            prefix = folder.relative_to(self.root).as_posix()
            with os.scandir(folder) as entries:
                for entry in entries:
                    if is_temporary_name(entry.name):
                        if clean:
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(entry.path)
                    elif entry.name.endswith(".parquet"):
                        found.add(f"{prefix}/{entry.name}")
        return found

    def files(self, present: set[str], grid_files: list[str]) -> list[Path]:
        """Every file of the store that belongs to its grid (for a run's manifest), from the
        task files ``present`` on disk and the grid's ``grid_files``."""
        out = [self.root / MANIFEST_NAME, self.root / GRID_NAME]
        out += sorted((self.root / "grammars").glob("*.npz"))
        out += [self.root / rel for rel in grid_files if rel in present]
        return [p for p in out if p.is_file()]

    def grid_files(self) -> list[str]:
        """The task files of the grid, in grid order (relative paths)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.root / GRID_NAME, columns=["file"]).column("file").to_pylist()

    def write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2, sort_keys=False, allow_nan=False) + "\n"
        write_atomically(self.root / MANIFEST_NAME, text.encode("utf-8"))

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        config: SweepConfig,
        tasks: list[Task],
        *,
        resume: bool = False,
        replace: bool = False,
        name: str = "out",
    ) -> Store:
        """Open the store of ``config`` in ``root``, creating it if needed.

        A folder that does not exist or is empty becomes a new store. A store of the same grid
        is continued. A store of another grid is refused (``replace=True`` deletes its files
        first); so is a folder holding other files.

        Raises
        ------
        InputError
            As above, or ``resume=True`` and ``root`` holds no store.
        """
        from hiergrammar.artifacts import check_output_dir

        root = Path(os.path.abspath(check_output_dir(name, root)))
        digest = config.digest(tasks)
        manifest = read_store_manifest(root) if root.is_dir() else None
        others = _foreign_files(root, is_store=manifest is not None)
        if others:  # checked before anything is deleted
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise InputError(
                f"{name}={str(root)!r} holds files that are not a sweep store's ({shown}); "
                "choose an empty or new folder"
            )
        if manifest is not None and manifest.get("grid_sha256") != digest:
            if not replace:
                raise InputError(
                    f"{name}={str(root)!r} holds the sweep of another grid "
                    f"({manifest.get('n_tasks')} tasks, {MANIFEST_NAME} grid_sha256 "
                    f"{str(manifest.get('grid_sha256'))[:12]}...); choose another folder"
                )
            cls(root, manifest).delete()
            manifest = None
        if manifest is None:
            if resume:
                raise InputError(f"{name}={str(root)!r} holds no sweep to resume")
            return cls._create(root, config, tasks, digest)
        store = cls(root, manifest)
        _remove_top_temporaries(root)
        return store

    @classmethod
    def _create(cls, root: Path, config: SweepConfig, tasks: list[Task], digest: str) -> Store:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from hiergrammar import __version__

        root.mkdir(parents=True, exist_ok=True)
        _remove_top_temporaries(root)
        shard = 2 if len(tasks) > SHARD_ABOVE else 0
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "hiergrammar_version": __version__,
            "created": _now(),
            "grid_sha256": digest,
            "n_tasks": len(tasks),
            "layout": {"tasks": TASKS_DIR, "shard_chars": shard, "grid": GRID_NAME},
            "config": config.to_dict(),
            "status": "new",
            "done": 0,
            "failed": {},
            "runs": [],
        }
        store = cls(root, manifest)
        for grammar in config.grammars:
            if grammar.file_sha256 is not None:
                target = root / grammar.store_file()
                if not target.exists():
                    write_atomically(target, Path(grammar.source).read_bytes())
        grid = pa.table(
            {
                "task": [t.id for t in tasks],
                "file": [store.relative_path(t.id, t.name) for t in tasks],
                "params": [canonical_json(t.canonical()) for t in tasks],
            }
        )
        buffer = io.BytesIO()
        pq.write_table(grid, buffer, compression="zstd")
        write_atomically(root / GRID_NAME, buffer.getvalue())
        store.write_manifest()
        return store

    def delete(self) -> None:
        """Delete this store's own files (manifest, grid, task files, grammar copies) and the
        folders they leave empty; nothing else."""
        root = self.root
        doomed: list[Path] = [root / MANIFEST_NAME, root / GRID_NAME]
        doomed += list((root / "grammars").glob("*.npz"))
        doomed += [p for p in (root / TASKS_DIR).rglob("*.parquet")]
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        remove_temporary_files(root)
        for folder in sorted(
            (p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _remove_top_temporaries(root: Path) -> None:
    """Remove the temporary files a killed driver left beside the manifest and the grid
    (those of the task folders go in :meth:`Store.present`)."""
    for folder in (root, root / "grammars"):
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and is_temporary_name(path.name):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()


def _foreign_files(root: Path, is_store: bool) -> list[str]:
    """What in ``root`` a store does not own: every file if it holds no store; else the
    entries beside ``sweep.json``, ``grid.parquet``, ``tasks/`` and ``grammars/`` (the task
    folders are not walked: a store may hold a million files)."""
    if not root.is_dir():
        return []
    if not is_store:
        return [
            path.relative_to(root).as_posix()
            for path in sorted(root.rglob("*"))
            if path.is_file() and not is_temporary_name(path.name)
        ]
    owned = {MANIFEST_NAME, GRID_NAME, TASKS_DIR, "grammars"}
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.name not in owned and not is_temporary_name(entry.name)
    )


def _read_tables(paths: Iterable[Path]):
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    paths = list(paths)
    if len(paths) < 8:
        return [pq.read_table(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(pq.read_table, paths))


def load(folder: str | os.PathLike, *, allow_missing: bool = False):
    """The results of a sweep store as one pandas DataFrame, in long form.

    One row per task, noise level and (where the measurement has one) tree level, in grid
    order. Columns: one per grid parameter (the grammar's parameters, or ``file``;
    ``process``; ``schedule`` when the config sets one; ``rule_draw``, ``data_draw``,
    ``noise_level``), ``level`` where the measurement has it, one per measured quantity
    (array-valued quantities such as ``C(r)`` are list columns), and ``task`` (the task's id).

    Parameters
    ----------
    folder : str or os.PathLike
        A store written by :func:`hiergrammar.sweep.run_sweep` or ``hiergrammar sweep``.
    allow_missing : bool
        Return the rows of the finished tasks even when some are missing or failed.

    Returns
    -------
    pandas.DataFrame
        ``frame.attrs`` holds ``n_tasks``, ``missing`` (ids of tasks without a file) and
        ``failed`` (id -> error text, from the manifest).

    Raises
    ------
    InputError
        If ``folder`` is not a store, or tasks are missing (unless ``allow_missing``).

    Examples
    --------
    See the module's example.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = read_store_manifest(folder)
    if manifest is None:
        raise InputError(f"folder={str(folder)!r} holds no sweep store ({MANIFEST_NAME})")
    grid = pq.read_table(folder / GRID_NAME, columns=["task", "file"]).to_pydict()
    store = Store(folder, manifest)
    present = store.present()
    ids, files = grid["task"], grid["file"]
    missing = [tid for tid, rel in zip(ids, files, strict=True) if rel not in present]
    failed = {tid: info.get("error", "") for tid, info in manifest.get("failed", {}).items()}
    if missing and not allow_missing:
        shown = "; ".join(f"{tid}: {failed[tid]}" for tid in missing if tid in failed)[:500]
        refused = all(failed.get(tid, "").startswith("InputError:") for tid in missing)
        advice = (
            "their inputs are out of bounds, so running the sweep again fails the same way: "
            "change the config"
            if refused
            else "run the sweep again to compute them"
        )
        raise InputError(
            f"the store {str(folder)!r} lacks {len(missing)} of {len(ids)} task results"
            + (f" ({len([t for t in missing if t in failed])} failed: {shown})" if shown else "")
            + f"; {advice}, or pass allow_missing=True"
        )
    tables = _read_tables(folder / rel for rel in files if rel in present)
    if tables:
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
            frame = table.to_pandas()
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. int and text in one grid column
            import pandas as pd

            frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    else:
        import pandas as pd

        frame = pd.DataFrame()
    frame.attrs.update({"n_tasks": len(ids), "missing": missing, "failed": failed})
    return frame
