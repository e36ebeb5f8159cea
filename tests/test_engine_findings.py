"""Every engine defect of docs/engine_findings.md: its reproduction prints what the page says,
and the crosscheck reports it (as an expected failure where the instance triggers it, as a
plain agreement once the workaround is on or the trigger is absent).

Independent evidence: the exact answers written beside each instance (BP on the grammar, checked
against enumeration in test_uai.py) and closed forms in the reproductions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hiergrammar import RHM
from hiergrammar.engines import DEFECTS, ENGINES, EngineOutput, EngineSpec
from hiergrammar.engines import uai_check as uc
from hiergrammar.uai import UAIModel, solve_tree, to_uai, write_solution, write_uai

PAGE = Path(__file__).resolve().parents[1] / "docs" / "engine_findings.md"


def _blocks() -> dict[str, tuple[str, str]]:
    text = PAGE.read_text()
    code = dict(re.findall(r"```python repro=([\w-]+)\n(.*?)```", text, re.S))
    output = dict(re.findall(r"```text output=([\w-]+)\n(.*?)```", text, re.S))
    assert code.keys() == output.keys()
    return {k: (code[k], output[k]) for k in code}


def _needs(code: str) -> list[str]:
    return sorted(set(re.findall(r"^(?:import|from) (\w+)", code, re.M)))


def test_the_page_has_a_reproduction_per_known_defect():
    ids = set(_blocks())
    assert set(DEFECTS) <= ids
    assert {"pgmax-silent-inconsistency", "fglib-underflow"} <= ids
    for defect in DEFECTS.values():
        assert f"## {defect.id}\n" in PAGE.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(_blocks()))
def test_reproduction_prints_what_the_page_says(defect, tmp_path):
    code, expected = _blocks()[defect]
    missing = [m for m in _needs(code) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {missing}, not installed")
    script = tmp_path / "repro.py"
    script.write_text(code)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == expected


# -- how the crosscheck reports each defect --------------------------------------------------------
def _result(path, engine, workarounds=True):
    report = uc.check_uai(path, engines=[engine], workarounds=workarounds)
    (result,) = report.results
    return result, report


_PGMPY_CHECK = """
import json, sys, warnings
warnings.simplefilter("ignore")
from hiergrammar.engines.uai_check import check_uai
report = check_uai(sys.argv[1], engines=["pgmpy_bp", "pgmpy_ve"])
print(json.dumps([r.to_dict() for r in report.results] + [report.verdict]))
"""


def _pgmpy_check(path, hash_seed):
    """check_uai with pgmpy in a fresh process under a fixed hash seed (pgmpy's clique order,
    and with it whether the defect shows, follows the hash of the names ``var_k``)."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "HIERGRAMMAR_NO_PROGRESS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _PGMPY_CHECK, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    *results, verdict = json.loads(run.stdout.splitlines()[-1])
    return {r["engine"]: r for r in results}, verdict


@pytest.mark.slow
def test_pgmpy_bp_fails_on_a_tiny_partition_function_as_expected(tmp_path):
    pytest.importorskip("pgmpy")
    rhm = RHM(v=2, n_classes=2, m=1, s=3, L=2, seed=0)
    ev = np.random.default_rng(3).uniform(0.0, 1.0, (rhm.d, rhm.v)) + 0.01
    to_uai(rhm, tmp_path / "tiny.uai", ev * 1e-3)  # Z ~ 1e-32
    results, verdict = _pgmpy_check(tmp_path / "tiny.uai", hash_seed=1)
    bp = results["pgmpy_bp"]
    assert bp["verdict"] == "expected_failure" and bp["defect"] == "pgmpy-bp-early-calibration"
    assert bp["max_marginal_error"] > 0.3  # the root [0.5, 0.5] where the truth is [0.112, 0.888]
    assert bp["details"]["would_be"] == "disagrees"
    assert verdict == "agree"
    assert results["pgmpy_ve"]["verdict"] == "agrees"
    assert results["pgmpy_ve"]["max_marginal_error"] < 1e-12
    # the same posterior with larger potentials (Z ~ 1e-3, no trigger): BP is right
    to_uai(rhm, tmp_path / "scaled.uai", ev)
    results, _ = _pgmpy_check(tmp_path / "scaled.uai", hash_seed=1)
    assert results["pgmpy_bp"]["verdict"] == "agrees"
    assert results["pgmpy_bp"]["max_marginal_error"] < 1e-12


def test_pyagrum_reader_scope_order_and_float32(tmp_path):
    pytest.importorskip("pyagrum")
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    ev = np.random.default_rng(0).uniform(0.1, 1.0, (rhm.d, 3))
    to_uai(rhm, tmp_path / "asc.uai", ev, scope_order="ascending")
    to_uai(rhm, tmp_path / "desc.uai", ev)
    asc, _ = _result(tmp_path / "asc.uai", "pyagrum_uai")
    assert asc.verdict == "expected_failure" and asc.defect == "pyagrum-uai-scope-order"
    assert asc.max_marginal_error > 0.05
    desc, _ = _result(tmp_path / "desc.uai", "pyagrum_uai")
    assert desc.verdict == "expected_failure" and desc.defect == "pyagrum-uai-float32"
    assert 1e-10 < desc.max_marginal_error < 1e-6  # float32 rounding, nothing more
    for path in ("asc.uai", "desc.uai"):  # pyAgrum's inference itself, fed float64 tables
        mrf, _ = _result(tmp_path / path, "pyagrum_mrf")
        assert mrf.verdict == "agrees" and mrf.max_marginal_error < 1e-13
    # entries that float32 holds exactly: no trigger, and the reader agrees to rounding
    exact = np.where(ev > 0.5, 0.75, 0.25)
    to_uai(rhm, tmp_path / "f32.uai", exact)
    f32, _ = _result(tmp_path / "f32.uai", "pyagrum_uai")
    assert f32.verdict == "agrees" and f32.max_marginal_error < 1e-13


def test_pygms_nan_beliefs_with_zeros_and_the_workaround(tmp_path):
    pytest.importorskip("pygms")
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)  # its rule tables are mostly zeros
    to_uai(rhm, tmp_path / "m.uai", np.random.default_rng(1).uniform(0.1, 1.0, (rhm.d, 3)))
    raw, report = _result(tmp_path / "m.uai", "pygms_jtree", workarounds=False)
    assert raw.verdict == "expected_failure" and raw.defect == "pygms-jtree-zeros"
    assert raw.max_marginal_error == np.inf and raw.log10_z_error < 1e-12  # NaN; log Z right
    assert report.verdict == "agree" and not report.workarounds
    fixed, _ = _result(tmp_path / "m.uai", "pygms_jtree")
    assert fixed.verdict == "agrees" and fixed.details["zeros_floored"]


def _chain(tmp_path, n=40):
    pair = np.array([[0.45, 0.05], [0.05, 0.45]])
    scopes = ((0,), *((i + 1, i) for i in range(n - 1)))
    model = UAIModel((2,) * n, scopes, (np.array([0.9, 0.1]),) + (pair,) * (n - 1))
    write_uai(tmp_path / "chain.uai", model)
    write_solution(tmp_path / "chain.uai", solve_tree(model))
    return tmp_path / "chain.uai"


@pytest.mark.slow
def test_pomegranate_early_stop_and_the_workaround(tmp_path):
    pytest.importorskip("pomegranate")
    path = _chain(tmp_path)
    raw, _ = _result(path, "pomegranate_bp", workarounds=False)
    assert raw.verdict == "expected_failure" and raw.defect == "pomegranate-early-stop"
    assert raw.max_marginal_error > 1e-5 and raw.details["tol"] == 0.0
    fixed, _ = _result(path, "pomegranate_bp")
    assert fixed.verdict == "agrees" and fixed.max_marginal_error < 1e-12


def test_funsor_with_jax_imported_and_the_workaround(tmp_path, monkeypatch):
    funsor = pytest.importorskip("funsor")
    util = pytest.importorskip("funsor.util")

    path = _chain(tmp_path, n=6)
    # funsor tests only whether "jax" is in sys.modules: a stand-in module takes the same path
    if "jax" not in sys.modules:
        monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    raw, _ = _result(path, "funsor", workarounds=False)
    assert raw.verdict == "expected_failure" and raw.defect == "funsor-jax-imported"
    assert raw.message.endswith(
        "TypeError: isinstance() arg 2 must be a type, a tuple of types, or a union"
    )
    fixed, _ = _result(path, "funsor")
    assert fixed.verdict == "agrees" and fixed.max_marginal_error < 1e-12
    assert util._JAX_COMPILED_FUNCTION_TYPE is None  # restored after the run
    assert funsor.get_backend() == "numpy"


def test_without_jax_funsor_needs_no_workaround(tmp_path):
    pytest.importorskip("funsor")
    if "jax" in sys.modules:
        pytest.skip("jax is imported in this process")
    raw, _ = _result(_chain(tmp_path, n=6), "funsor", workarounds=False)
    assert raw.verdict == "agrees" and raw.defect is None


# -- failure modes of engines we do not run (PGMax, fglib), and failures that no defect explains --
def _fake_engine(monkeypatch, name, run):
    module = types.ModuleType(f"fake_{name}")
    setattr(module, f"run_{name}", run)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    spec = EngineSpec(name, "numpy", module.__name__, "a stand-in", gives_log_z=False)
    monkeypatch.setitem(ENGINES, name, spec)


def test_silent_answers_on_impossible_evidence_are_disagreements(tmp_path, monkeypatch):
    # what PGMax does: finite marginals where Z = 0
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    x = next(
        x for x in np.ndindex(3, 3) if not rhm.parse(np.array([x])).valid[0]
    )  # a string no tree produces
    to_uai(rhm, tmp_path / "bad.uai", np.eye(3)[list(x)])

    def silent(instance, workarounds=True):
        return EngineOutput([np.ones(c) for c in instance.model.cards])

    _fake_engine(monkeypatch, "silent", silent)
    result, report = _result(tmp_path / "bad.uai", "silent")
    assert result.verdict == "disagrees" and report.verdict == "disagreement"
    assert "finite marginals for evidence of probability 0" in result.message


def test_nan_marginals_and_unexplained_failures_are_disagreements(tmp_path, monkeypatch):
    # what fglib does on small potentials: NaN beliefs
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    to_uai(rhm, tmp_path / "m.uai", np.ones((2, 3)))

    def nan(instance, workarounds=True):
        return EngineOutput([np.full(c, np.nan) for c in instance.model.cards])

    _fake_engine(monkeypatch, "nan", nan)
    result, _ = _result(tmp_path / "m.uai", "nan")
    assert result.verdict == "disagrees" and result.max_marginal_error == np.inf
    # pgmpy BP wrong where no known defect explains it (Z ~ 0.1): a disagreement, not expected
    pgmpy_uai = pytest.importorskip("hiergrammar.engines.pgmpy_uai")

    def wrong(instance, workarounds=True):
        return EngineOutput([np.ones(c) for c in instance.model.cards])

    monkeypatch.setattr(pgmpy_uai, "run_pgmpy_bp", wrong)
    result, report = _result(tmp_path / "m.uai", "pgmpy_bp")
    assert result.verdict == "disagrees" and result.defect is None
    assert report.verdict == "disagreement"
