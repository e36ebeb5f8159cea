"""Sweeps (hiergrammar.sweep) in this process: the config, task identities and seeds, the store,
resuming, failures and retries, the built-in measurements, load, and the command line.

Independent evidence: closed forms of exact BP at the ends of the noise range, an independent
engine run (``bp_profile``, other seeds) compared within standard errors, byte-for-byte file
comparisons between runs, and task ids recomputed in a fresh interpreter with another hash
seed. The runs on real Dask worker processes are in tests/test_sweep_cluster.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hiergrammar import RHM
from hiergrammar.cli import main
from hiergrammar.sweep import (
    grid_array,
    load,
    mean_over_draws,
    parse_config,
    read_config,
    read_store_manifest,
    register_measurement,
    run_sweep,
    unregister_measurement,
)
from hiergrammar.validation import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


def small(**changes) -> dict:
    """A sweep of 2 x 2 tasks that runs in a fraction of a second."""
    config = {
        "seed": 3,
        "rule_draws": 2,
        "grammar": {"v": 8, "m": [2, 3], "s": 2, "L": 2},
        "noise": {"process": "eps", "levels": [0.0, 0.4, 7 / 8]},
        "measure": {"name": "beliefs", "n_samples": 40},
    }
    config.update(changes)
    return config


def sweep(config, folder, **kwargs):
    return run_sweep(config, folder, scheduler="serial", progress=False, **kwargs)


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (folder / "tasks").rglob("*.parquet")
    }


# -- the config --------------------------------------------------------------------------------
TOML = """
seed = 3
rule_draws = 2

[grammar]
v = 8
m = [2, 3]
s = 2
L = 2

[noise]
process = "eps"
levels = [0.0, 0.4, 0.875]

[measure]
name = "beliefs"
n_samples = 40
"""


def test_toml_and_dict_declare_the_same_tasks(tmp_path):
    (tmp_path / "s.toml").write_text(TOML)
    from_toml = read_config(tmp_path / "s.toml").tasks()
    from_dict = parse_config(small()).tasks()
    assert [t.id for t in from_toml] == [t.id for t in from_dict]
    assert len(from_dict) == 4  # m axis (2) x rule draws (2); the levels share a task
    # A dict written in another key order is the same sweep.
    reordered = dict(reversed(list(small().items())))
    reordered["grammar"] = dict(reversed(list(small()["grammar"].items())))
    assert [t.id for t in parse_config(reordered).tasks()] == [t.id for t in from_dict]


def test_lists_are_axes_and_tables_add_up():
    config = small(
        grammar=[
            {"v": 8, "m": [2, 3], "s": 2, "L": [2, 3]},
            {"v": 8, "m": 2, "s": 2, "L": 2},  # already in the first table: counted once
            {"v": 6, "n_classes": 3, "m": 2, "s": 3, "L": 1},
        ],
        noise=[
            {"process": ["eps", "uniform"], "levels": [0.2, 0.5], "levels_per_task": 1},
            {"process": "masking", "levels": {"start": 0.0, "stop": 1.0, "num": 3}},
        ],
        data_draws=[5, 7],
    )
    tasks = parse_config(config).tasks()
    grammars, noise_groups, rule_draws, data_draws = 4 + 1, 2 * 2 + 1, 2, 2
    assert len(tasks) == grammars * noise_groups * rule_draws * data_draws
    assert len({t.id for t in tasks}) == len(tasks)
    masking = next(t for t in tasks if t.process == "masking")
    assert masking.levels == (0.0, 0.5, 1.0)
    assert {t.data_draw for t in tasks} == {5, 7}
    assert {t.columns()["n_classes"] for t in tasks} == {8, 3}  # n_classes defaults to v


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({"grammar": {"v": 8, "m": 2, "s": 2}}, r"lacks \['L'\]"),
        ({"grammar": {"v": 8, "m": 9, "s": 2, "L": 2}}, r"m=9 violates m <= v\*\*\(s-1\) = 8"),
        ({"grammar": {"v": 8, "m": [], "s": 2, "L": 2}}, r"m=\[\]: a grid axis needs"),
        (
            {"grammar": {"v": 8, "m": 2, "s": 2, "L": 2, "depth": 3}},
            r"unknown key\(s\) \['depth'\]",
        ),
        ({"noise": {"process": "fog", "levels": [0.1]}}, r"process='fog' is not one of"),
        ({"noise": {"process": "eps", "levels": [0.1, 1.5]}}, r"1\.5"),
        ({"noise": {"process": "eps", "levels": [0.1, 0.1]}}, "holds a value twice"),
        ({"noise": {"process": "eps"}}, "lacks 'levels'"),
        ({"measure": {"name": "nope", "n_samples": 5}}, "no measurement named 'nope'"),
        ({"measure": {"name": "beliefs", "n_samples": 0}}, r"n_samples=0 violates"),
        ({"measure": {"name": "beliefs", "n_samples": 5, "colour": 2}}, "takes no option 'colour'"),
        ({"measure": {"name": "beliefs", "n_samples": 5, "dtype": "float16"}}, "float16"),
        ({"rule_draws": 0}, r"rule_draws=0 violates"),
        ({"rule_draws": [1, 1]}, "holds a draw twice"),
        ({"seed": -1}, r"seed=-1 violates seed >= 0"),
        ({"measure": {"name": "masked_reconstruction", "n_samples": 5}}, "needs the process"),
        ({"measure": {"name": "token_changes", "n_samples": 1}}, r"n_samples=1 violates"),
        ({"measure": {"name": "no.such.module:f", "n_samples": 5}}, "cannot import"),
    ],
)
def test_every_bad_value_is_refused_naming_it(change, message, tmp_path):
    config = small(**change)
    with pytest.raises(InputError, match=message):
        config = parse_config(config)
        # Options are checked when the measurement is called: before any task file exists.
        sweep(config, tmp_path / "s")
    assert not (tmp_path / "s" / "tasks").exists()


def test_bad_toml_and_missing_files_are_input_errors(tmp_path):
    (tmp_path / "bad.toml").write_text("[grammar\nv = 8\n")
    with pytest.raises(InputError, match=r"is not valid TOML: .*line 1"):
        read_config(tmp_path / "bad.toml")
    with pytest.raises(InputError, match="does not exist"):
        read_config(tmp_path / "none.toml")
    RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0).save(tmp_path / "good.npz")  # binary
    with pytest.raises(InputError, match=r"good\.npz' is not a sweep config: not UTF-8 text"):
        read_config(tmp_path / "good.npz")


def test_the_command_refuses_a_binary_config_with_one_line(tmp_path, capsys):
    RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0).save(tmp_path / "good.npz")
    args = ["sweep", str(tmp_path / "good.npz"), "--out", str(tmp_path / "s")]
    assert main(args) == 2
    assert "is not a sweep config: not UTF-8 text" in _one_line_error(capsys)
    assert not (tmp_path / "s").exists()


def test_task_ids_and_seeds_are_the_same_in_a_fresh_interpreter():
    """Ids and seeds come from SHA-256 of canonical JSON, never from Python's salted hash."""
    code = (
        "import json, sys\n"
        "from hiergrammar.sweep import parse_config\n"
        "config = parse_config(json.loads(sys.argv[1]))\n"
        "print(json.dumps([[t.id, t.rule_seed, list(t.data_seeds)] for t in config.tasks()]))\n"
    )
    here = [[t.id, t.rule_seed, list(t.data_seeds)] for t in parse_config(small()).tasks()]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(small())],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == here
    # Every parameter is part of the identity.
    changed = parse_config(small(seed=4)).tasks()
    assert not {t.id for t in changed} & {row[0] for row in here}


def test_ids_and_seeds_follow_their_documented_definition():
    """The ids and seeds assembled from JSON fragments are the SHA-256 of the canonical JSON
    of the whole, as documented."""
    from hiergrammar.sweep.config import canonical_json

    def h(*parts):
        return hashlib.sha256(canonical_json(list(parts)).encode()).digest()

    config = parse_config(small(noise={"process": ["eps", "uniform"], "levels": [0.1, 1 / 3]}))
    for task in config.tasks():
        assert task.id == h("task", task.canonical()).hex()[:20]
        grammar = task.grammar.canonical()
        assert task.rule_seed == int.from_bytes(h("rule", 3, grammar, task.rule_draw)[:8]) >> 1
        for t, seed in zip(task.levels, task.data_seeds, strict=True):
            parts = ("data", 3, grammar, task.rule_draw, task.data_draw, task.process, None, t)
            assert seed == int.from_bytes(h(*parts)[:8], "big") >> 1


# -- running, the store and load -----------------------------------------------------------------
def test_results_do_not_depend_on_how_levels_are_split_into_tasks(tmp_path):
    whole = sweep(small(), tmp_path / "a")
    split = small(noise={"process": "eps", "levels": [0.0, 0.4, 7 / 8], "levels_per_task": 1})
    apart = sweep(split, tmp_path / "b")
    assert (whole.n_tasks, apart.n_tasks) == (4, 12)
    keys = ["m", "rule_draw", "noise_level", "level"]
    a = load(tmp_path / "a").drop(columns="task").sort_values(keys).reset_index(drop=True)
    b = load(tmp_path / "b").drop(columns="task").sort_values(keys).reset_index(drop=True)
    assert a.equals(b)


def test_beliefs_at_the_ends_of_the_noise_range(tmp_path):
    sweep(small(), tmp_path / "s")
    frame = load(tmp_path / "s")
    assert len(frame) == 4 * 3 * 3  # tasks x noise levels x tree levels (L = 2)
    clean = frame[frame["noise_level"] == 0.0]
    np.testing.assert_allclose(clean[["u", "p", "accuracy"]].to_numpy(), 1.0)
    # eps = 1 - 1/v: flat leaf evidence, so the class marginal is the uniform prior exactly.
    flat = frame[(frame["noise_level"] == 7 / 8) & (frame["level"] == 2)]
    np.testing.assert_allclose(flat["p"], 1 / 8, atol=1e-12)
    np.testing.assert_allclose(
        frame[frame["level"] == 0]["u"], 1 - frame[frame["level"] == 0]["noise_level"], atol=1e-12
    )


def test_beliefs_agree_with_bp_profile_within_standard_errors(tmp_path):
    """The sweep's measurement and bp_profile (other rule draws and data) estimate the same
    annealed averages: every level's mean marginal agrees within 4 combined standard errors."""
    from hiergrammar.experiments.beliefs import bp_profile

    config = small(
        rule_draws=6,
        grammar={"v": 8, "m": 3, "s": 2, "L": 3},
        noise={"process": "eps", "levels": [0.45]},
        measure={"name": "beliefs", "n_samples": 150},
    )
    sweep(config, tmp_path / "s")
    means = mean_over_draws(load(tmp_path / "s"), ["p", "accuracy"], by=["level"])
    reference = bp_profile(8, 8, 3, 2, 3, [0.45], n_samples=900, n_rules=6, seed=11)
    for q in ("p", "accuracy"):
        ref, ref_se = getattr(reference, q)[0], getattr(reference, f"{q}_se")[0]
        gap = np.abs(means[q].to_numpy() - ref)
        assert np.all(gap <= 4 * np.hypot(means[f"{q}_se"].to_numpy(), ref_se) + 1e-3), (q, gap)


def test_token_changes_rows_and_their_relations(tmp_path):
    config = small(
        rule_draws=1,
        grammar={"v": 8, "n_classes": 4, "m": 2, "s": 2, "L": 3},
        noise={"process": ["masking", "uniform"], "levels": [0.0, 0.6]},
        measure={"name": "token_changes", "n_samples": 60, "dtype": "float32"},
    )
    sweep(config, tmp_path / "s")
    frame = load(tmp_path / "s")
    assert len(frame) == 2 * 2 * 4
    np.testing.assert_allclose(frame[frame["noise_level"] == 0.0]["unchanged"], 1.0)
    for _, row in frame.iterrows():
        C = np.asarray(row["C"])
        assert C.shape == (8,)  # d = s**L
        assert row["chi"] == pytest.approx(C[1:].sum())
        if row["level"] == 0:
            assert row["C_tree"] == pytest.approx(C[0])
    C, (processes, levels) = grid_array(frame[frame["level"] == 0], "C", ["process", "noise_level"])
    assert C.shape == (2, 2, 8) and list(processes) == ["masking", "uniform"]


def test_a_resumed_sweep_computes_only_the_missing_tasks_with_identical_files(tmp_path):
    folder = tmp_path / "s"
    first = sweep(small(), folder)
    assert (first.computed, first.skipped, first.complete) == (4, 0, True)
    before = file_hashes(folder)
    doomed = sorted(before)[:2]
    for name in doomed:
        (folder / "tasks" / name).unlink()
    # A killed writer's temporary file is removed, never read as a result.
    (folder / "tasks" / f".{doomed[0]}.0a1b2c3d.tmp").write_bytes(b"partial")
    again = sweep(small(), folder, resume=True)
    assert (again.computed, again.skipped) == (2, 2)
    assert file_hashes(folder) == before  # the same bytes as in the first run
    assert not [p for p in folder.rglob("*.tmp")]
    manifest = read_store_manifest(folder)
    assert manifest["status"] == "complete" and manifest["done"] == 4
    assert [run["computed"] for run in manifest["runs"]] == [4, 2]
    nothing = sweep(small(), folder)
    assert (nothing.computed, nothing.skipped) == (0, 4)


def test_the_store_refuses_another_grid_other_files_and_a_resume_of_nothing(tmp_path):
    folder = tmp_path / "s"
    sweep(small(), folder)
    with pytest.raises(InputError, match="holds the sweep of another grid"):
        sweep(small(seed=9), folder)
    assert len(file_hashes(folder)) == 4
    with pytest.raises(InputError, match="holds no sweep to resume"):
        sweep(small(), tmp_path / "new", resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files that are not a sweep store's \(notes.txt\)"):
        sweep(small(), tmp_path / "other")
    # replace=True deletes the old store's files; never anything else.
    replaced = sweep(small(seed=9), folder, replace=True)
    assert replaced.computed == 4 and len(file_hashes(folder)) == 4
    (folder / "README").write_text("kept")
    with pytest.raises(InputError, match=r"not a sweep store's \(README\)"):
        sweep(small(seed=10), folder, replace=True)
    assert (folder / "README").read_text() == "kept" and len(file_hashes(folder)) == 4


@pytest.fixture
def flaky(tmp_path):
    """A measurement that fails for m = 3 while a flag file exists, and whose first call for
    each (m, rule draw) raises when a second flag file exists."""
    broken, first_call = tmp_path / "broken", tmp_path / "first_call"
    calls: dict[tuple, int] = {}

    def measure(grammar, process, t, *, n_samples, seed):
        key = (grammar.m, grammar.seed)
        calls[key] = calls.get(key, 0) + 1
        if broken.exists() and grammar.m == 3:
            raise RuntimeError(f"m = 3 is broken at t = {t}")
        if first_call.exists() and calls[key] == 1:
            raise OSError("a passing glitch")
        return {"mean_leaf": float(grammar.sample(n_samples, seed=seed).x.mean())}

    register_measurement("flaky_for_tests", measure)
    yield broken, first_call, calls
    unregister_measurement("flaky_for_tests")


def test_a_failing_task_is_recorded_and_the_others_finish(tmp_path, flaky):
    broken, _, calls = flaky
    broken.touch()
    config = small(measure={"name": "flaky_for_tests", "n_samples": 10})
    folder = tmp_path / "s"
    result = sweep(config, folder, retries=1)
    assert result.computed == 2 and len(result.failed) == 2 and not result.complete
    manifest = read_store_manifest(folder)
    assert manifest["status"] == "incomplete" and set(manifest["failed"]) == set(result.failed)
    for failure in manifest["failed"].values():
        assert failure["error"].startswith("RuntimeError: m = 3 is broken")
        assert failure["attempts"] == 2 and "raise RuntimeError" in failure["traceback"]
        assert failure["params"]["grammar"]["m"] == 3
    with pytest.raises(
        InputError, match=r"lacks 2 of 4 task results \(2 failed: .*m = 3 is broken"
    ):
        load(folder)
    partial = load(folder, allow_missing=True)
    assert set(partial["m"]) == {2} and len(partial.attrs["missing"]) == 2
    broken.unlink()  # fixed: running again computes the two failed tasks only
    calls.clear()
    again = sweep(config, folder)
    assert (again.computed, again.skipped, again.complete) == (2, 2, True)
    assert all(m == 3 for m, _ in calls)
    assert read_store_manifest(folder)["failed"] == {}


def test_a_task_that_raises_once_is_retried(tmp_path, flaky):
    _, first_call, calls = flaky
    first_call.touch()
    config = small(measure={"name": "flaky_for_tests", "n_samples": 10})
    without = sweep(config, tmp_path / "a", retries=0)
    assert len(without.failed) == 4
    assert all(f["error"] == "OSError: a passing glitch" for f in without.failed.values())
    calls.clear()
    with_retry = sweep(config, tmp_path / "b", retries=1)
    assert with_retry.complete and with_retry.computed == 4
    # Per (m, rule draw): the failed first call, then the retry's call for each of 3 levels.
    assert sorted(calls.values()) == [1 + 3] * 4


def test_a_function_named_by_its_module_path_measures_the_same_data(tmp_path):
    """Data seeds do not depend on the measurement: the same function by name or by path
    gives the same numbers under other task ids."""
    path = small(measure={"name": "hiergrammar.sweep.measurements:beliefs", "n_samples": 40})
    sweep(small(), tmp_path / "a")
    sweep(path, tmp_path / "b")
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    assert set(a["task"]).isdisjoint(b["task"])
    assert a.drop(columns="task").equals(b.drop(columns="task"))


def test_a_measurement_breaking_its_contract_is_a_recorded_failure(tmp_path):
    def bad(grammar, process, t, *, n_samples, seed):
        return {"level": np.arange(3), "x": np.zeros(5)}

    register_measurement("bad_for_tests", bad)
    try:
        result = sweep(small(measure={"name": "bad_for_tests", "n_samples": 2}), tmp_path / "s")
    finally:
        unregister_measurement("bad_for_tests")
    assert len(result.failed) == 4
    error = next(iter(result.failed.values()))["error"]
    assert "'x' has shape (5,); with 3 levels" in error


def test_a_grammar_file_is_an_axis_copied_into_the_store(tmp_path):
    rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=5)
    rhm.save(tmp_path / "g.npz")
    config = small(
        rule_draws=1,
        grammar={"file": "g.npz"},
        measure={"name": "beliefs", "n_samples": 20},
    )
    (tmp_path / "s.toml").write_text(
        '[grammar]\nfile = "g.npz"\n[noise]\nprocess = "eps"\nlevels = [0.0, 0.4, 0.875]\n'
        '[measure]\nname = "beliefs"\nn_samples = 20\n'
    )
    folder = tmp_path / "s"
    sweep(read_config(tmp_path / "s.toml"), folder)
    copies = list((folder / "grammars").glob("*.npz"))
    assert len(copies) == 1 and copies[0].read_bytes() == (tmp_path / "g.npz").read_bytes()
    frame = load(folder)
    assert set(frame["file"]) == {"g.npz"} and frame["level"].max() == 3
    np.testing.assert_allclose(frame[frame["noise_level"] == 0.0]["accuracy"], 1.0)
    with pytest.raises(InputError, match="rule_draws=\\[0, 1\\] applies to RHM parameters"):
        parse_config({**config, "rule_draws": 2}, base_dir=tmp_path)


def test_the_summary_helpers_match_a_direct_computation(tmp_path):
    sweep(small(rule_draws=3), tmp_path / "s")
    frame = load(tmp_path / "s")
    means = mean_over_draws(frame, ["accuracy"], by=["m", "noise_level", "level"])
    part = frame[(frame["m"] == 3) & (frame["noise_level"] == 0.4) & (frame["level"] == 1)]
    row = means[(means["m"] == 3) & (means["noise_level"] == 0.4) & (means["level"] == 1)]
    values = part["accuracy"].to_numpy()
    assert row["accuracy"].item() == pytest.approx(values.mean())
    assert row["accuracy_se"].item() == pytest.approx(values.std(ddof=1) / np.sqrt(3))
    one = mean_over_draws(frame[frame["rule_draw"] == 0], ["p"], by=["m", "noise_level", "level"])
    direct = frame[frame["rule_draw"] == 0].sort_values(["m", "noise_level", "level"])
    np.testing.assert_array_equal(one["p_se"].to_numpy(), direct["p_se"].to_numpy())
    acc, (ms, noise, levels) = grid_array(means, "accuracy", ["m", "noise_level", "level"])
    assert acc.shape == (2, 3, 3) and acc[1, 1, 1] == pytest.approx(values.mean())


# -- progress and imports ------------------------------------------------------------------------
def test_the_progress_bar_obeys_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HIERGRAMMAR_NO_PROGRESS")
    monkeypatch.delenv("CI", raising=False)
    run_sweep(small(), tmp_path / "a", scheduler="serial", progress=True)
    assert "sweep a" in capsys.readouterr().err
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")
    run_sweep(small(), tmp_path / "b", scheduler="serial", progress=True)
    assert capsys.readouterr().err == ""


def test_import_hiergrammar_and_the_sweep_api_stay_light():
    """Dask, distributed, pyarrow and pandas load only when a sweep runs or is read."""
    heavy = ("dask", "distributed", "pyarrow", "pandas", "torch", "matplotlib")
    code = (
        "import sys, json\n"
        "import hiergrammar, hiergrammar.sweep\n"
        "from hiergrammar.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# -- the command line ----------------------------------------------------------------------------
def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("hiergrammar sweep: error: ")
    return lines[0]


def test_the_command_refuses_bad_input_with_one_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(TOML.replace('process = "eps"', 'process = "fog"'))
    assert main(["sweep", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "s")]) == 2
    assert "process='fog'" in _one_line_error(capsys)
    (tmp_path / "s.toml").write_text(TOML)
    args = ["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "s")]
    assert main([*args, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--workers applies to the local cluster" in _one_line_error(capsys)
    assert main([*args, "--workers", "0"]) == 2
    assert "--workers=0 violates" in _one_line_error(capsys)
    assert main([*args, "--resume"]) == 2
    assert "holds no sweep to resume" in _one_line_error(capsys)
    (tmp_path / "file").write_text("x")
    assert main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "file")]) == 2
    assert "is an existing file" in _one_line_error(capsys)
    with pytest.raises(SystemExit) as stop:
        main(["sweep", str(tmp_path / "s.toml")])  # --out is required
    assert stop.value.code == 2
    assert not (tmp_path / "s").exists()


def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path, capsys, monkeypatch):
    import hiergrammar.sweep.execution as execution

    monkeypatch.setattr(execution, "CONNECT_TIMEOUT", 2)
    (tmp_path / "s.toml").write_text(TOML)
    args = ["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "s")]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:9"]) == 2  # nothing listens there
    assert "no Dask scheduler answered within 2 s" in _one_line_error(capsys)
    assert not (tmp_path / "s").exists()  # refused before any file is written


def test_the_shipped_small_sweep_is_valid():
    config = read_config(ROOT / "benchmarks" / "sweep_small.toml")
    assert 10 <= len(config.tasks()) <= 40


def test_the_docs_page_documents_every_key_and_its_example_runs(tmp_path):
    """docs/sweeps.md: its TOML example is a valid sweep and every config key is on the page."""
    import re

    from hiergrammar.sweep.config import _NOISE_KEYS, _TOP_KEYS, GRAMMAR_KEYS

    page = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", page, re.S).group(1)
    (tmp_path / "example.toml").write_text(example)
    config = read_config(tmp_path / "example.toml")
    assert len(config.tasks()) == 3 * 2 * 4  # m x L x rule draws
    for key in (*_TOP_KEYS, *GRAMMAR_KEYS, *_NOISE_KEYS, "name", "n_samples", "start", "num"):
        assert re.search(rf"\b{key}\b", page), key
    for target in re.findall(r"\]\(([^)\s]+)\)", page):
        if not re.match(r"^[a-z]+:", target):
            assert (ROOT / "docs" / target).is_file(), target


def _refusal(call) -> str | None:
    """The bound an InputError names (the text from "would need"), or None if none raised."""
    try:
        call()
    except InputError as err:
        return str(err)[str(err).index("would need") :]
    return None


@pytest.mark.parametrize(
    ("name", "process", "options"),
    [
        ("beliefs", "eps", {}),
        ("beliefs", "gaussian", {"dtype": "float32"}),
        ("beliefs", "uniform", {"chunk_size": 4}),
        ("token_changes", "masking", {}),
        ("masked_reconstruction", "masking", {}),
    ],
)
def test_each_preflight_refuses_exactly_what_its_measurement_refuses(
    name, process, options, monkeypatch
):
    """Independent evidence: the measurement itself, run under budgets on both sides of its
    limits; the preflight must refuse the same sizes with the same estimate."""
    from hiergrammar.sweep import get_measurement
    from hiergrammar.sweep.config import make_process

    entry = get_measurement(name)
    outcomes = []
    cases = [(2, "2KiB"), (2, "16KiB"), (4, "8KiB"), (4, "64KiB"), (6, "32KiB"), (6, "256KiB")]
    for L, budget in cases:
        monkeypatch.setenv("HIERGRAMMAR_MEMORY_BUDGET", budget)
        rhm = RHM(v=4, n_classes=2, m=2, s=2, L=L, seed=0)
        noise = make_process(process, 4)
        kwargs = {"n_samples": 20, **options}
        expected = _refusal(lambda: entry.func(rhm, noise, 0.3, seed=1, **kwargs))  # noqa: B023
        assert _refusal(lambda: entry.preflight(rhm, noise, **kwargs)) == expected  # noqa: B023
        outcomes.append(expected is None)
    assert any(outcomes) and not all(outcomes)  # both sides of the limit were reached


HUGE = TOML.replace("L = 2", "L = [2, 40]")


def test_a_grid_point_above_the_memory_budget_is_refused_before_any_work(tmp_path, capsys):
    assert "L = [2, 40]" in HUGE
    (tmp_path / "huge.toml").write_text(HUGE)
    with pytest.raises(InputError, match=r"grid point .*L=40 \(process eps\): beliefs: one sam"):
        sweep(read_config(tmp_path / "huge.toml"), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    args = ["sweep", str(tmp_path / "huge.toml"), "--out", str(tmp_path / "s")]
    assert main(args) == 2
    line = _one_line_error(capsys)
    assert "L=40" in line and "above the memory budget" in line
    assert not (tmp_path / "s").exists()  # no store, no task


def test_an_input_error_inside_a_task_is_recorded_once_and_not_retried(tmp_path):
    calls = []

    def refuses(grammar, process, t, *, n_samples, seed):
        calls.append(t)
        raise InputError(f"t={t} violates t < 0 for this test")

    register_measurement("refuses_for_tests", refuses)
    try:
        config = small(measure={"name": "refuses_for_tests", "n_samples": 2})
        result = sweep(config, tmp_path / "s", retries=2)
    finally:
        unregister_measurement("refuses_for_tests")
    assert len(result.failed) == 4 and len(calls) == 4  # one call per task: no retry
    for failure in result.failed.values():
        assert failure["attempts"] == 1
        assert failure["error"] == "InputError: t=0.0 violates t < 0 for this test"
    with pytest.raises(InputError, match=r"running the sweep again fails the same way"):
        load(tmp_path / "s")
