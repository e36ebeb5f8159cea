"""Grammar files: a documented, versioned format with no pickle.

Format ``hiergrammar.grammar``, version 1
-----------------------------------------
One NumPy ``.npz`` archive (a zip of ``.npy`` members), readable with
``np.load(path, allow_pickle=False)``. It holds exactly these members:

``header``
    A 0-d unicode array: a JSON object ``{"format": "hiergrammar.grammar", "version": 1,
    "class": "Grammar" | "RHM", "L": L, "s": s, "cards": [cards_0, ..., cards_L],
    "n_rules": [m_1, ..., m_L], "params": {...} | null, "metadata": {...}}``. ``params`` holds
    the constructor parameters of an :class:`~hiergrammar.rhm.RHM` (``v``, ``n_classes``, ``m``,
    ``s``, ``L``, ``seed``, ``rule_law``, ``zipf_a``, ``zipf_levels``, ``shared_tuples``);
    ``metadata`` the grammar's JSON facts (e.g. the family and parameters of
    :func:`~hiergrammar.families.sparse_rhm` or :func:`~hiergrammar.families.filtered_grammar`).
``rules_<l>`` for ``l = 1..L``
    int64 ``(cards[l], m_l, s)``: the child tuples of each symbol of level ``l``.
``rule_probs_<l>`` for ``l = 1..L``
    float64 ``(cards[l], m_l)``: their probabilities, rows summing to 1.
``root_prior``
    float64 ``(cards[L],)``.

Floats are stored bit for bit and not renormalised on reading, so a round trip is exact. A
reader refuses a newer version, a file that is not such an archive (or is truncated), a missing
or unexpected member, arrays whose shapes disagree with the header, and arrays that do not form
a valid grammar, each with a message naming the problem. An RHM is restored from its arrays
(its rules are not redrawn, so a file stays valid whatever numpy's random streams become).

Examples
--------
>>> import tempfile, pathlib
>>> from hiergrammar import RHM
>>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=3)
>>> with tempfile.TemporaryDirectory() as tmp:
...     _ = save_grammar(rhm, pathlib.Path(tmp) / "rhm.npz")
...     back = load_grammar(pathlib.Path(tmp) / "rhm.npz")
>>> back, all(np.array_equal(back.rules[l], rhm.rules[l]) for l in (1, 2))
(RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=3), True)
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.artifacts import atomic_open
from hiergrammar.grammar import Grammar
from hiergrammar.validation import InputError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_grammar", "save_grammar"]

#: The ``format`` field of the header.
FORMAT_NAME = "hiergrammar.grammar"

#: The version this library writes, and the newest it reads.
FORMAT_VERSION = 1

#: Errors numpy and zipfile raise on a file that is not a complete ``.npz`` archive.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError)

#: The first bytes of a zip archive (an ``.npz``; ``PK\x05\x06``: an empty one) and of a ``.npy``.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def save_grammar(grammar: Grammar, path: str | os.PathLike) -> Path:
    """Write ``grammar`` to ``path`` (format version :data:`FORMAT_VERSION`), atomically.

    Parameters
    ----------
    grammar : Grammar (or RHM, or a family member)
    path : file path; the name is used as given (``.npz`` is the customary suffix).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> g = Grammar({1: np.array([[[0, 1]], [[1, 0]]])}, root_prior=[0.3, 0.7])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     save_grammar(g, pathlib.Path(tmp) / "g.npz").name
    'g.npz'
    """
    if not isinstance(grammar, Grammar):
        raise InputError(f"grammar must be a hiergrammar Grammar, got {type(grammar).__name__}")
    params = grammar._save_params()
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "class": "RHM" if params is not None else "Grammar",
        "L": grammar.L,
        "s": grammar.s,
        "cards": list(grammar.cards),
        "n_rules": [int(grammar.rules[level].shape[1]) for level in range(1, grammar.L + 1)],
        "params": params,
        "metadata": grammar.metadata,
    }
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(f"the grammar's metadata must be JSON data: {err}") from None
    arrays: dict[str, np.ndarray] = {"header": np.array(text)}
    for level in range(1, grammar.L + 1):
        arrays[f"rules_{level}"] = np.asarray(grammar.rules[level], dtype=np.int64)
        arrays[f"rule_probs_{level}"] = np.asarray(grammar.rule_probs[level], dtype=np.float64)
    arrays["root_prior"] = np.asarray(grammar.root_prior, dtype=np.float64)
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return Path(path)


def _read_members(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(f"grammar file {path} does not exist")
    # Look at the first bytes before numpy does: for anything that is neither a zip nor a
    # .npy file, np.load guesses "pickled data" and suggests allow_pickle, which must never
    # be the advice for a user's file.
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
    except OSError as err:
        raise InputError(f"{path} cannot be read as a grammar file: {err}") from None
    if magic.startswith(_NPY_MAGIC):
        raise InputError(f"{path} is a single .npy array, not a grammar .npz archive")
    if not magic.startswith(_ZIP_MAGIC):
        raise InputError(f"{path} is not a grammar file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:  # a zip, by its first bytes
            return {name: archive[name] for name in archive.files}
    except _READ_ERRORS as err:
        detail = f": {type(err).__name__}: {err}" if "pickle" not in str(err) else ""
        raise InputError(
            f"{path} is not a readable grammar file (truncated, corrupt or not an .npz "
            f"archive){detail}"
        ) from None


def _read_header(path: Path, members: dict[str, np.ndarray]) -> dict[str, Any]:
    if "header" not in members:
        raise InputError(f"{path} has no 'header' member: not a hiergrammar grammar file")
    raw = members.pop("header")
    if raw.shape != () or raw.dtype.kind != "U":
        raise InputError(f"{path}: 'header' must be a 0-d unicode array holding JSON")
    try:
        header = json.loads(str(raw[()]))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: the header is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else None
        raise InputError(
            f"{path} is not a hiergrammar grammar file (format {found!r}, expected {FORMAT_NAME!r})"
        )
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{path}: the header's version must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path} has format version {version}, newer than this hiergrammar reads "
            f"(version {FORMAT_VERSION}): upgrade hiergrammar to read it"
        )
    for key, kind in (("L", int), ("s", int), ("cards", list), ("n_rules", list)):
        if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
            raise InputError(f"{path}: the header's {key!r} is missing or not a {kind.__name__}")
    if header.get("class") not in ("Grammar", "RHM"):
        raise InputError(f"{path}: unknown grammar class {header.get('class')!r}")
    for key in ("params", "metadata"):
        if header.get(key) is not None and not isinstance(header[key], dict):
            raise InputError(f"{path}: the header's {key!r} must be a JSON object")
    return header


def load_grammar(path: str | os.PathLike) -> Grammar:
    """Read a grammar written by :meth:`Grammar.save` / :func:`save_grammar`.

    Parameters
    ----------
    path : file path.

    Returns
    -------
    Grammar
        An :class:`~hiergrammar.rhm.RHM` (with its parameters and seed) if one was saved, else a
        :class:`~hiergrammar.grammar.Grammar`; arrays and metadata exactly as saved.

    Raises
    ------
    InputError
        if the file is missing, not a complete ``.npz`` archive, of a newer format version, or
        holds missing, unexpected or inconsistent arrays; the message names the problem.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     bad = pathlib.Path(tmp) / "bad.npz"
    ...     _ = bad.write_bytes(b"not a zip")
    ...     load_grammar(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: ... is not a grammar file (not an .npz archive)
    """
    path = Path(path)
    members = _read_members(path)
    header = _read_header(path, members)
    L, s, cards, n_rules = header["L"], header["s"], header["cards"], header["n_rules"]
    if L < 1 or len(cards) != L + 1 or len(n_rules) != L:
        raise InputError(
            f"{path}: inconsistent header: L={L} needs {L + 1} cards and {L} rule counts, got "
            f"{len(cards)} and {len(n_rules)}"
        )
    expected = {"root_prior": (cards[L],)}
    for level in range(1, L + 1):
        expected[f"rules_{level}"] = (cards[level], n_rules[level - 1], s)
        expected[f"rule_probs_{level}"] = (cards[level], n_rules[level - 1])
    missing = sorted(set(expected) - set(members))
    if missing:
        raise InputError(f"{path} lacks the array(s) {missing}: the file is incomplete")
    extra = sorted(set(members) - set(expected))
    if extra:
        raise InputError(f"{path} holds unexpected array(s) {extra} for L={L}")
    for name, shape in expected.items():
        got = tuple(members[name].shape)
        if got != tuple(shape):
            raise InputError(
                f"{path}: inconsistent arrays: {name} has shape {got} but the header gives "
                f"{tuple(shape)}"
            )
        kind = "i" if name.startswith("rules_") else "f"
        if members[name].dtype.kind != kind:
            raise InputError(
                f"{path}: {name} has dtype {members[name].dtype}, expected kind {kind}"
            )
    rules = {level: members[f"rules_{level}"] for level in range(1, L + 1)}
    probs = {level: members[f"rule_probs_{level}"] for level in range(1, L + 1)}
    metadata = header.get("metadata") or {}
    try:
        if header["class"] == "RHM":
            from hiergrammar.rhm import RHM

            if not isinstance(header.get("params"), dict):
                raise InputError("an RHM file needs its parameters in the header")
            grammar = RHM._restore(header["params"], rules, probs, members["root_prior"], metadata)
        else:
            grammar = Grammar.__new__(Grammar)
            grammar._setup(
                rules,
                probs,
                members["root_prior"],
                v=cards[0],
                metadata=metadata,
                renormalise=False,
            )
    except (InputError, TypeError) as err:
        raise InputError(f"{path}: inconsistent grammar: {err}") from None
    return grammar
