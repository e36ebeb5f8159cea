"""
.. _tutorial-phase-transition:

The phase transition: why the class is lost suddenly
====================================================

Noise the leaves of a deep Random Hierarchy Model a little more, and a little more: the
beliefs about the leaves and the low levels degrade smoothly, but the belief about the class
stays near certainty and then collapses over a narrow range of noise, around a critical value
``eps*``. The deeper the tree, the sharper the step. This is the paper's phase transition
(:doc:`../model` §6, the paper's section 5).

This tutorial measures it with exact BP, then explains it with the mean-field theory: one
number per level, the belief in the true symbol, passed up the tree by a map ``F``. The map and
its critical point are derived by sympy, live, with :mod:`hiergrammar.theory.symbolic` (the
whole derivation is on :doc:`../theory_derivation`).
"""

# %%
# Exact BP: beliefs per level against the noise
# ---------------------------------------------
#
# The paper's model: ``v = n_c = 32`` symbols and classes, ``m = 8`` rules, ``s = 2``. We take
# depth ``L = 6`` (64 leaves), noise the leaves with the epsilon-process, run exact BP, and
# average over nodes, samples and rule draws the marginal belief in the *true* symbol of each
# level (:func:`hiergrammar.experiments.beliefs.bp_profile`).

import matplotlib.pyplot as plt
import numpy as np

from hiergrammar.experiments.beliefs import bp_profile

v, n_c, m, s, L = 32, 32, 8, 2, 6
eps_grid = np.linspace(0.3, 0.95, 14)
exact = bp_profile(v, n_c, m, s, L, eps_grid, n_samples=240, n_rules=2, seed=0)
print("exact.p.shape =", exact.p.shape, " (noise levels, levels 0..L)")

fig, ax = plt.subplots(figsize=(6, 3.6))
for level in range(L + 1):
    colour = plt.cm.viridis(level / L)
    label = "class (level 6)" if level == L else f"level {level}"
    ax.errorbar(
        eps_grid,
        exact.p[:, level],
        exact.p_se[:, level],
        marker="o",
        ms=3,
        color=colour,
        label=label,
    )
ax.set(xlabel="eps", ylabel="belief in the true symbol")
ax.legend(fontsize=8)
plt.show()

# %%
# The leaves' belief falls steadily with ``eps``. The class belief stays high, then drops
# between about 0.65 and 0.8. Where does the step come from, and where is it exactly?
#
# The mean-field map
# ------------------
#
# The mean-field (annealed) theory replaces each BP message by two numbers, the belief ``u`` in
# the true symbol and a common belief in each of the others, and averages over the random
# rules. Going up one level, the children's belief ``u`` becomes the parent's ``F(u)``. Here is
# ``F``, derived by sympy from the ingredients of the average (this runs the derivation now):

import sympy as sp
from hiergrammar.theory.symbolic import Sym, critical_point, derivation

steps = derivation()
F_sym = steps["F_of_u"].expr
print("F(u) =", F_sym)
print("F'(1) =", steps["F_prime_at_1"].expr)

# %%
# ``F`` has two fixed points whatever the parameters: ``u = 1`` (certainty stays certainty)
# and ``u = 1/v`` (no information stays no information). When both are attractive, a third,
# repulsive fixed point ``u*`` separates their basins. A leaf belief ``u_0 = 1 - eps`` above
# ``u*`` climbs to 1 as it is passed up; below ``u*`` it sinks to ``1/v``. So in a deep tree the
# class is recovered for ``eps < eps* = 1 - u*`` and lost beyond:

point = critical_point(v, m, s)
print(point.summary())
eps_star = point.eps_star_float

# %%
# The numeric map of :mod:`hiergrammar.theory.meanfield` is typed in independently; it agrees
# with the one sympy derived:

from hiergrammar.theory import meanfield

F_numeric = sp.lambdify(Sym.u, F_sym.subs({Sym.v: v, Sym.m: m, Sym.s: s}), "numpy")
u = np.linspace(1 / v, 1, 200)
gap = np.abs(F_numeric(u) - meanfield.upward_map(u, v, m, s)).max()
print(f"max |F_sympy - F_meanfield| over [1/v, 1]: {gap:.1e}")
assert gap < 1e-12

# %%
# The map, its fixed points, and the iteration ``u_0 = 1 - eps, u_1 = F(u_0), ...`` (a
# "cobweb" plot) for one noise level on each side of ``eps*``:


def cobweb(ax, u0, levels, colour, label):
    """Draw u_{l+1} = F(u_l) as vertical steps to the map and horizontal steps to the
    diagonal."""
    xs, ys = [u0], [0.0]
    current = u0
    for _ in range(levels):
        nxt = float(meanfield.upward_map(current, v, m, s))
        xs += [current, nxt]
        ys += [nxt, nxt]
        current = nxt
    ax.plot(xs, ys, color=colour, lw=1, label=label)


fig, ax = plt.subplots(figsize=(4.6, 4.6))
ax.plot(u, meanfield.upward_map(u, v, m, s), color="k", label="F(u)")
ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="u")
u_star = point.u_star_float
ax.plot([1 / v, u_star, 1], [1 / v, u_star, 1], "o", color="tab:red", label="fixed points")
cobweb(ax, 1 - (eps_star - 0.08), 8, "tab:blue", f"eps = {eps_star - 0.08:.2f} < eps*")
cobweb(ax, 1 - (eps_star + 0.08), 8, "tab:orange", f"eps = {eps_star + 0.08:.2f} > eps*")
ax.set(xlabel="u (children)", ylabel="F(u) (parent)", xlim=(0, 1), ylim=(0, 1))
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %%
# Why suddenly: the repulsive fixed point
# ---------------------------------------
#
# Near ``u*`` the map stretches distances: ``F'(u*) > 1``. Two leaf beliefs on either side of
# ``u*``, however close, are pushed apart at every level, so after ``L`` levels the class
# belief is a steeper and steeper function of ``eps`` around ``eps*``: a step as
# ``L -> infinity``. A low level ``l`` sees only ``l`` applications of a smooth map, whatever
# the depth, so its belief stays a smooth function of ``eps``. The mean-field profile
# (:func:`hiergrammar.theory.meanfield.profile`, which also runs the downward map) shows both,
# and sits close to the exact BP points measured above:

fine = np.linspace(0.3, 0.95, 300)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for depth in (2, 4, 8, 16, 32):
    prof = meanfield.profile(v, n_c, m, s, depth, fine)
    colour = plt.cm.plasma(np.log2(depth) / 5.5)
    left.plot(fine, prof.p[:, depth], color=colour, label=f"L = {depth}")
    right.plot(fine, prof.p[:, 1], color=colour, label=f"L = {depth}")
theory = meanfield.profile(v, n_c, m, s, L, fine)
left.plot(eps_grid, exact.p[:, L], "ko", ms=3, label="exact BP, L = 6")
left.plot(fine, theory.p[:, L], "k--", lw=1)
right.plot(eps_grid, exact.p[:, 1], "ko", ms=3, label="exact BP, L = 6")
for ax, title in ((left, "class (level L)"), (right, "level 1")):
    ax.axvline(eps_star, color="0.5", ls=":", lw=1)
    ax.set(xlabel="eps", title=f"mean-field belief, {title}")
left.set_ylabel("belief in the true symbol")
left.legend(fontsize=7)
# sphinx_gallery_start_ignore
# the numbers the text gives
deep = meanfield.profile(v, n_c, m, s, 32, [0.70, 0.716]).p
assert deep[0, 32] > 0.995 and abs(deep[1, 32] - 1 / 32) < 1e-3
assert 0 < deep[0, 1] - deep[1, 1] < 0.2
assert abs(deep[0, 1] - meanfield.profile(v, n_c, m, s, 8, 0.70).p[1]) < 0.05
# sphinx_gallery_end_ignore
plt.show()

# %%
# The class curve sharpens into a step at ``eps* = 17/24 ≈ 0.708`` as ``L`` grows: at
# ``L = 32`` the class belief is 1.00 at ``eps = 0.70`` and chance, ``1/32``, at
# ``eps = 0.716``. The level-1 curves hardly depend on the depth: they fall over the whole range
# of ``eps``, with only a small jump at ``eps*``, where the information coming down from the
# class disappears. (At finite ``L`` the class curves cross near, not exactly at, ``eps*``; the
# exact BP points follow the mean-field curve of the same depth.)
#
# Summary
# -------
#
# * Passed up the tree, the belief in the true symbol follows ``u_{l+1} = F(u_l)``, with
#   attractive fixed points at 1 and ``1/v`` and a repulsive one, ``u*``, between them.
# * ``eps* = 1 - u*``: below it deep trees recover the class, above it they lose it; the
#   repulsive fixed point makes the loss sudden, and sharper with depth.
# * Low levels are a few applications of a smooth map: they change gradually, with only a
#   small jump where the class is lost.
#
# Exercises
# ---------
#
# Each answer is checked below.
#
# 1. For ``s = 2`` sympy finds ``eps* = (v - 2m + 1)/(v - m)`` (step ``eps_star_s2``). What is
#    ``eps*`` for ``v = 16, m = 4``? *Answer:* ``9/12 = 3/4``.
# 2. Is ``u = 1`` attractive for the paper's model? *Answer:* yes: ``F'(1) = s m (v - 1) /
#    (v**s - 1) = 16/33 < 1``.
# 3. Iterate ``F`` 200 times from ``u_0 = 1 - eps`` with ``eps = eps* - 0.01`` and
#    ``eps = eps* + 0.01``. Where do you land? *Answer:* at 1 and at ``1/v = 0.03125``, to
#    within ``1e-6``.

eps_star_s2 = steps["eps_star_s2"].expr.subs({Sym.v: 16, Sym.m: 4})
print(
    "exercise 1: eps* =", eps_star_s2, "; critical_point gives", critical_point(16, 4, 2).eps_star
)
assert eps_star_s2 == sp.Rational(3, 4) == critical_point(16, 4, 2).eps_star

slope = steps["F_prime_at_1"].expr.subs({Sym.v: v, Sym.m: m, Sym.s: s})
h = 1e-6
finite_difference = (1 - float(meanfield.upward_map(1 - h, v, m, s))) / h
print(
    f"exercise 2: F'(1) = {slope} = {float(slope):.6f}; finite difference {finite_difference:.6f}"
)
assert slope == sp.Rational(16, 33) and abs(finite_difference - 16 / 33) < 1e-4

for eps, target in ((eps_star - 0.01, 1.0), (eps_star + 0.01, 1 / v)):
    current = 1 - eps
    for _ in range(200):
        current = float(meanfield.upward_map(current, v, m, s))
    print(f"exercise 3: eps = {eps:.4f} -> u_200 = {current:.6f}")
    assert abs(current - target) < 1e-6
