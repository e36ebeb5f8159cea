"""Check every available engine against UAI instances with exact answers.

:func:`check_uai` runs the engines of :data:`hiergrammar.engines.ENGINES` on one UAI file or a
folder of them (a suite written by ``hiergrammar instances``, in the order of its
``index.json``, or every ``*.uai`` file) and compares each engine's marginals and partition
function with the instance's exact answers:

* the reference is the pair of files ``FILE.MAR`` / ``FILE.PR`` beside the model; without them,
  our own sum-product on the file (:func:`hiergrammar.uai.solve_tree`, tree-structured files
  only); a ``FILE.evid`` (hard evidence) is folded into our parse as indicator factors, and the
  engines that read the file themselves are then skipped;
* per engine and instance: the largest error over all marginals, ``|Δ log10 Z|`` (engines that
  give ``Z``), the seconds, and a verdict.

Verdicts
--------
``"agrees"``: within the tolerance (marginals: ``tol``; ``log10 Z``: ``tol * max(1, |log10
Z|)``); on an instance whose evidence has probability zero, agreeing means reporting it (``Z =
0``, ``log Z = -inf``, NaN or all-zero marginals, or an error saying so). ``"disagrees"``: the
numbers differ (NaN included), or the engine misses or invents an inconsistency. ``"error"``: it
raised. ``"skipped"``: it does not apply here (a library missing, a size bound, a cyclic file
for ``uai_tree``); the reason is given. ``"expected_failure"``: it disagreed or failed on an
instance that triggers one of its known defects (:data:`hiergrammar.engines.DEFECTS`), which is
named; expected failures do not fail the check.

:func:`overall_verdict` gives ``"disagreement"`` if any result disagrees, else ``"error"`` if
any failed, else ``"agree"`` (skips and expected failures do not count), as
:func:`hiergrammar.crosscheck.overall_verdict` does.

Examples
--------
>>> import tempfile, pathlib
>>> from hiergrammar import RHM
>>> from hiergrammar.uai import to_uai
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.uai"
>>> _ = to_uai(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0), path, np.ones((2, 3)))
>>> report = check_uai(path, engines=["uai_tree"])
>>> [(r.engine, r.verdict) for r in report.results], report.verdict
([('uai_tree', 'agrees')], 'agree')
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.engines import (
    DEFECTS,
    ENGINES,
    EngineInconsistent,
    EngineOutput,
    available,
    runner,
)
from hiergrammar.uai import UAIModel, UAISolution, read_evidence, read_solution, read_uai
from hiergrammar.validation import InputError, check_float

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "INDEX_NAME",
    "TOLERANCE",
    "UAICheckReport",
    "UAIEngineResult",
    "UAIInstance",
    "check_uai",
    "find_instances",
    "format_report",
    "load_instance",
    "overall_verdict",
    "run_on_grammar",
]

#: The suite's index file (written by ``hiergrammar instances``).
INDEX_NAME = "index.json"

#: Default limit on an engine's estimated seconds per instance.
DEFAULT_MAX_SECONDS = 30.0

#: Default tolerance on marginals (and, scaled by ``max(1, |log10 Z|)``, on ``log10 Z``).
TOLERANCE = 1e-9

_LN10 = math.log(10.0)


# -- instances -------------------------------------------------------------------------------------
@dataclass
class UAIInstance:
    """One instance: our parse of the model, its reference answers, where they came from.

    ``path`` is None for a model built in memory; ``file_is_model`` is False when a ``.evid``
    file was folded into ``model`` (engines that read the file would miss it); ``info`` is the
    instance's entry in the suite's index, if any; an engine whose estimated time exceeds
    ``max_seconds`` skips itself (None: no limit).
    """

    name: str
    path: Path | None
    model: UAIModel
    reference: UAISolution | None
    reference_source: str
    info: dict[str, Any] = field(default_factory=dict)
    file_is_model: bool = True
    max_seconds: float | None = None

    @property
    def reads_file_ok(self) -> bool:
        """Whether an engine may read the model from ``path`` (a file with no ``.evid``)."""
        return self.path is not None and self.file_is_model


def _with_hard_evidence(model: UAIModel, evidence: dict[int, int]) -> UAIModel:
    scopes, tables = list(model.scopes), list(model.tables)
    for var, value in evidence.items():
        if value >= model.cards[var]:
            raise InputError(
                f"the .evid file sets variable {var} to {value}, but its cardinality is "
                f"{model.cards[var]}"
            )
        indicator = np.zeros(model.cards[var])
        indicator[value] = 1.0
        scopes.append((var,))
        tables.append(indicator)
    return UAIModel(model.cards, tuple(scopes), tuple(tables), model.network)


def load_instance(path: str | os.PathLike, info: dict[str, Any] | None = None) -> UAIInstance:
    """Read a UAI model and its reference answers (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    info : dict, optional
        Its entry in a suite index.

    Returns
    -------
    UAIInstance

    Raises
    ------
    InputError
        For a malformed model or answer file, only one of ``.MAR`` / ``.PR``, or no answers
        beside a model that is not tree-structured.
    """
    from hiergrammar.uai import solve_tree

    path = Path(path)
    model = read_uai(path)
    file_is_model = True
    evid = Path(os.fspath(path) + ".evid")
    if evid.is_file():
        model = _with_hard_evidence(model, read_evidence(evid, model.n_variables))
        file_is_model = False
    mar, pr = Path(os.fspath(path) + ".MAR"), Path(os.fspath(path) + ".PR")
    if mar.is_file() != pr.is_file():
        missing = pr if mar.is_file() else mar
        raise InputError(f"path={str(path)!r}: {missing.name} is missing beside its other answer")
    if mar.is_file():
        reference, source = read_solution(path, model.cards), "files"
    else:
        try:
            reference, source = solve_tree(model), "uai_tree"
        except InputError as err:
            raise InputError(
                f"path={str(path)!r} has no .MAR/.PR answers beside it and our tree solver "
                f"cannot compute them ({err})"
            ) from None
    name = (info or {}).get("name") or path.name
    return UAIInstance(name, path, model, reference, source, dict(info or {}), file_is_model)


def find_instances(path: str | os.PathLike) -> list[tuple[Path, dict[str, Any]]]:
    """The instances at ``path``: a file, or a folder (its ``index.json`` order if it has one,
    else its ``*.uai`` files sorted by name).

    Raises
    ------
    InputError
        If ``path`` does not exist, holds no instance, or its index is malformed.
    """
    path = Path(path)
    if path.is_file():
        return [(path, {})]
    if not path.is_dir():
        raise InputError(f"--uai {str(path)!r}: no such file or folder")
    index = path / INDEX_NAME
    if index.is_file():
        try:
            entries = json.loads(index.read_text())["instances"]
            found = [(path / e["files"]["uai"], e) for e in entries]
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{index}: not a suite index ({type(err).__name__}: {err})") from None
        for file, _ in found:
            if not file.is_file():
                raise InputError(f"{index} lists {file.name}, which is missing")
        return found
    files = sorted(path.glob("*.uai"))
    if not files:
        raise InputError(f"--uai {str(path)!r}: the folder holds no *.uai file and no index")
    return [(f, {}) for f in files]


# -- results ---------------------------------------------------------------------------------------
@dataclass
class UAIEngineResult:
    """One engine on one instance. Errors are absolute; ``log10_z_error`` is None where the
    engine gives no partition function; ``defect`` names the known defect behind an expected
    failure."""

    engine: str
    instance: str
    verdict: str
    seconds: float
    max_marginal_error: float | None = None
    log10_z_error: float | None = None
    log10_z: float | None = None
    defect: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "engine": self.engine,
            "instance": self.instance,
            "verdict": self.verdict,
            "seconds": self.seconds,
            "max_marginal_error": self.max_marginal_error,
            "log10_z_error": self.log10_z_error,
            "log10_z": self.log10_z,
            "defect": self.defect,
            "message": self.message,
            "details": {k: v for k, v in self.details.items() if k != "traceback"},
        }


@dataclass
class UAICheckReport:
    """All results of :func:`check_uai`, with the instances' descriptions."""

    results: list[UAIEngineResult]
    instances: list[dict[str, Any]]
    engines: list[str]
    tol: float
    workarounds: bool

    @property
    def verdict(self) -> str:
        return overall_verdict(self.results)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "verdict": self.verdict,
            "tol": self.tol,
            "workarounds": self.workarounds,
            "engines": self.engines,
            "instances": self.instances,
            "results": [r.to_dict() for r in self.results],
        }


def overall_verdict(results: Sequence[UAIEngineResult]) -> str:
    """``"disagreement"``, ``"error"`` or ``"agree"`` (see the module docstring).

    Examples
    --------
    >>> overall_verdict([UAIEngineResult("pgmpy_bp", "x", "expected_failure", 0.1)])
    'agree'
    """
    verdicts = {r.verdict for r in results}
    if "disagrees" in verdicts:
        return "disagreement"
    if "error" in verdicts:
        return "error"
    return "agree"


# -- comparing -------------------------------------------------------------------------------------
def _normalised(marginals: Sequence[Any], cards: Sequence[int]) -> list[np.ndarray] | str:
    """Each row normalised; a string saying what is wrong if the shapes do not fit."""
    if len(marginals) != len(cards):
        return f"{len(marginals)} marginals for {len(cards)} variables"
    out = []
    for k, (mg, card) in enumerate(zip(marginals, cards, strict=True)):
        row = np.asarray(mg, dtype=np.float64).reshape(-1)
        if row.size != card:
            return f"the marginal of variable {k} has {row.size} values, its cardinality {card}"
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(row / row.sum())
    return out


def _reports_inconsistency(output: EngineOutput, rows: list[np.ndarray]) -> bool:
    if output.log_z is not None and output.log_z == -math.inf:
        return True
    return any(not np.all(np.isfinite(r)) for r in rows)


def _compare(
    output: EngineOutput, reference: UAISolution, cards: Sequence[int], tol: float
) -> tuple[str, float | None, float | None, float | None, str]:
    """(verdict, max marginal error, |Δ log10 Z|, the engine's log10 Z, message)."""
    rows = _normalised(output.marginals, cards)
    if isinstance(rows, str):
        return "error", None, None, None, f"bad output: {rows}"
    log10_z = None if output.log_z is None else output.log_z / _LN10
    if not reference.consistent:
        if _reports_inconsistency(output, rows):
            return "agrees", None, None, log10_z, "reports Z = 0 (NaN or zero marginals)"
        return (
            "disagrees",
            math.inf,
            None if log10_z is None else math.inf,
            log10_z,
            "gives finite marginals for evidence of probability 0 (Z = 0)",
        )
    worst = 0.0
    for got, want in zip(rows, reference.marginals, strict=True):
        diff = np.abs(got - want)
        worst = math.inf if np.isnan(diff).any() else max(worst, float(diff.max(initial=0.0)))
    z_error = None if log10_z is None else abs(log10_z - reference.log10_z)
    if z_error is not None and math.isnan(z_error):
        z_error = math.inf
    ok = worst <= tol and (z_error is None or z_error <= tol * max(1.0, abs(reference.log10_z)))
    message = "" if ok else ("NaN marginals" if worst == math.inf else "")
    return ("agrees" if ok else "disagrees"), worst, z_error, log10_z, message


def _expected_defect(engine: str, instance: UAIInstance, workarounds: bool) -> str | None:
    """The first known defect of ``engine`` that ``instance`` triggers (one whose workaround
    the engine applies counts only with ``workarounds=False``)."""
    from hiergrammar.engines import triggers

    for defect in DEFECTS.values():
        if defect.engine != engine or (defect.workaround and workarounds):
            continue
        if getattr(triggers, defect.trigger)(instance):
            return defect.id
    return None


def _run_one(engine: str, instance: UAIInstance, tol: float, workarounds: bool) -> UAIEngineResult:
    spec = ENGINES[engine]
    reason = available(engine)
    if reason is None and spec.reads_file and not instance.reads_file_ok:
        reason = (
            "it reads the UAI file, and this instance's hard evidence (.evid) is not in it"
            if instance.path is not None
            else "it reads the UAI file, and this model has none"
        )
    if reason is not None:
        return UAIEngineResult(engine, instance.name, "skipped", 0.0, message=reason)
    from hiergrammar.crosscheck import EngineSkipped

    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = runner(engine)(instance, workarounds=workarounds)
    except EngineSkipped as skip:
        return UAIEngineResult(
            engine, instance.name, "skipped", time.perf_counter() - start, message=str(skip)
        )
    except EngineInconsistent as said:
        seconds = time.perf_counter() - start
        if instance.reference is not None and not instance.reference.consistent:
            return UAIEngineResult(
                engine, instance.name, "agrees", seconds, log10_z=-math.inf, message=str(said)
            )
        result = UAIEngineResult(
            engine,
            instance.name,
            "disagrees",
            seconds,
            math.inf,
            math.inf,
            -math.inf,
            message=f"reports Z = 0 ({said}), but log10 Z = {instance.reference.log10_z:.6g}",
        )
    except Exception as err:  # an engine's failure is a result, not a crash
        result = UAIEngineResult(
            engine,
            instance.name,
            "error",
            time.perf_counter() - start,
            message=f"{type(err).__name__}: {err}",
            details={"traceback": traceback.format_exc()},
        )
    else:
        seconds = time.perf_counter() - start
        verdict, worst, z_error, log10_z, message = _compare(
            output, instance.reference, instance.model.cards, tol
        )
        result = UAIEngineResult(
            engine,
            instance.name,
            verdict,
            seconds,
            worst,
            z_error,
            log10_z,
            message=message,
            details=dict(output.details),
        )
    if result.verdict in ("disagrees", "error"):
        defect = _expected_defect(engine, instance, workarounds)
        if defect is not None:
            result.defect = defect
            result.details["would_be"] = result.verdict
            result.verdict = "expected_failure"
            result.message = (f"known defect {defect}; " + result.message).rstrip("; ")
    return result


def _check_engines(engines: Any) -> list[str]:
    if engines is None:
        return list(ENGINES)
    if isinstance(engines, str):
        engines = [engines]
    names = list(engines)
    unknown = [e for e in names if e not in ENGINES]
    if unknown or not names:
        raise InputError(f"engines: unknown {unknown}; choose from {list(ENGINES)}")
    return [e for e in ENGINES if e in names]


def _preimport(names: Sequence[str]) -> None:
    """Import the engines' libraries before timing them (pgmpy and torch take seconds)."""
    import importlib

    for name in names:
        spec = ENGINES[name]
        if available(name) is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    importlib.import_module(spec.preimport or spec.library)
                except ImportError:
                    pass  # the engine reports itself as failed


def _describe(instance: UAIInstance) -> dict[str, Any]:
    model = instance.model
    out = {
        "name": instance.name,
        "path": None if instance.path is None else str(instance.path),
        "n_variables": model.n_variables,
        "n_factors": model.n_factors,
        "max_card": model.max_card,
        "largest_factor": model.largest_factor,
        "reference": instance.reference_source,
        "log10_z": None if instance.reference is None else instance.reference.log10_z,
    }
    for key in ("difficulty", "family", "flags"):
        if key in instance.info:
            out[key] = instance.info[key]
    return out


def check_uai(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    engines: Sequence[str] | str | None = None,
    *,
    tol: float = TOLERANCE,
    workarounds: bool = True,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> UAICheckReport:
    """Run engines on UAI instances and compare them with the exact answers.

    Parameters
    ----------
    path : path or sequence of paths
        A model file, a suite folder, or several of them.
    engines : str or sequence of str, optional
        Names from :data:`hiergrammar.engines.ENGINES` (default: all).
    tol : float
        Tolerance on marginals (see the module docstring).
    workarounds : bool
        Let engines apply the workarounds of their known defects; with False their failures
        on the triggering instances are expected failures.
    max_seconds : float or None
        An engine estimated to take longer on an instance skips it, with the reason (None:
        no limit). Only pgmpy's reader has an estimate today.

    Returns
    -------
    UAICheckReport
        Results per instance, then per engine (in :data:`~hiergrammar.engines.ENGINES` order).

    Raises
    ------
    InputError
        For a missing or malformed instance or answer file, unknown engines, or a bad ``tol``.
    """
    from hiergrammar.artifacts import progress

    names = _check_engines(engines)
    tol = check_float("tol", tol, 0.0)
    if max_seconds is not None:
        max_seconds = check_float("max_seconds", max_seconds, 0.0, low_open=True)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    found = [item for p in paths for item in find_instances(p)]
    instances = [load_instance(file, info) for file, info in found]  # all checked first
    for instance in instances:
        instance.max_seconds = max_seconds
    _preimport(names)
    results = []
    steps = [(i, e) for i in instances for e in names]
    for instance, engine in progress(steps, desc="crosscheck --uai", total=len(steps)):
        results.append(_run_one(engine, instance, tol, workarounds))
    return UAICheckReport(results, [_describe(i) for i in instances], names, tol, workarounds)


def format_report(report: UAICheckReport) -> str:
    """A plain-text table: instance, engine, max ``|Δ marginal|``, ``|Δ log10 Z|``, seconds,
    verdict and reason.

    Examples
    --------
    >>> r = UAIEngineResult("pgmpy_bp", "tiny", "skipped", 0.0, message="pgmpy missing")
    >>> format_report(UAICheckReport([r], [], ["pgmpy_bp"], 1e-9, True)).splitlines()[-1].split()
    ['tiny', 'pgmpy_bp', '-', '-', '0.000', 'skipped:', 'pgmpy', 'missing']
    """

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.1e}"

    header = ("instance", "engine", "max|Δ marginal|", "|Δ log10 Z|", "seconds", "verdict")
    rows = []
    for r in report.results:
        verdict = r.verdict + (f": {r.message}" if r.message else "")
        rows.append(
            (r.instance, r.engine, num(r.max_marginal_error), num(r.log10_z_error))
            + (f"{r.seconds:.3f}", verdict)
        )
    k = len(header) - 1
    widths = [max(len(str(row[j])) for row in [header, *rows]) for j in range(k)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header[:k], widths, strict=True))]
    lines[0] += "  " + header[k]
    lines.append("-" * (sum(widths) + 2 * k + len(header[k])))
    for row in rows:
        lines.append(
            "  ".join(str(c).ljust(w) for c, w in zip(row[:k], widths, strict=True)) + "  " + row[k]
        )
    return "\n".join(lines)


# -- in-process runs for hiergrammar.crosscheck ----------------------------------------------------
def run_on_grammar(
    engine: str, grammar: Any, ev: np.ndarray, prior: np.ndarray, memory_budget: Any = None
) -> tuple[list[np.ndarray], float | None]:
    """Run ``engine`` on the grammar's UAI model in memory (no file); return its marginals per
    level (``(width_l, card_l)``, normalised) and its natural-log evidence (None if it gives
    none), as the runners of :mod:`hiergrammar.crosscheck` do.

    Raises
    ------
    EngineSkipped
        If the engine's library is missing or a bound of the engine or the memory budget is
        exceeded.
    """
    from hiergrammar import graphs
    from hiergrammar.crosscheck import EngineSkipped
    from hiergrammar.uai import grammar_model

    reason = available(engine)
    if reason is not None:
        raise EngineSkipped(reason)
    try:
        model = grammar_model(grammar, ev, prior, memory_budget=memory_budget)
    except InputError as err:
        raise EngineSkipped(str(err)) from None
    instance = UAIInstance(grammar.__class__.__name__, None, model, None, "none")
    output = runner(engine)(instance, workarounds=True)
    index = {name: k for k, name in enumerate(graphs.variable_names(grammar))}
    levels = []
    for level in range(int(grammar.L) + 1):
        rows = np.array(
            [
                np.asarray(output.marginals[index[graphs.node_name(level, i)]], dtype=np.float64)
                for i in range(int(grammar.width(level)))
            ]
        )
        levels.append(rows / rows.sum(axis=1, keepdims=True))
    return levels, output.log_z
