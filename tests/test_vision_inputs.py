"""Bad input to the vision library and commands: one ``InputError`` naming the problem, raised
before any work or any write.

* ``--device banana`` and ``--device cuda`` without CUDA: refused before anything is loaded;
* image folders holding a text file named ``x.png`` or a truncated PNG: refused with both paths
  before anything is written, by the sampler's dataset, the probe's image sets and the probe
  command;
* seeds and out-of-range arguments of the library functions: messages naming the bound.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hiergrammar.vision.device import resolve_device  # noqa: E402
from PIL import Image  # noqa: E402

from hiergrammar import InputError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------
# devices


def test_resolve_device_accepts_cpu_and_refuses_nonsense():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match=r"device='banana' is not a device"):
        resolve_device("banana")
    with pytest.raises(InputError, match=r"--device=.* is not a device"):
        resolve_device("", "--device")
    with pytest.raises(InputError, match="must be a string or a torch.device"):
        resolve_device(3)
    with pytest.raises(InputError, match="cannot run this computation"):
        resolve_device("meta")


def test_cuda_refused_without_cuda(monkeypatch):
    # CPU path of the CUDA check: pretend the machine has no CUDA (on a GPU machine too)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match=r"device='cuda' is not available on this machine"):
        resolve_device("cuda")
    with pytest.raises(InputError, match=r"device='cuda:1' is not available"):
        resolve_device("cuda:1")
    assert resolve_device(None) == torch.device("cpu")


@pytest.mark.gpu
def test_cuda_accepted_with_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    assert resolve_device("cuda").type == "cuda"
    count = torch.cuda.device_count()
    with pytest.raises(InputError, match=rf"index < {count}"):
        resolve_device(f"cuda:{count}")


def _probe_argv(tmp_path, *extra):
    return [
        "vision",
        "probe",
        "--classifier",
        "resnet50",
        "--weights",
        str(tmp_path / "never-read.pth"),
        "--start",
        str(tmp_path / "no-start"),
        "--generated",
        str(tmp_path / "no-gen"),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


@pytest.mark.parametrize("device", ["banana", "cuda"])
def test_probe_command_refuses_a_bad_device_first(tmp_path, capsys, monkeypatch, device):
    """One line, exit code 2, about the device (not the missing weights or images, which
    would be read later): the check comes before any work."""
    from hiergrammar.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(_probe_argv(tmp_path, "--device", device)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--device='{device}'" in err, err
    assert not (tmp_path / "out").exists()


def test_library_functions_check_the_device(tmp_path, monkeypatch):
    from hiergrammar.vision.classifiers import load_classifier
    from hiergrammar.vision.rhm_cnn import TreeCNN, load_tree_cnn, save_tree_cnn

    folder = save_tree_cnn(TreeCNN(4, 2, 2, 1, width=4), tmp_path / "cnn")
    with pytest.raises(InputError, match="banana"):
        load_tree_cnn(folder, device="banana")
    with pytest.raises(InputError, match="banana"):
        load_classifier("resnet50", tmp_path / "never-read.pth", device="banana")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="not available"):
        load_tree_cnn(folder, device="cuda")


# ------------------------------------------------------------------------------------------
# image folders with a non-image and a truncated image


def _bad_folder(root):
    """``root/a/{good,x,cut}.png``: x.png is text, cut.png a PNG cut in half."""
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / "a" / "good.png")
    (root / "a" / "x.png").write_text("this is not an image")
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / "a" / "cut.png")
    data = (root / "a" / "cut.png").read_bytes()
    (root / "a" / "cut.png").write_bytes(data[: len(data) // 2])
    return root / "a" / "x.png", root / "a" / "cut.png"


def test_image_folder_dataset_names_every_bad_file(tmp_path):
    from hiergrammar.vision.data import image_folder_dataset

    text, cut = _bad_folder(tmp_path / "imgs")
    with pytest.raises(InputError) as err:
        image_folder_dataset(tmp_path / "imgs", 8, progress=False)
    message = str(err.value)
    assert "2 of 3 images" in message
    assert f"{text} (not an image" in message and f"{cut} (the file is truncated" in message
    assert len(message.splitlines()) == 1
    # without the check, the dataset still names the file when the image is read
    ds = image_folder_dataset(tmp_path / "imgs", 8, verify=False)
    position = [r.path for r in ds.records].index(str(text))
    with pytest.raises(InputError, match="x.png cannot be read"):
        ds[position]


def test_image_folder_errors(tmp_path):
    from hiergrammar.vision.data import image_folder_dataset

    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder_dataset(tmp_path / "missing", 8)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        image_folder_dataset(tmp_path / "file", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="find any class folder"):
        image_folder_dataset(tmp_path / "empty", 8)
    (tmp_path / "empty" / "cls").mkdir()
    with pytest.raises(InputError, match="no valid file for the classes cls"):
        image_folder_dataset(tmp_path / "empty", 8)
    with pytest.raises(InputError, match="size >= 1"):
        image_folder_dataset(tmp_path / "empty", 0)
    with pytest.raises(InputError, match="per_class must be an integer"):
        image_folder_dataset(tmp_path / "empty", 8, per_class=1.5)


def test_probe_image_set_and_command_refuse_bad_images(tmp_path):
    from hiergrammar.vision.image_sets import ImageSet

    from hiergrammar.cli import main

    text, cut = _bad_folder(tmp_path / "gen")
    with pytest.raises(InputError) as err:
        ImageSet(tmp_path / "gen", progress=False)
    assert str(text) in str(err.value) and str(cut) in str(err.value)
    # the probe command: refused before anything is written
    (tmp_path / "start").mkdir()
    for k in range(3):
        Image.new("RGB", (12, 12), (k, 0, 0)).save(tmp_path / "start" / f"{k}.png")
    from hiergrammar.vision.rhm_cnn import TreeCNN, save_tree_cnn  # any module folder

    folder = save_tree_cnn(TreeCNN(3, 2, 2, 1, width=4), tmp_path / "cnn")
    argv = ["vision", "probe", "--classifier", str(folder), "--start", str(tmp_path / "start")]
    argv += ["--generated", str(tmp_path / "gen"), "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "cpu"]) == 2
    assert not (tmp_path / "out").exists()


def test_image_set_metadata_and_npz_errors(tmp_path):
    from hiergrammar.vision.image_sets import ImageSet

    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "0.png")
    (tmp_path / "a" / "metadata.json").write_text("{broken")
    with pytest.raises(InputError, match="metadata.json is not valid JSON"):
        ImageSet(tmp_path / "a")
    listed = {"images": [{"file": "../../etc/passwd"}]}
    (tmp_path / "a" / "metadata.json").write_text(json.dumps(listed))
    with pytest.raises(InputError, match="outside the folder"):
        ImageSet(tmp_path / "a")
    np.savez(tmp_path / "objects.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match=r"objects\.npz is not a readable \.npz"):
        ImageSet(tmp_path / "objects.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputError, match=r"broken\.npz"):
        ImageSet(tmp_path / "broken.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageSet(tmp_path / "nothing")


def test_probe_command_argument_bounds(tmp_path, capsys):
    from hiergrammar.cli import main

    for flag, value, bound in (
        ("--batch-size", "0", "--batch-size >= 1"),
        ("--workers", "-1", "--workers >= 0"),
        ("--limit", "1", "--limit >= 2"),
        ("--min-rel-std", "1.5", "--min-rel-std"),
    ):
        assert main(_probe_argv(tmp_path, "--device", "cpu", flag, value)) == 2
        assert bound in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    argv = _probe_argv(tmp_path, "--device", "cpu")
    argv[argv.index("--out") + 1] = str(tmp_path / "file")
    assert main(argv) == 2
    assert "is an existing file; give a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# seeds and bounds of the library functions


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_seeds_are_checked_everywhere(seed):
    from hiergrammar.vision.distributed import _check_sample_args
    from hiergrammar.vision.pipeline import image_seeds
    from hiergrammar.vision.rhm_cnn import TreeCNN, train_tree_cnn

    from hiergrammar import RHM

    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0)
    for call in (
        lambda: TreeCNN(4, 2, 2, 1, seed=seed),
        lambda: train_tree_cnn(rhm, n_train=4, n_test=4, seed=seed),
        lambda: image_seeds(seed, 2),
        lambda: image_seeds([0, seed], 2),
        lambda: _check_sample_args([1], 2, None, 1, seed),
    ):
        with pytest.raises(InputError, match="seed"):
            call()


def test_seed_none_and_numpy_ints_are_seeds():
    from hiergrammar.vision.pipeline import image_seeds
    from hiergrammar.vision.rhm_cnn import TreeCNN

    assert image_seeds(np.int64(3), 2) == [3, 4]
    assert image_seeds(np.array([5, 1]), 2) == [5, 1]
    a, b = TreeCNN(4, 2, 2, 1, seed=np.uint8(7)), TreeCNN(4, 2, 2, 1, seed=7)
    assert torch.equal(a.readout.weight, b.readout.weight)
    TreeCNN(4, 2, 2, 1, seed=None)  # fresh entropy


def test_sample_command_refuses_bad_seeds_before_loading(tmp_path, capsys):
    from hiergrammar.cli import main

    argv = ["vision", "sample", "--model", str(tmp_path / "no-model"), "--images", str(tmp_path)]
    argv += ["--t", "1", "--num-steps", "2", "--out", str(tmp_path / "o"), "--seed", "-1"]
    assert main(argv) == 2
    assert "--seed=-1 violates --seed >= 0" in capsys.readouterr().err


def test_out_of_range_arguments_name_the_bound():
    from hiergrammar.vision.adm import adm_config
    from hiergrammar.vision.classifiers import classifier_layers
    from hiergrammar.vision.data import iter_batches, to_uint8
    from hiergrammar.vision.probes import activation_stats
    from hiergrammar.vision.probes import iter_batches as probe_batches
    from hiergrammar.vision.rhm_cnn import TreeCNN, encode, leaf_grid, torch_threads

    cases = [
        (lambda: encode(np.array([[0, 5]]), v=4), r"\[0, v\) = \[0, 4\)"),
        (lambda: encode(np.array([[0.5]]), v=4), "integer array"),
        (lambda: encode(np.array([[0, 1]]), v=4, layout="3d"), "layout='3d' is not one of"),
        (lambda: leaf_grid(1, 2), "s=1 violates s >= 2"),
        (lambda: TreeCNN(4, 2, 2, 1, width=0), "width=0 violates width >= 1"),
        (lambda: TreeCNN(4, 2, 2, 1.0), "L must be an integer"),
        (lambda: TreeCNN(4, 2, 2, 1)(torch.zeros(1, 3, 2)), r"\(n, v, s\*\*L\)"),
        (lambda: torch_threads(0).__enter__(), "num_threads=0 violates"),
        (lambda: classifier_layers("resnet51"), "is not one of"),
        (lambda: adm_config(num_heads=0), "num_heads=0 violates num_heads >= 1"),
        (lambda: adm_config(image_size=-8), "image_size=-8 violates"),
        (lambda: adm_config(learn_sigma="yes"), "learn_sigma='yes' must be true or false"),
        (lambda: adm_config(channel_mult="1,x"), "channel_mult='1,x' must be"),
        (lambda: adm_config(dropout=1.0), "dropout"),
        (lambda: next(iter_batches([], [0], 0)), "batch_size=0 violates"),
        (lambda: next(probe_batches(torch.zeros(2, 1), 0)), "batch_size=0 violates"),
        (lambda: to_uint8(torch.tensor([1, 2])), "dtype"),
        (
            lambda: activation_stats(torch.nn.Linear(1, 1), torch.zeros(4, 1), ["x"], per="pixel"),
            "per='pixel'",
        ),
    ]
    for call, match in cases:
        with pytest.raises(InputError, match=match):
            call()


def test_forward_backward_checks_its_arguments():
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler, UNet2DModel
    from hiergrammar.vision.pipeline import forward_backward

    unet = UNet2DModel(
        sample_size=8,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
    )
    x = torch.zeros(2, 3, 8, 8)
    sched = DDPMScheduler()
    for kwargs, match in (
        ({"device": "banana"}, "banana"),
        ({"dtype": torch.int32}, "dtype=torch.int32"),
        ({"seed": -2}, "seed=-2"),
        ({"seed": [1, -1]}, r"seed\[1\]=-1"),
        ({"batch_size": 1.5}, "batch_size must be an integer"),
    ):
        with pytest.raises(InputError, match=match):
            forward_backward(unet, sched, x, 1, 2, progress=False, **kwargs)
    with pytest.raises(InputError, match="float"):
        forward_backward(unet, sched, x.to(torch.uint8), 1, 2, progress=False)
