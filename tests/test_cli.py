"""The ``hiergrammar`` command (hiergrammar.cli): one error contract, shared flags with one
meaning, ``--version``, and the crosscheck exit codes.

Independent evidence: the installed distribution's metadata for ``--version``, JSON parsed from
stdout, engines monkeypatched to disagree or to fail.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys

import numpy as np
import pytest

import hiergrammar.crosscheck as cc
from hiergrammar.cli import build_parser, main
from hiergrammar.cli.args import RHM_DEFAULTS, add_rhm_arguments

TINY = ["--v", "3", "--n-classes", "2", "--m", "2", "--L", "2"]


def _one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"hiergrammar {command}: error: ")
    return lines[0].split(": error: ", 1)[1]


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert (
        capsys.readouterr().out.strip()
        == f"hiergrammar {importlib.metadata.version('hiergrammar')}"
    )


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "hiergrammar.cli", "theory", "critical", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["eps_star"] == "17/24"


def test_every_command_is_registered():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(commands.choices) == [
        "reproduce",
        "crosscheck",
        "instances",
        "theory",
        "sweep",
        "teach",
        "vision",
    ]


def test_rhm_flags_have_one_set_of_defaults():
    parser = build_parser()
    for argv in (["crosscheck"], ["theory", "critical"], ["theory", "validate"]):
        args = parser.parse_args(argv)
        for name, default in RHM_DEFAULTS.items():
            if hasattr(args, name):
                assert getattr(args, name) == default, (argv, name)


def test_rhm_flags_take_per_command_defaults_and_say_so_in_their_help():
    parser = argparse.ArgumentParser()
    add_rhm_arguments(parser, ("v", "L"), defaults={"L": 5})
    args = parser.parse_args([])
    assert (args.v, args.L) == (RHM_DEFAULTS["v"], 5)
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["L"].endswith("(default 5)")
    assert helps["v"].endswith(f"(default {RHM_DEFAULTS['v']})")
    assert parser.parse_args(["--L", "2"]).L == 2
    with pytest.raises(ValueError, match="name no flag"):
        add_rhm_arguments(argparse.ArgumentParser(), ("v",), defaults={"L": 5})
    with pytest.raises(ValueError, match="not RHM flags"):
        add_rhm_arguments(argparse.ArgumentParser(), ("v", "depth"))


def test_a_negative_seed_is_refused_with_the_same_message_everywhere(tmp_path, capsys):
    messages = set()
    for argv in (
        ["reproduce", "--out", str(tmp_path / "r"), "--seed", "-1"],
        ["crosscheck", *TINY, "--seed", "-1"],
        ["theory", "validate", "--quick", "--seed", "-1"],
    ):
        assert main(argv) == 2
        name = " ".join(argv[:2]) if argv[0] == "theory" else argv[0]
        messages.add(_one_line_error(capsys, name))
    assert len(messages) == 1
    assert messages.pop().startswith("--seed=-1 violates --seed >= 0")
    assert not (tmp_path / "r").exists()  # refused before any work


def test_out_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    import hiergrammar.reproduce as rep

    def boom(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(rep, "reproduce", boom)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["reproduce", "--out", str(a_file)]) == 2
    assert "is an existing file; give a folder" in _one_line_error(capsys, "reproduce")
    assert main(["theory", "validate", "--quick", "--out", str(a_file / "x")]) == 2
    assert "which is a file" in _one_line_error(capsys, "theory validate")


def test_an_input_error_is_one_line_and_any_other_error_keeps_its_traceback(monkeypatch, capsys):
    assert main(["theory", "critical", "--v", "1"]) == 2
    assert _one_line_error(capsys, "theory critical") == "v=1 violates v >= 2"

    import hiergrammar.theory.symbolic as symbolic

    def bug(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(symbolic, "critical_point", bug)
    with pytest.raises(ValueError, match="a bug, not bad input"):
        main(["theory", "critical"])

    def missing(*args, **kwargs):
        raise FileNotFoundError("a file the code itself needs")

    monkeypatch.setattr(symbolic, "critical_point", missing)
    with pytest.raises(FileNotFoundError):
        main(["theory", "critical"])


def test_ctrl_c_exits_130(monkeypatch, capsys):
    import hiergrammar.theory.symbolic as symbolic

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(symbolic, "critical_point", interrupted)
    assert main(["theory", "critical"]) == 130
    assert "interrupted" in capsys.readouterr().err


# -- crosscheck ------------------------------------------------------------------------------------
def test_crosscheck_json_is_json_on_stdout(capsys):
    code = main(["crosscheck", *TINY, "--engines", "tree_bp", "brute_force", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["agree"] is True and payload["exit_code"] == 0
    assert {e["engine"] for e in payload["engines"]} == {"tree_bp", "brute_force"}


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--max-trees", "-5", "--max-trees=-5 violates --max-trees >= 1"),
        ("--max-trees", "0", "--max-trees=0 violates --max-trees >= 1"),
        ("--max-seconds", "0", "--max-seconds=0.0 violates 0.0 < --max-seconds"),
        ("--tol", "-1", "--tol=-1.0 violates 0.0 <= --tol"),
        ("--eps", "1.5", "--eps=1.5 violates 0.0 <= --eps <= 1.0"),
        ("--eps", "nan", "--eps=nan violates 0.0 <= --eps <= 1.0 (it must be a finite number)"),
    ],
)
def test_crosscheck_bounds_are_input_errors(capsys, flag, value, message):
    assert main(["crosscheck", *TINY, flag, value]) == 2
    assert _one_line_error(capsys, "crosscheck") == message


def test_crosscheck_exit_codes_tell_a_disagreement_from_a_failure(monkeypatch, capsys):
    argv = ["crosscheck", *TINY, "--engines", "pgmpy_ve", "brute_force"]
    real = cc.RUNNERS["pgmpy_ve"]

    def off(rhm, ev, prior, **kwargs):
        marginals, log_ev = real(rhm, ev, prior)
        marginals[0] = np.roll(marginals[0], 1, axis=-1)  # wrong numbers
        return marginals, log_ev

    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setitem(cc.RUNNERS, "pgmpy_ve", off)
    assert main(argv) == 1
    assert "DISAGREEMENT" in capsys.readouterr().out
    monkeypatch.setitem(cc.RUNNERS, "pgmpy_ve", broken)
    assert main(argv) == 3
    out = capsys.readouterr().out
    assert "ERROR: engine(s) ['pgmpy_ve'] failed" in out and "DISAGREEMENT" not in out
    monkeypatch.setitem(cc.RUNNERS, "pgmpy_ve", real)
    assert main(argv) == 0
    assert "all engines agree" in capsys.readouterr().out


def test_crosscheck_passes_max_seconds_to_the_library(monkeypatch, capsys):
    seen = {}
    real = cc.crosscheck

    def spy(rhm, leaf_evidence, root_prior=None, engines=None, max_trees=None, max_seconds=30.0):
        seen["max_seconds"] = max_seconds
        return real(rhm, leaf_evidence, root_prior, engines, max_trees, max_seconds)

    monkeypatch.setattr(cc, "crosscheck", spy)
    assert main(["crosscheck", *TINY, "--engines", "tree_bp", "--max-seconds", "7.5"]) == 0
    assert seen == {"max_seconds": 7.5}
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv",
    [
        ["crosscheck", "--seed", "1.5"],
        ["theory", "critical", "--v", "x"],
        ["vision", "train-grammar", "--steps", "x"],
        ["nosuch"],
    ],
)
def test_argparse_errors_are_one_line_with_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ": error: " in err and "--help" in err
    assert "usage:" not in err
