"""Tests of ``hiergrammar theory …`` (hiergrammar.cli.theory), on a parser of our own and through
the main ``hiergrammar`` parser.

Independent evidence: eps* for s = 2 against (v - 2m + 1)/(v - m) computed here with
fractions, F'(1) against s m (v-1)/(v^s-1), the derivation text against
hiergrammar.theory.latex.render.
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction

import pytest
from hiergrammar.theory.latex import render

from hiergrammar.cli import theory as theory_cli
from hiergrammar.validation import InputError


def _run(argv: list[str]) -> int:
    """Parse with a parser holding only the ``theory`` command and run the handler."""
    parser = argparse.ArgumentParser(prog="test")
    sub = parser.add_subparsers(dest="command")
    theory_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("v,m", [(32, 8), (16, 3), (100, 17)])
def test_critical_prints_exact_and_float(capsys, v, m):
    assert _run(["theory", "critical", "--v", str(v), "--m", str(m), "--s", "2"]) == 0
    out = capsys.readouterr().out
    eps = Fraction(v - 2 * m + 1, v - m)
    slope = Fraction(2 * m * (v - 1), v**2 - 1)
    assert f"eps* = {eps.numerator}/{eps.denominator}" in out
    assert f"{float(eps):.10g}" in out
    assert f"F'(1)   = {slope.numerator}/{slope.denominator}" in out
    assert "transition: yes" in out


def test_critical_json_is_one_object(capsys):
    assert _run(["theory", "critical", "--v", "32", "--m", "8", "--s", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # one JSON document, nothing else
    assert data["eps_star"] == "17/24"
    assert data["eps_star_float"] == pytest.approx(17 / 24, rel=1e-15)
    assert data["fprime_1"] == "16/33" and data["transition"] is True
    assert data["u_star"] == "7/24" and data["n_classes"] == 32  # the shared RHM default


def test_critical_without_transition_explains_why(capsys):
    # 2m = 40 >= v + 1 = 33: F'(1) = 40/33 >= 1.
    _run(["theory", "critical", "--v", "32", "--m", "20", "--s", "2", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["transition"] is False and data["regime"] == "always_lost"
    assert data["fprime_1"] == "40/33" and "F'(1) = 40/33 >= 1" in data["explanation"]
    _run(["theory", "critical", "--v", "32", "--m", "20", "--s", "2"])
    assert "transition: no (always_lost)" in capsys.readouterr().out


def test_critical_general_s_and_n_classes(capsys):
    _run(["theory", "critical", "--v", "8", "--m", "3", "--s", "3", "--n-classes", "10", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "radicals" and "sqrt(57)" in data["eps_star"]
    assert data["n_classes"] == 10 and 0 < data["eps_star_float"] < 1 - 1 / 8


def test_critical_defaults_are_the_shared_rhm_defaults(capsys):
    from hiergrammar.cli.args import RHM_DEFAULTS

    assert _run(["theory", "critical", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    v, m = RHM_DEFAULTS["v"], RHM_DEFAULTS["m"]
    assert RHM_DEFAULTS["s"] == 2  # so that the s = 2 closed form applies
    eps = Fraction(v - 2 * m + 1, v - m)
    assert data["eps_star"] == f"{eps.numerator}/{eps.denominator}"


def test_critical_rejects_bad_parameters():
    with pytest.raises(InputError, match="m=9 violates 1 <= m <= v"):
        _run(["theory", "critical", "--v", "8", "--m", "9", "--s", "2"])
    with pytest.raises(SystemExit):  # argparse: --s takes an integer
        _run(["theory", "critical", "--v", "8", "--m", "2", "--s", "two"])


def test_derive_prints_or_writes_atomically(tmp_path, capsys):
    assert _run(["theory", "derive"]) == 0
    assert capsys.readouterr().out == render("markdown")
    out = tmp_path / "sub" / "derivation.tex"
    assert _run(["theory", "derive", "--out", str(out)]) == 0  # format from the suffix
    assert out.read_text(encoding="utf-8") == render("latex")
    assert "wrote" in capsys.readouterr().out
    md = tmp_path / "d.txt"
    _run(["theory", "derive", "--out", str(md), "--format", "markdown"])
    assert md.read_text(encoding="utf-8") == render("markdown")
    assert [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []


def test_through_main_hiergrammar_parser(capsys):
    """The real entry point: hiergrammar.cli.main builds the parser from every command
    module (fails, rather than skips, while one of them is missing)."""
    from hiergrammar.cli import main

    assert main(["theory", "critical", "--v", "32", "--m", "8", "--s", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eps_star"] == "17/24"
    assert main(["theory", "critical", "--v", "1", "--m", "1", "--s", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "hiergrammar theory critical: error: v=1 violates v >= 2"


def test_derive_out_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """``theory derive --out DIR``: a one-line error, exit 2, and the derivation never runs."""
    import hiergrammar.theory.latex as latex

    from hiergrammar.cli import main

    def boom(*args, **kwargs):
        raise AssertionError("render ran although --out was refused")

    monkeypatch.setattr(latex, "render", boom)
    assert main(["theory", "derive", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder; give a file path" in err


def test_validate_quick_prints_a_passing_table_and_writes_a_manifest(tmp_path, capsys):
    """Mean field vs exact BP at the paper's model: deviations below the 0.02 tolerance."""
    from hiergrammar.artifacts import read_manifest, verify_run_folder
    from hiergrammar.cli import main

    out = tmp_path / "val"
    code = main(["theory", "validate", "--quick", "--rules", "4", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "PASS" in text
    data = json.loads((out / "validate_meanfield.json").read_text())
    assert data["max_dev"] <= 0.02 and sorted(data["depths"]) == ["3", "4"]
    assert verify_run_folder(out) == []
    assert read_manifest(out)["command"] == "hiergrammar theory validate"
    # --json prints the same numbers to stdout; a tolerance below the deviation exits 1
    code = main(["theory", "validate", "--quick", "--rules", "4", "--json", "--tol", "1e-9"])
    assert code == 1 and json.loads(capsys.readouterr().out)["max_dev"] == data["max_dev"]


# -- critical points of the discrete processes (--process) ------------------------------------
def test_critical_process_json_keys_and_first_moment(capsys):
    """``--process masking --json``: the documented keys; the first-moment alpha* equals
    1 - eps* v/(v-1) with eps* = (v - 2m + 1)/(v - m), computed here with fractions."""
    argv = ["theory", "critical", "--process", "masking", "--methods", "first_moment"]
    assert _run([*argv, "determination", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {
        "process", "v", "m", "s", "schedule", "alpha", "t", "source", "best",
        "alpha_star", "t_star",
    }  # fmt: skip
    eps = Fraction(32 - 16 + 1, 32 - 8)
    alpha = 1 - eps * 32 / 31
    assert data["alpha"]["first_moment"] == pytest.approx(float(alpha), rel=1e-12)
    assert data["t"]["first_moment"] == pytest.approx(1 - float(alpha), rel=1e-12)
    assert data["source"] == {"first_moment": "closed form", "determination": "computed"}
    assert data["best"] == "determination" and data["t_star"] == data["t"]["determination"]
    assert 0.2 < data["t_star"] < 0.3 and data["schedule"] == "linear"


def test_critical_process_text_schedules_and_eps(capsys):
    import math

    _run(["theory", "critical", "--process", "uniform", "--methods", "first_moment"])
    text = capsys.readouterr().out
    assert "uniform process" in text and "first moment (effective eps)" in text
    assert "best: first moment" in text
    # cosine schedule: t = 2 asin(1 - alpha) / pi; uniform first moment alpha* = sqrt(25/93)
    argv = ["theory", "critical", "--process", "uniform", "--methods", "first_moment"]
    _run([*argv, "--schedule", "cosine", "--json"])
    data = json.loads(capsys.readouterr().out)
    alpha = math.sqrt(25 / 93)
    assert data["alpha_star"] == pytest.approx(alpha, rel=1e-12)
    assert data["t_star"] == pytest.approx(2 * math.asin(1 - alpha) / math.pi, rel=1e-9)
    # the eps-process: its two-value closure is the mean field, alpha* <-> eps* = 17/24
    argv = ["theory", "critical", "--process", "eps", "--methods", "two_value", "--n-pop", "3"]
    _run([*argv, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert (1 - data["alpha"]["two_value"]) * 31 / 32 == pytest.approx(17 / 24, abs=1e-3)


def test_critical_process_rejects_bad_arguments():
    with pytest.raises(InputError, match="--n-pop"):
        _run(["theory", "critical", "--process", "masking", "--n-pop", "0"])
    with pytest.raises(SystemExit):  # argparse: an unknown process
        _run(["theory", "critical", "--process", "gaussian"])


# -- every flag checked before any work; nothing silently ignored -------------------------------
def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--eps", "nan"], "--eps=nan violates 0.0 <= --eps <= 1.0 (it must be a finite number)"),
        (["--eps", "0.3", "1.5"], "--eps=1.5 violates 0.0 <= --eps <= 1.0"),
        (["--eps", "-0.1"], "--eps=-0.1 violates 0.0 <= --eps <= 1.0"),
        (["--depths", "3", "0"], "--depths=0 violates --depths >= 1"),
        (["--samples", "0"], "--samples=0 violates --samples >= 1"),
        (["--rules", "0"], "--rules=0 violates --rules >= 1"),
        (["--tol", "inf"], "--tol=inf violates 0.0 <= --tol"),
        (["--seed", "-1"], "--seed=-1 violates --seed >= 0"),
        (["--v", "3"], "m=8 violates m <= v**(s-1) = 3"),
    ],
)
def test_validate_flags_are_checked_before_any_work(monkeypatch, capsys, flags, message):
    """A bad number is a one-line error naming the flag and its bound, exit 2, and the
    validation never starts (it would otherwise fail deep inside, or after earlier depths)."""
    from hiergrammar.theory import validate_meanfield

    from hiergrammar.cli import main

    def boom(**kwargs):
        raise AssertionError("the validation ran although a flag was refused")

    monkeypatch.setattr(validate_meanfield, "run_validation", boom)
    assert main(["theory", "validate", "--quick", *flags]) == 2
    assert message in _one_line_error(capsys)


def test_validate_library_refuses_bad_arguments_before_any_bp(monkeypatch):
    """run_validation raises InputError naming the argument and the bound, before the first
    depth runs (a bad depth or eps late in the grid is not found after minutes of BP)."""
    from hiergrammar.theory import meanfield, validate_meanfield

    def boom(*args, **kwargs):
        raise AssertionError("BP ran although an argument was refused")

    monkeypatch.setattr(validate_meanfield, "bp_profile", boom)
    run = validate_meanfield.run_validation
    tiny = {"v": 8, "n_classes": 8, "m": 2, "s": 2}
    cases = [
        ({"eps": (0.3, float("nan"))}, r"eps\[1\]=nan violates 0.0 <= eps\[1\] <= 1.0"),
        ({"eps": (1.5,)}, r"eps\[0\]=1.5 violates 0.0 <= eps\[0\] <= 1.0"),
        ({"depths": (2, 0)}, r"depths\[1\]=0 violates depths\[1\] >= 1"),
        ({"depths": ()}, "at least one depth"),
        ({"n_samples": 0}, "n_samples=0 violates n_samples >= 1"),
        ({"n_rules": 0}, "n_rules=0 violates n_rules >= 1"),
        ({"seed": -1}, "seed=-1 violates seed >= 0"),
    ]
    for kwargs, match in cases:
        with pytest.raises(InputError, match=match):
            run(**{**tiny, "depths": (2,), **kwargs})
    # the mean-field profile itself: InputError (a ValueError) naming the bound
    for eps in (float("nan"), 1.5, -0.5):
        with pytest.raises(InputError, match="violates 0.0 <= eps <= 1.0"):
            meanfield.profile(8, 8, 2, 2, 2, eps)
    with pytest.raises(InputError, match="scalar or a 1-d array"):
        meanfield.profile(8, 8, 2, 2, 2, [[0.1]])


def test_validate_prints_each_depth_once(capsys):
    """Each depth's summary line appears once in all the output (stdout and stderr), in the
    table; the depths' progress is a tqdm bar, shown only on a terminal."""
    from hiergrammar.cli import main

    argv = ["theory", "validate", "--v", "8", "--n-classes", "8", "--m", "2", "--depths", "2"]
    code = main([*argv, "3", "--eps", "0.3", "--samples", "40", "--rules", "2", "--tol", "1"])
    captured = capsys.readouterr()
    assert code == 0
    text = captured.out + captured.err
    for L in (2, 3):
        assert text.count(f"L={L}: max |p_MF - p_BP|") == 1


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--schedule", "cosine"], "--schedule needs --process"),
        (["--n-pop", "5", "--compute-population"], "--n-pop, --compute-population need"),
        (["--methods", "first_moment"], "--methods needs --process"),
        (["--recompute"], "--recompute needs --process"),
    ],
)
def test_critical_refuses_process_options_without_process(capsys, flags, named):
    from hiergrammar.cli import main

    assert main(["theory", "critical", *flags]) == 2
    assert named in _one_line_error(capsys)


def test_critical_process_defaults_apply_when_the_options_are_not_given(capsys):
    from hiergrammar.cli import main

    assert main(["theory", "critical", "--process", "eps", "--methods", "first_moment"]) == 0
    assert "schedule linear" in capsys.readouterr().out


@pytest.mark.parametrize("process", ["uniform", "eps"])
def test_critical_refuses_determination_for_a_process_other_than_masking(capsys, process):
    """The determination law exists for masking only; asked for another process it is refused
    with the reason, not dropped from the output."""
    from hiergrammar.cli import main

    argv = ["theory", "critical", "--process", process, "--methods", "first_moment"]
    assert main([*argv, "determination"]) == 2
    err = _one_line_error(capsys)
    assert f"--methods determination applies to --process masking only, not {process}" in err


def test_critical_n_pop_above_the_memory_budget_is_refused_before_any_work(monkeypatch, capsys):
    """A huge --n-pop is refused with the estimate (it used to allocate 745 GiB); the budget
    comes from $HIERGRAMMAR_MEMORY_BUDGET, and a population within it runs."""
    from hiergrammar.theory import discrete

    from hiergrammar.cli import main

    calls = []
    real = discrete._two_value_levels
    monkeypatch.setattr(
        discrete, "_two_value_levels", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    argv = ["theory", "critical", "--process", "masking", "--recompute", "--methods"]
    assert main([*argv, "determination", "two_value", "--n-pop", "100000000000"]) == 2
    err = _one_line_error(capsys)
    assert "two-value populations" in err and "above the memory budget of 4.00 GiB" in err
    assert calls == []
    # the same refusal under a small budget, and a population within it runs
    monkeypatch.setenv("HIERGRAMMAR_MEMORY_BUDGET", "1MiB")
    assert main([*argv, "two_value", "--n-pop", "100000"]) == 2
    assert "above the memory budget of 1.00 MiB" in _one_line_error(capsys)
    assert calls == []
    assert main([*argv, "two_value", "--n-pop", "100", "--json"]) == 0
    assert calls and json.loads(capsys.readouterr().out)["source"]["two_value"] == "computed"


def test_two_value_critical_alpha_checks_the_memory_budget(monkeypatch):
    from hiergrammar.theory.discrete import critical_alpha, two_value_critical_alpha

    with pytest.raises(InputError, match="above the memory budget"):
        two_value_critical_alpha("masking", 32, 8, 2, n_pop=10**11)
    with pytest.raises(InputError, match="above the memory budget"):
        critical_alpha("uniform", 16, 3, 2, methods=["two_value"], n_pop=10**11)
    monkeypatch.setenv("HIERGRAMMAR_MEMORY_BUDGET", "1MiB")
    with pytest.raises(InputError, match="above the memory budget of 1.00 MiB"):
        two_value_critical_alpha("eps", 32, 8, 2, n_pop=10**5)
    # stored thresholds need no population: no refusal
    stored = critical_alpha("uniform", 32, 8, 2, methods=["two_value"], n_pop=10**11)
    assert stored.source == {"two_value": "stored"}
