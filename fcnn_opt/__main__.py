"""``python -m fcnn_opt``: see :mod:`fcnn_opt.cli`."""

import sys

from .cli import main

sys.exit(main())
