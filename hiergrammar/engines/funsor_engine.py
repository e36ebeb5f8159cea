"""Engine ``funsor``: exact sum-product with named tensors (funsor, numpy backend, log space).

The factors become ``funsor.Tensor`` objects of log potentials; ``sum_product`` builds the
elimination lazily, funsor's optimizer picks the order (opt_einsum), and one forward-backward
pass (``funsor.adjoint.forward_backward``) gives ``log Z`` and every factor's outside message,
from which each variable's marginal follows. Evidence of probability zero gives ``log Z =
-inf``.

Isolation: funsor keeps its backend in a global; the engine switches to numpy for its run and
back afterwards (a process already on funsor's jax backend cannot go back to numpy: the engine
is then skipped). Known defect ``funsor-jax-imported``: once any module has imported jax,
funsor's lazy evaluation raises ``TypeError``; the workaround (on unless ``workarounds=False``)
sets funsor's "jax compiled function" type to the empty tuple for the run, and restores it.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from hiergrammar.engines import EngineInconsistent, EngineOutput

__all__ = ["numpy_backend", "run_funsor"]


@contextlib.contextmanager
def numpy_backend(workarounds: bool = True) -> Iterator[None]:
    """Run funsor on its numpy backend inside the block; restore its state afterwards."""
    import funsor
    import funsor.util

    from hiergrammar.crosscheck import EngineSkipped

    previous = funsor.get_backend()
    if previous == "jax":
        raise EngineSkipped("funsor runs on its jax backend in this process; it cannot go back")
    saved = funsor.util._JAX_COMPILED_FUNCTION_TYPE
    funsor.set_backend("numpy")
    if workarounds and saved is None:
        funsor.util._JAX_COMPILED_FUNCTION_TYPE = ()  # isinstance(x, ()) is always False
    try:
        yield
    finally:
        funsor.util._JAX_COMPILED_FUNCTION_TYPE = saved
        funsor.set_backend(previous)


def run_funsor(instance: Any, workarounds: bool = True) -> EngineOutput:
    """Marginals and log Z (see the module docstring)."""
    model = instance.model
    with numpy_backend(workarounds):
        import funsor
        import funsor.interpretations
        import funsor.optimizer
        from funsor import Bint, Tensor, ops
        from funsor.adjoint import forward_backward
        from funsor.sum_product import sum_product

        name = [f"x{k}" for k in range(model.n_variables)]
        with np.errstate(divide="ignore"):
            factors = [
                Tensor(
                    np.log(np.asarray(t, dtype=np.float64)),
                    OrderedDict((name[i], Bint[int(model.cards[i])]) for i in scope),
                )
                for scope, t in zip(model.scopes, model.tables, strict=True)
            ]
        everything = frozenset(name)
        with funsor.interpretations.lazy:  # eager evaluation would build the whole joint
            expr = sum_product(
                ops.logaddexp, ops.add, factors, eliminate=everything, plates=frozenset()
            )
            expr = funsor.optimizer.apply_optimizer(expr)
        log_z, outside = forward_backward(ops.logaddexp, ops.add, expr)
        log_z = float(np.asarray(log_z.data))
        if log_z == -np.inf:
            raise EngineInconsistent("funsor's log Z is -inf")
        marginals: list[np.ndarray | None] = [None] * model.n_variables
        for f in factors:
            joint = f + outside[f] - log_z
            for var in f.inputs:
                k = int(var[1:])
                if marginals[k] is None:
                    m = joint.reduce(ops.logaddexp, frozenset(f.inputs) - {var})
                    marginals[k] = np.exp(np.asarray(m.data, dtype=np.float64))
    for k, mg in enumerate(marginals):
        if mg is None:  # in no factor: uniform
            marginals[k] = np.ones(int(model.cards[k]))
    return EngineOutput(marginals, log_z)  # type: ignore[arg-type]
