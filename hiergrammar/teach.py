"""An interactive page for teaching belief propagation: step through every message of a tree.

:func:`write_page` (the command ``hiergrammar teach --out FILE.html``) writes one
self-contained HTML file: inline CSS, JavaScript and SVG, no external resource, and a content
security policy that forbids the browser any network access. The page draws a tiny grammar's
factor graph (docs/model.md §3) with its noisy leaves. The user steps through the upward pass,
then the downward pass, one message at a time (buttons *previous*, *next*, *reset*, *end*, or
the arrow keys, ``Home`` and ``End``); each message's values are drawn at its edge, and a
variable's marginal appears as soon as both of its messages are known. A slider chooses the
noise ``eps`` from a precomputed grid.

Every number on the page is computed here, by the library, and embedded as JSON
(:func:`teaching_data`); the page's script only displays them:

* the grammar is an :class:`~hiergrammar.rhm.RHM` with rules drawn from ``seed`` and one datum
  drawn from ``seed + 1``;
* the noisy leaves come from :class:`~hiergrammar.noise.UniformProcess` with seed ``seed + 2``:
  each leaf is redrawn uniformly with probability ``eps v / (v - 1)``, so it shows a wrong
  symbol with probability ``eps``. The same random numbers serve every ``eps`` of the grid, so
  a leaf that is wrong at some ``eps`` stays wrong at larger ones;
* the evidence of a leaf is the exact likelihood of that process, which is the
  epsilon-process evidence centred on the observed symbol (:class:`~hiergrammar.noise.EpsProcess`):
  ``1 - eps`` on it and ``eps / (v - 1)`` on each other symbol;
* every message is an entry of :func:`hiergrammar.bp.tree_bp`'s ``up`` and ``down`` arrays,
  and the marginals are its ``marginals``.

After the last step every variable's SVG element carries ``data-node`` (its name ``h{l}_{i}``)
and ``data-marginal`` (its marginal as a JSON list), which a test reads in a headless browser.

Examples
--------
>>> data = teaching_data(v=4, n_classes=2, m=2, s=2, L=2, seed=0, eps=[0.1, 0.4])
>>> len(data["steps"]), [node["name"] for node in data["nodes"]][:3]
(23, ['h2_0', 'h1_0', 'h1_1'])
>>> data["steps"][0]["source"], data["steps"][0]["target"], data["steps"][-1]["target"]
('e0', 'h0_0', 'h0_3')
>>> page = render_page(data)
>>> page.startswith("<!DOCTYPE html>") and "<script src" not in page
True
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.artifacts import check_output_file, save_text
from hiergrammar.graphs import node_name
from hiergrammar.validation import InputError, check_float, check_int, check_seed

__all__ = [
    "DEFAULT_EPS",
    "FORMAT",
    "MAX_CARD",
    "MAX_LEAVES",
    "TEACH_DEFAULTS",
    "Message",
    "check_eps_grid",
    "check_initial_eps",
    "max_eps",
    "message_schedule",
    "render_page",
    "teaching_data",
    "write_page",
]

#: The default grammar: 7 variables, 4 symbols, 2 classes (the first tutorial's size).
TEACH_DEFAULTS: dict[str, int] = {"v": 4, "n_classes": 2, "m": 2, "s": 2, "L": 2}
#: The default grid of noise levels for the slider.
DEFAULT_EPS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: Bounds that keep the drawing readable: leaves ``s**L`` and symbols per variable.
MAX_LEAVES = 16
MAX_CARD = 8
#: Identifies the embedded JSON (``data["format"]``, ``data["version"]``).
FORMAT = "hiergrammar.teach"
_VERSION = 1
_MAX_GRID = 50


# -- the schedule of messages ----------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One message of the two-pass schedule on the factor graph.

    Attributes
    ----------
    direction : {"up", "down"}
        The pass it belongs to (towards the root, or away from it).
    source, target : str
        Node names: variables ``h{l}_{i}``, rule factors ``f{l}_{i}`` (the factor below
        variable ``h{l}_{i}``), the root prior ``prior`` and leaf evidence factors ``e{i}``.
    level, index : int
        The entry ``tree_bp(...).<direction>[level][:, index]`` that holds its values.
    slot : str
        The variable at whose parent edge, or own factor edge, the page draws it
        (``"h0_1"``: the edge above ``h0_1``; ``"f1_0"``: the edge between ``h1_0`` and
        ``f1_0``; ``"e0"``: the edge below leaf 0; ``"prior"``: the edge above the root).
    reveals : str or None
        The variable whose marginal is known once this message is sent (its downward message).
    """

    direction: str
    source: str
    target: str
    level: int
    index: int
    slot: str
    reveals: str | None = None


def message_schedule(L: int, s: int) -> list[Message]:
    """The messages of exact BP on the RHM factor graph of depth ``L`` and branching ``s``,
    in the order the page shows them: the upward pass leaf by leaf and level by level, then the
    downward pass from the root.

    Messages into the prior and the evidence factors, which no marginal needs, are left out.
    A variable has two neighbours (its factor above and its factor below), so what it sends to
    one is what it received from the other: that is why two consecutive messages can hold the
    same values.

    Parameters
    ----------
    L : int
        Depth, ``L >= 1``.
    s : int
        Branching factor, ``s >= 2``.

    Returns
    -------
    list of Message
        ``3 d + 4 N - 1`` messages for ``d = s**L`` leaves and ``N`` internal nodes: upward,
        two per leaf, one from each rule factor and one from each internal variable but the
        root; downward, one from the prior, one from each internal variable to its rule
        factor and one from each rule factor to each child.

    Examples
    --------
    >>> schedule = message_schedule(1, 2)
    >>> [f"{m.source}->{m.target}" for m in schedule[:5]]     # upward
    ['e0->h0_0', 'h0_0->f1_0', 'e1->h0_1', 'h0_1->f1_0', 'f1_0->h1_0']
    >>> [f"{m.source}->{m.target}" for m in schedule[5:]]     # downward
    ['prior->h1_0', 'h1_0->f1_0', 'f1_0->h0_0', 'f1_0->h0_1']
    """
    L = check_int("L", L, 1)
    s = check_int("s", s, 2)
    out: list[Message] = []
    for i in range(s**L):
        leaf = node_name(0, i)
        parent_factor = f"f1_{i // s}"
        out.append(Message("up", f"e{i}", leaf, 0, i, f"e{i}"))
        out.append(Message("up", leaf, parent_factor, 0, i, leaf))
    for level in range(1, L + 1):
        for k in range(s ** (L - level)):
            name = node_name(level, k)
            out.append(Message("up", f"f{level}_{k}", name, level, k, f"f{level}_{k}"))
            if level < L:
                out.append(Message("up", name, f"f{level + 1}_{k // s}", level, k, name))
    root = node_name(L, 0)
    out.append(Message("down", "prior", root, L, 0, "prior", reveals=root))
    for level in range(L, 0, -1):
        for k in range(s ** (L - level)):
            name, factor = node_name(level, k), f"f{level}_{k}"
            out.append(Message("down", name, factor, level, k, factor))
            for j in range(s):
                child = node_name(level - 1, s * k + j)
                out.append(Message("down", factor, child, level - 1, s * k + j, child, child))
    return out


# -- the numbers --------------------------------------------------------------------------------
def max_eps(v: int) -> float:
    """The largest noise level a page shows, ``1 - 1/v``: a leaf is redrawn uniformly with
    probability ``eps v / (v - 1)``, which reaches 1 there (the leaf carries no information);
    a larger ``eps`` is no probability.

    >>> max_eps(4)
    0.75
    """
    return 1.0 - 1.0 / check_int("v", v, 2)


def check_eps_grid(eps: Any, v: int, name: str = "eps") -> list[float]:
    """The slider's grid: 1 to 50 finite noise levels in ``[0, 1 - 1/v]`` (:func:`max_eps`),
    sorted, duplicates dropped; else an :class:`~hiergrammar.validation.InputError` naming
    ``name`` (e.g. ``"--eps"``) and the bound.

    >>> check_eps_grid([0.5, 0.1, 0.5], v=4)
    [0.1, 0.5]
    """
    values = np.atleast_1d(np.asarray(eps, dtype=object))
    if values.ndim != 1 or not 1 <= values.size <= _MAX_GRID:
        raise InputError(f"{name} must hold 1 to {_MAX_GRID} noise levels, got {values.size}")
    high = max_eps(v)
    return sorted({check_float(name, value, 0.0, high) for value in values})


def check_initial_eps(initial_eps: Any, v: int, name: str = "initial_eps") -> float | None:
    """``initial_eps`` (None, or a noise level in the grid's range ``[0, 1 - 1/v]``), else an
    :class:`~hiergrammar.validation.InputError` naming ``name`` and the bound.

    >>> check_initial_eps(0.3, v=4), check_initial_eps(None, v=4)
    (0.3, None)
    """
    if initial_eps is None:
        return None
    return check_float(name, initial_eps, 0.0, max_eps(v))


def _rule_text(rules: np.ndarray) -> str:
    return "; ".join(
        f"{a} → " + ", ".join("(" + " ".join(map(str, t)) + ")" for t in tuples)
        for a, tuples in enumerate(rules)
    )


def _explain(message: Message, rhm: Any) -> str:
    """What the message is, in one or two sentences, for the page's side panel."""
    s, L = rhm.s, rhm.L
    src, dst = message.source, message.target
    if message.direction == "up":
        if src.startswith("e"):
            return (
                f"The evidence factor of leaf {dst} sends the leaf's likelihood, normalised: "
                "how well each symbol explains what was observed."
            )
        if src.startswith("h"):
            return (
                f"{src} has two neighbours, so it forwards to its factor above, {dst}, "
                "what it received from below."
            )
        level = message.level
        children = ", ".join(node_name(level - 1, s * message.index + j) for j in range(s))
        return (
            f"The rule factor {src} sends {dst}, for each value a, the sum over a's rules "
            f"a → (b1 … b{s}) of the product of the messages from {children} at b1 … b{s} "
            f"(normalised). Rules of level {level}: {_rule_text(rhm.rules[level])}."
        )
    if src == "prior":
        return f"The prior factor sends the root {dst} the class prior: the downward pass starts."
    if src.startswith("h"):
        return (
            f"{src} forwards to its rule factor {dst} what it received from above "
            f"(the {'prior' if message.level == L else 'factor above'})."
        )
    parent_level = message.level + 1
    position = message.index % s
    siblings = [
        node_name(message.level, s * (message.index // s) + j) for j in range(s) if j != position
    ]
    return (
        f"The rule factor {src} sends {dst}, for each value b, the sum over the rules "
        f"a → (b1 … b{s}) with b{position + 1} = b of the message from above at a times the "
        f"messages from {', '.join(siblings)} at their symbols (normalised). {dst}'s own upward "
        f"message is left out, so its evidence is not counted twice. Rules of level "
        f"{parent_level}: {_rule_text(rhm.rules[parent_level])}. Now {dst}'s marginal, the "
        "normalised product of its two messages, is known."
    )


def _floats(array: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(array, dtype=np.float64).ravel()]


def teaching_data(
    v: int = 4,
    n_classes: int = 2,
    m: int = 2,
    s: int = 2,
    L: int = 2,
    *,
    seed: int = 0,
    eps: Any = None,
    initial_eps: float | None = None,
) -> dict[str, Any]:
    """Everything the page shows, computed by the library, as a JSON-compatible dict.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM (see :class:`hiergrammar.rhm.RHM`); at most :data:`MAX_LEAVES` leaves
        ``s**L`` and :data:`MAX_CARD` values per variable, so that the drawing stays legible.
    seed : int
        Seed of the rules (``seed``), the datum (``seed + 1``) and the noise (``seed + 2``).
    eps : sequence of float, optional
        The slider's grid: 1 to 50 noise levels in ``[0, 1 - 1/v]`` (sorted, duplicates
        dropped); default :data:`DEFAULT_EPS` up to ``1 - 1/v``.
    initial_eps : float, optional
        The level shown first (the grid point nearest to it), in ``[0, 1 - 1/v]`` as the
        grid; default the grid's middle.

    Returns
    -------
    dict
        ``format``, ``version``; ``model`` (``v, n_classes, m, s, L, seed`` and the rules by
        level); ``nodes`` (``name, level, index, card, truth`` of every variable, root first);
        ``steps`` (one per :class:`Message`: ``direction, source, target, level, index,
        slot, reveals, text``); ``eps`` (the grid) and ``initial``; ``per_eps``: for each
        grid point ``eps``, ``observed`` (the noisy leaves, ``(d,)``), ``evidence``
        (``(d, v)``), ``messages`` (one list of values per step), ``marginals`` (node name ->
        list), ``most_likely`` (node name -> the value of largest marginal) and
        ``log_evidence`` (``log P(observed leaves)``).

    Raises
    ------
    InputError
        For parameters the RHM refuses, a grammar too large to draw, a noise level
        (``eps`` or ``initial_eps``) outside ``[0, 1 - 1/v]`` (:func:`max_eps`) or a bad seed.

    Examples
    --------
    >>> data = teaching_data(eps=[0.2])
    >>> point = data["per_eps"][0]
    >>> len(point["observed"]), round(sum(point["marginals"]["h2_0"]), 12)
    (4, 1.0)
    """
    from hiergrammar.bp import tree_bp
    from hiergrammar.noise import EpsProcess, UniformProcess
    from hiergrammar.rhm import RHM

    seed = check_seed("seed", seed, allow_generator=False)
    if seed is None:
        raise InputError("seed must be a non-negative integer (the page must be reproducible)")
    rhm = RHM(v=v, n_classes=n_classes, m=m, s=s, L=L, seed=seed)
    if rhm.d > MAX_LEAVES:
        raise InputError(f"s**L = {rhm.d} leaves violates s**L <= {MAX_LEAVES} (too large to draw)")
    for name, card in (("v", rhm.v), ("n_classes", rhm.n_classes)):
        if card > MAX_CARD:
            raise InputError(f"{name}={card} violates {name} <= {MAX_CARD} (too large to draw)")
    if eps is None:  # the default grid, cut where the noise leaves no information
        eps = [level for level in DEFAULT_EPS if level <= max_eps(rhm.v)]
    grid = check_eps_grid(eps, rhm.v)
    target = check_initial_eps(initial_eps, rhm.v)
    if target is None:
        initial = (len(grid) - 1) // 2
    else:
        initial = int(np.argmin([abs(e - target) for e in grid]))

    datum = rhm.sample(1, seed=seed + 1)
    uniform, eps_process = UniformProcess(v=rhm.v), EpsProcess(v=rhm.v)
    schedule = message_schedule(rhm.L, rhm.s)
    per_eps = []
    for value in grid:
        # resampled w.p. eps v/(v-1) => wrong w.p. eps; the same draws for every eps
        t = min(1.0, value * rhm.v / (rhm.v - 1))
        observed = uniform.corrupt(datum.x, t, seed=seed + 2)
        evidence = eps_process.leaf_likelihood(observed, t=value)  # (1, d, v)
        result = tree_bp(rhm, evidence)
        arrays = {"up": result.up, "down": result.down}
        per_eps.append(
            {
                "eps": value,
                "observed": [int(x) for x in observed[0]],
                "evidence": [_floats(row) for row in evidence[0]],
                "messages": [
                    _floats(arrays[msg.direction][msg.level][0, msg.index]) for msg in schedule
                ],
                "marginals": {
                    node_name(level, i): _floats(result.marginals[level][0, i])
                    for level in range(rhm.L, -1, -1)
                    for i in range(rhm.width(level))
                },
                "most_likely": {
                    node_name(level, i): int(result.marginals[level][0, i].argmax())
                    for level in range(rhm.L, -1, -1)
                    for i in range(rhm.width(level))
                },
                "log_evidence": float(result.log_evidence[0]),
            }
        )
    nodes = [
        {
            "name": node_name(level, i),
            "level": level,
            "index": i,
            "card": rhm.card(level),
            "truth": int(datum.levels[level][0, i]),
        }
        for level in range(rhm.L, -1, -1)
        for i in range(rhm.width(level))
    ]
    steps = [
        {
            "direction": msg.direction,
            "source": msg.source,
            "target": msg.target,
            "level": msg.level,
            "index": msg.index,
            "slot": msg.slot,
            "reveals": msg.reveals,
            "text": _explain(msg, rhm),
        }
        for msg in schedule
    ]
    return {
        "format": FORMAT,
        "version": _VERSION,
        "model": {
            "v": rhm.v,
            "n_classes": rhm.n_classes,
            "m": rhm.m,
            "s": rhm.s,
            "L": rhm.L,
            "seed": seed,
            "rules": {str(level): rhm.rules[level].tolist() for level in range(1, rhm.L + 1)},
        },
        "nodes": nodes,
        "steps": steps,
        "eps": grid,
        "initial": initial,
        "per_eps": per_eps,
    }


# -- the page -----------------------------------------------------------------------------------
_BAR_W, _BAR_GAP, _BAR_H = 14, 2, 30
_BOX_H = _BAR_H + 24  # bars, value labels above, symbol labels below
_BAND = _BOX_H + 24  # vertical room for one band of message boxes (no overlap)
_ROW = 34  # vertical room of a row of variables or factors
_RADIUS = 17


def _box_width(card: int) -> int:
    return card * (_BAR_W + _BAR_GAP) + 6


def _layout(v: int, n_classes: int, s: int, L: int) -> dict[str, Any]:
    """Coordinates of every drawn node (centre x, y) and the picture's size."""
    box = _box_width(max(v, n_classes))
    dx = max(2 * box + 40, 2 * _box_width(v) + 2 * _RADIUS + 30)
    margin = box + 60
    d = s**L
    x_of = {}
    for level in range(L + 1):
        span = s**level
        for i in range(s ** (L - level)):
            x_of[(level, i)] = margin + (i * span + (span - 1) / 2) * dx
    y = 30.0
    ys: dict[str, float] = {"prior": y}
    y += _ROW / 2 + _BAND + _ROW / 2
    for level in range(L, -1, -1):
        ys[f"h{level}"] = y
        y += _ROW / 2 + _BAND + _ROW / 2
        ys[f"f{level}" if level > 0 else "e"] = y
        if level > 0:
            y += _ROW / 2 + _BAND + _ROW / 2
    ys["observed"] = y + 28
    width = margin * 2 + (d - 1) * dx
    return {"x": x_of, "y": ys, "width": width, "height": y + 60, "dx": dx}


def _bars(prefix: str, card: int, x0: float, y0: float, css: str) -> list[str]:
    """An empty bar chart (heights set by the script) with ``card`` bars, top-left at x0, y0."""
    out = [
        f'<g class="box {css}" id="{prefix}" visibility="hidden">',
        f'<rect class="frame" x="{x0:.1f}" y="{y0:.1f}" width="{_box_width(card)}" '
        f'height="{_BOX_H}" rx="3"/>',
    ]
    base = y0 + 12 + _BAR_H
    for b in range(card):
        bx = x0 + 4 + b * (_BAR_W + _BAR_GAP)
        out.append(
            f'<rect class="bar" id="{prefix}-b{b}" x="{bx:.1f}" y="{base:.1f}" '
            f'width="{_BAR_W}" height="0"/>'
        )
        out.append(
            f'<text class="val" id="{prefix}-t{b}" x="{bx + _BAR_W / 2:.1f}" '
            f'y="{base - 2:.1f}"></text>'
        )
        out.append(f'<text class="sym" x="{bx + _BAR_W / 2:.1f}" y="{base + 9:.1f}">{b}</text>')
    out.append("<title></title></g>")
    return out


def _svg(data: dict[str, Any]) -> str:
    model = data["model"]
    v, n_c, s, L = model["v"], model["n_classes"], model["s"], model["L"]
    lay = _layout(v, n_c, s, L)
    X, Y = lay["x"], lay["y"]
    card = {node["name"]: node["card"] for node in data["nodes"]}
    parts = [
        f'<svg id="graph" width="{lay["width"]:.0f}" '
        f'height="{lay["height"]:.0f}" viewBox="0 0 {lay["width"]:.0f} {lay["height"]:.0f}" '
        'role="img" aria-label="factor graph of the tree">'
    ]
    # edges: prior-root, variable-own factor, factor-child, leaf-evidence
    root_x = X[(L, 0)]
    edges = [("prior", root_x, Y["prior"], root_x, Y[f"h{L}"])]
    for level in range(L, 0, -1):
        for k in range(s ** (L - level)):
            x = X[(level, k)]
            edges.append((f"f{level}_{k}", x, Y[f"h{level}"], x, Y[f"f{level}"]))
            for j in range(s):
                child = (level - 1, s * k + j)
                edges.append((node_name(*child), x, Y[f"f{level}"], X[child], Y[f"h{level - 1}"]))
    for i in range(s**L):
        edges.append((f"e{i}", X[(0, i)], Y["h0"], X[(0, i)], Y["e"]))
    for slot, x1, y1, x2, y2 in edges:
        parts.append(
            f'<line class="edge" id="edge-{slot}" x1="{x1:.1f}" y1="{y1:.1f}" '
            f'x2="{x2:.1f}" y2="{y2:.1f}"/>'
        )
    # message boxes: for each step, at its slot: upward on the left, downward on the right
    for k, step in enumerate(data["steps"]):
        slot = step["slot"]
        variable = node_name(step["level"], step["index"])
        width = _box_width(card[variable])
        if slot == "prior" or slot.startswith("f"):
            level, index = (L, 0) if slot == "prior" else map(int, slot[1:].split("_"))
            x = X[(level, index)]
            y_top = Y["prior"] if slot == "prior" else Y[f"h{level}"]
        elif slot.startswith("e"):
            x, y_top = X[(0, int(slot[1:]))], Y["h0"]
        else:  # the edge above variable h{l}_{i}: between its parent factor and it
            level, index = map(int, slot[1:].split("_"))
            x, y_top = X[(level, index)], Y[f"f{level + 1}"]
        y0 = y_top + _ROW / 2 + (_BAND - _BOX_H) / 2
        x0 = x - width - 6 if step["direction"] == "up" else x + 6
        parts += _bars(f"msg-{k}", card[variable], x0, y0, step["direction"])
    # factors
    parts.append(
        f'<g class="factor" id="node-prior"><rect x="{root_x - 9:.1f}" y="{Y["prior"] - 9:.1f}" '
        'width="18" height="18"/>'
        f'<text class="fname" x="{root_x + 14:.1f}" y="{Y["prior"] + 4:.1f}">prior</text></g>'
    )
    for level in range(L, 0, -1):
        for k in range(s ** (L - level)):
            x, y = X[(level, k)], Y[f"f{level}"]
            parts.append(
                f'<g class="factor" id="node-f{level}_{k}"><rect x="{x - 9:.1f}" y="{y - 9:.1f}" '
                f'width="18" height="18"/><text class="fname" x="{x + 14:.1f}" '
                f'y="{y + 4:.1f}">f{level}_{k}</text><title>rule factor of h{level}_{k}: 1 on '
                f"the rules of level {level}</title></g>"
            )
    for i in range(s**L):
        x, y = X[(0, i)], Y["e"]
        parts.append(
            f'<g class="factor evidence" id="node-e{i}"><rect x="{x - 9:.1f}" y="{y - 9:.1f}" '
            f'width="18" height="18"/><text class="fname" x="{x + 14:.1f}" y="{y + 4:.1f}">'
            f'e{i}</text></g><text class="observed" id="observed-{i}" x="{x:.1f}" '
            f'y="{Y["observed"]:.1f}"></text>'
        )
    # variables, with their truth on the left and their marginal box on the right
    for node in data["nodes"]:
        name, level, index = node["name"], node["level"], node["index"]
        x, y = X[(level, index)], Y[f"h{level}"]
        parts.append(f'<g class="variable" id="node-{name}" data-node="{name}">')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{_RADIUS}"/>')
        parts.append(f'<text class="vname" x="{x:.1f}" y="{y + 4:.1f}">{name}</text>')
        parts.append(
            f'<text class="truth" x="{x - _RADIUS - 5:.1f}" y="{y + 4:.1f}">'
            f"true {node['truth']}</text>"
        )
        parts += _bars(f"marg-{name}", node["card"], x + _RADIUS + 6, y - _BOX_H / 2, "marginal")
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; }
header { padding: 10px 18px; background: #f4f4f6; border-bottom: 1px solid #ddd; }
header h1 { font-size: 19px; margin: 0 0 4px 0; }
header p { margin: 2px 0; font-size: 13px; color: #444; max-width: 1100px; }
#controls { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; padding: 8px 18px;
  border-bottom: 1px solid #ddd; position: sticky; top: 0; background: #fff; z-index: 2; }
#controls button { font-size: 14px; padding: 4px 12px; }
#status { font-weight: 600; min-width: 220px; }
#main { display: flex; flex-wrap: wrap; }
#picture { overflow: auto; flex: 1 1 640px; }
#panel { flex: 0 1 380px; padding: 10px 16px; font-size: 13px; border-left: 1px solid #ddd; }
#panel table { border-collapse: collapse; margin-top: 6px; }
#panel td, #panel th { padding: 1px 8px 1px 0; text-align: right;
  font-variant-numeric: tabular-nums; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px;
  vertical-align: middle; }
.edge { stroke: #999; stroke-width: 1.5; }
.edge.current { stroke: #222; stroke-width: 3.5; }
.variable circle { fill: #fff; stroke: #333; stroke-width: 1.5; }
.variable.current circle, .factor.current rect { stroke: #d62728; stroke-width: 3; }
.factor rect { fill: #555; stroke: #222; }
.factor.evidence rect { fill: #8c8c8c; }
.vname { font-size: 11px; text-anchor: middle; }
.fname { font-size: 10px; fill: #666; }
.truth { font-size: 10px; text-anchor: end; fill: #2a7d2a; }
.observed { font-size: 12px; text-anchor: middle; }
.observed.wrong { fill: #d62728; font-weight: 700; }
.box .frame { fill: #fff; stroke: #bbb; }
.box.current .frame { stroke: #222; stroke-width: 2.5; }
.box.up .bar { fill: #1f77b4; }
.box.down .bar { fill: #ff7f0e; }
.box.marginal .bar { fill: #555; }
.box .val { font-size: 7.5px; text-anchor: middle; fill: #333; }
.box .sym { font-size: 7px; text-anchor: middle; fill: #888; }
.hide-truth .truth { display: none; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("teach-data").textContent);
  const STEPS = DATA.steps, N = STEPS.length, BAR_H = __BAR_H__;
  const BOX_TOP = 12;
  const slider = document.getElementById("eps");
  let step = 0;
  let epsIndex = DATA.initial;
  const byId = (id) => document.getElementById(id);
  const fmt = (x, digits) => x.toFixed(digits);
  const short = (x) => (x >= 0.995 ? "1" : x < 0.005 ? "0" : x.toFixed(2).slice(1));

  function fill(prefix, values, visible, current) {
    const box = byId(prefix);
    box.setAttribute("visibility", visible ? "visible" : "hidden");
    box.classList.toggle("current", Boolean(current));
    if (!visible) return;
    const frame = box.querySelector(".frame");
    const base = parseFloat(frame.getAttribute("y")) + BOX_TOP + BAR_H;
    values.forEach((value, b) => {
      const h = value * BAR_H;
      const bar = byId(prefix + "-b" + b);
      bar.setAttribute("height", h.toFixed(2));
      bar.setAttribute("y", (base - h).toFixed(2));
      const label = byId(prefix + "-t" + b);
      label.textContent = short(value);
      label.setAttribute("y", (base - h - 2).toFixed(2));
    });
    box.querySelector("title").textContent = values.map((x) => fmt(x, 6)).join("  ");
  }

  function render() {
    const point = DATA.per_eps[epsIndex];
    byId("eps-value").textContent = fmt(point.eps, 3);
    slider.value = String(epsIndex);
    document.querySelectorAll(".edge.current, .variable.current, .factor.current")
      .forEach((el) => el.classList.remove("current"));
    // the messages sent so far; the last one is the current one
    STEPS.forEach((s, k) => fill("msg-" + k, point.messages[k], k < step, k === step - 1));
    if (step > 0) {
      const s = STEPS[step - 1];
      ["edge-" + s.slot, "node-" + s.source, "node-" + s.target].forEach((id) => {
        const el = byId(id);
        if (el) el.classList.add("current");
      });
    }
    const known = new Set();
    for (let k = 0; k < step; k++) if (STEPS[k].reveals) known.add(STEPS[k].reveals);
    DATA.nodes.forEach((node) => {
      const el = byId("node-" + node.name);
      const values = point.marginals[node.name];
      fill("marg-" + node.name, values, known.has(node.name), false);
      if (known.has(node.name)) el.setAttribute("data-marginal", JSON.stringify(values));
      else el.removeAttribute("data-marginal");
    });
    point.observed.forEach((symbol, i) => {
      const el = byId("observed-" + i);
      const truth = DATA.nodes.find((n) => n.level === 0 && n.index === i).truth;
      el.textContent = "seen " + symbol;
      el.classList.toggle("wrong", symbol !== truth);
    });
    const phase = step === 0 ? "ready" : step === N ? "done" :
      STEPS[step - 1].direction === "up" ? "upward pass" : "downward pass";
    byId("status").textContent = "Step " + step + " of " + N + " (" + phase + ")";
    document.body.setAttribute("data-step", String(step));
    document.body.setAttribute("data-eps-index", String(epsIndex));
    byId("btn-prev").disabled = step === 0;
    byId("btn-reset").disabled = step === 0;
    byId("btn-next").disabled = step === N;
    byId("btn-end").disabled = step === N;
    panel(point);
  }

  function row(cells, tag) {
    return "<tr>" + cells.map((c) => "<" + tag + ">" + c + "</" + tag + ">").join("") + "</tr>";
  }

  function panel(point) {
    const out = [];
    if (step === 0) {
      out.push("<p>Press <b>next</b> (or the right arrow key) to send the first message. " +
        "The upward pass carries each subtree's evidence to the root; the downward pass " +
        "brings every node the evidence from outside its subtree.</p>");
    } else {
      const s = STEPS[step - 1];
      const values = point.messages[step - 1];
      out.push("<p><b>" + (s.direction === "up" ? "Upward" : "Downward") + " message " +
        s.source + " → " + s.target + "</b></p><p>" + s.text + "</p>");
      out.push("<table>" + row(["value", "message"], "th") +
        values.map((x, b) => row([String(b), fmt(x, 6)], "td")).join("") + "</table>");
    }
    const lastUp = STEPS.filter((s) => s.direction === "up").length;
    if (step >= lastUp) {
      out.push("<p>log P(seen leaves) = " + fmt(point.log_evidence, 6) + "</p>");
    }
    if (step === N) {
      out.push("<p><b>Marginals</b> (every node, exact):</p><table>" +
        row(["node", "true", "most likely", "P(true)"], "th") +
        DATA.nodes.map((n) => {
          const p = point.marginals[n.name];
          const best = point.most_likely[n.name];
          return row([n.name, String(n.truth), String(best), fmt(p[n.truth], 4)], "td");
        }).join("") + "</table>");
    }
    byId("explain").innerHTML = out.join("");
  }

  function go(to) {
    step = Math.max(0, Math.min(N, to));
    render();
  }
  byId("btn-prev").addEventListener("click", () => go(step - 1));
  byId("btn-next").addEventListener("click", () => go(step + 1));
  byId("btn-reset").addEventListener("click", () => go(0));
  byId("btn-end").addEventListener("click", () => go(N));
  byId("show-truth").addEventListener("change", (event) => {
    document.body.classList.toggle("hide-truth", !event.target.checked);
  });
  slider.addEventListener("input", () => {
    epsIndex = parseInt(slider.value, 10);
    render();
  });
  document.addEventListener("keydown", (event) => {
    if (event.target === slider || event.altKey || event.ctrlKey || event.metaKey) return;
    const keys = { ArrowRight: step + 1, ArrowLeft: step - 1, Home: 0, End: N };
    if (event.key in keys) {
      event.preventDefault();
      go(keys[event.key]);
    }
  });
  render();
})();
"""


def render_page(data: dict[str, Any], title: str | None = None) -> str:
    """The HTML document for :func:`teaching_data`'s ``data`` (one string, self-contained).

    Parameters
    ----------
    data : dict
        What :func:`teaching_data` returns.
    title : str, optional
        The page's heading.

    Returns
    -------
    str
        A complete HTML5 document; its only script is inline, its data sit in a
        ``<script type="application/json" id="teach-data">`` element, and its content security
        policy allows no network request.

    Examples
    --------
    >>> page = render_page(teaching_data(eps=[0.3]))
    >>> "Content-Security-Policy" in page and 'data-node="h0_3"' in page
    True
    """
    if data.get("format") != FORMAT or data.get("version") != _VERSION:
        raise InputError(f"data must come from teaching_data (format {FORMAT!r} v{_VERSION})")
    model = data["model"]
    if title is None:
        title = "Belief propagation on a tree, one message at a time"
    # "</" can never close the script element early; JSON is strict (no NaN)
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    grid = data["eps"]
    description = (
        f"A Random Hierarchy Model with v = {model['v']} symbols, {model['n_classes']} classes, "
        f"m = {model['m']} rules per symbol, branching s = {model['s']} and depth "
        f"L = {model['L']} (seed {model['seed']}): circles are the variables h{{l}}_{{i}} "
        "(node i of level l; level L is the class), squares are factors (the prior, one rule "
        "factor under each internal variable, one evidence factor under each leaf). Each leaf "
        "was redrawn "
        "uniformly with probability eps·v/(v−1), so it shows a wrong symbol (red) with "
        "probability eps; its evidence is 1−eps on the symbol seen and eps/(v−1) on each "
        "other. Blue boxes: upward messages; orange: downward; grey: marginals. Every number "
        "was computed by hiergrammar (tree_bp); this page only displays them."
    )
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
    )
    body = (
        f"<body>\n<header><h1>{html.escape(title)}</h1><p>{description}</p></header>\n"
        '<div id="controls">\n'
        '<button id="btn-reset" type="button" title="Home">reset</button>\n'
        '<button id="btn-prev" type="button" title="left arrow">previous</button>\n'
        '<button id="btn-next" type="button" title="right arrow">next</button>\n'
        '<button id="btn-end" type="button" title="End">end</button>\n'
        '<span id="status"></span>\n'
        f'<label>eps <input id="eps" type="range" min="0" max="{len(grid) - 1}" step="1" '
        f'value="{data["initial"]}"> <span id="eps-value"></span></label>\n'
        '<label><input id="show-truth" type="checkbox" checked> show the true tree</label>\n'
        '<span class="legend"><span style="background:#1f77b4"></span>upward'
        '<span style="background:#ff7f0e"></span>downward'
        '<span style="background:#555"></span>marginal</span>\n'
        "</div>\n"
        f'<div id="main"><div id="picture">{_svg(data)}</div>\n'
        '<div id="panel"><div id="explain"></div></div></div>\n'
        f'<script type="application/json" id="teach-data">{payload}</script>\n'
        f"<script>{_SCRIPT.replace('__BAR_H__', str(_BAR_H))}</script>\n"
        "</body>\n</html>\n"
    )
    return head + body


def write_page(
    path: str | os.PathLike,
    v: int = 4,
    n_classes: int = 2,
    m: int = 2,
    s: int = 2,
    L: int = 2,
    *,
    seed: int = 0,
    eps: Any = None,
    initial_eps: float | None = None,
) -> Path:
    """Compute the page's numbers and write the page to ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The HTML file to write (its folder must exist or be creatable).
    v, n_classes, m, s, L, seed, eps, initial_eps
        As for :func:`teaching_data`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        For a path that is a folder or lies in an unwritable place, or bad parameters
        (:func:`teaching_data`).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_page(Path(tmp) / "bp.html", eps=[0.2, 0.5])
    ...     out.read_text(encoding="utf-8").count('class="variable"')
    7
    """
    path = check_output_file("path", path)
    data = teaching_data(v, n_classes, m, s, L, seed=seed, eps=eps, initial_eps=initial_eps)
    return save_text(path, render_page(data))
