"""Start images from an ImageNet-style folder (hiergrammar.vision.data), on tiny PNG folders built
here.

Evidence: the selection order is recomputed from the file names with ``sorted``; pixel values
are recomputed from the colours written; the crop position is read off an image whose column
blocks have distinct colours; PNG writing round-trips uint8 pixels exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hiergrammar.vision.data import image_folder_dataset, load_image_folder, save_png, to_uint8
from PIL import Image


def make_image_folder(
    root: Path, classes=("n02", "n01", "n03"), per_class: int = 3, size: int = 8, seed: int = 0
) -> dict[str, list[str]]:
    """Random RGB PNGs ``root/<class>/img_<k>.png`` written in a shuffled order; returns the
    file names per class."""
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {}
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        files = [f"img_{k}.png" for k in rng.permutation(per_class + 2)[:per_class]]
        for f in files:
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f)
        names[c] = files
    return names


def test_order_and_per_class_selection(tmp_path):
    names = make_image_folder(tmp_path, per_class=4)
    ds = image_folder_dataset(tmp_path, 8, per_class=2)
    expected = [(c, f) for c in sorted(names) for f in sorted(names[c])[:2]]
    got = [(r.class_name, Path(r.path).name) for r in ds.records]
    assert got == expected
    assert [r.label for r in ds.records] == [sorted(names).index(c) for c, _ in expected]
    assert [r.index for r in ds.records] == list(range(len(expected)))
    assert len(image_folder_dataset(tmp_path, 8).records) == 12  # per_class=None: all


def test_pixel_values_map_to_minus_one_one(tmp_path):
    (tmp_path / "a").mkdir()
    colour = (255, 0, 128)
    Image.new("RGB", (8, 8), colour).save(tmp_path / "a" / "x.png")
    Image.new("L", (8, 8), 51).save(tmp_path / "a" / "y.png")  # grayscale becomes RGB
    images, records = load_image_folder(tmp_path, 8)
    assert images.shape == (2, 3, 8, 8) and images.dtype == torch.float32
    expected = torch.tensor(colour, dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(images[0], expected[:, None, None].expand(3, 8, 8), atol=1e-6)
    assert torch.allclose(images[1], torch.full((3, 8, 8), 51 / 127.5 - 1), atol=1e-6)


def _stripes(widths_colours, height):
    blocks = [
        np.broadcast_to(np.array(c, dtype=np.uint8), (height, w, 3)) for w, c in widths_colours
    ]
    return np.concatenate(blocks, axis=1)


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_centre_crop_is_exact_when_no_resize_is_needed(tmp_path):
    # 8 x 32 image (shorter side already 8): the centre crop is columns 12..19, all green
    (tmp_path / "a").mkdir()
    pixels = _stripes([(12, RED), (8, GREEN), (12, BLUE)], 8)
    Image.fromarray(pixels).save(tmp_path / "a" / "wide.png")
    images, _ = load_image_folder(tmp_path, 8)
    assert torch.equal(
        to_uint8(images)[0].permute(1, 2, 0), torch.from_numpy(pixels[:, 12:20].copy())
    )


def test_resize_shorter_side_then_centre_crop(tmp_path):
    # 16 x 48 image, red | green | blue blocks of 16 columns. Resized to 8 x 24 and centre
    # cropped to 8 x 8, it keeps original columns 16..31: green (pure in the middle columns,
    # tinted by the antialiasing kernel at the crop's edges only).
    (tmp_path / "a").mkdir()
    Image.fromarray(_stripes([(16, RED), (16, GREEN), (16, BLUE)], 16)).save(
        tmp_path / "a" / "wide.png"
    )
    images, _ = load_image_folder(tmp_path, 8)
    assert images.shape == (1, 3, 8, 8)
    rgb = (images[0] + 1) * 127.5  # (3, 8, 8)
    assert torch.allclose(
        rgb[:, :, 3:5], torch.tensor(GREEN, dtype=torch.float32)[:, None, None], atol=2
    )
    assert (rgb[1] > 128).all()  # green dominates every column of the crop


def test_png_round_trip_is_exact(tmp_path):
    make_image_folder(tmp_path / "in", classes=("a",), per_class=2)
    images, records = load_image_folder(tmp_path / "in", 8)
    u8 = to_uint8(images)
    for img, r in zip(u8, records, strict=True):
        out = save_png(tmp_path / "out" / f"{r.stem}.png", img)
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(r.path)))


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        image_folder_dataset(tmp_path / "missing", 8)
    make_image_folder(tmp_path, classes=("a",), per_class=1)
    with pytest.raises(ValueError, match="per_class >= 1"):
        image_folder_dataset(tmp_path, 8, per_class=0)
    with pytest.raises(ValueError, match="size >= 1"):
        image_folder_dataset(tmp_path, 0)
