"""The main job: ``hiergrammar reproduce`` runs every figure step and writes ``report.md``.

The steps live in :mod:`hiergrammar.figures` (one module each, see there for the protocol);
this module lists them, runs them in order into one output folder and links what they wrote.
The folder is one consistent set with a manifest ``run.json`` written last
(:func:`hiergrammar.artifacts.run_folder`).

The heavy grids of the steps run as sweeps (:mod:`hiergrammar.sweep`) on one local Dask
cluster shared by the steps (one worker process per core; in this process with
``quick=True``); their stores are kept under ``sweeps/`` of the output folder and listed in
``run.json``.

A step whose optional modules are missing (torch for ``cnn_probe``) is reported as skipped,
with the install hint, and the other steps run. The report gives the seconds each step took
and its budget (``budget_seconds`` of the step's sizes): the full run is budgeted under 10
minutes on two cores, ``quick=True`` under one minute.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hiergrammar.artifacts import ReportSection, progress, run_folder, save_text
from hiergrammar.sweep import use_scheduler
from hiergrammar.validation import InputError, check_seed

__all__ = [
    "Step",
    "STEPS",
    "STEP_NAMES",
    "COMMAND",
    "missing_requirements",
    "prepare_kernels",
    "reproduce",
]


@dataclass(frozen=True)
class Step:
    """One figure step: its name in ``--only`` and the module that implements it."""

    name: str
    module: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


#: The steps, in report order. Their modules are imported when a run needs them.
STEPS: tuple[Step, ...] = (
    Step("phase_transition", "hiergrammar.figures.phase_transition"),
    Step("theory", "hiergrammar.figures.theory"),
    Step("cnn_probe", "hiergrammar.figures.cnn_probe"),
    Step("discrete_diffusion", "hiergrammar.figures.discrete_diffusion"),
    Step("grammar_variants", "hiergrammar.figures.grammar_variants"),
    Step("learned_vs_exact", "hiergrammar.figures.learned_vs_exact"),
)

#: Names of the steps, in report order.
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)

#: The command recorded in the output folder's manifest.
COMMAND = "hiergrammar reproduce"


def missing_requirements(module: ModuleType) -> list[str]:
    """The modules of ``module.REQUIRES`` that cannot be imported here."""
    missing = []
    for name in getattr(module, "REQUIRES", ()):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _install_hint(module: ModuleType) -> str:
    extra = getattr(module, "EXTRA", None)
    return (
        f"pip install 'hiergrammar[{extra}]'"
        if extra
        else "pip install " + " ".join(getattr(module, "REQUIRES", ()))
    )


def prepare_kernels() -> float | None:
    """Compile the numba BP kernels, or load them from numba's on-disk cache, before any step.

    The first run after an installation compiles them (about 15 s of CPU per message dtype on
    two cores); later runs load them in about a second. Doing it here, timed apart, keeps that
    one-off cost out of the steps' budgets. Returns the seconds it took, or None when the
    default backend is not numba (``HIERGRAMMAR_BP_BACKEND``, or numba missing).

    Examples
    --------
    >>> seconds = prepare_kernels()
    >>> seconds is None or seconds >= 0
    True
    """
    from hiergrammar import kernels

    if kernels.default_backend() != "numba":
        return None
    from hiergrammar.kernels import numba_bp

    start = time.perf_counter()
    numba_bp.compile_kernels()
    return time.perf_counter() - start


def _choose(only: list[str] | tuple[str, ...] | None) -> list[Step]:
    if only is None:
        return list(STEPS)
    if isinstance(only, str) or not all(isinstance(name, str) for name in only):
        raise InputError(f"only={only!r} must be a list of step names from {list(STEP_NAMES)}")
    unknown = sorted(set(only) - set(STEP_NAMES))
    if unknown:
        raise InputError(f"unknown step(s) {unknown}; choose from {list(STEP_NAMES)}")
    if not only:
        raise InputError(f"only=[] names no step; choose from {list(STEP_NAMES)}")
    return [step for step in STEPS if step.name in only]


def reproduce(
    out_dir: str | os.PathLike = "results",
    *,
    seed: int = 0,
    quick: bool = False,
    only: list[str] | tuple[str, ...] | None = None,
    force: bool = False,
) -> Path:
    """Run the figure steps (all, or those named in ``only``) and write ``out_dir/report.md``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder: one run's files and its manifest ``run.json`` (see
        :func:`hiergrammar.artifacts.run_folder`).
    seed : int
        Seed of every random draw (a non-negative integer).
    quick : bool
        Tiny sizes (each step's ``QUICK``), for a smoke test.
    only : list of str, optional
        Names from :data:`STEP_NAMES`; default all.
    force : bool
        Delete the outputs of a run with other parameters in ``out_dir`` first.

    Returns
    -------
    Path
        The report.

    Raises
    ------
    InputError
        Before any work: a bad seed or step name, an ``out_dir`` that is a file or not
        writable, or one holding a run of other parameters (without ``force``).
    """
    seed = check_seed("seed", seed, allow_generator=False)
    if seed is None:
        raise InputError("seed=None: reproduce needs a seed (a non-negative integer)")
    steps = _choose(only)
    parameters = {"quick": bool(quick), "steps": [step.name for step in steps]}
    with (
        run_folder(out_dir, command=COMMAND, parameters=parameters, seed=seed, force=force) as run,
        # The steps' sweeps share one cluster, started by the first sweep that needs it.
        use_scheduler("serial" if quick else "local"),
    ):
        sections: list[ReportSection] = []
        rows: list[str] = []
        record: dict[str, dict] = {}
        warmup = prepare_kernels()
        for step in progress(steps, desc="reproduce", total=len(steps)):
            module = step.load()
            sizes = module.QUICK if quick else module.FULL
            budget = float(sizes.budget_seconds)
            missing = missing_requirements(module)
            if missing:
                hint = _install_hint(module)
                reason = f"needs {', '.join(missing)}, which is not installed: {hint}"
                sections.append(ReportSection(f"{step.name}: skipped", f"Skipped: {reason}."))
                rows.append(f"| {step.name} | skipped ({reason}) | | {budget:.0f} |")
                record[step.name] = {"status": "skipped", "reason": reason, "budget": budget}
                continue
            start = time.perf_counter()
            sections.append(module.reproduce_step(run.path, seed=seed, sizes=sizes))
            seconds = time.perf_counter() - start
            status = "ok" if seconds <= budget else "over budget"
            rows.append(f"| {step.name} | {status} | {seconds:.1f} | {budget:.0f} |")
            record[step.name] = {"status": status, "seconds": seconds, "budget": budget}
        total_budget = sum(r["budget"] for r in record.values())
        total = sum(r.get("seconds", 0.0) for r in record.values())
        header = [
            "# hiergrammar: reproduced figures",
            "",
            f"Seed {seed}{' (quick mode: tiny sizes, for tests)' if quick else ''}. "
            "Every figure's data sits beside it; `run.json` lists every file with its SHA-256.",
            "",
            "| step | status | seconds | budget (s) |",
            "| --- | --- | --- | --- |",
            *rows,
            f"| total | | {total:.1f} | {total_budget:.0f} |",
            "",
        ]
        if warmup is not None:
            header += [
                f"Before the steps, the numba BP kernels took {warmup:.1f} s to compile or to "
                "load from numba's cache (a compile happens once per installation, about 15 s "
                "per message dtype; later runs load them in about a second); the steps' seconds "
                "exclude it.",
                "",
            ]
            run.extra["kernel_preparation_seconds"] = warmup
        body = "\n".join(s.to_markdown(run.path) for s in sections)
        report = save_text(run.path / "report.md", "\n".join(header) + "\n" + body)
        run.extra["steps"] = record
    return report
