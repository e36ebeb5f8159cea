"""Symbolic derivation of the mean-field (annealed) theory of BP on the RHM (sympy only).

Nothing here is typed in from ``docs/model.md`` §6: every map is *built* by sympy from the
ingredients of the annealed average, step by step, and every step is kept as a named,
inspectable :class:`Step` of a :class:`Derivation` (so the docs and the tests walk the same
object). The ingredients are

* the mean-field messages: the true symbol of a node has belief ``u``, each of the ``v - 1``
  others ``(1 - u)/(v - 1)``; a parent's downward belief is ``d`` on the true value and
  ``(1 - d)/(K - 1)`` on each of the ``K - 1`` others (``K``: the parent's cardinality,
  ``v`` inside the tree, ``n_classes`` at the root);
* the weight of a tuple of children, the product of its coordinates' messages; the true tuple
  has weight ``x = u**s`` and, because every coordinate's message sums to 1, all ``v**s`` tuple
  weights sum to 1;
* the random rules: a level's ``K m`` rules are ``K m`` distinct tuples drawn without
  replacement from the ``v**s``. Given that the true tuple is one of the true parent's, any
  other tuple is one of the true parent's ``m - 1`` other rules, or one of another parent's
  ``m`` rules, with the hypergeometric probabilities that :mod:`sympy.stats` computes.

From these sympy assembles the annealed (ratio of means) upward map ``F``, downward map ``G``
and marginal ``p``, simplifies and normalises them, and derives the fixed points ``F(1) = 1``,
``F(1/v) = 1/v``, the slopes ``F'(1)`` and ``F'(1/v)``, the polynomial whose root is the
repulsive fixed point ``u*``, the critical conditions, the large-``v`` limits, and ``u*`` and
``eps* = 1 - u*`` in closed form for ``s = 2`` and ``s = 3``; then the finite-depth scaling:
the slope ``lambda = F'(u*)`` at the repulsive fixed point (closed form for ``s = 2``, large-``v``
limit for any ``s``), the curvature ``F''(u*)``, Koenigs' linearising coordinate, and from them
the width of the class transition (``~ lambda**-L``) and the drift of its crossing points
towards ``eps*``. :func:`reference_checks` compares the results with the closed forms of
``docs/model.md`` (a check, never a source).

:func:`critical_point` gives ``eps*`` exactly for concrete ``(v, m, s)``: a rational for
``s = 2``, radicals for ``s = 3``, an exact algebraic number (:class:`sympy.CRootOf`) up to
``s = 16``, and a float root beyond; with a transition also ``F'(u*)``. Every float is evaluated
from its own exact value (``u*`` at ``v = 10**12`` is ``1e-12``, not ``1 - float(eps*)``).
:func:`scaling_constants` adds ``F''(u*)`` and Koenigs' coefficient.

Examples
--------
>>> cp = critical_point(v=32, m=8, s=2)
>>> cp.eps_star, round(cp.eps_star_float, 4), cp.fprime_1, cp.transition
(17/24, 0.7083, 16/33, True)
>>> cp.fprime_ustar, round(cp.fprime_ustar_float, 3)   # lambda = F'(u*)
(1386/961, 1.442)
>>> step = derivation()["F_prime_at_1"]
>>> step.expr
m*s*(v - 1)/(v**s - 1)
>>> F = upward_map_function()          # numpy version of the derived F(u; v, m, s, K)
>>> round(float(F(0.5, 32, 8, 2, 32)), 6)
0.583893
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from hiergrammar.rhm import check_int, refuse_models
from hiergrammar.rhm import check_parameters as _check_rhm_parameters
from hiergrammar.validation import InputError

__all__ = [
    "Sym",
    "Step",
    "Section",
    "Derivation",
    "TITLE",
    "EXACT_MAX_S",
    "derivation",
    "upward_map_function",
    "downward_map_function",
    "marginal_function",
    "check_parameters",
    "fixed_point_polynomial",
    "CriticalPoint",
    "critical_point",
    "Check",
    "reference_forms",
    "reference_checks",
]


class Sym:
    """The sympy symbols of the derivation (all positive; ``s`` a positive integer)."""

    v = sp.Symbol("v", positive=True)  # vocabulary size of a child
    m = sp.Symbol("m", positive=True)  # rules per parent symbol
    s = sp.Symbol("s", positive=True, integer=True)  # branching factor
    K = sp.Symbol("K", positive=True)  # cardinality of the parent
    u = sp.Symbol("u", positive=True)  # upward belief in the true child value
    d = sp.Symbol("d", positive=True)  # downward belief in the true parent value
    x = sp.Symbol("x", positive=True)  # weight of the true tuple, u**s
    y = sp.Symbol("y", positive=True)  # weight of the true siblings, u**(s-1)
    c = sp.Symbol("c", positive=True)  # mean parent weight of a non-true tuple
    f = sp.Symbol("f", positive=True)  # m / v**(s-1)
    eps = sp.Symbol("epsilon", positive=True)  # leaf noise, 1 - u_0
    k = sp.Symbol("k", integer=True, nonnegative=True)  # a power in a series
    N = sp.Symbol("N", positive=True, integer=True)  # population of a hypergeometric draw
    n = sp.Symbol("n", positive=True, integer=True)  # draws of a hypergeometric draw


@dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs = raw = expr``.

    ``name``: identifier (``derivation()[name]``); ``section``: the section it belongs to;
    ``lhs``: LaTeX of what the step defines or computes; ``explanation``: why, in words
    (may contain ``$...$`` LaTeX); ``expr``: the result (a sympy expression); ``raw``: how
    the step assembled it before simplification, or ``None`` when it is ``expr`` itself.
    """

    name: str
    section: str
    lhs: str
    explanation: str
    expr: sp.Basic
    raw: sp.Basic | None = None


@dataclass(frozen=True)
class Section:
    """A titled group of steps, with an introduction (may contain ``$...$`` LaTeX)."""

    title: str
    intro: str = ""


@dataclass(frozen=True)
class Derivation:
    """An ordered list of :class:`Step` objects, grouped in :class:`Section` objects.

    Index by a step's name (``derivation["F"]``), iterate over the steps in order.
    """

    title: str
    sections: tuple[Section, ...]
    steps: tuple[Step, ...]

    def __getitem__(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step named {name!r}; steps: {[s.name for s in self.steps]}")

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def names(self) -> list[str]:
        return [step.name for step in self.steps]

    def in_section(self, title: str) -> list[Step]:
        return [step for step in self.steps if step.section == title]


class _Builder:
    """Collects steps; each ``add`` simplifies and optionally verifies a claimed identity."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.steps: list[Step] = []

    def section(self, title: str, intro: str = "") -> None:
        self.sections.append(Section(title, intro))

    def expr(self, name: str) -> sp.Basic:
        """The result of an earlier step."""
        for step in self.steps:
            if step.name == name:
                return step.expr
        raise KeyError(name)

    def add(
        self,
        name: str,
        lhs: str,
        raw: sp.Basic,
        explanation: str,
        *,
        simplify: Callable[[sp.Basic], sp.Basic] | None = sp.simplify,
        claim: sp.Basic | None = None,
    ) -> sp.Basic:
        """Record ``lhs = raw = expr``; ``expr = simplify(raw)``, or ``claim`` after sympy has
        shown ``simplify(raw - claim) == 0`` (for rearrangements sympy cannot find alone)."""
        if claim is not None:
            if sp.simplify(raw - claim) != 0:
                raise ArithmeticError(f"step {name}: sympy could not verify the claimed form")
            expr = claim
        else:
            expr = simplify(raw) if simplify is not None else raw
        shown_raw = None if raw == expr else raw
        self.steps.append(Step(name, self.sections[-1].title, lhs, explanation, expr, shown_raw))
        return expr


def _tidy_ratio(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """Write a rational function as ``(a var + b) / (c var + e)``: cancel, collect both sides
    in ``var``, and orient the signs so that the denominator is positive inside the parameter
    domain (sympy's canonical form often negates both sides)."""
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    num, den = sp.expand(num), sp.expand(den)
    if den.subs(_SAMPLE) < 0:
        num, den = -num, -den
    return sp.collect(num, var) / sp.collect(den, var)


#: A point inside the parameter domain, used to orient signs and to spot-check limits.
_SAMPLE = {
    Sym.v: 7,
    Sym.m: 3,
    Sym.K: 5,
    Sym.s: 3,
    Sym.u: sp.Rational(3, 5),
    Sym.d: sp.Rational(2, 5),
    Sym.x: sp.Rational(1, 3),
    Sym.y: sp.Rational(1, 2),
    Sym.f: sp.Rational(1, 5),
}


def _large_v_limit(expr: sp.Expr, s_value: int | None = None) -> sp.Expr:
    """``lim_{v -> oo} expr`` at fixed ``f = m / v**(s-1)``.

    sympy needs to know ``s - 1 > 0``, so ``s = sigma + 1`` with ``sigma`` a positive integer
    during the limit; the expression is expanded and the limit taken term by term (sympy's
    limit of the unexpanded ``R(u) / v**(s-1)`` drops a term), and the result is spot-checked
    against the expression at ``v = 10**8``.
    """
    v, m, s, f = Sym.v, Sym.m, Sym.s, Sym.f
    sigma = sp.Symbol("sigma", integer=True, positive=True)
    s_sub = s_value if s_value is not None else sigma + 1
    e = sp.expand(expr.subs(m, f * v ** (s - 1)).subs(s, s_sub))
    result = sp.Add(*[sp.limit(term, v, sp.oo) for term in sp.Add.make_args(e)])
    result = result.subs(sigma, s - 1)
    point = {**_SAMPLE, s: s_value or _SAMPLE[s]}
    far = e.subs(sigma, point[s] - 1).subs({**point, v: 10**8})
    near = result.subs(point)
    if abs(float(far - near)) > 1e-4 * (1 + abs(float(near))):
        raise ArithmeticError(f"large-v limit failed its spot check: {near} vs {far}")
    return result


def _membership_probability(draws: sp.Expr, population: sp.Expr, name: str) -> sp.Expr:
    """P(a given tuple is among ``draws`` tuples drawn without replacement from
    ``population``): the mean of a hypergeometric count with one marked item, from
    :mod:`sympy.stats` (computed on plain symbols, which is fast, then substituted)."""
    from sympy.stats import E, Hypergeometric

    mean = E(Hypergeometric(name, Sym.N, 1, Sym.n))
    return mean.subs({Sym.N: population, Sym.n: draws})


# -- the derivation ---------------------------------------------------------------------------
#: The k-th term of the fixed-point factor R(u) (shared by the derivation and
#: :func:`fixed_point_polynomial`; a test re-derives it by polynomial division).
_R_SUMMAND = (Sym.v**Sym.k - Sym.m) * Sym.u**Sym.k


# The derivation is told in parts that share named results through ``ctx``; critical_point
# only needs the first three (about a second), the documents need all of them.
def _part_messages(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    u, d, v, K = Sym.u, Sym.d, Sym.v, Sym.K
    b.section(
        "Mean-field messages",
        "In the annealed approximation every message takes two values: one on the true symbol "
        "and a common one on the others (docs/model.md §6). A child's upward message is $u$ on "
        "its true value and $(1-u)/(v-1)$ on each of the $v-1$ others; a parent's downward "
        "message is $d$ on its true value and $(1-d)/(K-1)$ on each of the $K-1$ others, with "
        "$K$ the parent's cardinality ($v$ inside the tree, $n_c$ at the root). BP messages "
        "are normalised, so a message sums to one over its values.",
    )
    with sp.evaluate(False):
        ctx["coord_raw"] = u + (v - 1) * ((1 - u) / (v - 1))
        parent_raw = d + (K - 1) * ((1 - d) / (K - 1))
    b.add(
        "coordinate_mass",
        r"\sum_{b=1}^{v} \mu(b)",
        ctx["coord_raw"],
        "Mass of one child's upward message: the true value plus the $v-1$ others.",
    )
    b.add(
        "parent_mass",
        r"\sum_{a=1}^{K} \mu_{\downarrow}(a)",
        parent_raw,
        "Mass of the parent's downward message.",
    )


def _part_upward(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    v, m, s, K, u, x = Sym.v, Sym.m, Sym.s, Sym.K, Sym.u, Sym.x
    tuples = v**s  # all s-tuples of child symbols
    b.section(
        "Upward map",
        "The upward message into a parent value $a$ sums, over the $m$ rules "
        "$a \\to (b_1, \\dots, b_s)$, the tuple weight $w(t) = \\prod_i \\mu_i(b_i)$. Let "
        "$t^*$ be the true tuple and $a^*$ the true parent, so $t^*$ is one of $a^*$'s rules "
        "$R(a^*)$. We average the numerator of every value over the rule draw and normalise "
        "the averages (an annealed, ratio-of-means approximation).",
    )
    b.add(
        "true_tuple_weight",
        "x",
        u**s,
        "Weight of the true tuple: each of its $s$ coordinates carries $u$.",
        simplify=None,
    )
    with sp.evaluate(False):
        total_raw = sp.Pow(ctx["coord_raw"], s)
    total = b.add(
        "tuple_mass",
        r"\sum_{t \in [v]^s} w(t)",
        total_raw,
        "A tuple's weight is a product over coordinates, so the sum over all $v^s$ "
        "tuples factorises into the product of the coordinates' masses.",
    )
    others = b.add(
        "other_tuples_mass",
        r"\sum_{t \neq t^*} w(t)",
        total - x,
        "Weight of the $v^s - 1$ tuples other than the true one.",
    )
    mean_w = b.add(
        "mean_other_weight",
        r"\bar w",
        others / (tuples - 1),
        "Mean weight of a tuple drawn uniformly among the $v^s-1$ non-true tuples.",
        simplify=None,
    )
    p_true = ctx["p_true"] = b.add(
        "p_true_parent",
        r"P(t \in R(a^*))",
        _membership_probability(m - 1, tuples - 1, "X_true"),
        "Given $t^* \\in R(a^*)$, the other $K m - 1$ rule tuples of the level are a uniform "
        "draw without replacement from the $v^s-1$ non-true tuples, and $a^*$ owns $m-1$ of "
        "them. A given non-true tuple $t$ is among them with the mean of a hypergeometric "
        "count (population $v^s-1$, one marked tuple, $m-1$ draws), from sympy.stats.",
        simplify=sp.combsimp,
    )
    p_other = ctx["p_other"] = b.add(
        "p_other_parent",
        r"P(t \in R(a))",
        _membership_probability(m, tuples - 1, "X_other"),
        "Likewise another parent $a \\neq a^*$ owns $m$ tuples, a uniform draw of $m$ out of the "
        "$v^s-1$ non-true ones.",
        simplify=sp.combsimp,
    )
    count_true = b.add(
        "count_true_parent",
        r"\mathbb{E}\,|R(a^*) \setminus \{t^*\}|",
        (tuples - 1) * p_true,
        "Expected number of non-true tuples owned by $a^*$ (sum of the "
        "membership probabilities over the $v^s-1$ non-true tuples).",
    )
    count_other = b.add(
        "count_other_parent",
        r"\mathbb{E}\,|R(a)|",
        (tuples - 1) * p_other,
        "Expected number of non-true tuples owned by another parent.",
    )
    nu_true = b.add(
        "nu_up_true",
        r"\langle \nu_{\uparrow}(a^*) \rangle",
        x + count_true * mean_w,
        "Mean upward numerator of the true parent: the true tuple plus $m-1$ tuples of mean "
        "weight $\\bar w$ each (linearity of expectation over the tuples).",
        simplify=None,
    )
    nu_other = b.add(
        "nu_up_other",
        r"\langle \nu_{\uparrow}(a) \rangle",
        count_other * mean_w,
        "Mean upward numerator of each other parent $a \\neq a^*$: $m$ non-true tuples.",
        simplify=None,
    )
    z_up = b.add(
        "Z_up",
        r"Z_{\uparrow}",
        nu_true + (K - 1) * nu_other,
        "Normaliser: the true parent plus the $K-1$ others.",
        simplify=sp.factor,
    )
    F_K = b.add(
        "F_K",
        r"F_K(x)",
        nu_true / z_up,
        "Annealed upward belief in the true parent (ratio of means), for a parent of "
        "cardinality $K$; a rational function of $x = u^s$.",
        simplify=lambda e: _tidy_ratio(e, x),
    )
    ctx["F_x"] = b.add(
        "F",
        r"F(x)",
        F_K.subs(K, v),
        "Inside the tree the parent is a latent symbol, $K = v$.",
        simplify=lambda e: _tidy_ratio(e, x),
    )
    ctx["F_u"] = b.add(
        "F_of_u",
        r"F(u)",
        ctx["F_x"].subs(x, u**s),
        "The upward map as a function of the child belief: "
        "$u_{l+1} = F(u_l)$, $u_0 = 1 - \\epsilon$ (at the root use $F_K$ with "
        "$K = n_c$).",
        simplify=None,
    )


def _part_slopes(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    v, u = Sym.v, Sym.u
    F_u = ctx["F_u"]
    b.section(
        "Fixed points of the upward map",
        "Iterating $F$ over the levels, the class is recovered in the deep limit iff the "
        "iteration from $u_0 = 1 - \\epsilon$ converges to $u = 1$.",
    )
    b.add("F_at_1", "F(1)", F_u.subs(u, 1), "Noiseless evidence stays noiseless.")
    b.add(
        "F_at_1_over_v", "F(1/v)", F_u.subs(u, 1 / v), "Uninformative evidence stays uninformative."
    )
    dF = b.add(
        "F_prime", "F'(u)", sp.diff(F_u, u), "Derivative of the upward map.", simplify=sp.factor
    )
    ctx["slope1"] = b.add(
        "F_prime_at_1",
        "F'(1)",
        dF.subs(u, 1),
        "Slope at the noiseless fixed point: $u = 1$ is attractive iff $F'(1) < 1$.",
        simplify=lambda e: sp.factor(sp.simplify(e)),
    )
    ctx["slope_v"] = b.add(
        "F_prime_at_1_over_v",
        "F'(1/v)",
        dF.subs(u, 1 / v),
        "Slope at the uninformative fixed point: $u = 1/v$ is attractive iff $F'(1/v) < 1$.",
        simplify=lambda e: sp.factor(sp.simplify(e)),
    )
    ctx["slope_fixed"] = b.add(
        "F_prime_fixed_point",
        r"\lambda(u) = F'(u) \left(\frac{u}{F(u)}\right)^2",
        dF * (u / F_u) ** 2,
        "At any fixed point $F(u) = u$ the factor $(u/F(u))^2$ is one, so this is the slope "
        "$\\lambda = F'(u^*)$ at the repulsive fixed point written with $u^*$ alone (the "
        "denominator of $F$ is replaced by its numerator over $u$). Deviations from $u^*$ grow "
        "by $\\lambda$ per level.",
        simplify=lambda e: sp.factor(sp.simplify(e)),
    )


def _part_fixed_point_polynomial(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    v, m, s, u = Sym.v, Sym.m, Sym.s, Sym.u
    tuples = v**s
    slope1, slope_v = ctx["slope1"], ctx["slope_v"]
    F_num, F_den = sp.fraction(ctx["F_u"])
    num_P = b.add(
        "fixed_point_numerator",
        "P(u)",
        F_num - u * F_den,
        "$F(u) = u$ iff the numerator of $F(u) - u$ vanishes.",
        simplify=lambda e: sp.powsimp(sp.expand(e), combine="exp"),
    )
    R_closed = ctx["R_closed"] = ((v * u) ** s - 1) / (v * u - 1) - m * (u**s - 1) / (u - 1)
    b.add(
        "fixed_point_factorised",
        "P(u)",
        num_P,
        "Grouping the terms as $(1-u)((vu)^s - 1) - m (1 - vu)(u^s - 1)$ exhibits the two "
        "known roots $u = 1$ and $u = 1/v$ (sympy verifies the identity).",
        claim=-(u - 1) * (v * u - 1) * R_closed,
    )
    b.add(
        "R",
        "R(u)",
        R_closed,
        "The remaining factor, a difference of two geometric series: its non-negative "
        "roots are the other fixed points. Its coefficients $v^k - m$ increase with $k$, so "
        "they change sign at most once: by Descartes' rule of signs $R$ has at most one "
        "positive root $u^*$ (exactly one when $2 \\leq m < v^{s-1}$; none when $m = 1$, "
        "where $R(0) = 0$, or when $m = v^{s-1}$).",
        simplify=None,
    )
    b.add(
        "R_series",
        "R(u)",
        sp.Sum(_R_SUMMAND, (Sym.k, 0, s - 1)),
        "The same as a series (checked for $s = 2, \\dots, 6$ by polynomial division).",
        simplify=None,
    )
    R1 = b.add(
        "R_at_1",
        "R(1)",
        sp.limit(R_closed, u, 1),
        "Value at $u = 1$ (a removable singularity).",
        simplify=None,
    )
    b.add(
        "R_at_1_vs_slope",
        r"\frac{(v-1) R(1)}{v^s - 1}",
        (v - 1) * R1 / (tuples - 1),
        "So $R(1) > 0$ iff $F'(1) < 1$.",
        claim=1 - slope1,
    )
    Rv = b.add(
        "R_at_1_over_v",
        "R(1/v)",
        sp.limit(R_closed, u, 1 / v),
        "Value at $u = 1/v$.",
        claim=s - m * (tuples - 1) / (v ** (s - 1) * (v - 1)),
    )
    b.add(
        "R_at_1_over_v_vs_slope",
        r"\frac{R(1/v)}{F'(1/v) - 1}",
        Rv / (slope_v - 1),
        "A positive factor, so $R(1/v) < 0$ iff $F'(1/v) < 1$. Hence $u^*$ lies in "
        "$(1/v, 1)$, repulsive between the two attractive fixed points, iff $F'(1) < 1$ "
        "and $F'(1/v) < 1$: then the class is recovered as $L \\to \\infty$ for "
        "$\\epsilon < \\epsilon^* = 1 - u^*$ and lost beyond. If $F'(1) \\geq 1$ any noise "
        "destroys the class ($\\epsilon^* = 0$); if $F'(1/v) \\geq 1$ every "
        "$\\epsilon < 1 - 1/v$ is recovered.",
        simplify=lambda e: sp.factor(sp.simplify(e)),
    )
    b.add(
        "critical_m",
        r"m_c",
        sp.solve(sp.Eq(slope1, 1), m)[0],
        "$F'(1) < 1$ iff $m < m_c$: the condition for a recovery phase.",
        simplify=sp.factor,
    )
    b.add(
        "lower_m",
        r"m_{\min}",
        sp.solve(sp.Eq(slope_v, 1), m)[0],
        "$F'(1/v) < 1$ iff $m > m_{\\min}$; since $m_{\\min} < s$ by the AM-GM inequality, "
        "any $m \\geq s$ qualifies (for $s = 2$: $m \\geq 2$).",
        simplify=lambda e: sp.factor(sp.together(sp.expand(e))),
    )


def _part_downward(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    v, s, K, u, d, y, c = Sym.v, Sym.s, Sym.K, Sym.u, Sym.d, Sym.y, Sym.c
    b.section(
        "Downward map",
        "The downward message into child 1 with value $b$ sums, over the rules "
        "$a \\to (b, b_2, \\dots, b_s)$, the parent's downward weight $\\mu_{\\downarrow}(a)$ "
        "times the siblings' upward weights $\\prod_{i \\geq 2} \\mu_i(b_i)$. Siblings have "
        "upward belief $u$, the parent downward belief $d$.",
    )
    b.add(
        "sibling_weight",
        "y",
        u ** (s - 1),
        "Weight of the true siblings' values: $s-1$ coordinates carrying $u$.",
        simplify=None,
    )
    with sp.evaluate(False):
        sib_raw = sp.Pow(ctx["coord_raw"], s - 1)
        c_raw = ctx["p_true"] * d + (K - 1) * (ctx["p_other"] * ((1 - d) / (K - 1)))
    sib_mass = b.add(
        "sibling_mass",
        r"\sum_{b_2 \dots b_s} \prod_{i \geq 2} \mu_i(b_i)",
        sib_raw,
        "All sibling tuples together (factorised as above).",
    )
    c_val = b.add(
        "c",
        "c",
        c_raw,
        "Mean parent weight carried by a non-true tuple $t$: it belongs to $a^*$ "
        "(weight $d$) or to one of the $K-1$ other parents (weight $(1-d)/(K-1)$ each), with "
        "the membership probabilities above. $K$ cancels, so $G$ is the same at the root.",
        simplify=sp.factor,
    )
    down_true = b.add(
        "nu_down_true",
        r"\langle \nu_{\downarrow}(b^*) \rangle",
        d * y + c * (sib_mass - y),
        "True child value $b^*$: the true tuple (owned by $a^*$, weight $d\\,y$) plus all "
        "other tuples starting with $b^*$, whose sibling weights sum to $1 - y$, each with "
        "mean parent weight $c$.",
        simplify=None,
    )
    down_other = b.add(
        "nu_down_other",
        r"\langle \nu_{\downarrow}(b) \rangle",
        c * sib_mass,
        "Any other child value $b \\neq b^*$: no tuple starting with it is the true one; "
        "sibling weights sum to one.",
        simplify=None,
    )
    G_c = b.add(
        "G_c",
        r"G",
        down_true / (down_true + (v - 1) * down_other),
        "Normalise over the $v$ child values.",
        simplify=None,
    )
    G_y = b.add(
        "G_y",
        r"G(d, y)",
        G_c.subs(c, c_val),
        "Substitute $c$.",
        simplify=lambda e: _tidy_ratio(e, y),
    )
    b.add(
        "G",
        r"G(d, u)",
        G_y.subs(y, u ** (s - 1)),
        "The downward map: $d_{l-1} = G(d_l, u_{l-1})$, $d_L = 1/n_c$.",
        simplify=None,
    )


def _part_marginal(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    K, u, d = Sym.K, Sym.u, Sym.d
    b.section(
        "Marginal",
        "The marginal of a variable of cardinality $K$ is proportional to the product of its "
        "upward and downward messages (eq. 62).",
    )
    with sp.evaluate(False):
        p_raw = (u * d) / (u * d + (K - 1) * (((1 - u) / (K - 1)) * ((1 - d) / (K - 1))))
    b.add(
        "p",
        r"p(u, d)",
        p_raw,
        "True value: $u d$; each of the $K-1$ others: $\\frac{1-u}{K-1}\\frac{1-d}{K-1}$.",
        claim=(K - 1) * u * d / ((K - 1) * u * d + (1 - u) * (1 - d)),
    )


def _part_large_v(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    v, s, u, x, f = Sym.v, Sym.s, Sym.u, Sym.x, Sym.f
    b.section(
        "Large-v limit",
        "At fixed fraction $f = m / v^{s-1}$ of the tuples used by a level, let "
        "$v \\to \\infty$ (sympy limits, with $m = f v^{s-1}$).",
    )
    b.add(
        "F_prime_at_1_large_v",
        r"\lim F'(1)",
        _large_v_limit(ctx["slope1"]),
        "The recovery phase exists iff $s f < 1$.",
        simplify=sp.factor,
    )
    b.add(
        "F_prime_at_1_over_v_large_v",
        r"\lim F'(1/v)",
        _large_v_limit(ctx["slope_v"]),
        "The uninformative point is always attractive at large $v$.",
        simplify=None,
    )
    b.add(
        "F_large_v",
        r"\lim F(x)",
        _large_v_limit(ctx["F_x"]),
        "The limiting upward map.",
        simplify=lambda e: _tidy_ratio(e, x),
    )
    b.add(
        "R_large_v",
        r"\lim R(u) / v^{s-1}",
        _large_v_limit(ctx["R_closed"] / v ** (s - 1)),
        "The limiting fixed-point equation: $u^{s-1} = f (1 + u + \\dots + u^{s-1})$.",
        claim=u ** (s - 1) - f * (1 - u**s) / (1 - u),
    )


def _part_closed_form(b: _Builder, ctx: dict[str, sp.Expr], s_val: int) -> None:
    v, m, s, u, f = Sym.v, Sym.m, Sym.s, Sym.u, Sym.f

    def _tidy(e: sp.Expr) -> sp.Expr:  # a ratio of polynomials, in the variable it has
        return _tidy_ratio(e, f if e.has(f) else v)

    b.section(
        f"Closed form for s = {s_val}",
        f"For $s = {s_val}$, $R$ has degree {s_val - 1}; its positive root is $u^*$.",
    )
    Rs = b.add(
        f"R_s{s_val}",
        "R(u)",
        ctx["R_closed"].subs(s, s_val),
        "Cancel the geometric series.",
        simplify=lambda e: sp.collect(sp.expand(sp.cancel(e)), u),
    )
    roots = sp.solve(Rs, u)
    if s_val == 2:
        (root,) = roots
        why = "The only root."
    else:
        # Of the two roots, the one with the + sign of the square root: the other is
        # negative for 2 <= m < v**2 (the product of the roots, (1 - m)/(v**2 - m), is < 0).
        root = max(roots, key=lambda r: float(r.subs({v: 8, m: 3})))
        why = (
            "The root with $+\\sqrt{\\cdot}$; the product of the two roots, "
            "$(1-m)/(v^2-m)$, is negative for $2 \\leq m < v^2$, so the other is negative."
        )
    u_star = ctx[f"u_star_s{s_val}"] = b.add(
        f"u_star_s{s_val}", "u^*", root, why, simplify=_tidy if s_val == 2 else sp.simplify
    )
    b.add(
        f"eps_star_s{s_val}",
        r"\epsilon^*",
        1 - u_star,
        "Critical noise of the deep-tree transition.",
        simplify=_tidy if s_val == 2 else sp.simplify,
    )
    if s_val == 2:
        b.add(
            "one_minus_slope_s2",
            "1 - F'(1)",
            1 - ctx["slope1"].subs(s, 2),
            "Shares the numerator of $\\epsilon^*$: $u^* < 1$ iff $F'(1) < 1$ iff $2m < v + 1$.",
            simplify=sp.factor,
        )
        b.add(
            "u_star_minus_1_over_v_s2",
            "u^* - 1/v",
            u_star - 1 / v,
            "Positive iff $m > 2v/(v+1)$, i.e. $m \\geq 2$: for $m = 1$ the root $u^* = 0$ "
            "(formally $\\epsilon^* = 1$) lies below $1/v$, and every "
            "$\\epsilon < 1 - 1/v$ is recovered.",
            simplify=sp.factor,
        )
    u_large = b.add(
        f"u_star_s{s_val}_large_v",
        r"\lim u^*",
        _large_v_limit(u_star, s_val),
        "Large-$v$ limit at fixed $f$.",
        simplify=_tidy if s_val == 2 else sp.factor,
    )
    b.add(
        f"eps_star_s{s_val}_large_v",
        r"\lim \epsilon^*",
        1 - u_large,
        f"Positive iff $f < 1/{s_val}$.",
        simplify=_tidy if s_val == 2 else sp.factor,
    )


class ScalingSym:
    """Symbols of the finite-depth scaling (see :func:`_part_finite_depth`)."""

    lam = sp.Symbol("lambda", positive=True)  # F'(u*), the growth factor per level
    F2 = sp.Symbol("F_2", real=True)  # F''(u*)
    c2 = sp.Symbol("c_2", real=True)  # second Koenigs coefficient
    delta = sp.Symbol("delta", real=True)  # deviation from u*
    delta0 = sp.Symbol("delta_0", real=True)  # deviation at the leaves
    eps_star = sp.Symbol("epsilon^*", positive=True)
    L = sp.Symbol("L", positive=True, integer=True)  # depth
    level = sp.Symbol("l", nonnegative=True, integer=True)
    Delta = sp.Symbol("Delta", positive=True)  # edge of the linear window, in u
    w = sp.Symbol("w", real=True)  # a value of the linearising coordinate
    Z = sp.Symbol("Z", real=True)  # scaling variable of a crossing
    Z_hi = sp.Symbol("Z_hi", real=True)
    Z_lo = sp.Symbol("Z_lo", real=True)
    y = sp.Symbol("y", positive=True)  # a belief at depth L


def _koenigs_c2() -> sp.Expr:
    """``c2`` of Koenigs' coordinate ``psi(u* + delta) = delta + c2 delta**2 + ...``: the
    ``delta**2`` terms of Schroeder's equation ``psi(F(u)) = lambda psi(u)`` with
    ``F(u* + delta) = u* + lambda delta + F_2 delta**2 / 2 + ...``, solved for ``c2``."""
    T = ScalingSym
    F_local = T.lam * T.delta + T.F2 / 2 * T.delta**2
    schroeder = (F_local + T.c2 * F_local**2) - T.lam * (T.delta + T.c2 * T.delta**2)
    (c2,) = sp.solve(sp.expand(schroeder).coeff(T.delta, 2), T.c2)
    return c2


def _part_finite_depth(b: _Builder, ctx: dict[str, sp.Expr]) -> None:
    s, u, f, eps = Sym.s, Sym.u, Sym.f, Sym.eps
    T = ScalingSym
    lam, delta = T.lam, T.delta
    b.section(
        "Finite-depth scaling",
        "At finite depth the class curve is smooth: its width and its position converge to "
        "the deep-tree transition as $L$ grows. Near the repulsive fixed point $u^*$ a "
        "deviation grows by $\\lambda = F'(u^*) > 1$ per level, so the leaves must sit within "
        "about $\\lambda^{-L}$ of $u^*$ for the root to be anywhere but at a plateau. The "
        "internal map is used at every level ($K = v$; at the root $K = n_c$ changes the last "
        "step only, which hiergrammar.theory.finite_depth includes numerically).",
    )
    lam_u = ctx["slope_fixed"]
    lam_s2 = b.add(
        "lambda_s2",
        "\\lambda_{s=2}",
        lam_u.subs(s, 2).subs(u, ctx["u_star_s2"]),
        "For $s = 2$, $\\lambda = F'(u^*)$ at $u^* = (m-1)/(v-m)$, in closed form "
        "(about 1.442 at $v = 32$, $m = 8$).",
        simplify=lambda e: sp.factor(sp.simplify(e)),
    )
    b.add(
        "lambda_minus_1_s2",
        "\\lambda_{s=2} - 1",
        lam_s2 - 1,
        "Zero exactly at the edges of the transition regime, $m = 2v/(v+1)$ (where $u^*$ meets "
        "$1/v$) and $m = (v+1)/2$ (where it meets 1), and positive in between: $u^*$ is "
        "repulsive wherever the transition exists.",
        simplify=sp.factor,
    )
    lam_large = b.add(
        "lambda_large_v",
        "\\lim \\lambda(u)",
        _large_v_limit(lam_u),
        "Large-$v$ limit at fixed $f$.",
        simplify=sp.factor,
    )
    (f_fixed,) = sp.solve(b.expr("R_large_v"), f)
    lam_large_u = b.add(
        "lambda_large_v_fixed_point",
        "\\lim \\lambda",
        lam_large.subs(f, f_fixed),
        "Eliminate $f$ with the limiting fixed-point equation $u^{s-1} = f (1 + u + \\dots + "
        "u^{s-1})$: the slope depends on $u^*$ alone, $s / (1 + u^* + \\dots + u^{*\\,s-1})$.",
        simplify=lambda e: sp.factor(sp.simplify(e)),
    )
    b.add(
        "lambda_s2_large_v",
        "\\lim \\lambda_{s=2}",
        lam_large_u.subs(s, 2).subs(u, b.expr("u_star_s2_large_v")),
        "For $s = 2$ at large $v$ ($u^* = f/(1-f)$).",
        simplify=sp.factor,
    )
    F2_u = b.add(
        "F_second",
        "F''(u)",
        sp.diff(b.expr("F_prime"), u),
        "Curvature of the upward map (derivative of $F'$): it sets the first correction to "
        "the linear growth.",
        simplify=sp.factor,
    )
    b.add(
        "F_second_s2",
        "F''(u^*)_{s=2}",
        F2_u.subs(s, 2).subs(u, ctx["u_star_s2"]),
        "For $s = 2$ at $u^* = (m-1)/(v-m)$.",
        simplify=lambda e: sp.factor(sp.cancel(e)),
    )
    b.add(
        "koenigs_c2",
        "c_2",
        _koenigs_c2(),
        "The linearising coordinate $\\psi$ of Koenigs, $\\psi(F(u)) = \\lambda\\,\\psi(u)$ "
        "with $\\psi(u^* + \\delta) = \\delta + c_2 \\delta^2 + O(\\delta^3)$, turns the "
        "iteration into a product: $\\psi(u_L) = \\lambda^L \\psi(u_0)$ exactly. With "
        "$F(u^* + \\delta) = u^* + \\lambda \\delta + F_2 \\delta^2/2 + O(\\delta^3)$ "
        "($F_2 = F''(u^*)$), the $\\delta^2$ terms of the functional equation fix $c_2$.",
        simplify=sp.factor,
    )
    with sp.evaluate(False):
        delta0_raw = (1 - eps) - (1 - T.eps_star)
    delta0 = b.add(
        "leaf_deviation",
        "\\delta_0 = u_0 - u^*",
        delta0_raw,
        "The leaves of the epsilon-process carry $u_0 = 1 - \\epsilon$ and $u^* = 1 - "
        "\\epsilon^*$: a deviation in $u$ at the leaves is minus a deviation in $\\epsilon$, "
        "with slope one (for another noise process, divide by $|du_0/dt|$ to convert to its "
        "time).",
    )
    dev = sp.Function("delta")
    growth = sp.rsolve(dev(T.level + 1) - lam * dev(T.level), dev(T.level), {dev(0): T.delta0})
    b.add(
        "linear_growth",
        "\\delta_l",
        growth,
        "The linearised recursion $\\delta_{l+1} = \\lambda \\delta_l$ (sympy's rsolve).",
        simplify=None,
    )
    dev_L = b.add(
        "deviation_L",
        "\\delta_L",
        growth.subs({T.level: T.L, T.delta0: delta0}),
        "At the root, after $L$ levels, as a function of the noise.",
        simplify=None,
    )
    edges = sp.solve(dev_L**2 - T.Delta**2, eps)
    width = b.add(
        "window_width",
        "W_L",
        sp.Max(*edges) - sp.Min(*edges),
        "The root leaves the neighbourhood of $u^*$ (the linear window of half-width "
        "$\\Delta$) at $\\epsilon = \\epsilon^* \\pm \\Delta \\lambda^{-L}$, so the class "
        "transition has a width $\\propto \\lambda^{-L}$. The prefactor is not $2\\Delta$ "
        "(the window's edge is not sharp) but the width of the Poincare function "
        "$\\Phi = \\psi^{-1}$ between two levels of the class belief, $Z_{hi} - Z_{lo}$ "
        "(computed numerically from $F$, see the steps below).",
        simplify=lambda e: sp.simplify(e.rewrite(sp.Piecewise)),
    )
    b.add(
        "width_exponent",
        "\\frac{d \\ln W_L}{dL}",
        sp.diff(sp.log(width), T.L),
        "The width shrinks by the factor $\\lambda$ per level: $\\ln W_L$ is linear in $L$ "
        "with slope $-\\ln \\lambda$, whatever the prefactor.",
        simplify=lambda e: sp.expand_log(sp.simplify(e), force=True),
    )
    # The crossing of a level y of the class belief: psi(u_0) = Z lam**-L, inverted to O(w**3).
    roots = sp.solve(delta + T.c2 * delta**2 - T.w, delta)
    small = [r for r in roots if sp.limit(r, T.w, 0) == 0]
    inverse = sp.series(small[0], T.w, 0, 3).removeO()
    psi_inv = b.add(
        "psi_inverse",
        "\\psi^{-1}(u^* + w) - u^*",
        inverse,
        "Invert $\\psi$ near $u^*$ (the root of $\\delta + c_2 \\delta^2 = w$ that "
        "vanishes with $w$, expanded to second order).",
        simplify=sp.expand,
    )
    crossing = b.add(
        "crossing_drift",
        "\\epsilon_Z(L) - \\epsilon^*",
        -psi_inv.subs(T.w, T.Z * lam ** (-T.L)),
        "A fixed level $y$ of the class belief is reached where $\\psi(u_0) = Z \\lambda^{-L}$ "
        "($Z$ solves $\\Phi(Z/\\lambda) = y$ when the root uses the internal map), so the "
        "finite-$L$ crossing point drifts to $\\epsilon^*$ as $\\lambda^{-L}$, from below for "
        "a level above $u^*$ ($Z > 0$); the $c_2$ term is the first correction.",
        simplify=sp.expand,
    )
    b.add(
        "width_second_order",
        "W_L",
        crossing.subs(T.Z, T.Z_lo) - crossing.subs(T.Z, T.Z_hi),
        "The width between two levels of the class belief ($Z_{hi} > Z_{lo}$), to second "
        "order: leading term $(Z_{hi} - Z_{lo})\\,\\lambda^{-L}$.",
        simplify=lambda e: sp.collect(sp.expand(e), [lam ** (-T.L), lam ** (-2 * T.L)], sp.factor),
    )
    fixed = sp.solve(sp.numer(sp.together(ctx["F_u"].subs(s, 2) - T.y)).subs(u, T.y), T.y)
    b.add(
        "depth_crossing_s2",
        "\\{y : F(y) = y\\}_{s=2}",
        sp.FiniteSet(*fixed),
        "Where the class curves of depths $L$ and $L+1$ cross, $F(u_L) = u_L$, so $u_L$ is a "
        "fixed point; between the plateaus that is $u^*$, hence $u_0 = u^*$ ($F$ increases): "
        "in the mean field the curves of successive depths cross exactly at $\\epsilon^*$, "
        "for every $L$. Only a fixed level of the belief drifts.",
        simplify=None,
    )


_CORE_PARTS = (_part_messages, _part_upward, _part_slopes)
_ALL_PARTS = (
    _part_messages,
    _part_upward,
    _part_downward,
    _part_marginal,
    _part_slopes,
    _part_fixed_point_polynomial,
    _part_large_v,
    functools.partial(_part_closed_form, s_val=2),
    functools.partial(_part_closed_form, s_val=3),
    _part_finite_depth,
)

TITLE = "Mean-field theory of belief propagation on the Random Hierarchy Model"


def _derive(parts: tuple[Callable[[_Builder, dict], None], ...]) -> Derivation:
    b = _Builder()
    ctx: dict[str, sp.Expr] = {}
    for part in parts:
        part(b, ctx)
    return Derivation(title=TITLE, sections=tuple(b.sections), steps=tuple(b.steps))


@functools.lru_cache(maxsize=1)
def derivation() -> Derivation:
    """The whole derivation (built once, about five seconds, then cached).

    >>> [s.name for s in derivation().in_section("Marginal")]
    ['p']
    """
    return _derive(_ALL_PARTS)


@functools.lru_cache(maxsize=1)
def _core_derivation() -> Derivation:
    """Messages, upward map and its slopes only: what :func:`critical_point` needs (fast).
    The same steps, built by the same code, as the start of :func:`derivation`."""
    return _derive(_CORE_PARTS)


# -- numeric versions of the derived maps -----------------------------------------------------
@functools.lru_cache(maxsize=1)
def upward_map_function() -> Callable[..., np.ndarray]:
    """numpy ``F(u, v, m, s, K)`` lambdified from the derived ``F_K`` (elementwise).

    >>> round(float(upward_map_function()(1 / 32, 32, 8, 2, 32)), 6)
    0.03125
    """
    S = Sym
    expr = _core_derivation()["F_K"].expr.subs(S.x, S.u**S.s)
    return sp.lambdify((S.u, S.v, S.m, S.s, S.K), expr, modules="numpy")


@functools.lru_cache(maxsize=1)
def downward_map_function() -> Callable[..., np.ndarray]:
    """numpy ``G(d, u, v, m, s)`` lambdified from the derived ``G`` (elementwise)."""
    S = Sym
    return sp.lambdify((S.d, S.u, S.v, S.m, S.s), derivation()["G"].expr, modules="numpy")


@functools.lru_cache(maxsize=1)
def marginal_function() -> Callable[..., np.ndarray]:
    """numpy ``p(u, d, K)`` lambdified from the derived marginal (elementwise)."""
    S = Sym
    return sp.lambdify((S.u, S.d, S.K), derivation()["p"].expr, modules="numpy")


# -- critical point for concrete parameters ---------------------------------------------------
#: Largest s for which the root is returned as an exact algebraic number; beyond, a float.
EXACT_MAX_S = 16


def check_parameters(v: int, m: int, s: int, n_classes: int | None = None) -> None:
    """Raise InputError naming the violated bound unless ``v >= 2``, ``s >= 2``,
    ``1 <= m <= v**(s-1)`` and, if given, ``1 <= n_classes`` with ``n_classes*m <= v**s``
    (:func:`hiergrammar.rhm.check_parameters`; only the message for ``m`` out of range
    differs: it names the two-sided range that ``hiergrammar theory critical --m`` documents)."""
    refuse_models(v=v, m=m, s=s, n_classes=n_classes)  # the theory models the uniform RHM
    v, s = check_int("v", v, 2), check_int("s", s, 2)
    if isinstance(m, numbers.Integral) and not 1 <= m <= v ** (s - 1):
        raise InputError(f"m={m} violates 1 <= m <= v**(s-1) = {v ** (s - 1)}")
    _check_rhm_parameters(v, 1 if n_classes is None else n_classes, m, s)


def fixed_point_polynomial(v: int, m: int, s: int) -> sp.Poly:
    """``R(u) = sum_{k<s} (v**k - m) u**k`` for concrete parameters (the derived ``R`` with
    ``F(u) = u``'s known roots ``1`` and ``1/v`` divided out), as a :class:`sympy.Poly`.

    >>> fixed_point_polynomial(32, 8, 2)
    Poly(24*u - 7, u, domain='ZZ')
    """
    check_parameters(v, m, s)
    S = Sym
    term = _R_SUMMAND.subs({S.v: v, S.m: m})
    return sp.Poly(sp.Add(*[term.subs(S.k, k) for k in range(s)]), S.u)


@dataclass(frozen=True)
class CriticalPoint:
    """The deep-tree transition of the upward map for concrete ``(v, m, s)``.

    ``eps_star`` (exact, sympy) and ``eps_star_float``: the critical noise. With a transition
    (``transition=True``, ``regime="transition"``) it is ``1 - u*`` with ``u*`` the repulsive
    fixed point in ``(1/v, 1)``; otherwise the deep-limit recovery threshold: ``0`` when any
    noise destroys the class (``regime="always_lost"``, ``F'(1) >= 1``) and ``1 - 1/v`` when
    every informative noise level is recovered (``regime="always_recovered"``,
    ``F'(1/v) >= 1``). ``u_star = 1 - eps_star``. ``method``: how the root was obtained
    (``"rational"``, ``"radicals"``, ``"algebraic"`` (CRootOf), ``"numeric"`` or ``"none"``).
    ``polynomial``: ``R(u)``, whose root ``u*`` is. ``explanation``: the regime in words.
    ``n_classes`` only enters the map at the root level (``F_K`` with ``K = n_classes``), not
    the fixed point, which is that of the internal map (``K = v``).
    """

    v: int
    m: int
    s: int
    n_classes: int | None
    f: float
    fprime_1: sp.Expr
    fprime_inv_v: sp.Expr
    regime: str
    transition: bool
    u_star: sp.Expr
    eps_star: sp.Expr
    u_star_float: float
    eps_star_float: float
    method: str
    polynomial: sp.Poly
    explanation: str
    fprime_ustar: sp.Expr | None = None

    @property
    def fprime_1_float(self) -> float:
        return float(self.fprime_1)

    @property
    def fprime_ustar_float(self) -> float | None:
        """``lambda = F'(u*)`` as a float (None without a transition)."""
        return None if self.fprime_ustar is None else _to_float(self.fprime_ustar)

    @property
    def fprime_inv_v_float(self) -> float:
        return float(self.fprime_inv_v)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (exact values as strings, floats as floats)."""
        return {
            "v": self.v,
            "m": self.m,
            "s": self.s,
            "n_classes": self.n_classes,
            "f": self.f,
            "transition": self.transition,
            "regime": self.regime,
            "eps_star": str(self.eps_star),
            "eps_star_float": self.eps_star_float,
            "u_star": str(self.u_star),
            "u_star_float": self.u_star_float,
            "fprime_1": str(self.fprime_1),
            "fprime_1_float": self.fprime_1_float,
            "fprime_inv_v": str(self.fprime_inv_v),
            "fprime_inv_v_float": self.fprime_inv_v_float,
            "fprime_ustar": None if self.fprime_ustar is None else str(self.fprime_ustar),
            "fprime_ustar_float": self.fprime_ustar_float,
            "method": self.method,
            "polynomial": str(self.polynomial.as_expr()),
            "explanation": self.explanation,
        }

    def _slope_line(self) -> str:
        if self.fprime_ustar is None:
            return ""
        exact = str(self.fprime_ustar)
        shown = f"{exact} ~ " if len(exact) <= 60 and self.method != "numeric" else ""
        return (
            f"F'(u*)  = {shown}{self.fprime_ustar_float:.6g}  (deviations from u* grow by this "
            "factor per level; the class transition narrows as F'(u*)^-L)"
        )

    def summary(self) -> str:
        """A few human-readable lines (what ``hiergrammar theory critical`` prints)."""
        nc = f", n_classes={self.n_classes}" if self.n_classes is not None else ""
        lines = [
            f"v={self.v}, m={self.m}, s={self.s}{nc}  (f = m/v^(s-1) = {self.f:.6g})",
            f"F'(1)   = {self.fprime_1} ~ {self.fprime_1_float:.6g}",
            f"F'(1/v) = {self.fprime_inv_v} ~ {self.fprime_inv_v_float:.6g}",
            self._slope_line(),
            f"transition: {'yes' if self.transition else 'no (' + self.regime + ')'}",
            f"eps* = {self.eps_star} ~ {self.eps_star_float:.10g}",
            f"u*   = {self.u_star} ~ {self.u_star_float:.10g}",
            f"u* is a root of R(u) = {self.polynomial.as_expr()}  [{self.method}]"
            if self.transition
            else "",
            self.explanation,
        ]
        return "\n".join(line for line in lines if line)


def _interior_root(poly: sp.Poly, v: int, s: int) -> tuple[sp.Expr, sp.Expr, float, float, str]:
    """The unique root ``u*`` of ``R = poly`` in ``(1/v, 1)`` (known to exist), returned as
    ``(u*, eps*, float(u*), float(eps*), method)`` with ``eps* = 1 - u*``: exact when feasible
    (a rational, radicals, or a CRootOf of ``R(1 - eps)``, so that the algebraic number printed
    is eps* itself), else a float root. Each float is evaluated from its own exact value, never
    as ``1 - float(other)``: at ``v = 10**12`` that difference would keep only four digits of
    ``u* ~ 1e-12``."""
    low, high = sp.Rational(1, v), sp.Integer(1)
    degree = poly.degree()
    if degree <= 2:
        (root,) = [r for r in sp.roots(poly, filter="R") if low < r < high]
        eps = sp.expand(1 - root)
        method = "rational" if eps.is_Rational else "radicals"
        return root, eps, _to_float(root), _to_float(eps), method
    if s <= EXACT_MAX_S:
        e = Sym.eps
        poly_eps = sp.Poly(poly.as_expr().subs(poly.gen, 1 - e), e)
        (eps,) = [r for r in poly_eps.real_roots() if 0 < r < 1 - low]
        method = "rational" if eps.is_Rational else "algebraic"
        return 1 - eps, eps, _to_float(1 - eps), _to_float(eps), method
    from scipy.optimize import brentq

    coeffs = np.array([float(c) for c in poly.all_coeffs()])
    root = brentq(lambda z: np.polyval(coeffs, z), 1.0 / v, 1.0, xtol=1e-300, rtol=1e-15)
    return sp.Float(root, 17), sp.Float(1.0 - root, 17), root, 1.0 - root, "numeric"


def _to_float(value: sp.Expr) -> float:
    """``float`` of an exact number, through 30 significant digits (sympy tracks the precision
    of sums, so ``1 - CRootOf(...)`` near 0 keeps its relative accuracy)."""
    return float(value) if value.is_Rational else float(sp.N(value, 30))


def _slope_at(u_star: sp.Expr, v: int, m: int, s: int, method: str) -> sp.Expr:
    """``lambda = F'(u*)`` for concrete parameters, from the derived fixed-point form of the
    slope (exact for an exact ``u*``; a float for a numeric one)."""
    S = Sym
    expr = _core_derivation()["F_prime_fixed_point"].expr.subs({S.v: v, S.m: m, S.s: s})
    value = expr.subs(S.u, u_star)
    return sp.Float(value.evalf(30), 17) if method == "numeric" else value


def critical_point(v: int, m: int, s: int, n_classes: int | None = None) -> CriticalPoint:
    """Critical noise ``eps*`` of the deep-tree class-recovery transition for ``(v, m, s)``.

    Uses the derived slopes ``F'(1)``, ``F'(1/v)`` and the polynomial ``R`` (see
    :func:`derivation`): a transition exists iff ``F'(1) < 1`` and ``F'(1/v) < 1``; then
    ``u*`` is the unique root of ``R`` in ``(1/v, 1)`` and ``eps* = 1 - u*``.

    >>> critical_point(32, 8, 2).eps_star
    17/24
    >>> critical_point(32, 20, 2).regime        # F'(1) = 40/33 >= 1
    'always_lost'
    """
    check_parameters(v, m, s, n_classes)
    S = Sym
    steps = _core_derivation()
    values = {S.v: v, S.m: m, S.s: s}
    slope1 = steps["F_prime_at_1"].expr.subs(values)
    slope_v = steps["F_prime_at_1_over_v"].expr.subs(values)
    poly = fixed_point_polynomial(v, m, s)
    f = m / v ** (s - 1)
    if slope1 >= 1:
        regime, eps_star, eps_float, method = "always_lost", sp.Integer(0), 0.0, "none"
        u_star, u_float = sp.Integer(1), 1.0
        explanation = (
            f"No transition: F'(1) = {slope1} >= 1 (s*m*(v-1) = {s * m * (v - 1)} >= "
            f"v^s - 1 = {v**s - 1}), so the noiseless fixed point u = 1 is not attractive and "
            "any noise eps > 0 drives the deep-tree upward belief to the uninformative 1/v: "
            "the class is lost for every eps > 0 (eps* = 0)."
        )
    elif slope_v >= 1:
        regime, method = "always_recovered", "none"
        u_star = sp.Rational(1, v)
        eps_star = 1 - u_star
        u_float, eps_float = float(u_star), float(eps_star)
        formal = [r for r in sp.roots(poly, filter="R")] if poly.degree() <= 2 else []
        formal_txt = (
            f" R's non-negative root u = {max(formal)} lies outside (1/v, 1)."
            if formal and max(formal) >= 0
            else ""
        )
        explanation = (
            f"No transition at eps < 1 - 1/v: F'(1/v) = {slope_v} >= 1, so the uninformative "
            "fixed point u = 1/v is itself repulsive and there is no fixed point in (1/v, 1): "
            f"the class is recovered for every eps < 1 - 1/v (eps* = 1 - 1/v).{formal_txt}"
        )
    else:
        regime = "transition"
        u_star, eps_star, u_float, eps_float, method = _interior_root(poly, v, s)
        explanation = (
            f"Transition: F'(1) = {slope1} < 1 and F'(1/v) = {slope_v} < 1, so u = 1 and "
            f"u = 1/v are both attractive and the repulsive fixed point u* = "
            f"{u_float:.6g} separates their basins: as L -> infinity the class is "
            f"recovered for eps < eps* = {eps_float:.6g} and lost beyond."
        )
    if n_classes is not None:
        explanation += (
            f" (n_classes = {n_classes} only changes the last, root-level step of "
            "the map; the fixed point is that of the internal map, K = v.)"
        )
    return CriticalPoint(
        v=v,
        m=m,
        s=s,
        n_classes=n_classes,
        f=f,
        fprime_1=slope1,
        fprime_inv_v=slope_v,
        regime=regime,
        transition=regime == "transition",
        u_star=u_star,
        eps_star=eps_star,
        u_star_float=u_float,
        eps_star_float=eps_float,
        method=method,
        polynomial=poly,
        explanation=explanation,
        fprime_ustar=_slope_at(u_star, v, m, s, method) if regime == "transition" else None,
    )


@dataclass(frozen=True)
class ScalingConstants:
    """Finite-depth scaling constants of the repulsive fixed point for concrete ``(v, m, s)``.

    ``lam = F'(u*)``, ``F2 = F''(u*)`` and Koenigs' ``c2 = -F2 / (2 lam (lam - 1))``, exact
    (sympy; floats for a numeric ``u*``), with float versions ``*_float``.
    """

    point: CriticalPoint
    lam: sp.Expr
    F2: sp.Expr
    c2: sp.Expr

    @property
    def lam_float(self) -> float:
        return _to_float(self.lam)

    @property
    def F2_float(self) -> float:
        return _to_float(self.F2)

    @property
    def c2_float(self) -> float:
        return _to_float(self.c2)


def scaling_constants(v: int, m: int, s: int) -> ScalingConstants:
    """``F'(u*)``, ``F''(u*)`` and Koenigs' ``c2`` for concrete parameters with a transition.

    ``F''`` is the derivative of the derived ``F'`` (as in the step ``F_second``), ``c2``
    the solution of Schroeder's equation (step ``koenigs_c2``); both at the exact ``u*`` of
    :func:`critical_point`. Fast: it needs only the core of the derivation.

    Raises
    ------
    InputError
        when ``(v, m, s)`` has no transition (no repulsive fixed point).

    Examples
    --------
    >>> k = scaling_constants(32, 8, 2)
    >>> k.lam, round(k.c2_float, 4)
    (1386/961, -0.7139)
    """
    from hiergrammar.validation import InputError

    point = critical_point(v, m, s)
    if not point.transition:
        raise InputError(
            f"v={v}, m={m}, s={s} has no class transition ({point.regime}): there is no "
            "repulsive fixed point to expand around"
        )
    S, T = Sym, ScalingSym
    first = _core_derivation()["F_prime"].expr.subs({S.v: v, S.m: m, S.s: s})
    second = sp.diff(first, S.u).subs(S.u, point.u_star)
    if point.method == "numeric":
        second = sp.Float(second.evalf(30), 17)
    lam = point.fprime_ustar
    c2 = _koenigs_c2().subs({T.F2: second, T.lam: lam})
    return ScalingConstants(point=point, lam=lam, F2=second, c2=c2)


# -- checks against docs/model.md (never a source) ---------------------------------------------
@dataclass(frozen=True)
class Check:
    """A derived expression against the closed form typed in from ``docs/model.md``."""

    name: str
    derived: sp.Expr
    reference: sp.Expr
    holds: bool


def reference_forms() -> dict[str, tuple[str, sp.Expr]]:
    """The closed forms of ``docs/model.md`` §6, typed in, keyed by the step they check.

    Used only by :func:`reference_checks`; nothing in the derivation reads them.
    """
    S = Sym
    v, m, s, K, u, d, f = S.v, S.m, S.s, S.K, S.u, S.d, S.f
    x = u**s
    A = (m - 1) / (v**s - 1)
    B = (K * m - 1) / (v**s - 1)
    c = (m - d) / (v**s - 1)
    y = u ** (s - 1)
    return {
        "F_K": ("F_of_u_K", (x + A * (1 - x)) / (x + B * (1 - x))),
        "G": ("G", (d * y + (1 - y) * c) / (d * y + (1 - y) * c + (v - 1) * c)),
        "p": ("p", u * d / (u * d + (1 - u) * (1 - d) / (K - 1))),
        "F_at_1_over_v": ("F_at_1_over_v", 1 / v),
        "F_prime_at_1": ("F_prime_at_1", s * m * (v - 1) / (v**s - 1)),
        "F_prime_at_1_large_v": ("F_prime_at_1_large_v", s * f),
        "F_large_v": ("F_large_v", S.x / (S.x + f * (1 - S.x))),
        "u_star_s2": ("u_star_s2", (m - 1) / (v - m)),
        "eps_star_s2": ("eps_star_s2", (v - 2 * m + 1) / (v - m)),
        "u_star_s2_large_v": ("u_star_s2_large_v", f / (1 - f)),
    }


@functools.lru_cache(maxsize=1)
def reference_checks() -> tuple[Check, ...]:
    """``simplify(derived - reference) == 0`` for each closed form of ``docs/model.md`` §6."""
    steps = derivation()
    out = []
    for step_name, (label, reference) in reference_forms().items():
        derived = steps[step_name].expr
        if step_name == "F_K":  # compare as functions of u
            derived = derived.subs(Sym.x, Sym.u**Sym.s)
        out.append(Check(label, derived, reference, sp.simplify(derived - reference) == 0))
    return tuple(out)
