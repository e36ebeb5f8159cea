"""Image sets for the activation probe: a folder of images or an ``.npz`` array, one item per
image, paired with a start set.

The formats: the ``t{t:03d}`` folders written by ``hiergrammar vision sample`` (PNG per image
under ``<class>/``, ``metadata.json`` with ``t``, ``num_steps`` and per image its file and
label; ``t000`` holds the start images as the sampler saw them), any other folder of images
(PNG/JPEG, read recursively in sorted path order), or an ``.npz`` file with an ``images`` array
``(n, H, W, 3)``/``(n, 3, H, W)``, uint8 or float in ``[-1, 1]`` (read without unpickling).
Generated images pair with start images by file name when both sets have the same names, else
by order. Every image of a folder is checked when the set is opened
(:func:`hiergrammar.vision.data.check_image`): a file that is not an image or is truncated is
refused with its path.

No torch at module level (items are converted to tensors on access).

Examples
--------
>>> import tempfile
>>> from PIL import Image
>>> folder = Path(tempfile.mkdtemp())
>>> Image.new("RGB", (4, 4), (255, 0, 0)).save(folder / "a.png")
>>> images = ImageSet(folder, progress=False)
>>> len(images), tuple(images[0].shape), images.keys
(1, (3, 4, 4), ['a.png'])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.artifacts import read_json_object
from hiergrammar.validation import InputError, check_int

__all__ = ["IMAGE_SUFFIXES", "METADATA_NAMES", "ImageSet", "float_pm1"]

#: File suffixes read as images from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Names of a set's metadata file, in order of preference.
METADATA_NAMES = ("metadata.json", "meta.json")


class ImageSet:
    """Lazy, indexable set of images: ``set[i]`` is a ``(3, H, W)`` uint8 (or float) tensor.

    ``path`` is a folder or an ``.npz`` file. A folder written by ``hiergrammar vision sample``
    (``t{t:03d}/metadata.json`` listing ``images[k]["file"]`` by global index, PNGs under
    ``<class>/``) is read in the metadata's order; any other folder is read recursively in
    sorted relative-path order. ``keys`` are the relative file paths (or indices for an NPZ),
    used to pair a generated set with the start set (:meth:`pair_with`).

    Parameters
    ----------
    path : str or os.PathLike
        A folder of images or an ``.npz`` file with an ``images`` array.
    verify : bool
        Open every image of a folder first and refuse the set if one cannot be read.
    progress : bool
        Show a progress bar while verifying.

    Raises
    ------
    InputError
        For an empty folder, an unreadable image (named with its path), a broken metadata file
        or ``.npz``, or metadata naming a file outside the folder.
    MissingFileError
        If ``path`` or a file listed in the metadata does not exist.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.savez(folder / "x.npz", images=np.zeros((2, 4, 4, 3), np.uint8), t=np.array(50))
    >>> images = ImageSet(folder / "x.npz")
    >>> len(images), tuple(images[1].shape), images.t
    (2, (3, 4, 4), 50.0)
    """

    def __init__(self, path: str | os.PathLike, *, verify: bool = True, progress: bool = True):
        from hiergrammar.vision.checkpoints import MissingFileError

        self.path = Path(path)
        self.metadata: dict[str, Any] = {}
        self._files: list[Path] | None = None
        self._array: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        if self.path.is_dir():
            for name in METADATA_NAMES:
                if (self.path / name).is_file():
                    self.metadata = read_json_object(self.path / name)
                    break
            listed = self.metadata.get("images")
            if (
                isinstance(listed, list)
                and listed
                and all(isinstance(r, dict) and "file" in r for r in listed)
            ):
                self._files = [self._listed_file(r["file"]) for r in listed]
                if all("label" in r for r in listed):
                    self.labels = np.array(
                        [check_int("label", r["label"], low=0) for r in listed], dtype=np.int64
                    )
                absent = [f for f in self._files if not f.is_file()]
                if absent:
                    raise MissingFileError(
                        f"{len(absent)} images listed in {self.path}'s "
                        f"metadata are missing, e.g. {absent[0]}"
                    )
            else:
                self._files = sorted(
                    p
                    for p in self.path.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                )
            if not self._files:
                raise InputError(f"image folder {self.path} holds no {'/'.join(IMAGE_SUFFIXES)}")
            if verify:
                from hiergrammar.vision.data import find_unreadable_images, refuse_unreadable

                bad = find_unreadable_images(
                    self._files, desc=f"checking {self.path.name}", progress=progress
                )
                refuse_unreadable(bad, len(self._files), f"the image set {self.path}")
            self.keys = [str(f.relative_to(self.path)) for f in self._files]
        elif self.path.is_file() and self.path.suffix == ".npz":
            self._read_npz()
            self.keys = [str(i) for i in range(len(self._array))]
        elif not self.path.exists():
            raise MissingFileError(f"image set {self.path} does not exist")
        else:
            raise InputError(f"image set {self.path} must be a folder of images or an .npz file")
        self._order: list[int] | None = None

    def _listed_file(self, name: Any) -> Path:
        """A file named by the metadata, which must lie inside the set's folder."""
        if not isinstance(name, str) or not name:
            raise InputError(f"{self.path}'s metadata lists a file {name!r} that is not a path")
        file = self.path / name
        if not file.resolve().is_relative_to(self.path.resolve()):
            raise InputError(f"{self.path}'s metadata lists {name!r}, outside the folder")
        return file

    def _read_npz(self) -> None:
        import zipfile

        try:
            with np.load(self.path, allow_pickle=False) as npz:
                if "images" not in npz.files:
                    raise InputError(f"{self.path} has no 'images' array (keys: {npz.files})")
                self._array = _channels_first(npz["images"], str(self.path))
                self.metadata = {
                    k: npz[k].tolist() for k in npz.files if k != "images" and npz[k].size < 1000
                }
                if "label" in npz.files and len(npz["label"]) == len(self._array):
                    self.labels = np.asarray(npz["label"], dtype=np.int64)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, InputError):
                raise
            # e.g. object arrays, which would need unpickling, or a damaged archive
            raise InputError(f"{self.path} is not a readable .npz of arrays ({err})") from None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> Any:
        import torch

        if self._order is not None:
            i = self._order[i]
        if self._array is not None:
            return torch.from_numpy(np.ascontiguousarray(self._array[i]))
        from hiergrammar.vision.data import read_rgb  # names the file if it cannot be read

        array = read_rgb(self._files[i])
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def pair_with(self, start: ImageSet) -> None:
        """Reorder this set to pair item by item with ``start``.

        Same file names (the sampler's layout): paired by name. Otherwise the sets must have
        equal sizes and are paired in order.
        """
        if self.keys == start.keys:
            return
        if sorted(self.keys) == sorted(start.keys):
            position = {key: k for k, key in enumerate(self.keys)}
            self._order = [position[key] for key in start.keys]
            self.keys = list(start.keys)
            return
        if len(self) != len(start):
            raise InputError(
                f"{self.path} has {len(self)} images but {start.path} has "
                f"{len(start)}; each generated image must pair with a start image"
            )

    @property
    def t(self) -> float | None:
        """The inversion time in the set's metadata (``t``), or None."""
        value = self.metadata.get("t")
        if isinstance(value, (list, tuple)):  # an NPZ holding one t per image
            value = value[0] if len(set(value)) == 1 else None
        return None if value is None else float(value)

    def subset(self, limit: int | None) -> ImageSet | _Subset:
        """The first ``limit`` images (all of them for None)."""
        return self if limit is None or limit >= len(self) else _Subset(self, limit)


class _Subset:
    def __init__(self, base: ImageSet, n: int):
        self.base, self.n, self.metadata = base, n, base.metadata

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.base[i]


def _channels_first(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = np.moveaxis(images, -1, 1)
    if images.ndim < 2:
        raise InputError(f"{where}: images must have shape (n, ...), got {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"{where}: images must be uint8 or float in [-1, 1], got {images.dtype}")
    return images


def float_pm1(images: Any) -> Any:
    """Images as floats in ``[-1, 1]``: the input of a module folder's network.

    Parameters
    ----------
    images : torch.Tensor
        ``(n, 3, H, W)`` uint8 images (mapped to ``[-1, 1]``) or float images (returned as
        they are).

    Returns
    -------
    torch.Tensor
        Float images, same shape.

    Examples
    --------
    >>> import torch
    >>> float_pm1(torch.tensor([[0, 255]], dtype=torch.uint8)).tolist()
    [[-1.0, 1.0]]
    """
    import torch
    from hiergrammar.vision.data import from_uint8

    return from_uint8(images) if images.dtype == torch.uint8 else images
