"""Symbolic derivation of the theories of the discrete processes' class transitions (sympy).

The companion of :mod:`hiergrammar.theory.discrete` (the numerics) and a continuation of
:mod:`hiergrammar.theory.symbolic` (whose steps it reuses: the annealed map ``F_K`` and its
slope ``F'(1)``). As there, nothing is typed in: every expression is assembled by sympy from
its ingredients and kept as a :class:`~hiergrammar.theory.symbolic.Step` of a
:class:`~hiergrammar.theory.symbolic.Derivation` (:func:`derivation`), which the derivation
pages render after the mean-field steps.

What is derived:

* the leaf laws of the masking and uniform processes at clean weight ``alpha`` (the uniform
  leaf's centre is right with probability ``w0``: its evidence is a calibrated posterior),
  their first moments and effective eps, and the critical ``alpha*`` of the first-moment map
  (closed form for any ``s`` in terms of ``u*``, explicit for ``s = 2``);
* the determination law of masking: the box of tuples compatible with the children's
  supports, the law of the number of wrong parents owning one of them (a generating function
  and its coefficient by inclusion-exclusion), its corners ``T(0 | N)`` and ``T(k | k)``, the
  linearisation around the all-determined state (its rate equals ``F'(1)``), and the naive
  closure that treats undetermined children as flat (its slope at ``q = 1``);
* the linearisation of the two-value closure at ``u = 1`` (rate ``F'(1)`` again), and what
  the uniform process's wrongly centred leaves do that the first moment cannot see: a wrong
  centre is adopted by a wrong parent with probability ``T(1 | 1)`` and then carries a
  likelihood ratio ``w0 / beta`` against the truth.

Examples
--------
>>> d = derivation()
>>> d["uniform_eps_eff"].expr
(1 - alpha**2)*(v - 1)/v
>>> d["determination_rate"].expr == d["two_value_rate"].expr
True
>>> round(first_moment_alpha_star("masking", 32, 8, 2), 6)     # 25/93
0.268817
"""

from __future__ import annotations

import functools

import sympy as sp
from hiergrammar.theory.symbolic import (
    Derivation,
    Sym,
    _Builder,
    _core_derivation,
    critical_point,
)

__all__ = [
    "DSym",
    "TITLE",
    "critical_point_symbolic_s2",
    "derivation",
    "first_moment_alpha_star",
    "first_moment_alpha_star_exact",
]


class DSym:
    """Symbols of this derivation (besides :class:`hiergrammar.theory.symbolic.Sym`)."""

    alpha = sp.Symbol("alpha", positive=True)  # clean weight of the process at time t
    w0 = sp.Symbol("w_0", positive=True)  # uniform: weight of the observed symbol
    beta = sp.Symbol("beta", positive=True)  # uniform: weight of every other symbol
    u_star = sp.Symbol("u^*", positive=True)  # the mean field's repulsive fixed point
    N = sp.Symbol("N", integer=True, nonnegative=True)  # non-true tuples in a box
    k = sp.Symbol("k", integer=True, nonnegative=True)  # wrong values in a child's support
    kp = sp.Symbol("k'", integer=True, nonnegative=True)  # wrong parents in the box
    j = sp.Symbol("j", integer=True, nonnegative=True)  # summation index
    z = sp.Symbol("z")  # generating-function variable
    q = sp.Symbol("q", positive=True)  # probability that a node is determined
    R = sp.Symbol("R", integer=True, nonnegative=True)  # tuples of neither wrong parent
    delta = sp.Symbol("delta", positive=True)  # 1 - u near the recovered state


TITLE = "Transitions of the discrete processes"


def _part_leaves(b: _Builder, ctx: dict) -> None:
    v, m, s = Sym.v, Sym.m, Sym.s
    D = DSym
    a = D.alpha
    b.section(
        "Discrete processes: leaf laws and the first moment",
        "The masking and uniform processes (clean weight $\\alpha$ at time $t$; $\\alpha = 1 - "
        "t$ for the linear schedule) give random leaf messages, where the epsilon-process gives "
        "one fixed message. Masking: the leaf's message is one-hot on its true symbol "
        "(probability $\\alpha$) or flat (the leaf is masked). Uniform: a leaf is resampled "
        "uniformly with probability $1-\\alpha$; its message puts $w_0$ on the observed symbol and "
        "$\\beta$ on each other. The first-moment map feeds the mean leaf belief in the true "
        "symbol, $u_0$, into the mean-field map $F$: an effective $\\epsilon = 1 - u_0$. Domain: "
        "any RHM ($v \\geq 2$, $s \\geq 2$, $1 \\leq m \\leq v^{s-1}$); a transition where the "
        "mean field has one ($F'(1) < 1$, $F'(1/v) < 1$).",
    )
    with sp.evaluate(False):
        masking_mean_raw = a * 1 + (1 - a) * (1 / v)
    masking_mean = b.add(
        "masking_leaf_mean",
        "u_0^{\\mathrm{mask}}",
        masking_mean_raw,
        "Mean leaf belief in the true symbol under masking: 1 on a kept leaf, $1/v$ on a "
        "masked one.",
        simplify=sp.factor,
    )
    b.add(
        "masking_eps_eff",
        "\\epsilon_{\\mathrm{eff}}^{\\mathrm{mask}}",
        1 - masking_mean,
        "Its effective $\\epsilon$: that of the epsilon-process at the same $\\alpha$ "
        "(hiergrammar.processes.EpsProcess, $\\epsilon = (1-\\alpha)(v-1)/v$), so the "
        "first-moment map cannot tell masking from the epsilon-process.",
        claim=(v - 1) * (1 - a) / v,
    )
    beta = b.add(
        "uniform_beta",
        "\\beta",
        (1 - a) / v,
        "Uniform: the likelihood of observing $y$ given the symbol $b$ is $\\alpha [b = y] + "
        "(1-\\alpha)/v$; normalised over $b$ (it sums to one), each $b \\neq y$ gets this.",
        simplify=None,
    )
    w0 = b.add(
        "uniform_w0",
        "w_0",
        a + beta,
        "and the observed symbol gets $w_0$.",
        simplify=sp.expand,
    )
    with sp.evaluate(False):
        posterior_raw = (w0 * (1 / v)) / (w0 * (1 / v) + (v - 1) * (beta * (1 / v)))
    b.add(
        "uniform_centre_correct",
        "P(x = y \\mid y)",
        posterior_raw,
        "With the uniform prior over symbols, Bayes' rule gives the probability that the "
        "observed symbol is the true one: $w_0$ again. The leaf message is a calibrated "
        "posterior: its centre is right with probability $w_0$, wrong (one of the $v-1$ other "
        "symbols, uniformly) otherwise.",
        claim=w0,
    )
    with sp.evaluate(False):
        uniform_mean_raw = D.w0 * D.w0 + (1 - D.w0) * D.beta
    b.add(
        "uniform_leaf_mean_raw",
        "u_0^{\\mathrm{unif}}",
        uniform_mean_raw,
        "Mean belief in the true symbol: $w_0$ when the centre is right, $\\beta$ otherwise.",
        simplify=None,
    )
    uniform_mean = b.add(
        "uniform_leaf_mean",
        "u_0^{\\mathrm{unif}}",
        uniform_mean_raw.subs({D.w0: w0, D.beta: beta}),
        "Substitute $w_0$ and $\\beta$.",
        claim=1 - (v - 1) * (1 - a**2) / v,
    )
    b.add(
        "uniform_eps_eff",
        "\\epsilon_{\\mathrm{eff}}^{\\mathrm{unif}}",
        1 - uniform_mean,
        "Its effective $\\epsilon$: the masking one with $\\alpha^2$ for $\\alpha$.",
        claim=(v - 1) * (1 - a**2) / v,
    )
    (alpha_mask,) = sp.solve(sp.Eq(masking_mean, D.u_star), a)
    alpha_mask = b.add(
        "alpha_star_first_moment_masking",
        "\\alpha^*_{\\mathrm{fm, mask}}",
        alpha_mask,
        "The first-moment map crosses the repulsive fixed point $u^*$ of $F$ "
        "(hiergrammar.theory.symbolic) when $u_0 = u^*$: the critical clean weight of "
        "masking (and of the epsilon-process) in the first-moment approximation.",
        simplify=sp.factor,
    )
    roots = [
        r
        for r in sp.solve(sp.Eq(uniform_mean, D.u_star), a)
        if r.subs({v: 32, D.u_star: sp.Rational(1, 2)}) > 0
    ]
    (alpha_unif,) = roots
    b.add(
        "alpha_star_first_moment_uniform",
        "\\alpha^*_{\\mathrm{fm, unif}}",
        alpha_unif,
        "Likewise for the uniform process (the positive root): the square root of the "
        "masking value.",
        claim=sp.sqrt(alpha_mask),
    )
    u2 = critical_point_symbolic_s2()
    b.add(
        "alpha_star_first_moment_masking_s2",
        "\\alpha^*_{\\mathrm{fm, mask}}\\big|_{s=2}",
        alpha_mask.subs(D.u_star, u2),
        "For $s = 2$, with $u^* = (m-1)/(v-m)$ (step u_star_s2); $t^* = 1 - \\alpha^*$ for "
        "the linear schedule ($25/93$, $t^* = 68/93 \\approx 0.731$ at $v = 32$, $m = 8$, far "
        "above the measured masking transition near 0.27).",
        simplify=sp.factor,
    )
    ctx["alpha_mask"] = alpha_mask
    ctx["alpha_unif"] = alpha_unif
    ctx["beta"], ctx["w0"] = beta, w0
    _ = (m, s)


@functools.lru_cache(maxsize=1)
def critical_point_symbolic_s2() -> sp.Expr:
    """``u*`` for ``s = 2``: the fixed point of the derived ``F`` other than ``1`` and ``1/v``
    (the mean-field derivation's step ``u_star_s2``, re-solved from the fast core).

    Returns
    -------
    sympy.Expr
        In ``v`` and ``m``.

    Examples
    --------
    >>> critical_point_symbolic_s2()
    (m - 1)/(-m + v)
    """
    u, v = Sym.u, Sym.v
    F_u = _core_derivation()["F_of_u"].expr.subs(Sym.s, 2)
    roots = sp.solve(sp.numer(sp.together(F_u - u)), u)
    (root,) = [r for r in roots if sp.simplify(r - 1) != 0 and sp.simplify(r - 1 / v) != 0]
    return sp.factor(root)


def _part_determination(b: _Builder, ctx: dict) -> None:
    v, m, s, K = Sym.v, Sym.m, Sym.s, Sym.K
    D = DSym
    N, kp, j, z, R = D.N, D.kp, D.j, D.z, D.R
    tuples = v**s
    b.section(
        "Masking: the support of the upward messages",
        "Under masking every leaf evidence is 0/1 up to a constant, so BP's upward message at a "
        "node vanishes exactly on the values that cannot produce the kept leaves below it. Its "
        "support is the true value and $k$ wrong ones; the node is *determined* when $k = 0$ "
        "(its message is one-hot on the truth). A parent's support is the set of values with a "
        "rule inside the box $S_1 \\times \\dots \\times S_s$ of its children's supports. "
        "Given the true symbols, the children's subtrees are independent (fresh rules per "
        "factor, as in population dynamics), and the rule draw is uniform given that the true "
        "parent owns the true tuple, so the parent's $k'$ depends on the children only through "
        "the size of the box: a closed recursion for the law of $k$, exact on the tree "
        "ensemble (hiergrammar.theory.discrete.determination_profile). Leaves: $k = 0$ with "
        "probability $\\alpha$, $k = v - 1$ otherwise. Domain: any RHM with $v^s$ small enough "
        "to tabulate the kernel; $K = n_c$ at the root.",
    )
    k = sp.IndexedBase("k")
    i = sp.Symbol("i", integer=True, positive=True)
    b.add(
        "box_size",
        "N",
        sp.Product(1 + k[i], (i, 1, s)) - 1,
        "Tuples of the box other than the true one, for children with $k_1, \\dots, k_s$ "
        "wrong values in their supports. With one masked child and the others determined, "
        "$N = v - 1$.",
        simplify=None,
    )
    b.add(
        "rest_tuples",
        "R",
        tuples - 1 - (K - 1) * m,
        "Non-true tuples owned by no wrong parent: the true parent's other $m - 1$ and the "
        "unused ones.",
        simplify=sp.expand,
    )
    gf = ((1 + z) ** m - 1) ** kp * (1 + z) ** R
    b.add(
        "kernel_generating_function",
        "\\#\\{\\text{boxes}: k' \\text{ given wrong parents hit}\\}",
        gf,
        "Fix the rules and count the $N$-subsets of the $v^s - 1$ non-true tuples that meet "
        "exactly $k'$ given wrong parents: each hit parent contributes a non-empty subset of "
        "its $m$ tuples, the $R$ others any subset; the count is the coefficient of $z^N$. By "
        "symmetry, fixing the box and drawing the rules gives the same law.",
        simplify=None,
    )
    expanded = sp.Sum((-1) ** (kp - j) * sp.binomial(kp, j) * sp.binomial(j * m + R, N), (j, 0, kp))
    coefficient = b.add(
        "kernel_coefficient",
        "[z^N]\\,((1+z)^m - 1)^{k'} (1+z)^R",
        expanded,
        "Binomial theorem on $((1+z)^m - 1)^{k'}$ (inclusion-exclusion over the hit parents); "
        "the tests compare it with sympy's polynomial coefficients.",
        simplify=None,
    )
    kernel = b.add(
        "kernel",
        "T(k' \\mid N)",
        sp.binomial(K - 1, kp) * coefficient / sp.binomial(tuples - 1, N),
        "The law of the number of wrong parents owning a tuple of a box of $N$ non-true "
        "tuples: choose the $k'$ parents, count, divide by the number of $N$-subsets. "
        "Numerically it is computed by adding the box's tuples one at a time (a stable "
        "recursion; this alternating sum cancels badly in floating point).",
        simplify=None,
    )
    subs_R = {R: tuples - 1 - (K - 1) * m}
    none_hit = b.add(
        "kernel_none",
        "T(0 \\mid N)",
        kernel.subs(kp, 0).doit().subs(subs_R),
        "No wrong parent in the box: the parent is determined.",
        simplify=sp.simplify,
    )
    one_one = b.add(
        "kernel_one_tuple",
        "T(1 \\mid 1)",
        kernel.subs({kp: 1, N: 1}).doit().subs(subs_R),
        "A single non-true tuple belongs to a wrong parent with the hypergeometric probability "
        "of the mean-field derivation, $(K-1) \\cdot m/(v^s-1)$.",
        simplify=sp.factor,
    )
    diag = sp.Product((K - 1 - j) * m / (tuples - 1 - j), (j, 0, D.k - 1))
    b.add(
        "kernel_diagonal",
        "T(k \\mid k)",
        diag,
        "$k$ tuples hit $k$ distinct wrong parents: adding the tuples one by one, the $j$-th "
        "must fall in one of the $K - j$ parents not hit yet. Each factor is at most the first "
        "(as $K \\leq v^s$), so $T(k \\mid k) \\leq T(1 \\mid 1)^k$.",
        simplify=None,
    )
    rate = b.add(
        "determination_rate",
        "s\\,T(1 \\mid 1)\\big|_{K=v}",
        s * one_one.subs(K, v),
        "Near the all-determined state an undetermined parent needs, to first order, exactly "
        "one undetermined child (probability $s(1-q)$) and $k' \\leq k$: the law of $k$ on "
        "undetermined nodes evolves by the triangular matrix $s\\,T(k' \\mid k)$, whose "
        "eigenvalues are its diagonal $s\\,T(k \\mid k)$; the largest is this one.",
        simplify=sp.factor,
    )
    b.add(
        "determination_rate_is_slope",
        "s\\,T(1 \\mid 1) - F'(1)",
        rate - _core_derivation()["F_prime_at_1"].expr,
        "It equals the mean field's $F'(1)$: the determined state is attractive exactly when "
        "the mean field's noiseless fixed point is, $s m (v-1) < v^s - 1$.",
        simplify=sp.simplify,
    )
    q = D.q
    one_flat = b.add(
        "naive_closure_one_flat",
        "T(0 \\mid v - 1)",
        none_hit.subs(N, v - 1).subs(K, v),
        "A closure on $q = P(\\text{determined})$ alone must say what an undetermined child's "
        "support is. Taking it flat (all $v$ values, as for a masked leaf), a parent with "
        "one undetermined child is determined with this probability (no wrong parent among "
        "the $v - 1$ tuples of the box)...",
        simplify=None,
    )
    naive = sp.Sum(
        sp.binomial(s, j) * q ** (s - j) * (1 - q) ** j * none_hit.subs(N, v**j - 1).subs(K, v),
        (j, 0, s),
    )
    b.add(
        "naive_closure",
        "q'",
        naive,
        "...and with $j$ flat children, of $T(0 \\mid v^j - 1)$: the naive recursion.",
        simplify=None,
    )
    naive_s2 = naive.subs(s, 2).doit()
    b.add(
        "naive_closure_slope_s2",
        "\\frac{dq'}{dq}\\Big|_{q=1,\\,s=2}",
        sp.diff(naive_s2, q).subs(q, 1),
        "Its slope at $q = 1$, $s(1 - T(0 \\mid v-1))$ (here $s = 2$): about 2 at $v = 32$, "
        "$m = 8$, where $T(0 \\mid 31) \\approx 2 \\cdot 10^{-4}$. The naive closure predicts "
        "that no masking level keeps deep roots determined, which exact BP refutes (the "
        "determined fraction grows with $L$ at $t = 0.2$): undetermined nodes are rarely "
        "flat, their supports shrink by the factor $\\approx f$ per level, and the exact "
        "recursion keeps the whole law of $k$.",
        simplify=sp.simplify,
    )
    ctx["one_one"] = one_one
    _ = one_flat


def _part_two_value(b: _Builder, ctx: dict) -> None:
    v, m, s, K, x = Sym.v, Sym.m, Sym.s, Sym.K, Sym.x
    D = DSym
    b.section(
        "Two-value closure and what the uniform leaves' centres add",
        "The two-value closure keeps the mean field's message shape ($u$ on the true symbol, "
        "$(1-u)/(v-1)$ on each other) but lets $u$ be random: the leaves keep their law "
        "(exact for masking, whose messages are two-valued), and a parent's belief is the "
        "annealed map $F_K$ of its children's product $x = \\prod_i u_i$ (rules averaged per "
        "factor, children's fluctuations kept). Its deep-tree threshold is numerical "
        "(hiergrammar.theory.discrete.two_value_critical_alpha). Domain: as for the mean field.",
    )
    F_K = _core_derivation()["F_K"].expr
    slope_x = b.add(
        "two_value_slope_x",
        "\\frac{dF_K}{dx}\\Big|_{x=1}",
        sp.diff(F_K, x).subs(x, 1),
        "Near $u = 1$, $x \\approx 1 - \\sum_i \\delta_i$ with $\\delta_i = 1 - u_i$, and "
        "$\\delta' \\approx F_K'(1) \\sum_i \\delta_i$.",
        simplify=sp.factor,
    )
    b.add(
        "two_value_slope_is_kernel",
        "F_K'(1) - T(1 \\mid 1)",
        slope_x - ctx["one_one"],
        "The same number as the determination kernel's $T(1 \\mid 1)$.",
        simplify=sp.simplify,
    )
    b.add(
        "two_value_rate",
        "s\\,F_v'(1)",
        s * slope_x.subs(K, v),
        "So the mean deviation $\\langle \\delta \\rangle$ contracts by $F'(1)$ per level: in "
        "the two-value closure as in the determination law and the mean field, the recovered "
        "state is attractive iff $F'(1) < 1$; the three differ only in how far its basin "
        "reaches (the nonlinear part, computed numerically).",
        simplify=sp.factor,
    )
    beta, w0 = ctx["beta"], ctx["w0"]
    b.add(
        "uniform_centre_ratio",
        "w_0 / \\beta",
        w0 / beta,
        "A uniform leaf's message favours its centre over every other symbol by this ratio, "
        "right or wrong. At the same effective $\\epsilon$ the epsilon-process favours the "
        "true symbol at every leaf; here a fraction $1 - w_0$ of the leaves favour a wrong one "
        "as strongly.",
        claim=(1 + (v - 1) * D.alpha) / (1 - D.alpha),
    )
    adopted = b.add(
        "uniform_wrong_centre_adopted",
        "P(\\text{wrong centre adopted})",
        ctx["one_one"],
        "With one wrongly centred child and the others right, the tuple of centres is a "
        "non-true tuple; it is a rule of a wrong parent with probability $T(1 \\mid 1)$, and "
        "that parent then outweighs the true one by $w_0/\\beta$: the error moves up, "
        "confidently. Otherwise (probability $1 - T(1 \\mid 1)$) the wrong child acts as a "
        "masked one. The two-value closure (and the first moment) spread the wrong centre's "
        "weight over all $v - 1$ wrong symbols, so they miss the adopted errors.",
        simplify=None,
    )
    b.add(
        "uniform_wrong_centre_adopted_large_v",
        "\\lim_{v \\to \\infty} P(\\text{wrong centre adopted})\\big|_{K=v}",
        sp.limit(adopted.subs(K, v).subs(m, Sym.f * v ** (s - 1)).subs(s, 2), v, sp.oo),
        "At large $v$ with $f = m / v^{s-1}$ fixed (here $s = 2$): the fraction of tuples "
        "the rules use.",
        simplify=None,
    )
    _ = D


_PARTS = (_part_leaves, _part_determination, _part_two_value)


@functools.lru_cache(maxsize=1)
def derivation() -> Derivation:
    """The derivation of the discrete processes' theories (built once, then cached).

    Returns
    -------
    hiergrammar.theory.symbolic.Derivation
        Its steps, named and grouped in sections, as the mean-field derivation's.

    Examples
    --------
    >>> [s.title for s in derivation().sections][0]
    'Discrete processes: leaf laws and the first moment'
    """
    b = _Builder()
    ctx: dict = {}
    for part in _PARTS:
        part(b, ctx)
    return Derivation(title=TITLE, sections=tuple(b.sections), steps=tuple(b.steps))


@functools.lru_cache(maxsize=1)
def _leaves_derivation() -> Derivation:
    """The first section alone (what the first-moment thresholds need; the same code as the
    start of :func:`derivation`, without the slower determination steps)."""
    b = _Builder()
    _part_leaves(b, {})
    return Derivation(title=TITLE, sections=tuple(b.sections), steps=tuple(b.steps))


def first_moment_alpha_star(process: str, v: int, m: int, s: int) -> float | None:
    """``alpha*`` of the first-moment map for concrete ``(v, m, s)``, evaluated from the
    derived steps at the exact ``u*`` of :func:`hiergrammar.theory.symbolic.critical_point`
    (``u* = 1`` when any noise destroys the class, ``1/v`` when none does: then ``alpha* = 1``
    or ``0``).

    Parameters
    ----------
    process : ``"masking"``, ``"uniform"`` or ``"eps"``.
    v, m, s : the RHM.

    Returns
    -------
    float or None

    Raises
    ------
    InputError
        On parameters out of range (from :func:`hiergrammar.theory.symbolic.critical_point`).

    Examples
    --------
    >>> first_moment_alpha_star("eps", 32, 8, 2) == first_moment_alpha_star("masking", 32, 8, 2)
    True
    """
    exact = first_moment_alpha_star_exact(process, v, m, s)
    return None if exact is None else float(sp.N(exact, 30))


def first_moment_alpha_star_exact(process: str, v: int, m: int, s: int) -> sp.Expr | None:
    """The exact (sympy) value behind :func:`first_moment_alpha_star`.

    Parameters
    ----------
    process, v, m, s : as for :func:`first_moment_alpha_star`.

    Returns
    -------
    sympy.Expr or None
        A rational, radicals, or an algebraic number (as ``u*`` is).

    Raises
    ------
    InputError
        On parameters out of range.

    Examples
    --------
    >>> first_moment_alpha_star_exact("uniform", 32, 8, 2)
    5*sqrt(93)/93
    """
    point = critical_point(v, m, s)
    name = "alpha_star_first_moment_" + ("uniform" if process == "uniform" else "masking")
    expr = _leaves_derivation()[name].expr
    value = expr.subs({Sym.v: v, DSym.u_star: point.u_star})
    return sp.nsimplify(value) if value.is_Float else sp.radsimp(value)
