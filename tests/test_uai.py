"""UAI instances: the writer, our reader, the answer files and our tree solver.

Independent evidence: every tree of the grammar enumerated here (its probability from the rule
probabilities, no library code), a dense joint table built from the file's factors, the grammar's
BP kernel (the answers written beside the file), and the layout the format prescribes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hiergrammar import RHM, Grammar, InputError, graphs
from hiergrammar.families import filtered_grammar, sparse_rhm
from hiergrammar.uai import (
    UAIModel,
    UAISolution,
    exact_solution,
    format_number,
    grammar_model,
    read_evidence,
    read_solution,
    read_uai,
    solve_tree,
    to_uai,
    write_solution,
    write_uai,
)

GRAMMARS = {
    "rhm": lambda: RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0),
    "zipf": lambda: RHM(v=3, n_classes=2, m=3, s=2, L=2, seed=1, rule_law="zipf", zipf_a=1.5),
    "ambiguous": lambda: RHM(v=3, n_classes=3, m=3, s=2, L=2, seed=2, shared_tuples=True),
    "per_level": lambda: Grammar(
        {
            1: np.random.default_rng(3).integers(0, 3, (4, 2, 2)),  # 4 symbols over 3 leaves
            2: np.random.default_rng(4).integers(0, 4, (2, 3, 2)),  # 2 classes over 4 symbols
        },
        {1: np.full((4, 2), 0.5), 2: [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]},
        root_prior=[0.3, 0.7],
        v=3,
    ),
    "sparse": lambda: sparse_rhm(v=2, n_classes=2, m=2, s=2, s0=1, L=1, seed=0),
    "filtered": lambda: filtered_grammar(q=2, L=2, sigma=1.0, k=1, seed=0),
}


def _evidence(grammar, seed):
    rng = np.random.default_rng(seed)
    x = grammar.sample(1, seed=seed).x[0]
    ev = rng.uniform(0.0, 1.0, (grammar.d, grammar.card(0)))
    ev[rng.uniform(size=ev.shape) < 0.3] = 0.0
    ev[np.arange(grammar.d), x] = rng.uniform(0.2, 1.0, grammar.d)
    return ev


def _enumerate_trees(grammar, ev, prior):
    """Marginals (per variable, in file order) and log10 Z by listing every tree."""
    names = graphs.variable_names(grammar)
    index = {n: k for k, n in enumerate(names)}
    internal = [n for n in names if graphs.parse_name(n)[1] > 0]
    m = {n: grammar.rules[graphs.parse_name(n)[1]].shape[1] for n in internal}
    totals = [np.zeros(grammar.card(graphs.parse_name(n)[1])) for n in names]
    for root in range(grammar.n_classes):
        for choice in itertools.product(*(range(m[n]) for n in internal)):
            value = {names[0]: root}
            weight = prior[root]
            for n, r in zip(internal, choice, strict=True):
                _, level, i = graphs.parse_name(n)
                weight *= grammar.rule_probs[level][value[n], r]
                for j, child in enumerate(grammar.rules[level][value[n], r]):
                    value[graphs.node_name(level - 1, grammar.s * i + j)] = int(child)
            for i in range(grammar.d):
                weight *= ev[i, value[graphs.node_name(0, i)]]
            for n, x in value.items():
                totals[index[n]][x] += weight
    z = totals[0].sum()
    return [t / z for t in totals], math.log10(z)


def _dense_joint(model: UAIModel) -> tuple[list[np.ndarray], float]:
    """Marginals and log10 Z by multiplying every factor into the full joint table."""
    joint = np.ones(model.cards)
    for scope, table in zip(model.scopes, model.tables, strict=True):
        shape = [1] * model.n_variables
        for i in scope:
            shape[i] = model.cards[i]
        joint = joint * np.transpose(table, np.argsort(scope)).reshape(shape)
    z = joint.sum()
    axes = range(model.n_variables)
    with np.errstate(invalid="ignore"):
        marginals = [joint.sum(axis=tuple(j for j in axes if j != i)) / z for i in axes]
    return marginals, math.log10(z) if z > 0 else -math.inf


@pytest.mark.parametrize("name", sorted(GRAMMARS))
@pytest.mark.parametrize("order", ["descending", "ascending"])
def test_written_answers_are_brute_force_and_the_file_reproduces_them(tmp_path, name, order):
    grammar = GRAMMARS[name]()
    ev = _evidence(grammar, 7)
    path = tmp_path / f"{name}.uai"
    files = grammar.to_uai(path, evidence=ev, scope_order=order)
    assert (files.uai, files.mar, files.pr) == (path, tmp_path / f"{name}.uai.MAR", files.pr)
    model = read_uai(path)
    answers = read_solution(path, model.cards)
    # the answers against every tree listed with its probability
    marginals, log10_z = _enumerate_trees(grammar, ev, grammar.root_prior)
    for got, want in zip(answers.marginals, marginals, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)
    assert answers.log10_z == pytest.approx(log10_z, abs=1e-12)
    # the file alone gives them back: our tree solver, and the dense joint of its factors
    tree = solve_tree(model)
    for got, want in zip(tree.marginals, answers.marginals, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)
    assert tree.log10_z == pytest.approx(answers.log10_z, abs=1e-12)
    if model.n_variables <= 8:
        dense, log10_z = _dense_joint(model)
        for got, want in zip(dense, answers.marginals, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-12)
        assert log10_z == pytest.approx(answers.log10_z, abs=1e-12)


def test_layout_follows_the_format(tmp_path):
    # The format's example: a factor on (0, 1) lists x0's rows, the last variable fastest.
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    path = tmp_path / "m.uai"
    to_uai(rhm, path, evidence=np.ones((2, 3)), scope_order="ascending")
    lines = path.read_text().splitlines()
    assert lines[:4] == ["MARKOV", "3", "2 3 3", "4"]
    assert lines[4:8] == ["1 0", "3 0 1 2", "1 1", "1 2"]
    model = read_uai(path)
    table = model.tables[1]  # (class, left, right)
    for a, r in itertools.product(range(2), range(2)):
        b, c = rhm.rules[1][a, r]
        assert table[a, b, c] == 0.5
    assert table.sum() == 2.0
    # the 18 entries of that factor: three lines of three (x0, x1 fixed, x2 fastest)
    start = lines.index("18")
    rows = [list(map(float, line.split())) for line in lines[start + 1 : start + 7]]
    np.testing.assert_array_equal(np.array(rows).reshape(2, 3, 3), table)
    # descending order writes the same factor as (2, 1, 0) with the transposed table
    to_uai(rhm, path, evidence=np.ones((2, 3)))
    back = read_uai(path)
    assert back.scopes[1] == (2, 1, 0)
    np.testing.assert_array_equal(back.tables[1], table.transpose(2, 1, 0))


def test_numbers_are_positional_and_exact():
    for x in [0.0, 1.0, 0.1, 1 / 3, 1e-12, 2.5e-40, 123456.789, np.nextafter(1.0, 2.0)]:
        text = format_number(x)
        assert "e" not in text and "E" not in text
        assert float(text) == x
    model = UAIModel((2,), ((0,),), (np.array([1e-300, 1 / 7]),))
    assert model.tables[0][0] == float(format_number(1e-300))


def test_inconsistent_evidence_writes_minus_inf_and_nan(tmp_path):
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    rng = np.random.default_rng(0)
    while True:  # a string no tree produces
        x = rng.integers(0, 3, (1, rhm.d))
        if not rhm.parse(x).valid[0]:
            break
    path = tmp_path / "bad.uai"
    rhm.to_uai(path, evidence=np.eye(3)[x[0]])
    assert path.with_name("bad.uai.PR").read_text() == "PR\n-inf\n"
    mar = path.with_name("bad.uai.MAR").read_text().split()
    assert mar[:3] == ["MAR", "7", "2"] and mar[3:5] == ["nan", "nan"]
    answers = read_solution(path)
    assert not answers.consistent and all(np.isnan(m).all() for m in answers.marginals)
    assert not solve_tree(read_uai(path)).consistent  # the file itself says Z = 0
    assert _dense_joint(read_uai(path))[1] == -math.inf


def test_solution_files_round_trip(tmp_path):
    solution = UAISolution((np.array([0.1, 0.9]), np.array([1 / 3, 1 / 3, 1 / 3])), -12.5)
    write_solution(tmp_path / "s.uai", solution)
    back = read_solution(tmp_path / "s.uai", cards=(2, 3))
    assert back.log10_z == -12.5
    for a, b in zip(back.marginals, solution.marginals, strict=True):
        np.testing.assert_array_equal(a, b)
    # several solutions: the last one counts
    (tmp_path / "s.uai.PR").write_text("PR\n-1.0\n-BEGIN-\n-2.0\n")
    assert read_solution(tmp_path / "s.uai").log10_z == -2.0


BAD_FILES = [
    ("FOO\n1\n2\n0\n", "line 1: the network type must be one of"),
    ("MARKOV\n2\n2 x\n0\n", "line 3: the cardinality of variable 1 must be an integer, got 'x'"),
    ("MARKOV\n2\n2 0\n0\n", "line 3: the cardinality of variable 1 = 0 violates 1 <="),
    ("MARKOV\n2\n2 2\n1\n2 0 2\n\n4\n1 1 1 1\n", "line 5: a variable of factor 0 = 2 violates"),
    ("MARKOV\n2\n2 2\n1\n2 1 1\n\n4\n1 1 1 1\n", "line 5: the scope of factor 0 repeats"),
    ("MARKOV\n2\n2 2\n1\n2 0 1\n\n3\n0.1 0.2 0.3\n", "line 7: factor 0 has 3 entries, but its"),
    (
        "MARKOV\n2\n2 2\n1\n2 0 1\n\n4\n0.1 0.2\n0.3 abc\n",
        "line 9: the table of factor 0 holds 'abc'",
    ),
    (
        "MARKOV\n2\n2 2\n1\n2 0 1\n\n4\n0.1 0.2\n0.3 -1\n",
        "line 9: the table of factor 0 holds '-1'",
    ),
    ("MARKOV\n2\n2 2\n1\n2 0 1\n\n4\n0.1 0.2\n", "line 8: the file ends inside the table"),
    ("MARKOV\n1\n2\n1\n1 0\n2\n0.5 0.5\n7\n", "line 8: unexpected '7' after the last table"),
    ("MARKOV\n1\n2\n1\n1 0\n2\n0.5 inf\n", "line 7: the table of factor 0 holds 'inf'"),
    ("", "line 1: the file ends where the network type should be"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_malformed_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.uai"
    path.write_text(text)
    with pytest.raises(InputError, match="bad.uai") as err:
        read_uai(path)
    assert message in str(err.value)


def test_comments_and_bayes_files_are_read(tmp_path):
    path = tmp_path / "b.uai"
    path.write_text(
        "c a comment\nBAYES\n2\n2 2  # sizes\n2\n1 0\n2 0 1\n2\n0.3 0.7\n4\n.9 .1 .2 .8\n"
    )
    model = read_uai(path)
    assert model.network == "BAYES"
    sol = solve_tree(model)
    np.testing.assert_allclose(sol.marginals[1], [0.3 * 0.9 + 0.7 * 0.2, 0.3 * 0.1 + 0.7 * 0.8])
    assert sol.log10_z == pytest.approx(0.0, abs=1e-15)


def test_bad_answer_files_are_input_errors(tmp_path):
    write_uai(tmp_path / "m.uai", UAIModel((2,), ((0,),), (np.ones(2),)))
    (tmp_path / "m.uai.PR").write_text("PR\n-0.3\n")
    (tmp_path / "m.uai.MAR").write_text("MAR\n1 2 0.5 1.5\n")
    with pytest.raises(InputError, match=r"m.uai.MAR', line 2: the marginal of variable 0"):
        read_solution(tmp_path / "m.uai")
    (tmp_path / "m.uai.MAR").write_text("MAR\n1 3 0.5 0.5 0\n")
    with pytest.raises(InputError, match="variable 0 has cardinality 3, the model 2"):
        read_solution(tmp_path / "m.uai", cards=(2,))
    (tmp_path / "m.uai.PR").write_text("MAR\n-0.3\n")
    with pytest.raises(InputError, match="line 1: the first line must be 'PR'"):
        read_solution(tmp_path / "m.uai")


def test_hard_evidence_files_are_read_in_both_layouts(tmp_path):
    (tmp_path / "a.evid").write_text("2 0 1 3 0\n")
    (tmp_path / "b.evid").write_text("1\n2 0 1 3 0\n")
    assert read_evidence(tmp_path / "a.evid") == read_evidence(tmp_path / "b.evid") == {0: 1, 3: 0}
    with pytest.raises(InputError, match="an evidence variable = 3 violates"):
        read_evidence(tmp_path / "a.evid", n_variables=3)


def test_tree_solver_refuses_cycles_and_handles_forests():
    cycle = UAIModel((2, 2, 2), ((0, 1), (1, 2), (2, 0)), (np.ones((2, 2)),) * 3)
    with pytest.raises(InputError, match="cycle"):
        solve_tree(cycle)
    rng = np.random.default_rng(0)
    forest = UAIModel(
        (2, 3, 2, 2),
        ((0, 1), (3,), (), (3, 2)),
        (rng.uniform(size=(2, 3)), rng.uniform(size=2), np.array(0.5), rng.uniform(size=(2, 2))),
    )
    tree = solve_tree(forest)
    dense, log10_z = _dense_joint(
        UAIModel(
            forest.cards,
            forest.scopes[:2] + forest.scopes[3:],
            forest.tables[:2] + forest.tables[3:],
        )
    )
    assert tree.log10_z == pytest.approx(log10_z + math.log10(0.5), abs=1e-12)
    for got, want in zip(tree.marginals, dense, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_grammar_model_checks_its_input():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
    with pytest.raises(InputError, match="scope_order"):
        grammar_model(rhm, scope_order="random")
    with pytest.raises(InputError, match="leaf_evidence must have shape"):
        grammar_model(rhm, np.ones((3, 3)))
    with pytest.raises(InputError, match="MAX_ENTRIES"):
        grammar_model(RHM(v=64, n_classes=64, m=64, s=3, L=2, seed=0))


def test_no_evidence_means_prior_marginals_and_z_one():
    rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0, rule_law="zipf", zipf_a=1.0)
    sol = exact_solution(rhm, root_prior=[0.2, 0.8])
    assert sol.log10_z == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(sol.marginals[0], [0.2, 0.8])
    np.testing.assert_allclose(
        solve_tree(grammar_model(rhm, root_prior=[0.2, 0.8])).marginals[-1], sol.marginals[-1]
    )
