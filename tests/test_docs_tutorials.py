"""The tutorials of the documentation site run, and their checks hold.

The site build runs them too (sphinx-gallery, in ``.ci/run``); running them here as plain
scripts makes a broken tutorial fail ``python -m pytest`` as well, with a plain traceback. Each
tutorial asserts every agreement it claims and the answers of its exercises.

The hand-written BP of the first tutorial is also checked on a model it does not show
(``s = 3``, ``n_classes != v``, a non-uniform prior), so its code is general, not tuned to the
page's example.
"""

from __future__ import annotations

import ast
import contextlib
import io
import runpy
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("tutorial_*.py"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


def _run(path: Path) -> tuple[dict, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            namespace = runpy.run_path(str(path), run_name="__main__")
    finally:
        plt.close("all")
    return namespace, out.getvalue()


def _definitions(path: Path, names: set[str]) -> dict:
    """Execute only the top-level functions and constants ``names`` of a tutorial script."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def wanted(node: ast.stmt) -> bool:
        if isinstance(node, ast.FunctionDef):
            return node.name in names
        return isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in names for t in node.targets
        )

    defs = [node for node in tree.body if wanted(node)]
    namespace: dict = {"np": np}
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_and_its_checks_hold(path):
    _, printed = _run(path)
    assert "exercise 1" in printed and "exercise 3" in printed
    if path.stem != "tutorial_1_exact_bp":
        return
    for engine in ("tree_bp", "brute force", "pgmpy"):
        assert f"hand - {engine}" in printed, engine
    # every discrepancy it prints is at most its tolerance
    gaps = [float(line.split()[-1]) for line in printed.splitlines() if line.startswith("max |")]
    assert len(gaps) >= 5 and max(gaps) <= 1e-10
    for line in ["h0_0 h0_1 -> h1_0", "h0_2 h0_3 -> h1_1", "h1_0 h1_1 -> h2_0"]:
        assert line in printed
    for parent, child in [("h2_0", "h1_0"), ("h2_0", "h1_1"), ("h1_0", "h0_0"), ("h1_1", "h0_3")]:
        assert f"{parent} -> {child}: normalised" in printed


def test_first_tutorial_check_fails_on_a_real_discrepancy():
    check = _definitions(DOCS / "tutorials" / "tutorial_1_exact_bp.py", {"TOL", "check"})["check"]
    with contextlib.redirect_stdout(io.StringIO()):
        check("tiny", 1e-13, tol=1e-10)
        with pytest.raises(AssertionError, match="exceeds the tolerance"):
            check("too large", 1e-6, tol=1e-10)
        with pytest.raises(AssertionError):
            check("not a number", float("nan"), tol=1e-10)


def test_hand_messages_match_tree_bp_on_a_deeper_model():
    from hiergrammar import RHM
    from hiergrammar.bp import tree_bp
    from hiergrammar.noise import eps_evidence

    hand = _definitions(DOCS / "tutorials" / "tutorial_1_exact_bp.py", {"upward", "downward"})
    upward, downward = hand["upward"], hand["downward"]
    rhm = RHM(v=3, n_classes=2, m=2, s=3, L=2, seed=5)
    ev = eps_evidence(rhm.sample(1, seed=3).x, eps=0.3, v=3)[0]  # (9, 3)
    prior = np.array([0.3, 0.7])
    result = tree_bp(rhm, ev[None], root_prior=prior)
    up = {(0, i): ev[i] / ev[i].sum() for i in range(rhm.d)}
    for level in (1, 2):
        for k in range(rhm.width(level)):
            raw = upward(rhm.rules[level], [up[(level - 1, 3 * k + j)] for j in range(3)])
            up[(level, k)] = raw / raw.sum()
            np.testing.assert_allclose(up[(level, k)], result.up[level][0, k], atol=1e-12)
    down = {(2, 0): prior}
    for level in (2, 1):
        for k in range(rhm.width(level)):
            children = [up[(level - 1, 3 * k + j)] for j in range(3)]
            for i in range(3):
                raw = downward(rhm.rules[level], down[(level, k)], children, i)
                down[(level - 1, 3 * k + i)] = raw / raw.sum()
                np.testing.assert_allclose(
                    down[(level - 1, 3 * k + i)], result.down[level - 1][0, 3 * k + i], atol=1e-12
                )
