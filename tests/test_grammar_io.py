"""Grammar files: exact round trips of every family, and refusal (by name) of newer, truncated
and inconsistent files."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from hiergrammar import RHM, Grammar, InputError, filtered_grammar, load_grammar, sparse_rhm
from hiergrammar.grammar_io import FORMAT_NAME, FORMAT_VERSION, save_grammar


def _weighted() -> Grammar:
    rules = {
        1: np.array([[[0, 1], [1, 0], [2, 2]], [[0, 1], [1, 1], [0, 1]]]),
        2: np.array([[[0, 1], [1, 1], [1, 0]], [[1, 0], [0, 0], [0, 1]]]),
    }
    probs = {1: [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], 2: [[0.7, 0.3, 0.0], [0.4, 0.6, 0.0]]}
    return Grammar(rules, probs, root_prior=[1 / 3, 2 / 3], v=4, metadata={"note": "hand-made"})


GRAMMARS = {
    "weighted": _weighted,
    "rhm": lambda: RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=11),
    "rhm-options": lambda: RHM(
        v=[9, 7],
        n_classes=3,
        m=[2, 3],
        s=2,
        L=2,
        seed=2,
        rule_law="zipf",
        zipf_a=0.7,
        zipf_levels=[2],
    ),
    "rhm-shared": lambda: RHM(v=3, n_classes=3, m=3, s=2, L=2, seed=None, shared_tuples=True),
    "sparse": lambda: sparse_rhm(v=3, n_classes=2, m=2, s=2, s0=1, L=2, seed=4),
    "filtered": lambda: filtered_grammar(q=3, L=3, sigma=1.1, k=2, seed=5),
}


@pytest.mark.parametrize("name", list(GRAMMARS))
def test_round_trip_is_exact(name, tmp_path):
    g = GRAMMARS[name]()
    path = tmp_path / "sub" / f"{name}.npz"
    g.save(path)
    back = load_grammar(path)
    assert type(back) is type(g) and repr(back) == repr(g)
    assert back.cards == g.cards and (back.L, back.s) == (g.L, g.s)
    assert back.metadata == g.metadata
    for level in range(1, g.L + 1):
        for a, b in ((back.rules, g.rules), (back.rule_probs, g.rule_probs)):
            assert a[level].dtype == b[level].dtype and np.array_equal(a[level], b[level])
    assert np.array_equal(back.root_prior, g.root_prior)
    assert back.is_unambiguous == g.is_unambiguous
    x, y = back.sample(30, seed=3), g.sample(30, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(x.levels, y.levels, strict=True))
    if isinstance(g, RHM):
        assert back._save_params() == g._save_params()
        assert (back.v, back.m, back.seed, back.f) == (g.v, g.m, g.seed, g.f)
        if g.seed is not None:  # the parameters and seed regenerate the stored rules
            again = RHM(**g._save_params())
            assert all(np.array_equal(again.rules[l], back.rules[l]) for l in back.rules)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_the_documented_layout(tmp_path):
    g = _weighted()
    path = save_grammar(g, tmp_path / "g.grammar")  # the name is kept as given
    assert path.name == "g.grammar"
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(
            ["header", "rules_1", "rules_2", "rule_probs_1", "rule_probs_2", "root_prior"]
        )
        header = json.loads(str(archive["header"][()]))
        assert archive["rules_2"].dtype == np.int64 and archive["rule_probs_1"].dtype == np.float64
    assert header == {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "class": "Grammar",
        "L": 2,
        "s": 2,
        "cards": [4, 2, 2],
        "n_rules": [3, 3],
        "params": None,
        "metadata": {"note": "hand-made"},
    }


def _rewrite(path, out, header_update=None, drop=(), replace=None):
    """Copy a grammar file, changing its header or arrays."""
    with np.load(path, allow_pickle=False) as archive:
        members = {name: archive[name] for name in archive.files}
    header = json.loads(str(members["header"][()]))
    header.update(header_update or {})
    members["header"] = np.array(json.dumps(header))
    for name in drop:
        members.pop(name)
    members.update(replace or {})
    np.savez(out, **members)
    return out


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "g.npz"
    _weighted().save(path)
    return path


def test_newer_version_is_refused(saved, tmp_path):
    newer = _rewrite(saved, tmp_path / "new.npz", {"version": FORMAT_VERSION + 1})
    with pytest.raises(InputError, match=r"format version 2, newer than this hiergrammar reads"):
        load_grammar(newer)


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_file_is_refused(saved, tmp_path, keep):
    data = saved.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match=r"not a readable grammar file \(truncated, corrupt"):
        load_grammar(cut)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(replace={"rules_2": np.zeros((2, 2, 2), np.int64)}),
            r"rules_2 has shape \(2, 2, 2\) but the header gives \(2, 3, 2\)",
        ),
        (
            dict(replace={"rules_2": np.full((2, 3, 2), 5, np.int64)}),
            r"inconsistent grammar: rules\[2\] holds the value 5",
        ),
        (
            dict(replace={"rule_probs_1": np.full((2, 3), 0.5)}),
            r"inconsistent grammar: rule_probs\[1\] row 0 sums to 1\.5",
        ),
        (
            dict(replace={"root_prior": np.array([-0.5, 1.5])}),
            r"root_prior holds a negative probability",
        ),
        (dict(replace={"rules_1": np.zeros((2, 3, 2))}), r"rules_1 has dtype float64"),
        (
            dict(drop=["rule_probs_2"]),
            r"lacks the array\(s\) \['rule_probs_2'\]: the file is incomplete",
        ),
        (
            dict(replace={"rules_3": np.zeros((1, 1, 2), np.int64)}),
            r"unexpected array\(s\) \['rules_3'\]",
        ),
        (dict(header_update={"cards": [4, 2]}), r"inconsistent header: L=2 needs 3 cards"),
        (dict(header_update={"format": "something-else"}), r"is not a hiergrammar grammar file"),
        (dict(header_update={"class": "Pickle"}), r"unknown grammar class 'Pickle'"),
        (
            dict(header_update={"cards": [2, 2, 2]}),
            r"inconsistent grammar: rules\[1\] holds the value 2 .* \[0, v\) = \[0, 2\)",
        ),
    ],
)
def test_inconsistent_files_are_refused_by_name(saved, tmp_path, change, message):
    bad = _rewrite(saved, tmp_path / "bad.npz", **change)
    with pytest.raises(InputError, match=message):
        load_grammar(bad)


def test_rhm_parameters_must_match_the_arrays(tmp_path):
    path = tmp_path / "rhm.npz"
    RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0).save(path)
    params = RHM(v=4, n_classes=3, m=2, s=2, L=2, seed=0)._save_params()
    bad = _rewrite(path, tmp_path / "bad.npz", {"params": params})
    with pytest.raises(
        InputError, match=r"rules_2 has shape \(2, 2, 2\) but the RHM parameters give \(3, 2, 2\)"
    ):
        load_grammar(bad)
    bad = _rewrite(path, tmp_path / "bad2.npz", {"params": {**params, "seed": 1.5}})
    with pytest.raises(InputError, match=r"seed=1\.5 is not a valid seed"):
        load_grammar(bad)


def test_other_files_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"does not exist"):
        load_grammar(tmp_path / "missing.npz")
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(InputError, match=r"single \.npy array"):
        load_grammar(npy)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, header=np.array([{"format": FORMAT_NAME}], dtype=object))
    with pytest.raises(InputError, match=r"not a readable grammar file"):
        load_grammar(pickled)  # object arrays are never unpickled
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("other.txt", "hello")
    plain_zip = tmp_path / "z.npz"
    plain_zip.write_bytes(buffer.getvalue())
    with pytest.raises(InputError, match=r"no 'header' member"):
        load_grammar(plain_zip)
    with pytest.raises(InputError, match=r"grammar must be a hiergrammar Grammar"):
        save_grammar("not a grammar", tmp_path / "x.npz")
    odd = Grammar({1: np.array([[[0, 1]]])}, metadata={"bad": object()})
    with pytest.raises(InputError, match=r"metadata must be JSON data"):
        odd.save(tmp_path / "odd.npz")


@pytest.mark.parametrize(
    "content",
    [b"v = 4\nm = 2\n", b"", b"\x80\x03]q\x00.", "caf\u00e9\n".encode("utf-16")],
    ids=["text", "empty", "pickle-bytes", "utf16"],
)
def test_a_file_that_is_no_archive_is_named_as_such_without_pickle_advice(tmp_path, content):
    bad = tmp_path / "notes.npz"
    bad.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_grammar(bad)
    message = str(caught.value)
    assert message == f"{bad} is not a grammar file (not an .npz archive)"
    assert "pickle" not in message


def test_an_archive_with_object_arrays_gets_no_pickle_advice(tmp_path):
    pickled = tmp_path / "p.npz"
    np.savez(pickled, header=np.array([{"format": FORMAT_NAME}], dtype=object))
    with pytest.raises(InputError) as caught:
        load_grammar(pickled)
    assert "pickle" not in str(caught.value)
    assert str(pickled) in str(caught.value)
