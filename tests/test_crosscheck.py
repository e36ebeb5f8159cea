"""All exact engines agree: our tree BP, pgmpy (junction-tree BP, message-passing BP, VE on the
Bayesian-network form), pyAgrum LazyPropagation and brute-force enumeration."""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hiergrammar import Grammar, InputError, ZeroEvidenceError, graphs
from hiergrammar import crosscheck as cc
from hiergrammar.bruteforce import brute_force_marginals, n_trees
from hiergrammar.noise import eps_evidence
from hiergrammar.rhm import RHM

TOL = 1e-9

HAVE_PYAGRUM = True
try:  # pyAgrum is an optional extra
    import pyagrum  # noqa: F401
except ImportError:  # pragma: no cover
    HAVE_PYAGRUM = False


@st.composite
def model_and_evidence(draw):
    """A tiny RHM (brute force <= 5e4 trees) and evidence around one of its data.

    Evidence is positive on the datum's true leaves (so the partition function is non-zero),
    random elsewhere, with some exact zeros and some exactly one-hot leaves.
    """
    s = draw(st.sampled_from([2, 2, 3]))
    L = draw(st.integers(1, 3 if s == 2 else 2))
    v = draw(st.integers(2, 4))
    m = draw(st.integers(1, min(3, v ** (s - 1))))
    n_classes = draw(st.integers(1, min(3, v**s // m)))
    seed = draw(st.integers(0, 2**16))
    rhm = RHM(v=v, n_classes=n_classes, m=m, s=s, L=L, seed=seed)
    assume(n_trees(rhm) <= 50_000)
    rng = np.random.default_rng(seed)
    x = rhm.sample(1, seed=seed + 1).x[0]
    ev = rng.uniform(0.0, 1.0, (rhm.d, v))
    zero_frac = draw(st.sampled_from([0.0, 0.3, 0.7]))
    ev[rng.uniform(size=ev.shape) < zero_frac] = 0.0
    sharp = rng.uniform(size=rhm.d) < draw(st.sampled_from([0.0, 0.5]))
    ev[sharp] = 0.0
    ev[np.arange(rhm.d), x] = rng.uniform(0.05, 1.0, rhm.d)
    ev *= draw(st.sampled_from([1.0, 1e-3, 50.0]))  # evidence need not be normalised
    prior = None
    if draw(st.booleans()):
        y = rhm.parse(x[None]).y[0]
        prior = rng.uniform(0.0, 1.0, n_classes) * (rng.uniform(size=n_classes) < 0.6)
        prior[y] = 0.5
    return rhm, ev, prior


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(model_and_evidence())
def test_all_engines_agree(case):
    rhm, ev, prior = case
    results = cc.crosscheck(rhm, ev, root_prior=prior)
    by_name = {r.engine: r for r in results}
    assert [r.engine for r in results] == list(cc.ENGINES)
    assert by_name["brute_force"].status == "ok"
    for r in results:
        if r.engine == "pyagrum_lazy" and not HAVE_PYAGRUM:
            assert r.status == "skipped"
            continue
        assert r.status == "ok", (r.engine, r.message)
        assert r.reference == "brute_force"
        assert r.max_abs_delta <= TOL, (r.engine, r.max_abs_delta)
        for level, mg in enumerate(r.marginals):
            assert mg.shape == (rhm.width(level), rhm.card(level))
    if HAVE_PYAGRUM:
        # pyAgrum's P(evidence) is an independent check of the enumeration's.
        assert by_name["pyagrum_lazy"].log_evidence_delta <= TOL


@settings(max_examples=10, deadline=None, derandomize=True)
@given(model_and_evidence())
def test_tree_bp_log_evidence_matches_brute_force(case):
    """``log_evidence`` is ``log sum_tree P(tree) prod_i e_i(x_i)`` with the generative
    ``P(tree) = prior(y) m**-N`` (bp.py's docstring); uniform evidence then gives 0."""
    from hiergrammar.bp import tree_bp

    rhm, ev, prior = case
    bf = brute_force_marginals(rhm, ev, root_prior=prior)
    bp = tree_bp(rhm, ev[None], root_prior=prior)
    np.testing.assert_allclose(bp.log_evidence, bf.log_evidence, rtol=0, atol=TOL)


def test_pgmpy_query_api_matches_clique_beliefs():
    # run_pgmpy_bp reads marginals off calibrated cliques; pgmpy's own query() must agree.
    from pgmpy.inference import BeliefPropagation

    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=1)
    ev = np.random.default_rng(0).uniform(0, 1, (rhm.d, rhm.v))
    marginals, _ = cc.run_pgmpy_bp(rhm, ev, graphs.check_root_prior(rhm, None))
    fg = graphs.to_factor_graph(rhm, evidence=ev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bp = BeliefPropagation(fg)
        for name in ["h2_0", "h1_1", "h0_2"]:
            _, level, i = graphs.parse_name(name)
            q = bp.query([name], show_progress=False)
            np.testing.assert_allclose(q.values, marginals[level][i], atol=1e-14)


def test_pgmpy_bp_with_tiny_potentials():
    # Regression: pgmpy's calibration declares convergence by np.allclose(atol=1e-8), so with
    # evidence ~1e-3 on 9 leaves it stopped before calibrating (|Δ| ~ 0.5). run_pgmpy_bp
    # rescales the likelihoods; the answer must not depend on their scale.
    rhm = RHM(v=2, n_classes=2, m=1, s=3, L=2, seed=0)
    ev = np.random.default_rng(3).uniform(0.0, 1.0, (rhm.d, rhm.v)) + 0.01
    prior = graphs.check_root_prior(rhm, None)
    bf = brute_force_marginals(rhm, ev)
    for scale in (1e-3, 1.0, 1e3):
        marginals, _ = cc.run_pgmpy_bp(rhm, ev * scale, prior)
        assert cc.max_abs_delta(marginals, [mg[0] for mg in bf.marginals]) <= TOL


def test_errors_and_skips_are_reported_not_raised(monkeypatch):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    ev = rhm.sample(1).onehot()[0] * 0.7 + 0.1

    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setitem(cc.RUNNERS, "pgmpy_ve", broken)
    results = cc.crosscheck(
        rhm, ev, engines=["pgmpy_ve", "brute_force", "pyagrum_lazy"], max_trees=4
    )
    by_name = {r.engine: r for r in results}
    assert by_name["pgmpy_ve"].status == "error"
    assert "engine exploded" in by_name["pgmpy_ve"].message
    assert not by_name["pgmpy_ve"].agrees()
    assert by_name["brute_force"].status == "skipped"
    assert "max_trees = 4" in by_name["brute_force"].message
    assert by_name["brute_force"].agrees()
    if HAVE_PYAGRUM:  # tree_bp ran as the reference although not requested
        assert by_name["pyagrum_lazy"].reference == "tree_bp"
        assert by_name["pyagrum_lazy"].max_abs_delta <= TOL
    with pytest.raises(ValueError, match="unknown engine"):
        cc.crosscheck(rhm, ev, engines=["nope"])


def _cli(argv):
    from hiergrammar.cli import crosscheck as crosscheck_cli

    parser = argparse.ArgumentParser(prog="hiergrammar")
    crosscheck_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["crosscheck", *argv])
    return args.func(args)


def test_cli_table_json_and_exit_code(capsys, monkeypatch):
    code = _cli(
        [
            "--v",
            "3",
            "--n-classes",
            "2",
            "--m",
            "2",
            "--L",
            "2",
            "--eps",
            "0.2",
            "--engines",
            "tree_bp",
            "pgmpy_bp_mp",
            "brute_force",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "pgmpy_bp_mp" in out and "all engines agree" in out

    code = _cli(
        ["--v", "3", "--n-classes", "2", "--m", "2", "--L", "2", "--json", "--marginals"]
        + ["--engines", "tree_bp", "brute_force"]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["agree"] is True
    engines = {e["engine"]: e for e in payload["engines"]}
    assert engines["brute_force"]["max_abs_delta"] == 0.0
    assert len(engines["tree_bp"]["marginals"]) == 7

    # a wrong engine makes the command fail
    real = cc.RUNNERS["pgmpy_bp_mp"]

    def off(rhm, ev, prior):
        marginals, log_ev = real(rhm, ev, prior)
        marginals[0] = np.roll(marginals[0], 1, axis=-1)
        return marginals, log_ev

    monkeypatch.setitem(cc.RUNNERS, "pgmpy_bp_mp", off)
    code = _cli(
        ["--v", "3", "--n-classes", "2", "--m", "2", "--L", "2", "--eps", "0.2"]
        + ["--engines", "pgmpy_bp_mp", "brute_force"]
    )
    assert code == 1
    assert "DISAGREE" in capsys.readouterr().out


def test_benchmark_smoke(tmp_path, capsys):
    # The speed benchmark at a tiny size: it runs, and every engine it times agrees with ours.
    from benchmarks import bp_engines

    out = tmp_path / "bench.json"
    code = bp_engines.main(
        [
            "--v",
            "4",
            "--n-classes",
            "2",
            "--m",
            "2",
            "--L",
            "2",
            "--n",
            "20",
            "--repeats",
            "1",
            "--n-pyagrum",
            "2",
            "--pgmpy-bp-L",
            "1",
            "--deep-L",
            "6",
            "--deep-n",
            "5",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    timed = [r for r in payload["rows"] if r.get("per_sample") is not None]
    assert len(timed) >= 6 - (0 if HAVE_PYAGRUM else 1)
    for row in timed:
        assert row["per_sample"] > 0 and row["max_delta"] <= 1e-6  # float32 row: ~1e-7
    assert payload["deep"]["finite"] and payload["deep"]["max_abs_marginal_sum_minus_1"] < 1e-12
    assert "ours vs pyAgrum" in capsys.readouterr().out or not HAVE_PYAGRUM


# -- the library contract: verdicts, time limits, bad input ------------------------------------
@pytest.fixture(scope="module")
def tiny():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    return rhm, rhm.sample(1, seed=1).onehot()[0] * 0.7 + 0.1


def test_a_plain_string_names_one_engine_and_names_are_checked(tiny):
    rhm, ev = tiny
    assert [r.engine for r in cc.crosscheck(rhm, ev, engines="tree_bp")] == ["tree_bp"]
    assert [r.engine for r in cc.crosscheck(rhm, ev, engines=("brute_force", "tree_bp"))] == [
        "tree_bp",
        "brute_force",
    ]
    for bad, match in (
        (["nope"], r"unknown engine\(s\) \['nope'\]; choose from \['tree_bp', 'pgmpy_bp'"),
        ("tree", r"unknown engine\(s\) \['tree'\]"),
        ([], "at least one engine"),
        (42, "list of engine names"),
        ([None], "unknown engine"),
    ):
        with pytest.raises(InputError, match=match):
            cc.crosscheck(rhm, ev, engines=bad)


@pytest.mark.parametrize("bad", [-5, 0, 1.5, True, "100"])
def test_max_trees_is_checked(tiny, bad):
    rhm, ev = tiny
    with pytest.raises(InputError, match="max_trees"):
        cc.crosscheck(rhm, ev, engines="brute_force", max_trees=bad)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "30", 1j, True])
def test_max_seconds_is_checked(tiny, bad):
    rhm, ev = tiny
    with pytest.raises(InputError, match="max_seconds"):
        cc.crosscheck(rhm, ev, engines="tree_bp", max_seconds=bad)


def test_impossible_evidence_is_bad_input_raised_before_any_engine_runs(monkeypatch):
    rhm = RHM(v=3, n_classes=2, m=1, s=2, L=1, seed=0)
    used = {tuple(t) for t in rhm.rules[1].reshape(-1, 2)}
    bad = next((a, b) for a in range(3) for b in range(3) if (a, b) not in used)
    ran = []
    for name in cc.ENGINES:
        monkeypatch.setitem(cc.RUNNERS, name, lambda *a, _n=name, **k: ran.append(_n))
    with pytest.raises(ZeroEvidenceError, match=r"sample\(s\) \[0\]"):
        cc.crosscheck(rhm, np.eye(3)[list(bad)])
    assert ran == []


def test_engine_failures_are_errors_and_only_numbers_disagree(tiny, monkeypatch):
    rhm, ev = tiny

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.28 TiB")

    monkeypatch.setitem(cc.RUNNERS, "pgmpy_ve", out_of_memory)
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "pgmpy_ve", "brute_force"])
    by_name = {r.engine: r for r in results}
    assert by_name["pgmpy_ve"].status == "error"
    assert by_name["pgmpy_ve"].message == "MemoryError: Unable to allocate 7.28 TiB"
    assert [r.verdict() for r in results] == ["agrees", "error", "agrees"]
    assert cc.overall_verdict(results) == "error"
    assert "DISAGREE" not in cc.format_table(results)

    real = cc.RUNNERS["tree_bp"]

    def shifted(*args, **kwargs):
        marginals, log_ev = real(*args, **kwargs)
        return [np.roll(mg, 1, axis=-1) for mg in marginals], log_ev

    monkeypatch.setitem(cc.RUNNERS, "tree_bp", shifted)
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "pgmpy_ve", "brute_force"])
    assert [r.verdict() for r in results] == ["disagrees", "error", "agrees"]
    assert cc.overall_verdict(results) == "disagreement"  # a wrong number outranks a failure
    assert "DISAGREES" in cc.format_table(results)
    payload = results[0].to_dict()
    assert payload["verdict"] == "disagrees" and payload["estimated_seconds"] > 0


def test_a_log_evidence_difference_alone_is_a_disagreement(tiny, monkeypatch):
    rhm, ev = tiny
    real = cc.RUNNERS["tree_bp"]
    monkeypatch.setitem(
        cc.RUNNERS, "tree_bp", lambda *a, **k: (real(*a, **k)[0], real(*a, **k)[1] + 1e-6)
    )
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "brute_force"])
    assert results[0].max_abs_delta <= TOL and results[0].log_evidence_delta > 1e-7
    assert cc.overall_verdict(results) == "disagreement"


def test_engines_estimated_above_max_seconds_are_skipped_with_the_reason(tiny):
    rhm, ev = tiny
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "pgmpy_ve"], max_seconds=1e-9)
    for r in results:
        assert r.status == "skipped" and r.estimated_seconds > 1e-9
        assert r.message.startswith("estimated ") and "> max_seconds = 1e-09" in r.message
    assert cc.overall_verdict(results) == "agree"
    # None (or inf) lifts the limit
    for limit in (None, float("inf")):
        assert [r.status for r in cc.crosscheck(rhm, ev, engines="tree_bp", max_seconds=limit)] == [
            "ok"
        ]


def test_slow_engines_are_skipped_before_they_run():
    # pgmpy's VE took 94 s at L=7 and every engine but ours minutes at L=9; with the default
    # max_seconds the slow ones are skipped by their estimate, quickly, and ours still runs.
    import time

    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=9, seed=0)
    ev = eps_evidence(rhm.sample(1, seed=1).x, 0.3, 3)[0]
    start = time.perf_counter()
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "pgmpy_bp_mp", "pgmpy_ve", "brute_force"])
    assert time.perf_counter() - start < 10
    by_name = {r.engine: r for r in results}
    assert by_name["tree_bp"].status == "ok"
    for name in ("pgmpy_bp_mp", "pgmpy_ve"):
        assert by_name[name].status == "skipped", by_name[name]
        assert by_name[name].estimated_seconds > cc.DEFAULT_MAX_SECONDS
        assert "max_seconds = 30" in by_name[name].message
    assert "> max_trees" in by_name["brute_force"].message
    assert cc.overall_verdict(results) == "agree"


def test_deep_brute_force_skip_message_does_not_overflow_int_to_str():
    # L=14: n_trees has 4933 digits; formatting it used to raise ValueError inside the engine,
    # reported as a failure and, by the CLI, as DISAGREEMENT.
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=14, seed=0)
    ev = eps_evidence(rhm.sample(1, seed=1).x, 0.3, 4)[0]
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "brute_force"])
    assert [r.status for r in results] == ["ok", "skipped"]
    assert "about 10**4932.1 trees > max_trees = 200000" in results[1].message
    assert cc.overall_verdict(results) == "agree"


def test_memory_budget_skips_the_engines_that_would_exceed_it(tiny):
    rhm, ev = tiny
    results = cc.crosscheck(
        rhm, ev, engines=["tree_bp", "pgmpy_bp", "brute_force"], memory_budget="1KiB"
    )
    for r in results:
        assert r.status == "skipped" and "memory budget of 1.00 KiB" in r.message, r
    # a budget that cannot even hold the upward pass is bad input, raised at once
    with pytest.raises(InputError, match="memory budget of 100 B"):
        cc.crosscheck(rhm, ev, engines="tree_bp", memory_budget=100)


def test_progress_is_shown_over_the_engines(tiny, monkeypatch):
    rhm, ev = tiny
    seen = {}

    def fake_progress(iterable, desc, total=None, disable=None):
        seen.update(desc=desc, total=total)
        return iterable

    monkeypatch.setattr(cc, "progress", fake_progress)
    cc.crosscheck(rhm, ev, engines=["pgmpy_ve", "brute_force"])
    assert seen == {"desc": "crosscheck engines", "total": 3}  # + tree_bp as the reference


def test_cost_model_features_match_the_model_by_hand():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    f = cc.cost_features(rhm)
    assert f["V"] == 7 and f["V2"] == 49 and f["V3"] == 343
    assert f["E"] == 1 * 2 * 3**2 + 2 * 3 * 3**2  # root factor + two level-1 factors
    assert f["C"] == 1 * 2 * 2 * 2 * 3 + 2 * 2 * 3 * 2 * 3  # s children * card * m * child card
    assert f["TN"] == n_trees(rhm) * (rhm.d + 7)
    estimates = {e: cc.estimate_seconds(rhm, e) for e in cc.ENGINES}
    assert all(0 < t < 1 for t in estimates.values()), estimates
    deeper = RHM(v=3, n_classes=2, m=2, s=2, L=6, seed=0)
    for engine in cc.ENGINES:  # every estimate grows with the model
        assert cc.estimate_seconds(deeper, engine) > estimates[engine]
    with pytest.raises(InputError, match="unknown engine"):
        cc.estimate_seconds(rhm, "nope")


def _per_level_ambiguous(seed: int) -> Grammar:
    """A grammar that is not an RHM: a different cardinality on each level, a different number
    of rules per level, shared tuples, and weighted rules."""
    rng = np.random.default_rng(seed)
    rules = {
        1: rng.integers(0, 3, size=(4, 2, 2)),  # 4 symbols, m = 2 tuples over 3 leaves
        2: rng.integers(0, 4, size=(2, 3, 2)),  # 2 classes, m = 3 tuples over 4 symbols
    }
    probs = {1: rng.dirichlet(np.ones(2), size=4), 2: rng.dirichlet(np.ones(3), size=2)}
    return Grammar(rules, probs, v=3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_engine_takes_a_per_level_weighted_ambiguous_grammar(seed):
    grammar = _per_level_ambiguous(seed)
    ev = np.random.default_rng(seed).uniform(0.1, 1.0, (grammar.d, grammar.cards[0]))
    results = cc.crosscheck(grammar, ev, root_prior=np.array([0.3, 0.7]))
    for r in results:
        if r.engine == "pyagrum_lazy" and not HAVE_PYAGRUM:
            continue
        assert r.status == "ok", (r.engine, r.message)
        assert r.reference == "brute_force"
        assert r.max_abs_delta <= TOL, (r.engine, r.max_abs_delta)
        for level, mg in enumerate(r.marginals):
            assert mg.shape == (grammar.width(level), grammar.card(level))
    # 2 classes * 3 root rules * (2 rules)**2 at level 1 = 24 trees
    assert n_trees(grammar) == 24


def test_a_model_that_is_not_a_grammar_is_refused():
    class Duck:
        L, s, d, v, cards = 1, 2, 2, 2, (2, 1)
        rules = {1: np.array([[[0, 1]]])}

    with pytest.raises(InputError, match=r"rhm must be a hiergrammar.Grammar .*got Duck"):
        cc.crosscheck(Duck(), np.ones((2, 2)))


@pytest.mark.skipif(not HAVE_PYAGRUM, reason="pyAgrum is an optional extra")
def test_pyagrum_underflow_is_a_skip_with_the_reason(tiny, monkeypatch):
    # pyAgrum multiplies likelihoods on a linear scale: from about 1000 leaves (v=3, L=10) it
    # reports evidence that tree BP (log scale) finds possible as IncompatibleEvidence.
    import pyagrum

    class Underflowing:
        def __init__(self, bn):
            pass

        def setNumberOfThreads(self, n):
            pass

        def addEvidence(self, name, values):
            pass

        def makeInference(self):
            raise pyagrum.IncompatibleEvidence("joint proba = 0")

    rhm, ev = tiny
    monkeypatch.setattr(pyagrum, "LazyPropagation", Underflowing)
    results = cc.crosscheck(rhm, ev, engines=["tree_bp", "pyagrum_lazy"])
    assert results[1].status == "skipped"
    assert "underflows" in results[1].message and "joint proba = 0" in results[1].message
    assert cc.overall_verdict(results) == "agree"
