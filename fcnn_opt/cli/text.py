"""Plain-text tables and summaries for the command line."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A left-aligned text table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def as_csv(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """``headers`` and ``rows`` as CSV text (no trailing newline), for ``trials --format csv``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def as_json(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """``rows`` as a JSON list of objects keyed by ``headers``, for ``trials --format json``."""
    return json.dumps([dict(zip(headers, row, strict=True)) for row in rows], indent=2, default=str)


def dashboard_command(storage: str) -> str:
    """The command that opens optuna-dashboard on ``storage`` (quoted for a shell)."""
    return f"python -m fcnn_opt dashboard --storage {shlex.quote(storage)}"


def run_summary(summary) -> str:
    """The end-of-run summary: best trial, counts, wall time, how to look further."""
    c = summary.counts
    lines = [f"study     {summary.study_name}  ({summary.storage})"]
    if summary.data:
        lines.append(f"data      {summary.data}")
    lines += [
        f"trials    {c.complete} complete, {c.pruned} pruned, {c.failed} failed"
        + (f", {c.running} running" if c.running else "")
        + (f", {c.skipped} skipped (surplus or duplicate claims, never ran)" if c.skipped else "")
        + f"  ({_budget(summary)}; this run: {summary.ran} in {summary.seconds:.1f} s)",
    ]
    if summary.time_budget is not None:
        left = summary.budget - summary.counts.done
        lines.append(f"time      {summary.seconds:.1f} s of the {summary.time_budget:g} s given; "
                     + ("trials ran until the time was up" if summary.budget >= NO_LIMIT
                        else f"{left} trials of the budget were not run (the same command continues)"
                        if left > 0 else "the trial budget was done first"))
    if summary.continued:
        numbers = ", ".join(str(number) for number, _ in summary.continued[:8])
        more = f" and {len(summary.continued) - 8} more" if len(summary.continued) > 8 else ""
        epochs = sorted({added for _, added in summary.continued})
        span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]} to {epochs[-1]}"
        lines.append(f"anneal    continued the best {len(summary.continued)} complete trials ({numbers}{more}) "
                     f"for {span} more epochs each, the learning rate falling to zero")
    for reason, count in sorted(summary.failures.items(), key=lambda item: -item[1])[:5]:
        lines.append(f"failed    {count} trial{'s' if count > 1 else ''}: {reason[:200]}")
    if summary.pareto:
        lines.append(f"pareto    {len(summary.pareto)} trials trade off {', '.join(summary.objectives)}:")
        lines += pareto_lines(summary.objectives, summary.pareto, indent="          ")
    elif summary.best_value is not None:
        lines.append(f"best      trial {summary.best_number}: {summary.direction[:3]} value {summary.best_value:.5g}")
        for key, value in summary.best_params.items():
            lines.append(f"          {key} = {value}")
    else:
        lines.append("best      no complete trial yet")
    if summary.stopped:
        lines.append(f"stopped   {summary.stopped}; see the reasons above, fix them and run again")
    if summary.interrupted:
        lines.append("stopped   interrupted; the running trial was recorded as failed. "
                     "Run the same command again to resume.")
    lines.append(f"dashboard {dashboard_command(summary.storage)}")
    return "\n".join(lines)


def pareto_lines(objectives, pareto, indent: str = "  ", limit: int = 12) -> list[str]:
    """One line per Pareto trial: its number and objective values (at most ``limit``,
    spread from one end of the front to the other)."""
    shown = list(pareto)
    if len(shown) > limit:
        shown = [shown[round(i * (len(shown) - 1) / (limit - 1))] for i in range(limit)]
    lines = []
    for number, values, *_ in shown:
        parts = ", ".join(f"{name} {_cell(float(v))}" for name, v in zip(objectives, values, strict=True))
        lines.append(f"{indent}trial {number}: {parts}")
    if len(shown) < len(pareto):
        lines.append(f"{indent}... {len(pareto) - len(shown)} more (python -m fcnn_opt best lists them all)")
    return lines


NO_LIMIT = 10**9  # fcnn_opt.search.plan.NO_TRIAL_BUDGET


def _budget(summary) -> str:
    return "no trial budget: a time budget" if summary.budget >= NO_LIMIT else f"budget {summary.budget}"


def created_summary(summary) -> str:
    """What ``study --create-only`` made, and the command that starts a worker on it."""
    c = summary.counts
    return "\n".join([
        f"study     {summary.study_name}  ({summary.storage})",
        f"trials    {c.done} done, {c.waiting} queued  (budget {summary.budget})",
        "workers   python -m fcnn_opt worker --storage " + shlex.quote(summary.storage)
        + " --study-name " + shlex.quote(summary.study_name),
    ])
