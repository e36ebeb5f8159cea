"""Nothing runs from a file it reads: every weights loader refuses a planted pickle.

The payload is a pickle whose ``__reduce__`` calls the builtin ``open(marker, "w")``: plain
``pickle.load`` creates the marker file (checked here, so the payload is live), and no loader of
the project may. Each loader must instead raise ``InputError`` naming the file, without advising
``weights_only=False``. The other checkpoint errors (missing, empty, a directory, corrupt,
truncated, not a state dict, tensors that do not fit the architecture, newer config versions)
get the same treatment; module folders round-trip a TreeCNN exactly.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hiergrammar.vision import checkpoints as ckpt  # noqa: E402
from hiergrammar.vision.rhm_cnn import (  # noqa: E402
    TreeCNN,
    encode,
    load_tree_cnn,
    save_tree_cnn,
)

from hiergrammar import InputError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Payload:
    """Unpickling this calls ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, marker, kind):
    """Write a planted checkpoint of one of three encodings."""
    state = {"weight": Payload(marker), "bias": torch.zeros(2)}
    if kind == "torch_zip":  # what torch.save writes: a zip archive holding the pickle
        torch.save(state, path)
    else:
        protocol = {"pickle_p2": 2, "pickle_p5": 5}[kind]
        path.write_bytes(pickle.dumps(state, protocol=protocol))
    return path


PAYLOAD_KINDS = ["torch_zip", "pickle_p2", "pickle_p5"]


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_the_payload_is_live(tmp_path, kind):
    # Control: an ordinary unpickler runs the payload, so the tests below can fail.
    import io
    import zipfile

    marker = tmp_path / "ran"
    path = _plant(tmp_path / "evil.pt", marker, kind)
    if kind == "torch_zip":  # the pickle inside torch's archive; tensors stubbed out
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            unpickler = pickle.Unpickler(io.BytesIO(archive.read(name)))
        unpickler.persistent_load = lambda pid: None
        with pytest.raises(AttributeError):  # the stubbed tensor fails, after the payload ran
            unpickler.load()
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_no_unsafe_load_in_the_vision_code():
    """Static guard: every torch.load passes weights_only=True, every np.load
    allow_pickle=False, and nothing calls pickle's loaders."""
    import ast
    from pathlib import Path

    import hiergrammar.vision

    def keyword(call, name):
        return next((k.value for k in call.keywords if k.arg == name), None)

    torch_loads = 0
    for path in sorted(Path(hiergrammar.vision.__path__[0]).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            owner = owner.id if isinstance(owner, ast.Name) else None
            where = f"{path.name}:{node.lineno}"
            if (owner, node.func.attr) == ("torch", "load"):
                torch_loads += 1
                flag = keyword(node, "weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, where
            if (owner, node.func.attr) == ("np", "load"):
                flag = keyword(node, "allow_pickle")
                assert isinstance(flag, ast.Constant) and flag.value is False, where
            assert owner not in ("pickle", "dill", "joblib", "cloudpickle"), where
    assert torch_loads == 1  # the one in checkpoints.load_state_dict


def _assert_refused(err, path, marker):
    message = str(err.value)
    assert str(path) in message, message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert not marker.exists(), "the payload ran"


def _loaders(tmp_path, evil):
    """Every path by which the project reads weights, each given the planted file."""
    from hiergrammar.vision import classifiers as clf
    from hiergrammar.vision.adm import convert_adm_checkpoint

    def tree_cnn_folder():
        folder = save_tree_cnn(TreeCNN(4, 2, 2, 2, width=4), tmp_path / "cnn")
        (folder / ckpt.WEIGHTS_NAME).write_bytes(evil.read_bytes())
        load_tree_cnn(folder)

    def diffusers_bin():
        diffusers = pytest.importorskip("diffusers")
        from hiergrammar.vision.models import load_diffusion

        unet = diffusers.UNet2DModel(
            sample_size=8,
            block_out_channels=(32, 32),
            norm_num_groups=8,
            layers_per_block=1,
            down_block_types=("DownBlock2D",) * 2,
            up_block_types=("UpBlock2D",) * 2,
        )
        folder = tmp_path / "unet"
        unet.save_config(folder)  # config.json only: the weights are the planted .bin
        (folder / "diffusion_pytorch_model.bin").write_bytes(evil.read_bytes())
        load_diffusion(folder, scheduler="ddpm")

    # loader -> (call, the file its message must name)
    return {
        "load_state_dict": (lambda: ckpt.load_state_dict(evil), evil),
        "classifier_weights": (lambda: clf.load_classifier("resnet50", evil), evil),
        "tree_cnn": (tree_cnn_folder, tmp_path / "cnn" / ckpt.WEIGHTS_NAME),
        "adm_converter": (lambda: convert_adm_checkpoint(evil, tmp_path / "converted"), evil),
        "diffusers_bin": (diffusers_bin, tmp_path / "unet" / "diffusion_pytorch_model.bin"),
    }


LOADERS = ["load_state_dict", "classifier_weights", "tree_cnn", "adm_converter", "diffusers_bin"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_planted_pickle_never_runs(tmp_path, loader, kind):
    marker = tmp_path / "ran"
    evil = _plant(tmp_path / "evil.pt", marker, kind)
    call, named = _loaders(tmp_path, evil)[loader]
    with pytest.raises(InputError) as err:
        call()
    _assert_refused(err, named, marker)
    assert "Python objects" in str(err.value)
    assert not (tmp_path / "converted").exists()  # the converter wrote nothing


def test_planted_pickle_through_the_command_line(tmp_path):
    """probe --classifier FILE, probe --weights FILE and convert-adm --checkpoint FILE."""
    from hiergrammar.cli import main

    marker = tmp_path / "ran"
    evil = _plant(tmp_path / "evil.pt", marker, "torch_zip")
    images = tmp_path / "imgs"
    images.mkdir()
    common = ["--start", str(images), "--generated", str(images), "--out", str(tmp_path / "o")]
    for argv in (
        ["vision", "probe", "--classifier", str(evil), *common],
        ["vision", "probe", "--classifier", "resnet50", "--weights", str(evil), *common],
        ["vision", "convert-adm", "--checkpoint", str(evil), "--out", str(tmp_path / "adm")],
    ):
        assert main(argv) == 2, argv
        assert not marker.exists(), argv
    assert not (tmp_path / "o").exists() and not (tmp_path / "adm").exists()


def test_refusal_message_names_the_file_and_the_global(tmp_path):
    marker = tmp_path / "ran"
    evil = _plant(tmp_path / "evil.pt", marker, "pickle_p2")
    with pytest.raises(InputError) as err:
        ckpt.load_state_dict(evil)
    _assert_refused(err, evil, marker)
    assert "Python objects" in str(err.value) and "open" in str(err.value)
    # a whole pickled module (the old way to pass a custom classifier) is refused the same way
    torch.save(TreeCNN(4, 2, 2, 1, width=4), tmp_path / "module.pt")
    with pytest.raises(InputError, match="TreeCNN"):
        ckpt.load_state_dict(tmp_path / "module.pt")


# ------------------------------------------------------------------------------------------
# other checkpoint errors


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt does not exist") as err:
        ckpt.load_state_dict(tmp_path / "nothere.pt")
    assert isinstance(err.value, InputError)
    with pytest.raises(InputError, match="is a directory"):
        ckpt.load_state_dict(tmp_path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.pt is empty"):
        ckpt.load_state_dict(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello, not weights")
    with pytest.raises(InputError, match=r"text\.pt is neither safetensors nor"):
        ckpt.load_state_dict(tmp_path / "text.pt")
    torch.save({"w": torch.ones(3)}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.pt"):
        ckpt.load_state_dict(tmp_path / "cut.pt")
    (tmp_path / "old.pt").write_bytes(pickle.dumps({"w": 1.0}, protocol=2)[:-4])
    with pytest.raises(InputError, match=r"old\.pt"):
        ckpt.load_state_dict(tmp_path / "old.pt")


def test_safetensors_read_and_damaged(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "w.safetensors")
    state = ckpt.load_state_dict(tmp_path / "w.safetensors")
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-5])
    with pytest.raises(InputError, match=r"cut\.safetensors is not a valid safetensors"):
        ckpt.load_state_dict(tmp_path / "cut.safetensors")


def test_not_a_state_dict(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(InputError, match="holds a list, not a state dict"):
        ckpt.load_state_dict(tmp_path / "list.pt")
    torch.save({"state_dict": {"w": torch.ones(1)}, "epoch": 3}, tmp_path / "nested.pt")
    with pytest.raises(InputError, match="under the key 'state_dict'"):
        ckpt.load_state_dict(tmp_path / "nested.pt")


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    small = TreeCNN(4, 2, 2, 2, width=4)
    folder = save_tree_cnn(small, tmp_path / "cnn")
    # the config claims L=3, the weights are those of L=2: missing tensors
    config = json.loads((folder / "config.json").read_text())
    config["arguments"]["L"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"model\.safetensors does not fit .*missing"):
        load_tree_cnn(folder)
    # width 8 in the config, 4 in the weights: shapes differ, named with both shapes
    config["arguments"].update(L=2, width=8)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"conv1\.weight: \(4, 4, 2\) in the file"):
        load_tree_cnn(folder)
    # the paper classifier with a TreeCNN's weights
    torch.save(small.state_dict(), tmp_path / "cnn.pth")
    from hiergrammar.vision.classifiers import load_classifier

    with pytest.raises(InputError, match=r"cnn\.pth does not fit the architecture resnet50"):
        load_classifier("resnet50", tmp_path / "cnn.pth")


def test_module_config_errors(tmp_path):
    folder = save_tree_cnn(TreeCNN(4, 2, 2, 2, width=4), tmp_path / "cnn")
    config = json.loads((folder / "config.json").read_text())
    assert config == {
        "format": "hiergrammar.module",
        "format_version": 1,
        "architecture": "tree_cnn",
        "arguments": {"v": 4, "n_classes": 2, "s": 2, "L": 2, "width": 4},
    }

    def write(**changes):
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    write(format_version=2)
    with pytest.raises(InputError, match="format_version 2, newer than the 1"):
        load_tree_cnn(folder)
    write(architecture="os.system")
    with pytest.raises(InputError, match="'os.system' is not one of"):
        ckpt.load_module(folder)
    write(architecture="tree_cnn", arguments={"v": 4, "n_classes": 2, "s": 2, "L": 0})
    with pytest.raises(InputError, match="L >= 1"):
        load_tree_cnn(folder)
    write(arguments={"v": 4, "n_classes": 2, "s": 2, "L": 2, "evil": 1})
    with pytest.raises(InputError, match="cannot be built"):
        load_tree_cnn(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_tree_cnn(folder)
    (folder / "config.json").unlink()
    with pytest.raises(InputError, match="has no config.json"):
        load_tree_cnn(folder)
    with pytest.raises(InputError, match="is a file, not a module folder"):
        load_tree_cnn(folder / "model.safetensors")


def test_load_module_checks_the_requested_architecture(tmp_path):
    ckpt.register_architecture("test_linear", torch.nn.Linear)
    try:
        folder = ckpt.save_module(
            torch.nn.Linear(3, 2),
            tmp_path / "lin",
            "test_linear",
            {"in_features": 3, "out_features": 2},
        )
        with pytest.raises(InputError, match="holds a 'test_linear' model, not a 'tree_cnn'"):
            load_tree_cnn(folder)
        # arguments that rebuild another shape are refused when saving, before any write
        with pytest.raises(InputError, match="does not fit"):
            ckpt.save_module(
                torch.nn.Linear(3, 2),
                tmp_path / "bad",
                "test_linear",
                {"in_features": 4, "out_features": 2},
            )
        assert not (tmp_path / "bad").exists()
        with pytest.raises(InputError, match="already registered"):
            ckpt.register_architecture("test_linear", torch.nn.Conv1d)
    finally:
        ckpt._REGISTRY.pop("test_linear", None)


def test_tree_cnn_round_trip_is_exact(tmp_path):
    from hiergrammar import RHM

    model = TreeCNN(v=6, n_classes=3, s=2, L=3, width=16, seed=5)
    folder = save_tree_cnn(model, tmp_path / "cnn")
    again = load_tree_cnn(folder)
    assert type(again) is TreeCNN and not again.training
    assert again.config == model.config and again.probe_layers == model.probe_layers
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)
    x = encode(RHM(v=6, n_classes=3, m=2, s=2, L=3, seed=0).sample(20, seed=1).x, v=6)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    # a differently seeded model differs: the weights, not the seed, came back
    assert not torch.equal(TreeCNN(6, 3, 2, 3, width=16, seed=6)(x), model(x))
    # the weights file is plain safetensors, no pickle
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as handle:
        assert sorted(handle.keys()) == sorted(model.state_dict())
        assert handle.metadata() == {"architecture": "tree_cnn"}


def test_probe_cli_runs_a_saved_tree_cnn(tmp_path):
    """The probe CLI takes a TreeCNN folder; its result equals the probe function's."""
    from hiergrammar.vision.probes import probe_similarity

    from hiergrammar import RHM
    from hiergrammar.cli import main

    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    model = TreeCNN(4, 2, 2, 2, width=8, seed=0).eval()
    folder = save_tree_cnn(model, tmp_path / "cnn")
    start = encode(rhm.sample(12, seed=1).x, v=4)
    other = encode(rhm.sample(12, seed=2).x, v=4)
    np.savez(tmp_path / "start.npz", images=start.numpy())
    np.savez(tmp_path / "other.npz", images=other.numpy(), t=np.array([5.0]))
    argv = ["vision", "probe", "--classifier", str(folder), "--start", str(tmp_path / "start.npz")]
    argv += ["--generated", str(tmp_path / "other.npz"), "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "cpu", "--workers", "0"]) == 0
    data = json.loads((tmp_path / "out" / "probe_cnn.json").read_text())
    assert data["layers"] == ["relu1", "relu2", "readout"] and data["t"] == [5.0]
    ref = probe_similarity(model, start, [other], data["layers"])
    np.testing.assert_allclose(data["similarity_mean"], ref.similarity_mean(), rtol=1e-6)


def _tiny_unet_folder(folder):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
    )
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler()).save_pretrained(folder)
    return unet


def test_diffusers_folders_read_safetensors_and_check_class_names(tmp_path):
    from hiergrammar.vision.models import load_diffusion

    unet = _tiny_unet_folder(tmp_path / "pipe")
    weights = tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.is_file()
    # a planted .bin beside the safetensors is never read
    marker = tmp_path / "ran"
    _plant(tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.bin", marker, "torch_zip")
    loaded = load_diffusion(tmp_path / "pipe")
    assert not marker.exists()
    for (k1, v1), (k2, v2) in zip(
        unet.state_dict().items(), loaded.model.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)
    # a scheduler config naming a class that is not a scheduler is refused before it is built
    config_path = tmp_path / "pipe" / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "_class_name": "DiffusionPipeline"}))
    with pytest.raises(InputError, match="'DiffusionPipeline', which is not a diffusers scheduler"):
        load_diffusion(tmp_path / "pipe")
    config_path.write_text(json.dumps(config))
    # damaged safetensors: named, one line
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"pipe/unet: cannot load the UNet2DModel weights") as err:
        load_diffusion(tmp_path / "pipe")
    assert len(str(err.value).splitlines()) == 1
    weights.unlink()
    (tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.bin").unlink()
    with pytest.raises(InputError, match="has no UNet2DModel weights"):
        load_diffusion(tmp_path / "pipe")
    with pytest.raises(FileNotFoundError, match="is not a folder nor a hub id"):
        load_diffusion(tmp_path / "nowhere")
    with pytest.raises(InputError, match="scheduler='euler' is not one of"):
        load_diffusion(tmp_path / "pipe", scheduler="euler")


def test_diffusers_bin_holding_only_tensors_still_loads(tmp_path):
    """A .bin-only component (older exports) is checked to hold tensors and then loaded."""
    from hiergrammar.vision.models import load_diffusion

    unet = _tiny_unet_folder(tmp_path / "pipe")
    folder = tmp_path / "pipe" / "unet"
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(unet.state_dict(), folder / "diffusion_pytorch_model.bin")
    loaded = load_diffusion(tmp_path / "pipe")
    x = torch.zeros(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.model(x, 5).sample, unet.eval()(x, 5).sample)
