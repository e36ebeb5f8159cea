"""``hiergrammar vision …``: sampling, probing and plotting sub-commands.

Each group registers itself from its own module (``hiergrammar.vision.cli_sample``,
``hiergrammar.vision.cli_probe``);
none imports torch at module level, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["register"]

_GROUPS = [
    "hiergrammar.vision.cli_sample",
    "hiergrammar.vision.cli_probe",
    "hiergrammar.vision.grammar_diffusion.cli",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("vision", help="image diffusion forward-backward and probes (torch)")
    sub = p.add_subparsers(dest="vision_command", metavar="VISION_COMMAND")
    sub.required = True
    for name in _GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a group not written yet
            if err.name != name:
                raise
            continue
        module.register(sub)
