"""The ``hiergrammar vision`` commands (hiergrammar.cli.vision*): the same command names and
flags as before they moved into hiergrammar.cli, and the shared flags' contract (one-line
errors, exit code 2, before any work).

Independent evidence: the messages of the other commands for the same bad input, the grammar
object a file was saved from, and the files on disk (nothing written after a refusal).
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from hiergrammar.cli import build_parser, main


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("hiergrammar vision: error: "), lines[0]
    return lines[0].split(": error: ", 1)[1]


def _vision_commands() -> list[str]:
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    vision = top.choices["vision"]
    sub = next(a for a in vision._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def _argv(command: str, tmp_path) -> list[str]:
    """A complete command line of ``command`` whose inputs do not exist (nothing can run)."""
    missing = str(tmp_path / "missing")
    return {
        "sample": ["--model", missing, "--images", missing, "--t", "1", "--num-steps", "2"],
        "convert-adm": ["--checkpoint", missing],
        "probe": ["--classifier", missing, "--start", missing, "--generated", missing],
        "plot": ["--data", missing],
        "train-grammar": ["--steps", "1"],
    }[command]


def test_the_vision_commands_keep_their_names():
    assert _vision_commands() == ["sample", "convert-adm", "probe", "plot", "train-grammar"]


def test_a_negative_seed_gets_the_message_of_every_other_command(tmp_path, capsys):
    assert main(["crosscheck", "--v", "3", "--n-classes", "2", "--m", "2", "--seed", "-1"]) == 2
    reference = capsys.readouterr().err.split(": error: ", 1)[1].strip()
    for command in ("sample", "train-grammar"):
        out = tmp_path / command
        argv = ["vision", command, *_argv(command, tmp_path), "--out", str(out), "--seed", "-1"]
        assert main(argv) == 2
        assert _one_line_error(capsys) == reference
        assert not out.exists()
    for flag in ("--grammar-seed", "--data-seed"):
        argv = ["vision", "train-grammar", "--out", str(tmp_path / "t"), flag, "-2"]
        assert main(argv) == 2
        assert _one_line_error(capsys).startswith(f"{flag}=-2 violates {flag} >= 0")


@pytest.mark.parametrize("command", ["sample", "convert-adm", "probe", "train-grammar"])
def test_out_naming_a_file_is_refused_before_any_work(command, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["vision", command, *_argv(command, tmp_path), "--out", str(a_file)]) == 2
    assert _one_line_error(capsys) == f"--out={str(a_file)!r} is an existing file; give a folder"
    assert a_file.read_text() == "x"


def test_plot_out_is_a_file(tmp_path, capsys):
    assert main(["vision", "plot", *_argv("plot", tmp_path), "--out", str(tmp_path)]) == 2
    assert _one_line_error(capsys) == f"--out={str(tmp_path)!r} is a folder; give a file path"


@pytest.mark.parametrize("command", ["probe", "train-grammar"])
def test_a_device_that_does_not_exist_is_one_line(command, tmp_path, capsys):
    pytest.importorskip("torch")
    argv = ["vision", command, *_argv(command, tmp_path), "--out", str(tmp_path / "o")]
    assert main([*argv, "--device", "banana"]) == 2
    assert _one_line_error(capsys).startswith("--device='banana' is not a device")
    assert not (tmp_path / "o").exists()


def test_train_grammar_takes_the_shared_rhm_flags_with_its_own_defaults(tmp_path, capsys):
    from hiergrammar.cli.args import model_from_args, run_checks
    from hiergrammar.grammar_io import save_grammar
    from hiergrammar.rhm import RHM

    parser = build_parser()
    args = parser.parse_args(["vision", "train-grammar", "--out", str(tmp_path / "o")])
    assert (args.v, args.n_classes, args.m, args.s, args.L) == (8, 8, 2, 2, 3)
    run_checks(args)
    built = model_from_args(args, seed=args.grammar_seed)
    want = RHM(v=8, n_classes=8, m=2, s=2, L=3, seed=0)
    assert np.array_equal(built.sample(6, seed=2).x, want.sample(6, seed=2).x)

    # --grammar FILE: the file's grammar, and the RHM flags given with it are refused
    other = RHM(v=5, n_classes=3, m=2, s=2, L=2, seed=4)
    path = save_grammar(other, tmp_path / "g.npz")
    args = parser.parse_args(
        ["vision", "train-grammar", "--out", str(tmp_path / "o")]
        + [
            "--grammar",
            str(path),
        ]
    )
    run_checks(args)
    loaded = model_from_args(args, seed=args.grammar_seed)
    assert (loaded.v, loaded.L) == (5, 2)
    assert np.array_equal(loaded.sample(6, seed=2).x, other.sample(6, seed=2).x)
    argv = ["vision", "train-grammar", "--out", str(tmp_path / "o"), "--grammar", str(path)]
    assert main([*argv, "--v", "5"]) == 2
    assert "mutually exclusive" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_help_of_every_vision_command_builds(capsys):
    for command in _vision_commands():
        with pytest.raises(SystemExit) as stop:
            main(["vision", command, "--help"])
        assert stop.value.code == 0
        assert f"usage: hiergrammar vision {command}" in capsys.readouterr().out


def test_train_grammar_summary_never_prints_nan():
    from hiergrammar.cli.vision_train_grammar import _time

    assert _time(float("nan")) == "not reached in the measured times"
    assert _time(None) == "not reached in the measured times"
    assert _time(0.25) == "0.250"
