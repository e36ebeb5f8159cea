"""Tutorial: exact belief propagation on a tiny Random Hierarchy Model, step by step.

This script *is* the tutorial. Running it executes the tutorial cell by cell, checks every
agreement it claims (to 1e-10) and writes the page ``docs/tutorial_tree_bp.md`` with its figures
under ``docs/tutorial_tree_bp_files/``::

    python docs/tutorial_tree_bp.py                  # regenerate the page in docs/
    python docs/tutorial_tree_bp.py --out-dir /tmp/t # or anywhere else

``tests/test_docs.py`` runs it and fails if a check fails or if the committed page differs from
a fresh run, so the page cannot drift from the code. Everything is seeded and nothing printed
depends on time or on the machine, so the page is reproduced byte for byte.

How the page is made: the body of :func:`tutorial` is split into cells at ``# %%`` lines (the
"percent" format of Jupytext and VS Code). A ``# %% [markdown]`` cell is prose written as
comments; any other cell is code, shown on the page with what it printed and the figures and
tables it emitted through ``page``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.artifacts import save_figure, save_text

DOCS_DIR = Path(__file__).resolve().parent
PAGE_NAME = "tutorial_tree_bp"
FILES_DIR = f"{PAGE_NAME}_files"
#: Every agreement the tutorial claims holds to this absolute tolerance.
TOL = 1e-10


class Page:
    """Collects the Markdown page while the cells run.

    ``md(text)`` adds prose or a table, ``figure(fig, name, caption)`` saves a PNG beside the
    page and links it, ``check(label, value)`` prints a discrepancy and asserts it is at most
    :data:`TOL`. Text printed by a cell is shown in a ``text`` block right where it was printed.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.parts: list[str] = []
        self.checks: dict[str, float] = {}
        self.stdout = io.StringIO()

    def flush(self) -> None:
        """Move what the running cell printed so far into the page."""
        text = self.stdout.getvalue()
        if text.strip():
            self.parts.append("```text\n" + text.rstrip() + "\n```")
        self.stdout.seek(0)
        self.stdout.truncate()

    def md(self, text: str) -> None:
        self.flush()
        self.parts.append(textwrap.dedent(text).strip())

    def figure(self, fig: Any, name: str, caption: str) -> None:
        save_figure(fig, self.out_dir / FILES_DIR / f"{name}.png", dpi=110)
        self.md(f"![{caption}]({FILES_DIR}/{name}.png)")

    def check(self, label: str, value: float, tol: float = TOL) -> None:
        value = float(value)
        self.checks[label] = value
        print(f"{label:<44} {value:.1e}")
        if not value <= tol:  # also catches NaN
            raise AssertionError(f"{label} = {value:.3g} exceeds the tolerance {tol:g}")


# -- plotting helper (not shown on the page) ---------------------------------------------------
def plot_messages(rhm: Any, up: dict, down: dict, marginal: dict, truth: Any) -> Any:
    """One small bar chart per tree node: upward message, downward message and marginal.

    ``up``, ``down``, ``marginal``: dicts node name -> ``(card,)`` arrays; ``truth``: the
    sampled tree (an RHMSample with one datum), marked by a star.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hiergrammar.graphs import node_name

    # A tree-shaped grid: leaf i spans grid columns 2i..2i+1 and every parent spans the
    # columns of its children, so each chart sits centred above the charts of its children.
    fig = plt.figure(figsize=(2.4 * rhm.d, 2.2 * (rhm.L + 1)))
    grid = fig.add_gridspec(rhm.L + 1, 2 * rhm.d, hspace=0.75, wspace=0.6)
    for row, level in enumerate(range(rhm.L, -1, -1)):
        span = 2 * rhm.s**level  # grid columns under one node of this level
        for i in range(rhm.width(level)):
            centre = i * span + span // 2
            ax = fig.add_subplot(grid[row, centre - 1:centre + 1])
            name = node_name(level, i)
            values = np.arange(rhm.card(level))
            ax.bar(values - 0.27, up[name], width=0.27, color="tab:blue", label="upward")
            ax.bar(values, down[name], width=0.27, color="tab:orange", label="downward")
            ax.bar(values + 0.27, marginal[name], width=0.27, color="0.3", label="marginal")
            true = truth.levels[level][0, i]
            ax.plot([true], [1.1], marker="*", color="tab:red", markersize=10, ls="none",
                    label="true value")
            ax.set_title(f"{name} (level {level})", fontsize=9)
            ax.set_xticks(values)
            ax.set_ylim(0, 1.22)
            ax.set_yticks([0, 0.5, 1])
            ax.tick_params(labelsize=8)
            if level == rhm.L:
                ax.legend(loc="upper left", bbox_to_anchor=(1.15, 1.0), fontsize=8)
    fig.suptitle("messages and marginals of every node (x axis: the node's value)",
                 fontsize=11)
    return fig


# -- the tutorial ----------------------------------------------------------------------------
def tutorial(page: Page) -> None:
    # %% [markdown]
    # # Exact belief propagation on a tiny Random Hierarchy Model
    #
    # *Generated by `python docs/tutorial_tree_bp.py` from the script of the same name; every
    # number below was computed when the page was built, and `tests/test_docs.py` checks that a
    # fresh run reproduces this page exactly.*
    #
    # This tutorial runs sum-product belief propagation (BP) by hand on a Random Hierarchy
    # Model (RHM) small enough to print every message, then checks the result three ways:
    # against `hiergrammar.bp.tree_bp`, against brute-force enumeration of all trees, and
    # against pgmpy's `BeliefPropagation` on the same factor graph. The maths is in
    # [theory derivation](theory_derivation.md) and the paper (eqs. 7-8);
    # conventions are those of [the docs index](index.md): level `L` is the class (root),
    # level 0 the input (leaves), and node `i` has children `s*i .. s*i+s-1`.
    #
    # ## 1. The grammar
    #
    # We take `v = 4` symbols, `n_c = 2` classes, `m = 2` rules per symbol, branching `s = 2`
    # and depth `L = 2`: a class writes two level-1 symbols, each of which writes two input
    # symbols, so an input is a string of `d = s**L = 4` symbols.

    # %%
    import numpy as np

    from hiergrammar import RHM

    np.set_printoptions(precision=4, suppress=True)
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=2)
    print(rhm)
    print("rules[2].shape =", rhm.rules[2].shape, " (n_classes, m, s)")
    print("rules[1].shape =", rhm.rules[1].shape, " (v, m, s)")

    # %% [markdown]
    # `rhm.rules[l][a]` lists the `m` tuples that symbol `a` of level `l` may write at level
    # `l - 1`. Printed as a table:

    # %%
    rows = ["| level | parent | rule 0 | rule 1 |", "| --- | --- | --- | --- |"]
    for level in range(rhm.L, 0, -1):
        kind = "class" if level == rhm.L else "symbol"
        for a, tuples in enumerate(rhm.rules[level]):
            cells = " | ".join(f"{a} → {' '.join(map(str, t))}" for t in tuples)
            rows.append(f"| {level} | {kind} {a} | {cells} |")
    page.md("\n".join(rows))

    # %% [markdown]
    # No tuple appears twice in a level: two symbols never write the same string, so every
    # valid input has exactly one parse. There are `n_c * m**N = 2 * 2**3 = 16` trees (a class
    # and one rule choice at each of the `N = 3` internal nodes), each with prior probability
    # `1/2 * 2**-3 = 1/16`.
    #
    # ## 2. One datum and its noisy evidence
    #
    # We sample one datum (class, level-1 symbols, input) and corrupt it with the
    # **epsilon-process** (eqs. 9-10): each leaf only tells us "my symbol is `x_i` with belief
    # `1 - eps`, any other symbol with `eps / (v - 1)`". This likelihood vector per leaf is
    # the *leaf evidence*, shape `(n, d, v)`.

    # %%
    from hiergrammar.noise import eps_evidence

    eps = 0.4
    datum = rhm.sample(1, seed=2)
    for level in range(rhm.L, -1, -1):
        print(f"level {level}: {datum.levels[level][0]}")
    evidence = eps_evidence(datum.x, eps=eps, v=rhm.v)  # (1, 4, 4)
    print("leaf evidence (row i: leaf i, column: symbol):")
    print(evidence[0])

    # %% [markdown]
    # ## 3. The factor graph
    #
    # `hiergrammar.graphs.to_factor_graph` writes the model as a pgmpy `FactorGraph`: one
    # variable `h{level}_{index}` per node, one factor `psi(a; b_1, b_2)` per internal node
    # (the probability that `a` writes `b_1 b_2`: `1/m` on a rule, 0 elsewhere), a prior factor
    # on the root and one evidence factor per leaf. Because each variable has exactly one factor
    # above it and one below, the graph is a tree. In the drawing (right) the square above the
    # root is the prior, the square below each internal node its rule factor, and the squares
    # under the leaves the evidence; the tree (left) shows each node's sampled symbol under its
    # name.

    # %%
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hiergrammar.graphs import draw_factor_graph, draw_tree, node_name, to_factor_graph

    factor_graph = to_factor_graph(rhm, evidence=evidence[0])
    print("variables:", sorted(factor_graph.get_variable_nodes()))
    print("factors:  ", len(factor_graph.get_factors()), "(1 prior + 3 rule + 4 evidence)")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    draw_tree(rhm, ax=left, values=datum)
    draw_factor_graph(rhm, ax=right)
    page.figure(fig, "graphs", "the tree with the sampled symbols, and its factor graph")

    # %% [markdown]
    # ## 4. The upward pass, by hand (eq. 7)
    #
    # The upward message a factor sends to its parent `a` sums, over the children's values,
    # the factor times the children's upward messages. The factor is 1 only on `a`'s `m`
    # rules, so the sum runs over those rules only:
    #
    #     nu_up(a) = sum over the rules (a -> b_1 .. b_s) of  prod_i mu_up_i(b_i)
    #
    # A leaf's upward message is its evidence. An internal variable has one factor below and
    # one above, so it forwards what it received: `mu_up = nu_up`. Here is eq. 7 in numpy,
    # with the loops written out:

    # %%
    def upward(rules, child_up):
        """Unnormalised nu_up(a) for every parent value a. rules: (K, m, s) ints;
        child_up: s arrays of shape (card_child,). Returns (K,)."""
        raw = np.zeros(len(rules))
        for a, tuples in enumerate(rules):  # parent value a and its m rules
            for b in tuples:  # one rule a -> (b_1, ..., b_s)
                raw[a] += np.prod([child_up[i][b[i]] for i in range(len(b))])
        return raw

    # %% [markdown]
    # We keep every message **normalised** (divided by its sum). The scale of a message
    # carries no information about the marginals, which are normalised at the end anyway, but
    # unnormalised products of many numbers below 1 underflow to 0 in deep trees. The
    # normalisers are not thrown away: their logs add up to the log-evidence (section 6).

    # %%
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
            print(f"{' '.join(children)} -> {node_name(level, k)}: raw {raw}, "
                  f"sum {raw.sum():.4f}, normalised {up[node_name(level, k)]}")

    # %% [markdown]
    # Read the first line: the leaves `h0_0, h0_1` most likely hold `0 2`, and symbol 0 owns
    # the rule `0 -> 0 2`, so its raw message gets `0.6 * 0.6` from that rule plus
    # `0.1333 * 0.1333` from its other rule `0 -> 3 0`. The root's upward message already
    # favours class 1, the true class; the root's marginal will multiply it by the prior, a
    # uniform `1/2` here.
    #
    # ## 5. The downward pass, by hand (eq. 8)
    #
    # The downward message a factor sends to its child `i` sums over the parent and the other
    # children: the parent's downward message times the siblings' upward messages, on every
    # rule, added to the value that rule gives child `i`:
    #
    #     nu_down_i(b_i) = sum over the rules (a -> b_1 .. b_s) with that b_i of
    #                      mu_down(a) * prod_{j != i} mu_up_j(b_j)
    #
    # The root's downward message is its prior. A child's own upward message is left out:
    # the downward message must only carry evidence from *outside* the child's subtree, or the
    # marginal would count the child's evidence twice.
    #
    # Downward messages also carry the grammar's hard constraints. In the output below,
    # `h2_0 -> h1_0` is 0 on symbol 3 because no class rule starts with 3; and the only
    # level-1 rule whose first child is 2 is `3 -> 2 1`, so `h1_0 -> h0_0` is 0 on symbol 2,
    # whatever the evidence says.

    # %%
    def downward(rules, parent_down, child_up, i):
        """Unnormalised nu_down_i(b) for every value b of child i. parent_down: (K,);
        child_up: s arrays (card_child,). Returns (card_child,)."""
        raw = np.zeros(len(child_up[i]))
        for a, tuples in enumerate(rules):
            for b in tuples:
                others = [child_up[j][b[j]] for j in range(len(b)) if j != i]
                raw[b[i]] += parent_down[a] * np.prod(others)
        return raw

    # %% [markdown]
    # From the root down, each factor sends one message to each of its children:

    # %%
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

    # %% [markdown]
    # ## 6. Marginals and the log-evidence
    #
    # A variable's marginal is the normalised product of the two messages that reach it, one
    # from its subtree and one from everything else: `P(h = x | evidence) ∝ mu_up(x) *
    # mu_down(x)`.

    # %%
    marginal = {}
    for name in up:
        product = up[name] * down[name]
        marginal[name] = product / product.sum()
    print("P(class | evidence)       =", marginal["h2_0"], " true class:", datum.y[0])
    print("P(h0_0 | evidence)        =", marginal["h0_0"], " true symbol:", datum.x[0, 0])
    print("evidence alone at h0_0    =", up["h0_0"])

    # %% [markdown]
    # The grammar corrects the noise: the leaf's marginal on its true symbol exceeds the
    # `1 - eps = 0.6` its own evidence gives, because its sibling and the rest of the tree
    # vouch for it.
    #
    # **Log-evidence.** Each normaliser divided out of an upward message is a factor of the
    # partition function `Z = sum over all assignments of prod(factors)`, so `log Z` is the
    # sum of their logs, plus the log of the last sum at the root, `sum_a prior(a) up(a)`.
    # Our hand-written rule factors are 0/1 rather than the probabilities `1/m` that
    # `to_factor_graph` holds, so our `Z = m**N * P(evidence)` with `N = 3` internal nodes:
    # subtract `N log m` to get the log-probability of the evidence.

    # %%
    log_z += np.log(prior @ up[node_name(L, 0)])
    n_internal = (rhm.d - 1) // (rhm.s - 1)
    log_p_evidence = log_z - n_internal * np.log(rhm.m)
    print(f"log Z = {log_z:.6f},  log P(evidence) = log Z - N log m = {log_p_evidence:.6f}")

    # %% [markdown]
    # ## 7. The same messages from `hiergrammar.bp.tree_bp`
    #
    # `tree_bp` runs both passes for a whole batch at once, vectorised over nodes and rules
    # (no Python loop over values). It returns the lists `up[l]`, `down[l]`, `marginals[l]`
    # (shape `(n, width_l, card_l)`, level `l = 0..L`) with the same conventions as ours,
    # and `log_evidence`, the log-probability of the evidence.

    # %%
    from hiergrammar.bp import tree_bp

    result = tree_bp(rhm, evidence, backend="numpy")  # the reference; numba agrees to rounding

    def largest_gap(ours, theirs):
        """max |ours[node] - theirs[level][0, index]| over all nodes."""
        return max(np.abs(ours[node_name(lv, i)] - theirs[lv][0, i]).max()
                   for lv in range(L + 1) for i in range(rhm.width(lv)))

    page.check("max |hand - tree_bp|, upward messages", largest_gap(up, result.up))
    page.check("max |hand - tree_bp|, downward messages", largest_gap(down, result.down))
    page.check("max |hand - tree_bp|, marginals", largest_gap(marginal, result.marginals))
    page.check("|hand - tree_bp|, log P(evidence)", abs(log_p_evidence - result.log_evidence[0]))

    # %% [markdown]
    # ## 8. Why this is exact: brute force and pgmpy agree
    #
    # BP is exact on a tree because every variable cuts the tree in two parts that share
    # nothing but that variable. The sum over all assignments then factorises: the upward
    # message is exactly the sum over the subtree below (with its own evidence), the downward
    # message exactly the sum over the rest, and no piece of evidence reaches a node along two
    # paths. On a graph with loops a message would come back to its sender and be counted
    # again; on a tree, two passes (up, then down) give every marginal exactly.
    #
    # Two independent checks. `hiergrammar.bruteforce.brute_force_marginals` enumerates the 16
    # trees and weights each by `prior(y) * m**-N * prod_i evidence_i(x_i)`; pgmpy's
    # `BeliefPropagation` calibrates a junction tree built from the same pgmpy factor graph.

    # %%
    from pgmpy.inference import BeliefPropagation

    from hiergrammar.bruteforce import brute_force_marginals

    brute = brute_force_marginals(rhm, evidence)
    print("trees enumerated:", brute.n_trees)
    page.check("max |hand - brute force|, marginals", largest_gap(marginal, brute.marginals))
    page.check("|log P(evidence) - brute force|", abs(log_p_evidence - brute.log_evidence[0]))

    engine = BeliefPropagation(factor_graph)
    # pgmpy's belief update divides 0 by 0 on the tuples no rule allows; those entries are
    # never used, so the warning is noise.
    with np.errstate(invalid="ignore", divide="ignore"):
        engine.calibrate()
        query = engine.query(list(marginal), joint=False, show_progress=False)
    page.check("max |hand - pgmpy|, marginals",
               max(np.abs(marginal[name] - query[name].values).max() for name in marginal))
    # pgmpy's factors hold the rule probabilities 1/m: its partition function is P(evidence).
    z_pgmpy = factor_graph.get_partition_function()
    page.check("|log P(evidence) - log(pgmpy Z)|", abs(log_p_evidence - np.log(z_pgmpy)))

    # %% [markdown]
    # Every message and marginal at once (blue: upward, orange: downward, grey: marginal; the
    # red star marks the symbol the datum really had):

    # %%
    fig = plot_messages(rhm, up, down, marginal, datum)
    page.figure(fig, "messages", "upward and downward messages and marginals of every node")

    # %% [markdown]
    # ## 9. Sampling from the posterior
    #
    # The messages also let us draw whole trees from `P(tree | evidence)` in one top-down pass
    # (section 5 of the paper): draw the class from its marginal; then, at each factor whose parent
    # has value `a`, draw one of `a`'s `m` rules with weight `prod_i mu_up_i(b_i)` and write
    # its children. `hiergrammar.sampling.posterior_sample` does this for a batch. Every draw
    # is a valid string of the grammar, and the frequencies match the exact posterior of each
    # tree. We get that by enumerating the 16 trees and weighting each by its evidence (with a
    # uniform prior every tree has the same prior probability); since parses are unique, each
    # tree is one input string.

    # %%
    from hiergrammar.bruteforce import enumerate_trees
    from hiergrammar.sampling import posterior_sample

    n_draws = 20000
    draws = posterior_sample(rhm, np.repeat(evidence, n_draws, axis=0), seed=2, backend="numpy")
    print("all draws valid:", bool(rhm.parse(draws.x).valid.all()))
    trees = enumerate_trees(rhm)  # levels[l]: (16, width_l)
    log_w = np.log(evidence[0][np.arange(rhm.d), trees[0]]).sum(axis=1)  # prior is uniform
    exact = np.exp(log_w - log_w.max())
    exact /= exact.sum()
    # the fraction of draws equal to each of the 16 strings
    freq = (draws.x[:, None, :] == trees[0][None]).all(axis=-1).mean(axis=0)
    rows = ["| input string | class | exact posterior | sampled frequency |",
            "| --- | --- | --- | --- |"]
    for t in np.argsort(-exact)[:6]:
        rows.append(f"| {' '.join(map(str, trees[0][t]))} | {trees[2][t, 0]} | "
                    f"{exact[t]:.4f} | {freq[t]:.4f} |")
    page.md("\n".join(rows))
    # a statistical check: every frequency within 5 standard errors of its probability
    z_scores = np.abs(freq - exact) / np.sqrt(exact * (1 - exact) / n_draws)
    print(f"largest |frequency - exact| / standard error over the 16 trees: {z_scores.max():.2f}")
    assert z_scores.max() < 5

    # %% [markdown]
    # Most of the posterior mass sits on the datum's own string `0 2 3 2`; the next most
    # likely strings differ from it at one or two leaves and still parse, some of them in the
    # other class. This is the paper's forward-backward experiment in
    # miniature: noise an input, resample it from the posterior, and see which levels of its
    # tree survive. As `eps` grows the class is lost suddenly in deep trees, while low levels
    # change smoothly (see the theory derivation, [theory_derivation.md](theory_derivation.md)).
    #
    # ## Summary
    #
    # * On a tree, two passes of sum-product BP give exact marginals of every node: eq. 7
    #   upward (a sum over each parent's `m` rules), eq. 8 downward (the same rules, scattered
    #   onto each child with the parent's downward message and the siblings' upward ones).
    # * Normalise every message; the sum of the log normalisers is `log Z`.
    # * Our dozen lines of loops and `tree_bp` agree on every message; with brute-force
    #   enumeration and pgmpy they also agree, to rounding error, on every marginal and on
    #   the evidence.


# -- running and rendering ---------------------------------------------------------------------
def cells(func: Any = tutorial) -> list[tuple[str, str]]:
    """Split the body of ``func`` at ``# %%`` lines into ``(kind, text)`` cells, kind
    ``"markdown"`` (comment prefix stripped) or ``"code"``."""
    lines = textwrap.dedent(inspect.getsource(func)).splitlines()
    body = textwrap.dedent("\n".join(lines[1:])).splitlines()  # drop the def line
    out: list[tuple[str, list[str]]] = []
    for line in body:
        if line.startswith("# %%"):
            out.append(("markdown" if "[markdown]" in line else "code", []))
        elif out:
            out[-1][1].append(line)
    result = []
    for kind, block in out:
        if kind == "markdown":
            text = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in block)
        else:
            text = "\n".join(block)
        result.append((kind, text.strip("\n")))
    return result


def main(out_dir: str | Path = DOCS_DIR) -> dict[str, float]:
    """Run the tutorial; write ``out_dir/tutorial_tree_bp.md`` and its figures.

    Returns the checks (label -> discrepancy), each already asserted to be at most TOL.
    """
    out_dir = Path(out_dir)
    page = Page(out_dir)
    namespace: dict[str, Any] = {**globals(), "page": page}
    for kind, text in cells():
        if kind == "markdown":
            page.md(text)
            continue
        page.md(f"```python\n{text}\n```")
        with contextlib.redirect_stdout(page.stdout):
            exec(compile(text, f"<{PAGE_NAME} cell>", "exec"), namespace)
        page.flush()
    save_text(out_dir / f"{PAGE_NAME}.md", "\n\n".join(page.parts) + "\n")
    return page.checks


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(DOCS_DIR),
                        help="where to write tutorial_tree_bp.md and its figures (default: docs/)")
    args = parser.parse_args()
    checks = main(args.out_dir)
    print(f"wrote {Path(args.out_dir) / (PAGE_NAME + '.md')}; {len(checks)} checks within {TOL:g}")
