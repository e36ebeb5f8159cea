"""``--grammar FILE`` on the commands that take the RHM flags: crosscheck runs any saved grammar,
the flag excludes explicitly given RHM flags, bad files are one-line errors, and the theory
commands (uniform RHM only) refuse it with the reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hiergrammar import RHM, filtered_grammar
from hiergrammar.cli import build_parser, main
from hiergrammar.cli.args import model_from_args


def _one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"hiergrammar {command}: error: ")
    return lines[0].split(": error: ", 1)[1]


@pytest.fixture
def zipf_file(tmp_path):
    path = tmp_path / "zipf.npz"
    RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=4, rule_law="zipf", zipf_a=1.0).save(path)
    return path


def test_crosscheck_runs_a_saved_grammar(zipf_file, capsys):
    argv = ["crosscheck", "--grammar", str(zipf_file), "--engines", "tree_bp", "brute_force"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["grammar"] == str(zipf_file)
    assert out["model"]["cards"] == [3, 3, 2] and out["model"]["metadata"]["family"] == "RHM"
    assert [e["verdict"] for e in out["engines"]] == ["agrees", "agrees"]
    # the datum is drawn from the file's (weighted) grammar
    g = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=4, rule_law="zipf", zipf_a=1.0)
    assert out["x"] == g.sample(1, seed=1).x[0].tolist()


def test_crosscheck_runs_a_filtered_grammar_with_every_engine(tmp_path, capsys):
    path = tmp_path / "filtered.npz"
    filtered_grammar(q=2, L=2, sigma=1.0, k=1, seed=0).save(path)
    assert main(["crosscheck", "--grammar", str(path), "--eps", "0.2"]) == 0
    assert "all engines agree" in capsys.readouterr().out


def test_grammar_excludes_explicit_rhm_flags(zipf_file, capsys):
    assert main(["crosscheck", "--grammar", str(zipf_file), "--v", "4", "--L", "3"]) == 2
    assert _one_line_error(capsys, "crosscheck") == (
        "--grammar FILE and the RHM flags (--L, --v) are mutually exclusive: the file defines "
        "the grammar"
    )


def test_a_bad_grammar_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["crosscheck", "--grammar", str(bad)]) == 2
    assert "is not a grammar file (not an .npz archive)" in _one_line_error(capsys, "crosscheck")
    assert main(["crosscheck", "--grammar", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in _one_line_error(capsys, "crosscheck")


@pytest.mark.parametrize("command", [["theory", "critical"], ["theory", "validate", "--quick"]])
def test_theory_commands_refuse_a_grammar_file_with_the_reason(zipf_file, capsys, command):
    assert main([*command, "--grammar", str(zipf_file)]) == 2
    message = _one_line_error(capsys, " ".join(command[:2]))
    assert message.startswith("--grammar is not taken by this command: it models only the uniform")
    assert "--v --n-classes --m --s" in message


def test_model_from_args_builds_the_rhm_of_the_flags_or_loads_the_file(zipf_file):
    parser = build_parser()
    args = parser.parse_args(["crosscheck", "--v", "3", "--n-classes", "2", "--m", "2"])
    rhm = model_from_args(args, seed=5)  # no --grammar: the RHM of the flags
    assert isinstance(rhm, RHM) and (rhm.v, rhm.L, rhm.seed) == (3, 2, 5)
    args = parser.parse_args(["crosscheck", "--grammar", str(zipf_file)])
    from hiergrammar.cli.args import run_checks

    run_checks(args)
    loaded = model_from_args(args, seed=5)
    np.testing.assert_array_equal(
        loaded.rule_probs[1], RHM(3, 2, 2, 2, 2, seed=4, rule_law="zipf", zipf_a=1.0).rule_probs[1]
    )
