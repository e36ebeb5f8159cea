"""The main job: ``hiergrammar reproduce`` runs every figure step and writes ``report.md``.

A step is a function ``reproduce_step(out_dir: Path, *, seed: int, quick: bool) ->
ReportSection`` living beside the code it exercises; this module only lists them, runs them in
order and links what they wrote. ``quick=True`` shrinks every step to seconds (used by tests).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from hiergrammar.artifacts import ReportSection, progress, save_text

#: (name, "module:function") of each step, in report order. Imported lazily so that a step's
#: heavy dependencies (torch for the CNN probe) load only when it runs.
STEPS: list[tuple[str, str]] = [
    ("phase_transition", "hiergrammar.experiments.phase_transition:reproduce_step"),
    ("theory", "hiergrammar.theory.figures:reproduce_step"),
    ("cnn_probe", "hiergrammar.vision.rhm_probe:reproduce_step"),
]


def _load(target: str):
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def reproduce(
    out_dir: str | Path = "results",
    *,
    seed: int = 0,
    quick: bool = False,
    only: list[str] | None = None,
) -> Path:
    """Run the figure steps (all, or those named in ``only``) and write ``out_dir/report.md``.

    Returns the path of the report.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in STEPS]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; choose from {names}")
    chosen = [(n, t) for n, t in STEPS if not only or n in only]
    sections: list[ReportSection] = []
    timings: list[tuple[str, float]] = []
    for name, target in progress(chosen, desc="reproduce", total=len(chosen), disable=False):
        start = time.perf_counter()
        section = _load(target)(out_dir, seed=seed, quick=quick)
        timings.append((name, time.perf_counter() - start))
        sections.append(section)
    header = [
        "# hiergrammar: reproduced figures",
        "",
        f"Seed {seed}{' (quick mode: tiny sizes, for tests)' if quick else ''}. "
        "Every figure's data sits beside it.",
        "",
        "| step | seconds |",
        "| --- | --- |",
        *[f"| {n} | {t:.1f} |" for n, t in timings],
        "",
    ]
    body = "\n".join(s.to_markdown(out_dir) for s in sections)
    return save_text(out_dir / "report.md", "\n".join(header) + "\n" + body)
