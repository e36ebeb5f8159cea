"""Fast backends of exact tree belief propagation on a weighted grammar.

Three backends compute the same quantities as :func:`hiergrammar.bp.tree_bp`,
:func:`hiergrammar.bp.upward_pass` and :func:`hiergrammar.sampling.posterior_sample`:

* ``"numpy"``: the reference in :mod:`hiergrammar.bp` (always available);
* ``"numba"``: :mod:`hiergrammar.kernels.numba_bp`, fused compiled loops on the CPU, parallel over
  blocks of samples (threads: numba's setting, ``numba.set_num_threads``);
* ``"torch"``: :mod:`hiergrammar.kernels.torch_bp`, one implementation for any torch device
  (CUDA when present), returning tensors on that device.

Each kernel backend has one entry function per computation, all with the same signature, taking
the grammar as plain arrays (``rules``, ``rule_probs``, ``cards``; see
:mod:`hiergrammar.kernels.layout`)::

    tree_bp(rules, rule_probs, cards, leaf_evidence, root_prior=None, node_evidence=None,
            dtype=np.float64, *, levels=None, messages=True, memory_budget=None, device=None)
    upward_pass(rules, rule_probs, cards, leaf_evidence, root_prior=None, node_evidence=None,
                dtype=np.float64, *, levels=None, memory_budget=None, device=None)
    posterior_sample(rules, rule_probs, cards, leaf_evidence, root_prior=None, seed=0,
                     dtype=np.float64, *, node_evidence=None, memory_budget=None, device=None)

:func:`entry` returns one of them by backend and name; :func:`default_backend` names the
fastest one available. Neither numba nor torch is imported by ``import hiergrammar`` or by this
package: only when a backend is used or asked about.

Examples
--------
>>> default_backend() in ("numba", "numpy")
True
>>> entry("numba", "tree_bp").__module__
'hiergrammar.kernels.numba_bp'
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import cache
from typing import Any

from hiergrammar.validation import InputError, check_choice

__all__ = ["BACKENDS", "BACKEND_ENV", "ENTRIES", "available", "default_backend", "entry"]

#: Backend names, as ``tree_bp(..., backend=...)`` takes them.
BACKENDS = ("numpy", "numba", "torch")

#: The computations each kernel backend provides.
ENTRIES = ("tree_bp", "upward_pass", "posterior_sample")

_MODULES = {"numba": "hiergrammar.kernels.numba_bp", "torch": "hiergrammar.kernels.torch_bp"}


@cache
def available(backend: str) -> bool:
    """Whether ``backend`` runs here: numpy always; numba if it imports and compiles code (a
    quick probe: the kernels themselves compile on their first call, once per installation and
    message dtype, see :func:`hiergrammar.kernels.numba_bp.available`); torch if it imports.

    Parameters
    ----------
    backend : {"numpy", "numba", "torch"}

    Returns
    -------
    bool

    Examples
    --------
    >>> available("numpy")
    True
    """
    check_choice("backend", backend, BACKENDS)
    if backend == "numpy":
        return True
    try:
        module = importlib.import_module(_MODULES[backend])
    except ImportError:
        return False
    return bool(module.available())


#: Environment variable naming the CPU default backend instead of the fastest available one
#: (e.g. ``HIERGRAMMAR_BACKEND=numpy`` runs every default BP call on the reference).
BACKEND_ENV = "HIERGRAMMAR_BACKEND"


def default_backend(device: Any = None) -> str:
    """The fastest backend available for ``device``: ``"torch"`` for a non-CPU torch device,
    else ``"numba"`` when it compiles here, else ``"numpy"``; on the CPU the environment
    variable ``HIERGRAMMAR_BACKEND`` (``numpy``, ``numba`` or ``torch``) overrides the choice.

    Parameters
    ----------
    device : None, str or torch.device
        Where the results should live (None: the CPU, as numpy arrays).

    Returns
    -------
    str

    Examples
    --------
    >>> default_backend("cpu") in ("numba", "numpy")
    True
    """
    if device is not None and str(device).split(":")[0] != "cpu":
        return "torch"
    chosen = os.environ.get(BACKEND_ENV, "")
    if chosen:
        return check_choice(f"${BACKEND_ENV}", chosen, BACKENDS)
    return "numba" if available("numba") else "numpy"


def entry(backend: str, name: str) -> Callable:
    """The entry function ``name`` of a kernel backend (see the signatures above).

    Parameters
    ----------
    backend : {"numba", "torch"}
    name : {"tree_bp", "upward_pass", "posterior_sample"}

    Returns
    -------
    callable

    Raises
    ------
    InputError
        For an unknown backend or name, or ``"numpy"`` (whose functions live in
        :mod:`hiergrammar.bp` and :mod:`hiergrammar.sampling` with the grammar as an object).

    Examples
    --------
    >>> entry("torch", "posterior_sample").__name__
    'posterior_sample'
    """
    check_choice("backend", backend, BACKENDS)
    check_choice("name", name, ENTRIES)
    if backend == "numpy":
        raise InputError(
            'backend="numpy" is the reference in hiergrammar.bp and hiergrammar.sampling; '
            "entry() serves the kernel backends numba and torch"
        )
    return getattr(importlib.import_module(_MODULES[backend]), name)
