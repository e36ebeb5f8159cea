"""Speed of exact tree BP on the CPU: every backend in one run, beside pyAgrum and pgmpy, with the
distance to this machine's floor.

Everything runs on one RHM (default v=32, n_classes=32, m=8, s=2, L=6) and one batch of
eps-process evidence; every engine's marginals are checked against the numpy reference in
float64. Times are end to end, from a valid ``(n, d, v)`` evidence array (in the message
dtype unless said otherwise) to the result, best of ``--repeats`` runs.

* numpy: :func:`hiergrammar.bp.tree_bp` (the reference), float64 and float32;
* numba: :mod:`hiergrammar.kernels.numba_bp`, float64 and float32, on 1 and 2 threads
  (``numba.set_num_threads``): the full :class:`~hiergrammar.bp.BPResult` (up, down and
  marginals of every level) and the marginals alone (``messages=False``); also
  ``upward_pass`` and ``posterior_sample``, and float64 evidence with float32 messages;
* torch (CPU): :mod:`hiergrammar.kernels.torch_bp`, float32, on 1 and 2 threads;
* pyAgrum ``LazyPropagation`` and pgmpy ``BeliefPropagationWithMessagePassing`` (the timers of
  :mod:`benchmarks.bp_engines`), a few samples each.

The floor. Per sample the rules need ``M`` multiply-adds (upward ``s`` per rule entry and
parent node, downward ``s`` per entry, parent node and child position) and the data must move
``B`` bytes (read the evidence, write the results). This run measures the machine's peak
multiply-add rate ``P`` (a register-resident fused multiply-add loop compiled by numba, on one
thread and on all threads at once) and its write bandwidth ``W`` (numpy filling a large array);
the floor per sample is ``max(M / P, B / W)``, and the printed ratio is measured time / floor.
The load average is printed before and after: on a shared machine, rerun when it is quiet.

Also a deep tree (s=2, L=16, n=10, float32; target under 0.2 s for the marginals of every node,
as the per-sample target; the run that returns every message as well, three times the output,
is printed beside it), and two comparisons through
the public :func:`hiergrammar.bp.tree_bp` (what users call, validation included):

* every backend (``backend="numpy"``, ``"numba"``, ``"torch"`` on the CPU), float32 and float64,
  end to end from the ``(n, d, v)`` evidence array;
* weighted vs uniform rules: a Zipf RHM (``rule_law="zipf"``, ``zipf_a=1``; the same rules as
  the uniform RHM of the seed, unequal probabilities) against the uniform RHM, per sample, on the
  numpy and numba backends, with the ratio (target: at most 1.2x).

Usage::

    python -m benchmarks.bp_kernels                        # the configuration above
    python -m benchmarks.bp_kernels --n 200 --repeats 3 --skip pgmpy deep    # quicker
    python -m benchmarks.bp_kernels --json results/bp_kernels.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from hiergrammar.artifacts import save_json
from hiergrammar.bp import tree_bp
from hiergrammar.kernels import layout
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM

#: Targets: numba float32 / float64 on both cores, per sample; ratio to pyAgrum.
TARGET_F32_US, TARGET_F64_US, PYAGRUM_TARGET, DEEP_TARGET_S = 10.0, 20.0, 2000.0, 0.2

#: Target of the grammars issue: weighted BP at most this many times uniform BP per sample.
WEIGHTED_TARGET = 1.2


# -- the machine ----------------------------------------------------------------------------------
def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _fma_kernel():
    from numba import njit

    @njit(nogil=True, error_model="numpy", fastmath={"contract"})
    def chains(x, a, b, reps):
        # 16 multiply-adds per element and pass, on independent elements: the loop vectoriser
        # keeps several vector chains in flight, so the rate approaches the FMA units' peak
        for _ in range(reps):
            for i in range(x.size):
                v = x[i]
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                v = v * a + b
                x[i] = v

    return chains


def peak_multiply_adds(dtype: type, threads: int, repeats: int) -> float:
    """Multiply-adds per second of a register-resident FMA loop on ``threads`` threads at once
    (best of ``repeats``)."""
    chains = _fma_kernel()
    a, b = dtype(0.999), dtype(0.001)
    xs = [np.ones(512, dtype=dtype) for _ in range(threads)]
    chains(xs[0], a, b, 1)
    reps = 4000
    best = np.inf
    for _ in range(repeats):
        workers = [threading.Thread(target=chains, args=(x, a, b, reps)) for x in xs]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - start)
    return threads * reps * 512 * 16 / best


def write_bandwidth(repeats: int) -> float:
    """Bytes per second of numpy filling a 64 MiB array that is already mapped."""
    a = np.empty(8 * 1024**2)
    a.fill(1.0)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a.fill(2.0)
        best = min(best, time.perf_counter() - start)
    return a.nbytes / best


# -- timing ---------------------------------------------------------------------------------------
def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = fn()  # warm-up (compiles numba kernels on first use, from its disk cache after)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def max_delta(marginals: list, reference: list) -> float:
    worst = 0.0
    for a, b in zip(marginals, reference, strict=True):
        if a is None:
            continue
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    return worst


def _set_threads(numba_threads: int | None = None, torch_threads: int | None = None) -> None:
    if numba_threads is not None:
        import numba

        numba.set_num_threads(numba_threads)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bp_kernels", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--v", type=int, default=32)
    p.add_argument("--n-classes", type=int, default=32)
    p.add_argument("--m", type=int, default=8)
    p.add_argument("--s", type=int, default=2)
    p.add_argument("--L", type=int, default=6)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=1000, help="batch size (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="best of this many runs (5)")
    p.add_argument("--n-pyagrum", type=int, default=10)
    p.add_argument("--n-pgmpy", type=int, default=1)
    p.add_argument("--deep-L", type=int, default=16)
    p.add_argument("--deep-n", type=int, default=10)
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["numpy", "torch", "pyagrum", "pgmpy", "deep", "public", "weighted"],
    )
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    for name in ("n", "repeats", "n_pyagrum", "n_pgmpy", "deep_n"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')}={getattr(args, name)} violates >= 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run(args)


def run(args: argparse.Namespace) -> int:
    """The benchmark proper, on parsed arguments (see :func:`main`)."""
    import numba

    from hiergrammar.kernels import numba_bp

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    rhm = RHM(v=args.v, n_classes=args.n_classes, m=args.m, s=args.s, L=args.L, seed=args.seed)
    cards = [rhm.card(level) for level in range(rhm.L + 1)]
    data = rhm.sample(args.n, seed=args.seed + 1)
    ev64 = eps_evidence(data.x, eps=args.eps, v=rhm.v)
    ev32 = ev64.astype(np.float32)
    flat = layout.flatten_grammar(rhm.rules, None, cards)
    up_ma, down_ma = flat.multiply_adds()
    print(
        f"model {rhm!r}: {sum(rhm.width(l) for l in range(rhm.L + 1))} nodes, {rhm.d} leaves; "
        f"eps-process evidence eps={args.eps}, batch n={args.n}, best of {args.repeats}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} cores, "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
        f"numpy {np.__version__}, numba {numba.__version__}"
    )

    # -- the machine's peaks ------------------------------------------------------------------
    peaks = {}
    for dtype in (np.float32, np.float64):
        for threads in sorted({1, cores}):
            peaks[(dtype.__name__, threads)] = peak_multiply_adds(dtype, threads, args.repeats)
    bandwidth = write_bandwidth(args.repeats)
    print(
        "peak multiply-adds/s (numba FMA loop): "
        + ", ".join(f"{k[0]} {k[1]} thread(s) {v / 1e9:.1f} G" for k, v in peaks.items())
        + f"; write bandwidth {bandwidth / 1e9:.1f} GB/s"
    )

    ref = tree_bp(rhm, ev64, backend="numpy")
    rows: list[dict[str, Any]] = []
    n = args.n

    def add(engine, dtype, threads, fn, marginals_of, outputs, evidence_bytes, samples=n):
        seconds, out = best_time(fn, args.repeats)
        per = seconds / samples
        name = dtype.__name__
        ma = up_ma + (down_ma if outputs != "upward" else 0)
        out_values = {"all": 3, "marginals": 1, "upward": 1, "draws": 0}[outputs]
        b = np.dtype(dtype).itemsize
        moved = evidence_bytes + out_values * flat.row_length * b + 8
        if outputs == "draws":
            moved += 8 * int(flat.widths.sum()) + 8 * (1 + flat.n_internal)
        key = (name, threads if threads else 1)
        floor = max(ma / peaks.get(key, peaks[(name, 1)]), moved / bandwidth)
        delta = max_delta(marginals_of(out), ref.marginals) if marginals_of else None
        rows.append(
            dict(
                engine=engine,
                dtype=name,
                threads=threads,
                per_sample_us=per * 1e6,
                samples_per_s=1 / per,
                multiply_adds=ma,
                bytes_moved=moved,
                floor_us=floor * 1e6,
                ratio_to_floor=per / floor,
                max_delta=delta,
            )
        )

    marg = lambda out: out.marginals  # noqa: E731
    leaf = rhm.d * rhm.v
    if "numpy" not in args.skip:
        for dtype, ev in ((np.float64, ev64), (np.float32, ev32)):
            add(
                "numpy tree_bp (reference)",
                dtype,
                0,
                lambda ev=ev, dt=dtype: tree_bp(rhm, ev, dtype=dt, backend="numpy"),
                marg,
                "all",
                leaf * np.dtype(dtype).itemsize,
            )
    for threads in sorted({1, min(2, cores)}):
        _set_threads(numba_threads=threads)
        for dtype, ev in ((np.float32, ev32), (np.float64, ev64)):
            b = np.dtype(dtype).itemsize
            add(
                "numba tree_bp",
                dtype,
                threads,
                lambda ev=ev, dt=dtype: numba_bp.tree_bp(rhm.rules, None, cards, ev, dtype=dt),
                marg,
                "all",
                leaf * b,
            )
            add(
                "numba tree_bp, marginals only",
                dtype,
                threads,
                lambda ev=ev, dt=dtype: numba_bp.tree_bp(
                    rhm.rules, None, cards, ev, dtype=dt, messages=False
                ),
                marg,
                "marginals",
                leaf * b,
            )
            add(
                "numba upward_pass",
                dtype,
                threads,
                lambda ev=ev, dt=dtype: numba_bp.upward_pass(rhm.rules, None, cards, ev, dtype=dt),
                None,
                "upward",
                leaf * b,
            )
            add(
                "numba posterior_sample",
                dtype,
                threads,
                lambda ev=ev, dt=dtype: numba_bp.posterior_sample(
                    rhm.rules, None, cards, ev, seed=1, dtype=dt
                ),
                None,
                "draws",
                leaf * b,
            )
        add(
            "numba tree_bp, float64 evidence",
            np.float32,
            threads,
            lambda: numba_bp.tree_bp(rhm.rules, None, cards, ev64, dtype=np.float32),
            marg,
            "all",
            leaf * 8,
        )
    _set_threads(numba_threads=min(2, cores))
    if "torch" not in args.skip:
        try:
            import torch  # noqa: F401

            from hiergrammar.kernels import torch_bp
        except ImportError as err:
            print(f"torch skipped: {err}")
        else:
            before = torch.get_num_threads()
            for threads in sorted({1, min(2, cores)}):
                _set_threads(torch_threads=threads)
                add(
                    "torch tree_bp (CPU)",
                    np.float32,
                    threads,
                    lambda: torch_bp.tree_bp(rhm.rules, None, cards, ev32, dtype=np.float32),
                    marg,
                    "all",
                    leaf * 4,
                )
            _set_threads(torch_threads=before)

    # -- the public tree_bp on every backend, and weighted vs uniform rules ---------------------
    public: list[dict[str, Any]] = []
    if "public" not in args.skip:
        for backend in ("numpy", "numba", "torch"):
            if backend == "numpy" and "numpy" in args.skip:
                continue
            if backend == "torch" and ("torch" in args.skip or not _has_torch()):
                continue
            for dtype, ev in ((np.float32, ev32), (np.float64, ev64)):
                seconds, out = best_time(
                    lambda ev=ev, dt=dtype, b=backend: tree_bp(rhm, ev, dtype=dt, backend=b),
                    args.repeats,
                )
                public.append(
                    dict(
                        backend=backend,
                        dtype=dtype.__name__,
                        per_sample_us=seconds / n * 1e6,
                        max_delta=max_delta(out.marginals, ref.marginals),
                    )
                )
    weighted: list[dict[str, Any]] = []
    if "weighted" not in args.skip:
        zipf = RHM(
            v=args.v,
            n_classes=args.n_classes,
            m=args.m,
            s=args.s,
            L=args.L,
            seed=args.seed,
            rule_law="zipf",
            zipf_a=1.0,
        )
        zipf_ev = eps_evidence(zipf.sample(args.n, seed=args.seed + 1).x, eps=args.eps, v=zipf.v)
        for backend in ("numpy", "numba"):
            if backend == "numpy" and "numpy" in args.skip:
                continue
            for dtype in (np.float32, np.float64):
                # Interleaved runs (uniform, weighted, uniform, ...): on a shared machine the
                # load changes between two separate series more than the two computations differ.
                cast = {"uniform": (rhm, ev64.astype(dtype)), "zipf": (zipf, zipf_ev.astype(dtype))}
                calls = {
                    label: (
                        lambda m=model, ev=ev, dt=dtype, b=backend: tree_bp(
                            m, ev, dtype=dt, backend=b
                        )
                    )
                    for label, (model, ev) in cast.items()
                }
                times = {label: np.inf for label in calls}
                for call in calls.values():
                    call()  # warm-up
                for _ in range(2 * args.repeats):
                    for label, call in calls.items():
                        start = time.perf_counter()
                        call()
                        times[label] = min(times[label], time.perf_counter() - start)
                weighted.append(
                    dict(
                        backend=backend,
                        dtype=dtype.__name__,
                        uniform_us=times["uniform"] / n * 1e6,
                        weighted_us=times["zipf"] / n * 1e6,
                        ratio=times["zipf"] / times["uniform"],
                    )
                )

    best32 = min(
        r["per_sample_us"]
        for r in rows
        if r["engine"] == "numba tree_bp" and r["dtype"] == "float32"
    )
    engines = []
    if "pyagrum" not in args.skip or "pgmpy" not in args.skip:
        from benchmarks.bp_engines import time_pgmpy_bp_mp, time_pyagrum

        for key, name, fn, count in (
            ("pyagrum", "pyAgrum LazyPropagation", time_pyagrum, args.n_pyagrum),
            ("pgmpy", "pgmpy BeliefPropagationWithMessagePassing", time_pgmpy_bp_mp, args.n_pgmpy),
        ):
            if key in args.skip:
                continue
            try:
                out = fn(rhm, ev64[:count], ref)
            except ImportError as err:
                print(f"{name} skipped: {err}")
                continue
            engines.append(
                dict(
                    engine=name,
                    samples=count,
                    per_sample_us=out["per_sample"] * 1e6,
                    max_delta=out["max_delta"],
                )
            )

    # -- table ---------------------------------------------------------------------------------
    print()
    head = (
        f"{'engine':36s} {'dtype':7s} {'thr':>3s} {'us/sample':>10s} {'samples/s':>11s} "
        f"{'floor us':>9s} {'x floor':>8s} {'max|d|':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        delta = "" if r["max_delta"] is None else f"{r['max_delta']:.1e}"
        thr = str(r["threads"]) if r["threads"] else "-"
        print(
            f"{r['engine']:36s} {r['dtype']:7s} {thr:>3s} {r['per_sample_us']:10.2f} "
            f"{r['samples_per_s']:11.0f} {r['floor_us']:9.2f} {r['ratio_to_floor']:8.1f} "
            f"{delta:>8s}"
        )
    for e in engines:
        print(
            f"{e['engine']:36s} {'float64':7s} {'1':>3s} {e['per_sample_us']:10.1f} "
            f"{1e6 / e['per_sample_us']:11.1f} {'':9s} {'':8s} {e['max_delta']:8.1e}  "
            f"({e['samples']} samples)"
        )
    print()
    print(
        f"per sample: {up_ma + down_ma:,} multiply-adds ({up_ma:,} upward, {down_ma:,} "
        f"downward); bytes moved (evidence in, results out): float32 all "
        f"{leaf * 4 + 3 * flat.row_length * 4:,}, marginals only {leaf * 4 + flat.row_length * 4:,}"
    )

    if public:
        print()
        print("the public hiergrammar.bp.tree_bp, end to end (validation included):")
        for r in public:
            print(
                f"  backend={r['backend']:6s} {r['dtype']:8s} {r['per_sample_us']:9.2f} us/sample"
                f"  max|d| vs numpy float64 {r['max_delta']:.1e}"
            )
    if weighted:
        print()
        print("weighted (Zipf, zipf_a=1) vs uniform rules, tree_bp per sample:")
        for r in weighted:
            met = "met" if r["ratio"] <= WEIGHTED_TARGET else "NOT met"
            print(
                f"  backend={r['backend']:6s} {r['dtype']:8s} uniform {r['uniform_us']:9.2f} us, "
                f"weighted {r['weighted_us']:9.2f} us: {r['ratio']:.2f}x "
                f"(target <= {WEIGHTED_TARGET:g}: {met})"
            )

    # -- verdicts ------------------------------------------------------------------------------
    def pick(engine, dtype, threads):
        return next(
            r
            for r in rows
            if r["engine"] == engine and r["dtype"] == dtype and r["threads"] == threads
        )

    two = min(2, cores)
    verdicts = []
    for dtype, target in (("float32", TARGET_F32_US), ("float64", TARGET_F64_US)):
        for engine in ("numba tree_bp", "numba tree_bp, marginals only"):
            r = pick(engine, dtype, two)
            met = "met" if r["per_sample_us"] <= target else "NOT met"
            verdicts.append(
                f"{engine} {dtype} on {two} threads: {r['per_sample_us']:.2f} us/sample "
                f"(target <= {target:g}: {met}); {r['ratio_to_floor']:.1f}x the floor"
            )
    if "numpy" not in args.skip:
        for dtype in ("float32", "float64"):
            ref_row = pick("numpy tree_bp (reference)", dtype, 0)
            fast = pick("numba tree_bp", dtype, two)
            verdicts.append(
                f"numba vs numpy reference, {dtype}: "
                f"{ref_row['per_sample_us'] / fast['per_sample_us']:.1f}x"
            )
    for e in engines:
        ratio = e["per_sample_us"] / best32
        line = f"numba float32 vs {e['engine']}: {ratio:,.0f}x"
        if e["engine"].startswith("pyAgrum"):
            met = "met" if ratio >= PYAGRUM_TARGET else "NOT met"
            line += f" (target >= {PYAGRUM_TARGET:g}x: {met})"
        verdicts.append(line)

    deep = None
    if "deep" not in args.skip:
        deep_rhm = RHM(
            v=args.v, n_classes=args.n_classes, m=args.m, s=2, L=args.deep_L, seed=args.seed
        )
        deep_cards = [deep_rhm.card(level) for level in range(deep_rhm.L + 1)]
        deep_data = deep_rhm.sample(args.deep_n, seed=args.seed + 1)
        deep_ev = eps_evidence(deep_data.x, eps=args.eps, v=deep_rhm.v).astype(np.float32)
        deep = {}
        for label, kw in (("all", {}), ("marginals", {"messages": False})):
            seconds, res = best_time(
                lambda kw=kw: numba_bp.tree_bp(
                    deep_rhm.rules, None, deep_cards, deep_ev, dtype=np.float32, **kw
                ),
                max(1, args.repeats // 2),
            )
            deep[label] = seconds
        finite = bool(np.isfinite(res.log_evidence).all())
        accuracy = float((res.marginals[deep_rhm.L][:, 0].argmax(-1) == deep_data.y).mean())
        deep.update(model=repr(deep_rhm), n=args.deep_n, finite=finite, class_accuracy=accuracy)
        met = "met" if deep["marginals"] < DEEP_TARGET_S else "NOT met"
        verdicts.append(
            f"deep tree {deep_rhm!r}, n={args.deep_n}, float32 on {two} threads: "
            f"{deep['marginals']:.3f} s marginals of every node (target < {DEEP_TARGET_S} s: "
            f"{met}); {deep['all']:.3f} s with every message too (three times the output); "
            f"finite: {finite}; class accuracy {accuracy:.2f}"
        )
    load_after = os.getloadavg()
    print()
    print("\n".join(verdicts))
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({cores} cores): figures are from a shared machine when these exceed ~0.5"
    )
    if any((r["max_delta"] or 0) > 1e-4 for r in rows) or any(
        e["max_delta"] > 1e-9 for e in engines
    ):
        print("WARNING: an engine disagrees with the float64 reference beyond tolerance")
    if args.json:
        save_json(
            args.json,
            dict(
                model=repr(rhm),
                n=n,
                eps=args.eps,
                cores=cores,
                load_before=load_before,
                load_after=load_after,
                peaks={f"{k[0]}/{k[1]}": v for k, v in peaks.items()},
                write_bandwidth=bandwidth,
                rows=rows,
                engines=engines,
                verdicts=verdicts,
                deep=deep,
                public=public,
                weighted=weighted,
            ),
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
