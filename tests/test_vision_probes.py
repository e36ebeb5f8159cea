"""Hidden-representation probe: hooks, streaming statistics, standardised cosine, CLI.

Evidence used: numpy two-pass moments on the whole set; a numpy re-implementation of the
standardised cosine for a layer that is the identity (so its activation is the input itself);
exact identities (identical images give similarity 1); a z-test for independent inputs
(similarity 0 in expectation); monotone decay with noise; the CLI against the function.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from hiergrammar.vision.classifiers import build_classifier  # noqa: E402
from hiergrammar.vision.image_sets import ImageSet  # noqa: E402
from hiergrammar.vision.plots import load_probe_data, plot_probe  # noqa: E402
from hiergrammar.vision.probes import (  # noqa: E402
    LayerRecorder,
    RunningMoments,
    activation_stats,
    cosine_similarity,
    probe_similarity,
)

from hiergrammar.cli import vision_probe  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyCNN(torch.nn.Module):
    """A small classifier with nested names, like the torchvision ones."""

    def __init__(self, channels: int = 3, n_classes: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.inp = torch.nn.Identity()
        self.features = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU()),
            torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU()),
        )
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, n_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(self.inp(x))).flatten(1))


LAYERS = ["inp", "features.0", "features.1", "pool", "fc"]


def save_tiny(net, folder):
    """Save ``net`` as a module folder of the architecture ``test_tiny_cnn`` (registered here:
    a folder can only name architectures that code registered)."""
    from hiergrammar.vision.checkpoints import register_architecture, save_module

    register_architecture("test_tiny_cnn", TinyCNN)
    return save_module(net, folder, "test_tiny_cnn", {"channels": 3, "n_classes": 5})


def _images(n, seed, shape=(3, 12, 12)):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------
# hooks


def test_unknown_layer_lists_close_matches_and_hooks_are_removed():
    net = TinyCNN()
    with pytest.raises(ValueError, match=r"features\.O' \(close: [^)]*features\.0\b"):
        LayerRecorder(net, ["features.O"])
    with pytest.raises(ValueError, match="duplicates"):
        LayerRecorder(net, ["fc", "fc"])
    with LayerRecorder(net, LAYERS) as rec:
        out = net(_images(2, 0))
        acts = rec.pop()
    assert list(acts) == LAYERS and torch.equal(acts["fc"], out)
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.slow
def test_hooks_on_convnext_record_block_outputs():
    # The hooked tensor of a block is what the next stage receives: check it against a manual
    # forward through the Sequential up to that block.
    model = build_classifier("convnext_base")
    x = _images(1, 1, (3, 32, 32))
    with torch.no_grad(), LayerRecorder(model, ["features.1.2", "features.2"]) as rec:
        model(x)
        acts = rec.pop()
        manual = model.features[:2](x)
        assert torch.allclose(acts["features.1.2"], manual)
        assert torch.allclose(acts["features.2"], model.features[2](manual))


# ------------------------------------------------------------------------------------------
# streaming statistics


@pytest.mark.parametrize("per", ["unit", "channel"])
def test_running_moments_match_numpy_with_large_offset(per):
    rng = np.random.default_rng(3)
    # A large common offset breaks the naive E[x^2] - E[x]^2 formula in float32/64;
    # Welford/Chan must still match the two-pass numpy result.
    data = 1e6 + rng.normal(size=(103, 4, 5, 2)) * rng.uniform(0.1, 3.0, size=(4, 5, 2))
    rm = RunningMoments(per)
    for lo, hi in [(0, 1), (1, 30), (30, 31), (31, 103)]:  # uneven batches
        rm.update(torch.from_numpy(data[lo:hi]))
    if per == "unit":
        ref = data
    else:
        ref = np.moveaxis(data, 1, -1).reshape(-1, 4)
    assert rm.count == ref.shape[0]
    np.testing.assert_allclose(rm.mean.numpy(), ref.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(rm.var().numpy(), ref.var(axis=0), rtol=1e-8)
    np.testing.assert_allclose(rm.var(ddof=1).numpy(), ref.var(axis=0, ddof=1), rtol=1e-8)


@pytest.mark.parametrize("per", ["unit", "channel"])
def test_activation_stats_match_numpy_on_the_whole_set(per):
    net = TinyCNN().eval()
    x = _images(37, 4)
    stats = activation_stats(net, x, LAYERS, batch_size=8, per=per)
    with torch.no_grad(), LayerRecorder(net, LAYERS) as rec:
        net(x)
        full = {k: v.double().numpy() for k, v in rec.pop().items()}
    for name in LAYERS:
        a = full[name]
        if per == "unit" or a.ndim == 2:
            mean, var = a.mean(axis=0), a.var(axis=0)
        else:
            axes = (0,) + tuple(range(2, a.ndim))
            mean, var = a.mean(axis=axes, keepdims=True)[0], a.var(axis=axes, keepdims=True)[0]
        assert stats[name].count == (37 if per == "unit" else a.size // a.shape[1])
        np.testing.assert_allclose(stats[name].mean, mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(stats[name].var, var, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="n >= 2"):
        activation_stats(net, x[:1], LAYERS)


# ------------------------------------------------------------------------------------------
# standardised cosine similarity


def _numpy_probe(start, gen, min_rel_std=1e-6):
    """Reference: standardise each pixel with the start set's moments, drop constants."""
    a, b = start.reshape(len(start), -1), gen.reshape(len(gen), -1)
    mean, std = a.mean(axis=0), a.std(axis=0)
    keep = std > min_rel_std * np.sqrt(np.mean(std**2 + mean**2))
    za, zb = (a - mean)[:, keep] / std[keep], (b - mean)[:, keep] / std[keep]
    cos = (za * zb).sum(1) / (np.linalg.norm(za, axis=1) * np.linalg.norm(zb, axis=1))
    return cos, int((~keep).sum())


def test_identity_layer_matches_numpy_reference_with_constant_units():
    net = TinyCNN().eval()
    start, gen = _images(40, 5).double(), _images(40, 6).double()
    start = start + 0.7 * _images(1, 7).double()  # units with different means
    start[:, 1, 3, :] = 2.5  # 12 constant pixels: zero variance
    gen = 0.6 * start + 0.8 * gen
    result = probe_similarity(net.double(), start, [gen], ["inp"], batch_size=16)
    cos, n_dropped = _numpy_probe(start.numpy(), gen.numpy())
    assert result.n_dropped["inp"] == n_dropped == 12
    np.testing.assert_allclose(result.similarity[0, 0], cos, rtol=1e-12)
    assert 0.3 < np.mean(cos) < 0.9  # the check is not vacuous


def test_identical_images_give_similarity_one_everywhere():
    net = TinyCNN().eval()
    x = _images(30, 8)
    res = probe_similarity(net, x, [x.clone()], LAYERS, batch_size=7)
    assert res.similarity.shape == (1, len(LAYERS), 30)
    np.testing.assert_allclose(res.similarity, 1.0, atol=1e-12)
    assert res.top1_agreement.tolist() == [1.0]
    summary = res.summary()[0]
    assert summary["similarity"]["fc"]["mean"] == pytest.approx(1.0, abs=1e-12)
    assert summary["top1_agreement"] == 1.0


@pytest.mark.slow
def test_identical_images_on_a_real_architecture():
    model = build_classifier("resnet50")
    layers = ["maxpool", "layer1.0", "layer4.2", "avgpool", "fc"]
    x = _images(6, 9, (3, 32, 32))
    res = probe_similarity(model, x, [x.clone()], layers, batch_size=3)
    np.testing.assert_allclose(res.similarity, 1.0, atol=1e-10)


def test_independent_inputs_give_similarity_zero_on_average():
    # Start and generated images independent and identically distributed: for every layer
    # E[cos] = 0 (the cross term of the mean estimate cancels exactly). z-test at 4 sigma on
    # the mean over 150 pairs, with the empirical standard error.
    net = TinyCNN().eval()
    res = probe_similarity(net, _images(150, 10), [_images(150, 11)], LAYERS, batch_size=50)
    mean, sem = res.similarity_mean()[0], res.similarity_sem()[0]
    assert np.all(sem > 0)
    assert np.all(np.abs(mean) < 4 * sem), (mean, sem)


def test_similarity_decreases_with_noise():
    net = TinyCNN().eval()
    x, noise = _images(100, 12), _images(100, 13)
    sigmas = [0.0, 0.1, 0.3, 1.0, 3.0]
    res = probe_similarity(net, x, [x + s * noise for s in sigmas], LAYERS, batch_size=50)
    mean = res.similarity_mean()  # (n_sigmas, n_layers)
    assert np.allclose(mean[0], 1.0)
    assert np.all(np.diff(mean, axis=0) < 0), mean
    # the first (identity) layer follows the closed form 1 / sqrt(1 + sigma^2) for unit-variance
    # inputs and noise, up to the sampling error of the moments
    np.testing.assert_allclose(mean[:, 0], 1 / np.sqrt(1 + np.square(sigmas)), atol=0.03)


def test_cosine_similarity_edge_cases():
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[-3.0, -4.0], [1.0, 2.0], [0.0, 2.0]])
    cos = cosine_similarity(a, b)
    assert cos[0].item() == -1.0 and torch.isnan(cos[1]) and cos[2].item() == 0.0


def test_probe_validates_inputs():
    net = TinyCNN().eval()
    x = _images(4, 0)
    with pytest.raises(ValueError, match="pair"):
        probe_similarity(net, x, [x[:3]], LAYERS)
    with pytest.raises(ValueError, match="list of image sets"):
        probe_similarity(net, x, x, LAYERS)
    with pytest.raises(ValueError, match="unknown layer"):
        probe_similarity(net, x, [x], ["features.7"])


def test_one_hot_sequence_model():
    # The probe is shape-agnostic: a 1-d CNN on one-hot sequences (n, v, d), as for the RHM.
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(4, 6, 2, stride=2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 4, 3),
    ).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (60, 8), generator=g), 4)
    x = x.permute(0, 2, 1).float()
    res = probe_similarity(net, x, [x, x.flip(0)], ["1", "3"], per="channel")
    np.testing.assert_allclose(res.similarity[0], 1.0, atol=1e-12)
    assert np.nanmean(res.similarity[1]) < 0.5


# ------------------------------------------------------------------------------------------
# CLI end to end


def _write_pngs(folder, images_uint8, t=None):
    folder.mkdir(parents=True)
    for i, img in enumerate(images_uint8):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    if t is not None:
        (folder / "metadata.json").write_text(json.dumps({"t": t}))


def _parser():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="vision_command")
    vision_probe.register(sub)
    return parser


@pytest.mark.slow
def test_cli_probe_and_plot_end_to_end(tmp_path):
    net = TinyCNN().eval()
    model_path = save_tiny(net, tmp_path / "tiny")
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, 256, (24, 3, 12, 12), dtype=torch.uint8, generator=g)
    noisy = (start.float() + 40 * torch.randn(start.shape, generator=g)).clamp(0, 255)
    noisy = noisy.round().to(torch.uint8)
    other = torch.randint(0, 256, (24, 3, 12, 12), dtype=torch.uint8, generator=g)
    _write_pngs(tmp_path / "start", start)
    _write_pngs(tmp_path / "t000", start, t=0)
    _write_pngs(tmp_path / "t100", other, t=100)
    _write_pngs(tmp_path / "t050", noisy, t=50)

    args = _parser().parse_args(
        [
            "probe",
            "--classifier",
            str(model_path),
            "--start",
            str(tmp_path / "start"),
            "--generated",
            str(tmp_path / "t000"),
            str(tmp_path / "t100"),
            str(tmp_path / "t050"),
            "--out",
            str(tmp_path / "out"),
            "--batch-size",
            "10",
        ]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "out" / "probe_tiny.json").read_text())
    assert data["layers"] == ["inp", "features", "pool", "fc"]  # the module's children
    assert data["t"] == [0.0, 100.0, 50.0] and data["logits_layer"] == "fc"
    mean = np.array(data["similarity_mean"])
    np.testing.assert_allclose(mean[0], 1.0, atol=1e-12)
    assert data["top1_agreement"][0] == 1.0

    # Same numbers from the function on the tensors, mapped to [-1, 1] like the CLI does.
    def pm1(u):
        return u.float() / 127.5 - 1

    ref = probe_similarity(net, pm1(start), [pm1(other), pm1(noisy)], data["layers"])
    np.testing.assert_allclose(mean[1:], ref.similarity_mean(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(data["top1_agreement"][1:], ref.top1_agreement)
    assert np.all(mean[2] > mean[1])  # noisy copy closer than an independent image

    npz = load_probe_data(tmp_path / "out" / "probe_tiny.npz")
    np.testing.assert_allclose(npz["similarity_mean"], mean)
    with np.load(tmp_path / "out" / "probe_tiny.npz") as raw:
        assert raw["similarity"].shape == (3, 4, 24)

    png = tmp_path / "fig.png"
    args = _parser().parse_args(
        [
            "plot",
            "--data",
            str(tmp_path / "out" / "probe_tiny.json"),
            str(tmp_path / "out" / "probe_tiny.npz"),
            "--out",
            str(png),
            "--band",
            "sem",
        ]
    )
    assert args.func(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_probe_missing_weights_is_a_clean_error(tmp_path):
    args = _parser().parse_args(
        [
            "probe",
            "--classifier",
            "resnet152",
            "--weights",
            str(tmp_path / "w.pth"),
            "--start",
            str(tmp_path),
            "--generated",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    with pytest.raises(FileNotFoundError, match=r"w\.pth.*resnet152-f82ba261\.pth"):
        args.func(args)


def test_plot_colours_layers_by_depth_and_highlights_logits():
    data = {
        "classifier": "toy",
        "layers": ["a", "b", "c", "logits"],
        "logits_layer": "logits",
        "t": [100, 0, 50],
        "similarity_mean": np.linspace(1, 0, 12).reshape(3, 4),
        "top1_agreement": [0.1, 1.0, 0.6],
    }
    fig = plot_probe(data)
    lines = fig.axes[0].get_lines()
    labels = [ln.get_label() for ln in lines]
    assert "logits" in labels and "top-1 agreement" in labels
    xs = lines[0].get_xdata()
    assert list(xs) == [0, 50, 100]  # sorted by t
    colours = [tuple(ln.get_color()) for ln in lines[:3]]
    assert len(set(colours)) == 3  # one colour per depth
    assert len(fig.axes) == 2  # the panel and its colorbar
    with pytest.raises(ValueError, match="expected"):
        plot_probe({**data, "similarity_mean": np.zeros((2, 4))})


@pytest.mark.slow
def test_cli_probe_reads_the_samplers_output(tmp_path):
    # Hand-off test: run the real sampler (hiergrammar.vision.distributed.sample_image_folder) with
    # a tiny random UNet on a tiny ImageNet-style folder, then probe its t-folders by their paths.
    diffusers = pytest.importorskip("diffusers")
    pytest.importorskip("accelerate")
    from hiergrammar.vision.distributed import sample_image_folder
    from hiergrammar.vision.models import DiffusionModel

    g = torch.Generator().manual_seed(0)
    for c, cls in enumerate(["n001", "n002"]):
        (tmp_path / "val" / cls).mkdir(parents=True)
        for k in range(3):
            img = torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8, generator=g)
            Image.fromarray(img.numpy()).save(tmp_path / "val" / cls / f"img{c}{k}.png")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
    ).eval()
    diffusion = DiffusionModel(
        kind="unet", model=unet, scheduler=diffusers.DDPMScheduler(num_train_timesteps=40)
    )
    sample_image_folder(
        diffusion,
        tmp_path / "val",
        [0, 2, 4],
        tmp_path / "fb",
        num_steps=4,
        batch_size=4,
        progress=False,
    )

    net = TinyCNN().eval()
    save_tiny(net, tmp_path / "tiny")
    gen = sorted(str(p) for p in (tmp_path / "fb").glob("t*"))
    args = _parser().parse_args(
        [
            "probe",
            "--classifier",
            str(tmp_path / "tiny"),
            "--start",
            str(tmp_path / "fb" / "t000"),
            "--generated",
            *gen,
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert args.func(args) == 0
    data = json.loads((tmp_path / "out" / "probe_tiny.json").read_text())
    assert data["t"] == [0.0, 2.0, 4.0]
    assert data["t_label"] == "inversion time t (of 4 respaced steps)"
    assert data["n_images"] == 6
    mean = np.array(data["similarity_mean"])
    np.testing.assert_allclose(mean[0], 1.0, atol=1e-12)  # t = 0 is the start set itself
    assert np.all(mean[1:] < 0.999)  # the reverse chain changed the images
    assert data["top1_accuracy_start"] is not None  # labels read from the metadata


def test_pairing_by_file_name(tmp_path):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8, generator=g)
    _write_pngs(tmp_path / "a", imgs)
    (tmp_path / "b").mkdir()
    for i, img in enumerate(imgs):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "b" / f"{i:05d}.png")
    listed = [{"file": f"{i:05d}.png", "label": i} for i in (2, 0, 1)]  # shuffled listing
    (tmp_path / "b" / "metadata.json").write_text(json.dumps({"t": 7, "images": listed}))
    start, gen = ImageSet(tmp_path / "a"), ImageSet(tmp_path / "b")
    assert gen.t == 7.0 and gen.labels.tolist() == [2, 0, 1]
    assert torch.equal(gen[0], imgs[2])
    gen.pair_with(start)
    for i in range(3):
        assert torch.equal(gen[i], start[i]) and torch.equal(start[i], imgs[i])
    _write_pngs(tmp_path / "c", imgs[:2])
    with pytest.raises(ValueError, match="pair"):
        ImageSet(tmp_path / "c").pair_with(start)
