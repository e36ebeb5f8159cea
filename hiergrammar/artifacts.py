"""Writing results: atomic files, figures, data, and report sections.

Every file the library writes goes through these helpers, so a crash or a ``Ctrl-C`` never
leaves a half-written JSON, NPZ or PNG behind: data go to a temporary file in the same folder
and are moved into place with :func:`os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

T = TypeVar("T")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; move it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy arrays and scalars, tuples and paths turned into JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` (numpy arrays and scalars allowed) as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(to_jsonable(data), handle, indent=2, sort_keys=False)
        handle.write("\n")
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
    """Save a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, disable: bool | None = None
) -> Iterable[T]:
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal and CI is set)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = bool(os.environ.get("CI")) or os.environ.get("HIERGRAMMAR_NO_PROGRESS") == "1"
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False)


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
            return str(p.relative_to(out_dir)) if p.is_absolute() else str(p)

        lines = [f"## {self.title}", "", self.text.strip(), ""]
        for fig in self.figures:
            lines += [f"![{Path(fig).stem}]({rel(fig)})", ""]
        if self.data:
            lines += ["Data: " + ", ".join(f"[{Path(d).name}]({rel(d)})" for d in self.data), ""]
        return "\n".join(lines)
