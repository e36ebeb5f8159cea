"""Figure step ``grammar_variants``: the class-reconstruction transition beyond the uniform RHM.

Exact BP under the epsilon-process, P(correct class) vs eps, for four grammars at the same input
length ``d`` (not the same depth: a Sparse RHM's input grows as ``(s (s0 + 1))**L``):

* the uniform RHM (``v, n_classes, m, s``, depth ``L``);
* a Zipf RHM: the same rules, rule probabilities ``p_k ∝ (k+1)**-(1+zipf_a)``
  (:class:`~hiergrammar.rhm.RHM` with ``rule_law="zipf"``);
* a shared-tuple RHM: each symbol's rules drawn independently, so tuples are shared by several
  parents and some strings have several parses (``shared_tuples=True``, an ambiguous grammar);
* a Sparse RHM (:func:`~hiergrammar.families.sparse_rhm`): each informative symbol at a random
  slot of a patch of ``s0 + 1``, depth ``L_sparse`` with ``(s (s0 + 1))**L_sparse = s**L``.

For each grammar, ``n_rules`` independent rule draws (error bars: standard error across them);
per draw, ``n`` strings, their eps-process evidence at every eps, one upward pass
(:func:`hiergrammar.bp.upward_pass`, float32, the default backend: numba where it compiles),
and the fraction of strings whose most probable class is the true one (ties, possible in the
ambiguous grammar, count as a uniform guess among the tied classes). The report measures, per
grammar, the curve's start ``top`` (its value at eps = 0: 1 unless the grammar is ambiguous),
the crossing point where it falls half-way from ``top`` to chance, and the width of the fall from
80 % to 20 % of the way, each with its standard error across rule draws, and compares them with
the uniform RHM's: how each variant moves or smears the transition.

Examples
--------
>>> result = compute_grammar_variants(EXAMPLE, seed=0)
>>> result.accuracy["uniform"].shape          # (n_rules, len(eps))
(2, 3)
>>> float(result.accuracy["uniform"][:, 0].mean())   # no noise: the class is recovered
1.0
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiergrammar.artifacts import ReportSection, progress, save_figure, save_json, save_npz
from hiergrammar.bp import resolve_backend, upward_pass
from hiergrammar.experiments.curves import first_crossing
from hiergrammar.families import sparse_rhm
from hiergrammar.grammar import Grammar
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM
from hiergrammar.validation import InputError

__all__ = [
    "REQUIRES",
    "EXTRA",
    "VARIANTS",
    "LABELS",
    "GrammarVariantsSizes",
    "FULL",
    "QUICK",
    "EXAMPLE",
    "make_grammar",
    "class_accuracy",
    "GrammarVariantsResult",
    "transition",
    "compute_grammar_variants",
    "plot_grammar_variants",
    "describe_grammar_variants",
    "reproduce_step",
    "main",
]

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REQUIRES: tuple[str, ...] = ()
EXTRA: str | None = None

#: The grammars compared, in plot order.
VARIANTS: tuple[str, ...] = ("uniform", "zipf", "shared", "sparse")

LABELS = {
    "uniform": "uniform RHM",
    "zipf": "Zipf RHM",
    "shared": "shared-tuple RHM (ambiguous)",
    "sparse": "Sparse RHM",
}


@dataclass(frozen=True)
class GrammarVariantsSizes:
    """Sizes of the ``grammar_variants`` step.

    ``v, n_classes, m, s``: every grammar's parameters; ``L``: the depth of the three RHMs
    (``d = s**L`` leaves); ``s0`` and ``L_sparse``: the Sparse RHM, with ``(s (s0 + 1))**L_sparse
    == s**L``; ``zipf_a``: the Zipf exponent; ``eps``: the noise grid; ``n`` strings per rule
    draw; ``n_rules`` rule draws per grammar; ``budget_seconds``: the step's time budget on two
    CPU cores.
    """

    v: int
    n_classes: int
    m: int
    s: int
    L: int
    s0: int
    L_sparse: int
    zipf_a: float
    eps: tuple[float, ...]
    n: int
    n_rules: int
    budget_seconds: float

    def __post_init__(self) -> None:
        d, d_sparse = self.s**self.L, (self.s * (self.s0 + 1)) ** self.L_sparse
        if d != d_sparse:
            raise InputError(
                f"the Sparse RHM has (s*(s0+1))**L_sparse = {d_sparse} leaves but the RHMs "
                f"s**L = {d}: the grammars are compared at equal input length"
            )
        if self.n_rules < 1 or self.n < 1 or len(self.eps) < 2:
            raise InputError("n, n_rules >= 1 and at least two eps values are needed")

    @property
    def d(self) -> int:
        """The input length every grammar shares."""
        return self.s**self.L


def _grid(*parts: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(x), 6) for x in np.concatenate(parts))


#: The paper's model (v = n_classes = 32, m = 8, s = 2) at d = 256 leaves. No depth gives a
#: Sparse RHM with s = 2, s0 = 1 exactly 128 leaves (its input is 4**L): 256 = 2**8 = 4**4 is the
#: nearest length both reach. Points are spent where the curves fall: from eps ~ 0.64 (the
#: uniform RHM's class holds to ~0.72) up to 1 - 1/v = 0.96875, where the evidence is flat (the
#: Zipf RHM's class holds to ~0.9), in steps of 0.012 so that the sharpest fall spans points.
FULL = GrammarVariantsSizes(
    v=32,
    n_classes=32,
    m=8,
    s=2,
    L=8,
    s0=1,
    L_sparse=4,
    zipf_a=1.0,
    eps=_grid(np.array([0.0, 0.2, 0.4, 0.5, 0.6]), np.linspace(0.64, 0.96875, 28)),
    n=300,
    n_rules=4,
    budget_seconds=60,
)

#: Tiny sizes for ``--quick`` (a smoke test of the whole pipeline, a few seconds).
QUICK = GrammarVariantsSizes(
    v=8,
    n_classes=8,
    m=2,
    s=2,
    L=4,
    s0=1,
    L_sparse=2,
    zipf_a=1.0,
    eps=(0.0, 0.5, 0.7, 0.78, 0.84, 0.875),
    n=60,
    n_rules=2,
    budget_seconds=5,
)

#: Smaller still, for the examples and tests.
EXAMPLE = GrammarVariantsSizes(
    v=4,
    n_classes=4,
    m=2,
    s=2,
    L=2,
    s0=1,
    L_sparse=1,
    zipf_a=1.0,
    eps=(0.0, 0.4, 0.7),
    n=20,
    n_rules=2,
    budget_seconds=5,
)


def make_grammar(variant: str, sizes: GrammarVariantsSizes, seed: int) -> Grammar:
    """The grammar ``variant`` (one of :data:`VARIANTS`) of rule draw ``seed``.

    Examples
    --------
    >>> make_grammar("sparse", EXAMPLE, seed=0).d == make_grammar("zipf", EXAMPLE, seed=0).d
    True
    """
    z = sizes
    base = dict(v=z.v, n_classes=z.n_classes, m=z.m, s=z.s, L=z.L, seed=seed)
    if variant == "uniform":
        return RHM(**base)
    if variant == "zipf":
        return RHM(**base, rule_law="zipf", zipf_a=z.zipf_a)
    if variant == "shared":
        return RHM(**base, shared_tuples=True)
    if variant == "sparse":
        return sparse_rhm(z.v, z.n_classes, z.m, z.s, z.s0, z.L_sparse, seed=seed)
    raise InputError(f"variant={variant!r} is not one of {list(VARIANTS)}")


def class_accuracy(root_marginal: np.ndarray, y: np.ndarray) -> float:
    """The expected fraction of correct class guesses when the guess is the most probable class,
    ties broken uniformly at random (relative tolerance 1e-5, float32's reach).

    Parameters
    ----------
    root_marginal : numpy.ndarray
        ``(n, n_classes)`` posterior of the class.
    y : numpy.ndarray
        ``(n,)`` true classes.

    Returns
    -------
    float

    Examples
    --------
    >>> class_accuracy(np.array([[0.5, 0.5, 0.0], [0.1, 0.9, 0.0]]), np.array([0, 1]))
    0.75
    """
    top = root_marginal.max(axis=1, keepdims=True)
    best = root_marginal >= top * (1.0 - 1e-5)
    hits = best[np.arange(len(y)), y] / best.sum(axis=1)
    return float(hits.mean())


@dataclass
class GrammarVariantsResult:
    """What :func:`compute_grammar_variants` measured.

    ``accuracy[variant]``: ``(n_rules, len(eps))`` P(correct class) per rule draw;
    ``backend``: the BP backend that ran; ``summary``: the numbers the report quotes (JSON-able;
    NaN where a curve never crosses its level).
    """

    sizes: GrammarVariantsSizes
    seed: int
    eps: np.ndarray
    accuracy: dict[str, np.ndarray]
    backend: str
    summary: dict[str, Any]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every curve as named arrays: ``eps`` and ``{variant}_accuracy`` (per rule draw)."""
        out = {"eps": self.eps}
        for variant, acc in self.accuracy.items():
            out[f"{variant}_accuracy"] = acc
        return out


def _levels(top: float, chance: float) -> tuple[float, float, float]:
    """The half-way, 80 % and 20 % levels of a fall from ``top`` to ``chance``."""
    return (
        chance + 0.5 * (top - chance),
        chance + 0.8 * (top - chance),
        chance + 0.2 * (top - chance),
    )


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error over the finite values (NaN if none; SE NaN with one)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    se = finite.std(ddof=1) / math.sqrt(finite.size) if finite.size > 1 else float("nan")
    return float(finite.mean()), float(se)


def transition(eps: np.ndarray, acc: np.ndarray, chance: float) -> dict[str, Any]:
    """Start, crossing point and width of each rule draw's curve, and their means and standard
    errors across draws.

    Parameters
    ----------
    eps : numpy.ndarray
        ``(k,)`` noise levels, increasing, ``eps[0] = 0``.
    acc : numpy.ndarray
        ``(n_rules, k)`` P(correct class).
    chance : float
        ``1 / n_classes``.

    Returns
    -------
    dict
        ``top``, ``crossing``, ``width`` (each ``[mean, se]``) and the per-draw values.

    Examples
    --------
    >>> eps = np.array([0.0, 0.5, 1.0])
    >>> t = transition(eps, np.array([[1.0, 0.5, 0.0], [1.0, 0.6, 0.0]]), chance=0.0)
    >>> round(t["crossing"][0], 4), round(t["width"][0], 4)    # (0.5 + 0.5833) / 2, ...
    (0.5417, 0.5917)
    """
    tops, crossings, widths = [], [], []
    for curve in acc:
        top = float(curve[0])
        half, high, low = _levels(top, chance)
        tops.append(top)
        crossings.append(first_crossing(eps, curve, half))
        widths.append(first_crossing(eps, curve, low) - first_crossing(eps, curve, high))
    tops_a, cross_a, width_a = (np.array(x) for x in (tops, crossings, widths))
    return {
        "top": list(_mean_se(tops_a)),
        "crossing": list(_mean_se(cross_a)),
        "width": list(_mean_se(width_a)),
        "per_draw": {"top": tops, "crossing": crossings, "width": widths},
    }


def compute_grammar_variants(
    sizes: GrammarVariantsSizes, seed: int = 0, backend: str | None = None
) -> GrammarVariantsResult:
    """Measure P(correct class) vs eps for every variant, per rule draw.

    Parameters
    ----------
    sizes : GrammarVariantsSizes
        :data:`FULL`, :data:`QUICK`, :data:`EXAMPLE` or your own.
    seed : int
        Rule draw ``r`` of variant ``k`` and its strings come from
        ``SeedSequence(seed, spawn_key=(k, r))``.
    backend : {None, "numpy", "numba", "torch"}
        The BP backend (None: the fastest on the CPU).

    Returns
    -------
    GrammarVariantsResult
    """
    z = sizes
    chosen = resolve_backend(backend)
    eps = np.asarray(z.eps, dtype=np.float64)
    chance = 1.0 / z.n_classes
    accuracy: dict[str, np.ndarray] = {}
    jobs = [(k, variant, r) for k, variant in enumerate(VARIANTS) for r in range(z.n_rules)]
    for k, variant, r in progress(jobs, desc="grammar variants", total=len(jobs)):
        rules_seed, data_seed = (
            int(x) for x in np.random.SeedSequence(seed, spawn_key=(k, r)).generate_state(2)
        )
        grammar = make_grammar(variant, z, rules_seed)
        data = grammar.sample(z.n, seed=data_seed)
        acc = accuracy.setdefault(variant, np.empty((z.n_rules, len(eps))))
        for j, e in enumerate(eps):
            evidence = eps_evidence(data.x, float(e), grammar.cards[0])
            up = upward_pass(grammar, evidence, dtype=np.float32, backend=chosen)
            acc[r, j] = class_accuracy(np.asarray(up.root_marginal)[:, 0], data.y)
    per_variant = {variant: transition(eps, accuracy[variant], chance) for variant in VARIANTS}
    reference = per_variant["uniform"]
    for numbers in per_variant.values():
        numbers["crossing_shift_vs_uniform"] = numbers["crossing"][0] - reference["crossing"][0]
        numbers["width_ratio_vs_uniform"] = numbers["width"][0] / reference["width"][0]
    summary = {
        "sizes": asdict(z),
        "d": z.d,
        "seed": seed,
        "backend": chosen,
        "dtype": "float32",
        "chance": chance,
        "variants": per_variant,
    }
    return GrammarVariantsResult(z, seed, eps, accuracy, chosen, summary)


def plot_grammar_variants(result: GrammarVariantsResult) -> Figure:
    """Two panels: P(correct class) vs eps for every grammar (error bars across rule draws),
    and the same curves rescaled to fall from 1 to 0 (``(P - chance) / (top - chance)``), which
    shows shifts and widths apart from the ambiguous grammar's lower start. Returns a matplotlib
    ``Figure``.

    Examples
    --------
    >>> fig = plot_grammar_variants(compute_grammar_variants(EXAMPLE, seed=0))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    z, eps = result.sizes, result.eps
    chance = 1.0 / z.n_classes
    fig = Figure(figsize=(11, 4.2))
    ax_raw, ax_scaled = fig.subplots(1, 2)
    colours = {"uniform": "k", "zipf": "tab:blue", "shared": "tab:red", "sparse": "tab:green"}
    for variant in VARIANTS:
        acc = result.accuracy[variant]
        mean = acc.mean(axis=0)
        se = acc.std(axis=0, ddof=1) / math.sqrt(len(acc)) if len(acc) > 1 else 0 * mean
        top = result.summary["variants"][variant]["top"][0]
        ax_raw.errorbar(
            eps,
            mean,
            yerr=se,
            color=colours[variant],
            marker="o",
            ms=3,
            capsize=2,
            label=LABELS[variant],
        )
        scaled = (mean - chance) / max(top - chance, 1e-12)
        ax_scaled.plot(eps, scaled, color=colours[variant], marker="o", ms=3, label=LABELS[variant])
        crossing = result.summary["variants"][variant]["crossing"][0]
        if np.isfinite(crossing):
            ax_scaled.axvline(crossing, color=colours[variant], lw=0.8, ls="--")
    ax_raw.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
    ax_scaled.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_raw.set_ylabel("P(correct class)")
    ax_scaled.set_ylabel("(P - chance) / (P(eps=0) - chance)")
    for ax in (ax_raw, ax_scaled):
        ax.set_xlabel("noise eps (epsilon-process)")
        ax.set_ylim(-0.05, 1.05)
    ax_raw.set_title(f"class reconstruction at d = {z.d} leaves")
    ax_scaled.set_title("rescaled: shift (dashed: half-way) and width")
    ax_raw.legend(fontsize=8)
    fig.suptitle(
        f"Exact BP on grammar variants (v = {z.v}, n_classes = {z.n_classes}, m = {z.m}, "
        f"s = {z.s}; RHMs L = {z.L}, Sparse RHM s0 = {z.s0}, L = {z.L_sparse})"
    )
    fig.tight_layout()
    return fig


def _pm(pair: list[float], digits: int = 3) -> str:
    mean, se = pair
    if not np.isfinite(mean):
        return "not on this grid"
    if not np.isfinite(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def describe_grammar_variants(result: GrammarVariantsResult) -> str:
    """The report's Markdown, computed from the measured curves.

    Examples
    --------
    >>> text = describe_grammar_variants(compute_grammar_variants(EXAMPLE, seed=0))
    >>> "Uniform RHM: crossing at eps" in text and "The Sparse variant" in text
    True
    """
    z, sm = result.sizes, result.summary
    v = sm["variants"]
    uni = v["uniform"]
    parts = [
        f"Exact BP ({result.backend} backend, float32) on four grammars with the same input "
        f"length d = {z.d}: the uniform, Zipf (zipf_a = {z.zipf_a:g}) and shared-tuple RHMs "
        f"with v = n_classes = {z.v if z.v == z.n_classes else (z.v, z.n_classes)}, m = {z.m}, "
        f"s = {z.s}, L = {z.L}, and the Sparse RHM with s0 = {z.s0}, L = {z.L_sparse}; "
        f"{z.n} strings for each of {z.n_rules} rule draws per point (error bars and ± : "
        "standard error across rule draws). Crossing: where P(correct class) falls half-way "
        "from its value at eps = 0 to chance; width: from 80 % to 20 % of that fall.",
        f"Uniform RHM: crossing at eps = {_pm(uni['crossing'])}, width {_pm(uni['width'])}.",
    ]
    for variant, verb in (("zipf", "Zipf"), ("shared", "shared-tuple"), ("sparse", "Sparse")):
        n = v[variant]
        shift = n["crossing_shift_vs_uniform"]
        ratio = n["width_ratio_vs_uniform"]
        moves = (
            f"moves the crossing by {shift:+.3f} (to {_pm(n['crossing'])})"
            if np.isfinite(shift)
            else "has no crossing on this grid"
        )
        smears = (
            f"{'widens' if ratio > 1 else 'narrows'} the fall {ratio:.2f}x (width "
            f"{_pm(n['width'])})"
            if np.isfinite(ratio)
            else "has no measurable width on this grid"
        )
        start = ""
        if variant == "shared":
            start = (
                f" Its curve starts at P = {_pm(n['top'])} at eps = 0: strings with several "
                "parses keep the class ambiguous without any noise."
            )
        elif variant == "sparse":
            start = (
                f" At this d its tree has L = {z.L_sparse} levels instead of {z.L}, with "
                f"{z.s**z.L_sparse} informative leaves among {z.d}."
            )
        parts.append(f"The {verb} variant {moves} and {smears}.{start}")
    return " ".join(parts)


def reproduce_step(
    out_dir: Path, *, seed: int = 0, sizes: GrammarVariantsSizes = FULL
) -> ReportSection:
    """Compute, plot and describe; write ``grammar_variants.png``, ``grammar_variants.npz`` and
    ``grammar_variants.json`` into ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     section = reproduce_step(Path(tmp), sizes=EXAMPLE)
    ...     [p.name for p in section.figures]
    ['grammar_variants.png']
    """
    out_dir = Path(out_dir)
    result = compute_grammar_variants(sizes, seed=seed)
    fig = save_figure(plot_grammar_variants(result), out_dir / "grammar_variants.png")
    npz = save_npz(out_dir / "grammar_variants.npz", **result.arrays())
    js = save_json(out_dir / "grammar_variants.json", result.summary)
    return ReportSection(
        title="Grammar variants: the transition beyond the uniform RHM",
        text=describe_grammar_variants(result),
        figures=[fig],
        data=[npz, js],
    )


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a convenience entry
    """``python -m hiergrammar.figures.grammar_variants OUT_DIR [--quick] [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    section = reproduce_step(args.out_dir, seed=args.seed, sizes=QUICK if args.quick else FULL)
    print(section.text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
