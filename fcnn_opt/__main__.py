"""``python -m fcnn_opt``: see :mod:`fcnn_opt.cli.commands`."""

import sys

from fcnn_opt.cli import main

if __name__ == "__main__":  # not when a spawned process (the picture renderer) imports it again
    sys.exit(main())
