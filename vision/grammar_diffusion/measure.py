"""Learned denoisers against the exact one: denoising loss, forward-backward, generation.

Every function takes denoisers by name (``{"exact": ExactDenoiser(...), "tree_unet": ...}``)
of one diffusion family and feeds them *the same* corrupted strings (one seeded draw per time,
shared by all), so that every difference comes from the denoisers.

* :func:`denoising_losses`: per-leaf cross-entropy ``-log p(x_0,i | x_t)`` of held-out strings
  at several ``t`` (over the masked leaves for the masking family), and each model's gap to a
  reference (the exact denoiser), with paired standard errors. The exact denoiser is the Bayes
  posterior, so in expectation no model's loss is below it.
* :func:`forward_backward_curves`: noise held-out strings to ``t``, run the reverse process
  (:func:`~hiergrammar.vision.grammar_diffusion.sampler.reverse_process`) with each model, parse:
  the fraction the grammar accepts, the fraction of nodes of each level unchanged on the
  accepted ones, and the class transition time ``t*`` (where the class is unchanged half-way
  between 1 and chance; :func:`hiergrammar.experiments.token_changes.class_transition_time`).
* :func:`generation_stats`: generated strings against the grammar (accepted as a whole and up
  to each level) and against the training set (exact copies).
* :func:`compare_with_exact`: all three for one trained model, as JSON (what
  ``hiergrammar vision train-grammar --evaluate`` writes).

Examples
--------
>>> import numpy as np
>>> from hiergrammar import RHM
>>> from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
>>> from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> exact = ExactDenoiser(rhm, MaskedDiffusion(v=8))
>>> held_out = rhm.sample(100, seed=1)
>>> losses = denoising_losses({"exact": exact}, held_out.x, [0.5, 1.0], seed=2)
>>> losses.loss["exact"].shape, float(losses.gap["exact"][0])
((2,), 0.0)
>>> fb = forward_backward_curves(rhm, {"exact": exact}, held_out, [0.2, 1.0], seed=3)
>>> fb.accepted["exact"].tolist()                   # the exact reverse stays in the language
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hiergrammar.vision.grammar_diffusion.denoisers import Denoiser
from hiergrammar.vision.grammar_diffusion.objectives import denoising_cross_entropy
from hiergrammar.vision.grammar_diffusion.sampler import reverse_process

from hiergrammar.experiments.token_changes import class_transition_time
from hiergrammar.validation import InputError, check_int, check_real_array, make_rng

__all__ = [
    "DenoisingLosses",
    "compare_with_exact",
    "ForwardBackwardCurves",
    "GenerationStats",
    "denoising_losses",
    "forward_backward_curves",
    "generation_stats",
]


def _family(denoisers: Mapping[str, Denoiser]):
    if not isinstance(denoisers, Mapping) or not denoisers:
        raise InputError("denoisers must be a non-empty mapping of names to denoisers")
    for name, den in denoisers.items():
        if not isinstance(den, Denoiser):
            raise InputError(f"denoisers[{name!r}] is not a Denoiser ({type(den).__name__})")
    families = {repr(den.diffusion.config) for den in denoisers.values()}
    if len(families) > 1:
        raise InputError(f"the denoisers belong to different diffusion families: {families}")
    return next(iter(denoisers.values())).diffusion


def _times(fam, t: Any) -> np.ndarray:
    times = check_real_array("t", t, ndim=1)
    for time in times:
        fam.check_time(time)
    return times


@dataclass(frozen=True)
class DenoisingLosses:
    """What :func:`denoising_losses` measured.

    Attributes
    ----------
    t : numpy.ndarray
        ``(n_t,)`` times.
    loss, loss_se : dict of str to numpy.ndarray
        Per model, ``(n_t,)``: mean ``-log p(x_0,i | x_t)`` per counted leaf (nats) and its
        standard error over strings (NaN where no leaf counts, e.g. nothing masked).
    gap, gap_se : dict of str to numpy.ndarray
        Per model, ``(n_t,)``: its loss minus the reference's on the same observations, and
        the paired standard error (the sampling noise of the held-out set mostly cancels).
    counted_fraction : numpy.ndarray
        ``(n_t,)``: fraction of leaves counted (masked, for the masking family).
    n : int
        Held-out strings per time.
    reference : str
        The model the gaps are taken against.
    """

    t: np.ndarray
    loss: dict[str, np.ndarray]
    loss_se: dict[str, np.ndarray]
    gap: dict[str, np.ndarray]
    gap_se: dict[str, np.ndarray]
    counted_fraction: np.ndarray
    n: int
    reference: str


def _ratio_se(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of sums ``sum num / sum den`` over strings and its delta-method standard error."""
    total = den.sum()
    if total == 0:
        return float("nan"), float("nan")
    ratio = num.sum() / total
    n = len(num)
    if n < 2:
        return float(ratio), float("nan")
    resid = num - ratio * den
    return float(ratio), float(np.sqrt(n / (n - 1) * (resid**2).sum()) / total)


def denoising_losses(
    denoisers: Mapping[str, Denoiser],
    x0: np.ndarray,
    t: Sequence[float] | np.ndarray,
    *,
    reference: str = "exact",
    seed: int | np.random.Generator | None = 0,
) -> DenoisingLosses:
    """Per-leaf denoising cross-entropy of each model at each ``t``, on shared observations.

    Parameters
    ----------
    denoisers : mapping of str to Denoiser
        Models of one diffusion family; ``reference`` must be one of them.
    x0 : numpy.ndarray
        ``(n, d)`` held-out clean strings.
    t : array_like
        ``(n_t,)`` times ``> 0`` of the family.
    reference : str
        Name of the model the gaps are measured against.
    seed : int, Generator or None
        Seed of the corruption (one draw per time, shared by every model).

    Returns
    -------
    DenoisingLosses

    Raises
    ------
    InputError
        For bad arguments, models of different families or an unknown reference.
    """
    fam = _family(denoisers)
    if reference not in denoisers:
        raise InputError(f"reference={reference!r} is not one of {list(denoisers)}")
    times = _times(fam, t)
    from hiergrammar.processes import check_leaves

    x0 = check_leaves("x0", x0, fam.v)
    n = check_int("len(x0)", x0.shape[0], 2)
    rng = make_rng(seed)
    n_t = times.size
    loss = {name: np.full(n_t, np.nan) for name in denoisers}
    loss_se = {name: np.full(n_t, np.nan) for name in denoisers}
    gap = {name: np.full(n_t, np.nan) for name in denoisers}
    gap_se = {name: np.full(n_t, np.nan) for name in denoisers}
    counted_fraction = np.zeros(n_t)
    truth = torch.as_tensor(x0)
    for k, time in enumerate(times):
        observation = fam.corrupt(x0, float(time), rng)
        x_t = fam.network_input(observation)
        counted = fam.counted_leaves(x_t)
        tt = torch.full((n,), float(time), dtype=torch.float64)
        sums = {}
        for name, den in denoisers.items():
            nll, count = denoising_cross_entropy(den(x_t, tt), truth, counted)
            sums[name] = nll
            loss[name][k], loss_se[name][k] = _ratio_se(nll, count)
        counted_fraction[k] = count.sum() / x0.size
        for name in denoisers:
            gap[name][k], gap_se[name][k] = _ratio_se(sums[name] - sums[reference], count)
    return DenoisingLosses(
        t=times,
        loss=loss,
        loss_se=loss_se,
        gap=gap,
        gap_se=gap_se,
        counted_fraction=counted_fraction,
        n=n,
        reference=reference,
    )


@dataclass(frozen=True)
class ForwardBackwardCurves:
    """What :func:`forward_backward_curves` measured.

    Attributes
    ----------
    t : numpy.ndarray
        ``(n_t,)`` times.
    accepted : dict of str to numpy.ndarray
        Per model, ``(n_t,)``: fraction of reversed strings the grammar accepts.
    unchanged, unchanged_se : dict of str to numpy.ndarray
        Per model, ``(n_t, L + 1)``: among accepted strings, the mean fraction of nodes of each
        level (0 = leaves, ``L`` = class) equal to the original tree's, and its standard error
        (NaN where nothing was accepted).
    t_star : dict of str to float
        Per model, the class transition time (NaN if the class curve never crosses).
    chance : float
        ``P(class unchanged)`` when the new class is independent: ``sum_c prior(c)**2``.
    n : int
        Strings per time.
    steps : int or None
        Reverse steps used (see
        :func:`~hiergrammar.vision.grammar_diffusion.sampler.reverse_process`).
    """

    t: np.ndarray
    accepted: dict[str, np.ndarray]
    unchanged: dict[str, np.ndarray]
    unchanged_se: dict[str, np.ndarray]
    t_star: dict[str, float]
    chance: float
    n: int
    steps: int | None

    def class_changed(self, name: str) -> np.ndarray:
        """``(n_t,)``: fraction of accepted strings whose class changed."""
        return 1.0 - self.unchanged[name][:, -1]


def forward_backward_curves(
    grammar: Any,
    denoisers: Mapping[str, Denoiser],
    data: Any,
    t: Sequence[float] | np.ndarray,
    *,
    steps: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> ForwardBackwardCurves:
    """Noise held-out strings to each ``t``, reverse with every model, parse and compare.

    Parameters
    ----------
    grammar : Grammar
        The data's grammar (parses the results).
    denoisers : mapping of str to Denoiser
        Models of one diffusion family.
    data : GrammarSample
        Held-out strings with their trees (``grammar.sample``).
    t : array_like
        ``(n_t,)`` times of the family.
    steps : int, optional
        Reverse steps (the family's default when None).
    seed : int, Generator or None
        Seed of the corruption (shared by all models) and of the reverse draws (each model gets
        the same stream).

    Returns
    -------
    ForwardBackwardCurves

    Raises
    ------
    InputError
        For bad arguments or models of different families.
    """
    fam = _family(denoisers)
    times = _times(fam, t)
    levels = data.levels
    L = grammar.L
    if len(levels) != L + 1 or levels[0].shape[1] != grammar.d:
        raise InputError("data must be a GrammarSample of this grammar (levels 0..L)")
    n = check_int("data.n", levels[0].shape[0], 1)
    rng = make_rng(seed)
    prior = np.asarray(grammar.root_prior, dtype=np.float64)
    chance = float((prior**2).sum())
    n_t = times.size
    accepted = {name: np.zeros(n_t) for name in denoisers}
    unchanged = {name: np.full((n_t, L + 1), np.nan) for name in denoisers}
    unchanged_se = {name: np.full((n_t, L + 1), np.nan) for name in denoisers}
    for k, time in enumerate(times):
        observation = fam.corrupt(levels[0], float(time), rng)
        reverse_seed = int(rng.integers(2**63))
        for name, den in denoisers.items():
            new = reverse_process(den, observation, float(time), steps=steps, seed=reverse_seed)
            parse = grammar.parse(new)
            ok = np.asarray(parse.valid, dtype=bool)
            accepted[name][k] = ok.mean()
            if not ok.any():
                continue
            for level in range(L + 1):
                got = new if level == 0 else parse.levels[level]
                same = (got[ok] == levels[level][ok]).mean(axis=1)
                unchanged[name][k, level] = same.mean()
                if same.size > 1:
                    unchanged_se[name][k, level] = same.std(ddof=1) / np.sqrt(same.size)
    t_star = {
        name: float(class_transition_time(times, np.nan_to_num(u[:, -1], nan=chance), chance))
        for name, u in unchanged.items()
    }
    return ForwardBackwardCurves(
        t=times,
        accepted=accepted,
        unchanged=unchanged,
        unchanged_se=unchanged_se,
        t_star=t_star,
        chance=chance,
        n=n,
        steps=steps,
    )


@dataclass(frozen=True)
class GenerationStats:
    """Generated strings against the grammar and the training set.

    Attributes
    ----------
    n : int
        Strings generated.
    valid : float
        Fraction the grammar accepts.
    valid_per_level : numpy.ndarray
        ``(L + 1,)``: fraction whose parse exists up to level ``l`` (every node of levels
        ``1..l`` has a rule; ``l = 0`` is 1, ``l = L`` is ``valid``). For an ambiguous grammar
        the parser marks every node of an invalid string, so levels below ``L`` equal ``valid``.
    copied : float
        Fraction identical to a training string.
    copied_valid : float
        Fraction of the accepted strings identical to a training string (NaN if none).
    distinct : float
        Distinct strings over ``n``.
    """

    n: int
    valid: float
    valid_per_level: np.ndarray
    copied: float
    copied_valid: float
    distinct: float

    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-able."""
        return {
            "n": self.n,
            "valid": self.valid,
            "valid_per_level": self.valid_per_level.tolist(),
            "copied": self.copied,
            "copied_valid": self.copied_valid,
            "distinct": self.distinct,
        }


def _rows(x: np.ndarray) -> np.ndarray:
    """Each row of an int array as one opaque value (for set membership)."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def generation_stats(grammar: Any, strings: np.ndarray, train_x: np.ndarray) -> GenerationStats:
    """How many generated strings are in the language (per level) and copied from training.

    Parameters
    ----------
    grammar : Grammar
    strings : numpy.ndarray
        ``(n, d)`` generated strings.
    train_x : numpy.ndarray
        ``(P, d)`` the training strings.

    Returns
    -------
    GenerationStats

    Raises
    ------
    InputError
        For strings of the wrong shape or symbols.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=2, seed=0)
    >>> train = rhm.sample(20, seed=1).x
    >>> stats = generation_stats(rhm, np.concatenate([train[:3], np.zeros((1, 4), int)]), train)
    >>> stats.copied, stats.valid_per_level.tolist()[0]
    (0.75, 1.0)
    """
    from hiergrammar.processes import check_leaves

    strings = check_leaves("strings", strings, grammar.v)
    train_x = check_leaves("train_x", train_x, grammar.v)
    if strings.shape[1] != grammar.d or train_x.shape[1] != grammar.d:
        raise InputError(f"strings and train_x must have d = {grammar.d} columns")
    n = check_int("len(strings)", strings.shape[0], 1)
    parse = grammar.parse(strings)
    ok = np.asarray(parse.valid, dtype=bool)
    per_level = np.ones(grammar.L + 1)
    for level in range(1, grammar.L + 1):
        parsed = np.all([(parse.levels[lv] >= 0).all(axis=1) for lv in range(1, level + 1)], axis=0)
        per_level[level] = parsed.mean()
    per_level[grammar.L] = ok.mean()
    copied = np.isin(_rows(strings), _rows(train_x))
    return GenerationStats(
        n=n,
        valid=float(ok.mean()),
        valid_per_level=per_level,
        copied=float(copied.mean()),
        copied_valid=float(copied[ok].mean()) if ok.any() else float("nan"),
        distinct=float(np.unique(_rows(strings)).size / n),
    )


def compare_with_exact(
    grammar: Any,
    learned: Denoiser,
    train_x: np.ndarray,
    t: Sequence[float] | np.ndarray,
    *,
    n_test: int = 2000,
    n_forward_backward: int = 500,
    n_generate: int = 1000,
    steps: int | None = None,
    seed: int = 0,
    bp_backend: str = "auto",
) -> dict[str, Any]:
    """Every measurement of one learned denoiser against the exact one, as JSON.

    Parameters
    ----------
    grammar : Grammar
        The grammar the model was trained on.
    learned : Denoiser
        The trained model (its ``diffusion`` gives the family).
    train_x : numpy.ndarray
        ``(P, d)`` its training strings (for the copy rate).
    t : array_like
        Times of the loss and forward-backward curves (chain steps for the Gaussian family).
    n_test, n_forward_backward, n_generate : int
        Held-out strings of the loss, per time of forward-backward, and strings generated.
    steps : int, optional
        Reverse steps (the family's default when None).
    seed : int
        Seed of the held-out data and of every draw.
    bp_backend : str
        Backend of the exact denoiser (see
        :class:`~hiergrammar.vision.grammar_diffusion.denoisers.ExactDenoiser`).

    Returns
    -------
    dict
        ``t``, ``loss`` / ``loss_se`` / ``gap`` / ``gap_se`` (``exact`` and ``learned``),
        ``accepted``, ``unchanged`` (model -> level -> list over t), ``t_star``, ``chance`` and
        ``generation`` (``exact`` and ``learned``: :meth:`GenerationStats.summary`).

    Raises
    ------
    InputError
        For bad arguments.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
    >>> from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser
    >>> rhm = RHM(v=6, n_classes=3, m=2, s=2, L=2, seed=0)
    >>> exact = ExactDenoiser(rhm, MaskedDiffusion(v=6))   # stands in for a trained model
    >>> out = compare_with_exact(rhm, exact, rhm.sample(10, seed=1).x, [0.5], n_test=50,
    ...                          n_forward_backward=20, n_generate=20)
    >>> out["gap"]["learned"], out["generation"]["learned"]["valid"]
    ([0.0], 1.0)
    """
    from hiergrammar.vision.grammar_diffusion.denoisers import ExactDenoiser
    from hiergrammar.vision.grammar_diffusion.sampler import generate

    n_test = check_int("n_test", n_test, 2)
    n_forward_backward = check_int("n_forward_backward", n_forward_backward, 1)
    n_generate = check_int("n_generate", n_generate, 1)
    states = np.random.SeedSequence(check_int("seed", seed, 0)).generate_state(5)
    exact = ExactDenoiser(grammar, learned.diffusion, backend=bp_backend)
    models = {"exact": exact, "learned": learned}
    held_out = grammar.sample(n_test, seed=int(states[0]))
    losses = denoising_losses(models, held_out.x, t, seed=int(states[1]))
    fb_data = grammar.sample(n_forward_backward, seed=int(states[2]))
    fb = forward_backward_curves(
        grammar, models, fb_data, losses.t, steps=steps, seed=int(states[3])
    )
    generated = {
        name: generate(den, n_generate, steps=steps, seed=int(states[4]), d=grammar.d)
        for name, den in models.items()
    }
    levels = range(grammar.L + 1)
    return {
        "t": losses.t.tolist(),
        "family": learned.diffusion.config,
        "loss": {k: v.tolist() for k, v in losses.loss.items()},
        "loss_se": {k: v.tolist() for k, v in losses.loss_se.items()},
        "gap": {k: v.tolist() for k, v in losses.gap.items()},
        "gap_se": {k: v.tolist() for k, v in losses.gap_se.items()},
        "counted_fraction": losses.counted_fraction.tolist(),
        "accepted": {k: v.tolist() for k, v in fb.accepted.items()},
        "unchanged": {
            k: {str(lv): v[:, lv].tolist() for lv in levels} for k, v in fb.unchanged.items()
        },
        "t_star": dict(fb.t_star),
        "chance": fb.chance,
        "generation": {
            name: generation_stats(grammar, strings, train_x).summary()
            for name, strings in generated.items()
        },
        "sizes": {
            "n_test": n_test,
            "n_forward_backward": n_forward_backward,
            "n_generate": n_generate,
            "n_train": int(np.asarray(train_x).shape[0]),
            "steps": steps,
            "seed": seed,
        },
    }
