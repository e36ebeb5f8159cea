"""A sweep's declaration: the TOML file (or the same structure in Python), checked and expanded
into tasks.

The keys are documented in :mod:`hiergrammar.sweep` and ``docs/sweeps.md``. This module turns
them into a :class:`SweepConfig` (every value checked, before any work) and the config into
its :class:`Task` s. A task's identity is the SHA-256 of its canonical parameters (sorted JSON
of the grammar point, the noise process and its levels, the draws, the measurement and the
seed), so its file name and seeds never depend on the order in which tasks are listed, run or
retried.

Seeds are derived from parameters, never from positions:

* the rule draw ``r`` of a grammar point uses ``H("rule", seed, grammar, r)``: every noise
  process, noise level and measurement of the sweep sees the same grammars;
* the data of one noise level uses ``H("data", seed, grammar, r, data_draw, process, schedule,
  level)``: splitting the levels into tasks differently changes no number.

``H`` is the first 63 bits of a SHA-256 of the canonical JSON of its arguments.

Examples
--------
>>> config = parse_config({
...     "seed": 0, "rule_draws": 2,
...     "grammar": {"v": 8, "m": [2, 3], "s": 2, "L": 2},
...     "noise": {"process": "eps", "levels": [0.1, 0.5]},
...     "measure": {"name": "beliefs", "n_samples": 20},
... })
>>> len(config.tasks())                  # 2 values of m x 2 rule draws (levels in one task)
4
>>> config.tasks()[0].columns()["m"], config.tasks()[0].levels
(2, (0.1, 0.5))
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.validation import InputError, check_choice, check_int, check_seed

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GrammarPoint",
    "MeasureSpec",
    "NoiseSpec",
    "PROCESSES",
    "SweepConfig",
    "Task",
    "canonical_json",
    "make_process",
    "parse_config",
    "read_config",
]

#: The ``format`` of a sweep store's manifest and of the task identities.
FORMAT_NAME = "hiergrammar.sweep"

#: Version of the task identity and of the store layout; a new version never reuses old files.
FORMAT_VERSION = 1

#: The parameters of :class:`~hiergrammar.rhm.RHM` a ``[grammar]`` table may set.
RHM_KEYS = ("v", "n_classes", "m", "s", "L", "rule_law", "zipf_a", "zipf_levels", "shared_tuples")

#: Keys of a ``[grammar]`` table.
GRAMMAR_KEYS = (*RHM_KEYS, "file")

#: RHM parameters left out of a grammar's identity when they hold their default.
_RHM_DEFAULTS: dict[str, Any] = {
    "rule_law": "uniform",
    "zipf_a": None,
    "zipf_levels": None,
    "shared_tuples": False,
}

#: Names of the noise processes (``[noise] process``).
PROCESSES = ("eps", "masking", "uniform", "gaussian")

_TOP_KEYS = ("seed", "rule_draws", "data_draws", "grammar", "noise", "measure")
_NOISE_KEYS = ("process", "levels", "schedule", "levels_per_task")
_RANGE_KEYS = ("start", "stop", "num")


# -- canonical JSON and derived numbers ----------------------------------------------------------
def canonical_json(value: Any) -> str:
    """Sorted, compact JSON: the text every identity and seed of a sweep is hashed from.

    >>> canonical_json({"b": [1, 2.5], "a": None})
    '{"a":null,"b":[1,2.5]}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).digest()


def _derived_seed(*parts: Any) -> int:
    """A 63-bit seed from the canonical JSON of ``parts``."""
    return int.from_bytes(_digest(*parts)[:8], "big") >> 1


# Fast paths for millions of tasks: canonical JSON assembled from canonical fragments is the
# canonical JSON of the whole (separators "," and ":", keys sorted), without re-encoding.
def _list_json(*fragments: str) -> str:
    return "[" + ",".join(fragments) + "]"


def _object_json(fragments: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{fragments[k]}" for k in sorted(fragments)) + "}"


def _seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


# -- one grammar point ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class GrammarPoint:
    """One point of the grammar grid: RHM parameters, or a saved grammar file.

    Attributes
    ----------
    params : dict
        The RHM's parameters (``n_classes`` filled in; defaults left out); empty for a file.
    file : str or None
        The file name as the config gives it (a column of the results).
    file_sha256 : str or None
        The SHA-256 of the file's bytes: its identity (the store keeps a copy under it).
    source : str or None
        The file's absolute path on the machine that read the config.
    leaves, vocabulary, rules : int
        ``s**L``, the largest level cardinality and the largest rule count: a task's cost.
    """

    params: dict[str, Any]
    file: str | None = None
    file_sha256: str | None = None
    source: str | None = None
    leaves: int = 1
    vocabulary: int = 2
    rules: int = 1

    def canonical(self) -> dict[str, Any]:
        """What identifies this grammar (its file's hash for a file)."""
        if self.file_sha256 is not None:
            return {"file_sha256": self.file_sha256}
        return dict(self.params)

    def columns(self) -> dict[str, Any]:
        """The result columns of this point: each parameter (per-level lists as JSON text)."""
        if self.file is not None:
            return {"file": self.file}
        return {
            key: canonical_json(value) if isinstance(value, list) else value
            for key, value in self.params.items()
        }

    def store_file(self) -> str:
        """Path of the grammar's copy inside a store (files only)."""
        return f"grammars/{self.file_sha256[:24]}.npz"

    def build(self, rule_seed: int, store_root: str | os.PathLike | None = None):
        """The grammar: an :class:`~hiergrammar.rhm.RHM` drawn with ``rule_seed``, or the saved
        file (the store's copy when ``store_root`` is given, else the source)."""
        if self.file_sha256 is not None:
            from hiergrammar.grammar_io import load_grammar

            path = Path(store_root) / self.store_file() if store_root else Path(self.source)
            return load_grammar(path)
        from hiergrammar.rhm import RHM

        return RHM(**self.params, seed=rule_seed)

    def prefix(self) -> str:
        """A short readable name for file names, e.g. ``v32-c32-m8-s2-L5``."""
        if self.file is not None:
            return "file-" + _safe(Path(self.file).stem)[:32]
        p = self.params

        def text(value: Any) -> str:
            return "_".join(str(x) for x in value) if isinstance(value, list) else str(value)

        parts = [f"v{text(p['v'])}", f"c{p['n_classes']}", f"m{text(p['m'])}"]
        parts += [f"s{p['s']}", f"L{p['L']}"]
        if p.get("rule_law") == "zipf":
            parts.append(f"zipf{p['zipf_a']:g}")
        if p.get("shared_tuples"):
            parts.append("shared")
        return "-".join(parts)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("._") or "x"


def _per_level_or_int(name: str, value: Any, low: int) -> int | list[int]:
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"grammar {name}={value!r}: a per-level value needs one int per level")
        return [check_int(f"{name}[{i}]", x, low) for i, x in enumerate(value)]
    return check_int(name, value, low)


def _grammar_point(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check one point's RHM parameters; return them canonical (defaults left out)."""
    missing = [key for key in ("v", "m", "s", "L") if key not in raw]
    if missing:
        raise InputError(
            f"{where} lacks {missing}: an RHM needs v, m, s and L (n_classes defaults to v), "
            "or give file = a saved grammar"
        )
    v = _per_level_or_int("v", raw["v"], 2)
    if "n_classes" in raw:
        n_classes = check_int("n_classes", raw["n_classes"], 1)
    elif isinstance(v, int):
        n_classes = v
    else:
        raise InputError(f"{where}: with per-level v, give n_classes (the root's symbols)")
    params: dict[str, Any] = {
        "v": v,
        "n_classes": n_classes,
        "m": _per_level_or_int("m", raw["m"], 1),
        "s": check_int("s", raw["s"], 2),
        "L": check_int("L", raw["L"], 1),
    }
    if "rule_law" in raw:
        params["rule_law"] = check_choice("rule_law", raw["rule_law"], ("uniform", "zipf"))
    if raw.get("zipf_a") is not None:
        value = raw["zipf_a"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"zipf_a={value!r} must be a number >= 0")
        params["zipf_a"] = float(value)
    if raw.get("zipf_levels") is not None:
        levels = raw["zipf_levels"]
        if not isinstance(levels, (list, tuple)):
            raise InputError(
                f"zipf_levels={levels!r} must be a list of levels (as a grid value: [[1, 2]])"
            )
        params["zipf_levels"] = sorted({check_int("zipf_levels entry", x, 1) for x in levels})
    if "shared_tuples" in raw:
        if not isinstance(raw["shared_tuples"], bool):
            raise InputError(f"shared_tuples={raw['shared_tuples']!r} must be true or false")
        params["shared_tuples"] = raw["shared_tuples"]
    for key, default in _RHM_DEFAULTS.items():
        if key in params and params[key] == default:
            del params[key]
    simple = all(isinstance(params[k], int) for k in ("v", "m")) and set(params) == {
        "v",
        "n_classes",
        "m",
        "s",
        "L",
    }
    if simple:
        from hiergrammar.rhm import check_parameters

        check_parameters(params["v"], params["n_classes"], params["m"], params["s"], params["L"])
    else:  # per-level or Zipf models: the constructor knows every rule (one cheap draw)
        from hiergrammar.rhm import RHM

        RHM(**params, seed=0)
    return params


def _as_axis(key: str, value: Any, where: str) -> list[Any]:
    """A grid axis: a list is its values, anything else one value."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{where} {key}=[]: a grid axis needs at least one value")
        return list(value)
    return [value]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _grammar_table(
    table: Any, where: str, base_dir: Path, rule_draws: tuple[int, ...]
) -> list[GrammarPoint]:
    if not isinstance(table, Mapping):
        raise InputError(f"{where} must be a table of grammar parameters, got {table!r}")
    unknown = sorted(set(table) - set(GRAMMAR_KEYS))
    if unknown:
        raise InputError(f"{where} has unknown key(s) {unknown}; known: {list(GRAMMAR_KEYS)}")
    if "file" in table:
        others = sorted(set(table) - {"file"})
        if others:
            raise InputError(f"{where}: file excludes the RHM parameters {others}")
        if rule_draws != (0,):
            raise InputError(
                f"rule_draws={list(rule_draws)} applies to RHM parameters; a grammar file is "
                "one fixed grammar (use data_draws to repeat its measurements)"
            )
        points = []
        for name in _as_axis("file", table["file"], where):
            if not isinstance(name, str) or not name:
                raise InputError(f"{where} file={name!r} must be a path")
            path = (base_dir / name).expanduser().resolve()
            from hiergrammar.grammar_io import load_grammar

            grammar = load_grammar(path)  # InputError naming the problem
            points.append(
                GrammarPoint(
                    {},
                    file=name,
                    file_sha256=_sha256_file(path),
                    source=str(path),
                    leaves=int(grammar.d),
                    vocabulary=int(max(grammar.cards)),
                    rules=int(max(grammar.n_rules(level) for level in range(1, grammar.L + 1))),
                )
            )
        return points
    keys = [key for key in RHM_KEYS if key in table]
    axes = [_as_axis(key, table[key], where) for key in keys]
    points = []
    for values in itertools.product(*axes):
        params = _grammar_point(dict(zip(keys, values, strict=True)), where)
        vs = params["v"] if isinstance(params["v"], list) else [params["v"]]
        ms = params["m"] if isinstance(params["m"], list) else [params["m"]]
        points.append(
            GrammarPoint(
                params,
                leaves=params["s"] ** params["L"],
                vocabulary=max([*vs, params["n_classes"]]),
                rules=max(ms),
            )
        )
    return points


# -- noise and measurement -----------------------------------------------------------------------
def make_process(name: str, v: int, schedule: str | None = None):
    """The noise process ``name`` (one of :data:`PROCESSES`) on ``v`` leaf symbols.

    >>> make_process("masking", 8)
    MaskingProcess(v=8, schedule='linear')
    """
    from hiergrammar import processes

    classes = {
        "eps": processes.EpsProcess,
        "masking": processes.MaskingProcess,
        "uniform": processes.UniformProcess,
        "gaussian": processes.GaussianProcess,
    }
    return classes[check_choice("process", name, PROCESSES)](v, schedule=schedule)


@dataclass(frozen=True)
class NoiseSpec:
    """One noise process of the grid: its name, schedule (None: the process's default), noise
    levels (times of its schedule), and how many levels one task measures."""

    process: str
    schedule: str | None
    levels: tuple[float, ...]
    levels_per_task: int

    def chunks(self) -> list[tuple[float, ...]]:
        """The levels split into the tasks' groups, in order."""
        k = self.levels_per_task
        return [self.levels[i : i + k] for i in range(0, len(self.levels), k)]


def _levels(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(_RANGE_KEYS))
        missing = sorted(set(_RANGE_KEYS) - set(value))
        if unknown or missing:
            raise InputError(
                f"{where} levels as a range is a table {{start, stop, num}} (evenly spaced, "
                f"both ends included); unknown {unknown}, missing {missing}"
            )
        num = check_int(f"{where} levels.num", value["num"], 1)
        start, stop = (_finite(f"{where} levels.{k}", value[k]) for k in ("start", "stop"))
        raw = np.linspace(start, stop, num).tolist()
    elif isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{where} levels=[]: give at least one noise level")
        raw = [_finite(f"{where} levels[{i}]", x) for i, x in enumerate(value)]
    else:
        raise InputError(
            f"{where} levels={value!r} must be a list of numbers or a table {{start, stop, num}}"
        )
    if len(set(raw)) != len(raw):
        raise InputError(f"{where} levels={raw} holds a value twice")
    return tuple(float(x) for x in raw)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}={value!r} must be a number")
    if not math.isfinite(float(value)):
        raise InputError(f"{name}={value!r} must be finite")
    return float(value)


def _noise_table(table: Any, where: str) -> list[NoiseSpec]:
    if not isinstance(table, Mapping):
        raise InputError(f"{where} must be a table with process and levels, got {table!r}")
    unknown = sorted(set(table) - set(_NOISE_KEYS))
    if unknown:
        raise InputError(f"{where} has unknown key(s) {unknown}; known: {list(_NOISE_KEYS)}")
    for key in ("process", "levels"):
        if key not in table:
            raise InputError(f"{where} lacks {key!r}")
    levels = _levels(table["levels"], where)
    schedule = table.get("schedule")
    if schedule is not None and not isinstance(schedule, str):
        raise InputError(f"{where} schedule={schedule!r} must be a schedule name")
    per_task = check_int(f"{where} levels_per_task", table.get("levels_per_task", len(levels)), 1)
    specs = []
    for name in _as_axis("process", table["process"], where):
        check_choice(f"{where} process", name, PROCESSES)
        # The time range of a process and schedule does not depend on v: check with v = 2.
        make_process(name, 2, schedule).alpha(np.asarray(levels))
        specs.append(NoiseSpec(name, schedule, levels, min(per_task, len(levels))))
    return specs


@dataclass(frozen=True, eq=False)
class MeasureSpec:
    """The measurement of every task: its registered ``name``, ``n_samples`` per task and noise
    level, and the keyword ``options`` passed to the function."""

    name: str
    n_samples: int
    options: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "n_samples": self.n_samples, "options": dict(self.options)}


def _measure_table(table: Any, noises: list[NoiseSpec]) -> MeasureSpec:
    from hiergrammar.sweep.measurements import get_measurement

    if not isinstance(table, Mapping):
        raise InputError(f"[measure] must be a table with name and n_samples, got {table!r}")
    for key in ("name", "n_samples"):
        if key not in table:
            raise InputError(f"[measure] lacks {key!r}")
    name = table["name"]
    if not isinstance(name, str):
        raise InputError(f"[measure] name={name!r} must be a string")
    entry = get_measurement(name)
    n_samples = check_int("[measure] n_samples", table["n_samples"], entry.min_samples)
    options = {k: v for k, v in table.items() if k not in ("name", "n_samples")}
    entry.check_options(options)
    for noise in noises:
        if entry.processes is not None and noise.process not in entry.processes:
            raise InputError(
                f"measurement {name!r} needs the process {list(entry.processes)}, got "
                f"{noise.process!r}"
            )
    try:
        canonical_json(options)
    except (TypeError, ValueError):
        raise InputError(f"[measure] options {options!r} must be JSON values (finite)") from None
    return MeasureSpec(entry.name, n_samples, dict(sorted(options.items())))


def _draws(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{name}=[] names no draw")
        draws = tuple(check_int(f"{name} entry", x, 0) for x in value)
        if len(set(draws)) != len(draws):
            raise InputError(f"{name}={list(draws)} holds a draw twice")
        return draws
    return tuple(range(check_int(name, value, 1)))


# -- tasks and the config ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Task:
    """One unit of work: one grammar (one rule draw), one data draw, one noise process and a
    group of its levels, measured by one function. Its result is one Parquet file.

    Attributes
    ----------
    id : str
        20 hex digits of the SHA-256 of :meth:`canonical`.
    name : str
        Its file name: a readable prefix and ``id``.
    grammar : GrammarPoint
    rule_draw, data_draw : int
    rule_seed : int
        Seed of the RHM's rules (derived from the seed, the grammar point and ``rule_draw``).
    process : str
    schedule : str or None
    levels : tuple of float
    data_seeds : tuple of int
        One seed per level (data, noise and any random draw of the measurement).
    measure : MeasureSpec
    seed : int
        The sweep's seed.
    """

    id: str
    name: str
    grammar: GrammarPoint
    rule_draw: int
    data_draw: int
    rule_seed: int
    process: str
    schedule: str | None
    levels: tuple[float, ...]
    data_seeds: tuple[int, ...]
    measure: MeasureSpec
    seed: int

    def canonical(self) -> dict[str, Any]:
        """Everything the task's result depends on, as JSON values."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "seed": self.seed,
            "grammar": self.grammar.canonical(),
            "rule_draw": self.rule_draw,
            "data_draw": self.data_draw,
            "process": self.process,
            "schedule": self.schedule,
            "levels": list(self.levels),
            "measure": self.measure.canonical(),
        }

    def columns(self) -> dict[str, Any]:
        """The grid columns of this task's rows (the noise level is added per row)."""
        out = dict(self.grammar.columns())
        out["process"] = self.process
        if self.schedule is not None:
            out["schedule"] = self.schedule
        out["rule_draw"] = self.rule_draw
        out["data_draw"] = self.data_draw
        return out

    def cost(self) -> float:
        """A rough relative cost, to start the longest tasks first."""
        g = self.grammar
        return float(self.measure.n_samples * len(self.levels) * g.leaves * g.vocabulary * g.rules)


@dataclass(frozen=True, eq=False)
class SweepConfig:
    """A checked sweep: grammar points, noise processes, draws, measurement and seed.

    Build it with :func:`parse_config` (a dict) or :func:`read_config` (a TOML file).
    """

    grammars: tuple[GrammarPoint, ...]
    noises: tuple[NoiseSpec, ...]
    measure: MeasureSpec
    rule_draws: tuple[int, ...]
    data_draws: tuple[int, ...]
    seed: int
    source: str | None = None

    def tasks(self) -> list[Task]:
        """Every task of the grid, in grid order (grammar points, noise, level groups, rule
        draws, data draws); duplicates (a point listed in two tables) appear once.

        A task's ``id`` is the first 20 hex digits of ``SHA-256(canonical_json(["task",
        task.canonical()]))``; its rule seed ``H("rule", seed, grammar, rule_draw)`` and its data
        seeds ``H("data", seed, grammar, rule_draw, data_draw, process, schedule, level)``
        (``H``: the first 63 bits of the SHA-256 of the canonical JSON of the list).
        """
        out: dict[str, Task] = {}
        enc = canonical_json
        head = {
            "format": enc(FORMAT_NAME),
            "version": enc(FORMAT_VERSION),
            "seed": enc(self.seed),
            "measure": enc(self.measure.canonical()),
        }
        for grammar in self.grammars:
            g = enc(grammar.canonical())
            prefix = grammar.prefix()
            rule_seeds = {
                r: _seed_of(_list_json('"rule"', head["seed"], g, enc(r))) for r in self.rule_draws
            }
            for noise in self.noises:
                process, schedule = enc(noise.process), enc(noise.schedule)
                for levels in noise.chunks():
                    level_texts = [enc(t) for t in levels]
                    levels_text = _list_json(*level_texts)
                    for r in self.rule_draws:
                        r_text = enc(r)
                        for k in self.data_draws:
                            k_text = enc(k)
                            seeds = tuple(
                                _seed_of(
                                    _list_json(
                                        '"data"',
                                        head["seed"],
                                        g,
                                        r_text,
                                        k_text,
                                        process,
                                        schedule,
                                        t,
                                    )
                                )
                                for t in level_texts
                            )
                            canonical = _object_json(
                                {
                                    **head,
                                    "grammar": g,
                                    "rule_draw": r_text,
                                    "data_draw": k_text,
                                    "process": process,
                                    "schedule": schedule,
                                    "levels": levels_text,
                                }
                            )
                            tid = hashlib.sha256(
                                _list_json('"task"', canonical).encode("utf-8")
                            ).hexdigest()[:20]
                            if tid in out:
                                continue
                            out[tid] = Task(
                                tid,
                                f"{prefix}-{noise.process}-r{r}-d{k}-{tid}.parquet",
                                grammar,
                                r,
                                k,
                                rule_seeds[r],
                                noise.process,
                                noise.schedule,
                                levels,
                                seeds,
                                self.measure,
                                self.seed,
                            )
        return list(out.values())

    def digest(self, tasks: list[Task] | None = None) -> str:
        """SHA-256 of the sorted task ids: two configs with the same tasks are one sweep."""
        ids = sorted(task.id for task in (self.tasks() if tasks is None else tasks))
        return hashlib.sha256("\n".join(ids).encode("ascii")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The checked config as JSON values (what the store's manifest records)."""
        return {
            "seed": self.seed,
            "rule_draws": list(self.rule_draws),
            "data_draws": list(self.data_draws),
            "grammar": [
                {"file": g.file, "file_sha256": g.file_sha256} if g.file else dict(g.params)
                for g in self.grammars
            ],
            "noise": [
                {
                    "process": n.process,
                    "schedule": n.schedule,
                    "levels": list(n.levels),
                    "levels_per_task": n.levels_per_task,
                }
                for n in self.noises
            ],
            "measure": self.measure.canonical(),
            "source": self.source,
        }


def _tables(value: Any, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"[[{name}]] is empty: give at least one table")
        return list(value)
    return [value]


def parse_config(data: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> SweepConfig:
    """Check a sweep declared as a dict (the structure of the TOML file) and return it.

    Parameters
    ----------
    data : Mapping
        Keys ``grammar``, ``noise``, ``measure`` (tables, or lists of tables for
        ``grammar`` and ``noise``), and optionally ``seed``, ``rule_draws``, ``data_draws``;
        see :mod:`hiergrammar.sweep` for every key.
    base_dir : str or os.PathLike, optional
        Folder that relative grammar ``file`` paths start from (default: the working folder).

    Returns
    -------
    SweepConfig

    Raises
    ------
    InputError
        For an unknown or missing key or a value out of its bounds, naming it.

    Examples
    --------
    >>> parse_config({"grammar": {"v": 4, "m": 2, "s": 2, "L": 2},
    ...               "noise": {"process": "fog", "levels": [0.1]},
    ...               "measure": {"name": "beliefs", "n_samples": 5}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: [noise] process='fog' is not one of ['eps', ...]
    """
    if not isinstance(data, Mapping):
        raise InputError(f"a sweep config is a table (dict), got {type(data).__name__}")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in the sweep config; known: {list(_TOP_KEYS)}")
    for key in ("grammar", "noise", "measure"):
        if key not in data:
            raise InputError(f"the sweep config lacks the table [{key}]")
    seed = check_seed("seed", data.get("seed", 0), allow_generator=False)
    if seed is None:
        raise InputError("seed=None: a sweep needs a seed (a non-negative integer)")
    rule_draws = _draws("rule_draws", data.get("rule_draws", 1))
    data_draws = _draws("data_draws", data.get("data_draws", 1))
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    grammar_tables = _tables(data["grammar"], "grammar")
    grammars: list[GrammarPoint] = []
    for i, table in enumerate(grammar_tables):
        where = "[grammar]" if len(grammar_tables) == 1 else f"[[grammar]] #{i + 1}"
        grammars += _grammar_table(table, where, base, rule_draws)
    noise_tables = _tables(data["noise"], "noise")
    noises: list[NoiseSpec] = []
    for i, table in enumerate(noise_tables):
        where = "[noise]" if len(noise_tables) == 1 else f"[[noise]] #{i + 1}"
        noises += _noise_table(table, where)
    measure = _measure_table(data["measure"], noises)
    return SweepConfig(tuple(grammars), tuple(noises), measure, rule_draws, data_draws, seed)


def _toml_module():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def read_config(path: str | os.PathLike) -> SweepConfig:
    """Read and check a sweep's TOML file (relative grammar files start from its folder).

    Parameters
    ----------
    path : str or os.PathLike
        The TOML file.

    Returns
    -------
    SweepConfig

    Raises
    ------
    InputError
        If the file is missing, not UTF-8 text or not valid TOML (with the parser's line and
        column), or a key or value is wrong.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "s.toml").write_text('''
    ... rule_draws = 2
    ... [grammar]
    ... v = 8
    ... m = 2
    ... s = 2
    ... L = [2, 3]
    ... [noise]
    ... process = "eps"
    ... levels = {start = 0.0, stop = 0.8, num = 5}
    ... [measure]
    ... name = "beliefs"
    ... n_samples = 50
    ... ''')
    >>> config = read_config(folder / "s.toml")
    >>> len(config.tasks()), config.noises[0].levels
    (4, (0.0, 0.2, 0.4, 0.6000000000000001, 0.8))
    """
    path = Path(path).expanduser()
    tomllib = _toml_module()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"config={str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"config={str(path)!r} is a folder; give a TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"config={str(path)!r} is not valid TOML: {err}") from None
    except UnicodeDecodeError:  # a binary file (an .npz, an image): TOML is UTF-8 text
        raise InputError(
            f"config={str(path)!r} is not a sweep config: not UTF-8 text (give the sweep's "
            "TOML file)"
        ) from None
    except OSError as err:
        raise InputError(f"config={str(path)!r} cannot be read: {err.strerror or err}") from None
    config = parse_config(data, base_dir=path.resolve().parent)
    object.__setattr__(config, "source", str(path.resolve()))
    return config


def as_config(config: SweepConfig | Mapping[str, Any] | str | os.PathLike) -> SweepConfig:
    """A :class:`SweepConfig` from itself, a dict (:func:`parse_config`) or a TOML path."""
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(config)
    if isinstance(config, (str, os.PathLike)):
        return read_config(config)
    raise InputError(
        f"config must be a SweepConfig, a dict or a TOML file path, got {type(config).__name__}"
    )
