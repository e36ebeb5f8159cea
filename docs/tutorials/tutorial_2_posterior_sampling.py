"""
.. _tutorial-posterior-sampling:

Exact posterior sampling and the forward-backward experiment
============================================================

The paper's central experiment is *forward-backward*: take a datum, noise it (the forward
process), and let a perfect denoiser draw a new datum from the posterior given the noisy one
(the backward process). What survives says what the noise destroyed. On images this needs a
trained diffusion model; on a Random Hierarchy Model the posterior is exact, because the data
are the leaves of a tree: belief propagation computes it and
:func:`hiergrammar.sampling.posterior_sample` draws whole trees from it.

This tutorial shows what "resampling the tree given noisy leaves" means on one datum, checks
that the draws follow the exact posterior, and then runs the experiment on many data with
:func:`hiergrammar.sampling.exact_forward_backward`. Conventions: level ``L`` is the class,
level 0 the leaves (:doc:`../model` §1, §4).
"""

# %%
# One datum, its noisy leaves, and trees drawn from the posterior
# ----------------------------------------------------------------
#
# A small grammar: ``v = 8`` symbols, ``n_c = 4`` classes, ``m = 2`` rules per symbol,
# ``s = 2``, depth ``L = 3`` (8 leaves). We noise one datum with the epsilon-process at
# ``eps = 0.7``: each leaf's evidence keeps ``1 - eps = 0.3`` on its symbol and spreads
# ``eps`` over the other seven, so each leaf alone is more likely wrong than right.

import matplotlib.pyplot as plt
import numpy as np

from hiergrammar import RHM
from hiergrammar.noise import eps_evidence
from hiergrammar.sampling import posterior_sample

rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
datum = rhm.sample(1, seed=1)
evidence = eps_evidence(datum.x, eps=0.7, v=rhm.v)  # (1, 8, 8)
for level in range(rhm.L, -1, -1):
    print(f"level {level}: {datum.levels[level][0]}")

n_draws = 4000
draws = posterior_sample(rhm, np.repeat(evidence, n_draws, axis=0), seed=2)
print("every draw is a string of the grammar:", bool(rhm.parse(draws.x).valid.all()))

# %%
# Each draw is a whole tree: a class, the symbols in between, and the leaves, consistent with
# the grammar's rules. Here are the datum (left) and the first six draws; a cell is grey where
# the draw kept the datum's symbol and coloured where it changed it (the drawing helper is in
# the downloadable script).

# sphinx_gallery_start_ignore


def draw_trees(ax, trees, reference, titles):
    """Draw trees side by side, one column per tree, level L on top; each node spans the
    leaves under it. ``trees``: list of lists ``levels[l]`` of shape (width_l,)."""
    L = len(reference) - 1
    for column, (levels, title) in enumerate(zip(trees, titles, strict=True)):
        x0 = column * (rhm.d + 1.5)
        for level in range(L + 1):
            span = rhm.s**level
            for i, value in enumerate(levels[level]):
                same = value == reference[level][i]
                colour = "0.85" if same else plt.cm.tab10(value % 10)
                ax.add_patch(
                    plt.Rectangle((x0 + i * span, level), span, 0.9, color=colour, ec="white")
                )
                ax.text(
                    x0 + i * span + span / 2,
                    level + 0.45,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=9,
                )
        ax.text(x0 + rhm.d / 2, L + 1.2, title, ha="center", fontsize=9)
    ax.set_xlim(-0.5, len(trees) * (rhm.d + 1.5))
    ax.set_ylim(-0.2, L + 1.6)
    ax.set_yticks(np.arange(L + 1) + 0.45, [f"level {lv}" for lv in range(L + 1)])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)


# sphinx_gallery_end_ignore

reference = [lv[0] for lv in datum.levels]
shown = [reference] + [[lv[k] for lv in draws.levels] for k in range(6)]
fig, ax = plt.subplots(figsize=(12, 3.2))
draw_trees(ax, shown, reference, ["datum"] + [f"draw {k}" for k in range(6)])
plt.show()

# %%
# The draws follow the exact posterior
# ------------------------------------
#
# ``posterior_sample`` runs the upward pass of BP and then draws top-down: the class from its
# marginal, then at each node one of its parent's rules, with weight the product of the
# children's upward messages. So the frequency of each value of each node over many draws must
# match the BP marginal of :func:`hiergrammar.bp.tree_bp`. We check it for every node and
# every value: each frequency lies within 5 standard errors of its probability.

from hiergrammar.bp import tree_bp

marginals = tree_bp(rhm, evidence).marginals
worst = 0.0
for level in range(rhm.L + 1):
    for i in range(rhm.width(level)):
        card = rhm.card(level)
        freq = np.bincount(draws.levels[level][:, i], minlength=card) / n_draws
        p = marginals[level][0, i]
        se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n_draws)
        worst = max(worst, float((np.abs(freq - p) / se).max()))
print(f"largest |frequency - marginal| / standard error over all nodes and values: {worst:.2f}")
assert worst < 5

fig, ax = plt.subplots(figsize=(5, 2.6))
classes = np.arange(rhm.n_classes)
freq = np.bincount(draws.y, minlength=rhm.n_classes) / n_draws
ax.bar(classes - 0.2, marginals[rhm.L][0, 0], width=0.4, label="BP marginal")
ax.bar(classes + 0.2, freq, width=0.4, label=f"{n_draws} draws")
ax.set(xlabel="class", ylabel="probability", xticks=classes)
ax.set_title(f"class of the draws (true class {datum.y[0]})", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %%
# The forward-backward experiment
# -------------------------------
#
# Now many data and a range of noise levels. :func:`~hiergrammar.sampling.exact_forward_backward`
# takes a forward process (here :class:`~hiergrammar.noise.EpsProcess`, the paper's
# epsilon-process, whose time *is* eps), noises each datum, and draws one new tree per datum
# from the exact posterior. We measure, per level, the fraction of nodes whose symbol is
# unchanged. A deeper grammar (``L = 5``, 32 leaves) makes the picture clearer.

from hiergrammar.noise import EpsProcess
from hiergrammar.sampling import exact_forward_backward

deep = RHM(v=8, n_classes=8, m=2, s=2, L=5, seed=3)
data = deep.sample(1000, seed=4)
eps_grid = np.linspace(0.0, 0.85, 12)
unchanged = np.empty((eps_grid.size, deep.L + 1))
for k, eps in enumerate(eps_grid):
    new = exact_forward_backward(deep, EpsProcess(v=deep.v), data.x, t=eps, seed=5 + k)
    for level in range(deep.L + 1):
        unchanged[k, level] = (new.levels[level] == data.levels[level]).mean()

fig, ax = plt.subplots(figsize=(6, 3.6))
for level in range(deep.L + 1):
    label = "class (level 5)" if level == deep.L else f"level {level}"
    ax.plot(
        eps_grid,
        unchanged[:, level],
        marker="o",
        ms=3,
        label=label,
        color=plt.cm.viridis(level / deep.L),
    )
ax.axhline(1 / deep.n_classes, color="0.5", ls=":", lw=1, label="chance, 1/n_c")
ax.set(xlabel="eps", ylabel="fraction unchanged")
ax.legend(fontsize=8)
plt.show()

# %%
# At small noise nothing changes: the evidence pins the tree down. As ``eps`` grows, the
# resampled trees keep the class up to a point and then lose it, falling to chance; the leaves
# change more gradually. The third tutorial (:ref:`tutorial-phase-transition`) explains why
# the class goes suddenly in deep trees, with the mean-field theory of the paper.
#
# Summary
# -------
#
# * Resampling the tree given noisy leaves means drawing every latent symbol, class included,
#   from ``P(tree | evidence)``: one upward BP pass and one top-down pass of draws.
# * The draws are always strings of the grammar, and their frequencies match BP's exact
#   marginals.
# * ``exact_forward_backward`` is the paper's experiment with a perfect denoiser: noise, then
#   resample exactly; what survives, level by level, is what the noise left.
#
# Exercises
# ---------
#
# Each answer is checked below.
#
# 1. **No noise.** At ``eps = 0``, what fraction of the symbols changes? *Answer:* none (0 at
#    every level): the one-hot evidence allows one tree only.
# 2. **No information.** At ``eps = 1 - 1/v = 0.875`` the evidence is flat. How often is the
#    class unchanged? *Answer:* ``1/n_c = 0.125`` on average: the new class is drawn from the
#    prior, independently of the old one.
# 3. **Masking.** With :class:`~hiergrammar.noise.MaskingProcess` at ``t = 0.6`` about 60% of
#    the leaves are masked. How many of the *kept* leaves change? *Answer:* none: a kept leaf is
#    observed exactly.

first = exact_forward_backward(deep, EpsProcess(v=deep.v), data.x, t=0.0, seed=6)
changed = [float((first.levels[lv] != data.levels[lv]).mean()) for lv in range(deep.L + 1)]
print("exercise 1: fraction changed per level:", changed)
assert changed == [0.0] * (deep.L + 1)

flat = exact_forward_backward(deep, EpsProcess(v=deep.v), data.x, t=0.875, seed=7)
same_class = (flat.y == data.y).mean()
se = np.sqrt(0.125 * 0.875 / data.n)
print(f"exercise 2: class unchanged {same_class:.3f} (chance 0.125, standard error {se:.3f})")
assert abs(same_class - 0.125) < 4 * se

from hiergrammar.noise import MaskingProcess

masked = exact_forward_backward(deep, MaskingProcess(v=deep.v), data.x, t=0.6, seed=8)
kept = masked.observation != deep.v  # MASK is the symbol v
print(
    f"exercise 3: {1 - kept.mean():.3f} of the leaves masked, "
    f"{int((masked.x[kept] != data.x[kept]).sum())} kept leaves changed"
)
assert (masked.x[kept] == data.x[kept]).all()
