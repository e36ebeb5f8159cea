"""The interactive BP page (``hiergrammar.teach``, ``hiergrammar teach``) without a browser.

* The schedule is a valid two-pass sum-product schedule: every message is sent only after the
  messages it depends on, the upward pass comes first, and every variable's marginal is
  revealed exactly once.
* Every number the page embeds is right: each message equals the one computed independently
  with the dense 0/1 rule tensors (no code shared with ``tree_bp``), the marginals and the
  log-evidence equal brute-force enumeration, and the noisy leaves are wrong with probability
  eps (a statistical test).
* The page is self-contained (no URL, no external script or style, a CSP that forbids the
  network), deterministic, and written atomically; bad input is an ``InputError``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hiergrammar import RHM, InputError
from hiergrammar.bruteforce import brute_force_marginals
from hiergrammar.cli import main
from hiergrammar.graphs import node_name, rule_tensor
from hiergrammar.noise import UniformProcess, eps_evidence
from hiergrammar.teach import (
    DEFAULT_EPS,
    MAX_LEAVES,
    message_schedule,
    render_page,
    teaching_data,
    write_page,
)


def _neighbours(L: int, s: int) -> dict[str, set[str]]:
    """The factor graph's adjacency: prior, rule factors f{l}_{k}, evidence factors e{i}."""
    adj: dict[str, set[str]] = {}

    def link(a: str, b: str) -> None:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)

    link("prior", node_name(L, 0))
    for level in range(1, L + 1):
        for k in range(s ** (L - level)):
            link(node_name(level, k), f"f{level}_{k}")
            for j in range(s):
                link(f"f{level}_{k}", node_name(level - 1, s * k + j))
    for i in range(s**L):
        link(node_name(0, i), f"e{i}")
    return adj


@pytest.mark.parametrize("L,s", [(1, 2), (2, 2), (2, 3), (3, 2), (4, 2)])
def test_schedule_is_a_two_pass_sum_product_schedule(L, s):
    schedule = message_schedule(L, s)
    d, n_internal = s**L, (s**L - 1) // (s - 1)
    assert len(schedule) == 3 * d + 4 * n_internal - 1
    adj = _neighbours(L, s)
    sent: set[tuple[str, str]] = set()
    for message in schedule:
        assert message.target in adj[message.source], message
        # sum-product: a node sends to a neighbour once it heard from all its other neighbours
        needs = {(other, message.source) for other in adj[message.source] - {message.target}}
        assert needs <= sent, f"{message.source}->{message.target} sent too early"
        assert (message.source, message.target) not in sent
        sent.add((message.source, message.target))
    directions = [m.direction for m in schedule]
    assert directions == sorted(directions, key=lambda x: x != "up")  # all up, then all down
    variables = {node_name(lv, i) for lv in range(L + 1) for i in range(s ** (L - lv))}
    revealed = [m.reveals for m in schedule if m.reveals]
    assert sorted(revealed) == sorted(variables)
    # each variable receives both its messages before its marginal is revealed
    for k, message in enumerate(schedule):
        if message.reveals:
            into = {src for (src, dst) in sent if dst == message.reveals}
            assert into == adj[message.reveals]
            before = {(m.source, m.target) for m in schedule[: k + 1]}
            assert all((other, message.reveals) in before for other in adj[message.reveals])


def _dense_messages(rhm, evidence):
    """Sum-product on the factor graph with the dense rule tensors T[a, b_1..b_s]: every
    factor-to-variable message, normalised, keyed (source, target). Independent of tree_bp."""
    L, s = rhm.L, rhm.s
    tensors = {level: rule_tensor(rhm, level) for level in range(1, L + 1)}
    msg = {}
    up = {node_name(0, i): evidence[i] / evidence[i].sum() for i in range(rhm.d)}
    for i in range(rhm.d):
        msg[(f"e{i}", node_name(0, i))] = up[node_name(0, i)]
        msg[(node_name(0, i), f"f1_{i // s}")] = up[node_name(0, i)]
    for level in range(1, L + 1):
        for k in range(rhm.width(level)):
            table = tensors[level]
            for j in range(s):  # contract the children's axes one by one
                child = up[node_name(level - 1, s * k + j)]
                table = np.tensordot(table, child, axes=([1], [0]))
            name = node_name(level, k)
            up[name] = table / table.sum()
            msg[(f"f{level}_{k}", name)] = up[name]
            if level < L:
                msg[(name, f"f{level + 1}_{k // s}")] = up[name]
    root = node_name(L, 0)
    down = {root: np.full(rhm.n_classes, 1.0 / rhm.n_classes)}
    msg[("prior", root)] = down[root]
    for level in range(L, 0, -1):
        for k in range(rhm.width(level)):
            name = node_name(level, k)
            msg[(name, f"f{level}_{k}")] = down[name]
            children = [node_name(level - 1, s * k + j) for j in range(s)]
            for j, child in enumerate(children):
                # contract the parent's axis with its downward message and every other child
                table = np.tensordot(down[name], tensors[level], axes=([0], [0]))
                for jj in reversed(range(s)):
                    if jj != j:
                        table = np.tensordot(table, up[children[jj]], axes=([jj], [0]))
                down[child] = table / table.sum()
                msg[(f"f{level}_{k}", child)] = down[child]
    return msg


@pytest.mark.parametrize(
    "params", [dict(v=4, n_classes=2, m=2, s=2, L=2), dict(v=3, n_classes=2, m=2, s=3, L=2)]
)
def test_every_embedded_number_matches_independent_engines(params):
    grid = [0.0, 0.25, 0.5]
    data = teaching_data(**params, seed=4, eps=grid)
    rhm = RHM(**params, seed=4)
    datum = rhm.sample(1, seed=5)
    assert [n["truth"] for n in data["nodes"] if n["level"] == 0] == datum.x[0].tolist()
    for point, eps in zip(data["per_eps"], grid, strict=True):
        assert point["eps"] == eps
        t = min(1.0, eps * rhm.v / (rhm.v - 1))
        observed = UniformProcess(v=rhm.v).corrupt(datum.x, t, seed=6)
        assert point["observed"] == observed[0].tolist()
        evidence = eps_evidence(observed, eps=eps, v=rhm.v)
        np.testing.assert_allclose(point["evidence"], evidence[0], atol=1e-15)
        dense = _dense_messages(rhm, evidence[0])
        for step, values in zip(data["steps"], point["messages"], strict=True):
            np.testing.assert_allclose(
                values, dense[(step["source"], step["target"])], atol=1e-12, err_msg=str(step)
            )
        brute = brute_force_marginals(rhm, evidence)
        for node in data["nodes"]:
            expected = brute.marginals[node["level"]][0, node["index"]]
            np.testing.assert_allclose(point["marginals"][node["name"]], expected, atol=1e-12)
            assert point["most_likely"][node["name"]] == int(np.argmax(expected))
        assert abs(point["log_evidence"] - brute.log_evidence[0]) < 1e-10


def test_noisy_leaves_are_wrong_with_probability_eps_and_stay_wrong():
    wrong = {0.3: 0, 0.6: 0}
    total = 0
    for seed in range(40):
        data = teaching_data(v=4, n_classes=2, m=2, s=2, L=4, seed=seed, eps=[0.3, 0.6])
        truth = [n["truth"] for n in data["nodes"] if n["level"] == 0]
        low, high = (np.array(p["observed"]) != truth for p in data["per_eps"])
        assert not (low & ~high).any(), "a leaf wrong at eps = 0.3 must stay wrong at 0.6"
        wrong[0.3] += int(low.sum())
        wrong[0.6] += int(high.sum())
        total += len(truth)
    for eps, count in wrong.items():
        # binomial: within 4 standard errors of eps (p ~ 6e-5 of a false alarm)
        assert abs(count / total - eps) < 4 * np.sqrt(eps * (1 - eps) / total), (eps, count)


def test_page_is_self_contained_and_embeds_the_data():
    data = teaching_data(eps=[0.1, 0.4], seed=2)
    page = render_page(data)
    assert page.startswith("<!DOCTYPE html>")
    for forbidden in ("http://", "https://", "src=", "<link", "@import", "url(", "//cdn"):
        assert forbidden not in page, forbidden
    assert page.count("Content-Security-Policy") == 1
    assert "default-src 'none'" in page
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    assert len(scripts) == 2 and all("src" not in attrs for attrs, _ in scripts)
    payload = re.search(
        r'<script type="application/json" id="teach-data">(.*?)</script>', page, flags=re.S
    ).group(1)
    assert json.loads(payload) == json.loads(json.dumps(data))
    names = re.findall(r'class="variable" id="node-(h\d+_\d+)" data-node="(h\d+_\d+)"', page)
    assert sorted(a for a, b in names if a == b) == sorted(n["name"] for n in data["nodes"])
    assert "data-marginal" not in page.split("<script")[0]  # set by the script, step by step
    for k in range(len(data["steps"])):
        assert f'id="msg-{k}"' in page


def test_json_cannot_close_the_script_element():
    data = teaching_data(eps=[0.2])
    data["steps"][0]["text"] = "</script><b>"
    page = render_page(data)
    assert "</script><b>" not in page
    payload = re.search(r'id="teach-data">(.*?)</script>', page, flags=re.S).group(1)
    assert json.loads(payload)["steps"][0]["text"] == "</script><b>"


def test_same_seed_same_bytes(tmp_path):
    a = write_page(tmp_path / "a.html", seed=7, eps=[0.2, 0.5]).read_bytes()
    b = write_page(tmp_path / "b.html", seed=7, eps=[0.5, 0.2, 0.2]).read_bytes()
    c = write_page(tmp_path / "c.html", seed=8, eps=[0.2, 0.5]).read_bytes()
    assert a == b and a != c
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html", "c.html"]


def test_write_page_replaces_a_file_atomically(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("old")
    write_page(path, eps=[0.3])
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # no temporary file left
    with pytest.raises(InputError, match="is a folder"):
        write_page(tmp_path, eps=[0.3])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=[0.8]), r"eps=0.8 violates 0.0 <= eps <= 0.75"),
        (dict(eps=[]), "1 to 50 noise levels"),
        (dict(eps=[float("nan")]), "eps"),
        (dict(L=5), f"violates s\\*\\*L <= {MAX_LEAVES}"),
        (dict(v=9, m=2), "v=9 violates v <= 8"),
        (dict(seed=-1), "seed"),
        (dict(seed=None), "seed must be a non-negative integer"),
        (dict(initial_eps=2.0), "initial_eps"),
        (dict(m=9), "m"),
    ],
)
def test_bad_input_is_an_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        teaching_data(**kwargs)


def test_render_page_refuses_foreign_data():
    with pytest.raises(InputError, match="teaching_data"):
        render_page({"format": "something else"})


def test_initial_eps_picks_the_nearest_grid_point():
    assert teaching_data(eps=[0.1, 0.3, 0.5], initial_eps=0.35)["initial"] == 1
    assert teaching_data(eps=[0.5, 0.1, 0.3])["eps"] == [0.1, 0.3, 0.5]


def test_cli_writes_the_page(tmp_path, capsys):
    out = tmp_path / "bp.html"
    assert main(["teach", "--out", str(out), "--seed", "3", "--eps", "0.1", "0.3"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="teach-data">(.*?)</script>', page, flags=re.S).group(1))
    assert data["model"]["seed"] == 3 and data["eps"] == [0.1, 0.3]
    assert data["model"]["v"] == 4 and data["model"]["L"] == 2  # the tiny default


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--eps", "0.9"], "--eps=0.9 violates 0.0 <= --eps <= 0.75"),
        (["--eps", "0.1", "nan"], "--eps=nan violates 0.0 <= --eps <= 0.75"),
        (["--initial-eps", "0.8"], "--initial-eps=0.8 violates 0.0 <= --initial-eps <= 0.75"),
        (["--initial-eps", "inf"], "--initial-eps=inf violates"),
        (["--L", "5"], "too large to draw"),
        (["--seed", "-2"], "--seed"),
        ([], "--out is required"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    if argv:
        argv = ["--out", str(tmp_path / "x.html"), *argv]
    assert main(["teach", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


def test_cli_out_must_be_a_file(tmp_path, capsys):
    assert main(["teach", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cli_help_shows_the_tiny_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["teach", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "vocabulary size, v >= 2 (default 4)" in text
    assert "(default 32)" not in text


def test_eps_and_initial_eps_share_the_range_of_the_page(tmp_path, capsys):
    """Both flags take [0, 1 - 1/v]: at 1 - 1/v the leaf is redrawn with probability
    eps v / (v - 1) = 1, so its evidence is flat (1 - eps = eps / (v - 1) = 1/v); beyond it
    no probability is left. The bound follows --v."""
    data = teaching_data(v=4, eps=[0.75], initial_eps=0.75)
    assert np.allclose(data["per_eps"][0]["evidence"], 0.25)
    for kwargs in (dict(eps=[0.76]), dict(eps=[0.1], initial_eps=0.76)):
        with pytest.raises(InputError, match="<= 0.75"):
            teaching_data(v=4, **kwargs)
    out = tmp_path / "v8.html"
    argv = ["teach", "--out", str(out), "--v", "8", "--eps", "0.8", "--initial-eps", "0.85"]
    assert main(argv) == 0 and out.exists()  # 1 - 1/8 = 0.875
    capsys.readouterr()
    assert main([*argv[:-1], "0.9"]) == 2
    assert "--initial-eps=0.9 violates 0.0 <= --initial-eps <= 0.875" in capsys.readouterr().err


def test_cli_default_grid_is_cut_at_the_largest_noise_of_the_vocabulary(tmp_path, capsys):
    """v = 2 allows eps up to 1/2: the default grid drops 0.6 and 0.7 instead of refusing."""
    out = tmp_path / "v2.html"
    assert main(["teach", "--out", str(out), "--v", "2", "--n-classes", "2", "--m", "1"]) == 0
    page = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="teach-data">(.*?)</script>', page, flags=re.S).group(1))
    assert data["eps"] == [eps for eps in DEFAULT_EPS if eps <= 0.5]
    assert max(data["eps"]) == 0.5
