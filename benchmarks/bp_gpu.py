"""Throughput of the torch BP backend on a GPU: samples per second for all marginals, for the
root's marginal only, and for exact posterior sampling, at L=6 and L=10 (v=32, m=8, s=2).

The target is 10^7 samples/s at L=6 on one H200 for all marginals. Plain torch
moves its intermediates through memory (the gathered rule entries, about ``(s + 3) * K * m``
numbers per parent node and sample, roughly 0.5 MB per sample at L=6), so the bandwidth bounds
it well below that; asking for fewer outputs (``levels=[L]``: the upward pass only) shows how
far output size matters. Results are checked against the numba kernel on the first samples.

GPU (unchanged command; CUDA when present)::

    python benchmarks/bp_gpu.py                       # cuda, float32, batch 65536 (L=6)
    python benchmarks/bp_gpu.py --batch 262144 --work-gib 8 --json results/bp_gpu.json

CPU smoke test (seconds)::

    python benchmarks/bp_gpu.py --device cpu --tiny

Prints a table and one JSON line (and writes it to ``--json`` if given).
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

import numpy as np  # noqa: E402

from hiergrammar.rhm import RHM  # noqa: E402


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eps_evidence_on(device, x, eps: float, v: int, dtype):
    """The eps-process likelihoods ``(n, d, v)`` of strings ``x`` built on ``device``."""
    import torch

    x = torch.as_tensor(x, device=device)
    ev = torch.full((*x.shape, v), eps / (v - 1), dtype=dtype, device=device)
    ev.scatter_(-1, x[..., None], 1.0 - eps)
    return ev


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def run(args: argparse.Namespace) -> dict:
    import torch

    from hiergrammar.kernels import numba_bp, torch_bp

    device = torch.device(args.device)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    work = int(args.work_gib * 1024**3)
    results = []
    for L in args.L:
        rhm = RHM(v=args.v, n_classes=args.n_classes, m=args.m, s=2, L=L, seed=0)
        cards = [rhm.card(level) for level in range(L + 1)]
        # the same number of leaves per batch at every depth
        n = max(8, args.batch * 2**6 // 2**L)
        data = rhm.sample(n, seed=1)
        ev = eps_evidence_on(device, data.x, args.eps, rhm.v, dtype)
        gen = torch.Generator(device=device).manual_seed(0)
        cases = {
            "all marginals": lambda ev=ev, rhm=rhm, cards=cards: torch_bp.tree_bp(
                rhm.rules,
                None,
                cards,
                ev,
                dtype=dtype,
                device=device,
                messages=False,
                work_bytes=work,
            ),
            "root marginal only": lambda ev=ev, rhm=rhm, cards=cards, L=L: torch_bp.tree_bp(
                rhm.rules,
                None,
                cards,
                ev,
                dtype=dtype,
                device=device,
                messages=False,
                levels=[L],
                work_bytes=work,
            ),
            "up, down and marginals": lambda ev=ev, rhm=rhm, cards=cards: torch_bp.tree_bp(
                rhm.rules,
                None,
                cards,
                ev,
                dtype=dtype,
                device=device,
                work_bytes=work,
            ),
            "posterior sample": lambda ev=ev, rhm=rhm, cards=cards, gen=gen: (
                torch_bp.posterior_sample(
                    rhm.rules,
                    None,
                    cards,
                    ev,
                    seed=gen,
                    dtype=dtype,
                    device=device,
                    work_bytes=work,
                )
            ),
        }
        # agreement with the numba kernel on the first samples
        check = min(n, 64)
        got = torch_bp.tree_bp(rhm.rules, None, cards, ev[:check], dtype=dtype, device=device)
        want = numba_bp.tree_bp(rhm.rules, None, cards, ev[:check].cpu().numpy(), dtype=np.float64)
        delta = max(
            float(np.abs(g.cpu().numpy() - w).max())
            for g, w in zip(got.marginals, want.marginals, strict=True)
        )
        for name, fn in cases.items():
            seconds = timed(fn, device, args.repeats)
            results.append(
                dict(
                    L=L,
                    case=name,
                    n=n,
                    seconds=seconds,
                    samples_per_s=n / seconds,
                    max_delta_vs_numba=delta,
                )
            )
        del ev
        if device.type == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}, dtype {args.dtype}, v={args.v} m={args.m} n_classes={args.n_classes}, "
        f"best of {args.repeats}"
    )
    print(f"{'L':>3s} {'case':24s} {'batch':>8s} {'seconds':>9s} {'samples/s':>12s} {'max|d|':>9s}")
    for r in results:
        print(
            f"{r['L']:3d} {r['case']:24s} {r['n']:8d} {r['seconds']:9.4f} "
            f"{r['samples_per_s']:12.4g} {r['max_delta_vs_numba']:9.1e}"
        )
    six = [r for r in results if r["L"] == 6 and r["case"] == "all marginals"]
    if six:
        rate = six[0]["samples_per_s"]
        print(
            f"L=6 all marginals: {rate:.3g} samples/s (target >= 1e7 on one H200: "
            f"{'met' if rate >= 1e7 else 'NOT met'})"
        )
    return dict(
        device=name, dtype=args.dtype, v=args.v, m=args.m, n_classes=args.n_classes, results=results
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bp_gpu.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    p.add_argument("--tiny", action="store_true", help="small sizes for a CPU smoke test")
    p.add_argument("--L", type=int, nargs="+", default=[6, 10])
    p.add_argument("--v", type=int, default=32)
    p.add_argument("--n-classes", type=int, default=32)
    p.add_argument("--m", type=int, default=8)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--batch", type=int, default=65536, help="samples at L=6 (fewer at L>6)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--work-gib", type=float, default=2.0, help="working set per chunk (GiB)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        args.L, args.v, args.n_classes, args.m = [3, 4], 8, 4, 3
        args.batch, args.repeats, args.work_gib = 256, 2, 0.25
    out = run(args)
    print(json.dumps(out))
    if args.json:
        from hiergrammar.artifacts import save_json

        save_json(args.json, out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
