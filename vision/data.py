"""Start images from an ImageNet-style folder (``root/<class>/<image>``), N per class.

The order is deterministic: classes sorted by folder name, files sorted by name within a class
(torchvision's ``ImageFolder`` order), and the first ``per_class`` files of each class are kept.
Each image is converted to RGB, resized so that its shorter side is ``size`` (bicubic,
antialiased), centre-cropped to ``size x size`` and mapped to ``[-1, 1]``, i.e. ``(n, 3, size,
size)`` batches ready for :func:`hiergrammar.vision.forward_backward`.

Files are listed by extension (torchvision's ``ImageFolder``: ``.png``, ``.jpg``, ``.jpeg``, ...;
others are ignored). Every selected file is checked when the dataset is built
(:func:`check_image`): a file that is not an image or is truncated is refused with
its path, before any result is written, rather than failing halfway through a run. Nothing is
skipped silently, since skipping would shift the image indices and with them the seeds.

Examples
--------
>>> import tempfile
>>> from PIL import Image
>>> root = Path(tempfile.mkdtemp())
>>> (root / "cat").mkdir()
>>> Image.new("RGB", (12, 10), (255, 0, 0)).save(root / "cat" / "a.png")
>>> images, records = load_image_folder(root, size=8)
>>> tuple(images.shape), records[0].class_name, images.max().item()
((1, 3, 8, 8), 'cat', 1.0)
>>> _ = (root / "cat" / "b.png").write_text("not an image")
>>> try:
...     load_image_folder(root, size=8)
... except InputError as err:
...     print(str(err).replace(str(root), "ROOT"))  # doctest: +NORMALIZE_WHITESPACE
1 of 2 images under the image folder ROOT cannot be read: ROOT/cat/b.png (not an image: no image
format recognises its content). Remove or replace them; nothing was written
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hiergrammar.validation import InputError, check_int

__all__ = [
    "ImageRecord",
    "check_image",
    "find_unreadable_images",
    "image_folder_dataset",
    "read_rgb",
    "refuse_unreadable",
    "iter_batches",
    "load_image_folder",
    "save_png",
    "to_uint8",
    "from_uint8",
]


@dataclass(frozen=True)
class ImageRecord:
    """One selected image: global ``index``, ``path``, class folder name and label."""

    index: int
    path: str
    class_name: str
    label: int

    @property
    def stem(self) -> str:
        return Path(self.path).stem


def _transform(size: int):
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(
                size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True
            ),
            transforms.CenterCrop(size),
            transforms.ToTensor(),  # [0, 1], (3, size, size)
            transforms.Normalize([0.5] * 3, [0.5] * 3),  # [-1, 1]
        ]
    )


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an RGB ``(H, W, 3)`` uint8 array.

    Raises :class:`~hiergrammar.InputError` naming the file when it is not an image, is
    truncated or otherwise cannot be decoded.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = tempfile.mkdtemp() + "/grey.png"
    >>> Image.new("L", (3, 2), 51).save(path)
    >>> read_rgb(path).shape, int(read_rgb(path)[0, 0, 2])
    ((2, 3, 3), 51)
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        from hiergrammar.vision.checkpoints import MissingFileError

        raise MissingFileError(f"image {path} does not exist") from None
    except Exception as err:  # any decoder failure means the file is not a readable image
        raise InputError(f"image {path} cannot be read: {_reason(err)}") from None


def _reason(err: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        return "not an image: no image format recognises its content"
    text = str(err).split("\n")[0]
    if "truncated" in text.lower() or isinstance(err, (EOFError, SyntaxError)):
        return f"the file is truncated or damaged ({type(err).__name__}: {text})"
    return f"{type(err).__name__}: {text}"


def check_image(path: str | os.PathLike) -> None:
    """Raise :class:`~hiergrammar.InputError` naming ``path`` unless it is a readable image.

    PNG files are checked chunk by chunk (structure and checksums, which catches truncation and
    damage at a tenth of the cost of decoding); other formats are decoded.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "x.png"
    >>> Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    >>> check_image(path)
    >>> _ = path.write_bytes(path.read_bytes()[:-20])
    >>> check_image(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: image .../x.png cannot be read: the file is truncated ...
    """
    from PIL import Image

    path = Path(path)
    with open(path, "rb") as handle:
        is_png = handle.read(8) == b"\x89PNG\r\n\x1a\n"
    if not is_png:
        read_rgb(path)
        return
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as err:  # any decoder failure means the file is not a readable image
        raise InputError(f"image {path} cannot be read: {_reason(err)}") from None


def find_unreadable_images(
    paths: list[str] | list[Path], desc: str = "checking images", progress: bool = True
) -> list[tuple[str, str]]:
    """Check every file of ``paths`` (:func:`check_image`); return ``(path, reason)`` for those
    that fail.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.png"
    >>> _ = path.write_text("hello")
    >>> [reason for _, reason in find_unreadable_images([path], progress=False)]
    ['not an image: no image format recognises its content']
    """
    from hiergrammar.artifacts import progress as progress_bar

    bad = []
    for path in progress_bar(
        paths, desc=desc, total=len(paths), disable=None if progress else True
    ):
        try:
            check_image(path)
        except InputError as err:
            bad.append((str(path), str(err).split(": ", 1)[-1]))
    return bad


def refuse_unreadable(bad: list[tuple[str, str]], n_total: int, where: str) -> None:
    """Raise one :class:`~hiergrammar.InputError` listing unreadable images (if any).

    Examples
    --------
    >>> refuse_unreadable([], 3, "folder a")
    >>> refuse_unreadable([("a/x.png", "truncated")], 3, "folder a")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: 1 of 3 images under folder a cannot be read: a/x.png ...
    """
    if not bad:
        return
    shown = "; ".join(f"{path} ({reason})" for path, reason in bad[:5])
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise InputError(
        f"{len(bad)} of {n_total} images under {where} cannot be read: {shown}{more}. "
        "Remove or replace them; nothing was written"
    )


class _Selected(torch.utils.data.Dataset):
    """``ImageFolder`` restricted to the selected records; items are ``(image, index)``."""

    def __init__(self, folder, records: list[ImageRecord], positions: list[int]):
        self.folder = folder
        self.records = records
        self.positions = positions

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        from PIL import Image

        # decoded here (not by ImageFolder's loader) so that a failure names the file
        array = read_rgb(self.records[i].path)
        image = self.folder.transform(Image.fromarray(array))
        return image.clamp(-1, 1), self.records[i].index


def _check_per_class(per_class: int | None) -> None:
    """Raise :class:`InputError` unless ``per_class`` is ``None`` (every image) or an int >= 1."""
    if per_class is not None:
        check_int("per_class", per_class, low=1)


def image_folder_dataset(
    root: str | os.PathLike,
    size: int,
    per_class: int | None = None,
    *,
    verify: bool = True,
    progress: bool = True,
):
    """A torch ``Dataset`` of the selected images; ``.records`` lists them (see module doc).

    ``dataset[i]`` is ``(image (3, size, size) in [-1, 1], global index i)``. With ``verify``
    (default) every selected file is checked first (:func:`check_image`), and unreadable files
    (not images, truncated) are refused in one :class:`~hiergrammar.InputError` listing them.

    Examples
    --------
    See the module docstring.
    """
    from hiergrammar.vision.checkpoints import MissingFileError
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.exists():
        raise MissingFileError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise InputError(f"image folder {root} is not a folder")
    size = check_int("size", size, low=1)
    _check_per_class(per_class)
    try:
        folder = ImageFolder(str(root), transform=_transform(size), loader=_no_loader)
    except FileNotFoundError as err:  # no class folder, or a class folder without images
        raise InputError(f"image folder {root}: {err}") from None
    idx_to_class = {v: k for k, v in folder.class_to_idx.items()}
    taken: dict[int, int] = {}
    records, positions = [], []
    # ImageFolder.samples is sorted by class, then by path within the class
    for pos, (path, label) in enumerate(folder.samples):
        if per_class is not None and taken.get(label, 0) >= per_class:
            continue
        taken[label] = taken.get(label, 0) + 1
        records.append(ImageRecord(len(records), path, idx_to_class[label], label))
        positions.append(pos)
    if verify:
        bad = find_unreadable_images([r.path for r in records], progress=progress)
        refuse_unreadable(bad, len(records), f"the image folder {root}")
    return _Selected(folder, records, positions)


def _no_loader(path: str):  # pragma: no cover - images are decoded by _Selected
    raise AssertionError("images are read by read_rgb")


def load_image_folder(
    root: str | os.PathLike, size: int, per_class: int | None = None
) -> tuple[torch.Tensor, list[ImageRecord]]:
    """All selected images at once: ``(n, 3, size, size)`` in ``[-1, 1]`` and their records.

    For large selections iterate with :func:`iter_batches` instead. See the module docstring
    for an example.
    """
    ds = image_folder_dataset(root, size, per_class)
    if len(ds) == 0:
        raise InputError(f"no images found under {root}")
    return torch.stack([ds[i][0] for i in range(len(ds))]), list(ds.records)


def iter_batches(
    dataset, indices: list[int], batch_size: int
) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Yield ``(images (b, 3, size, size), indices)`` for the dataset positions ``indices``.

    Examples
    --------
    >>> data = [(torch.zeros(3, 2, 2), k) for k in range(5)]
    >>> [(tuple(x.shape), idx) for x, idx in iter_batches(data, [0, 1, 4], 2)]
    [((2, 3, 2, 2), [0, 1]), ((1, 3, 2, 2), [4])]
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        yield torch.stack([dataset[i][0] for i in chunk]), chunk


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map images in ``[-1, 1]`` (float, any shape, e.g. ``(n, C, H, W)``) to ``uint8``.

    ``uint8`` input is returned unchanged. Values are rounded (not truncated), so that a uint8
    image read from a PNG and mapped to ``[-1, 1]`` comes back bit-exact; out-of-range values
    are clipped. The result stays on the input's device.

    >>> to_uint8(torch.tensor([-1.0, 0.0, 1.0, 2.0])).tolist()
    [0, 128, 255, 255]
    """
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise InputError(f"images must be uint8 or float in [-1, 1], got dtype {images.dtype}")
    x = ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255)
    return x.to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_uint8`: ``uint8`` in ``[0, 255]`` -> float32 in ``[-1, 1]``.

    >>> from_uint8(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
    [-1.0, 1.0]
    """
    if images.dtype != torch.uint8:
        raise InputError(f"images must be uint8, got dtype {images.dtype}")
    return images.float() / 127.5 - 1.0


def save_png(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write one uint8 ``(C, H, W)`` image as PNG, atomically.

    Examples
    --------
    >>> import tempfile
    >>> path = save_png(tempfile.mkdtemp() + "/x.png", torch.zeros(3, 2, 4, dtype=torch.uint8))
    >>> read_rgb(path).shape
    (2, 4, 3)
    """
    from PIL import Image

    from hiergrammar.artifacts import atomic_open

    array = image.permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    with atomic_open(path, "wb") as handle:
        img.save(handle, format="PNG")
    return Path(path)
