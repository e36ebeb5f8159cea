"""
.. _tutorial-exact-bp:

Exact belief propagation by hand on a tiny tree
===============================================

This tutorial runs sum-product belief propagation (BP) by hand on a Random Hierarchy Model
(RHM) small enough to print every message, then checks the result three ways: against
:func:`hiergrammar.bp.tree_bp`, against brute-force enumeration of all trees, and against
pgmpy's ``BeliefPropagation`` on the same factor graph. The equations are those of
:doc:`../model` (§4; the paper's eqs. 7-8). Conventions: level ``L`` is the class (the root),
level 0 the input (the leaves), and node ``i`` has the children ``s*i .. s*i+s-1``.

Every number on this page was computed when the site was built, and every agreement it claims
is asserted, so the page cannot drift from the code.
"""

# %%
# The grammar
# -----------
#
# We take ``v = 4`` symbols, ``n_c = 2`` classes, ``m = 2`` rules per symbol, branching
# ``s = 2`` and depth ``L = 2``: a class writes two level-1 symbols, each of which writes two
# input symbols, so an input is a string of ``d = s**L = 4`` symbols.

import numpy as np

from hiergrammar import RHM

np.set_printoptions(precision=4, suppress=True)
rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=2)
print(rhm)
print("rules[2].shape =", rhm.rules[2].shape, " (n_classes, m, s)")
print("rules[1].shape =", rhm.rules[1].shape, " (v, m, s)")

# %%
# ``rhm.rules[l][a]`` lists the ``m`` tuples that symbol ``a`` of level ``l`` may write at
# level ``l - 1``:

for level in range(rhm.L, 0, -1):
    kind = "class " if level == rhm.L else "symbol"
    for a, tuples in enumerate(rhm.rules[level]):
        writes = "   ".join(f"{a} -> {' '.join(map(str, t))}" for t in tuples)
        print(f"level {level}, {kind} {a}:   {writes}")

# %%
# No tuple appears twice in a level: two symbols never write the same string, so every valid
# input has exactly one parse. There are ``n_c * m**N = 2 * 2**3 = 16`` trees (a class and one
# rule choice at each of the ``N = 3`` internal nodes), each with prior probability
# ``1/2 * 2**-3 = 1/16``.
#
# One datum and its noisy evidence
# --------------------------------
#
# We sample one datum (class, level-1 symbols, input) and corrupt it with the
# **epsilon-process** (the paper's eqs. 9-10): each leaf only tells us "my symbol is ``x_i``
# with belief ``1 - eps``, any other symbol with ``eps / (v - 1)``". This likelihood vector per
# leaf is the *leaf evidence*, shape ``(n, d, v)``.

from hiergrammar.noise import eps_evidence

eps = 0.4
datum = rhm.sample(1, seed=2)
for level in range(rhm.L, -1, -1):
    print(f"level {level}: {datum.levels[level][0]}")
evidence = eps_evidence(datum.x, eps=eps, v=rhm.v)  # (1, 4, 4)
print("leaf evidence (row i: leaf i, column: symbol):")
print(evidence[0])

# %%
# The factor graph
# ----------------
#
# :func:`hiergrammar.graphs.to_factor_graph` writes the model as a pgmpy ``FactorGraph``: one
# variable ``h{level}_{index}`` per node, one 0/1 factor ``psi(a; b_1, b_2)`` per internal
# node (1 exactly when ``a -> b_1 b_2`` is a rule), a prior factor on the root and one
# evidence factor per leaf. Each variable has exactly one factor above it and one below, so
# the graph is a tree. In the drawing (right) the square above the root is the prior, the
# square below each internal node its rule factor, and the squares under the leaves the
# evidence; the tree (left) shows each node's sampled symbol under its name.

import matplotlib.pyplot as plt

from hiergrammar.graphs import draw_factor_graph, draw_tree, node_name, to_factor_graph

factor_graph = to_factor_graph(rhm, evidence=evidence[0])
print("variables:", sorted(factor_graph.get_variable_nodes()))
print("factors:  ", len(factor_graph.get_factors()), "(1 prior + 3 rule + 4 evidence)")
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
draw_tree(rhm, ax=left, values=datum)
draw_factor_graph(rhm, ax=right)
plt.show()

# %%
# The upward pass, by hand (eq. 7)
# --------------------------------
#
# The upward message a factor sends to its parent ``a`` sums, over the children's values, the
# factor times the children's upward messages. The factor is 1 only on ``a``'s ``m`` rules, so
# the sum runs over those rules only:
#
# .. math::
#
#    \nu_\uparrow(a) = \sum_{(a \to b_1 \dots b_s)} \; \prod_{i=1}^{s} \mu_{\uparrow,i}(b_i)
#
# A leaf's upward message is its evidence. An internal variable has one factor below and one
# above, so it forwards what it received: :math:`\mu_\uparrow = \nu_\uparrow`. Here is eq. 7
# in numpy, with the loops written out:


def upward(rules, child_up):
    """Unnormalised nu_up(a) for every parent value a. rules: (K, m, s) ints;
    child_up: s arrays of shape (card_child,). Returns (K,)."""
    raw = np.zeros(len(rules))
    for a, tuples in enumerate(rules):  # parent value a and its m rules
        for b in tuples:  # one rule a -> (b_1, ..., b_s)
            raw[a] += np.prod([child_up[i][b[i]] for i in range(len(b))])
    return raw


# %%
# We keep every message **normalised** (divided by its sum). The scale of a message carries
# no information about the marginals, which are normalised at the end anyway, but unnormalised
# products of many numbers below 1 underflow to 0 in deep trees. The normalisers are not
# thrown away: their logs add up to the log-evidence (below).

L, s = rhm.L, rhm.s
up, log_z = {}, 0.0
for i in range(rhm.d):  # level 0: the leaf evidence
    total = evidence[0, i].sum()
    up[node_name(0, i)] = evidence[0, i] / total
    log_z += np.log(total)
for level in range(1, L + 1):
    for k in range(rhm.width(level)):
        children = [node_name(level - 1, s * k + j) for j in range(s)]
        raw = upward(rhm.rules[level], [up[c] for c in children])
        up[node_name(level, k)] = raw / raw.sum()
        log_z += np.log(raw.sum())
        print(
            f"{' '.join(children)} -> {node_name(level, k)}: raw {raw}, "
            f"sum {raw.sum():.4f}, normalised {up[node_name(level, k)]}"
        )

# %%
# Read the first line: the leaves ``h0_0, h0_1`` most likely hold ``0 2``, and symbol 0 owns
# the rule ``0 -> 0 2``, so its raw message gets ``0.6 * 0.6`` from that rule plus
# ``0.1333 * 0.1333`` from its other rule ``0 -> 3 0``. The root's upward message already
# favours class 1, the true class; the root's marginal will multiply it by the prior, a
# uniform ``1/2`` here.
#
# The downward pass, by hand (eq. 8)
# ----------------------------------
#
# The downward message a factor sends to its child ``i`` sums over the parent and the other
# children: the parent's downward message times the siblings' upward messages, on every rule,
# added to the value that rule gives child ``i``:
#
# .. math::
#
#    \nu_{\downarrow,i}(b_i) = \sum_{(a \to b_1 \dots b_s)\ \text{with that}\ b_i}
#    \mu_\downarrow(a) \prod_{j \neq i} \mu_{\uparrow,j}(b_j)
#
# The root's downward message is its prior. A child's own upward message is left out: the
# downward message must only carry evidence from *outside* the child's subtree, or the marginal
# would count the child's evidence twice.
#
# Downward messages also carry the grammar's hard constraints. In the output below,
# ``h2_0 -> h1_0`` is 0 on symbol 3 because no class rule starts with 3; and the only level-1
# rule whose first child is 2 is ``3 -> 2 1``, so ``h1_0 -> h0_0`` is 0 on symbol 2, whatever
# the evidence says.


def downward(rules, parent_down, child_up, i):
    """Unnormalised nu_down_i(b) for every value b of child i. parent_down: (K,);
    child_up: s arrays (card_child,). Returns (card_child,)."""
    raw = np.zeros(len(child_up[i]))
    for a, tuples in enumerate(rules):
        for b in tuples:
            others = [child_up[j][b[j]] for j in range(len(b)) if j != i]
            raw[b[i]] += parent_down[a] * np.prod(others)
    return raw


# %%
# From the root down, each factor sends one message to each of its children:

prior = np.full(rhm.n_classes, 1.0 / rhm.n_classes)
down = {node_name(L, 0): prior}
for level in range(L, 0, -1):
    for k in range(rhm.width(level)):
        parent = node_name(level, k)
        children = [node_name(level - 1, s * k + j) for j in range(s)]
        for i, child in enumerate(children):
            raw = downward(rhm.rules[level], down[parent], [up[c] for c in children], i)
            down[child] = raw / raw.sum()
            print(f"{parent} -> {child}: normalised {down[child]}")

# %%
# Marginals and the log-evidence
# ------------------------------
#
# A variable's marginal is the normalised product of the two messages that reach it, one from
# its subtree and one from everything else:
# :math:`P(h = x \mid \text{evidence}) \propto \mu_\uparrow(x)\, \mu_\downarrow(x)`.

marginal = {}
for name in up:
    product = up[name] * down[name]
    marginal[name] = product / product.sum()
print("P(class | evidence)       =", marginal["h2_0"], " true class:", datum.y[0])
print("P(h0_0 | evidence)        =", marginal["h0_0"], " true symbol:", datum.x[0, 0])
print("evidence alone at h0_0    =", up["h0_0"])

# %%
# The grammar corrects the noise: the leaf's marginal on its true symbol exceeds the
# ``1 - eps = 0.6`` its own evidence gives, because its sibling and the rest of the tree vouch
# for it.
#
# **Log-evidence.** Each normaliser divided out of an upward message is a factor of the
# partition function ``Z = sum over all assignments of prod(factors)``, so ``log Z`` is the sum
# of their logs, plus the log of the last sum at the root, ``sum_a prior(a) up(a)``. Our rule
# factors are 0/1 rather than probabilities ``1/m``, so ``Z = m**N * P(evidence)`` with
# ``N = 3`` internal nodes: subtract ``N log m`` to get the log-probability of the evidence.

log_z += np.log(prior @ up[node_name(L, 0)])
n_internal = (rhm.d - 1) // (rhm.s - 1)
log_p_evidence = log_z - n_internal * np.log(rhm.m)
print(f"log Z = {log_z:.6f},  log P(evidence) = log Z - N log m = {log_p_evidence:.6f}")

# %%
# The same messages from ``tree_bp``
# ----------------------------------
#
# :func:`~hiergrammar.bp.tree_bp` runs both passes for a whole batch at once, vectorised over
# nodes and rules (no Python loop over values). It returns the lists ``up[l]``, ``down[l]``,
# ``marginals[l]`` (shape ``(n, width_l, card_l)``, level ``l = 0..L``) with the same
# conventions as ours, and ``log_evidence``, the log-probability of the evidence. Every
# agreement below is asserted to hold to ``TOL``.

from hiergrammar.bp import tree_bp

TOL = 1e-10


def check(label, gap, tol=TOL):
    """Print a discrepancy and assert that it is at most ``tol`` (NaN fails too)."""
    print(f"{label:<44} {gap:.1e}")
    assert gap <= tol, f"{label} = {gap:.3g} exceeds the tolerance {tol:g}"


def largest_gap(ours, theirs):
    """max |ours[node] - theirs[level][0, index]| over all nodes."""
    return max(
        np.abs(ours[node_name(lv, i)] - theirs[lv][0, i]).max()
        for lv in range(L + 1)
        for i in range(rhm.width(lv))
    )


result = tree_bp(rhm, evidence)
check("max |hand - tree_bp|, upward messages", largest_gap(up, result.up))
check("max |hand - tree_bp|, downward messages", largest_gap(down, result.down))
check("max |hand - tree_bp|, marginals", largest_gap(marginal, result.marginals))
check("|hand - tree_bp|, log P(evidence)", abs(log_p_evidence - result.log_evidence[0]))

# %%
# Why this is exact: brute force and pgmpy agree
# ----------------------------------------------
#
# BP is exact on a tree because every variable cuts the tree in two parts that share nothing
# but that variable. The sum over all assignments then factorises: the upward message is
# exactly the sum over the subtree below (with its own evidence), the downward message exactly
# the sum over the rest, and no piece of evidence reaches a node along two paths. On a graph
# with loops a message would come back to its sender and be counted again; on a tree, two
# passes (up, then down) give every marginal exactly.
#
# Two independent checks. :func:`hiergrammar.bruteforce.brute_force_marginals` enumerates the
# 16 trees and weights each by ``prior(y) * m**-N * prod_i evidence_i(x_i)``; pgmpy's
# ``BeliefPropagation`` calibrates a junction tree built from the same pgmpy factor graph.

from pgmpy.inference import BeliefPropagation

from hiergrammar.bruteforce import brute_force_marginals

brute = brute_force_marginals(rhm, evidence)
print("trees enumerated:", brute.n_trees)
check("max |hand - brute force|, marginals", largest_gap(marginal, brute.marginals))
check("|log P(evidence) - brute force|", abs(log_p_evidence - brute.log_evidence[0]))

engine = BeliefPropagation(factor_graph)
# pgmpy's belief update divides 0 by 0 on the tuples no rule allows; those entries are never
# used, so the warning is noise.
with np.errstate(invalid="ignore", divide="ignore"):
    engine.calibrate()
    query = engine.query(list(marginal), joint=False, show_progress=False)
check(
    "max |hand - pgmpy|, marginals",
    max(np.abs(marginal[name] - query[name].values).max() for name in marginal),
)
z_pgmpy = factor_graph.get_partition_function()
# pgmpy's factors hold the rule probabilities ``1/m``: its partition function is P(evidence).
check("|log P(evidence) - log(pgmpy partition function)|", abs(log_p_evidence - np.log(z_pgmpy)))

# %%
# Every message and marginal at once (blue: upward, orange: downward, grey: marginal; the red
# star marks the symbol the datum really had). The plotting code is in the downloadable
# script.

# sphinx_gallery_start_ignore
fig = plt.figure(figsize=(2.4 * rhm.d, 2.2 * (rhm.L + 1)))
# A tree-shaped grid: leaf i spans grid columns 2i..2i+1 and every parent spans the columns of
# its children, so each chart sits centred above the charts of its children.
grid = fig.add_gridspec(rhm.L + 1, 2 * rhm.d, hspace=0.75, wspace=0.6)
for row, level in enumerate(range(rhm.L, -1, -1)):
    span = 2 * rhm.s**level  # grid columns under one node of this level
    for i in range(rhm.width(level)):
        centre = i * span + span // 2
        ax = fig.add_subplot(grid[row, centre - 1 : centre + 1])
        name = node_name(level, i)
        values = np.arange(rhm.card(level))
        ax.bar(values - 0.27, up[name], width=0.27, color="tab:blue", label="upward")
        ax.bar(values, down[name], width=0.27, color="tab:orange", label="downward")
        ax.bar(values + 0.27, marginal[name], width=0.27, color="0.3", label="marginal")
        true = datum.levels[level][0, i]
        ax.plot([true], [1.1], marker="*", color="tab:red", ms=10, ls="none", label="true value")
        ax.set_title(f"{name} (level {level})", fontsize=9)
        ax.set_xticks(values)
        ax.set_ylim(0, 1.22)
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=8)
        if level == rhm.L:
            ax.legend(loc="upper left", bbox_to_anchor=(1.15, 1.0), fontsize=8)
fig.suptitle("messages and marginals of every node (x axis: the node's value)", fontsize=11)
# sphinx_gallery_end_ignore
plt.show()

# %%
# Sampling from the posterior
# ---------------------------
#
# The messages also let us draw whole trees from ``P(tree | evidence)`` in one top-down pass:
# draw the class from its marginal; then, at each factor whose parent has value ``a``, draw one
# of ``a``'s ``m`` rules with weight ``prod_i mu_up_i(b_i)`` and write its children.
# :func:`hiergrammar.sampling.posterior_sample` does this for a batch (the second tutorial
# uses it at length). Every draw is a valid string of the grammar, and the frequencies match
# the exact posterior of each tree, which we get by enumerating the 16 trees and weighting each
# by its evidence (with a uniform prior every tree has the same prior probability; since parses
# are unique, each tree is one input string).

from hiergrammar.bruteforce import enumerate_trees
from hiergrammar.sampling import posterior_sample

n_draws = 20000
draws = posterior_sample(rhm, np.repeat(evidence, n_draws, axis=0), seed=2)
print("all draws valid:", bool(rhm.parse(draws.x).valid.all()))
trees = enumerate_trees(rhm)  # levels[l]: (16, width_l)
log_w = np.log(evidence[0][np.arange(rhm.d), trees[0]]).sum(axis=1)  # the prior is uniform
exact = np.exp(log_w - log_w.max())
exact /= exact.sum()
# the fraction of draws equal to each of the 16 strings
freq = (draws.x[:, None, :] == trees[0][None]).all(axis=-1).mean(axis=0)
print("input string  class  exact posterior  sampled frequency")
for t in np.argsort(-exact)[:6]:
    string = " ".join(map(str, trees[0][t]))
    print(f"{string:>12}  {trees[2][t, 0]:>5}  {exact[t]:>15.4f}  {freq[t]:>17.4f}")
# a statistical check: every frequency within 5 standard errors of its probability
z_scores = np.abs(freq - exact) / np.sqrt(exact * (1 - exact) / n_draws)
print(f"largest |frequency - exact| / standard error over the 16 trees: {z_scores.max():.2f}")
assert z_scores.max() < 5

# %%
# Most of the posterior mass sits on the datum's own string; the next most likely strings
# differ from it at one or two leaves and still parse, some of them in the other class. This
# is the paper's forward-backward experiment in miniature: noise an input, resample it from
# the posterior, and see which levels of its tree survive.
#
# Summary
# -------
#
# * On a tree, two passes of sum-product BP give exact marginals of every node: eq. 7 upward
#   (a sum over each parent's ``m`` rules), eq. 8 downward (the same rules, scattered onto each
#   child with the parent's downward message and the siblings' upward ones).
# * Normalise every message; the sum of the log normalisers is ``log Z``.
# * Our dozen lines of loops and ``tree_bp`` agree on every message; with brute-force
#   enumeration and pgmpy they also agree, to rounding error, on every marginal and on the
#   evidence.
#
# Exercises
# ---------
#
# Each answer below is checked when the page is built.
#
# 1. **Flat evidence.** At ``eps = 1 - 1/v = 0.75`` every leaf's evidence is flat. What is then
#    the class posterior? *Answer:* the prior, ``(0.5, 0.5)``: the evidence carries no
#    information, and every leaf marginal is the prior's marginal of that leaf.
# 2. **Clean evidence.** At ``eps = 0`` the evidence is one-hot on a valid string. What is
#    ``log P(evidence)``? *Answer:* ``log(1/16) = -2.7726``: the string has exactly one tree,
#    of prior probability ``1/2 * 2**-3``.
# 3. **Why normalise?** Run the upward pass without normalising. Do the marginals change?
#    *Answer:* no (to rounding error), and the root's unnormalised sum
#    ``sum_a prior(a) up(a)`` is ``Z`` itself.

# The checks of the answers: exercise 1
flat = tree_bp(rhm, eps_evidence(datum.x, eps=0.75, v=rhm.v))
print("exercise 1: P(class | flat evidence) =", flat.marginals[L][0, 0])
check("exercise 1, |P(class) - (0.5, 0.5)|", np.abs(flat.marginals[L][0, 0] - 0.5).max())
# the prior's marginal of each leaf: its symbol's frequency over the 16 equally likely trees
prior_leaves = np.stack([np.bincount(trees[0][:, i], minlength=rhm.v) / 16 for i in range(rhm.d)])
check(
    "exercise 1, leaf marginals vs the prior's", np.abs(flat.marginals[0][0] - prior_leaves).max()
)

# %%
# Exercise 2:

log_p_clean = tree_bp(rhm, eps_evidence(datum.x, eps=0.0, v=rhm.v)).log_evidence[0]
print(f"exercise 2: log P(evidence) = {log_p_clean:.4f}")
check("exercise 2, |log P(evidence) - log(1/16)|", abs(log_p_clean - np.log(1 / 16)))
assert f"{log_p_clean:.4f}" == "-2.7726"  # the value the text gives

# %%
# Exercise 3: the upward pass without normalisation.

raw_up = {node_name(0, i): evidence[0, i] for i in range(rhm.d)}
for level in range(1, L + 1):
    for k in range(rhm.width(level)):
        children = [raw_up[node_name(level - 1, s * k + j)] for j in range(s)]
        raw_up[node_name(level, k)] = upward(rhm.rules[level], children)
z_raw = prior @ raw_up[node_name(L, 0)]
check("exercise 3, |log(root sum) - log Z|", abs(np.log(z_raw) - log_z))
root = prior * raw_up[node_name(L, 0)]
check(
    "exercise 3, class marginal: raw - normalised",
    np.abs(root / root.sum() - marginal["h2_0"]).max(),
)
