"""Sweeps on real Dask worker processes: a worker killed mid-sweep, an existing cluster given by
its address, and the command's own local cluster.

The clusters run on 127.0.0.1 with no dashboard (no network). Independent evidence: a serial
run in this process (no Dask), compared file by file (SHA-256) and row by row.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from hiergrammar.cli import main
from hiergrammar.sweep import load, read_store_manifest, run_sweep

pytestmark = pytest.mark.slow

distributed = pytest.importorskip("distributed")

#: 16 tasks of about a tenth of a second each on a quiet core.
CONFIG = {
    "seed": 2,
    "rule_draws": 4,
    "grammar": {"v": 16, "m": [3, 5], "s": 2, "L": [4, 5]},
    "noise": {"process": "eps", "levels": [0.2, 0.5, 0.7]},
    "measure": {"name": "beliefs", "n_samples": 300},
}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIERGRAMMAR_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes (one thread each) on this machine."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.CRITICAL,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the same sweep in this process, without Dask."""
    folder = tmp_path_factory.mktemp("serial") / "store"
    assert run_sweep(CONFIG, folder, scheduler="serial", progress=False).complete
    return folder


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (folder / "tasks").rglob("*.parquet")
    }


def test_a_worker_killed_mid_sweep_loses_nothing_and_duplicates_nothing(cluster, serial, tmp_path):
    folder = tmp_path / "store"
    with distributed.Client(cluster, set_as_default=False) as client:
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        outcome: dict = {}

        def sweep() -> None:
            try:
                outcome["result"] = run_sweep(CONFIG, folder, scheduler=client, progress=False)
            except BaseException as err:  # pragma: no cover - reported by the assertion below
                outcome["error"] = err

        runner = threading.Thread(target=sweep)
        runner.start()
        deadline = time.monotonic() + 120
        while len(_hashes(folder)) < 2 if folder.exists() else True:
            assert time.monotonic() < deadline, "no task finished within 120 s"
            time.sleep(0.02)
        done_at_kill = len(_hashes(folder))
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=300)
        assert not runner.is_alive() and "error" not in outcome, outcome.get("error")
        after = set(client.run(os.getpid).values())
    result = outcome["result"]
    assert done_at_kill < result.n_tasks, "the kill came after the last task"
    assert victim not in after  # the nanny replaced the killed process
    assert result.complete and result.failed == {} and result.computed == result.n_tasks == 16
    # Every result exactly once, no temporary left over, and each file as the serial run's.
    files = list((folder / "tasks").rglob("*"))
    assert len(files) == 16 and all(p.suffix == ".parquet" for p in files)
    assert _hashes(folder) == _hashes(serial)
    assert load(folder).equals(load(serial))
    manifest = read_store_manifest(folder)
    assert manifest["status"] == "complete" and manifest["runs"][-1]["workers"] == 2


def test_an_existing_cluster_by_its_address_and_a_resume(cluster, serial, tmp_path, capsys):
    """``--scheduler ADDRESS``: the command connects, computes only what is missing, and the
    files it writes are the serial run's."""
    folder = tmp_path / "store"
    run_sweep(CONFIG, folder, scheduler="serial", progress=False)
    removed = sorted((folder / "tasks").glob("*.parquet"))[:5]
    for path in removed:
        path.unlink()
    toml = tmp_path / "sweep.toml"
    toml.write_text(
        "seed = 2\nrule_draws = 4\n"
        "[grammar]\nv = 16\nm = [3, 5]\ns = 2\nL = [4, 5]\n"
        '[noise]\nprocess = "eps"\nlevels = [0.2, 0.5, 0.7]\n'
        '[measure]\nname = "beliefs"\nn_samples = 300\n'
    )
    args = ["sweep", str(toml), "--out", str(folder), "--scheduler", cluster.scheduler_address]
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "16 tasks: 5 computed, 11 already there, 0 failed" in out
    assert _hashes(folder) == _hashes(serial)


def test_the_command_starts_and_stops_its_own_local_cluster(serial, tmp_path, capsys):
    toml = tmp_path / "one.toml"
    toml.write_text(
        "seed = 2\n[grammar]\nv = 16\nm = 3\ns = 2\nL = 4\n"
        '[noise]\nprocess = "eps"\nlevels = [0.2, 0.5, 0.7]\n'
        '[measure]\nname = "beliefs"\nn_samples = 300\n'
    )
    before = {t.name for t in threading.enumerate()}
    environ = dict(os.environ)
    assert main(["sweep", str(toml), "--out", str(tmp_path / "s"), "--workers", "1"]) == 0
    # Dask's nannies write their workers' variables (OMP_NUM_THREADS=1...) into the process
    # that starts them; the command puts this process's environment back.
    assert dict(os.environ) == environ
    assert "1 tasks: 1 computed, 0 already there, 0 failed" in capsys.readouterr().out
    # Rule draw 0 of (m = 3, L = 4) is a task of the reference grid: the same file.
    (name,) = _hashes(tmp_path / "s")
    assert _hashes(tmp_path / "s")[name] == _hashes(serial)[name]
    time.sleep(0.5)
    lingering = {t.name for t in threading.enumerate()} - before
    assert not [name for name in lingering if "Nanny" in name or "Worker" in name]


_REFUSING = """
def refuses(grammar, process, t, *, n_samples, seed, log):
    from hiergrammar.validation import InputError

    with open(log, "a") as handle:
        handle.write(f"{t}\\n")
    raise InputError(f"t={t} violates t < 0 for this test")
"""


def test_an_input_error_on_a_worker_is_not_retried(cluster, tmp_path):
    from hiergrammar.sweep import register_measurement, unregister_measurement

    # Defined outside any importable module, so Dask ships the function itself to the workers.
    namespace: dict = {"__name__": "hiergrammar_tests_not_importable"}
    exec(_REFUSING, namespace)
    register_measurement("refuses_on_workers", namespace["refuses"])
    log = tmp_path / "calls.txt"
    config = {
        "grammar": {"v": 4, "m": 2, "s": 2, "L": 2},
        "rule_draws": 2,
        "noise": {"process": "eps", "levels": [0.1]},
        "measure": {"name": "refuses_on_workers", "n_samples": 2, "log": str(log)},
    }
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            result = run_sweep(config, tmp_path / "s", scheduler=client, retries=2, progress=False)
    finally:
        unregister_measurement("refuses_on_workers")
    assert len(result.failed) == 2
    assert len(log.read_text().splitlines()) == 2  # one call per task: no retry
    for failure in result.failed.values():
        assert failure["attempts"] == 1
        assert failure["error"] == "InputError: t=0.1 violates t < 0 for this test"
