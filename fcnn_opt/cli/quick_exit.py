"""Ending a command's process without tearing the interpreter down object by object.

Once a command has written everything and printed its summary, the interpreter's own
shutdown still frees every object of every module one at a time: with SQLAlchemy, Optuna,
SciPy and Numba loaded that took 0.4 to 0.8 s on the development machine, after the work
was done. A user waits for it at the end of every ``study``; ``study --workers N`` waits
for it in each worker process before it can return. :func:`exit_quickly` runs what a normal
exit runs that matters (the ``atexit`` handlers: logging's flush, multiprocessing's and
tempfile's clean-ups), flushes the standard streams, and ends the process with the
command's exit code.

It is used only where a process ends (``python -m fcnn_opt``, ``fcnn-opt``, bench rows),
never by library code, and it steps aside (a normal exit) while a non-daemon thread is
still alive, whose end a normal exit would wait for.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_quickly(code: int | None) -> int | None:
    """End the process now with ``code``; returns ``code`` only when it cannot (a live
    non-daemon thread), for the caller's ``sys.exit``."""
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return code
    try:
        atexit._run_exitfuncs()  # what the interpreter would run first; the rest is freeing memory
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):  # a closed pipe (`| head`): nothing more to say
                pass
    os._exit(0 if code is None else code if isinstance(code, int) else 1)
