"""Figures of the hidden-representation probe: the paper's Fig. 2 (right), Fig. 8 and Fig. 16.

Cosine similarity between start and generated activations against the inversion time ``t``,
one curve per hooked layer, coloured by depth (colormap + colorbar, input layers dark, deep
layers bright), the logits drawn thick in red, and the top-1 class agreement as a dashed black
line. Several probe files (e.g. ResNet-50, Wide ResNet-50-2, ResNet-152 for Fig. 16) become
side-by-side panels.

The input is the probe data written by ``hiergrammar vision probe`` (``probe_<name>.json`` or
``.npz``), or the same dict in memory. No torch here: plotting needs only numpy and matplotlib,
and the backend is left as the user set it.

Examples
--------
>>> data = {"classifier": "tiny", "layers": ["a", "b", "logits"], "logits_layer": "logits",
...         "t": [0, 50, 100], "similarity_mean": [[1, 1, 1], [.9, .8, .7], [.6, .4, .1]],
...         "top1_agreement": [1.0, 0.9, 0.2]}
>>> fig = plot_probe(data)
>>> [line.get_label() for line in fig.axes[0].get_lines()][-2:]
['logits', 'top-1 agreement']
>>> import matplotlib.pyplot as plt
>>> plt.close(fig)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hiergrammar.artifacts import save_figure
from hiergrammar.validation import InputError

__all__ = ["load_probe_data", "plot_probe", "plot_probe_files"]

_BANDS = ("none", "sem", "std")


def load_probe_data(path: str | os.PathLike) -> dict[str, Any]:
    """Read a probe data file (``.json`` or ``.npz`` written by ``vision probe``) into a dict.

    Arrays come back as numpy arrays: ``t`` ``(T,)``, ``similarity_mean``/``_std``/``_sem``
    ``(T, n_layers)``, ``top1_agreement`` ``(T,)`` or ``None``. A missing, unreadable or
    incomplete file raises :class:`~hiergrammar.InputError` naming it. See
    :func:`plot_probe_files` for an example.
    """
    import zipfile

    from hiergrammar.vision.checkpoints import check_input_file

    path = check_input_file(path, "probe data file")
    if path.suffix == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"probe data file {path} is not valid JSON ({err})") from None
        if not isinstance(raw, dict):
            raise InputError(f"probe data file {path} must hold a JSON object")
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw = {key: npz[key] for key in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f"probe data file {path} is not a readable .npz ({err})") from None
        if "layers" not in raw:
            raise InputError(f"{path} lacks the key 'layers'")
        raw["layers"] = [str(x) for x in np.atleast_1d(raw["layers"])]
        for key in ("classifier", "logits_layer", "t_label"):
            if key in raw:
                raw[key] = str(raw[key])
        if "top1_agreement" in raw and raw["top1_agreement"].size == 0:
            raw["top1_agreement"] = None
    else:
        raise InputError(f"probe data file {path} must end in .json or .npz")
    return _normalise(raw, str(path))


def _floats(value: Any, key: str, where: str) -> np.ndarray:
    """``value`` as a float array (None entries -> NaN), else an InputError naming ``key``."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key} must hold numbers") from None


def _normalise(raw: dict[str, Any], where: str = "data") -> dict[str, Any]:
    for key in ("layers", "t", "similarity_mean"):
        if key not in raw:
            raise InputError(f"{where} lacks the key {key!r}")
    data = dict(raw)
    data["layers"] = [str(x) for x in raw["layers"]]
    data["t"] = _floats(raw["t"], "t", where)
    if data["t"].ndim != 1:
        raise InputError(f"{where}: t must be a list of numbers, got shape {data['t'].shape}")
    n_t, n_layers = len(data["t"]), len(data["layers"])
    for key in ("similarity_mean", "similarity_std", "similarity_sem"):
        if raw.get(key) is not None:
            arr = _floats(raw[key], key, where)
            if arr.shape != (n_t, n_layers):
                raise InputError(
                    f"{where}: {key} has shape {arr.shape}, expected "
                    f"(n_t, n_layers) = {(n_t, n_layers)}"
                )
            data[key] = arr
    top1 = raw.get("top1_agreement")
    data["top1_agreement"] = None if top1 is None else _floats(top1, "top1_agreement", where)
    if data["top1_agreement"] is not None and data["top1_agreement"].shape != (n_t,):
        raise InputError(f"{where}: top1_agreement must have one value per t ({n_t})")
    logits = raw.get("logits_layer")
    data["logits_layer"] = str(logits) if logits not in (None, "") else None
    return data


def plot_probe(
    data: dict[str, Any] | Sequence[dict[str, Any]],
    *,
    band: str = "none",
    cmap: str = "viridis",
    show_top1: bool = True,
    titles: Sequence[str] | None = None,
) -> Any:
    """Similarity vs ``t`` per layer (coloured by depth), one panel per data dict.

    ``band``: ``"none"``, ``"sem"`` or ``"std"`` -- a shaded band of that width around every
    curve. Returns the matplotlib ``Figure``. See the module docstring for an example.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if band not in _BANDS:
        raise InputError(f"band={band!r} is not one of {_BANDS}")
    panels = [data] if isinstance(data, dict) else list(data)
    if not panels:
        raise InputError("nothing to plot: give at least one probe data dict")
    panels = [_normalise(d, f"panel {i}") for i, d in enumerate(panels)]
    if titles is not None and len(titles) != len(panels):
        raise InputError(f"{len(titles)} titles for {len(panels)} panels")

    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels) + 0.8, 4.0), squeeze=False, sharey=True
    )
    colormap = plt.get_cmap(cmap)
    for i, (ax, d) in enumerate(zip(axes[0], panels, strict=True)):
        order = np.argsort(d["t"], kind="stable")
        t = d["t"][order]
        layers = d["layers"]
        depth_max = max(len(layers) - 1, 1)
        width = None if band == "none" else d.get(f"similarity_{band}")
        for j, name in enumerate(layers):
            y = d["similarity_mean"][order, j]
            is_logits = name == d["logits_layer"]
            color = "tab:red" if is_logits else colormap(j / depth_max)
            ax.plot(
                t,
                y,
                color=color,
                lw=2.6 if is_logits else 1.0,
                zorder=3 if is_logits else 2,
                label="logits" if is_logits else None,
                marker="o" if is_logits else None,
                ms=3,
            )
            if width is not None:
                w = width[order, j]
                ax.fill_between(t, y - w, y + w, color=color, alpha=0.12, lw=0)
        if show_top1 and d["top1_agreement"] is not None:
            ax.plot(
                t,
                d["top1_agreement"][order],
                color="black",
                ls="--",
                lw=1.5,
                zorder=4,
                label="top-1 agreement",
            )
        ax.set_xlabel(d.get("t_label") or "inversion time t")
        if i == 0:
            ax.set_ylabel("cosine similarity (start vs generated)")
        title = titles[i] if titles is not None else d.get("classifier", "")
        n_img = d.get("n_images")
        ax.set_title(f"{title} (n={int(n_img)})" if n_img is not None else str(title))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=8)
        mappable = ScalarMappable(norm=Normalize(0, len(layers) - 1), cmap=colormap)
        bar = fig.colorbar(mappable, ax=ax, pad=0.02)
        bar.set_label("layer depth (0 = first hooked layer)")
    fig.tight_layout()
    return fig


def plot_probe_files(
    paths: Sequence[str | os.PathLike], out: str | os.PathLike, **kwargs: Any
) -> Path:
    """Read probe data files, draw one panel per file with :func:`plot_probe`, save a PNG.

    Examples
    --------
    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> data = {"layers": ["a", "b"], "t": [0, 10], "similarity_mean": [[1, 1], [0.5, 0.2]]}
    >>> _ = (folder / "probe_x.json").write_text(json.dumps(data))
    >>> plot_probe_files([folder / "probe_x.json"], folder / "fig.png").read_bytes()[:4]
    b'\x89PNG'
    """
    fig = plot_probe([load_probe_data(p) for p in paths], **kwargs)
    return save_figure(fig, out)
