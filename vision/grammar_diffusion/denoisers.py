"""Denoisers with one interface: ``denoiser(x_t, t)`` -> per-leaf logits of ``P(x_0,i | x_t)``.

Both kinds take the observation ``x_t`` as a torch tensor in the family's network-input layout
(int64 tokens ``(n, d)``, MASK ``= v`` for the masking family; float vectors ``(n, d, v)`` for
the Gaussian family) and the process times ``t`` ``(n,)``, and return float32 logits
``(n, d, v)`` on the device of ``x_t``; ``softmax`` of a leaf's logits is the denoiser's
``p(x_0,i | x_t)``.

* :class:`LearnedDenoiser` wraps a trained network (it feeds it ``tau = t / t_max``). For the
  masking family it copies the kept leaves (carry-over unmasking, as MDLM does): a kept leaf's
  posterior is exactly its symbol, so learned and exact models differ on masked leaves only.
* :class:`ExactDenoiser` computes the Bayes-optimal denoiser: the process's exact leaf
  likelihood ``P(x_t,i | x_0,i)`` (``process.leaf_likelihood``) enters exact tree belief
  propagation on the grammar, and the logits are the logs of the level-0 marginals. It never
  gives the true symbol probability 0, so its denoising loss is finite and, in expectation over
  the data, no learned model's is lower. Impossible symbols get ``-inf``. An observation no
  string of the grammar produces (off the process only) gets its normalised leaf likelihood,
  counted in ``impossible`` (``strict=True`` raises instead).

:class:`~hiergrammar.vision.grammar_diffusion.sampler` runs either kind in the same reverse
process.

Examples
--------
>>> import numpy as np, torch
>>> from hiergrammar import RHM
>>> from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
>>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
>>> exact = ExactDenoiser(rhm, MaskedDiffusion(v=4))
>>> x = rhm.sample(1, seed=1).x
>>> x_t = torch.as_tensor(np.where([[True, False, True, True]], 4, x))   # mask three leaves
>>> p = exact(x_t, torch.tensor([0.5])).softmax(-1)
>>> p.shape, float(p[0, 1, x[0, 1]])                   # the kept leaf is certain
(torch.Size([1, 4, 4]), 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hiergrammar.vision.grammar_diffusion.diffusions import Diffusion, MaskedDiffusion
from torch import nn

from hiergrammar.validation import InputError, check_choice, check_int

__all__ = ["BP_BACKENDS", "Denoiser", "ExactDenoiser", "LearnedDenoiser"]

#: Backends of :class:`ExactDenoiser`: ``"auto"``, the numpy reference
#: (:func:`hiergrammar.bp.tree_bp`, grammars with equally likely rules), and the kernels of
#: :mod:`hiergrammar.kernels` (any rule probabilities; ``"torch"`` runs on any device).
BP_BACKENDS = ("auto", "numpy", "numba", "torch")


class Denoiser:
    """The interface: ``diffusion``, ``device``, and ``__call__(x_t, t) -> logits (n, d, v)``."""

    diffusion: Diffusion
    device: torch.device

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, x_t: torch.Tensor, t: Any) -> torch.Tensor:
        n = x_t.shape[0]
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise InputError(
                f"t must be a scalar or have shape (n,) = ({n},), got {tuple(t.shape)}"
            )
        return t


def _carry_over(logits: torch.Tensor, x_t: torch.Tensor, mask: int) -> torch.Tensor:
    """Kept leaves of a masked string: logits 0 on the kept symbol, ``-inf`` elsewhere."""
    kept = x_t != mask
    if not bool(kept.any()):
        return logits
    one_hot = torch.full_like(logits, float("-inf"))
    one_hot.scatter_(-1, torch.where(kept, x_t, 0).long()[..., None], 0.0)
    return torch.where(kept[..., None], one_hot, logits)


class LearnedDenoiser(Denoiser):
    """A trained network as a denoiser of ``diffusion``.

    Parameters
    ----------
    network : torch.nn.Module
        ``network(x, tau) -> (n, d, v)`` logits
        (:mod:`~hiergrammar.vision.grammar_diffusion.models`).
    diffusion : Diffusion
        The family it was trained on.
    batch_size : int
        Largest batch per forward pass.

    Examples
    --------
    >>> from hiergrammar.vision.grammar_diffusion.models import TreeUNet
    >>> from hiergrammar.vision.grammar_diffusion.diffusions import MaskedDiffusion
    >>> net = TreeUNet(v=3, s=2, L=2, input_kind="masked", width=8)
    >>> den = LearnedDenoiser(net, MaskedDiffusion(v=3))
    >>> logits = den(torch.tensor([[0, 3, 3, 2]]), torch.tensor([0.5]))
    >>> logits[0, 0].tolist()                          # a kept leaf is copied
    [0.0, -inf, -inf]
    """

    def __init__(self, network: nn.Module, diffusion: Diffusion, batch_size: int = 4096):
        if not isinstance(network, nn.Module):
            raise InputError(f"network must be a torch module, got {type(network).__name__}")
        if not isinstance(diffusion, Diffusion):
            raise InputError(f"diffusion must be a Diffusion, got {type(diffusion).__name__}")
        kind = getattr(network, "input_kind", diffusion.input_kind)
        if kind != diffusion.input_kind:
            raise InputError(
                f"the network reads {kind!r} inputs but the {diffusion.name} family gives "
                f"{diffusion.input_kind!r}"
            )
        self.network, self.diffusion = network, diffusion
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.device = next(network.parameters()).device

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = self._check(x_t, t)
        was_training = self.network.training
        self.network.eval()
        try:
            tau = self.diffusion.tau(t)
            parts = []
            for lo in range(0, x_t.shape[0], self.batch_size):
                x = x_t[lo : lo + self.batch_size].to(self.device)
                parts.append(self.network(x, tau[lo : lo + self.batch_size].to(self.device)))
            logits = torch.cat(parts).float() if parts else self._empty(x_t)
        finally:
            self.network.train(was_training)
        if isinstance(self.diffusion, MaskedDiffusion):
            logits = _carry_over(logits, x_t.to(logits.device), self.diffusion.mask)
        return logits.to(x_t.device)

    def _empty(self, x_t: torch.Tensor) -> torch.Tensor:
        return torch.zeros((0, x_t.shape[1], self.diffusion.v), device=self.device)


def _uniform_rules(grammar: Any) -> bool:
    return all(
        np.allclose(p, 1.0 / p.shape[1], rtol=0, atol=1e-12) for p in grammar.rule_probs.values()
    )


class ExactDenoiser(Denoiser):
    """The Bayes-optimal denoiser of ``diffusion`` on ``grammar``: BP marginals of the leaves.

    Parameters
    ----------
    grammar : Grammar
        The data's grammar (``grammar.v == diffusion.v``).
    diffusion : Diffusion
        The family; its process gives the exact leaf likelihood of ``x_t``.
    backend : {"auto", "numpy", "numba", "torch"}
        ``"auto"``: the numpy reference when every rule of a symbol is equally likely (it
        reads the rules only), else numba (or torch without numba). ``"torch"`` computes on
        ``device`` (CUDA when given), the others on the CPU.
    dtype : np.float32 or np.float64
        BP message precision.
    device : str or torch.device, optional
        Where the ``"torch"`` backend computes (default: the CPU).
    strict : bool
        Raise :class:`~hiergrammar.ZeroEvidenceError` on an observation no string of the
        grammar produces, instead of answering with its normalised leaf likelihood (see
        :meth:`leaf_marginals`).

    Raises
    ------
    InputError
        For a vocabulary mismatch, an unknown backend, or the numpy backend on a grammar with
        unequal rule probabilities.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.vision.grammar_diffusion.diffusions import UniformDiffusion
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> exact = ExactDenoiser(rhm, UniformDiffusion(v=4))
    >>> x_t = torch.as_tensor(rhm.sample(3, seed=1).x)
    >>> p = exact(x_t, torch.full((3,), 1.0)).softmax(-1)   # alpha = 0: the prior marginals
    >>> bool(torch.allclose(p[0], p[1])), bool(torch.allclose(p.sum(-1), torch.ones(3, 4)))
    (True, True)
    """

    def __init__(
        self,
        grammar: Any,
        diffusion: Diffusion,
        *,
        backend: str = "auto",
        dtype: type = np.float64,
        device: Any = None,
        strict: bool = False,
    ):
        if not isinstance(diffusion, Diffusion):
            raise InputError(f"diffusion must be a Diffusion, got {type(diffusion).__name__}")
        if grammar.v != diffusion.v:
            raise InputError(
                f"diffusion.v={diffusion.v} violates diffusion.v == grammar.v = {grammar.v}"
            )
        backend = check_choice("backend", backend, BP_BACKENDS)
        uniform = _uniform_rules(grammar)
        if backend == "auto":
            from hiergrammar.kernels import available

            backend = "numpy" if uniform else ("numba" if available("numba") else "torch")
        if backend == "numpy" and not uniform:
            raise InputError(
                "backend='numpy' reads the rules only and needs equally likely rules per symbol; "
                "this grammar has other rule probabilities: use backend='numba' or 'torch'"
            )
        if dtype not in (np.float32, np.float64):
            raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        self.grammar, self.diffusion, self.backend, self.dtype = grammar, diffusion, backend, dtype
        self.strict = bool(strict)
        #: Observations answered without a posterior (no string of the grammar produces them).
        self.impossible = 0
        if backend == "torch":
            from hiergrammar.vision.device import resolve_device

            self.device = resolve_device("cpu" if device is None else device)
        else:
            self.device = torch.device("cpu")

    def _bp(self, evidence: np.ndarray) -> torch.Tensor:
        """Level-0 marginals of leaf evidence ``(n, d, v)`` as float64 on :attr:`device`."""
        g = self.grammar
        if self.backend == "numpy":
            from hiergrammar.bp import tree_bp

            marginals = tree_bp(g, evidence, root_prior=g.root_prior, dtype=self.dtype).marginals[0]
            return torch.as_tensor(marginals, dtype=torch.float64)
        from hiergrammar.kernels import entry

        kwargs = {"device": self.device} if self.backend == "torch" else {}
        result = entry(self.backend, "tree_bp")(
            g.rules,
            g.rule_probs,
            g.cards,
            evidence,
            g.root_prior,
            None,
            self.dtype,
            levels=[0],
            messages=False,
            **kwargs,
        )
        return torch.as_tensor(result.marginals[0], dtype=torch.float64, device=self.device)

    def leaf_marginals(self, observation: np.ndarray, t: np.ndarray) -> torch.Tensor:
        """``P(x_0,i = b | x_t)``, ``(n, d, v)``, for a numpy observation and times ``(n,)``.

        An observation that no string of the grammar can produce (possible only off the
        process: a learned model's string, or leaves revealed together by a coarse masked
        sampler) has no posterior; its rows are the normalised leaf likelihood (the posterior
        under a uniform prior over all strings), and :attr:`impossible` counts them (with
        ``strict=True`` a :class:`~hiergrammar.ZeroEvidenceError` is raised instead).

        Parameters
        ----------
        observation : numpy.ndarray
            ``(n, d)`` ints, or ``(n, d, v)`` floats for the Gaussian family.
        t : numpy.ndarray
            ``(n,)`` process times.

        Returns
        -------
        torch.Tensor
            float64 ``(n, d, v)`` on :attr:`device`; rows sum to 1.

        Raises
        ------
        ZeroEvidenceError
            With ``strict=True``, naming the observations no string of the grammar produces.
        """
        from hiergrammar.validation import ZeroEvidenceError

        evidence = self.diffusion.process.leaf_likelihood(observation, t, dtype=self.dtype)
        fallback = evidence.astype(np.float64) / evidence.sum(axis=-1, keepdims=True)
        out = torch.as_tensor(fallback, device=self.device)
        alive = np.arange(evidence.shape[0])
        while alive.size:
            try:
                out[torch.as_tensor(alive, device=self.device)] = self._bp(evidence[alive])
                break
            except ZeroEvidenceError as err:
                if self.strict:
                    raise ZeroEvidenceError(alive[np.asarray(err.samples)], err.reason) from None
                bad = alive[np.asarray(err.samples, dtype=np.int64)]
                self.impossible += int(bad.size)
                alive = np.setdiff1d(alive, bad)
        return out

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = self._check(x_t, t)
        if x_t.shape[0] == 0:
            return torch.zeros((0, x_t.shape[1], self.diffusion.v), device=x_t.device)
        observation = x_t.detach().cpu().numpy()
        marginals = self.leaf_marginals(observation, t.cpu().numpy())
        return torch.log(marginals).float().to(x_t.device)
