"""Reference computations for tiny grammars, written from the definition in plain Python.

Nothing here calls a method of :class:`hiergrammar.Grammar`: the enumerator reads only the
arrays (``rules``, ``rule_probs``, ``root_prior``) and expands every derivation root first, so
the tests compare the library's sampler, parser and constructors against independent evidence.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
from scipy import stats


def enumerate_trees(rules, rule_probs, root_prior, L):
    """Every tree of positive probability: ``{levels: P(tree)}`` where ``levels`` is a tuple
    over levels ``0..L`` of tuples of symbols. Derivations that list the same tuple twice
    under one parent give the same tree, and their probabilities add up."""
    trees: dict[tuple, float] = defaultdict(float)

    def expand(level, symbols):
        if level == 0:
            yield [tuple(symbols)], 1.0
            return
        options = [
            [
                (tuple(int(c) for c in rules[level][a][r]), float(rule_probs[level][a][r]))
                for r in range(len(rules[level][a]))
                if rule_probs[level][a][r] > 0
            ]
            for a in symbols
        ]
        for combo in itertools.product(*options):
            children = [c for t, _ in combo for c in t]
            p = math.prod(q for _, q in combo)
            for lower, q in expand(level - 1, children):
                yield lower + [tuple(symbols)], p * q

    for root, prior in enumerate(root_prior):
        if prior <= 0:
            continue
        for levels, p in expand(L, [root]):
            trees[tuple(levels)] += float(prior) * p
    return dict(trees)


def enumerate_grammar(grammar):
    """:func:`enumerate_trees` of a grammar's arrays."""
    return enumerate_trees(grammar.rules, grammar.rule_probs, grammar.root_prior, grammar.L)


def joint_root_leaves(trees):
    """``{(root, leaves): P}`` from the trees of :func:`enumerate_trees`."""
    joint: dict[tuple, float] = defaultdict(float)
    for levels, p in trees.items():
        joint[(levels[-1][0], levels[0])] += p
    return dict(joint)


def chi_square_pvalue(counts: dict, probs: dict, n: int) -> float:
    """Pearson's goodness-of-fit p-value of observed ``counts`` (outcome -> count) against
    ``probs`` (outcome -> probability). An outcome outside ``probs`` fails the test outright;
    outcomes of small expectation are pooled so that every cell expects at least 5."""
    if set(counts) - set(probs):
        return 0.0
    keys = sorted(probs, key=lambda k: probs[k])
    cells, observed, expected = [], 0.0, 0.0
    for key in keys:
        observed += counts.get(key, 0)
        expected += n * probs[key]
        if expected >= 5:
            cells.append((observed, expected))
            observed, expected = 0.0, 0.0
    if expected > 0 and cells:
        o, e = cells.pop()
        cells.append((o + observed, e + expected))
    if len(cells) < 2:
        return 1.0
    obs = np.array([c[0] for c in cells])
    exp = np.array([c[1] for c in cells])
    stat = float(((obs - exp) ** 2 / exp).sum())
    return float(stats.chi2.sf(stat, df=len(cells) - 1))


def tally(rows) -> dict:
    """Counts of the distinct rows of an iterable of hashable rows."""
    out: dict = defaultdict(int)
    for row in rows:
        out[row] += 1
    return dict(out)
