"""The live progress bar of a run: trials done of the budget, or seconds spent of the time given.

Drawn with tqdm on the worker loop's every turn, but redrawn at most every 0.2 s (see
:func:`update_bar`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fcnn_opt.search.ledger import Counts
from fcnn_opt.search.plan import NO_TRIAL_BUDGET

if TYPE_CHECKING:
    import optuna


def progress_bar(enabled: bool, budget: int, counts: Counts, timeout: float | None = None) -> Any:
    """The live bar (a tqdm bar, or None when not ``enabled``): trials done of the budget; with
    a time budget and no trial budget, the seconds spent of the time given (and the trials
    done beside them)."""
    if not enabled:
        return None
    from tqdm import tqdm

    if timeout is not None and budget >= NO_TRIAL_BUDGET:
        return tqdm(total=round(timeout), unit="s", dynamic_ncols=True, desc="time", mininterval=0.2,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix}")
    return tqdm(total=budget, initial=min(counts.done, budget), unit="trial", dynamic_ncols=True,
                desc="trials", mininterval=0.2)


def update_bar(bar: Any, study: optuna.Study, counts: Counts, budget: int,
               clock: tuple[float, float] | None = None) -> None:
    """Redraw the bar at most every 0.2 s (as tqdm's own ``mininterval``), reading the best
    value from the storage only when the number of complete trials has changed: each redraw
    and each best-value query was a cost per trial (6 % of W2 when done every trial).
    ``clock``: ``(timeout, start)`` of a run with a time budget."""
    if bar is None:
        return
    now = time.monotonic()
    last = getattr(bar, "fcnn_opt_state", None) or {"drawn": -1.0, "complete": -1, "best": None}
    bar.fcnn_opt_state = last
    finished = counts.done >= budget
    if now - last["drawn"] < 0.2 and not finished:
        return
    if counts.complete and counts.complete != last["complete"] and len(study.directions) == 1:
        last["best"], last["complete"] = study.best_value, counts.complete
    postfix = {"running": counts.running, "pruned": counts.pruned, "failed": counts.failed}
    if bar.unit == "s" and clock:  # a time budget: the seconds spent, the trials beside them
        timeout, start = clock
        bar.n = min(time.perf_counter() - start, timeout)
        postfix = {"trials": counts.done, **postfix}
    else:
        bar.total = budget
        bar.n = min(counts.done, budget)
    if last["best"] is not None:
        postfix = {"best": f"{last['best']:.4g}", **postfix}
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()
    last["drawn"] = now


def close_bar(bar: Any, start: float, timeout: float | None) -> None:
    """Close the bar; a time budget's bar first shows where the time ended."""
    if bar is None:
        return
    if bar.unit == "s":
        bar.n = min(time.perf_counter() - start, timeout)
        bar.refresh()
    bar.close()
