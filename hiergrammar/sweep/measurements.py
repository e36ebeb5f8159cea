"""The measurements a sweep can run, by name, and :func:`register_measurement` for any other.

A measurement is a function

.. code-block:: python

    def measure(grammar, process, t, *, n_samples, seed, **options) -> Mapping[str, value]

called once per noise level ``t`` of a task, with the task's grammar (an
:class:`~hiergrammar.rhm.RHM` or a loaded :class:`~hiergrammar.grammar.Grammar`), its noise
process (:mod:`hiergrammar.processes`, on the grammar's leaf vocabulary), ``n_samples`` from
``[measure]``, a seed derived from the task's parameters (use it for every random draw: the
result must depend on it and the arguments only), and the other keys of ``[measure]`` as
keyword arguments. It returns the measured quantities as a mapping, which becomes rows of the
results:

* with a key ``"level"`` (1-d integers, ``k`` rows, usually the tree levels ``0..L``), every
  other value is a scalar (the same on every row) or an array whose first axis has length
  ``k`` (one entry per row; a row that is itself an array becomes a list column);
* without it, one row: scalars, and arrays stored as list columns.

Built in:

``beliefs``
    Exact BP (:func:`hiergrammar.bp.tree_bp`) on ``n_samples`` strings of the grammar whose
    leaves went through the process at time ``t``. One row per tree level: ``u``, ``d``,
    ``p`` (mean upward, downward and marginal belief in the true symbol), ``accuracy`` (the
    fraction of nodes whose marginal's argmax is the true symbol: P(correct symbol)), each
    with its standard error over samples (``*_se``). Options: ``dtype`` (``"float64"`` or
    ``"float32"``), ``chunk_size`` (strings per BP call; default the largest that fits the
    memory budget, at most one block of :data:`~hiergrammar.streaming.STREAM_BLOCK`).
``token_changes``
    Exact forward-backward (:func:`hiergrammar.experiments.token_changes.
    token_change_curves`): per tree level, ``unchanged`` (fraction of symbols unchanged) and
    ``unchanged_se``, and ``C_tree`` (the covariance of the changes of leaf pairs whose lowest
    common ancestor is at that level; row 0: the mean variance); on every row, ``chi`` and
    ``chi_se`` (susceptibility) and ``C`` (the list ``C(r)``, ``r = 0..d-1``). Options:
    ``dtype``, ``jackknife_groups``. Needs ``n_samples >= 2``.
``masked_reconstruction``
    The Bayes-optimal masked-token predictor
    (:func:`hiergrammar.experiments.masked_reconstruction.masked_reconstruction`): one row
    with ``accuracy``, ``accuracy_se``, ``cross_entropy`` (nats) and ``masked_fraction``.
    Masking process only. Options: ``dtype``, ``chunk_size``.

A config may also name any importable function as ``"package.module:function"``.

Examples
--------
>>> @register_measurement("mean_leaf")
... def mean_leaf(grammar, process, t, *, n_samples, seed):
...     return {"mean": float(grammar.sample(n_samples, seed=seed).x.mean())}
>>> "mean_leaf" in measurements()
True
>>> unregister_measurement("mean_leaf")
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hiergrammar.validation import InputError, check_choice, check_int

__all__ = [
    "Measurement",
    "beliefs",
    "get_measurement",
    "masked_reconstruction",
    "measurements",
    "register_measurement",
    "token_changes",
    "unregister_measurement",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

#: The arguments every measurement receives; the other keys of ``[measure]`` are options.
_FIXED = ("grammar", "process", "t", "n_samples", "seed")


@dataclass(frozen=True)
class Measurement:
    """A registered measurement.

    Attributes
    ----------
    name : str
    func : callable
        ``func(grammar, process, t, *, n_samples, seed, **options) -> Mapping``.
    description : str
    processes : tuple of str or None
        The noise processes it accepts (None: all).
    min_samples : int
        The smallest ``n_samples`` it accepts.
    check : callable or None
        ``check(options)`` raises an :class:`InputError` for a bad option value.
    preflight : callable or None
        ``preflight(grammar, process, *, n_samples, **options)`` raises the
        :class:`InputError` the measurement would raise for these sizes (above all the memory
        budget), without doing the work; a sweep calls it once per grammar point and noise
        process, in the process that starts the sweep, before any task is submitted.
    """

    name: str
    func: Callable[..., Mapping[str, Any]]
    description: str = ""
    processes: tuple[str, ...] | None = None
    min_samples: int = 1
    check: Callable[[Mapping[str, Any]], None] | None = None
    preflight: Callable[..., None] | None = None

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise an :class:`InputError` for an option the function does not take, or (with
        ``check``) a bad option value."""
        self._check_names(options)
        if self.check is not None:
            self.check(options)

    def _check_names(self, options: Mapping[str, Any]) -> None:
        try:
            signature = inspect.signature(self.func)
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            return
        params = signature.parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        known = [name for name in params if name not in _FIXED]
        for key in options:
            if key in _FIXED or key not in params:
                raise InputError(
                    f"[measure] {key}: the measurement {self.name!r} takes no option {key!r}; "
                    f"its options: {known}"
                )


_REGISTRY: dict[str, Measurement] = {}


def register_measurement(
    name: str,
    func: Callable[..., Mapping[str, Any]] | None = None,
    *,
    description: str | None = None,
    processes: tuple[str, ...] | None = None,
    min_samples: int = 1,
    check: Callable[[Mapping[str, Any]], None] | None = None,
    preflight: Callable[..., None] | None = None,
    replace: bool = False,
):
    """Register ``func`` as the measurement ``name`` (also usable as a decorator).

    Parameters
    ----------
    name : str
        Letters, digits, ``_``, ``.`` and ``-``; the name a config's ``[measure] name`` uses.
    func : callable, optional
        ``func(grammar, process, t, *, n_samples, seed, **options) -> Mapping`` (see the
        module's docstring for the returned rows). Omit it to decorate.
    description : str, optional
        One line; default the first line of ``func``'s docstring.
    processes : tuple of str, optional
        The noise processes it accepts (default all).
    min_samples : int
        The smallest ``n_samples`` it accepts.
    check : callable, optional
        ``check(options)``: raise an :class:`InputError` for a bad value of an option, so that
        a config is refused before any work.
    preflight : callable, optional
        ``preflight(grammar, process, *, n_samples, **options)``: raise the
        :class:`InputError` the measurement would raise for this grammar and process (a size
        above the memory budget, a bound between options and ``n_samples``), cheaply and
        without the work, so that a sweep refuses such a grid point before any task runs.
    replace : bool
        Allow replacing a registered measurement of that name.

    Returns
    -------
    callable
        ``func`` (or the decorator).

    Raises
    ------
    InputError
        For a bad name, a name taken (without ``replace``), or a ``func`` that is not callable.

    Notes
    -----
    A task's identity (and its file) follows the measurement's name and options, not its
    code: after changing a function, write into a new store. Workers receive the function
    itself (Dask pickles a module-level function by reference, so its module must be
    importable on the workers; a function defined in a script or notebook travels by value).

    Examples
    --------
    >>> def first_leaf(grammar, process, t, *, n_samples, seed):
    ...     return {"x0": float(grammar.sample(n_samples, seed=seed).x[:, 0].mean())}
    >>> register_measurement("first_leaf", first_leaf) is first_leaf
    True
    >>> unregister_measurement("first_leaf")
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"name={name!r} must start with a letter or _ and hold only letters, digits, _, . "
            "and - (a function path 'module:function' needs no registration)"
        )
    min_samples = check_int("min_samples", min_samples, 1)
    if processes is not None:
        from hiergrammar.sweep.config import PROCESSES

        processes = tuple(check_choice("processes entry", p, PROCESSES) for p in processes)

    def add(function: Callable[..., Mapping[str, Any]]) -> Callable[..., Mapping[str, Any]]:
        if not callable(function):
            raise InputError(f"func={function!r} is not callable")
        if name in _REGISTRY and not replace and _REGISTRY[name].func is not function:
            raise InputError(
                f"a measurement named {name!r} is registered already; pass replace=True"
            )
        text = description
        if text is None:
            text = (inspect.getdoc(function) or "").split("\n")[0]
        _REGISTRY[name] = Measurement(
            name, function, text, processes, min_samples, check, preflight
        )
        return function

    return add if func is None else add(func)


def unregister_measurement(name: str) -> None:
    """Remove the measurement ``name`` (an :class:`InputError` if there is none).

    Examples
    --------
    >>> unregister_measurement("no_such_measurement")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: no measurement named 'no_such_measurement' is registered
    """
    if name not in _REGISTRY:
        raise InputError(f"no measurement named {name!r} is registered")
    del _REGISTRY[name]


def measurements() -> dict[str, Measurement]:
    """The registered measurements, by name (a copy).

    >>> sorted(measurements())[:3]
    ['beliefs', 'masked_reconstruction', 'token_changes']
    """
    return dict(_REGISTRY)


def get_measurement(name: str) -> Measurement:
    """The measurement ``name``: a registered one, or ``"package.module:function"``.

    Raises
    ------
    InputError
        If no measurement of that name is registered, or the module or function cannot be
        imported.

    Examples
    --------
    >>> get_measurement("beliefs").name
    'beliefs'
    >>> get_measurement("hiergrammar.sweep.measurements:beliefs").func is beliefs
    True
    """
    if not isinstance(name, str):
        raise InputError(f"a measurement name is a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise InputError(
                f"measurement {name!r}: cannot import {module_name!r}: {err}"
            ) from None
        func = module
        for part in attr.split("."):
            func = getattr(func, part, None)
        if not callable(func):
            raise InputError(f"measurement {name!r}: {module_name} has no function {attr!r}")
        for entry in _REGISTRY.values():  # a registered function keeps its settings
            if entry.func is func:
                return Measurement(
                    name,
                    func,
                    entry.description,
                    entry.processes,
                    entry.min_samples,
                    entry.check,
                    entry.preflight,
                )
        doc = (inspect.getdoc(func) or "").split("\n")[0]
        return Measurement(name, func, doc)
    raise InputError(
        f"no measurement named {name!r}; registered: {sorted(_REGISTRY)} (or give an "
        "importable function as 'package.module:function')"
    )


# -- built-in measurements -----------------------------------------------------------------------
def _dtype(dtype: str) -> type:
    return {"float64": np.float64, "float32": np.float32}[
        check_choice("dtype", dtype, ("float64", "float32"))
    ]


def beliefs(
    grammar: Any,
    process: Any,
    t: float,
    *,
    n_samples: int,
    seed: int,
    dtype: str = "float64",
    chunk_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Exact-BP beliefs in the true symbol and P(correct symbol), per tree level.

    The strings stream (:func:`hiergrammar.experiments.beliefs.belief_sums`): drawn and
    noised block by block, each block from its own random streams, and run through BP chunk
    by chunk; only per-level sums are kept, never the ``(n, d, v)`` likelihoods.

    Parameters
    ----------
    grammar : Grammar
        The model (``L``, ``d``, ``sample``, and what :func:`hiergrammar.bp.tree_bp` reads).
    process : Process
        The noise process on the leaves.
    t : float
        Its time (for the eps-process: eps).
    n_samples : int
        Strings, ``>= 1``.
    seed : int
        Seed of the strings and the noise.
    dtype : ``"float64"`` or ``"float32"``
        BP's float type (float32: about twice as fast, error ~1e-6).
    chunk_size : int, optional
        Strings per BP call (default the largest that fits the memory budget, at most one
        block); the result does not depend on it.

    Returns
    -------
    dict
        ``level`` ``(L+1,)`` and, each ``(L+1,)``, ``u``, ``d``, ``p``, ``accuracy`` and their
        standard errors over samples ``u_se``, ``d_se``, ``p_se``, ``accuracy_se`` (of the
        per-string averages over the nodes of a level).

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.processes import EpsProcess
    >>> out = beliefs(RHM(8, 8, 2, 2, 2, seed=0), EpsProcess(8), 0.0, n_samples=10, seed=1)
    >>> out["accuracy"].tolist(), out["p"].tolist()     # no noise: every symbol certain
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    """
    from hiergrammar.experiments.beliefs import BELIEF_KEYS, belief_sums

    n_samples = check_int("n_samples", n_samples, 1)
    float_type = _dtype(dtype)
    L = grammar.L
    sums, squares = belief_sums(
        grammar,
        n_samples,
        seed,
        lambda x, rng: process.corrupt(x, t, seed=rng),
        lambda rows: process.leaf_likelihood(rows, t, dtype=float_type),
        observation_bytes=process.observation_bytes(grammar.d),
        dtype=float_type,
        chunk_size=chunk_size,
        desc=f"beliefs t={t:g}",
    )
    names = {"u": "u", "d": "d", "p": "p", "correct": "accuracy"}
    out: dict[str, np.ndarray] = {"level": np.arange(L + 1)}
    for i, key in enumerate(BELIEF_KEYS):
        out[names[key]] = sums[i] / n_samples
    for i, key in enumerate(BELIEF_KEYS):
        mean = out[names[key]]
        var = np.maximum(squares[i] / n_samples - mean**2, 0.0)
        out[f"{names[key]}_se"] = (
            np.sqrt(var / (n_samples - 1)) if n_samples > 1 else np.full(L + 1, np.nan)
        )
    return out


def token_changes(
    grammar: Any,
    process: Any,
    t: float,
    *,
    n_samples: int,
    seed: int,
    dtype: str = "float64",
    jackknife_groups: int | None = None,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """What an exact forward-backward run from time ``t`` changes, per level and along the
    string.

    Parameters
    ----------
    grammar : Grammar
    process : Process
    t : float
        The time the reverse process starts from.
    n_samples : int
        Strings, ``>= 2``.
    seed : int
    dtype : ``"float64"`` or ``"float32"``
    jackknife_groups : int, optional
        Groups for the jackknife error of ``chi`` (default ``min(10, n_samples)``).
    chunk_size : int, optional
        Strings per chunk of the streamed forward-backward (default: from the memory budget);
        the result does not depend on it.

    Returns
    -------
    dict
        ``level`` ``(L+1,)``; ``unchanged``, ``unchanged_se`` and ``C_tree`` ``(L+1,)``;
        ``chi``, ``chi_se`` (scalars); ``C`` ``(L+1, d)`` (``C(r)`` on every row).

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.processes import MaskingProcess
    >>> out = token_changes(RHM(8, 4, 2, 2, 2, seed=0), MaskingProcess(8), 0.0, n_samples=20,
    ...                     seed=1)
    >>> out["unchanged"].tolist(), out["C"].shape       # t = 0: nothing changes
    ([1.0, 1.0, 1.0], (3, 4))
    """
    from hiergrammar.experiments.token_changes import token_change_curves

    curves = token_change_curves(
        grammar,
        process,
        [float(t)],
        n_samples,
        seed=seed,
        jackknife_groups=jackknife_groups,
        dtype=_dtype(dtype),
        chunk_size=chunk_size,
    )
    L = grammar.L
    return {
        "level": np.arange(L + 1),
        "unchanged": curves.unchanged[0],
        "unchanged_se": curves.unchanged_se[0],
        "C_tree": curves.C_tree[0],
        "chi": float(curves.chi[0]),
        "chi_se": float(curves.chi_se[0]),
        "C": np.broadcast_to(curves.C[0], (L + 1, curves.C.shape[1])),
    }


def masked_reconstruction(
    grammar: Any,
    process: Any,
    t: float,
    *,
    n_samples: int,
    seed: int,
    dtype: str = "float64",
    chunk_size: int | None = None,
) -> dict[str, float]:
    """The Bayes-optimal masked-token predictor at masking time ``t``: one row.

    Parameters
    ----------
    grammar : Grammar
    process : MaskingProcess
        Its schedule is used.
    t : float
    n_samples : int
    seed : int
    dtype : ``"float64"`` or ``"float32"``
    chunk_size : int, optional
        Strings per BP call (default: from the memory budget); the result does not depend
        on it.

    Returns
    -------
    dict
        ``accuracy``, ``accuracy_se``, ``cross_entropy`` (nats), ``masked_fraction``.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.processes import MaskingProcess
    >>> out = masked_reconstruction(RHM(8, 4, 2, 2, 2, seed=0), MaskingProcess(8), 1.0,
    ...                             n_samples=20, seed=1)
    >>> out["masked_fraction"]
    1.0
    """
    from hiergrammar.experiments.masked_reconstruction import (
        masked_reconstruction as reconstruct,
    )

    rec = reconstruct(
        grammar,
        [float(t)],
        n_samples,
        seed=seed,
        schedule=process.schedule,
        chunk_size=chunk_size,
        dtype=_dtype(dtype),
    )
    return {
        "accuracy": float(rec.accuracy[0]),
        "accuracy_se": float(rec.accuracy_se[0]),
        "cross_entropy": float(rec.cross_entropy[0]),
        "masked_fraction": float(rec.masked_fraction[0]),
    }


# The preflights ask each measurement's own chunk sizing (the estimate it meets first, same
# budget), so that a sweep refuses an oversized grid point before it submits any task.
def _beliefs_preflight(
    grammar: Any,
    process: Any,
    *,
    n_samples: int,
    dtype: str = "float64",
    chunk_size: int | None = None,
) -> None:
    from hiergrammar.experiments.beliefs import belief_chunk_size

    belief_chunk_size(
        grammar,
        n_samples,
        process.observation_bytes(grammar.d),
        dtype=_dtype(dtype),
        chunk_size=chunk_size,
        what="beliefs",
    )


def _token_changes_preflight(
    grammar: Any,
    process: Any,
    *,
    n_samples: int,
    dtype: str = "float64",
    jackknife_groups: int | None = None,
    chunk_size: int | None = None,
) -> None:
    from hiergrammar.sampling import forward_backward_chunk_size
    from hiergrammar.validation import check_memory

    n = check_int("n_samples", n_samples, 2)
    if jackknife_groups is not None:
        check_int("jackknife_groups", jackknife_groups, 2, n)
    d = int(grammar.d)
    # token_change_curves samples the n original trees at once, then streams them
    check_memory(f"sampling n={n} trees of {d} leaves", 8 * n * (grammar.n_nodes + d), None)
    forward_backward_chunk_size(grammar, process, n, dtype=_dtype(dtype), chunk_size=chunk_size)
    check_memory(f"the (d, d) = ({d}, {d}) change covariance", 8 * d * d, None)


def _masked_reconstruction_preflight(
    grammar: Any,
    process: Any,
    *,
    n_samples: int,
    dtype: str = "float64",
    chunk_size: int | None = None,
) -> None:
    from hiergrammar.experiments.masked_reconstruction import reconstruction_chunk_size

    reconstruction_chunk_size(grammar, n_samples, dtype=_dtype(dtype), chunk_size=chunk_size)


def _check_builtin_options(options: Mapping[str, Any]) -> None:
    if "dtype" in options:
        _dtype(options["dtype"])
    for key in ("chunk_size", "jackknife_groups"):
        if options.get(key) is not None:
            check_int(key, options[key], 2 if key == "jackknife_groups" else 1)


register_measurement("beliefs", beliefs, check=_check_builtin_options, preflight=_beliefs_preflight)
register_measurement(
    "token_changes",
    token_changes,
    min_samples=2,
    check=_check_builtin_options,
    preflight=_token_changes_preflight,
)
register_measurement(
    "masked_reconstruction",
    masked_reconstruction,
    processes=("masking",),
    check=_check_builtin_options,
    preflight=_masked_reconstruction_preflight,
)
