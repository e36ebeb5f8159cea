"""Every engine on every grammar family, against brute-force enumeration.

Random small grammars of each family (uniform, Zipf-weighted and per-level RHMs, RHMs with
shared tuples, Sparse RHMs, filtered grammars, and arbitrary weighted grammars whose tuples are
drawn with repetition, some rules of probability 0) with random evidence:

* tree BP and the upward pass, on every backend, give the marginals and log P(evidence) of the
  enumeration to 1e-9;
* every crosscheck engine (pgmpy's three, pyAgrum, ours) agrees with it to 1e-9, the one
  exception being the known upstream defect of pgmpy's ``BeliefPropagation`` (it stops
  calibrating early on tiny potentials), which crosscheck must then name;
* exact posterior sampling draws trees with the enumerated probabilities (chi-square test,
  p > 1e-3) on weighted and ambiguous grammars, on the numpy and numba backends.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from hiergrammar import RHM, Grammar, InputError, filtered_grammar, sparse_rhm
from hiergrammar import crosscheck as cc
from hiergrammar.bp import tree_bp, upward_pass
from hiergrammar.bruteforce import brute_force_marginals, enumerate_trees, n_trees
from hiergrammar.sampling import exact_forward_backward, posterior_sample

TOL = 1e-9

#: Largest enumeration a property test draws (brute force and pgmpy stay well under a second).
MAX_TREES = 20_000

FAMILIES = ("uniform", "zipf", "per_level", "shared", "sparse", "filtered", "weighted")


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


BACKENDS = ["numpy", "numba"] + (["torch"] if _has("torch") else [])


def random_weighted_grammar(rng: np.random.Generator, cards, ms, s) -> Grammar:
    """Tuples drawn with repetition (shared by several parents, repeated under one parent),
    Dirichlet rule probabilities with some exact zeros (never a whole row)."""
    rules, probs = {}, {}
    for level in range(1, len(cards)):
        K, m = cards[level], ms[level - 1]
        rules[level] = rng.integers(0, cards[level - 1], size=(K, m, s))
        p = rng.dirichlet(np.full(m, 0.7), size=K)
        p[rng.random((K, m)) < 0.2] = 0.0
        p[np.arange(K), rng.integers(0, m, size=K)] += 0.1  # no empty row
        probs[level] = p / p.sum(axis=1, keepdims=True)
    return Grammar(rules, probs, rng.dirichlet(np.ones(cards[-1])), v=cards[0])


@st.composite
def grammars(draw, families=FAMILIES) -> Grammar:
    """A small grammar of one of the families (at most :data:`MAX_TREES` derivations)."""
    family = draw(st.sampled_from(families))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if family in ("uniform", "zipf", "shared"):
        s = draw(st.sampled_from([2, 2, 3]))
        L = draw(st.integers(1, 3 if s == 2 else 2))
        v = draw(st.integers(2, 4))
        m = draw(st.integers(1, min(3, v ** (s - 1))))
        n_classes = draw(st.integers(1, min(3, v**s // m)))
        extra = {}
        if family == "zipf":
            extra = dict(rule_law="zipf", zipf_a=draw(st.sampled_from([0.0, 1.0, 4.0])))
        elif family == "shared":
            extra = dict(shared_tuples=True)
        grammar = RHM(v=v, n_classes=n_classes, m=m, s=s, L=L, seed=seed, **extra)
    elif family == "per_level":
        L = draw(st.integers(2, 3))
        vs = [draw(st.integers(2, 4)) for _ in range(L)]
        ms = [draw(st.integers(1, 2)) for _ in range(L)]
        n_classes = draw(st.integers(1, 3))
        law = draw(st.sampled_from(["uniform", "zipf"]))
        extra = dict(rule_law="zipf", zipf_a=1.5) if law == "zipf" else {}
        try:
            grammar = RHM(v=vs, n_classes=n_classes, m=ms, s=2, L=L, seed=seed, **extra)
        except InputError:  # too few distinct tuples for these sizes
            assume(False)
    elif family == "sparse":
        v = draw(st.integers(2, 3))
        L = draw(st.integers(1, 2))
        grammar = sparse_rhm(v=v, n_classes=draw(st.integers(1, 2)), m=1, s=2, s0=1, L=L, seed=seed)
    elif family == "filtered":
        L = draw(st.integers(1, 3))
        grammar = filtered_grammar(
            q=draw(st.integers(2, 3)),
            L=L,
            sigma=draw(st.sampled_from([0.0, 1.0, 3.0])),
            k=draw(st.integers(0, L)),
            seed=seed,
        )
    else:
        L = draw(st.integers(1, 3))
        s = draw(st.sampled_from([2, 2, 3])) if L < 3 else 2
        cards = [draw(st.integers(2, 3)) for _ in range(L + 1)]
        ms = [draw(st.integers(1, 3)) for _ in range(L)]
        grammar = random_weighted_grammar(rng, cards, ms, s)
    assume(n_trees(grammar) <= MAX_TREES)
    event(f"family {family}")
    return grammar


@st.composite
def grammar_and_evidence(draw, families=FAMILIES):
    """A grammar, one evidence set that some tree can produce, and a root prior (None: the
    grammar's own)."""
    grammar = draw(grammars(families))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = grammar.sample(1, seed=seed).x[0]
    v = grammar.cards[0]
    ev = rng.uniform(0.0, 1.0, (grammar.d, v))
    ev[rng.uniform(size=ev.shape) < draw(st.sampled_from([0.0, 0.3]))] = 0.0
    sharp = rng.uniform(size=grammar.d) < draw(st.sampled_from([0.0, 0.5]))
    ev[sharp] = 0.0
    ev[np.arange(grammar.d), x] = rng.uniform(0.05, 1.0, grammar.d)  # the datum stays possible
    ev *= draw(st.sampled_from([1.0, 1e-3, 50.0]))
    prior = None
    if draw(st.booleans()):
        prior = rng.uniform(0.1, 1.0, grammar.n_classes)
    return grammar, ev, prior


def _close(a, b, tol=TOL):
    return all(
        np.allclose(np.asarray(x), np.asarray(y), rtol=0, atol=tol)
        for x, y in zip(a, b, strict=True)
    )


def _numpy(x):
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


# -- every backend of tree BP against the enumeration ----------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_tree_bp_on_every_backend_matches_brute_force(family, data):
    grammar, ev, prior = data.draw(grammar_and_evidence((family,)))
    bf = brute_force_marginals(grammar, ev, prior)
    assert np.isfinite(bf.log_evidence).all()
    for backend in BACKENDS:
        res = tree_bp(grammar, ev, prior, backend=backend)
        marginals = [_numpy(m) for m in res.marginals]
        assert _close(marginals, bf.marginals), backend
        assert abs(_numpy(res.log_evidence)[0] - bf.log_evidence[0]) <= TOL, backend
        up = upward_pass(grammar, ev, prior, backend=backend)
        assert abs(_numpy(up.log_evidence)[0] - bf.log_evidence[0]) <= TOL, backend
        root = _numpy(up.root_marginal)[0, 0]
        assert np.allclose(root, bf.marginals[grammar.L][0, 0], rtol=0, atol=TOL), backend


def test_the_grammars_own_root_prior_is_the_default():
    g = Grammar({1: np.array([[[0, 1]], [[0, 1]], [[1, 1]]])}, root_prior=[0.2, 0.5, 0.3])
    ev = np.array([[1.0, 0.5], [0.25, 1.0]])
    bf = brute_force_marginals(g, ev)
    # P(evidence) = 0.2*1*1 + 0.5*1*1 + 0.3*0.5*1 by hand
    assert np.exp(bf.log_evidence[0]) == pytest.approx(0.85, abs=1e-15)
    for backend in BACKENDS:
        res = tree_bp(g, ev, backend=backend)
        assert np.exp(_numpy(res.log_evidence)[0]) == pytest.approx(0.85, abs=1e-12)
        np.testing.assert_allclose(
            _numpy(res.marginals[1])[0, 0], np.array([0.2, 0.5, 0.15]) / 0.85, atol=1e-12
        )
        # a prior given to the call overrides the grammar's
        flat = tree_bp(g, ev, np.ones(3), backend=backend)
        assert np.exp(_numpy(flat.log_evidence)[0]) == pytest.approx(2.5 / 3, abs=1e-12)


# -- crosscheck: pgmpy, pyAgrum and ours -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@settings(
    max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_every_crosscheck_engine_agrees_on_every_family(family, data):
    grammar, ev, prior = data.draw(grammar_and_evidence((family,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = cc.crosscheck(grammar, ev, prior, max_seconds=None)
    for r in results:
        if r.engine == "pyagrum_lazy" and not _has("pyagrum"):
            assert r.status == "skipped"
            continue
        if r.engine == "pgmpy_bp" and r.status == "skipped":
            # The known upstream defect (pgmpy stops calibrating on tiny potentials): allowed,
            # and it must be named.
            assert r.details["known_defect"] == cc.PGMPY_BP_EARLY_STOP, r.message
            assert cc.PGMPY_BP_EARLY_STOP in r.message
            continue
        assert r.status == "ok", (r.engine, r.message)
        assert r.reference == "brute_force"
        assert r.max_abs_delta <= TOL, (r.engine, r.max_abs_delta)
        if r.log_evidence_delta is not None:
            assert r.log_evidence_delta <= TOL, (r.engine, r.log_evidence_delta)
    assert cc.overall_verdict(results) == "agree"


def test_pgmpy_early_stop_is_named_where_the_workaround_cannot_prevent_it():
    """Scaling every factor to max 1 avoids pgmpy's early stop on tiny evidence, but sharp
    evidence on a tree made only of rules of tiny probability still makes every clique belief
    tiny: the defect is then reported by name instead of as a disagreement. (At depth 3 every
    clique of the junction tree misses a message from two cliques away when pgmpy stops, so
    this does not depend on the order in which pgmpy visits the cliques.)"""
    L, tiny = 3, 1e-12
    rules = {level: np.array([[[0, 0], [0, 1]], [[1, 1], [1, 0]]]) for level in range(1, L + 1)}
    probs = {level: np.array([[1 - tiny, tiny], [1 - tiny, tiny]]) for level in range(1, L + 1)}
    g = Grammar(rules, probs, v=2)
    levels = [np.array([[0]])]
    for level in range(L, 0, -1):  # the tree of the unlikely rules from root symbol 0
        levels.append(g.rules[level][levels[-1], 1].reshape(1, -1))
    ev = np.full((g.d, 2), 1e-12)
    ev[np.arange(g.d), levels[-1][0]] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = cc.crosscheck(g, ev, engines=["pgmpy_bp", "pgmpy_ve", "brute_force"])
    by_name = {r.engine: r for r in results}
    assert by_name["pgmpy_bp"].status == "skipped"
    assert by_name["pgmpy_bp"].details["known_defect"] == cc.PGMPY_BP_EARLY_STOP
    assert by_name["pgmpy_bp"].to_dict()["known_defect"] == cc.PGMPY_BP_EARLY_STOP
    assert by_name["pgmpy_ve"].verdict() == "agrees"  # the other engines are unaffected
    assert cc.overall_verdict(results) == "agree"


@pytest.mark.xfail(
    reason="known upstream defect: pgmpy BeliefPropagation stops early on tiny potentials",
    strict=True,
)
def test_pgmpy_belief_propagation_on_tiny_potentials_without_the_workaround(monkeypatch):
    """pgmpy's own calibration on tiny evidence (no scaling) gives wrong marginals; crosscheck
    detects it (the engine is skipped with the defect's name), so this strict xfail fails only
    if pgmpy fixes the defect upstream. (Depth 3: at depth 2 whether pgmpy stops early depends
    on the order of its cliques, which follows Python's string hashing.)"""
    monkeypatch.setattr(cc, "_SCALE_FOR_PGMPY", False)
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=3, seed=0)
    ev = (np.random.default_rng(3).uniform(0.0, 1.0, (rhm.d, rhm.v)) + 0.01) * 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = cc.crosscheck(rhm, ev, engines=["pgmpy_bp", "brute_force"])
    pgmpy_bp = results[0]
    assert pgmpy_bp.details.get("known_defect") != cc.PGMPY_BP_EARLY_STOP, pgmpy_bp.message
    assert pgmpy_bp.verdict() == "agrees"


# -- exact posterior sampling against enumerated tree probabilities --------------------------------
def _tree_posterior(grammar: Grammar, ev: np.ndarray) -> dict[tuple, float]:
    """P(tree | evidence) by enumeration; derivations that write the same tree add up."""
    levels, log_p = enumerate_trees(grammar, with_log_prob=True)
    with np.errstate(divide="ignore"):
        log_w = log_p + np.log(ev[np.arange(grammar.d), levels[0]]).sum(axis=1)
    keys = [tuple(row) for row in np.concatenate(levels, axis=1)]
    w = np.exp(log_w - log_w.max())
    out: dict[tuple, float] = {}
    for key, weight in zip(keys, w, strict=True):
        if weight > 0:
            out[key] = out.get(key, 0.0) + float(weight)
    total = sum(out.values())
    return {key: weight / total for key, weight in out.items()}


def _chi_square_pvalue(draws, exact: dict[tuple, float]) -> float:
    counts = Counter(tuple(row) for row in np.concatenate([_numpy(a) for a in draws.levels], 1))
    assert set(counts) <= set(exact), "a draw outside the support"
    keys = sorted(exact)
    n = sum(counts.values())
    observed = np.array([counts[k] for k in keys])
    expected = np.array([exact[k] for k in keys]) * n
    return float(chisquare(observed, expected).pvalue)


SAMPLING_GRAMMARS = {
    "zipf": lambda: RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=1, rule_law="zipf", zipf_a=2.0),
    "shared tuples": lambda: RHM(v=2, n_classes=2, m=3, s=2, L=2, seed=4, shared_tuples=True),
    "weighted ambiguous": lambda: random_weighted_grammar(
        np.random.default_rng(7), cards=(2, 3, 2), ms=(3, 2), s=2
    ),
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", list(SAMPLING_GRAMMARS))
def test_posterior_sampling_matches_enumerated_tree_probabilities(name, backend):
    """Chi-square goodness of fit of 20000 draws against the exact tree posterior; the test
    fails (p < 1e-3) one time in a thousand when the sampler is exact."""
    grammar = SAMPLING_GRAMMARS[name]()
    if name != "zipf":
        assert not grammar.is_unambiguous
    rng = np.random.default_rng(0)
    ev = rng.uniform(0.2, 1.0, (grammar.d, grammar.cards[0]))
    exact = _tree_posterior(grammar, ev)
    assert len(exact) > 4
    n = 20_000
    draws = posterior_sample(grammar, np.repeat(ev[None], n, axis=0), seed=11, backend=backend)
    assert _chi_square_pvalue(draws, exact) > 1e-3


def test_tree_log_prob_is_the_sum_over_derivations():
    """Grammar.tree_log_prob of each distinct tree equals the enumeration's sum over the
    derivations that write it (an independent check of the ambiguous grammars' weights)."""
    grammar = SAMPLING_GRAMMARS["weighted ambiguous"]()
    levels, log_p = enumerate_trees(grammar, with_log_prob=True)
    sums: dict[tuple, float] = {}
    for row, p in zip(np.concatenate(levels, axis=1), np.exp(log_p), strict=True):
        sums[tuple(row)] = sums.get(tuple(row), 0.0) + p
    assert len(sums) < len(log_p)  # some trees have several derivations
    widths = [grammar.width(level) for level in range(grammar.L + 1)]
    bounds = np.cumsum([0] + widths)
    for key, p in sums.items():
        tree = [np.array(key[bounds[i] : bounds[i + 1]])[None] for i in range(grammar.L + 1)]
        assert np.exp(grammar.tree_log_prob(tree)[0]) == pytest.approx(p, rel=1e-12, abs=1e-300)


def test_exact_forward_backward_takes_any_grammar_and_backend():
    from hiergrammar.processes import MaskingProcess

    grammar = filtered_grammar(q=3, L=3, sigma=1.0, k=1, seed=0)
    data = grammar.sample(300, seed=1)
    for backend in ("numpy", "numba"):
        res = exact_forward_backward(
            grammar, MaskingProcess(v=3), data.x, t=0.4, seed=2, backend=backend
        )
        kept = res.observation != 3
        assert np.array_equal(res.x[kept], data.x[kept])
        assert np.isfinite(grammar.tree_log_prob(res.levels)).all()  # every draw is a tree
