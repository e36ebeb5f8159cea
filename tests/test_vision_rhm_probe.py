"""The tree CNN on RHM data and its BP-resampling probe (paper Fig. 8).

Independent evidence used: torch's own ``conv1d`` (for the fast convolution), base-``s`` digit
arithmetic (for the layouts and receptive fields), the grammar's parser (for classes and
trees), exact identities at ``eps = 0`` and binomial statistics at ``eps = 1 - 1/v``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hiergrammar.vision.probes import LayerRecorder
from hiergrammar.vision.rhm_cnn import (
    TreeCNN,
    TreeConv1d,
    accuracy,
    decode,
    encode,
    leaf_grid,
    leaf_values,
    train_tree_cnn,
)
from hiergrammar.vision.rhm_probe import critical_eps, eps_resample, probe_eps_grid

from hiergrammar import RHM


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def tiny():
    """A tiny RHM and a CNN trained on it (about 2 s on 2 cores)."""
    rhm = RHM(v=6, n_classes=6, m=2, s=2, L=3, seed=3)
    trained = train_tree_cnn(
        rhm,
        n_train=2000,
        n_test=1000,
        width=32,
        epochs=5,
        batch_size=64,
        lr=3e-3,
        seed=0,
        num_threads=1,
    )
    return rhm, trained


# -- layouts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("s,L", [(2, 1), (2, 4), (2, 5), (3, 3)])
def test_encode_decode_round_trip(s, L):
    v = 5
    x = np.random.default_rng(0).integers(v, size=(7, s**L))
    for layout in ("1d", "2d"):
        images = encode(x, v, layout=layout, s=s)
        assert images.dtype == torch.float32
        assert set(torch.unique(images).tolist()) <= {-1.0, 1.0}
        assert (images == 1).sum(dim=1).eq(1).all()  # exactly one hot channel per pixel
        assert np.array_equal(decode(images, layout=layout, s=s), x)
        values = leaf_values(images, layout=layout, s=s)
        assert np.array_equal(values, 2.0 * np.eye(v)[x] - 1.0)
    assert tuple(encode(x, v).shape) == (7, v, s**L)
    assert tuple(encode(x, v, layout="2d", s=s).shape) == (7, v, s ** (L // 2), s ** (L - L // 2))


@pytest.mark.parametrize("s,L", [(2, 5), (3, 3), (2, 6)])
def test_leaf_grid_subtrees_are_aligned_blocks(s, L):
    """Every level-l subtree (leaves sharing i // s**l) fills one aligned block of
    s**(l//2) x s**(l - l//2) pixels."""
    grid = leaf_grid(s, L)
    assert sorted(grid.ravel()) == list(range(s**L))
    rows, cols = np.indices(grid.shape)
    for level in range(L + 1):
        h, w = s ** (level // 2), s ** (level - level // 2)
        node = grid // s**level
        for p in range(s ** (L - level)):
            r, c = rows[node == p], cols[node == p]
            assert r.size == h * w
            assert r.max() - r.min() == h - 1 and c.max() - c.min() == w - 1
            assert r.min() % h == 0 and c.min() % w == 0


def test_layout_validation():
    x = np.zeros((2, 8), dtype=np.int64)
    with pytest.raises(ValueError, match="layout"):
        encode(x, 4, layout="3d")
    with pytest.raises(ValueError, match="needs the branching factor"):
        encode(x, 4, layout="2d")
    with pytest.raises(ValueError, match="not a power"):
        encode(x, 4, layout="2d", s=3)
    with pytest.raises(ValueError, match=r"\[0, v\)"):
        encode(x + 4, 4)


# -- architecture ----------------------------------------------------------------------------
def test_tree_conv_equals_torch_conv1d():
    torch.manual_seed(0)
    for s in (2, 3):
        layer = TreeConv1d(5, 7, s).double()
        x = torch.randn(4, 5, s**3, dtype=torch.float64)
        reference = torch.nn.functional.conv1d(x, layer.weight, layer.bias, stride=s)
        assert torch.allclose(layer(x), reference, atol=1e-12)


@pytest.mark.parametrize("s,L", [(2, 4), (3, 2)])
def test_receptive_field_matches_the_tree(s, L):
    """Changing leaf i changes the units of layer l at position i // s**l and no other."""
    v, d = 4, s**L
    model = TreeCNN(v, 3, s, L, width=16, seed=1).double()
    x = np.random.default_rng(2).integers(v, size=(1, d))
    layers = [f"conv{level}" for level in range(1, L + 1)] + [
        f"relu{level}" for level in range(1, L + 1)
    ]

    def activations(inp):
        with LayerRecorder(model, layers) as rec:
            model(encode(inp, v, dtype=torch.float64))
            return {name: act[0] for name, act in rec.pop().items()}

    base = activations(x)
    for leaf in range(d):
        changed = x.copy()
        changed[0, leaf] = (x[0, leaf] + 1) % v
        new = activations(changed)
        for level in range(1, L + 1):
            ancestor = leaf // s**level
            for kind in ("conv", "relu"):
                diff = (new[f"{kind}{level}"] != base[f"{kind}{level}"]).any(dim=0)  # (width_l,)
                others = torch.ones_like(diff)
                others[ancestor] = False
                assert not diff[others].any(), (leaf, level, kind)
            # the ancestor's pre-activations do see the change
            assert (new[f"conv{level}"][:, ancestor] != base[f"conv{level}"][:, ancestor]).any()
        assert tuple(base[f"conv{L}"].shape) == (16, 1)


def test_model_validation():
    with pytest.raises(ValueError, match="width"):
        TreeCNN(4, 3, 2, 3, width=0)
    model = TreeCNN(4, 3, 2, 3, width=8)
    with pytest.raises(ValueError, match=r"\(n, v, s\*\*L\)"):
        model(torch.zeros(2, 4, 16))


# -- training --------------------------------------------------------------------------------
def test_training_reaches_high_accuracy(tiny):
    """Threshold: >= 97% on 1000 fresh samples (chance 1/6) after ~2 s of training."""
    rhm, trained = tiny
    assert trained.test_accuracy >= 0.97
    fresh = rhm.sample(500, seed=99)
    assert accuracy(trained.model, fresh) >= 0.97
    assert trained.loss[-1] < trained.loss[0]


def test_training_is_deterministic():
    rhm = RHM(v=4, n_classes=3, m=2, s=2, L=2, seed=0)
    kwargs = dict(n_train=256, n_test=64, width=8, epochs=1, batch_size=32, seed=5, num_threads=1)
    a, b = train_tree_cnn(rhm, **kwargs), train_tree_cnn(rhm, **kwargs)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = train_tree_cnn(rhm, **{**kwargs, "seed": 6})
    assert not torch.equal(next(a.model.parameters()), next(c.model.parameters()))


# -- resampling and probe --------------------------------------------------------------------
def test_eps_zero_is_the_identity(tiny):
    rhm, trained = tiny
    start = rhm.sample(300, seed=7)
    again = eps_resample(rhm, start.x, 0.0, seed=1)
    for level in range(rhm.L + 1):
        assert np.array_equal(again.levels[level], start.levels[level])
    res = probe_eps_grid(trained.model, rhm, start.x, [0.0], seed=0)
    assert np.abs(res.similarity_mean[0] - 1.0).max() < 1e-9
    assert res.level_kept[0].tolist() == [1.0] * (rhm.L + 1)
    assert res.class_agreement[0] == 1.0 and res.cnn_top1_agreement[0] == 1.0
    assert res.cnn_class_agreement[0] == pytest.approx(accuracy(trained.model, start))


def test_no_information_gives_chance_class_agreement(tiny):
    """At eps = 1 - 1/v the resampled trees are independent of the start, so both the BP class
    and the CNN's prediction agree with the start's class with probability 1/n_c. Tolerance:
    4 binomial standard deviations, sqrt(p (1 - p) / n) = 0.0083 for n = 2000."""
    rhm, trained = tiny
    n, p = 2000, 1.0 / rhm.n_classes
    start = rhm.sample(n, seed=11).x
    res = probe_eps_grid(trained.model, rhm, start, [1.0 - 1.0 / rhm.v], seed=3)
    tol = 4 * np.sqrt(p * (1 - p) / n)
    assert abs(res.class_agreement[0] - p) < tol
    assert abs(res.cnn_class_agreement[0] - p) < tol
    assert res.valid_fraction[0] == 1.0
    # A leaf of an independent draw matches with probability sum_a P(a)^2 >= 1/v, far below 1.
    assert res.level_kept[0, 0] < 0.5
    # Standardised activations of independent inputs are uncorrelated on average: the mean
    # cosine is within 0.1 of 0 (its spread over 2000 images is ~0.01-0.02 per layer).
    assert np.abs(res.similarity_mean[0]).max() < 0.1


def test_similarity_and_class_decrease_with_noise(tiny):
    rhm, trained = tiny
    start = rhm.sample(500, seed=13).x
    res = probe_eps_grid(trained.model, rhm, start, [0.0, 0.3, 0.6, 1 - 1 / rhm.v], seed=0)
    assert np.all(np.diff(res.similarity_mean, axis=0) < 0)
    assert np.all(np.diff(res.class_agreement) < 0)


def test_probe_on_2d_images(tiny):
    """The probe takes any model and input layout: a 2-D CNN on the k-d-tree image layout,
    with alternating (1, s) and (s, 1) kernels, sees its inputs' own trees at eps = 0."""
    rhm = RHM(v=4, n_classes=4, m=2, s=2, L=4, seed=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, (1, 2), (1, 2)),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, (2, 1), (2, 1)),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, (1, 2), (1, 2)),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, (2, 1), (2, 1)),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )
    start = rhm.sample(200, seed=1).x
    res = probe_eps_grid(
        net,
        rhm,
        start,
        [0.0, 0.5],
        seed=0,
        layers=["1", "7", "9"],
        to_input=lambda x: encode(x, rhm.v, layout="2d", s=rhm.s),
    )
    assert np.abs(res.similarity_mean[0] - 1).max() < 1e-9
    assert res.similarity_mean[1].max() < 1.0


def test_resampling_validation():
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    x = rhm.sample(3, seed=0).x
    with pytest.raises(ValueError, match="1 - 1/v"):
        eps_resample(rhm, x, 0.8)
    with pytest.raises(ValueError, match="non-empty"):
        probe_eps_grid(TreeCNN(4, 2, 2, 2, width=4), rhm, x, [])


def test_critical_eps_closed_form():
    for v, m in [(16, 4), (6, 2), (32, 8)]:
        value, source = critical_eps(v, m, 2, exact=False)
        assert value == pytest.approx((v - 2 * m + 1) / (v - m), abs=1e-9), source


# -- the figure step (hiergrammar.figures.cnn_probe) ----------------------------------------
@pytest.mark.slow
def test_reproduce_step_quick(tmp_path):
    from hiergrammar.figures.cnn_probe import QUICK, reproduce_step

    section = reproduce_step(tmp_path, seed=0, sizes=QUICK)
    for name in ("cnn_probe.png", "cnn_probe.npz", "cnn_probe.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "cnn_probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(tmp_path / "cnn_probe.npz")
    n_eps, n_layers = data["similarity_mean"].shape
    assert data["eps"].shape == (n_eps,) and data["eps"][0] == 0.0
    assert list(data["layers"]) == [f"relu{i}" for i in range(1, n_layers)] + ["readout"]
    assert data["level_kept"].shape == (n_eps, n_layers)  # L + 1 levels, L + 1 layers
    meta = json.loads((tmp_path / "cnn_probe.json").read_text())
    assert f"{100 * meta['test_accuracy']:.2f}%" in section.text
    assert meta["eps_star"] == pytest.approx(0.75)
    assert [p.name for p in section.figures] == ["cnn_probe.png"]
