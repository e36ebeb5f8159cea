"""The ``hiergrammar vision`` commands (hiergrammar.cli.vision*): the same command names and
flags as before they moved into hiergrammar.cli, and the shared flags' contract (one-line
errors, exit code 2, before any work).

Independent evidence: the messages of the other commands for the same bad input, the grammar
object a file was saved from, and the files on disk (nothing written after a refusal).
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from hiergrammar.cli import build_parser, main


def _one_line_error(capsys, command: str | None = None) -> str:
    """The message of the one error line, which names the sub-command (``command`` if given)."""
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    prefix, message = lines[0].split(": error: ", 1)
    assert prefix.startswith("hiergrammar vision ") and prefix.split()[2] in _vision_commands()
    assert command is None or prefix == f"hiergrammar vision {command}", prefix
    return message


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
    message = _one_line_error(capsys, command)  # prefixed with the sub-command, as argparse's
    assert message == f"--out={str(a_file)!r} is an existing file; give a folder"
    assert a_file.read_text() == "x"


def test_plot_out_is_a_file(tmp_path, capsys):
    assert main(["vision", "plot", *_argv("plot", tmp_path), "--out", str(tmp_path)]) == 2
    assert (
        _one_line_error(capsys, "plot") == f"--out={str(tmp_path)!r} is a folder; give a file path"
    )


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


def test_argparse_and_the_command_name_the_same_sub_command(tmp_path, capsys):
    # independent evidence: argparse's own error for a wrong type carries the sub-parser's prog
    argv = ["vision", "train-grammar", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit):
        main([*argv, "--steps", "1.5"])
    argparse_prefix = capsys.readouterr().err.splitlines()[-1].split(": error: ")[0]
    assert argparse_prefix == "hiergrammar vision train-grammar"
    assert main([*argv, "--steps", "0"]) == 2
    assert _one_line_error(capsys, "train-grammar") == "--steps=0 violates --steps >= 1"


#: A tiny train-grammar run (about a second of training on a CPU).
_TINY = ["--v", "4", "--n-classes", "2", "--m", "2", "--s", "2", "--L", "2", "--n-train", "16"]
_TINY += ["--steps", "3", "--batch-size", "4", "--width", "8", "--device", "cpu"]
_TINY += ["--threads", "1", "--no-progress"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--lr", "1e30"], "--lr=1e+30 violates 0.0 < --lr <= 1.0"),
        (["--lr", "0"], "--lr=0.0 violates 0.0 < --lr <= 1.0"),
        (["--lr", "nan"], "--lr=nan violates 0.0 < --lr <= 1.0 (it must be a finite number)"),
        (["--weight-decay", "-0.1"], "--weight-decay=-0.1 violates 0.0 <= --weight-decay <= 1.0"),
        (["--weight-decay", "2"], "--weight-decay=2.0 violates 0.0 <= --weight-decay <= 1.0"),
        (["--steps", "0"], "--steps=0 violates --steps >= 1"),
        (["--batch-size", "0"], "--batch-size=0 violates --batch-size >= 1"),
        (["--warmup-steps", "-1"], "--warmup-steps=-1 violates --warmup-steps >= 0"),
        (["--checkpoint-every", "-1"], "--checkpoint-every=-1 violates --checkpoint-every >= 0"),
        (["--n-train", "0"], "--n-train=0 violates --n-train >= 1"),
        (["--num-train-steps", "0"], "--num-train-steps=0 violates --num-train-steps >= 1"),
        (["--width", "0"], "--width=0 violates --width >= 2"),
        (["--width", "7"], "--width=7 must be even (sin and cos time features)"),
        (["--depth", "0"], "--depth=0 violates --depth >= 1"),
        (["--heads", "0"], "--heads=0 violates --heads >= 1"),
        (
            ["--architecture", "grammar_transformer", "--width", "10", "--heads", "4"],
            "--width=10 must be a multiple of --heads=4 (the transformer splits the channels "
            "among its heads)",
        ),
        (["--evaluate", "--n-test", "0"], "--n-test=0 violates --n-test >= 2"),
        (["--evaluate", "--n-test", "1"], "--n-test=1 violates --n-test >= 2"),
        (["--evaluate", "--reverse-steps", "0"], "--reverse-steps=0 violates --reverse-steps >= 1"),
        (
            ["--evaluate", "--n-forward-backward", "0"],
            "--n-forward-backward=0 violates --n-forward-backward >= 1",
        ),
        (["--evaluate", "--n-generate", "0"], "--n-generate=0 violates --n-generate >= 1"),
        (["--evaluate", "--t", "0.5", "1.5"], "--t=1.5 violates 0.0 <= --t <= 1.0"),
        (
            ["--family", "gaussian", "--evaluate", "--t", "0.5"],
            "--t=0.5 is not a chain step of the Gaussian family (an integer 1..T, T = "
            "--num-train-steps = 1000)",
        ),
        (
            ["--family", "gaussian", "--num-train-steps", "10", "--t", "11"],
            "--t=11.0 violates 1 <= --t <= 10",
        ),
    ],
)
def test_train_grammar_flags_are_checked_before_any_work(
    flags, message, tmp_path, capsys, monkeypatch
):
    pytest.importorskip("torch")
    from hiergrammar.vision.grammar_diffusion import train

    def no_training(*args, **kwargs):
        raise AssertionError("training started although a flag is out of range")

    monkeypatch.setattr(train, "train_denoiser", no_training)
    out = tmp_path / "o"
    assert main(["vision", "train-grammar", *_TINY, "--out", str(out), *flags]) == 2
    assert _one_line_error(capsys, "train-grammar") == message
    assert not out.exists()


def test_train_grammar_resume_needs_a_checkpoint(tmp_path, capsys):
    pytest.importorskip("torch")
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    for folder in (new, empty):
        argv = ["vision", "train-grammar", *_TINY, "--out", str(folder), "--resume"]
        assert main(argv) == 2
        assert _one_line_error(capsys, "train-grammar") == (
            f"nothing to resume in {str(folder)!r}: it holds no checkpoint; drop --resume to "
            "start a new run"
        )
    assert not new.exists() and list(empty.iterdir()) == []


def test_a_diverging_run_is_one_line_naming_lr(tmp_path, capsys, monkeypatch):
    # the parse-time bound keeps --lr 1e30 out; widen it to reach the run-time guard, which a
    # learning rate too large for a given network can meet below the bound too
    pytest.importorskip("torch")
    from hiergrammar.cli import vision_train_grammar

    monkeypatch.setattr(vision_train_grammar, "LR_RANGE", (0.0, 1e31))
    out = tmp_path / "o"
    assert main(["vision", "train-grammar", *_TINY, "--out", str(out), "--lr", "1e30"]) == 2
    message = _one_line_error(capsys, "train-grammar")
    assert message.startswith("training diverged at step "), message
    assert message.endswith("; choose a smaller --lr than 1e+30"), message
    assert re.search(r"\(the loss became (NaN|-?inf) at learning rate [0-9.e+]+\)", message)
    assert "nan" not in message


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's help as argparse prints it (``%(default)s`` expanded)."""
    formatter = parser._get_formatter()
    return {
        action.option_strings[-1]: formatter._expand_help(action) if action.help else ""
        for action in parser._actions
        if action.option_strings and action.help is not argparse.SUPPRESS
    }


def _vision_parser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = next(
        a for a in top.choices["vision"]._actions if isinstance(a, argparse._SubParsersAction)
    )
    return sub.choices[command]


@pytest.mark.parametrize("command", ["sample", "convert-adm", "probe", "plot", "train-grammar"])
def test_every_vision_flag_has_help_with_its_default(command):
    parser = _vision_parser(command)
    defaults = {a.option_strings[-1]: a.default for a in parser._actions if a.option_strings}
    for flag, text in _help_lines(parser).items():
        assert text.strip(), f"{flag} has no help"
        default = defaults[flag]
        if default not in (None, False, [], argparse.SUPPRESS) and flag != "--help":
            assert f"default {default}" in text or f"default: {default}" in text, (
                f"{flag}: {text!r} does not give {default!r}"
            )


def test_train_grammar_help_prints_ranges_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["vision", "train-grammar", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    for shown in ("peak AdamW learning rate, 0 < LR <= 1 (default 0.002)", "(default 2000)"):
        assert shown in printed
