"""Start images from an ImageNet-style folder (``root/<class>/<image>``), N per class.

The order is deterministic: classes sorted by folder name, files sorted by name within a class
(torchvision's ``ImageFolder`` order), and the first ``per_class`` files of each class are kept.
Each image is converted to RGB, resized so that its shorter side is ``size`` (bicubic,
antialiased), centre-cropped to ``size x size`` and mapped to ``[-1, 1]``, i.e. ``(n, 3, size,
size)`` batches ready for :func:`hiergrammar.vision.forward_backward`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "ImageRecord",
    "image_folder_dataset",
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


class _Selected(torch.utils.data.Dataset):
    """``ImageFolder`` restricted to the selected records; items are ``(image, index)``."""

    def __init__(self, folder, records: list[ImageRecord], positions: list[int]):
        self.folder = folder
        self.records = records
        self.positions = positions

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        image, _ = self.folder[self.positions[i]]
        return image.clamp(-1, 1), self.records[i].index


def _check_per_class(per_class: int | None) -> None:
    """Raise ``ValueError`` unless ``per_class`` is ``None`` (every image) or an int >= 1."""
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise ValueError(f"per_class={per_class!r} violates per_class >= 1")


def image_folder_dataset(root: str | os.PathLike, size: int, per_class: int | None = None):
    """A torch ``Dataset`` of the selected images; ``.records`` lists them (see module doc).

    ``dataset[i]`` is ``(image (3, size, size) in [-1, 1], global index i)``.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} violates size >= 1")
    _check_per_class(per_class)
    folder = ImageFolder(str(root), transform=_transform(size))
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
    return _Selected(folder, records, positions)


def load_image_folder(
    root: str | os.PathLike, size: int, per_class: int | None = None
) -> tuple[torch.Tensor, list[ImageRecord]]:
    """All selected images at once: ``(n, 3, size, size)`` in ``[-1, 1]`` and their records.

    For large selections iterate with :func:`iter_batches` instead.

    >>> # images, records = load_image_folder("imagenet/val", 256, per_class=10)
    """
    ds = image_folder_dataset(root, size, per_class)
    if len(ds) == 0:
        raise ValueError(f"no images found under {root}")
    return torch.stack([ds[i][0] for i in range(len(ds))]), list(ds.records)


def iter_batches(
    dataset, indices: list[int], batch_size: int
) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Yield ``(images (b, 3, size, size), indices)`` for the dataset positions ``indices``."""
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
        raise ValueError(f"images must be uint8 or float in [-1, 1], got dtype {images.dtype}")
    x = ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255)
    return x.to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_uint8`: ``uint8`` in ``[0, 255]`` -> float32 in ``[-1, 1]``.

    >>> from_uint8(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
    [-1.0, 1.0]
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}")
    return images.float() / 127.5 - 1.0


def save_png(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write one uint8 ``(C, H, W)`` image as PNG, atomically."""
    from PIL import Image

    from hiergrammar.artifacts import atomic_open

    array = image.permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    with atomic_open(path, "wb") as handle:
        img.save(handle, format="PNG")
    return Path(path)
