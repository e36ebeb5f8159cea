"""The grammar_variants figure step: equal input lengths, measured statements, files, seeds."""

import json
from dataclasses import replace

import numpy as np
import pytest

from hiergrammar import InputError
from hiergrammar.bruteforce import brute_force_marginals
from hiergrammar.figures.grammar_variants import (
    EXAMPLE,
    FULL,
    QUICK,
    VARIANTS,
    class_accuracy,
    compute_grammar_variants,
    make_grammar,
    reproduce_step,
)
from hiergrammar.noise import eps_evidence
from hiergrammar.reproduce import STEP_NAMES


def test_every_grammar_has_the_same_input_length():
    for sizes in (FULL, QUICK, EXAMPLE):
        lengths = {make_grammar(variant, sizes, seed=0).d for variant in VARIANTS}
        assert lengths == {sizes.d}
    assert make_grammar("shared", QUICK, seed=0).is_unambiguous is False
    with pytest.raises(InputError, match="equal input length"):
        replace(QUICK, L_sparse=3)
    assert "grammar_variants" in STEP_NAMES


def test_class_accuracy_is_the_bayes_guess_of_brute_force():
    """On a tiny shared-tuple RHM the measured accuracy equals, per string, the fraction of the
    brute-force posterior's most probable classes that are the true one."""
    grammar = make_grammar("shared", EXAMPLE, seed=3)
    data = grammar.sample(30, seed=4)
    ev = eps_evidence(data.x, 0.3, grammar.cards[0])
    bf = brute_force_marginals(grammar, ev).marginals[grammar.L][:, 0]
    best = np.isclose(bf, bf.max(axis=1, keepdims=True), rtol=1e-9)
    expected = (best[np.arange(30), data.y] / best.sum(axis=1)).mean()
    assert class_accuracy(bf, data.y) == pytest.approx(expected, abs=1e-12)


def test_quick_step_writes_figure_data_and_measured_statements(tmp_path):
    section = reproduce_step(tmp_path, sizes=QUICK, seed=1)
    assert [p.name for p in section.figures] == ["grammar_variants.png"]
    for path in [*section.figures, *section.data]:
        assert path.exists() and path.stat().st_size > 0
    summary = json.loads((tmp_path / "grammar_variants.json").read_text())
    assert set(summary["variants"]) == set(VARIANTS)
    arrays = np.load(tmp_path / "grammar_variants.npz")
    for variant in VARIANTS:
        acc = arrays[f"{variant}_accuracy"]
        assert acc.shape == (QUICK.n_rules, len(QUICK.eps))
        assert np.all((acc >= 0) & (acc <= 1))
        # the statement quotes the measured crossing of every variant
        crossing = summary["variants"][variant]["crossing"][0]
        if crossing is not None and np.isfinite(crossing):
            assert f"{crossing:.3f}" in section.text
    # without noise the unambiguous grammars recover every class
    for variant in ("uniform", "zipf", "sparse"):
        np.testing.assert_array_equal(arrays[f"{variant}_accuracy"][:, 0], 1.0)
    assert "Uniform RHM: crossing at eps" in section.text


def test_same_seed_same_numbers_and_the_backends_agree():
    a = compute_grammar_variants(EXAMPLE, seed=2, backend="numba")
    b = compute_grammar_variants(EXAMPLE, seed=2, backend="numba")
    ref = compute_grammar_variants(EXAMPLE, seed=2, backend="numpy")
    for variant in VARIANTS:
        np.testing.assert_array_equal(a.accuracy[variant], b.accuracy[variant])
        np.testing.assert_allclose(a.accuracy[variant], ref.accuracy[variant], atol=1e-12)
    other = compute_grammar_variants(EXAMPLE, seed=3)
    assert any(not np.array_equal(a.accuracy[v], other.accuracy[v]) for v in VARIANTS)
