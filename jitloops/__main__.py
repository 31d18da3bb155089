"""``python -m jitloops``: the ``jitloops`` command."""

import sys

from .cli import main

sys.exit(main())
