"""``python -m fcnn_opt``: see :mod:`fcnn_opt.cli.commands`."""

import sys

from fcnn_opt.cli.commands import main

sys.exit(main())
