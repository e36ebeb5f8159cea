"""The mean-field theory of belief propagation on the RHM: the numeric maps
(:mod:`hiergrammar.theory.meanfield`), their symbolic derivation
(:mod:`hiergrammar.theory.symbolic`, rendered by :mod:`hiergrammar.theory.latex`) and the check
against exact BP (:mod:`hiergrammar.theory.validate_meanfield`)."""

__all__: list[str] = []
