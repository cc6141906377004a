"""``python -m fcnn_opt``: see :mod:`fcnn_opt.cli.main`."""

import sys

from fcnn_opt.cli.main import main

sys.exit(main())
