"""A suite of UAI instances with exact answers, graded by difficulty, for checking engines.

:func:`write_suite` writes every instance of :func:`suite_specs` with
:func:`hiergrammar.uai.to_uai` (model, ``.MAR``, ``.PR``) and an index ``index.json`` that
describes each one: its files, the grammar family, parameters and seeds, the evidence, the
sizes (variables, factors, largest cardinality and factor, entries, bytes), the difficulty
grade, flags, the exact ``log10 Z`` (``null`` with ``"consistent": false`` for evidence of
probability zero: strict JSON has no ``-inf``), pgmpy's estimated reading time, and the name
``h{l}_{i}`` of every variable number.

Grades
------
1. ``easy``: small trees, moderate numbers; every exact engine should pass.
2. ``structure``: depth, vocabulary, branching, weighted rules, ambiguity, the sparse and
   filtered families; larger trees and factors, and partition functions that shrink with depth.
3. ``numerics``: near-deterministic leaves, tiny potentials, potentials spanning many orders of
   magnitude, a tree too large for pgmpy's reader, scopes in ascending order.
4. ``inconsistent``: evidence of probability zero (the answer is "inconsistent").

Flags (computed from the model and its answer)
----------------------------------------------
``tiny_partition_function`` (``Z < 1e-8``), ``near_deterministic`` (some leaf likelihood below
``1e-9`` times its largest value, but positive), ``wide_range`` (positive potentials spanning
more than 20 orders of magnitude), ``zero_entries``, ``ascending_scopes``, ``weighted_rules``
(unequal rule probabilities), ``ambiguous`` (a tuple owned by several parents),
``inconsistent`` (``Z = 0``), ``large_for_pgmpy_reader`` (estimated above
:data:`PGMPY_READER_FLAG_SECONDS`).

Examples
--------
>>> [spec.name for spec in suite_specs(small=True)][:3]
['rhm_small', 'rhm_s3', 'rhm_zipf']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GRADES",
    "PGMPY_READER_FLAG_SECONDS",
    "InstanceSpec",
    "describe_model",
    "suite_specs",
    "write_suite",
]

#: Difficulty grades: number -> (label, meaning).
GRADES: dict[int, tuple[str, str]] = {
    1: ("easy", "small trees, moderate numbers"),
    2: ("structure", "depth, vocabulary, branching, weights, ambiguity, grammar families"),
    3: (
        "numerics",
        "near-deterministic, tiny or wide-ranging potentials, large or reordered files",
    ),
    4: ("inconsistent", "evidence of probability zero"),
}

#: Instances whose estimated pgmpy reading time exceeds this are flagged in the index.
PGMPY_READER_FLAG_SECONDS = 10.0


@dataclass(frozen=True)
class InstanceSpec:
    """One instance of the suite: a grammar, its evidence and how it is written.

    ``build(seed) -> (grammar, evidence (d, v), root_prior or None)``; ``parameters`` and
    ``evidence`` describe them for the index.
    """

    name: str
    grade: int
    family: str
    parameters: dict[str, Any]
    evidence: dict[str, Any]
    build: Callable[[int], tuple[Any, np.ndarray, np.ndarray | None]]
    scope_order: str = "descending"
    note: str = ""
    small: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- evidence --------------------------------------------------------------------------------------
def _eps_evidence(grammar: Any, eps: float, seed: int) -> np.ndarray:
    """The eps-process likelihoods of one datum of ``grammar`` drawn with ``seed``."""
    from hiergrammar.noise import eps_evidence

    x = grammar.sample(1, seed=seed).x
    return eps_evidence(x, eps=eps, v=int(grammar.card(0)))[0]


def _near_deterministic(grammar: Any, seed: int, floor: float) -> np.ndarray:
    x = grammar.sample(1, seed=seed).x[0]
    ev = np.full((int(grammar.d), int(grammar.card(0))), floor)
    ev[np.arange(len(x)), x] = 1.0
    return ev


def _wide_range(grammar: Any, seed: int, decades: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = grammar.sample(1, seed=seed).x[0]
    ev = 10.0 ** rng.uniform(-decades, 0.0, (int(grammar.d), int(grammar.card(0))))
    ev[np.arange(len(x)), x] = 10.0 ** rng.uniform(-2.0, 0.0, len(x))
    return ev


def _invalid_string(grammar: Any, seed: int) -> np.ndarray:
    """A leaf string no tree produces (drawn at random until the parser refuses it)."""
    from hiergrammar.validation import InputError

    rng = np.random.default_rng(seed)
    for _ in range(10_000):
        x = rng.integers(0, int(grammar.card(0)), (1, int(grammar.d)))
        if not grammar.parse(x).valid[0]:
            return x[0]
    raise InputError("no invalid string found: the grammar produces almost every string")


def _onehot(x: np.ndarray, v: int) -> np.ndarray:
    # Index instead of np.eye(v)[x]: memory in the output's size, not in v**2.
    out = np.zeros(x.shape + (v,))
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


# -- the suite -------------------------------------------------------------------------------------
def suite_specs(small: bool = False) -> list[InstanceSpec]:
    """The instances of the suite, in order of grade (``small``: the subset the tests run,
    every grade represented, each instance read by pgmpy in about a second).

    Parameters
    ----------
    small : bool

    Returns
    -------
    list of InstanceSpec
    """
    from hiergrammar.families import filtered_grammar, sparse_rhm
    from hiergrammar.rhm import RHM

    def rhm(**kw: Any) -> Callable[[int], Any]:
        return lambda seed: RHM(seed=seed, **kw)

    def eps(make: Callable[[int], Any], value: float = 0.3) -> Callable[[int], tuple]:
        def build(seed: int) -> tuple:
            g = make(seed)
            return g, _eps_evidence(g, value, seed + 1), None

        return build

    specs = [
        InstanceSpec(
            "rhm_small",
            1,
            "RHM",
            {"v": 3, "n_classes": 2, "m": 2, "s": 2, "L": 2},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=3, n_classes=2, m=2, s=2, L=2)),
            small=True,
        ),
        InstanceSpec(
            "rhm_s3",
            1,
            "RHM",
            {"v": 3, "n_classes": 2, "m": 2, "s": 3, "L": 1},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=3, n_classes=2, m=2, s=3, L=1)),
            small=True,
        ),
        InstanceSpec(
            "rhm_zipf",
            2,
            "RHM",
            {"v": 4, "n_classes": 2, "m": 3, "s": 2, "L": 3, "rule_law": "zipf", "zipf_a": 1.0},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=4, n_classes=2, m=3, s=2, L=3, rule_law="zipf", zipf_a=1.0)),
            small=True,
        ),
        InstanceSpec(
            "rhm_ambiguous",
            2,
            "RHM",
            {"v": 3, "n_classes": 3, "m": 3, "s": 2, "L": 2, "shared_tuples": True},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=3, n_classes=3, m=3, s=2, L=2, shared_tuples=True)),
            small=True,
        ),
        InstanceSpec(
            "rhm_deep",
            2,
            "RHM",
            {"v": 3, "n_classes": 2, "m": 2, "s": 2, "L": 4},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=3, n_classes=2, m=2, s=2, L=4)),
        ),
        InstanceSpec(
            "rhm_vocab",
            2,
            "RHM",
            {"v": 8, "n_classes": 4, "m": 4, "s": 2, "L": 2},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=8, n_classes=4, m=4, s=2, L=2)),
        ),
        InstanceSpec(
            "rhm_ambiguous_deep",
            2,
            "RHM",
            {"v": 3, "n_classes": 3, "m": 3, "s": 2, "L": 3, "shared_tuples": True},
            {"kind": "eps", "eps": 0.2},
            eps(rhm(v=3, n_classes=3, m=3, s=2, L=3, shared_tuples=True), 0.2),
        ),
        InstanceSpec(
            "sparse_rhm",
            2,
            "sparse_rhm",
            {"v": 2, "n_classes": 2, "m": 2, "s": 2, "s0": 1, "L": 2},
            {"kind": "eps", "eps": 0.3},
            eps(lambda seed: sparse_rhm(v=2, n_classes=2, m=2, s=2, s0=1, L=2, seed=seed)),
        ),
        InstanceSpec(
            "filtered",
            2,
            "filtered_grammar",
            {"q": 3, "L": 3, "sigma": 1.0, "k": 1},
            {"kind": "eps", "eps": 0.3},
            eps(lambda seed: filtered_grammar(q=3, L=3, sigma=1.0, k=1, seed=seed)),
        ),
        InstanceSpec(
            "tiny_potentials",
            3,
            "RHM",
            {"v": 2, "n_classes": 2, "m": 1, "s": 3, "L": 2},
            {"kind": "uniform(0, 1) + 0.01, times 1e-3", "scale": 1e-3},
            lambda seed: (
                RHM(v=2, n_classes=2, m=1, s=3, L=2, seed=seed),
                (np.random.default_rng(seed + 3).uniform(0.0, 1.0, (9, 2)) + 0.01) * 1e-3,
                None,
            ),
            note="the kind of model that broke pgmpy's BeliefPropagation: Z far below 1e-8",
            small=True,
        ),
        InstanceSpec(
            "near_deterministic",
            3,
            "RHM",
            {"v": 4, "n_classes": 2, "m": 2, "s": 2, "L": 2},
            {"kind": "one-hot datum, 1e-12 elsewhere", "floor": 1e-12},
            lambda seed: (
                g := RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=seed),
                _near_deterministic(g, seed + 1, 1e-12),
                None,
            ),
            small=True,
        ),
        InstanceSpec(
            "near_deterministic_deep",
            3,
            "RHM",
            {"v": 4, "n_classes": 2, "m": 2, "s": 2, "L": 4},
            {"kind": "one-hot datum, 1e-15 elsewhere", "floor": 1e-15},
            lambda seed: (
                g := RHM(v=4, n_classes=2, m=2, s=2, L=4, seed=seed),
                _near_deterministic(g, seed + 1, 1e-15),
                None,
            ),
        ),
        InstanceSpec(
            "wide_range",
            3,
            "RHM",
            {"v": 4, "n_classes": 3, "m": 3, "s": 2, "L": 3, "rule_law": "zipf", "zipf_a": 4.0},
            {"kind": "10**uniform(-40, 0), datum 10**uniform(-2, 0)", "decades": 40},
            lambda seed: (
                g := RHM(v=4, n_classes=3, m=3, s=2, L=3, seed=seed, rule_law="zipf", zipf_a=4.0),
                _wide_range(g, seed + 1, 40.0),
                None,
            ),
        ),
        InstanceSpec(
            "ascending_scopes",
            3,
            "RHM",
            {"v": 3, "n_classes": 2, "m": 2, "s": 2, "L": 2},
            {"kind": "eps", "eps": 0.3},
            eps(rhm(v=3, n_classes=2, m=2, s=2, L=2)),
            scope_order="ascending",
            note="an RHM like rhm_small, each scope written parent first (valid UAI: any order is)",
            small=True,
        ),
        InstanceSpec(
            "deep_binary",
            3,
            "RHM",
            {"v": 2, "n_classes": 2, "m": 2, "s": 2, "L": 7},
            {"kind": "eps", "eps": 0.2},
            eps(rhm(v=2, n_classes=2, m=2, s=2, L=7), 0.2),
            note="255 variables: large for pgmpy's reader",
        ),
        InstanceSpec(
            "inconsistent",
            4,
            "RHM",
            {"v": 3, "n_classes": 2, "m": 2, "s": 2, "L": 2},
            {"kind": "one-hot on a string no tree produces"},
            lambda seed: (
                g := RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=seed),
                _onehot(_invalid_string(g, seed + 1), 3),
                None,
            ),
            small=True,
        ),
        InstanceSpec(
            "inconsistent_prior",
            4,
            "RHM",
            {"v": 3, "n_classes": 2, "m": 2, "s": 2, "L": 2},
            {"kind": "eps 0.3 around a datum of class 1, soft everywhere", "eps": 0.3},
            lambda seed: _class_excluded(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=seed), seed),
            note="the root prior excludes the only class whose strings the evidence allows",
        ),
    ]
    return [s for s in specs if s.small] if small else specs


def _class_excluded(grammar: Any, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """Evidence that only strings of class 1 explain (two data of class 1, one of them at half
    weight, soft at the leaves where they differ) and a root prior that excludes class 1."""
    from hiergrammar.uai import exact_solution

    data = grammar.sample(256, seed=seed + 1)
    x, x2 = data.x[np.flatnonzero(data.y == 1)[:2]]
    v = int(grammar.card(0))
    prior = np.zeros(int(grammar.card(grammar.L)))
    prior[0] = 1.0
    ev = _onehot(x, v) + 0.5 * _onehot(x2, v)
    if exact_solution(grammar, ev, prior).consistent:  # the mixture reaches class 0: stay hard
        ev = _onehot(x, v)
    return grammar, ev, prior


# -- describing an instance ------------------------------------------------------------------------
def describe_model(model: Any, solution: Any, grammar: Any = None) -> dict[str, Any]:
    """Sizes and flags of a written instance (see the module docstring).

    Examples
    --------
    >>> from hiergrammar.uai import UAIModel, UAISolution
    >>> m = UAIModel((2,), ((0,),), (np.array([0.0, 1.0]),))
    >>> describe_model(m, UAISolution((np.array([0.0, 1.0]),), 0.0))["flags"]
    ['zero_entries']
    """
    positive = [t[t > 0] for t in model.tables if np.any(t > 0)]
    low = min((float(p.min()) for p in positive), default=1.0)
    high = max((float(p.max()) for p in positive), default=1.0)
    flags = []
    if solution.consistent and solution.log10_z < -8:
        flags.append("tiny_partition_function")
    unary = [t for s, t in zip(model.scopes, model.tables, strict=True) if len(s) == 1]
    if any(np.any((t > 0) & (t < 1e-9 * t.max())) for t in unary if t.max() > 0):
        flags.append("near_deterministic")
    if high > 0 and low > 0 and math.log10(high / low) > 20:
        flags.append("wide_range")
    if any(np.any(t == 0) for t in model.tables):
        flags.append("zero_entries")
    if any(any(a < b for a, b in zip(s, s[1:], strict=False)) for s in model.scopes):
        flags.append("ascending_scopes")
    if grammar is not None:
        if any(not np.all(p == p.flat[0]) for p in grammar.rule_probs.values()):
            flags.append("weighted_rules")
        if not grammar.is_unambiguous:
            flags.append("ambiguous")
    if not solution.consistent:
        flags.append("inconsistent")
    from hiergrammar.engines.pgmpy_uai import reader_seconds

    reader = reader_seconds(model)
    if reader > PGMPY_READER_FLAG_SECONDS:
        flags.append("large_for_pgmpy_reader")
    return {
        "n_variables": model.n_variables,
        "n_factors": model.n_factors,
        "max_card": model.max_card,
        "largest_factor": model.largest_factor,
        "n_entries": model.n_entries,
        "potential_range": [low, high],
        "pgmpy_reader_seconds_estimate": round(reader, 3),
        "flags": flags,
    }


def write_suite(
    folder: str | os.PathLike, small: bool = False, seed: int = 0
) -> list[dict[str, Any]]:
    """Write the suite's instances into ``folder`` (existing; the caller manages it, e.g. with
    :func:`hiergrammar.artifacts.run_folder`) and return the index entries (also written to
    ``folder / "index.json"``).

    Parameters
    ----------
    folder : path
    small : bool
        Only the small subset (see :func:`suite_specs`): the same instances, bit for bit, as
        the full suite's of the same names.
    seed : int
        Base seed: instance ``k`` (its position in the full suite, whether or not ``small``)
        draws its grammar with ``seed + 100 * k`` (and its evidence from the seeds that
        follow), so a name always means one instance.

    Returns
    -------
    list of dict
        One index entry per instance.
    """
    from hiergrammar import graphs
    from hiergrammar.artifacts import progress, save_json
    from hiergrammar.uai import exact_solution, grammar_model, to_uai
    from hiergrammar.validation import check_seed

    seed = check_seed("seed", seed, allow_generator=False)
    folder = Path(folder)
    entries = []
    specs = suite_specs(small)
    position = {spec.name: k for k, spec in enumerate(suite_specs(small=False))}
    for spec in progress(specs, desc="UAI instances", total=len(specs)):
        instance_seed = seed + 100 * position[spec.name]
        grammar, evidence, prior = spec.build(instance_seed)
        uai_name = f"{spec.name}.uai"
        files = to_uai(
            grammar, folder / uai_name, evidence, root_prior=prior, scope_order=spec.scope_order
        )
        model = grammar_model(grammar, evidence, prior, scope_order=spec.scope_order)
        solution = exact_solution(grammar, evidence, prior)
        grade = spec.grade
        entry = {
            "name": spec.name,
            "files": {"uai": uai_name, "mar": files.mar.name, "pr": files.pr.name},
            "family": spec.family,
            "parameters": spec.parameters,
            "seed": instance_seed,
            "evidence": spec.evidence,
            "root_prior": None if prior is None else np.asarray(prior).tolist(),
            "scope_order": spec.scope_order,
            "difficulty": {"grade": grade, "label": GRADES[grade][0]},
            "log10_z": solution.log10_z,
            "consistent": solution.consistent,
            **describe_model(model, solution, grammar),
            "file_bytes": files.uai.stat().st_size,
            "note": spec.note,
            "variables": {str(i): n for i, n in enumerate(graphs.variable_names(grammar))},
        }
        entries.append(entry)
    index = {
        "format": "UAI (2014 conventions): MARKOV network, tables with the last scope variable "
        "fastest, numbers in positional notation; NAME.uai.MAR / NAME.uai.PR hold the exact "
        "marginals and log10 Z ('-inf' and 'nan' marginals for evidence of probability zero)",
        "variables": "variable k is the tree node named in 'variables' (h{level}_{index}; the "
        "root first, then each level left to right down to the leaves)",
        "grades": {str(g): {"label": lab, "meaning": m} for g, (lab, m) in GRADES.items()},
        "seed": seed,
        "small": small,
        "instances": entries,
    }
    save_json(folder / "index.json", index)
    return entries
