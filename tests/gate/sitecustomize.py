"""Hold the trials of a command the test started until the test lets them go.

A test that signals or kills a running study must find a trial running when its signal
lands, however fast or slow the machine is. With this folder on ``PYTHONPATH`` and
``FCNN_OPT_TEST_GATE=DIR`` in the environment (``conftest.gated_env``), every process of
the command (the study's own and its worker processes) runs its first
``FCNN_OPT_TEST_GATE_FREE`` trials (default 0) as usual; each later trial, once it is
claimed and RUNNING in the storage, writes ``DIR/held-PID-NUMBER`` and waits, before it
trains, until ``DIR/open`` exists. The test waits for the ``held-`` files it needs, signals,
and opens the gate (or never does). Python imports ``sitecustomize`` at start-up; without
the variable this file does nothing.
"""

import os

_GATE = os.environ.get("FCNN_OPT_TEST_GATE")


def _hold_trials(module) -> None:
    import time
    from pathlib import Path

    gate = Path(_GATE)
    free = int(os.environ.get("FCNN_OPT_TEST_GATE_FREE", "0"))
    run = module.Objective.run
    started = []

    def gated_run(self, trial, reporter):
        started.append(trial.number)
        if len(started) > free:
            (gate / f"held-{os.getpid()}-{trial.number}").touch()
            while not (gate / "open").exists():
                time.sleep(0.02)  # a signal's handler runs here, raising into the trial
        return run(self, trial, reporter)

    module.Objective.run = gated_run


if _GATE:
    import importlib.abc
    import sys

    class _PatchAfterImport(importlib.abc.MetaPathFinder):
        """Finds nothing itself; wraps the loader of ``fcnn_opt.search.objective``."""

        target = "fcnn_opt.search.objective"

        def find_spec(self, name, path, target=None):
            if name != self.target:
                return None
            sys.meta_path.remove(self)
            try:
                import importlib.util

                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                _hold_trials(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _PatchAfterImport())
