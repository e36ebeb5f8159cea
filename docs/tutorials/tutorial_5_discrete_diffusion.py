"""
.. _tutorial-discrete-diffusion:

Discrete diffusion and the correlations of token changes
========================================================

Diffusion models for text and other discrete data noise tokens, not pixels: a token is
*masked* (replaced by a special symbol) or *resampled* uniformly, more and more often as the
diffusion time ``t`` runs from 0 to 1. The follow-up of the paper (Sclocchi, Favero, Levi,
Wyart 2024) runs the forward-backward experiment with such processes and looks at which tokens
change together: when whole subtrees are redrawn, neighbouring leaves change at once, and the
correlations of the changes peak where the class is forgotten.

On a Random Hierarchy Model everything is exact: :class:`~hiergrammar.noise.MaskingProcess`
and :class:`~hiergrammar.noise.UniformProcess` give the exact likelihood of a noisy string,
:func:`~hiergrammar.sampling.exact_forward_backward` draws new trees from the exact posterior,
and :func:`~hiergrammar.experiments.change_correlations` measures the correlations.
"""

# %%
# Two forward processes
# ---------------------
#
# Both act on each leaf independently with the signal weight ``alpha(t) = 1 - t`` (the
# default linear schedule). Masking replaces a leaf by ``MASK`` (the integer ``v``, printed
# ``_`` below) with probability ``1 - alpha``; the uniform process redraws it from all ``v``
# symbols with probability ``1 - alpha``, so it may come back unchanged.

import matplotlib.pyplot as plt
import numpy as np

from hiergrammar import RHM
from hiergrammar.noise import MaskingProcess, UniformProcess

rhm = RHM(v=8, n_classes=8, m=2, s=2, L=5, seed=0)  # 32 leaves
processes = {"masking": MaskingProcess(v=rhm.v), "uniform": UniformProcess(v=rhm.v)}
string = rhm.sample(1, seed=1).x


def show(tokens):
    return " ".join("_" if t == rhm.v else str(t) for t in tokens)


print(f"{'clean':>14}: {show(string[0])}")
for name, process in processes.items():
    for t in (0.3, 0.7):
        print(f"{name:>8} t={t}: {show(process.corrupt(string, t, seed=2)[0])}")

# %%
# The likelihood of an observation is exact and simple: a kept leaf is certain, a masked leaf
# says nothing; a uniformly noised leaf keeps ``alpha + (1 - alpha)/v`` on the symbol it shows.

likelihood = processes["masking"].leaf_likelihood(np.array([[3, rhm.v]]), t=0.3)
print("masking, leaves [3, MASK] at t = 0.3:\n", likelihood[0])
likelihood = processes["uniform"].leaf_likelihood(np.array([[3]]), t=0.3)
print("uniform, leaf [3] at t = 0.3:\n", likelihood[0])

# %%
# Forward-backward, level by level
# --------------------------------
#
# For each process and each time, 800 fresh strings are noised and resampled exactly. We
# record the fraction of unchanged symbols at each level and, for the leaves, the change
# indicators ``delta_i = [x_i changed]``, whose covariances
# :func:`~hiergrammar.experiments.change_correlations` averages by the distance ``r`` between
# two leaves (``C(r)``) and by the level of their lowest common ancestor (``C_tree``); the
# susceptibility is ``chi = sum_{r >= 1} C(r)``.

from hiergrammar.experiments import change_correlations
from hiergrammar.experiments.token_changes import class_transition_time
from hiergrammar.sampling import exact_forward_backward

times = np.linspace(0.0, 1.0, 11)
n = 800
results = {}
for name, process in processes.items():
    unchanged = np.empty((times.size, rhm.L + 1))
    corr = []
    for k, t in enumerate(times):
        data = rhm.sample(n, seed=10 + k)
        new = exact_forward_backward(rhm, process, data.x, t=t, seed=100 + k)
        for level in range(rhm.L + 1):
            unchanged[k, level] = (new.levels[level] == data.levels[level]).mean()
        corr.append(change_correlations(data.x, new.x, s=rhm.s))
    results[name] = (unchanged, corr)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, (name, (unchanged, _)) in zip(axes, results.items(), strict=True):
    for level in range(rhm.L + 1):
        label = "class" if level == rhm.L else f"level {level}"
        ax.plot(
            times,
            unchanged[:, level],
            marker="o",
            ms=3,
            label=label,
            color=plt.cm.viridis(level / rhm.L),
        )
    ax.axhline(1 / rhm.n_classes, color="0.5", ls=":", lw=1)
    ax.set(xlabel="t", title=f"{name}: fraction unchanged")
axes[0].legend(fontsize=7)
plt.show()

# %%
# Where the class goes, changes come in chunks
# --------------------------------------------
#
# The susceptibility ``chi`` is zero at ``t = 0`` (nothing changes), small at ``t = 1`` (every
# string is redrawn from scratch) and peaks in between, near the time at which the class is
# forgotten (``class_transition_time``: where the fraction of unchanged classes falls half-way
# to chance). By level of the lowest common ancestor, the
# changes of two leaves covary most when they share a low ancestor: a redrawn subtree changes
# its leaves together.

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
for name, (unchanged, corr) in results.items():
    chi = np.array([c.chi for c in corr])
    t_class = class_transition_time(times, unchanged[:, rhm.L], chance=1 / rhm.n_classes)
    (line,) = left.plot(times, chi, marker="o", ms=3, label=name)
    left.axvline(t_class, color=line.get_color(), ls=":", lw=1)
    peak = int(np.argmax(chi))
    right.plot(
        np.arange(1, rhm.L + 1),
        corr[peak].C_tree[1:],
        marker="o",
        color=line.get_color(),
        label=f"{name}, t = {times[peak]:.1f}",
    )
    print(f"{name}: class transition at t = {t_class:.2f}, chi peaks at t = {times[peak]:.1f}")
    # sphinx_gallery_start_ignore
    # what the text says: the peak is near the transition, and low ancestors covary most
    assert abs(times[peak] - t_class) <= 0.15 and chi[peak] > 2 * max(chi[0], chi[-1])
    assert np.all(np.diff(corr[peak].C_tree[1:]) < 0)
    # sphinx_gallery_end_ignore
left.set(xlabel="t", ylabel="chi", title="susceptibility (dotted: class transition)")
right.set(
    xlabel="level of the common ancestor",
    ylabel="covariance of changes",
    title="C_tree at the peak of chi",
)
left.legend(fontsize=8)
right.legend(fontsize=8)
plt.show()

# %%
# Summary
# -------
#
# * Masking and uniform noise have exact leaf likelihoods, so BP gives the exact posterior of
#   a noisy string and :func:`~hiergrammar.sampling.exact_forward_backward` a perfect denoiser.
# * The class is kept up to a transition time and then forgotten; low levels change more
#   gradually.
# * Changes are correlated along the string, most strongly for leaves with a low common
#   ancestor, and the susceptibility ``chi`` peaks near the class transition: there, whole
#   subtrees are redrawn at once.
#
# Exercises
# ---------
#
# Each answer is checked below.
#
# 1. At ``t = 0``, what are ``chi`` and the fraction of changed leaves? *Answer:* both 0,
#    exactly, for both processes.
# 2. At ``t = 1`` with masking every leaf is ``MASK``. How often is the class unchanged?
#    *Answer:* ``1/n_c = 0.125`` on average: the new tree is a fresh sample of the grammar.
# 3. With masking, can a leaf change more often than it is masked? *Answer:* no: at every
#    time, the fraction of changed leaves is at most ``1 - alpha(t) = t`` (a kept leaf never
#    changes).

for name, (unchanged, corr) in results.items():
    print(f"exercise 1, {name}: chi = {corr[0].chi}, changed leaves = {1 - unchanged[0, 0]}")
    assert corr[0].chi == 0.0 and unchanged[0, 0] == 1.0

same_class = results["masking"][0][-1, rhm.L]
se = np.sqrt(0.125 * 0.875 / n)
print(f"exercise 2: class unchanged {same_class:.3f} (chance 0.125, standard error {se:.3f})")
assert abs(same_class - 0.125) < 4 * se

changed = 1 - results["masking"][0][:, 0]
print("exercise 3: changed leaves - t =", np.round(changed - times, 3))
# the masked fraction itself fluctuates: allow 4 standard errors of a mean over n * d leaves
assert (changed <= times + 4 * np.sqrt(times * (1 - times) / (n * rhm.d)) + 1e-12).all()
