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

from hiergrammar import crosscheck as cc
from hiergrammar import graphs
from hiergrammar.bruteforce import brute_force_marginals, n_trees
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
