"""The command line, ``python -m fcnn_opt`` (``fcnn-opt`` once installed): argument parsing in
:mod:`~fcnn_opt.cli.commands`, console tables and summaries in :mod:`~fcnn_opt.cli.text`, and
the ``bench`` command in :mod:`~fcnn_opt.cli.bench`. Each command calls plain functions of
the layers below; nothing here trains, samples or stores anything itself.
"""

from fcnn_opt.cli.commands import main

__all__ = ["main"]
