"""Throughput of forward-backward sampling with an ADM-256-sized UNet (random weights).

The network is the paper's class-unconditional 256x256 ADM (552.8M parameters), built by
``hiergrammar.vision.adm.unet2d_config_from_adm(adm_config("256x256_diffusion_uncond"))`` with
random
weights (nothing is downloaded; speed does not depend on the values), sampled with its
``learned_range`` DDPM scheduler over the full respaced chain (``t = num_steps``: one model
call per step).

GPU (what the paper's protocol costs per image)::

    python benchmarks/forward_backward.py                      # cuda, bf16, batch 32, 250 steps
    python benchmarks/forward_backward.py --dtype fp32 --batch-size 16

CPU smoke test (seconds)::

    python benchmarks/forward_backward.py --device cpu --tiny

Prints one JSON object (and writes it to ``--out`` if given): images/s, seconds per reverse
step, the configuration and the device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

#: a tiny ADM with every feature of the 256x256 one, for the CPU smoke test
TINY_FLAGS = dict(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    attention_resolutions="8",
    channel_mult="1,1,2",
    num_head_channels=32,
    learn_sigma=True,
    resblock_updown=True,
    use_scale_shift_norm=True,
)


def build(tiny: bool, device: str):
    """(UNet2DModel with random weights on ``device``, DDPM scheduler, ADM config)."""
    import torch
    from diffusers import UNet2DModel
    from hiergrammar.vision.adm import adm_config, adm_scheduler, unet2d_config_from_adm

    cfg = adm_config(**TINY_FLAGS) if tiny else adm_config("256x256_diffusion_uncond")
    torch.manual_seed(0)
    with torch.device(device):  # initialise in place (fast on cuda; "meta" for no memory)
        unet = UNet2DModel(**unet2d_config_from_adm(cfg)).eval()
    return unet, adm_scheduler(cfg, "ddpm"), cfg


def main(argv: list[str] | None = None) -> dict:
    import torch
    from hiergrammar.vision.pipeline import forward_backward

    from hiergrammar.artifacts import save_json
    from hiergrammar.cli.vision_sample import DTYPES

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny network, batch 4, 10 steps")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 (tiny: 4)")
    p.add_argument("--num-steps", type=int, default=None, help="default 250 (tiny: 10)")
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default bf16 on cuda, fp32 on cpu"
    )
    p.add_argument("--out", default=None, help="also write the JSON result here")
    args = p.parse_args(argv)
    batch = args.batch_size or (4 if args.tiny else 32)
    steps = args.num_steps or (10 if args.tiny else 250)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available (use --device cpu --tiny)")
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = getattr(torch, DTYPES[dtype_name])

    unet, sched, cfg = build(args.tiny, str(device))
    size = cfg["image_size"]
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(t: int):
        return forward_backward(
            unet, sched, images, t, steps, seed=0, dtype=dtype, device=device, progress=False
        )

    run(2)  # warm-up: kernels, allocator, autocast
    sync()
    start = time.perf_counter()
    out = run(steps)  # the full chain: `steps` model calls
    sync()
    seconds = time.perf_counter() - start
    result = {
        "benchmark": "forward_backward",
        "model": "tiny ADM" if args.tiny else "ADM 256x256 uncond (random weights)",
        "parameters": sum(p.numel() for p in unet.parameters()),
        "image_size": size,
        "batch_size": batch,
        "num_steps": steps,
        "dtype": dtype_name,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "seconds": round(seconds, 4),
        "seconds_per_step": round(seconds / steps, 5),
        "images_per_s": batch / seconds,
        "finite": bool(torch.isfinite(out).all()),
    }
    print(json.dumps(result))
    if args.out:
        save_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
