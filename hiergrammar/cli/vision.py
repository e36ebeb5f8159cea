"""``hiergrammar vision …``: the commands of the image and learned-diffusion experiments (torch).

The group's sub-commands live in their own modules, each with ``register(subparsers)``:
``sample`` and ``convert-adm`` (:mod:`hiergrammar.cli.vision_sample`), ``probe`` and ``plot``
(:mod:`hiergrammar.cli.vision_probe`), ``train-grammar``
(:mod:`hiergrammar.cli.vision_train_grammar`). None imports torch at module level, so that
building the parser stays fast; the handlers import :mod:`hiergrammar.vision` when they run.

Each sub-command names itself in its errors: argparse's own (a wrong type) carry its ``prog``,
and so do the one-line errors of :func:`hiergrammar.cli.main` (the ``prog`` that
:func:`hiergrammar.cli.args.set_handler` records for every command).
"""

from __future__ import annotations

import argparse

from hiergrammar.cli import vision_probe, vision_sample, vision_train_grammar

__all__ = ["GROUPS", "register"]

#: The modules of the ``vision`` sub-commands, in help order.
GROUPS = (vision_sample, vision_probe, vision_train_grammar)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``vision`` command group to ``subparsers``."""
    parser = subparsers.add_parser(
        "vision", help="image diffusion forward-backward and probes (torch)"
    )
    sub = parser.add_subparsers(dest="vision_command", metavar="VISION_COMMAND")
    sub.required = True
    for module in GROUPS:
        module.register(sub)
