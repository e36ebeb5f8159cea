"""Forward-backward sampling (hiergrammar.vision.forward_backward) against independent evidence.

* ``t = num_steps`` equals diffusers' own ``DDPMPipeline`` / ``DDIMPipeline`` / ``DiTPipeline``
  sampling runs drawn from the same per-image generators (to 1e-5);
* every ``t`` equals an independent port of guided-diffusion's respaced ancestral sampler
  (``tests/adm_reference.py``: its own respacing, posterior coefficients and learned-range
  variance) running the original ADM network whose weights were converted — this pins the
  choice of start timestep and the number of reverse steps;
* ``t = 0`` is the identity, ``t = T`` ignores the input, results depend on the seed only, not
  on the batch size; bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hiergrammar import InputError
from hiergrammar.artifacts import verify_run_folder
from tests.adm_reference import RespacedDiffusion, build_reference, tiny_flags

diffusers = pytest.importorskip("diffusers")

import hiergrammar.vision  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL,
    DDIMPipeline,
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    DiTPipeline,
    DiTTransformer2DModel,
    UNet2DModel,
)
from hiergrammar.vision.adm import adm_config, adm_scheduler, adm_to_diffusers  # noqa: E402
from hiergrammar.vision.pipeline import (  # noqa: E402
    forward_backward,
    forward_backward_latent,
    null_class_label,
    start_timestep,
)

N_STEPS = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def adm_pair():
    """(reference ADM, converted UNet2DModel, adm config): tiny, learned sigma."""
    cfg = adm_config(**tiny_flags())
    ref = build_reference(cfg, seed=1)
    return ref, adm_to_diffusers(ref.state_dict(), cfg), cfg


@pytest.fixture(scope="module")
def plain_unet():
    """A tiny UNet2DModel predicting epsilon only (3 channels)."""
    torch.manual_seed(2)
    return UNet2DModel(
        sample_size=8,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    ).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(3)
    return torch.rand(5, 3, 8, 8, generator=g) * 2 - 1


def _fb(model, sched, x, t, **kw):
    kw.setdefault("progress", False)
    return forward_backward(model, sched, x, t, N_STEPS, **kw)


def test_t0_returns_input_exactly(adm_pair, images):
    _, unet, cfg = adm_pair
    out = _fb(unet, adm_scheduler(cfg), images, 0)
    assert torch.equal(out, images) and out is not images


def test_tT_ignores_input_and_matches_ddpm_pipeline(adm_pair, images):
    _, unet, cfg = adm_pair
    other = -images.flip(0)
    a = _fb(unet, adm_scheduler(cfg), images, N_STEPS, seed=7)
    b = _fb(unet, adm_scheduler(cfg), other, N_STEPS, seed=7)
    assert torch.equal(a, b)
    # the same run through diffusers' own DDPMPipeline (per-image generators, learned_range)
    pipe = DDPMPipeline(unet=unet, scheduler=adm_scheduler(cfg))
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(7 + i) for i in range(len(images))]
    ref = pipe(
        batch_size=len(images), generator=gens, num_inference_steps=N_STEPS, output_type="np"
    ).images
    assert torch.allclose(a / 2 + 0.5, torch.from_numpy(ref).permute(0, 3, 1, 2), atol=1e-5)
    # and the seed matters
    c = _fb(unet, adm_scheduler(cfg), images, N_STEPS, seed=8)
    assert (a - c).abs().mean() > 0.05


def test_tT_matches_ddim_pipeline(plain_unet, images):
    sched = DDIMScheduler(timestep_spacing="leading")
    a = _fb(plain_unet, sched, images, N_STEPS, seed=11)
    pipe = DDIMPipeline(unet=plain_unet, scheduler=DDIMScheduler(timestep_spacing="leading"))
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(11 + i) for i in range(len(images))]
    ref = pipe(
        batch_size=len(images),
        generator=gens,
        num_inference_steps=N_STEPS,
        eta=0.0,
        output_type="np",
    ).images
    assert torch.allclose(a / 2 + 0.5, torch.from_numpy(ref).permute(0, 3, 1, 2), atol=1e-5)


@pytest.mark.parametrize("t", [1, 2, 5, N_STEPS])
def test_matches_guided_diffusion_respaced_sampler(adm_pair, images, t):
    """guided-diffusion: q_sample at respaced index t-1, p_sample at t-1..0, respacing "10"."""
    ref_model, unet, cfg = adm_pair
    gd = RespacedDiffusion(1000, str(N_STEPS), learn_sigma=True)
    seeds = [20 + i for i in range(len(images))]
    with torch.no_grad():
        expected = gd.forward_backward(ref_model, images, t, seeds).clamp(-1, 1)
    got = _fb(unet, adm_scheduler(cfg), images, t, seed=seeds)
    assert gd.timestep_map[t - 1] == start_timestep(adm_scheduler(cfg), t, N_STEPS)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_small_t_stays_close_to_input_large_t_does_not(adm_pair, images):
    _, unet, cfg = adm_pair
    near = (_fb(unet, adm_scheduler(cfg), images, 1) - images).abs().mean()
    far = (_fb(unet, adm_scheduler(cfg), images, N_STEPS) - images).abs().mean()
    assert near < 0.05 < far


def test_deterministic_and_batch_size_independent(adm_pair, images):
    _, unet, cfg = adm_pair
    full = _fb(unet, adm_scheduler(cfg), images, 4, seed=3)
    again = _fb(unet, adm_scheduler(cfg), images, 4, seed=3)
    assert torch.equal(full, again)
    chunked = _fb(unet, adm_scheduler(cfg), images, 4, seed=3, batch_size=2)
    assert torch.allclose(full, chunked, atol=1e-5)
    # image 3 alone, with its own seed 3 + 3, is the same image
    alone = _fb(unet, adm_scheduler(cfg), images[3:4], 4, seed=[6])
    assert torch.allclose(full[3:4], alone, atol=1e-5)
    other = _fb(unet, adm_scheduler(cfg), images, 4, seed=4)
    assert not torch.allclose(full, other, atol=1e-3)


def test_package_level_entry_point(plain_unet, images):
    a = hiergrammar.vision.forward_backward(
        plain_unet, DDPMScheduler(), images, 3, N_STEPS, 0, progress=False
    )
    b = _fb(plain_unet, DDPMScheduler(), images, 3)
    assert torch.equal(a, b)


def test_bf16_autocast_on_cpu_close_to_fp32(plain_unet, images):
    a = _fb(plain_unet, DDPMScheduler(), images, 3)
    b = _fb(plain_unet, DDPMScheduler(), images, 3, dtype=torch.bfloat16)
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().mean() < 0.05


def test_invalid_arguments(plain_unet, images):
    s = DDPMScheduler()
    with pytest.raises(ValueError, match="0 <= t <= num_steps"):
        _fb(plain_unet, s, images, N_STEPS + 1)
    with pytest.raises(ValueError, match="num_steps >= 1"):
        forward_backward(plain_unet, s, images, 0, 0)
    with pytest.raises(ValueError, match="len\\(seeds\\)"):
        _fb(plain_unet, s, images, 2, seed=[1, 2])
    with pytest.raises(ValueError, match="shape"):
        _fb(plain_unet, s, images[0], 2)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        _fb(plain_unet, s, images, 2, batch_size=0)
    # DDIM's step assumes an even stride: 'linspace' with 7 of 1000 steps is uneven
    with pytest.raises(ValueError, match="uneven"):
        forward_backward(
            plain_unet, DDIMScheduler(timestep_spacing="linspace"), images, 2, 7, progress=False
        )
    # a learned-variance scheduler with an epsilon-only model
    with pytest.raises(ValueError, match="learned_range"):
        _fb(plain_unet, DDPMScheduler(variance_type="learned_range"), images, 2)


def test_class_conditional_unet_rejected(images):
    unet = UNet2DModel(
        sample_size=8,
        block_out_channels=(32, 32),
        norm_num_groups=8,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        num_class_embeds=4,
    )
    with pytest.raises(ValueError, match="class-conditional"):
        _fb(unet, DDPMScheduler(), images, 2)


# --------------------------------------------------------------------------------------------
# latent DiT + VAE


@pytest.fixture(scope="module")
def dit_vae():
    torch.manual_seed(4)
    dit = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=4,
        patch_size=2,
        num_embeds_ada_norm=10,
    ).eval()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=8,
    ).eval()
    return dit, vae


def test_latent_t0_identity_and_tT_matches_dit_pipeline(dit_vae, images):
    dit, vae = dit_vae
    assert null_class_label(dit) == 10
    x = images[:3]
    same = forward_backward_latent(dit, vae, DDIMScheduler(), x, 0, N_STEPS, progress=False)
    assert torch.equal(same, x)
    a = forward_backward_latent(
        dit, vae, DDIMScheduler(), x, N_STEPS, N_STEPS, seed=5, progress=False
    )
    b = forward_backward_latent(
        dit, vae, DDIMScheduler(), -x, N_STEPS, N_STEPS, seed=5, progress=False
    )
    assert torch.equal(a, b)
    # DiTPipeline without guidance, every image given the null ("unconditional") class
    pipe = DiTPipeline(transformer=dit, vae=vae, scheduler=DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(5 + i) for i in range(len(x))]
    ref = pipe(
        class_labels=[10] * len(x),
        guidance_scale=1.0,
        generator=gens,
        num_inference_steps=N_STEPS,
        output_type="pt",
    ).images
    assert torch.allclose(a / 2 + 0.5, ref, atol=1e-5)
    # a real class gives another image: the label does reach the model
    c = forward_backward_latent(
        dit, vae, DDIMScheduler(), x, N_STEPS, N_STEPS, seed=5, class_labels=3, progress=False
    )
    assert (a - c).abs().max() > 1e-3
    # one label for all images may be any integer type, and means that label per image
    for label in (np.int64(3), [3] * len(x)):
        same_c = forward_backward_latent(
            dit,
            vae,
            DDIMScheduler(),
            x,
            N_STEPS,
            N_STEPS,
            seed=5,
            class_labels=label,
            progress=False,
        )
        assert torch.equal(same_c, c)


def test_latent_ddpm_learned_range_batch_independent(dit_vae, images):
    dit, vae = dit_vae

    def run(x, **kw):
        return forward_backward_latent(
            dit,
            vae,
            DDPMScheduler(variance_type="learned_range"),
            x,
            4,
            N_STEPS,
            progress=False,
            **kw,
        )

    full = run(images, seed=1)
    assert full.shape == images.shape and full.abs().max() <= 1
    assert torch.allclose(full, run(images, seed=1, batch_size=2), atol=1e-5)
    with pytest.raises(ValueError, match="class_labels"):
        run(images, class_labels=11)


def test_latent_model_saved_and_loaded(dit_vae, images, tmp_path):
    """A DiTPipeline folder loads as a latent model, also in the older Transformer2DModel
    layout of facebook/DiT-XL-2-256, and samples like the in-memory pair."""
    import json

    from hiergrammar.vision.models import load_diffusion

    dit, vae = dit_vae
    DiTPipeline(transformer=dit, vae=vae, scheduler=DDIMScheduler()).save_pretrained(tmp_path)
    cfg_path = tmp_path / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["_class_name"] = "Transformer2DModel"
    cfg_path.write_text(json.dumps(cfg))
    loaded = load_diffusion(tmp_path)
    assert loaded.kind == "latent" and loaded.image_size == 8 and loaded.channels == 3
    got = loaded.forward_backward(images, 3, N_STEPS, seed=2, progress=False)
    want = forward_backward_latent(
        dit, vae, DDIMScheduler(), images, 3, N_STEPS, seed=2, progress=False
    )
    assert torch.allclose(got, want, atol=1e-6)


def test_importing_the_cli_group_does_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, hiergrammar.vision, hiergrammar.cli.vision; "
        "assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_on_cuda(adm_pair, images):
    ref, _, cfg = adm_pair
    gpu = adm_to_diffusers(ref.state_dict(), cfg).to("cuda")
    a = forward_backward(gpu, adm_scheduler(cfg), images, 3, N_STEPS, progress=False)
    b = forward_backward(
        gpu, adm_scheduler(cfg), images, 3, N_STEPS, progress=False, dtype=torch.bfloat16
    )
    assert a.device == images.device and torch.isfinite(b).all()
    assert (a - b).abs().mean() < 0.05
    # cuDNN may pick other (TF32) kernels for another batch size: a looser tolerance
    assert torch.allclose(
        a,
        forward_backward(gpu, adm_scheduler(cfg), images, 3, N_STEPS, progress=False, batch_size=2),
        atol=1e-2,
    )


# --------------------------------------------------------------------------------------------
# accelerate sharding, the CLI, the benchmark


@pytest.fixture(scope="module")
def saved_adm(tmp_path_factory, adm_pair):
    """The tiny converted ADM saved as a DDPMPipeline folder."""
    _, unet, cfg = adm_pair
    folder = tmp_path_factory.mktemp("adm")
    DDPMPipeline(unet=unet, scheduler=adm_scheduler(cfg)).save_pretrained(folder)
    return folder


def test_sharded_single_process_equals_direct(saved_adm, images):
    from hiergrammar.vision.distributed import forward_backward_sharded, process_state
    from hiergrammar.vision.models import load_diffusion

    assert process_state().num_processes == 1
    d = load_diffusion(saved_adm)
    a = forward_backward_sharded(d, images, 3, N_STEPS, seed=4, progress=False)
    b = d.forward_backward(images, 3, N_STEPS, seed=4, progress=False)
    assert torch.equal(a, b)


def _vision_cli(argv):
    """Parse and run ``hiergrammar vision ...`` through the vision command group."""
    import argparse

    from hiergrammar.cli.vision import register

    parser = argparse.ArgumentParser(prog="hiergrammar")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _png(path):
    import numpy as np
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path)).astype("int16"))


def test_cli_sample_end_to_end(saved_adm, adm_pair, tmp_path):
    import json

    from hiergrammar.vision.data import load_image_folder, to_uint8

    from tests.test_vision_data import make_image_folder

    _, unet, cfg = adm_pair
    # 12x12 PNGs: resized and cropped to the model's 8x8
    make_image_folder(tmp_path / "imgs", classes=("n02", "n01"), per_class=3, size=12)
    out = tmp_path / "out"
    rc = _vision_cli(
        [
            "vision",
            "sample",
            "--model",
            str(saved_adm),
            "--images",
            str(tmp_path / "imgs"),
            "--per-class",
            "2",
            "--t",
            "0",
            "3",
            str(N_STEPS),
            "--num-steps",
            str(N_STEPS),
            "--batch-size",
            "3",
            "--seed",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    start, records = load_image_folder(tmp_path / "imgs", 8, per_class=2)
    for t in (0, 3, N_STEPS):
        folder = out / f"t{t:03d}"
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["t"] == t and meta["num_steps"] == N_STEPS
        assert meta["start_timestep"] == start_timestep(adm_scheduler(cfg), t, N_STEPS)
        assert [m["seed"] for m in meta["images"]] == [5, 6, 7, 8]
        assert [(m["class_name"], m["label"]) for m in meta["images"]] == [
            (r.class_name, r.label) for r in records
        ]
        expected = to_uint8(_fb(unet, adm_scheduler(cfg), start, t, seed=5)).permute(0, 2, 3, 1)
        expected = expected.short()
        for m, e in zip(meta["images"], expected, strict=True):
            got = _png(folder / m["file"])
            # t = 0: the preprocessed start image exactly; otherwise the same sample up to a
            # float rounding flip of one uint8 level (batches of 3 here, 4 in `expected`)
            assert (got - e).abs().max() <= (0 if t == 0 else 1)
        # the output is itself an image folder, in the same order
        _, again = load_image_folder(folder, 8)
        assert [(r.class_name, r.stem) for r in again] == [(r.class_name, r.stem) for r in records]
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["n_images"] == 4 and run["summary"]["num_processes"] == 1
    assert run["command"] == "hiergrammar vision sample" and run["seed"] == 5
    assert verify_run_folder(out) == []  # the manifest lists every PNG with its SHA-256
    assert sum(name.endswith(".png") for name in run["files"]) == 4 * 3
    # --resume: only the missing image's batch is recomputed, to the same pixels
    first = out / "t003" / meta["images"][0]["file"]
    last = out / "t003" / meta["images"][-1]["file"]
    before, last_mtime = _png(first), last.stat().st_mtime_ns
    first.unlink()
    assert (
        _vision_cli(
            [
                "vision",
                "sample",
                "--model",
                str(saved_adm),
                "--images",
                str(tmp_path / "imgs"),
                "--per-class",
                "2",
                "--t",
                "0",
                "3",
                str(N_STEPS),
                "--num-steps",
                str(N_STEPS),
                "--batch-size",
                "3",
                "--seed",
                "5",
                "--out",
                str(out),
                "--no-progress",
                "--resume",
            ]
        )
        == 0
    )
    assert torch.equal(_png(first), before)
    assert last.stat().st_mtime_ns == last_mtime  # in the other batch: not rewritten


def test_cli_sample_rejects_bad_arguments(saved_adm, tmp_path):
    base = [
        "vision",
        "sample",
        "--model",
        str(saved_adm),
        "--images",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
        "--num-steps",
        "10",
    ]
    with pytest.raises(ValueError, match="0 <= t <= num_steps"):
        _vision_cli([*base, "--t", "11"])
    with pytest.raises(ValueError, match="per_class >= 1"):
        _vision_cli([*base, "--t", "1", "--per-class", "0"])
    with pytest.raises(FileNotFoundError):
        _vision_cli([*base, "--t", "1", "--images", str(tmp_path / "none")])


_TWO_PROCESS_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from hiergrammar.vision.distributed import (forward_backward_sharded, process_state,
    sample_image_folder)
from hiergrammar.vision.models import load_diffusion
state = process_state()
assert state.num_processes == 2, state
d = load_diffusion(sys.argv[1])
images = torch.load(sys.argv[2])
out = forward_backward_sharded(d, images, 3, 10, seed=4, progress=False)
sample_image_folder(d, sys.argv[3], [3], sys.argv[4], per_class=2, num_steps=10, seed=5,
                    batch_size=1, progress=False)
if state.is_main_process:
    torch.save(out, sys.argv[5])
"""


@pytest.mark.slow
def test_two_cpu_processes_match_one(saved_adm, images, tmp_path):
    """torchrun with 2 CPU processes (gloo): gathered results and written files equal the
    single-process ones."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from hiergrammar.vision.distributed import sample_image_folder
    from hiergrammar.vision.models import load_diffusion

    from tests.test_vision_data import make_image_folder

    make_image_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=2, size=8)
    torch.save(images, tmp_path / "images.pt")
    (tmp_path / "script.py").write_text(_TWO_PROCESS_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "HIERGRAMMAR_NO_PROGRESS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        str(tmp_path / "script.py"),
        str(saved_adm),
        str(tmp_path / "images.pt"),
        str(tmp_path / "imgs"),
        str(tmp_path / "two"),
        str(tmp_path / "gathered.pt"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    d = load_diffusion(saved_adm)
    gathered = torch.load(tmp_path / "gathered.pt")
    direct = d.forward_backward(images, 3, N_STEPS, seed=4, progress=False)
    assert torch.allclose(gathered, direct, atol=1e-5)
    sample_image_folder(
        d,
        tmp_path / "imgs",
        [3],
        tmp_path / "one",
        per_class=2,
        num_steps=N_STEPS,
        seed=5,
        batch_size=1,
        progress=False,
    )
    one = json.loads((tmp_path / "one" / "t003" / "metadata.json").read_text())
    two = json.loads((tmp_path / "two" / "t003" / "metadata.json").read_text())
    assert two["num_processes"] == 2 and one["num_processes"] == 1
    assert one["images"] == two["images"] and len(one["images"]) == 6
    for m in one["images"]:
        a = _png(tmp_path / "one" / "t003" / m["file"])
        b = _png(tmp_path / "two" / "t003" / m["file"])
        assert (a - b).abs().max() <= 1


def test_benchmark_tiny_cpu(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "forward_backward.py"
    spec = importlib.util.spec_from_file_location("bench_forward_backward", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(
        [
            "--device",
            "cpu",
            "--tiny",
            "--num-steps",
            "4",
            "--batch-size",
            "2",
            "--out",
            str(tmp_path / "bench.json"),
        ]
    )
    assert result["images_per_s"] > 0 and result["finite"]
    assert json.loads((tmp_path / "bench.json").read_text())["num_steps"] == 4
    # the full-size network it builds is the paper's ADM-256
    unet, sched, cfg = bench.build(tiny=False, device="meta")
    assert sum(p.numel() for p in unet.parameters()) > 5.5e8
    assert sched.config.variance_type == "learned_range" and cfg["image_size"] == 256


def _sample_argv(model, images, out, *extra):
    return [
        "vision",
        "sample",
        "--model",
        str(model),
        "--images",
        str(images),
        "--per-class",
        "2",
        "--t",
        "0",
        "3",
        "--num-steps",
        str(N_STEPS),
        "--batch-size",
        "2",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _pngs(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_resume_refuses_other_parameters_and_continues_the_same(saved_adm, tmp_path, monkeypatch):
    """An interrupted seed-0 DDPM run is not resumed as seed 7 with DDIM (the fields are
    named, nothing is written); resumed with its own parameters it ends with the very images
    of an uninterrupted run."""
    from hiergrammar.vision.distributed import REQUEST_NAME
    from hiergrammar.vision.models import DiffusionModel

    from tests.test_vision_data import make_image_folder

    make_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=2, size=8)
    out = tmp_path / "out"
    calls = {"n": 0}
    original = DiffusionModel.forward_backward

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # batch 0 done for t = 0 and 3, then the run dies
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionModel, "forward_backward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _vision_cli(_sample_argv(saved_adm, tmp_path / "imgs", out, "--seed", "0"))
    monkeypatch.setattr(DiffusionModel, "forward_backward", original)
    before = _pngs(out)
    assert len(before) == 4 and (out / REQUEST_NAME).is_file()
    assert not (out / "t003" / "metadata.json").exists()

    argv = _sample_argv(saved_adm, tmp_path / "imgs", out, "--resume")
    with pytest.raises(InputError) as err:
        _vision_cli([*argv, "--seed", "7", "--scheduler", "ddim"])
    message = str(err.value)
    assert "seed: 0 saved, 7 requested" in message
    assert "scheduler.class: 'DDPMScheduler' saved, 'DDIMScheduler' requested" in message
    assert _pngs(out) == before and not (out / "t003" / "metadata.json").exists()
    # without --resume, into the same folder with other parameters: refused as well
    with pytest.raises(InputError, match="num_steps: 10 saved, 9 requested"):
        bad = _sample_argv(saved_adm, tmp_path / "imgs", out, "--seed", "0")
        bad[bad.index("--num-steps") + 1] = "9"
        _vision_cli(bad)
    # the image folder changed since: refused (indices, hence seeds, would shift)
    make_image_folder(tmp_path / "imgs", classes=("c",), per_class=1, size=8)
    with pytest.raises(InputError, match="images.n_images: 4 saved, 5 requested"):
        _vision_cli([*argv, "--seed", "0"])
    import shutil

    shutil.rmtree(tmp_path / "imgs" / "c")

    assert _vision_cli([*argv, "--seed", "0"]) == 0
    fresh = tmp_path / "fresh"
    assert _vision_cli(_sample_argv(saved_adm, tmp_path / "imgs", fresh, "--seed", "0")) == 0
    resumed = _pngs(out)
    assert len(resumed) == 8 and resumed == _pngs(fresh)
    assert {k: v for k, v in resumed.items() if k in before} == before  # kept, not rewritten
    meta = json.loads((out / "t003" / "metadata.json").read_text())
    assert [m["seed"] for m in meta["images"]] == [0, 1, 2, 3]


def test_a_folder_of_unknown_images_is_not_resumed(saved_adm, tmp_path):
    from hiergrammar.vision.distributed import REQUEST_NAME

    from tests.test_vision_data import make_image_folder

    make_image_folder(tmp_path / "imgs", classes=("a",), per_class=2, size=8)
    out = tmp_path / "out"
    argv = _sample_argv(saved_adm, tmp_path / "imgs", out)
    assert _vision_cli(argv) == 0
    (out / REQUEST_NAME).unlink()  # e.g. images written by another tool or an older version
    for extra in ([], ["--resume"]):
        with pytest.raises(InputError, match=f"holds images but no {REQUEST_NAME}"):
            _vision_cli([*argv, *extra])


def test_sample_refuses_unreadable_images_before_writing(saved_adm, tmp_path):
    from tests.test_vision_data import make_image_folder

    make_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=2, size=8)
    # named to sort first, so that --per-class 2 selects them
    (tmp_path / "imgs" / "b" / "0_x.png").write_text("not a png")
    good = next((tmp_path / "imgs" / "a").glob("*.png"))
    (tmp_path / "imgs" / "a" / "0_cut.png").write_bytes(good.read_bytes()[:-30])
    with pytest.raises(InputError) as err:
        _vision_cli(_sample_argv(saved_adm, tmp_path / "imgs", tmp_path / "out"))
    message = str(err.value)
    assert "2 of 4 images" in message
    assert "0_cut.png (the file is truncated" in message and "0_x.png (not an image" in message
    assert not (tmp_path / "out").exists()
