"""Training grammar denoisers: every family trains and reverses on the CPU; checkpoints are
safetensors and JSON only, round-trip exactly, and a resumed run continues bit for bit as the
uninterrupted one (independent evidence: a second, uninterrupted training run).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hiergrammar.vision.grammar_diffusion.checkpointing import (
    load_trained_denoiser,
    read_checkpoint,
)
from hiergrammar.vision.grammar_diffusion.diffusions import (
    GaussianDiffusion,
    MaskedDiffusion,
    UniformDiffusion,
)
from hiergrammar.vision.grammar_diffusion.models import build_network
from hiergrammar.vision.grammar_diffusion.sampler import generate
from hiergrammar.vision.grammar_diffusion.train import (
    TrainingConfig,
    TrainingDivergedError,
    train_denoiser,
)

from hiergrammar import RHM, InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def rhm():
    return RHM(v=6, n_classes=3, m=2, s=2, L=2, seed=1)


def _family(name: str):
    return {
        "masked": MaskedDiffusion(6),
        "uniform": UniformDiffusion(6),
        "gaussian": GaussianDiffusion(6, num_train_steps=50),
    }[name]


@pytest.mark.parametrize(
    "family,architecture",
    [
        ("masked", "tree_unet"),
        ("masked", "grammar_transformer"),
        ("uniform", "tree_unet"),
        ("gaussian", "grammar_transformer"),
    ],
)
def test_every_family_trains_and_reverses_on_cpu(rhm, family, architecture):
    fam = _family(family)
    net = (
        build_network(
            architecture, v=6, s=2, L=2, input_kind=fam.input_kind, width=16, seed=0, heads=2
        )
        if architecture == "grammar_transformer"
        else build_network(architecture, v=6, s=2, L=2, input_kind=fam.input_kind, width=16, seed=0)
    )
    data = rhm.sample(256, seed=2).x
    config = TrainingConfig(steps=100, batch_size=64, lr=1e-2, warmup_steps=10, seed=3)
    result = train_denoiser(net, fam, data, config, num_threads=1)
    losses = np.asarray(result.losses)
    assert losses.shape == (100,) and np.isfinite(losses).all()
    # learning: the last 25 steps' loss lies well below the first 25 steps'
    first, last = losses[:25], losses[-25:]
    assert last.mean() < first.mean() - 3 * np.hypot(first.std(), last.std()) / np.sqrt(25)
    out = generate(result.denoiser(), 64, seed=4, steps=20 if family != "masked" else None)
    assert out.shape == (64, 4) and out.min() >= 0 and out.max() < 6
    # even barely trained, the model puts strings in the language more often than chance
    # (uniform random strings of this grammar are accepted with probability 3*8/6**4 < 0.02)
    assert rhm.parse(out).valid.mean() > 0.1


def _config(steps: int) -> TrainingConfig:
    return TrainingConfig(steps=steps, batch_size=32, lr=5e-3, warmup_steps=5, seed=11)


def _net(seed: int = 0):
    return build_network("tree_unet", v=6, s=2, L=2, input_kind="masked", width=8, seed=seed)


def test_resumed_training_continues_exactly(rhm, tmp_path):
    fam = MaskedDiffusion(6)
    data = rhm.sample(100, seed=5).x
    straight = train_denoiser(_net(), fam, data, _config(40), num_threads=1)
    folder = tmp_path / "ckpt"
    half = train_denoiser(
        _net(), fam, data, _config(40), checkpoint_dir=folder, num_threads=1, until=20
    )
    assert read_checkpoint(folder).step == 20 and half.losses == straight.losses[:20]
    # a fresh network (other initial weights): everything comes from the checkpoint
    resumed = train_denoiser(
        _net(seed=99), fam, data, _config(40), checkpoint_dir=folder, resume=True, num_threads=1
    )
    assert resumed.losses == straight.losses
    for name, value in straight.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[name]), name
    # only the newest step folder is kept
    assert sorted(p.name for p in folder.iterdir()) == ["latest.json", "step-00000040"]


def test_checkpoint_round_trip_and_nothing_pickled(rhm, tmp_path):
    fam = MaskedDiffusion(6)
    data = rhm.sample(64, seed=6).x
    folder = tmp_path / "ckpt"
    config = TrainingConfig(steps=12, batch_size=16, seed=0, checkpoint_every=5)
    result = train_denoiser(_net(), fam, data, config, checkpoint_dir=folder, num_threads=1)
    loaded = load_trained_denoiser(folder)
    assert loaded.diffusion.config == fam.config
    x_t = torch.tensor([[6, 1, 6, 6], [6, 6, 6, 6]])
    torch.testing.assert_close(loaded(x_t, torch.tensor(0.7)), result.denoiser()(x_t, 0.7))
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".safetensors"}
    for path in files:
        head = path.read_bytes()[:16]
        assert head[:1] != b"\x80" and head[:2] != b"PK", path  # no pickle, no torch zip
        if path.suffix == ".json":
            json.loads(path.read_text())
    state = json.loads((result.checkpoint / "state.json").read_text())
    assert state["step"] == 12 and len(state["losses"]) == 12
    assert state["data"]["n_train"] == 64 and state["architecture"] == "tree_unet"


def test_resume_is_refused_for_another_run(rhm, tmp_path):
    fam = MaskedDiffusion(6)
    data = rhm.sample(64, seed=7).x
    folder = tmp_path / "ckpt"
    train_denoiser(_net(), fam, data, _config(6), checkpoint_dir=folder, num_threads=1)
    with pytest.raises(InputError, match="holds a checkpoint"):
        train_denoiser(_net(), fam, data, _config(10), checkpoint_dir=folder, num_threads=1)
    with pytest.raises(InputError, match="another run"):
        other = TrainingConfig(steps=10, batch_size=32, lr=1e-3, warmup_steps=5, seed=11)
        train_denoiser(_net(), fam, data, other, checkpoint_dir=folder, resume=True)
    with pytest.raises(InputError, match="data"):
        train_denoiser(_net(), fam, data[:32], _config(10), checkpoint_dir=folder, resume=True)
    with pytest.raises(InputError, match="reads 'masked' inputs"):
        train_denoiser(_net(), UniformDiffusion(6), data, _config(10))


def test_a_diverging_run_stops_with_the_step_and_its_learning_rate(rhm, tmp_path):
    # independent evidence: an undisturbed run of the same settings at a sane learning rate
    # stays finite, and a learning rate of 1e30 sends the weights to inf within a few steps
    fam = MaskedDiffusion(6)
    data = rhm.sample(32, seed=7).x
    sane = TrainingConfig(steps=4, batch_size=8, lr=5e-3, warmup_steps=2, seed=3)
    assert np.isfinite(train_denoiser(_net(), fam, data, sane, num_threads=1).losses).all()
    wild = TrainingConfig(steps=4, batch_size=8, lr=1e30, warmup_steps=2, seed=3)
    folder = tmp_path / "ckpt"
    with pytest.raises(TrainingDivergedError) as caught:
        train_denoiser(_net(), fam, data, wild, checkpoint_dir=folder, num_threads=1)
    err = caught.value
    assert isinstance(err, InputError) and isinstance(err, FloatingPointError)
    assert 0 <= err.step < 4 and not np.isfinite(err.loss)
    assert err.lr == wild.lr_at(err.step)
    assert f"at step {err.step} " in str(err) and "lower the learning rate" in str(err)
    assert read_checkpoint(folder) is None  # the last checkpoint would be at step 4


def test_no_pickle_in_the_package():
    """No module of grammar_diffusion (nor the figure step) imports pickle or calls torch.load,
    np.load with allow_pickle, or torch.save."""
    paths = [*(ROOT / "vision" / "grammar_diffusion").glob("*.py")]
    paths.append(ROOT / "hiergrammar" / "figures" / "learned_vs_exact.py")
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any("pickle" in n for n in names), path
            if isinstance(node, ast.Attribute) and node.attr in ("load", "save"):
                base = getattr(node.value, "id", "")
                assert base != "torch", (path, node.attr)
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                raise AssertionError(f"{path} passes allow_pickle")


@pytest.mark.gpu
def test_training_and_exact_denoiser_on_cuda(rhm):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser

    fam = MaskedDiffusion(6)
    data = rhm.sample(128, seed=8).x
    result = train_denoiser(_net(), fam, data, _config(20), device="cuda")
    assert next(result.network.parameters()).device.type == "cuda"
    exact = ExactDenoiser(rhm, fam, backend="torch", device="cuda")
    x_t = torch.tensor([[6, 1, 6, 6]], device="cuda")
    cpu = ExactDenoiser(rhm, fam)(x_t.cpu(), torch.tensor(0.5))
    torch.testing.assert_close(exact(x_t, torch.tensor(0.5)).cpu(), cpu)
    assert generate(result.denoiser(), 8, seed=0).shape == (8, 4)


def test_command_line_trains_resumes_and_evaluates(tmp_path, capsys):
    from hiergrammar.cli import main

    out = tmp_path / "run"
    common = ["vision", "train-grammar", "--v", "6", "--n-classes", "3", "--m", "2", "--L", "2"]
    common += ["--n-train", "64", "--width", "8", "--batch-size", "16", "--lr", "5e-3"]
    common += ["--warmup-steps", "2", "--out", str(out), "--no-progress", "--device", "cpu"]
    common += ["--threads", "1"]
    assert main([*common, "--steps", "10"]) == 0
    assert main([*common, "--steps", "10"]) == 2  # a checkpoint is there: --resume is needed
    assert "pass --resume to continue it" in capsys.readouterr().err
    evaluate = ["--evaluate", "--t", "0.5", "1.0", "--n-test", "40"]
    evaluate += ["--n-forward-backward", "10", "--n-generate", "20"]
    assert main([*common, "--steps", "20", "--resume", *evaluate]) == 0
    printed = capsys.readouterr().out
    assert "for 20 steps" in printed and "loss gap" in printed
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["t"] == [0.5, 1.0] and evaluation["training"]["steps"] == 20
    assert set(evaluation["loss"]) == {"exact", "learned"}
    assert read_checkpoint(out).step == 20 and (out / "grammar.npz").is_file()
    assert main([*common, "--steps", "5", "--t", "1.5", "--resume"]) == 2  # bad time: no work
