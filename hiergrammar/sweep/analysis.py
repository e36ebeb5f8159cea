"""From a sweep's long table to the arrays of a figure: means over draws and grids.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"L": [2, 2, 2, 2], "rule_draw": [0, 1, 0, 1],
...                       "noise_level": [0.1, 0.1, 0.5, 0.5], "p": [0.9, 0.7, 0.4, 0.6]})
>>> means = mean_over_draws(frame, ["p"], by=["L", "noise_level"])
>>> means["p"].round(3).tolist(), means["p_se"].round(3).tolist(), means["n_draws"].tolist()
([0.8, 0.5], [0.1, 0.1], [2, 2])
>>> grid_array(means, "p", ["noise_level"])[0].tolist()
[0.8, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hiergrammar.validation import InputError

__all__ = ["grid_array", "mean_over_draws", "profile_from_frame"]


def mean_over_draws(
    frame: Any,
    quantities: Sequence[str],
    *,
    by: Sequence[str],
    draw: str = "rule_draw",
):
    """Means over draws, with standard errors, for every group of ``by``.

    The standard error of a quantity ``q`` is the spread of its per-draw values over
    ``sqrt(n_draws)`` (``ddof = 1``); with one draw it is that draw's own column ``q_se`` when
    the frame has one (the within-draw error of a measurement), else NaN. This is how
    :func:`hiergrammar.experiments.beliefs.bp_profile` reports errors.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long form, as :func:`hiergrammar.sweep.load` returns.
    quantities : sequence of str
        Numeric columns to average.
    by : sequence of str
        The columns that define a point (e.g. ``["L", "noise_level", "level"]``).
    draw : str
        The column of the draws averaged over.

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted by ``by``): ``by``, each ``q`` and ``q_se``, and
        ``n_draws``.

    Raises
    ------
    InputError
        If a column is missing, or a group holds a draw twice.

    Examples
    --------
    >>> import pandas as pd
    >>> one = pd.DataFrame({"rule_draw": [0], "level": [1], "p": [0.8], "p_se": [0.05]})
    >>> mean_over_draws(one, ["p"], by=["level"])[["p", "p_se", "n_draws"]].values.tolist()
    [[0.8, 0.05, 1.0]]
    """
    import pandas as pd

    by, quantities = list(by), list(quantities)
    missing = [c for c in [*by, *quantities, draw] if c not in frame.columns]
    if missing:
        raise InputError(f"the frame lacks the column(s) {missing}")
    if frame.duplicated([*by, draw]).any():
        raise InputError(
            f"a group of {by} holds a {draw} twice: add the column that tells them apart"
        )
    groups = frame.groupby(by, sort=True, dropna=False)
    means = groups[quantities].mean()
    counts = groups[draw].count().rename("n_draws")
    spread = groups[quantities].std(ddof=1).div(np.sqrt(counts), axis=0)
    out = means.copy()
    for q in quantities:
        se = spread[q]  # NaN for a single draw (ddof = 1)
        if f"{q}_se" in frame.columns:
            se = se.where(counts > 1, groups[f"{q}_se"].first())
        out[f"{q}_se"] = se
    out["n_draws"] = counts
    return pd.DataFrame(out).reset_index()


def grid_array(frame: Any, value: str, axes: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The column ``value`` as an array over the sorted distinct values of ``axes``.

    Parameters
    ----------
    frame : pandas.DataFrame
        At most one row per combination of ``axes``.
    value : str
        The column.
    axes : sequence of str
        The columns that become the array's axes, in order.

    Returns
    -------
    tuple
        ``(array, coordinates)``: ``array`` of shape ``(len(c) for c in coordinates)`` (NaN
        where no row exists; the rows' own values, list cells stacked into a trailing axis),
        and the sorted distinct values of each axis.

    Raises
    ------
    InputError
        If a column is missing or a combination of ``axes`` appears twice.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"L": [3, 2, 2], "t": [0.5, 0.5, 0.1], "x": [1.0, 2.0, 3.0]})
    >>> values, (Ls, ts) = grid_array(frame, "x", ["L", "t"])
    >>> values.tolist(), Ls.tolist(), ts.tolist()     # no row for (L = 3, t = 0.1): NaN
    ([[3.0, 2.0], [nan, 1.0]], [2, 3], [0.1, 0.5])
    """
    axes = list(axes)
    missing = [c for c in [*axes, value] if c not in frame.columns]
    if missing:
        raise InputError(f"the frame lacks the column(s) {missing}")
    if frame.duplicated(axes).any():
        raise InputError(f"the frame holds a combination of {axes} twice")
    coords = [np.sort(frame[a].unique()) for a in axes]
    index = tuple(
        np.searchsorted(c, frame[a].to_numpy()) for c, a in zip(coords, axes, strict=True)
    )
    cells = frame[value].to_numpy()
    if cells.dtype == object:  # list cells: one more axis
        cells = np.stack([np.asarray(c, dtype=np.float64) for c in cells])
    out = np.full(tuple(len(c) for c in coords) + cells.shape[1:], np.nan)
    out[index] = cells
    return out, coords


def profile_from_frame(frame: Any, n_per_rule: int, noise_levels: Sequence[float] | None = None):
    """The :class:`~hiergrammar.experiments.beliefs.BPProfile` of a ``beliefs`` sweep's rows of
    one grammar point and one noise process: means over rule draws, with the standard errors
    :func:`~hiergrammar.experiments.beliefs.bp_profile` reports (:func:`mean_over_draws`).

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows of one grammar point and process (columns ``rule_draw``, ``noise_level``,
        ``level``, ``u``, ``d``, ``p``, ``accuracy`` and their ``*_se``).
    n_per_rule : int
        Strings per noise level and rule draw (recorded in the profile).
    noise_levels : sequence of float, optional
        The order of the first axis (default: ascending); each must be in the frame.

    Returns
    -------
    BPProfile
        Arrays of shape ``(len(noise_levels), L + 1)``.

    Raises
    ------
    InputError
        If a noise level is not in the frame.

    Examples
    --------
    >>> from hiergrammar.sweep import sweep_frame
    >>> frame, _ = sweep_frame({"rule_draws": 2, "grammar": {"v": 4, "m": 2, "s": 2, "L": 2},
    ...                         "noise": {"process": "eps", "levels": [0.5, 0.0]},
    ...                         "measure": {"name": "beliefs", "n_samples": 10}})
    >>> profile = profile_from_frame(frame, 10, [0.0, 0.5])
    >>> profile.accuracy.shape, profile.accuracy[0].tolist()   # (levels, L + 1)
    ((2, 3), [1.0, 1.0, 1.0])
    """
    from hiergrammar.experiments.beliefs import BPProfile

    quantities = ["u", "d", "p", "accuracy"]
    means = mean_over_draws(frame, quantities, by=["noise_level", "level"])
    arrays = {}
    for q in quantities:
        for key in (q, f"{q}_se"):
            values, (levels, _) = grid_array(means, key, ["noise_level", "level"])
            if noise_levels is not None:
                wanted = np.asarray(noise_levels, dtype=np.float64)
                index = np.searchsorted(levels, wanted)
                index = np.minimum(index, len(levels) - 1)
                if not np.array_equal(levels[index], wanted):
                    raise InputError(f"noise_levels {wanted.tolist()} are not all in the frame")
                values = values[index]
            arrays[key] = values
    return BPProfile(**arrays, n_rules=int(means["n_draws"].max()), n_per_rule=int(n_per_rule))
