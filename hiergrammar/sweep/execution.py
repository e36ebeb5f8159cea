"""Running a sweep: which tasks are missing, where they run, retries, failures, progress.

:func:`run_sweep` opens (or creates) the store, lists the task files already there, and runs
only the missing tasks:

* ``scheduler="local"`` (the default): a Dask ``LocalCluster`` on this machine, one worker
  process per core (``workers=N`` for another number), one thread each, bound to
  ``127.0.0.1`` with no dashboard; started here and stopped when the sweep ends;
* an address (``"tcp://host:8786"``) or a scheduler file (``"scheduler.json"``): an existing
  Dask cluster, whose workers must see the store's folder at the same path (a shared
  filesystem);
* a ``distributed.Client``: used as it is (not closed);
* ``"serial"``: this process, one task after the other, without Dask.

Inside ``with use_scheduler(...)`` the sweeps that are not given a scheduler share one (a local
cluster is then started by the first sweep that needs it and stopped at the end of the block).

Each task that raises is run again up to ``retries`` times (default
:data:`DEFAULT_RETRIES`); a task whose worker dies is moved to another worker by Dask (up to
Dask's ``distributed.scheduler.allowed-failures`` deaths). A task that still fails is recorded
in the store's manifest with its error and traceback, and the other tasks go on. At most a
bounded number of tasks is submitted at a time (four per worker thread, at least 1,000), so a
grid of millions of tasks does not flood the scheduler.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import logging
import os
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiergrammar.artifacts import progress as progress_bar
from hiergrammar.sweep.config import SweepConfig, as_config
from hiergrammar.sweep.measurements import get_measurement
from hiergrammar.sweep.store import Store, _now, load
from hiergrammar.sweep.tasks import execute_or_refuse, execute_task
from hiergrammar.validation import InputError, check_int

__all__ = [
    "DEFAULT_RETRIES",
    "check_sizes",
    "SharedScheduler",
    "SweepFailed",
    "SweepResult",
    "current_scheduler",
    "run_sweep",
    "scheduler_for",
    "sweep_frame",
    "use_scheduler",
]

#: How many times a task that raises is run again before it is recorded as failed.
DEFAULT_RETRIES = 2

#: Seconds to wait for an existing Dask scheduler to answer.
CONNECT_TIMEOUT = 30

_LOCAL, _SERIAL = "local", "serial"


@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    folder : Path
        The store.
    n_tasks : int
        Tasks of the grid.
    skipped : int
        Tasks whose file was there before this run.
    computed : int
        Tasks finished by this run.
    failed : dict
        Task id -> ``{"error", "traceback", "attempts", "params"}`` of the tasks that failed.
    seconds : float
        Wall time of the run (store opening, cluster start and stop included).
    compute_seconds : float
        Sum over tasks of the seconds they spent in the measurement and writing.
    cpu_seconds : float
        Sum over tasks of the CPU seconds of the processes that ran them.
    scheduler : str
        ``"serial"``, ``"local"`` or the address used.
    workers : int or None
        Worker processes (local cluster, or the cluster's count when the sweep started).
    """

    folder: Path
    n_tasks: int
    skipped: int
    computed: int
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    compute_seconds: float = 0.0
    cpu_seconds: float = 0.0
    scheduler: str = _SERIAL
    workers: int | None = None

    @property
    def complete(self) -> bool:
        """Whether every task of the grid has its result."""
        return not self.failed and self.skipped + self.computed == self.n_tasks

    def frame(self, allow_missing: bool = False):
        """The results as a DataFrame (:func:`hiergrammar.sweep.load`)."""
        return load(self.folder, allow_missing=allow_missing)


# -- schedulers -----------------------------------------------------------------------------------
def _check_scheduler(scheduler: Any, workers: int | None) -> tuple[Any, int | None]:
    if workers is not None:
        workers = check_int("workers", workers, 1)
    if isinstance(scheduler, SharedScheduler) or _is_client(scheduler):
        if workers is not None:
            raise InputError("workers applies to a local cluster; this sweep is given a cluster")
        return scheduler, None
    if not isinstance(scheduler, str) or not scheduler:
        raise InputError(
            f"scheduler={scheduler!r} must be 'local', 'serial', a Dask scheduler address "
            "('tcp://host:8786'), a scheduler file (*.json) or a distributed.Client"
        )
    if scheduler not in (_LOCAL, _SERIAL) and not (":" in scheduler or scheduler.endswith(".json")):
        raise InputError(
            f"scheduler={scheduler!r} is neither 'local', 'serial', an address "
            "('tcp://host:8786', 'host:8786') nor a scheduler file (*.json)"
        )
    if workers is not None and scheduler != _LOCAL:
        raise InputError(
            f"workers={workers} applies to the local cluster; scheduler={scheduler!r} has its own"
        )
    if scheduler.endswith(".json") and not Path(scheduler).is_file():
        raise InputError(f"scheduler={scheduler!r}: no such scheduler file")
    return scheduler, workers


def _is_client(value: Any) -> bool:
    return type(value).__name__ == "Client" and hasattr(value, "submit")


def _restore_environ(saved: dict[str, str]) -> None:
    """Put ``os.environ`` back as ``saved`` (Dask's nannies write their workers' variables
    into the process that starts them)."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _start_local(workers: int | None):
    """A LocalCluster of worker processes on 127.0.0.1 (no dashboard), its client, and this
    process's environment as it was before."""
    import dask
    from distributed import Client, LocalCluster

    n = workers or os.cpu_count() or 1
    # Variables set before a worker starts (one thread for BLAS, OpenMP and numba's kernels:
    # one worker per core). Not Dask's MALLOC_TRIM_THRESHOLD_: setting it stops glibc from
    # adapting its mmap threshold, so every large numpy temporary is a fresh mmap; exact-BP
    # tasks measured about 40% more CPU time with it.
    spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {})
    spawn_env.pop("MALLOC_TRIM_THRESHOLD_", None)
    spawn_env["NUMBA_NUM_THREADS"] = 1
    saved = dict(os.environ)
    try:
        # Workers run CPU-bound tasks on every core, so Dask's own periodic work competes with
        # them: no statistical profiler (it samples every thread each 10 ms), and a slower
        # event-loop tick and system monitor (20 ms and 0.5 s by default). The sweep benchmark
        # measured 1.53x -> 1.58-1.65x on two workers with these alone.
        with dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ": spawn_env,
                "distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "5s",
            }
        ):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # No dashboard; the scheduler's HTTP endpoint on 127.0.0.1 at a free port
                # (its default, 8787, may be taken by another cluster on this machine).
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
    finally:
        _restore_environ(saved)
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return client, cluster, saved


def _connect(address: str):
    from distributed import Client

    try:
        if address.endswith(".json"):
            return Client(scheduler_file=address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise InputError(
            f"scheduler={address!r}: no Dask scheduler answered within {CONNECT_TIMEOUT} s "
            f"({type(err).__name__}: {err})"
        ) from None


class SharedScheduler:
    """A scheduler shared by the sweeps of a ``with use_scheduler(...)`` block.

    ``"local"`` starts its cluster at the first :meth:`client` call and stops it at
    :meth:`close`; an address connects once; ``"serial"`` runs in this process.
    """

    def __init__(self, scheduler: Any = _LOCAL, workers: int | None = None):
        self.scheduler, self.workers = _check_scheduler(scheduler, workers)
        self._client = None
        self._cluster = None
        self._environ: dict[str, str] | None = None

    @property
    def serial(self) -> bool:
        return self.scheduler == _SERIAL

    @property
    def description(self) -> str:
        if _is_client(self.scheduler):
            return str(self.scheduler.scheduler.address)
        return str(self.scheduler)

    def client(self):
        """The Dask client (started or connected on first use); None for ``"serial"``."""
        if self.serial:
            return None
        if self._client is None:
            if _is_client(self.scheduler):
                self._client = self.scheduler
            elif self.scheduler == _LOCAL:
                self._client, self._cluster, self._environ = _start_local(self.workers)
            else:
                self._client = _connect(self.scheduler)
        return self._client

    def close(self) -> None:
        """Stop what this object started (a client given to it stays open)."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None and not _is_client(self.scheduler):
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        if self._environ is not None:  # a restarted worker's nanny wrote into it again
            _restore_environ(self._environ)
            self._environ = None


_CURRENT: contextvars.ContextVar[SharedScheduler | None] = contextvars.ContextVar(
    "hiergrammar_sweep_scheduler", default=None
)


@contextlib.contextmanager
def use_scheduler(scheduler: Any = _LOCAL, workers: int | None = None) -> Iterator[SharedScheduler]:
    """Run the sweeps of the block that are given no scheduler on ``scheduler``.

    Parameters
    ----------
    scheduler : str or distributed.Client
        As for :func:`run_sweep`.
    workers : int, optional
        Worker processes of a local cluster (default one per core).

    Yields
    ------
    SharedScheduler

    Examples
    --------
    >>> with use_scheduler("serial"):
    ...     current_scheduler().description
    'serial'
    """
    shared = SharedScheduler(scheduler, workers)
    token = _CURRENT.set(shared)
    try:
        yield shared
    finally:
        _CURRENT.reset(token)
        shared.close()


def current_scheduler(default: Any = _LOCAL) -> Any:
    """The scheduler of the enclosing :func:`use_scheduler` block, else ``default``.

    Examples
    --------
    >>> current_scheduler("serial")
    'serial'
    """
    shared = _CURRENT.get()
    return shared if shared is not None else default


@contextlib.contextmanager
def scheduler_for(
    scheduler: Any = None, *, default: Any = _SERIAL, workers: int | None = None
) -> Iterator[SharedScheduler]:
    """The scheduler a group of sweeps (a figure step's) shares.

    ``scheduler`` if given, else the enclosing :func:`use_scheduler` block's, else ``default``
    (with ``workers`` local worker processes when it is ``"local"``). A local cluster started
    here is stopped when the block ends.

    Examples
    --------
    >>> with scheduler_for() as chosen:
    ...     chosen.description
    'serial'
    """
    if scheduler is None:
        scheduler = _CURRENT.get()
    if scheduler is None:
        scheduler = default
    if isinstance(scheduler, SharedScheduler):
        yield scheduler
        return
    with use_scheduler(scheduler, workers if scheduler == _LOCAL else None) as shared:
        yield shared


class SweepFailed(RuntimeError):
    """Tasks of a sweep failed after their retries (raised by :func:`sweep_frame`); ``result``
    is the :class:`SweepResult`, whose ``failed`` maps each task to its error."""

    def __init__(self, result: SweepResult):
        self.result = result
        first = next(iter(result.failed.values()))
        super().__init__(
            f"{len(result.failed)} of {result.n_tasks} tasks of the sweep in {result.folder} "
            f"failed; the first: {first['error']}\n{first['traceback']}"
        )

    def __reduce__(self):  # picklable, like every exception that may cross processes
        return (type(self), (self.result,))


def sweep_frame(
    config: SweepConfig | Mapping[str, Any],
    store: str | os.PathLike | None = None,
    *,
    scheduler: Any = None,
    retries: int = DEFAULT_RETRIES,
):
    """Run a sweep and return its results: what the figure steps call.

    Parameters
    ----------
    config : SweepConfig or dict
        The sweep.
    store : str or os.PathLike, optional
        Its store (a store of another grid there is replaced). Default: a temporary folder,
        deleted once the results are read.
    scheduler : optional
        As for :func:`run_sweep`; default the enclosing :func:`use_scheduler` block's, else
        this process.
    retries : int
        As for :func:`run_sweep`.

    Returns
    -------
    tuple
        ``(frame, result)``: the :func:`load` DataFrame and the :class:`SweepResult`.

    Raises
    ------
    SweepFailed
        If a task still fails after its retries (the other results stay in the store).

    Examples
    --------
    >>> frame, result = sweep_frame({"grammar": {"v": 4, "m": 2, "s": 2, "L": 1},
    ...                              "noise": {"process": "eps", "levels": [0.0]},
    ...                              "measure": {"name": "beliefs", "n_samples": 5}})
    >>> frame["accuracy"].tolist(), result.computed
    ([1.0, 1.0], 1)
    """
    if scheduler is None:
        scheduler = current_scheduler(default=_SERIAL)
    with contextlib.ExitStack() as stack:
        if store is None:
            import tempfile

            store = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "store"
        result = run_sweep(config, store, scheduler=scheduler, retries=retries, replace=True)
        if result.failed:
            raise SweepFailed(result)
        return result.frame(), result


# -- running --------------------------------------------------------------------------------------
def check_sizes(config: SweepConfig, tasks: list[Any] | None = None, measurement: Any = None):
    """Refuse, before any work, a grid point the measurement would refuse for its sizes.

    Builds each grammar point of ``config`` once (with its first rule draw's seed) and, for
    each of its noise processes, calls the measurement's ``preflight`` (see
    :func:`~hiergrammar.sweep.register_measurement`): the built-in measurements check there the
    memory of their strings, BP messages and covariances against the memory budget of this
    process, as each task would on its worker. A measurement without a ``preflight`` is
    checked only by building its grammars.

    Parameters
    ----------
    config : SweepConfig
    tasks : list of Task, optional
        ``config.tasks()`` if already computed.
    measurement : Measurement, optional
        The config's measurement if already looked up.

    Raises
    ------
    InputError
        Naming the grid point, the process and the violated bound.

    Examples
    --------
    >>> from hiergrammar.sweep import parse_config
    >>> config = parse_config({"grammar": {"v": 8, "m": 2, "s": 2, "L": [2, 40]},
    ...                        "noise": {"process": "eps", "levels": [0.1]},
    ...                        "measure": {"name": "beliefs", "n_samples": 10}})
    >>> check_sizes(config)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: grid point v=8, n_classes=8, m=2, s=2, L=40 (process ...)
    """
    from hiergrammar.sweep.config import make_process

    config = as_config(config)
    if tasks is None:
        tasks = config.tasks()
    if measurement is None:
        measurement = get_measurement(config.measure.name)
    seen: set[tuple[int, str, str | None]] = set()
    built: dict[int, Any] = {}
    for task in tasks:
        key = (id(task.grammar), task.process, task.schedule)
        if key in seen:
            continue
        seen.add(key)
        point = ", ".join(f"{k}={v}" for k, v in task.grammar.columns().items())
        where = f"grid point {point} (process {task.process})"
        try:
            if id(task.grammar) not in built:
                built[id(task.grammar)] = task.grammar.build(task.rule_seed)
            grammar = built[id(task.grammar)]
            if measurement.preflight is not None:
                process = make_process(task.process, int(grammar.cards[0]), task.schedule)
                measurement.preflight(
                    grammar, process, n_samples=task.measure.n_samples, **task.measure.options
                )
        except InputError as err:
            raise InputError(f"{where}: {err}") from None


def _failure(
    task: Any, error: BaseException | None, tb: Any, attempts: int, message: str | None = None
) -> dict[str, Any]:
    if message is None:
        message = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
    if isinstance(tb, str):
        text = tb
    elif tb is not None:
        text = "".join(traceback.format_tb(tb))
    else:
        text = ""
    lines = text.strip().splitlines()
    return {
        "error": message,
        "traceback": "\n".join(lines[-30:]),
        "attempts": attempts,
        "params": task.canonical(),
    }


def _run_serial(store, tasks, func, retries, show, desc, on_done) -> None:
    for task in progress_bar(tasks, desc=desc, total=len(tasks), disable=show):
        for attempt in range(1, retries + 2):
            try:
                info = execute_task(task, str(store.task_path(task)), str(store.root), func)
            except Exception as err:  # recorded with its traceback; the sweep goes on
                failure = _failure(task, err, err.__traceback__, attempt)
                if isinstance(err, InputError):  # deterministic: a retry fails the same way
                    on_done(task, None, failure)
                    break
                continue
            on_done(task, info, None)
            break
        else:
            on_done(task, None, failure)


def _run_dask(client, store, tasks, func, retries, show, desc, on_done) -> None:
    from distributed import as_completed

    threads = sum(client.nthreads().values())
    limit = max(1000, 4 * threads)
    # Keys name the store too: the same task swept into two stores at once runs twice.
    where = hashlib.sha256(str(store.root).encode("utf-8")).hexdigest()[:10]
    key_prefix = f"hiergrammar-sweep-{where}"
    queue = iter(tasks)
    by_key: dict[str, Any] = {}

    def submit(task: Any):
        future = client.submit(
            execute_or_refuse,
            task,
            str(store.task_path(task)),
            str(store.root),
            func,
            key=f"{key_prefix}-{task.id}",
            pure=False,
            retries=retries,
        )
        by_key[future.key] = task
        return future

    running = as_completed(
        [submit(task) for task in itertools.islice(queue, limit)], loop=client.loop
    )
    try:
        for future in progress_bar(running, desc=desc, total=len(tasks), disable=show):
            task = by_key.pop(future.key)
            if future.status == "finished":
                info = future.result()
                if "refused" in info:  # an InputError: recorded once, never retried
                    on_done(task, None, _failure(task, None, info["traceback"], 1, info["refused"]))
                else:
                    on_done(task, info, None)
            else:
                try:
                    error = future.exception()
                    tb = future.traceback()
                except Exception as err:  # cancelled, or the cluster went away
                    error, tb = err, None
                on_done(task, None, _failure(task, error, tb, retries + 1))
            future.release()
            following = next(queue, None)
            if following is not None:
                running.add(submit(following))
    finally:
        if by_key:  # interrupted: cancel what is still queued or running
            with contextlib.suppress(Exception):
                client.cancel([f for f in running.futures])


def run_sweep(
    config: SweepConfig | Mapping[str, Any] | str | os.PathLike,
    out: str | os.PathLike,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    resume: bool = False,
    retries: int = DEFAULT_RETRIES,
    progress: bool | None = None,
    replace: bool = False,
) -> SweepResult:
    """Run the missing tasks of a sweep into the store ``out``.

    Parameters
    ----------
    config : SweepConfig, dict, or path of a TOML file
        The sweep (see :mod:`hiergrammar.sweep` for its keys).
    out : str or os.PathLike
        The store's folder: new or empty, or holding a store of the same grid (then only the
        missing tasks run).
    scheduler : str or distributed.Client, optional
        ``"local"`` (a LocalCluster started and stopped here), ``"serial"`` (this process), a
        Dask scheduler address or scheduler file, or a client. Default: the one of the
        enclosing :func:`use_scheduler` block, else ``"local"``.
    workers : int, optional
        Worker processes of the local cluster (default one per core).
    resume : bool
        Require ``out`` to hold a store of this grid already.
    retries : int
        Runs again a task that raises, up to this many times, before recording it as failed.
    progress : bool, optional
        Show a progress bar (default: on a terminal, unless ``HIERGRAMMAR_NO_PROGRESS``).
    replace : bool
        Delete the files of a store of another grid in ``out`` first.

    Returns
    -------
    SweepResult

    Raises
    ------
    InputError
        Before any task runs: a bad config, ``out`` holding another grid or other files, no
        store with ``resume``, a scheduler that does not answer.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "store"
    >>> config = {"rule_draws": 3, "grammar": {"v": 8, "m": 2, "s": 2, "L": 2},
    ...           "noise": {"process": "uniform", "levels": [0.2, 0.6]},
    ...           "measure": {"name": "beliefs", "n_samples": 20}}
    >>> first = run_sweep(config, folder, scheduler="serial", progress=False)
    >>> first.computed, first.skipped, first.complete
    (3, 0, True)
    >>> again = run_sweep(config, folder, scheduler="serial", progress=False)
    >>> again.computed, again.skipped
    (0, 3)
    """
    started = time.perf_counter()
    config = as_config(config)
    retries = check_int("retries", retries, 0)
    if scheduler is None:
        scheduler = current_scheduler()
    shared = (
        scheduler if isinstance(scheduler, SharedScheduler) else SharedScheduler(scheduler, workers)
    )
    if isinstance(scheduler, SharedScheduler) and workers is not None:
        raise InputError("workers applies to a local cluster started by this sweep")
    measurement = get_measurement(config.measure.name)
    func = measurement.func
    tasks = config.tasks()
    owned = shared is not scheduler
    try:
        check_sizes(config, tasks, measurement)  # every grid point, before any file or task
        if isinstance(shared.scheduler, str) and shared.scheduler not in (_LOCAL, _SERIAL):
            shared.client()  # an address that does not answer: refused before any file exists
        store = Store.open(out, config, tasks, resume=resume, replace=replace)
    except BaseException:
        if owned:
            shared.close()
        raise
    present = store.present(clean=True)  # no task of this store runs yet: orphans go
    missing = [t for t in tasks if store.relative_path(t.id, t.name) not in present]
    missing.sort(key=lambda t: -t.cost())  # the longest first: no straggler at the end
    skipped = len(tasks) - len(missing)
    result = SweepResult(store.root, len(tasks), skipped, 0, scheduler=shared.description)
    failed: dict[str, dict[str, Any]] = {}
    run_record: dict[str, Any] = {
        "started": _now(),
        "scheduler": shared.description,
        "skipped": skipped,
        "status": "running",
    }
    store.manifest["runs"].append(run_record)
    store.manifest["status"] = "running"
    store.write_manifest()
    compute = {"seconds": 0.0, "cpu_seconds": 0.0}
    reported: set[str] = set()

    def on_done(task: Any, info: dict[str, Any] | None, failure: dict[str, Any] | None) -> None:
        if failure is not None:
            failed[task.id] = failure
            return
        reported.add(task.id)
        compute["seconds"] += info["seconds"]
        compute["cpu_seconds"] += info["cpu_seconds"]

    show = None if progress is None else not progress
    desc = f"sweep {store.root.name}"
    status = "interrupted"
    try:
        if missing:
            client = shared.client()
            if client is None:
                _run_serial(store, missing, func, retries, show, desc, on_done)
            else:
                result.workers = len(client.nthreads())
                _run_dask(client, store, missing, func, retries, show, desc, on_done)
        status = "finished"
    finally:
        if owned:
            shared.close()
        # Every task has finished (or failed): a killed worker's temporary file goes. After an
        # interruption, cancelled tasks may still be running: leave theirs.
        present = store.present(clean=status == "finished")
        grid_files = {t.id: store.relative_path(t.id, t.name) for t in tasks}
        unseen = [tid for tid in reported if grid_files[tid] not in present]
        for tid in unseen:  # a worker wrote where this machine cannot see
            failed[tid] = {
                "error": "the task finished but its file is not in the store as seen from here: "
                "the store's folder must be on a filesystem every worker shares, at the same path",
                "traceback": "",
                "attempts": 1,
                "params": next(t for t in tasks if t.id == tid).canonical(),
            }
        done = sum(1 for rel in grid_files.values() if rel in present)
        previous = store.manifest.get("failed", {})
        store.manifest["failed"] = {
            tid: info
            for tid, info in {**previous, **failed}.items()
            if tid in grid_files and grid_files[tid] not in present
        }
        store.manifest["done"] = done
        store.manifest["status"] = (
            "complete"
            if done == len(tasks)
            else ("interrupted" if status != "finished" else "incomplete")
        )
        result.computed = len(reported) - len(unseen)
        result.failed = failed
        result.compute_seconds = compute["seconds"]
        result.cpu_seconds = compute["cpu_seconds"]
        result.seconds = time.perf_counter() - started
        run_record.update(
            {
                "finished": _now(),
                "status": status,
                "computed": result.computed,
                "failed": len(failed),
                "workers": result.workers,
                "seconds": round(result.seconds, 3),
                "task_seconds": round(compute["seconds"], 3),
                "task_cpu_seconds": round(compute["cpu_seconds"], 3),
            }
        )
        store.write_manifest()
    # Only a finished sweep's files join an enclosing run's manifest (``hiergrammar
    # reproduce``): workers and the store write them quietly, so it cannot see them. An
    # interrupted run's store stays out of it, so the next run resumes it.
    from hiergrammar.artifacts import record_written

    record_written(store.files(present, list(grid_files.values())))
    return result
