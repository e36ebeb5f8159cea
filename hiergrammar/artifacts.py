"""Writing results: atomic files, strict JSON, figures, progress bars and output folders.

Every file the library writes goes through these helpers, so that a crash or a ``Ctrl-C``
never leaves a half-written JSON, NPZ or PNG behind: data go to a temporary sibling
(``.<name>.<8 hex digits>.tmp``) and are moved into place with :func:`os.replace`, which is
atomic on POSIX and Windows. Files get the mode the user's umask gives (usually ``0644``); a
temporary file is removed when the write fails. A ``SIGKILL`` cannot be caught, so its orphan is
removed when an output folder is next opened with :func:`run_folder`.

JSON is strict: no ``NaN`` or ``Infinity`` tokens. A non-finite number is written as ``null``
and its JSON pointer is listed, with the original value, under the top-level key
``"non_finite_values"`` (see :func:`dumps_json`).

An output folder (``hiergrammar reproduce --out DIR``) is one consistent set of files: see
:func:`run_folder` for its manifest ``run.json``.

Examples
--------
>>> print(dumps_json({"crossing": float("nan"), "x": [1.0, float("inf")]}, indent=None))
{"crossing": null, "x": [1.0, null], "non_finite_values": {"/crossing": "NaN", "/x/1": "Infinity"}}
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import secrets
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from hiergrammar.validation import InputError

__all__ = [
    "MANIFEST_NAME",
    "IN_PROGRESS_NAME",
    "NON_FINITE_KEY",
    "NO_PROGRESS_ENV",
    "atomic_open",
    "is_temporary_name",
    "remove_temporary_files",
    "to_jsonable",
    "dumps_json",
    "save_json",
    "save_npz",
    "save_text",
    "save_figure",
    "progress_enabled",
    "progress",
    "ReportSection",
    "check_output_dir",
    "check_output_file",
    "sha256_file",
    "read_json_object",
    "read_manifest",
    "verify_run_folder",
    "RunFolder",
    "run_folder",
]

T = TypeVar("T")

#: Name of an output folder's manifest, written last.
MANIFEST_NAME = "run.json"

#: Name of the marker that says a run is writing into (or was interrupted in) the folder.
IN_PROGRESS_NAME = "run.in-progress.json"

#: Top-level JSON key listing the values written as ``null`` because they were not finite.
NON_FINITE_KEY = "non_finite_values"

#: Environment variable that turns every progress bar off (``HIERGRAMMAR_NO_PROGRESS=1``).
NO_PROGRESS_ENV = "HIERGRAMMAR_NO_PROGRESS"

# The temporary names atomic_open gives (and the older tempfile.mkstemp ones: 8 characters).
_TMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


# -- atomic files ---------------------------------------------------------------------------------
def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create an empty temporary sibling of ``path``; mode 0o666 filtered by the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 2**-32 per attempt
            continue


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; move it onto ``path`` on success.

    Text modes write UTF-8. The file gets the permissions of a plain ``open`` (``0o666``
    filtered by the umask). On any exception the temporary file is removed, ``path`` keeps its
    old content and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; missing parent folders are created.
    mode : str
        ``"wb"`` (default) or ``"w"``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_open(folder / "a.txt", "w") as handle:
    ...     _ = handle.write("hello")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('hello', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _notify_written(path)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is a temporary file name of :func:`atomic_open`.

    >>> is_temporary_name(".report.md.3fa9c2d1.tmp"), is_temporary_name("report.md")
    (True, False)
    """
    return bool(_TMP_NAME.match(name))


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the orphaned temporary files of :func:`atomic_open` under ``folder``.

    Only names of the form ``.<name>.<8 characters>.tmp`` are touched. Returns what was removed.
    Do not call this while another process writes into ``folder``.
    """
    removed = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if is_temporary_name(name):
                target = Path(root) / name
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                    removed.append(target)
    return removed


# -- strict JSON ----------------------------------------------------------------------------------
def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _jsonable(obj: Any, pointer: str, non_finite: dict[str, str] | None) -> Any:
    if isinstance(obj, dict):
        return {
            str(k): _jsonable(v, f"{pointer}/{_pointer_token(str(k))}", non_finite)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{pointer}/{i}", non_finite) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), pointer, non_finite)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), pointer, non_finite)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        if non_finite is not None:
            non_finite[pointer] = (
                "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
            )
        return None
    return obj


def to_jsonable(obj: Any, non_finite: dict[str, str] | None = None) -> Any:
    """``obj`` with numpy arrays and scalars, tuples and paths turned into JSON types.

    NaN and infinities become ``None`` (strict JSON has no token for them); when
    ``non_finite`` is a dict it receives, for each, its JSON pointer and ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``.

    >>> notes = {}
    >>> to_jsonable({"a": np.array([1.5, np.nan])}, notes), notes
    ({'a': [1.5, None]}, {'/a/1': 'NaN'})
    """
    return _jsonable(obj, "", non_finite)


def dumps_json(data: Any, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (numpy types allowed, no ``NaN``/``Infinity`` tokens).

    Non-finite numbers are written as ``null``; if ``data`` is a dict, the key
    ``"non_finite_values"`` maps the JSON pointer of each to its original value (``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``), so a reader knows why it is null.

    >>> dumps_json({"a": 1}, indent=None)
    '{"a": 1}'
    """
    notes: dict[str, str] = {}
    out = to_jsonable(data, notes)
    if notes and isinstance(out, dict):
        out.setdefault(NON_FINITE_KEY, {}).update(notes)
    return json.dumps(out, indent=indent, allow_nan=False, ensure_ascii=False)


def save_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented strict JSON (see :func:`dumps_json`), atomically."""
    text = dumps_json(data) + "\n"
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Write named arrays to a compressed ``.npz``, atomically."""
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return Path(path)


def save_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8), atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG, atomically, and close it if pyplot manages it.

    The figure may come from :class:`matplotlib.figure.Figure` directly (no backend is chosen
    or switched) or from pyplot.
    """
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    return Path(path)


# -- progress bars --------------------------------------------------------------------------------
def progress_enabled() -> bool:
    """Whether progress bars are shown: not when ``HIERGRAMMAR_NO_PROGRESS`` is set (to anything
    but ``0`` or the empty string), not when ``CI`` is set, and only when stderr is a terminal
    (or in a Jupyter kernel, where tqdm draws a widget)."""
    if os.environ.get(NO_PROGRESS_ENV, "") not in ("", "0"):
        return False
    if os.environ.get("CI"):
        return False
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False
    return "ipykernel" in sys.modules


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, disable: bool | None = None
) -> Iterable[T]:
    """A tqdm progress bar on stderr.

    ``disable=None`` (default) shows it when :func:`progress_enabled`; ``True`` hides it;
    ``False`` shows it even when stderr is not a terminal. ``HIERGRAMMAR_NO_PROGRESS=1`` hides
    every bar.
    """
    if os.environ.get(NO_PROGRESS_ENV, "") not in ("", "0"):
        disable = True
    elif disable is None:
        disable = not progress_enabled()
    if disable:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


# -- report sections ------------------------------------------------------------------------------
@dataclass
class ReportSection:
    """One section of ``report.md``: what a reproduce step made.

    ``figures`` and ``data`` are paths relative to the output folder (or absolute; they are
    linked relative to it). ``text`` is Markdown: what was run and what it shows.
    """

    title: str
    text: str
    figures: list[Path] = field(default_factory=list)
    data: list[Path] = field(default_factory=list)

    def to_markdown(self, out_dir: Path) -> str:
        def rel(p: Path) -> str:
            p = Path(p)
            return p.relative_to(out_dir).as_posix() if p.is_absolute() else p.as_posix()

        lines = [f"## {self.title}", "", self.text.strip(), ""]
        for fig in self.figures:
            lines += [f"![{Path(fig).stem}]({rel(fig)})", ""]
        if self.data:
            lines += ["Data: " + ", ".join(f"[{Path(d).name}]({rel(d)})" for d in self.data), ""]
        return "\n".join(lines)


# -- output paths ---------------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_output_dir(name: str, path: str | os.PathLike) -> Path:
    """``path`` as a folder this process can write into (it may not exist yet).

    Raises an :class:`~hiergrammar.validation.InputError` naming ``name`` when ``path`` is an
    existing file, lies under a file, or its nearest existing folder is not writable. Call it
    before any work.

    >>> check_output_dir("out", "results")
    PosixPath('results')
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{name}={str(path)!r} is an existing file; give a folder")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise InputError(f"{name}={str(path)!r} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{name}={str(path)!r}: the folder {str(existing)!r} is not writable")
    return path


def check_output_file(name: str, path: str | os.PathLike) -> Path:
    """``path`` as a file this process can write (atomically: its folder must be writable).

    Raises an :class:`~hiergrammar.validation.InputError` naming ``name`` when ``path`` is an
    existing folder, lies under a file, or its nearest existing folder is not writable.

    >>> check_output_file("out", "derivation.tex")
    PosixPath('derivation.tex')
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{name}={str(path)!r} is a folder; give a file path")
    existing = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not existing.is_dir():
        raise InputError(f"{name}={str(path)!r} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{name}={str(path)!r}: the folder {str(existing)!r} is not writable")
    return path


# -- output folders with a manifest ---------------------------------------------------------------
_ACTIVE_LOCK = threading.Lock()
_ACTIVE_RUNS: list[RunFolder] = []


def _notify_written(path: Path) -> None:
    record_written([path])


def record_written(paths: Iterable[str | os.PathLike]) -> None:
    """Record files written without :func:`atomic_open` (by worker processes, or quietly) as
    outputs of the enclosing :func:`run_folder`, so its ``run.json`` lists them; files outside
    the folder, and calls outside any ``run_folder`` block, are ignored.
    """
    paths = [Path(p) for p in paths]
    with _ACTIVE_LOCK:
        runs = list(_ACTIVE_RUNS)
    for run in runs:
        run._record_many(paths)


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json_quietly(path: Path, data: dict) -> None:
    """Atomic strict-JSON write that is not recorded as one of the run's outputs."""
    text = dumps_json(data) + "\n"
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object (a dict) in the file ``path``, for files a user hands us.

    Raises
    ------
    InputError
        When the file is not valid UTF-8 JSON, or holds something other than an object.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "a.json"
    ...     _ = path.write_text('{"t": 3}')
    ...     read_json_object(path)
    {'t': 3}
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_json(path: Path) -> dict | None:
    """The dict in ``path``; None if it does not exist; ``{}`` if it is not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest ``run.json`` of an output folder, or None if it has none."""
    return _read_json(Path(folder) / MANIFEST_NAME)


def verify_run_folder(folder: str | os.PathLike) -> list[str]:
    """Problems with an output folder: no manifest, a run in progress, missing or changed files.

    Returns an empty list when ``run.json`` exists, no run is in progress, and every file it
    lists exists with the listed SHA-256.
    """
    folder = Path(folder)
    problems = []
    if (folder / IN_PROGRESS_NAME).exists():
        problems.append(f"{IN_PROGRESS_NAME} exists: a run is in progress or was interrupted")
    manifest = read_manifest(folder)
    if manifest is None:
        return [*problems, f"no {MANIFEST_NAME}"]
    files = manifest.get("files")
    if not isinstance(files, dict):
        return [*problems, f"{MANIFEST_NAME} has no 'files' mapping"]
    for rel, digest in files.items():
        target = folder / rel
        if not target.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(target) != digest:
            problems.append(f"{rel}: changed since the run (sha256 differs)")
    return problems


def write_manifest(
    folder: str | os.PathLike,
    *,
    command: str,
    parameters: dict[str, Any],
    seed: int | None,
    files: Iterable[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/run.json`` for outputs that were written without :func:`run_folder`.

    For writers that cannot hold a :func:`run_folder` open, e.g. several processes writing one
    folder (``hiergrammar vision sample``): the manifest has the same keys (``command``,
    ``parameters``, ``seed``, ``version``, ``files``: relative path -> SHA-256) plus ``extra``.
    ``files`` defaults to every file under ``folder`` but the manifest, the in-progress marker
    and hidden files.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("hello")
    >>> _ = write_manifest(folder, command="demo", parameters={}, seed=0)
    >>> read_manifest(folder)["files"]["a.txt"][:12]
    '2cf24dba5fb0'
    """
    from hiergrammar import __version__

    folder = Path(folder)
    if files is None:
        files = (
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file()
            and p.name not in (MANIFEST_NAME, IN_PROGRESS_NAME)
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
    data = {
        "command": command,
        "parameters": parameters,
        "seed": seed,
        "version": __version__,
        "files": {rel: sha256_file(folder / rel) for rel in sorted(files)},
        **(extra or {}),
    }
    _write_json_quietly(folder / MANIFEST_NAME, json.loads(dumps_json(data)))
    return folder / MANIFEST_NAME


def _describe_run(record: dict) -> str:
    params = json.dumps(record.get("parameters"), sort_keys=True)
    return f"`{record.get('command')}` with seed {record.get('seed')} and parameters {params}"


@dataclass
class RunFolder:
    """An output folder being written by one run; see :func:`run_folder`.

    ``path`` is the folder; ``files`` the relative paths written so far; ``extra`` holds
    additional manifest keys the run wants to record (e.g. per-step timings).
    """

    path: Path
    command: str
    parameters: dict[str, Any]
    seed: int | None
    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    started: str = ""

    def _identity(self) -> dict[str, Any]:
        return json.loads(
            dumps_json({"command": self.command, "parameters": self.parameters, "seed": self.seed})
        )

    def _marker(self) -> dict[str, Any]:
        from hiergrammar import __version__

        return {
            **self._identity(),
            "version": __version__,
            "started": self.started,
            "files": sorted(self.files),
        }

    def _record_many(self, paths: Iterable[Path]) -> None:
        added = False
        known = set(self.files)
        for path in paths:
            try:
                rel = Path(os.path.abspath(path)).relative_to(self.path)
            except ValueError:
                continue  # written outside this folder
            name = rel.as_posix()
            if name in (MANIFEST_NAME, IN_PROGRESS_NAME) or name in known:
                continue
            self.files.append(name)
            known.add(name)
            added = True
        if added:
            _write_json_quietly(self.path / IN_PROGRESS_NAME, self._marker())


def _matches(previous: dict, identity: dict) -> bool:
    return all(previous.get(key) == identity[key] for key in ("command", "parameters", "seed"))


def _clear(folder: Path, names: Iterable[str]) -> None:
    """Delete the listed files (relative paths inside ``folder`` only) and prune empty folders."""
    root = folder.resolve()
    parents = set()
    for name in names:
        if not isinstance(name, str) or not name or os.path.isabs(name):
            continue
        target = (root / name).resolve()
        if os.path.commonpath([root, target]) != str(root) or target == root:
            continue  # a manifest never makes us delete outside the folder
        if target.is_file() or target.is_symlink():
            target.unlink()
        parents.update(p for p in target.parents if p != root and root in p.parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only if empty


@contextlib.contextmanager
def run_folder(
    path: str | os.PathLike,
    *,
    command: str,
    parameters: dict[str, Any],
    seed: int | None,
    force: bool = False,
    name: str = "out",
) -> Iterator[RunFolder]:
    """Write one run's outputs into ``path`` as one consistent set, with a manifest.

    Inside the ``with`` block, every file written through this module (:func:`atomic_open`,
    :func:`save_json`, :func:`save_figure`, ...) under ``path`` is recorded. On success the
    manifest ``run.json`` is written last, with the keys ``command``, ``parameters``, ``seed``,
    ``version`` and ``files`` (each written file's path relative to ``path`` -> its SHA-256),
    plus :attr:`RunFolder.extra`.

    The sets never mix:

    * at the start, orphaned temporary files are removed and ``run.in-progress.json`` marks the
      folder as being written (it lists the files written so far); it is removed only after
      ``run.json`` is written, so a run interrupted after writing a file leaves the marker
      behind (one that fails before writing anything leaves the folder as it found it, less
      the outputs it replaced);
    * if the folder holds a run (``run.json``, or the marker of an interrupted run) of the same
      command, parameters and seed, its files are deleted first and the run replaces it;
    * if it holds a run of another command, other parameters or another seed, an
      :class:`~hiergrammar.validation.InputError` is raised before anything is written, unless
      ``force``, which deletes that run's files first;
    * if it holds other files but no manifest, an ``InputError`` is raised unless ``force``,
      which writes beside them (files no manifest lists are never deleted).

    Parameters
    ----------
    path : str or os.PathLike
        The output folder (created if missing).
    command : str
        The command that writes it, e.g. ``"hiergrammar reproduce"``.
    parameters : dict
        What the outputs depend on besides the seed (JSON-able).
    seed : int or None
        The run's seed.
    force : bool
        Replace a run of other parameters, or write beside unknown files.
    name : str
        The argument name used in error messages (``"out"`` for ``--out``).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results"
    >>> with run_folder(folder, command="demo", parameters={"n": 1}, seed=0) as run:
    ...     _ = save_text(run.path / "a.txt", "hello")
    >>> sorted(read_manifest(folder)["files"])
    ['a.txt']
    >>> with run_folder(folder, command="demo", parameters={"n": 2}, seed=0):
    ...     pass  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: out=... holds the outputs of `demo` with seed 0 and ...
    """
    folder = Path(os.path.abspath(check_output_dir(name, path)))
    run = RunFolder(folder, command, dict(parameters), seed)
    identity = run._identity()
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(folder)
    manifest = _read_json(folder / MANIFEST_NAME)
    marker = _read_json(folder / IN_PROGRESS_NAME)
    where = str(path)
    old_files: set[str] = set()
    for record, file_name in ((marker, IN_PROGRESS_NAME), (manifest, MANIFEST_NAME)):
        if record is None:
            continue
        listed = record.get("files")
        old_files.update(
            f for f in (listed if isinstance(listed, (dict, list)) else []) if isinstance(f, str)
        )
        if force:
            continue
        if not record:
            raise InputError(
                f"{name}={where!r} holds a {file_name} that is not a hiergrammar manifest; choose "
                "another folder, or pass --force (force=True) to replace it"
            )
        if not _matches(record, identity):
            what = (
                "the outputs of"
                if file_name == MANIFEST_NAME
                else "the partial outputs of an interrupted run of"
            )
            raise InputError(
                f"{name}={where!r} holds {what} {_describe_run(record)}; this run is "
                f"{_describe_run(identity)}. Choose another folder, or pass --force "
                "(force=True) to delete those outputs first"
            )
    if manifest is None and marker is None and not force:
        others = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        if others:
            shown = ", ".join(others[:5]) + (
                f" and {len(others) - 5} more" if len(others) > 5 else ""
            )
            raise InputError(
                f"{name}={where!r} holds files that no {MANIFEST_NAME} describes ({shown}); "
                "choose an empty or new folder, or pass --force (force=True) to write beside them"
            )
    # Mark the folder first: from now on it is "being written", whatever happens next.
    run.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    pending = RunFolder(folder, command, dict(parameters), seed, files=sorted(old_files))
    pending.started = run.started
    _write_json_quietly(folder / IN_PROGRESS_NAME, pending._marker())
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST_NAME).unlink()
    _clear(folder, old_files)
    _write_json_quietly(folder / IN_PROGRESS_NAME, run._marker())

    with _ACTIVE_LOCK:
        _ACTIVE_RUNS.append(run)
    try:
        yield run
    except BaseException:
        if not run.files:  # nothing written: nothing to mark as partial
            with contextlib.suppress(FileNotFoundError):
                (folder / IN_PROGRESS_NAME).unlink()
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE_RUNS.remove(run)
    # Reached only on success: the manifest last, then the marker goes.
    from hiergrammar import __version__

    hashes = {
        rel: sha256_file(folder / rel) for rel in sorted(run.files) if (folder / rel).is_file()
    }
    manifest_data = {
        **identity,
        "version": __version__,
        "files": hashes,
        **run.extra,
        "started": run.started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_json_quietly(folder / MANIFEST_NAME, manifest_data)
    (folder / IN_PROGRESS_NAME).unlink()
