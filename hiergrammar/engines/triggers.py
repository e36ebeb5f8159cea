"""Properties of a UAI instance that expose a known defect of an engine (see
:data:`hiergrammar.engines.DEFECTS`). Each takes a
:class:`~hiergrammar.engines.uai_check.UAIInstance` and returns a bool."""

from __future__ import annotations

import collections
import sys
from typing import Any

import numpy as np

__all__ = [
    "diameter",
    "float32_inexact",
    "has_zero_entries",
    "jax_imported",
    "long_paths",
    "scope_not_descending",
    "tiny_partition_function",
]


def tiny_partition_function(instance: Any) -> bool:
    """``Z < 1e-8``: pgmpy's calibration test (``np.allclose``, atol 1e-8) passes at once."""
    ref = instance.reference
    return ref is not None and ref.log10_z < -8


def scope_not_descending(instance: Any) -> bool:
    """A factor's scope lists its variables in another order than decreasing index."""
    return any(
        any(a <= b for a, b in zip(scope, scope[1:], strict=False))
        for scope in instance.model.scopes
    )


def float32_inexact(instance: Any) -> bool:
    """Some table entry is not a float32 number (it changes when read as float32)."""
    return any(
        bool(np.any(t.astype(np.float32).astype(np.float64) != t)) for t in instance.model.tables
    )


def has_zero_entries(instance: Any) -> bool:
    """Some factor has an entry exactly 0."""
    return any(bool(np.any(t == 0)) for t in instance.model.tables)


def diameter(model: Any) -> int:
    """The longest shortest path between two variables of a tree-structured model, in factors
    crossed (two breadth-first searches; per connected component, the largest)."""
    neighbours: dict[int, set[int]] = collections.defaultdict(set)
    for scope in model.scopes:
        for a in scope:
            neighbours[a].update(b for b in scope if b != a)

    def farthest(source: int) -> tuple[int, int, set[int]]:
        dist = {source: 0}
        queue = collections.deque([source])
        while queue:
            u = queue.popleft()
            for w in neighbours[u]:
                if w not in dist:
                    dist[w] = dist[u] + 1
                    queue.append(w)
        far = max(dist, key=dist.__getitem__)
        return far, dist[far], set(dist)

    best, seen = 0, set()
    for v in range(model.n_variables):
        if v in seen:
            continue
        far, _, component = farthest(v)
        seen |= component
        best = max(best, farthest(far)[1])
    return best


def long_paths(instance: Any) -> bool:
    """Paths of 4 factors or more: long enough for pomegranate's stopping test to stop BP
    before the messages have crossed the tree."""
    return diameter(instance.model) >= 4


def jax_imported(instance: Any) -> bool:
    """Some module of this process has imported jax (funsor then takes another code path)."""
    return "jax" in sys.modules
