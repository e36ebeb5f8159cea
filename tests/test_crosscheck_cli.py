"""``hiergrammar crosscheck``: flags that the chosen mode would ignore are refused.

With ``--uai`` the UAI files define the models, their evidence and answers, so the flags of one
RHM datum (the RHM flags, ``--grammar``, ``--eps``, ``--seed``, ``--max-trees``,
``--marginals``) are refused when given explicitly (one line, exit code 2, before any engine
runs); without ``--uai``, ``--no-workarounds`` is. Their defaults still apply where they
mean something.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hiergrammar import RHM
from hiergrammar.cli import main
from hiergrammar.uai import to_uai

TINY = ["--v", "3", "--n-classes", "2", "--m", "2", "--L", "2"]


@pytest.fixture
def uai_file(tmp_path):
    path = tmp_path / "tiny.uai"
    to_uai(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0), path, np.ones((2, 3)))
    return path


def _error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith("hiergrammar crosscheck: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--grammar", "zipf.npz"], "--grammar does not apply to --uai"),
        (["--eps", "0.9", "--seed", "3"], "--eps, --seed do not apply to --uai"),
        (["--seed", "0"], "--seed does not apply"),  # explicit, even at the default value
        (["--eps", "0.3"], "--eps does not apply"),
        (["--v", "4", "--L", "3"], "--L, --v do not apply"),
        (["--max-trees", "10"], "--max-trees does not apply"),
        (["--marginals"], "--marginals does not apply"),
    ],
)
def test_uai_refuses_the_flags_of_one_rhm_datum(uai_file, monkeypatch, capsys, flags, named):
    from hiergrammar.engines import uai_check

    def boom(*args, **kwargs):
        raise AssertionError("the UAI check ran although a flag was refused")

    monkeypatch.setattr(uai_check, "check_uai", boom)
    assert main(["crosscheck", "--uai", str(uai_file), *flags]) == 2
    line = _error(capsys)
    assert named in line and "the UAI files define the models" in line


def test_uai_without_those_flags_runs(uai_file, capsys):
    code = main(["crosscheck", "--uai", str(uai_file), "--engines", "uai_tree", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["verdict"] == "agree"


def test_no_workarounds_needs_uai(capsys):
    assert main(["crosscheck", *TINY, "--no-workarounds"]) == 2
    assert "--no-workarounds applies only with --uai" in _error(capsys)


def test_the_rhm_datum_keeps_its_defaults_eps_and_seed(capsys):
    """Without --eps and --seed the datum is the one of --eps 0.3 --seed 0 (same JSON)."""
    argv = ["crosscheck", *TINY, "--engines", "tree_bp", "brute_force", "--json"]
    assert main(argv) == 0
    implicit = json.loads(capsys.readouterr().out)
    assert main([*argv, "--eps", "0.3", "--seed", "0"]) == 0
    explicit = json.loads(capsys.readouterr().out)
    assert implicit["eps"] == 0.3 and implicit["model"]["seed"] == 0
    for key in ("x", "y", "eps", "model"):
        assert implicit[key] == explicit[key]
    other = main([*argv, "--seed", "5"])
    assert other == 0 and json.loads(capsys.readouterr().out)["model"]["seed"] == 5
