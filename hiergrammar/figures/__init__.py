"""Figure steps of ``hiergrammar reproduce``: one module per step, above every other layer.

Each step module keeps computation, plotting and report text apart:

* a frozen dataclass of sizes with two instances, ``FULL`` (the default run) and ``QUICK``
  (``--quick``), each with the step's time budget ``budget_seconds`` on two CPU cores;
* ``compute_*(sizes, seed)``: the numbers, with the measurement functions of the core
  (:mod:`hiergrammar.experiments`), the theory (:mod:`hiergrammar.theory`) and, for the CNN
  probe, :mod:`hiergrammar.vision`;
* ``plot_*(result)``: a :class:`matplotlib.figure.Figure` (no backend is chosen or switched);
* ``describe_*(result)``: the report's Markdown, computed from the numbers;
* ``reproduce_step(out_dir, *, seed, sizes)``: all three, writing PNG, NPZ and JSON files into
  ``out_dir`` and returning a :class:`~hiergrammar.artifacts.ReportSection`.

``REQUIRES`` names the optional modules a step needs and ``EXTRA`` the extra that installs
them: :func:`hiergrammar.reproduce.reproduce` reports a step whose modules are missing as
skipped, with the install hint, and runs the others.

Dependencies run one way: core <- theory <- vision <- figure steps, ``reproduce`` and the CLI.
A step module imports its heavy dependencies (torch) inside ``compute_*`` only.
"""

__all__ = []
