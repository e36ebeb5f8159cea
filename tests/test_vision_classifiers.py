"""The paper's ImageNet classifiers: layer lists, offline weights, preprocessing.

The real torchvision architectures are built without weights (``weights=None``); nothing is
downloaded. Layer lists are checked against the architecture itself: every name resolves, the
hooks fire in the list's order during a forward pass (so the list is in depth order), and the
block entries are exactly the model's ConvNeXt / bottleneck blocks.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from hiergrammar.vision import classifiers as clf  # noqa: E402
from hiergrammar.vision.data import to_uint8  # noqa: E402
from hiergrammar.vision.probes import LayerRecorder, resolve_layers  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


EXPECTED_COUNTS = {  # blocks + extra layers, from the architectures' published stage depths
    "convnext_base": 3 + 3 + 27 + 3 + 1 + 3 + 1,  # blocks, stem, 3 downsamplings, logits
    "resnet50": 3 + 4 + 6 + 3 + 3,  # blocks, stem, avgpool, fc
    "wide_resnet50_2": 3 + 4 + 6 + 3 + 3,
    "resnet152": 3 + 8 + 36 + 3 + 3,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", clf.classifier_names())
def test_layer_lists_resolve_and_are_in_depth_order(name):
    model = clf.build_classifier(name)
    layers = clf.classifier_layers(name)
    assert len(layers) == EXPECTED_COUNTS[name]
    modules = resolve_layers(model, layers)

    # The block entries are exactly the architecture's residual blocks (independent count).
    block_type = (
        torchvision.models.convnext.CNBlock
        if name == "convnext_base"
        else torchvision.models.resnet.Bottleneck
    )
    blocks = {n for n, m in model.named_modules() if isinstance(m, block_type)}
    assert blocks == {n for n, m in modules.items() if isinstance(m, block_type)}
    assert clf.logits_layer(name) == layers[-1]

    # Hooks fire in list order during a forward pass: the list is in depth order.
    fired = []
    handles = [m.register_forward_hook(lambda *_, n=n: fired.append(n)) for n, m in modules.items()]
    try:
        with torch.no_grad(), LayerRecorder(model, layers) as rec:
            out = model(torch.randn(1, 3, 64, 64))
            acts = rec.pop()
    finally:
        for h in handles:
            h.remove()
    assert fired == layers
    assert out.shape == (1, 1000)
    assert torch.equal(acts[layers[-1]], out)  # the last hooked layer is the logits


def test_unknown_classifier_name():
    with pytest.raises(ValueError, match="resnet50"):
        clf.classifier_layers("resnet51")


def test_weights_are_the_ones_whose_accuracy_the_paper_quotes():
    # Paper: ConvNeXt-Base 96.9%, ResNet-50 95.4%, Wide ResNet-50-2 95.8%, ResNet-152 96.0%
    # top-5 on ImageNet-1k; torchvision's metadata must round to those values.
    quoted = {"convnext_base": 96.9, "resnet50": 95.4, "wide_resnet50_2": 95.8, "resnet152": 96.0}
    for name, top5 in quoted.items():
        meta = clf.classifier_weights(name).meta["_metrics"]["ImageNet-1K"]["acc@5"]
        assert round(meta, 1) == top5, name


def test_missing_weights_name_the_file_the_place_and_the_url(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        expected = tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
        assert clf.default_weights_path("resnet50") == expected
        with pytest.raises(FileNotFoundError) as err:
            clf.load_classifier("resnet50")
        msg = str(err.value)
        assert str(expected) in msg
        assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in msg
        with pytest.raises(FileNotFoundError, match="nowhere.pth"):
            clf.load_classifier("convnext_base", weights=tmp_path / "nowhere.pth")
    finally:
        torch.hub.set_dir(old)
    assert not (tmp_path / "hub" / "checkpoints").exists()  # nothing was downloaded


@pytest.mark.slow
def test_weights_load_from_torchvision_cache(tmp_path):
    # A state dict placed where torchvision caches it is found and loaded bit for bit.
    reference = clf.build_classifier("resnet50")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        path = clf.default_weights_path("resnet50")
        path.parent.mkdir(parents=True)
        torch.save(reference.state_dict(), path)
        model, preprocess = clf.load_classifier("resnet50")
    finally:
        torch.hub.set_dir(old)
    assert not model.training
    for (k1, v1), (k2, v2) in zip(
        reference.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)
    x = preprocess(torch.rand(2, 3, 256, 256) * 2 - 1)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_to_uint8_round_trips_every_level():
    levels = torch.arange(256, dtype=torch.uint8)
    as_float = levels.float() / 127.5 - 1.0
    assert torch.equal(to_uint8(as_float), levels)
    assert torch.equal(to_uint8(levels), levels)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
    with pytest.raises(ValueError, match="dtype"):
        to_uint8(torch.tensor([1, 2]))


def test_preprocess_matches_closed_form_on_constant_images():
    # A constant image survives resize and crop unchanged, so the output is the closed form
    # (u / 255 - mean_c) / std_c per channel; the size is the weights' crop size.
    weights = clf.classifier_weights("convnext_base")
    preprocess = clf.imagenet_preprocess(weights)
    u = torch.tensor([0, 77, 255], dtype=torch.uint8)
    images = u.view(3, 1, 1, 1).expand(3, 3, 256, 256).float() / 127.5 - 1.0
    out = preprocess(images)
    assert out.shape == (3, 3, 224, 224)
    mean, std = torch.tensor(weights.transforms().mean), torch.tensor(weights.transforms().std)
    expected = (u.double().view(3, 1) / 255 - mean.double()) / std.double()
    got = out.double().mean(dim=(2, 3))
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(
        out.double().std(dim=(2, 3)), torch.zeros(3, 3, dtype=torch.float64), atol=1e-6
    )
