"""Writing results (hiergrammar.artifacts): atomic files with the user's umask, strict JSON,
progress bars that stay quiet off a terminal, output paths checked before work, and output
folders whose manifest never describes a mixed set.

Independent evidence: ``os.stat`` modes against the umask, ``hashlib`` digests recomputed here,
``json.loads`` with a ``parse_constant`` that fails on any NaN/Infinity token.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat

import numpy as np
import pytest

from hiergrammar import __version__
from hiergrammar.artifacts import (
    IN_PROGRESS_NAME,
    MANIFEST_NAME,
    atomic_open,
    check_output_dir,
    check_output_file,
    dumps_json,
    progress,
    read_manifest,
    run_folder,
    save_json,
    save_text,
    verify_run_folder,
)
from hiergrammar.validation import InputError


def strict_loads(text: str):
    """json.loads that fails on the NaN / Infinity / -Infinity tokens Python would accept."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def umask():
    """Set the process umask for one test, and restore it."""
    saved = []

    def set_umask(mask: int) -> None:
        saved.append(os.umask(mask))

    yield set_umask
    if saved:
        os.umask(saved[0])


# -- atomic files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_files_get_the_mode_of_the_umask(tmp_path, umask, mask):
    umask(mask)
    target = save_text(tmp_path / "a.txt", "x")
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # what a plain open() gives under this umask
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


def test_atomic_write_keeps_the_old_file_and_removes_the_temporary_on_failure(tmp_path):
    target = save_json(tmp_path / "data.json", {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write('{"half": ')
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_text_is_written_as_utf8(tmp_path):
    target = save_text(tmp_path / "t.md", "eps ≈ 0.7 → ε*")
    assert target.read_bytes().decode("utf-8") == "eps ≈ 0.7 → ε*"


# -- strict JSON ----------------------------------------------------------------------------------
def test_json_is_strict_and_says_why_a_value_is_null(tmp_path):
    data = {
        "crossing": {3: float("nan"), 5: 0.71},
        "curve": np.array([1.0, np.inf, -np.inf]),
        "a/b": np.float32("nan"),
        "ok": None,
    }
    text = save_json(tmp_path / "s.json", data).read_text()
    loaded = strict_loads(text)
    assert loaded["crossing"] == {"3": None, "5": 0.71}
    assert loaded["curve"] == [1.0, None, None]
    assert loaded["ok"] is None
    assert loaded["non_finite_values"] == {
        "/crossing/3": "NaN",
        "/curve/1": "Infinity",
        "/curve/2": "-Infinity",
        "/a~1b": "NaN",  # JSON pointer escaping of "/"
    }
    assert "non_finite_values" not in strict_loads(dumps_json({"x": 1.5}))


# -- progress bars --------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv("HIERGRAMMAR_NO_PROGRESS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    items = [1, 2, 3]
    assert progress(items, desc="x") is items  # no bar at all
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    bar = progress(items, desc="visible", total=3)
    assert list(bar) == items and bar is not items
    assert "visible" in terminal.getvalue()


def test_no_progress_variable_wins_even_over_disable_false(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    items = [1, 2]
    assert progress(items, desc="x") is items
    assert progress(items, desc="x", disable=False) is items
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "0")  # "0" does not turn bars off
    monkeypatch.delenv("CI", raising=False)
    assert progress(items, desc="x") is not items


# -- output paths ---------------------------------------------------------------------------------
def test_output_paths_are_checked(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is an existing file; give a folder"):
        check_output_dir("--out", a_file)
    with pytest.raises(InputError, match="which is a file"):
        check_output_dir("--out", a_file / "sub")
    with pytest.raises(InputError, match="is a folder; give a file path"):
        check_output_file("--out", tmp_path)
    with pytest.raises(InputError, match="which is a file"):
        check_output_file("--out", a_file / "x.tex")
    assert check_output_dir("--out", tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_output_file("--out", tmp_path / "new" / "x.tex") == tmp_path / "new" / "x.tex"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InputError, match="is not writable"):
            check_output_dir("--out", folder / "results")
        with pytest.raises(InputError, match="is not writable"):
            check_output_file("--out", folder / "x.tex")
    finally:
        folder.chmod(0o755)


def test_an_unwritable_folder_is_refused_by_its_access_bits(tmp_path, monkeypatch):
    """The same check as above where the test runs as root: os.access says no."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(InputError, match=r"the folder .* is not writable"):
        check_output_dir("--out", tmp_path / "results")


# -- output folders -------------------------------------------------------------------------------
def _run(folder, seed=0, force=False, files=("a.txt", "sub/b.json"), fail=False, **params):
    with run_folder(folder, command="demo", parameters=params, seed=seed, force=force) as run:
        for name in files:
            save_json(run.path / name, {"seed": seed, **params})
            if fail:
                raise KeyboardInterrupt  # what Ctrl-C does halfway through
    return folder


def test_manifest_lists_every_written_file_with_its_sha256(tmp_path):
    folder = _run(tmp_path / "out", seed=3, n=1)
    manifest = strict_loads((folder / MANIFEST_NAME).read_text())
    for key in ("command", "parameters", "seed", "version", "files"):
        assert key in manifest
    assert manifest["command"] == "demo" and manifest["parameters"] == {"n": 1}
    assert manifest["seed"] == 3 and manifest["version"] == __version__
    on_disk = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )
    assert sorted(manifest["files"]) == on_disk == ["a.txt", "sub/b.json"]
    for rel, digest in manifest["files"].items():
        assert digest == hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    assert not (folder / IN_PROGRESS_NAME).exists()
    assert verify_run_folder(folder) == []
    (folder / "a.txt").write_text("edited")
    assert verify_run_folder(folder) == ["a.txt: changed since the run (sha256 differs)"]


def test_other_parameters_are_refused_before_anything_is_written(tmp_path):
    folder = _run(tmp_path / "out", seed=0, n=1)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=r"holds the outputs of `demo` with seed 0 .*--force"):
        _run(folder, seed=1, n=1)
    with pytest.raises(InputError, match=r'parameters \{"n": 1\}; this run .* \{"n": 2\}'):
        _run(folder, seed=0, n=2)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_force_deletes_the_old_outputs_and_nothing_else(tmp_path):
    folder = _run(tmp_path / "out", seed=0, files=("old.txt", "sub/old.json"), n=1)
    _run(folder, seed=1, force=True, files=("new.txt",), n=1)
    assert sorted(read_manifest(folder)["files"]) == ["new.txt"]
    assert not (folder / "old.txt").exists() and not (folder / "sub").exists()
    assert read_manifest(folder)["seed"] == 1 and verify_run_folder(folder) == []


def test_same_parameters_replace_the_old_set(tmp_path):
    folder = _run(tmp_path / "out", seed=0, files=("a.txt", "gone.txt"), n=1)
    _run(folder, seed=0, files=("a.txt",), n=1)  # a new version writes fewer files
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", MANIFEST_NAME]


def test_an_interrupted_run_is_marked_and_never_mixed(tmp_path):
    folder = _run(tmp_path / "out", seed=0, n=1)
    with pytest.raises(KeyboardInterrupt):
        _run(folder, seed=0, fail=True, n=1)
    # The old set is gone, the partial new one is marked as such, and no manifest claims it.
    assert not (folder / MANIFEST_NAME).exists()
    marker = strict_loads((folder / IN_PROGRESS_NAME).read_text())
    assert marker["seed"] == 0 and marker["files"] == ["a.txt"]
    assert verify_run_folder(folder)[0].startswith(IN_PROGRESS_NAME)
    with pytest.raises(InputError, match="partial outputs of an interrupted run"):
        _run(folder, seed=7, n=1)
    _run(folder, seed=7, force=True, files=("c.txt",), n=1)
    assert sorted(p.name for p in folder.iterdir()) == ["c.txt", MANIFEST_NAME]


def test_orphaned_temporary_files_are_cleaned_when_the_folder_is_next_written(tmp_path):
    folder = _run(tmp_path / "out", seed=0, n=1)
    orphans = [folder / ".a.txt.1f2e3d4c.tmp", folder / "sub" / ".b.json.k3j_x9q2.tmp"]
    for orphan in orphans:  # what a SIGKILL during atomic_open leaves behind
        orphan.write_text("half")
    keep = folder / "sub" / "notes.tmp"  # not an atomic_open name: not ours
    keep.write_text("mine")
    _run(folder, seed=0, n=1)
    assert not any(p.exists() for p in orphans)
    assert keep.read_text() == "mine"


def test_unknown_files_and_foreign_manifests_need_force(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files that no run.json describes \(notes.txt\)"):
        _run(folder, n=1)
    _run(folder, force=True, n=1)  # writes beside them, never deletes them
    assert (folder / "notes.txt").read_text() == "mine"
    assert "notes.txt" not in read_manifest(folder)["files"]
    (folder / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(InputError, match="not a hiergrammar manifest"):
        _run(folder, n=1)


def test_a_manifest_never_makes_a_run_delete_outside_its_folder(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_text(
        json.dumps(
            {
                "command": "demo",
                "parameters": {"n": 1},
                "seed": 0,
                "files": {"../precious.txt": "0", str(outside): "0"},
            }
        )
    )
    _run(folder, seed=0, n=1)
    assert outside.read_text() == "keep"


def test_a_run_that_fails_before_writing_leaves_no_marker(tmp_path):
    folder = tmp_path / "new"
    with pytest.raises(InputError):
        with run_folder(folder, command="demo", parameters={}, seed=0):
            raise InputError("a step refused its input")
    assert not folder.exists()
    _run(folder, n=1)
    with pytest.raises(RuntimeError):
        with run_folder(folder, command="demo", parameters={"n": 2}, seed=0, force=True):
            raise RuntimeError("before any file")
    assert sorted(p.name for p in folder.iterdir()) == []  # the old set was replaced
