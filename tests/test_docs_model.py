"""docs/model.md, the project's page of the model and its equations, stays true.

* Its relative links resolve inside the project, and it points to no file outside it.
* Its sections §1-§8 keep the numbers and titles that docstrings cite ("docs/model.md §4").
* Formulas it states agree with the library: each test below types in one of the page's
  formulas (the page holds the same formula, compared after removing whitespace) and evaluates it
  against the implementation on small models, or against an independent computation (brute-force
  enumeration of trees, a Gaussian likelihood, a finite difference).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hiergrammar.theory import meanfield
from scipy.special import logsumexp

from hiergrammar import RHM
from hiergrammar.bp import tree_bp
from hiergrammar.bruteforce import enumerate_trees
from hiergrammar.noise import (
    chain_alpha_bar,
    ddpm_alpha_bar,
    diffuse_onehot,
    eps_evidence,
    leaf_posterior,
    respaced_timesteps,
)

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "model.md"

#: The section titles that code and docs cite by number; later sections may follow.
SECTIONS = {
    1: "Conventions",
    2: "The Random Hierarchy Model",
    3: "The factor graph",
    4: "Sum-product BP on the tree and exact posterior sampling",
    5: "Noise models",
    6: "Mean-field (annealed) theory",
    7: "What the paper's figures show and where the project reproduces them",
    8: "The ImageNet protocol",
}


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _assert_on_page(page: str, formula: str) -> None:
    """The page states ``formula`` (LaTeX, compared without whitespace)."""
    assert _squash(formula) in _squash(page), f"docs/model.md no longer states {formula!r}"


# -- links and sections ---------------------------------------------------------------------------
def _link_targets(markdown: str) -> list[str]:
    """Targets of Markdown links and images, without any #anchor."""
    return [t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", markdown)]


def test_relative_links_resolve_inside_the_project(page):
    targets = [t for t in _link_targets(page) if t and not re.match(r"^[a-z]+:", t)]
    assert targets, "the page links to the other docs pages and to its test"
    for target in targets:
        path = (PAGE.parent / target).resolve()
        assert path.exists(), f"docs/model.md links to missing {target}"
        assert path.is_relative_to(ROOT), f"docs/model.md links outside the project: {target}"


def test_page_names_no_file_outside_the_project(page):
    assert "equations.md" not in page
    assert not re.search(r"(?<![\w.])/(work|home|tmp|Users)/", page)


def test_sections_keep_their_numbers_and_titles(page):
    headings = re.findall(r"^## §(\d+) (.+?)\s*$", page, flags=re.M)
    numbers = [int(n) for n, _ in headings]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    found = dict((int(n), title) for n, title in headings)
    for number, title in SECTIONS.items():
        assert found.get(number) == title, f"§{number}: {found.get(number)!r} != {title!r}"


def test_index_links_the_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert "model.md" in _link_targets(index)


# -- §2: the number of data ---------------------------------------------------------------------
@pytest.mark.parametrize("v, n_c, m, s, L", [(3, 2, 2, 2, 2), (4, 3, 2, 3, 2), (5, 2, 3, 2, 3)])
def test_each_class_produces_m_to_the_N_distinct_inputs(page, v, n_c, m, s, L):
    _assert_on_page(page, r"N = \frac{s^L - 1}{s - 1}")
    rhm = RHM(v, n_c, m, s, L, seed=1)
    N = (s**L - 1) // (s - 1)
    assert rhm.n_internal == N
    levels = enumerate_trees(rhm)
    for y in range(n_c):
        inputs = {tuple(row) for row in levels[0][levels[L][:, 0] == y].tolist()}
        assert len(inputs) == m**N
    assert bool(rhm.parse(levels[0]).valid.all())


# -- §4-5: log-evidence of the epsilon-process ----------------------------------------------------
@pytest.mark.parametrize("v, n_c, m, s, L", [(8, 4, 2, 2, 3), (4, 3, 3, 3, 2)])
def test_eps_process_evidence_and_its_log_evidence_closed_forms(page, v, n_c, m, s, L):
    _assert_on_page(page, r"\log P(e) = \log \pi(y) - N \log m")
    _assert_on_page(page, r"\log P(e) = -d \log v")
    rhm = RHM(v, n_c, m, s, L, seed=2)
    x = rhm.sample(6, seed=3).x
    n, d = x.shape
    # e_i(x_i) = 1 - eps, e_i(other) = eps / (v - 1)
    ev = eps_evidence(x, 0.3, v)
    on_ref = np.zeros_like(ev, dtype=bool)
    on_ref[np.arange(n)[:, None], np.arange(d)[None, :], x] = True
    np.testing.assert_allclose(ev[on_ref], 0.7)
    np.testing.assert_allclose(ev[~on_ref], 0.3 / (v - 1))
    # eps = 0: log P(x) = log(1/n_c) - N log m (the 1/m of each rule choice)
    noiseless = tree_bp(rhm, eps_evidence(x, 0.0, v)).log_evidence
    np.testing.assert_allclose(noiseless, -np.log(n_c) - rhm.n_internal * np.log(m), atol=1e-10)
    # eps = 1 - 1/v: uniform evidence, log P(e) = -d log v
    flat = tree_bp(rhm, eps_evidence(x, 1 - 1 / v, v)).log_evidence
    np.testing.assert_allclose(flat, -d * np.log(v), atol=1e-10)


def test_eps_process_log_evidence_is_a_hamming_sum_over_the_grammar(page):
    """P(e) = sum_x' P(x') (1-eps)^(d-H) (eps/(v-1))^H, by enumerating every tree."""
    _assert_on_page(page, r"(1-\epsilon)^{d - H(x, x')}")
    v, n_c, m, s, L, eps = 3, 2, 2, 2, 2, 0.35
    rhm = RHM(v, n_c, m, s, L, seed=4)
    x = rhm.sample(3, seed=5).x
    trees = enumerate_trees(rhm)[0]  # (n_trees, d), each tree has probability 1/(n_c m^N)
    log_p_tree = -np.log(n_c) - rhm.n_internal * np.log(m)
    hamming = (trees[None, :, :] != x[:, None, :]).sum(axis=-1)  # (n, n_trees)
    terms = log_p_tree + (rhm.d - hamming) * np.log(1 - eps) + hamming * np.log(eps / (v - 1))
    expected = logsumexp(terms, axis=1)
    got = tree_bp(rhm, eps_evidence(x, eps, v)).log_evidence
    np.testing.assert_allclose(got, expected, atol=1e-12)


# -- §5: diffusion ------------------------------------------------------------------------------
def test_leaf_posterior_is_bayes_with_the_gaussian_likelihood(page):
    _assert_on_page(page, r"\frac{\sqrt{\bar\alpha}\; x_t[\mu]}{1 - \bar\alpha}")
    v, alpha_bar = 5, 0.37
    x_t = diffuse_onehot(np.array([[0, 3, 4, 1]]), v, alpha_bar, seed=1)
    means = np.sqrt(alpha_bar) * np.eye(v)  # row mu: the mean of x_t given x_0 = e_mu
    sq = ((x_t[..., None, :] - means) ** 2).sum(-1)  # (1, d, v)
    log_lik = -sq / (2 * (1 - alpha_bar))
    bayes = np.exp(log_lik - logsumexp(log_lik, axis=-1, keepdims=True))
    np.testing.assert_allclose(leaf_posterior(x_t, alpha_bar), bayes, atol=1e-12)


def test_respacing_keeps_rounded_even_timesteps(page):
    _assert_on_page(page, r"\tau_k = \mathrm{round}\big(k\, (T-1)/(N-1)\big)")
    taus = respaced_timesteps(1000, 250)
    np.testing.assert_array_equal(taus, np.round(np.arange(250) * 999 / 249).astype(int))
    assert taus[:4].tolist() == [0, 4, 8, 12] and taus[-1] == 999
    abar = ddpm_alpha_bar()
    np.testing.assert_allclose(abar, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)))
    # chain state 0 is clean; state t has abar at tau_{t-1}
    assert chain_alpha_bar(0) == 1.0
    np.testing.assert_allclose(chain_alpha_bar(np.arange(1, 251)), abar[taus])


# -- §6: mean-field theory ----------------------------------------------------------------------
PARAMS = [(32, 8, 2), (16, 5, 2), (9, 3, 3), (7, 4, 3), (5, 11, 3)]


@pytest.mark.parametrize("v, m, s", PARAMS)
def test_slopes_of_the_upward_map(page, v, m, s):
    _assert_on_page(page, r"F'(1) = \frac{s\, m\, (v - 1)}{v^s - 1}")
    _assert_on_page(page, r"F'(1/v) = \frac{s\, v^{s-1} (v - 1)}{m\, (v^s - 1)}")
    h = 1e-6

    def F(u: float) -> float:
        return float(meanfield.upward_map(u, v, m, s))

    slope_1 = s * m * (v - 1) / (v**s - 1)
    assert (F(1.0) - F(1.0 - h)) / h == pytest.approx(slope_1, rel=1e-4)
    assert meanfield.slope_at_one(v, m, s) == pytest.approx(slope_1, rel=1e-12)
    slope_v = s * v ** (s - 1) * (v - 1) / (m * (v**s - 1))
    assert (F(1 / v + h) - F(1 / v - h)) / (2 * h) == pytest.approx(slope_v, rel=1e-5)
    assert F(1.0) == pytest.approx(1.0) and F(1 / v) == pytest.approx(1 / v)


@pytest.mark.parametrize("v, m, s", PARAMS)
def test_the_repulsive_fixed_point_is_the_root_of_R(page, v, m, s):
    _assert_on_page(page, r"- m\, \frac{u^s - 1}{u - 1} = \sum_{k=0}^{s-1} (v^k - m)\, u^k")
    u_star = meanfield.upward_fixed_point(v, m, s)
    slope_1 = s * m * (v - 1) / (v**s - 1)
    slope_v = s * v ** (s - 1) * (v - 1) / (m * (v**s - 1))
    if slope_1 < 1 and slope_v < 1:  # the transition regime of §6
        assert 1 / v < u_star < 1
        assert sum((v**k - m) * u_star**k for k in range(s)) == pytest.approx(0, abs=1e-12)
        assert float(meanfield.upward_map(u_star, v, m, s)) == pytest.approx(u_star, abs=1e-12)
    else:  # (5, 11, 3): F'(1) = 132/124 >= 1, any noise destroys the class
        assert slope_1 >= 1 and meanfield.critical_eps(v, m, s) == 0.0


def test_critical_eps_for_s2_closed_form(page):
    _assert_on_page(page, r"\epsilon^* = \frac{v - 2m + 1}{v - m}")
    checked = 0
    for v in range(3, 41):
        for m in range(2, v):
            if 2 * m < v + 1:
                expected = (v - 2 * m + 1) / (v - m)
                assert meanfield.critical_eps(v, m, 2) == pytest.approx(expected, abs=1e-10)
                checked += 1
            else:  # F'(1) >= 1
                assert meanfield.critical_eps(v, m, 2) == 0.0
    assert checked > 300
    assert meanfield.critical_eps(32, 8, 2) == pytest.approx(17 / 24, abs=1e-12)


def test_large_v_critical_lines(page):
    _assert_on_page(page, r"\epsilon^* = (1 - 2f)/(1 - f)")
    _assert_on_page(page, r"u^* = \big(f + \sqrt{f (4 - 3 f)}\big) / \big(2 (1 - f)\big)")
    f = np.array([0.05, 0.2, 0.4, 0.45])
    np.testing.assert_allclose(meanfield.critical_line(f, 2), (1 - 2 * f) / (1 - f), atol=1e-10)
    f3 = f / 1.5  # below 1/3
    u3 = (f3 + np.sqrt(f3 * (4 - 3 * f3))) / (2 * (1 - f3))
    np.testing.assert_allclose(meanfield.critical_line(f3, 3), 1 - u3, atol=1e-10)
    # and the finite-v map approaches it
    assert meanfield.critical_line(0.2, 2, v=10**6) == pytest.approx(0.75, abs=1e-5)


def test_downward_map_and_marginal(page):
    _assert_on_page(page, r"c = \frac{m - d}{v^s - 1}")
    _assert_on_page(page, r"p_l = \frac{u_l\, d_l}{u_l\, d_l + (1 - u_l)(1 - d_l)/(K_l - 1)}")
    rng = np.random.default_rng(0)
    for v, m, s in PARAMS:
        d, u = rng.uniform(0.05, 0.95, size=(2, 20))
        c = (m - d) / (v**s - 1)
        y = u ** (s - 1)
        G = (d * y + (1 - y) * c) / (d * y + (1 - y) * c + (v - 1) * c)
        np.testing.assert_allclose(meanfield.downward_map(d, u, v, m, s), G, rtol=1e-12)
        p = u * d / (u * d + (1 - u) * (1 - d) / (v - 1))
        np.testing.assert_allclose(meanfield.marginal(u, d, v), p, rtol=1e-12)
    # the profile starts at u_0 = 1 - eps and d_L = 1/n_c
    prof = meanfield.profile(16, 4, 4, 2, 3, eps=0.4)
    assert prof.u[0] == pytest.approx(0.6) and prof.d[3] == pytest.approx(1 / 4)
