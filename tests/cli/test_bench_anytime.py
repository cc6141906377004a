"""`bench --anytime` (benchmarks/anytime.py): its verdict lines, on figures from a real run,
and bad arguments refused in one line before anything runs."""

from __future__ import annotations

import pytest
from conftest import benchmark_module, run_cli

_verdict = benchmark_module("anytime")._verdict


def _runs(*columns):
    """Repetitions from per-checkpoint columns: each column lists the repetitions' values."""
    return [{"best": dict(zip((5, 60), values, strict=True))} for values in zip(*columns, strict=True)]


def test_the_verdict_needs_the_worst_repetition_to_beat_the_others_best():
    ours = _runs([0.0324, 0.0346, 0.0461], [0.0294, 0.0295, 0.0296])
    plain = _runs([None, None, 1.2735], [0.0515, 0.0584, 0.0690])
    lines = _verdict([{"runs": ours}, {"runs": []}, {"runs": plain}], [5, 60])
    assert lines[0] == "time budget, median best val at 60 s: 0.0295 (target: at most 0.035)"
    assert lines[1].startswith("at 5 s: better: worst 0.0461 against best 1.2735; median 0.0346 against no model")
    assert lines[2] == ("at 60 s: better: worst 0.0296 against best 0.0515; median 0.0295 against 0.0584 "
                        "(lead 0.0289; ranges 0.0002 and 0.0175)")
    close = _runs([0.03, 0.04, 0.05], [0.05, 0.06, 0.07])
    lines = _verdict([{"runs": close}, {"runs": []}, {"runs": plain}], [5, 60])
    assert lines[2].startswith("at 60 s: NOT clearly better")  # its worst (0.07) is behind their best


@pytest.mark.parametrize("args", [["--repeats", "0"], ["--seconds", "0"], ["--repeats", "21"]])
def test_bad_arguments_exit_2_with_one_line(args):
    done = run_cli("bench", "--anytime", *args, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--seconds must be > 0 and --repeats from 1 to 20" in done.stderr
    assert done.stdout == ""
