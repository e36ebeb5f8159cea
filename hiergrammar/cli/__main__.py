"""``python -m hiergrammar.cli`` is the ``hiergrammar`` command (e.g. under ``accelerate``)."""

import sys

from hiergrammar.cli import main

sys.exit(main())
