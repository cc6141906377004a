"""The command line, ``python -m fcnn_opt`` (``fcnn-opt`` once installed): argument parsing in
:mod:`~fcnn_opt.cli.commands`, console tables and summaries in :mod:`~fcnn_opt.cli.text`, and
the ``bench`` command in :mod:`~fcnn_opt.cli.bench`. Each command calls plain functions of
the layers below; nothing here trains, samples or stores anything itself.
"""

import os
import sys

# One BLAS thread per process unless the user says otherwise. The matrices of these networks
# are too small to split: on W2 a second OpenBLAS thread spun for 6 CPU-seconds without
# saving any wall time, and took the core that the picture renderer (or a second worker)
# needs. Only possible before NumPy is loaded; library users keep their own settings.
if "numpy" not in sys.modules:
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

from fcnn_opt.cli import commands  # noqa: E402
from fcnn_opt.cli.quick_exit import exit_quickly  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command and end the process with its exit code (see :mod:`.quick_exit`):
    the entry point of ``python -m fcnn_opt`` and ``fcnn-opt``, never called from inside
    another program (use :func:`fcnn_opt.cli.commands.main` there)."""
    return exit_quickly(commands.main(argv))
