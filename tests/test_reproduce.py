"""The main job: end to end (quick mode), its report and manifest, determinism, refusal to mix
runs, skipped steps, and the sizes each step declares."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import stat
import sys
import types

import numpy as np
import pytest

import hiergrammar.reproduce as rep
from hiergrammar.artifacts import (
    IN_PROGRESS_NAME,
    MANIFEST_NAME,
    ReportSection,
    read_manifest,
    save_json,
    verify_run_folder,
)
from hiergrammar.cli import main
from hiergrammar.reproduce import STEPS, reproduce
from hiergrammar.validation import InputError


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


@pytest.mark.slow
def test_reproduce_quick_writes_a_report_whose_links_all_resolve(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["reproduce", "--quick", "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "report.md" in printed and "run.json" in printed
    report = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    pngs = [link for link in links if link.endswith(".png")]
    assert len(pngs) >= 7  # phase transition (2), theory (4), CNN probe (1)
    for link in links:
        assert (out / link).is_file(), link
        assert (out / link).stat().st_size > 0
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    # The manifest, written last, lists exactly the files on disk with their SHA-256.
    manifest = read_manifest(out)
    assert manifest["command"] == "hiergrammar reproduce" and manifest["seed"] == 3
    assert manifest["parameters"] == {"quick": True, "steps": [s.name for s in STEPS]}
    on_disk = {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }
    assert manifest["files"] == on_disk
    assert set(links) <= set(on_disk)
    # Each step's seconds and budget are in the report and the manifest.
    for step in STEPS:
        row = next(line for line in report.splitlines() if line.startswith(f"| {step.name} |"))
        budget = step.load().QUICK.budget_seconds
        assert f"| {budget:.0f} |" in row
        assert manifest["steps"][step.name]["budget"] == budget
        assert manifest["steps"][step.name]["seconds"] > 0
    # Files are created with the umask's mode, not 0600.
    mask = _current_umask()
    for rel in on_disk:
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o666 & ~mask, rel


def _current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_same_seed_same_data(tmp_path):
    runs = []
    for name in ("a", "b"):
        reproduce(tmp_path / name, seed=1, quick=True, only=["phase_transition"])
        runs.append(np.load(tmp_path / name / "phase_transition.npz"))
    assert runs[0].files == runs[1].files
    for key in runs[0].files:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    other = tmp_path / "c"
    reproduce(other, seed=2, quick=True, only=["phase_transition"])
    differs = np.load(other / "phase_transition.npz")["eps_L3_p"]
    assert not np.array_equal(differs, runs[0]["eps_L3_p"])


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(InputError, match=r"unknown step\(s\) \['nope'\]"):
        reproduce(tmp_path / "r", only=["nope"])
    with pytest.raises(InputError, match="seed=-1 violates seed >= 0"):
        reproduce(tmp_path / "r", seed=-1)
    with pytest.raises(InputError, match="seed=1.5 is not a valid seed"):
        reproduce(tmp_path / "r", seed=1.5)
    with pytest.raises(InputError, match="must be a list of step names"):
        reproduce(tmp_path / "r", only="theory")  # a string is not split into letters
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is an existing file"):
        reproduce(a_file)
    assert not (tmp_path / "r").exists()


# -- with a fast fake step: the run-folder rules as seen from reproduce ----------------------------
@dataclasses.dataclass(frozen=True)
class _Sizes:
    n: int
    budget_seconds: float


def _install_fake_steps(monkeypatch, fail_in: str | None = None):
    """Replace the real steps by two fast ones (``one``, ``two``) and a third that needs a
    module that does not exist (``needs_extra``)."""

    def make(name: str, requires: tuple[str, ...] = ()):
        module = types.ModuleType(f"_fake_step_{name}")
        module.REQUIRES, module.EXTRA = requires, ("nothere" if requires else None)
        module.FULL, module.QUICK = _Sizes(100, 50.0), _Sizes(3, 5.0)

        def reproduce_step(out_dir, *, seed, sizes):
            data = save_json(out_dir / f"{name}.json", {"seed": seed, "n": sizes.n})
            if name == fail_in:
                raise KeyboardInterrupt
            return ReportSection(name, f"{name} with n = {sizes.n}", data=[data])

        module.reproduce_step = reproduce_step
        monkeypatch.setitem(sys.modules, module.__name__, module)
        return rep.Step(name, module.__name__)

    steps = (make("one"), make("two"), make("needs_extra", ("a_module_that_is_not_installed",)))
    monkeypatch.setattr(rep, "STEPS", steps)
    monkeypatch.setattr(rep, "STEP_NAMES", tuple(s.name for s in steps))


def test_a_step_whose_extra_is_missing_is_skipped_with_the_install_hint(tmp_path, monkeypatch):
    _install_fake_steps(monkeypatch)
    report = reproduce(tmp_path / "r", seed=0, quick=True).read_text()
    assert "needs_extra: skipped" in report
    assert "needs a_module_that_is_not_installed" in report
    assert "pip install 'hiergrammar[nothere]'" in report
    assert "one with n = 3" in report and "two with n = 3" in report  # the others ran
    steps = read_manifest(tmp_path / "r")["steps"]
    assert steps["needs_extra"]["status"] == "skipped" and steps["two"]["status"] == "ok"
    assert sorted(read_manifest(tmp_path / "r")["files"]) == ["one.json", "report.md", "two.json"]


def test_the_cnn_probe_step_is_skipped_without_torch(tmp_path, monkeypatch):
    """A base install (no vision extra) runs the other steps and reports the hint."""
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    report = reproduce(tmp_path / "r", quick=True, only=["cnn_probe"]).read_text()
    assert "cnn_probe: skipped" in report and "pip install 'hiergrammar[vision]'" in report
    assert not (tmp_path / "r" / "cnn_probe.png").exists()


def test_a_run_with_another_seed_is_refused_and_force_replaces_it(tmp_path, monkeypatch, capsys):
    _install_fake_steps(monkeypatch)
    out = tmp_path / "r"
    assert main(["reproduce", "--quick", "--out", str(out), "--only", "one", "two"]) == 0
    first = read_manifest(out)
    assert main(["reproduce", "--quick", "--out", str(out), "--seed", "1", "--only", "one"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed 0" in err and "--force" in err
    assert read_manifest(out) == first  # nothing touched
    args = ["reproduce", "--quick", "--out", str(out), "--seed", "1", "--only", "one", "--force"]
    assert main(args) == 0
    manifest = read_manifest(out)
    assert manifest["seed"] == 1 and sorted(manifest["files"]) == ["one.json", "report.md"]
    assert not (out / "two.json").exists()  # the seed-0 file is gone, not mixed in
    assert json.loads((out / "one.json").read_text())["seed"] == 1
    assert verify_run_folder(out) == []


def test_an_interrupted_run_leaves_a_marked_partial_set(tmp_path, monkeypatch):
    """Ctrl-C in the second step: no report or manifest claims the partial set, and a run with
    another seed cannot write into it without --force (today's seed-1-data-under-a-seed-0-report
    defect)."""
    _install_fake_steps(monkeypatch)
    out = tmp_path / "r"
    reproduce(out, seed=0, quick=True, only=["one", "two"])
    _install_fake_steps(monkeypatch, fail_in="two")
    with pytest.raises(KeyboardInterrupt):
        reproduce(out, seed=1, quick=True, only=["one", "two"], force=True)
    assert not (out / MANIFEST_NAME).exists() and not (out / "report.md").exists()
    assert json.loads((out / IN_PROGRESS_NAME).read_text())["seed"] == 1
    with pytest.raises(InputError, match="interrupted run"):
        reproduce(out, seed=0, quick=True, only=["one", "two"])
    _install_fake_steps(monkeypatch)
    reproduce(out, seed=1, quick=True, only=["one", "two"])  # same parameters: completes it
    assert verify_run_folder(out) == [] and read_manifest(out)["seed"] == 1


# -- the real steps' sizes -------------------------------------------------------------------------
@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_every_step_declares_frozen_full_and_quick_sizes_with_budgets(step):
    module = step.load()
    for sizes in (module.FULL, module.QUICK):
        assert dataclasses.is_dataclass(sizes) and type(sizes).__dataclass_params__.frozen
        assert sizes.budget_seconds > 0
    assert type(module.FULL) is type(module.QUICK)
    assert module.QUICK.budget_seconds <= module.FULL.budget_seconds
    for name in ("compute_", "plot_", "describe_"):
        assert any(attr.startswith(name) for attr in dir(module)), (step.name, name)


def test_budgets_fit_the_main_jobs_limits():
    """The full run is budgeted under 10 minutes on two cores, --quick under one minute."""
    full = sum(step.load().FULL.budget_seconds for step in STEPS)
    quick = sum(step.load().QUICK.budget_seconds for step in STEPS)
    assert full <= 600 and quick <= 60


def test_kernel_preparation_is_timed_apart_from_the_steps(tmp_path, monkeypatch, capsys):
    """The one-off compile (or cache load) of the numba kernels is its own line, not a step's
    seconds; with the numpy backend there is nothing to prepare."""
    _install_fake_steps(monkeypatch)
    calls = []
    monkeypatch.setattr(rep, "prepare_kernels", lambda: calls.append(1) or 12.5)
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "a"), "--only", "one"]) == 0
    assert calls == [1]
    assert "BP kernels: 12.5 s" in capsys.readouterr().out
    assert read_manifest(tmp_path / "a")["kernel_preparation_seconds"] == 12.5
    assert "took 12.5 s to compile or to load" in (tmp_path / "a" / "report.md").read_text()
    monkeypatch.setattr(rep, "prepare_kernels", lambda: None)
    reproduce(tmp_path / "b", quick=True, only=["one"])
    assert "kernel_preparation_seconds" not in read_manifest(tmp_path / "b")


def test_prepare_kernels_follows_the_default_backend(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_BACKEND", "numpy")
    assert rep.prepare_kernels() is None  # the reference needs no compile
    pytest.importorskip("numba")
    monkeypatch.setenv("HIERGRAMMAR_BACKEND", "numba")
    seconds = rep.prepare_kernels()
    assert seconds is not None and seconds >= 0
