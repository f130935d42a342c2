"""``python -m leveret.ctl``: the same as ``leveret-ctl``."""

import sys

from . import main

sys.exit(main(argv0="leveret-ctl"))
